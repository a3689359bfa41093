//! A supervisor's authorisation to search data older than the standard
//! tier, its revocation, and the checks made when one is granted.

use serde::{Deserialize, Serialize};

use super::{AccessError, AccessPolicy, check_ref};
use crate::identity::ForceId;
use crate::time::Timestamp;

/// Longest reason given for an authorisation or its revocation.
pub const MAX_REASON_LEN: usize = 1000;

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
    /// Set once it is revoked: from then on it opens nothing.
    pub revoked: Option<Revocation>,
}

/// The withdrawal of an authorisation: who, when, why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// The supervisor (of the authorisation's force) who revoked it.
    pub by: String,
    /// When.
    pub at: Timestamp,
    /// Why.
    pub reason: String,
}

impl Revocation {
    /// Checks a revocation's reason (required, bounded).
    pub fn validate(&self) -> Result<(), AccessError> {
        check_reason(&self.reason)
    }
}

fn check_reason(reason: &str) -> Result<(), AccessError> {
    if reason.trim().is_empty() {
        return Err(AccessError::Context("a reason is required".into()));
    }
    if reason.chars().count() > MAX_REASON_LEN {
        return Err(AccessError::Context(format!(
            "the reason is longer than {MAX_REASON_LEN} characters"
        )));
    }
    Ok(())
}

impl Authorisation {
    /// When it stops opening data: its expiry, or `max_authorisation_days`
    /// after its grant if that is sooner (so one recorded before the cap,
    /// or under a longer one, lapses at the cap all the same).
    pub fn lapses_at(&self, policy: &AccessPolicy) -> Timestamp {
        self.expires_at
            .min(policy.authorisation_cap(self.granted_at))
    }

    /// Checks the fields of a new authorisation.
    pub fn validate(&self, policy: &AccessPolicy) -> Result<(), AccessError> {
        check_ref("authorisation id", &self.id, true)?;
        check_ref("case reference", &self.case_ref, true)?;
        check_ref("user", &self.user, false)?;
        if !self.user.is_empty() && self.user == self.granted_by {
            return Err(AccessError::Denied(format!(
                "no self-authorisation: {} cannot grant an authorisation for their own searches; another supervisor of {} must grant it",
                self.granted_by, self.force
            )));
        }
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
        let cap = policy.authorisation_cap(self.granted_at);
        if self.expires_at > cap {
            return Err(AccessError::Context(format!(
                "expiry {} is beyond the cap of max_authorisation_days = {} after the grant (latest {cap}); grant a new authorisation when this one lapses",
                self.expires_at, policy.max_authorisation_days
            )));
        }
        check_reason(&self.reason)
    }
}
