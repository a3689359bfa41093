//! Retrospective convoy analysis: who travels with a vehicle.
//!
//! Semantics (the reference in `tests/convoy.rs` implements exactly these):
//!
//! - **Target reads**: every read of each target VRM (targets de-duplicated)
//!   with capture time in `from..=to`.
//! - **Sighting**: for a target read at camera (owning force, camera id) at
//!   time `t`, any read at the *same* camera (same owning force and camera
//!   id) captured in `[t - W, t + W]` (inclusive; it may lie outside
//!   `from..=to`) whose VRM is not one of the targets.
//! - **Companion**: a VRM with sightings. Its `co_occurrences` is the number
//!   of *distinct target reads* with at least one sighting of it, `cameras`
//!   the number of distinct (force, camera id) among those target reads, and
//!   `targets` the target VRMs of those reads, sorted.
//! - **Pairs**: one per co-occurring target read: the companion's read
//!   closest in time to it (smallest `|gap|`; ties: the earlier companion
//!   read, then the lower sequence number), ordered by target read time,
//!   then target sequence number. `gap_ms` is companion time minus target
//!   time.
//! - Companions with `co_occurrences >= min_count` and
//!   `cameras >= min_cameras` are kept, ranked by co-occurrences (most
//!   first), then cameras (most first), then VRM; `total_companions` counts
//!   them all, `companions` holds the first `limit`.
//!
//! Plan: the targets' timelines (one range scan each) give the target reads
//! and their cameras. Per camera, the targets' windows `[t - W, t + W]` are
//! merged into disjoint intervals and each interval is one range scan of the
//! camera index, which carries the VRM, so no record is fetched while
//! counting. Only the pairs finally returned are fetched, in one batched
//! [`Store::get_reads`].
//!
//! Bounds: more than `max_target_reads` target reads, more than
//! `max_candidates` camera-index entries examined, or more than
//! `max_candidates` (companion, target read) sightings held, refuse the
//! analysis as too broad. Memory is one small record per held sighting plus
//! the target reads.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::ControlFlow;

use nadc_core::{ForceId, ReadRef, StoredRead, Timestamp, Vrm};
use nadc_store::Store;

use crate::QueryError;

/// A convoy analysis.
#[derive(Clone, Debug)]
pub struct ConvoyQuery {
    /// The target VRMs (duplicates are ignored).
    pub targets: Vec<Vrm>,
    /// From (inclusive), on the targets' capture times.
    pub from: Timestamp,
    /// To (inclusive), on the targets' capture times.
    pub to: Timestamp,
    /// A companion read within this many seconds of a target read at the
    /// same camera is a sighting (1 to [`ConvoyQuery::MAX_WINDOW_S`]).
    pub window_s: u32,
    /// Least co-occurrences (target reads accompanied) to list a companion
    /// (at least 1).
    pub min_count: u32,
    /// Least distinct cameras to list a companion (at least 1).
    pub min_cameras: u32,
    /// Most companions returned.
    pub limit: usize,
    /// Most target reads in the window before the analysis is refused as
    /// too broad.
    pub max_target_reads: usize,
    /// Most camera-index entries examined (and sightings held) before the
    /// analysis is refused as too broad.
    pub max_candidates: usize,
}

impl ConvoyQuery {
    /// The default sighting window, seconds.
    pub const DEFAULT_WINDOW_S: u32 = 120;
    /// The largest sighting window accepted, seconds.
    pub const MAX_WINDOW_S: u32 = 3600;

    fn validate(&self) -> Result<(), QueryError> {
        let invalid = |m: String| Err(QueryError::Invalid(m));
        if self.targets.is_empty() {
            return invalid("targets: at least one target VRM is needed".into());
        }
        if self.from > self.to {
            return invalid(format!(
                "the window is inverted: from {} is after to {}",
                self.from, self.to
            ));
        }
        if self.window_s == 0 || self.window_s > Self::MAX_WINDOW_S {
            return invalid(format!(
                "window_s {} is not allowed: 1 to {} seconds",
                self.window_s,
                Self::MAX_WINDOW_S
            ));
        }
        if self.min_count == 0 {
            return invalid("min_count must be at least 1".into());
        }
        if self.min_cameras == 0 {
            return invalid("min_cameras must be at least 1".into());
        }
        Ok(())
    }
}

/// A target read and the companion read closest in time to it at the same
/// camera.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvoyPair {
    /// The target's read.
    pub target: StoredRead,
    /// The companion's read.
    pub companion: StoredRead,
    /// Companion capture time minus target capture time, milliseconds.
    pub gap_ms: i64,
}

/// A vehicle seen with the target(s).
#[derive(Clone, Debug, PartialEq)]
pub struct Companion {
    /// Its VRM.
    pub vrm: Vrm,
    /// Distinct target reads it was sighted with.
    pub co_occurrences: u32,
    /// Distinct cameras (owning force, camera id) of those target reads.
    pub cameras: u32,
    /// The targets it accompanied, sorted.
    pub targets: Vec<Vrm>,
    /// One pair per co-occurrence, by target read time then sequence number.
    pub pairs: Vec<ConvoyPair>,
}

/// The answer to a convoy analysis.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ConvoyResult {
    /// The targets analysed: de-duplicated, sorted.
    pub targets: Vec<Vrm>,
    /// Companions, ranked, at most `limit`.
    pub companions: Vec<Companion>,
    /// Companions passing the filters, before the limit.
    pub total_companions: usize,
    /// Target reads in the window.
    pub target_reads: usize,
    /// Camera-index entries examined.
    pub entries_examined: usize,
    /// Whether companions were left off at the limit.
    pub truncated: bool,
}

/// The closest sighting of one companion for one target read.
#[derive(Clone, Copy, Debug)]
struct Best {
    gap_ms: i64,
    seq: u64,
    observed_at: Timestamp,
}

impl Best {
    /// Smaller is closer: |gap|, then the earlier read, then the lower seq.
    fn key(&self) -> (u64, i64, u64) {
        (self.gap_ms.unsigned_abs(), self.gap_ms, self.seq)
    }
}

/// Who travelled with the targets: see the module documentation.
pub fn convoy(store: &dyn Store, q: &ConvoyQuery) -> Result<ConvoyResult, QueryError> {
    q.validate()?;
    let targets: BTreeSet<Vrm> = q.targets.iter().cloned().collect();
    let window_ms = i64::from(q.window_s) * 1000;

    // The target reads, in (time, seq) order.
    let mut target_reads: Vec<StoredRead> = Vec::new();
    let mut too_many = false;
    for vrm in &targets {
        store.vrm_timeline(vrm, q.from, q.to, &mut |r| {
            target_reads.push(r);
            if target_reads.len() > q.max_target_reads {
                too_many = true;
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        })?;
        if too_many {
            return Err(QueryError::TooBroad(format!(
                "the targets have more than {} reads in the window: narrow the window",
                q.max_target_reads
            )));
        }
    }
    target_reads.sort_by_key(|r| (r.read.observed_at, r.seq));

    // Target reads per camera (indexes into `target_reads`, in time order).
    let mut by_camera: BTreeMap<(&ForceId, &str), Vec<usize>> = BTreeMap::new();
    for (i, r) in target_reads.iter().enumerate() {
        by_camera
            .entry((&r.force, r.read.camera_id.as_str()))
            .or_default()
            .push(i);
    }
    let camera_of: Vec<usize> = {
        let mut ids = vec![0; target_reads.len()];
        for (c, idxs) in by_camera.values().enumerate() {
            for &i in idxs {
                ids[i] = c;
            }
        }
        ids
    };

    // Companion -> target read index -> closest sighting.
    let mut sightings: HashMap<Vrm, BTreeMap<usize, Best>> = HashMap::new();
    let mut held = 0usize;
    let mut entries_examined = 0usize;
    let mut refused: Option<String> = None;
    for ((force, camera), idxs) in &by_camera {
        let times: Vec<i64> = idxs
            .iter()
            .map(|&i| target_reads[i].read.observed_at.millis())
            .collect();
        for (lo, hi) in merged_windows(&times, window_ms) {
            store.camera_entries(
                force,
                camera,
                Timestamp::from_millis(lo),
                Timestamp::from_millis(hi),
                &mut |e| {
                    entries_examined += 1;
                    if entries_examined > q.max_candidates {
                        refused = Some(format!(
                            "more than {} camera-index entries around the targets' reads: \
                             narrow the window or the sighting window",
                            q.max_candidates
                        ));
                        return ControlFlow::Break(());
                    }
                    if targets.contains(&e.vrm) {
                        return ControlFlow::Continue(());
                    }
                    let t = e.observed_at.millis();
                    let first = times.partition_point(|&tt| tt < t.saturating_sub(window_ms));
                    let last = times.partition_point(|&tt| tt <= t.saturating_add(window_ms));
                    if first >= last {
                        return ControlFlow::Continue(());
                    }
                    let per_read = sightings.entry(e.vrm).or_default();
                    for (&i, &tt) in idxs[first..last].iter().zip(&times[first..last]) {
                        let best = Best {
                            gap_ms: t - tt,
                            seq: e.seq,
                            observed_at: e.observed_at,
                        };
                        match per_read.get_mut(&i) {
                            Some(b) => {
                                if best.key() < b.key() {
                                    *b = best;
                                }
                            }
                            None => {
                                per_read.insert(i, best);
                                held += 1;
                                if held > q.max_candidates {
                                    refused = Some(format!(
                                        "more than {} sightings around the targets' reads: \
                                         narrow the window or the sighting window",
                                        q.max_candidates
                                    ));
                                    return ControlFlow::Break(());
                                }
                            }
                        }
                    }
                    ControlFlow::Continue(())
                },
            )?;
            if let Some(why) = refused {
                return Err(QueryError::TooBroad(why));
            }
        }
    }

    // Filter and rank.
    let mut ranked: Vec<(Vrm, BTreeMap<usize, Best>, u32, u32)> = sightings
        .into_iter()
        .filter_map(|(vrm, per_read)| {
            let count = per_read.len() as u32;
            let cameras = per_read
                .keys()
                .map(|&i| camera_of[i])
                .collect::<BTreeSet<_>>()
                .len() as u32;
            (count >= q.min_count && cameras >= q.min_cameras)
                .then_some((vrm, per_read, count, cameras))
        })
        .collect();
    ranked.sort_by(|a, b| b.2.cmp(&a.2).then(b.3.cmp(&a.3)).then(a.0.cmp(&b.0)));
    let total_companions = ranked.len();
    let truncated = total_companions > q.limit;
    ranked.truncate(q.limit);

    // Fetch the companion reads of the returned pairs in one call.
    let refs: Vec<ReadRef> = ranked
        .iter()
        .flat_map(|(_, per_read, _, _)| per_read.values())
        .map(|b| ReadRef {
            day: b.observed_at.day(),
            seq: b.seq,
        })
        .collect();
    let mut fetched = store.get_reads(&refs)?.into_iter();
    let mut companions = Vec::with_capacity(ranked.len());
    for (vrm, per_read, co_occurrences, cameras) in ranked {
        let mut pairs = Vec::with_capacity(per_read.len());
        let mut accompanied = BTreeSet::new();
        // Indexes are in (time, seq) order, so the pairs are too.
        for (i, best) in per_read {
            let target = &target_reads[i];
            accompanied.insert(target.read.vrm.clone());
            let companion = fetched.next().ok_or_else(|| {
                QueryError::Store(nadc_store::StoreError::Corrupt {
                    what: "reads",
                    detail: "fewer records than references fetched".into(),
                })
            })?;
            pairs.push(ConvoyPair {
                target: target.clone(),
                companion,
                gap_ms: best.gap_ms,
            });
        }
        companions.push(Companion {
            vrm,
            co_occurrences,
            cameras,
            targets: accompanied.into_iter().collect(),
            pairs,
        });
    }
    Ok(ConvoyResult {
        targets: targets.into_iter().collect(),
        companions,
        total_companions,
        target_reads: target_reads.len(),
        entries_examined,
        truncated,
    })
}

/// The windows `[t - w, t + w]` of sorted times, merged into disjoint
/// inclusive intervals (adjacent ones joined), in order.
fn merged_windows(times: &[i64], w: i64) -> Vec<(i64, i64)> {
    let mut out: Vec<(i64, i64)> = Vec::new();
    for &t in times {
        let (lo, hi) = (t.saturating_sub(w).max(0), t.saturating_add(w));
        match out.last_mut() {
            Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::merged_windows;

    #[test]
    fn windows_merge_when_they_touch() {
        assert_eq!(merged_windows(&[], 5), vec![]);
        assert_eq!(merged_windows(&[3], 5), vec![(0, 8)]);
        assert_eq!(merged_windows(&[10, 20, 21], 5), vec![(5, 26)]);
        assert_eq!(merged_windows(&[10, 21], 5), vec![(5, 26)]);
        assert_eq!(merged_windows(&[10, 22], 5), vec![(5, 15), (17, 27)]);
    }
}
