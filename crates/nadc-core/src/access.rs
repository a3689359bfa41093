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

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::identity::{ForceId, Role};
use crate::time::Timestamp;

/// Longest case reference, purpose code or authorisation id.
pub const MAX_REF_LEN: usize = 64;

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

/// A supervisor's recorded authorisation to search older data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Authorisation {
    /// Its id (given to the searcher, who quotes it).
    pub id: String,
    /// The supervisor who granted it.
    pub granted_by: String,
    /// The supervisor's force; the authorisation covers its users.
    pub force: ForceId,
    /// When it was granted.
    pub granted_at: Timestamp,
    /// The case it is for.
    pub case_ref: String,
    /// The purpose it is for.
    pub purpose: String,
    /// Only this user of the force, or any user of it if empty.
    pub user: String,
    /// The capture-time range it opens.
    pub data_from: Timestamp,
    /// End of that range.
    pub data_to: Timestamp,
    /// It lapses at this time.
    pub expires_at: Timestamp,
    /// Why it was granted.
    pub reason: String,
}

impl Authorisation {
    /// Checks the fields of a new authorisation.
    pub fn validate(&self, policy: &AccessPolicy) -> Result<(), AccessError> {
        check_ref("authorisation id", &self.id, true)?;
        check_ref("case reference", &self.case_ref, true)?;
        policy.check_purpose(&self.purpose)?;
        if !policy.extended_purposes.contains(&self.purpose) {
            return Err(AccessError::Denied(format!(
                "purpose {:?} does not allow access to data older than {} days; allowed: {}",
                self.purpose,
                policy.standard_days,
                policy.extended_purposes.join(", ")
            )));
        }
        if self.data_from > self.data_to {
            return Err(AccessError::Context(
                "the authorised data range is inverted".into(),
            ));
        }
        if self.expires_at <= self.granted_at {
            return Err(AccessError::Context(
                "the authorisation expires before it is granted".into(),
            ));
        }
        if self.reason.trim().is_empty() {
            return Err(AccessError::Context("a reason is required".into()));
        }
        Ok(())
    }
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

    /// Decides the window `from..=to` for `user` of `force` under `ctx` at
    /// `now`, given the authorisation `ctx` names (looked up by the caller;
    /// `None` if it names none or an unknown one).
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
        if from >= standard {
            return Ok(Permitted {
                from,
                to,
                clipped_from: None,
            });
        }
        let why_not = match (ctx.authorisation.is_empty(), authorisation) {
            (true, _) => format!(
                "the window starts {from}, before {standard} ({} days ago): older data needs a supervisor's authorisation (--authorisation ID)",
                self.standard_days
            ),
            (false, None) => format!("authorisation {:?} does not exist", ctx.authorisation),
            (false, Some(a)) => match self.authorisation_problem(now, from, user, force, ctx, a) {
                None => {
                    return Ok(Permitted {
                        from,
                        to,
                        clipped_from: None,
                    });
                }
                Some(p) => format!("authorisation {:?} {p}", a.id),
            },
        };
        match older {
            OlderData::Clip if to >= standard => Ok(Permitted {
                from: standard,
                to,
                clipped_from: Some(from),
            }),
            _ => Err(AccessError::Denied(why_not)),
        }
    }

    fn authorisation_problem(
        &self,
        now: Timestamp,
        from: Timestamp,
        user: &str,
        force: &ForceId,
        ctx: &AccessContext,
        a: &Authorisation,
    ) -> Option<String> {
        if a.force != *force {
            return Some(format!("was granted in {}, not {force}", a.force));
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
        if now >= a.expires_at {
            return Some(format!("expired at {}", a.expires_at));
        }
        if from < a.data_from {
            return Some(format!(
                "covers data from {} only; the window starts {from}",
                a.data_from
            ));
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
        }
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
}
