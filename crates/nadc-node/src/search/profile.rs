//! The Analysis service's subject profile: planned and governed as a
//! search (purpose, case, the period in the tiers and under the window
//! cap), the evidence gathered under a search worker (the vehicle's reads
//! in the period, and the cameras registered near where it was read),
//! audited with the reads registered under the case. Nationally every node
//! gives its evidence and the node asked profiles the whole.

use std::collections::BTreeMap;
use std::time::Instant;

use nadc_core::audit::Outcome;
use nadc_core::geo::GeoPoint;
use nadc_core::{Timestamp, Vrm};
use nadc_proto::{self as proto, pb};
use nadc_query::profile::{Profile, ProfileQuery, Sighting, profile};
use nadc_query::{QueryError, timeline};
use serde_json::json;
use tonic::{Request, Status};

use super::SearchService;
use super::national::{Concluded, gather};
use super::plan::{Plan, query_outcome, time_json};
use crate::cases::CaseId;
use crate::disclosure::CaseRead;
use crate::error::ServiceError;
use crate::governance::Actor;

/// Cameras this close to a location's centre are listed with it, metres.
const CAMERAS_NEAR_M: f64 = 1_000.0;

/// What every profile says.
const CAVEATS: [&str; 3] = [
    "ANPR tracks a vehicle, not a person: the profile says where the vehicle was read, not \
     who drove it.",
    "Camera coverage shapes the profile: a place without cameras never appears, and a usual \
     location is where cameras read the vehicle often (the cameras near each are listed).",
    "A location visited outside the pattern may be a previously unknown location of interest, \
     or a misread or cloned plate: check its reads before acting.",
];

/// A planned profile.
pub(super) struct ProfileAsked {
    vrm: Vrm,
    from: Timestamp,
    to: Timestamp,
    query: ProfileQuery,
    limit: usize,
}

fn params(q: &pb::SubjectProfileRequest) -> Result<ProfileQuery, ServiceError> {
    let resolution = match q.resolution {
        0 => 8,
        r => r,
    };
    let resolution = u8::try_from(resolution)
        .ok()
        .filter(|r| (6..=10).contains(r))
        .and_then(|r| h3o::Resolution::try_from(r).ok())
        .ok_or_else(|| ServiceError::invalid(format!("resolution {resolution}: 6 to 10")))?;
    let gap = match q.trip_gap_minutes {
        0 => 30,
        m if m <= 24 * 60 => m,
        m => {
            return Err(ServiceError::invalid(format!(
                "trip_gap_minutes {m}: at most a day (1440)"
            )));
        }
    };
    Ok(ProfileQuery {
        resolution,
        trip_gap_ms: i64::from(gap) * 60_000,
        min_days: q.min_days.max(2),
    })
}

impl SearchService {
    fn profile_query(
        &self,
        plan: &mut Plan,
        q: &pb::SubjectProfileRequest,
    ) -> Result<ProfileAsked, ServiceError> {
        plan.query = json!({"vrm": q.vrm, "from": time_json(q.from.as_ref()),
            "to": time_json(q.to.as_ref()), "resolution": q.resolution,
            "trip_gap_minutes": q.trip_gap_minutes, "min_days": q.min_days,
            "allow_broad": q.allow_broad});
        plan.broad(q.allow_broad)?;
        let vrm = Vrm::normalise(&q.vrm).map_err(|e| ServiceError::invalid(format!("vrm: {e}")))?;
        let query = params(q)?;
        let from = super::required_time(q.from.as_ref(), "from")?;
        let to = super::required_time(q.to.as_ref(), "to")?;
        let (from, to) = self.check_window(plan, from, to, "subject profile", q.allow_broad)?;
        Ok(ProfileAsked {
            vrm,
            from,
            to,
            query,
            limit: self.max_limit,
        })
    }

    /// Answers a subject profile (the Analysis service's): this node's
    /// evidence, and nationally every peer's, profiled whole.
    pub(super) async fn profile_of(
        &self,
        req: Request<pb::SubjectProfileRequest>,
    ) -> Result<pb::SubjectProfileResponse, Status> {
        let q = req.get_ref().clone();
        let relay = q.on_behalf_of.clone();
        let national = self.national_scope(&req, q.scope, relay.is_some()).await?;
        let started = Instant::now();
        let (mut answer, actor, case, cameras) = self.profile_here(&req, relay.as_ref()).await?;
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
                |mut c, r| async move { c.subject_profile(r).await },
            )
            .await;
        let (parts, gathered) = gather(&self.node, answer, answers, |a| a.reads.len() as u64);
        let peers_part = super::alibi::reads_per_force(parts[1..].iter().flat_map(|p| &p.reads));
        self.audit_peers_part(
            &actor,
            case,
            q.access.as_ref(),
            "search.profile.national",
            json!({"national": true, "from": time_json(q.from.as_ref()),
                "to": time_json(q.to.as_ref())}),
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
        // Every node's reads once each, in time order; the cameras each
        // node named near its locations, by cell.
        let mut reads = BTreeMap::new();
        let mut named: Named = BTreeMap::new();
        let mut truncated = false;
        let mut clipped: Option<prost_types::Timestamp> = None;
        for part in parts {
            truncated |= part.truncated;
            if let Some(c) = part.clipped_from
                && clipped.is_none_or(|e| (c.seconds, c.nanos) < (e.seconds, e.nanos))
            {
                clipped = Some(c);
            }
            for l in &part.locations {
                named.entry(l.cell).or_default().extend(
                    l.cameras_near
                        .iter()
                        .map(|c| (c.force.clone(), c.camera_id.clone())),
                );
            }
            for r in part.reads {
                let p = r.provenance.clone().unwrap_or_default();
                reads
                    .entry((super::alibi::observed_ms(&r), p.owning_force, p.bof_read_id))
                    .or_insert(r);
            }
        }
        let params = params(&q).map_err(Status::from)?;
        let mut answer = answer_of(reads.into_values().collect(), &params, &cameras, &named);
        answer.truncated = truncated;
        answer.clipped_from = clipped;
        answer.conclude(gathered, &self.node, started);
        Ok(answer)
    }

    /// This node's evidence profiled, for the caller of `req` or the user a
    /// peer relays; with who asked, under which case, and the cameras near
    /// where the vehicle was read.
    async fn profile_here(
        &self,
        req: &Request<pb::SubjectProfileRequest>,
        relay: Option<&pb::OnBehalfOf>,
    ) -> Result<
        (
            pb::SubjectProfileResponse,
            Actor,
            Option<CaseId>,
            Vec<NearCamera>,
        ),
        Status,
    > {
        let search = "profile";
        let (mut plan, checked) = self
            .plan_relayed(req, search, req.get_ref().access.as_ref(), relay)
            .await?;
        let asked = match checked.and_then(|()| self.profile_query(&mut plan, req.get_ref())) {
            Ok(q) => q,
            Err(e) => return Err(self.refuse(&plan, search, e).await),
        };
        // The cameras the caller may see, for those near each location.
        let cameras: Vec<NearCamera> = self
            .visible_cameras(&plan, |c| !c.kind.moves())
            .into_iter()
            .map(|c| (c.force.to_string(), c.camera_id.clone(), c.position))
            .collect();
        let (actor, case) = (plan.actor.clone(), plan.case.clone());
        let near = cameras.clone();
        let answer = self
            .on_worker(plan, search, move |store, node, governance, plan| {
                let mut plan = plan;
                let started = Instant::now();
                let own = plan.actor.force.as_ref().map(|f| f.to_string());
                let result = reads_of(store, &asked, node, own.as_deref());
                let (returned, outcome, reads) = match &result {
                    Ok((rows, _)) => (
                        super::alibi::reads_per_force(rows.iter()),
                        Outcome::Ok,
                        rows.iter().filter_map(CaseRead::of).collect::<Vec<_>>(),
                    ),
                    Err(e) => (Vec::new(), query_outcome(e), Vec::new()),
                };
                // The profile, so the cameras it names are audited with it.
                let answer = result.map(|(rows, truncated)| {
                    let mut a = answer_of(rows, &asked.query, &near, &Named::new());
                    a.truncated = truncated;
                    a
                });
                if let Ok(a) = &answer {
                    let named: std::collections::BTreeSet<(&str, &str)> = a
                        .locations
                        .iter()
                        .flat_map(|l| &l.cameras_near)
                        .map(|c| (c.force.as_str(), c.camera_id.as_str()))
                        .collect();
                    plan.note_cameras(named.into_iter().map(|(f, _)| f));
                }
                governance.record_search_blocking(
                    plan.closing(search, returned, outcome),
                    plan.case.as_ref(),
                    &reads,
                )?;
                let mut answer = answer.map_err(super::query_status)?;
                answer.node = node.to_string();
                answer.clipped_from = plan.clipped_from.map(proto::to_pb_time);
                answer.elapsed_us = started.elapsed().as_micros() as u64;
                Ok::<_, Status>(answer)
            })
            .await?;
        Ok((answer, actor, case, cameras))
    }
}

/// A registered camera: force, id, position.
type NearCamera = (String, String, GeoPoint);

/// Cameras the peers named near their locations, by cell.
type Named = BTreeMap<u64, std::collections::BTreeSet<(String, String)>>;

/// The vehicle's reads in the period, as rows, and whether they stopped at
/// the limit.
fn reads_of(
    store: &dyn nadc_store::Store,
    q: &ProfileAsked,
    node: &str,
    own_force: Option<&str>,
) -> Result<(Vec<pb::ReadRow>, bool), QueryError> {
    let mut rows = Vec::new();
    let (summary, _) = timeline(store, &q.vrm, q.from, q.to, q.limit, &mut |r| {
        let mut row = proto::row_from_stored(&r, node);
        row.mou_consult = own_force.is_some_and(|f| f != r.force.as_str());
        rows.push(row);
        std::ops::ControlFlow::Continue(())
    })?;
    Ok((rows, summary.truncated))
}

/// The profile of `reads` (in capture-time order) on the wire, with the
/// cameras of `cameras` near each location, those `named` by the peers for
/// it, and those that read the vehicle there.
fn answer_of(
    reads: Vec<pb::ReadRow>,
    q: &ProfileQuery,
    cameras: &[NearCamera],
    named: &Named,
) -> pb::SubjectProfileResponse {
    let sightings: Vec<Sighting> = reads
        .iter()
        .map(|r| Sighting {
            at: Timestamp::from_millis(super::alibi::observed_ms(r)),
            place: GeoPoint::new(r.lat, r.lon)
                .unwrap_or_else(|_| GeoPoint::new(0.0, 0.0).expect("the origin is a position")),
        })
        .collect();
    let p: Profile = profile(&sightings, q);
    let idx = |v: &[usize]| v.iter().map(|i| *i as u32).collect::<Vec<_>>();
    let centre = nadc_core::geo::cell_centre;
    let locations = p
        .locations
        .iter()
        .map(|l| {
            let c = centre(l.cell);
            let mut near: Vec<pb::CameraRef> = cameras
                .iter()
                .filter(|(_, _, at)| c.is_some_and(|c| at.within_m(c, CAMERAS_NEAR_M)))
                .map(|(force, id, _)| (force.clone(), id.clone()))
                .chain(named.get(&l.cell).into_iter().flatten().cloned())
                .map(|(force, camera_id)| pb::CameraRef { force, camera_id })
                .collect();
            // The cameras that read the vehicle here are near it too.
            for i in &l.reads {
                if let Some(p) = reads[*i].provenance.as_ref() {
                    near.push(pb::CameraRef {
                        force: p.owning_force.clone(),
                        camera_id: p.camera_id.clone(),
                    });
                }
            }
            near.sort_by(|a, b| (&a.force, &a.camera_id).cmp(&(&b.force, &b.camera_id)));
            near.dedup();
            pb::ProfileLocation {
                cell: l.cell,
                lat: c.map_or(0.0, GeoPoint::lat),
                lon: c.map_or(0.0, GeoPoint::lon),
                days: l.days,
                reads: l.reads.len() as u32,
                share_of_days: f64::from(l.days) / f64::from(p.active_days.max(1)),
                usual: l.usual,
                by_hour: l.by_hour.to_vec(),
                read_indexes: idx(&l.reads),
                cameras_near: near,
            }
        })
        .collect();
    let journeys = p
        .journeys
        .iter()
        .map(|j| pb::ProfileJourney {
            cells: j.cells.clone(),
            days: j.days,
            trips: j.trips.len() as u32,
            usual: j.usual,
            start_hours: j.start_hours.clone(),
            first_reads: j.trips.iter().map(|(a, _)| *a as u32).collect(),
            last_reads: j.trips.iter().map(|(_, b)| *b as u32).collect(),
        })
        .collect();
    let outliers = p
        .outliers
        .iter()
        .map(|o| pb::ProfileOutlier {
            read_index: o.read as u32,
            score: o.score,
            reason: format!(
                "at a place seen on {} of {} active day(s) (so on no usual journey), in an \
                 hour holding {:.0}% of its reads",
                o.location_days,
                p.active_days,
                o.hour_share * 100.0
            ),
        })
        .collect();
    pb::SubjectProfileResponse {
        reads,
        active_days: p.active_days,
        locations,
        journeys,
        outliers,
        by_hour: p.by_hour.to_vec(),
        by_weekday: p.by_weekday.to_vec(),
        caveats: CAVEATS.iter().map(|c| c.to_string()).collect(),
        resolution: u32::from(u8::from(q.resolution)),
        ..Default::default()
    }
}
