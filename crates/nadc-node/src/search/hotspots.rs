//! The Analysis service: analyses for investigators and analysts, planned
//! and governed exactly as searches (purpose, case, data-age tier, caps,
//! audit), computed off the runtime under a search worker, and audited
//! with the reads they rest on registered under the case before the
//! answer leaves.

use std::collections::BTreeSet;
use std::time::Instant;

use nadc_core::Vrm;
use nadc_proto::{self as proto, pb};
use nadc_query::QueryError;
use nadc_query::hotspots::{HotSpotQuery, HotSpots, Subject, hot_spots};
use serde_json::json;
use tonic::{Request, Response, Status};
use tracing::{info, warn};

use super::analysis::force_counts;
use super::plan::{Plan, time_json};
use super::{SearchService, query_status, required_time};
use crate::alerts::hotlist_targets;
use crate::disclosure::CaseRead;
use crate::error::ServiceError;
use nadc_core::audit::Outcome;

/// Cells in a hot-spot ranking when the request names no limit.
const DEFAULT_CELLS: usize = 100;

/// The default resolution of hot-spot cells (~5 km²).
const DEFAULT_RESOLUTION: u32 = 7;

/// The Analysis service: the search service's planning and governance,
/// serving analyses.
#[derive(Clone)]
pub struct AnalysisService(pub SearchService);

impl SearchService {
    fn hotspots_query(
        &self,
        plan: &mut Plan,
        q: &pb::HotSpotsRequest,
    ) -> Result<HotSpotQuery, ServiceError> {
        let count = pb::HotSpotCount::try_from(q.count)
            .map_err(|_| ServiceError::invalid(format!("count {} is unknown", q.count)))?;
        plan.query = json!({"vrms": q.vrms,
            "hotlist": q.hotlist.as_ref().map(|h| format!("{}/{}", h.owner, h.name)),
            "count": count.as_str_name(), "resolution": q.resolution,
            "from": time_json(q.from.as_ref()), "to": time_json(q.to.as_ref()),
            "limit": q.limit, "allow_broad": q.allow_broad});
        plan.broad(q.allow_broad)?;
        let force = plan
            .actor
            .force
            .clone()
            .ok_or_else(|| ServiceError::denied("an analysis needs a force user"))?;
        let resolution = match q.resolution {
            0 => DEFAULT_RESOLUTION,
            r => r,
        };
        let resolution = u8::try_from(resolution)
            .ok()
            .filter(|r| *r <= 10)
            .and_then(|r| h3o::Resolution::try_from(r).ok())
            .ok_or_else(|| {
                ServiceError::invalid(format!(
                    "resolution {resolution}: H3 resolutions 0 to 10 (reads are indexed at 10)"
                ))
            })?;
        let mut vrms = q
            .vrms
            .iter()
            .map(|v| {
                Vrm::normalise(v).map_err(|e| ServiceError::invalid(format!("vrm {v:?}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if vrms.len() > self.caps.max_vrms {
            return Err(ServiceError::precondition(format!(
                "{} VRMs named; at most {} an analysis",
                vrms.len(),
                self.caps.max_vrms
            )));
        }
        let now = self.clock.now();
        if let Some(list) = q.hotlist.as_ref().filter(|l| !l.name.trim().is_empty()) {
            vrms.extend(hotlist_targets(&self.hotlists, list, &force, now)?);
        }
        let subject = match count {
            pb::HotSpotCount::Unspecified | pb::HotSpotCount::Reads => {
                if vrms.is_empty() {
                    return Err(ServiceError::invalid(
                        "counting reads needs a subject: VRMs or a hotlist with active entries",
                    ));
                }
                Subject::Reads(vrms)
            }
            pb::HotSpotCount::Hits | pb::HotSpotCount::VerifiedHits => Subject::Hits {
                force,
                verified: count == pb::HotSpotCount::VerifiedHits,
                vrms: vrms.into_iter().collect::<BTreeSet<_>>(),
            },
        };
        let from = match q.from.as_ref() {
            Some(t) => required_time(Some(t), "from")?,
            None => now.plus_millis(-24 * 3_600_000),
        };
        let to = match q.to.as_ref() {
            Some(t) => required_time(Some(t), "to")?,
            None => now,
        };
        let (from, to) = self.check_window(plan, from, to, "hot-spot analysis", q.allow_broad)?;
        Ok(HotSpotQuery {
            subject,
            from,
            to,
            resolution,
            limit: match q.limit as usize {
                0 => DEFAULT_CELLS,
                n => n.min(self.max_limit),
            },
            max_reads: self.caps.max_candidates,
        })
    }
}

fn hotspots_to_pb(h: &HotSpots, node: &str, resolution: u32) -> pb::HotSpotsResponse {
    pb::HotSpotsResponse {
        cells: h
            .cells
            .iter()
            .map(|c| {
                let (lat, lon) = h3o::CellIndex::try_from(c.cell)
                    .map(|cell| {
                        let ll = h3o::LatLng::from(cell);
                        (ll.lat(), ll.lng())
                    })
                    .unwrap_or_default();
                pb::HotSpotCell {
                    cell: c.cell,
                    lat,
                    lon,
                    count: c.count,
                    forces: force_counts(&c.forces),
                    by_hour_of_week: c.by_hour_of_week.clone(),
                    cameras: c
                        .cameras
                        .iter()
                        .map(|(f, id)| pb::CameraRef {
                            force: f.to_string(),
                            camera_id: id.clone(),
                        })
                        .collect(),
                }
            })
            .collect(),
        by_hour_of_week: h.by_hour_of_week.clone(),
        total: h.total,
        forces: force_counts(&h.forces),
        cells_counted: h.cells_counted,
        resolution,
        node: node.to_string(),
        clipped_from: None,
        elapsed_us: 0,
    }
}

#[tonic::async_trait]
impl pb::analysis_server::Analysis for AnalysisService {
    async fn hot_spots(
        &self,
        req: Request<pb::HotSpotsRequest>,
    ) -> Result<Response<pb::HotSpotsResponse>, Status> {
        let s = &self.0;
        let search = "hotspots";
        let (mut plan, checked) = s
            .plan_relayed(&req, search, req.get_ref().access.as_ref(), None)
            .await?;
        let query = match checked.and_then(|()| s.hotspots_query(&mut plan, req.get_ref())) {
            Ok(q) => q,
            Err(e) => return Err(s.refuse(&plan, search, e).await),
        };
        let worker = match s.workers.acquire(&plan.user_key()).await {
            Ok(w) => w,
            Err(status) => return Err(s.refuse(&plan, search, status.into()).await),
        };
        let resolution = u32::from(u8::from(query.resolution));
        let (store, node, governance) = (s.store.clone(), s.node.clone(), s.governance.clone());
        let answer = tokio::task::spawn_blocking(move || {
            let _worker = worker;
            let started = Instant::now();
            let result = hot_spots(store.as_ref(), &query);
            let (returned, outcome, reads) = match &result {
                Ok(h) => (
                    h.forces.iter().map(|(f, n)| (f.clone(), *n)).collect(),
                    Outcome::Ok,
                    h.reads
                        .iter()
                        .filter_map(|r| CaseRead::of(&proto::row_from_stored(r, &node)))
                        .collect::<Vec<_>>(),
                ),
                Err(QueryError::Store(e)) => {
                    (Vec::new(), Outcome::Failed(e.to_string()), Vec::new())
                }
                Err(e) => (Vec::new(), Outcome::Refused(e.to_string()), Vec::new()),
            };
            // Nothing leaves before the audit entry and the case register
            // of the reads the counts rest on are durable.
            let entry = governance.entry(
                &plan.actor,
                &format!("search.{search}"),
                &plan.audited(returned),
                outcome,
            );
            governance.record_search_blocking(entry, plan.case.as_ref(), &reads)?;
            match result {
                Ok(h) => {
                    let elapsed = started.elapsed().as_micros() as u64;
                    info!(user = %plan.actor.user, search, cells = h.cells_counted,
                        counted = h.total, elapsed_us = elapsed, "analysis done");
                    let mut pb = hotspots_to_pb(&h, &node, resolution);
                    pb.clipped_from = plan.clipped_from.map(proto::to_pb_time);
                    pb.elapsed_us = elapsed;
                    Ok(pb)
                }
                Err(e) => {
                    if matches!(e, QueryError::Store(_)) {
                        warn!(search, error = %e, "analysis failed");
                    }
                    Err(query_status(e))
                }
            }
        })
        .await
        .map_err(|e| {
            Status::from(ServiceError::internal(format!("analysis task failed: {e}")))
        })??;
        Ok(Response::new(answer))
    }
}
