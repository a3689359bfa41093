//! Lawful access on a node: the purpose, case and data-age checks every
//! search goes through, supervisors' authorisations, and the hash-chained
//! audit log with the services that verify and query it.
//!
//! Invariants:
//! - No search runs without a purpose from the node's list and a case
//!   reference; a refused search is audited as refused.
//! - A window reaching data older than the standard tier runs only under a
//!   live authorisation for the same force, case and purpose covering it;
//!   otherwise it is refused, or clipped when the request asks, and the
//!   summary says so.
//! - Every search, hotlist change, verification, authorisation and
//!   retention deletion is written to the audit chain before its answer is
//!   complete; if the audit cannot be written, the answer ends in an error.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::pin::Pin;
use std::sync::{Arc, RwLock};

use futures::Stream;
use nadc_core::access::{AccessContext, AccessPolicy, Authorisation, OlderData, Permitted};
use nadc_core::audit::{AuditEntry, ChainCheck, Outcome, hex};
use nadc_core::time::Clock;
use nadc_core::{ForceId, Principal, Role, Timestamp};
use nadc_proto::governance::{audit_to_pb, authorisation_to_pb};
use nadc_proto::{self as proto, pb};
use nadc_store::{Store, StoreError};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use tracing::{info, warn};

use crate::auth::caller;

/// Who is acting, as the audit records them.
#[derive(Clone, Debug)]
pub struct Actor {
    /// User name (or the BOF's force code, or `node`).
    pub user: String,
    /// Their force.
    pub force: Option<ForceId>,
    /// Their roles.
    pub roles: Vec<Role>,
}

impl Actor {
    /// The actor behind a principal.
    pub fn of(p: &Principal) -> Self {
        match p {
            Principal::User { force, name, roles } => Self {
                user: name.clone(),
                force: Some(force.clone()),
                roles: roles.clone(),
            },
            Principal::Bof { force } => Self {
                user: format!("bof:{force}"),
                force: Some(force.clone()),
                roles: Vec::new(),
            },
            Principal::Node { name } => Self {
                user: format!("node:{name}"),
                force: None,
                roles: Vec::new(),
            },
        }
    }

    /// The node itself (retention jobs).
    pub fn node() -> Self {
        Self {
            user: "node".into(),
            force: None,
            roles: Vec::new(),
        }
    }
}

/// Writes audit entries and checks access.
pub struct Governance {
    store: Arc<dyn Store>,
    node: String,
    clock: Arc<dyn Clock>,
    /// The node's access rules.
    pub policy: AccessPolicy,
    authorisations: RwLock<HashMap<String, Authorisation>>,
    /// The node's cases: owners, openings and shares.
    pub cases: crate::cases::Cases,
}

fn store_status(e: StoreError) -> Status {
    Status::unavailable(format!("store unavailable: {e}"))
}

/// An audit write that failed: nothing was done.
fn audit_unavailable(e: StoreError) -> Status {
    warn!(error = %e, "audit write failed");
    Status::unavailable(format!("audit log unavailable, nothing done: {e}"))
}

/// What an audited action did.
#[derive(Debug, Default)]
pub struct Audited {
    /// Purpose, case and authorisation given.
    pub access: AccessContext,
    /// The request (JSON).
    pub query: serde_json::Value,
    /// Owning forces of the data returned, with row counts.
    pub returned: Vec<(ForceId, u64)>,
}

impl Governance {
    /// Loads the authorisations.
    pub fn load(
        store: Arc<dyn Store>,
        node: String,
        clock: Arc<dyn Clock>,
        policy: AccessPolicy,
    ) -> Result<Self, StoreError> {
        let authorisations = store
            .authorisations()?
            .into_iter()
            .map(|a| (a.id.clone(), a))
            .collect();
        let cases = crate::cases::Cases::load(store.as_ref())?;
        Ok(Self {
            store,
            node,
            clock,
            policy,
            authorisations: RwLock::new(authorisations),
            cases,
        })
    }

    /// The node's name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The node's clock.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Builds the entry for `what` done by `actor` with `outcome`.
    pub fn entry(
        &self,
        actor: &Actor,
        action: &str,
        what: &Audited,
        outcome: Outcome,
    ) -> AuditEntry {
        AuditEntry {
            at: self.clock.now(),
            node: self.node.clone(),
            user: actor.user.clone(),
            force: actor.force.clone(),
            roles: actor.roles.clone(),
            action: action.to_string(),
            purpose: what.access.purpose.clone(),
            case_ref: what.access.case_ref.clone(),
            authorisation: what.access.authorisation.clone(),
            query: what.query.to_string(),
            returned: what.returned.clone(),
            outcome,
        }
    }

    /// Writes an entry (blocking: call off the runtime, or use [`record`]).
    ///
    /// [`record`]: Governance::record
    pub fn record_blocking(&self, entry: AuditEntry) -> Result<u64, Status> {
        self.store
            .append_audit(vec![entry])
            .map(|c| c.first().map_or(0, |e| e.seq))
            .map_err(audit_unavailable)
    }

    /// Writes a search's entry and, in the same durable batch, the reads
    /// it returned under its case (blocking): the case register never
    /// names a search the audit log lacks, nor the reverse. The first
    /// search under a case by a user of its owner force opens it, in the
    /// same batch. `case` is `None` only for a search refused before its
    /// case was known (nothing is registered).
    pub fn record_search_blocking(
        &self,
        entry: AuditEntry,
        case: Option<&crate::cases::CaseId>,
        returned: &[crate::disclosure::CaseRead],
    ) -> Result<u64, Status> {
        let Some(case) = case else {
            return self.record_blocking(entry);
        };
        let mut entries =
            crate::disclosure::register_entries(case, returned).map_err(audit_unavailable)?;
        let opening = (entry.force.as_ref() == Some(&case.owner) && !self.cases.is_opened(case))
            .then(|| crate::cases::Done {
                by: entry.user.clone(),
                at: entry.at.millis(),
            });
        if let Some(done) = &opening {
            entries.push(crate::cases::opening_entry(case, done).map_err(audit_unavailable)?);
        }
        let seq = self.record_registered_blocking(entry, entries)?;
        if let Some(done) = opening {
            self.cases.note_opened(case, done);
        }
        Ok(seq)
    }

    /// Writes an entry and, in the same durable batch, case register
    /// entries whose keys end with its sequence number (blocking).
    pub fn record_registered_blocking(
        &self,
        entry: AuditEntry,
        entries: nadc_store::RegistryEntries,
    ) -> Result<u64, Status> {
        self.store
            .append_audit_registered(entry, crate::cases::SPACE, entries)
            .map(|c| c.seq)
            .map_err(audit_unavailable)
    }

    /// Writes an entry.
    pub async fn record(self: &Arc<Self>, entry: AuditEntry) -> Result<u64, Status> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.record_blocking(entry))
            .await
            .map_err(|e| Status::internal(format!("audit task failed: {e}")))?
    }

    /// Checks a search's purpose and case (the context is required).
    pub fn context(
        &self,
        ctx: Option<&pb::AccessContext>,
    ) -> Result<(AccessContext, bool), Status> {
        let ctx = ctx.cloned().unwrap_or_default();
        let clip = ctx.clip_to_permitted;
        let ctx = AccessContext {
            purpose: ctx.purpose.trim().to_ascii_lowercase(),
            case_ref: ctx.case_ref.trim().to_string(),
            authorisation: ctx.authorisation.trim().to_string(),
        };
        self.policy
            .check_context(&ctx)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        Ok((ctx, clip))
    }

    /// The part of `from..=to` that `actor` may search under `ctx` at
    /// `now` (one instant per search, so its default window and its check
    /// agree).
    #[allow(clippy::too_many_arguments)]
    pub fn permit(
        &self,
        actor: &Actor,
        ctx: &AccessContext,
        clip: bool,
        from: Timestamp,
        to: Timestamp,
        now: Timestamp,
    ) -> Result<Permitted, Status> {
        let force = actor
            .force
            .as_ref()
            .ok_or_else(|| Status::permission_denied("searching needs a force user"))?;
        let auth = if ctx.authorisation.is_empty() {
            None
        } else {
            self.authorisations
                .read()
                .map_err(|_| Status::internal("authorisation lock poisoned"))?
                .get(&ctx.authorisation)
                .cloned()
        };
        self.policy
            .permit(
                now,
                from,
                to,
                &actor.user,
                force,
                ctx,
                auth.as_ref(),
                if clip {
                    OlderData::Clip
                } else {
                    OlderData::Refuse
                },
            )
            .map_err(|e| Status::permission_denied(e.to_string()))
    }
}

fn has_role(p: &Principal, wanted: &[Role]) -> Option<Actor> {
    match p {
        Principal::User { roles, .. } if roles.iter().any(|r| wanted.contains(r)) => {
            Some(Actor::of(p))
        }
        _ => None,
    }
}

fn require_role<T>(req: &Request<T>, wanted: &[Role], doing: &str) -> Result<Actor, Status> {
    let who = caller(req)?;
    has_role(&who.principal, wanted).ok_or_else(|| {
        Status::permission_denied(format!(
            "{doing} needs a user certificate with the {} role; caller is {}",
            wanted
                .iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join(" or "),
            who.principal
        ))
    })
}

fn required_time(t: Option<&prost_types::Timestamp>, what: &str) -> Result<Timestamp, Status> {
    let t = t.ok_or_else(|| Status::invalid_argument(format!("{what} is required")))?;
    proto::from_pb_time(t)
        .ok_or_else(|| Status::invalid_argument(format!("{what} is outside 1970 to 9999")))
}

/// The Authorisations service.
#[derive(Clone)]
pub struct AuthorisationsService {
    /// Access rules, authorisations and the audit.
    pub governance: Arc<Governance>,
}

#[tonic::async_trait]
impl pb::authorisations_server::Authorisations for AuthorisationsService {
    async fn grant(
        &self,
        req: Request<pb::GrantRequest>,
    ) -> Result<Response<pb::AuthorisationInfo>, Status> {
        let actor = require_role(&req, &[Role::Supervisor], "granting an authorisation")?;
        let q = req.into_inner();
        let g = &self.governance;
        let force = actor
            .force
            .clone()
            .ok_or_else(|| Status::permission_denied("a supervisor belongs to a force"))?;
        let a = Authorisation {
            id: q.id.trim().to_string(),
            granted_by: actor.user.clone(),
            force,
            granted_at: g.now(),
            case_ref: q.case_ref.trim().to_string(),
            purpose: q.purpose.trim().to_ascii_lowercase(),
            user: q.user.trim().to_string(),
            data_from: required_time(q.data_from.as_ref(), "data_from")?,
            data_to: required_time(q.data_to.as_ref(), "data_to")?,
            expires_at: required_time(q.expires_at.as_ref(), "expires_at")?,
            reason: q.reason.trim().to_string(),
        };
        let audited = Audited {
            access: AccessContext {
                purpose: a.purpose.clone(),
                case_ref: a.case_ref.clone(),
                authorisation: a.id.clone(),
            },
            query: serde_json::json!({
                "id": a.id, "user": a.user, "data_from": a.data_from.to_rfc3339(),
                "data_to": a.data_to.to_rfc3339(), "expires_at": a.expires_at.to_rfc3339(),
                "reason": a.reason,
            }),
            returned: Vec::new(),
        };
        if let Err(e) = a.validate(&g.policy) {
            g.record(g.entry(
                &actor,
                "authorisation.grant",
                &audited,
                Outcome::Refused(e.to_string()),
            ))
            .await?;
            return Err(Status::invalid_argument(e.to_string()));
        }
        let (store, stored) = (g.store.clone(), a.clone());
        let fresh = tokio::task::spawn_blocking(move || store.put_authorisation(&stored))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(store_status)?;
        if !fresh {
            return Err(Status::already_exists(format!(
                "authorisation {:?} already exists",
                a.id
            )));
        }
        g.record(g.entry(&actor, "authorisation.grant", &audited, Outcome::Ok))
            .await?;
        if let Ok(mut m) = g.authorisations.write() {
            m.insert(a.id.clone(), a.clone());
        }
        info!(id = %a.id, by = %actor.user, case = %a.case_ref, "authorisation granted");
        Ok(Response::new(authorisation_to_pb(&a)))
    }

    async fn list_authorisations(
        &self,
        req: Request<pb::ListAuthorisationsRequest>,
    ) -> Result<Response<pb::ListAuthorisationsResponse>, Status> {
        let who = caller(&req)?;
        let Principal::User { force, name, roles } = &who.principal else {
            return Err(Status::permission_denied(
                "listing authorisations needs a user certificate",
            ));
        };
        let all = roles
            .iter()
            .any(|r| matches!(r, Role::Supervisor | Role::Auditor));
        let list = self
            .governance
            .authorisations
            .read()
            .map_err(|_| Status::internal("authorisation lock poisoned"))?
            .values()
            .filter(|a| a.force == *force && (all || a.user.is_empty() || a.user == *name))
            .map(authorisation_to_pb)
            .collect();
        Ok(Response::new(pb::ListAuthorisationsResponse {
            authorisations: list,
        }))
    }
}

/// The Audit service.
#[derive(Clone)]
pub struct AuditService {
    /// The store holding the audit chain.
    pub store: Arc<dyn Store>,
}

/// Walks the whole audit chain.
pub fn verify_chain(store: &dyn Store) -> Result<pb::VerifyAuditResponse, StoreError> {
    let mut check = ChainCheck::default();
    let mut broken = None;
    let walked = store.audit(1, &mut |e| match check.check(&e) {
        Ok(()) => ControlFlow::Continue(()),
        Err(b) => {
            broken = Some(b);
            ControlFlow::Break(())
        }
    });
    match walked {
        Ok(()) => {}
        // An entry whose bytes no longer decode is a broken link too.
        Err(StoreError::Corrupt {
            what: "audit",
            detail,
        }) if broken.is_none() => {
            broken = Some(nadc_core::audit::BrokenLink {
                seq: check.checked + 1,
                reason: format!(
                    "entry {} cannot be read (its bytes were altered): {detail}",
                    check.checked + 1
                ),
            });
        }
        Err(e) => return Err(e),
    }
    Ok(pb::VerifyAuditResponse {
        entries: check.checked,
        intact: broken.is_none(),
        broken_at: broken.as_ref().map_or(0, |b| b.seq),
        reason: broken.map(|b| b.reason).unwrap_or_default(),
        head: hex(&check.head()),
    })
}

fn matches(q: &pb::AuditQuery, e: &AuditEntry, from: Timestamp, to: Timestamp) -> bool {
    let eq = |want: &str, got: &str| want.is_empty() || want.eq_ignore_ascii_case(got);
    e.at >= from
        && e.at <= to
        && eq(&q.user, &e.user)
        && eq(&q.force, e.force.as_ref().map_or("", |f| f.as_str()))
        && eq(&q.case_ref, &e.case_ref)
        && (q.action.is_empty() || e.action.starts_with(&q.action))
        && (q.owning_force.is_empty()
            || e.returned
                .iter()
                .any(|(f, n)| *n > 0 && f.as_str().eq_ignore_ascii_case(&q.owning_force)))
}

type RecordStream = Pin<Box<dyn Stream<Item = Result<pb::AuditRecord, Status>> + Send>>;

#[tonic::async_trait]
impl pb::audit_server::Audit for AuditService {
    async fn verify(
        &self,
        req: Request<pb::VerifyAuditRequest>,
    ) -> Result<Response<pb::VerifyAuditResponse>, Status> {
        let actor = require_role(&req, &[Role::Auditor], "verifying the audit log")?;
        let store = self.store.clone();
        let r = tokio::task::spawn_blocking(move || verify_chain(store.as_ref()))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(store_status)?;
        info!(by = %actor.user, entries = r.entries, intact = r.intact, "audit chain verified");
        Ok(Response::new(r))
    }

    type QueryStream = RecordStream;

    async fn query(
        &self,
        req: Request<pb::AuditQuery>,
    ) -> Result<Response<Self::QueryStream>, Status> {
        require_role(&req, &[Role::Auditor], "querying the audit log")?;
        let q = req.into_inner();
        let from = q
            .from
            .as_ref()
            .and_then(proto::from_pb_time)
            .unwrap_or(Timestamp::EPOCH);
        let to =
            q.to.as_ref()
                .and_then(proto::from_pb_time)
                .unwrap_or(Timestamp::MAX);
        let limit = if q.limit == 0 {
            10_000
        } else {
            q.limit as usize
        };
        let store = self.store.clone();
        let (tx, rx) = mpsc::channel(64);
        tokio::task::spawn_blocking(move || {
            let mut sent = 0;
            let r = store.audit(1, &mut |e| {
                if !matches(&q, &e.entry, from, to) {
                    return ControlFlow::Continue(());
                }
                sent += 1;
                if tx.blocking_send(Ok(audit_to_pb(&e))).is_err() || sent >= limit {
                    return ControlFlow::Break(());
                }
                ControlFlow::Continue(())
            });
            if let Err(e) = r {
                let _ = tx.blocking_send(Err(store_status(e)));
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
