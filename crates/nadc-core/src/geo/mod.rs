//! Geography: WGS84 points at microdegree precision, distances on the WGS84
//! ellipsoid, the H3 cell a read is indexed under, and circle covers for
//! geographic searches.
//!
//! "Within R metres" means the WGS84 geodesic distance (Karney's algorithm,
//! accurate to nanometres; what PostGIS's `geography` measures by default),
//! not a sphere's: on the sphere of mean radius a distance is off by up to
//! 0.56 %, 28 m at the edge of a 5 km search. [`Circle::contains`] decides
//! on the sphere where that cannot change the answer and computes the
//! geodesic only in the band where it can.
//!
//! Exactness rests on one rule: a point is stored, indexed and compared in
//! its microdegree form. [`GeoPoint`] holds only that form, so the cell a
//! read is indexed under, the distance a search filters on and a brute-force
//! reference all see the same coordinates.

mod cover;
mod polygon;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use cover::{DEFAULT_MAX_RANGES, cover_circle};
pub use polygon::{MAX_VERTICES, Polygon};

/// Mean Earth radius in metres (IUGG), used for haversine distances.
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// The most a haversine distance ([`haversine_m`], on the sphere of
/// [`EARTH_RADIUS_M`]) differs from the WGS84 geodesic, relative to it:
/// the ellipsoid's radii of curvature lie between 0.9944 and 1.0045 of the
/// mean radius (0.56 % and 0.45 %), so 0.7 % bounds it with room.
pub const SPHERE_ERROR: f64 = 0.007;

/// The H3 resolution reads are indexed under (res 10: mean edge ~76 m,
/// mean area ~0.015 km²). See ARCHITECTURE.md for the choice.
pub const INDEX_RESOLUTION: h3o::Resolution = h3o::Resolution::Ten;

/// The H3 resolution a node describes where its reads lie at, to its
/// peers (res 5: mean edge ~8.5 km, mean area ~250 km²): a search whose
/// areas are nowhere near a peer's coarse cells skips the peer.
pub const COARSE_RESOLUTION: h3o::Resolution = h3o::Resolution::Five;

/// The coarse cell ([`COARSE_RESOLUTION`]) an index cell lies in by
/// H3's hierarchy, or none if `index_cell` is not an H3 cell finer than
/// it: the cell whose key range ([`CellRange`]) holds the index cell's.
pub fn coarse_parent(index_cell: u64) -> Option<u64> {
    let cell = h3o::CellIndex::try_from(index_cell).ok()?;
    cell.parent(COARSE_RESOLUTION).map(u64::from)
}

/// Every coarse cell a point within `index_cell` can lie in: its coarse
/// parent's ([`coarse_parent`]) and the parent's neighbours'. H3's cells
/// do not nest exactly: a cell's descendants stick out of its outline, by
/// far less than a coarse cell is wide, so a point can lie in a neighbour
/// of its index cell's coarse parent, never further.
pub fn coarse_cells_near(index_cell: u64) -> Vec<u64> {
    let Some(parent) = coarse_parent(index_cell).and_then(|c| h3o::CellIndex::try_from(c).ok())
    else {
        return Vec::new();
    };
    parent
        .grid_disk::<Vec<_>>(1)
        .into_iter()
        .map(u64::from)
        .collect()
}

/// Why a position or area was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GeoError {
    /// Latitude not a finite number in -90..=90.
    #[error("latitude {0} is out of range (must be a finite number from -90 to 90)")]
    BadLatitude(f64),
    /// Longitude not a finite number in -180..=180.
    #[error("longitude {0} is out of range (must be a finite number from -180 to 180)")]
    BadLongitude(f64),
    /// A polygon that cannot be used.
    #[error("polygon: {0}")]
    BadPolygon(String),
    /// Radius not a finite positive number within the cap.
    #[error("radius {0} m is not allowed (must be a finite number above 0 and at most {max} m)", max = MAX_RADIUS_M)]
    BadRadius(f64),
}

/// The largest circle radius accepted, in metres (1,000 km).
pub const MAX_RADIUS_M: f64 = 1_000_000.0;

/// A WGS84 position, held as integer microdegrees (about 0.11 m).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GeoPoint {
    lat_e6: i32,
    lon_e6: i32,
}

impl GeoPoint {
    /// Validates and rounds a position given in degrees.
    pub fn new(lat: f64, lon: f64) -> Result<Self, GeoError> {
        if !lat.is_finite() || !(-90.0..=90.0).contains(&lat) {
            return Err(GeoError::BadLatitude(lat));
        }
        if !lon.is_finite() || !(-180.0..=180.0).contains(&lon) {
            return Err(GeoError::BadLongitude(lon));
        }
        // In range, so the rounded values fit an i32 (max 180_000_000).
        Ok(Self {
            lat_e6: (lat * 1e6).round() as i32,
            lon_e6: (lon * 1e6).round() as i32,
        })
    }

    /// Builds a point from stored microdegrees, validating the range.
    pub fn from_micro(lat_e6: i32, lon_e6: i32) -> Result<Self, GeoError> {
        if !(-90_000_000..=90_000_000).contains(&lat_e6) {
            return Err(GeoError::BadLatitude(f64::from(lat_e6) / 1e6));
        }
        if !(-180_000_000..=180_000_000).contains(&lon_e6) {
            return Err(GeoError::BadLongitude(f64::from(lon_e6) / 1e6));
        }
        Ok(Self { lat_e6, lon_e6 })
    }

    /// Latitude in degrees.
    pub fn lat(self) -> f64 {
        f64::from(self.lat_e6) / 1e6
    }

    /// Longitude in degrees.
    pub fn lon(self) -> f64 {
        f64::from(self.lon_e6) / 1e6
    }

    /// Latitude in microdegrees.
    pub fn lat_e6(self) -> i32 {
        self.lat_e6
    }

    /// Longitude in microdegrees.
    pub fn lon_e6(self) -> i32 {
        self.lon_e6
    }

    /// The WGS84 geodesic distance to `other` in metres ([`geodesic_m`]).
    pub fn distance_m(self, other: GeoPoint) -> f64 {
        geodesic_m(self, other)
    }

    /// Whether `other` is within `radius_m` metres (the WGS84 geodesic
    /// distance): [`within_m`].
    pub fn within_m(self, other: GeoPoint, radius_m: f64) -> bool {
        within_m(self, other, radius_m)
    }

    /// The point `dist_m` metres away along `bearing` (radians clockwise
    /// from north), on the sphere [`haversine_m`] measures on; `None` if it
    /// would not round to a valid position.
    pub fn destination(self, dist_m: f64, bearing: f64) -> Option<GeoPoint> {
        let d = dist_m / EARTH_RADIUS_M;
        let (lat1, lon1) = (self.lat().to_radians(), self.lon().to_radians());
        let lat2 = (lat1.sin() * d.cos() + lat1.cos() * d.sin() * bearing.cos()).asin();
        let lon2 =
            lon1 + (bearing.sin() * d.sin() * lat1.cos()).atan2(d.cos() - lat1.sin() * lat2.sin());
        let lon2 = (lon2.to_degrees() + 540.0).rem_euclid(360.0) - 180.0;
        GeoPoint::new(lat2.to_degrees().clamp(-90.0, 90.0), lon2).ok()
    }

    /// The H3 cell (at [`INDEX_RESOLUTION`]) this point is indexed under, as a `u64`.
    pub fn index_cell(self) -> u64 {
        self.cell_at(INDEX_RESOLUTION)
    }

    /// The H3 cell containing this point at `res`, as a `u64`.
    pub fn cell_at(self, res: h3o::Resolution) -> u64 {
        // Always valid: the constructor keeps lat/lon in range.
        match h3o::LatLng::new(self.lat(), self.lon()) {
            Ok(ll) => u64::from(ll.to_cell(res)),
            Err(_) => 0,
        }
    }
}

impl fmt::Debug for GeoPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GeoPoint({:.6}, {:.6})", self.lat(), self.lon())
    }
}

impl fmt::Display for GeoPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.6},{:.6}", self.lat(), self.lon())
    }
}

/// The WGS84 geodesic distance between two points in metres (Karney's
/// algorithm, geographiclib-rs): about a microsecond.
pub fn geodesic_m(a: GeoPoint, b: GeoPoint) -> f64 {
    use geographiclib_rs::{Geodesic, InverseGeodesic};
    static WGS84: std::sync::LazyLock<Geodesic> = std::sync::LazyLock::new(Geodesic::wgs84);
    InverseGeodesic::<f64>::inverse(&*WGS84, a.lat(), a.lon(), b.lat(), b.lon())
}

/// Whether `a` and `b` are at most `radius_m` apart on the WGS84
/// ellipsoid. The haversine distance decides where the sphere's error
/// ([`SPHERE_ERROR`]) cannot change the answer (all but a band 1.4 % of the
/// radius wide); the geodesic decides in the band.
pub fn within_m(a: GeoPoint, b: GeoPoint, radius_m: f64) -> bool {
    let h = haversine_m(a, b);
    if h * (1.0 + SPHERE_ERROR) <= radius_m {
        true
    } else if h * (1.0 - SPHERE_ERROR) > radius_m {
        false
    } else {
        geodesic_m(a, b) <= radius_m
    }
}

/// Great-circle distance between two points in metres (haversine formula,
/// on the sphere of [`EARTH_RADIUS_M`]): fast, within [`SPHERE_ERROR`] of
/// the geodesic. For bounds and estimates (covers, speeds between reads),
/// never for deciding what is inside an area.
pub fn haversine_m(a: GeoPoint, b: GeoPoint) -> f64 {
    let (lat1, lat2) = (a.lat().to_radians(), b.lat().to_radians());
    let dlat = lat2 - lat1;
    let dlon = (b.lon() - a.lon()).to_radians();
    let h = (dlat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (dlon / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * h.sqrt().min(1.0).asin()
}

/// A search circle: a centre and a radius in metres.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Circle {
    centre: GeoPoint,
    radius_m: f64,
}

impl Circle {
    /// Validates a circle (radius finite, above 0, at most [`MAX_RADIUS_M`]).
    pub fn new(centre: GeoPoint, radius_m: f64) -> Result<Self, GeoError> {
        if !radius_m.is_finite() || radius_m <= 0.0 || radius_m > MAX_RADIUS_M {
            return Err(GeoError::BadRadius(radius_m));
        }
        Ok(Self { centre, radius_m })
    }

    /// The centre.
    pub fn centre(&self) -> GeoPoint {
        self.centre
    }

    /// The radius in metres.
    pub fn radius_m(&self) -> f64 {
        self.radius_m
    }

    /// Whether `p` lies within the circle (WGS84 geodesic distance <=
    /// radius): the exact filter every geographic search applies.
    pub fn contains(&self, p: GeoPoint) -> bool {
        within_m(self.centre, p, self.radius_m)
    }
}

/// The centre of an H3 cell given as its `u64` id (`None`: not a cell).
pub fn cell_centre(cell: u64) -> Option<GeoPoint> {
    let ll = h3o::LatLng::from(h3o::CellIndex::try_from(cell).ok()?);
    GeoPoint::new(ll.lat(), ll.lng()).ok()
}

/// An inclusive range of H3 cell ids at [`INDEX_RESOLUTION`] (as `u64`),
/// scanned as one range of the geographic index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CellRange {
    /// First cell id in the range.
    pub start: u64,
    /// Last cell id in the range (inclusive).
    pub end: u64,
}

impl CellRange {
    /// Whether `cell` lies in the range.
    pub fn contains(&self, cell: u64) -> bool {
        (self.start..=self.end).contains(&cell)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Points near coarse cells' edges (where H3's cells do not nest) lie
    /// in one of the coarse cells their index cell is said to be near; and
    /// the test meets points whose coarse cell is not their index cell's
    /// coarse parent.
    #[test]
    fn a_point_lies_in_a_coarse_cell_near_its_index_cell() {
        let mut state = 0x00C0_A12Eu64;
        let mut unit = move || {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut unnested = 0;
        for _ in 0..20_000 {
            // A random coarse cell (latitudes within ±80°), a random point
            // on one of its edges, moved up to ~600 m either way.
            let ll = h3o::LatLng::new(unit() * 160.0 - 80.0, unit() * 360.0 - 180.0).unwrap();
            let cell = ll.to_cell(COARSE_RESOLUTION);
            let boundary = cell.boundary();
            let n = boundary.len();
            let i = (unit() * n as f64) as usize % n;
            let (a, b) = (boundary[i], boundary[(i + 1) % n]);
            let t = unit();
            let lat = a.lat() + t * (b.lat() - a.lat()) + (unit() - 0.5) * 0.01;
            let lon = a.lng() + t * (b.lng() - a.lng()) + (unit() - 0.5) * 0.01;
            let Ok(q) = h3o::LatLng::new(lat, lon) else {
                continue;
            };
            let coarse = q.to_cell(COARSE_RESOLUTION);
            let index = q.to_cell(INDEX_RESOLUTION);
            if index.parent(COARSE_RESOLUTION) != Some(coarse) {
                unnested += 1;
            }
            let near = coarse_cells_near(u64::from(index));
            assert!(near.contains(&u64::from(coarse)), "({lat}, {lon})");
        }
        assert!(unnested > 100, "{unnested}: the points miss the case");
    }

    #[test]
    fn points_validate_and_round() {
        let p = GeoPoint::new(51.4545, -2.5879).unwrap();
        assert_eq!((p.lat_e6(), p.lon_e6()), (51_454_500, -2_587_900));
        assert!(GeoPoint::new(90.1, 0.0).is_err());
        assert!(GeoPoint::new(0.0, -180.5).is_err());
        assert!(GeoPoint::new(f64::NAN, 0.0).is_err());
        assert!(GeoPoint::new(0.0, f64::INFINITY).is_err());
        assert!(GeoPoint::from_micro(90_000_001, 0).is_err());
    }

    #[test]
    fn haversine_known_distance() {
        // Bristol Temple Meads to London Paddington: about 171.6 km.
        let bristol = GeoPoint::new(51.4491, -2.5813).unwrap();
        let paddington = GeoPoint::new(51.5154, -0.1755).unwrap();
        let d = haversine_m(bristol, paddington);
        assert!((d - 167_200.0).abs() < 1_500.0, "{d}");
        assert_eq!(haversine_m(bristol, bristol), 0.0);
    }

    #[test]
    fn circle_validates() {
        let c = GeoPoint::new(51.0, -1.0).unwrap();
        assert!(Circle::new(c, 0.0).is_err());
        assert!(Circle::new(c, -5.0).is_err());
        assert!(Circle::new(c, f64::NAN).is_err());
        assert!(Circle::new(c, 2_000_000.0).is_err());
        assert!(Circle::new(c, 1000.0).unwrap().contains(c));
    }
}
