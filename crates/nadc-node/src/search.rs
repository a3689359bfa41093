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
use nadc_core::{Circle, ForceId, GeoPoint, Principal, StoredRead, Timestamp, Vrm};
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
use crate::disclosure::CaseRead;
use crate::federation::{Federation, PeerCall, Reach, on_behalf_of, relayed_user};
use crate::governance::{Actor, Audited, Governance};
use crate::hotlists::HotlistRegistry;
use crate::merge::{Merge, Order, Source};
use crate::page::PageVrms;
use crate::workers::{Gone, SearchWorkers, Worker};
use nadc_core::access::AccessContext;
use nadc_core::audit::Outcome;
use serde_json::json;

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
    /// Purpose, case and data-age checks, and the audit.
    pub governance: Arc<Governance>,
    /// Peers for national searches (none: this node alone).
    pub federation: Option<Arc<Federation>>,
    /// Retention in days: the default start of a window.
    pub retention_days: u32,
    /// Rows returned when the request names no limit.
    pub default_limit: usize,
    /// Most rows a request may ask for.
    pub max_limit: usize,
    /// Caps on over-broad searches.
    pub caps: SearchCaps,
    /// The blocking threads searches may hold, and open searches per user.
    pub workers: SearchWorkers,
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
        clipped_from: None,
        nodes: Vec::new(),
        partial: false,
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
/// The user's place is freed before the summary goes (see
/// [`Worker::release_user`]).
fn send_result(
    worker: &mut Worker,
    tx: &mpsc::Sender<Result<pb::SearchChunk, Status>>,
    rows: Vec<pb::ReadRow>,
    vrms: Option<pb::VrmSummaries>,
    summary: pb::SearchSummary,
) {
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<pb::ReadRow> = rows.by_ref().take(CHUNK_ROWS).collect();
        if worker.send(tx, Ok(rows_chunk(chunk))).is_err() {
            return;
        }
    }
    if let Some(v) = vrms
        && worker
            .send(
                tx,
                Ok(pb::SearchChunk {
                    chunk: Some(pb::search_chunk::Chunk::Vrms(v)),
                }),
            )
            .is_err()
    {
        return;
    }
    worker.release_user();
    let _ = worker.send(
        tx,
        Ok(pb::SearchChunk {
            chunk: Some(pb::search_chunk::Chunk::Summary(summary)),
        }),
    );
}

/// A request's time, if it is set and readable.
fn pb_time(t: &Option<prost_types::Timestamp>) -> Option<Timestamp> {
    t.as_ref().and_then(nadc_proto::from_pb_time)
}

/// The window a request's `from` and `to` bound, for skipping peers: none
/// unless `to` is set (an open end is now, which every peer reaches).
fn window_of(
    from: &Option<prost_types::Timestamp>,
    to: &Option<prost_types::Timestamp>,
) -> Option<(Timestamp, Timestamp)> {
    Some((
        pb_time(from).unwrap_or(Timestamp::from_millis(0)),
        pb_time(to)?,
    ))
}

fn required_time(t: Option<&prost_types::Timestamp>, what: &str) -> Result<Timestamp, Status> {
    let t = t.ok_or_else(|| Status::invalid_argument(format!("{what} is required")))?;
    proto::from_pb_time(t).ok_or_else(|| {
        Status::invalid_argument(format!("{what} is outside 1970-01-01 to 9999-12-31"))
    })
}

/// A search being planned: who asks, why, what (for the audit), and the
/// windows the access rules permit.
pub struct Plan {
    actor: Actor,
    access: AccessContext,
    clip: bool,
    governance: Arc<Governance>,
    /// The earliest start asked for that was clipped, if any.
    clipped_from: Option<Timestamp>,
    /// The request, for the audit.
    query: serde_json::Value,
    /// The instant the search is planned at: its default window and its
    /// access checks use the same one.
    now: Timestamp,
    /// The case searched under, once checked (`crate::cases`).
    case: Option<crate::cases::CaseId>,
}

impl Plan {
    /// Whose open searches this one counts among: force and name.
    fn user_key(&self) -> String {
        let force = self.actor.force.as_ref().map_or("-", |f| f.as_str());
        format!("{force}/{}", self.actor.user)
    }

    /// The permitted part of `from..=to` (possibly clipped, noted).
    fn permit(&mut self, from: Timestamp, to: Timestamp) -> Result<(Timestamp, Timestamp), Status> {
        let p = self
            .governance
            .permit(&self.actor, &self.access, self.clip, from, to, self.now)?;
        if let Some(c) = p.clipped_from {
            self.clipped_from = Some(self.clipped_from.map_or(c, |x| x.min(c)));
        }
        // Nothing older than retention is searched: what is left of it is
        // awaiting deletion or under a legal hold, and held material is
        // reached by its case (`HeldReads`), not by searches.
        let retained = self.now.minus_days(self.governance.policy.retention_days);
        Ok((p.from.max(retained), p.to))
    }

    /// Refuses `allow_broad` from a caller without a role that may use it.
    fn broad(&self, allow_broad: bool) -> Result<(), Status> {
        if !allow_broad {
            return Ok(());
        }
        self.governance
            .policy
            .check_broad(&self.actor.roles)
            .map_err(|e| Status::permission_denied(e.to_string()))
    }

    /// Writes the search's opening entry (who, purpose, case, query):
    /// durable when this returns, before any row leaves.
    fn open_blocking(&self, search: &str) -> Result<u64, Status> {
        let g = &self.governance;
        g.record_blocking(g.entry(
            &self.actor,
            &format!("search.{search}.opened"),
            &self.audited(Vec::new()),
            Outcome::Ok,
        ))
    }

    fn audited(&self, returned: Vec<(ForceId, u64)>) -> Audited {
        Audited {
            access: self.access.clone(),
            query: self.query.clone(),
            returned,
        }
    }
}

fn time_json(t: Option<&prost_types::Timestamp>) -> serde_json::Value {
    t.and_then(proto::from_pb_time)
        .map_or(serde_json::Value::Null, |t| json!(t.to_rfc3339()))
}

fn areas_json(areas: &[pb::Area]) -> serde_json::Value {
    areas
        .iter()
        .map(|a| {
            json!({"lat": a.lat, "lon": a.lon, "radius_m": a.radius_m, "polygon": a.polygon,
                "from": time_json(a.from.as_ref()), "to": time_json(a.to.as_ref())})
        })
        .collect()
}

impl SearchService {
    /// Checks a window's order and length, then the access rules; returns
    /// the permitted window.
    fn check_window(
        &self,
        plan: &mut Plan,
        from: Timestamp,
        to: Timestamp,
        what: &str,
        allow_broad: bool,
    ) -> Result<(Timestamp, Timestamp), Status> {
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
        plan.permit(from, to)
            .map_err(|e| Status::new(e.code(), format!("{what}: {}", e.message())))
    }

    /// Starts planning a search for the caller of `req` with the context
    /// it gave (refusals are audited by the caller of this).
    /// Starts planning a search (`search`, for the audit) for the caller of
    /// `req`, or the user a peer relays, with the context it gave: the plan,
    /// and whether the context holds (refusals past this point are audited
    /// by the caller of this; those before it here).
    async fn plan_relayed<T>(
        &self,
        req: &Request<T>,
        search: &str,
        access: Option<&pb::AccessContext>,
        relay: Option<&pb::OnBehalfOf>,
    ) -> Result<(Plan, Result<(), Status>), Status> {
        let mut who = caller(req)?;
        // Who may not search at all (a BOF, a user without a searching
        // role, a relay the rules refuse) is refused here, audited too.
        let early = match relayed_user(self.federation.as_deref(), &who.principal, relay) {
            Ok(Some(user)) => {
                who.principal = user;
                who.require_searcher().map(drop)
            }
            Ok(None) => who.require_searcher().map(drop),
            Err(e) => Err(e.into()),
        };
        if let Err(status) = early {
            let given = access.cloned().unwrap_or_default();
            let what = Audited {
                access: AccessContext {
                    purpose: given.purpose,
                    case_ref: given.case_ref,
                    authorisation: given.authorisation,
                },
                ..Default::default()
            };
            let actor = Actor::of(&who.principal);
            let action = format!("search.{search}");
            return Err(self.governance.refuse(&actor, &action, &what, status).await);
        }
        let actor = Actor::of(&who.principal);
        let given = access.cloned().unwrap_or_default();
        let mut plan = Plan {
            actor,
            access: AccessContext {
                purpose: given.purpose.clone(),
                case_ref: given.case_ref.clone(),
                authorisation: given.authorisation.clone(),
            },
            clip: given.clip_to_permitted,
            governance: self.governance.clone(),
            clipped_from: None,
            query: serde_json::Value::Null,
            now: self.clock.now(),
            case: None,
        };
        let checked = self.governance.context(access).and_then(|(ctx, clip)| {
            plan.access = ctx;
            plan.clip = clip;
            let case = self.case_of(&plan.actor, &plan.access.case_ref, &given, relay);
            // The audit names another force's case as OWNER/REF.
            plan.access.case_ref = match &case {
                Ok(c) => crate::cases::name_for(&plan.actor, c),
                Err(_) => {
                    crate::disclosure::shown(&plan.actor, &plan.access.case_ref, &given.case_force)
                }
            };
            plan.case = Some(case?);
            Ok(())
        });
        Ok((plan, checked))
    }

    /// Audits a search refused before it is planned (as its caller), then
    /// returns the refusal.
    async fn refuse_early<T>(&self, req: &Request<T>, search: &str, status: Status) -> Status {
        let actor = match caller(req) {
            Ok(who) => Actor::of(&who.principal),
            Err(e) => return e,
        };
        let action = format!("search.{search}");
        self.governance
            .refuse(&actor, &action, &Audited::default(), status)
            .await
    }

    /// The case a search is under: one the user's force is a member of
    /// (a search a peer relays is under the case the user's own node
    /// checked).
    fn case_of(
        &self,
        actor: &Actor,
        case_ref: &str,
        given: &pb::AccessContext,
        relay: Option<&pb::OnBehalfOf>,
    ) -> Result<crate::cases::CaseId, Status> {
        let cases = &self.governance.cases;
        if relay.is_some() {
            crate::cases::Cases::named(actor, case_ref, &given.case_force)
        } else {
            cases.resolve(actor, case_ref, &given.case_force, "search under it")
        }
    }

    /// Audits a search refused while planning, then returns the refusal.
    async fn refuse(&self, plan: &Plan, search: &str, status: Status) -> Status {
        let entry = self.governance.entry(
            &plan.actor,
            &format!("search.{search}"),
            &plan.audited(Vec::new()),
            Outcome::Refused(status.message().to_string()),
        );
        match self.governance.record(entry).await {
            Ok(_) => status,
            Err(e) => e,
        }
    }

    fn geo_query(&self, plan: &mut Plan, q: &pb::GeoSearchRequest) -> Result<GeoQuery, Status> {
        plan.query = json!({"areas": areas_json(&q.areas), "match": q.r#match,
            "limit": q.limit, "offset": q.offset, "allow_broad": q.allow_broad});
        plan.broad(q.allow_broad)?;
        if q.areas.is_empty() {
            return Err(Status::invalid_argument(
                "a geographic search needs at least one area",
            ));
        }
        let (areas, matching) = self.areas(plan, &q.areas, q.r#match, q.allow_broad)?;
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
        plan: &mut Plan,
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
            let (from, to) = self.check_window(plan, from, to, &what, allow_broad)?;
            out.push(Area { shape, from, to });
        }
        let matching = match pb::AreaMatch::try_from(m) {
            Ok(pb::AreaMatch::All) => AreaMatch::All,
            Ok(pb::AreaMatch::Any | pb::AreaMatch::Unspecified) => AreaMatch::Any,
            Err(_) => return Err(Status::invalid_argument(format!("match {m} is unknown"))),
        };
        Ok((out, matching))
    }

    fn vehicle_query(
        &self,
        plan: &mut Plan,
        q: &pb::VehicleSearchRequest,
    ) -> Result<VehicleQuery, Status> {
        plan.query = json!({"make": q.make, "model": q.model, "colour": q.colour,
            "areas": areas_json(&q.areas), "match": q.r#match, "from": time_json(q.from.as_ref()),
            "to": time_json(q.to.as_ref()), "limit": q.limit, "offset": q.offset,
            "allow_broad": q.allow_broad});
        plan.broad(q.allow_broad)?;
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
        let (areas, matching) = self.areas(plan, &q.areas, q.r#match, q.allow_broad)?;
        let (from, to) = if areas.is_empty() {
            let from = required_time(q.from.as_ref(), "from (needed when no area is given)")?;
            let to = required_time(q.to.as_ref(), "to (needed when no area is given)")?;
            self.check_window(plan, from, to, "vehicle search", q.allow_broad)?
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

    fn camera_query(
        &self,
        plan: &mut Plan,
        q: &pb::CameraSearchRequest,
    ) -> Result<CameraQuery, Status> {
        plan.query = json!({"cameras": q.cameras.iter().map(|c| format!("{}:{}", c.force, c.camera_id)).collect::<Vec<_>>(),
            "from": time_json(q.from.as_ref()), "to": time_json(q.to.as_ref()),
            "limit": q.limit, "offset": q.offset, "allow_broad": q.allow_broad});
        plan.broad(q.allow_broad)?;
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
        let (from, to) = self.check_window(plan, from, to, "camera search", q.allow_broad)?;
        Ok(CameraQuery {
            cameras,
            from,
            to,
            limit: self.limit(q.limit)?,
            offset: q.offset as usize,
            max_candidates: self.caps.max_candidates,
        })
    }

    /// A VRM search's window: by default the data the caller may see (the
    /// standard tier, or the retention period under an authorisation).
    fn window(
        &self,
        plan: &mut Plan,
        from: Option<&prost_types::Timestamp>,
        to: Option<&prost_types::Timestamp>,
    ) -> Result<(Timestamp, Timestamp), Status> {
        let now = plan.now;
        let default_from = if plan.access.authorisation.is_empty() {
            self.governance.policy.standard_start(now)
        } else {
            now.minus_days(self.retention_days)
        };
        let parse = |t: Option<&prost_types::Timestamp>, name: &str, default: Timestamp| match t {
            None => Ok(default),
            Some(t) => proto::from_pb_time(t).ok_or_else(|| {
                Status::invalid_argument(format!("{name} is outside 1970-01-01 to 9999-12-31"))
            }),
        };
        let from = parse(from, "from", default_from)?;
        let to = parse(to, "to", now)?;
        if from > to {
            return Err(Status::invalid_argument(format!(
                "the window is inverted: from {from} is after to {to}"
            )));
        }
        plan.permit(from, to)
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
    let (summary, total_rows) = vehicle_search_stream(store, q, &mut |r| {
        let mut row = proto::row_from_stored(&r.read, node);
        row.areas = r.areas;
        emit(row)
    })?;
    Ok(Finished {
        vrms: None,
        summary,
        total_rows,
    })
}

/// The reads held for a case, in capture-time order.
fn compute_held(
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
    emit_reads(&reads, node, emit);
    Ok(Finished {
        vrms: None,
        total_rows: reads.len() as u64,
        summary,
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
        access: Option<&pb::AccessContext>,
        query: impl FnOnce(&Self, &mut Plan) -> Result<Q, Status>,
        compute: fn(&dyn Store, &Q, &str, Emit) -> Result<Finished, QueryError>,
    ) -> Result<Response<ChunkStream>, Status> {
        self.run_relayed(req, search, access, None, query, compute)
            .await
    }

    /// [`run`](Self::run) for a search a peer node may relay for a user.
    async fn run_relayed<Q: Send + 'static, T>(
        &self,
        req: &Request<T>,
        search: &'static str,
        access: Option<&pb::AccessContext>,
        relay: Option<&pb::OnBehalfOf>,
        query: impl FnOnce(&Self, &mut Plan) -> Result<Q, Status>,
        compute: fn(&dyn Store, &Q, &str, Emit) -> Result<Finished, QueryError>,
    ) -> Result<Response<ChunkStream>, Status> {
        let (mut plan, checked) = self.plan_relayed(req, search, access, relay).await?;
        let query = match checked.and_then(|()| query(self, &mut plan)) {
            Ok(q) => q,
            Err(status) => return Err(self.refuse(&plan, search, status).await),
        };
        let mut worker = match self.workers.acquire(&plan.user_key()).await {
            Ok(w) => w,
            Err(status) => return Err(self.refuse(&plan, search, status).await),
        };
        let store = self.store.clone();
        let node = self.node.clone();
        let governance = self.governance.clone();
        let (tx, rx) = mpsc::channel::<Result<pb::SearchChunk, Status>>(4);
        tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let mut chunk = Vec::with_capacity(CHUNK_ROWS);
            let mut gone: Option<Gone> = None;
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
                    if let Err(g) = worker.send(&tx, Ok(rows_chunk(full))) {
                        gone = Some(g);
                        return ControlFlow::Break(());
                    }
                }
                ControlFlow::Continue(())
            });
            if let Some(e) = unaudited {
                worker.release_user();
                let _ = worker.send(&tx, Err(e));
                return;
            }
            let queried = started.elapsed();
            let action = format!("search.{search}");
            let (returned, outcome) = match &result {
                Ok(f) => (
                    f.summary
                        .forces
                        .iter()
                        .map(|(f, n)| (f.clone(), *n))
                        .collect(),
                    if let Some(g) = gone {
                        Outcome::Failed(g.to_string())
                    } else {
                        Outcome::Ok
                    },
                ),
                Err(QueryError::Store(e)) => (Vec::new(), Outcome::Failed(e.to_string())),
                Err(e) => (Vec::new(), Outcome::Refused(e.to_string())),
            };
            let entry = governance.entry(&plan.actor, &action, &plan.audited(returned), outcome);
            if gone.is_some() {
                // Nothing more goes to this client: its user may search again.
                worker.release_user();
            }
            // The audit entry and the case register (what this search
            // returned under the case), durable together.
            if let Err(e) =
                governance.record_search_blocking(entry, plan.case.as_ref(), &returned_reads)
            {
                worker.release_user();
                let _ = worker.send(&tx, Err(e));
                return;
            }
            if let Some(g) = gone {
                if let Gone::Stalled(_) = g {
                    warn!(user = %plan.actor.user, search, "{g}");
                }
                return;
            }
            match result {
                Ok(f) => {
                    let elapsed = started.elapsed().as_micros() as u64;
                    // Where the time went: the query itself, then the audit
                    // entry and case register (durable before the answer is
                    // complete).
                    info!(user = %plan.actor.user, search, rows = f.summary.rows,
                        total = f.total_rows, elapsed_us = elapsed,
                        query_us = queried.as_micros() as u64,
                        audit_us = elapsed.saturating_sub(queried.as_micros() as u64),
                        "search done");
                    let mut summary = summary_to_pb(&f.summary, elapsed);
                    summary.total_rows = f.total_rows;
                    summary.clipped_from = plan.clipped_from.map(proto::to_pb_time);
                    // Summaries of the rows sent only, never of every match.
                    let vrms = f.vrms.map(|_| page.into_pb());
                    send_result(&mut worker, &tx, chunk, vrms, summary);
                }
                Err(e) => {
                    if matches!(e, QueryError::Store(_)) {
                        warn!(search, error = %e, "search failed");
                    }
                    worker.release_user();
                    let _ = worker.send(&tx, Err(query_status(e)));
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    fn timeline_query(
        &self,
        plan: &mut Plan,
        q: &pb::VrmTimelineRequest,
    ) -> Result<TimelineQuery, Status> {
        plan.query = json!({"vrm": q.vrm, "from": time_json(q.from.as_ref()),
            "to": time_json(q.to.as_ref()), "limit": q.limit});
        // `?` and `*` are ASCII punctuation, which normalising would
        // silently drop: "AB12*" would give the timeline of AB12.
        if let Some(pos) = q.vrm.chars().position(|c| matches!(c, '?' | '*')) {
            return Err(Status::invalid_argument(format!(
                "vrm: wildcard at position {}: a timeline is of one VRM; use a VRM search for patterns",
                pos + 1
            )));
        }
        let vrm =
            Vrm::normalise(&q.vrm).map_err(|e| Status::invalid_argument(format!("vrm: {e}")))?;
        let (from, to) = self.window(plan, q.from.as_ref(), q.to.as_ref())?;
        Ok(TimelineQuery {
            vrm,
            from,
            to,
            limit: self.limit(q.limit)?,
        })
    }

    fn vrm_query(&self, plan: &mut Plan, q: &pb::VrmSearchRequest) -> Result<VrmQuery, Status> {
        plan.query = json!({"pattern": q.pattern, "fuzzy": q.fuzzy, "max_edits": q.max_edits,
            "confusable_groups": q.confusable_groups, "from": time_json(q.from.as_ref()),
            "to": time_json(q.to.as_ref()), "limit": q.limit, "offset": q.offset});
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
        let (from, to) = self.window(plan, q.from.as_ref(), q.to.as_ref())?;
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

/// What an analysis returns after sending its items: the summary chunk
/// (sent once the search is audited), the rows per owning force, and the
/// reads it disclosed (for the case register).
type Analysed<C> = (C, std::collections::BTreeMap<ForceId, u64>, Vec<CaseRead>);

/// An analysis that sends its own item chunks (the start it was clipped
/// from, if any, goes in its summary).
type Analysis<Q, C> =
    fn(&dyn Store, &Q, &str, &Outbox<'_, C>, Option<Timestamp>) -> Result<Analysed<C>, QueryError>;

/// Where an analysis sends its items: each send waits at most
/// `stalled_reader_s` for the client (see [`Worker::send`]).
struct Outbox<'a, C> {
    worker: &'a Worker,
    tx: &'a mpsc::Sender<Result<C, Status>>,
    gone: std::cell::Cell<Option<Gone>>,
}

impl<C> Outbox<'_, C> {
    /// Sends an item; false once the client has gone (or stalled).
    fn send(&self, item: C) -> bool {
        match self.worker.send(self.tx, Ok(item)) {
            Ok(()) => true,
            Err(g) => {
                self.gone.set(Some(g));
                false
            }
        }
    }
}

/// The rows each node is asked for so that the merged page
/// `offset..offset + limit` is exact: its first `offset + limit`.
fn widen(limit: usize, offset: u32, max: usize) -> u32 {
    limit
        .saturating_add(offset as usize)
        .min(max)
        .min(u32::MAX as usize) as u32
}

/// A search request that can be relayed to a peer.
trait Relayed: Clone + Send + Sync + 'static {
    /// The request as relayed for `relay`'s user: this node only.
    fn localised(self, relay: pb::OnBehalfOf) -> Self;
}

macro_rules! relayed {
    ($($t:ty),*) => {$(
        impl Relayed for $t {
            fn localised(mut self, relay: pb::OnBehalfOf) -> Self {
                self.scope = pb::Scope::Local as i32;
                self.on_behalf_of = Some(relay);
                self
            }
        }
    )*};
}

relayed!(
    pb::VrmTimelineRequest,
    pb::VrmSearchRequest,
    pb::GeoSearchRequest,
    pb::VehicleSearchRequest,
    pb::CameraSearchRequest
);

/// The RPC a relayed search calls on a peer.
type RelayCall<R> = fn(
    pb::search_client::SearchClient<tonic::transport::Channel>,
    Request<R>,
) -> futures::future::BoxFuture<
    'static,
    Result<Response<tonic::Streaming<pb::SearchChunk>>, Status>,
>;

/// What a national search reports about itself.
struct National {
    user: Principal,
    access: Option<pb::AccessContext>,
    action: &'static str,
    query: serde_json::Value,
    limit: usize,
    /// For a geographic ALL search over this many areas: the nodes answered
    /// ANY, and only vehicles seen in every area (on any node) are kept.
    all_areas: Option<usize>,
    /// Merge in VRM-search ranking instead of capture time.
    ranked: bool,
    /// Rows of the merged result to skip first (paging); every node was
    /// asked for its first `offset + limit` rows.
    offset: usize,
}

/// A national answer's merged rows on their way to the user, and what is
/// known of them for the summary, the audit and the case register.
struct Streamed {
    node: String,
    tx: mpsc::Sender<Result<pb::SearchChunk, Status>>,
    chunk: Vec<pb::ReadRow>,
    rows: u64,
    forces: std::collections::BTreeMap<String, u64>,
    cameras: std::collections::BTreeSet<(String, String)>,
    /// The rows other nodes returned, for the case register.
    remote: Vec<CaseRead>,
    /// Per-VRM summaries of the rows sent.
    page: PageVrms,
    /// Writes the search's opening audit entry: run (once) before the first
    /// chunk leaves.
    opener: Option<Opener>,
    /// The user went away before the end (or the audit failed).
    gone: bool,
}

/// Writes a search's opening audit entry (blocking).
type Opener = Box<dyn FnOnce() -> Result<u64, Status> + Send>;

impl Streamed {
    fn new(node: &str, tx: mpsc::Sender<Result<pb::SearchChunk, Status>>, opener: Opener) -> Self {
        Self {
            node: node.to_string(),
            tx,
            chunk: Vec::with_capacity(CHUNK_ROWS),
            rows: 0,
            forces: Default::default(),
            cameras: Default::default(),
            remote: Vec::new(),
            page: PageVrms::default(),
            opener: Some(opener),
            gone: false,
        }
    }

    /// Passes a row on (a chunk at a time); false once the user has gone.
    async fn push(&mut self, row: pb::ReadRow) -> bool {
        if let Some(p) = &row.provenance {
            *self.forces.entry(p.owning_force.clone()).or_default() += 1;
            self.cameras
                .insert((p.owning_force.clone(), p.camera_id.clone()));
            if p.node != self.node {
                self.remote.extend(CaseRead::of(&row));
            }
        }
        self.rows += 1;
        self.page.add(&row);
        self.chunk.push(row);
        if self.chunk.len() == CHUNK_ROWS {
            self.flush().await;
        }
        !self.gone
    }

    /// Sends the rows held.
    async fn flush(&mut self) {
        if self.chunk.is_empty() || self.gone {
            return;
        }
        if let Some(open) = self.opener.take() {
            let opened = tokio::task::spawn_blocking(open)
                .await
                .unwrap_or_else(|e| Err(Status::internal(format!("audit task failed: {e}"))));
            if let Err(e) = opened {
                let _ = self.tx.send(Err(e)).await;
                self.gone = true;
                return;
            }
        }
        let rows = std::mem::replace(&mut self.chunk, Vec::with_capacity(CHUNK_ROWS));
        self.gone = self.tx.send(Ok(rows_chunk(rows))).await.is_err();
    }
}

/// The outcome of a peer skipped: its advertised holdings cannot match.
fn skipped_outcome(node: String) -> pb::NodeOutcome {
    pb::NodeOutcome {
        node,
        ok: true,
        skipped: true,
        ..Default::default()
    }
}

/// Keeps the rows of vehicles seen in all `n` areas (each row names the
/// areas it falls in).
fn keep_all(rows: Vec<pb::ReadRow>, n: usize) -> Vec<pb::ReadRow> {
    let mut seen: std::collections::HashMap<&str, std::collections::BTreeSet<u32>> =
        std::collections::HashMap::new();
    for r in &rows {
        seen.entry(r.vrm.as_str())
            .or_default()
            .extend(r.areas.iter().copied());
    }
    let everywhere: std::collections::HashSet<String> = seen
        .into_iter()
        .filter(|(_, a)| a.len() == n)
        .map(|(v, _)| v.to_string())
        .collect();
    rows.into_iter()
        .filter(|r| everywhere.contains(&r.vrm))
        .collect()
}

impl SearchService {
    /// Whether a request runs nationally (fanned out to the peers): not when
    /// it asks for this node only, is relayed by a peer, or there are no
    /// peers. A national search needs a national role.
    async fn national_scope<T>(
        &self,
        req: &Request<T>,
        scope: i32,
        relayed: bool,
    ) -> Result<Option<(Arc<Federation>, Principal)>, Status> {
        let Some(federation) = self
            .federation
            .clone()
            .filter(|f| !f.peers.is_empty() && !relayed && scope != pb::Scope::Local as i32)
        else {
            return Ok(None);
        };
        let user = caller(req)?.principal;
        if let Principal::User { roles, .. } = &user
            && let Err(e) = self.governance.policy.check_national(roles)
        {
            let status = Status::permission_denied(e.to_string());
            let what = Audited::default();
            let g = &self.governance;
            return Err(g
                .refuse(&Actor::of(&user), "search.national", &what, status)
                .await);
        }
        Ok(Some((federation, user)))
    }

    /// Merges this node's answer (`local`) with the `peers`' answers to
    /// `call` as they stream in ([`Merge`]: time-ordered or ranked rows, a
    /// read held twice kept once), streams the merged rows on, then audits
    /// the national answer, registers the peers' rows under the case, and
    /// ends with the per-VRM summaries and the summary naming every node's
    /// outcome (partial if one failed; `skipped` ones could not
    /// contribute). A national ALL search is the exception that cannot
    /// stream: whether a vehicle was in every area is known only once every
    /// node has answered.
    #[allow(clippy::too_many_arguments)]
    async fn national(
        &self,
        n: National,
        local: Response<ChunkStream>,
        federation: Arc<Federation>,
        peers: Vec<crate::federation::Peer>,
        skipped: Vec<String>,
        call: PeerCall,
    ) -> Result<Response<ChunkStream>, Status> {
        let node = self.node.clone();
        let governance = self.governance.clone();
        let (mut access, _) = self.governance.context(n.access.as_ref())?;
        let actor = Actor::of(&n.user);
        let given = n.access.clone().unwrap_or_default();
        let case = self.case_of(&actor, &access.case_ref, &given, None)?;
        access.case_ref = crate::cases::name_for(&actor, &case);
        let (tx, rx) = mpsc::channel::<Result<pb::SearchChunk, Status>>(4);
        tokio::spawn(async move {
            let started = Instant::now();
            let mut sources = vec![Source::local(&node, local.into_inner())];
            sources.extend(federation.sources(&peers, call));
            let order = if n.ranked { Order::Rank } else { Order::Time };
            let mut merge = Merge::new(order, sources);
            let opener: Opener = {
                let (g, actor, action) = (governance.clone(), actor.clone(), n.action);
                let opened = Audited {
                    access: access.clone(),
                    query: json!({"national": true, "search": n.query.clone()}),
                    returned: Vec::new(),
                };
                Box::new(move || {
                    g.record_blocking(g.entry(
                        &actor,
                        &format!("{action}.opened"),
                        &opened,
                        Outcome::Ok,
                    ))
                })
            };
            let mut out = Streamed::new(&node, tx, opener);
            let upto = n.offset.saturating_add(n.limit);
            let (mut cut, mut all_total) = (false, None);
            if let Some(areas) = n.all_areas {
                let mut rows = Vec::new();
                while let Some(r) = merge.next().await {
                    rows.push(r);
                }
                let kept = keep_all(rows, areas);
                (cut, all_total) = (kept.len() > upto, Some(kept.len()));
                for row in kept.into_iter().take(upto).skip(n.offset) {
                    if !out.push(row).await {
                        break;
                    }
                }
            } else {
                let mut taken = 0;
                while let Some(row) = merge.next().await {
                    if taken == upto {
                        cut = true;
                        break;
                    }
                    taken += 1;
                    if taken > n.offset && !out.push(row).await {
                        break;
                    }
                }
            }
            out.flush().await;
            // The peers' summaries (after the rows not taken), unless the
            // user has gone: then the calls are dropped.
            let mut ended = if out.gone {
                None
            } else {
                match merge.finish().await {
                    Ok(e) => Some(e),
                    Err(e) => {
                        let _ = out.tx.send(Err(e)).await;
                        return;
                    }
                }
            };
            let mut outcomes = ended
                .as_mut()
                .map(|e| std::mem::take(&mut e.outcomes))
                .unwrap_or_default();
            outcomes.extend(skipped.into_iter().map(skipped_outcome));
            let audited = Audited {
                access: access.clone(),
                query: json!({"national": true, "search": n.query,
                    "nodes": outcomes.iter().map(|o| json!({"node": o.node, "ok": o.ok, "skipped": o.skipped})).collect::<Vec<_>>()}),
                returned: out
                    .forces
                    .iter()
                    .filter_map(|(f, n)| ForceId::new(f).ok().map(|id| (id, *n)))
                    .collect(),
            };
            let outcome = if out.gone {
                Outcome::Failed("the client went away before the end".into())
            } else {
                Outcome::Ok
            };
            let g = governance.clone();
            let (action, remote) = (n.action, std::mem::take(&mut out.remote));
            let written = tokio::task::spawn_blocking(move || {
                g.record_search_blocking(
                    g.entry(&actor, action, &audited, outcome),
                    Some(&case),
                    &remote,
                )
                .map(|_| ())
            })
            .await
            .unwrap_or_else(|e| Err(Status::internal(format!("audit task failed: {e}"))));
            if let Err(e) = written {
                let _ = out.tx.send(Err(e)).await;
                return;
            }
            let Some(ended) = ended else { return };
            // Summaries of the rows sent only (a page's, not every match's).
            let vrms = (n.all_areas.is_some() || !ended.vrms.is_empty())
                .then(|| std::mem::take(&mut out.page).into_pb().vrms);
            let summary = pb::SearchSummary {
                rows: out.rows,
                forces: out
                    .forces
                    .iter()
                    .map(|(force, rows)| pb::ForceCount {
                        force: force.clone(),
                        rows: *rows,
                    })
                    .collect(),
                cameras: out.cameras.len() as u64,
                elapsed_us: started.elapsed().as_micros() as u64,
                truncated: ended.truncated || cut,
                total_rows: all_total.map_or(ended.total_rows, |t| t as u64),
                clipped_from: ended.clipped_from,
                partial: outcomes.iter().any(|o| !o.ok),
                nodes: outcomes,
            };
            if let Some(vrms) = vrms {
                let chunk = pb::search_chunk::Chunk::Vrms(pb::VrmSummaries { vrms });
                if out
                    .tx
                    .send(Ok(pb::SearchChunk { chunk: Some(chunk) }))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            let _ = out
                .tx
                .send(Ok(pb::SearchChunk {
                    chunk: Some(pb::search_chunk::Chunk::Summary(summary)),
                }))
                .await;
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    /// This node's answer (`local`), and nationally the answers of the
    /// peers to `asked` (relayed for the user, this node only): of every
    /// peer that can hold reads within `reach`, or for a search in `areas`
    /// (which set its place and window) those whose cameras can be there.
    #[allow(clippy::too_many_arguments)]
    async fn fan_out_search<R: Relayed>(
        &self,
        local: Response<ChunkStream>,
        national: Option<(Arc<Federation>, Principal)>,
        areas: &[pb::Area],
        mut reach: Reach,
        n: impl FnOnce(Principal) -> National,
        asked: R,
        call: RelayCall<R>,
    ) -> Result<Response<ChunkStream>, Status> {
        let Some((federation, user)) = national else {
            return Ok(local);
        };
        let Some(relay) = on_behalf_of(&user, &self.node) else {
            return Ok(local);
        };
        let circles: Vec<Circle> = areas
            .iter()
            .filter_map(|a| {
                if a.polygon.trim().is_empty() {
                    GeoPoint::new(a.lat, a.lon)
                        .and_then(|c| Circle::new(c, a.radius_m))
                        .ok()
                } else {
                    Polygon::parse(&a.polygon)
                        .and_then(Shape::polygon)
                        .ok()
                        .map(|s| *s.scan_circle())
                }
            })
            .collect();
        if !circles.is_empty() {
            let points: Vec<GeoPoint> = circles.iter().map(Circle::centre).collect();
            let metres = circles.iter().map(Circle::radius_m).fold(0.0, f64::max);
            reach.near = Some((points, metres));
            // The areas' windows together (an unreadable one bounds
            // nothing: the peer is asked, and refuses it as this node did).
            let times: Option<Vec<(Timestamp, Timestamp)>> = areas
                .iter()
                .map(|a| Some((pb_time(&a.from)?, pb_time(&a.to)?)))
                .collect();
            reach.window = times
                .and_then(|w| Some((w.iter().map(|x| x.0).min()?, w.iter().map(|x| x.1).max()?)));
        }
        let (peers, skipped) = federation.peers_for(&reach).await;
        let remote = asked.localised(relay);
        let deadline = federation.deadline;
        let peer_call: PeerCall = Arc::new(move |c| {
            let mut r = Request::new(remote.clone());
            r.set_timeout(deadline);
            call(c, r)
        });
        self.national(n(user), local, federation, peers, skipped, peer_call)
            .await
    }
}

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
    fn convoy_query(&self, plan: &mut Plan, q: &pb::ConvoyRequest) -> Result<ConvoyQuery, Status> {
        plan.query = json!({"vrms": q.vrms, "hotlist": q.hotlist.as_ref().map(|h| format!("{}/{}", h.owner, h.name)),
            "from": time_json(q.from.as_ref()), "to": time_json(q.to.as_ref()), "window_s": q.window_s,
            "min_count": q.min_count, "min_cameras": q.min_cameras, "limit": q.limit,
            "allow_broad": q.allow_broad});
        plan.broad(q.allow_broad)?;
        let force = plan
            .actor
            .force
            .clone()
            .ok_or_else(|| Status::permission_denied("searching needs a force user"))?;
        let force = &force;
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
        let (from, to) = self.check_window(plan, from, to, "convoy search", q.allow_broad)?;
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

    fn clones_query(&self, plan: &mut Plan, q: &pb::ClonesRequest) -> Result<CloneQuery, Status> {
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
    /// Waits (bounded) for a search worker first; refused (and audited)
    /// when none comes or the user has too many searches open.
    async fn spawn_analysis<Q, C>(
        &self,
        search: &'static str,
        plan: Plan,
        query: Q,
        compute: Analysis<Q, C>,
    ) -> Result<Pin<Box<dyn Stream<Item = Result<C, Status>> + Send>>, Status>
    where
        Q: Send + 'static,
        C: Send + 'static,
    {
        let mut worker = match self.workers.acquire(&plan.user_key()).await {
            Ok(w) => w,
            Err(status) => return Err(self.refuse(&plan, search, status).await),
        };
        let (store, node) = (self.store.clone(), self.node.clone());
        let governance = self.governance.clone();
        let (tx, rx) = mpsc::channel::<Result<C, Status>>(16);
        tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            // An analysis sends its items as it goes: its opening entry is
            // durable before the first leaves.
            if let Err(e) = plan.open_blocking(search) {
                worker.release_user();
                let _ = worker.send(&tx, Err(e));
                return;
            }
            let out = Outbox {
                worker: &worker,
                tx: &tx,
                gone: std::cell::Cell::new(None),
            };
            let mut result = compute(store.as_ref(), &query, &node, &out, plan.clipped_from);
            let gone = out.gone.get();
            let (returned, outcome, reads) = match &mut result {
                Ok((_, forces, reads)) => (
                    forces.iter().map(|(f, n)| (f.clone(), *n)).collect(),
                    gone.map_or(Outcome::Ok, |g| Outcome::Failed(g.to_string())),
                    std::mem::take(reads),
                ),
                Err(QueryError::Store(e)) => {
                    (Vec::new(), Outcome::Failed(e.to_string()), Vec::new())
                }
                Err(e) => (Vec::new(), Outcome::Refused(e.to_string()), Vec::new()),
            };
            let entry = governance.entry(
                &plan.actor,
                &format!("search.{search}"),
                &plan.audited(returned),
                outcome,
            );
            // The closing entry and the case register of what it disclosed.
            worker.release_user();
            if let Err(e) = governance.record_search_blocking(entry, plan.case.as_ref(), &reads) {
                let _ = worker.send(&tx, Err(e));
                return;
            }
            if let Some(g) = gone {
                if let Gone::Stalled(_) = g {
                    warn!(user = %plan.actor.user, search, "{g}");
                }
                return;
            }
            match result {
                Ok((summary, _, _)) => {
                    info!(user = %plan.actor.user, search,
                        elapsed_us = started.elapsed().as_micros() as u64, "search done");
                    let _ = worker.send(&tx, Ok(summary));
                }
                Err(e) => {
                    if matches!(e, QueryError::Store(_)) {
                        warn!(search, error = %e, "search failed");
                    }
                    let _ = worker.send(&tx, Err(query_status(e)));
                }
            }
        });
        Ok(Box::pin(ReceiverStream::new(rx)))
    }
}

fn compute_convoy(
    store: &dyn Store,
    q: &ConvoyQuery,
    node: &str,
    tx: &Outbox<'_, pb::ConvoyChunk>,
    clipped: Option<Timestamp>,
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
    };
    let chunk = pb::ConvoyChunk {
        chunk: Some(pb::convoy_chunk::Chunk::Summary(summary)),
    };
    Ok((chunk, forces, reads))
}

fn compute_clones(
    store: &dyn Store,
    q: &CloneQuery,
    node: &str,
    tx: &Outbox<'_, pb::ClonesChunk>,
    clipped: Option<Timestamp>,
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
    };
    let chunk = pb::ClonesChunk {
        chunk: Some(pb::clones_chunk::Chunk::Summary(summary)),
    };
    Ok((chunk, forces, reads))
}

#[tonic::async_trait]
impl pb::search_server::Search for SearchService {
    type ConvoyStream = Pin<Box<dyn Stream<Item = Result<pb::ConvoyChunk, Status>> + Send>>;

    async fn convoy(
        &self,
        req: Request<pb::ConvoyRequest>,
    ) -> Result<Response<Self::ConvoyStream>, Status> {
        let q = req.get_ref().clone();
        let relay = q.on_behalf_of.clone();
        let national = self.national_scope(&req, q.scope, relay.is_some()).await?;
        // Nationally every node reports every companion it sees (no minimum,
        // no limit): counts add up exactly across nodes, as each camera's
        // reads are on one node; the filters and ranking apply here.
        let mut asked = q.clone();
        if national.is_some() {
            asked.min_count = 1;
            asked.min_cameras = 1;
            asked.limit = self.max_limit.min(u32::MAX as usize) as u32;
        }
        let (mut plan, checked) = self
            .plan_relayed(&req, "convoy", asked.access.as_ref(), relay.as_ref())
            .await?;
        let case = plan.case.clone();
        let local = match checked.and_then(|()| self.convoy_query(&mut plan, &asked)) {
            Ok(cq) => {
                self.spawn_analysis("convoy", plan, cq, compute_convoy)
                    .await?
            }
            Err(status) => return Err(self.refuse(&plan, "convoy", status).await),
        };
        let Some((federation, user)) = national else {
            return Ok(Response::new(local));
        };
        let mut remote = asked.clone();
        remote.scope = pb::Scope::Local as i32;
        remote.on_behalf_of = on_behalf_of(&user, &self.node);
        // A peer whose reads all came after the targets' window (and the
        // companions' reach past it) cannot contribute.
        let reach = Reach {
            window: window_of(&q.from, &q.to)
                .map(|(from, to)| (from, to.plus_millis(i64::from(q.window_s) * 1000))),
            ..Reach::default()
        };
        let (peers, skipped) = federation.peers_for(&reach).await;
        let answers = federation.fan_out_convoy(&peers, remote).await;
        let limit = match q.limit as usize {
            0 => DEFAULT_COMPANIONS,
            n => n.min(self.max_limit),
        };
        let or = |v: u32, d: u32| if v == 0 { d } else { v };
        let (min_count, min_cameras) = (or(q.min_count, 2), or(q.min_cameras, 1));
        let node = self.node.clone();
        let (governance, actor) = (self.governance.clone(), Actor::of(&user));
        let (access, _) = self.governance.context(q.access.as_ref())?;
        let audit_query = json!({"national": true, "vrms": q.vrms, "window_s": q.window_s,
            "min_count": q.min_count, "min_cameras": q.min_cameras, "limit": q.limit});
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(async move {
            let mine = crate::federation::collect_convoy(local).await;
            let mine = match mine {
                Ok(m) => m,
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            };
            let mut outcomes = vec![pb::NodeOutcome {
                node: node.clone(),
                ok: true,
                rows: mine.0.len() as u64,
                ..Default::default()
            }];
            let mut all = vec![mine];
            for (name, r, replaced) in answers {
                let (by, why) = replaced.map(|r| (r.by, r.why)).unwrap_or_default();
                let mut outcome = pb::NodeOutcome {
                    node: name,
                    replica: by,
                    replica_reason: why,
                    ..Default::default()
                };
                match r {
                    Ok(a) => {
                        (outcome.ok, outcome.rows) = (true, a.0.len() as u64);
                        all.push(a);
                    }
                    Err(e) => outcome.error = e,
                }
                outcomes.push(outcome);
            }
            outcomes.extend(skipped.into_iter().map(skipped_outcome));
            let (companions, mut summary) =
                crate::federation::merge_convoy(all, min_count, min_cameras, limit);
            summary.partial = outcomes.iter().any(|o| !o.ok);
            summary.nodes = outcomes;
            // What the peers contributed, audited and registered under the
            // case here before it is passed on (this node's own part was
            // audited by its analysis).
            let written = tokio::task::spawn_blocking({
                let companions = companions.clone();
                move || {
                    let remote: Vec<&pb::ReadRow> = companions
                        .iter()
                        .flat_map(|c| &c.pairs)
                        .flat_map(|p| [p.target.as_ref(), p.companion.as_ref()])
                        .flatten()
                        .filter(|r| r.provenance.as_ref().is_some_and(|p| p.node != node))
                        .collect();
                    governance.disclose_blocking(
                        &actor,
                        "search.convoy.national",
                        case.as_ref().map(|c| (&access, c)),
                        audit_query,
                        &remote,
                    )
                }
            })
            .await
            .unwrap_or_else(|e| Err(Status::internal(format!("audit task failed: {e}"))));
            if let Err(e) = written {
                let _ = tx.send(Err(e)).await;
                return;
            }
            for c in companions {
                if tx
                    .send(Ok(pb::ConvoyChunk {
                        chunk: Some(pb::convoy_chunk::Chunk::Companion(c)),
                    }))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            let _ = tx
                .send(Ok(pb::ConvoyChunk {
                    chunk: Some(pb::convoy_chunk::Chunk::Summary(summary)),
                }))
                .await;
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    type ClonesStream = Pin<Box<dyn Stream<Item = Result<pb::ClonesChunk, Status>> + Send>>;

    async fn clones(
        &self,
        req: Request<pb::ClonesRequest>,
    ) -> Result<Response<Self::ClonesStream>, Status> {
        let (mut plan, checked) = self
            .plan_relayed(&req, "clones", req.get_ref().access.as_ref(), None)
            .await?;
        match checked.and_then(|()| self.clones_query(&mut plan, req.get_ref())) {
            Ok(q) => Ok(Response::new(
                self.spawn_analysis("clones", plan, q, compute_clones)
                    .await?,
            )),
            Err(status) => Err(self.refuse(&plan, "clones", status).await),
        }
    }

    type GeoSearchStream = ChunkStream;
    type VrmSearchStream = ChunkStream;
    type VehicleSearchStream = ChunkStream;
    type CameraSearchStream = ChunkStream;

    async fn geo_search(
        &self,
        req: Request<pb::GeoSearchRequest>,
    ) -> Result<Response<ChunkStream>, Status> {
        let q = req.get_ref().clone();
        let relay = q.on_behalf_of.clone();
        let national = self.national_scope(&req, q.scope, relay.is_some()).await?;
        let limit = match self.limit(q.limit) {
            Ok(limit) => limit,
            Err(status) => return Err(self.refuse_early(&req, "geo", status).await),
        };
        // A national ALL search: every node answers ANY (all the areas'
        // reads, up to the node's maximum), and the vehicles seen in every
        // area, on whichever nodes, are kept here.
        let all_areas =
            (national.is_some() && q.r#match == pb::AreaMatch::All as i32).then_some(q.areas.len());
        let mut asked = q.clone();
        if national.is_some() {
            asked.offset = 0;
            asked.limit = widen(limit, q.offset, self.max_limit);
        }
        if all_areas.is_some() {
            asked.r#match = pb::AreaMatch::Any as i32;
            asked.limit = self.max_limit.min(u32::MAX as usize) as u32;
        }
        let local = self
            .run_relayed(
                &req,
                "geo",
                asked.access.as_ref(),
                relay.as_ref(),
                |s, p| s.geo_query(p, &asked),
                compute_geo,
            )
            .await?;
        self.fan_out_search(
            local,
            national,
            &q.areas,
            Reach::default(),
            |user| National {
                user,
                access: q.access.clone(),
                action: "search.geo.national",
                query: json!({"areas": areas_json(&q.areas), "match": q.r#match}),
                limit,
                all_areas,
                ranked: false,
                offset: q.offset as usize,
            },
            asked,
            |mut c, r| Box::pin(async move { c.geo_search(r).await }),
        )
        .await
    }

    async fn vrm_search(
        &self,
        req: Request<pb::VrmSearchRequest>,
    ) -> Result<Response<Self::VrmSearchStream>, Status> {
        let q = req.get_ref().clone();
        let relay = q.on_behalf_of.clone();
        let national = self.national_scope(&req, q.scope, relay.is_some()).await?;
        let limit = match self.limit(q.limit) {
            Ok(limit) => limit,
            Err(status) => return Err(self.refuse_early(&req, "vrm", status).await),
        };
        let mut asked = q.clone();
        if national.is_some() {
            asked.offset = 0;
            asked.limit = widen(limit, q.offset, self.max_limit);
        }
        let local = self
            .run_relayed(
                &req,
                "vrm",
                asked.access.as_ref(),
                relay.as_ref(),
                |s, p| s.vrm_query(p, &asked),
                compute_vrm,
            )
            .await?;
        // Paging is applied to the merged ranking: every node returns its
        // first offset + limit rows.
        self.fan_out_search(
            local,
            national,
            &[],
            Reach::in_window(window_of(&q.from, &q.to)),
            |user| National {
                user,
                access: q.access.clone(),
                action: "search.vrm.national",
                query: json!({"pattern": q.pattern, "fuzzy": q.fuzzy, "max_edits": q.max_edits}),
                limit,
                all_areas: None,
                ranked: true,
                offset: q.offset as usize,
            },
            asked,
            |mut c, r| Box::pin(async move { c.vrm_search(r).await }),
        )
        .await
    }

    async fn vehicle_search(
        &self,
        req: Request<pb::VehicleSearchRequest>,
    ) -> Result<Response<ChunkStream>, Status> {
        let q = req.get_ref().clone();
        let relay = q.on_behalf_of.clone();
        let national = self.national_scope(&req, q.scope, relay.is_some()).await?;
        let limit = match self.limit(q.limit) {
            Ok(limit) => limit,
            Err(status) => return Err(self.refuse_early(&req, "vehicle", status).await),
        };
        // As a geographic search: nationally, ALL is every node answering
        // ANY and the vehicles seen in every area kept here.
        let all_areas =
            (national.is_some() && q.r#match == pb::AreaMatch::All as i32 && !q.areas.is_empty())
                .then_some(q.areas.len());
        let mut asked = q.clone();
        if national.is_some() {
            asked.offset = 0;
            asked.limit = widen(limit, q.offset, self.max_limit);
        }
        if all_areas.is_some() {
            asked.r#match = pb::AreaMatch::Any as i32;
            asked.limit = self.max_limit.min(u32::MAX as usize) as u32;
        }
        let local = self
            .run_relayed(
                &req,
                "vehicle",
                asked.access.as_ref(),
                relay.as_ref(),
                |s, p| s.vehicle_query(p, &asked),
                compute_vehicle,
            )
            .await?;
        self.fan_out_search(
            local,
            national,
            &q.areas,
            Reach::in_window(window_of(&q.from, &q.to)),
            |user| National {
                user,
                access: q.access.clone(),
                action: "search.vehicle.national",
                query: json!({"make": q.make, "model": q.model, "colour": q.colour,
                    "areas": areas_json(&q.areas), "match": q.r#match}),
                limit,
                all_areas,
                ranked: false,
                offset: q.offset as usize,
            },
            asked,
            |mut c, r| Box::pin(async move { c.vehicle_search(r).await }),
        )
        .await
    }

    async fn camera_search(
        &self,
        req: Request<pb::CameraSearchRequest>,
    ) -> Result<Response<ChunkStream>, Status> {
        let q = req.get_ref().clone();
        let relay = q.on_behalf_of.clone();
        let national = self.national_scope(&req, q.scope, relay.is_some()).await?;
        let limit = match self.limit(q.limit) {
            Ok(limit) => limit,
            Err(status) => return Err(self.refuse_early(&req, "camera", status).await),
        };
        let mut asked = q.clone();
        if national.is_some() {
            asked.offset = 0;
            asked.limit = widen(limit, q.offset, self.max_limit);
        }
        let local = self
            .run_relayed(
                &req,
                "camera",
                asked.access.as_ref(),
                relay.as_ref(),
                |s, p| s.camera_query(p, &asked),
                compute_camera,
            )
            .await?;
        self.fan_out_search(
            local,
            national,
            &[],
            Reach {
                window: window_of(&q.from, &q.to),
                forces: Some(
                    q.cameras
                        .iter()
                        .filter_map(|c| ForceId::new(&c.force).ok())
                        .map(|f| f.to_string())
                        .collect(),
                ),
                ..Reach::default()
            },
            |user| National {
                user,
                access: q.access.clone(),
                action: "search.camera.national",
                all_areas: None,
                ranked: false,
                query: json!({"cameras": q.cameras.iter().map(|c| format!("{}:{}", c.force, c.camera_id)).collect::<Vec<_>>()}),
                limit,
                offset: q.offset as usize,
            },
            asked,
            |mut c, r| Box::pin(async move { c.camera_search(r).await }),
        )
        .await
    }

    type HeldReadsStream = ChunkStream;

    async fn held_reads(
        &self,
        req: Request<pb::HeldReadsRequest>,
    ) -> Result<Response<Self::HeldReadsStream>, Status> {
        let q = req.get_ref().clone();
        self.run(
            &req,
            "held_reads",
            q.access.as_ref(),
            |_, p| {
                p.query = json!({"case_ref": p.access.case_ref});
                // Only the case's members reach it (checked when planned).
                p.case.clone().ok_or_else(|| {
                    Status::internal("a held-reads request planned without its case")
                })
            },
            compute_held,
        )
        .await
    }

    type VrmTimelineStream = ChunkStream;

    async fn vrm_timeline(
        &self,
        req: Request<pb::VrmTimelineRequest>,
    ) -> Result<Response<Self::VrmTimelineStream>, Status> {
        let q = req.get_ref().clone();
        let relay = q.on_behalf_of.clone();
        let national = self.national_scope(&req, q.scope, relay.is_some()).await?;
        let local = self
            .run_relayed(
                &req,
                "vrm_timeline",
                q.access.as_ref(),
                relay.as_ref(),
                |s, p| s.timeline_query(p, &q),
                compute_timeline,
            )
            .await?;
        let limit = self.limit(q.limit)?;
        self.fan_out_search(
            local,
            national,
            &[],
            Reach::in_window(window_of(&q.from, &q.to)),
            |user| National {
                user,
                access: q.access.clone(),
                action: "search.vrm_timeline.national",
                query: json!({"vrm": q.vrm}),
                limit,
                all_areas: None,
                ranked: false,
                offset: 0,
            },
            q.clone(),
            |mut c, r| Box::pin(async move { c.vrm_timeline(r).await }),
        )
        .await
    }
}
