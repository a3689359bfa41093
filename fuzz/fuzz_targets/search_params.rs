//! Search parameters that nadc-core parses: polygon areas (WKT and
//! GeoJSON), circles and their H3 covers, RFC 3339 times and wildcard
//! patterns. (The CLI's relative times such as `-2h` live in nadc-cli,
//! which links RocksDB, and the node's window checks in nadc-node: not
//! fuzzed here.)
//!
//! Input: one mode byte, then:
//! - `p`: polygon text, WKT `POLYGON((lon lat, ...))` or GeoJSON;
//! - `t`: a time, e.g. `2026-11-24T08:15:00+01:00`;
//! - `w`: a wildcard pattern, e.g. `AB1?C*`;
//! - `c`: bytes decoded by `arbitrary` into a circle, a range budget and
//!   probe points.
//!
//! Properties:
//! - `Polygon::parse`: an accepted polygon has 3 to `MAX_VERTICES` vertices,
//!   no repeated consecutive vertex, spans under 180 degrees of longitude,
//!   contains its own vertices (edges and vertices are inside), and its
//!   bounding circle (unless over `MAX_RADIUS_M`, then refused) contains every vertex and every contained probe point;
//!   writing it back as WKT or GeoJSON parses to the same polygon; and
//!   containment does not depend on where the ring starts or its direction.
//! - `cover_circle`: ranges are sorted, disjoint and within budget, and the
//!   index cell of every point inside the circle is covered.
//! - `Timestamp::parse_rfc3339`: accepted times are in 1970..=9999 and
//!   survive `to_rfc3339` and day/ms-of-day splitting.
//! - `Pattern::parse`: the output parses to itself.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use nadc_core::geo::{MAX_RADIUS_M, MAX_VERTICES, Polygon, cover_circle};
use nadc_core::vrm_match::Pattern;
use nadc_core::{Circle, GeoError, GeoPoint, Timestamp};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let text = std::str::from_utf8(rest);
    match (mode, text) {
        (b'p', Ok(t)) => check_polygon(t),
        (b't', Ok(t)) => check_time(t),
        (b'w', Ok(t)) => {
            if let Ok(p) = Pattern::parse(t) {
                assert_eq!(Pattern::parse(p.as_str()).as_ref(), Ok(&p));
            }
        }
        (b'c', _) => {
            if let Ok(c) = CircleInput::arbitrary_take_rest(Unstructured::new(rest)) {
                check_cover(c);
            }
        }
        _ => {}
    }
});

fn check_polygon(text: &str) {
    let Ok(poly) = Polygon::parse(text) else {
        return;
    };
    let ring = poly.vertices();
    assert!(
        (3..=MAX_VERTICES).contains(&ring.len()),
        "{} vertices",
        ring.len()
    );
    assert!(ring.windows(2).all(|w| w[0] != w[1]), "repeated vertex");
    let (lo, hi) = ring.iter().fold((i32::MAX, i32::MIN), |(lo, hi), p| {
        (lo.min(p.lon_e6()), hi.max(p.lon_e6()))
    });
    assert!(
        i64::from(hi) - i64::from(lo) < 180_000_000,
        "spans 180 degrees"
    );

    // A polygon too large for a search circle has no bounding circle (the
    // search refuses it with the radius it would need).
    let circle = match poly.bounding_circle() {
        Ok(c) => Some(c),
        Err(GeoError::BadRadius(r)) if r > MAX_RADIUS_M => None,
        Err(e) => panic!("bounding circle: {e}"),
    };
    for v in ring {
        assert!(poly.contains(*v), "vertex {v:?} outside");
        assert!(
            circle.is_none_or(|c| c.contains(*v)),
            "vertex {v:?} outside the bounding circle"
        );
    }

    // Written back, it parses to the same polygon (a ring closed twice
    // once kept a closing vertex: regressions/search_params/).
    {
        let wkt = format!(
            "POLYGON(({}))",
            ring.iter()
                .map(|p| format!("{:.6} {:.6}", p.lon(), p.lat()))
                .collect::<Vec<_>>()
                .join(", ")
        );
        assert_eq!(Polygon::parse(&wkt).as_ref(), Ok(&poly), "{wkt}");
        let coords: Vec<[f64; 2]> = ring.iter().map(|p| [p.lon(), p.lat()]).collect();
        let geojson = serde_json::json!({"type": "Polygon", "coordinates": [coords]}).to_string();
        assert_eq!(Polygon::parse(&geojson).as_ref(), Ok(&poly), "{geojson}");
    }

    // Probes: a grid over the bounding box and points next to each vertex.
    let (mut lat0, mut lat1) = (i32::MAX, i32::MIN);
    for p in ring {
        lat0 = lat0.min(p.lat_e6());
        lat1 = lat1.max(p.lat_e6());
    }
    let mut probes = Vec::new();
    const N: i64 = 6;
    for i in 0..=N {
        for j in 0..=N {
            let lat = i64::from(lat0) + (i64::from(lat1) - i64::from(lat0)) * i / N;
            let lon = i64::from(lo) + (i64::from(hi) - i64::from(lo)) * j / N;
            probes.extend(GeoPoint::from_micro(lat as i32, lon as i32).ok());
        }
    }
    for v in ring.iter().take(64) {
        for (dlat, dlon) in [(1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (-1, -1)] {
            probes.extend(GeoPoint::from_micro(v.lat_e6() + dlat, v.lon_e6() + dlon).ok());
        }
    }
    let inside: Vec<bool> = probes.iter().map(|p| poly.contains(*p)).collect();
    for (p, inside) in probes.iter().zip(&inside) {
        if *inside && let Some(circle) = circle {
            assert!(
                circle.contains(*p),
                "{p:?} inside but outside the bounding circle"
            );
        }
    }

    // The same ring started elsewhere, or walked the other way.
    let n = ring.len();
    let mut reversed = ring.to_vec();
    reversed.reverse();
    let mut rotated = ring.to_vec();
    rotated.rotate_left(n / 2);
    for other in [reversed, rotated] {
        let Ok(other) = Polygon::new(other) else {
            continue;
        };
        for (p, inside) in probes.iter().zip(&inside) {
            assert_eq!(
                other.contains(*p),
                *inside,
                "{p:?}: depends on the ring's start or direction"
            );
        }
    }
}

fn check_time(text: &str) {
    let Ok(t) = Timestamp::parse_rfc3339(text) else {
        return;
    };
    assert!((Timestamp::EPOCH..=Timestamp::MAX).contains(&t), "{t:?}");
    let s = t.to_rfc3339();
    assert_eq!(Timestamp::parse_rfc3339(&s), Ok(t), "{s}");
    assert_eq!(Timestamp::from_day_ms(t.day(), t.ms_of_day()), t);
}

#[derive(Arbitrary, Debug)]
struct CircleInput {
    lat_e6: i32,
    lon_e6: i32,
    /// The radius: `MAX_RADIUS_M` times the cube of this as a fraction.
    radius: u32,
    /// A radius as given over the API, checked by `Circle::new`.
    raw_radius: f64,
    max_ranges: u8,
    /// Probes: (distance as a fraction of the radius, bearing, microdegree nudge).
    probes: Vec<(u16, u16, i8, i8)>,
}

fn check_cover(c: CircleInput) {
    let Ok(centre) = GeoPoint::from_micro(c.lat_e6 % 90_000_001, c.lon_e6 % 180_000_001) else {
        return;
    };
    let raw = Circle::new(centre, c.raw_radius);
    let raw_ok = c.raw_radius.is_finite() && c.raw_radius > 0.0 && c.raw_radius <= MAX_RADIUS_M;
    assert_eq!(raw.is_ok(), raw_ok, "radius {}", c.raw_radius);

    // Mostly small circles (a cover's cost grows with the radius up to the
    // refinement cap), but every radius up to the maximum is reachable.
    let unit = f64::from(c.radius) / f64::from(u32::MAX);
    let radius = (unit.powi(3) * MAX_RADIUS_M).max(0.01);
    let circle = Circle::new(centre, radius).expect("radius in range");
    assert!(circle.contains(centre));
    let max_ranges = usize::from(c.max_ranges);
    let ranges = cover_circle(&circle, max_ranges);
    assert!(!ranges.is_empty(), "a circle has a cover");
    assert!(
        ranges.len() <= max_ranges.max(1),
        "{} ranges > {max_ranges}",
        ranges.len()
    );
    for r in &ranges {
        assert!(r.start <= r.end, "{r:?}");
    }
    for w in ranges.windows(2) {
        assert!(
            w[0].end < w[1].start,
            "ranges overlap or are unsorted: {w:?}"
        );
    }
    let covered = |p: GeoPoint| {
        let cell = p.index_cell();
        ranges.iter().any(|r| r.contains(cell))
    };
    assert!(covered(centre), "centre not covered");
    for (dist, bearing, dlat, dlon) in c.probes.into_iter().take(64) {
        let d = f64::from(dist) / f64::from(u16::MAX) * radius;
        let b = f64::from(bearing) / f64::from(u16::MAX) * std::f64::consts::TAU;
        let Some(p) = centre.destination(d, b) else {
            continue;
        };
        let Ok(p) =
            GeoPoint::from_micro(p.lat_e6() + i32::from(dlat), p.lon_e6() + i32::from(dlon))
        else {
            continue;
        };
        if circle.contains(p) {
            assert!(
                covered(p),
                "{p:?} is in {circle:?} but its cell is not covered"
            );
        }
    }
}
