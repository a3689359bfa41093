//! Conversions for hotlists and alerts, and redacting `Debug` for the
//! messages that carry VRMs.

use std::fmt;

use nadc_core::GeoPoint;
use nadc_core::alert::{AlertKind, AlertState, HitOutcome, Verification};
use nadc_core::hotlist::{Action, Hotlist, HotlistEntry, HotlistId};
use nadc_core::trigger::{RuleArea, RuleError, TriggerRule};
use nadc_core::vrm::redact;

use crate::{pb, to_pb_time};

/// The wire form of an action.
pub fn action_to_pb(a: Action) -> pb::Action {
    match a {
        Action::Arrest => pb::Action::Arrest,
        Action::Stop => pb::Action::Stop,
        Action::Notify => pb::Action::Notify,
        Action::Intelligence => pb::Action::Intelligence,
    }
}

/// The core action of a wire action, or `None` if unspecified/unknown.
pub fn action_from_pb(a: i32) -> Option<Action> {
    match pb::Action::try_from(a).ok()? {
        pb::Action::Arrest => Some(Action::Arrest),
        pb::Action::Stop => Some(Action::Stop),
        pb::Action::Notify => Some(Action::Notify),
        pb::Action::Intelligence => Some(Action::Intelligence),
        pb::Action::Unspecified => None,
    }
}

/// The wire form of an alert kind.
pub fn kind_to_pb(k: AlertKind) -> pb::AlertKind {
    match k {
        AlertKind::Hit => pb::AlertKind::Hit,
        AlertKind::Convoy => pb::AlertKind::Convoy,
        AlertKind::Clone => pb::AlertKind::Clone,
    }
}

/// The core alert kind of a wire one, or `None` if unspecified/unknown.
pub fn kind_from_pb(k: i32) -> Option<AlertKind> {
    match pb::AlertKind::try_from(k).ok()? {
        pb::AlertKind::Hit => Some(AlertKind::Hit),
        pb::AlertKind::Convoy => Some(AlertKind::Convoy),
        pb::AlertKind::Clone => Some(AlertKind::Clone),
        pb::AlertKind::Unspecified => None,
    }
}

/// The wire form of a verification state.
pub fn verification_to_pb(v: Verification) -> pb::Verification {
    match v {
        Verification::Unverified => pb::Verification::Unverified,
        Verification::Confirmed => pb::Verification::Confirmed,
        Verification::Rejected => pb::Verification::Rejected,
    }
}

/// The core verification state of a wire one, or `None` if unspecified.
pub fn verification_from_pb(v: i32) -> Option<Verification> {
    match pb::Verification::try_from(v).ok()? {
        pb::Verification::Unverified => Some(Verification::Unverified),
        pb::Verification::Confirmed => Some(Verification::Confirmed),
        pb::Verification::Rejected => Some(Verification::Rejected),
        pb::Verification::Unspecified => None,
    }
}

/// The wire form of a recorded verification.
pub fn state_to_pb(s: &AlertState) -> pb::AlertVerification {
    pb::AlertVerification {
        state: verification_to_pb(s.state) as i32,
        by: s.by.clone(),
        by_force: s.by_force.to_string(),
        at: Some(to_pb_time(s.at)),
        note: s.note.clone(),
        outcome: s.outcome.map_or(pb::HitOutcome::Unspecified, outcome_to_pb) as i32,
    }
}

/// The wire form of a hit's outcome.
pub fn outcome_to_pb(o: HitOutcome) -> pb::HitOutcome {
    match o {
        HitOutcome::Stopped => pb::HitOutcome::Stopped,
        HitOutcome::Arrested => pb::HitOutcome::Arrested,
        HitOutcome::NoAction => pb::HitOutcome::NoAction,
        HitOutcome::NotLocated => pb::HitOutcome::NotLocated,
    }
}

/// The core outcome of a wire one: `Ok(None)` if unspecified, `Err` if
/// unknown.
pub fn outcome_from_pb(o: i32) -> Result<Option<HitOutcome>, String> {
    match pb::HitOutcome::try_from(o).map_err(|_| format!("outcome {o} is unknown"))? {
        pb::HitOutcome::Unspecified => Ok(None),
        pb::HitOutcome::Stopped => Ok(Some(HitOutcome::Stopped)),
        pb::HitOutcome::Arrested => Ok(Some(HitOutcome::Arrested)),
        pb::HitOutcome::NoAction => Ok(Some(HitOutcome::NoAction)),
        pb::HitOutcome::NotLocated => Ok(Some(HitOutcome::NotLocated)),
    }
}

/// The wire form of a list reference.
pub fn list_ref_to_pb(id: &HotlistId) -> pb::HotlistRef {
    pb::HotlistRef {
        owner: id.owner.to_string(),
        name: id.name.clone(),
    }
}

/// The wire form of an entry.
pub fn entry_to_pb(e: &HotlistEntry) -> pb::HotlistEntry {
    pb::HotlistEntry {
        vrm: e.vrm.as_str().to_string(),
        reason: e.reason.clone(),
        intel_ref: e.intel_ref.clone(),
        action: action_to_pb(e.action) as i32,
        convoy: e.convoy,
        expires_at: Some(to_pb_time(e.expires_at)),
        created_by: e.created_by.clone(),
        created_at: Some(to_pb_time(e.created_at)),
    }
}

/// The wire form of a list's definition with its entry counts.
pub fn hotlist_to_pb(l: &Hotlist, entries: u64, active: u64) -> pb::HotlistInfo {
    pb::HotlistInfo {
        list: Some(list_ref_to_pb(&l.id)),
        purpose: l.purpose.clone(),
        description: l.description.clone(),
        fuzzy: l.fuzzy.confusable,
        max_edits: u32::from(l.fuzzy.max_edits),
        created_by: l.created_by.clone(),
        created_at: Some(to_pb_time(l.created_at)),
        entries,
        active_entries: active,
        rules: l.rules.iter().map(rule_to_pb).collect(),
    }
}

/// The wire form of a trigger rule.
pub fn rule_to_pb(r: &TriggerRule) -> pb::TriggerRule {
    let mut out = pb::TriggerRule {
        label: r.label.clone(),
        from: r.from.map(to_pb_time),
        until: r.until.map(to_pb_time),
        start_hour: u32::from(r.start_hour),
        end_hour: u32::from(r.end_hour),
        ..Default::default()
    };
    match &r.area {
        RuleArea::Circle { centre, radius_m } => {
            (out.lat, out.lon, out.radius_m) = (centre.lat(), centre.lon(), *radius_m);
        }
        RuleArea::Polygon(wkt) => out.polygon = wkt.clone(),
    }
    out
}

/// The core rule of a wire one, checked; the error names the field.
pub fn rule_from_pb(r: &pb::TriggerRule) -> Result<TriggerRule, RuleError> {
    let bad = |field: &'static str, message: String| RuleError { field, message };
    let area = if r.polygon.trim().is_empty() {
        let centre = GeoPoint::new(r.lat, r.lon).map_err(|e| bad("lat", e.to_string()))?;
        RuleArea::Circle {
            centre,
            radius_m: r.radius_m,
        }
    } else {
        RuleArea::Polygon(r.polygon.trim().to_string())
    };
    let time = |t: &Option<prost_types::Timestamp>, field: &'static str| match t {
        None => Ok(None),
        Some(t) => crate::from_pb_time(t)
            .map(Some)
            .ok_or_else(|| bad(field, "is outside 1970-01-01 to 9999-12-31".into())),
    };
    let hour = |h: u32, field: &'static str| {
        u8::try_from(h)
            .ok()
            .filter(|h| *h <= 24)
            .ok_or_else(|| bad(field, format!("{h}: 0 to 24")))
    };
    let rule = TriggerRule {
        label: r.label.trim().to_string(),
        area,
        from: time(&r.from, "from")?,
        until: time(&r.until, "until")?,
        start_hour: hour(r.start_hour, "start_hour")?,
        end_hour: hour(r.end_hour, "end_hour")?,
    };
    rule.validate()?;
    Ok(rule)
}

impl fmt::Debug for pb::HotlistEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HotlistEntry")
            .field("vrm", &redact(&self.vrm))
            .field("action", &self.action)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for pb::ConvoyRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConvoyRequest")
            .field(
                "vrms",
                &self.vrms.iter().map(|v| redact(v)).collect::<Vec<_>>(),
            )
            .field("hotlist", &self.hotlist)
            .field("window_s", &self.window_s)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for pb::HotSpotsRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HotSpotsRequest")
            .field(
                "vrms",
                &self.vrms.iter().map(|v| redact(v)).collect::<Vec<_>>(),
            )
            .field("hotlist", &self.hotlist)
            .field("count", &self.count)
            .field("resolution", &self.resolution)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for pb::ClonesRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClonesRequest")
            .field("vrm", &redact(&self.vrm))
            .field("from", &self.from)
            .field("to", &self.to)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for pb::Companion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Companion")
            .field("rank", &self.rank)
            .field("vrm", &redact(&self.vrm))
            .field("co_occurrences", &self.co_occurrences)
            .field("cameras", &self.cameras)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for pb::CompanionBrief {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompanionBrief")
            .field("vrm", &redact(&self.vrm))
            .field("co_occurrences", &self.co_occurrences)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for pb::ClonePair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClonePair")
            .field("vrm", &redact(&self.vrm))
            .field("distance_m", &self.distance_m)
            .field("seconds", &self.seconds)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for pb::RemoveEntriesRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoveEntriesRequest")
            .field("list", &self.list)
            .field("vrms", &self.vrms.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_round_trip_and_debug_redacts() {
        for a in Action::ALL {
            assert_eq!(action_from_pb(action_to_pb(a) as i32), Some(a));
        }
        assert_eq!(action_from_pb(0), None);
        for k in [AlertKind::Hit, AlertKind::Convoy, AlertKind::Clone] {
            assert_eq!(kind_from_pb(kind_to_pb(k) as i32), Some(k));
        }
        for v in [
            Verification::Unverified,
            Verification::Confirmed,
            Verification::Rejected,
        ] {
            assert_eq!(verification_from_pb(verification_to_pb(v) as i32), Some(v));
        }
        let e = pb::HotlistEntry {
            vrm: "AB12CDE".into(),
            ..Default::default()
        };
        assert!(!format!("{e:?}").contains("AB12CDE"));
        let c = pb::ConvoyRequest {
            vrms: vec!["AB12CDE".into()],
            ..Default::default()
        };
        assert!(!format!("{c:?}").contains("AB12CDE"));
    }
}
