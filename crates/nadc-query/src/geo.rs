//! Geographic search: vehicles seen in one or more areas, each a circle or a
//! polygon with its own time window, combined with ANY (seen in any area) or
//! ALL (seen in every area, each within that area's window).
//!
//! Plan: cover each circle (or a polygon's bounding circle) with H3 cell
//! ranges, skip-scan the geographic index per day for those ranges inside
//! the area's window, keep the entries whose exact position is in the area
//! (the WGS84 geodesic for circles, exact point-in-polygon for polygons), fetch the
//! records of the survivors, group by VRM, and apply ANY/ALL. The result is
//! exactly what a brute-force scan of every read would give (property
//! tested).

use std::collections::{BTreeSet, HashMap};
use std::ops::ControlFlow;

use nadc_core::geo::Polygon;
use nadc_core::geo::{DEFAULT_MAX_RANGES, cover_circle};
use nadc_core::{Circle, GeoPoint, StoredRead, Timestamp, Vrm};
use nadc_store::{ReadRef, Store};

use crate::{QueryError, ResultSummary};

/// The place of an area: a circle, or a polygon (scanned through its
/// bounding circle, then tested exactly).
#[derive(Clone, Debug, PartialEq)]
pub enum Shape {
    /// Centre and radius.
    Circle(Circle),
    /// A polygon and a circle containing it.
    Polygon {
        /// The polygon.
        polygon: Polygon,
        /// A circle containing every point of it.
        bounds: Circle,
    },
}

impl Shape {
    /// A polygon shape.
    pub fn polygon(polygon: Polygon) -> Result<Self, nadc_core::GeoError> {
        let bounds = polygon.bounding_circle()?;
        Ok(Shape::Polygon { polygon, bounds })
    }

    /// Whether `p` is in the shape (the exact test every search applies).
    pub fn contains(&self, p: GeoPoint) -> bool {
        match self {
            Shape::Circle(c) => c.contains(p),
            Shape::Polygon { polygon, bounds } => bounds.contains(p) && polygon.contains(p),
        }
    }

    /// A circle containing the shape: what the index is scanned for.
    pub fn scan_circle(&self) -> &Circle {
        match self {
            Shape::Circle(c) => c,
            Shape::Polygon { bounds, .. } => bounds,
        }
    }
}

/// One searched area: a place and its own time window (inclusive).
#[derive(Clone, Debug, PartialEq)]
pub struct Area {
    /// Where.
    pub shape: Shape,
    /// From (inclusive).
    pub from: Timestamp,
    /// To (inclusive).
    pub to: Timestamp,
}

impl Area {
    /// A circular area.
    pub fn circle(circle: Circle, from: Timestamp, to: Timestamp) -> Self {
        Self {
            shape: Shape::Circle(circle),
            from,
            to,
        }
    }

    /// Whether a read at `p` at `t` falls in this area.
    pub fn contains(&self, p: GeoPoint, t: Timestamp) -> bool {
        (self.from..=self.to).contains(&t) && self.shape.contains(p)
    }
}

/// How several areas combine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AreaMatch {
    /// Vehicles seen in at least one area.
    Any,
    /// Vehicles seen in every area (each within its own window).
    All,
}

/// A geographic search.
#[derive(Clone, Debug)]
pub struct GeoQuery {
    /// The areas (at least one).
    pub areas: Vec<Area>,
    /// How they combine.
    pub matching: AreaMatch,
    /// Most rows returned.
    pub limit: usize,
    /// Rows of the ranked result to skip first (paging).
    pub offset: usize,
    /// Most candidate reads examined before the search is refused as too
    /// broad (protects the node's memory).
    pub max_candidates: usize,
}

/// Per-VRM summary of a geographic result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VrmSummary {
    /// The VRM.
    pub vrm: Vrm,
    /// Indexes of the areas it was seen in.
    pub areas: BTreeSet<u32>,
    /// First capture time among its matching reads.
    pub first_seen: Timestamp,
    /// Last capture time among its matching reads.
    pub last_seen: Timestamp,
    /// Matching reads.
    pub reads: u64,
}

/// A matching read and the areas it falls in.
#[derive(Clone, Debug, PartialEq)]
pub struct GeoRow {
    /// The read.
    pub read: StoredRead,
    /// Indexes of the areas it falls in.
    pub areas: Vec<u32>,
}

/// The answer to a geographic search.
#[derive(Clone, Debug, Default)]
pub struct GeoResult {
    /// Matching reads in capture-time order (ties by sequence number): the
    /// page `offset..offset + limit`.
    pub rows: Vec<GeoRow>,
    /// Every matching VRM (over all matching reads, not only those within
    /// the limit), ordered by VRM.
    pub vrms: Vec<VrmSummary>,
    /// Counts of the rows returned.
    pub summary: ResultSummary,
    /// Matching reads in all, before the limit.
    pub total_rows: u64,
}

/// What a streamed geographic search reports after its rows.
#[derive(Clone, Debug, Default)]
pub struct GeoTotals {
    /// Every matching VRM (over all matching reads, not only the page),
    /// ordered by VRM.
    pub vrms: Vec<VrmSummary>,
    /// Counts of the rows emitted.
    pub summary: ResultSummary,
    /// Matching reads in all, before paging.
    pub total_rows: u64,
}

fn validate(q: &GeoQuery) -> Result<(), QueryError> {
    if q.areas.is_empty() {
        return Err(QueryError::Invalid(
            "a geographic search needs at least one area".into(),
        ));
    }
    for (i, a) in q.areas.iter().enumerate() {
        if a.from > a.to {
            return Err(QueryError::Invalid(format!(
                "area {}: the window is inverted (from {} is after to {})",
                i + 1,
                a.from,
                a.to
            )));
        }
    }
    Ok(())
}

/// The reads inside an area, each with the areas it falls in: held where
/// they were first pushed (a read is a few hundred bytes, so it is moved
/// as little as may be), found by their place on the node.
#[derive(Default)]
struct Hits {
    at: HashMap<ReadRef, usize>,
    /// Taken (`None`) only as rows are made of them.
    reads: Vec<Option<(StoredRead, Vec<u32>)>>,
}

impl Hits {
    fn len(&self) -> usize {
        self.reads.len()
    }
}

/// Candidate reads captured in `from..=to` and inside an area (and that
/// area's window), with the areas each falls in. The geographic index
/// holds the records, so a read is decoded where it lies, once.
fn collect_hits(
    store: &dyn Store,
    q: &GeoQuery,
    covers: &[Vec<nadc_core::CellRange>],
    from: Timestamp,
    to: Timestamp,
) -> Result<Hits, QueryError> {
    let mut hits = Hits::default();
    for (i, (area, cover)) in q.areas.iter().zip(covers).enumerate() {
        let (lo, hi) = (area.from.max(from), area.to.min(to));
        if lo > hi {
            continue;
        }
        let mut too_many = false;
        let mut failed = None;
        store.geo_scan(cover, lo, hi, &mut |hit| {
            if area.contains(hit.position, hit.observed_at) {
                match hits.at.entry(hit.read_ref()) {
                    std::collections::hash_map::Entry::Occupied(e) => {
                        if let Some((_, areas)) = &mut hits.reads[*e.get()] {
                            areas.push(i as u32)
                        }
                    }
                    std::collections::hash_map::Entry::Vacant(e) => match hit.read() {
                        Ok(read) => {
                            e.insert(hits.reads.len());
                            hits.reads.push(Some((read, vec![i as u32])));
                        }
                        Err(err) => {
                            failed = Some(err);
                            return ControlFlow::Break(());
                        }
                    },
                }
                if hits.len() > q.max_candidates {
                    too_many = true;
                    return ControlFlow::Break(());
                }
            }
            ControlFlow::Continue(())
        })?;
        if let Some(e) = failed {
            return Err(e.into());
        }
        if too_many {
            return Err(QueryError::TooBroad(format!(
                "more than {} reads fall in the areas and windows of one day: narrow the areas or windows",
                q.max_candidates
            )));
        }
    }
    Ok(hits)
}

/// The reads of `hits` as rows in capture-time order (ties by sequence):
/// a small key sorted, then each read moved once, into its row.
fn rows_of(mut hits: Hits, keep: &dyn Fn(&StoredRead) -> bool) -> Vec<GeoRow> {
    let mut order: Vec<(Timestamp, u64, usize)> = hits
        .reads
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.as_ref().map(|(read, _)| (i, read)))
        .filter(|(_, read)| keep(read))
        .map(|(i, read)| (read.read.observed_at, read.seq, i))
        .collect();
    order.sort_unstable();
    order
        .into_iter()
        .filter_map(|(_, _, i)| hits.reads[i].take())
        .map(|(read, mut areas)| {
            areas.sort_unstable();
            areas.dedup();
            GeoRow { read, areas }
        })
        .collect()
}

/// Counts, pages and summarises rows as they are emitted.
struct Emitter<'a> {
    q: &'a GeoQuery,
    /// Hashed, not ordered, while rows come (a lookup per row); ordered by
    /// VRM once at the end.
    by_vrm: HashMap<Vrm, VrmSummary>,
    summary: ResultSummary,
    total: u64,
    emitted: usize,
    stopped: bool,
}

impl Emitter<'_> {
    fn push(&mut self, row: GeoRow, emit: &mut dyn FnMut(GeoRow) -> ControlFlow<()>) {
        let t = row.read.read.observed_at;
        // Looked up by reference: the VRM is copied once per VRM, not per row.
        let s = match self.by_vrm.get_mut(&row.read.read.vrm) {
            Some(s) => s,
            None => self
                .by_vrm
                .entry(row.read.read.vrm.clone())
                .or_insert_with(|| VrmSummary {
                    vrm: row.read.read.vrm.clone(),
                    areas: BTreeSet::new(),
                    first_seen: t,
                    last_seen: t,
                    reads: 0,
                }),
        };
        s.areas.extend(row.areas.iter().copied());
        s.first_seen = s.first_seen.min(t);
        s.last_seen = s.last_seen.max(t);
        s.reads += 1;
        self.total += 1;
        if self.total as usize <= self.q.offset || self.stopped {
            return;
        }
        if self.emitted < self.q.limit {
            self.summary.add(&row.read);
            self.emitted += 1;
            if emit(row).is_break() {
                self.stopped = true;
            }
        } else {
            self.summary.truncated = true;
        }
    }
}

/// Runs a geographic search, passing rows to `emit` in capture-time order
/// as they are found. With ANY the areas are searched one UTC day at a
/// time, so memory holds one day's candidates, not the whole window; ALL
/// needs every area's candidates before any row is known to qualify.
pub fn geo_search_stream(
    store: &dyn Store,
    q: &GeoQuery,
    emit: &mut dyn FnMut(GeoRow) -> ControlFlow<()>,
) -> Result<GeoTotals, QueryError> {
    geo_search_filtered(store, q, &|_| true, emit)
}

/// [`geo_search_stream`] over only the reads `keep` accepts: ALL, paging
/// and counts see the kept reads only (the vehicle-details search).
pub fn geo_search_filtered(
    store: &dyn Store,
    q: &GeoQuery,
    keep: &dyn Fn(&StoredRead) -> bool,
    emit: &mut dyn FnMut(GeoRow) -> ControlFlow<()>,
) -> Result<GeoTotals, QueryError> {
    validate(q)?;
    let covers: Vec<Vec<nadc_core::CellRange>> = q
        .areas
        .iter()
        .map(|a| cover_circle(a.shape.scan_circle(), DEFAULT_MAX_RANGES))
        .collect();
    let mut out = Emitter {
        q,
        by_vrm: HashMap::new(),
        summary: ResultSummary::default(),
        total: 0,
        emitted: 0,
        stopped: false,
    };
    let first = q
        .areas
        .iter()
        .map(|a| a.from)
        .min()
        .unwrap_or(Timestamp::EPOCH);
    let last = q
        .areas
        .iter()
        .map(|a| a.to)
        .max()
        .unwrap_or(Timestamp::EPOCH);
    match q.matching {
        AreaMatch::Any => {
            for day in first.day()..=last.day() {
                let day_start = Timestamp::from_day_ms(day, 0);
                let day_end = day_start.plus_millis(nadc_core::time::MS_PER_DAY - 1);
                let hits =
                    collect_hits(store, q, &covers, day_start.max(first), day_end.min(last))?;
                for row in rows_of(hits, keep) {
                    out.push(row, emit);
                }
            }
        }
        AreaMatch::All => {
            let rows = rows_of(collect_hits(store, q, &covers, first, last)?, keep);
            let mut vrm_areas: HashMap<&Vrm, BTreeSet<u32>> = HashMap::new();
            for r in &rows {
                vrm_areas
                    .entry(&r.read.read.vrm)
                    .or_default()
                    .extend(r.areas.iter().copied());
            }
            let keep: std::collections::HashSet<Vrm> = vrm_areas
                .into_iter()
                .filter(|(_, a)| a.len() == q.areas.len())
                .map(|(v, _)| v.clone())
                .collect();
            for row in rows.into_iter().filter(|r| keep.contains(&r.read.read.vrm)) {
                out.push(row, emit);
            }
        }
    }
    Ok(GeoTotals {
        vrms: {
            let mut vrms: Vec<VrmSummary> = out.by_vrm.into_values().collect();
            vrms.sort_unstable_by(|a, b| a.vrm.cmp(&b.vrm));
            vrms
        },
        summary: out.summary,
        total_rows: out.total,
    })
}

/// Runs a geographic search and collects its rows.
pub fn geo_search(store: &dyn Store, q: &GeoQuery) -> Result<GeoResult, QueryError> {
    let mut rows = Vec::new();
    let totals = geo_search_stream(store, q, &mut |row| {
        rows.push(row);
        ControlFlow::Continue(())
    })?;
    Ok(GeoResult {
        rows,
        vrms: totals.vrms,
        summary: totals.summary,
        total_rows: totals.total_rows,
    })
}
