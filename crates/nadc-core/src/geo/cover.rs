//! Circle covers: the H3 cell ranges a geographic search scans.
//!
//! The geographic index is keyed by the resolution-10 cell
//! ([`INDEX_RESOLUTION`]) of each read, as a `u64`. A search for a circle
//! scans a few key ranges of cell ids and filters the reads it finds exactly
//! with haversine, so a cover may hold extra cells but must never miss one.
//!
//! # Algorithm
//!
//! 1. **Top-down refinement.** Start from the 122 base cells and walk down
//!    the H3 hierarchy one resolution at a time. Each cell `C` is assessed by
//!    the great-circle distance `d` from the circle's centre to `C`'s centre
//!    and by `reach(C)`, an upper bound on how far any point of any
//!    resolution-10 descendant of `C` can lie from `C`'s centre:
//!    * `d > radius + reach(C)`: no descendant can hold a point of the
//!      circle, so `C` is dropped;
//!    * `d + reach(C) <= radius`: every descendant lies inside the circle, so
//!      `C` is kept whole and not refined;
//!    * otherwise `C` straddles the edge and its children are assessed at the
//!      next resolution (down to resolution 10, where straddling cells are
//!      kept).
//!
//!    Refinement stops early, keeping the remaining straddling cells whole,
//!    once `MAX_EVALUATIONS` (4,000) cells have been assessed, so a 1,000 km
//!    circle costs little more than a 5 km one; by then straddling cells are
//!    small enough that the range budget (step 3), not their size, limits
//!    tightness. The result is a mixed-resolution cover: coarse cells
//!    inside, fine cells along the edge.
//! 2. **Cells to ranges.** All resolution-10 descendants of a cell form one
//!    contiguous interval of ids (the digits below the cell's resolution run
//!    from all-0 to all-6, the unused digits stay 7), so each cover cell is
//!    one [`CellRange`]. The ranges are sorted and merged when they overlap or
//!    when no valid resolution-10 cell id lies between them (H3 ids have
//!    holes: a cell's last descendant and the next cell's first descendant
//!    are never numerically adjacent).
//! 3. **Range budget.** If more than `max_ranges` ranges remain, the
//!    `max_ranges - 1` largest gaps (counted in valid resolution-10 cells)
//!    are kept open and the others are filled. Given the fine cover, this is
//!    the set of at most `max_ranges` ranges that scans the fewest cells.
//!
//! # Why it is exact
//!
//! Let `p` be a point of the circle, `X` its resolution-10 cell and `A` any
//! ancestor of `X` (or `X` itself). `p` lies in a resolution-10 descendant of
//! `A`, so `dist(A's centre, p) <= reach(A)`, and by the triangle inequality
//! `dist(centre, A's centre) <= radius + reach(A)`: no ancestor of `X` is
//! ever dropped. Because the walk is top-down, some ancestor of `X` (or `X`)
//! ends in the cover, its range contains `X`, and merging or filling gaps
//! only grows ranges.
//!
//! `reach` is computed from each cell's actual boundary. Let `R(C)` be the
//! largest great-circle distance from `C`'s centre to a vertex of its boundary
//! (H3 cell edges are great-circle arcs, so no point of the cell lies
//! farther). For a resolution-10 cell, `reach = R + SLACK_M`. Coarser cells
//! are not exactly hierarchical: children overflow their parent a little,
//! each level by a shrinking amount (aperture 7, so a geometric series). The
//! planar hexagon geometry bounds the total overflow at about 1.05 `R(C)`,
//! and an exhaustive branch-and-bound over the resolution-10 descendants of
//! hundreds to thousands of cells at each resolution 0-9 (random global,
//! Great Britain, pentagons and their neighbours) found at most 1.065 `R(C)`. The cover uses
//! `reach = 1.5 R(C) + SLACK_M` (`DESCENDANT_REACH_FACTOR`), which leaves
//! over 40% headroom; a test re-checks the headroom. `SLACK_M` absorbs
//! floating-point error and the microdegree rounding of stored points.

use std::sync::OnceLock;

use h3o::{CellIndex, LatLng, Resolution};

use super::{CellRange, Circle, EARTH_RADIUS_M, INDEX_RESOLUTION, SPHERE_ERROR};

/// How many ranges a cover aims to stay within by default.
pub const DEFAULT_MAX_RANGES: usize = 64;

/// How far a cell coarser than the index resolution can reach, as a multiple
/// of its own centre-to-vertex radius (measured worst case: 1.065).
const DESCENDANT_REACH_FACTOR: f64 = 1.5;

/// Metres added to every reach, absorbing floating-point error.
const SLACK_M: f64 = 1.0;

/// How many cells the refinement may assess before it stops refining.
const MAX_EVALUATIONS: usize = 4_000;

/// Bit offset of the resolution field in an H3 index.
const RESOLUTION_OFFSET: u32 = 52;

/// Width in bits of one direction digit in an H3 index.
const DIGIT_BITS: u32 = 3;

/// Every direction digit set to 6 (the largest valid digit).
const ALL_SIXES: u64 = 0o666_666_666_666_666;

/// Covers `circle` with sorted, non-overlapping, merged ranges of index cells
/// (resolution 10, as `u64`).
///
/// Every point `p` with `circle.contains(p)` has `p.index_cell()` in one of
/// the ranges; the ranges may hold extra cells, which the caller filters out.
/// Two returned ranges never overlap and always have at least one valid index
/// cell between them. At most `max(max_ranges, 1)` ranges are returned.
pub fn cover_circle(circle: &Circle, max_ranges: usize) -> Vec<CellRange> {
    let mut ranges: Vec<CellRange> = cover_cells(circle).into_iter().map(cell_range).collect();
    ranges.sort_unstable();
    let merged = merge_touching(ranges);
    limit_ranges(merged, max_ranges.max(1))
}

/// Where a cell stands relative to the circle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fit {
    /// Every descendant lies inside the circle.
    Inside,
    /// Some descendant may lie inside and some outside.
    Straddles,
}

/// A cell that may hold points of the circle.
#[derive(Clone, Copy, Debug)]
struct Candidate {
    cell: CellIndex,
    fit: Fit,
    /// How far the cell's reach extends beyond the circle's edge, in metres.
    overhang_m: f64,
}

/// The circle in the form the refinement works with.
struct Target {
    centre: LatLng,
    radius_m: f64,
}

impl Target {
    /// Assesses `cell`: `None` if none of its descendants can meet the circle.
    fn assess(&self, cell: CellIndex) -> Option<Candidate> {
        self.assess_extent(cell, CellExtent::of(cell))
    }

    /// Assesses `cell`, whose extent is known.
    fn assess_extent(&self, cell: CellIndex, extent: CellExtent) -> Option<Candidate> {
        let centre_to_cell = distance_m(self.centre, extent.centre);
        let reach = extent.reach_m;
        if centre_to_cell > self.radius_m + reach {
            return None;
        }
        let overhang_m = centre_to_cell + reach - self.radius_m;
        let fit = if overhang_m <= 0.0 {
            Fit::Inside
        } else {
            Fit::Straddles
        };
        Some(Candidate {
            cell,
            fit,
            overhang_m,
        })
    }

    /// The children of `cell` at `res` that may meet the circle.
    fn assess_children(&self, cell: CellIndex, res: Resolution, out: &mut Vec<Candidate>) {
        out.extend(cell.children(res).filter_map(|child| self.assess(child)));
    }
}

/// The cells (of mixed resolutions, none finer than the index resolution)
/// whose resolution-10 descendants cover the circle.
fn cover_cells(circle: &Circle) -> Vec<CellIndex> {
    let centre = circle.centre();
    let Ok(centre) = LatLng::new(centre.lat(), centre.lon()) else {
        // Unreachable for a valid GeoPoint; covering the world stays exact.
        return CellIndex::base_cells().collect();
    };
    // The circle holds the points within its radius on the WGS84
    // ellipsoid; measured on the sphere (as the cover measures) they lie
    // within the radius stretched by the sphere's largest error.
    let target = Target {
        centre,
        radius_m: circle.radius_m() / (1.0 - SPHERE_ERROR),
    };

    let mut cover = Vec::new();
    let mut level: Vec<Candidate> = base_cell_extents()
        .iter()
        .filter_map(|&(cell, extent)| target.assess_extent(cell, extent))
        .collect();
    let mut budget = MAX_EVALUATIONS;
    while !level.is_empty() {
        let mut straddling = Vec::with_capacity(level.len());
        for cand in level.drain(..) {
            match cand.fit {
                Fit::Inside => cover.push(cand.cell),
                Fit::Straddles => straddling.push(cand),
            }
        }
        let Some(next_res) = straddling.first().and_then(|c| finer(c.cell.resolution())) else {
            cover.extend(straddling.iter().map(|c| c.cell));
            break;
        };
        let refined = take_affordable(&mut straddling, &mut budget);
        cover.extend(straddling[refined..].iter().map(|c| c.cell));
        for cand in &straddling[..refined] {
            target.assess_children(cand.cell, next_res, &mut level);
        }
    }
    cover
}

/// The next resolution to refine to, if `res` is coarser than the index's.
fn finer(res: Resolution) -> Option<Resolution> {
    if res < INDEX_RESOLUTION {
        res.succ()
    } else {
        None
    }
}

/// How many of `straddling` the remaining budget can refine (7 children
/// each). When not all of them, sorts the ones overhanging the circle most
/// (those whose refinement drops the most) to the front.
fn take_affordable(straddling: &mut [Candidate], budget: &mut usize) -> usize {
    let affordable = (*budget / 7).min(straddling.len());
    if affordable < straddling.len() {
        straddling.sort_unstable_by(|a, b| b.overhang_m.total_cmp(&a.overhang_m));
    }
    *budget -= affordable * 7;
    affordable
}

/// A cell's centre and reach: every point of every index-resolution
/// descendant of the cell lies within `reach_m` of `centre`.
#[derive(Clone, Copy, Debug)]
struct CellExtent {
    centre: LatLng,
    reach_m: f64,
}

impl CellExtent {
    /// Computes `cell`'s extent from its boundary.
    fn of(cell: CellIndex) -> Self {
        Self {
            centre: LatLng::from(cell),
            reach_m: reach_m(cell),
        }
    }
}

/// The 122 base cells with their extents, computed once (every cover starts
/// from them).
fn base_cell_extents() -> &'static [(CellIndex, CellExtent)] {
    static BASE: OnceLock<Vec<(CellIndex, CellExtent)>> = OnceLock::new();
    BASE.get_or_init(|| {
        CellIndex::base_cells()
            .map(|cell| (cell, CellExtent::of(cell)))
            .collect()
    })
}

/// An upper bound on the distance from `cell`'s centre to any point of any
/// of its index-resolution descendants, in metres.
fn reach_m(cell: CellIndex) -> f64 {
    let radius = vertex_radius_m(cell);
    if cell.resolution() >= INDEX_RESOLUTION {
        radius + SLACK_M
    } else {
        DESCENDANT_REACH_FACTOR * radius + SLACK_M
    }
}

/// The largest distance from `cell`'s centre to a vertex of its boundary.
fn vertex_radius_m(cell: CellIndex) -> f64 {
    let centre = LatLng::from(cell);
    cell.boundary()
        .iter()
        .map(|&v| distance_m(centre, v))
        .fold(0.0, f64::max)
}

/// Great-circle distance in metres, with the same haversine formula and
/// Earth radius as [`super::haversine_m`].
fn distance_m(a: LatLng, b: LatLng) -> f64 {
    let (lat1, lat2) = (a.lat_radians(), b.lat_radians());
    let dlat = lat2 - lat1;
    let dlon = b.lng_radians() - a.lng_radians();
    let h = (dlat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (dlon / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * h.sqrt().min(1.0).asin()
}

/// The inclusive range of index-cell ids of `cell`'s index-resolution
/// descendants: the digits below `cell`'s resolution set to all 0 (first
/// descendant) and all 6 (last descendant). A cell finer than the index
/// resolution maps to its index-resolution ancestor.
fn cell_range(cell: CellIndex) -> CellRange {
    let cell = if cell.resolution() > INDEX_RESOLUTION {
        cell.parent(INDEX_RESOLUTION).unwrap_or(cell)
    } else {
        cell
    };
    let res = u32::from(u8::from(cell.resolution()));
    let index_res = u32::from(u8::from(INDEX_RESOLUTION));
    // Digits res+1..=index_res, from the finest (lowest bits) upwards.
    let shift = (15 - index_res) * DIGIT_BITS;
    let digits_mask = ((1u64 << ((index_res - res) * DIGIT_BITS)) - 1) << shift;
    let res_mask = 0xF_u64 << RESOLUTION_OFFSET;
    let bits = (u64::from(cell) & !res_mask) | (u64::from(index_res) << RESOLUTION_OFFSET);
    let start = bits & !digits_mask;
    CellRange {
        start,
        end: start | (ALL_SIXES & digits_mask),
    }
}

/// Merges sorted ranges that overlap or have no valid index cell between
/// them.
fn merge_touching(sorted: Vec<CellRange>) -> Vec<CellRange> {
    let mut merged: Vec<CellRange> = Vec::with_capacity(sorted.len());
    for range in sorted {
        match merged.last_mut() {
            Some(last)
                if range.start <= last.end || next_index_cell(last.end) >= Some(range.start) =>
            {
                last.end = last.end.max(range.end);
            }
            _ => merged.push(range),
        }
    }
    merged
}

/// The id of the first valid index cell after `id` (which must be a valid
/// index cell), if any.
fn next_index_cell(id: u64) -> Option<u64> {
    CellIndex::try_from(id)
        .ok()
        .and_then(CellIndex::succ)
        .map(u64::from)
}

/// Reduces `ranges` (sorted, merged) to at most `max_ranges` (>= 1) by
/// filling all but the `max_ranges - 1` largest gaps.
fn limit_ranges(ranges: Vec<CellRange>, max_ranges: usize) -> Vec<CellRange> {
    if ranges.len() <= max_ranges {
        return ranges;
    }
    let mut gaps: Vec<(u64, usize)> = ranges
        .windows(2)
        .enumerate()
        .map(|(i, pair)| (cells_between(pair[0].end, pair[1].start), i))
        .collect();
    gaps.sort_unstable_by(|a, b| b.cmp(a));
    let mut keep_open = vec![false; ranges.len()];
    for &(_, i) in gaps.iter().take(max_ranges - 1) {
        keep_open[i] = true;
    }
    let mut limited: Vec<CellRange> = Vec::with_capacity(max_ranges);
    let mut open_before = true;
    for (range, open_after) in ranges.into_iter().zip(keep_open) {
        match limited.last_mut() {
            Some(last) if !open_before => last.end = range.end,
            _ => limited.push(range),
        }
        open_before = open_after;
    }
    limited
}

/// How many valid index cells lie strictly between the cells `end` and
/// `start` (`end < start`).
fn cells_between(end: u64, start: u64) -> u64 {
    match (cell_ordinal(end), cell_ordinal(start)) {
        (Some(a), Some(b)) => b.saturating_sub(a).saturating_sub(1),
        _ => start.saturating_sub(end),
    }
}

/// The position of an index cell in the id-ordered list of all index cells.
fn cell_ordinal(id: u64) -> Option<u64> {
    let cell = CellIndex::try_from(id).ok()?;
    if cell.resolution() != INDEX_RESOLUTION {
        return None;
    }
    let before = base_cell_ordinals().get(usize::from(u8::from(cell.base_cell())))?;
    Some(before + cell.child_position(Resolution::Zero)?)
}

/// For each base cell, how many index cells the base cells before it hold.
fn base_cell_ordinals() -> &'static [u64] {
    static ORDINALS: OnceLock<Vec<u64>> = OnceLock::new();
    ORDINALS.get_or_init(|| {
        CellIndex::base_cells()
            .scan(0, |before, cell| {
                let first = *before;
                *before += cell.children_count(INDEX_RESOLUTION);
                Some(first)
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {

    use proptest::prelude::*;

    use super::*;
    use crate::geo::GeoPoint;

    fn circle(lat: f64, lon: f64, radius_m: f64) -> Circle {
        Circle::new(GeoPoint::new(lat, lon).unwrap(), radius_m).unwrap()
    }

    /// Whether `cell` lies in one of the sorted `ranges`.
    fn is_covered(ranges: &[CellRange], cell: u64) -> bool {
        let i = ranges.partition_point(|r| r.end < cell);
        ranges.get(i).is_some_and(|r| r.contains(cell))
    }

    /// How many valid index cells the ranges span.
    fn covered_cells(ranges: &[CellRange]) -> u64 {
        ranges
            .iter()
            .map(|r| cell_ordinal(r.end).unwrap() - cell_ordinal(r.start).unwrap() + 1)
            .sum()
    }

    /// Asserts the ranges are sorted, disjoint, merged and within budget.
    fn assert_well_formed(ranges: &[CellRange], max_ranges: usize) {
        assert!(!ranges.is_empty());
        assert!(
            ranges.len() <= max_ranges.max(1),
            "{} ranges > {max_ranges}",
            ranges.len()
        );
        for r in ranges {
            assert!(r.start <= r.end, "{r:?}");
            assert!(CellIndex::try_from(r.start).is_ok_and(|c| c.resolution() == INDEX_RESOLUTION));
            assert!(CellIndex::try_from(r.end).is_ok_and(|c| c.resolution() == INDEX_RESOLUTION));
        }
        for pair in ranges.windows(2) {
            let next = next_index_cell(pair[0].end).unwrap();
            assert!(next < pair[1].start, "not merged: {pair:?}");
        }
    }

    /// A small deterministic generator for probe points.
    struct Rng(u64);

    impl Rng {
        fn next_u64(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn unit(&mut self) -> f64 {
            (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
        }

        fn range(&mut self, lo: f64, hi: f64) -> f64 {
            lo + (hi - lo) * self.unit()
        }

        fn micro_nudge(&mut self, max: i32) -> i32 {
            (self.next_u64() % (2 * max as u64 + 1)) as i32 - max
        }
    }

    fn nudged(p: GeoPoint, rng: &mut Rng, max: i32) -> Option<GeoPoint> {
        GeoPoint::from_micro(
            p.lat_e6() + rng.micro_nudge(max),
            p.lon_e6() + rng.micro_nudge(max),
        )
        .ok()
    }

    fn from_latlng(ll: LatLng) -> Option<GeoPoint> {
        GeoPoint::new(ll.lat(), ll.lng()).ok()
    }

    /// Vertices of `p`'s index cell and of the cells around it, nudged.
    fn vertex_probes(p: GeoPoint, rng: &mut Rng, out: &mut Vec<GeoPoint>) {
        let Ok(cell) = CellIndex::try_from(p.index_cell()) else {
            return;
        };
        for ring_cell in cell.grid_disk::<Vec<_>>(1) {
            for &v in ring_cell.boundary().iter() {
                if let Some(q) = from_latlng(v).and_then(|q| nudged(q, rng, 4)) {
                    out.push(q);
                }
            }
        }
    }

    /// About `n` probe points for `circle`: uniform in its bounding box, near
    /// its edge, and next to cell vertices near its edge and centre.
    fn probe_points(c: &Circle, seed: u64, n: usize) -> Vec<GeoPoint> {
        let mut rng = Rng(seed | 1);
        let (centre, r) = (c.centre(), c.radius_m());
        let mut points = Vec::with_capacity(n + 64);
        let dlat = (r / 111_195.0).min(90.0);
        let dlon = (dlat / centre.lat().to_radians().cos().max(0.01)).min(180.0);
        for _ in 0..n * 3 / 10 {
            let lat = (centre.lat() + rng.range(-dlat, dlat)).clamp(-90.0, 90.0);
            let lon = (centre.lon() + rng.range(-dlon, dlon) + 540.0).rem_euclid(360.0) - 180.0;
            points.extend(GeoPoint::new(lat, lon).ok());
        }
        for _ in 0..n * 3 / 10 {
            let bearing = rng.range(0.0, std::f64::consts::TAU);
            points.extend(centre.destination(r * rng.range(0.99, 1.01), bearing));
        }
        vertex_probes(centre, &mut rng, &mut points);
        while points.len() < n {
            let bearing = rng.range(0.0, std::f64::consts::TAU);
            let near_edge = centre.destination(r * rng.range(0.97, 1.0), bearing);
            if let Some(p) = near_edge {
                vertex_probes(p, &mut rng, &mut points);
            }
        }
        points
    }

    /// Asserts every probe point inside `c` has its index cell covered.
    fn assert_exact(c: &Circle, ranges: &[CellRange], points: &[GeoPoint]) {
        for &p in points {
            if c.contains(p) {
                assert!(
                    is_covered(ranges, p.index_cell()),
                    "{p:?} ({} m from centre) missed by cover of {c:?}",
                    c.centre().distance_m(p)
                );
            }
        }
    }

    fn centre_strategy() -> impl Strategy<Value = (f64, f64)> {
        prop_oneof![
            3 => (49.0..59.0f64, -8.0..2.0f64),
            1 => (-60.0..70.0f64, -180.0..180.0f64),
        ]
    }

    fn radius_strategy() -> impl Strategy<Value = f64> {
        prop_oneof![
            2 => 1.0..200.0f64,
            3 => 500.0..10_000.0f64,
            1 => 10_000.0..200_000.0f64,
            1 => 200.0..500.0f64,
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn cover_never_misses_a_point_inside(
            (lat, lon) in centre_strategy(),
            radius in radius_strategy(),
            seed in any::<u64>(),
        ) {
            let c = circle(lat, lon, radius);
            let ranges = cover_circle(&c, DEFAULT_MAX_RANGES);
            assert_well_formed(&ranges, DEFAULT_MAX_RANGES);
            assert_exact(&c, &ranges, &probe_points(&c, seed, 500));
        }

        #[test]
        fn cover_is_exact_under_small_range_budgets(
            (lat, lon) in centre_strategy(),
            radius in 1.0..20_000.0f64,
            max_ranges in 0usize..6,
            seed in any::<u64>(),
        ) {
            let c = circle(lat, lon, radius);
            let ranges = cover_circle(&c, max_ranges);
            assert_well_formed(&ranges, max_ranges);
            assert_exact(&c, &ranges, &probe_points(&c, seed, 100));
        }
    }

    #[test]
    fn tiny_circles_on_cell_vertices_cover_a_dense_grid() {
        let anchor = GeoPoint::new(51.4545, -2.5879).unwrap();
        let mut centres = Vec::new();
        for res in [Resolution::Seven, Resolution::Nine, INDEX_RESOLUTION] {
            let cell = CellIndex::try_from(anchor.cell_at(res)).unwrap();
            centres.extend(
                cell.boundary()
                    .iter()
                    .take(2)
                    .filter_map(|&v| from_latlng(v)),
            );
        }
        for centre in centres {
            for radius in [3.0, 40.0, 120.0] {
                let c = Circle::new(centre, radius).unwrap();
                let ranges = cover_circle(&c, DEFAULT_MAX_RANGES);
                let half_lat = (radius / 0.111) as i32 + 2;
                let half_lon = (f64::from(half_lat) / centre.lat().to_radians().cos()) as i32 + 2;
                let step = (half_lat / 60).max(1) as usize;
                for dlat in (-half_lat..=half_lat).step_by(step) {
                    for dlon in (-half_lon..=half_lon).step_by(step) {
                        let p =
                            GeoPoint::from_micro(centre.lat_e6() + dlat, centre.lon_e6() + dlon)
                                .unwrap();
                        if c.contains(p) {
                            assert!(is_covered(&ranges, p.index_cell()), "{p:?} missed by {c:?}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn cell_range_matches_enumerated_children() {
        let p = GeoPoint::new(53.4808, -2.2426).unwrap();
        let mut cells: Vec<CellIndex> = [7, 8, 9, 10]
            .into_iter()
            .map(|r| CellIndex::try_from(p.cell_at(Resolution::try_from(r).unwrap())).unwrap())
            .collect();
        cells.extend(Resolution::Seven.pentagons().take(2));
        cells.extend(Resolution::Nine.pentagons().take(1));
        for cell in cells {
            let children: Vec<u64> = cell.children(INDEX_RESOLUTION).map(u64::from).collect();
            let range = cell_range(cell);
            assert_eq!(range.start, *children.iter().min().unwrap(), "{cell}");
            assert_eq!(range.end, *children.iter().max().unwrap(), "{cell}");
            let in_range =
                cell_ordinal(range.end).unwrap() - cell_ordinal(range.start).unwrap() + 1;
            assert_eq!(
                in_range,
                children.len() as u64,
                "{cell}: only its children in range"
            );
        }
        // A cell finer than the index resolution maps to its ancestor.
        let fine = CellIndex::try_from(p.cell_at(Resolution::Twelve)).unwrap();
        let range = cell_range(fine);
        assert_eq!((range.start, range.end), (p.index_cell(), p.index_cell()));
    }

    #[test]
    fn descendant_reach_factor_has_headroom() {
        // The reach factor must exceed the real overflow of descendants with
        // a clear margin: check every index-resolution descendant vertex.
        let mut cells = Vec::new();
        for (lat, lon) in [
            (51.5, -0.12),
            (57.15, -2.1),
            (50.37, -4.14),
            (0.0, 0.0),
            (-33.9, 151.2),
        ] {
            let p = GeoPoint::new(lat, lon).unwrap();
            for res in [Resolution::Seven, Resolution::Eight, Resolution::Nine] {
                cells.push(CellIndex::try_from(p.cell_at(res)).unwrap());
            }
        }
        cells.extend(Resolution::Seven.pentagons().take(3));
        for cell in cells {
            let centre = LatLng::from(cell);
            let farthest = cell
                .children(INDEX_RESOLUTION)
                .flat_map(|child| child.boundary().to_vec())
                .map(|v| distance_m(centre, v))
                .fold(0.0, f64::max);
            let ratio = farthest / vertex_radius_m(cell);
            assert!(
                ratio < DESCENDANT_REACH_FACTOR / 1.3,
                "{cell}: ratio {ratio}"
            );
        }
    }

    #[test]
    fn ranges_are_merged_and_within_budget() {
        for (lat, lon) in [
            (51.4545, -2.5879),
            (55.9533, -3.1883),
            (50.0, -5.5),
            (52.2, 0.12),
        ] {
            for radius in [
                1.0, 50.0, 300.0, 1_000.0, 2_500.0, 5_000.0, 10_000.0, 20_000.0,
            ] {
                let c = circle(lat, lon, radius);
                for max_ranges in [DEFAULT_MAX_RANGES, 16, 4, 1, 0] {
                    let ranges = cover_circle(&c, max_ranges);
                    assert_well_formed(&ranges, max_ranges);
                    assert!(is_covered(&ranges, c.centre().index_cell()));
                }
            }
        }
    }

    #[test]
    fn limit_ranges_fills_the_smallest_gaps() {
        let p = GeoPoint::new(51.4545, -2.5879).unwrap();
        let parent = CellIndex::try_from(p.cell_at(Resolution::Eight)).unwrap();
        // Single cells at child positions 0, 2, 10 and 30 of one res-8 cell:
        // gaps of 1, 7 and 19 cells.
        let ids: Vec<u64> = [0, 2, 10, 30]
            .into_iter()
            .map(|i| u64::from(parent.child_at(i, INDEX_RESOLUTION).unwrap()))
            .collect();
        let single = |id: u64| CellRange { start: id, end: id };
        let ranges: Vec<CellRange> = ids.iter().map(|&id| single(id)).collect();
        let span = |a: usize, b: usize| CellRange {
            start: ids[a],
            end: ids[b],
        };
        assert_eq!(limit_ranges(ranges.clone(), 4), ranges);
        assert_eq!(
            limit_ranges(ranges.clone(), 3),
            vec![span(0, 1), ranges[2], ranges[3]]
        );
        assert_eq!(limit_ranges(ranges.clone(), 2), vec![span(0, 2), ranges[3]]);
        assert_eq!(limit_ranges(ranges, 1), vec![span(0, 3)]);
    }

    #[test]
    fn one_km_cover_is_tight() {
        for (lat, lon) in [(51.4545, -2.5879), (54.97, -1.61), (58.5, -3.1)] {
            let c = circle(lat, lon, 1_000.0);
            let ranges = cover_circle(&c, DEFAULT_MAX_RANGES);
            let cell = CellIndex::try_from(c.centre().index_cell()).unwrap();
            let circle_cells = std::f64::consts::PI * 1_000.0f64.powi(2) / cell.area_m2();
            let covered = covered_cells(&ranges) as f64;
            assert!(covered >= circle_cells * 0.9, "{covered} < {circle_cells}");
            assert!(
                covered < circle_cells * 8.0,
                "{covered} cells for {circle_cells}"
            );
        }
    }

    #[test]
    fn extreme_circles_do_not_panic_and_stay_exact() {
        let cases = [
            (90.0, 0.0, 1_000_000.0),
            (-90.0, 180.0, 50_000.0),
            (89.99, 179.99, 5_000.0),
            (0.0, 180.0, 1_000_000.0),
            (0.0, -179.999, 2_000.0),
            (-60.0, 179.5, 200_000.0),
            (51.5, -0.12, 1_000_000.0),
            (45.0, 10.0, 0.001),
        ];
        for (i, (lat, lon, radius)) in cases.into_iter().enumerate() {
            let c = circle(lat, lon, radius);
            for max_ranges in [DEFAULT_MAX_RANGES, 1] {
                let ranges = cover_circle(&c, max_ranges);
                assert_well_formed(&ranges, max_ranges);
                assert_exact(&c, &ranges, &probe_points(&c, i as u64 + 7, 300));
            }
        }
        // Every pentagon, as a centre.
        for pentagon in Resolution::Ten.pentagons() {
            let centre = from_latlng(LatLng::from(pentagon)).unwrap();
            let c = Circle::new(centre, 300.0).unwrap();
            let ranges = cover_circle(&c, DEFAULT_MAX_RANGES);
            assert_well_formed(&ranges, DEFAULT_MAX_RANGES);
            assert_exact(&c, &ranges, &probe_points(&c, 11, 200));
        }
    }
}
