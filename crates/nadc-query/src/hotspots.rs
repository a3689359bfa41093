//! Hot spots and timing: reads or hotlist hits counted by H3 cell at a
//! chosen resolution and by hour of the week (UTC), ranked.
//!
//! The College of Policing guidance asks for "locations where the most
//! hits are seen" and "the optimum days for deploying response or
//! surveillance teams". Counts are exact: every read of the subject in the
//! window (or every hit of the force) is counted once, where it was taken.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;

use nadc_core::alert::{AlertDetail, Verification};
use nadc_core::{ForceId, StoredRead, Timestamp, Vrm};
use nadc_store::Store;

use crate::QueryError;

/// Hours in a week: the length of every by-hour-of-week count.
pub const HOURS_OF_WEEK: usize = 168;

/// What is counted.
#[derive(Clone, Debug)]
pub enum Subject {
    /// The reads of these VRMs.
    Reads(Vec<Vrm>),
    /// Every read in the window (all traffic), or only those with these
    /// vehicle details: counted, not kept (an aggregate over everyone's
    /// traffic names no subject whose reads a case should register).
    /// A full scan of the window's days.
    Traffic(crate::vehicle::Details),
    /// Hotlist hits on `force`'s lists, counted at the read that raised
    /// each; only confirmed ones if `verified`; only these VRMs if any.
    Hits {
        /// Whose lists.
        force: ForceId,
        /// Only hits verified as confirmed.
        verified: bool,
        /// Only hits on these VRMs (empty: every hit).
        vrms: BTreeSet<Vrm>,
    },
}

/// A hot-spot analysis.
#[derive(Clone, Debug)]
pub struct HotSpotQuery {
    /// What is counted.
    pub subject: Subject,
    /// Capture-time window, inclusive.
    pub from: Timestamp,
    /// End of the window.
    pub to: Timestamp,
    /// The H3 resolution of the cells.
    pub resolution: h3o::Resolution,
    /// Cells in the ranking.
    pub limit: usize,
    /// Most reads one analysis may count (beyond: too broad).
    pub max_reads: usize,
    /// Hours of the week in UTC rather than UK local time.
    pub utc: bool,
}

/// One cell's counts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CellCount {
    /// The H3 cell.
    pub cell: u64,
    /// Reads (or hits) counted in it.
    pub count: u64,
    /// Per owning force.
    pub forces: BTreeMap<ForceId, u64>,
    /// By hour of the week, UTC, Monday 00:00 first.
    pub by_hour_of_week: Vec<u64>,
    /// The cameras that took them (force, camera id).
    pub cameras: BTreeSet<(ForceId, String)>,
}

/// The result of a hot-spot analysis.
#[derive(Clone, Debug, Default)]
pub struct HotSpots {
    /// Cells by count, highest first (ties by cell index), at most `limit`.
    pub cells: Vec<CellCount>,
    /// Every counted read by hour of the week.
    pub by_hour_of_week: Vec<u64>,
    /// Everything counted.
    pub total: u64,
    /// Per owning force.
    pub forces: BTreeMap<ForceId, u64>,
    /// Cells with any count.
    pub cells_counted: u64,
    /// The reads counted (for the case register).
    pub reads: Vec<StoredRead>,
}

/// The hour of the week of `t` in UK local time (GMT, or BST in summer),
/// or in UTC: Monday 00:00–00:59 is 0.
pub fn hour_of_week_in(t: Timestamp, utc: bool) -> usize {
    hour_of_week(if utc { t } else { t.uk_local() })
}

/// The hour of the week of `t` in UTC: Monday 00:00–00:59 is 0.
pub fn hour_of_week(t: Timestamp) -> usize {
    // 1970-01-01 was a Thursday: day 0 is weekday 3 counting from Monday.
    let weekday = (t.day() as usize + 3) % 7;
    weekday * 24 + (t.ms_of_day() / 3_600_000) as usize
}

/// Runs `q` over `store`.
pub fn hot_spots(store: &dyn Store, q: &HotSpotQuery) -> Result<HotSpots, QueryError> {
    if q.from > q.to {
        return Err(QueryError::Invalid("from is after to".into()));
    }
    let reads = match &q.subject {
        Subject::Reads(vrms) => subject_reads(store, q, vrms)?,
        Subject::Hits {
            force,
            verified,
            vrms,
        } => hit_reads(store, q, force, *verified, vrms)?,
        Subject::Traffic(details) => {
            let details = details.normalised();
            let mut counter = Counter::new(q.resolution, q.utc);
            store.scan_days(q.from, q.to, &mut |r| {
                let t = r.read.observed_at;
                if t >= q.from && t <= q.to && details.matches(&r) {
                    counter.add(&r);
                }
                ControlFlow::Continue(())
            })?;
            return Ok(counter.finish(q.limit, Vec::new()));
        }
    };
    let mut counter = Counter::new(q.resolution, q.utc);
    for r in &reads {
        counter.add(r);
    }
    Ok(counter.finish(q.limit, reads))
}

fn too_many(q: &HotSpotQuery) -> QueryError {
    QueryError::TooBroad(format!(
        "more than {} reads to count; narrow the window or the subject",
        q.max_reads
    ))
}

/// Every read of `vrms` in the window, each once.
fn subject_reads(
    store: &dyn Store,
    q: &HotSpotQuery,
    vrms: &[Vrm],
) -> Result<Vec<StoredRead>, QueryError> {
    let unique: BTreeSet<&Vrm> = vrms.iter().collect();
    let mut reads = Vec::new();
    let mut over = false;
    for vrm in unique {
        store.vrm_timeline(vrm, q.from, q.to, &mut |r| {
            if reads.len() >= q.max_reads {
                over = true;
                return ControlFlow::Break(());
            }
            reads.push(r);
            ControlFlow::Continue(())
        })?;
        if over {
            return Err(too_many(q));
        }
    }
    Ok(reads)
}

/// The reads that raised `force`'s hits, taken in the window.
fn hit_reads(
    store: &dyn Store,
    q: &HotSpotQuery,
    force: &ForceId,
    verified: bool,
    vrms: &BTreeSet<Vrm>,
) -> Result<Vec<StoredRead>, QueryError> {
    let mut hits = Vec::new();
    store.alerts(0, &mut |position, alert| {
        if let AlertDetail::Hit { list, .. } | AlertDetail::RetroHit { list, .. } = &alert.detail
            && list.owner == *force
        {
            hits.push((position, alert.read));
        }
        ControlFlow::Continue(())
    })?;
    if verified {
        let positions: Vec<u64> = hits.iter().map(|(p, _)| *p).collect();
        let states = store.alert_states(&positions)?;
        hits = hits
            .into_iter()
            .zip(states)
            .filter(|(_, s)| {
                s.as_ref()
                    .is_some_and(|s| s.state == Verification::Confirmed)
            })
            .map(|(h, _)| h)
            .collect();
    }
    let mut reads = Vec::new();
    for part in hits.chunks(1024) {
        let refs: Vec<_> = part.iter().map(|(_, r)| *r).collect();
        for r in store.get_reads(&refs)? {
            let t = r.read.observed_at;
            if t < q.from || t > q.to || (!vrms.is_empty() && !vrms.contains(&r.read.vrm)) {
                continue;
            }
            if reads.len() >= q.max_reads {
                return Err(too_many(q));
            }
            reads.push(r);
        }
    }
    Ok(reads)
}

/// Counts reads by cell and hour as they come.
struct Counter {
    resolution: h3o::Resolution,
    utc: bool,
    cells: BTreeMap<u64, CellCount>,
    out: HotSpots,
}

impl Counter {
    fn new(resolution: h3o::Resolution, utc: bool) -> Self {
        Self {
            resolution,
            utc,
            cells: BTreeMap::new(),
            out: HotSpots {
                by_hour_of_week: vec![0; HOURS_OF_WEEK],
                ..HotSpots::default()
            },
        }
    }

    fn add(&mut self, r: &StoredRead) {
        let cell = r.position.cell_at(self.resolution);
        let hour = hour_of_week_in(r.read.observed_at, self.utc);
        let c = self.cells.entry(cell).or_insert_with(|| CellCount {
            cell,
            count: 0,
            forces: BTreeMap::new(),
            by_hour_of_week: vec![0; HOURS_OF_WEEK],
            cameras: BTreeSet::new(),
        });
        c.count += 1;
        *c.forces.entry(r.force.clone()).or_default() += 1;
        c.by_hour_of_week[hour] += 1;
        if !c
            .cameras
            .contains(&(r.force.clone(), r.read.camera_id.clone()))
        {
            c.cameras
                .insert((r.force.clone(), r.read.camera_id.clone()));
        }
        let out = &mut self.out;
        out.by_hour_of_week[hour] += 1;
        *out.forces.entry(r.force.clone()).or_default() += 1;
        out.total += 1;
    }

    /// The cells ranked (count, then cell), the first `limit` kept; `reads`
    /// are those counted, for the case register.
    fn finish(self, limit: usize, reads: Vec<StoredRead>) -> HotSpots {
        let mut out = self.out;
        out.cells_counted = self.cells.len() as u64;
        let mut ranked: Vec<CellCount> = self.cells.into_values().collect();
        ranked.sort_by(|a, b| b.count.cmp(&a.count).then(a.cell.cmp(&b.cell)));
        ranked.truncate(limit);
        out.cells = ranked;
        out.reads = reads;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_of_the_week_start_on_monday_in_utc() {
        // 2026-11-23 was a Monday; 2026-11-29 a Sunday.
        let t = |s: &str| Timestamp::parse_rfc3339(s).unwrap();
        assert_eq!(hour_of_week(t("2026-11-23T00:00:00Z")), 0);
        assert_eq!(hour_of_week(t("2026-11-23T13:59:59Z")), 13);
        assert_eq!(hour_of_week(t("2026-11-25T08:30:00Z")), 2 * 24 + 8);
        assert_eq!(hour_of_week(t("2026-11-29T23:00:00Z")), 167);
        assert_eq!(hour_of_week(t("1970-01-01T00:00:00Z")), 3 * 24);
    }
}
