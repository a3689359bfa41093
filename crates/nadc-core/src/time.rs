//! Time: UTC instants at millisecond precision, day buckets, and an
//! injectable clock so retention and tier boundaries can be tested exactly.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Datelike, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

/// Milliseconds in a UTC day.
pub const MS_PER_DAY: i64 = 86_400_000;

/// A UTC instant, in milliseconds since the Unix epoch.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timestamp(i64);

/// Why a time was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    /// Not RFC 3339.
    #[error("{value:?} is not an RFC 3339 time (e.g. 2026-11-24T08:15:00Z): {reason}")]
    NotRfc3339 {
        /// The text given.
        value: String,
        /// The parser's reason.
        reason: String,
    },
    /// Outside the years nadc stores (1970 to 9999).
    #[error("{0:?} is outside the supported range 1970-01-01 to 9999-12-31")]
    OutOfRange(String),
}

impl Timestamp {
    /// The Unix epoch.
    pub const EPOCH: Timestamp = Timestamp(0);
    /// The latest supported instant (9999-12-31T23:59:59.999Z).
    pub const MAX: Timestamp = Timestamp(253_402_300_799_999);

    /// From milliseconds since the epoch.
    pub const fn from_millis(ms: i64) -> Self {
        Self(ms)
    }

    /// Milliseconds since the epoch.
    pub const fn millis(self) -> i64 {
        self.0
    }

    /// Parses RFC 3339 (`Z` or an offset); the result is UTC. Sub-millisecond
    /// digits are truncated.
    pub fn parse_rfc3339(s: &str) -> Result<Self, TimeError> {
        let dt = DateTime::parse_from_rfc3339(s.trim()).map_err(|e| TimeError::NotRfc3339 {
            value: s.to_string(),
            reason: e.to_string(),
        })?;
        let ms = dt.timestamp_millis();
        if !(0..=Self::MAX.0).contains(&ms) {
            return Err(TimeError::OutOfRange(s.to_string()));
        }
        Ok(Self(ms))
    }

    /// RFC 3339 in UTC with milliseconds, e.g. `2026-11-24T08:15:00.000Z`.
    pub fn to_rfc3339(self) -> String {
        match DateTime::<Utc>::from_timestamp_millis(self.0) {
            Some(dt) => dt.to_rfc3339_opts(SecondsFormat::Millis, true),
            None => format!("@{}ms", self.0),
        }
    }

    /// The UTC day number (days since 1970-01-01) this instant falls in.
    pub fn day(self) -> u32 {
        // Supported instants are 0..=MAX, so the day fits a u32.
        self.0.div_euclid(MS_PER_DAY).clamp(0, i64::from(u32::MAX)) as u32
    }

    /// Milliseconds since the start of this instant's UTC day.
    pub fn ms_of_day(self) -> u32 {
        self.0.rem_euclid(MS_PER_DAY) as u32
    }

    /// The instant `day` days and `ms` milliseconds after the epoch.
    pub fn from_day_ms(day: u32, ms: u32) -> Self {
        Self(i64::from(day) * MS_PER_DAY + i64::from(ms))
    }

    /// This instant plus `ms` milliseconds (saturating).
    pub fn plus_millis(self, ms: i64) -> Self {
        Self(self.0.saturating_add(ms))
    }

    /// This instant minus `days` whole days (saturating).
    pub fn minus_days(self, days: u32) -> Self {
        Self(self.0.saturating_sub(i64::from(days) * MS_PER_DAY))
    }

    /// The offset of UK local time from UTC at this instant, ms: one hour
    /// in British Summer Time, from 01:00 UTC on the last Sunday of March
    /// to 01:00 UTC on the last Sunday of October (the Summer Time Order
    /// 2002), else none.
    pub fn uk_offset_ms(self) -> i64 {
        let Some(dt) = DateTime::<Utc>::from_timestamp_millis(self.0) else {
            return 0;
        };
        let year = dt.year();
        let change = |month: u32| -> Option<i64> {
            let last = chrono::NaiveDate::from_ymd_opt(year, month, 31)?;
            let back = last.weekday().num_days_from_sunday();
            let sunday = last - chrono::Duration::days(i64::from(back));
            Some(sunday.and_hms_opt(1, 0, 0)?.and_utc().timestamp_millis())
        };
        match (change(3), change(10)) {
            (Some(start), Some(end)) if self.0 >= start && self.0 < end => 3_600_000,
            _ => 0,
        }
    }

    /// This instant's UK local wall-clock time, as if it were UTC: for
    /// calendar arithmetic in UK local time (its day, its hour).
    pub fn uk_local(self) -> Self {
        self.plus_millis(self.uk_offset_ms())
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

/// A source of the current time. The node takes one so tests can set time.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current instant.
    fn now(&self) -> Timestamp;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp(Utc::now().timestamp_millis())
    }
}

/// A clock that stays where a test puts it.
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock reading `t`.
    pub fn new(t: Timestamp) -> Self {
        Self(Arc::new(AtomicI64::new(t.0)))
    }

    /// Moves the clock to `t`.
    pub fn set(&self, t: Timestamp) {
        self.0.store(t.0, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uk_summer_time_runs_between_the_published_changes() {
        // The changes as published (gov.uk "When do the clocks change?"):
        // forward at 01:00 UTC on these Sundays, back at 01:00 UTC on these.
        let changes = [
            ("2024-03-31T01:00:00Z", "2024-10-27T01:00:00Z"),
            ("2025-03-30T01:00:00Z", "2025-10-26T01:00:00Z"),
            ("2026-03-29T01:00:00Z", "2026-10-25T01:00:00Z"),
            ("2027-03-28T01:00:00Z", "2027-10-31T01:00:00Z"),
        ];
        let t = |s: &str| Timestamp::parse_rfc3339(s).unwrap();
        for (start, end) in changes {
            let (start, end) = (t(start), t(end));
            assert_eq!(start.plus_millis(-1).uk_offset_ms(), 0, "{start:?}");
            assert_eq!(start.uk_offset_ms(), 3_600_000, "{start:?}");
            assert_eq!(end.plus_millis(-1).uk_offset_ms(), 3_600_000, "{end:?}");
            assert_eq!(end.uk_offset_ms(), 0, "{end:?}");
        }
        // Midsummer noon UTC is 13:00 in London; midwinter, 12:00.
        let summer = t("2026-06-21T12:00:00Z").uk_local();
        assert_eq!(summer.ms_of_day(), 13 * 3_600_000);
        let winter = t("2026-12-21T12:00:00Z").uk_local();
        assert_eq!(winter.ms_of_day(), 12 * 3_600_000);
        // 23:30 UTC on a summer Sunday is already Monday in London.
        let late = t("2026-06-21T23:30:00Z").uk_local();
        assert_eq!(late.day(), t("2026-06-22T00:30:00Z").day());
    }

    #[test]
    fn rfc3339_round_trip_and_offsets() {
        let t = Timestamp::parse_rfc3339("2026-11-24T08:15:00Z").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-24T08:15:00.000Z");
        let offset = Timestamp::parse_rfc3339("2026-11-24T09:15:00+01:00").unwrap();
        assert_eq!(offset, t);
        let frac = Timestamp::parse_rfc3339("2026-11-24T08:15:00.123456Z").unwrap();
        assert_eq!(frac.millis() - t.millis(), 123);
    }

    #[test]
    fn rfc3339_errors_name_the_value() {
        let e = Timestamp::parse_rfc3339("24/11/2026 08:15").unwrap_err();
        assert!(e.to_string().contains("24/11/2026"), "{e}");
        assert!(Timestamp::parse_rfc3339("1969-12-31T23:59:59Z").is_err());
    }

    #[test]
    fn days() {
        let t = Timestamp::parse_rfc3339("1970-01-02T00:00:00.001Z").unwrap();
        assert_eq!((t.day(), t.ms_of_day()), (1, 1));
        assert_eq!(Timestamp::from_day_ms(t.day(), t.ms_of_day()), t);
    }

    #[test]
    fn manual_clock() {
        let c = ManualClock::new(Timestamp::from_millis(5));
        assert_eq!(c.now().millis(), 5);
        c.set(Timestamp::from_millis(9));
        assert_eq!(c.now().millis(), 9);
    }
}
