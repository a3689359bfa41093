//! Lawful access: the purpose and case reference every search must carry,
//! and the data-age tiers that decide how far back a search may reach.
//!
//! - Data up to `standard_days` old (90 by default): any searching role
//!   with a valid purpose and case reference.
//! - Older data, up to the retention limit: only under a supervisor's
//!   recorded authorisation for the same case and purpose, covering the
//!   window, not expired, and only for a purpose in the extended set
//!   (serious crime, major crime, counter-terrorism by default).
//!
//! The check runs when a search is planned: a window reaching older data
//! without authorisation is refused, or clipped to the permitted part if
//! the request asks for that, and the response says which.
//!
//! An authorisation opens only its capture-time range (both ends), never
//! the searches of the supervisor who granted it, never for longer than
//! `max_authorisation_days` after its grant, and nothing once revoked.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::identity::{ForceId, Role};
use crate::time::Timestamp;

/// Longest case reference, purpose code or authorisation id.
pub const MAX_REF_LEN: usize = 64;

mod authorisation;
pub use authorisation::{Authorisation, MAX_REASON_LEN, Revocation};

/// Why access was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    /// The request's purpose or case reference is missing or malformed.
    #[error("{0}")]
    Context(String),
    /// The window reaches data the caller may not see.
    #[error("{0}")]
    Denied(String),
}

/// What a search request says about why it is made.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AccessContext {
    /// A purpose code from the node's list, e.g. `serious-crime`.
    pub purpose: String,
    /// The case or crime reference.
    pub case_ref: String,
    /// The id of a supervisor's authorisation, to reach older data.
    pub authorisation: String,
}

impl fmt::Debug for AccessContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessContext")
            .field("purpose", &self.purpose)
            .field("case_ref", &self.case_ref)
            .field("authorisation", &self.authorisation)
            .finish()
    }
}

fn check_ref(what: &str, v: &str, required: bool) -> Result<(), AccessError> {
    if v.is_empty() {
        return if required {
            Err(AccessError::Context(format!(
                "{what} is required (CLI: --{}; or set it in the client config)",
                what.replace(' ', "-")
            )))
        } else {
            Ok(())
        };
    }
    if v.len() > MAX_REF_LEN || v.chars().any(|c| c.is_control()) || v.trim() != v {
        // Named by a bounded prefix: the text itself may be of any length.
        let shown: String = v.chars().take(MAX_REF_LEN).collect();
        let more = if shown.len() < v.len() {
            format!("… ({} bytes)", v.len())
        } else {
            String::new()
        };
        return Err(AccessError::Context(format!(
            "{what} {shown:?}{more} is malformed: 1 to {MAX_REF_LEN} characters, no control characters or surrounding spaces"
        )));
    }
    Ok(())
}

/// How a search that reaches older data without authorisation is treated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum OlderData {
    /// Refused with the reason.
    #[default]
    Refuse,
    /// Clipped to the permitted part of the window, and the response says so.
    Clip,
}

/// The node's access rules.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessPolicy {
    /// Purpose codes a search may give.
    pub purposes: Vec<String>,
    /// Data up to this many days old needs only a purpose and a case.
    pub standard_days: u32,
    /// Purposes under which older data may be authorised.
    pub extended_purposes: Vec<String>,
    /// Nothing older than this many days is held.
    pub retention_days: u32,
    /// Roles that may lift the node's caps on broad searches (`allow_broad`).
    pub broad_roles: Vec<Role>,
    /// Roles that may search nationally (fanned out to other nodes, beyond
    /// the user's own agency's node).
    pub national_roles: Vec<Role>,
    /// Roles that may watch hotlist hits and record verifications (the
    /// alerting roles).
    pub alert_roles: Vec<Role>,
    /// Alerts raised within this many minutes are live: a watcher sees them
    /// (its force's) without naming a case. Replaying older alerts is
    /// history, disclosed like a search: it needs a purpose and a case.
    pub alert_live_minutes: u32,
    /// An authorisation lapses at most this many days after its grant.
    pub max_authorisation_days: u32,
}

impl Default for AccessPolicy {
    fn default() -> Self {
        Self {
            purposes: [
                "serious-crime",
                "major-crime",
                "counter-terrorism",
                "volume-crime",
                "missing-person",
                "road-traffic-collision",
                "intelligence",
            ]
            .map(String::from)
            .to_vec(),
            standard_days: 90,
            extended_purposes: ["serious-crime", "major-crime", "counter-terrorism"]
                .map(String::from)
                .to_vec(),
            retention_days: 365,
            broad_roles: vec![Role::Supervisor],
            national_roles: vec![
                Role::Analyst,
                Role::Investigator,
                Role::Supervisor,
                Role::Disclosure,
            ],
            alert_roles: vec![
                Role::Analyst,
                Role::Investigator,
                Role::Supervisor,
                Role::HotlistManager,
            ],
            alert_live_minutes: 60,
            max_authorisation_days: 30,
        }
    }
}

/// The window a search may use after the data-age check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Permitted {
    /// Start (possibly later than asked).
    pub from: Timestamp,
    /// End.
    pub to: Timestamp,
    /// Set when the start was moved: the start asked for.
    pub clipped_from: Option<Timestamp>,
}

impl AccessPolicy {
    /// Whether a caller holding `roles` may lift the caps on broad searches.
    pub fn check_broad(&self, roles: &[Role]) -> Result<(), AccessError> {
        if roles.iter().any(|r| self.broad_roles.contains(r)) {
            return Ok(());
        }
        Err(AccessError::Denied(format!(
            "allow_broad (lifting the caps on radius, window, areas and cameras) needs the {} role",
            self.broad_roles
                .iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join(" or ")
        )))
    }

    /// Whether a caller holding `roles` may search nationally.
    pub fn check_national(&self, roles: &[Role]) -> Result<(), AccessError> {
        if roles.iter().any(|r| self.national_roles.contains(r)) {
            return Ok(());
        }
        Err(AccessError::Denied(format!(
            "a national search (fanned out to other nodes) needs the {} role; search this node only (scope local) instead",
            self.national_roles
                .iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join(" or ")
        )))
    }

    /// Whether a caller holding `roles` may watch alerts and verify them.
    pub fn check_alerts(&self, roles: &[Role]) -> Result<(), AccessError> {
        if roles.iter().any(|r| self.alert_roles.contains(r)) {
            return Ok(());
        }
        Err(AccessError::Denied(format!(
            "watching and verifying alerts needs the {} role",
            self.alert_roles
                .iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join(" or ")
        )))
    }

    /// The earliest raise time of a live alert at `now`: older ones are
    /// history.
    pub fn live_alerts_from(&self, now: Timestamp) -> Timestamp {
        now.plus_millis(-i64::from(self.alert_live_minutes) * 60_000)
    }

    /// Checks a purpose code against the list.
    pub fn check_purpose(&self, purpose: &str) -> Result<(), AccessError> {
        check_ref("purpose", purpose, true)?;
        if !self.purposes.iter().any(|p| p == purpose) {
            return Err(AccessError::Context(format!(
                "purpose {purpose:?} is not one of this node's purposes: {}",
                self.purposes.join(", ")
            )));
        }
        Ok(())
    }

    /// Checks a request's purpose and case reference.
    pub fn check_context(&self, ctx: &AccessContext) -> Result<(), AccessError> {
        self.check_purpose(&ctx.purpose)?;
        check_ref("case reference", &ctx.case_ref, true)?;
        check_ref("authorisation id", &ctx.authorisation, false)
    }

    /// The start of the standard tier at `now`.
    pub fn standard_start(&self, now: Timestamp) -> Timestamp {
        now.minus_days(self.standard_days)
    }

    /// The latest an authorisation granted at `granted_at` may lapse.
    pub fn authorisation_cap(&self, granted_at: Timestamp) -> Timestamp {
        granted_at.plus_millis(i64::from(self.max_authorisation_days) * crate::time::MS_PER_DAY)
    }

    /// Decides the window `from..=to` for `user` of `force` under `ctx` at
    /// `now`, given the authorisation `ctx` names (looked up by the caller
    /// among `force`'s own; `None` if it names none or an unknown one).
    ///
    /// The part of the window older than the standard tier must lie inside
    /// a usable authorisation's range, both ends inclusive. Otherwise the
    /// window is refused, or with [`OlderData::Clip`] its start is moved to
    /// the earliest instant from which the rest of it is permitted
    /// throughout; if its end itself is not permitted, it is refused all
    /// the same (clipping only ever moves the start, which the response
    /// reports as `clipped_from`).
    #[allow(clippy::too_many_arguments)]
    pub fn permit(
        &self,
        now: Timestamp,
        from: Timestamp,
        to: Timestamp,
        user: &str,
        force: &ForceId,
        ctx: &AccessContext,
        authorisation: Option<&Authorisation>,
        older: OlderData,
    ) -> Result<Permitted, AccessError> {
        let standard = self.standard_start(now);
        let whole = Permitted {
            from,
            to,
            clipped_from: None,
        };
        if from >= standard {
            return Ok(whole);
        }
        // The part of the window older than the standard tier.
        let older_end = to.min(standard.plus_millis(-1));
        // The range a usable authorisation opens, when it does not cover
        // the older part.
        let mut opened = None;
        let why_not = match (ctx.authorisation.is_empty(), authorisation) {
            (true, _) => format!(
                "the window starts {from}, before {standard} ({} days ago): older data needs a supervisor's authorisation (--authorisation ID)",
                self.standard_days
            ),
            (false, None) => format!(
                "authorisation {:?} does not exist in {force}",
                ctx.authorisation
            ),
            (false, Some(a)) => match self.authorisation_problem(now, user, force, ctx, a) {
                Some(p) => format!("authorisation {:?} {p}", a.id),
                None if from >= a.data_from && older_end <= a.data_to => return Ok(whole),
                None => {
                    opened = Some((a.data_from, a.data_to));
                    if from < a.data_from {
                        format!(
                            "authorisation {:?} covers data from {} only; the window starts {from}",
                            a.id, a.data_from
                        )
                    } else {
                        format!(
                            "authorisation {:?} covers data to {} only; the window's part older than the standard tier ends {older_end}",
                            a.id, a.data_to
                        )
                    }
                }
            },
        };
        if older == OlderData::Refuse {
            return Err(AccessError::Denied(why_not));
        }
        // The latest part of the window permitted throughout: the standard
        // tier, extended back through the authorised range when that range
        // reaches the instant before the tier (or, for a window wholly
        // older, when it holds the window's end).
        let start = match opened {
            Some((f, t)) if to >= standard && t >= standard.plus_millis(-1) && f < standard => {
                Some(from.max(f))
            }
            _ if to >= standard => Some(standard),
            Some((f, t)) if f <= to && to <= t => Some(from.max(f)),
            _ => None,
        };
        match start {
            Some(start) => Ok(Permitted {
                from: start,
                to,
                clipped_from: Some(from),
            }),
            None => Err(AccessError::Denied(format!(
                "{why_not} (clip_to_permitted cannot help: the window's end, {to}, is not permitted)"
            ))),
        }
    }

    /// What keeps `a` from opening older data for `user` of `force` under
    /// `ctx` at `now`, whatever the window (the range is checked apart).
    fn authorisation_problem(
        &self,
        now: Timestamp,
        user: &str,
        force: &ForceId,
        ctx: &AccessContext,
        a: &Authorisation,
    ) -> Option<String> {
        if a.force != *force {
            return Some(format!("was granted in {}, not {force}", a.force));
        }
        if let Some(r) = &a.revoked {
            return Some(format!(
                "was revoked by {} at {} ({}): it opens nothing",
                r.by, r.at, r.reason
            ));
        }
        if a.granted_by == user {
            return Some(format!(
                "was granted by {user}: no self-authorisation, a supervisor's own searches need another supervisor's authorisation"
            ));
        }
        if !a.user.is_empty() && a.user != user {
            return Some(format!("is for user {}, not {user}", a.user));
        }
        if a.case_ref != ctx.case_ref {
            return Some(format!(
                "is for case {:?}, not {:?}",
                a.case_ref, ctx.case_ref
            ));
        }
        if a.purpose != ctx.purpose {
            return Some(format!(
                "is for purpose {:?}, not {:?}",
                a.purpose, ctx.purpose
            ));
        }
        if !self.extended_purposes.contains(&ctx.purpose) {
            return Some(format!(
                "cannot open older data for purpose {:?}",
                ctx.purpose
            ));
        }
        let lapses = a.lapses_at(self);
        if now >= lapses {
            return Some(if lapses < a.expires_at {
                format!(
                    "expired at {lapses} (max_authorisation_days = {} after its grant)",
                    self.max_authorisation_days
                )
            } else {
                format!("expired at {lapses}")
            });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    fn now() -> Timestamp {
        Timestamp::parse_rfc3339("2026-11-24T12:00:00Z").unwrap()
    }

    fn ctx(purpose: &str, auth: &str) -> AccessContext {
        AccessContext {
            purpose: purpose.into(),
            case_ref: "OP-1".into(),
            authorisation: auth.into(),
        }
    }

    fn avon() -> ForceId {
        ForceId::new("AVON").unwrap()
    }

    fn auth() -> Authorisation {
        Authorisation {
            id: "AUTH-1".into(),
            granted_by: "sam".into(),
            force: avon(),
            granted_at: now(),
            case_ref: "OP-1".into(),
            purpose: "serious-crime".into(),
            user: String::new(),
            data_from: now().plus_millis(-200 * DAY),
            data_to: now(),
            expires_at: now().plus_millis(7 * DAY),
            reason: "murder inquiry".into(),
            revoked: None,
        }
    }

    /// `permit` for `user` over `from..=to`.
    fn permit_window(
        from: Timestamp,
        to: Timestamp,
        user: &str,
        a: &Authorisation,
        older: OlderData,
    ) -> Result<Permitted, AccessError> {
        AccessPolicy::default().permit(
            now(),
            from,
            to,
            user,
            &avon(),
            &ctx("serious-crime", "AUTH-1"),
            Some(a),
            older,
        )
    }

    fn days_ago(d: i64) -> Timestamp {
        now().plus_millis(-d * DAY)
    }

    fn permit(
        from_days: i64,
        c: &AccessContext,
        a: Option<&Authorisation>,
        older: OlderData,
    ) -> Result<Permitted, AccessError> {
        AccessPolicy::default().permit(
            now(),
            now().plus_millis(-from_days * DAY),
            now(),
            "alice",
            &avon(),
            c,
            a,
            older,
        )
    }

    #[test]
    fn the_standard_tier_needs_only_purpose_and_case() {
        let p = AccessPolicy::default();
        assert!(p.check_context(&ctx("serious-crime", "")).is_ok());
        assert!(p.check_context(&ctx("shopping", "")).is_err());
        let mut no_case = ctx("volume-crime", "");
        no_case.case_ref.clear();
        assert!(
            p.check_context(&no_case)
                .unwrap_err()
                .to_string()
                .contains("case reference is required")
        );
        // Exactly 90 days back is still standard; a millisecond more is not.
        let edge = AccessPolicy::default().permit(
            now(),
            now().minus_days(90),
            now(),
            "alice",
            &avon(),
            &ctx("volume-crime", ""),
            None,
            OlderData::Refuse,
        );
        assert!(edge.is_ok());
        let over = AccessPolicy::default().permit(
            now(),
            now().minus_days(90).plus_millis(-1),
            now(),
            "alice",
            &avon(),
            &ctx("volume-crime", ""),
            None,
            OlderData::Refuse,
        );
        assert!(matches!(over, Err(AccessError::Denied(_))));
    }

    #[test]
    fn older_data_needs_a_matching_live_authorisation_or_is_clipped() {
        let a = auth();
        let ok = permit(
            150,
            &ctx("serious-crime", "AUTH-1"),
            Some(&a),
            OlderData::Refuse,
        )
        .unwrap();
        assert_eq!(ok.clipped_from, None);
        // Wrong purpose, case, force, user, expired, or not covering: refused.
        let bad = |c: AccessContext, a: Authorisation| {
            permit(150, &c, Some(&a), OlderData::Refuse)
                .unwrap_err()
                .to_string()
        };
        assert!(bad(ctx("major-crime", "AUTH-1"), auth()).contains("purpose"));
        let mut other_case = ctx("serious-crime", "AUTH-1");
        other_case.case_ref = "OP-2".into();
        assert!(bad(other_case, auth()).contains("case"));
        let mut kent = auth();
        kent.force = ForceId::new("KENT").unwrap();
        assert!(bad(ctx("serious-crime", "AUTH-1"), kent).contains("KENT"));
        let mut bob_only = auth();
        bob_only.user = "bob".into();
        assert!(bad(ctx("serious-crime", "AUTH-1"), bob_only).contains("bob"));
        let mut lapsed = auth();
        lapsed.expires_at = now();
        assert!(bad(ctx("serious-crime", "AUTH-1"), lapsed).contains("expired"));
        let mut short = auth();
        short.data_from = now().plus_millis(-120 * DAY);
        assert!(bad(ctx("serious-crime", "AUTH-1"), short).contains("covers data from"));
        assert!(
            permit(150, &ctx("serious-crime", "NOPE"), None, OlderData::Refuse)
                .unwrap_err()
                .to_string()
                .contains("does not exist")
        );
        // Clipping moves the start to the standard tier and says so.
        let clipped = permit(150, &ctx("volume-crime", ""), None, OlderData::Clip).unwrap();
        assert_eq!(clipped.from, now().minus_days(90));
        assert_eq!(clipped.clipped_from, Some(now().plus_millis(-150 * DAY)));
    }

    #[test]
    fn an_authorisation_needs_an_extended_purpose() {
        let p = AccessPolicy::default();
        assert!(auth().validate(&p).is_ok());
        let mut volume = auth();
        volume.purpose = "volume-crime".into();
        assert!(matches!(volume.validate(&p), Err(AccessError::Denied(_))));
        let mut no_reason = auth();
        no_reason.reason = " ".into();
        assert!(no_reason.validate(&p).is_err());
    }

    #[test]
    fn the_authorised_range_is_enforced_at_its_end_to_the_millisecond() {
        let mut a = auth();
        a.data_to = days_ago(120);
        // A window wholly older than the standard tier: its end may be
        // data_to itself, not a millisecond after.
        let ok = permit_window(days_ago(150), days_ago(120), "alice", &a, OlderData::Refuse);
        assert_eq!(ok.unwrap().clipped_from, None);
        let over = permit_window(
            days_ago(150),
            days_ago(120).plus_millis(1),
            "alice",
            &a,
            OlderData::Refuse,
        )
        .unwrap_err();
        assert!(matches!(over, AccessError::Denied(_)));
        assert!(over.to_string().contains("covers data to"), "{over}");
        // Clipping cannot help when the window's end is not permitted.
        let e = permit_window(days_ago(150), days_ago(100), "alice", &a, OlderData::Clip)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("covers data to") && e.contains("clip_to_permitted cannot help"),
            "{e}"
        );
        // A window reaching into the standard tier: its older part ends a
        // millisecond before the tier, and that must be covered.
        let standard = now().minus_days(90);
        a.data_to = standard.plus_millis(-1);
        assert!(permit_window(days_ago(150), now(), "alice", &a, OlderData::Refuse).is_ok());
        a.data_to = standard.plus_millis(-2);
        let e = permit_window(days_ago(150), now(), "alice", &a, OlderData::Refuse)
            .unwrap_err()
            .to_string();
        assert!(e.contains("covers data to"), "{e}");
        // Clipped, it keeps only the standard tier: the gap between the
        // range and the tier is never opened.
        let c = permit_window(days_ago(150), now(), "alice", &a, OlderData::Clip).unwrap();
        assert_eq!(
            (c.from, c.to, c.clipped_from),
            (standard, now(), Some(days_ago(150)))
        );
        // The start is exact too: data_from itself, not a millisecond before.
        let a = auth();
        assert!(permit_window(a.data_from, now(), "alice", &a, OlderData::Refuse).is_ok());
        let e = permit_window(
            a.data_from.plus_millis(-1),
            now(),
            "alice",
            &a,
            OlderData::Refuse,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("covers data from"), "{e}");
        // Clipped, it starts at data_from (the range reaches the tier).
        let c = permit_window(days_ago(250), now(), "alice", &a, OlderData::Clip).unwrap();
        assert_eq!((c.from, c.clipped_from), (a.data_from, Some(days_ago(250))));
        // A wholly older window clipped to the range's start.
        let c = permit_window(days_ago(250), days_ago(150), "alice", &a, OlderData::Clip).unwrap();
        assert_eq!((c.from, c.to), (a.data_from, days_ago(150)));
    }

    #[test]
    fn a_supervisor_cannot_authorise_their_own_searches() {
        let p = AccessPolicy::default();
        // At grant: naming themselves.
        let mut own = auth();
        own.user = "sam".into();
        let e = own.validate(&p).unwrap_err();
        assert!(matches!(e, AccessError::Denied(_)));
        assert!(e.to_string().contains("no self-authorisation"), "{e}");
        // At search: one for any user of the force does not cover its granter.
        let a = auth();
        let e = permit_window(days_ago(150), now(), "sam", &a, OlderData::Refuse)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no self-authorisation"), "{e}");
        assert!(permit_window(days_ago(150), now(), "alice", &a, OlderData::Refuse).is_ok());
        // Nor one recorded before the rule naming its granter.
        let e = permit_window(days_ago(150), now(), "sam", &own, OlderData::Refuse)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no self-authorisation"), "{e}");
        // The standard tier needs no authorisation, so it is not refused.
        assert!(permit_window(days_ago(30), now(), "sam", &a, OlderData::Refuse).is_ok());
    }

    #[test]
    fn an_authorisation_runs_at_most_the_configured_days() {
        let p = AccessPolicy::default();
        assert_eq!(p.max_authorisation_days, 30);
        let mut a = auth();
        a.expires_at = now().plus_millis(30 * DAY);
        assert!(a.validate(&p).is_ok());
        a.expires_at = now().plus_millis(30 * DAY + 1);
        let e = a.validate(&p).unwrap_err().to_string();
        assert!(e.contains("max_authorisation_days = 30"), "{e}");
        let short = AccessPolicy {
            max_authorisation_days: 5,
            ..AccessPolicy::default()
        };
        let e = auth().validate(&short).unwrap_err().to_string();
        assert!(e.contains("max_authorisation_days = 5"), "{e}");
        // One recorded with a longer expiry lapses at the cap all the same.
        let mut long = auth();
        long.expires_at = now().plus_millis(60 * DAY);
        long.data_from = now().plus_millis(-400 * DAY);
        let at = |t: Timestamp| {
            p.permit(
                t,
                t.plus_millis(-150 * DAY),
                t,
                "alice",
                &avon(),
                &ctx("serious-crime", "AUTH-1"),
                Some(&long),
                OlderData::Refuse,
            )
        };
        assert!(at(now().plus_millis(30 * DAY - 1)).is_ok());
        let e = at(now().plus_millis(30 * DAY)).unwrap_err().to_string();
        assert!(
            e.contains("expired") && e.contains("max_authorisation_days"),
            "{e}"
        );
    }

    #[test]
    fn a_revoked_authorisation_opens_nothing() {
        let mut a = auth();
        a.revoked = Some(Revocation {
            by: "sue".into(),
            at: now(),
            reason: "case closed".into(),
        });
        let e = permit_window(days_ago(150), now(), "alice", &a, OlderData::Refuse)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("revoked by sue") && e.contains("case closed"),
            "{e}"
        );
        // Clipped, only the standard tier is left.
        let c = permit_window(days_ago(150), now(), "alice", &a, OlderData::Clip).unwrap();
        assert_eq!(c.from, now().minus_days(90));
        let no_reason = Revocation {
            by: "sue".into(),
            at: now(),
            reason: "  ".into(),
        };
        assert!(no_reason.validate().is_err());
        let long = Revocation {
            reason: "x".repeat(MAX_REASON_LEN + 1),
            ..no_reason
        };
        assert!(
            long.validate()
                .unwrap_err()
                .to_string()
                .contains("longer than")
        );
    }
}
