//! The Analysis service's camera positioning: planned and audited as an
//! analysis (purpose, case; the hits' window in the tiers; the reads the
//! hit counts rest on registered under the case, as hot spots do). Each
//! node gives its hits per cell and the fixed cameras the caller may see;
//! the node asked weighs them with the incidents and road links given and
//! ranks the sites (`nadc_query::sites`).

use std::collections::BTreeMap;
use std::time::Instant;

use nadc_core::GeoPoint;
use nadc_core::audit::Outcome;
use nadc_proto::{self as proto, pb};
use nadc_query::hotspots::{HotSpotQuery, Subject, hot_spots};
use nadc_query::sites::{Density, SiteKind, SiteQuery, cell_of, hot, sites};
use serde_json::json;
use tonic::{Request, Status};

use super::SearchService;
use super::national::{Concluded, PeersPart, alone, gather};
use super::plan::{query_outcome, time_json};
use crate::disclosure::CaseRead;
use crate::error::ServiceError;

const MAX_INCIDENTS: usize = 5_000;
const MAX_LINKS: usize = 10_000;
const MAX_POINTS: usize = 100_000;
/// Longest road links in all, metres (walked in 50 m steps).
const MAX_LINK_M: f64 = 20_000_000.0;
const MAX_HOT: u32 = 500;
const MAX_SITES: u32 = 500;
const MAX_DISTANCE_M: f64 = 20_000.0;

/// A request's parameters and geometry, checked.
struct Asked {
    query: SiteQuery,
    incidents: Vec<GeoPoint>,
    links: Vec<Vec<GeoPoint>>,
}

fn asked(q: &pb::SitesRequest) -> Result<Asked, ServiceError> {
    let resolution = match q.resolution {
        0 => 8,
        r => r,
    };
    let resolution = u8::try_from(resolution)
        .ok()
        .filter(|r| (6..=10).contains(r))
        .and_then(|r| h3o::Resolution::try_from(r).ok())
        .ok_or_else(|| ServiceError::invalid(format!("resolution {resolution}: 6 to 10")))?;
    let hot_cells = match q.hot_cells {
        0 => 20,
        n if n <= MAX_HOT => n,
        n => {
            return Err(ServiceError::invalid(format!(
                "hot_cells {n}: at most {MAX_HOT}"
            )));
        }
    };
    let min_distance_m = match q.min_distance_m {
        0.0 => 1_000.0,
        d if d.is_finite() && d > 0.0 && d <= MAX_DISTANCE_M => d,
        d => {
            return Err(ServiceError::invalid(format!(
                "min_distance_m {d}: above 0 and at most {MAX_DISTANCE_M}"
            )));
        }
    };
    let limit = match q.limit {
        0 => 50,
        n if n <= MAX_SITES => n,
        n => {
            return Err(ServiceError::invalid(format!(
                "limit {n}: at most {MAX_SITES}"
            )));
        }
    };
    if q.incidents.len() > MAX_INCIDENTS {
        return Err(ServiceError::invalid(format!(
            "incidents: {} given; at most {MAX_INCIDENTS}",
            q.incidents.len()
        )));
    }
    let incidents = q
        .incidents
        .iter()
        .enumerate()
        .map(|(i, x)| {
            GeoPoint::new(x.lat, x.lon)
                .map_err(|e| ServiceError::invalid(format!("incidents[{i}]: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if q.links.len() > MAX_LINKS {
        return Err(ServiceError::invalid(format!(
            "links: {} given; at most {MAX_LINKS}",
            q.links.len()
        )));
    }
    let points: usize = q.links.iter().map(|l| l.lat.len()).sum();
    if points > MAX_POINTS {
        return Err(ServiceError::invalid(format!(
            "links: {points} points in all; at most {MAX_POINTS}"
        )));
    }
    let links = q
        .links
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let bad = |m: String| ServiceError::invalid(format!("links[{i}]: {m}"));
            if l.lat.len() != l.lon.len() || l.lat.len() < 2 {
                return Err(bad(format!(
                    "{} latitudes and {} longitudes: two or more points, one of each per point",
                    l.lat.len(),
                    l.lon.len()
                )));
            }
            nadc_core::text::check_free_text(&l.name).map_err(|e| bad(format!("name: {e}")))?;
            l.lat
                .iter()
                .zip(&l.lon)
                .map(|(lat, lon)| GeoPoint::new(*lat, *lon).map_err(|e| bad(e.to_string())))
                .collect()
        })
        .collect::<Result<Vec<_>, _>>()?;
    // A peer is asked for its hits and cameras only.
    let length: f64 = links
        .iter()
        .flat_map(|l: &Vec<GeoPoint>| {
            l.windows(2)
                .map(|w| nadc_core::geo::haversine_m(w[0], w[1]))
        })
        .sum();
    if length > MAX_LINK_M {
        return Err(ServiceError::invalid(format!(
            "links: {:.0} km in all; at most {:.0} km",
            length / 1000.0,
            MAX_LINK_M / 1000.0
        )));
    }
    if !q.count_hits && incidents.is_empty() && q.on_behalf_of.is_none() {
        return Err(ServiceError::invalid(
            "nothing to weigh: give incidents, or count_hits, or both",
        ));
    }
    Ok(Asked {
        query: SiteQuery {
            resolution,
            hot_cells: hot_cells as usize,
            min_distance_m,
            limit: limit as usize,
        },
        incidents,
        links,
    })
}

impl SearchService {
    /// Answers camera positioning: every node's hits and cameras (this
    /// node's only when relayed), weighed and ranked here.
    pub(super) async fn sites_of(
        &self,
        req: Request<pb::SitesRequest>,
    ) -> Result<pb::SitesResponse, Status> {
        let q = req.get_ref().clone();
        let relay = q.on_behalf_of.clone();
        let national = self.national_scope(&req, q.scope, relay.is_some()).await?;
        let started = Instant::now();
        let (mut here, actor, case) = self.sites_here(&req, relay.as_ref()).await?;
        here.stale = self.stale_here();
        if relay.is_some() {
            return Ok(here);
        }
        let (parts, gathered) = match &national {
            Some((federation, user)) => {
                // The peers need the window and resolution, not the
                // geometry.
                let mut ask = q.clone();
                ask.incidents.clear();
                ask.links.clear();
                let answers = self
                    .ask_peers(
                        federation,
                        &federation.peers,
                        user,
                        &ask,
                        |mut c, r| async move { c.camera_sites(r).await },
                    )
                    .await;
                let (parts, gathered) = gather(&self.node, here, answers, |a| a.cells.len() as u64);
                self.audit_peers_part(
                    &actor,
                    case,
                    q.access.as_ref(),
                    "search.sites.national",
                    json!({"national": true, "count_hits": q.count_hits,
                        "from": time_json(q.from.as_ref()), "to": time_json(q.to.as_ref()),
                        "cells": parts[1..].iter().map(|p| p.cells.len()).sum::<usize>(),
                        "cameras": parts[1..].iter().map(|p| p.cameras.len()).sum::<usize>()}),
                    PeersPart {
                        returned: Vec::new(),
                        reads: Vec::new(),
                    },
                )
                .await?;
                (parts, gathered)
            }
            None => alone(here),
        };
        let a = asked(&q).map_err(Status::from)?;
        // Walking the links is work: off the runtime.
        let mut answer = tokio::task::spawn_blocking(move || rank(parts, &a))
            .await
            .map_err(|e| Status::from(ServiceError::internal(format!("ranking failed: {e}"))))?;
        for site in &mut answer.sites {
            if site.kind == pb::SiteKind::RoadCrossing as i32 {
                site.link = q.links[site.link_index as usize].name.clone();
            }
        }
        answer.conclude(gathered, &self.node, started);
        Ok(answer)
    }

    /// This node's part: its hits per cell (if asked) and the fixed cameras
    /// the caller may see, audited.
    async fn sites_here(
        &self,
        req: &Request<pb::SitesRequest>,
        relay: Option<&pb::OnBehalfOf>,
    ) -> Result<
        (
            pb::SitesResponse,
            crate::governance::Actor,
            Option<crate::cases::CaseId>,
        ),
        Status,
    > {
        let search = "sites";
        let q = req.get_ref();
        let (mut plan, checked) = self
            .plan_relayed(req, search, q.access.as_ref(), relay)
            .await?;
        plan.query = json!({"incidents": q.incidents.len(), "links": q.links.len(),
            "count_hits": q.count_hits, "from": time_json(q.from.as_ref()),
            "to": time_json(q.to.as_ref()), "resolution": q.resolution,
            "hot_cells": q.hot_cells, "min_distance_m": q.min_distance_m,
            "allow_broad": q.allow_broad});
        let planned = checked.and_then(|()| {
            plan.broad(q.allow_broad)?;
            let a = asked(q)?;
            let hits = if q.count_hits {
                let force = plan
                    .actor
                    .force
                    .clone()
                    .ok_or_else(|| ServiceError::denied("counting hits needs a force user"))?;
                let (from, to) = self.analysis_window(
                    &mut plan,
                    q.from.as_ref(),
                    q.to.as_ref(),
                    "camera positioning",
                    q.allow_broad,
                )?;
                Some(HotSpotQuery {
                    subject: Subject::Hits {
                        force,
                        verified: false,
                        vrms: Default::default(),
                    },
                    from,
                    to,
                    resolution: a.query.resolution,
                    limit: usize::MAX,
                    max_reads: self.caps.max_candidates,
                    utc: true,
                })
            } else {
                None
            };
            Ok(hits)
        });
        let hits = match planned {
            Ok(h) => h,
            Err(e) => return Err(self.refuse(&plan, search, e).await),
        };
        let cameras: Vec<pb::CameraPlace> = self
            .visible_cameras(&plan, |c| !c.kind.moves())
            .into_iter()
            .map(|c| pb::CameraPlace {
                camera: Some(pb::CameraRef {
                    force: c.force.to_string(),
                    camera_id: c.camera_id.clone(),
                }),
                lat: c.position.lat(),
                lon: c.position.lon(),
            })
            .collect();
        let (actor, case) = (plan.actor.clone(), plan.case.clone());
        let answer = self
            .on_worker(plan, search, move |store, node, governance, plan| {
                let mut plan = plan;
                // The cameras weighed (positions) are disclosed with the hits.
                plan.note_cameras(
                    cameras
                        .iter()
                        .filter_map(|c| c.camera.as_ref())
                        .map(|c| c.force.as_str()),
                );
                let result = match &hits {
                    Some(h) => hot_spots(store, h).map(Some),
                    None => Ok(None),
                };
                let (returned, outcome, reads) = match &result {
                    Ok(Some(h)) => (
                        h.forces.iter().map(|(f, n)| (f.clone(), *n)).collect(),
                        Outcome::Ok,
                        h.reads
                            .iter()
                            .filter_map(|r| CaseRead::of(&proto::row_from_stored(r, node)))
                            .collect::<Vec<_>>(),
                    ),
                    Ok(None) => (Vec::new(), Outcome::Ok, Vec::new()),
                    Err(e) => (Vec::new(), query_outcome(e), Vec::new()),
                };
                governance.record_search_blocking(
                    plan.closing(search, returned, outcome),
                    plan.case.as_ref(),
                    &reads,
                )?;
                let counted = result.map_err(super::query_status)?;
                Ok::<_, Status>(pb::SitesResponse {
                    cells: counted
                        .as_ref()
                        .map(|h| {
                            h.cells
                                .iter()
                                .map(|c| pb::SiteCell {
                                    cell: c.cell,
                                    incidents: 0,
                                    hits: c.count,
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                    hits_counted: counted.as_ref().map_or(0, |h| h.total),
                    cameras_considered: cameras.len() as u32,
                    cameras,
                    node: node.to_string(),
                    ..Default::default()
                })
            })
            .await?;
        Ok((answer, actor, case))
    }
}

/// Every node's part weighed with the request's incidents and links, and
/// the sites ranked.
fn rank(parts: Vec<pb::SitesResponse>, a: &Asked) -> pb::SitesResponse {
    let mut densities: BTreeMap<u64, Density> = BTreeMap::new();
    for p in &a.incidents {
        densities
            .entry(cell_of(*p, a.query.resolution))
            .or_default()
            .incidents += 1;
    }
    let mut cameras: BTreeMap<(String, String), GeoPoint> = BTreeMap::new();
    let mut hits_counted = 0;
    for part in &parts {
        hits_counted += part.hits_counted;
        for c in &part.cells {
            densities.entry(c.cell).or_default().hits += c.hits;
        }
        for c in &part.cameras {
            let r = c.camera.clone().unwrap_or_default();
            if let Ok(p) = GeoPoint::new(c.lat, c.lon) {
                cameras.insert((r.force, r.camera_id), p);
            }
        }
    }
    let refs: Vec<&(String, String)> = cameras.keys().collect();
    let places: Vec<GeoPoint> = cameras.values().copied().collect();
    let found = sites(&densities, &places, &a.links, &a.query);
    pb::SitesResponse {
        sites: found
            .iter()
            .map(|s| {
                let (kind, link_index) = match s.kind {
                    SiteKind::Cell => (pb::SiteKind::Cell, 0),
                    SiteKind::Crossing { link } => (pb::SiteKind::RoadCrossing, link as u32),
                };
                pb::CameraSite {
                    kind: kind as i32,
                    cell: s.cell,
                    lat: s.place.lat(),
                    lon: s.place.lon(),
                    incidents: s.density.incidents,
                    hits: s.density.hits,
                    nearest: s.nearest.map(|(i, _)| pb::CameraRef {
                        force: refs[i].0.clone(),
                        camera_id: refs[i].1.clone(),
                    }),
                    nearest_m: s.nearest.map_or(0.0, |(_, d)| d),
                    link_index,
                    link: String::new(),
                }
            })
            .collect(),
        hot: hot(&densities, a.query.hot_cells)
            .into_iter()
            .map(|(cell, d)| pb::SiteCell {
                cell,
                incidents: d.incidents,
                hits: d.hits,
            })
            .collect(),
        hits_counted,
        cameras_considered: places.len() as u32,
        ..Default::default()
    }
}
