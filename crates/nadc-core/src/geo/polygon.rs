//! Polygon search areas, from WKT (`POLYGON((lon lat, ...))`) or GeoJSON
//! (a Polygon geometry or a Feature holding one).
//!
//! Containment is decided on the microdegree coordinates with exact integer
//! arithmetic (even-odd rule; points on an edge or vertex are inside), so a
//! search and a brute-force check always agree. Edges are straight lines in
//! longitude/latitude, as in GeoJSON and most GIS tools; a polygon may not
//! span 180° of longitude. Holes are not supported (a second ring is
//! refused rather than ignored).

use super::{Circle, GeoError, GeoPoint, haversine_m};

/// Most vertices accepted.
pub const MAX_VERTICES: usize = 10_000;

/// A simple polygon (one outer ring).
#[derive(Clone, Debug, PartialEq)]
pub struct Polygon {
    ring: Vec<GeoPoint>,
}

fn bad(msg: impl Into<String>) -> GeoError {
    GeoError::BadPolygon(msg.into())
}

impl Polygon {
    /// A polygon from its ring (the closing vertex may be repeated or not).
    pub fn new(mut ring: Vec<GeoPoint>) -> Result<Self, GeoError> {
        // Repeated vertices first, then the closing vertex (however often
        // the ring was closed), so the ring is the same polygon written
        // back (found by fuzzing: a ring closed twice kept a closing vertex).
        ring.dedup();
        while ring.len() > 1 && ring.first() == ring.last() {
            ring.pop();
        }
        let mut distinct = ring.clone();
        distinct.sort_by_key(|p| (p.lat_e6(), p.lon_e6()));
        distinct.dedup();
        if distinct.len() < 3 {
            return Err(bad("a polygon needs at least 3 distinct vertices"));
        }
        if ring.len() > MAX_VERTICES {
            return Err(bad(format!(
                "{} vertices (at most {MAX_VERTICES})",
                ring.len()
            )));
        }
        let (min, max) = ring.iter().fold((i32::MAX, i32::MIN), |(lo, hi), p| {
            (lo.min(p.lon_e6()), hi.max(p.lon_e6()))
        });
        if i64::from(max) - i64::from(min) >= 180_000_000 {
            return Err(bad("a polygon may not span 180 degrees of longitude"));
        }
        Ok(Self { ring })
    }

    /// Parses WKT or GeoJSON.
    pub fn parse(text: &str) -> Result<Self, GeoError> {
        let t = text.trim();
        if t.starts_with('{') {
            Self::from_geojson(t)
        } else {
            Self::from_wkt(t)
        }
    }

    fn from_wkt(t: &str) -> Result<Self, GeoError> {
        let upper = t.to_ascii_uppercase();
        let body = upper
            .strip_prefix("POLYGON")
            .ok_or_else(|| bad("WKT must be POLYGON((lon lat, lon lat, ...))"))?
            .trim();
        let inner = body
            .strip_prefix("((")
            .and_then(|b| b.strip_suffix("))"))
            .ok_or_else(|| bad("WKT must be POLYGON((lon lat, lon lat, ...))"))?;
        if inner.contains('(') || inner.contains(')') {
            return Err(bad("polygons with holes are not supported"));
        }
        let ring = inner
            .split(',')
            .map(|pair| {
                let nums: Vec<&str> = pair.split_whitespace().collect();
                let [lon, lat] = nums.as_slice() else {
                    return Err(bad(format!(
                        "WKT vertex {:?} is not \"lon lat\"",
                        pair.trim()
                    )));
                };
                let num = |v: &str| {
                    v.parse::<f64>()
                        .map_err(|_| bad(format!("{v:?} is not a number")))
                };
                GeoPoint::new(num(lat)?, num(lon)?)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(ring)
    }

    fn from_geojson(t: &str) -> Result<Self, GeoError> {
        let v: serde_json::Value =
            serde_json::from_str(t).map_err(|e| bad(format!("GeoJSON: {e}")))?;
        let geom = if v["type"] == "Feature" {
            &v["geometry"]
        } else {
            &v
        };
        if geom["type"] != "Polygon" {
            return Err(bad(
                "GeoJSON must be a Polygon (or a Feature with a Polygon geometry)",
            ));
        }
        let rings = geom["coordinates"]
            .as_array()
            .ok_or_else(|| bad("GeoJSON Polygon has no coordinates"))?;
        if rings.len() != 1 {
            return Err(bad("polygons with holes are not supported"));
        }
        let ring = rings[0]
            .as_array()
            .ok_or_else(|| bad("GeoJSON ring is not an array"))?
            .iter()
            .map(|pt| {
                let lon = pt[0]
                    .as_f64()
                    .ok_or_else(|| bad("GeoJSON position is not [lon, lat]"))?;
                let lat = pt[1]
                    .as_f64()
                    .ok_or_else(|| bad("GeoJSON position is not [lon, lat]"))?;
                GeoPoint::new(lat, lon)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(ring)
    }

    /// The vertices.
    pub fn vertices(&self) -> &[GeoPoint] {
        &self.ring
    }

    /// Whether `p` is inside or on the boundary (exact, on microdegrees).
    pub fn contains(&self, p: GeoPoint) -> bool {
        let (px, py) = (i128::from(p.lon_e6()), i128::from(p.lat_e6()));
        let n = self.ring.len();
        let mut inside = false;
        for i in 0..n {
            let (a, b) = (self.ring[i], self.ring[(i + 1) % n]);
            let (ax, ay) = (i128::from(a.lon_e6()), i128::from(a.lat_e6()));
            let (bx, by) = (i128::from(b.lon_e6()), i128::from(b.lat_e6()));
            // On the edge: collinear and within its bounding box.
            let cross = (bx - ax) * (py - ay) - (by - ay) * (px - ax);
            if cross == 0
                && px >= ax.min(bx)
                && px <= ax.max(bx)
                && py >= ay.min(by)
                && py <= ay.max(by)
            {
                return true;
            }
            // Even-odd rule with a half-open test on y.
            if (ay > py) != (by > py) {
                // x of the edge at py, compared without division:
                // px < ax + (py - ay) * (bx - ax) / (by - ay)
                let lhs = (px - ax) * (by - ay);
                let rhs = (py - ay) * (bx - ax);
                if (by > ay && lhs < rhs) || (by < ay && lhs > rhs) {
                    inside = !inside;
                }
            }
        }
        inside
    }

    /// A circle containing every point of the polygon: centred on its
    /// bounding box, with a radius reaching every point of the box's
    /// boundary (sampled densely, plus a margin).
    pub fn bounding_circle(&self) -> Result<Circle, GeoError> {
        let (mut lat0, mut lat1, mut lon0, mut lon1) = (i32::MAX, i32::MIN, i32::MAX, i32::MIN);
        for p in &self.ring {
            lat0 = lat0.min(p.lat_e6());
            lat1 = lat1.max(p.lat_e6());
            lon0 = lon0.min(p.lon_e6());
            lon1 = lon1.max(p.lon_e6());
        }
        let mid = |a: i32, b: i32| ((i64::from(a) + i64::from(b)) / 2) as i32;
        let centre = GeoPoint::from_micro(mid(lat0, lat1), mid(lon0, lon1))?;
        let mut radius: f64 = 0.0;
        const STEPS: i64 = 64;
        for k in 0..=STEPS {
            let f =
                |a: i32, b: i32| (i64::from(a) + (i64::from(b) - i64::from(a)) * k / STEPS) as i32;
            for (lat, lon) in [
                (lat0, f(lon0, lon1)),
                (lat1, f(lon0, lon1)),
                (f(lat0, lat1), lon0),
                (f(lat0, lat1), lon1),
            ] {
                radius = radius.max(haversine_m(centre, GeoPoint::from_micro(lat, lon)?));
            }
        }
        Circle::new(centre, radius * 1.01 + 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pt(lat: f64, lon: f64) -> GeoPoint {
        GeoPoint::new(lat, lon).unwrap()
    }

    #[test]
    fn a_ring_closed_twice_is_the_same_polygon_and_two_vertices_are_refused() {
        let twice = Polygon::parse("POLYGON((0 50, 1 50, 0 51, 0 50, 0 50))").unwrap();
        let once = Polygon::parse("POLYGON((0 50, 1 50, 0 51, 0 50))").unwrap();
        assert_eq!(twice.ring, once.ring);
        assert_eq!(twice.ring.len(), 3);
        for two in [
            "POLYGON((0 50, 1 51, 0 50, 0 50))",
            "POLYGON((0 50, 1 51, 0 50, 1 51, 0 50))",
        ] {
            let e = Polygon::parse(two).unwrap_err().to_string();
            assert!(e.contains("3 distinct"), "{two}: {e}");
        }
    }

    #[test]
    fn parses_wkt_and_geojson() {
        let wkt =
            Polygon::parse("POLYGON((-2.6 51.4, -2.5 51.4, -2.5 51.5, -2.6 51.5, -2.6 51.4))")
                .unwrap();
        let gj = Polygon::parse(r#"{"type":"Polygon","coordinates":[[[-2.6,51.4],[-2.5,51.4],[-2.5,51.5],[-2.6,51.5],[-2.6,51.4]]]}"#).unwrap();
        assert_eq!(wkt, gj);
        assert_eq!(wkt.vertices().len(), 4);
        let feature = format!(
            r#"{{"type":"Feature","properties":{{}},"geometry":{}}}"#,
            r#"{"type":"Polygon","coordinates":[[[0,0],[1,0],[0,1]]]}"#
        );
        assert!(Polygon::parse(&feature).is_ok());
        for (bad, needle) in [
            ("POLYGON((0 0, 1 1))", "3 distinct"),
            ("LINESTRING(0 0, 1 1)", "POLYGON(("),
            (
                "POLYGON((0 0, 1 0, 0 1), (0.1 0.1, 0.2 0.1, 0.1 0.2))",
                "holes",
            ),
            ("POLYGON((0 0, x 0, 0 1))", "not a number"),
            ("POLYGON((0 95, 1 0, 0 1))", "latitude"),
            ("POLYGON((-100 0, 100 0, 0 1))", "180 degrees"),
            (r#"{"type":"Point","coordinates":[0,0]}"#, "Polygon"),
        ] {
            let e = Polygon::parse(bad).unwrap_err().to_string();
            assert!(e.contains(needle), "{bad}: {e}");
        }
    }

    #[test]
    fn containment_including_edges_and_concavity() {
        // A U shape: the notch is outside.
        let u = Polygon::new(vec![
            pt(0.0, 0.0),
            pt(0.0, 3.0),
            pt(3.0, 3.0),
            pt(3.0, 2.0),
            pt(1.0, 2.0),
            pt(1.0, 1.0),
            pt(3.0, 1.0),
            pt(3.0, 0.0),
        ])
        .unwrap();
        assert!(u.contains(pt(0.5, 1.5)));
        assert!(!u.contains(pt(2.0, 1.5)), "in the notch");
        assert!(u.contains(pt(2.0, 0.5)));
        assert!(u.contains(pt(0.0, 1.5)), "on an edge");
        assert!(u.contains(pt(3.0, 3.0)), "on a vertex");
        assert!(!u.contains(pt(-0.000001, 1.0)));
    }

    proptest! {
        #[test]
        fn bounding_circle_holds_every_inside_point(
            centre in (49.0f64..59.0, -8.0f64..2.0),
            radii in proptest::collection::vec(0.0005f64..0.5, 3..12),
            probes in proptest::collection::vec((0.0f64..1.0, 0.0f64..1.0), 200),
        ) {
            let n = radii.len();
            let ring: Vec<GeoPoint> = radii.iter().enumerate().map(|(i, r)| {
                let a = i as f64 / n as f64 * std::f64::consts::TAU;
                pt(centre.0 + r * a.sin(), centre.1 + r * a.cos())
            }).collect();
            let Ok(poly) = Polygon::new(ring) else { return Ok(()) };
            let circle = poly.bounding_circle().unwrap();
            let (lat0, lat1) = poly.vertices().iter().fold((90.0f64, -90.0f64), |(a, b), p| (a.min(p.lat()), b.max(p.lat())));
            let (lon0, lon1) = poly.vertices().iter().fold((180.0f64, -180.0f64), |(a, b), p| (a.min(p.lon()), b.max(p.lon())));
            for (u, v) in probes {
                let p = pt(lat0 + (lat1 - lat0) * u, lon0 + (lon1 - lon0) * v);
                if poly.contains(p) {
                    prop_assert!(circle.contains(p));
                }
            }
            for v in poly.vertices() {
                prop_assert!(poly.contains(*v) && circle.contains(*v));
            }
        }
    }
}
