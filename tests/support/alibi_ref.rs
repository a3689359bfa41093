//! A brute-force reference for alibi checks, written apart from nadc: a
//! claim is possible at a whole second if every read of the vehicle is near
//! enough in time to reach the place's edge at the maximum speed.

use std::collections::BTreeSet;

use nadc_bof::pb;

/// A read of the vehicle: its id, time (ms) and position.
#[derive(Clone, Debug)]
pub struct RefRead {
    pub id: String,
    pub ms: i64,
    pub lat: f64,
    pub lon: f64,
}

/// The WGS84 geodesic distance in metres, by the oracle (Vincenty).
pub fn metres(a: (f64, f64), b: (f64, f64)) -> f64 {
    nadc_oracle::distance_m(a.0, a.1, b.0, b.1)
}

/// A claim: place, radius, window (ms, inclusive).
#[derive(Clone, Copy, Debug)]
pub struct RefClaim {
    pub lat: f64,
    pub lon: f64,
    pub radius_m: f64,
    pub from_ms: i64,
    pub to_ms: i64,
}

/// What the reference says of a claim.
#[derive(Debug, PartialEq)]
pub struct RefJudged {
    pub seen_there: bool,
    /// The window's whole seconds (as ms) at which the claim is possible.
    pub possible_seconds: Vec<i64>,
    pub before: Option<String>,
    pub after: Option<String>,
    pub at_place: BTreeSet<String>,
    pub elsewhere: BTreeSet<String>,
}

/// Whether being at the claim's place at `ms` agrees with every read.
pub fn possible_at(c: &RefClaim, reads: &[RefRead], kmh: f64, ms: i64) -> bool {
    reads.iter().all(|r| {
        let gap = metres((r.lat, r.lon), (c.lat, c.lon)) - c.radius_m;
        gap <= 0.0 || gap <= kmh / 3.6 * ((ms - r.ms).abs() as f64 / 1000.0)
    })
}

pub fn judge(c: &RefClaim, reads: &[RefRead], kmh: f64) -> RefJudged {
    let mut j = RefJudged {
        seen_there: false,
        possible_seconds: Vec::new(),
        before: None,
        after: None,
        at_place: BTreeSet::new(),
        elsewhere: BTreeSet::new(),
    };
    let mut sorted = reads.to_vec();
    sorted.sort_by_key(|r| r.ms);
    for r in &sorted {
        let at = metres((r.lat, r.lon), (c.lat, c.lon)) <= c.radius_m;
        if r.ms < c.from_ms {
            j.before = Some(r.id.clone());
        } else if r.ms > c.to_ms {
            if j.after.is_none() {
                j.after = Some(r.id.clone());
            }
        } else if at {
            j.at_place.insert(r.id.clone());
            j.seen_there = true;
        } else {
            j.elsewhere.insert(r.id.clone());
        }
    }
    let first = c.from_ms.div_euclid(1000) * 1000;
    let mut s = if first < c.from_ms {
        first + 1000
    } else {
        first
    };
    while s <= c.to_ms {
        if possible_at(c, reads, kmh, s) {
            j.possible_seconds.push(s);
        }
        s += 1000;
    }
    j
}

/// The whole seconds of the claim's window inside the answer's possible
/// spans.
pub fn answered_seconds(c: &RefClaim, result: &pb::ClaimResult) -> Vec<i64> {
    let spans: Vec<(i64, i64)> = result.possible.iter().map(span_ms).collect();
    let first = c.from_ms.div_euclid(1000) * 1000;
    let mut s = if first < c.from_ms {
        first + 1000
    } else {
        first
    };
    let mut out = Vec::new();
    while s <= c.to_ms {
        if spans.iter().any(|(a, b)| *a <= s && s <= *b) {
            out.push(s);
        }
        s += 1000;
    }
    out
}

/// A span's ends, ms.
pub fn span_ms(s: &pb::TimeSpan) -> (i64, i64) {
    let ms = |t: Option<&_>| {
        nadc_proto::from_pb_time(t.expect("a time"))
            .expect("a valid time")
            .millis()
    };
    (ms(s.from.as_ref()), ms(s.to.as_ref()))
}
