//! The case register and disclosure schedules.
//!
//! Invariants:
//! - Every search made under a case records, at the node the user
//!   searched, each read it returned (node, sequence number, capture time,
//!   owning agency, BOF read id, camera, VRM) with the audit sequence number
//!   of the search, before the search's summary is sent. The register is
//!   per case ([`crate::cases`]: AVON's `OP-1` is not KENT's).
//! - Only the case's members see its schedule, mark its material and
//!   record its consultations; each of these (and each refusal) is
//!   audited.
//! - Only reads returned under a case can be marked as its material.
//! - An owning agency's consultation status is PENDING until a disclosure
//!   officer records otherwise; every change is audited.
//! - A register entry goes when retention deletes the read it names,
//!   unless the read is held ([`expire_register`]).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::ops::ControlFlow;
use std::sync::Arc;

use nadc_core::audit::Outcome;
use nadc_core::{ForceId, Principal, Role, Timestamp};
use nadc_proto::{self as proto, pb};
use nadc_store::keys::{self, CASE_CONSULT, CASE_MATERIAL, CASE_READ};
use nadc_store::{ReadRef, Store, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tonic::{Request, Response, Status};

use crate::auth::caller;
use crate::cases::{CaseId, Done};
use crate::error::ServiceError;
use crate::governance::{Actor, Audited, Governance};

pub use crate::cases::SPACE;

/// Most reads one request may name.
const MAX_READS: usize = 10_000;

/// A read returned under a case.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseRead {
    /// The node holding it.
    pub node: String,
    /// Its sequence number there.
    pub seq: u64,
    /// Capture time, ms.
    pub observed_ms: i64,
    /// Owning agency.
    pub force: String,
    /// The BOF's read id.
    pub bof_read_id: String,
    /// Camera.
    pub camera_id: String,
    /// VRM.
    pub vrm: String,
}

impl CaseRead {
    /// From a result row.
    pub fn of(row: &pb::ReadRow) -> Option<Self> {
        let p = row.provenance.as_ref()?;
        Some(Self {
            node: p.node.clone(),
            seq: p.seq,
            observed_ms: p
                .observed_at
                .as_ref()
                .and_then(proto::from_pb_time)
                .map(Timestamp::millis)?,
            force: p.owning_force.clone(),
            bof_read_id: p.bof_read_id.clone(),
            camera_id: p.camera_id.clone(),
            vrm: row.vrm.clone(),
        })
    }

    fn id(&self) -> (String, u32, u64) {
        (
            self.node.clone(),
            Timestamp::from_millis(self.observed_ms).day(),
            self.seq,
        )
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Marked {
    by: String,
    at: i64,
    note: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Consultation {
    status: i32,
    note: String,
    by: String,
    at: i64,
}

fn corrupt(e: impl ToString) -> StoreError {
    StoreError::Corrupt {
        what: "case register",
        detail: e.to_string(),
    }
}

/// The format byte of a read's register value: postcard after it. A
/// search registers every read it returns, in the batch of its audit
/// entry, so the value's encoding is paid per row (JSON was about 5 % of
/// a node's instructions for a search of 8,000 rows).
const READ_FORMAT: u8 = 1;

/// A read's register value.
fn encode_read(r: &CaseRead) -> Result<Vec<u8>, StoreError> {
    // Sized once: the strings and at most 10 bytes for each of the two
    // numbers and 5 for each length.
    let strings =
        r.node.len() + r.force.len() + r.bof_read_id.len() + r.camera_id.len() + r.vrm.len();
    let mut v = Vec::with_capacity(1 + strings + 2 * 10 + 5 * 5);
    v.push(READ_FORMAT);
    postcard::to_extend(r, v).map_err(corrupt)
}

/// Decodes a read's register value: postcard after [`READ_FORMAT`], or
/// the JSON written before it (which starts with `{`).
fn decode_read(v: &[u8]) -> Result<CaseRead, StoreError> {
    match v.split_first() {
        Some((&READ_FORMAT, body)) => postcard::from_bytes(body).map_err(corrupt),
        Some((b'{', _)) => serde_json::from_slice(v).map_err(corrupt),
        _ => Err(corrupt("a read's register value of no known format")),
    }
}

/// The case register entries for the reads a search under `case`
/// returned: keys without the search's audit sequence number, which
/// [`Store::append_audit_registered`] appends as it writes them with the
/// search's audit entry.
pub fn register_entries(
    case: &CaseId,
    reads: &[CaseRead],
) -> Result<nadc_store::RegistryEntries, StoreError> {
    reads
        .iter()
        .map(|r| {
            let (node, day, seq) = r.id();
            Ok((
                keys::case_read_key(CASE_READ, &case.owner, &case.case_ref, &node, day, seq),
                encode_read(r)?,
            ))
        })
        .collect()
}

/// A read of a case by (node, capture day, seq).
type ReadId = (String, u32, u64);

/// The case's reads, each with the searches that returned it.
fn case_reads(
    store: &dyn Store,
    case: &CaseId,
) -> Result<BTreeMap<ReadId, (CaseRead, Vec<u64>)>, StoreError> {
    let mut out: BTreeMap<ReadId, (CaseRead, Vec<u64>)> = BTreeMap::new();
    let prefix = keys::case_prefix(CASE_READ, &case.owner, &case.case_ref);
    let mut err = None;
    store.registry(SPACE, &prefix, &mut |k, v| {
        let search = keys::decode_case_read_rest(&k[prefix.len()..]).and_then(|r| r.3);
        match (search, decode_read(v)) {
            (Some(search), Ok(r)) => {
                out.entry(r.id())
                    .or_insert_with(|| (r, Vec::new()))
                    .1
                    .push(search);
                ControlFlow::Continue(())
            }
            (None, _) => {
                err = Some(corrupt("undecodable register key"));
                ControlFlow::Break(())
            }
            (_, Err(e)) => {
                err = Some(corrupt(e));
                ControlFlow::Break(())
            }
        }
    })?;
    match err {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// Whether each of `reads` (of node `node`) was returned under `case`
/// (blocking).
pub fn returned_under(
    store: &dyn Store,
    case: &CaseId,
    node: &str,
    reads: &[ReadRef],
) -> Result<Vec<bool>, StoreError> {
    reads
        .iter()
        .map(|r| {
            let prefix =
                keys::case_read_key(CASE_READ, &case.owner, &case.case_ref, node, r.day, r.seq);
            let mut found = false;
            store.registry(SPACE, &prefix, &mut |_, _| {
                found = true;
                ControlFlow::Break(())
            })?;
            Ok(found)
        })
        .collect()
}

/// Deletes the register entries (and material marks) of reads retention
/// has deleted: those for which `expired(owning force, capture day)`
/// holds, except reads of this node (`node`) under a legal hold. Returns
/// how many entries went (blocking).
pub fn expire_register(
    store: &dyn Store,
    node: &str,
    held: &HashSet<ReadRef>,
    expired: &dyn Fn(&ForceId, u32) -> bool,
) -> Result<u64, StoreError> {
    let mut gone = Vec::new();
    collect_expired(store, CASE_READ, held, expired, &mut gone, &|k| {
        let (_, owner, case_ref, rest) = keys::decode_case_key(k)?;
        let (n, day, seq, _) = keys::decode_case_read_rest(rest)?;
        let mark = ForceId::new(owner)
            .ok()
            .map(|owner| keys::case_read_key(CASE_MATERIAL, &owner, case_ref, n, day, seq));
        Some((n == node, day, seq, mark))
    })?;
    // Entries written before cases had owners go the same way.
    collect_expired(
        store,
        keys::LEGACY_CASE_READ,
        held,
        expired,
        &mut gone,
        &|k| {
            let (_, case_ref, n, day, seq, _) = keys::decode_legacy_case_key(k)?;
            let mark = keys::legacy_case_material_key(case_ref, n, day, seq);
            Some((n == node, day, seq, Some(mark)))
        },
    )?;
    let entries = gone
        .iter()
        .filter(|k| matches!(k.first(), Some(&CASE_READ | &keys::LEGACY_CASE_READ)))
        .count() as u64;
    for chunk in gone.chunks(10_000) {
        store.put_registry(SPACE, chunk.iter().map(|k| (k.clone(), None)).collect())?;
    }
    Ok(entries)
}

/// A register entry's key as [`collect_expired`] needs it: `(read of
/// this node, capture day, seq, key of its material mark)`.
type DecodedEntry = Option<(bool, u32, u64, Option<Vec<u8>>)>;

/// Adds to `gone` the register entries with key tag `tag` that
/// [`expire_register`] deletes, each with its material mark's key (which
/// `decode` gives, with the read the entry names).
fn collect_expired(
    store: &dyn Store,
    tag: u8,
    held: &HashSet<ReadRef>,
    expired: &dyn Fn(&ForceId, u32) -> bool,
    gone: &mut Vec<Vec<u8>>,
    decode: &dyn Fn(&[u8]) -> DecodedEntry,
) -> Result<(), StoreError> {
    let mut err = None;
    store.registry(SPACE, &[tag], &mut |k, v| {
        let (Some((here, day, seq, mark)), Ok(r)) = (decode(k), decode_read(v)) else {
            err = Some(corrupt("undecodable register entry"));
            return ControlFlow::Break(());
        };
        let Ok(force) = ForceId::new(&r.force) else {
            err = Some(corrupt("register entry names no force"));
            return ControlFlow::Break(());
        };
        let kept = here && held.contains(&ReadRef { day, seq });
        if !kept && expired(&force, day) {
            gone.push(k.to_vec());
            gone.extend(mark);
        }
        ControlFlow::Continue(())
    })?;
    err.map_or(Ok(()), Err)
}

/// The Disclosure service.
#[derive(Clone)]
pub struct DisclosureService {
    /// The store holding the register.
    pub store: Arc<dyn Store>,
    /// The audit.
    pub governance: Arc<Governance>,
}

const SEARCHERS: [Role; 4] = [
    Role::Analyst,
    Role::Investigator,
    Role::Supervisor,
    Role::Disclosure,
];

/// The caller of `req` as the audit names them.
pub fn actor<T>(req: &Request<T>) -> Result<(Actor, bool), ServiceError> {
    let p = caller(req)?.principal;
    let user = matches!(p, Principal::User { .. });
    Ok((Actor::of(&p), user))
}

/// Refuses a caller without one of `roles`.
pub fn need_role(
    actor: &Actor,
    user: bool,
    roles: &[Role],
    doing: &str,
) -> Result<(), ServiceError> {
    if user && actor.roles.iter().any(|r| roles.contains(r)) {
        return Ok(());
    }
    Err(ServiceError::denied(format!(
        "{doing} needs a user with the {} role; caller is {} of {}",
        roles
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(" or "),
        actor.user,
        actor.force.as_ref().map_or("no force", |f| f.as_str()),
    )))
}

/// How a request named its case, for the audit (bounded, whatever was
/// sent).
pub fn shown(actor: &Actor, case_ref: &str, case_force: &str) -> String {
    let bound = |s: &str, n: usize| s.trim().chars().take(n).collect::<String>();
    let (r, f) = (
        bound(case_ref, nadc_core::access::MAX_REF_LEN),
        bound(case_force, 16),
    );
    if f.is_empty() || actor.force.as_ref().is_some_and(|o| o.as_str() == f) {
        r
    } else {
        format!("{f}/{r}")
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ServiceError> {
    blocking_in("case register: ", f).await
}

/// Runs store work `f` off the async threads: a panic is an internal
/// error, a store error unavailable (its message after `context`).
pub async fn blocking_in<T: Send + 'static>(
    context: &'static str,
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ServiceError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ServiceError::internal(e.to_string()))?
        .map_err(|e| ServiceError::unavailable(format!("{context}{e}")))
}

/// Writes an audit entry of a case action (`case_name` as the actor
/// names the case).
pub async fn audit_case(
    g: &Arc<Governance>,
    actor: &Actor,
    action: &str,
    case_name: &str,
    query: serde_json::Value,
    returned: Vec<(ForceId, u64)>,
    outcome: Outcome,
) -> Result<(), Status> {
    let what = Audited {
        access: nadc_core::access::AccessContext {
            case_ref: case_name.to_string(),
            ..Default::default()
        },
        query,
        returned,
    };
    g.record(g.entry(actor, action, &what, outcome))
        .await
        .map(drop)
}

/// Audits a refusal of a case action, then returns it.
pub async fn refuse_case(
    g: &Arc<Governance>,
    actor: &Actor,
    action: &str,
    case_name: &str,
    refused: impl Into<Status>,
) -> Status {
    let status = refused.into();
    let outcome = Outcome::Refused(status.message().to_string());
    match audit_case(g, actor, action, case_name, json!({}), Vec::new(), outcome).await {
        Ok(()) => status,
        Err(e) => e,
    }
}

/// A request about one case: its `case_ref` and `case_force` fields.
pub trait CaseRequest {
    /// `(case_ref, case_force)` as the caller sent them.
    fn case(&self) -> (&str, &str);
}

macro_rules! case_requests {
    ($($t:ty),* $(,)?) => {
        $(impl CaseRequest for $t {
            fn case(&self) -> (&str, &str) {
                (&self.case_ref, &self.case_force)
            }
        })*
    };
}

case_requests!(
    pb::MarkMaterialRequest,
    pb::SetConsultationRequest,
    pb::ScheduleRequest,
    pb::PlaceHoldRequest,
    pb::ReleaseHoldRequest,
);

/// Admits a caller with one of `roles` to the case `req` names, if its
/// force is a member of it, or audits the refusal.
pub async fn admit<T: CaseRequest>(
    g: &Arc<Governance>,
    req: &Request<T>,
    roles: &[Role],
    action: &str,
    doing: &str,
) -> Result<(Actor, CaseId), Status> {
    let (case_ref, case_force) = req.get_ref().case();
    let (actor, user) = actor(req)?;
    let checked = need_role(&actor, user, roles, doing)
        .and_then(|()| Ok(g.cases.resolve(&actor, case_ref, case_force, doing)?));
    match checked {
        Ok(case) => Ok((actor, case)),
        Err(status) => {
            let name = shown(&actor, case_ref, case_force);
            Err(refuse_case(g, &actor, action, &name, status).await)
        }
    }
}

fn consultation_to_pb(force: &str, c: Option<&Consultation>) -> pb::ConsultationInfo {
    match c {
        Some(c) => pb::ConsultationInfo {
            force: force.to_string(),
            status: c.status,
            note: c.note.clone(),
            by: c.by.clone(),
            at: Some(proto::to_pb_time(Timestamp::from_millis(c.at))),
        },
        None => pb::ConsultationInfo {
            force: force.to_string(),
            status: pb::ConsultationStatus::Pending as i32,
            ..Default::default()
        },
    }
}

fn members_to_pb(g: &Governance, case: &CaseId) -> Vec<pb::CaseMember> {
    g.cases
        .members(case)
        .into_iter()
        .map(|(force, d)| pb::CaseMember {
            force: force.to_string(),
            shared_by: d.by,
            shared_at: Some(proto::to_pb_time(Timestamp::from_millis(d.at))),
        })
        .collect()
}

#[tonic::async_trait]
impl pb::disclosure_server::Disclosure for DisclosureService {
    async fn mark_material(
        &self,
        req: Request<pb::MarkMaterialRequest>,
    ) -> Result<Response<pb::MarkMaterialResponse>, Status> {
        let action = if req.get_ref().unmark {
            "case.unmark"
        } else {
            "case.mark"
        };
        let g = &self.governance;
        let (actor, case) = admit(g, &req, &SEARCHERS, action, "mark its material").await?;
        let name = crate::cases::name_for(&actor, &case);
        let q = req.into_inner();
        if q.reads.len() > MAX_READS {
            let e = ServiceError::invalid(format!(
                "{} reads named; at most {MAX_READS} a request",
                q.reads.len()
            ));
            return Err(refuse_case(g, &actor, action, &name, e).await);
        }
        let (store, c) = (self.store.clone(), case.clone());
        let known = blocking(move || case_reads(store.as_ref(), &c)).await?;
        let at = g.now().millis();
        let mut entries = Vec::new();
        let mut not_in_case = Vec::new();
        for r in &q.reads {
            let t = r
                .observed_at
                .as_ref()
                .and_then(proto::from_pb_time)
                .ok_or_else(|| ServiceError::invalid("every read needs observed_at"))?;
            let id = (r.node.clone(), t.day(), r.seq);
            if !known.contains_key(&id) {
                not_in_case.push(r.clone());
                continue;
            }
            let key = keys::case_read_key(
                CASE_MATERIAL,
                &case.owner,
                &case.case_ref,
                &r.node,
                t.day(),
                r.seq,
            );
            let value = if q.unmark {
                None
            } else {
                Some(
                    serde_json::to_vec(&Marked {
                        by: actor.user.clone(),
                        at,
                        note: q.note.clone(),
                    })
                    .map_err(|e| ServiceError::internal(e.to_string()))?,
                )
            };
            entries.push((key, value));
        }
        let marked = entries.len() as u32;
        let store = self.store.clone();
        blocking(move || store.put_registry(SPACE, entries)).await?;
        audit_case(
            g,
            &actor,
            action,
            &name,
            json!({"reads": q.reads.iter().map(|r| json!({"node": r.node, "seq": r.seq})).collect::<Vec<_>>(),
                "note": q.note.chars().take(1000).collect::<String>()}),
            Vec::new(),
            Outcome::Ok,
        )
        .await?;
        Ok(Response::new(pb::MarkMaterialResponse {
            marked,
            not_in_case,
        }))
    }

    async fn set_consultation(
        &self,
        req: Request<pb::SetConsultationRequest>,
    ) -> Result<Response<pb::ConsultationInfo>, Status> {
        let g = &self.governance;
        let action = "case.consultation";
        let (actor, case) = admit(
            g,
            &req,
            &[Role::Disclosure],
            action,
            "record its consultations",
        )
        .await?;
        let name = crate::cases::name_for(&actor, &case);
        let q = req.into_inner();
        let force =
            ForceId::new(&q.force).map_err(|e| ServiceError::invalid(format!("force: {e}")))?;
        if !matches!(
            pb::ConsultationStatus::try_from(q.status),
            Ok(pb::ConsultationStatus::Pending
                | pb::ConsultationStatus::Consulted
                | pb::ConsultationStatus::Approved
                | pb::ConsultationStatus::Refused)
        ) {
            return Err(
                ServiceError::invalid("status: pending, consulted, approved or refused").into(),
            );
        }
        let c = Consultation {
            status: q.status,
            note: q.note.trim().chars().take(1000).collect(),
            by: actor.user.clone(),
            at: g.now().millis(),
        };
        let mut key = keys::case_prefix(CASE_CONSULT, &case.owner, &case.case_ref);
        key.extend_from_slice(force.as_str().as_bytes());
        let value = serde_json::to_vec(&c).map_err(|e| ServiceError::internal(e.to_string()))?;
        let store = self.store.clone();
        blocking(move || store.put_registry(SPACE, vec![(key, Some(value))])).await?;
        audit_case(
            g,
            &actor,
            action,
            &name,
            json!({"force": force.as_str(), "status": q.status, "note": c.note}),
            Vec::new(),
            Outcome::Ok,
        )
        .await?;
        Ok(Response::new(consultation_to_pb(force.as_str(), Some(&c))))
    }

    async fn schedule(
        &self,
        req: Request<pb::ScheduleRequest>,
    ) -> Result<Response<pb::ScheduleResponse>, Status> {
        let g = &self.governance;
        let action = "case.schedule";
        let (actor, case) = admit(g, &req, &SEARCHERS, action, "read its schedule").await?;
        let (store, c) = (self.store.clone(), case.clone());
        let mut r = blocking(move || schedule(store.as_ref(), &c)).await?;
        r.members = members_to_pb(g, &case);
        // What the schedule disclosed: its reads per owning agency.
        let returned = r
            .agencies
            .iter()
            .filter_map(|a| {
                ForceId::new(&a.force)
                    .ok()
                    .map(|f| (f, a.reads.len() as u64))
            })
            .filter(|(_, n)| *n > 0)
            .collect();
        audit_case(
            g,
            &actor,
            action,
            &crate::cases::name_for(&actor, &case),
            json!({"searches": r.searches.len()}),
            returned,
            Outcome::Ok,
        )
        .await?;
        Ok(Response::new(r))
    }

    async fn share(
        &self,
        req: Request<pb::ShareCaseRequest>,
    ) -> Result<Response<pb::ShareCaseResponse>, Status> {
        let g = &self.governance;
        let (actor, user) = actor(&req)?;
        let q = req.into_inner();
        let action = if q.revoke {
            "case.unshare"
        } else {
            "case.share"
        };
        let name = shown(&actor, &q.case_ref, &q.case_force);
        let checked = need_role(
            &actor,
            user,
            &[Role::Supervisor, Role::Disclosure],
            "sharing a case",
        )
        .and_then(|()| {
            Ok(crate::cases::Cases::named(
                &actor,
                &q.case_ref,
                &q.case_force,
            )?)
        })
        .and_then(|case| {
            if actor.force.as_ref() != Some(&case.owner) {
                return Err(ServiceError::denied(format!(
                    "case {case} belongs to {}: only its own force shares it",
                    case.owner
                )));
            }
            let member =
                ForceId::new(&q.force).map_err(|e| ServiceError::invalid(format!("force: {e}")))?;
            if member == case.owner {
                return Err(ServiceError::invalid(format!(
                    "case {case} is {member}'s own: share it with another force"
                )));
            }
            if q.revoke && !g.cases.is_member(&case, &member) {
                return Err(ServiceError::precondition(format!(
                    "case {case} is not shared with {member}: there is no share to end"
                )));
            }
            Ok((case, member))
        });
        let (case, member) = match checked {
            Ok(x) => x,
            Err(status) => return Err(refuse_case(g, &actor, action, &name, status).await),
        };
        let done = Done {
            by: actor.user.clone(),
            at: g.now().millis(),
            revoked: q.revoke,
        };
        let entry = crate::cases::share_entry(&case, &member, &done)
            .map_err(|e| ServiceError::internal(e.to_string()))?;
        let what = Audited {
            access: nadc_core::access::AccessContext {
                case_ref: case.case_ref.clone(),
                ..Default::default()
            },
            query: if q.revoke {
                json!({"unshare_with": member.as_str()})
            } else {
                json!({"share_with": member.as_str()})
            },
            returned: Vec::new(),
        };
        let audit = g.entry(&actor, action, &what, Outcome::Ok);
        let g2 = g.clone();
        tokio::task::spawn_blocking(move || g2.record_registered_blocking(audit, vec![entry]))
            .await
            .map_err(|e| ServiceError::internal(e.to_string()))??;
        if q.revoke {
            g.cases.note_unshared(&case, &member);
        } else {
            g.cases.note_shared(&case, &member, done);
        }
        Ok(Response::new(pb::ShareCaseResponse {
            owner_force: case.owner.to_string(),
            case_ref: case.case_ref.clone(),
            members: members_to_pb(g, &case),
        }))
    }
}

/// Builds a case's disclosure schedule (blocking; members are added by
/// the caller).
pub fn schedule(store: &dyn Store, case: &CaseId) -> Result<pb::ScheduleResponse, StoreError> {
    let reads = case_reads(store, case)?;
    let mut marked: BTreeMap<ReadId, Marked> = BTreeMap::new();
    let prefix = keys::case_prefix(CASE_MATERIAL, &case.owner, &case.case_ref);
    let mut err = None;
    store.registry(SPACE, &prefix, &mut |k, v| {
        let Some((node, day, seq, None)) = keys::decode_case_read_rest(&k[prefix.len()..]) else {
            return ControlFlow::Continue(());
        };
        let node = node.to_string();
        match serde_json::from_slice::<Marked>(v) {
            Ok(m) => {
                marked.insert((node, day, seq), m);
                ControlFlow::Continue(())
            }
            Err(e) => {
                err = Some(corrupt(e));
                ControlFlow::Break(())
            }
        }
    })?;
    if let Some(e) = err {
        return Err(e);
    }
    let mut consultations: BTreeMap<String, Consultation> = BTreeMap::new();
    let cprefix = keys::case_prefix(CASE_CONSULT, &case.owner, &case.case_ref);
    store.registry(SPACE, &cprefix, &mut |k, v| {
        if let Ok(c) = serde_json::from_slice::<Consultation>(v) {
            consultations.insert(String::from_utf8_lossy(&k[cprefix.len()..]).into_owned(), c);
        }
        ControlFlow::Continue(())
    })?;
    let mut agencies: BTreeMap<String, Vec<pb::ScheduleItem>> = BTreeMap::new();
    let mut searches = BTreeSet::new();
    for (id, (r, found_by)) in &reads {
        searches.extend(found_by.iter().copied());
        let m = marked.get(id);
        agencies
            .entry(r.force.clone())
            .or_default()
            .push(pb::ScheduleItem {
                node: r.node.clone(),
                seq: r.seq,
                observed_at: Some(proto::to_pb_time(Timestamp::from_millis(r.observed_ms))),
                bof_read_id: r.bof_read_id.clone(),
                camera_id: r.camera_id.clone(),
                vrm: r.vrm.clone(),
                material: m.is_some(),
                marked_by: m.map(|m| m.by.clone()).unwrap_or_default(),
                searches: found_by.clone(),
            });
    }
    // Agencies consulted about the case appear even with no reads.
    for f in consultations.keys() {
        agencies.entry(f.clone()).or_default();
    }
    let agencies = agencies
        .into_iter()
        .map(|(force, mut items)| {
            items.sort_by_key(|i| (!i.material, i.observed_at.map(|t| (t.seconds, t.nanos))));
            pb::AgencySchedule {
                consultation: Some(consultation_to_pb(&force, consultations.get(&force))),
                material: items.iter().filter(|i| i.material).count() as u64,
                reads: items,
                force,
            }
        })
        .collect();
    let mut case_searches = Vec::new();
    for seq in searches {
        store.audit(seq, &mut |e| {
            if e.seq == seq {
                case_searches.push(pb::CaseSearch {
                    audit_seq: seq,
                    at: Some(proto::to_pb_time(e.entry.at)),
                    user: e.entry.user.clone(),
                    action: e.entry.action.clone(),
                    purpose: e.entry.purpose.clone(),
                });
            }
            ControlFlow::Break(())
        })?;
    }
    Ok(pb::ScheduleResponse {
        case_ref: case.case_ref.clone(),
        agencies,
        searches: case_searches,
        owner_force: case.owner.to_string(),
        members: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reads_register_value_round_trips_and_one_written_as_json_still_reads() {
        let r = CaseRead {
            node: "node-1".into(),
            seq: 42,
            observed_ms: 1_764_000_000_000,
            force: "AVON".into(),
            bof_read_id: "AVON-0000000042".into(),
            camera_id: "C1".into(),
            vrm: "AB12CDE".into(),
        };
        let v = encode_read(&r).unwrap();
        assert_eq!(v.first(), Some(&READ_FORMAT));
        assert_eq!(decode_read(&v).unwrap(), r);
        // As registers written before the binary form hold it.
        let json = serde_json::to_vec(&r).unwrap();
        assert_eq!(decode_read(&json).unwrap(), r);
        assert!(decode_read(&[9, 1, 2]).is_err());
        assert!(decode_read(&v[..v.len() - 3]).is_err());
        assert!(decode_read(&[]).is_err());
    }
}
