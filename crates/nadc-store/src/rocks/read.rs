//! The read paths: index scans and record fetches, as the `Store` trait
//! asks for them (`mod.rs` delegates here).

use super::*;

/// A visitor of index entries: capture time, sequence number, value.
type EntryVisit<'a> = dyn FnMut(Timestamp, u64, &[u8]) -> Result<ControlFlow<()>, StoreError> + 'a;

impl RocksStore {
    pub(super) fn read_vrm_neighbours(
        &self,
        probes: &[(Vrm, Timestamp)],
        look_ms: i64,
    ) -> Result<Vec<VrmNeighbours>, StoreError> {
        let look_ms = look_ms.max(0);
        let view = View::new(&self.db);
        let mut it = view.records(Clustering::Vehicle, None)?;
        let mut out = Vec::with_capacity(probes.len());
        for (vrm, at) in probes {
            let (lo, hi) = (at.plus_millis(-look_ms), at.plus_millis(look_ms));
            let (mut earlier, mut later) = (None, None);
            // Forward only (a reverse step on a merging iterator is costly):
            // day by day from `at - look_ms`, the last entry at or before
            // `at`, then the first after it.
            'days: for day in lo.day()..=hi.day() {
                let prefix = keys::vrm_prefix(day, vrm);
                it.seek(keys::vrm_bound(vrm, lo.max(Timestamp::from_day_ms(day, 0))));
                while let (Some(k), Some(v)) = (it.key(), it.value()) {
                    if !k.starts_with(&prefix) {
                        break;
                    }
                    let (observed_at, seq) =
                        keys::decode_tail(k).ok_or_else(|| corrupt(CF_VRM, "undecodable key"))?;
                    if observed_at > hi {
                        break 'days;
                    }
                    let position = record::position(v)
                        .ok_or_else(|| corrupt(CF_VRM, "record has no position"))?;
                    let e = VrmEntry {
                        observed_at,
                        seq,
                        position,
                    };
                    if e.observed_at <= *at {
                        earlier = Some(e);
                        it.next();
                    } else {
                        later = Some(e);
                        break 'days;
                    }
                }
                it.status()?;
            }
            out.push([earlier, later]);
        }
        Ok(out)
    }

    /// Visits the records of `vrm` in `vrm_by_day` captured on `days`
    /// (ascending, within `from..=to`) and in `from..=to`, in key order
    /// (by day, then time and sequence number) until `visit` breaks: one
    /// iterator, a seek per day.
    fn scan_vrm_days(
        &self,
        vrm: &Vrm,
        days: impl IntoIterator<Item = u32>,
        from: Timestamp,
        to: Timestamp,
        visit: &mut EntryVisit<'_>,
    ) -> Result<(), StoreError> {
        let view = View::new(&self.db);
        let mut it = view.records(Clustering::Vehicle, None)?;
        for day in days {
            let prefix = keys::vrm_prefix(day, vrm);
            it.seek(keys::vrm_bound(
                vrm,
                from.max(Timestamp::from_day_ms(day, 0)),
            ));
            while let (Some(k), Some(v)) = (it.key(), it.value()) {
                if !k.starts_with(&prefix) {
                    break;
                }
                let (t, seq) =
                    keys::decode_tail(k).ok_or_else(|| corrupt(CF_VRM, "undecodable key"))?;
                if t > to {
                    break;
                }
                if visit(t, seq, v)?.is_break() {
                    return Ok(());
                }
                it.next();
            }
            it.status()?;
        }
        Ok(())
    }

    pub(super) fn read_camera_entries(
        &self,
        force: &ForceId,
        camera_id: &str,
        from: Timestamp,
        to: Timestamp,
        visit: &mut dyn FnMut(CameraEntry) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        self.camera_records(force, camera_id, from, to, &mut |observed_at, seq, v| {
            let vrm = record::head(v)
                .and_then(|h| Vrm::normalise(h.vrm).ok())
                .ok_or_else(|| corrupt(CF_GEO, "record head undecodable"))?;
            Ok(visit(CameraEntry {
                observed_at,
                seq,
                vrm,
            }))
        })
    }

    /// Visits the records of one camera captured in `from..=to`, in time
    /// order (ties by sequence number): for each day, the camera's cells
    /// (`camera_cells`), each a time range of `geo`, keeping the records
    /// whose head names the camera.
    fn camera_records(
        &self,
        force: &ForceId,
        camera_id: &str,
        from: Timestamp,
        to: Timestamp,
        visit: &mut EntryVisit<'_>,
    ) -> Result<(), StoreError> {
        if to < from {
            return Ok(());
        }
        let cells_cf = self.cf(CF_CAMERA)?;
        let view = View::new(&self.db);
        let mut cells_it = self.db.raw_iterator_cf_opt(cells_cf, view.read_options());
        let mut day = from.day();
        while day <= to.day() {
            let prefix = keys::camera_prefix(day, force, camera_id);
            let mut cells = Vec::new();
            cells_it.seek(&prefix);
            while let Some(k) = cells_it.key().filter(|k| k.starts_with(&prefix)) {
                let (_, _, _, cell) = keys::decode_camera_cell_key(k)
                    .ok_or_else(|| corrupt(CF_CAMERA, "undecodable key"))?;
                cells.push(cell);
                cells_it.next();
            }
            cells_it.status().map_err(engine)?;
            if cells.is_empty() {
                // No reads of the camera that day: straight to the next day
                // with any camera's cells (a long window over sparse days
                // costs a seek per day held, not per day asked).
                let next = match cells_it.key() {
                    // No cells of any camera from here on.
                    None => break,
                    Some(k) => match keys::decode_camera_cell_key(k) {
                        Some((d, ..)) if d > day => d,
                        _ => day.saturating_add(1),
                    },
                };
                if next == day {
                    break;
                }
                day = next;
                continue;
            }
            let day_start = Timestamp::from_day_ms(day, 0);
            let lo = from.max(day_start).ms_of_day();
            let hi = to.min(day_start.plus_millis(MS_PER_DAY - 1)).ms_of_day();
            // Several cells (a mobile camera) interleave in time: gathered,
            // then sorted. One cell (a fixed camera) streams as it lies.
            let mut gathered: Vec<(Timestamp, u64, Vec<u8>)> = Vec::new();
            let several = cells.len() > 1;
            let mut it = view.records(Clustering::Place, None)?;
            for cell in cells {
                it.seek(keys::geo_key(day, cell, lo, 0));
                while let (Some(k), Some(v)) = (it.key(), it.value()) {
                    let g = keys::decode_geo_key(k)
                        .ok_or_else(|| corrupt(CF_GEO, "undecodable key"))?;
                    if g.day != day || g.cell != cell || g.ms_of_day > hi {
                        break;
                    }
                    let head = record::head(v)
                        .ok_or_else(|| corrupt(CF_GEO, "record head undecodable"))?;
                    if head.force == force.as_str() && head.camera_id == camera_id {
                        let t = Timestamp::from_day_ms(day, g.ms_of_day);
                        if several {
                            gathered.push((t, g.seq, v.to_vec()));
                        } else if visit(t, g.seq, v)?.is_break() {
                            return Ok(());
                        }
                    }
                    it.next();
                }
                it.status()?;
            }
            gathered.sort_by_key(|(t, seq, _)| (*t, *seq));
            for (t, seq, v) in gathered {
                if visit(t, seq, &v)?.is_break() {
                    return Ok(());
                }
            }
            match day.checked_add(1) {
                Some(next) => day = next,
                None => break,
            }
        }
        Ok(())
    }

    /// The days with reads of `vrm`, from the VRM dictionary.
    pub(super) fn vrm_days(&self, vrm: &Vrm) -> Result<BTreeSet<u32>, StoreError> {
        let skeleton = ConfusableGroups::default().skeleton(vrm.as_str());
        match self
            .db
            .get_pinned_cf(self.cf(CF_VRM_DICT)?, keys::vrm_dict_key(&skeleton, vrm))
            .map_err(engine)?
        {
            None => Ok(BTreeSet::new()),
            Some(v) => keys::decode_days(&v)
                .ok_or_else(|| corrupt(CF_VRM_DICT, "value is not a set of days")),
        }
    }

    pub(super) fn read_vrm_timeline(
        &self,
        vrm: &Vrm,
        from: Timestamp,
        to: Timestamp,
        visit: &mut dyn FnMut(StoredRead) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        if to < from {
            return Ok(());
        }
        // Only the days the VRM was read on: a year's retention is 365
        // partitions, a vehicle seen on a few of them costs a few seeks.
        let days = self.vrm_days(vrm)?;
        self.scan_vrm_days(
            vrm,
            days.range(from.day()..=to.day()).copied(),
            from,
            to,
            &mut |t, seq, v| Ok(visit(record::decode_read(seq, t, v)?)),
        )
    }

    pub(super) fn read_geo_scan(
        &self,
        cells: &[CellRange],
        from: Timestamp,
        to: Timestamp,
        visit: &mut dyn FnMut(GeoHit<'_>) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        if to < from || cells.is_empty() {
            return Ok(());
        }
        let corrupt = || corrupt(CF_GEO, "undecodable entry");
        let view = View::new(&self.db);
        for day in from.day()..=to.day() {
            let lo = if day == from.day() {
                from.ms_of_day()
            } else {
                0
            };
            let hi = if day == to.day() {
                to.ms_of_day()
            } else {
                (MS_PER_DAY - 1) as u32
            };
            let end = keys::day_start(day.saturating_add(1));
            let mut it = view.records(Clustering::Place, Some(&end))?;
            for range in cells {
                // Skip-scan: seek to (day, cell, lo); read the cell's entries
                // up to hi; then seek straight to the next cell.
                it.seek(keys::geo_key(day, range.start, lo, 0));
                while it.valid() {
                    let Some(key) = it.key() else { break };
                    let k = keys::decode_geo_key(key).ok_or_else(corrupt)?;
                    if k.day != day || k.cell > range.end {
                        break;
                    }
                    if k.ms_of_day < lo {
                        it.seek(keys::geo_key(day, k.cell, lo, 0));
                        continue;
                    }
                    if k.ms_of_day > hi {
                        match k.cell.checked_add(1) {
                            Some(next) if next <= range.end => {
                                it.seek(keys::geo_key(day, next, lo, 0));
                                continue;
                            }
                            _ => break,
                        }
                    }
                    let record = it.value().ok_or_else(corrupt)?;
                    let position = record::position(record).ok_or_else(corrupt)?;
                    let hit = GeoHit {
                        seq: k.seq,
                        observed_at: Timestamp::from_day_ms(day, k.ms_of_day),
                        position,
                        record,
                    };
                    if visit(hit).is_break() {
                        return Ok(());
                    }
                    it.next();
                }
                it.status()?;
            }
        }
        Ok(())
    }

    pub(super) fn read_camera_reads(
        &self,
        force: &ForceId,
        camera_id: &str,
        from: Timestamp,
        to: Timestamp,
        visit: &mut dyn FnMut(StoredRead) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        self.camera_records(force, camera_id, from, to, &mut |t, seq, v| {
            Ok(visit(record::decode_read(seq, t, v)?))
        })
    }

    pub(super) fn read_vrm_dict(
        &self,
        skeleton_prefix: &str,
        whole: bool,
        visit: &mut dyn FnMut(&Vrm) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        let cf = self.cf(CF_VRM_DICT)?;
        let mut prefix = skeleton_prefix.as_bytes().to_vec();
        if whole {
            prefix.push(keys::SEP);
        }
        let mut ro = ReadOptions::default();
        if let Some(end) = keys::prefix_end(&prefix) {
            ro.set_iterate_upper_bound(end);
        }
        let mut it = self.db.raw_iterator_cf_opt(cf, ro);
        it.seek(&prefix);
        while let Some(key) = it.key() {
            if visit(&dict_vrm(key)?).is_break() {
                return Ok(());
            }
            it.next();
        }
        it.status().map_err(engine)
    }

    pub(super) fn read_vrm_dict_whole(
        &self,
        skeletons: &[String],
        visit: &mut dyn FnMut(&Vrm) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        let cf = self.cf(CF_VRM_DICT)?;
        let mut sorted: Vec<&String> = skeletons.iter().collect();
        sorted.sort_unstable();
        sorted.dedup();
        // One iterator, seeking forward from probe to probe.
        let mut it = self.db.raw_iterator_cf(cf);
        for skeleton in sorted {
            let mut prefix = skeleton.as_bytes().to_vec();
            prefix.push(keys::SEP);
            it.seek(&prefix);
            while let Some(key) = it.key().filter(|k| k.starts_with(&prefix)) {
                if visit(&dict_vrm(key)?).is_break() {
                    return Ok(());
                }
                it.next();
            }
            it.status().map_err(engine)?;
        }
        Ok(())
    }

    pub(super) fn read_scan_days(
        &self,
        from: Timestamp,
        to: Timestamp,
        visit: &mut dyn FnMut(StoredRead) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        if to < from {
            return Ok(());
        }
        let view = View::new(&self.db);
        let end = keys::day_start(to.day().saturating_add(1));
        let mut it = view.records(Clustering::Place, Some(&end))?;
        it.seek(keys::day_start(from.day()));
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            let k = keys::decode_geo_key(k).ok_or_else(|| corrupt(CF_GEO, "undecodable key"))?;
            let t = Timestamp::from_day_ms(k.day, k.ms_of_day);
            if visit(record::decode_read(k.seq, t, v)?).is_break() {
                return Ok(());
            }
            it.next();
        }
        it.status()
    }

    pub(super) fn read_get_reads(&self, refs: &[ReadRef]) -> Result<Vec<StoredRead>, StoreError> {
        let mut out = Vec::with_capacity(refs.len());
        for chunk in refs.chunks(SCAN_BATCH) {
            let _ = self.fetch_records(chunk, &mut |r| {
                out.push(r);
                ControlFlow::Continue(())
            })?;
        }
        Ok(out)
    }

    /// Fetches records by reference, in the order given.
    pub(super) fn fetch_records(
        &self,
        refs: &[ReadRef],
        visit: &mut dyn FnMut(StoredRead) -> ControlFlow<()>,
    ) -> Result<ControlFlow<()>, StoreError> {
        fetch_records(&View::new(&self.db), refs, &mut |_, r| visit(r))
    }
}

/// Where a read's record lies in `geo`: its key, and the capture time the
/// key holds (which the record does not repeat).
pub(super) struct Place {
    pub(super) key: [u8; 24],
    pub(super) at: Timestamp,
}

/// The place of each read referred to, if it is held (from `refs`).
pub(super) fn record_places(
    view: &View<'_>,
    refs: &[ReadRef],
) -> Result<Vec<Option<Place>>, StoreError> {
    let db = view.db();
    let keys: Vec<[u8; 12]> = refs.iter().map(|r| keys::read_key(r.day, r.seq)).collect();
    db.batched_multi_get_cf_opt(cf(db, CF_REFS)?, keys.iter(), false, &view.read_options())
        .into_iter()
        .zip(refs)
        .map(|(v, r)| {
            v.map_err(engine)?
                .map(|v| {
                    keys::decode_ref_value(&v)
                        .map(|(cell, ms)| Place {
                            key: keys::geo_key(r.day, cell, ms, r.seq),
                            at: Timestamp::from_day_ms(r.day, ms),
                        })
                        .ok_or_else(|| corrupt(CF_REFS, "value is not a cell and a time"))
                })
                .transpose()
        })
        .collect()
}

/// Fetches records by reference, in the order given, each with its place:
/// the places from `refs`, then the records (from the form the view's mark
/// names), two multi-gets. A reference with no record is corruption (a
/// read's entries are written together).
pub(super) fn fetch_records(
    view: &View<'_>,
    refs: &[ReadRef],
    visit: &mut dyn FnMut(&Place, StoredRead) -> ControlFlow<()>,
) -> Result<ControlFlow<()>, StoreError> {
    let places = record_places(view, refs)?
        .into_iter()
        .zip(refs)
        .map(|(p, r)| {
            p.ok_or_else(|| {
                corrupt(
                    CF_REFS,
                    &format!("no record of day {} seq {}", r.day, r.seq),
                )
            })
        })
        .collect::<Result<Vec<Place>, _>>()?;
    let values = view.get_placed(&places)?;
    for ((r, place), value) in refs.iter().zip(&places).zip(values) {
        let bytes = value
            .ok_or_else(|| corrupt(CF_GEO, &format!("reference to seq {} has no record", r.seq)))?;
        if visit(place, record::decode_read(r.seq, place.at, &bytes)?).is_break() {
            return Ok(ControlFlow::Break(()));
        }
    }
    Ok(ControlFlow::Continue(()))
}

/// The coarse cells the reads held lie in ([`Store::coarse_cells`]).
pub(super) fn coarse_cells_held(db: &DB) -> Result<Vec<u64>, StoreError> {
    // The cells and the earliest read from one snapshot: the writer
    // writes both in a read's batch, so a late read in a new cell is
    // never judged by an earliest day from before it.
    let snapshot = db.snapshot();
    let mut ro = ReadOptions::default();
    ro.set_snapshot(&snapshot);
    let earliest = match db
        .get_pinned_cf_opt(cf(db, CF_META)?, META_EARLIEST, &ro)
        .map_err(engine)?
    {
        None => return Ok(Vec::new()),
        Some(v) => keys::be_u64(&v).ok_or_else(|| corrupt(CF_META, "earliest is not 8 bytes"))?,
    };
    let earliest = Timestamp::from_millis(earliest as i64).day();
    let cells = coarse_cells(db, ro)?;
    Ok(cells
        .into_iter()
        .filter(|(_, day)| *day >= earliest)
        .map(|(cell, _)| cell)
        .collect())
}

/// The coarse cells that have held a read, each with the latest capture
/// day of a read in it ([`keys::coarse_key`]), as `ro` sees them.
pub(super) fn coarse_cells(db: &DB, ro: ReadOptions) -> Result<Vec<(u64, u32)>, StoreError> {
    let mut out = Vec::new();
    let mut it = db.raw_iterator_cf_opt(cf(db, CF_META)?, ro);
    it.seek(keys::COARSE_PREFIX);
    while let (Some(k), Some(v)) = (it.key(), it.value()) {
        let Some(cell) = keys::decode_coarse_key(k) else {
            break;
        };
        let day = v
            .try_into()
            .map(u32::from_be_bytes)
            .map_err(|_| corrupt(CF_META, "a coarse cell's day is not 4 bytes"))?;
        out.push((cell, day));
        it.next();
    }
    it.status().map_err(engine)?;
    Ok(out)
}

/// A corrupt entry of column family `what`.
pub(super) fn corrupt(what: &'static str, detail: &str) -> StoreError {
    StoreError::Corrupt {
        what,
        detail: detail.into(),
    }
}
