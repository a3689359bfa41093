//! The Analysis service: analyses for investigators and analysts, planned
//! and governed exactly as searches (purpose, case, data-age tier, caps,
//! audit), computed off the runtime under a search worker, and audited
//! with the reads they rest on registered under the case before the
//! answer leaves.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use nadc_core::ForceId;
use nadc_core::Vrm;
use nadc_proto::{self as proto, pb};
use nadc_query::QueryError;
use nadc_query::hotspots::{HOURS_OF_WEEK, HotSpotQuery, HotSpots, Subject, hot_spots};
use serde_json::json;
use tonic::{Request, Response, Status};
use tracing::{info, warn};

use super::analysis::force_counts;
use super::national::{gather, skipped_outcome};
use super::plan::{Plan, query_outcome, time_json};
use super::{SearchService, query_status, window_of};
use crate::alerts::hotlist_targets;
use crate::disclosure::CaseRead;
use crate::error::ServiceError;
use crate::federation::Reach;
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
        plan.query = json!({"vrms": q.vrms, "all_traffic": q.all_traffic,
            "make": q.make, "model": q.model, "colour": q.colour,
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
        let details = nadc_query::vehicle::Details {
            make: q.make.clone(),
            model: q.model.clone(),
            colour: q.colour.clone(),
        }
        .normalised();
        let traffic = q.all_traffic || !details.is_empty();
        let subject = match count {
            pb::HotSpotCount::Unspecified | pb::HotSpotCount::Reads if traffic => {
                if !vrms.is_empty() {
                    return Err(ServiceError::invalid(
                        "count either a subject's reads (VRMs, a hotlist) or traffic (all, or by make, model and colour), not both",
                    ));
                }
                Subject::Traffic(details)
            }
            pb::HotSpotCount::Unspecified | pb::HotSpotCount::Reads => {
                if vrms.is_empty() {
                    return Err(ServiceError::invalid(
                        "counting reads needs a subject (VRMs or a hotlist with active entries), all_traffic, or vehicle details",
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
        let (from, to) = self.analysis_window(
            plan,
            q.from.as_ref(),
            q.to.as_ref(),
            "hot-spot analysis",
            q.allow_broad,
        )?;
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
            utc: q.utc,
        })
    }
}

/// The clock hours of the week are counted in.
fn hours_in(utc: bool) -> &'static str {
    if utc { "UTC" } else { "Europe/London" }
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
        nodes: Vec::new(),
        partial: false,
        hours_in: String::new(),
        stale: Vec::new(),
    }
}

impl AnalysisService {
    /// Counts this node's reads for `plan` (under a search worker, off the
    /// runtime); the audit entry and the case register of the reads counted
    /// are durable before the answer is returned.
    async fn local(
        &self,
        plan: Plan,
        query: HotSpotQuery,
        search: &'static str,
    ) -> Result<pb::HotSpotsResponse, Status> {
        let resolution = u32::from(u8::from(query.resolution));
        let hours_in = hours_in(query.utc);
        self.0
            .on_worker(plan, search, move |store, node, governance, plan| {
                let started = Instant::now();
                let result = hot_spots(store, &query);
                let (returned, outcome, reads) = match &result {
                    Ok(h) => (
                        h.forces.iter().map(|(f, n)| (f.clone(), *n)).collect(),
                        Outcome::Ok,
                        h.reads
                            .iter()
                            .filter_map(|r| CaseRead::of(&proto::row_from_stored(r, node)))
                            .collect::<Vec<_>>(),
                    ),
                    Err(e) => (Vec::new(), query_outcome(e), Vec::new()),
                };
                // Nothing leaves before the audit entry and the case register
                // of the reads the counts rest on are durable.
                let entry = plan.closing(search, returned, outcome);
                governance.record_search_blocking(entry, plan.case.as_ref(), &reads)?;
                match result {
                    Ok(h) => {
                        let elapsed = started.elapsed().as_micros() as u64;
                        info!(user = %plan.actor.user, search, cells = h.cells_counted,
                        counted = h.total, elapsed_us = elapsed, "analysis done");
                        let mut pb = hotspots_to_pb(&h, node, resolution);
                        pb.hours_in = hours_in.to_string();
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
    }
}

/// Per owning force, the rows of `counts` summed (forces that do not parse
/// are a peer's mistake and are left out).
fn sum_forces<'a>(counts: impl Iterator<Item = &'a pb::ForceCount>) -> Vec<(ForceId, u64)> {
    let mut m = BTreeMap::<ForceId, u64>::new();
    for f in counts {
        if let Ok(force) = ForceId::new(&f.force) {
            *m.entry(force).or_default() += f.rows;
        }
    }
    m.into_iter().collect()
}

/// One cell summed over the nodes.
#[derive(Default)]
struct CellSum {
    lat: f64,
    lon: f64,
    count: u64,
    forces: BTreeMap<String, u64>,
    hours: Vec<u64>,
    cameras: BTreeSet<(String, String)>,
}

/// Sums the nodes' counts (each read is held by one node, so the sums are
/// exact), ranks the cells and keeps the first `limit`.
fn merge(parts: Vec<pb::HotSpotsResponse>, limit: usize) -> pb::HotSpotsResponse {
    fn add_hours(into: &mut [u64], from: &[u64]) {
        for (i, n) in into.iter_mut().zip(from) {
            *i += n;
        }
    }
    let mut out = pb::HotSpotsResponse {
        by_hour_of_week: vec![0; HOURS_OF_WEEK],
        ..Default::default()
    };
    let mut forces: BTreeMap<String, u64> = BTreeMap::new();
    let mut cells: BTreeMap<u64, CellSum> = BTreeMap::new();
    for part in parts {
        out.total += part.total;
        out.resolution = part.resolution;
        out.clipped_from = out.clipped_from.or(part.clipped_from);
        for f in &part.forces {
            *forces.entry(f.force.clone()).or_default() += f.rows;
        }
        add_hours(&mut out.by_hour_of_week, &part.by_hour_of_week);
        for c in part.cells {
            let into = cells.entry(c.cell).or_insert_with(|| CellSum {
                lat: c.lat,
                lon: c.lon,
                hours: vec![0; HOURS_OF_WEEK],
                ..CellSum::default()
            });
            into.count += c.count;
            for f in c.forces {
                *into.forces.entry(f.force).or_default() += f.rows;
            }
            add_hours(&mut into.hours, &c.by_hour_of_week);
            into.cameras
                .extend(c.cameras.into_iter().map(|k| (k.force, k.camera_id)));
        }
    }
    let counts = |m: BTreeMap<String, u64>| {
        m.into_iter()
            .map(|(force, rows)| pb::ForceCount { force, rows })
            .collect()
    };
    out.forces = counts(forces);
    out.cells_counted = cells.len() as u64;
    let mut ranked: Vec<(u64, CellSum)> = cells.into_iter().collect();
    ranked.sort_by(|(a, x), (b, y)| y.count.cmp(&x.count).then(a.cmp(b)));
    ranked.truncate(limit);
    out.cells = ranked
        .into_iter()
        .map(|(cell, c)| pb::HotSpotCell {
            cell,
            lat: c.lat,
            lon: c.lon,
            count: c.count,
            forces: counts(c.forces),
            by_hour_of_week: c.hours,
            cameras: c
                .cameras
                .into_iter()
                .map(|(force, camera_id)| pb::CameraRef { force, camera_id })
                .collect(),
        })
        .collect();
    out
}

#[tonic::async_trait]
impl pb::analysis_server::Analysis for AnalysisService {
    async fn camera_health(
        &self,
        req: Request<pb::CameraHealthRequest>,
    ) -> Result<Response<pb::CameraHealthResponse>, Status> {
        self.0.camera_health_of(req).await.map(Response::new)
    }

    async fn alibi(
        &self,
        req: Request<pb::AlibiRequest>,
    ) -> Result<Response<pb::AlibiResponse>, Status> {
        self.0.alibi_of(req).await.map(Response::new)
    }

    async fn associate_network(
        &self,
        req: Request<pb::NetworkRequest>,
    ) -> Result<Response<pb::NetworkResponse>, Status> {
        self.0.network_of(req).await.map(Response::new)
    }

    async fn camera_sites(
        &self,
        req: Request<pb::SitesRequest>,
    ) -> Result<Response<pb::SitesResponse>, Status> {
        self.0.sites_of(req).await.map(Response::new)
    }

    async fn results(
        &self,
        req: Request<pb::ResultsRequest>,
    ) -> Result<Response<pb::ResultsResponse>, Status> {
        self.0.results_of(req).await.map(Response::new)
    }

    async fn transparency(
        &self,
        req: Request<pb::TransparencyRequest>,
    ) -> Result<Response<pb::TransparencyResponse>, Status> {
        self.0.transparency_of(req).await.map(Response::new)
    }

    async fn crime_pattern(
        &self,
        req: Request<pb::PatternRequest>,
    ) -> Result<Response<pb::PatternResponse>, Status> {
        self.0.pattern_of(req).await.map(Response::new)
    }

    async fn subject_profile(
        &self,
        req: Request<pb::SubjectProfileRequest>,
    ) -> Result<Response<pb::SubjectProfileResponse>, Status> {
        self.0.profile_of(req).await.map(Response::new)
    }

    async fn hot_spots(
        &self,
        req: Request<pb::HotSpotsRequest>,
    ) -> Result<Response<pb::HotSpotsResponse>, Status> {
        let s = &self.0;
        let search = "hotspots";
        let q = req.get_ref().clone();
        let relay = q.on_behalf_of.clone();
        let national = s.national_scope(&req, q.scope, relay.is_some()).await?;
        // Nationally every node reports every cell: the ranking is made
        // here, from the sums.
        let mut asked = q.clone();
        if national.is_some() {
            asked.limit = s.max_limit.min(u32::MAX as usize) as u32;
        }
        let (mut plan, checked) = s
            .plan_relayed(&req, search, asked.access.as_ref(), relay.as_ref())
            .await?;
        let query = match checked.and_then(|()| s.hotspots_query(&mut plan, &asked)) {
            Ok(q) => q,
            Err(e) => return Err(s.refuse(&plan, search, e).await),
        };
        let limit = query.limit;
        let (case, actor) = (plan.case.clone(), plan.actor.clone());
        let started = Instant::now();
        let mut local = self.local(plan, query, search).await?;
        local.stale = s.stale_here();
        let Some((federation, user)) = national else {
            return Ok(Response::new(local));
        };
        let limit = match q.limit as usize {
            0 => DEFAULT_CELLS,
            n => n.min(limit),
        };
        let (peers, skipped) = federation
            .peers_for(&Reach::in_window(window_of(&q.from, &q.to)))
            .await;
        let answers = s
            .ask_peers(&federation, &peers, &user, &asked, |mut c, r| async move {
                c.hot_spots(r).await
            })
            .await;
        let (parts, mut gathered) = gather(&s.node, local, answers, |a| a.cells_counted);
        gathered
            .nodes
            .extend(skipped.into_iter().map(skipped_outcome));
        let peers_part = sum_forces(parts[1..].iter().flat_map(|p| &p.forces));
        s.audit_peers_part(
            &actor,
            case,
            q.access.as_ref(),
            "search.hotspots.national",
            json!({"national": true, "count": q.count, "resolution": q.resolution,
                "vrms": q.vrms.len(), "limit": q.limit}),
            super::national::PeersPart {
                returned: peers_part,
                reads: Vec::new(),
            },
        )
        .await?;
        let mut answer = merge(parts, limit);
        answer.hours_in = hours_in(q.utc).to_string();
        answer.partial = gathered.nodes.iter().any(|o| !o.ok);
        answer.nodes = gathered.nodes;
        answer.stale = gathered.stale;
        answer.node = s.node.clone();
        answer.elapsed_us = started.elapsed().as_micros() as u64;
        Ok(Response::new(answer))
    }
}
