//! Hotlists on a node: the registry every ingested read is matched
//! against, and the gRPC service that manages the lists.
//!
//! Invariants:
//! - A list belongs to the force of the user who created it; only users of
//!   that force holding the `hotlist-manager` (or `admin`) role change it.
//! - A change is durable in the store before the matcher is swapped, and a
//!   read ingested after the change's acknowledgement is matched against it.
//! - In replicated mode a change goes through the replicated log
//!   ([`crate::changes`], on every replica in log order) and is
//!   answered once this node's replica has applied it.
//! - Every entry has a reason, an intelligence reference, an action and an
//!   expiry in the future when added.

mod registry;

use std::sync::Arc;

pub use registry::HotlistRegistry;

use crate::changes::{Changed, Changes};

use nadc_core::hotlist::{Fuzzy, Hotlist, HotlistEntry, HotlistError, HotlistId};
use nadc_core::time::Clock;
use nadc_core::trigger::{RuleArea, TriggerRule};
use nadc_core::{ForceId, Principal, Role, Vrm};
use nadc_proto::hotlists::{action_from_pb, entry_to_pb, hotlist_to_pb};
use nadc_proto::log::{Change, LoggedAlert};
use nadc_proto::{self as proto, pb};
use nadc_store::{Store, StoreError};
use tonic::{Request, Response, Status};
use tracing::info;

use crate::auth::caller;
use crate::error::ServiceError;
use crate::governance::{Actor, Audited, Governance};
use nadc_core::audit::Outcome;
use serde_json::json;

fn store_status(e: StoreError) -> ServiceError {
    ServiceError::from(e)
}

/// The Hotlists service.
#[derive(Clone)]
pub struct HotlistsService {
    /// The registry.
    pub registry: Arc<HotlistRegistry>,
    /// The node's clock (entry creation and expiry).
    pub clock: Arc<dyn Clock>,
    /// Where changes are audited.
    pub governance: Arc<Governance>,
    /// The store (retrospective hits are looked for in it and logged).
    pub store: Arc<dyn Store>,
    /// Most retrospective hits one addition logs.
    pub max_retrospective: usize,
    /// The node's name (provenance of the reads a look-back registers).
    pub node: String,
    /// The search workers a look-back runs under.
    pub workers: crate::workers::SearchWorkers,
    /// Where changes are made (through the replicated log in replicated
    /// mode).
    pub changes: Arc<Changes>,
}

/// Most entries one addition may look back for.
const MAX_LOOK_BACK_ENTRIES: usize = 100;

impl HotlistsService {
    /// Makes `change` (through the replicated log in replicated mode,
    /// answered once this node's replica has applied it).
    async fn submit(&self, change: Change) -> Result<Changed, ServiceError> {
        self.changes.submit(change).await
    }

    /// Audits a change made to a list.
    async fn audit(
        &self,
        actor: &Actor,
        action: &str,
        query: serde_json::Value,
    ) -> Result<(), Status> {
        let what = Audited {
            query,
            ..Default::default()
        };
        self.governance
            .record(self.governance.entry(actor, action, &what, Outcome::Ok))
            .await
            .map(drop)
    }
}

impl HotlistsService {
    /// Checks a look-back asked with `entries` (about to be added to list
    /// `id`) over the last `look_back_days`, as a search is checked: the
    /// caller needs a searching role as well, a purpose and a case, and the
    /// window must lie in the data-age tier; it takes a search worker. The
    /// look-back runs ([`LookBack::run`]) once the entries are stored.
    async fn look_back(
        &self,
        principal: &Principal,
        actor: &Actor,
        id: &HotlistId,
        entries: &[HotlistEntry],
        q: &pb::AddEntriesRequest,
        now: nadc_core::Timestamp,
    ) -> Result<LookBack, Status> {
        let g = &self.governance;
        let days = q.look_back_days;
        let searching = matches!(principal, Principal::User { roles, .. }
            if roles.iter().any(|r| r.may_search()));
        if !searching {
            return Err(ServiceError::denied(
                "look_back_days searches stored reads: it needs a searching role (analyst, \
                 investigator, supervisor or disclosure) as well as hotlist-manager",
            )
            .into());
        }
        if days > g.policy.standard_days {
            return Err(ServiceError::invalid(format!(
                "look_back_days {days}: at most the standard data-age tier, {} days",
                g.policy.standard_days
            ))
            .into());
        }
        if entries.len() > MAX_LOOK_BACK_ENTRIES {
            return Err(ServiceError::precondition(format!(
                "{} entries with a look-back; at most {MAX_LOOK_BACK_ENTRIES} a request",
                entries.len()
            ))
            .into());
        }
        let given = q.access.clone().unwrap_or_default();
        let (ctx, _) = g.context(Some(&given))?;
        let case = g
            .cases
            .resolve(actor, &ctx.case_ref, &given.case_force, "search under it")?;
        let from = now.plus_millis(-i64::from(days) * 86_400_000);
        g.permit(actor, &ctx, false, from, now, now)?;
        let (list, _) = self
            .registry
            .get(id)
            .ok_or_else(|| ServiceError::not_found(format!("no list {id}")))?;
        let user = format!(
            "{}/{}",
            actor.force.as_ref().map_or("", |f| f.as_str()),
            actor.user
        );
        let worker = self.workers.acquire(&user).await?;
        Ok(LookBack {
            worker,
            list,
            entries: entries.to_vec(),
            from,
            now,
            actor: actor.clone(),
            ctx,
            case,
            query: json!({"list": id.to_string(), "look_back_days": days,
                "entries": entries.len()}),
        })
    }
}

/// A look-back checked, holding its search worker.
struct LookBack {
    worker: crate::workers::Worker,
    list: Hotlist,
    entries: Vec<HotlistEntry>,
    from: nadc_core::Timestamp,
    now: nadc_core::Timestamp,
    actor: Actor,
    ctx: nadc_core::access::AccessContext,
    case: crate::cases::CaseId,
    query: serde_json::Value,
}

impl LookBack {
    /// Finds the retrospective hits, once the entries are stored (so every
    /// read matched against the lists from then on hits live): it first
    /// waits for every read matched before to be stored, so each read hits
    /// once, live or retrospectively, and a read already hit on the list
    /// for the same VRM is skipped. The reads hit are registered under the
    /// case and audited (`hotlist.add.retrospective`) before they are
    /// returned.
    async fn run(self, s: &HotlistsService) -> Result<crate::alerts::retro::Retro, Status> {
        let (store, cap, node) = (s.store.clone(), s.max_retrospective, s.node.clone());
        let (governance, registry, clock) =
            (s.governance.clone(), s.registry.clone(), s.clock.clone());
        tokio::task::spawn_blocking(move || {
            let LookBack {
                worker,
                list,
                entries,
                from,
                now,
                actor,
                ctx,
                case,
                query,
            } = self;
            let _worker = worker;
            registry.settle();
            // Up to every read stored by now, whenever captured (a camera's
            // clock may run ahead): a read matched against the old lists
            // may have been captured after the entries were asked for.
            let to = clock.now().plus_millis(86_400_000);
            let r = crate::alerts::retro::retrospective_hits(
                store.as_ref(),
                &list,
                &entries,
                from,
                to,
                now,
                cap,
            )
            .map_err(ServiceError::from)?;
            let refs: Vec<nadc_store::ReadRef> = r.alerts.iter().map(|a| a.read).collect();
            let reads = store.get_reads(&refs).map_err(store_status)?;
            let rows: Vec<pb::ReadRow> = reads
                .iter()
                .map(|s| proto::row_from_stored(s, &node))
                .collect();
            let rows: Vec<&pb::ReadRow> = rows.iter().collect();
            governance.disclose_blocking(
                &actor,
                "hotlist.add.retrospective",
                Some((&ctx, &case)),
                query,
                &rows,
            )?;
            Ok::<_, Status>(r)
        })
        .await
        .map_err(|e| ServiceError::internal(format!("retrospective hits: {e}")))?
    }
}

/// A user who may change hotlists: their force and name, and who they are
/// for the audit.
fn require_manager<T>(req: &Request<T>) -> Result<(ForceId, String, Actor), ServiceError> {
    let principal = caller(req)?.principal;
    let actor = Actor::of(&principal);
    match principal {
        Principal::User { force, name, roles }
            if roles
                .iter()
                .any(|r| matches!(r, Role::HotlistManager | Role::Admin)) =>
        {
            Ok((force, name, actor))
        }
        Principal::User { name, .. } => Err(ServiceError::denied(format!(
            "user {name} may not change hotlists: that needs the hotlist-manager role"
        ))),
        other => Err(ServiceError::denied(format!(
            "changing hotlists needs a user certificate with the hotlist-manager role; caller is {other}"
        ))),
    }
}

/// A reader of its own force's lists: a hotlist manager, an admin, or an
/// alerting role (who acts on the lists' hits). Entries carry a force's
/// intelligence (reasons, references): no other force reads them.
fn require_reader<T>(
    req: &Request<T>,
    policy: &nadc_core::access::AccessPolicy,
) -> Result<(ForceId, Actor), ServiceError> {
    let principal = caller(req)?.principal;
    let actor = Actor::of(&principal);
    match principal {
        Principal::User { force, roles, .. }
            if roles
                .iter()
                .any(|r| matches!(r, Role::HotlistManager | Role::Admin))
                || policy.check_alerts(&roles).is_ok() =>
        {
            Ok((force, actor))
        }
        other => Err(ServiceError::denied(format!(
            "reading hotlists needs a user certificate with the hotlist-manager, admin or an alerting role ({}); caller is {other}",
            policy
                .alert_roles
                .iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// The wire rules of a request, checked (the first bad one named).
fn rules_from_pb(rules: &[pb::TriggerRule]) -> Result<Vec<TriggerRule>, ServiceError> {
    if rules.len() > nadc_core::trigger::MAX_RULES {
        return Err(ServiceError::invalid(format!(
            "rules: {} given; at most {}",
            rules.len(),
            nadc_core::trigger::MAX_RULES
        )));
    }
    rules
        .iter()
        .enumerate()
        .map(|(i, r)| {
            proto::hotlists::rule_from_pb(r)
                .map_err(|e| ServiceError::invalid(format!("rules[{i}]: {e}")))
        })
        .collect()
}

/// Rules as the audit records them: each one's label, area and times.
fn rules_json(rules: &[TriggerRule]) -> serde_json::Value {
    serde_json::Value::Array(
        rules
            .iter()
            .map(|r| {
                let area = match &r.area {
                    RuleArea::Circle { centre, radius_m } => json!({
                        "lat": centre.lat(), "lon": centre.lon(), "radius_m": radius_m}),
                    RuleArea::Polygon(wkt) => json!({"polygon": wkt}),
                };
                json!({"label": r.label, "area": area,
                    "from": r.from.map(|t| t.to_string()), "until": r.until.map(|t| t.to_string()),
                    "hours": format!("{:02}-{:02}", r.start_hour, r.end_hour)})
            })
            .collect(),
    )
}

fn hotlist_status(e: HotlistError) -> ServiceError {
    ServiceError::invalid(e.to_string())
}

/// The list a request names; the owner defaults to the caller's force.
pub fn list_id(
    r: Option<&pb::HotlistRef>,
    caller_force: &ForceId,
) -> Result<HotlistId, ServiceError> {
    let r = r.ok_or_else(|| ServiceError::invalid("list is required"))?;
    let owner = if r.owner.trim().is_empty() {
        caller_force.clone()
    } else {
        ForceId::new(&r.owner).map_err(|e| ServiceError::invalid(format!("list owner: {e}")))?
    };
    HotlistId::new(owner, &r.name).map_err(hotlist_status)
}

/// The list a manager may change: it must be their own force's.
fn own_list(r: Option<&pb::HotlistRef>, force: &ForceId) -> Result<HotlistId, ServiceError> {
    let id = list_id(r, force)?;
    if id.owner != *force {
        return Err(ServiceError::denied(format!(
            "list {id} belongs to {}; a {force} user may change only {force}'s lists",
            id.owner
        )));
    }
    Ok(id)
}

fn info(l: &Hotlist, entries: &[HotlistEntry], now: nadc_core::Timestamp) -> pb::HotlistInfo {
    let active = entries.iter().filter(|e| e.active_at(now)).count() as u64;
    hotlist_to_pb(l, entries.len() as u64, active)
}

/// Checks one wire entry into a core entry created by `user` at `now`.
pub fn entry_from_pb(
    e: &pb::HotlistEntry,
    user: &str,
    now: nadc_core::Timestamp,
) -> Result<HotlistEntry, HotlistError> {
    let bad = |field: &'static str, message: String| HotlistError { field, message };
    let vrm = Vrm::normalise(&e.vrm).map_err(|err| bad("vrm", err.to_string()))?;
    let action =
        action_from_pb(e.action).ok_or_else(|| bad("action", "is required".to_string()))?;
    let expires_at = e
        .expires_at
        .as_ref()
        .ok_or_else(|| bad("expires_at", "is required".to_string()))?;
    let expires_at = proto::from_pb_time(expires_at).ok_or_else(|| {
        bad(
            "expires_at",
            "is outside 1970-01-01 to 9999-12-31".to_string(),
        )
    })?;
    let entry = HotlistEntry {
        vrm,
        reason: e.reason.trim().to_string(),
        intel_ref: e.intel_ref.trim().to_string(),
        action,
        convoy: e.convoy,
        created_by: user.to_string(),
        created_at: now,
        expires_at,
    };
    entry.validate()?;
    Ok(entry)
}

#[tonic::async_trait]
impl pb::hotlists_server::Hotlists for HotlistsService {
    async fn create_hotlist(
        &self,
        req: Request<pb::CreateHotlistRequest>,
    ) -> Result<Response<pb::HotlistInfo>, Status> {
        let (force, user, actor) = require_manager(&req)?;
        let q = req.into_inner();
        let id = HotlistId::new(force, &q.name).map_err(hotlist_status)?;
        let max_edits =
            u8::try_from(q.max_edits).map_err(|_| ServiceError::invalid("max_edits: at most 1"))?;
        let list = Hotlist {
            id: id.clone(),
            purpose: q.purpose.trim().to_string(),
            description: q.description.trim().to_string(),
            fuzzy: Fuzzy::new(q.fuzzy, max_edits).map_err(hotlist_status)?,
            created_by: user.clone(),
            created_at: self.clock.now(),
            rules: rules_from_pb(&q.rules)?,
        };
        list.validate().map_err(hotlist_status)?;
        if self.registry.get(&id).is_some() {
            return Err(ServiceError::exists(format!("list {id} already exists")).into());
        }
        self.submit(Change::CreateList(list.clone())).await?;
        self.audit(
            &actor,
            "hotlist.create",
            json!({"list": id.to_string(), "purpose": list.purpose, "fuzzy": list.fuzzy.confusable,
                "max_edits": list.fuzzy.max_edits, "rules": rules_json(&list.rules)}),
        )
        .await?;
        info!(list = %id, user = %user, fuzzy = list.fuzzy.confusable, "hotlist created");
        Ok(Response::new(info(&list, &[], self.clock.now())))
    }

    async fn set_rules(
        &self,
        req: Request<pb::SetRulesRequest>,
    ) -> Result<Response<pb::HotlistInfo>, Status> {
        let (force, user, actor) = require_manager(&req)?;
        let q = req.into_inner();
        let id = own_list(q.list.as_ref(), &force)?;
        let rules = rules_from_pb(&q.rules)?;
        // Applied to the list as the registry holds it then: a list deleted
        // meanwhile is not brought back.
        let Changed::List(list, entries) = self
            .submit(Change::SetRules {
                list: id.clone(),
                rules,
            })
            .await?
        else {
            return Err(ServiceError::internal("setting rules did not give the list").into());
        };
        self.audit(
            &actor,
            "hotlist.rules",
            json!({"list": id.to_string(), "rules": rules_json(&list.rules)}),
        )
        .await?;
        info!(list = %id, user = %user, rules = list.rules.len(), "hotlist rules set");
        Ok(Response::new(info(&list, &entries, self.clock.now())))
    }

    async fn delete_hotlist(
        &self,
        req: Request<pb::HotlistRef>,
    ) -> Result<Response<pb::DeleteHotlistResponse>, Status> {
        let (force, user, actor) = require_manager(&req)?;
        let id = own_list(Some(req.get_ref()), &force)?;
        if self.registry.get(&id).is_none() {
            return Err(ServiceError::not_found(format!("no list {id}")).into());
        }
        let entries = match self.submit(Change::DeleteList(id.clone())).await? {
            Changed::Entries(n) => n,
            _ => 0,
        };
        self.audit(
            &actor,
            "hotlist.delete",
            json!({"list": id.to_string(), "entries": entries}),
        )
        .await?;
        info!(list = %id, user = %user, entries, "hotlist deleted");
        Ok(Response::new(pb::DeleteHotlistResponse {
            entries_deleted: entries,
        }))
    }

    async fn add_entries(
        &self,
        req: Request<pb::AddEntriesRequest>,
    ) -> Result<Response<pb::AddEntriesResponse>, Status> {
        let (force, user, actor) = require_manager(&req)?;
        let req_principal = caller(&req)?.principal;
        let q = req.into_inner();
        let id = own_list(q.list.as_ref(), &force)?;
        if self.registry.get(&id).is_none() {
            return Err(ServiceError::not_found(format!("no list {id}")).into());
        }
        let now = self.clock.now();
        let mut good: Vec<HotlistEntry> = Vec::with_capacity(q.entries.len());
        let mut rejected = Vec::new();
        for (i, e) in q.entries.iter().enumerate() {
            let checked = entry_from_pb(e, &user, now).and_then(|entry| {
                if entry.expires_at <= now {
                    Err(HotlistError {
                        field: "expires_at",
                        message: format!("{} is not in the future", entry.expires_at),
                    })
                } else {
                    Ok(entry)
                }
            });
            match checked {
                Ok(entry) => good.push(entry),
                Err(err) => rejected.push(pb::EntryRejection {
                    index: i as u32,
                    vrm: e.vrm.clone(),
                    field: err.field.to_string(),
                    message: err.message,
                }),
            }
        }
        // The same VRM twice in one request: the later one wins, as a later
        // request would.
        let mut seen = std::collections::BTreeSet::new();
        good.reverse();
        good.retain(|e| seen.insert(e.vrm.clone()));
        good.reverse();
        let look_back = q.look_back_days;
        // A look-back searches stored reads: governed as a search (a
        // searching role, purpose, case, the data-age tier), bounded, its
        // hits registered under the case and audited before they are
        // logged for anyone to watch.
        let prepared = if look_back > 0 && !good.is_empty() {
            match self
                .look_back(&req_principal, &actor, &id, &good, &q, now)
                .await
            {
                Ok(r) => Some(r),
                Err(status) => {
                    let what = Audited {
                        query: json!({"list": id.to_string(), "look_back_days": look_back}),
                        ..Default::default()
                    };
                    return Err(self
                        .governance
                        .refuse(&actor, "hotlist.add", &what, status)
                        .await);
                }
            }
        } else {
            None
        };
        let stored = good.len() as u32;
        let added: Vec<serde_json::Value> = good
            .iter()
            .map(|e| {
                json!({"vrm": e.vrm.as_str(), "action": e.action.as_str(),
                "intel_ref": e.intel_ref, "expires_at": e.expires_at.to_rfc3339()})
            })
            .collect();
        if !good.is_empty() {
            self.submit(Change::PutEntries {
                list: id.clone(),
                entries: good,
            })
            .await?;
        }
        // The entries match reads ingested from now on; the look-back finds
        // those stored before.
        let (retro, failed) = match prepared {
            Some(p) => match p.run(self).await {
                Ok(r) => (Some(r), None),
                Err(status) => (None, Some(status)),
            },
            None => (None, None),
        };
        let (hits, truncated) = retro
            .as_ref()
            .map_or((0, false), |r| (r.alerts.len() as u32, r.truncated));
        // The entries are stored whatever became of the look-back: the
        // change is audited either way.
        self.audit(
            &actor,
            "hotlist.add",
            json!({"list": id.to_string(), "entries": added, "refused": rejected.len(),
                "look_back_days": look_back, "retrospective_hits": hits,
                "retrospective_truncated": truncated,
                "retrospective_failed": failed.as_ref().map(|s| s.message().to_string())}),
        )
        .await?;
        if let Some(status) = failed {
            return Err(Status::new(
                status.code(),
                format!(
                    "the entries were stored, but their look-back failed: {}",
                    status.message()
                ),
            ));
        }
        // Logged only now, with the change and its audit durable, as a
        // change (in replicated mode through the log: decided here, logged
        // by every replica holding the reads).
        let (mut first, mut last) = (0, 0);
        if let Some(r) = retro.filter(|r| !r.alerts.is_empty()) {
            let (store, refs): (_, Vec<_>) = (
                self.store.clone(),
                r.alerts.iter().map(|a| a.read).collect(),
            );
            let reads = tokio::task::spawn_blocking(move || store.get_reads(&refs))
                .await
                .map_err(|e| ServiceError::internal(format!("retrospective hits: {e}")))?
                .map_err(store_status)?;
            let alerts = r
                .alerts
                .into_iter()
                .zip(reads)
                .map(|(a, s)| LoggedAlert {
                    read: (s.read.observed_at.day(), s.force, s.read.read_id),
                    raised_at: a.raised_at,
                    detail: a.detail,
                })
                .collect();
            if let Changed::Alerts(logged) = self.submit(Change::LogAlerts(alerts)).await? {
                (first, last) = (
                    logged.first().copied().unwrap_or(0),
                    logged.last().copied().unwrap_or(0),
                );
            }
        }
        info!(list = %id, user = %user, stored, rejected = rejected.len(),
            retrospective = hits, "hotlist entries added");
        Ok(Response::new(pb::AddEntriesResponse {
            stored,
            rejected,
            retrospective_hits: hits,
            first_position: first,
            last_position: last,
            retrospective_truncated: truncated,
        }))
    }

    async fn remove_entries(
        &self,
        req: Request<pb::RemoveEntriesRequest>,
    ) -> Result<Response<pb::RemoveEntriesResponse>, Status> {
        let (force, user, actor) = require_manager(&req)?;
        let q = req.into_inner();
        let id = own_list(q.list.as_ref(), &force)?;
        let (_, entries) = self
            .registry
            .get(&id)
            .ok_or_else(|| ServiceError::not_found(format!("no list {id}")))?;
        let vrms = q
            .vrms
            .iter()
            .map(|v| {
                Vrm::normalise(v).map_err(|e| ServiceError::invalid(format!("vrm {v:?}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let not_found = vrms
            .iter()
            .filter(|v| !entries.iter().any(|e| e.vrm == **v))
            .map(|v| v.as_str().to_string())
            .collect();
        let removed = match self
            .submit(Change::RemoveEntries {
                list: id.clone(),
                vrms,
            })
            .await?
        {
            Changed::Entries(n) => n as u32,
            _ => 0,
        };
        self.audit(
            &actor,
            "hotlist.remove",
            json!({"list": id.to_string(), "vrms": q.vrms, "removed": removed}),
        )
        .await?;
        info!(list = %id, user = %user, removed, "hotlist entries removed");
        Ok(Response::new(pb::RemoveEntriesResponse {
            removed,
            not_found,
        }))
    }

    async fn list_hotlists(
        &self,
        req: Request<pb::ListHotlistsRequest>,
    ) -> Result<Response<pb::ListHotlistsResponse>, Status> {
        let (force, _) = require_reader(&req, &self.governance.policy)?;
        let now = self.clock.now();
        let lists = self
            .registry
            .lists()
            .iter()
            .filter(|(l, _)| l.id.owner == force)
            .map(|(l, e)| info(l, e, now))
            .collect();
        Ok(Response::new(pb::ListHotlistsResponse { lists }))
    }

    async fn get_hotlist(
        &self,
        req: Request<pb::HotlistRef>,
    ) -> Result<Response<pb::GetHotlistResponse>, Status> {
        let (force, actor) = require_reader(&req, &self.governance.policy)?;
        let g = &self.governance;
        let what = Audited {
            query: serde_json::json!({"owner": req.get_ref().owner, "name": req.get_ref().name}),
            ..Default::default()
        };
        let id = match list_id(Some(req.get_ref()), &force) {
            Ok(id) if id.owner == force => id,
            Ok(id) => {
                let status = ServiceError::denied(format!(
                    "list {id} belongs to {}: its entries are {}'s intelligence, shown only to {}'s users",
                    id.owner, id.owner, id.owner
                ));
                return Err(g.refuse(&actor, "hotlist.show", &what, status).await);
            }
            Err(status) => return Err(g.refuse(&actor, "hotlist.show", &what, status).await),
        };
        let Some((list, entries)) = self.registry.get(&id) else {
            let status = ServiceError::not_found(format!("no list {id}"));
            return Err(g.refuse(&actor, "hotlist.show", &what, status).await);
        };
        let what = Audited {
            returned: vec![(force.clone(), entries.len() as u64)],
            ..what
        };
        g.record(g.entry(&actor, "hotlist.show", &what, Outcome::Ok))
            .await?;
        Ok(Response::new(pb::GetHotlistResponse {
            list: Some(info(&list, &entries, self.clock.now())),
            entries: entries.iter().map(entry_to_pb).collect(),
        }))
    }
}
