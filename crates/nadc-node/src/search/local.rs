//! Running a search on this node: the store queried off the runtime, rows
//! streamed in chunks under a search worker, audited before they leave.

use std::ops::ControlFlow;
use std::time::Instant;

use nadc_core::{StoredRead, Timestamp, Vrm};
use nadc_proto::{self as proto, pb};
use nadc_query::{
    CameraQuery, GeoQuery, QueryError, ResultSummary, VehicleQuery, VrmQuery, camera_search,
    geo_search_stream, timeline, vehicle_search_stream, vrm_search_stream,
};
use nadc_store::Store;
use tonic::{Request, Response, Status};
use tracing::{info, warn};

use crate::disclosure::CaseRead;
use crate::page::PageVrms;
use crate::spool::{SpoolWriter, Stop};
use crate::workers::Gone;
use nadc_core::audit::Outcome;

use super::plan::{Plan, query_outcome};
use super::{CHUNK_ROWS, ChunkStream, SearchService, query_status, rows_chunk, summary_to_pb};
use crate::error::ServiceError;

/// What a search reports after its rows.
pub(super) struct Finished {
    pub(super) vrms: Option<pb::VrmSummaries>,
    pub(super) summary: ResultSummary,
    pub(super) total_rows: u64,
    /// Cameras in the searched areas or searched that were silent.
    pub(super) silent: Vec<pb::CameraHealthRow>,
}

/// A search with the cameras whose silence its summary reports: each with
/// the window it was searched in.
pub(super) struct Watched<Q> {
    pub(super) query: Q,
    pub(super) watch: Vec<(nadc_core::Camera, Timestamp, Timestamp)>,
    /// How far back a camera's usual rate may be looked for
    /// ([`Plan::floor`](super::plan::Plan::floor)).
    pub(super) floor: Timestamp,
}

/// The cameras of `watch` that were silent in their windows, each once,
/// judged on their reads from `floor` on.
fn silent_cameras(
    store: &dyn Store,
    watch: &[(nadc_core::Camera, Timestamp, Timestamp)],
    floor: Timestamp,
) -> Result<Vec<pb::CameraHealthRow>, QueryError> {
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for (camera, from, to) in watch {
        let key = (camera.force.clone(), camera.camera_id.clone());
        if seen.contains(&key) {
            continue;
        }
        if let Some(h) = nadc_query::camera_health::silent(store, camera, *from, *to, floor)? {
            seen.insert(key);
            out.push(super::camera_health::health_row(&h));
        }
    }
    out.sort_by(|a, b| (&a.force, &a.camera_id).cmp(&(&b.force, &b.camera_id)));
    Ok(out)
}

/// Where a search sends its rows, in result order.
pub(super) type Emit<'a> = &'a mut dyn FnMut(pb::ReadRow) -> ControlFlow<()>;

pub(super) fn vrm_summary(
    vrm: &Vrm,
    first: Timestamp,
    last: Timestamp,
    reads: u64,
    areas: Vec<u32>,
    how: Option<pb::VrmMatch>,
) -> pb::VrmAreaSummary {
    pb::VrmAreaSummary {
        vrm: vrm.to_string(),
        areas,
        first_seen: Some(proto::to_pb_time(first)),
        last_seen: Some(proto::to_pb_time(last)),
        reads,
        r#match: how,
    }
}

pub(super) fn compute_geo(
    store: &dyn Store,
    w: &Watched<GeoQuery>,
    node: &str,
    emit: Emit,
) -> Result<Finished, QueryError> {
    let q = &w.query;
    let totals = geo_search_stream(store, q, &mut |g| {
        let mut row = proto::row_from_owned(g.read, node);
        row.areas = g.areas;
        emit(row)
    })?;
    let vrms = totals
        .vrms
        .iter()
        .map(|v| {
            vrm_summary(
                &v.vrm,
                v.first_seen,
                v.last_seen,
                v.reads,
                v.areas.iter().copied().collect(),
                None,
            )
        })
        .collect();
    Ok(Finished {
        vrms: Some(pb::VrmSummaries { vrms }),
        summary: totals.summary,
        total_rows: totals.total_rows,
        silent: silent_cameras(store, &w.watch, w.floor)?,
    })
}

pub(super) fn compute_vrm(
    store: &dyn Store,
    q: &VrmQuery,
    node: &str,
    emit: Emit,
) -> Result<Finished, QueryError> {
    let totals = vrm_search_stream(store, q, &mut |v| {
        let mut row = proto::row_from_owned(v.read, node);
        row.r#match = Some(proto::match_to_pb(&v.how));
        emit(row)
    })?;
    let vrms = totals
        .vrms
        .iter()
        .map(|v| {
            vrm_summary(
                &v.vrm,
                v.first_seen,
                v.last_seen,
                v.reads,
                Vec::new(),
                Some(proto::match_to_pb(&v.how)),
            )
        })
        .collect();
    Ok(Finished {
        vrms: Some(pb::VrmSummaries { vrms }),
        summary: totals.summary,
        total_rows: totals.total_rows,
        silent: Vec::new(),
    })
}

/// A planned VRM timeline.
pub(super) struct TimelineQuery {
    pub(super) vrm: Vrm,
    pub(super) from: Timestamp,
    pub(super) to: Timestamp,
    pub(super) limit: usize,
}

pub(super) fn compute_timeline(
    store: &dyn Store,
    q: &TimelineQuery,
    node: &str,
    emit: Emit,
) -> Result<Finished, QueryError> {
    let (summary, total_rows) = timeline(store, &q.vrm, q.from, q.to, q.limit, &mut |read| {
        emit(proto::row_from_owned(read, node))
    })?;
    Ok(Finished {
        vrms: None,
        summary,
        total_rows,
        silent: Vec::new(),
    })
}

pub(super) fn emit_reads(reads: Vec<StoredRead>, node: &str, emit: Emit) {
    for r in reads {
        if emit(proto::row_from_owned(r, node)).is_break() {
            break;
        }
    }
}

pub(super) fn compute_vehicle(
    store: &dyn Store,
    q: &VehicleQuery,
    node: &str,
    emit: Emit,
) -> Result<Finished, QueryError> {
    let (summary, total_rows) = vehicle_search_stream(store, q, &mut |r| {
        let mut row = proto::row_from_owned(r.read, node);
        row.areas = r.areas;
        emit(row)
    })?;
    Ok(Finished {
        vrms: None,
        summary,
        total_rows,
        silent: Vec::new(),
    })
}

/// The reads held for a case, in capture-time order.
pub(super) fn compute_held(
    store: &dyn Store,
    case: &crate::cases::CaseId,
    node: &str,
    emit: Emit,
) -> Result<Finished, QueryError> {
    let refs: Vec<nadc_store::ReadRef> = store
        .holds()?
        .into_iter()
        .filter(|(_, cases)| cases.iter().any(|c| c.as_ref() == Some(case)))
        .map(|(r, _)| r)
        .collect();
    let mut reads = store.get_reads(&refs)?;
    reads.sort_by_key(|r| (r.read.observed_at, r.seq));
    let mut summary = ResultSummary::default();
    for r in &reads {
        summary.add(r);
    }
    let total_rows = reads.len() as u64;
    emit_reads(reads, node, emit);
    Ok(Finished {
        vrms: None,
        total_rows,
        summary,
        silent: Vec::new(),
    })
}

pub(super) fn compute_camera(
    store: &dyn Store,
    w: &Watched<CameraQuery>,
    node: &str,
    emit: Emit,
) -> Result<Finished, QueryError> {
    let (reads, summary, total_rows) = camera_search(store, &w.query)?;
    emit_reads(reads, node, emit);
    Ok(Finished {
        vrms: None,
        summary,
        total_rows,
        silent: silent_cameras(store, &w.watch, w.floor)?,
    })
}

impl SearchService {
    /// Authenticates a searcher and plans the query, then runs `compute`
    /// off the async runtime, streaming its rows in chunks as they come,
    /// then the per-VRM summaries and the summary; logs the search (no VRM).
    pub(super) async fn run<Q: Send + 'static, T>(
        &self,
        req: &Request<T>,
        search: &'static str,
        access: Option<&pb::AccessContext>,
        query: impl FnOnce(&Self, &mut Plan) -> Result<Q, ServiceError>,
        compute: fn(&dyn Store, &Q, &str, Emit) -> Result<Finished, QueryError>,
    ) -> Result<Response<ChunkStream>, Status> {
        self.run_relayed(req, search, access, None, query, compute)
            .await
    }

    /// [`run`](Self::run) for a search a peer node may relay for a user.
    pub(super) async fn run_relayed<Q: Send + 'static, T>(
        &self,
        req: &Request<T>,
        search: &'static str,
        access: Option<&pb::AccessContext>,
        relay: Option<&pb::OnBehalfOf>,
        query: impl FnOnce(&Self, &mut Plan) -> Result<Q, ServiceError>,
        compute: fn(&dyn Store, &Q, &str, Emit) -> Result<Finished, QueryError>,
    ) -> Result<Response<ChunkStream>, Status> {
        let (mut plan, checked) = self.plan_relayed(req, search, access, relay).await?;
        let query = match checked.and_then(|()| query(self, &mut plan)) {
            Ok(q) => q,
            Err(status) => return Err(self.refuse(&plan, search, status).await),
        };
        let worker = match self.workers.acquire(&plan.user_key()).await {
            Ok(w) => w,
            Err(status) => return Err(self.refuse(&plan, search, status.into()).await),
        };
        let store = self.store.clone();
        let node = self.node.clone();
        let governance = self.governance.clone();
        let produce = move |spool: &SpoolWriter<pb::SearchChunk>| {
            let started = Instant::now();
            let mut chunk = Vec::with_capacity(CHUNK_ROWS);
            let own_force = plan.actor.force.as_ref().map(|f| f.as_str().to_string());
            let mut returned_reads = Vec::new();
            let mut page = PageVrms::default();
            // Set once the search's opening entry is durable: written just
            // before its first chunk leaves (a search that ends within one
            // chunk has only its closing entry, durable before any row).
            let mut opened = false;
            let mut unaudited = None;
            let result = compute(store.as_ref(), &query, &node, &mut |mut row| {
                row.mou_consult = row
                    .provenance
                    .as_ref()
                    .is_some_and(|p| Some(&p.owning_force) != own_force.as_ref());
                returned_reads.extend(CaseRead::of(&row));
                page.add(&row);
                chunk.push(row);
                if chunk.len() == CHUNK_ROWS {
                    if !opened {
                        if let Err(e) = plan.open_blocking(search) {
                            unaudited = Some(e);
                            return ControlFlow::Break(());
                        }
                        opened = true;
                    }
                    let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK_ROWS));
                    if spool.push(rows_chunk(full)).is_err() {
                        return ControlFlow::Break(());
                    }
                }
                ControlFlow::Continue(())
            });
            Computed {
                plan,
                result,
                chunk,
                returned_reads,
                page,
                unaudited,
                started,
                queried: started.elapsed(),
            }
        };
        // A replica behind the log says so with its answer.
        let stale = self.replication.as_ref().and_then(|r| r.stale());
        let finish = move |c: Computed, stop: Option<Stop>, sent: usize| {
            c.finish(search, &governance, stop, sent, stale.clone())
        };
        Ok(Response::new(Box::pin(worker.stream(produce, finish))))
    }
}

/// A search computed, waiting for its rows to reach the client before it
/// is closed.
struct Computed {
    plan: Plan,
    result: Result<Finished, QueryError>,
    /// The rows after the last full chunk.
    chunk: Vec<pb::ReadRow>,
    returned_reads: Vec<CaseRead>,
    page: PageVrms,
    /// Why the opening entry could not be written, if it could not.
    unaudited: Option<Status>,
    started: Instant,
    queried: std::time::Duration,
}

impl Computed {
    /// Once its spooled rows have reached the client (or it has gone):
    /// the closing entry and the case register of what the search
    /// returned, durable together, then the items still to send.
    fn finish(
        self,
        search: &'static str,
        governance: &crate::governance::Governance,
        stop: Option<Stop>,
        sent: usize,
        stale: Option<pb::StaleReplica>,
    ) -> Vec<Result<pb::SearchChunk, Status>> {
        let Computed {
            mut plan,
            result,
            chunk,
            mut returned_reads,
            page,
            unaudited,
            started,
            queried,
        } = self;
        if let Some(e) = unaudited {
            return vec![Err(e)];
        }
        // A stopped spool (client gone, spool full or broken) fails the
        // search: what it returned is the rows sent (full chunks, in order),
        // however much more was computed.
        let (returned, outcome) = match (&result, &stop) {
            (Ok(f), None) => (
                f.summary
                    .forces
                    .iter()
                    .map(|(f, n)| (f.clone(), *n))
                    .collect(),
                Outcome::Ok,
            ),
            (Ok(_), Some(s)) => {
                returned_reads.truncate(sent * CHUNK_ROWS);
                (
                    super::camera_health::count_by_force(
                        returned_reads
                            .iter()
                            .filter_map(|r| nadc_core::ForceId::new(&r.force).ok()),
                    ),
                    Outcome::Failed(format!("{s} ({} rows sent)", returned_reads.len())),
                )
            }
            (Err(e), _) => (Vec::new(), query_outcome(e)),
        };
        if let Ok(f) = &result {
            plan.note_cameras(f.silent.iter().map(|c| c.force.as_str()));
        }
        let entry = plan.closing(search, returned, outcome);
        if let Err(e) =
            governance.record_search_blocking(entry, plan.case.as_ref(), &returned_reads)
        {
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
            Ok(f) => {
                let elapsed = started.elapsed().as_micros() as u64;
                // Where the time went: the query itself, then sending and
                // the audit entry and case register (durable before the
                // answer is complete).
                info!(user = %plan.actor.user, search, rows = f.summary.rows,
                    total = f.total_rows, elapsed_us = elapsed,
                    query_us = queried.as_micros() as u64,
                    audit_us = elapsed.saturating_sub(queried.as_micros() as u64),
                    "search done");
                let mut summary = summary_to_pb(&f.summary, elapsed);
                summary.total_rows = f.total_rows;
                summary.clipped_from = plan.clipped_from.map(proto::to_pb_time);
                summary.silent_cameras = f.silent;
                summary.stale = stale.into_iter().collect();
                // Summaries of the rows sent only, never of every match.
                let vrms = f.vrms.map(|_| page.into_pb());
                result_tail(chunk, vrms, summary)
            }
            Err(e) => {
                if matches!(e, QueryError::Store(_)) {
                    warn!(search, error = %e, "search failed");
                }
                vec![Err(query_status(e))]
            }
        }
    }
}

/// The last items of a search: its remaining rows in chunks, then
/// optional VRM summaries, then the summary.
pub(super) fn result_tail(
    rows: Vec<pb::ReadRow>,
    vrms: Option<pb::VrmSummaries>,
    summary: pb::SearchSummary,
) -> Vec<Result<pb::SearchChunk, Status>> {
    let mut tail = Vec::new();
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<pb::ReadRow> = rows.by_ref().take(CHUNK_ROWS).collect();
        tail.push(Ok(rows_chunk(chunk)));
    }
    if let Some(v) = vrms {
        tail.push(Ok(pb::SearchChunk {
            chunk: Some(pb::search_chunk::Chunk::Vrms(v)),
        }));
    }
    tail.push(Ok(pb::SearchChunk {
        chunk: Some(pb::search_chunk::Chunk::Summary(summary)),
    }));
    tail
}
