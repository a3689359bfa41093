//! The case register and disclosure schedules.
//!
//! Invariants:
//! - Every search made under a case reference records, at the node the user
//!   searched, each read it returned (node, sequence number, capture time,
//!   owning agency, BOF read id, camera, VRM) with the audit sequence number
//!   of the search, before the search's summary is sent.
//! - Only reads returned under a case can be marked as its material.
//! - An owning agency's consultation status is PENDING until a disclosure
//!   officer records otherwise; every change is audited.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;
use std::sync::Arc;

use nadc_core::audit::Outcome;
use nadc_core::{ForceId, Principal, Role, Timestamp};
use nadc_proto::{self as proto, pb};
use nadc_store::{Store, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tonic::{Request, Response, Status};

use crate::auth::caller;
use crate::governance::{Actor, Audited, Governance};

/// The registry space of the case register.
pub const SPACE: &str = "case";
const READ: u8 = b'r';
const MATERIAL: u8 = b'm';
const CONSULT: u8 = b'c';

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

fn case_prefix(tag: u8, case_ref: &str) -> Vec<u8> {
    let mut k = vec![tag];
    k.extend_from_slice(case_ref.as_bytes());
    k.push(0);
    k
}

fn read_key(tag: u8, case_ref: &str, node: &str, day: u32, seq: u64) -> Vec<u8> {
    let mut k = case_prefix(tag, case_ref);
    k.extend_from_slice(node.as_bytes());
    k.push(0);
    k.extend_from_slice(&day.to_be_bytes());
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

fn corrupt(e: serde_json::Error) -> StoreError {
    StoreError::Corrupt {
        what: "case register",
        detail: e.to_string(),
    }
}

/// The case register entries for the reads a search under `case_ref`
/// returned: keys without the search's audit sequence number, which
/// [`Store::append_audit_registered`] appends as it writes them with the
/// search's audit entry.
pub fn register_entries(
    case_ref: &str,
    reads: &[CaseRead],
) -> Result<nadc_store::RegistryEntries, StoreError> {
    reads
        .iter()
        .map(|r| {
            let (node, day, seq) = r.id();
            Ok((
                read_key(READ, case_ref, &node, day, seq),
                serde_json::to_vec(r).map_err(corrupt)?,
            ))
        })
        .collect()
}

/// A read of a case by (node, capture day, seq).
type ReadId = (String, u32, u64);

/// The case's reads, each with the searches that returned it.
fn case_reads(
    store: &dyn Store,
    case_ref: &str,
) -> Result<BTreeMap<ReadId, (CaseRead, Vec<u64>)>, StoreError> {
    let mut out: BTreeMap<ReadId, (CaseRead, Vec<u64>)> = BTreeMap::new();
    let mut err = None;
    store.registry(
        SPACE,
        &case_prefix(READ, case_ref),
        &mut |k, v| match serde_json::from_slice::<CaseRead>(v) {
            Ok(r) => {
                let search = k
                    .len()
                    .checked_sub(8)
                    .and_then(|at| nadc_store::keys::be_u64(&k[at..]))
                    .unwrap_or(0);
                out.entry(r.id())
                    .or_insert_with(|| (r, Vec::new()))
                    .1
                    .push(search);
                ControlFlow::Continue(())
            }
            Err(e) => {
                err = Some(corrupt(e));
                ControlFlow::Break(())
            }
        },
    )?;
    match err {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// The Disclosure service.
#[derive(Clone)]
pub struct DisclosureService {
    /// The store holding the register.
    pub store: Arc<dyn Store>,
    /// The audit.
    pub governance: Arc<Governance>,
}

fn require<T>(req: &Request<T>, roles: &[Role], doing: &str) -> Result<Actor, Status> {
    let p = caller(req)?.principal;
    match &p {
        Principal::User { roles: have, .. } if have.iter().any(|r| roles.contains(r)) => {
            Ok(Actor::of(&p))
        }
        other => Err(Status::permission_denied(format!(
            "{doing} needs a user with the {} role; caller is {other}",
            roles
                .iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join(" or ")
        ))),
    }
}

const SEARCHERS: [Role; 4] = [
    Role::Analyst,
    Role::Investigator,
    Role::Supervisor,
    Role::Disclosure,
];

fn case_of(c: &str) -> Result<String, Status> {
    let c = c.trim();
    if c.is_empty() || c.len() > nadc_core::access::MAX_REF_LEN {
        return Err(Status::invalid_argument(
            "case_ref is required (1 to 64 characters)",
        ));
    }
    Ok(c.to_string())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(|e| Status::unavailable(format!("case register: {e}")))
}

impl DisclosureService {
    async fn audit(
        &self,
        actor: &Actor,
        action: &str,
        case_ref: &str,
        query: serde_json::Value,
    ) -> Result<(), Status> {
        let what = Audited {
            access: nadc_core::access::AccessContext {
                case_ref: case_ref.to_string(),
                ..Default::default()
            },
            query,
            returned: Vec::new(),
        };
        let g = &self.governance;
        g.record(g.entry(actor, action, &what, Outcome::Ok))
            .await
            .map(drop)
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

#[tonic::async_trait]
impl pb::disclosure_server::Disclosure for DisclosureService {
    async fn mark_material(
        &self,
        req: Request<pb::MarkMaterialRequest>,
    ) -> Result<Response<pb::MarkMaterialResponse>, Status> {
        let actor = require(&req, &SEARCHERS, "marking material")?;
        let q = req.into_inner();
        let case_ref = case_of(&q.case_ref)?;
        let (store, c) = (self.store.clone(), case_ref.clone());
        let known = blocking(move || case_reads(store.as_ref(), &c)).await?;
        let at = self.governance.now().millis();
        let mut entries = Vec::new();
        let mut not_in_case = Vec::new();
        for r in &q.reads {
            let t = r
                .observed_at
                .as_ref()
                .and_then(proto::from_pb_time)
                .ok_or_else(|| Status::invalid_argument("every read needs observed_at"))?;
            let id = (r.node.clone(), t.day(), r.seq);
            if !known.contains_key(&id) {
                not_in_case.push(r.clone());
                continue;
            }
            let key = read_key(MATERIAL, &case_ref, &r.node, t.day(), r.seq);
            let value = if q.unmark {
                None
            } else {
                Some(
                    serde_json::to_vec(&Marked {
                        by: actor.user.clone(),
                        at,
                        note: q.note.clone(),
                    })
                    .map_err(|e| Status::internal(e.to_string()))?,
                )
            };
            entries.push((key, value));
        }
        let marked = entries.len() as u32;
        let store = self.store.clone();
        blocking(move || store.put_registry(SPACE, entries)).await?;
        self.audit(
            &actor,
            if q.unmark { "case.unmark" } else { "case.mark" },
            &case_ref,
            json!({"reads": q.reads.iter().map(|r| json!({"node": r.node, "seq": r.seq})).collect::<Vec<_>>(), "note": q.note}),
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
        let actor = require(&req, &[Role::Disclosure], "recording a consultation")?;
        let q = req.into_inner();
        let case_ref = case_of(&q.case_ref)?;
        let force =
            ForceId::new(&q.force).map_err(|e| Status::invalid_argument(format!("force: {e}")))?;
        if !matches!(
            pb::ConsultationStatus::try_from(q.status),
            Ok(pb::ConsultationStatus::Pending
                | pb::ConsultationStatus::Consulted
                | pb::ConsultationStatus::Approved
                | pb::ConsultationStatus::Refused)
        ) {
            return Err(Status::invalid_argument(
                "status: pending, consulted, approved or refused",
            ));
        }
        let c = Consultation {
            status: q.status,
            note: q.note.trim().to_string(),
            by: actor.user.clone(),
            at: self.governance.now().millis(),
        };
        let mut key = case_prefix(CONSULT, &case_ref);
        key.extend_from_slice(force.as_str().as_bytes());
        let value = serde_json::to_vec(&c).map_err(|e| Status::internal(e.to_string()))?;
        let store = self.store.clone();
        blocking(move || store.put_registry(SPACE, vec![(key, Some(value))])).await?;
        self.audit(
            &actor,
            "case.consultation",
            &case_ref,
            json!({"force": force.as_str(), "status": q.status, "note": c.note}),
        )
        .await?;
        Ok(Response::new(consultation_to_pb(force.as_str(), Some(&c))))
    }

    async fn schedule(
        &self,
        req: Request<pb::ScheduleRequest>,
    ) -> Result<Response<pb::ScheduleResponse>, Status> {
        require(&req, &SEARCHERS, "reading a disclosure schedule")?;
        let case_ref = case_of(&req.get_ref().case_ref)?;
        let (store, c) = (self.store.clone(), case_ref.clone());
        let r = blocking(move || schedule(store.as_ref(), &c)).await?;
        Ok(Response::new(r))
    }
}

/// Builds a case's disclosure schedule (blocking).
pub fn schedule(store: &dyn Store, case_ref: &str) -> Result<pb::ScheduleResponse, StoreError> {
    let reads = case_reads(store, case_ref)?;
    let mut marked: BTreeMap<ReadId, Marked> = BTreeMap::new();
    let prefix = case_prefix(MATERIAL, case_ref);
    let mut err = None;
    store.registry(SPACE, &prefix, &mut |k, v| {
        let rest = &k[prefix.len()..];
        let Some(sep) = rest.iter().position(|b| *b == 0) else {
            return ControlFlow::Continue(());
        };
        let node = String::from_utf8_lossy(&rest[..sep]).into_owned();
        let tail = &rest[sep + 1..];
        if tail.len() != 12 {
            return ControlFlow::Continue(());
        }
        let day = u32::from_be_bytes([tail[0], tail[1], tail[2], tail[3]]);
        let seq = nadc_store::keys::be_u64(&tail[4..]).unwrap_or(0);
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
    let cprefix = case_prefix(CONSULT, case_ref);
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
        case_ref: case_ref.to_string(),
        agencies,
        searches: case_searches,
    })
}
