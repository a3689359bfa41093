//! Recent reads per VRM, in memory, for the live clone check.
//!
//! Every ingested read is checked against the nearest earlier and later
//! reads of its VRM ([`nadc_store::Store::vrm_neighbours`]). In the store
//! that is a seek on an iterator over every memtable, level-0 file and
//! level, and a walk over the VRM's reads in the window: measured at 10 M
//! reads, about 18 µs of the node's CPU a read, as much as all the rest of
//! ingest together. Nearly every read's neighbours are minutes old, so this
//! keeps the newest reads here (by capture time, up to a count) and answers
//! from memory whatever it can answer exactly, leaving the rest to the
//! store.
//!
//! Invariant: every stored read captured at or after `covered_from` is here.
//! It starts just after the newest capture time in the store; eviction
//! (oldest capture times first) and retention's
//! [`RecentReads::forget_before`] only move it up. So for a read captured
//! at `at >= covered_from`:
//! - its nearest later read (after `at`) is here, if it exists;
//! - the nearest earlier read held is the true one (everything stored
//!   between it and `at` is held too), and if none is held, "none" is exact
//!   when the window starts at or after `covered_from`;
//! - otherwise the answer needs the store, and [`RecentReads::neighbours`]
//!   says so.
//!
//! A read is added after its append returns, so two batches checked at once
//! do not see each other's reads; the store-based check has the same race,
//! since both check before they append. The in-batch check
//! ([`crate::alerts::Alerting::after_append`]) covers reads of one batch.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use nadc_core::{GeoPoint, Timestamp, Vrm};
use nadc_store::{Appended, VrmEntry, VrmNeighbours};

/// Capture-time buckets evicted as one, milliseconds.
const BUCKET_MS: i64 = 10 * 60 * 1000;

/// Recent reads per VRM (see the module documentation).
pub struct RecentReads {
    inner: Mutex<Inner>,
    /// The most reads held; past it the oldest captured are evicted.
    max_reads: usize,
}

impl std::fmt::Debug for RecentReads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Holds VRMs: never printed.
        f.debug_struct("RecentReads")
            .field("max_reads", &self.max_reads)
            .finish_non_exhaustive()
    }
}

struct Inner {
    /// Each VRM's reads, ordered by (capture time, sequence number). The
    /// key is shared with `buckets`: a read costs a pointer there, not a
    /// copy of its VRM (about 60 bytes a read in all).
    by_vrm: HashMap<Arc<str>, Vec<VrmEntry>>,
    /// The VRMs with reads in each capture-time bucket (repeats allowed).
    buckets: BTreeMap<i64, Vec<Arc<str>>>,
    /// Every stored read captured at or after this is in `by_vrm`.
    covered_from: Timestamp,
    /// Reads held.
    reads: usize,
}

impl RecentReads {
    /// Empty, for a store whose newest read was captured at `latest` (none
    /// if the store is empty): everything captured after it will be added.
    pub fn new(latest: Option<Timestamp>, max_reads: usize) -> Self {
        Self {
            inner: Mutex::new(Inner {
                by_vrm: HashMap::new(),
                buckets: BTreeMap::new(),
                covered_from: latest.map_or(Timestamp::EPOCH, |t| t.plus_millis(1)),
                reads: 0,
            }),
            max_reads,
        }
    }

    /// For each `(vrm, at)`, its nearest reads at most `look_ms` away, where
    /// they can be told from memory exactly; `None` where the store must be
    /// asked.
    pub fn neighbours<'a>(
        &self,
        probes: impl IntoIterator<Item = (&'a Vrm, Timestamp)>,
        look_ms: i64,
    ) -> Vec<Option<VrmNeighbours>> {
        let inner = self.inner.lock().ok();
        probes
            .into_iter()
            .map(|(vrm, at)| inner.as_ref()?.neighbours(vrm, at, look_ms.max(0)))
            .collect()
    }

    /// Adds the reads an append stored: `reads[i]` is `(vrm, observed_at,
    /// position)` of the read whose outcome is `outcomes[i]`. Duplicates
    /// are already here or in the store.
    pub fn add(&self, reads: &[(Vrm, Timestamp, GeoPoint)], outcomes: &[Appended]) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        for ((vrm, observed_at, position), outcome) in reads.iter().zip(outcomes) {
            if let Appended::Stored { seq } = outcome {
                inner.add(
                    vrm,
                    VrmEntry {
                        observed_at: *observed_at,
                        seq: *seq,
                        position: *position,
                    },
                );
            }
        }
        // By count, not by age: a BOF catching up hours behind the others
        // still finds its window here if the count allows.
        while inner.reads > self.max_reads {
            let Some(oldest) = inner.buckets.keys().next().copied() else {
                break;
            };
            inner.evict_before(Timestamp::from_millis((oldest + 1) * BUCKET_MS));
        }
    }

    /// Drops every read captured before `t` (rounded down to a bucket), for
    /// retention: a read the store deletes must not be named as a
    /// neighbour from here. Probes that reached them go to the store.
    pub fn forget_before(&self, t: Timestamp) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.evict_before(t);
        }
    }

    /// Reads held.
    pub fn len(&self) -> usize {
        self.inner.lock().map_or(0, |i| i.reads)
    }

    /// Whether none are held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Inner {
    fn neighbours(&self, vrm: &Vrm, at: Timestamp, look_ms: i64) -> Option<VrmNeighbours> {
        if at < self.covered_from {
            return None;
        }
        let within = |e: &VrmEntry| (e.observed_at.millis() - at.millis()).abs() <= look_ms;
        let reads = self.by_vrm.get(vrm.as_str()).map_or(&[][..], Vec::as_slice);
        let split = reads.partition_point(|e| e.observed_at <= at);
        let later = reads.get(split).copied().filter(within);
        let earlier = match split.checked_sub(1).and_then(|i| reads.get(i)) {
            // Held, so captured at or after `covered_from`: everything
            // stored between it and `at` is held too.
            Some(e) => Some(*e).filter(within),
            _ if at.plus_millis(-look_ms) >= self.covered_from => None,
            // An earlier read within the window may be in the store only.
            _ => return None,
        };
        Some([earlier, later])
    }

    fn add(&mut self, vrm: &Vrm, entry: VrmEntry) {
        if entry.observed_at < self.covered_from {
            return;
        }
        let name = match self.by_vrm.get_key_value(vrm.as_str()) {
            Some((name, _)) => name.clone(),
            None => Arc::from(vrm.as_str()),
        };
        let reads = self.by_vrm.entry(name.clone()).or_default();
        let key = (entry.observed_at, entry.seq);
        // Reads arrive nearly in capture order: usually a push at the end.
        let at = reads.partition_point(|e| (e.observed_at, e.seq) < key);
        reads.insert(at, entry);
        self.buckets
            .entry(entry.observed_at.millis().div_euclid(BUCKET_MS))
            .or_default()
            .push(name);
        self.reads += 1;
    }

    /// Drops every read captured before the bucket holding `t` starts, and
    /// moves `covered_from` up to there.
    fn evict_before(&mut self, t: Timestamp) {
        let first_kept = t.millis().div_euclid(BUCKET_MS);
        let boundary = Timestamp::from_millis(first_kept * BUCKET_MS);
        if boundary <= self.covered_from {
            return;
        }
        let kept = self.buckets.split_off(&first_kept);
        let evicted = std::mem::replace(&mut self.buckets, kept);
        for vrm in evicted.into_values().flatten() {
            if let Some(reads) = self.by_vrm.get_mut(&vrm) {
                // A VRM's reads are in capture order: those evicted are a
                // prefix (none, when the VRM came up in a bucket before).
                let gone = reads.partition_point(|e| e.observed_at < boundary);
                reads.drain(..gone);
                self.reads -= gone;
                if reads.is_empty() {
                    self.by_vrm.remove(&vrm);
                }
            }
        }
        self.covered_from = boundary;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60 * 1000;

    fn t(minutes: i64) -> Timestamp {
        Timestamp::from_millis(1_800_000_000_000 + minutes * MIN)
    }

    fn vrm(s: &str) -> Vrm {
        Vrm::normalise(s).unwrap()
    }

    fn here() -> GeoPoint {
        GeoPoint::new(51.5, -2.5).unwrap()
    }

    /// Adds reads of one VRM at the given minutes, numbered from `seq`.
    fn add(r: &RecentReads, v: &str, minutes: &[i64], seq: u64) {
        let reads: Vec<_> = minutes.iter().map(|m| (vrm(v), t(*m), here())).collect();
        let outcomes: Vec<_> = (0..minutes.len() as u64)
            .map(|i| Appended::Stored { seq: seq + i })
            .collect();
        r.add(&reads, &outcomes);
    }

    /// Probes as `neighbours` takes them.
    fn pairs(probes: &[(Vrm, Timestamp)]) -> impl Iterator<Item = (&Vrm, Timestamp)> {
        probes.iter().map(|(v, t)| (v, *t))
    }

    fn times(n: Option<VrmNeighbours>) -> Option<[Option<Timestamp>; 2]> {
        n.map(|pair| pair.map(|e| e.map(|e| e.observed_at)))
    }

    #[test]
    fn answers_exactly_from_memory_or_says_the_store_is_needed() {
        // The store's newest read was captured at minute 0.
        let r = RecentReads::new(Some(t(0)), 1_000);
        add(&r, "AB12CDE", &[10, 30, 50], 1);
        add(&r, "XY99ZZZ", &[20], 10);
        let look = 60 * MIN;
        let probes = [
            (vrm("AB12CDE"), t(35)),  // between two held reads
            (vrm("AB12CDE"), t(30)),  // on one: it is its own earlier
            (vrm("AB12CDE"), t(200)), // the nearest earlier is out of the window
            (vrm("AB12CDE"), t(5)),   // nothing held before, window reaches the store
            (vrm("XY99ZZZ"), t(-5)),  // captured before the coverage
            (vrm("NEW1"), t(100)),    // never read, window within coverage
        ];
        let got: Vec<_> = r
            .neighbours(pairs(&probes), look)
            .into_iter()
            .map(times)
            .collect();
        assert_eq!(
            got,
            [
                Some([Some(t(30)), Some(t(50))]),
                Some([Some(t(30)), Some(t(50))]),
                Some([None, None]),
                None,
                None,
                Some([None, None]),
            ]
        );
        assert_eq!(r.len(), 4);
    }

    #[test]
    fn reads_retention_deletes_are_forgotten_and_their_probes_go_to_the_store() {
        let r = RecentReads::new(None, 1_000);
        add(&r, "AB1", &[0, 200], 1);
        r.forget_before(t(100));
        assert_eq!(r.len(), 1);
        let got = r.neighbours(
            pairs(&[(vrm("AB1"), t(30)), (vrm("AB1"), t(210))]),
            60 * MIN,
        );
        assert_eq!(got[0], None);
        assert_eq!(times(got[1]), Some([Some(t(200)), None]));
    }

    #[test]
    fn duplicates_are_not_added_and_reads_out_of_order_are_placed_in_time() {
        let r = RecentReads::new(None, 1_000);
        let reads = [(vrm("AB1"), t(40), here()), (vrm("AB1"), t(10), here())];
        r.add(
            &reads,
            &[Appended::Stored { seq: 5 }, Appended::Duplicate { seq: 1 }],
        );
        add(&r, "AB1", &[20], 6);
        let got = r.neighbours(pairs(&[(vrm("AB1"), t(30))]), 60 * MIN);
        assert_eq!(times(got[0]), Some([Some(t(20)), Some(t(40))]));
        assert_eq!(r.len(), 2);
    }

    #[test]
    fn the_oldest_captured_are_evicted_and_the_coverage_moves_up_with_them() {
        // Two reads at most; an empty store: coverage from the epoch.
        let r = RecentReads::new(None, 2);
        add(&r, "AB1", &[200], 1);
        add(&r, "XY2", &[0, 60], 2);
        assert_eq!(
            r.len(),
            2,
            "the read captured first went, though added last"
        );
        let got = r.neighbours(
            pairs(&[
                (vrm("AB1"), t(195)),
                (vrm("XY2"), t(70)),
                (vrm("XY2"), t(40)),
                (vrm("XY2"), t(5)),
                (vrm("AB1"), t(300)),
            ]),
            60 * MIN,
        );
        assert_eq!(times(got[0]), Some([None, Some(t(200))]));
        assert_eq!(times(got[1]), Some([Some(t(60)), None]));
        // Nothing earlier held, and the window reaches before the coverage
        // (minute 10, where the evicted read's bucket ended): the store.
        assert_eq!(got[2], None);
        // Captured before the coverage: the store.
        assert_eq!(got[3], None);
        // The window starts after the coverage, and nothing is in it.
        assert_eq!(times(got[4]), Some([None, None]));
    }
}
