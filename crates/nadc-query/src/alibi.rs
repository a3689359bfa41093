//! Alibi and journey checks: could a vehicle have been at a place at some
//! time in a window, given every read of it around then and the coverage of
//! the cameras at the place?
//!
//! A vehicle read at `r` (position `p_r`, time `t_r`) can be within
//! `radius` of a place `P` at time `t` only if it could cover the distance
//! from `p_r` to the edge of the place, `d_r = max(0, |p_r P| - radius)`,
//! in `|t - t_r|` at the maximum speed `v`. So each read rules out the open
//! interval `(t_r - d_r / v, t_r + d_r / v)`; what is left of the window,
//! in whole milliseconds, is when the claim agrees with every read. The
//! reads are judged as they are: a misread plate is a read of another
//! vehicle, and the caveats say so.
//!
//! The verdict follows the guidance's warning that the absence of a read
//! does not exclude presence: a claim is ruled out only by reads elsewhere,
//! never by a camera that did not read the vehicle.

use nadc_core::Timestamp;
use nadc_core::geo::{GeoPoint, geodesic_m};

/// A claimed presence: within `radius_m` of `place` at some time in
/// `from..=to`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Claim {
    /// The place.
    pub place: GeoPoint,
    /// Its extent, metres.
    pub radius_m: f64,
    /// The window's start.
    pub from: Timestamp,
    /// Its end (inclusive).
    pub to: Timestamp,
}

/// A read of the vehicle: where and when.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sighting {
    /// Capture time.
    pub at: Timestamp,
    /// Where it was taken.
    pub place: GeoPoint,
}

/// What the reads and cameras say of a claim.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Read at the place in the window.
    SeenThere,
    /// Reads elsewhere leave no moment of the window to be there.
    NotPossible,
    /// Possible, unread, and a camera at the place was reading then.
    PossibleUnseen,
    /// Possible, and no camera at the place was reading then.
    PossibleNoCoverage,
}

/// A claim judged. Indexes are into the sightings given.
#[derive(Clone, Debug, PartialEq)]
pub struct Judged {
    /// The verdict.
    pub verdict: Verdict,
    /// When in the window the claim agrees with every read, inclusive.
    pub possible: Vec<(Timestamp, Timestamp)>,
    /// The last sighting before the window.
    pub before: Option<usize>,
    /// The first sighting after it.
    pub after: Option<usize>,
    /// Sightings at the place in the window.
    pub at_place: Vec<usize>,
    /// Sightings elsewhere in the window.
    pub elsewhere: Vec<usize>,
    /// Sightings whose ruled-out interval overlaps the window.
    pub ruled_out_by: Vec<usize>,
}

/// Judges `claim` against `sightings` (in capture-time order) at
/// `max_speed_kmh`, given how many cameras at the place read any vehicle
/// around the claim's window.
pub fn judge(
    claim: &Claim,
    sightings: &[Sighting],
    cameras_reading: usize,
    max_speed_kmh: f64,
) -> Judged {
    let metres_per_ms = max_speed_kmh / 3_600.0;
    let (from, to) = (claim.from.millis(), claim.to.millis());
    let mut possible = vec![(from, to)];
    let mut judged = Judged {
        verdict: Verdict::PossibleNoCoverage,
        possible: Vec::new(),
        before: None,
        after: None,
        at_place: Vec::new(),
        elsewhere: Vec::new(),
        ruled_out_by: Vec::new(),
    };
    for (i, s) in sightings.iter().enumerate() {
        let t = s.at.millis();
        let gap = (geodesic_m(s.place, claim.place) - claim.radius_m).max(0.0);
        if t < from {
            judged.before = Some(i);
        } else if t > to {
            judged.after.get_or_insert(i);
        } else if gap == 0.0 {
            judged.at_place.push(i);
        } else {
            judged.elsewhere.push(i);
        }
        if gap == 0.0 {
            continue;
        }
        // The open interval (t - w, t + w) in whole milliseconds: x with
        // x > t - w and x < t + w.
        let w = gap / metres_per_ms;
        let lo = (t as f64 - w).floor() as i64 + 1;
        let hi = (t as f64 + w).ceil() as i64 - 1;
        if lo > hi || hi < from || lo > to {
            continue;
        }
        judged.ruled_out_by.push(i);
        possible = possible
            .into_iter()
            .flat_map(|(a, b)| {
                let left = (a < lo).then(|| (a, b.min(lo - 1)));
                let right = (b > hi).then(|| (a.max(hi + 1), b));
                left.into_iter().chain(right)
            })
            .collect();
    }
    judged.possible = possible
        .into_iter()
        .map(|(a, b)| (Timestamp::from_millis(a), Timestamp::from_millis(b)))
        .collect();
    judged.verdict = if !judged.at_place.is_empty() {
        Verdict::SeenThere
    } else if judged.possible.is_empty() {
        Verdict::NotPossible
    } else if cameras_reading > 0 {
        Verdict::PossibleUnseen
    } else {
        Verdict::PossibleNoCoverage
    };
    judged
}

/// Between two claims of a journey: the distance between the places'
/// edges, and the slowest average speed (km/h) that covers it in the most
/// time the claims allow (infinite when they allow none).
pub fn leg(a: &Claim, b: &Claim) -> (f64, f64) {
    let d = (geodesic_m(a.place, b.place) - a.radius_m - b.radius_m).max(0.0);
    let ms = b.to.millis() - a.from.millis();
    let kmh = if d == 0.0 {
        0.0
    } else if ms <= 0 {
        f64::INFINITY
    } else {
        d / ms as f64 * 3_600.0
    };
    (d, kmh)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        Timestamp::parse_rfc3339(s).unwrap()
    }

    fn p(lat: f64, lon: f64) -> GeoPoint {
        GeoPoint::new(lat, lon).unwrap()
    }

    #[test]
    fn a_read_far_away_just_before_rules_out_the_start_of_the_window() {
        let claim = Claim {
            place: p(51.45, -2.58),
            radius_m: 0.0,
            from: t("2026-11-20T10:00:00Z"),
            to: t("2026-11-20T11:00:00Z"),
        };
        // 36 km away (0.3237° of latitude ≈ 36 km) at 10:00: at 72 km/h
        // the place is 30 minutes away.
        let far = p(51.45 + 36_000.0 / 111_195.0, -2.58);
        let s = [Sighting {
            at: t("2026-11-20T10:00:00Z"),
            place: far,
        }];
        let j = judge(&claim, &s, 0, 72.0);
        assert_eq!(j.verdict, Verdict::PossibleNoCoverage);
        assert_eq!(j.possible.len(), 1);
        let start = j.possible[0].0.millis() - t("2026-11-20T10:00:00Z").millis();
        // The geodesic distance there (by the oracle) at 20 m/s.
        let gap = nadc_oracle::distance_m(far.lat(), far.lon(), 51.45, -2.58);
        let want = (gap / 20.0 * 1000.0) as i64;
        assert!((start - want).abs() < 1_000, "{start} against {want}");
        assert_eq!(j.ruled_out_by, vec![0]);
        assert_eq!(j.elsewhere, vec![0]);
        // Working cameras at the place make it unseen, not impossible.
        let j = judge(&claim, &s, 1, 72.0);
        assert_eq!(j.verdict, Verdict::PossibleUnseen);
        // At 36 km/h the whole hour is needed to get there and back: a
        // second read far away at 11:00 closes the window.
        let s2 = [
            s[0],
            Sighting {
                at: t("2026-11-20T11:00:00Z"),
                place: far,
            },
        ];
        let j = judge(&claim, &s2, 1, 36.0);
        assert_eq!(j.verdict, Verdict::NotPossible);
        assert!(j.possible.is_empty());
    }

    #[test]
    fn a_read_at_the_place_in_the_window_is_seen_there() {
        let claim = Claim {
            place: p(51.45, -2.58),
            radius_m: 200.0,
            from: t("2026-11-20T10:00:00Z"),
            to: t("2026-11-20T11:00:00Z"),
        };
        let s = [
            Sighting {
                at: t("2026-11-20T09:00:00Z"),
                place: p(51.0, -2.0),
            },
            Sighting {
                at: t("2026-11-20T10:30:00Z"),
                place: p(51.4505, -2.58),
            },
            Sighting {
                at: t("2026-11-20T12:00:00Z"),
                place: p(51.0, -2.0),
            },
        ];
        let j = judge(&claim, &s, 0, 100.0);
        assert_eq!(j.verdict, Verdict::SeenThere);
        assert_eq!((j.before, j.after, j.at_place), (Some(0), Some(2), vec![1]));
    }

    #[test]
    fn a_leg_needs_the_speed_of_its_distance_over_the_time_allowed() {
        let a = Claim {
            place: p(51.0, -2.0),
            radius_m: 0.0,
            from: t("2026-11-20T10:00:00Z"),
            to: t("2026-11-20T10:00:00Z"),
        };
        let b = Claim {
            place: p(51.0 + 100_000.0 / 111_195.0, -2.0),
            ..a
        };
        let b = Claim {
            from: t("2026-11-20T11:00:00Z"),
            to: t("2026-11-20T11:00:00Z"),
            ..b
        };
        let (d, kmh) = leg(&a, &b);
        let want = nadc_oracle::distance_m(51.0, -2.0, b.place.lat(), b.place.lon());
        assert!((d - want).abs() < 0.01, "{d} against {want}");
        assert!((kmh - want / 1000.0).abs() < 0.001, "{kmh}");
    }
}
