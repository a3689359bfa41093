//! Trigger rules: a hotlist's geofenced, time-bounded conditions ("alert
//! when a vehicle on this list enters this area between these hours"). A
//! list without rules hits on every read of a listed vehicle; a list with
//! rules hits only on a read inside the area of at least one rule, within
//! that rule's period and its daily hours (UK local time).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::geo::Polygon;
use crate::geo::{Circle, GeoError, GeoPoint};
use crate::time::{MS_PER_DAY, Timestamp};

/// Most rules one list holds.
pub const MAX_RULES: usize = 50;

/// Longest label, bytes.
pub const MAX_LABEL: usize = 128;

/// Largest circle of a rule, metres (a county).
pub const MAX_RULE_RADIUS_M: u32 = 100_000;

/// Why a rule was refused: the field and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct RuleError {
    /// The field at fault.
    pub field: &'static str,
    /// What is wrong with it.
    pub message: String,
}

fn bad(field: &'static str, message: impl Into<String>) -> RuleError {
    RuleError {
        field,
        message: message.into(),
    }
}

/// Where a rule holds.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RuleArea {
    /// A centre and a radius in whole metres.
    Circle {
        /// The centre.
        centre: GeoPoint,
        /// The radius, metres.
        radius_m: u32,
    },
    /// A polygon, as the WKT it was given in (checked when set).
    Polygon(String),
}

impl fmt::Debug for RuleArea {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuleArea::Circle { centre, radius_m } => write!(f, "{centre:?} r {radius_m} m"),
            RuleArea::Polygon(wkt) => write!(f, "polygon of {} bytes", wkt.len()),
        }
    }
}

/// One trigger rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriggerRule {
    /// What the rule is for (e.g. "Operation X: town centre, nights").
    pub label: String,
    /// Where.
    pub area: RuleArea,
    /// From this instant (inclusive), if set.
    pub from: Option<Timestamp>,
    /// Until this instant (exclusive), if set.
    pub until: Option<Timestamp>,
    /// Each day from this UK local hour (inclusive) ...
    pub start_hour: u8,
    /// ... to this one (exclusive); past midnight when smaller than the
    /// start; all day when equal.
    pub end_hour: u8,
}

impl TriggerRule {
    /// Checks the rule: label, area, period and hours.
    pub fn validate(&self) -> Result<(), RuleError> {
        if self.label.len() > MAX_LABEL {
            return Err(bad("label", format!("at most {MAX_LABEL} bytes")));
        }
        crate::text::check_free_text(&self.label).map_err(|e| bad("label", e.to_string()))?;
        match &self.area {
            RuleArea::Circle { radius_m, .. } => {
                if *radius_m == 0 || *radius_m > MAX_RULE_RADIUS_M {
                    return Err(bad(
                        "radius_m",
                        format!("{radius_m}: 1 to {MAX_RULE_RADIUS_M} metres"),
                    ));
                }
            }
            RuleArea::Polygon(wkt) => {
                Polygon::parse(wkt).map_err(|e| bad("polygon", e.to_string()))?;
            }
        }
        if let (Some(from), Some(until)) = (self.from, self.until)
            && until <= from
        {
            return Err(bad("until", format!("{until} is not after from {from}")));
        }
        // A day starts at 0 to 23 and ends at 1 to 24 (0: all day, with a
        // start of 0); a start of 24 would never hold.
        if self.start_hour > 23 {
            return Err(bad("start_hour", format!("{}: 0 to 23", self.start_hour)));
        }
        if self.end_hour > 24 {
            return Err(bad("end_hour", format!("{}: 0 to 24", self.end_hour)));
        }
        Ok(())
    }

    /// Whether the rule has ended by `now` (it can never hold again).
    pub fn ended(&self, now: Timestamp) -> bool {
        self.until.is_some_and(|u| u <= now)
    }
}

/// A rule ready to test reads against (its polygon parsed).
#[derive(Clone, Debug)]
pub struct CompiledRule {
    area: CompiledArea,
    from: Option<Timestamp>,
    until: Option<Timestamp>,
    start_ms: i64,
    end_ms: i64,
}

#[derive(Clone, Debug)]
enum CompiledArea {
    Circle(Circle),
    Polygon(Box<Polygon>),
    Never,
}

impl CompiledRule {
    /// Compiles a rule (checked by [`TriggerRule::validate`]).
    pub fn new(rule: &TriggerRule) -> Result<Self, GeoError> {
        let area = match &rule.area {
            RuleArea::Circle { centre, radius_m } => {
                CompiledArea::Circle(Circle::new(*centre, f64::from(*radius_m))?)
            }
            RuleArea::Polygon(wkt) => CompiledArea::Polygon(Box::new(Polygon::parse(wkt)?)),
        };
        Ok(Self {
            area,
            from: rule.from,
            until: rule.until,
            start_ms: i64::from(rule.start_hour) * 3_600_000,
            end_ms: i64::from(rule.end_hour) * 3_600_000,
        })
    }

    /// A rule no read meets.
    pub fn never() -> Self {
        Self {
            area: CompiledArea::Never,
            from: None,
            until: None,
            start_ms: 0,
            end_ms: 0,
        }
    }

    /// Whether a read at `p`, captured at `t`, meets the rule.
    pub fn admits(&self, p: GeoPoint, t: Timestamp) -> bool {
        if self.from.is_some_and(|f| t < f) || self.until.is_some_and(|u| t >= u) {
            return false;
        }
        if self.start_ms != self.end_ms {
            let of_day = t.uk_local().millis().rem_euclid(MS_PER_DAY);
            let inside = if self.start_ms < self.end_ms {
                (self.start_ms..self.end_ms).contains(&of_day)
            } else {
                of_day >= self.start_ms || of_day < self.end_ms
            };
            if !inside {
                return false;
            }
        }
        match &self.area {
            CompiledArea::Circle(c) => c.contains(p),
            CompiledArea::Polygon(poly) => poly.contains(p),
            CompiledArea::Never => false,
        }
    }
}

/// Whether a read at `p` at `t` meets any of `rules` (none: every read).
pub fn admitted(rules: &[CompiledRule], p: GeoPoint, t: Timestamp) -> bool {
    rules.is_empty() || rules.iter().any(|r| r.admits(p, t))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(lat: f64, lon: f64) -> GeoPoint {
        GeoPoint::new(lat, lon).unwrap()
    }

    fn t(s: &str) -> Timestamp {
        Timestamp::parse_rfc3339(s).unwrap()
    }

    fn nights() -> TriggerRule {
        TriggerRule {
            label: "town centre, nights".into(),
            area: RuleArea::Circle {
                centre: p(51.4545, -2.5879),
                radius_m: 1_000,
            },
            from: Some(t("2026-06-01T00:00:00Z")),
            until: Some(t("2026-12-01T00:00:00Z")),
            start_hour: 22,
            end_hour: 6,
        }
    }

    #[test]
    fn a_night_rule_wraps_midnight_in_uk_local_time() {
        let r = CompiledRule::new(&nights()).unwrap();
        let inside = p(51.455, -2.588);
        // November: GMT. 22:30 and 05:59 hold; 06:00 and 21:59 do not.
        assert!(r.admits(inside, t("2026-11-10T22:30:00Z")));
        assert!(r.admits(inside, t("2026-11-10T05:59:00Z")));
        assert!(!r.admits(inside, t("2026-11-10T06:00:00Z")));
        assert!(!r.admits(inside, t("2026-11-10T21:59:00Z")));
        // July: BST. 21:30 UTC is 22:30 local; 05:30 UTC is 06:30 local.
        assert!(r.admits(inside, t("2026-07-10T21:30:00Z")));
        assert!(!r.admits(inside, t("2026-07-10T05:30:00Z")));
        // Outside the area, or the period.
        assert!(!r.admits(p(51.47, -2.588), t("2026-11-10T22:30:00Z")));
        assert!(!r.admits(inside, t("2026-12-01T00:30:00Z")));
        assert!(!r.admits(inside, t("2026-05-31T23:30:00Z")));
    }

    #[test]
    fn a_polygon_rule_and_no_rules() {
        let rule = TriggerRule {
            area: RuleArea::Polygon(
                "POLYGON((-2.60 51.44, -2.57 51.44, -2.57 51.47, -2.60 51.47, -2.60 51.44))".into(),
            ),
            from: None,
            until: None,
            start_hour: 0,
            end_hour: 0,
            ..nights()
        };
        rule.validate().unwrap();
        let r = CompiledRule::new(&rule).unwrap();
        let noon = t("2026-11-10T12:00:00Z");
        assert!(r.admits(p(51.45, -2.58), noon));
        assert!(!r.admits(p(51.48, -2.58), noon));
        assert!(admitted(&[], p(0.0, 0.0), noon));
        assert!(!admitted(&[r], p(0.0, 0.0), noon));
    }

    #[test]
    fn bad_rules_name_the_field() {
        let field = |r: TriggerRule| r.validate().unwrap_err().field;
        assert_eq!(
            field(TriggerRule {
                start_hour: 25,
                ..nights()
            }),
            "start_hour"
        );
        assert_eq!(
            field(TriggerRule {
                start_hour: 24,
                end_hour: 0,
                ..nights()
            }),
            "start_hour"
        );
        assert_eq!(
            field(TriggerRule {
                until: Some(t("2026-01-01T00:00:00Z")),
                ..nights()
            }),
            "until"
        );
        assert_eq!(
            field(TriggerRule {
                area: RuleArea::Circle {
                    centre: p(51.0, -2.0),
                    radius_m: 0
                },
                ..nights()
            }),
            "radius_m"
        );
        assert_eq!(
            field(TriggerRule {
                area: RuleArea::Polygon("POLYGON((0 0, 1 1))".into()),
                ..nights()
            }),
            "polygon"
        );
        assert_eq!(
            field(TriggerRule {
                label: "a\u{7}".into(),
                ..nights()
            }),
            "label"
        );
    }
}
