//! Conversions for authorisations and audit entries.

use std::fmt;

use nadc_core::access::Authorisation;
use nadc_core::audit::{ChainedEntry, Outcome, hex};

use crate::{pb, to_pb_time};

/// The wire form of an authorisation.
pub fn authorisation_to_pb(a: &Authorisation) -> pb::AuthorisationInfo {
    pb::AuthorisationInfo {
        id: a.id.clone(),
        granted_by: a.granted_by.clone(),
        force: a.force.to_string(),
        granted_at: Some(to_pb_time(a.granted_at)),
        case_ref: a.case_ref.clone(),
        purpose: a.purpose.clone(),
        user: a.user.clone(),
        data_from: Some(to_pb_time(a.data_from)),
        data_to: Some(to_pb_time(a.data_to)),
        expires_at: Some(to_pb_time(a.expires_at)),
        reason: a.reason.clone(),
        revoked_by: a.revoked.as_ref().map(|r| r.by.clone()).unwrap_or_default(),
        revoked_at: a.revoked.as_ref().map(|r| to_pb_time(r.at)),
        revoke_reason: a
            .revoked
            .as_ref()
            .map(|r| r.reason.clone())
            .unwrap_or_default(),
    }
}

/// The wire form of a stored audit entry.
pub fn audit_to_pb(c: &ChainedEntry) -> pb::AuditRecord {
    let e = &c.entry;
    let reason = match &e.outcome {
        Outcome::Ok => String::new(),
        Outcome::Refused(r) | Outcome::Failed(r) => r.clone(),
    };
    pb::AuditRecord {
        seq: c.seq,
        at: Some(to_pb_time(e.at)),
        node: e.node.clone(),
        user: e.user.clone(),
        force: e
            .force
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        roles: e.roles.iter().map(|r| r.as_str().to_string()).collect(),
        action: e.action.clone(),
        purpose: e.purpose.clone(),
        case_ref: e.case_ref.clone(),
        authorisation: e.authorisation.clone(),
        query: e.query.clone(),
        returned: e
            .returned
            .iter()
            .map(|(f, n)| pb::ForceCount {
                force: f.to_string(),
                rows: *n,
            })
            .collect(),
        outcome: e.outcome.as_str().to_string(),
        reason,
        hash: hex(&c.hash),
        prev: hex(&c.prev),
    }
}

impl fmt::Debug for pb::AuditRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The query can name VRMs.
        f.debug_struct("AuditRecord")
            .field("seq", &self.seq)
            .field("user", &self.user)
            .field("force", &self.force)
            .field("action", &self.action)
            .field("outcome", &self.outcome)
            .finish_non_exhaustive()
    }
}
