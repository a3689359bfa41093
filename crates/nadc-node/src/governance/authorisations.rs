//! Supervisors' authorisations to search data older than the standard
//! tier: the registry searches look them up in, and the Authorisations
//! service that grants, revokes and lists them.
//!
//! Invariants:
//! - An authorisation belongs to its granting force: it is stored, looked
//!   up and listed by (force, id), so two forces may each have `AUTH-1` and
//!   a searcher quoting an id only ever finds their own force's.
//! - Only a supervisor grants or revokes, and only for their own force; a
//!   grant naming its granter, or lapsing more than `max_authorisation_days`
//!   after it, is refused.
//! - Every grant and revocation, and every refusal of one, is audited with
//!   a bounded record. A grant is audited before it is stored (it never
//!   opens data unaudited); a revocation is stored before it is audited (a
//!   failed audit write never leaves it open).
//! - A revoked authorisation opens nothing from then on and stays listed,
//!   with who revoked it, when and why.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use nadc_core::access::{
    AccessContext, AccessError, Authorisation, MAX_REASON_LEN, MAX_REF_LEN, Revocation,
};
use nadc_core::audit::Outcome;
use nadc_core::{ForceId, Principal, Role, Timestamp};
use nadc_proto::governance::authorisation_to_pb;
use nadc_proto::log::Change;
use nadc_proto::{self as proto, pb};
use nadc_store::{Store, StoreError};
use tonic::{Request, Response, Status};
use tracing::{info, warn};

use super::{Actor, Audited, Governance};
use crate::auth::caller;
use crate::changes::Changed;
use crate::error::ServiceError;

/// The authorisations of every force, as stored, by (force, id).
pub(crate) struct Registry {
    by_key: RwLock<BTreeMap<(ForceId, String), Authorisation>>,
    /// One grant or revocation at a time, so a check against the registry
    /// holds until its write.
    writing: tokio::sync::Mutex<()>,
}

fn poisoned() -> Status {
    Status::from(ServiceError::internal(
        "authorisation registry lock poisoned",
    ))
}

impl Registry {
    /// Loads every stored authorisation.
    pub(crate) fn load(store: &dyn Store) -> Result<Self, StoreError> {
        let by_key = store
            .authorisations()?
            .into_iter()
            .map(|a| ((a.force.clone(), a.id.clone()), a))
            .collect();
        Ok(Self {
            by_key: RwLock::new(by_key),
            writing: tokio::sync::Mutex::new(()),
        })
    }

    /// `force`'s authorisation `id`, if it has one.
    pub(crate) fn get(&self, force: &ForceId, id: &str) -> Result<Option<Authorisation>, Status> {
        Ok(self
            .by_key
            .read()
            .map_err(|_| poisoned())?
            .get(&(force.clone(), id.to_string()))
            .cloned())
    }

    fn put(&self, a: Authorisation) -> Result<(), Status> {
        self.by_key
            .write()
            .map_err(|_| poisoned())?
            .insert((a.force.clone(), a.id.clone()), a);
        Ok(())
    }

    fn of_force(&self, force: &ForceId) -> Result<Vec<Authorisation>, Status> {
        Ok(self
            .by_key
            .read()
            .map_err(|_| poisoned())?
            .values()
            .filter(|a| a.force == *force)
            .cloned()
            .collect())
    }
}

impl Governance {
    /// Stores a granted authorisation and opens what it opens (a change
    /// applied, `crate::changes`): whether it is new (one of its id in its
    /// force stays as it was). Blocking.
    pub fn apply_grant(&self, a: &Authorisation) -> Result<bool, StoreError> {
        let fresh = self.store.put_authorisation(a)?;
        if fresh {
            self.authorisations
                .put(a.clone())
                .map_err(registry_poisoned)?;
        }
        Ok(fresh)
    }

    /// Withdraws `force`'s authorisation `id` (a change applied): the
    /// authorisation as it is left and whether the revocation is new, or
    /// none if there is no such authorisation. Blocking.
    pub fn apply_revoke(
        &self,
        force: &ForceId,
        id: &str,
        revocation: &Revocation,
    ) -> Result<Option<(Authorisation, bool)>, StoreError> {
        let out = self.store.revoke_authorisation(force, id, revocation)?;
        if let Some((a, _)) = &out {
            self.authorisations
                .put(a.clone())
                .map_err(registry_poisoned)?;
        }
        Ok(out)
    }
}

fn registry_poisoned(s: Status) -> StoreError {
    StoreError::Engine(s.message().to_string())
}

/// Why a grant or revocation was not done.
#[derive(Debug, thiserror::Error)]
pub enum AuthorisationError {
    /// The caller may not do this (role, or a rule such as no
    /// self-authorisation).
    #[error("{0}")]
    Denied(String),
    /// The request is malformed or outside a limit.
    #[error("{0}")]
    Invalid(String),
    /// The caller's force has no such authorisation.
    #[error("{0}")]
    NotFound(String),
    /// The caller's force already has an authorisation with this id.
    #[error("{0}")]
    Exists(String),
    /// It is already revoked.
    #[error("{0}")]
    Revoked(String),
    /// The store failed.
    #[error("store unavailable: {0}")]
    Store(#[from] StoreError),
    /// The audit could not be written (or a task failed): nothing more is
    /// recorded, the status is passed on.
    #[error("{}", .0.message())]
    Unrecorded(Status),
}

impl From<Status> for AuthorisationError {
    fn from(s: Status) -> Self {
        Self::Unrecorded(s)
    }
}

impl From<AccessError> for AuthorisationError {
    fn from(e: AccessError) -> Self {
        match e {
            AccessError::Context(m) => Self::Invalid(m),
            AccessError::Denied(m) => Self::Denied(m),
        }
    }
}

impl From<AuthorisationError> for Status {
    fn from(e: AuthorisationError) -> Self {
        let m = e.to_string();
        match e {
            AuthorisationError::Denied(_) => Status::permission_denied(m),
            AuthorisationError::Invalid(_) => Status::invalid_argument(m),
            AuthorisationError::NotFound(_) => Status::not_found(m),
            AuthorisationError::Exists(_) => Status::already_exists(m),
            AuthorisationError::Revoked(_) => Status::failed_precondition(m),
            AuthorisationError::Store(_) => Status::unavailable(m),
            AuthorisationError::Unrecorded(s) => s,
        }
    }
}

/// `s` cut to at most `max` characters, saying how long it was: what a
/// request puts in the audit is bounded whatever it sends.
pub(crate) fn bounded(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_string(),
        Some((cut, _)) => format!("{}… ({} characters)", &s[..cut], s.chars().count()),
    }
}

/// Longest refusal reason kept in an audit entry.
const MAX_AUDITED_REASON: usize = 2 * MAX_REASON_LEN;

/// The force and name of a supervisor, or why the caller is not one.
fn supervisor(p: &Principal, doing: &str) -> Result<(ForceId, String), AuthorisationError> {
    match p {
        Principal::User { force, name, roles } if roles.contains(&Role::Supervisor) => {
            Ok((force.clone(), name.clone()))
        }
        other => Err(AuthorisationError::Denied(format!(
            "{doing} needs a user certificate with the supervisor role; caller is {other}"
        ))),
    }
}

fn required_time(
    t: Option<&prost_types::Timestamp>,
    what: &str,
) -> Result<Timestamp, AuthorisationError> {
    let t = t.ok_or_else(|| AuthorisationError::Invalid(format!("{what} is required")))?;
    proto::from_pb_time(t)
        .ok_or_else(|| AuthorisationError::Invalid(format!("{what} is outside 1970 to 9999")))
}

fn time_json(t: Option<&prost_types::Timestamp>) -> serde_json::Value {
    t.and_then(proto::from_pb_time)
        .map_or(serde_json::Value::Null, |t| t.to_rfc3339().into())
}

/// The audit record of a grant request, bounded before anything is checked.
fn grant_audited(q: &pb::GrantRequest) -> Audited {
    Audited {
        access: AccessContext {
            purpose: bounded(q.purpose.trim(), MAX_REF_LEN),
            case_ref: bounded(q.case_ref.trim(), MAX_REF_LEN),
            authorisation: bounded(q.id.trim(), MAX_REF_LEN),
        },
        query: serde_json::json!({
            "id": bounded(q.id.trim(), MAX_REF_LEN),
            "user": bounded(q.user.trim(), MAX_REF_LEN),
            "data_from": time_json(q.data_from.as_ref()),
            "data_to": time_json(q.data_to.as_ref()),
            "expires_at": time_json(q.expires_at.as_ref()),
            "reason": bounded(q.reason.trim(), MAX_REASON_LEN),
        }),
        returned: Vec::new(),
    }
}

/// The audit record of a revocation request, bounded likewise.
fn revoke_audited(q: &pb::RevokeRequest) -> Audited {
    Audited {
        access: AccessContext {
            authorisation: bounded(q.id.trim(), MAX_REF_LEN),
            ..AccessContext::default()
        },
        query: serde_json::json!({
            "id": bounded(q.id.trim(), MAX_REF_LEN),
            "reason": bounded(q.reason.trim(), MAX_REASON_LEN),
        }),
        returned: Vec::new(),
    }
}

/// The Authorisations service.
#[derive(Clone)]
pub struct AuthorisationsService {
    /// Access rules, authorisations and the audit.
    pub governance: Arc<Governance>,
    /// Where grants and revocations are made (through the replicated log
    /// in replicated mode, so every replica opens and closes alike).
    pub changes: Arc<crate::changes::Changes>,
}

impl AuthorisationsService {
    /// Audits a refusal (bounded) and returns it.
    async fn refuse(
        &self,
        actor: &Actor,
        action: &str,
        what: &Audited,
        e: AuthorisationError,
    ) -> Status {
        let g = &self.governance;
        let outcome = match &e {
            AuthorisationError::Unrecorded(_) => return e.into(),
            AuthorisationError::Store(_) => Outcome::Failed(e.to_string()),
            _ => Outcome::Refused(bounded(&e.to_string(), MAX_AUDITED_REASON)),
        };
        if let Err(s) = g.record(g.entry(actor, action, what, outcome)).await {
            return s;
        }
        e.into()
    }

    async fn try_grant(
        &self,
        actor: &Actor,
        who: &Principal,
        q: &pb::GrantRequest,
        what: &Audited,
    ) -> Result<Authorisation, AuthorisationError> {
        let g = &self.governance;
        let (force, name) = supervisor(who, "granting an authorisation")?;
        let a = Authorisation {
            id: q.id.trim().to_string(),
            granted_by: name,
            force,
            granted_at: g.now(),
            case_ref: q.case_ref.trim().to_string(),
            purpose: q.purpose.trim().to_ascii_lowercase(),
            user: q.user.trim().to_string(),
            data_from: required_time(q.data_from.as_ref(), "data_from")?,
            data_to: required_time(q.data_to.as_ref(), "data_to")?,
            expires_at: required_time(q.expires_at.as_ref(), "expires_at")?,
            reason: q.reason.trim().to_string(),
            revoked: None,
        };
        a.validate(&g.policy)?;
        let _writing = g.authorisations.writing.lock().await;
        if g.authorisations.get(&a.force, &a.id)?.is_some() {
            return Err(AuthorisationError::Exists(format!(
                "authorisation {:?} already exists in {}",
                a.id, a.force
            )));
        }
        // Audited before it is stored: it never opens data unaudited.
        g.record(g.entry(actor, "authorisation.grant", what, Outcome::Ok))
            .await?;
        // In replicated mode through the log, so every replica opens it.
        let fresh = self.changes.submit(Change::Grant(a.clone())).await;
        match fresh {
            Ok(Changed::Granted(true)) => {}
            Ok(_) => {
                return Err(AuthorisationError::Exists(format!(
                    "authorisation {:?} already exists in {}",
                    a.id, a.force
                )));
            }
            Err(e) => {
                let e = Status::from(e);
                warn!(error = %e, id = %a.id, "authorisation audited as granted but not stored");
                return Err(e.into());
            }
        }
        Ok(a)
    }

    async fn try_revoke(
        &self,
        who: &Principal,
        q: &pb::RevokeRequest,
    ) -> Result<Authorisation, AuthorisationError> {
        let g = &self.governance;
        let (force, name) = supervisor(who, "revoking an authorisation")?;
        let id = q.id.trim();
        let revocation = Revocation {
            by: name,
            at: g.now(),
            reason: q.reason.trim().to_string(),
        };
        revocation.validate()?;
        let _writing = g.authorisations.writing.lock().await;
        // Only the caller's own force's authorisations are ever found.
        let not_found = || {
            AuthorisationError::NotFound(format!(
                "authorisation {:?} does not exist in {force}; a supervisor revokes only their own force's authorisations",
                bounded(id, MAX_REF_LEN)
            ))
        };
        let Some(a) = g.authorisations.get(&force, id)? else {
            return Err(not_found());
        };
        if let Some(r) = &a.revoked {
            return Err(AuthorisationError::Revoked(format!(
                "authorisation {:?} was already revoked by {} at {}",
                a.id, r.by, r.at
            )));
        }
        // Stored (on every replica, in replicated mode) before it is
        // audited: whatever happens to the audit, it opens nothing from
        // here on.
        let revoked = match self
            .changes
            .submit(Change::Revoke {
                force: force.clone(),
                id: a.id.clone(),
                revocation,
            })
            .await
            .map_err(Status::from)?
        {
            Changed::Revoked(r) => r,
            _ => None,
        };
        let (a, fresh) = revoked.ok_or_else(not_found)?;
        if !fresh {
            return Err(AuthorisationError::Revoked(format!(
                "authorisation {:?} was already revoked",
                a.id
            )));
        }
        Ok(a)
    }
}

#[tonic::async_trait]
impl pb::authorisations_server::Authorisations for AuthorisationsService {
    async fn grant(
        &self,
        req: Request<pb::GrantRequest>,
    ) -> Result<Response<pb::AuthorisationInfo>, Status> {
        let who = caller(&req)?.principal;
        let actor = Actor::of(&who);
        let q = req.into_inner();
        let what = grant_audited(&q);
        match self.try_grant(&actor, &who, &q, &what).await {
            Ok(a) => {
                info!(id = %a.id, force = %a.force, by = %a.granted_by, case = %a.case_ref, "authorisation granted");
                Ok(Response::new(authorisation_to_pb(&a)))
            }
            Err(e) => Err(self.refuse(&actor, "authorisation.grant", &what, e).await),
        }
    }

    async fn revoke(
        &self,
        req: Request<pb::RevokeRequest>,
    ) -> Result<Response<pb::AuthorisationInfo>, Status> {
        let who = caller(&req)?.principal;
        let actor = Actor::of(&who);
        let q = req.into_inner();
        let what = revoke_audited(&q);
        match self.try_revoke(&who, &q).await {
            Ok(a) => {
                let g = &self.governance;
                g.record(g.entry(&actor, "authorisation.revoke", &what, Outcome::Ok))
                    .await?;
                info!(id = %a.id, force = %a.force, by = %actor.user, "authorisation revoked");
                Ok(Response::new(authorisation_to_pb(&a)))
            }
            Err(e) => Err(self.refuse(&actor, "authorisation.revoke", &what, e).await),
        }
    }

    async fn list_authorisations(
        &self,
        req: Request<pb::ListAuthorisationsRequest>,
    ) -> Result<Response<pb::ListAuthorisationsResponse>, Status> {
        let who = caller(&req)?;
        let Principal::User { force, name, roles } = &who.principal else {
            return Err(Status::from(ServiceError::denied(
                "listing authorisations needs a user certificate",
            )));
        };
        let all = roles
            .iter()
            .any(|r| matches!(r, Role::Supervisor | Role::Auditor));
        // The caller's own force's only, whatever the role.
        let list = self
            .governance
            .authorisations
            .of_force(force)?
            .iter()
            .filter(|a| all || a.user.is_empty() || a.user == *name)
            .map(authorisation_to_pb)
            .collect::<Vec<_>>();
        // Who is authorised for what, under which case: audited before it
        // is answered, like every disclosure of governance data.
        let what = Audited {
            query: serde_json::json!({"listed": list.len()}),
            ..Audited::default()
        };
        let g = &self.governance;
        g.record(g.entry(
            &Actor::of(&who.principal),
            "authorisation.list",
            &what,
            Outcome::Ok,
        ))
        .await?;
        Ok(Response::new(pb::ListAuthorisationsResponse {
            authorisations: list,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_keeps_short_text_and_cuts_long_text_saying_how_long() {
        assert_eq!(bounded("AUTH-1", 64), "AUTH-1");
        assert_eq!(bounded(&"é".repeat(64), 64), "é".repeat(64));
        let cut = bounded(&"é".repeat(100_000), 64);
        assert_eq!(cut, format!("{}… (100000 characters)", "é".repeat(64)));
    }
}
