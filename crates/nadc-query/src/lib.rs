//! Structured searches over a [`Store`].
//!
//! Searches visit matching reads in result order and keep a
//! [`ResultSummary`]: the rows, which forces' data appears (the owning
//! agencies a disclosure officer must consult) and which cameras were
//! touched. Nothing here names the storage engine.
#![deny(missing_docs, unsafe_code)]

pub mod geo;

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;

use nadc_core::{ForceId, StoredRead, Timestamp, Vrm};
use nadc_store::{Store, StoreError};

pub use geo::{Area, AreaMatch, GeoQuery, GeoResult, GeoRow, VrmSummary, geo_search};

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
    /// Distinct cameras (owning force, camera id) in the rows.
    pub cameras: BTreeSet<(ForceId, String)>,
    /// Whether the result stopped at the limit with more rows left.
    pub truncated: bool,
}

impl ResultSummary {
    /// Counts one row.
    pub fn add(&mut self, r: &StoredRead) {
        self.rows += 1;
        *self.forces.entry(r.force.clone()).or_default() += 1;
        if !self
            .cameras
            .contains(&(r.force.clone(), r.read.camera_id.clone()))
        {
            self.cameras
                .insert((r.force.clone(), r.read.camera_id.clone()));
        }
    }
}

/// The timeline of `vrm` in `from..=to`: its reads in capture-time order,
/// at most `limit` of them, each passed to `emit` (which may stop early).
pub fn timeline(
    store: &dyn Store,
    vrm: &Vrm,
    from: Timestamp,
    to: Timestamp,
    limit: usize,
    emit: &mut dyn FnMut(StoredRead) -> ControlFlow<()>,
) -> Result<ResultSummary, StoreError> {
    let mut summary = ResultSummary::default();
    store.vrm_timeline(vrm, from, to, &mut |read| {
        if summary.rows as usize >= limit {
            summary.truncated = true;
            return ControlFlow::Break(());
        }
        summary.add(&read);
        emit(read)
    })?;
    Ok(summary)
}
