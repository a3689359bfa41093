//! Reads made ready for the writer thread on the caller's thread.
//!
//! Every append is committed by one writer thread (see `rocks`), so
//! whatever that thread does per read bounds the node's ingest rate. All
//! the per-read work that does not need a sequence number is done here
//! instead, by the thread that calls [`crate::Store::append`], several of
//! which run at once: the record is encoded, the H3 cell computed, the
//! confusable skeleton taken and every key built, each key that ends in a
//! sequence number with 0 there for the writer to overwrite
//! ([`keys::set_seq`]). A request's keys and values share one buffer, so
//! that the writer frees one allocation per request, not several per read.
//!
//! [`dedup_plan`] is the writer's half: it settles, for a whole group of
//! requests, which reads are duplicates of stored ones or of an earlier
//! read in the group, with one sorted multi-get.

use std::collections::HashMap;
use std::ops::Range;

use nadc_core::alert::AlertDetail;
use nadc_core::vrm_match::ConfusableGroups;
use nadc_core::{ForceId, GeoPoint, Timestamp};

use crate::keys;
use crate::record;
use crate::{NewRead, StoreError};

/// One request's reads, encoded and keyed.
#[derive(Debug, Default)]
pub(crate) struct PreparedReads {
    /// Every key and value of every read, back to back.
    pub bytes: Vec<u8>,
    /// Where each read's parts are in `bytes`, in the order appended.
    pub reads: Vec<PreparedRead>,
}

/// Where one read's keys and values are in [`PreparedReads::bytes`].
#[derive(Debug)]
pub(crate) struct PreparedRead {
    /// De-duplication key: (day, force, read id).
    pub dedup: Range<usize>,
    /// The `refs` key, `day · seq` (sequence number 0 until numbered).
    pub read_key: Range<usize>,
    /// The `refs` value: where the record lies in `geo`.
    pub ref_value: [u8; 12],
    /// The encoded record: the value of the geographic and VRM entries.
    pub record: Range<usize>,
    /// Geographic index key (sequence number 0 until numbered).
    pub geo_key: Range<usize>,
    /// VRM index key (sequence number 0 until numbered).
    pub vrm_key: Range<usize>,
    /// The camera's cell that day (no sequence number: one key for all
    /// its reads there).
    pub camera_cell: Range<usize>,
    /// The coarse cell its position lies in
    /// ([`nadc_core::geo::COARSE_RESOLUTION`]).
    pub coarse: u64,
    /// VRM dictionary key.
    pub dict_key: Range<usize>,
    /// The dictionary key followed by the capture day (four bytes, the
    /// merge operand): what the writer remembers having added.
    pub dict_day: Range<usize>,
    /// When it was taken.
    pub observed_at: Timestamp,
    /// When the node received it.
    pub received_at: Timestamp,
    /// The alerts it raises.
    pub alerts: Vec<AlertDetail>,
    /// Its clone flags with earlier reads of the append.
    pub earlier_in_batch: Vec<crate::BatchClone>,
}

impl PreparedReads {
    /// Encodes and keys `reads` of `force`, taking their alerts.
    pub fn new(force: &ForceId, reads: &mut [NewRead]) -> Result<Self, StoreError> {
        let groups = ConfusableGroups::default();
        // About 130 bytes of keys and 100 of record a read at national data's
        // sizes; growing past it costs a copy, not an error.
        let mut bytes = Vec::with_capacity(reads.len() * 256);
        let mut out = Vec::with_capacity(reads.len());
        // A batch's reads come from a force's cameras, most of them fixed:
        // the same few positions over and over, and an H3 cell costs about
        // 4 k instructions to compute (two here: the index cell and the
        // coarse one).
        let mut cells: HashMap<GeoPoint, (u64, u64)> = HashMap::new();
        for new in reads.iter_mut() {
            let r = &new.read;
            let t = r.observed_at;
            let day = t.day();
            // The parts lie back to back: each ends where the next starts.
            let mut at = bytes.len();
            let mut part = |bytes: &Vec<u8>| {
                let range = at..bytes.len();
                at = bytes.len();
                range
            };
            keys::push_dedup_key(&mut bytes, day, force, &r.read_id);
            let dedup = part(&bytes);
            bytes.extend_from_slice(&keys::read_key(day, 0));
            let read_key = part(&bytes);
            bytes = record::encode_read_into(bytes, force, new.received_at, new.position, r)?;
            let record = part(&bytes);
            let position = new.position;
            let (cell, coarse) = *cells.entry(position).or_insert_with(|| {
                let coarse = position.cell_at(nadc_core::geo::COARSE_RESOLUTION);
                (position.index_cell(), coarse)
            });
            bytes.extend_from_slice(&keys::geo_key(day, cell, t.ms_of_day(), 0));
            let geo_key = part(&bytes);
            keys::push_vrm_key(&mut bytes, &r.vrm, t, 0);
            let vrm_key = part(&bytes);
            keys::push_camera_cell_key(&mut bytes, day, force, &r.camera_id, cell);
            let camera_cell = part(&bytes);
            keys::push_vrm_dict_key(&mut bytes, &groups.skeleton(r.vrm.as_str()), &r.vrm);
            let dict_key = part(&bytes);
            bytes.extend_from_slice(&keys::day_operand(day));
            let dict_day = dict_key.start..part(&bytes).end;

            out.push(PreparedRead {
                dedup,
                read_key,
                ref_value: keys::ref_value(cell, t.ms_of_day()),
                record,
                geo_key,
                vrm_key,
                camera_cell,
                coarse,
                dict_key,
                dict_day,
                observed_at: t,
                received_at: new.received_at,
                alerts: std::mem::take(&mut new.alerts),
                earlier_in_batch: std::mem::take(&mut new.earlier_in_batch),
            });
        }
        Ok(Self { bytes, reads: out })
    }

    /// The bytes of one part of a read.
    pub fn part(&self, range: &Range<usize>) -> &[u8] {
        &self.bytes[range.clone()]
    }
}

/// What the writer does with one read of a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fate {
    /// New: store it.
    Store,
    /// Already stored under this sequence number.
    Stored(u64),
    /// The same identity as the read at this index of the group, earlier in
    /// arrival order: it gets that read's fate.
    SameAs(usize),
}

/// Decides every read's fate in a group of requests, in arrival order (the
/// requests in order, each request's reads in order). `lookup` is given the
/// group's de-duplication keys sorted and must return, for each, the
/// sequence number stored under it, if any: one sorted multi-get, which
/// RocksDB serves without sorting again.
pub(crate) fn dedup_plan<'a, E>(
    group: impl IntoIterator<Item = &'a PreparedReads>,
    lookup: impl FnOnce(&[&[u8]]) -> Result<Vec<Option<u64>>, E>,
) -> Result<Vec<Fate>, E> {
    let keys: Vec<&[u8]> = group
        .into_iter()
        .flat_map(|p| p.reads.iter().map(|r| p.part(&r.dedup)))
        .collect();
    let mut order: Vec<usize> = (0..keys.len()).collect();
    // Stable: among equal keys the earliest read comes first. Reads arrive
    // mostly in read-id order per force, which a merge sort takes in runs.
    order.sort_by(|a, b| keys[*a].cmp(keys[*b]));
    let sorted: Vec<&[u8]> = order.iter().map(|i| keys[*i]).collect();
    let found = lookup(&sorted)?;
    let mut fates = vec![Fate::Store; keys.len()];
    let mut first_of_run = 0;
    for (pos, &i) in order.iter().enumerate() {
        if pos > 0 && sorted[pos] == sorted[pos - 1] {
            fates[i] = Fate::SameAs(first_of_run);
        } else {
            first_of_run = i;
            if let Some(seq) = found.get(pos).copied().flatten() {
                fates[i] = Fate::Stored(seq);
            }
        }
    }
    Ok(fates)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn prepared(ids: &[&str]) -> PreparedReads {
        let mut bytes = Vec::new();
        let reads = ids
            .iter()
            .map(|id| {
                let at = bytes.len();
                bytes.extend_from_slice(id.as_bytes());
                PreparedRead {
                    dedup: at..bytes.len(),
                    read_key: 0..0,
                    ref_value: [0; 12],
                    record: 0..0,
                    geo_key: 0..0,
                    vrm_key: 0..0,
                    camera_cell: 0..0,
                    coarse: 0,
                    dict_key: 0..0,
                    dict_day: 0..0,
                    observed_at: Timestamp::EPOCH,
                    received_at: Timestamp::EPOCH,
                    alerts: Vec::new(),
                    earlier_in_batch: Vec::new(),
                }
            })
            .collect();
        PreparedReads { bytes, reads }
    }

    #[test]
    fn the_first_of_equal_keys_decides_and_stored_keys_are_found() {
        let group = [prepared(&["c", "a", "s", "c"]), prepared(&["a", "b", "s"])];
        let stored: HashMap<&[u8], u64> = [(&b"s"[..], 42)].into_iter().collect();
        let mut asked = Vec::new();
        let fates = dedup_plan(&group, |keys| {
            asked = keys.iter().map(|k| k.to_vec()).collect();
            Ok::<_, ()>(keys.iter().map(|k| stored.get(k).copied()).collect())
        })
        .unwrap();
        assert_eq!(
            fates,
            [
                Fate::Store,
                Fate::Store,
                Fate::Stored(42),
                Fate::SameAs(0),
                Fate::SameAs(1),
                Fate::Store,
                Fate::SameAs(2),
            ]
        );
        let mut sorted = asked.clone();
        sorted.sort();
        assert_eq!(asked, sorted, "the multi-get is asked in key order");
    }
}
