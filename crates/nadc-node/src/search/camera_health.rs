//! The Analysis service's camera health: planned and governed as a search
//! (purpose, case; the baseline and the window checked against the tiers
//! together), computed from the camera index under a search worker,
//! audited before it answers. It names no vehicle: nothing is registered
//! under the case.

use std::time::Instant;

use nadc_core::audit::Outcome;
use nadc_core::{CameraKind, ForceId};
use nadc_proto::{self as proto, pb};
use nadc_query::camera_health::{Health, HealthQuery, camera_health};
use serde_json::json;
use tonic::{Request, Status};

use super::SearchService;
use super::national::gather;
use super::plan::{Plan, query_outcome, time_json};
use crate::cases::CaseId;
use crate::error::ServiceError;
use crate::governance::Actor;

/// Baseline days when the request names none.
pub(super) const DEFAULT_BASELINE_DAYS: u32 = 28;

impl SearchService {
    fn health_query(
        &self,
        plan: &mut Plan,
        q: &pb::CameraHealthRequest,
    ) -> Result<HealthQuery, ServiceError> {
        plan.query = json!({"force": q.force, "baseline_days": q.baseline_days,
            "from": time_json(q.from.as_ref()), "to": time_json(q.to.as_ref()),
            "allow_broad": q.allow_broad});
        plan.broad(q.allow_broad)?;
        let baseline_days = match q.baseline_days {
            0 => DEFAULT_BASELINE_DAYS,
            d if d < 7 => {
                return Err(ServiceError::invalid(format!(
                    "baseline_days {d}: at least 7 (one of each hour of the week)"
                )));
            }
            d => d,
        };
        let (from, to) = self.analysis_window(
            plan,
            q.from.as_ref(),
            q.to.as_ref(),
            "camera health",
            q.allow_broad,
        )?;
        // The baseline is read too: it must lie in the tiers, and the two
        // together under the window cap.
        // A baseline clipped to the tiers is shortened (at least a week is
        // needed); the answer's `clipped_from` speaks of the window alone.
        let window_clipped = plan.clipped_from;
        let base_from = from.plus_millis(-i64::from(baseline_days) * 86_400_000);
        let (base_from, _) = self.check_window(
            plan,
            base_from,
            to,
            "camera health baseline and window",
            q.allow_broad,
        )?;
        plan.clipped_from = window_clipped;
        let permitted = (from.millis() - base_from.millis()).div_euclid(86_400_000);
        let baseline_days = baseline_days.min(u32::try_from(permitted.max(0)).unwrap_or(0));
        if baseline_days < 7 {
            return Err(ServiceError::precondition(format!(
                "camera health: only {baseline_days} days of baseline before the window are \
                 permitted; at least 7 are needed"
            )));
        }
        let force = match q.force.trim() {
            "" => None,
            f => Some(ForceId::new(f).map_err(|e| ServiceError::invalid(format!("force: {e}")))?),
        };
        let own = plan.actor.force.clone();
        let cameras = self
            .store
            .cameras(force.as_ref())
            .map_err(|e| ServiceError::unavailable(format!("cameras: {e}")))?
            .into_iter()
            // Another force's covert cameras are its own business.
            .filter(|c| c.kind != CameraKind::Covert || Some(&c.force) == own.as_ref())
            .collect();
        Ok(HealthQuery {
            cameras,
            from,
            to,
            baseline_days,
        })
    }

    /// Answers a camera-health request (the Analysis service's): this
    /// node's cameras, and nationally every peer's too (each camera is
    /// registered with one node), each node's outcome reported.
    pub(super) async fn camera_health_of(
        &self,
        req: Request<pb::CameraHealthRequest>,
    ) -> Result<pb::CameraHealthResponse, Status> {
        let q = req.get_ref().clone();
        let relay = q.on_behalf_of.clone();
        let national = self.national_scope(&req, q.scope, relay.is_some()).await?;
        let started = Instant::now();
        let (mut answer, actor, case) = self.camera_health_here(&req, relay.as_ref()).await?;
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
                |mut c, r| async move { c.camera_health(r).await },
            )
            .await;
        let (parts, gathered) = gather(&self.node, answer, answers, |a| a.cameras.len() as u64);
        // What the peers contributed (camera rows per owning force) is
        // audited here before it is passed on.
        let peers_part = camera_rows(parts[1..].iter().flat_map(|p| &p.cameras));
        self.audit_peers_part(
            &actor,
            case,
            q.access.as_ref(),
            "search.camera_health.national",
            json!({"national": true, "force": q.force, "baseline_days": q.baseline_days}),
            super::national::PeersPart {
                returned: peers_part,
                reads: Vec::new(),
            },
        )
        .await?;
        let mut parts = parts.into_iter();
        let mut answer = parts.next().unwrap_or_default();
        answer.cameras.extend(parts.flat_map(|p| p.cameras));
        sort_rows(&mut answer.cameras);
        answer.partial = gathered.nodes.iter().any(|o| !o.ok);
        answer.nodes = gathered.nodes;
        answer.stale = gathered.stale;
        answer.elapsed_us = started.elapsed().as_micros() as u64;
        Ok(answer)
    }

    /// This node's cameras' health, for the caller of `req` or the user a
    /// peer relays; with who asked and under which case.
    async fn camera_health_here(
        &self,
        req: &Request<pb::CameraHealthRequest>,
        relay: Option<&pb::OnBehalfOf>,
    ) -> Result<(pb::CameraHealthResponse, Actor, Option<CaseId>), Status> {
        let search = "camera_health";
        let (mut plan, checked) = self
            .plan_relayed(req, search, req.get_ref().access.as_ref(), relay)
            .await?;

        let query = match checked.and_then(|()| self.health_query(&mut plan, req.get_ref())) {
            Ok(q) => q,
            Err(e) => return Err(self.refuse(&plan, search, e).await),
        };
        let (actor, case) = (plan.actor.clone(), plan.case.clone());
        let answer = self
            .on_worker(plan, search, move |store, node, governance, plan| {
                let started = Instant::now();
                let result = camera_health(store, &query);
                // What it discloses: camera rows, per owning force.
                let (returned, outcome) = match &result {
                    Ok(rows) => (
                        count_by_force(rows.iter().map(|r| r.camera.force.clone())),
                        Outcome::Ok,
                    ),
                    Err(e) => (Vec::new(), query_outcome(e)),
                };
                governance.record_search_blocking(
                    plan.closing(search, returned, outcome),
                    plan.case.as_ref(),
                    &[],
                )?;
                let rows = result.map_err(super::query_status)?;
                let mut answer = pb::CameraHealthResponse {
                    cameras: rows.iter().map(health_row).collect(),
                    node: node.to_string(),
                    elapsed_us: started.elapsed().as_micros() as u64,
                    nodes: Vec::new(),
                    partial: false,
                    stale: Vec::new(),
                };
                sort_rows(&mut answer.cameras);
                Ok::<_, Status>(answer)
            })
            .await?;
        Ok((answer, actor, case))
    }
}

/// A camera's health on the wire.
pub(super) fn health_row(r: &nadc_query::camera_health::CameraHealth) -> pb::CameraHealthRow {
    pb::CameraHealthRow {
        force: r.camera.force.to_string(),
        camera_id: r.camera.camera_id.clone(),
        lat: r.camera.position.lat(),
        lon: r.camera.position.lon(),
        reads: r.reads,
        expected: r.expected,
        status: match r.health {
            Health::Working => pb::CameraStatus::Working,
            Health::Low => pb::CameraStatus::Low,
            Health::Silent => pb::CameraStatus::Silent,
            Health::NoData => pb::CameraStatus::NoData,
        } as i32,
        last_read: r.last_read.map(proto::to_pb_time),
    }
}

/// How many of `forces` name each force.
pub(super) fn count_by_force(forces: impl Iterator<Item = ForceId>) -> Vec<(ForceId, u64)> {
    let mut per = std::collections::BTreeMap::<ForceId, u64>::new();
    for f in forces {
        *per.entry(f).or_default() += 1;
    }
    per.into_iter().collect()
}

/// Camera rows per owning force (a force that does not parse is a peer's
/// mistake and is left out).
fn camera_rows<'a>(rows: impl Iterator<Item = &'a pb::CameraHealthRow>) -> Vec<(ForceId, u64)> {
    count_by_force(rows.filter_map(|r| ForceId::new(&r.force).ok()))
}

/// Silent first, then low, working and no data; by force and camera id.
fn sort_rows(rows: &mut [pb::CameraHealthRow]) {
    let rank = |status: i32| match pb::CameraStatus::try_from(status) {
        Ok(pb::CameraStatus::Silent) => 0,
        Ok(pb::CameraStatus::Low) => 1,
        Ok(pb::CameraStatus::Working) => 2,
        _ => 3,
    };
    rows.sort_by(|a, b| {
        (rank(a.status), &a.force, &a.camera_id).cmp(&(rank(b.status), &b.force, &b.camera_id))
    });
}
