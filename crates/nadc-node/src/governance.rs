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

use std::ops::ControlFlow;
use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use nadc_core::access::{AccessContext, AccessPolicy, OlderData, Permitted};
use nadc_core::audit::{AuditEntry, ChainCheck, Outcome, hex};
use nadc_core::time::Clock;
use nadc_core::{ForceId, Principal, Role, Timestamp};
use nadc_proto::governance::audit_to_pb;
use nadc_proto::{self as proto, pb};
use nadc_store::{Store, StoreError};
use tonic::{Request, Response, Status};
use tracing::{info, warn};

use crate::auth::caller;
use crate::error::ServiceError;

mod authorisations;
pub use authorisations::{AuthorisationError, AuthorisationsService};

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
    authorisations: authorisations::Registry,
    /// The node's cases: owners, openings and shares.
    pub cases: crate::cases::Cases,
}

fn store_status(e: StoreError) -> Status {
    Status::from(ServiceError::from(e))
}

/// An audit write that failed: nothing was done.
fn audit_unavailable(e: StoreError) -> Status {
    warn!(error = %e, "audit write failed");
    Status::from(ServiceError::unavailable(format!(
        "audit log unavailable, nothing done: {e}"
    )))
}

/// Longest string of a request kept whole in an audit entry, bytes.
pub const AUDIT_TEXT_MAX: usize = 256;
/// Most items of a list in a request kept in an audit entry.
pub const AUDIT_LIST_MAX: usize = 64;
/// Longest purpose, case reference or authorisation id kept in an audit
/// entry, bytes (a valid one is at most 64; a refused one may be anything).
pub const AUDIT_REF_MAX: usize = 128;
/// Longest reason of a refusal or failure kept in an audit entry, bytes.
pub const AUDIT_REASON_MAX: usize = 512;

/// `s` cut to at most `max` bytes on a character boundary, saying how long
/// it was.
fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &s[..end], s.len())
}

/// A request as the audit keeps it: a string over [`AUDIT_TEXT_MAX`] bytes
/// becomes its start, its length and its SHA-256 (so the full text, kept
/// elsewhere, can be matched to the entry); a list over [`AUDIT_LIST_MAX`]
/// items keeps its first ones and says how many there were. Whatever a
/// request holds (a megabyte polygon, a list of a million VRMs), its entry
/// stays small.
pub fn bounded(v: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::String(s) if s.len() > AUDIT_TEXT_MAX => {
            let mut start = 64;
            while !s.is_char_boundary(start) {
                start -= 1;
            }
            Value::String(format!(
                "{}… ({} bytes, sha256 {})",
                &s[..start],
                s.len(),
                nadc_core::audit::sha256_hex(s.as_bytes())
            ))
        }
        Value::Array(items) if items.len() > AUDIT_LIST_MAX => {
            let mut kept: Vec<Value> = items[..AUDIT_LIST_MAX].iter().map(bounded).collect();
            kept.push(Value::String(format!("… {} items in all", items.len())));
            Value::Array(kept)
        }
        Value::Array(items) => Value::Array(items.iter().map(bounded).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (cut(k, AUDIT_TEXT_MAX), bounded(v)))
                .collect(),
        ),
        other => other.clone(),
    }
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

impl Audited {
    /// What a request that discloses where or how many a node's reads are
    /// (`query`) returned: every force's reads held (`reads_by_force`).
    pub fn holdings(
        query: serde_json::Value,
        reads_by_force: &std::collections::BTreeMap<nadc_core::ForceId, u64>,
    ) -> Self {
        Self {
            query,
            returned: reads_by_force
                .iter()
                .map(|(f, n)| (f.clone(), *n))
                .collect(),
            ..Default::default()
        }
    }
}

impl Governance {
    /// Loads the authorisations.
    pub fn load(
        store: Arc<dyn Store>,
        node: String,
        clock: Arc<dyn Clock>,
        policy: AccessPolicy,
    ) -> Result<Self, StoreError> {
        let authorisations = authorisations::Registry::load(store.as_ref())?;
        let cases = crate::cases::Cases::load(store.as_ref())?;
        Ok(Self {
            store,
            node,
            clock,
            policy,
            authorisations,
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

    /// Builds the entry for `what` done by `actor` with `outcome`. The
    /// request and the outcome's reason are bounded ([`bounded`]): an entry
    /// is small whatever the request held.
    pub fn entry(
        &self,
        actor: &Actor,
        action: &str,
        what: &Audited,
        outcome: Outcome,
    ) -> AuditEntry {
        let outcome = match outcome {
            Outcome::Ok => Outcome::Ok,
            Outcome::Refused(m) => Outcome::Refused(cut(&m, AUDIT_REASON_MAX)),
            Outcome::Failed(m) => Outcome::Failed(cut(&m, AUDIT_REASON_MAX)),
        };
        AuditEntry {
            at: self.clock.now(),
            node: self.node.clone(),
            user: actor.user.clone(),
            force: actor.force.clone(),
            roles: actor.roles.clone(),
            action: action.to_string(),
            purpose: cut(&what.access.purpose, AUDIT_REF_MAX),
            case_ref: cut(&what.access.case_ref, AUDIT_REF_MAX),
            authorisation: cut(&what.access.authorisation, AUDIT_REF_MAX),
            query: bounded(&what.query).to_string(),
            returned: what.returned.clone(),
            outcome,
        }
    }

    /// Audits the disclosure of `rows` by `actor` (blocking; durable when
    /// it returns, so call it before the rows leave): an entry counting
    /// them per owning force and, under a case, the reads registered under
    /// it in the same write.
    pub fn disclose_blocking(
        &self,
        actor: &Actor,
        action: &str,
        under: Option<(&AccessContext, &crate::cases::CaseId)>,
        query: serde_json::Value,
        rows: &[&pb::ReadRow],
    ) -> Result<u64, Status> {
        let mut returned = std::collections::BTreeMap::<ForceId, u64>::new();
        for p in rows.iter().filter_map(|r| r.provenance.as_ref()) {
            if let Ok(f) = ForceId::new(&p.owning_force) {
                *returned.entry(f).or_default() += 1;
            }
        }
        let what = Audited {
            access: under.map(|(a, _)| a.clone()).unwrap_or_default(),
            query,
            returned: returned.into_iter().collect(),
        };
        let entry = self.entry(actor, action, &what, Outcome::Ok);
        let reads: Vec<crate::disclosure::CaseRead> = rows
            .iter()
            .filter_map(|r| crate::disclosure::CaseRead::of(r))
            .collect();
        self.record_search_blocking(entry, under.map(|(_, case)| case), &reads)
    }

    /// Audits a refusal of `action` by `actor` (bounded), then gives the
    /// refusal back; if the audit cannot be written, that error instead.
    pub async fn refuse(
        self: &Arc<Self>,
        actor: &Actor,
        action: &str,
        what: &Audited,
        refused: impl Into<Status>,
    ) -> Status {
        let status = refused.into();
        let entry = self.entry(
            actor,
            action,
            what,
            Outcome::Refused(status.message().to_string()),
        );
        match self.record(entry).await {
            Ok(_) => status,
            Err(e) => e,
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
                revoked: false,
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
            .map_err(|e| Status::from(ServiceError::internal(format!("audit task failed: {e}"))))?
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
            .map_err(|e| Status::from(ServiceError::invalid(e.to_string())))?;
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
            .ok_or_else(|| Status::from(ServiceError::denied("searching needs a force user")))?;
        // Only the searcher's own force's authorisations are looked up.
        let auth = if ctx.authorisation.is_empty() {
            None
        } else {
            self.authorisations.get(force, &ctx.authorisation)?
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
            .map_err(|e| Status::from(ServiceError::denied(e.to_string())))
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
        Status::from(ServiceError::denied(format!(
            "{doing} needs a user certificate with the {} role; caller is {}",
            wanted
                .iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join(" or "),
            who.principal
        )))
    })
}

/// The Audit service.
#[derive(Clone)]
pub struct AuditService {
    /// The store holding the audit chain.
    pub store: Arc<dyn Store>,
    /// Where an auditor's own queries are audited.
    pub governance: Arc<Governance>,
    /// A query holds a search worker while it reads the log.
    pub workers: crate::workers::SearchWorkers,
}

/// Whether an auditor of `force` may read entry `e`: its actor is of
/// their force, or it disclosed their force's data ("who searched our
/// data"). Other forces' entries are theirs to audit.
fn concerns(e: &AuditEntry, force: &ForceId) -> bool {
    e.force.as_ref() == Some(force) || e.returned.iter().any(|(f, n)| *n > 0 && f == force)
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
        let g = &self.governance;
        g.record(g.entry(&actor, "audit.verify", &Audited::default(), Outcome::Ok))
            .await?;
        let store = self.store.clone();
        let r = tokio::task::spawn_blocking(move || verify_chain(store.as_ref()))
            .await
            .map_err(|e| Status::from(ServiceError::internal(e.to_string())))?
            .map_err(store_status)?;
        info!(by = %actor.user, entries = r.entries, intact = r.intact, "audit chain verified");
        Ok(Response::new(r))
    }

    type QueryStream = RecordStream;

    async fn query(
        &self,
        req: Request<pb::AuditQuery>,
    ) -> Result<Response<Self::QueryStream>, Status> {
        let actor = require_role(&req, &[Role::Auditor], "querying the audit log")?;
        let force = actor
            .force
            .clone()
            .ok_or_else(|| Status::from(ServiceError::denied("an auditor belongs to a force")))?;
        let q = req.into_inner();
        // The query itself is audited, durably, before any entry is sent.
        let g = &self.governance;
        let what = Audited {
            query: serde_json::json!({"user": q.user, "force": q.force, "case_ref": q.case_ref,
                "action": q.action, "owning_force": q.owning_force,
                "from": q.from.as_ref().and_then(proto::from_pb_time).map(|t| t.to_rfc3339()),
                "to": q.to.as_ref().and_then(proto::from_pb_time).map(|t| t.to_rfc3339()),
                "limit": q.limit}),
            ..Default::default()
        };
        g.record(g.entry(&actor, "audit.query", &what, Outcome::Ok))
            .await?;
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
        let user = format!("{force}/{}", actor.user);
        let worker = self.workers.acquire(&user).await?;
        let store = self.store.clone();
        let produce = move |spool: &crate::spool::SpoolWriter<pb::AuditRecord>| {
            let mut sent = 0;
            store.audit(1, &mut |e| {
                if !concerns(&e.entry, &force) || !matches(&q, &e.entry, from, to) {
                    return ControlFlow::Continue(());
                }
                sent += 1;
                if spool.push(audit_to_pb(&e)).is_err() || sent >= limit {
                    return ControlFlow::Break(());
                }
                ControlFlow::Continue(())
            })
        };
        let finish = |r: Result<(), nadc_store::StoreError>,
                      stop: Option<crate::spool::Stop>,
                      _sent| match (r, stop) {
            (Err(e), _) => vec![Err(store_status(e))],
            (Ok(()), Some(s)) => vec![Err(ServiceError::from(s).into())],
            (Ok(()), None) => Vec::new(),
        };
        Ok(Response::new(Box::pin(worker.stream(produce, finish))))
    }
}
