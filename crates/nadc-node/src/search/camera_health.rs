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
use super::plan::{Plan, query_outcome, time_json};
use crate::error::ServiceError;

/// Baseline days when the request names none.
const DEFAULT_BASELINE_DAYS: u32 = 28;

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
        let base_from = from.plus_millis(-i64::from(baseline_days) * 86_400_000);
        self.check_window(
            plan,
            base_from,
            to,
            "camera health baseline and window",
            q.allow_broad,
        )?;
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

    /// Answers a camera-health request (the Analysis service's).
    pub(super) async fn camera_health_of(
        &self,
        req: Request<pb::CameraHealthRequest>,
    ) -> Result<pb::CameraHealthResponse, Status> {
        let search = "camera_health";
        let (mut plan, checked) = self
            .plan_relayed(&req, search, req.get_ref().access.as_ref(), None)
            .await?;
        let query = match checked.and_then(|()| self.health_query(&mut plan, req.get_ref())) {
            Ok(q) => q,
            Err(e) => return Err(self.refuse(&plan, search, e).await),
        };
        let worker = match self.workers.acquire(&plan.user_key()).await {
            Ok(w) => w,
            Err(status) => return Err(self.refuse(&plan, search, status.into()).await),
        };
        let (store, node, governance) = (
            self.store.clone(),
            self.node.clone(),
            self.governance.clone(),
        );
        tokio::task::spawn_blocking(move || {
            let _worker = worker;
            let started = Instant::now();
            let result = camera_health(store.as_ref(), &query);
            let (returned, outcome) = match &result {
                Ok(rows) => {
                    let mut per = std::collections::BTreeMap::<ForceId, u64>::new();
                    for r in rows {
                        *per.entry(r.camera.force.clone()).or_default() += r.reads;
                    }
                    (per.into_iter().collect(), Outcome::Ok)
                }
                Err(e) => (Vec::new(), query_outcome(e)),
            };
            governance.record_search_blocking(
                plan.closing(search, returned, outcome),
                plan.case.as_ref(),
                &[],
            )?;
            let mut rows = result.map_err(super::query_status)?;
            let rank = |h: Health| match h {
                Health::Silent => 0,
                Health::Low => 1,
                Health::Working => 2,
                Health::NoData => 3,
            };
            rows.sort_by(|a, b| {
                (rank(a.health), &a.camera.force, &a.camera.camera_id).cmp(&(
                    rank(b.health),
                    &b.camera.force,
                    &b.camera.camera_id,
                ))
            });
            Ok(pb::CameraHealthResponse {
                cameras: rows
                    .into_iter()
                    .map(|r| pb::CameraHealthRow {
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
                    })
                    .collect(),
                node,
                elapsed_us: started.elapsed().as_micros() as u64,
            })
        })
        .await
        .map_err(|e| Status::from(ServiceError::internal(format!("analysis task failed: {e}"))))?
    }
}
