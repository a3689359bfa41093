//! Vehicle-details search: make, model and colour (any combination,
//! case-insensitive), within a window, optionally restricted to areas as in
//! a geographic search.
//!
//! With areas, the geographic search finds the candidates and the details
//! filter them. Without areas, the reads of the window's days are scanned
//! (the window is capped by the node); an index on details is future work.

use std::ops::ControlFlow;

use nadc_core::{StoredRead, Timestamp};
use nadc_store::Store;

use crate::geo::{AreaMatch, GeoQuery, geo_search};
use crate::{Area, QueryError, ResultSummary};

/// Details to match; each given one must equal the read's (ignoring case
/// and surrounding space). At least one is required.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Details {
    /// Make, e.g. "Ford".
    pub make: Option<String>,
    /// Model, e.g. "Focus".
    pub model: Option<String>,
    /// Colour, e.g. "Blue".
    pub colour: Option<String>,
}

impl Details {
    fn norm(v: &Option<String>) -> Option<String> {
        v.as_ref()
            .map(|s| s.trim().to_lowercase())
            .filter(|s| !s.is_empty())
    }

    /// The details with empty values dropped and case folded.
    pub fn normalised(&self) -> Details {
        Details {
            make: Self::norm(&self.make),
            model: Self::norm(&self.model),
            colour: Self::norm(&self.colour),
        }
    }

    /// Whether nothing is asked for.
    pub fn is_empty(&self) -> bool {
        self.make.is_none() && self.model.is_none() && self.colour.is_none()
    }

    /// Whether a read matches (call on [`Details::normalised`] details).
    pub fn matches(&self, r: &StoredRead) -> bool {
        let eq = |want: &Option<String>, have: &Option<String>| match want {
            None => true,
            Some(w) => have.as_ref().is_some_and(|h| h.trim().to_lowercase() == *w),
        };
        eq(&self.make, &r.read.make)
            && eq(&self.model, &r.read.model)
            && eq(&self.colour, &r.read.colour)
    }
}

/// A vehicle-details search.
#[derive(Clone, Debug)]
pub struct VehicleQuery {
    /// What to match.
    pub details: Details,
    /// Areas (each with its own window); if empty, `from..=to` everywhere.
    pub areas: Vec<Area>,
    /// How areas combine (ALL: the same VRM with these details in every area).
    pub matching: AreaMatch,
    /// Window when there are no areas (inclusive).
    pub from: Timestamp,
    /// Window end when there are no areas.
    pub to: Timestamp,
    /// Most rows returned.
    pub limit: usize,
    /// Rows of the ranked result to skip first (paging).
    pub offset: usize,
    /// Most candidate reads examined.
    pub max_candidates: usize,
}

/// Runs a vehicle-details search: rows in capture-time order, the summary
/// and the total before the limit.
pub fn vehicle_search(
    store: &dyn Store,
    q: &VehicleQuery,
) -> Result<(Vec<StoredRead>, ResultSummary, u64), QueryError> {
    let details = q.details.normalised();
    if details.is_empty() {
        return Err(QueryError::Invalid(
            "give at least one of make, model or colour".into(),
        ));
    }
    let mut reads: Vec<StoredRead> = if q.areas.is_empty() {
        if q.from > q.to {
            return Err(QueryError::Invalid(format!(
                "the window is inverted: from {} is after to {}",
                q.from, q.to
            )));
        }
        let mut out = Vec::new();
        let mut examined = 0usize;
        let mut too_many = false;
        store.scan_days(q.from, q.to, &mut |r| {
            examined += 1;
            if examined > q.max_candidates {
                too_many = true;
                return ControlFlow::Break(());
            }
            let t = r.read.observed_at;
            if q.from <= t && t <= q.to && details.matches(&r) {
                out.push(r);
            }
            ControlFlow::Continue(())
        })?;
        if too_many {
            return Err(QueryError::TooBroad(format!(
                "more than {} reads in the window: narrow it or add areas",
                q.max_candidates
            )));
        }
        out
    } else {
        // The geographic search with the details as a filter; for ALL, the
        // areas must be matched by reads that have the details.
        let geo = geo_search(
            store,
            &GeoQuery {
                areas: q.areas.clone(),
                matching: AreaMatch::Any,
                limit: usize::MAX,
                offset: 0,
                max_candidates: q.max_candidates,
            },
        )?;
        let rows: Vec<_> = geo
            .rows
            .into_iter()
            .filter(|r| details.matches(&r.read))
            .collect();
        let keep: Option<std::collections::BTreeSet<nadc_core::Vrm>> = match q.matching {
            AreaMatch::Any => None,
            AreaMatch::All => {
                let mut per: std::collections::BTreeMap<
                    &nadc_core::Vrm,
                    std::collections::BTreeSet<u32>,
                > = std::collections::BTreeMap::new();
                for r in &rows {
                    per.entry(&r.read.read.vrm)
                        .or_default()
                        .extend(r.areas.iter().copied());
                }
                Some(
                    per.into_iter()
                        .filter(|(_, a)| a.len() == q.areas.len())
                        .map(|(v, _)| v.clone())
                        .collect(),
                )
            }
        };
        rows.into_iter()
            .filter(|r| keep.as_ref().is_none_or(|k| k.contains(&r.read.read.vrm)))
            .map(|r| r.read)
            .collect()
    };
    reads.sort_by_key(|r| (r.read.observed_at, r.seq));
    Ok(crate::finish(reads, q.offset, q.limit))
}
