//! Camera health: each camera's reads in a window against its own usual
//! rate by hour of the week, so that a missing read is never mistaken for
//! a vehicle's absence.
//!
//! A camera's usual rate for an hour of the week (UK local time, as traffic
//! keeps it) is its reads in that hour over the baseline period (the weeks just before the window) divided by
//! the baseline's length in weeks. Its expected reads in the window are
//! the sum of the usual rates of the window's hours. The camera index
//! alone is read: no record is fetched.

use std::ops::ControlFlow;

use nadc_core::{Camera, Timestamp};
use nadc_store::Store;

use crate::QueryError;
use crate::hotspots::{HOURS_OF_WEEK, hour_of_week_in};

const HOUR_MS: i64 = 3_600_000;

/// How a camera did in the window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    /// At least half its usual reads.
    Working,
    /// Some reads, fewer than half its usual.
    Low,
    /// No read in the window, where at least one was expected.
    Silent,
    /// No read in the window nor in the baseline: nothing to judge by.
    NoData,
}

/// One camera's health.
#[derive(Clone, Debug)]
pub struct CameraHealth {
    /// The camera.
    pub camera: Camera,
    /// Reads in the window.
    pub reads: u64,
    /// Reads expected in the window from the baseline.
    pub expected: f64,
    /// The verdict.
    pub health: Health,
    /// Its last read at or before the window's end, if any in the baseline
    /// or the window: for a silent camera, when it went silent.
    pub last_read: Option<Timestamp>,
}

/// A camera-health check.
#[derive(Clone, Debug)]
pub struct HealthQuery {
    /// The cameras to check.
    pub cameras: Vec<Camera>,
    /// The window judged, inclusive.
    pub from: Timestamp,
    /// Its end.
    pub to: Timestamp,
    /// Baseline length before `from`, in whole days (at least 7).
    pub baseline_days: u32,
}

/// Checks every camera of `q`.
pub fn camera_health(store: &dyn Store, q: &HealthQuery) -> Result<Vec<CameraHealth>, QueryError> {
    if q.from > q.to {
        return Err(QueryError::Invalid("from is after to".into()));
    }
    if q.baseline_days < 7 {
        return Err(QueryError::Invalid(
            "the baseline needs at least 7 days (one of each hour of the week)".into(),
        ));
    }
    let base_from = q
        .from
        .plus_millis(-i64::from(q.baseline_days) * 24 * HOUR_MS);
    let weeks = f64::from(q.baseline_days) / 7.0;
    let mut out = Vec::with_capacity(q.cameras.len());
    for camera in &q.cameras {
        let mut usual = vec![0u64; HOURS_OF_WEEK];
        let (mut reads, mut last_read) = (0u64, None);
        store.camera_entries(
            &camera.force,
            &camera.camera_id,
            base_from,
            q.to,
            &mut |e| {
                let t = e.observed_at;
                if t < q.from {
                    usual[hour_of_week_in(t, false)] += 1;
                } else {
                    reads += 1;
                }
                last_read = Some(t);
                ControlFlow::Continue(())
            },
        )?;
        let expected = expected_in(&usual, weeks, q.from, q.to);
        let health = if reads == 0 && usual.iter().all(|n| *n == 0) {
            Health::NoData
        } else if reads == 0 && expected >= 1.0 {
            Health::Silent
        } else if reads > 0 && (reads as f64) < expected / 2.0 {
            Health::Low
        } else {
            Health::Working
        };
        out.push(CameraHealth {
            camera: camera.clone(),
            reads,
            expected,
            health,
            last_read,
        });
    }
    Ok(out)
}

/// Weeks before a window whose same window gives a camera's usual count
/// for [`silent`].
pub const SILENCE_WEEKS: i64 = 4;

const WEEK_MS: i64 = 7 * 24 * HOUR_MS;

/// Whether `camera` was silent in `from..=to`: no read then, though its
/// reads in the same window of each of the [`SILENCE_WEEKS`] weeks before
/// (those from `floor` on: what the searcher may see) average at least one.
/// The camera index alone is read, and little of it: a camera that read in
/// the window costs one seek, and only a silent one is searched back for
/// its last read (a week at a time, not before `floor`).
pub fn silent(
    store: &dyn Store,
    camera: &Camera,
    from: Timestamp,
    to: Timestamp,
    floor: Timestamp,
) -> Result<Option<CameraHealth>, QueryError> {
    let any = |a: Timestamp, b: Timestamp| -> Result<u64, QueryError> {
        let mut n = 0u64;
        store.camera_entries(&camera.force, &camera.camera_id, a, b, &mut |_| {
            n += 1;
            ControlFlow::Continue(())
        })?;
        Ok(n)
    };
    let mut read_now = false;
    store.camera_entries(&camera.force, &camera.camera_id, from, to, &mut |_| {
        read_now = true;
        ControlFlow::Break(())
    })?;
    if read_now {
        return Ok(None);
    }
    let mut before = 0u64;
    let mut weeks = 0u64;
    for w in 1..=SILENCE_WEEKS {
        let a = from.plus_millis(-w * WEEK_MS);
        if a < floor {
            break;
        }
        before += any(a, to.plus_millis(-w * WEEK_MS))?;
        weeks += 1;
    }
    if weeks == 0 {
        return Ok(None);
    }
    let expected = before as f64 / weeks as f64;
    if expected < 1.0 {
        return Ok(None);
    }
    // When it went silent: its last read before the window.
    let mut last_read = None;
    for w in 0..SILENCE_WEEKS {
        let (a, b) = (
            from.plus_millis(-(w + 1) * WEEK_MS).max(floor),
            from.plus_millis(-w * WEEK_MS - 1),
        );
        if a > b {
            break;
        }
        store.camera_entries(&camera.force, &camera.camera_id, a, b, &mut |e| {
            last_read = Some(e.observed_at);
            ControlFlow::Continue(())
        })?;
        if last_read.is_some() {
            break;
        }
    }
    Ok(Some(CameraHealth {
        camera: camera.clone(),
        reads: 0,
        expected,
        health: Health::Silent,
        last_read,
    }))
}

/// The reads expected in `from..=to` at the usual rates (`usual` counted
/// over `weeks` weeks): each hour of the window weighted by how much of it
/// the window covers.
fn expected_in(usual: &[u64], weeks: f64, from: Timestamp, to: Timestamp) -> f64 {
    let end = to.millis() + 1;
    let mut t = from.millis();
    let mut sum = 0.0;
    while t < end {
        let hour_end = (t.div_euclid(HOUR_MS) + 1) * HOUR_MS;
        let part = (hour_end.min(end) - t) as f64 / HOUR_MS as f64;
        sum += part * usual[hour_of_week_in(Timestamp::from_millis(t), false)] as f64 / weeks;
        t = hour_end;
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_expected_count_weights_each_hour_by_the_part_covered() {
        let mut usual = vec![0u64; HOURS_OF_WEEK];
        // Two weeks of baseline with 8 reads in each Monday 08:00 hour.
        usual[8] = 16;
        let t = |s: &str| Timestamp::parse_rfc3339(s).unwrap();
        // A whole Monday 08:00 hour: 8 expected.
        let e = expected_in(
            &usual,
            2.0,
            t("2026-11-23T08:00:00Z"),
            t("2026-11-23T08:59:59.999Z"),
        );
        assert!((e - 8.0).abs() < 1e-9, "{e}");
        // Half of it: 4.
        let e = expected_in(
            &usual,
            2.0,
            t("2026-11-23T08:30:00Z"),
            t("2026-11-23T08:59:59.999Z"),
        );
        assert!((e - 4.0).abs() < 1e-9, "{e}");
        // Tuesday: none.
        let e = expected_in(
            &usual,
            2.0,
            t("2026-11-24T08:00:00Z"),
            t("2026-11-24T09:59:59.999Z"),
        );
        assert_eq!(e, 0.0);
    }
}
