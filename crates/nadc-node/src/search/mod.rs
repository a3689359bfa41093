//! The Search service: structured searches, streamed in chunks, each row
//! with its provenance, and a summary at the end.
//!
//! This module is the wire adapter (the tonic trait, request to plan to
//! stream); the work is in its parts:
//! - `plan`: who asks and why (purpose, case, data-age tier, caps), the
//!   request validated and bounded for the audit, the windows permitted;
//! - `local`: a search of this node's store under a search worker,
//!   audited before its first row leaves and when it ends;
//! - `national`: the fan-out to peers and the exact merge of their pages;
//! - `analysis`: convoy and clones, governed as searches;
//! - `hotspots`: the Analysis service (hot spots and timing), governed as
//!   a search; `camera_health`, `alibi` (alibi and journey checks),
//!   `profile` (subject profiles) and `network` (associate networks, hop by
//!   hop over the convoy search) are its other analyses.

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use nadc_core::time::Clock;
use nadc_core::{ForceId, Timestamp};
use nadc_proto::{self as proto, pb};
use nadc_query::{QueryError, ResultSummary};
use nadc_store::Store;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::config::SearchCaps;
use crate::federation::{Federation, Reach, on_behalf_of};
use crate::governance::{Actor, Governance};
use crate::hotlists::HotlistRegistry;
use crate::workers::SearchWorkers;
use serde_json::json;

mod alibi;
mod analysis;
mod camera_health;
mod hotspots;

mod local;
mod national;
mod network;
mod pattern;
mod plan;
mod profile;
mod results;
mod sites;

use crate::error::ServiceError;
use analysis::{DEFAULT_COMPANIONS, compute_clones, compute_convoy};
pub use hotspots::AnalysisService;
use local::{
    compute_camera, compute_geo, compute_held, compute_timeline, compute_vehicle, compute_vrm,
};
use national::{National, skipped_outcome};
use plan::areas_json;

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
    /// The registered cameras (for the silent cameras of a summary).
    pub cameras: Arc<crate::cameras::CameraRegistry>,
    /// Replicated mode: the node's replica of the log (a search answered
    /// while it is behind says so).
    pub replication: Option<Arc<crate::replication::Replication>>,
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
        cameras: s.camera_count() as u64,
        elapsed_us,
        truncated: s.truncated,
        clipped_from: None,
        nodes: Vec::new(),
        partial: false,
        silent_cameras: Vec::new(),
        stale: Vec::new(),
    }
}

fn query_status(e: QueryError) -> Status {
    ServiceError::from(e).into()
}

fn rows_chunk(rows: Vec<pb::ReadRow>) -> pb::SearchChunk {
    pb::SearchChunk {
        chunk: Some(pb::search_chunk::Chunk::Rows(pb::RowBatch { rows })),
    }
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

fn required_time(
    t: Option<&prost_types::Timestamp>,
    what: &str,
) -> Result<Timestamp, ServiceError> {
    let t = t.ok_or_else(|| ServiceError::invalid(format!("{what} is required")))?;
    proto::from_pb_time(t)
        .ok_or_else(|| ServiceError::invalid(format!("{what} is outside 1970-01-01 to 9999-12-31")))
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
            federation.note_currency(&outcomes, &summary.stale);
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
            .unwrap_or_else(|e| {
                Err(ServiceError::Internal(format!("audit task failed: {e}")).into())
            });
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
        let (national, limit, mut asked) = self
            .paged(&req, "geo", q.scope, relay.is_some(), &q)
            .await?;
        // A national ALL search: every node answers ANY (all the areas'
        // reads, up to the node's maximum), and the vehicles seen in every
        // area, on whichever nodes, are kept here.
        let all_areas =
            (national.is_some() && q.r#match == pb::AreaMatch::All as i32).then_some(q.areas.len());
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
        let (national, limit, asked) = self
            .paged(&req, "vrm", q.scope, relay.is_some(), &q)
            .await?;
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
        let (national, limit, mut asked) = self
            .paged(&req, "vehicle", q.scope, relay.is_some(), &q)
            .await?;
        // As a geographic search: nationally, ALL is every node answering
        // ANY and the vehicles seen in every area kept here.
        let all_areas =
            (national.is_some() && q.r#match == pb::AreaMatch::All as i32 && !q.areas.is_empty())
                .then_some(q.areas.len());
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
        let (national, limit, asked) = self
            .paged(&req, "camera", q.scope, relay.is_some(), &q)
            .await?;
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
                    ServiceError::Internal("a held-reads request planned without its case".into())
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
