//! Structured searches and analyses (convoys, cloned plates) over a
//! [`Store`].
//!
//! Searches visit matching reads in result order and keep a
//! [`ResultSummary`]: the rows, which forces' data appears (the owning
//! agencies a disclosure officer must consult) and which cameras were
//! touched. Nothing here names the storage engine.
#![deny(missing_docs, unsafe_code)]

pub mod alibi;
pub mod camera_health;
pub mod clones;
pub mod convoy;
pub mod geo;
pub mod hotspots;
pub mod pattern;
pub mod profile;
pub mod sites;
pub mod vehicle;
pub mod vrm;

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;

use nadc_core::{ForceId, StoredRead, Timestamp, Vrm};
use nadc_store::{Store, StoreError};

pub use clones::{
    CloneNeighbour, ClonePair, CloneQuery, CloneResult, CloneRule, clone_check, clone_checks,
    clones, flag_neighbours,
};
pub use convoy::{Companion, ConvoyPair, ConvoyQuery, ConvoyResult, convoy};
pub use geo::{
    Area, AreaMatch, GeoQuery, GeoResult, GeoRow, GeoTotals, Shape, VrmSummary, geo_search,
    geo_search_filtered, geo_search_stream,
};
pub use vehicle::{Details, VehicleQuery, vehicle_search, vehicle_search_stream};
pub use vrm::{VrmHit, VrmQuery, VrmResult, VrmRow, VrmTotals, vrm_search, vrm_search_stream};

/// Why a search could not run.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// The request is malformed.
    #[error("{0}")]
    Invalid(String),
    /// The search would examine more than the node allows.
    #[error("search too broad: {0}")]
    TooBroad(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a search returned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResultSummary {
    /// Rows returned.
    pub rows: u64,
    /// Rows per owning force.
    pub forces: BTreeMap<ForceId, u64>,
    /// Distinct cameras in the rows, by owning force (see
    /// [`camera_count`](Self::camera_count)).
    pub cameras: BTreeMap<ForceId, BTreeSet<String>>,
    /// Whether the result stopped at the limit with more rows left.
    pub truncated: bool,
}

impl ResultSummary {
    /// Counts one row.
    pub fn add(&mut self, r: &StoredRead) {
        self.rows += 1;
        // Looked up by reference first: a copy of a name only when it is
        // new (this runs once per row of an answer).
        match self.forces.get_mut(&r.force) {
            Some(n) => *n += 1,
            None => {
                self.forces.insert(r.force.clone(), 1);
            }
        }
        match self.cameras.get_mut(&r.force) {
            Some(ids) => {
                if !ids.contains(&r.read.camera_id) {
                    ids.insert(r.read.camera_id.clone());
                }
            }
            None => {
                self.cameras
                    .insert(r.force.clone(), BTreeSet::from([r.read.camera_id.clone()]));
            }
        }
    }

    /// Distinct cameras in the rows.
    pub fn camera_count(&self) -> usize {
        self.cameras.values().map(BTreeSet::len).sum()
    }
}

/// The timeline of `vrm` in `from..=to`: its reads in capture-time order,
/// at most `limit` of them passed to `emit` (which may stop early). Returns
/// the summary of the rows emitted and the number of matching reads in all.
pub fn timeline(
    store: &dyn Store,
    vrm: &Vrm,
    from: Timestamp,
    to: Timestamp,
    limit: usize,
    emit: &mut dyn FnMut(StoredRead) -> ControlFlow<()>,
) -> Result<(ResultSummary, u64), StoreError> {
    let mut summary = ResultSummary::default();
    let mut total = 0u64;
    store.vrm_timeline(vrm, from, to, &mut |read| {
        total += 1;
        if summary.rows as usize >= limit {
            // Past the limit: count, to report the total.
            summary.truncated = true;
            return ControlFlow::Continue(());
        }
        summary.add(&read);
        emit(read)
    })?;
    Ok((summary, total))
}

/// A camera search: what one or more cameras read in a window.
#[derive(Clone, Debug)]
pub struct CameraQuery {
    /// Cameras by owning force and source id.
    pub cameras: Vec<(ForceId, String)>,
    /// From (inclusive).
    pub from: Timestamp,
    /// To (inclusive).
    pub to: Timestamp,
    /// Most rows returned.
    pub limit: usize,
    /// Rows of the ranked result to skip first (paging).
    pub offset: usize,
    /// Most reads examined before the search is refused as too broad.
    pub max_candidates: usize,
}

/// Reads of the cameras in the window, in capture-time order (ties by
/// sequence number), at most `limit`, with the summary and the total count.
pub fn camera_search(
    store: &dyn Store,
    q: &CameraQuery,
) -> Result<(Vec<StoredRead>, ResultSummary, u64), QueryError> {
    if q.from > q.to {
        return Err(QueryError::Invalid(format!(
            "the window is inverted: from {} is after to {}",
            q.from, q.to
        )));
    }
    let mut reads = Vec::new();
    for (force, camera) in &q.cameras {
        let mut too_many = false;
        store.camera_reads(force, camera, q.from, q.to, &mut |r| {
            reads.push(r);
            if reads.len() > q.max_candidates {
                too_many = true;
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        })?;
        if too_many {
            return Err(QueryError::TooBroad(format!(
                "more than {} reads at these cameras in the window: narrow the window",
                q.max_candidates
            )));
        }
    }
    reads.sort_by_key(|r| (r.read.observed_at, r.seq));
    reads.dedup_by_key(|r| r.seq);
    Ok(finish(reads, q.offset, q.limit))
}

/// Cuts the page `offset..offset + limit` from time-ordered reads and
/// summarises what is returned: `(rows, summary, total before paging)`.
pub(crate) fn finish(
    reads: Vec<StoredRead>,
    offset: usize,
    limit: usize,
) -> (Vec<StoredRead>, ResultSummary, u64) {
    let total = reads.len() as u64;
    let (reads, truncated) = page(reads, offset, limit);
    let mut summary = ResultSummary {
        truncated,
        ..Default::default()
    };
    for r in &reads {
        summary.add(r);
    }
    (reads, summary, total)
}

/// The page `offset..offset + limit` of `rows`, and whether rows follow it.
pub(crate) fn page<T>(rows: Vec<T>, offset: usize, limit: usize) -> (Vec<T>, bool) {
    let more = rows.len() > offset.saturating_add(limit);
    (rows.into_iter().skip(offset).take(limit).collect(), more)
}
