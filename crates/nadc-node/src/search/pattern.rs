//! The Analysis service's crime pattern analysis: "which vehicles were near
//! at least K of these incidents, within ±T and R metres". Planned and
//! governed as a search (purpose, case, every incident's window in the
//! tiers, radius and window caps), computed under a search worker in two
//! passes, each audited: the tally (the incidents each vehicle was near; no
//! read leaves) and the reads of the vehicles chosen, registered under the
//! case. Nationally every node tallies, the tallies are summed here, and
//! every node gives the reads of the vehicles chosen from the sum, so the
//! answer equals the same analysis on one node holding every read.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use nadc_core::audit::Outcome;
use nadc_core::geo::GeoPoint;
use nadc_core::{Timestamp, Vrm};
use nadc_proto::{self as proto, pb};
use nadc_query::pattern::{self, Incident, PatternQuery, Sighting, Tally};
use serde_json::json;
use tonic::{Request, Status};

use super::SearchService;
use super::alibi::{observed_ms, reads_per_force};
use super::national::{Concluded, PeersPart, gather};
use super::plan::{Plan, query_outcome};
use crate::cases::CaseId;
use crate::disclosure::CaseRead;
use crate::error::ServiceError;
use crate::governance::Actor;

/// Most incidents in one analysis.
const MAX_INCIDENTS: usize = 500;

/// The default nearness: metres and minutes either side.
const DEFAULT_RADIUS_M: f64 = 500.0;
const DEFAULT_WINDOW_MINUTES: u32 = 30;

/// Most minutes either side of an incident.
const MAX_WINDOW_MINUTES: u32 = 720;

/// Vehicles returned when the request names no limit.
const DEFAULT_VEHICLES: usize = 100;

/// Longest reference and type echoed back, bytes.
const MAX_REFERENCE: usize = 64;
const MAX_KIND: usize = 128;

/// What every answer says.
const CAVEATS: [&str; 3] = [
    "ANPR tracks a vehicle, not a person: a vehicle near several incidents says where it was \
     read, not who drove it or why.",
    "A vehicle that lives, works or commutes near the incidents is near many of them by \
     routine: weigh how often it is read there at other times (a subject profile) before \
     acting.",
    "A vehicle absent from the list may still have been there: cameras near an incident may \
     be missing or silent, and a read may be missed or misread.",
];

/// Which pass a node runs.
#[derive(Clone, Debug)]
enum Pass {
    /// The incidents each vehicle (of `only`, when named) was near.
    Tally { only: Option<BTreeSet<Vrm>> },
    /// The reads near the incidents of these vehicles.
    Reads { vrms: BTreeSet<Vrm> },
}

/// The request's parameters, checked (the windows are checked against the
/// tiers when planned).
struct Params {
    incidents: Vec<Incident>,
    radius_m: f64,
    window_ms: i64,
    min_incidents: usize,
    limit: usize,
    vrms: Option<BTreeSet<Vrm>>,
}

impl SearchService {
    fn pattern_params(&self, q: &pb::PatternRequest) -> Result<Params, ServiceError> {
        let n = q.incidents.len();
        if !(2..=MAX_INCIDENTS).contains(&n) {
            return Err(ServiceError::invalid(format!(
                "incidents: {n} given; 2 to {MAX_INCIDENTS} (for one, run a geographic search)"
            )));
        }
        let incidents = q
            .incidents
            .iter()
            .enumerate()
            .map(|(i, inc)| {
                let bad = |m: String| ServiceError::invalid(format!("incidents[{i}]: {m}"));
                for (what, text, max) in [
                    ("reference", &inc.reference, MAX_REFERENCE),
                    ("kind", &inc.kind, MAX_KIND),
                ] {
                    if text.len() > max {
                        return Err(bad(format!("{what}: at most {max} bytes")));
                    }
                    nadc_core::text::check_free_text(text)
                        .map_err(|e| bad(format!("{what}: {e}")))?;
                }
                let place = GeoPoint::new(inc.lat, inc.lon).map_err(|e| bad(e.to_string()))?;
                let at = super::required_time(inc.at.as_ref(), "at")
                    .map_err(|e| e.about(&format!("incidents[{i}]")))?;
                Ok(Incident { at, place })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let radius_m = match q.radius_m {
            0.0 => DEFAULT_RADIUS_M,
            r if r.is_finite() && r > 0.0 && r <= nadc_core::geo::MAX_RADIUS_M => r,
            r => {
                return Err(ServiceError::invalid(format!(
                    "radius_m {r}: above 0 and at most {} m",
                    nadc_core::geo::MAX_RADIUS_M
                )));
            }
        };
        if !q.allow_broad && radius_m > self.caps.max_radius_m {
            return Err(ServiceError::precondition(format!(
                "radius_m {radius_m:.0} is over this node's cap of {} m; narrow it or set allow_broad",
                self.caps.max_radius_m
            )));
        }
        let minutes = match q.window_minutes {
            0 => DEFAULT_WINDOW_MINUTES,
            m if m <= MAX_WINDOW_MINUTES => m,
            m => {
                return Err(ServiceError::invalid(format!(
                    "window_minutes {m}: at most {MAX_WINDOW_MINUTES} either side"
                )));
            }
        };
        let min_incidents = match q.min_incidents {
            0 => 2,
            1 => {
                return Err(ServiceError::invalid(
                    "min_incidents 1: at least 2 (vehicles near one incident: run a geographic search)",
                ));
            }
            k if k as usize > n => {
                return Err(ServiceError::invalid(format!(
                    "min_incidents {k}: more than the {n} incidents given"
                )));
            }
            k => k as usize,
        };
        let limit = match q.limit as usize {
            0 => DEFAULT_VEHICLES.min(self.max_limit),
            l if l <= self.max_limit => l,
            l => {
                return Err(ServiceError::precondition(format!(
                    "limit {l}: at most {} vehicles",
                    self.max_limit
                )));
            }
        };
        let vrms = if q.vrms.is_empty() {
            None
        } else {
            // A peer's second pass names the vehicles chosen (up to the
            // limit); a user names a few.
            let most = if q.on_behalf_of.is_some() {
                self.max_limit
            } else {
                self.caps.max_vrms
            };
            if q.vrms.len() > most {
                return Err(ServiceError::precondition(format!(
                    "vrms: {} named; at most {most}",
                    q.vrms.len()
                )));
            }
            Some(
                q.vrms
                    .iter()
                    .map(|v| {
                        Vrm::normalise(v)
                            .map_err(|e| ServiceError::invalid(format!("vrm {v:?}: {e}")))
                    })
                    .collect::<Result<BTreeSet<_>, _>>()?,
            )
        };
        Ok(Params {
            incidents,
            radius_m,
            window_ms: i64::from(minutes) * 60_000,
            min_incidents,
            limit,
            vrms,
        })
    }

    /// The request planned: the parameters, and the analysis with every
    /// incident's window permitted (clipped where the context asks).
    fn pattern_query(
        &self,
        plan: &mut Plan,
        q: &pb::PatternRequest,
        pass: &Pass,
    ) -> Result<(Pass, PatternQuery), ServiceError> {
        plan.query = json!({"incidents": q.incidents.len(), "radius_m": q.radius_m,
            "window_minutes": q.window_minutes, "min_incidents": q.min_incidents,
            "limit": q.limit, "vrms": q.vrms.len(), "allow_broad": q.allow_broad,
            "pass": match pass { Pass::Tally { .. } => "tally", Pass::Reads { .. } => "reads" },
            "first": q.incidents.iter().filter_map(|i| i.at.as_ref()).map(|t| (t.seconds, t.nanos)).min()
                .map(|(s, n)| proto::from_pb_time(&prost_types::Timestamp { seconds: s, nanos: n }).map(|t| t.to_string())),
            "last": q.incidents.iter().filter_map(|i| i.at.as_ref()).map(|t| (t.seconds, t.nanos)).max()
                .map(|(s, n)| proto::from_pb_time(&prost_types::Timestamp { seconds: s, nanos: n }).map(|t| t.to_string()))});
        plan.broad(q.allow_broad)?;
        let p = self.pattern_params(q)?;
        let windows = p
            .incidents
            .iter()
            .enumerate()
            .map(|(i, inc)| {
                self.check_window(
                    plan,
                    inc.at.plus_millis(-p.window_ms),
                    inc.at.plus_millis(p.window_ms),
                    &format!("incidents[{i}]"),
                    q.allow_broad,
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        let query = PatternQuery {
            incidents: p.incidents.clone(),
            windows,
            radius_m: p.radius_m,
            max_candidates: self.caps.max_candidates,
        };
        // The vehicles named narrow the tally; a peer's second pass reads
        // those it names.
        let pass = match pass {
            Pass::Tally { .. } => Pass::Tally { only: p.vrms },
            Pass::Reads { vrms } if vrms.is_empty() => Pass::Reads {
                vrms: p.vrms.ok_or_else(|| {
                    ServiceError::invalid(
                        "a relayed crime pattern analysis is a tally or names its vehicles",
                    )
                })?,
            },
            reads => reads.clone(),
        };
        Ok((pass, query))
    }

    /// Answers a crime pattern analysis (the Analysis service's): a peer's
    /// pass when relayed, else both passes here and, nationally, on every
    /// peer.
    pub(super) async fn pattern_of(
        &self,
        req: Request<pb::PatternRequest>,
    ) -> Result<pb::PatternResponse, Status> {
        let q = req.get_ref().clone();
        let relay = q.on_behalf_of.clone();
        if let Some(relay) = relay.as_ref() {
            // A peer's pass: the first, or the second for the vehicles it
            // names.
            let pass = if q.tally_only {
                Pass::Tally { only: None }
            } else {
                Pass::Reads {
                    vrms: BTreeSet::new(),
                }
            };
            return Ok(self.pass_here(&req, &q, Some(relay), pass).await?.0);
        }
        if q.tally_only {
            return Err(self
                .refuse_early(
                    &req,
                    "pattern",
                    ServiceError::invalid("tally_only is set only between nodes"),
                )
                .await);
        }
        let national = self.national_scope(&req, q.scope, false).await?;
        let started = Instant::now();
        // The first pass: here, then on every peer; summed.
        let (here, actor, case) = self
            .pass_here(&req, &q, None, Pass::Tally { only: None })
            .await?;
        let peers = national.as_ref().map(|(f, _)| f.peers.clone());
        let mut tally_q = q.clone();
        tally_q.tally_only = true;
        let tallies = match &national {
            Some((federation, user)) => {
                self.ask_peers(
                    federation,
                    &federation.peers,
                    user,
                    &tally_q,
                    |mut c, r| async move { c.crime_pattern(r).await },
                )
                .await
            }
            None => Vec::new(),
        };
        let (tally_parts, mut gathered) =
            gather(&self.node, here, tallies, |a| a.tallies.len() as u64);
        let nodes = &mut gathered.nodes;
        let mut sum = Tally::new();
        let mut reads_near_any = 0;
        // A peer's tally names incidents by index: one past the request's
        // incidents is a peer's mistake, and is not counted.
        let n = q.incidents.len() as u32;
        for part in &tally_parts {
            reads_near_any += part.reads_near_any;
            for t in &part.tallies {
                if let Ok(v) = Vrm::normalise(&t.vrm) {
                    sum.entry(v)
                        .or_default()
                        .extend(t.incidents.iter().copied().filter(|i| *i < n));
                }
            }
        }
        let params = self.pattern_params(&q).map_err(Status::from)?;
        let (chosen, qualified) = pattern::choose(&sum, params.min_incidents, params.limit);
        let chosen: BTreeSet<Vrm> = chosen.into_iter().collect();
        // The second pass, for the vehicles chosen (none: nothing to read).
        let mut parts = Vec::new();
        if !chosen.is_empty() {
            let (mine, _, _) = self
                .pass_here(
                    &req,
                    &q,
                    None,
                    Pass::Reads {
                        vrms: chosen.clone(),
                    },
                )
                .await?;
            parts.push(mine);
            if let Some((federation, user)) = &national {
                let mut reads_q = q.clone();
                reads_q.vrms = chosen.iter().map(|v| v.as_str().to_string()).collect();
                let answers = self
                    .ask_peers(
                        federation,
                        peers.as_deref().unwrap_or_default(),
                        user,
                        &reads_q,
                        |mut c, r| async move { c.crime_pattern(r).await },
                    )
                    .await;
                let mut peer_parts = Vec::new();
                for (node, answer, _) in answers {
                    match answer {
                        Ok(a) => {
                            if let Some(o) = nodes.iter_mut().find(|o| o.node == node) {
                                o.rows = a.reads.len() as u64;
                            }
                            peer_parts.push(a);
                        }
                        Err(e) => {
                            if let Some(o) = nodes.iter_mut().find(|o| o.node == node)
                                && o.ok
                            {
                                (o.ok, o.error) = (false, e);
                            }
                        }
                    }
                }
                self.audit_peers_part(
                    &actor,
                    case,
                    q.access.as_ref(),
                    "search.pattern.national",
                    json!({"national": true, "incidents": q.incidents.len(),
                        "vehicles": chosen.len()}),
                    PeersPart {
                        returned: reads_per_force(peer_parts.iter().flat_map(|p| &p.reads)),
                        reads: peer_parts
                            .iter()
                            .flat_map(|p| &p.reads)
                            .filter_map(CaseRead::of)
                            .collect(),
                    },
                )
                .await?;
                parts.extend(peer_parts);
            }
        }
        if let Some(o) = nodes.first_mut() {
            o.rows = parts.first().map_or(0, |p| p.reads.len() as u64);
        }
        let clipped = tally_parts
            .iter()
            .chain(&parts)
            .filter_map(|p| p.clipped_from)
            .min_by_key(|c| (c.seconds, c.nanos));
        let mut answer = answer_of(&params, merged_reads(parts));
        answer.qualified = qualified as u32;
        answer.truncated = qualified > answer.vehicles.len();
        answer.vehicles_near_any = sum.len() as u32;
        answer.reads_near_any = reads_near_any;
        answer.clipped_from = clipped;
        if national.is_none() {
            gathered.nodes.clear();
        }
        answer.conclude(gathered, &self.node, started);
        Ok(answer)
    }

    /// One pass of the analysis at this node, for the caller of `req` or
    /// the user a peer relays, planned, computed under a search worker and
    /// audited (the reads of the second pass registered under the case);
    /// with who asked and under which case.
    async fn pass_here(
        &self,
        req: &Request<pb::PatternRequest>,
        q: &pb::PatternRequest,
        relay: Option<&pb::OnBehalfOf>,
        pass: Pass,
    ) -> Result<(pb::PatternResponse, Actor, Option<CaseId>), Status> {
        let search = "pattern";
        let (mut plan, checked) = self
            .plan_relayed(req, search, q.access.as_ref(), relay)
            .await?;
        let (pass, query) = match checked.and_then(|()| self.pattern_query(&mut plan, q, &pass)) {
            Ok(planned) => planned,
            Err(e) => return Err(self.refuse(&plan, search, e).await),
        };
        let (actor, case) = (plan.actor.clone(), plan.case.clone());
        let answer = self
            .on_worker(plan, search, move |store, node, governance, plan| {
                let started = Instant::now();
                let mut answer = pb::PatternResponse {
                    node: node.to_string(),
                    clipped_from: plan.clipped_from.map(proto::to_pb_time),
                    ..Default::default()
                };
                let own = plan.actor.force.as_ref().map(|f| f.to_string());
                match pass {
                    Pass::Tally { only } => {
                        let result = pattern::tally(store, &query).map(|(mut t, near)| {
                            if let Some(only) = &only {
                                t.retain(|v, _| only.contains(v));
                            }
                            (t, near)
                        });
                        // No read leaves the first pass: which vehicles were
                        // near which incidents goes to the node asked only.
                        let outcome = result.as_ref().map_or_else(query_outcome, |_| Outcome::Ok);
                        governance.record_search_blocking(
                            plan.closing(search, Vec::new(), outcome),
                            plan.case.as_ref(),
                            &[],
                        )?;
                        let (tally, near) = result.map_err(super::query_status)?;
                        answer.reads_near_any = near;
                        answer.vehicles_near_any = tally.len() as u32;
                        answer.tallies = tally
                            .into_iter()
                            .map(|(v, i)| pb::PatternTally {
                                vrm: v.as_str().to_string(),
                                incidents: i.into_iter().collect(),
                            })
                            .collect();
                    }
                    Pass::Reads { vrms } => {
                        let result = pattern::reads_near(store, &query, &vrms);
                        let rows: Vec<pb::ReadRow> = match &result {
                            Ok((near, _)) => near
                                .iter()
                                .map(|n| {
                                    let mut row = proto::row_from_stored(&n.read, node);
                                    row.mou_consult =
                                        own.as_deref().is_some_and(|f| f != n.read.force.as_str());
                                    row
                                })
                                .collect(),
                            Err(_) => Vec::new(),
                        };
                        let outcome = result.as_ref().map_or_else(query_outcome, |_| Outcome::Ok);
                        let registered: Vec<CaseRead> =
                            rows.iter().filter_map(CaseRead::of).collect();
                        governance.record_search_blocking(
                            plan.closing(search, reads_per_force(rows.iter()), outcome),
                            plan.case.as_ref(),
                            &registered,
                        )?;
                        result.map_err(super::query_status)?;
                        answer.reads = rows;
                    }
                }
                answer.elapsed_us = started.elapsed().as_micros() as u64;
                Ok::<_, Status>(answer)
            })
            .await?;
        let mut answer = answer;
        answer.stale = self.stale_here();
        Ok((answer, actor, case))
    }
}

/// Every node's reads once each, in capture-time order.
fn merged_reads(parts: Vec<pb::PatternResponse>) -> Vec<pb::ReadRow> {
    let mut reads = BTreeMap::new();
    for part in parts {
        for r in part.reads {
            let p = r.provenance.clone().unwrap_or_default();
            reads
                .entry((observed_ms(&r), p.owning_force, p.bof_read_id))
                .or_insert(r);
        }
    }
    reads.into_values().collect()
}

/// The vehicles among `reads` near at least K incidents, ranked, with the
/// reads behind them (the reads of no vehicle shown are dropped).
fn answer_of(p: &Params, reads: Vec<pb::ReadRow>) -> pb::PatternResponse {
    let q = PatternQuery {
        windows: p
            .incidents
            .iter()
            .map(|i| {
                (
                    i.at.plus_millis(-p.window_ms),
                    i.at.plus_millis(p.window_ms),
                )
            })
            .collect(),
        incidents: p.incidents.clone(),
        radius_m: p.radius_m,
        max_candidates: 0,
    };
    let sightings: Vec<Sighting> = reads
        .iter()
        .filter_map(|r| {
            Some(Sighting {
                vrm: Vrm::normalise(&r.vrm).ok()?,
                place: GeoPoint::new(r.lat, r.lon).ok()?,
                at: Timestamp::from_millis(observed_ms(r)),
            })
        })
        .collect();
    // Rows that do not parse are left out of the ranking and the answer.
    let rows: Vec<&pb::ReadRow> = reads
        .iter()
        .filter(|r| Vrm::normalise(&r.vrm).is_ok() && GeoPoint::new(r.lat, r.lon).is_ok())
        .collect();
    let vehicles = pattern::vehicles(&q, &sightings, p.min_incidents);
    let vehicles: Vec<_> = vehicles.into_iter().take(p.limit).collect();
    // Only the reads behind the vehicles shown, renumbered.
    let mut kept: BTreeMap<usize, u32> = BTreeMap::new();
    for v in &vehicles {
        for r in &v.reads {
            kept.insert(*r, 0);
        }
    }
    for (n, slot) in kept.values_mut().enumerate() {
        *slot = n as u32;
    }
    pb::PatternResponse {
        reads: kept.keys().map(|i| rows[*i].clone()).collect(),
        vehicles: vehicles
            .iter()
            .map(|v| pb::PatternVehicle {
                vrm: v.vrm.as_str().to_string(),
                near: v
                    .incidents
                    .iter()
                    .zip(&v.nearest)
                    .map(|(i, (read, d, dt))| pb::PatternNear {
                        incident: *i,
                        read_index: kept[read],
                        distance_m: *d,
                        offset_s: *dt,
                    })
                    .collect(),
                read_indexes: v.reads.iter().map(|r| kept[r]).collect(),
            })
            .collect(),
        caveats: CAVEATS.iter().map(|c| c.to_string()).collect(),
        ..Default::default()
    }
}
