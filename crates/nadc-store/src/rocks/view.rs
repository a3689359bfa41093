//! A consistent view of the records in their two forms: one snapshot, and
//! each day's settled mark read from it.
//!
//! A read's record is in the open form (`geo_open`, `vrm_open`) until its
//! day settles, then in the settled form (`geo`, `vrm_by_day`); the day's
//! mark in `meta` says which (sequence numbers up to the mark: settled).
//! Settling writes the settled copies first, then, in one batch, the new
//! mark and the deletion of the open copies; so at any snapshot a read may
//! lie in both forms, but the mark of the same snapshot names one. A
//! [`Merged`] cursor reads both forms of one clustering as one key-ordered
//! sequence, each read once.

use std::cell::RefCell;

use rocksdb::{DBRawIteratorWithThreadMode, SnapshotWithThreadMode};

use super::*;

/// The two clusterings of the records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Clustering {
    /// By day, cell, time (`geo`, `geo_open`).
    Place,
    /// By day, VRM, time (`vrm_by_day`, `vrm_open`).
    Vehicle,
}

impl Clustering {
    /// The column families of the settled and the open form.
    pub(super) fn cfs(self) -> (&'static str, &'static str) {
        match self {
            Clustering::Place => (CF_GEO, CF_GEO_OPEN),
            Clustering::Vehicle => (CF_VRM, CF_VRM_OPEN),
        }
    }
}

/// One snapshot of the store, with the settled marks it holds.
pub(super) struct View<'a> {
    db: &'a DB,
    snapshot: SnapshotWithThreadMode<'a, DB>,
    marks: RefCell<HashMap<u32, u64>>,
}

impl<'a> View<'a> {
    pub(super) fn new(db: &'a DB) -> Self {
        Self {
            db,
            snapshot: db.snapshot(),
            marks: RefCell::new(HashMap::new()),
        }
    }

    pub(super) fn db(&self) -> &'a DB {
        self.db
    }

    /// Read options at this view's snapshot.
    pub(super) fn read_options(&self) -> ReadOptions {
        let mut ro = ReadOptions::default();
        ro.set_snapshot(&self.snapshot);
        ro
    }

    /// `day`'s settled mark (0: nothing of it settled).
    pub(super) fn mark(&self, day: u32) -> Result<u64, StoreError> {
        if let Some(m) = self.marks.borrow().get(&day) {
            return Ok(*m);
        }
        let v = self
            .db
            .get_pinned_cf_opt(
                cf(self.db, CF_META)?,
                keys::settled_key(day),
                &self.read_options(),
            )
            .map_err(engine)?;
        let mark = match v {
            None => 0,
            Some(v) => keys::be_u64(&v).ok_or_else(|| read::corrupt(CF_META, "settled mark"))?,
        };
        self.marks.borrow_mut().insert(day, mark);
        Ok(mark)
    }

    /// Whether the read `seq` of `day` is in the settled form.
    pub(super) fn settled(&self, day: u32, seq: u64) -> Result<bool, StoreError> {
        Ok(seq <= self.mark(day)?)
    }

    /// A cursor over both forms of `clustering`, below `upper` if given.
    pub(super) fn records(
        &self,
        clustering: Clustering,
        upper: Option<&[u8]>,
    ) -> Result<Merged<'_>, StoreError> {
        let (settled, open) = clustering.cfs();
        let iter = |name| -> Result<_, StoreError> {
            let mut ro = self.read_options();
            if let Some(u) = upper {
                ro.set_iterate_upper_bound(u.to_vec());
            }
            Ok(self.db.raw_iterator_cf_opt(cf(self.db, name)?, ro))
        };
        Ok(Merged {
            view: self,
            sides: [iter(settled)?, iter(open)?],
            current: None,
            error: None,
            what: settled,
        })
    }

    /// The records of the reads at `places` (a `geo` key each), in the
    /// order given; `None` where a read has no record.
    pub(super) fn get_placed(
        &self,
        places: &[read::Place],
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let (settled_cf, open_cf) = (cf(self.db, CF_GEO)?, cf(self.db, CF_GEO_OPEN)?);
        let mut settled = Vec::new();
        let mut open = Vec::new();
        for (i, p) in places.iter().enumerate() {
            let (day, seq) = keys::record_key_day_seq(&p.key)
                .ok_or_else(|| read::corrupt(CF_REFS, "bad place"))?;
            if self.settled(day, seq)? {
                settled.push(i);
            } else {
                open.push(i);
            }
        }
        let mut out = vec![None; places.len()];
        let ro = self.read_options();
        for (cf, which) in [(settled_cf, settled), (open_cf, open)] {
            if which.is_empty() {
                continue;
            }
            let found = self.db.batched_multi_get_cf_opt(
                cf,
                which.iter().map(|i| &places[*i].key),
                false,
                &ro,
            );
            for (i, v) in which.into_iter().zip(found) {
                out[i] = v.map_err(engine)?.map(|v| v.to_vec());
            }
        }
        Ok(out)
    }
}

/// Both forms of one clustering as one key-ordered sequence: each side
/// skips the entries its day's mark gives to the other.
pub(super) struct Merged<'v> {
    view: &'v View<'v>,
    /// The settled form, then the open form.
    sides: [DBRawIteratorWithThreadMode<'v, DB>; 2],
    /// The side whose entry is the current one.
    current: Option<usize>,
    error: Option<StoreError>,
    what: &'static str,
}

impl Merged<'_> {
    pub(super) fn seek(&mut self, key: impl AsRef<[u8]>) {
        for side in &mut self.sides {
            side.seek(key.as_ref());
        }
        self.settle_sides();
    }

    pub(super) fn next(&mut self) {
        if let Some(i) = self.current {
            self.sides[i].next();
            self.skip(i);
            self.pick();
        }
    }

    pub(super) fn valid(&self) -> bool {
        self.current.is_some()
    }

    pub(super) fn key(&self) -> Option<&[u8]> {
        self.sides[self.current?].key()
    }

    pub(super) fn value(&self) -> Option<&[u8]> {
        self.sides[self.current?].value()
    }

    /// The first error met, the engine's or a mark's.
    pub(super) fn status(&self) -> Result<(), StoreError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        for side in &self.sides {
            side.status().map_err(engine)?;
        }
        Ok(())
    }

    fn settle_sides(&mut self) {
        self.skip(0);
        self.skip(1);
        self.pick();
    }

    /// Moves side `i` past entries that belong to the other form.
    fn skip(&mut self, i: usize) {
        while let Some(k) = self.sides[i].key() {
            let Some((day, seq)) = keys::record_key_day_seq(k) else {
                self.error = Some(read::corrupt(self.what, "undecodable key"));
                return;
            };
            let settled = match self.view.settled(day, seq) {
                Ok(s) => s,
                Err(e) => {
                    self.error = Some(e);
                    return;
                }
            };
            if settled == (i == 0) {
                return;
            }
            self.sides[i].next();
        }
    }

    fn pick(&mut self) {
        self.current = if self.error.is_some() {
            None
        } else {
            match (self.sides[0].key(), self.sides[1].key()) {
                (None, None) => None,
                (Some(_), None) => Some(0),
                (None, Some(_)) => Some(1),
                (Some(a), Some(b)) => Some(if a <= b { 0 } else { 1 }),
            }
        };
    }
}
