//! The Search service: structured searches, streamed in chunks, each row
//! with its provenance, and a summary at the end.

use std::ops::ControlFlow;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use futures::Stream;
use nadc_core::geo::Polygon;
use nadc_core::time::Clock;
use nadc_core::vrm_match::{ConfusableGroups, Pattern};
use nadc_core::{Circle, ForceId, GeoPoint, StoredRead, Timestamp, Vrm};
use nadc_proto::{self as proto, pb};
use nadc_query::clones::{CloneQuery, clones};
use nadc_query::convoy::{ConvoyQuery, convoy};
use nadc_query::{
    Area, AreaMatch, CameraQuery, Details, GeoQuery, QueryError, ResultSummary, Shape,
    VehicleQuery, VrmQuery, camera_search, geo_search_stream, timeline, vehicle_search_stream,
    vrm_search_stream,
};
use nadc_store::Store;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use tracing::{info, warn};

use crate::alerts::hotlist_targets;
use crate::auth::caller;
use crate::config::SearchCaps;
use crate::hotlists::HotlistRegistry;

/// Rows per streamed chunk.
const CHUNK_ROWS: usize = 500;

/// The Search service.
#[derive(Clone)]
pub struct SearchService {
    /// The store searched.
    pub store: Arc<dyn Store>,
    /// The node's name, for provenance.
    pub node: String,
    /// The node's clock.
    pub clock: Arc<dyn Clock>,
    /// Hotlists, for convoy analysis of a whole list.
    pub hotlists: Arc<HotlistRegistry>,
    /// Retention in days: the default start of a window.
    pub retention_days: u32,
    /// Rows returned when the request names no limit.
    pub default_limit: usize,
    /// Most rows a request may ask for.
    pub max_limit: usize,
    /// Caps on over-broad searches.
    pub caps: SearchCaps,
}

type ChunkStream = Pin<Box<dyn Stream<Item = Result<pb::SearchChunk, Status>> + Send>>;

fn summary_to_pb(s: &ResultSummary, elapsed_us: u64) -> pb::SearchSummary {
    pb::SearchSummary {
        total_rows: s.rows,
        rows: s.rows,
        forces: s
            .forces
            .iter()
            .map(|(f, n)| pb::ForceCount {
                force: f.to_string(),
                rows: *n,
            })
            .collect(),
        cameras: s.cameras.len() as u64,
        elapsed_us,
        truncated: s.truncated,
    }
}

fn query_status(e: QueryError) -> Status {
    match e {
        QueryError::Invalid(m) => Status::invalid_argument(m),
        QueryError::TooBroad(m) => Status::failed_precondition(format!("search too broad: {m}")),
        QueryError::Store(e) => Status::unavailable(format!("search failed: {e}")),
    }
}

fn rows_chunk(rows: Vec<pb::ReadRow>) -> pb::SearchChunk {
    pb::SearchChunk {
        chunk: Some(pb::search_chunk::Chunk::Rows(pb::RowBatch { rows })),
    }
}

/// Sends computed rows in chunks, then optional VRM summaries, then the summary.
fn send_result(
    tx: &mpsc::Sender<Result<pb::SearchChunk, Status>>,
    rows: Vec<pb::ReadRow>,
    vrms: Option<pb::VrmSummaries>,
    summary: pb::SearchSummary,
) {
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<pb::ReadRow> = rows.by_ref().take(CHUNK_ROWS).collect();
        if tx.blocking_send(Ok(rows_chunk(chunk))).is_err() {
            return;
        }
    }
    if let Some(v) = vrms
        && tx
            .blocking_send(Ok(pb::SearchChunk {
                chunk: Some(pb::search_chunk::Chunk::Vrms(v)),
            }))
            .is_err()
    {
        return;
    }
    let _ = tx.blocking_send(Ok(pb::SearchChunk {
        chunk: Some(pb::search_chunk::Chunk::Summary(summary)),
    }));
}

fn required_time(t: Option<&prost_types::Timestamp>, what: &str) -> Result<Timestamp, Status> {
    let t = t.ok_or_else(|| Status::invalid_argument(format!("{what} is required")))?;
    proto::from_pb_time(t).ok_or_else(|| {
        Status::invalid_argument(format!("{what} is outside 1970-01-01 to 9999-12-31"))
    })
}

impl SearchService {
    fn check_window(
        &self,
        from: Timestamp,
        to: Timestamp,
        what: &str,
        allow_broad: bool,
    ) -> Result<(), Status> {
        if from > to {
            return Err(Status::invalid_argument(format!(
                "{what}: the window is inverted (from {from} is after to {to})"
            )));
        }
        let hours = (to.millis() - from.millis()) as f64 / 3_600_000.0;
        if !allow_broad && hours > f64::from(self.caps.max_window_hours) {
            return Err(Status::failed_precondition(format!(
                "{what}: the window is {hours:.1} hours, over this node's cap of {} hours; narrow it or set allow_broad",
                self.caps.max_window_hours
            )));
        }
        Ok(())
    }

    fn geo_query(&self, q: &pb::GeoSearchRequest) -> Result<GeoQuery, Status> {
        if q.areas.is_empty() {
            return Err(Status::invalid_argument(
                "a geographic search needs at least one area",
            ));
        }
        let (areas, matching) = self.areas(&q.areas, q.r#match, q.allow_broad)?;
        Ok(GeoQuery {
            areas,
            matching,
            limit: self.limit(q.limit)?,
            offset: q.offset as usize,
            max_candidates: self.caps.max_candidates,
        })
    }

    fn areas(
        &self,
        areas: &[pb::Area],
        m: i32,
        allow_broad: bool,
    ) -> Result<(Vec<Area>, AreaMatch), Status> {
        let max_areas = if allow_broad {
            100
        } else {
            self.caps.max_areas
        };
        if areas.len() > max_areas {
            return Err(Status::failed_precondition(format!(
                "{} areas given; at most {max_areas}",
                areas.len()
            )));
        }
        let mut out = Vec::with_capacity(areas.len());
        for (i, a) in areas.iter().enumerate() {
            let what = format!("area {}", i + 1);
            let shape = if a.polygon.trim().is_empty() {
                let centre = GeoPoint::new(a.lat, a.lon)
                    .map_err(|e| Status::invalid_argument(format!("{what}: {e}")))?;
                Shape::Circle(
                    Circle::new(centre, a.radius_m)
                        .map_err(|e| Status::invalid_argument(format!("{what}: {e}")))?,
                )
            } else {
                Polygon::parse(&a.polygon)
                    .and_then(Shape::polygon)
                    .map_err(|e| Status::invalid_argument(format!("{what}: {e}")))?
            };
            let radius = shape.scan_circle().radius_m();
            if !allow_broad && radius > self.caps.max_radius_m {
                return Err(Status::failed_precondition(format!(
                    "{what}: radius {radius:.0} m is over this node's cap of {} m; narrow it or set allow_broad",
                    self.caps.max_radius_m
                )));
            }
            let from = required_time(a.from.as_ref(), &format!("{what}: from"))?;
            let to = required_time(a.to.as_ref(), &format!("{what}: to"))?;
            self.check_window(from, to, &what, allow_broad)?;
            out.push(Area { shape, from, to });
        }
        let matching = match pb::AreaMatch::try_from(m) {
            Ok(pb::AreaMatch::All) => AreaMatch::All,
            Ok(pb::AreaMatch::Any | pb::AreaMatch::Unspecified) => AreaMatch::Any,
            Err(_) => return Err(Status::invalid_argument(format!("match {m} is unknown"))),
        };
        Ok((out, matching))
    }

    fn vehicle_query(&self, q: &pb::VehicleSearchRequest) -> Result<VehicleQuery, Status> {
        let details = Details {
            make: q.make.clone(),
            model: q.model.clone(),
            colour: q.colour.clone(),
        };
        if details.normalised().is_empty() {
            return Err(Status::invalid_argument(
                "give at least one of make, model or colour",
            ));
        }
        let (areas, matching) = self.areas(&q.areas, q.r#match, q.allow_broad)?;
        let (from, to) = if areas.is_empty() {
            let from = required_time(q.from.as_ref(), "from (needed when no area is given)")?;
            let to = required_time(q.to.as_ref(), "to (needed when no area is given)")?;
            self.check_window(from, to, "vehicle search", q.allow_broad)?;
            (from, to)
        } else {
            (Timestamp::EPOCH, Timestamp::EPOCH)
        };
        Ok(VehicleQuery {
            details,
            areas,
            matching,
            from,
            to,
            limit: self.limit(q.limit)?,
            offset: q.offset as usize,
            max_candidates: self.caps.max_candidates,
        })
    }

    fn camera_query(&self, q: &pb::CameraSearchRequest) -> Result<CameraQuery, Status> {
        if q.cameras.is_empty() {
            return Err(Status::invalid_argument(
                "a camera search needs at least one camera",
            ));
        }
        let max = if q.allow_broad {
            1000
        } else {
            self.caps.max_cameras
        };
        if q.cameras.len() > max {
            return Err(Status::failed_precondition(format!(
                "{} cameras given; at most {max}",
                q.cameras.len()
            )));
        }
        let cameras = q
            .cameras
            .iter()
            .map(|c| {
                let force = ForceId::new(&c.force).map_err(|e| {
                    Status::invalid_argument(format!("camera {:?}: {e}", c.camera_id))
                })?;
                nadc_core::camera::validate_camera_id(&c.camera_id)
                    .map_err(|e| Status::invalid_argument(e.to_string()))?;
                Ok((force, c.camera_id.clone()))
            })
            .collect::<Result<Vec<_>, Status>>()?;
        let from = required_time(q.from.as_ref(), "from")?;
        let to = required_time(q.to.as_ref(), "to")?;
        self.check_window(from, to, "camera search", q.allow_broad)?;
        Ok(CameraQuery {
            cameras,
            from,
            to,
            limit: self.limit(q.limit)?,
            offset: q.offset as usize,
            max_candidates: self.caps.max_candidates,
        })
    }

    fn window(
        &self,
        from: Option<&prost_types::Timestamp>,
        to: Option<&prost_types::Timestamp>,
    ) -> Result<(Timestamp, Timestamp), Status> {
        let now = self.clock.now();
        let parse = |t: Option<&prost_types::Timestamp>, name: &str, default: Timestamp| match t {
            None => Ok(default),
            Some(t) => proto::from_pb_time(t).ok_or_else(|| {
                Status::invalid_argument(format!("{name} is outside 1970-01-01 to 9999-12-31"))
            }),
        };
        let from = parse(from, "from", now.minus_days(self.retention_days))?;
        let to = parse(to, "to", now)?;
        if from > to {
            return Err(Status::invalid_argument(format!(
                "the window is inverted: from {from} is after to {to}"
            )));
        }
        Ok((from, to))
    }

    fn limit(&self, requested: u32) -> Result<usize, Status> {
        match requested as usize {
            0 => Ok(self.default_limit),
            n if n <= self.max_limit => Ok(n),
            n => Err(Status::invalid_argument(format!(
                "limit {n} is above this node's maximum of {}",
                self.max_limit
            ))),
        }
    }
}

/// What a search reports after its rows.
struct Finished {
    vrms: Option<pb::VrmSummaries>,
    summary: ResultSummary,
    total_rows: u64,
}

/// Where a search sends its rows, in result order.
type Emit<'a> = &'a mut dyn FnMut(pb::ReadRow) -> ControlFlow<()>;

fn vrm_summary(
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

fn compute_geo(
    store: &dyn Store,
    q: &GeoQuery,
    node: &str,
    emit: Emit,
) -> Result<Finished, QueryError> {
    let totals = geo_search_stream(store, q, &mut |g| {
        let mut row = proto::row_from_stored(&g.read, node);
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
    })
}

fn compute_vrm(
    store: &dyn Store,
    q: &VrmQuery,
    node: &str,
    emit: Emit,
) -> Result<Finished, QueryError> {
    let totals = vrm_search_stream(store, q, &mut |v| {
        let mut row = proto::row_from_stored(&v.read, node);
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
    })
}

/// A planned VRM timeline.
struct TimelineQuery {
    vrm: Vrm,
    from: Timestamp,
    to: Timestamp,
    limit: usize,
}

fn compute_timeline(
    store: &dyn Store,
    q: &TimelineQuery,
    node: &str,
    emit: Emit,
) -> Result<Finished, QueryError> {
    let (summary, total_rows) = timeline(store, &q.vrm, q.from, q.to, q.limit, &mut |read| {
        emit(proto::row_from_stored(&read, node))
    })?;
    Ok(Finished {
        vrms: None,
        summary,
        total_rows,
    })
}

fn emit_reads(reads: &[StoredRead], node: &str, emit: Emit) {
    for r in reads {
        if emit(proto::row_from_stored(r, node)).is_break() {
            break;
        }
    }
}

fn compute_vehicle(
    store: &dyn Store,
    q: &VehicleQuery,
    node: &str,
    emit: Emit,
) -> Result<Finished, QueryError> {
    let (summary, total_rows) =
        vehicle_search_stream(store, q, &mut |r| emit(proto::row_from_stored(&r, node)))?;
    Ok(Finished {
        vrms: None,
        summary,
        total_rows,
    })
}

fn compute_camera(
    store: &dyn Store,
    q: &CameraQuery,
    node: &str,
    emit: Emit,
) -> Result<Finished, QueryError> {
    let (reads, summary, total_rows) = camera_search(store, q)?;
    emit_reads(&reads, node, emit);
    Ok(Finished {
        vrms: None,
        summary,
        total_rows,
    })
}

impl SearchService {
    /// Authenticates a searcher and plans the query, then runs `compute`
    /// off the async runtime, streaming its rows in chunks as they come,
    /// then the per-VRM summaries and the summary; logs the search (no VRM).
    async fn run<Q: Send + 'static, T>(
        &self,
        req: &Request<T>,
        search: &'static str,
        query: impl FnOnce(&Self) -> Result<Q, Status>,
        compute: fn(&dyn Store, &Q, &str, Emit) -> Result<Finished, QueryError>,
    ) -> Result<Response<ChunkStream>, Status> {
        let who = caller(req)?;
        let (force, user, _) = who.require_searcher()?;
        let (force, user) = (force.clone(), user.to_string());
        let query = query(self)?;
        let store = self.store.clone();
        let node = self.node.clone();
        let (tx, rx) = mpsc::channel::<Result<pb::SearchChunk, Status>>(4);
        tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let mut chunk = Vec::with_capacity(CHUNK_ROWS);
            let mut gone = false;
            let result = compute(store.as_ref(), &query, &node, &mut |row| {
                chunk.push(row);
                if chunk.len() == CHUNK_ROWS {
                    let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK_ROWS));
                    if tx.blocking_send(Ok(rows_chunk(full))).is_err() {
                        gone = true;
                        return ControlFlow::Break(());
                    }
                }
                ControlFlow::Continue(())
            });
            if gone {
                return;
            }
            match result {
                Ok(f) => {
                    let elapsed = started.elapsed().as_micros() as u64;
                    info!(user = %user, force = %force, search, rows = f.summary.rows,
                        total = f.total_rows, elapsed_us = elapsed, "search done");
                    let mut summary = summary_to_pb(&f.summary, elapsed);
                    summary.total_rows = f.total_rows;
                    send_result(&tx, chunk, f.vrms, summary);
                }
                Err(e) => {
                    if matches!(e, QueryError::Store(_)) {
                        warn!(search, error = %e, "search failed");
                    }
                    let _ = tx.blocking_send(Err(query_status(e)));
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    fn timeline_query(&self, q: &pb::VrmTimelineRequest) -> Result<TimelineQuery, Status> {
        let vrm =
            Vrm::normalise(&q.vrm).map_err(|e| Status::invalid_argument(format!("vrm: {e}")))?;
        let (from, to) = self.window(q.from.as_ref(), q.to.as_ref())?;
        Ok(TimelineQuery {
            vrm,
            from,
            to,
            limit: self.limit(q.limit)?,
        })
    }

    fn vrm_query(&self, q: &pb::VrmSearchRequest) -> Result<VrmQuery, Status> {
        let pattern = Pattern::parse(&q.pattern)
            .map_err(|e| Status::invalid_argument(format!("pattern: {e}")))?;
        let max_edits = q.max_edits.unwrap_or(1);
        if max_edits > 2 {
            return Err(Status::invalid_argument(format!(
                "max_edits {max_edits} is too many: 0 to 2"
            )));
        }
        let groups = if q.confusable_groups.is_empty() {
            ConfusableGroups::default()
        } else {
            ConfusableGroups::new(&q.confusable_groups)
                .map_err(|e| Status::invalid_argument(e.to_string()))?
        };
        let (from, to) = self.window(q.from.as_ref(), q.to.as_ref())?;
        Ok(VrmQuery {
            pattern,
            fuzzy: q.fuzzy,
            max_edits: max_edits as u8,
            groups,
            from,
            to,
            limit: self.limit(q.limit)?,
            offset: q.offset as usize,
            max_vrms: self.caps.max_vrms,
        })
    }
}

/// An analysis that sends its own chunks and returns the rows it sent.
type Analysis<Q, C> =
    fn(&dyn Store, &Q, &str, &mpsc::Sender<Result<C, Status>>) -> Result<u64, QueryError>;

/// Companions returned when a convoy request names no limit.
const DEFAULT_COMPANIONS: usize = 100;

fn force_counts(counts: &std::collections::BTreeMap<ForceId, u64>) -> Vec<pb::ForceCount> {
    counts
        .iter()
        .map(|(f, n)| pb::ForceCount {
            force: f.to_string(),
            rows: *n,
        })
        .collect()
}

impl SearchService {
    fn convoy_query(&self, q: &pb::ConvoyRequest, force: &ForceId) -> Result<ConvoyQuery, Status> {
        let mut targets = q
            .vrms
            .iter()
            .map(|v| {
                Vrm::normalise(v).map_err(|e| Status::invalid_argument(format!("vrm {v:?}: {e}")))
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
            return Err(Status::invalid_argument(
                "a convoy search needs at least one target VRM (or a hotlist with active entries)",
            ));
        }
        let now = self.clock.now();
        let from = match q.from.as_ref() {
            Some(t) => required_time(Some(t), "from")?,
            None => now.plus_millis(-24 * 3_600_000),
        };
        let to = match q.to.as_ref() {
            Some(t) => required_time(Some(t), "to")?,
            None => now,
        };
        self.check_window(from, to, "convoy search", q.allow_broad)?;
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

    fn clones_query(&self, q: &pb::ClonesRequest) -> Result<CloneQuery, Status> {
        let from = required_time(q.from.as_ref(), "from")?;
        let to = required_time(q.to.as_ref(), "to")?;
        self.check_window(from, to, "clone search", q.allow_broad)?;
        let max_speed_kmh = if q.max_speed_kmh == 0.0 {
            250.0
        } else {
            q.max_speed_kmh
        };
        if !(max_speed_kmh.is_finite() && max_speed_kmh > 0.0) {
            return Err(Status::invalid_argument(format!(
                "max_speed_kmh {max_speed_kmh} must be above 0"
            )));
        }
        let min_distance_m = q.min_distance_m.unwrap_or(2_000.0);
        if !(min_distance_m.is_finite() && min_distance_m >= 0.0) {
            return Err(Status::invalid_argument(format!(
                "min_distance_m {min_distance_m} must be 0 or more"
            )));
        }
        let vrm = if q.vrm.trim().is_empty() {
            None
        } else {
            Some(
                Vrm::normalise(&q.vrm)
                    .map_err(|e| Status::invalid_argument(format!("vrm: {e}")))?,
            )
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
    fn spawn_analysis<Q, C>(
        &self,
        search: &'static str,
        user: String,
        force: ForceId,
        query: Q,
        compute: Analysis<Q, C>,
    ) -> Pin<Box<dyn Stream<Item = Result<C, Status>> + Send>>
    where
        Q: Send + 'static,
        C: Send + 'static,
    {
        let (store, node) = (self.store.clone(), self.node.clone());
        let (tx, rx) = mpsc::channel::<Result<C, Status>>(16);
        tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            match compute(store.as_ref(), &query, &node, &tx) {
                Ok(rows) => {
                    info!(user = %user, force = %force, search, rows,
                        elapsed_us = started.elapsed().as_micros() as u64, "search done");
                }
                Err(e) => {
                    if matches!(e, QueryError::Store(_)) {
                        warn!(search, error = %e, "search failed");
                    }
                    let _ = tx.blocking_send(Err(query_status(e)));
                }
            }
        });
        Box::pin(ReceiverStream::new(rx))
    }
}

fn compute_convoy(
    store: &dyn Store,
    q: &ConvoyQuery,
    node: &str,
    tx: &mpsc::Sender<Result<pb::ConvoyChunk, Status>>,
) -> Result<u64, QueryError> {
    let started = Instant::now();
    let r = convoy(store, q)?;
    let mut forces = std::collections::BTreeMap::<ForceId, u64>::new();
    let n = r.companions.len() as u64;
    for (i, c) in r.companions.into_iter().enumerate() {
        let pairs = c
            .pairs
            .iter()
            .map(|p| {
                *forces.entry(p.target.force.clone()).or_default() += 1;
                *forces.entry(p.companion.force.clone()).or_default() += 1;
                pb::ConvoyPair {
                    target: Some(proto::row_from_stored(&p.target, node)),
                    companion: Some(proto::row_from_stored(&p.companion, node)),
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
        if tx.blocking_send(Ok(chunk)).is_err() {
            return Ok(n);
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
    };
    let _ = tx.blocking_send(Ok(pb::ConvoyChunk {
        chunk: Some(pb::convoy_chunk::Chunk::Summary(summary)),
    }));
    Ok(n)
}

fn compute_clones(
    store: &dyn Store,
    q: &CloneQuery,
    node: &str,
    tx: &mpsc::Sender<Result<pb::ClonesChunk, Status>>,
) -> Result<u64, QueryError> {
    let started = Instant::now();
    let r = clones(store, q)?;
    let mut forces = std::collections::BTreeMap::<ForceId, u64>::new();
    let n = r.pairs.len() as u64;
    for p in r.pairs {
        *forces.entry(p.first.force.clone()).or_default() += 1;
        *forces.entry(p.second.force.clone()).or_default() += 1;
        let chunk = pb::ClonesChunk {
            chunk: Some(pb::clones_chunk::Chunk::Pair(pb::ClonePair {
                vrm: p.first.read.vrm.as_str().to_string(),
                first: Some(proto::row_from_stored(&p.first, node)),
                second: Some(proto::row_from_stored(&p.second, node)),
                distance_m: p.distance_m,
                seconds: p.seconds,
                speed_kmh: p.speed_kmh,
            })),
        };
        if tx.blocking_send(Ok(chunk)).is_err() {
            return Ok(n);
        }
    }
    let summary = pb::ClonesSummary {
        pairs: n,
        total: r.total as u64,
        reads_examined: r.reads_examined,
        truncated: r.truncated,
        elapsed_us: started.elapsed().as_micros() as u64,
        forces: force_counts(&forces),
    };
    let _ = tx.blocking_send(Ok(pb::ClonesChunk {
        chunk: Some(pb::clones_chunk::Chunk::Summary(summary)),
    }));
    Ok(n)
}

#[tonic::async_trait]
impl pb::search_server::Search for SearchService {
    type ConvoyStream = Pin<Box<dyn Stream<Item = Result<pb::ConvoyChunk, Status>> + Send>>;

    async fn convoy(
        &self,
        req: Request<pb::ConvoyRequest>,
    ) -> Result<Response<Self::ConvoyStream>, Status> {
        let who = caller(&req)?;
        let (force, user, _) = who.require_searcher()?;
        let q = self.convoy_query(req.get_ref(), force)?;
        Ok(Response::new(self.spawn_analysis(
            "convoy",
            user.to_string(),
            force.clone(),
            q,
            compute_convoy,
        )))
    }

    type ClonesStream = Pin<Box<dyn Stream<Item = Result<pb::ClonesChunk, Status>> + Send>>;

    async fn clones(
        &self,
        req: Request<pb::ClonesRequest>,
    ) -> Result<Response<Self::ClonesStream>, Status> {
        let who = caller(&req)?;
        let (force, user, _) = who.require_searcher()?;
        let q = self.clones_query(req.get_ref())?;
        Ok(Response::new(self.spawn_analysis(
            "clones",
            user.to_string(),
            force.clone(),
            q,
            compute_clones,
        )))
    }

    type GeoSearchStream = ChunkStream;
    type VrmSearchStream = ChunkStream;
    type VehicleSearchStream = ChunkStream;
    type CameraSearchStream = ChunkStream;

    async fn geo_search(
        &self,
        req: Request<pb::GeoSearchRequest>,
    ) -> Result<Response<Self::GeoSearchStream>, Status> {
        let q = req.get_ref().clone();
        self.run(&req, "geo", |s| s.geo_query(&q), compute_geo)
            .await
    }

    async fn vrm_search(
        &self,
        req: Request<pb::VrmSearchRequest>,
    ) -> Result<Response<Self::VrmSearchStream>, Status> {
        let q = req.get_ref().clone();
        self.run(&req, "vrm", |s| s.vrm_query(&q), compute_vrm)
            .await
    }

    async fn vehicle_search(
        &self,
        req: Request<pb::VehicleSearchRequest>,
    ) -> Result<Response<Self::VehicleSearchStream>, Status> {
        let q = req.get_ref().clone();
        self.run(&req, "vehicle", |s| s.vehicle_query(&q), compute_vehicle)
            .await
    }

    async fn camera_search(
        &self,
        req: Request<pb::CameraSearchRequest>,
    ) -> Result<Response<Self::CameraSearchStream>, Status> {
        let q = req.get_ref().clone();
        self.run(&req, "camera", |s| s.camera_query(&q), compute_camera)
            .await
    }

    type VrmTimelineStream = ChunkStream;

    async fn vrm_timeline(
        &self,
        req: Request<pb::VrmTimelineRequest>,
    ) -> Result<Response<Self::VrmTimelineStream>, Status> {
        let q = req.get_ref().clone();
        self.run(
            &req,
            "vrm_timeline",
            |s| s.timeline_query(&q),
            compute_timeline,
        )
        .await
    }
}
