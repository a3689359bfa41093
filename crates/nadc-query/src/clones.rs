//! Cloned plates: the same VRM read at two places further apart than a
//! vehicle could travel in the time between them (a cloned plate, or a
//! misread).
//!
//! **Rule** ([`CloneRule::flags`]): two reads of one VRM, `d` metres
//! (the WGS84 geodesic between the stored microdegrees) and `s` seconds apart, flag when
//! `d >= min_distance_m` and (`s == 0` or `d / s * 3.6 > max_speed_kmh`).
//! The minimum distance keeps neighbouring cameras with skewed clocks from
//! flagging.
//!
//! **Retrospective analysis** ([`clones`]): for each VRM, its reads with
//! capture time in `from..=to`, ordered by (time, sequence number); each
//! *consecutive* pair is tested. Consecutive pairs suffice for the speed
//! test: if `a -> c` is impossibly fast with `b` between them, then
//! `d(a,c) <= d(a,b) + d(b,c)` and `t(a,c) = t(a,b) + t(b,c)`, so if
//! neither leg were faster than the limit the whole journey would not be
//! either: one of `a -> b`, `b -> c` is too fast as well. The caveat is the
//! minimum distance: that faster leg may be shorter than `min_distance_m`
//! (e.g. `b` halfway between `a` and `c` with both legs under it), and then
//! nothing is flagged although `a -> c` alone would be. Pairs come ordered
//! by VRM, then the first read's time (then its sequence number); `total`
//! counts every flagged pair, `pairs` holds the first `limit`.
//!
//! **Memory**: the scan keeps one compact entry per read (time, sequence
//! number, position) grouped by VRM, never the records. VRMs are hashed
//! into 65,536 buckets; the first pass scans the window's days holding
//! everything. If it would hold more than `max_reads_in_memory` reads it
//! stops holding, finishes the scan counting reads per bucket, and plans
//! passes of contiguous bucket ranges of at most `max_reads_in_memory`
//! reads each (a pass that still overflows, because reads arrived
//! meanwhile, is split in two and redone). A single bucket with more reads
//! than the cap is refused as too broad. Flagged pairs are held up to
//! `limit`; only the records of the pairs returned are fetched, in one
//! batched [`Store::get_reads`]. With `vrm` given, its timeline (one range
//! scan) replaces the day scan.
//!
//! **Live check** ([`clone_check`]): a new read against its nearest earlier
//! and nearest later stored read of the same VRM, with the same rule.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::ops::{ControlFlow, Range};

use nadc_core::{GeoPoint, ReadRef, StoredRead, Timestamp, Vrm};
use nadc_store::{Store, StoreError, VrmNeighbours};

use crate::QueryError;

/// When two reads of one VRM are flagged.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CloneRule {
    /// Implied speed above which a pair is flagged, km/h.
    pub max_speed_kmh: f64,
    /// Reads closer than this are never flagged, metres.
    pub min_distance_m: f64,
}

impl CloneRule {
    /// The default speed limit, km/h.
    pub const DEFAULT_MAX_SPEED_KMH: f64 = 250.0;
    /// The default minimum distance, metres.
    pub const DEFAULT_MIN_DISTANCE_M: f64 = 2000.0;

    /// Whether reads `distance_m` metres and `seconds` seconds apart flag:
    /// the implied speed if so (infinite when `seconds` is 0).
    pub fn flags(&self, distance_m: f64, seconds: f64) -> Option<f64> {
        match distance_m.partial_cmp(&self.min_distance_m) {
            Some(Ordering::Greater | Ordering::Equal) => {}
            Some(Ordering::Less) | None => return None,
        }
        let seconds = seconds.abs();
        if seconds == 0.0 {
            return Some(f64::INFINITY);
        }
        let speed = distance_m / seconds * 3.6;
        (speed > self.max_speed_kmh).then_some(speed)
    }

    /// Whether reads at `a` and `b`, `seconds` apart, flag: the geodesic
    /// distance and the implied speed if so. Whether a pair flags only
    /// grows with the distance, so the haversine distance stretched by the
    /// sphere's error rules out most pairs without the geodesic.
    pub fn flags_between(
        &self,
        a: nadc_core::GeoPoint,
        b: nadc_core::GeoPoint,
        seconds: f64,
    ) -> Option<(f64, f64)> {
        let bound = nadc_core::geo::haversine_m(a, b) * (1.0 + nadc_core::geo::SPHERE_ERROR);
        self.flags(bound, seconds)?;
        let distance_m = a.distance_m(b);
        self.flags(distance_m, seconds)
            .map(|speed| (distance_m, speed))
    }

    /// Refuses a rule that cannot be applied.
    pub fn validate(&self) -> Result<(), QueryError> {
        if !(self.max_speed_kmh.is_finite() && self.max_speed_kmh > 0.0) {
            return Err(QueryError::Invalid(format!(
                "max_speed_kmh {} is not allowed: a finite speed above 0",
                self.max_speed_kmh
            )));
        }
        if !(self.min_distance_m.is_finite() && self.min_distance_m >= 0.0) {
            return Err(QueryError::Invalid(format!(
                "min_distance_m {} is not allowed: a finite distance of 0 or more",
                self.min_distance_m
            )));
        }
        Ok(())
    }
}

impl Default for CloneRule {
    fn default() -> Self {
        Self {
            max_speed_kmh: Self::DEFAULT_MAX_SPEED_KMH,
            min_distance_m: Self::DEFAULT_MIN_DISTANCE_M,
        }
    }
}

/// A retrospective clone analysis.
#[derive(Clone, Debug)]
pub struct CloneQuery {
    /// From (inclusive).
    pub from: Timestamp,
    /// To (inclusive).
    pub to: Timestamp,
    /// Implied speed above which a pair is flagged, km/h (default 250).
    pub max_speed_kmh: f64,
    /// Reads closer than this are never flagged, metres (default 2000).
    pub min_distance_m: f64,
    /// Only this VRM.
    pub vrm: Option<Vrm>,
    /// Most pairs returned.
    pub limit: usize,
    /// Most reads held at once (compactly) before the scan is split into
    /// passes; a single VRM bucket above it is refused as too broad.
    pub max_reads_in_memory: usize,
}

impl CloneQuery {
    /// The rule the query applies.
    pub fn rule(&self) -> CloneRule {
        CloneRule {
            max_speed_kmh: self.max_speed_kmh,
            min_distance_m: self.min_distance_m,
        }
    }
}

/// Two consecutive reads of one VRM too far apart for the time between.
#[derive(Clone, Debug, PartialEq)]
pub struct ClonePair {
    /// The earlier read.
    pub first: StoredRead,
    /// The later read.
    pub second: StoredRead,
    /// Distance between them, metres.
    pub distance_m: f64,
    /// Time between them, seconds.
    pub seconds: f64,
    /// Implied speed, km/h (infinite when `seconds` is 0).
    pub speed_kmh: f64,
}

/// The answer to a clone analysis.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CloneResult {
    /// Flagged pairs by VRM then first read time, at most `limit`.
    pub pairs: Vec<ClonePair>,
    /// Flagged pairs in all.
    pub total: usize,
    /// Reads in the window examined (each counted once).
    pub reads_examined: u64,
    /// Whether pairs were left off at the limit.
    pub truncated: bool,
    /// Scans of the window made (1 unless memory forced more).
    pub passes: u32,
}

/// A read flagged against a new one by [`clone_check`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CloneNeighbour {
    /// The stored read.
    pub other: ReadRef,
    /// Distance between the two, metres.
    pub distance_m: f64,
    /// Time between the two, seconds (never negative).
    pub seconds: f64,
    /// Implied speed, km/h (infinite when `seconds` is 0).
    pub speed_kmh: f64,
}

/// A read, compactly: what the rule needs and where the record lives.
#[derive(Clone, Copy, Debug)]
struct Point {
    ms: i64,
    seq: u64,
    position: GeoPoint,
}

impl Point {
    fn of(r: &StoredRead) -> Self {
        Self {
            ms: r.read.observed_at.millis(),
            seq: r.seq,
            position: r.position,
        }
    }

    fn read_ref(&self) -> ReadRef {
        ReadRef {
            day: Timestamp::from_millis(self.ms).day(),
            seq: self.seq,
        }
    }
}

/// A flagged consecutive pair, before its records are fetched.
struct Flagged {
    vrm: Vrm,
    first: Point,
    second: Point,
    distance_m: f64,
    seconds: f64,
    speed_kmh: f64,
}

/// Tests the consecutive reads of one VRM (sorted here) into `out`.
fn test_track(vrm: &Vrm, track: &mut [Point], rule: &CloneRule, out: &mut Vec<Flagged>) {
    track.sort_unstable_by_key(|p| (p.ms, p.seq));
    for w in track.windows(2) {
        let (a, b) = (w[0], w[1]);
        let seconds = (b.ms - a.ms) as f64 / 1000.0;
        if let Some((distance_m, speed_kmh)) = rule.flags_between(a.position, b.position, seconds) {
            out.push(Flagged {
                vrm: vrm.clone(),
                first: a,
                second: b,
                distance_m,
                seconds,
                speed_kmh,
            });
        }
    }
}

/// Buckets VRMs are hashed into for passes.
const BUCKETS: usize = 1 << 16;

/// A VRM's bucket: FNV-1a with a final avalanche (MurmurHash3's `fmix64`,
/// so VRMs differing in their last character spread over the top bits),
/// stable across runs and builds.
fn bucket(vrm: &Vrm) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in vrm.as_str().bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    (h >> 48) as usize
}

/// Contiguous bucket ranges holding at most `max` reads each.
fn plan(counts: &[u64], max: usize) -> Result<Vec<Range<usize>>, QueryError> {
    let max = max as u64;
    let mut out = Vec::new();
    let (mut start, mut held) = (0, 0u64);
    for (b, &c) in counts.iter().enumerate() {
        if c > max {
            return Err(too_many_in_one_bucket(max));
        }
        if held + c > max {
            out.push(start..b);
            (start, held) = (b, 0);
        }
        held += c;
    }
    out.push(start..counts.len());
    Ok(out)
}

fn too_many_in_one_bucket(max: u64) -> QueryError {
    QueryError::TooBroad(format!(
        "more than {max} reads of one group of VRMs in the window: narrow the window"
    ))
}

/// Cloned plates in a window: see the module documentation.
pub fn clones(store: &dyn Store, q: &CloneQuery) -> Result<CloneResult, QueryError> {
    if q.from > q.to {
        return Err(QueryError::Invalid(format!(
            "the window is inverted: from {} is after to {}",
            q.from, q.to
        )));
    }
    let rule = q.rule();
    rule.validate()?;
    if q.max_reads_in_memory == 0 {
        return Err(QueryError::Invalid(
            "max_reads_in_memory must be at least 1".into(),
        ));
    }
    let max = q.max_reads_in_memory;
    let mut kept: Vec<Flagged> = Vec::new();
    let mut total = 0usize;
    let mut keep = |mut found: Vec<Flagged>| {
        total += found.len();
        kept.append(&mut found);
        kept.sort_by(|a, b| {
            (&a.vrm, a.first.ms, a.first.seq).cmp(&(&b.vrm, b.first.ms, b.first.seq))
        });
        kept.truncate(q.limit);
    };
    let mut reads_examined = 0u64;
    let mut passes = 0u32;

    if let Some(vrm) = &q.vrm {
        passes = 1;
        let mut track = Vec::new();
        store.vrm_timeline(vrm, q.from, q.to, &mut |r| {
            track.push(Point::of(&r));
            if track.len() > max {
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        })?;
        if track.len() > max {
            return Err(QueryError::TooBroad(format!(
                "the VRM has more than {max} reads in the window: narrow the window"
            )));
        }
        reads_examined = track.len() as u64;
        let mut found = Vec::new();
        test_track(vrm, &mut track, &rule, &mut found);
        keep(found);
    } else {
        let mut counts: Vec<u64> = Vec::new();
        let mut jobs: Vec<Range<usize>> = std::iter::once(0..BUCKETS).collect();
        let mut first = true;
        while let Some(range) = jobs.pop() {
            passes += 1;
            if first {
                counts = vec![0; BUCKETS];
            }
            let mut tracks: HashMap<Vrm, Vec<Point>> = HashMap::new();
            let mut held = 0usize;
            let mut overflow = false;
            store.scan_days(q.from, q.to, &mut |r| {
                let t = r.read.observed_at;
                if t < q.from || t > q.to {
                    return ControlFlow::Continue(());
                }
                let b = bucket(&r.read.vrm);
                if first {
                    counts[b] += 1;
                    reads_examined += 1;
                }
                if overflow || !range.contains(&b) {
                    return ControlFlow::Continue(());
                }
                held += 1;
                if held > max {
                    overflow = true;
                    tracks = HashMap::new();
                    // The first pass goes on counting to plan the others.
                    return if first {
                        ControlFlow::Continue(())
                    } else {
                        ControlFlow::Break(())
                    };
                }
                let p = Point::of(&r);
                tracks.entry(r.read.vrm).or_default().push(p);
                ControlFlow::Continue(())
            })?;
            if overflow {
                if first {
                    jobs = plan(&counts, max)?;
                    counts = Vec::new();
                } else if range.len() <= 1 {
                    return Err(too_many_in_one_bucket(max as u64));
                } else {
                    let mid = range.start + range.len() / 2;
                    jobs.push(range.start..mid);
                    jobs.push(mid..range.end);
                }
                first = false;
                continue;
            }
            first = false;
            let mut found = Vec::new();
            for (vrm, mut track) in tracks {
                test_track(&vrm, &mut track, &rule, &mut found);
            }
            keep(found);
        }
    }

    let refs: Vec<ReadRef> = kept
        .iter()
        .flat_map(|f| [f.first.read_ref(), f.second.read_ref()])
        .collect();
    let mut fetched = store.get_reads(&refs)?.into_iter();
    let mut next = || {
        fetched.next().ok_or_else(|| {
            QueryError::Store(StoreError::Corrupt {
                what: "reads",
                detail: "fewer records than references fetched".into(),
            })
        })
    };
    let mut pairs = Vec::with_capacity(kept.len());
    for f in &kept {
        pairs.push(ClonePair {
            first: next()?,
            second: next()?,
            distance_m: f.distance_m,
            seconds: f.seconds,
            speed_kmh: f.speed_kmh,
        });
    }
    Ok(CloneResult {
        truncated: total > pairs.len(),
        pairs,
        total,
        reads_examined,
        passes,
    })
}

/// The live check of a new read of `vrm` taken at `observed_at` and
/// `position`: its nearest earlier and nearest later stored reads of the
/// same VRM within `look_back_ms` either side, tested with `rule`; the
/// flagged ones are returned, earlier first.
///
/// The neighbours are those of the retrospective order (time, sequence
/// number) with the new read placed after stored reads of the same time
/// (it gets the next sequence number): the earlier one is the last stored
/// read at or before `observed_at`, the later one the first after it. Both
/// come from the VRM index alone (one lookup, no record fetched). A stored
/// copy of the read itself (a re-push) is its own nearest neighbour, at
/// distance 0, so it flags nothing; the store drops a duplicate's alerts
/// anyway.
pub fn clone_check(
    store: &dyn Store,
    vrm: &Vrm,
    observed_at: Timestamp,
    position: GeoPoint,
    rule: &CloneRule,
    look_back_ms: i64,
) -> Result<Vec<CloneNeighbour>, QueryError> {
    Ok(clone_checks(
        store,
        &[(vrm.clone(), observed_at, position)],
        rule,
        look_back_ms,
    )?
    .pop()
    .unwrap_or_default())
}

/// [`clone_check`] for a batch of new reads `(vrm, observed_at, position)`,
/// with one index iterator for the whole batch: the flagged neighbours of
/// each read, in order.
pub fn clone_checks(
    store: &dyn Store,
    reads: &[(Vrm, Timestamp, GeoPoint)],
    rule: &CloneRule,
    look_back_ms: i64,
) -> Result<Vec<Vec<CloneNeighbour>>, QueryError> {
    rule.validate()?;
    if look_back_ms < 0 {
        return Err(QueryError::Invalid(format!(
            "look_back_ms {look_back_ms} is negative"
        )));
    }
    let probes: Vec<(Vrm, Timestamp)> = reads.iter().map(|(v, t, _)| (v.clone(), *t)).collect();
    let neighbours = store.vrm_neighbours(&probes, look_back_ms)?;
    Ok(flag_neighbours(reads, neighbours, rule))
}

/// The second half of [`clone_checks`], for callers that found the nearest
/// reads elsewhere (the node keeps recent ones in memory): for each read
/// `(vrm, observed_at, position)`, which of its nearest earlier and later
/// reads of the same VRM (as [`Store::vrm_neighbours`] gives them) the
/// rule flags. `rule` must be valid ([`CloneRule::validate`]).
pub fn flag_neighbours(
    reads: &[(Vrm, Timestamp, GeoPoint)],
    neighbours: Vec<VrmNeighbours>,
    rule: &CloneRule,
) -> Vec<Vec<CloneNeighbour>> {
    reads
        .iter()
        .zip(neighbours)
        .map(|((_, observed_at, position), pair)| {
            pair.into_iter()
                .flatten()
                .filter_map(|e| {
                    let seconds = (e.observed_at.millis() - observed_at.millis()).unsigned_abs()
                        as f64
                        / 1000.0;
                    rule.flags_between(*position, e.position, seconds).map(
                        |(distance_m, speed_kmh)| CloneNeighbour {
                            other: e.read_ref(),
                            distance_m,
                            seconds,
                            speed_kmh,
                        },
                    )
                })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_flags_far_and_fast_only() {
        let rule = CloneRule::default();
        // 200 km in 30 minutes: 400 km/h.
        assert_eq!(rule.flags(200_000.0, 1800.0), Some(400.0));
        // 200 km in 2 hours: 100 km/h.
        assert_eq!(rule.flags(200_000.0, 7200.0), None);
        // Same time, far apart.
        assert_eq!(rule.flags(5_000.0, 0.0), Some(f64::INFINITY));
        // Close together is never flagged, however fast.
        assert_eq!(rule.flags(1_999.0, 0.0), None);
        assert_eq!(rule.flags(1_999.0, 1.0), None);
        // Exactly the speed limit is allowed.
        let strict = CloneRule {
            max_speed_kmh: 360.0,
            min_distance_m: 0.0,
        };
        assert_eq!(strict.flags(3_000.0, 30.0), None);
        assert_eq!(strict.flags(3_000.0, 29.0).map(|s| s > 360.0), Some(true));
    }

    #[test]
    fn similar_vrms_spread_over_buckets() {
        let buckets: std::collections::BTreeSet<usize> = (0..1000)
            .map(|i| bucket(&Vrm::normalise(&format!("AB{i}")).unwrap_or_else(|_| unreachable!())))
            .collect();
        // 1,000 VRMs into 65,536 buckets: a handful of collisions at most.
        assert!(buckets.len() > 980, "{}", buckets.len());
    }

    #[test]
    fn plan_packs_buckets_and_refuses_a_huge_one() {
        assert_eq!(plan(&[1, 2, 3, 0, 4], 5).unwrap(), vec![0..2, 2..4, 4..5]);
        assert_eq!(plan(&[0, 0], 5).unwrap(), vec![0..2]);
        assert!(matches!(plan(&[1, 6], 5), Err(QueryError::TooBroad(_))));
    }
}
