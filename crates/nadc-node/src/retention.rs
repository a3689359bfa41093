//! Retention: deleting expired reads (per force where configured), keeping
//! those under a legal hold, and recording what was deleted in the audit.
//!
//! Deletion is by whole UTC capture days: a day is deleted for a force once
//! all of it is older than the force's retention, so a read goes at most a
//! day after it expires. Each day is deleted in bounded steps through the
//! store's writer, so ingest goes on meanwhile.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use nadc_core::audit::Outcome;
use nadc_core::{ForceId, Role, Timestamp};
use nadc_proto::log::{Change, RetentionPolicy};
use nadc_proto::pb;
use nadc_store::{ExpireDay, Store, StoreError};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::watch;
use tonic::{Request, Response, Status};
use tracing::{info, warn};

use crate::disclosure::{admit, audit_case, blocking_in, refuse_case};
use crate::error::ServiceError;
use crate::governance::{Actor, Audited, Governance};
use crate::recent::RecentReads;

/// Reads deleted per step of a day.
const STEP: usize = 50_000;

/// Retention settings beyond the node's `retention_days`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Days kept for particular forces (others: `retention_days`).
    pub per_force_days: BTreeMap<String, u32>,
    /// Seconds between automatic passes (0: none; `RunRetention` still works).
    pub interval_s: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            per_force_days: BTreeMap::new(),
            interval_s: 3600,
        }
    }
}

/// What a pass deleted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Reads deleted per (capture day, owning force).
    pub deleted: BTreeMap<(u32, ForceId), u64>,
    /// Reads past retention kept under a legal hold.
    pub held: u64,
    /// Logged alerts deleted with a read they named.
    pub alerts_deleted: u64,
    /// Case register entries deleted with the reads they named.
    pub register_deleted: u64,
}

/// Runs retention passes.
pub struct Retention {
    /// The store.
    pub store: Arc<dyn Store>,
    /// Audit and clock.
    pub governance: Arc<Governance>,
    /// Days kept, by default and per force.
    pub policy: RetentionPolicy,
    /// The clone check's recent reads, told to forget what is deleted.
    pub recent: Option<Arc<RecentReads>>,
}

fn day_text(day: u32) -> String {
    Timestamp::from_day_ms(day, 0).to_rfc3339()[..10].to_string()
}

/// The first capture day kept for `force` at `now` under `policy`.
fn first_kept_day(policy: &RetentionPolicy, force: &ForceId, now: Timestamp) -> u32 {
    let days = policy
        .per_force
        .get(force)
        .copied()
        .unwrap_or(policy.default_days);
    now.minus_days(days).day()
}

impl Retention {
    /// One pass now, under the node's own policy. Blocking: run off the
    /// async runtime.
    pub fn run_once(&self) -> Result<Report, StoreError> {
        self.pass(self.governance.now(), &self.policy)
    }

    /// A pass as a change to the state replicas keep alike: as of now,
    /// under the node's own policy, to be applied by every replica.
    pub fn change(&self) -> Change {
        Change::Retention {
            at: self.governance.now(),
            policy: self.policy.clone(),
        }
    }

    /// One pass as of `now` under `policy`: every day before the latest
    /// cutoff, force by force. Blocking: run off the async runtime.
    pub fn pass(&self, now: Timestamp, policy: &RetentionPolicy) -> Result<Report, StoreError> {
        let first_kept_day = |force: &ForceId, now| first_kept_day(policy, force, now);
        let stats = self.store.stats()?;
        // With no read held, only the case register is left to expire.
        let earliest = stats.earliest.unwrap_or(now);
        let forces: BTreeSet<ForceId> = stats
            .reads_by_force
            .keys()
            .chain(policy.per_force.keys())
            .cloned()
            .collect();
        let last_cut = forces
            .iter()
            .map(|f| first_kept_day(f, now))
            .max()
            .unwrap_or_else(|| now.minus_days(policy.default_days).day());
        if let Some(recent) = &self.recent
            && earliest.day() < last_cut
        {
            // Before deleting, so no clone check names a deleted read.
            recent.forget_before(Timestamp::from_day_ms(last_cut, 0));
        }
        let holds = self.store.holds()?;
        let mut report = Report::default();
        for day in earliest.day()..last_cut {
            let keep_forces: BTreeSet<ForceId> = forces
                .iter()
                .filter(|f| first_kept_day(f, now) <= day)
                .cloned()
                .collect();
            if keep_forces.len() == forces.len() {
                continue;
            }
            let held: HashSet<u64> = holds
                .range(
                    nadc_store::ReadRef { day, seq: 0 }..=nadc_store::ReadRef {
                        day,
                        seq: u64::MAX,
                    },
                )
                .map(|(r, _)| r.seq)
                .collect();
            let mut from_seq = 0;
            loop {
                let step = self.store.expire(ExpireDay {
                    day,
                    keep_forces: keep_forces.clone(),
                    held: held.clone(),
                    from_seq,
                    max: STEP,
                })?;
                report.held += step.held;
                report.alerts_deleted += step.alerts_deleted;
                for (f, n) in step.deleted {
                    *report.deleted.entry((day, f)).or_default() += n;
                }
                match step.next_seq {
                    Some(s) => from_seq = s,
                    None => break,
                }
            }
        }
        // The case register forgets the reads deleted (a read of another
        // node by its force's retention here), except reads held here.
        let held: HashSet<nadc_store::ReadRef> = holds.keys().copied().collect();
        report.register_deleted = crate::disclosure::expire_register(
            self.store.as_ref(),
            self.governance.node(),
            &held,
            &|force, day| day < first_kept_day(force, now),
        )?;
        Ok(report)
    }

    /// A pass, audited as `retention.delete` by `actor` (a periodic pass
    /// that deleted and held nothing is not audited; one asked for is).
    pub fn run_audited(&self, actor: &Actor, always: bool) -> Result<Report, Status> {
        let report = self.run_once().map_err(|e| {
            Status::from(ServiceError::unavailable(format!(
                "retention pass failed: {e}"
            )))
        })?;
        self.audit(actor, &report, always)?;
        Ok(report)
    }

    /// Audits a pass's `report` as `retention.delete` by `actor` (a pass
    /// that deleted nothing only if `always`). Blocking.
    pub fn audit(&self, actor: &Actor, report: &Report, always: bool) -> Result<(), Status> {
        if !always && report.deleted.is_empty() && report.register_deleted == 0 {
            return Ok(());
        }
        let mut per_force: BTreeMap<ForceId, u64> = BTreeMap::new();
        let mut days: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        for ((day, force), n) in &report.deleted {
            *per_force.entry(force.clone()).or_default() += n;
            days.entry(day_text(*day))
                .or_default()
                .insert(force.to_string(), *n);
        }
        let what = Audited {
            query: json!({
                "deleted": days,
                "held": report.held,
                "alerts_deleted": report.alerts_deleted,
                "register_deleted": report.register_deleted,
            }),
            returned: per_force.into_iter().collect(),
            ..Default::default()
        };
        let g = &self.governance;
        g.record_blocking(g.entry(actor, "retention.delete", &what, Outcome::Ok))?;
        if !report.deleted.is_empty() {
            info!(
                days = days.len(),
                held = report.held,
                alerts = report.alerts_deleted,
                "expired reads deleted"
            );
        }
        Ok(())
    }

    /// Runs a pass every `interval` until `stop` changes, as a change
    /// (through the replicated log in replicated mode, so every replica
    /// deletes the same reads), audited as the node's.
    pub async fn run_periodically(
        self: Arc<Self>,
        changes: Arc<crate::changes::Changes>,
        interval: Duration,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut tick = tokio::time::interval(interval);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let report = match changes.submit(self.change()).await {
                        Ok(crate::changes::Changed::Retention(r)) => r,
                        Ok(_) => continue,
                        Err(e) => {
                            warn!(error = %Status::from(e), "retention pass failed");
                            continue;
                        }
                    };
                    let me = self.clone();
                    match tokio::task::spawn_blocking(move || me.audit(&Actor::node(), &report, false)).await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => warn!(error = %e, "retention pass not audited"),
                        Err(e) => warn!(error = %e, "retention task failed"),
                    }
                }
                _ = stop.changed() => return,
            }
        }
    }
}

/// The report on the wire.
pub fn report_to_pb(r: &Report) -> pb::RetentionReport {
    pb::RetentionReport {
        deleted: r
            .deleted
            .iter()
            .map(|((day, force), n)| pb::DeletedCount {
                day: day_text(*day),
                force: force.to_string(),
                deleted: *n,
            })
            .collect(),
        held: r.held,
        alerts_deleted: r.alerts_deleted,
    }
}

/// The Holds service.
#[derive(Clone)]
pub struct HoldsService {
    /// The store.
    pub store: Arc<dyn Store>,
    /// The audit.
    pub governance: Arc<Governance>,
    /// Where holds are placed and released (through the replicated log in
    /// replicated mode, so every replica holds the same reads).
    pub changes: Arc<crate::changes::Changes>,
}

const HOLDERS: [Role; 2] = [Role::Disclosure, Role::Supervisor];

#[tonic::async_trait]
impl pb::holds_server::Holds for HoldsService {
    async fn place(
        &self,
        req: Request<pb::PlaceHoldRequest>,
    ) -> Result<Response<pb::HoldResponse>, Status> {
        let g = &self.governance;
        let action = "hold.place";
        let (actor, case) = admit(g, &req, &HOLDERS, action, "hold its reads").await?;
        let name = crate::cases::name_for(&actor, &case);
        let q = req.into_inner();
        let refs = q
            .reads
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let t = r
                    .observed_at
                    .as_ref()
                    .and_then(nadc_proto::from_pb_time)
                    .ok_or_else(|| {
                        Status::from(ServiceError::invalid(format!(
                            "read {i}: observed_at is required"
                        )))
                    })?;
                Ok(nadc_store::ReadRef {
                    day: t.day(),
                    seq: r.seq,
                })
            })
            .collect::<Result<Vec<_>, Status>>();
        let refs = match refs {
            Ok(r) if r.len() <= nadc_proto::log::MAX_HOLD_READS => r,
            Ok(r) => {
                let e = Status::from(ServiceError::invalid(format!(
                    "{} reads named; at most 10000 a request",
                    r.len()
                )));
                return Err(refuse_case(g, &actor, action, &name, e).await);
            }
            Err(e) => return Err(refuse_case(g, &actor, action, &name, e).await),
        };
        // Only reads returned under the case (at this node) can be held
        // for it.
        let (store, c, rs, node) = (
            self.store.clone(),
            case.clone(),
            refs.clone(),
            g.node().to_string(),
        );
        let returned = blocking_in("", move || {
            crate::disclosure::returned_under(store.as_ref(), &c, &node, &rs)
        })
        .await?;
        if let Some(i) = returned.iter().position(|r| !r) {
            let e = Status::from(ServiceError::denied(format!(
                "read seq {} captured {} was not returned under case {name} at this node: only reads returned under a case can be held for it",
                refs[i].seq,
                crate::cases::day_text(refs[i].day)
            )));
            return Err(refuse_case(g, &actor, action, &name, e).await);
        }
        // Named as every replica knows them.
        let (store, rs) = (self.store.clone(), refs.clone());
        let reads = blocking_in("", move || store.get_reads(&rs)).await?;
        let fresh = match self
            .changes
            .submit(Change::Hold {
                owner: case.owner.clone(),
                case_ref: case.case_ref.clone(),
                reads: reads
                    .iter()
                    .map(|r| {
                        (
                            r.read.observed_at.day(),
                            r.force.clone(),
                            r.read.read_id.clone(),
                        )
                    })
                    .collect(),
            })
            .await?
        {
            crate::changes::Changed::Holds(n) => n,
            _ => 0,
        };
        audit_case(
            g,
            &actor,
            action,
            &name,
            json!({"reads": refs.iter().map(|r| json!({"day": day_text(r.day), "seq": r.seq})).collect::<Vec<_>>(),
                "reason": q.reason.chars().take(1000).collect::<String>()}),
            Vec::new(),
            Outcome::Ok,
        )
        .await?;
        Ok(Response::new(pb::HoldResponse { reads: fresh }))
    }

    async fn release(
        &self,
        req: Request<pb::ReleaseHoldRequest>,
    ) -> Result<Response<pb::HoldResponse>, Status> {
        let g = &self.governance;
        let action = "hold.release";
        let (actor, case) = admit(g, &req, &HOLDERS, action, "release its holds").await?;
        let name = crate::cases::name_for(&actor, &case);
        if actor.force.as_ref() != Some(&case.owner) {
            let e = Status::from(ServiceError::denied(format!(
                "case {case} belongs to {}: only its own force's supervisors and disclosure officers release its holds",
                case.owner
            )));
            return Err(refuse_case(g, &actor, action, &name, e).await);
        }
        let n = match self
            .changes
            .submit(Change::Release {
                owner: case.owner.clone(),
                case_ref: case.case_ref.clone(),
            })
            .await?
        {
            crate::changes::Changed::Holds(n) => n,
            _ => 0,
        };
        audit_case(
            g,
            &actor,
            action,
            &name,
            json!({"released": n}),
            Vec::new(),
            Outcome::Ok,
        )
        .await?;
        Ok(Response::new(pb::HoldResponse { reads: n }))
    }
}
