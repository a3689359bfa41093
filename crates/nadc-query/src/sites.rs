//! Camera positioning: candidate sites for permanent or mobile cameras.
//!
//! The hot cells are the H3 cells with the most incidents and hits (their
//! sum, highest first). A hot cell whose centre has no camera within the
//! distance asked is a candidate site; so is each place a road link
//! crosses the edge of the hot cells (into or out of them) with no camera
//! within that distance: a vehicle using that road to reach the hot spot
//! passes uncovered. Links are walked in steps no longer than
//! [`STEP_M`], so a link that clips a hot cell between two of its vertices
//! is seen, and each crossing is placed by bisection to within a metre.

use std::collections::BTreeMap;

use nadc_core::GeoPoint;
use nadc_core::geo::haversine_m;

/// Longest step along a road link between membership tests, metres.
pub const STEP_M: f64 = 50.0;

/// Crossings nearer than this to one already found are the same site.
pub const SAME_SITE_M: f64 = 100.0;

/// Most crossings weighed: past this, the links hold far more hot-cell
/// edges than any deployment plan needs, and the rest are not looked for.
pub const MAX_CROSSINGS: usize = 2_000;

/// A camera positioning analysis.
#[derive(Clone, Debug)]
pub struct SiteQuery {
    /// The resolution of the cells.
    pub resolution: h3o::Resolution,
    /// How many of the densest cells are hot.
    pub hot_cells: usize,
    /// A site is uncovered when no camera is within this distance.
    pub min_distance_m: f64,
    /// Most sites returned.
    pub limit: usize,
}

/// What a cell holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Density {
    /// Incidents in it.
    pub incidents: u64,
    /// Hits in it.
    pub hits: u64,
}

impl Density {
    /// Its weight: incidents and hits together.
    pub fn score(self) -> u64 {
        self.incidents + self.hits
    }
}

/// Where a candidate is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SiteKind {
    /// A hot cell's centre.
    Cell,
    /// Where road link `link` crosses the edge of the hot cells.
    Crossing {
        /// The link's index.
        link: usize,
    },
}

/// A candidate site.
#[derive(Clone, Debug, PartialEq)]
pub struct Site {
    /// What kind.
    pub kind: SiteKind,
    /// The hot cell it serves.
    pub cell: u64,
    /// Where.
    pub place: GeoPoint,
    /// The hot cell's density.
    pub density: Density,
    /// The nearest camera (index into the cameras) and its distance, if any.
    pub nearest: Option<(usize, f64)>,
}

/// The cell of `p` at `res`.
pub fn cell_of(p: GeoPoint, res: h3o::Resolution) -> u64 {
    h3o::LatLng::new(p.lat(), p.lon())
        .map(|ll| u64::from(ll.to_cell(res)))
        .unwrap_or_default()
}

pub use nadc_core::geo::cell_centre as centre;

/// The hot cells: the `n` densest with anything in them, densest first
/// (ties by cell index).
pub fn hot(densities: &BTreeMap<u64, Density>, n: usize) -> Vec<(u64, Density)> {
    let mut cells: Vec<(u64, Density)> = densities
        .iter()
        .filter(|(_, d)| d.score() > 0)
        .map(|(c, d)| (*c, *d))
        .collect();
    cells.sort_by(|a, b| b.1.score().cmp(&a.1.score()).then(a.0.cmp(&b.0)));
    cells.truncate(n);
    cells
}

fn nearest(p: GeoPoint, cameras: &[GeoPoint]) -> Option<(usize, f64)> {
    cameras
        .iter()
        .enumerate()
        .map(|(i, c)| (i, c.distance_m(p)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
}

fn lerp(a: GeoPoint, b: GeoPoint, t: f64) -> GeoPoint {
    GeoPoint::new(
        a.lat() + (b.lat() - a.lat()) * t,
        a.lon() + (b.lon() - a.lon()) * t,
    )
    .unwrap_or(a)
}

/// The candidate sites: hot cells and road crossings with no camera within
/// the distance, densest first (a cell before a crossing of the same
/// density, then the furthest from a camera), at most `q.limit`.
pub fn sites(
    densities: &BTreeMap<u64, Density>,
    cameras: &[GeoPoint],
    links: &[Vec<GeoPoint>],
    q: &SiteQuery,
) -> Vec<Site> {
    let hot_cells = hot(densities, q.hot_cells);
    let is_hot: BTreeMap<u64, Density> = hot_cells.iter().copied().collect();
    let uncovered = |p: GeoPoint| {
        let n = nearest(p, cameras);
        (n.is_none_or(|(_, d)| d > q.min_distance_m), n)
    };
    let mut out = Vec::new();
    for (cell, density) in &hot_cells {
        let Some(place) = centre(*cell) else { continue };
        if let (true, n) = uncovered(place) {
            out.push(Site {
                kind: SiteKind::Cell,
                cell: *cell,
                place,
                density: *density,
                nearest: n,
            });
        }
    }
    let inside = |p: GeoPoint| is_hot.get(&cell_of(p, q.resolution)).copied();
    let mut crossings: Vec<Site> = Vec::new();
    'links: for (li, link) in links.iter().enumerate() {
        // The link walked in short steps.
        let mut points = Vec::new();
        for w in link.windows(2) {
            // Steps are spacing, not a decision: the sphere will do.
            let steps = (haversine_m(w[0], w[1]) / STEP_M).ceil().max(1.0) as usize;
            for s in 0..steps {
                points.push(lerp(w[0], w[1], s as f64 / steps as f64));
            }
        }
        if let Some(last) = link.last() {
            points.push(*last);
        }
        for w in points.windows(2) {
            if crossings.len() >= MAX_CROSSINGS {
                break 'links;
            }
            let (a, b) = (inside(w[0]), inside(w[1]));
            if a.is_some() == b.is_some() {
                continue;
            }
            // Bisect to the edge: `lo` keeps a's side.
            let (mut lo, mut hi) = (w[0], w[1]);
            while haversine_m(lo, hi) > 1.0 {
                let mid = lerp(lo, hi, 0.5);
                if inside(mid).is_some() == a.is_some() {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            let (hot_point, density) = match (a, b) {
                (Some(d), _) => (lo, d),
                (_, Some(d)) => (hi, d),
                _ => continue,
            };
            let place = lerp(lo, hi, 0.5);
            if crossings
                .iter()
                .any(|c| c.place.distance_m(place) < SAME_SITE_M)
            {
                continue;
            }
            if let (true, n) = uncovered(place) {
                crossings.push(Site {
                    kind: SiteKind::Crossing { link: li },
                    cell: cell_of(hot_point, q.resolution),
                    place,
                    density,
                    nearest: n,
                });
            }
        }
    }
    out.extend(crossings);
    let far = |s: &Site| s.nearest.map_or(f64::INFINITY, |(_, d)| d);
    out.sort_by(|a, b| {
        b.density
            .score()
            .cmp(&a.density.score())
            .then_with(|| matches!(b.kind, SiteKind::Cell).cmp(&matches!(a.kind, SiteKind::Cell)))
            .then_with(|| far(b).total_cmp(&far(a)))
            .then_with(|| a.cell.cmp(&b.cell))
    });
    out.truncate(q.limit);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(lat: f64, lon: f64) -> GeoPoint {
        GeoPoint::new(lat, lon).unwrap()
    }

    fn q() -> SiteQuery {
        SiteQuery {
            resolution: h3o::Resolution::Eight,
            hot_cells: 2,
            min_distance_m: 1_000.0,
            limit: 10,
        }
    }

    #[test]
    fn an_uncovered_hot_cell_and_the_road_into_it_are_sites() {
        let hot_place = p(51.45, -2.58);
        let warm = p(51.60, -2.40);
        let cool = p(51.70, -2.30);
        let mut d = BTreeMap::new();
        d.insert(
            cell_of(hot_place, q().resolution),
            Density {
                incidents: 5,
                hits: 2,
            },
        );
        d.insert(
            cell_of(warm, q().resolution),
            Density {
                incidents: 3,
                hits: 0,
            },
        );
        d.insert(
            cell_of(cool, q().resolution),
            Density {
                incidents: 1,
                hits: 0,
            },
        );
        // A camera covers the warm cell; none the hot one.
        let cameras = vec![warm];
        // A road from the west straight through the hot cell's centre.
        let c = centre(cell_of(hot_place, q().resolution)).unwrap();
        let road = vec![p(c.lat(), -2.62), p(c.lat(), -2.54)];
        let s = sites(&d, &cameras, &[road], &q());
        assert_eq!(s[0].kind, SiteKind::Cell);
        assert_eq!(s[0].cell, cell_of(hot_place, q().resolution));
        assert_eq!(s[0].density.score(), 7);
        // The road enters and leaves the hot cell: two crossings, each on
        // its edge (one side in, the other out, a metre apart).
        let crossings: Vec<&Site> = s
            .iter()
            .filter(|x| matches!(x.kind, SiteKind::Crossing { link: 0 }))
            .collect();
        assert_eq!(crossings.len(), 2, "{s:?}");
        let hot_cell = cell_of(hot_place, q().resolution);
        for c in crossings {
            let west = p(c.place.lat(), c.place.lon() - 0.00002);
            let east = p(c.place.lat(), c.place.lon() + 0.00002);
            assert_ne!(
                cell_of(west, q().resolution) == hot_cell,
                cell_of(east, q().resolution) == hot_cell,
                "{c:?}"
            );
        }
        // The cool cell is not hot (two hot cells asked), the warm one is
        // covered.
        assert!(s.iter().all(|x| x.cell == hot_cell));
    }
}
