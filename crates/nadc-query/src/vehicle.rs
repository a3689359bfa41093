//! Vehicle-details search: make, model and colour (any combination,
//! case-insensitive), within a window, optionally restricted to areas as in
//! a geographic search.
//!
//! With areas, the geographic search finds the candidates and the details
//! filter them (before ALL and paging). Without areas, the reads of the
//! window are scanned a day at a time (the window is capped by the node);
//! an index on details is future work.

use std::ops::ControlFlow;

use nadc_core::{StoredRead, Timestamp};
use nadc_store::Store;

use crate::geo::{AreaMatch, GeoQuery, GeoRow, geo_search_filtered};
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

/// Runs a vehicle-details search, passing reads to `emit` in capture-time
/// order as they are found (a day at a time without areas; as the
/// geographic search streams them with areas, each naming the areas it
/// falls in). Returns the summary of the rows emitted and the number
/// matching in all.
pub fn vehicle_search_stream(
    store: &dyn Store,
    q: &VehicleQuery,
    emit: &mut dyn FnMut(GeoRow) -> ControlFlow<()>,
) -> Result<(ResultSummary, u64), QueryError> {
    let details = q.details.normalised();
    if details.is_empty() {
        return Err(QueryError::Invalid(
            "give at least one of make, model or colour".into(),
        ));
    }
    if !q.areas.is_empty() {
        let geo = GeoQuery {
            areas: q.areas.clone(),
            matching: q.matching,
            limit: q.limit,
            offset: q.offset,
            max_candidates: q.max_candidates,
        };
        let totals =
            geo_search_filtered(store, &geo, &|r| details.matches(r), &mut |row| emit(row))?;
        return Ok((totals.summary, totals.total_rows));
    }
    if q.from > q.to {
        return Err(QueryError::Invalid(format!(
            "the window is inverted: from {} is after to {}",
            q.from, q.to
        )));
    }
    let mut summary = ResultSummary::default();
    let (mut total, mut emitted, mut stopped) = (0u64, 0usize, false);
    for day in q.from.day()..=q.to.day() {
        let day_start = Timestamp::from_day_ms(day, 0);
        let (lo, hi) = (
            q.from.max(day_start),
            q.to.min(day_start.plus_millis(nadc_core::time::MS_PER_DAY - 1)),
        );
        let mut found = Vec::new();
        let mut examined = 0usize;
        store.scan_days(lo, hi, &mut |r| {
            examined += 1;
            if examined > q.max_candidates {
                return ControlFlow::Break(());
            }
            let t = r.read.observed_at;
            if lo <= t && t <= hi && details.matches(&r) {
                found.push(r);
            }
            ControlFlow::Continue(())
        })?;
        if examined > q.max_candidates {
            return Err(QueryError::TooBroad(format!(
                "more than {} reads in one day of the window: add areas",
                q.max_candidates
            )));
        }
        found.sort_by_key(|r| (r.read.observed_at, r.seq));
        for r in found {
            total += 1;
            if total as usize <= q.offset || stopped {
                continue;
            }
            if emitted < q.limit {
                summary.add(&r);
                emitted += 1;
                stopped = emit(GeoRow {
                    read: r,
                    areas: Vec::new(),
                })
                .is_break();
            } else {
                summary.truncated = true;
            }
        }
    }
    Ok((summary, total))
}

/// Runs a vehicle-details search and collects its rows: `(rows, summary,
/// total)`.
pub fn vehicle_search(
    store: &dyn Store,
    q: &VehicleQuery,
) -> Result<(Vec<StoredRead>, ResultSummary, u64), QueryError> {
    let mut rows = Vec::new();
    let (summary, total) = vehicle_search_stream(store, q, &mut |r| {
        rows.push(r.read);
        ControlFlow::Continue(())
    })?;
    Ok((rows, summary, total))
}
