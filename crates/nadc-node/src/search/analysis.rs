//! Analyses (convoy, clones): planned and governed as searches, computed
//! off the runtime, items sent as they are found.

use std::pin::Pin;
use std::time::Instant;

use futures::Stream;
use nadc_core::{ForceId, Timestamp, Vrm};
use nadc_proto::{self as proto, pb};
use nadc_query::QueryError;
use nadc_query::clones::{CloneQuery, clones};
use nadc_query::convoy::{ConvoyQuery, convoy};
use nadc_store::Store;
use tonic::Status;
use tracing::{info, warn};

use crate::alerts::hotlist_targets;
use crate::disclosure::CaseRead;
use crate::spool::{SpoolWriter, Stop};
use crate::workers::Gone;
use nadc_core::audit::Outcome;
use serde_json::json;

use super::plan::{Plan, query_outcome, time_json};
use super::{SearchService, query_status, required_time};
use crate::error::ServiceError;

/// What an analysis returns after sending its items: the summary chunk
/// (sent once the search is audited), the rows per owning force, and the
/// reads it disclosed (for the case register).
pub(super) type Analysed<C> = (C, std::collections::BTreeMap<ForceId, u64>, Vec<CaseRead>);

/// An analysis that sends its own item chunks (the start it was clipped
/// from, if any, goes in its summary).
/// An analysis: the store, its query, the node's name, where its items
/// go, the window's clipped start, and this replica if it is behind the
/// replicated log (its summary says so).
pub(super) type Analysis<Q, C> = fn(
    &dyn Store,
    &Q,
    &str,
    &Outbox<'_, C>,
    Option<Timestamp>,
    Option<pb::StaleReplica>,
) -> Result<Analysed<C>, QueryError>;

/// Where an analysis sends its items: its spool, which the client reads
/// at its own pace (see [`crate::spool`]).
pub(super) struct Outbox<'a, C> {
    pub(super) spool: &'a SpoolWriter<C>,
}

impl<C: prost::Message + Default> Outbox<'_, C> {
    /// Sends an item; false once the spool has stopped (the client gone or
    /// stalled, or the node's spool full): the analysis should stop.
    pub(super) fn send(&self, item: C) -> bool {
        self.spool.push(item).is_ok()
    }
}

/// Companions returned when a convoy request names no limit.
pub(super) const DEFAULT_COMPANIONS: usize = 100;

pub(super) fn force_counts(
    counts: &std::collections::BTreeMap<ForceId, u64>,
) -> Vec<pb::ForceCount> {
    counts
        .iter()
        .map(|(f, n)| pb::ForceCount {
            force: f.to_string(),
            rows: *n,
        })
        .collect()
}

impl SearchService {
    pub(super) fn convoy_query(
        &self,
        plan: &mut Plan,
        q: &pb::ConvoyRequest,
    ) -> Result<ConvoyQuery, ServiceError> {
        plan.query = json!({"vrms": q.vrms, "hotlist": q.hotlist.as_ref().map(|h| format!("{}/{}", h.owner, h.name)),
            "from": time_json(q.from.as_ref()), "to": time_json(q.to.as_ref()), "window_s": q.window_s,
            "min_count": q.min_count, "min_cameras": q.min_cameras, "limit": q.limit,
            "allow_broad": q.allow_broad});
        plan.broad(q.allow_broad)?;
        let force = plan
            .actor
            .force
            .clone()
            .ok_or_else(|| ServiceError::denied("searching needs a force user"))?;
        let force = &force;
        let mut targets = q
            .vrms
            .iter()
            .map(|v| {
                Vrm::normalise(v).map_err(|e| ServiceError::invalid(format!("vrm {v:?}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(list) = q.hotlist.as_ref().filter(|l| !l.name.trim().is_empty()) {
            targets.extend(hotlist_targets(
                &self.hotlists,
                list,
                force,
                self.clock.now(),
            )?);
        }
        if targets.is_empty() {
            return Err(ServiceError::invalid(
                "a convoy search needs at least one target VRM (or a hotlist with active entries)",
            ));
        }
        let (from, to) = self.analysis_window(
            plan,
            q.from.as_ref(),
            q.to.as_ref(),
            "convoy search",
            q.allow_broad,
        )?;
        let or = |v: u32, d: u32| if v == 0 { d } else { v };
        let limit = match q.limit as usize {
            0 => DEFAULT_COMPANIONS,
            n => n.min(self.max_limit),
        };
        Ok(ConvoyQuery {
            targets,
            from,
            to,
            window_s: or(q.window_s, ConvoyQuery::DEFAULT_WINDOW_S),
            min_count: or(q.min_count, 2),
            min_cameras: or(q.min_cameras, 1),
            limit,
            max_target_reads: self.caps.max_candidates,
            max_candidates: self.caps.max_candidates,
        })
    }

    pub(super) fn clones_query(
        &self,
        plan: &mut Plan,
        q: &pb::ClonesRequest,
    ) -> Result<CloneQuery, ServiceError> {
        plan.query = json!({"from": time_json(q.from.as_ref()), "to": time_json(q.to.as_ref()),
            "max_speed_kmh": q.max_speed_kmh, "min_distance_m": q.min_distance_m, "vrm": q.vrm,
            "limit": q.limit, "allow_broad": q.allow_broad});
        plan.broad(q.allow_broad)?;
        let from = required_time(q.from.as_ref(), "from")?;
        let to = required_time(q.to.as_ref(), "to")?;
        let (from, to) = self.check_window(plan, from, to, "clone search", q.allow_broad)?;
        let max_speed_kmh = if q.max_speed_kmh == 0.0 {
            250.0
        } else {
            q.max_speed_kmh
        };
        if !(max_speed_kmh.is_finite() && max_speed_kmh > 0.0) {
            return Err(ServiceError::invalid(format!(
                "max_speed_kmh {max_speed_kmh} must be above 0"
            )));
        }
        let min_distance_m = q.min_distance_m.unwrap_or(2_000.0);
        if !(min_distance_m.is_finite() && min_distance_m >= 0.0) {
            return Err(ServiceError::invalid(format!(
                "min_distance_m {min_distance_m} must be 0 or more"
            )));
        }
        let vrm = if q.vrm.trim().is_empty() {
            None
        } else {
            Some(Vrm::normalise(&q.vrm).map_err(|e| ServiceError::invalid(format!("vrm: {e}")))?)
        };
        Ok(CloneQuery {
            from,
            to,
            max_speed_kmh,
            min_distance_m,
            vrm,
            limit: self.limit(q.limit)?,
            max_reads_in_memory: self.caps.max_candidates,
        })
    }

    /// Authenticates a searcher, plans, and runs `compute` off the runtime,
    /// which sends its chunks itself; logs the search (no VRM).
    /// Waits (bounded) for a search worker first; refused (and audited)
    /// when none comes or the user has too many searches open.
    pub(super) async fn spawn_analysis<Q, C>(
        &self,
        search: &'static str,
        plan: Plan,
        query: Q,
        compute: Analysis<Q, C>,
    ) -> Result<Pin<Box<dyn Stream<Item = Result<C, Status>> + Send>>, Status>
    where
        Q: Send + 'static,
        C: prost::Message + Default + Send + 'static,
    {
        let worker = match self.workers.acquire(&plan.user_key()).await {
            Ok(w) => w,
            Err(status) => return Err(self.refuse(&plan, search, status.into()).await),
        };
        let (store, node) = (self.store.clone(), self.node.clone());
        let governance = self.governance.clone();
        let stale = self.replication.as_ref().and_then(|r| r.stale());
        let produce = move |spool: &SpoolWriter<C>| {
            let started = Instant::now();
            // An analysis sends its items as it goes: its opening entry is
            // durable before the first leaves.
            if let Err(e) = plan.open_blocking(search) {
                return (plan, started, Err(e));
            }
            let out = Outbox { spool };
            let result = compute(
                store.as_ref(),
                &query,
                &node,
                &out,
                plan.clipped_from,
                stale,
            );
            (plan, started, Ok(result))
        };
        type Computed<C> = (
            Plan,
            Instant,
            Result<Result<Analysed<C>, QueryError>, Status>,
        );
        // The reads of every item computed are registered, sent or not (an
        // analysis's items are few: its limit is on companions or pairs).
        let finish = move |(plan, started, result): Computed<C>, stop: Option<Stop>, _sent| {
            let mut result = match result {
                Ok(r) => r,
                Err(unaudited) => return vec![Err(unaudited)],
            };
            let (returned, outcome, reads) = match &mut result {
                Ok((_, forces, reads)) => (
                    forces.iter().map(|(f, n)| (f.clone(), *n)).collect(),
                    stop.as_ref()
                        .map_or(Outcome::Ok, |s| Outcome::Failed(s.to_string())),
                    std::mem::take(reads),
                ),
                Err(e) => (Vec::new(), query_outcome(e), Vec::new()),
            };
            let entry = plan.closing(search, returned, outcome);
            // The closing entry and the case register of what it disclosed.
            if let Err(e) = governance.record_search_blocking(entry, plan.case.as_ref(), &reads) {
                return vec![Err(e)];
            }
            match stop {
                Some(Stop::Gone(g)) => {
                    if let Gone::Stalled(_) = g {
                        warn!(user = %plan.actor.user, search, "{g}");
                    }
                    return Vec::new();
                }
                Some(s) => {
                    warn!(user = %plan.actor.user, search, "{s}");
                    return vec![Err(ServiceError::from(s).into())];
                }
                None => {}
            }
            match result {
                Ok((summary, _, _)) => {
                    info!(user = %plan.actor.user, search,
                        elapsed_us = started.elapsed().as_micros() as u64, "search done");
                    vec![Ok(summary)]
                }
                Err(e) => {
                    if matches!(e, QueryError::Store(_)) {
                        warn!(search, error = %e, "search failed");
                    }
                    vec![Err(query_status(e))]
                }
            }
        };
        Ok(Box::pin(worker.stream(produce, finish)))
    }
}

pub(super) fn compute_convoy(
    store: &dyn Store,
    q: &ConvoyQuery,
    node: &str,
    tx: &Outbox<'_, pb::ConvoyChunk>,
    clipped: Option<Timestamp>,
    stale: Option<pb::StaleReplica>,
) -> Result<Analysed<pb::ConvoyChunk>, QueryError> {
    let started = Instant::now();
    let r = convoy(store, q)?;
    let mut forces = std::collections::BTreeMap::<ForceId, u64>::new();
    let mut reads = Vec::new();
    let n = r.companions.len() as u64;
    for (i, c) in r.companions.into_iter().enumerate() {
        let pairs = c
            .pairs
            .iter()
            .map(|p| {
                *forces.entry(p.target.force.clone()).or_default() += 1;
                *forces.entry(p.companion.force.clone()).or_default() += 1;
                let (target, companion) = (
                    proto::row_from_stored(&p.target, node),
                    proto::row_from_stored(&p.companion, node),
                );
                reads.extend(CaseRead::of(&target));
                reads.extend(CaseRead::of(&companion));
                pb::ConvoyPair {
                    target: Some(target),
                    companion: Some(companion),
                    gap_ms: p.gap_ms,
                }
            })
            .collect();
        let chunk = pb::ConvoyChunk {
            chunk: Some(pb::convoy_chunk::Chunk::Companion(pb::Companion {
                rank: i as u32 + 1,
                vrm: c.vrm.as_str().to_string(),
                co_occurrences: c.co_occurrences,
                cameras: c.cameras,
                targets: c.targets.iter().map(|t| t.as_str().to_string()).collect(),
                pairs,
            })),
        };
        if !tx.send(chunk) {
            break;
        }
    }
    let summary = pb::ConvoySummary {
        companions: n,
        total_companions: r.total_companions as u64,
        targets: r.targets.iter().map(|t| t.as_str().to_string()).collect(),
        target_reads: r.target_reads as u64,
        entries_examined: r.entries_examined as u64,
        truncated: r.truncated,
        elapsed_us: started.elapsed().as_micros() as u64,
        forces: force_counts(&forces),
        clipped_from: clipped.map(proto::to_pb_time),
        nodes: Vec::new(),
        partial: false,
        stale: stale.into_iter().collect(),
    };
    let chunk = pb::ConvoyChunk {
        chunk: Some(pb::convoy_chunk::Chunk::Summary(summary)),
    };
    Ok((chunk, forces, reads))
}

pub(super) fn compute_clones(
    store: &dyn Store,
    q: &CloneQuery,
    node: &str,
    tx: &Outbox<'_, pb::ClonesChunk>,
    clipped: Option<Timestamp>,
    stale: Option<pb::StaleReplica>,
) -> Result<Analysed<pb::ClonesChunk>, QueryError> {
    let started = Instant::now();
    let r = clones(store, q)?;
    let mut forces = std::collections::BTreeMap::<ForceId, u64>::new();
    let mut reads = Vec::new();
    let n = r.pairs.len() as u64;
    for p in r.pairs {
        *forces.entry(p.first.force.clone()).or_default() += 1;
        *forces.entry(p.second.force.clone()).or_default() += 1;
        let (first, second) = (
            proto::row_from_stored(&p.first, node),
            proto::row_from_stored(&p.second, node),
        );
        reads.extend(CaseRead::of(&first));
        reads.extend(CaseRead::of(&second));
        let chunk = pb::ClonesChunk {
            chunk: Some(pb::clones_chunk::Chunk::Pair(pb::ClonePair {
                vrm: p.first.read.vrm.as_str().to_string(),
                first: Some(first),
                second: Some(second),
                distance_m: p.distance_m,
                seconds: p.seconds,
                speed_kmh: p.speed_kmh,
            })),
        };
        if !tx.send(chunk) {
            break;
        }
    }
    let summary = pb::ClonesSummary {
        pairs: n,
        total: r.total as u64,
        reads_examined: r.reads_examined,
        truncated: r.truncated,
        elapsed_us: started.elapsed().as_micros() as u64,
        forces: force_counts(&forces),
        clipped_from: clipped.map(proto::to_pb_time),
        stale: stale.into_iter().collect(),
    };
    let chunk = pb::ClonesChunk {
        chunk: Some(pb::clones_chunk::Chunk::Summary(summary)),
    };
    Ok((chunk, forces, reads))
}
