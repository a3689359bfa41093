//! The Analysis service's alibi and journey checks: planned and governed as
//! a search (purpose, case; the span of the vehicle's reads and the
//! cameras' baselines checked against the tiers), the evidence gathered
//! under a search worker (the vehicle's reads around the claims, and the
//! coverage of the cameras at each place), audited with the reads it
//! discloses registered under the case. Nationally every node gives its
//! evidence and the node asked judges the whole.

use std::collections::BTreeMap;
use std::time::Instant;

use nadc_core::audit::Outcome;
use nadc_core::geo::GeoPoint;
use nadc_core::{CameraKind, ForceId, Timestamp, Vrm};
use nadc_proto::{self as proto, pb};
use nadc_query::QueryError;
use nadc_query::alibi::{Claim, Judged, Sighting, Verdict, judge, leg};
use nadc_query::camera_health::{HealthQuery, camera_health};
use nadc_query::timeline;
use serde_json::json;
use tonic::{Request, Status};

use super::SearchService;
use super::camera_health::{DEFAULT_BASELINE_DAYS, health_row};
use super::national::{Concluded, gather};
use super::plan::{Plan, query_outcome};
use crate::cases::CaseId;
use crate::disclosure::CaseRead;
use crate::error::ServiceError;
use crate::governance::Actor;

/// A place's radius when the claim names none, metres.
const DEFAULT_RADIUS_M: f64 = 500.0;
/// The widest place, metres.
const MAX_RADIUS_M: f64 = 10_000.0;
/// Claims in one check.
const MAX_CLAIMS: usize = 50;
/// The speed no vehicle is assumed to exceed when none is named, km/h.
const DEFAULT_MAX_SPEED_KMH: f64 = 160.0;
/// Coverage is judged over each claim's window widened by this much each
/// side: "was the camera reading other vehicles then", even for a claimed
/// instant.
const COVERAGE_MARGIN_MS: i64 = 15 * 60_000;
/// Hours of reads weighed around the claims when none are named.
const DEFAULT_AROUND_HOURS: u32 = 24;
/// The most hours around the claims.
const MAX_AROUND_HOURS: u32 = 168;
/// The longest camera baseline, days.
const MAX_BASELINE_DAYS: u32 = 90;
/// Cameras judged over all claims, unless `allow_broad`.
const MAX_CAMERAS: usize = 500;

/// What every answer says, whatever its verdicts.
const CAVEATS: [&str; 3] = [
    "ANPR reads a vehicle's plate, not a person: no read says who was driving or inside.",
    "The absence of a read does not exclude presence: cameras miss vehicles (lane, angle, \
     an obscured or misread plate), and a place without a working camera is not covered.",
    "A read of a cloned or misread plate is a read of another vehicle: check the reads that \
     decide a verdict (their images) before relying on it.",
];

/// A planned alibi or journey check.
pub(super) struct AlibiQuery {
    vrm: Vrm,
    claims: Vec<Claim>,
    /// The span of the vehicle's reads weighed.
    from: Timestamp,
    to: Timestamp,
    baseline_days: u32,
    limit: usize,
    /// Per claim, the cameras within its radius that the caller may see.
    cameras: Vec<Vec<nadc_core::Camera>>,
}

/// The claims of a request, checked.
pub(super) fn claims_of(q: &pb::AlibiRequest) -> Result<Vec<Claim>, ServiceError> {
    if q.claims.is_empty() {
        return Err(ServiceError::invalid(
            "claims: at least one place and window is needed",
        ));
    }
    if q.claims.len() > MAX_CLAIMS {
        return Err(ServiceError::invalid(format!(
            "claims: {} named; at most {MAX_CLAIMS}",
            q.claims.len()
        )));
    }
    q.claims
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let bad = |m: String| ServiceError::invalid(format!("claims[{i}]: {m}"));
            let place = GeoPoint::new(c.lat, c.lon).map_err(|e| bad(e.to_string()))?;
            let radius_m = match c.radius_m {
                0.0 => DEFAULT_RADIUS_M,
                r if r.is_finite() && r > 0.0 && r <= MAX_RADIUS_M => r,
                r => {
                    return Err(bad(format!(
                        "radius_m {r}: above 0 and at most {MAX_RADIUS_M} m"
                    )));
                }
            };
            let from = super::required_time(c.from.as_ref(), "from")
                .map_err(|e| e.about(&format!("claims[{i}]")))?;
            let to = super::required_time(c.to.as_ref(), "to")
                .map_err(|e| e.about(&format!("claims[{i}]")))?;
            if from > to {
                return Err(bad(format!(
                    "the window is inverted (from {from} is after to {to})"
                )));
            }
            Ok(Claim {
                place,
                radius_m,
                from,
                to,
            })
        })
        .collect::<Result<Vec<Claim>, ServiceError>>()
        .and_then(|claims| {
            // A journey's places are in time order.
            match claims.windows(2).position(|w| w[1].from < w[0].from) {
                Some(i) => Err(ServiceError::invalid(format!(
                    "claims[{}]: a journey's places must be in time order (it starts before \
                     claims[{i}])",
                    i + 1
                ))),
                None => Ok(claims),
            }
        })
}

/// The request's maximum speed, checked.
fn max_speed(q: &pb::AlibiRequest) -> Result<f64, ServiceError> {
    match q.max_speed_kmh {
        0.0 => Ok(DEFAULT_MAX_SPEED_KMH),
        s if s.is_finite() && s > 0.0 && s <= 1_000.0 => Ok(s),
        s => Err(ServiceError::invalid(format!(
            "max_speed_kmh {s}: above 0 and at most 1000"
        ))),
    }
}

impl SearchService {
    fn alibi_query(
        &self,
        plan: &mut Plan,
        q: &pb::AlibiRequest,
    ) -> Result<AlibiQuery, ServiceError> {
        plan.query = json!({"vrm": q.vrm, "claims": q.claims.len(),
            "places": q.claims.iter().take(MAX_CLAIMS).map(|c| json!({
                "lat": c.lat, "lon": c.lon, "radius_m": c.radius_m,
                "from": super::plan::time_json(c.from.as_ref()),
                "to": super::plan::time_json(c.to.as_ref())})).collect::<Vec<_>>(),
            "max_speed_kmh": q.max_speed_kmh, "around_hours": q.around_hours,
            "baseline_days": q.baseline_days, "allow_broad": q.allow_broad});
        plan.broad(q.allow_broad)?;
        let vrm = Vrm::normalise(&q.vrm).map_err(|e| ServiceError::invalid(format!("vrm: {e}")))?;
        let claims = claims_of(q)?;
        max_speed(q)?;
        let around = match q.around_hours {
            0 => DEFAULT_AROUND_HOURS,
            h if h <= MAX_AROUND_HOURS => h,
            h => {
                return Err(ServiceError::invalid(format!(
                    "around_hours {h}: at most {MAX_AROUND_HOURS}"
                )));
            }
        };
        let baseline_days = match q.baseline_days {
            0 => DEFAULT_BASELINE_DAYS,
            d if d < 7 => {
                return Err(ServiceError::invalid(format!(
                    "baseline_days {d}: at least 7 (one of each hour of the week)"
                )));
            }
            d if d > MAX_BASELINE_DAYS => {
                return Err(ServiceError::invalid(format!(
                    "baseline_days {d}: at most {MAX_BASELINE_DAYS}"
                )));
            }
            d => d,
        };
        let first = claims
            .iter()
            .map(|c| c.from)
            .min()
            .unwrap_or(Timestamp::EPOCH);
        let last = claims
            .iter()
            .map(|c| c.to)
            .max()
            .unwrap_or(Timestamp::EPOCH);
        let around_ms = i64::from(around) * 3_600_000;
        // The vehicle's reads around the claims, and the cameras' baselines
        // before them: both must lie in the tiers and under the window cap.
        let (from, to) = self.check_window(
            plan,
            first.plus_millis(-around_ms),
            last.plus_millis(around_ms),
            "alibi check: the reads around the claims",
            q.allow_broad,
        )?;
        // The baseline, clipped or not, never reaches past the tier: a
        // clipped one is shortened (at least a week is needed), and the
        // answer's `clipped_from` speaks of the reads alone.
        let reads_clipped = plan.clipped_from;
        let wanted = first.plus_millis(-i64::from(baseline_days) * 86_400_000 - COVERAGE_MARGIN_MS);
        let (base_from, _) = self.check_window(
            plan,
            wanted,
            last.plus_millis(COVERAGE_MARGIN_MS),
            "alibi check: the cameras' baselines and the claims",
            q.allow_broad,
        )?;
        plan.clipped_from = reads_clipped;
        let permitted_days =
            (first.millis() - COVERAGE_MARGIN_MS - base_from.millis()).div_euclid(86_400_000);
        let baseline_days = baseline_days.min(u32::try_from(permitted_days.max(0)).unwrap_or(0));
        if baseline_days < 7 {
            return Err(ServiceError::precondition(format!(
                "alibi check: only {baseline_days} days of baseline before the claims are \
                 permitted; camera coverage needs at least 7"
            )));
        }
        let own = plan.actor.force.clone();
        let registered = self
            .store
            .cameras(None)
            .map_err(|e| ServiceError::unavailable(format!("cameras: {e}")))?;
        let cameras: Vec<Vec<nadc_core::Camera>> = claims
            .iter()
            .map(|c| {
                registered
                    .iter()
                    // Another force's covert cameras are its own business;
                    // a moving camera's registered place is only its base.
                    .filter(|k| k.kind != CameraKind::Covert || Some(&k.force) == own.as_ref())
                    .filter(|k| !k.kind.moves())
                    .filter(|k| k.position.within_m(c.place, c.radius_m))
                    .cloned()
                    .collect()
            })
            .collect();
        let judged: usize = cameras.iter().map(Vec::len).sum();
        if judged > MAX_CAMERAS && !q.allow_broad {
            return Err(ServiceError::precondition(format!(
                "alibi check: {judged} cameras within the claims' radii (over all claims); at \
                 most {MAX_CAMERAS}: narrow the radii or set allow_broad"
            )));
        }
        Ok(AlibiQuery {
            vrm,
            claims,
            from,
            to,
            baseline_days,
            limit: self.max_limit,
            cameras,
        })
    }

    /// Answers an alibi or journey check (the Analysis service's): the
    /// evidence of this node, and nationally of every peer, judged whole.
    pub(super) async fn alibi_of(
        &self,
        req: Request<pb::AlibiRequest>,
    ) -> Result<pb::AlibiResponse, Status> {
        let q = req.get_ref().clone();
        let relay = q.on_behalf_of.clone();
        let national = self.national_scope(&req, q.scope, relay.is_some()).await?;
        let started = Instant::now();
        let (mut answer, actor, case) = self.alibi_here(&req, relay.as_ref()).await?;
        answer.stale = self.stale_here();
        let Some((federation, user)) = national else {
            return Ok(answer);
        };
        let answers = self
            .ask_peers(
                &federation,
                &federation.peers,
                &user,
                &q,
                |mut c, r| async move { c.alibi(r).await },
            )
            .await;
        let (parts, gathered) = gather(&self.node, answer, answers, |a| a.reads.len() as u64);
        // What the peers disclosed (the vehicle's reads, per owning force)
        // is audited here before it is passed on.
        let peers_part = reads_per_force(parts[1..].iter().flat_map(|p| &p.reads));
        self.audit_peers_part(
            &actor,
            case,
            q.access.as_ref(),
            "search.alibi.national",
            json!({"national": true, "claims": q.claims.len()}),
            super::national::PeersPart {
                returned: peers_part,
                // The peers' reads, registered under the case here too.
                reads: parts[1..]
                    .iter()
                    .flat_map(|p| &p.reads)
                    .filter_map(CaseRead::of)
                    .collect(),
            },
        )
        .await?;
        // The claims held at this node, so they parse.
        let claims = claims_of(&q).map_err(Status::from)?;
        let mut answer = merge(parts, claims.len());
        judge_into(&mut answer, &claims, max_speed(&q).map_err(Status::from)?);
        answer.conclude(gathered, &self.node, started);
        Ok(answer)
    }

    /// This node's evidence judged, for the caller of `req` or the user a
    /// peer relays; with who asked and under which case.
    async fn alibi_here(
        &self,
        req: &Request<pb::AlibiRequest>,
        relay: Option<&pb::OnBehalfOf>,
    ) -> Result<(pb::AlibiResponse, Actor, Option<CaseId>), Status> {
        let search = "alibi";
        let (mut plan, checked) = self
            .plan_relayed(req, search, req.get_ref().access.as_ref(), relay)
            .await?;
        let query = match checked.and_then(|()| self.alibi_query(&mut plan, req.get_ref())) {
            Ok(q) => q,
            Err(e) => return Err(self.refuse(&plan, search, e).await),
        };
        let speed = max_speed(req.get_ref()).map_err(Status::from)?;
        let (actor, case) = (plan.actor.clone(), plan.case.clone());
        let answer = self
            .on_worker(plan, search, move |store, node, governance, plan| {
                let mut plan = plan;
                let started = Instant::now();
                let own = plan.actor.force.as_ref().map(|f| f.to_string());
                let result = evidence(store, &query, node, own.as_deref());
                if let Ok(a) = &result {
                    plan.note_cameras(
                        a.claims
                            .iter()
                            .flat_map(|c| &c.cameras)
                            .map(|c| c.force.as_str()),
                    );
                }
                // What it discloses: the vehicle's reads, per owning force,
                // registered under the case.
                let (returned, outcome, reads) = match &result {
                    Ok(a) => (
                        reads_per_force(a.reads.iter()),
                        Outcome::Ok,
                        a.reads.iter().filter_map(CaseRead::of).collect::<Vec<_>>(),
                    ),
                    Err(e) => (Vec::new(), query_outcome(e), Vec::new()),
                };
                governance.record_search_blocking(
                    plan.closing(search, returned, outcome),
                    plan.case.as_ref(),
                    &reads,
                )?;
                let mut answer = result.map_err(super::query_status)?;
                judge_into(&mut answer, &query.claims, speed);
                answer.clipped_from = plan.clipped_from.map(proto::to_pb_time);
                answer.elapsed_us = started.elapsed().as_micros() as u64;
                Ok::<_, Status>(answer)
            })
            .await?;
        Ok((answer, actor, case))
    }
}

/// A read in the heap of those nearest a claim, ordered by nothing (the
/// heap orders by distance, then sequence number, both unique enough).
struct Keep(nadc_core::StoredRead);

impl PartialEq for Keep {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for Keep {}
impl PartialOrd for Keep {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Keep {
    fn cmp(&self, _: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}

/// This node's evidence: the vehicle's reads in the span, and per claim
/// the coverage of the cameras at its place. Not yet judged.
fn evidence(
    store: &dyn nadc_store::Store,
    q: &AlibiQuery,
    node: &str,
    own_force: Option<&str>,
) -> Result<pb::AlibiResponse, QueryError> {
    // Past the limit, the reads nearest in time to a claim are kept: they
    // are what the verdicts turn on.
    let distance = |t: Timestamp| {
        q.claims
            .iter()
            .map(|c| {
                if t < c.from {
                    c.from.millis() - t.millis()
                } else if t > c.to {
                    t.millis() - c.to.millis()
                } else {
                    0
                }
            })
            .min()
            .unwrap_or(0)
    };
    let mut nearest: std::collections::BinaryHeap<(i64, u64, Keep)> =
        std::collections::BinaryHeap::new();
    let mut seen = 0usize;
    timeline(store, &q.vrm, q.from, q.to, usize::MAX, &mut |r| {
        seen += 1;
        nearest.push((distance(r.read.observed_at), r.seq, Keep(r)));
        if nearest.len() > q.limit {
            nearest.pop();
        }
        std::ops::ControlFlow::Continue(())
    })?;
    let mut kept: Vec<nadc_core::StoredRead> = nearest.into_iter().map(|(_, _, k)| k.0).collect();
    kept.sort_by_key(|r| (r.read.observed_at, r.seq));
    let reads: Vec<pb::ReadRow> = kept
        .iter()
        .map(|r| {
            let mut row = proto::row_from_stored(r, node);
            row.mou_consult = own_force.is_some_and(|f| f != r.force.as_str());
            row
        })
        .collect();
    let mut claims = Vec::with_capacity(q.claims.len());
    for (i, (claim, cameras)) in q.claims.iter().zip(&q.cameras).enumerate() {
        let rows = camera_health(
            store,
            &HealthQuery {
                cameras: cameras.clone(),
                from: claim.from.plus_millis(-COVERAGE_MARGIN_MS),
                to: claim.to.plus_millis(COVERAGE_MARGIN_MS),
                baseline_days: q.baseline_days,
            },
        )?;
        claims.push(pb::ClaimResult {
            claim: i as u32,
            cameras: rows.iter().map(health_row).collect(),
            ..Default::default()
        });
    }
    Ok(pb::AlibiResponse {
        reads,
        claims,
        truncated: seen > q.limit,
        node: node.to_string(),
        ..Default::default()
    })
}

/// Read rows per owning force (a force that does not parse is a peer's
/// mistake and is left out).
pub(super) fn reads_per_force<'a>(
    rows: impl Iterator<Item = &'a pb::ReadRow>,
) -> Vec<(ForceId, u64)> {
    super::camera_health::count_by_force(rows.filter_map(|r| {
        r.provenance
            .as_ref()
            .and_then(|p| ForceId::new(&p.owning_force).ok())
    }))
}

/// When a row was read, in milliseconds (rows without a time sort first).
pub(super) fn observed_ms(r: &pb::ReadRow) -> i64 {
    r.provenance
        .as_ref()
        .and_then(|p| p.observed_at.as_ref())
        .and_then(proto::from_pb_time)
        .map_or(i64::MIN, Timestamp::millis)
}

/// The nodes' evidence as one: every read once, in capture-time order;
/// per claim every camera once.
fn merge(parts: Vec<pb::AlibiResponse>, claims: usize) -> pb::AlibiResponse {
    let mut reads = BTreeMap::new();
    let mut cameras: Vec<BTreeMap<(String, String), pb::CameraHealthRow>> =
        vec![BTreeMap::new(); claims];
    let mut truncated = false;
    let mut clipped: Option<prost_types::Timestamp> = None;
    for part in parts {
        truncated |= part.truncated;
        // The earliest start any node clipped its reads to.
        if let Some(c) = part.clipped_from
            && clipped.is_none_or(|e| (c.seconds, c.nanos) < (e.seconds, e.nanos))
        {
            clipped = Some(c);
        }
        for r in part.reads {
            let p = r.provenance.clone().unwrap_or_default();
            reads
                .entry((observed_ms(&r), p.owning_force, p.bof_read_id))
                .or_insert(r);
        }
        for c in part.claims {
            if let Some(into) = cameras.get_mut(c.claim as usize) {
                for k in c.cameras {
                    into.entry((k.force.clone(), k.camera_id.clone()))
                        .or_insert(k);
                }
            }
        }
    }
    pb::AlibiResponse {
        reads: reads.into_values().collect(),
        claims: cameras
            .into_iter()
            .enumerate()
            .map(|(i, c)| pb::ClaimResult {
                claim: i as u32,
                cameras: c.into_values().collect(),
                ..Default::default()
            })
            .collect(),
        truncated,
        clipped_from: clipped,
        ..Default::default()
    }
}

/// Judges every claim of `answer` from its reads and its claims' cameras,
/// and every leg between consecutive claims.
fn judge_into(answer: &mut pb::AlibiResponse, claims: &[Claim], max_speed_kmh: f64) {
    // A row without a valid position (a peer's mistake) cannot be weighed,
    // and is dropped, so indexes name the rows weighed.
    answer.reads.retain(|r| GeoPoint::new(r.lat, r.lon).is_ok());
    let sightings: Vec<Sighting> = answer
        .reads
        .iter()
        .filter_map(|r| {
            Some(Sighting {
                at: Timestamp::from_millis(observed_ms(r)),
                place: GeoPoint::new(r.lat, r.lon).ok()?,
            })
        })
        .collect();
    for result in &mut answer.claims {
        let Some(claim) = claims.get(result.claim as usize) else {
            continue;
        };
        let reading = result.cameras.iter().filter(|c| c.reads > 0).count();
        let j = judge(claim, &sightings, reading, max_speed_kmh);
        result.statement = statement(&j, claim, result.cameras.len(), reading);
        let idx = |v: &[usize]| v.iter().map(|i| *i as u32).collect::<Vec<_>>();
        result.verdict = match j.verdict {
            Verdict::SeenThere => pb::AlibiVerdict::SeenThere,
            Verdict::NotPossible => pb::AlibiVerdict::NotPossible,
            Verdict::PossibleUnseen => pb::AlibiVerdict::PossibleUnseen,
            Verdict::PossibleNoCoverage => pb::AlibiVerdict::PossibleNoCoverage,
        } as i32;
        result.possible = j
            .possible
            .iter()
            .map(|(a, b)| pb::TimeSpan {
                from: Some(proto::to_pb_time(*a)),
                to: Some(proto::to_pb_time(*b)),
            })
            .collect();
        result.before = j.before.map(|i| i as u32);
        result.after = j.after.map(|i| i as u32);
        result.at_place = idx(&j.at_place);
        result.elsewhere = idx(&j.elsewhere);
        result.ruled_out_by = idx(&j.ruled_out_by);
    }
    answer.legs = claims
        .windows(2)
        .enumerate()
        .map(|(i, pair)| {
            let (distance_m, required_kmh) = leg(&pair[0], &pair[1]);
            pb::LegResult {
                from_claim: i as u32,
                to_claim: i as u32 + 1,
                distance_m,
                required_kmh: if required_kmh.is_finite() {
                    required_kmh
                } else {
                    f64::MAX
                },
                possible: required_kmh <= max_speed_kmh,
            }
        })
        .collect();
    answer.caveats = CAVEATS.iter().map(|c| c.to_string()).collect();
    answer.max_speed_kmh = max_speed_kmh;
}

/// A verdict in words, with what it cannot say.
fn statement(j: &Judged, claim: &Claim, cameras: usize, reading: usize) -> String {
    let place = format!("within {:.0} m of {}", claim.radius_m, claim.place);
    match j.verdict {
        Verdict::SeenThere => format!(
            "Read {place} during the window ({} read(s)): the vehicle was there; who was in it \
             ANPR cannot say.",
            j.at_place.len()
        ),
        Verdict::NotPossible => format!(
            "Not possible at the maximum speed: {} read(s) elsewhere leave no moment of the \
             window from which the vehicle could have reached {place} and been read where it \
             was. Check those reads (a cloned or misread plate is another vehicle).",
            j.ruled_out_by.len()
        ),
        Verdict::PossibleUnseen => format!(
            "Possible, not read: {reading} of the {cameras} camera(s) {place} were reading \
             other vehicles then and did not read this one. That weighs against presence but \
             does not exclude it: cameras miss vehicles."
        ),
        Verdict::PossibleNoCoverage => format!(
            "Possible, and ANPR cannot say: no camera you may see {place} was reading then \
             ({cameras} there, none working). The absence of a read does not exclude \
             presence where coverage was missing."
        ),
    }
}
