//! The Alerts service: watching the alert log and verifying alerts, under
//! the node's access rules.
//!
//! What a watch may disclose is decided once, when it opens
//! ([`WatchGrant`]): who the caller is (an alerting role), which alerts
//! are theirs (the alerts their force acts on), and under which purpose
//! and case history may be replayed. Every batch of events then passes
//! [`WatchGrant::admit`] (live or history, data-age tier) and is audited,
//! durably, before it is sent.

use crate::error::ServiceError;
use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use nadc_core::access::AccessContext;
use nadc_core::alert::{AlertState, Verification};
use nadc_core::time::Clock;
use nadc_core::{ForceId, Principal, Timestamp};
use nadc_proto::hotlists::verification_from_pb;
use nadc_proto::log::{AlertKey, Change, LoggedVerification};
use nadc_proto::{self as proto, pb};
use nadc_store::{Store, StoreError};
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use tracing::info;

use super::AlertHub;
use super::events::{AlertFilter, events, logged_alert, next_batch};
use crate::auth::caller;
use crate::changes::Changed;
use crate::governance::{Actor, Audited, Governance};

/// The Alerts service.
#[derive(Clone)]
pub struct AlertsService {
    /// The store holding the log.
    pub store: Arc<dyn Store>,
    /// New positions.
    pub hub: Arc<AlertHub>,
    /// The node's name, for provenance.
    pub node: String,
    /// The node's clock.
    pub clock: Arc<dyn Clock>,
    /// Access rules and the audit.
    pub governance: Arc<Governance>,
    /// Peers, for a national history of alerts.
    pub federation: Option<Arc<crate::federation::Federation>>,
    /// Set when the node stops: following watches end with UNAVAILABLE
    /// (so the subscriber reconnects and resumes) instead of holding the
    /// node open.
    pub stop: watch::Receiver<bool>,
    /// A watch takes a place among its user's open searches and watches
    /// (no search worker), and is ended when its client reads nothing for
    /// the workers' stalled-reader bound.
    pub workers: crate::workers::SearchWorkers,
    /// Where verifications are recorded (through the replicated log in
    /// replicated mode).
    pub changes: Arc<crate::changes::Changes>,
}

/// A stream of alert events.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<pb::AlertEvent, Status>> + Send>>;

/// What a watch may disclose, decided when it opens.
#[derive(Clone)]
pub struct WatchGrant {
    /// Who watches.
    pub actor: Actor,
    /// The force whose alerts they see.
    pub force: ForceId,
    /// The purpose and case history is replayed under (none: live alerts
    /// only).
    pub access: Option<AccessContext>,
    /// That case (its owner force's, which the watcher's force is a member
    /// of).
    pub case: Option<crate::cases::CaseId>,
    /// Leave out history the context does not reach instead of ending the
    /// watch.
    pub clip: bool,
    /// The request, for the audit.
    pub query: serde_json::Value,
    governance: Arc<Governance>,
}

/// A watch refused: who asked, what, and why.
pub struct Refusal(Actor, Audited, ServiceError);

/// The audit action of a watch's disclosures.
const DISCLOSED: &str = "alert.disclosed";

impl WatchGrant {
    /// Decides what `principal` may see through watch `q`: an alerting
    /// role, its own force's alerts, and history only under a valid purpose
    /// and case.
    pub fn decide(
        governance: &Arc<Governance>,
        principal: &Principal,
        q: &pb::WatchRequest,
        relayed: bool,
    ) -> Result<Self, Box<Refusal>> {
        let actor = Actor::of(principal);
        let query = json!({"after": q.after, "from_now": q.from_now,
            "history_only": q.history_only, "scope": q.scope,
            "lists": q.lists.iter().map(|l| format!("{}/{}", l.owner, l.name)).collect::<Vec<_>>(),
            "forces": q.forces, "actions": q.actions, "kinds": q.kinds});
        let given = q.access.clone().unwrap_or_default();
        let audited = |access: AccessContext| Audited {
            access,
            query: query.clone(),
            returned: Vec::new(),
        };
        let raw = AccessContext {
            purpose: given.purpose.clone(),
            case_ref: given.case_ref.clone(),
            authorisation: given.authorisation.clone(),
        };
        let Principal::User { force, roles, .. } = principal else {
            let status = ServiceError::denied(format!(
                "alerts are for users with an alerting role; caller is {principal}"
            ));
            return Err(Box::new(Refusal(actor, audited(raw), status)));
        };
        if let Err(e) = governance.policy.check_alerts(roles) {
            let status = ServiceError::denied(e.to_string());
            return Err(Box::new(Refusal(actor, audited(raw), status)));
        }
        let named = !(given.purpose.trim().is_empty() && given.case_ref.trim().is_empty());
        let (access, case) = if named {
            let ctx = match governance.context(q.access.as_ref()) {
                Ok((ctx, _)) => ctx,
                Err(status) => return Err(Box::new(Refusal(actor, audited(raw), status.into()))),
            };
            // History is registered under the case: one the watcher's force
            // is a member of (a relayed watch's was checked at its node).
            let case = if relayed {
                crate::cases::Cases::named(&actor, &ctx.case_ref, &given.case_force)
            } else {
                governance.cases.resolve(
                    &actor,
                    &ctx.case_ref,
                    &given.case_force,
                    "replay alert history under it",
                )
            };
            match case {
                Ok(case) => (Some(ctx), Some(case)),
                Err(status) => return Err(Box::new(Refusal(actor, audited(raw), status.into()))),
            }
        } else {
            (None, None)
        };
        Ok(Self {
            actor,
            force: force.clone(),
            clip: given.clip_to_permitted,
            access,
            case,
            query,
            governance: governance.clone(),
        })
    }

    fn audited(&self) -> Audited {
        Audited {
            access: self.access.clone().unwrap_or_default(),
            query: self.query.clone(),
            returned: Vec::new(),
        }
    }

    /// Records that the watch opened (blocking).
    fn opened_blocking(&self) -> Result<u64, Status> {
        let g = &self.governance;
        g.record_blocking(g.entry(
            &self.actor,
            "alert.watch",
            &self.audited(),
            nadc_core::audit::Outcome::Ok,
        ))
    }

    /// The events of a batch this watch may see at `now`. An alert raised
    /// before the live period is history: without a purpose and case the
    /// watch ends (FAILED_PRECONDITION); with them, its reads must lie in
    /// the data-age tier the context permits, or the watch ends
    /// (PERMISSION_DENIED), or with clip the alert is left out. A live
    /// alert on a read older than the standard tier is left out without a
    /// context that permits it.
    pub fn admit(
        &self,
        batch: Vec<pb::AlertEvent>,
        now: Timestamp,
    ) -> Result<Vec<pb::AlertEvent>, ServiceError> {
        let g = &self.governance;
        let live_from = g.policy.live_alerts_from(now);
        let mut kept = Vec::with_capacity(batch.len());
        for e in batch {
            // A clone is either read's owner's (a hit or a convoy was
            // scoped to its list's owner when read from the log).
            let theirs = [e.read.as_ref(), e.other_read.as_ref()]
                .into_iter()
                .flatten()
                .filter_map(|r| r.provenance.as_ref())
                .any(|p| p.owning_force == self.force.as_str());
            if e.list.is_none() && !theirs {
                continue;
            }
            let raised = e.raised_at.as_ref().and_then(proto::from_pb_time);
            let captured = [e.read.as_ref(), e.other_read.as_ref()]
                .into_iter()
                .flatten()
                .filter_map(|r| r.provenance.as_ref()?.observed_at.as_ref())
                .filter_map(proto::from_pb_time)
                .min();
            // A retrospective hit is history whenever it was raised: its
            // read is older than the live period.
            let history = e.retrospective || raised.is_none_or(|t| t < live_from);
            let Some(access) = &self.access else {
                if e.retrospective {
                    // A live watch without a purpose and case is not shown
                    // them; replaying history under a case is.
                    continue;
                }
                if history {
                    return Err(ServiceError::precondition(format!(
                        "alert {} was raised before the live period (the last {} minutes): replaying history needs a purpose and a case reference (--purpose, --case), and is audited like a search",
                        e.position, g.policy.alert_live_minutes
                    )));
                }
                if captured.is_some_and(|t| t >= g.policy.standard_start(now)) {
                    kept.push(e);
                }
                continue;
            };
            let Some(t) = captured else {
                kept.push(e);
                continue;
            };
            match g.permit(&self.actor, access, false, t, t, now) {
                Ok(_) => kept.push(e),
                Err(_) if self.clip || !history => {}
                Err(status) => {
                    let alert = format!("alert {}", e.position);
                    return Err(ServiceError::from(status).about(&alert));
                }
            }
        }
        Ok(kept)
    }

    /// Audits the events about to be sent (blocking; durable on return):
    /// their reads counted per owning force and, under a case, registered.
    pub fn disclose_blocking(&self, sent: &[pb::AlertEvent], via: &str) -> Result<(), Status> {
        if sent.is_empty() {
            return Ok(());
        }
        let rows: Vec<&pb::ReadRow> = sent
            .iter()
            .flat_map(|e| [e.read.as_ref(), e.other_read.as_ref()])
            .flatten()
            .collect();
        let positions: Vec<u64> = sent.iter().map(|e| e.position).collect();
        self.governance
            .disclose_blocking(
                &self.actor,
                DISCLOSED,
                self.access.as_ref().zip(self.case.as_ref()),
                json!({"via": via, "events": sent.len(), "positions": positions}),
                &rows,
            )
            .map(|_| ())
    }
}

/// Reads the log after `pos` up to its end (as it is now), admits and
/// audits each batch, and hands it to `send`; gives the last position read.
/// Blocking.
pub fn drain_blocking(
    store: &dyn Store,
    node: &str,
    grant: &WatchGrant,
    filter: &AlertFilter,
    mut pos: u64,
    now: Timestamp,
    send: &mut dyn FnMut(Vec<pb::AlertEvent>) -> bool,
) -> Result<u64, ServiceError> {
    loop {
        let (batch, last) = next_disclosed_blocking(store, node, grant, filter, pos, now)?;
        if !batch.is_empty() && !send(batch) {
            return Ok(last);
        }
        if last == pos {
            return Ok(pos);
        }
        pos = last;
    }
}

/// The next batch of alerts logged after `pos` that the watcher may see,
/// admitted and audited (durably) before it is returned, and the position
/// it ends at (`pos` when nothing more is logged).
pub fn next_disclosed_blocking(
    store: &dyn Store,
    node: &str,
    grant: &WatchGrant,
    filter: &AlertFilter,
    pos: u64,
    now: Timestamp,
) -> Result<(Vec<pb::AlertEvent>, u64), ServiceError> {
    let (alerts, last) = next_batch(store, pos, filter).map_err(log_unavailable)?;
    let batch = grant.admit(events(store, node, alerts).map_err(log_unavailable)?, now)?;
    grant.disclose_blocking(&batch, node)?;
    Ok((batch, last))
}

/// Why `force` may not act on the alert at `position`, if it may not: a
/// hit or a convoy is the list owner's; a clone is either read's owner's.
fn not_theirs(
    store: &dyn Store,
    position: u64,
    alert: &nadc_core::alert::Alert,
    force: &ForceId,
) -> Result<Option<ServiceError>, ServiceError> {
    if let Some(list) = alert.detail.list() {
        return Ok((list.owner != *force).then(|| {
            ServiceError::denied(format!(
                "alert {position} is on {owner}'s list {list}: only {owner}'s users verify it",
                owner = list.owner
            ))
        }));
    }
    if alert.read_force == *force {
        return Ok(None);
    }
    let refs: Vec<_> = alert.reads().skip(1).collect();
    let others = store.get_reads(&refs).map_err(log_unavailable)?;
    if others.iter().any(|r| r.force == *force) {
        return Ok(None);
    }
    Ok(Some(ServiceError::denied(format!(
        "alert {position} is a clone of reads owned by {}{}: only their users verify it",
        alert.read_force,
        others
            .iter()
            .map(|r| format!(" and {}", r.force))
            .collect::<String>()
    ))))
}

fn log_unavailable(e: StoreError) -> ServiceError {
    ServiceError::unavailable(format!("alert log: {e}"))
}

impl AlertsService {
    /// Authenticates the caller (or the user a peer relays), decides the
    /// watch and takes its place among the user's open streams; refusals
    /// are audited.
    async fn grant(
        &self,
        req: &Request<pb::WatchRequest>,
    ) -> Result<(WatchGrant, bool, crate::workers::Place), Status> {
        let principal = caller(req)?.principal;
        let g = &self.governance;
        let relayed = match crate::federation::relayed_user(
            self.federation.as_deref(),
            &principal,
            req.get_ref().on_behalf_of.as_ref(),
        ) {
            Ok(relayed) => relayed,
            Err(e) => {
                let what = Audited::default();
                let actor = Actor::of(&principal);
                return Err(g
                    .refuse(&actor, "alert.watch", &what, Status::from(e))
                    .await);
            }
        };
        let is_relayed = relayed.is_some();
        let principal = relayed.unwrap_or(principal);
        let grant = match WatchGrant::decide(g, &principal, req.get_ref(), is_relayed) {
            Ok(grant) => grant,
            Err(r) => {
                let Refusal(actor, what, status) = *r;
                return Err(g.refuse(&actor, "alert.watch", &what, status).await);
            }
        };
        let user = format!("{}/{}", grant.force, grant.actor.user);
        let place = match self.workers.place(&user) {
            Ok(place) => place,
            Err(status) => {
                let what = Audited::default();
                return Err(g.refuse(&grant.actor, "alert.watch", &what, status).await);
            }
        };
        let opened = grant.clone();
        tokio::task::spawn_blocking(move || opened.opened_blocking())
            .await
            .map_err(|e| ServiceError::internal(e.to_string()))??;
        Ok((grant, is_relayed, place))
    }
}

#[tonic::async_trait]
impl pb::alerts_server::Alerts for AlertsService {
    type WatchStream = EventStream;

    async fn watch(
        &self,
        req: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let (grant, relayed, place) = self.grant(&req).await?;
        let q = req.into_inner();
        let filter = AlertFilter::for_force(&q, grant.force.clone())?;
        let peers = self
            .federation
            .clone()
            .filter(|f| !f.peers.is_empty() && !relayed && q.scope != pb::Scope::Local as i32);
        if let (true, Some(federation)) = (q.history_only, peers.clone()) {
            return self.national_history(grant, filter, q, federation).await;
        }
        info!(user = %grant.actor.user, force = %grant.force, after = q.after,
            follow = !q.history_only, "alert watch opened");
        let (tx, rx) = mpsc::channel::<Result<pb::AlertEvent, Status>>(64);
        let peer_tx = tx.clone();
        let (store, node, clock) = (self.store.clone(), self.node.clone(), self.clock.clone());
        let mut latest = self.hub.subscribe();
        let mut stop = self.stop.clone();
        let history_only = q.history_only;
        let start = if q.from_now {
            self.store.last_alert()
        } else {
            q.after
        };
        let watcher = grant.clone();
        let stalled = self.workers.stalled_reader();
        tokio::spawn(async move {
            // The user's place is held while the watch is open.
            let _place = place;
            let mut pos = start;
            loop {
                // Everything logged after `pos`, admitted and audited batch
                // by batch on a blocking thread, each batch sent (holding
                // no thread) before the next is read. A watcher that reads
                // nothing for `stalled_reader` is cut off.
                loop {
                    let (s, n, g, f, now) = (
                        store.clone(),
                        node.clone(),
                        watcher.clone(),
                        filter.clone(),
                        clock.now(),
                    );
                    let next = tokio::task::spawn_blocking(move || {
                        next_disclosed_blocking(s.as_ref(), &n, &g, &f, pos, now)
                    })
                    .await;
                    let (batch, last) = match next {
                        Ok(Ok(next)) => next,
                        Ok(Err(status)) => {
                            let _ = tx.send(Err(status.into())).await;
                            return;
                        }
                        Err(e) => {
                            let _ = tx
                                .send(Err(ServiceError::internal(e.to_string()).into()))
                                .await;
                            return;
                        }
                    };
                    for e in batch {
                        if let Err(gone) = crate::workers::send_within(&tx, Ok(e), stalled).await {
                            if let crate::workers::Gone::Stalled(_) = gone {
                                tracing::warn!("alert watch: {gone}");
                            }
                            return;
                        }
                    }
                    if last == pos {
                        break;
                    }
                    pos = last;
                }
                if history_only || tx.is_closed() {
                    return;
                }
                // Wait for a newer position, for the subscriber to go, or
                // for the node to stop.
                let stopping = tokio::select! {
                    changed = latest.wait_for(|p| *p > pos) => {
                        if changed.is_err() {
                            return;
                        }
                        false
                    }
                    () = tx.closed() => return,
                    stopped = stop.wait_for(|s| *s) => stopped.is_ok(),
                };
                if stopping {
                    let _ = tx
                        .send(Err(ServiceError::unavailable(format!(
                            "the node is stopping; resume after position {pos}"
                        ))
                        .into()))
                        .await;
                    return;
                }
            }
        });
        // Following nationally: each peer's new alerts too, as they arrive.
        if let (false, Some(federation)) = (q.history_only, peers) {
            self.follow_peers(&grant, &q, &federation, peer_tx);
        }
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn verify(
        &self,
        req: Request<pb::VerifyRequest>,
    ) -> Result<Response<pb::AlertEvent>, Status> {
        let principal = caller(&req)?.principal;
        let actor = Actor::of(&principal);
        let q = req.into_inner();
        let g = self.governance.clone();
        let state_name = verification_from_pb(q.state).map(|s| s.as_str());
        let what = Audited {
            query: json!({"position": q.position, "state": state_name, "note": q.note,
                "outcome": q.outcome}),
            ..Default::default()
        };
        let (force, user) = match &principal {
            Principal::User { force, name, roles } => match g.policy.check_alerts(roles) {
                Ok(()) => (force.clone(), name.clone()),
                Err(e) => {
                    let status = ServiceError::denied(e.to_string());
                    return Err(g.refuse(&actor, "alert.verify", &what, status).await);
                }
            },
            other => {
                let status = ServiceError::denied(format!(
                    "verifying an alert needs a user certificate with an alerting role; caller is {other}"
                ));
                return Err(g.refuse(&actor, "alert.verify", &what, status).await);
            }
        };
        let Some(state) = verification_from_pb(q.state) else {
            let status =
                ServiceError::invalid("state is required: confirmed, rejected or unverified");
            return Err(g.refuse(&actor, "alert.verify", &what, status).await);
        };
        if q.note.len() > nadc_core::hotlist::MAX_TEXT_LEN || q.note.chars().any(char::is_control) {
            let status = ServiceError::invalid("note: at most 512 bytes, no control characters");
            return Err(g.refuse(&actor, "alert.verify", &what, status).await);
        }
        let outcome = match nadc_proto::hotlists::outcome_from_pb(q.outcome) {
            Ok(None) => None,
            Ok(Some(o)) if state == Verification::Confirmed => Some(o),
            Ok(Some(o)) => {
                let status = ServiceError::invalid(format!(
                    "outcome {}: only a confirmed hit has an outcome (a rejected one is a misread)",
                    o.as_str()
                ));
                return Err(g.refuse(&actor, "alert.verify", &what, status).await);
            }
            Err(e) => {
                return Err(g
                    .refuse(&actor, "alert.verify", &what, ServiceError::invalid(e))
                    .await);
            }
        };
        let record = AlertState {
            state,
            by: user.clone(),
            by_force: force.clone(),
            at: self.clock.now(),
            note: q.note.trim().to_string(),
            outcome,
        };
        let (store, position) = (self.store.clone(), q.position);
        let (gov, who) = (g.clone(), actor.clone());
        let checked = tokio::task::spawn_blocking(move || {
            let Some(alert) = logged_alert(store.as_ref(), position).map_err(log_unavailable)?
            else {
                return Ok(Err(ServiceError::not_found(format!(
                    "no alert at position {position}"
                ))));
            };
            if let Some(refusal) = not_theirs(store.as_ref(), position, &alert, &force)? {
                return Ok(Err(refusal));
            }
            // Named as every replica knows it: by its read (and a clone
            // flag's other read).
            let mut refs = vec![alert.read];
            if let nadc_core::alert::AlertDetail::Clone { other, .. } = &alert.detail {
                refs.push(*other);
            }
            let mut ids = store
                .get_reads(&refs)
                .map_err(log_unavailable)?
                .into_iter()
                .map(|r| (r.read.observed_at.day(), r.force, r.read.read_id));
            let read = ids.next().ok_or_else(|| {
                ServiceError::not_found(format!("no alert at position {position}"))
            })?;
            let key = AlertKey::of(&alert, read, ids.next());
            let mut what = what;
            what.returned = vec![(alert.read_force.clone(), 1)];
            let entry = gov.entry(&who, "alert.verify", &what, nadc_core::audit::Outcome::Ok);
            Ok::<_, ServiceError>(Ok((alert, key, entry)))
        })
        .await
        .map_err(|e| ServiceError::internal(e.to_string()))??;
        // The state and its audit entry in one write, as a change: in
        // replicated mode through the log, so every replica records it.
        let verified = match checked {
            Ok((alert, key, entry)) => match self
                .changes
                .submit(Change::Verify(Box::new(LoggedVerification {
                    alert: key,
                    state: record,
                    audit: entry,
                })))
                .await
            {
                Ok(Changed::Verified(p)) => {
                    let (store, node) = (self.store.clone(), self.node.clone());
                    tokio::task::spawn_blocking(move || {
                        events(store.as_ref(), &node, vec![(p, alert)])
                            .map_err(log_unavailable)
                            .map(|mut e| e.pop())
                    })
                    .await
                    .map_err(|e| ServiceError::internal(e.to_string()))??
                    .ok_or_else(|| ServiceError::not_found(format!("no alert at position {p}")))
                }
                Ok(_) => Err(ServiceError::internal("a verification gave no position")),
                Err(e) => Err(e),
            },
            Err(refusal) => Err(refusal),
        };
        match verified {
            Ok(event) => {
                info!(user = %user, position, state = state.as_str(), "alert verified");
                Ok(Response::new(event))
            }
            // Refused before anything was written: audited as refused.
            Err(status) => {
                let what = Audited {
                    query: json!({"position": q.position, "state": state_name}),
                    ..Default::default()
                };
                Err(g.refuse(&actor, "alert.verify", &what, status).await)
            }
        }
    }
}
