//! Point in polygon by winding number, on integer microdegrees (x the
//! longitude, y the latitude), edges straight in longitude and latitude as
//! GeoJSON draws them. A point on an edge or a vertex is inside.

/// Whether `p` lies in the polygon whose ring is `ring` (closed or not;
/// `(lon_e6, lat_e6)` pairs).
pub fn in_polygon(ring: &[(i64, i64)], p: (i64, i64)) -> bool {
    let n = ring.len();
    if n < 3 {
        return false;
    }
    let mut winding = 0i64;
    for i in 0..n {
        let (a, b) = (ring[i], ring[(i + 1) % n]);
        if on_segment(a, b, p) {
            return true;
        }
        // Which side of a→b the point is on (positive: left).
        let side = (b.0 - a.0) * (p.1 - a.1) - (p.0 - a.0) * (b.1 - a.1);
        if a.1 <= p.1 {
            if b.1 > p.1 && side > 0 {
                winding += 1;
            }
        } else if b.1 <= p.1 && side < 0 {
            winding -= 1;
        }
    }
    winding != 0
}

fn on_segment(a: (i64, i64), b: (i64, i64), p: (i64, i64)) -> bool {
    let cross = (b.0 - a.0) * (p.1 - a.1) - (p.0 - a.0) * (b.1 - a.1);
    cross == 0
        && (a.0.min(b.0)..=a.0.max(b.0)).contains(&p.0)
        && (a.1.min(b.1)..=a.1.max(b.1)).contains(&p.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_square_and_a_concave_ring() {
        let square = [(0, 0), (10, 0), (10, 10), (0, 10)];
        assert!(in_polygon(&square, (5, 5)));
        assert!(in_polygon(&square, (0, 5)), "an edge is inside");
        assert!(in_polygon(&square, (10, 10)), "a vertex is inside");
        assert!(!in_polygon(&square, (11, 5)));
        assert!(!in_polygon(&square, (5, -1)));
        // A U: the notch is outside.
        let u = [
            (0, 0),
            (30, 0),
            (30, 30),
            (20, 30),
            (20, 10),
            (10, 10),
            (10, 30),
            (0, 30),
        ];
        assert!(in_polygon(&u, (5, 20)));
        assert!(in_polygon(&u, (25, 20)));
        assert!(!in_polygon(&u, (15, 20)));
        assert!(in_polygon(&u, (15, 5)));
        // Wound the other way, the same.
        let mut rev = u;
        rev.reverse();
        assert!(!in_polygon(&rev, (15, 20)) && in_polygon(&rev, (5, 20)));
    }
}
