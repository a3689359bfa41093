//! The Admin service: cameras and node information.

use std::sync::Arc;

use nadc_core::audit::Outcome;
use nadc_core::{CameraKind, ForceId, Principal};
use nadc_proto::{self as proto, pb};
use nadc_store::Store;
use tonic::{Request, Response, Status};
use tracing::info;

use crate::auth::caller;
use crate::cameras::CameraRegistry;
use crate::error::ServiceError;

/// The Admin service.
#[derive(Clone)]
pub struct AdminService {
    /// The store.
    pub store: Arc<dyn Store>,
    /// The camera registry shared with ingest.
    pub cameras: Arc<CameraRegistry>,
    /// The node's name.
    pub node: String,
    /// Retention in days.
    pub retention_days: u32,
    /// Retention passes.
    pub retention: Arc<crate::retention::Retention>,
    /// Where a retention pass is made (through the replicated log in
    /// replicated mode).
    pub changes: Arc<crate::changes::Changes>,
    /// The node's peers (none: it has none), who are told where its reads
    /// lie.
    pub federation: Option<Arc<crate::federation::Federation>>,
    /// Audits telling a peer where the reads lie.
    pub governance: Arc<crate::governance::Governance>,
    /// Replicated mode: the node's replica of the log.
    pub replication: Option<Arc<crate::replication::Replication>>,
    /// The node's data directory (snapshots are made beside the store).
    pub data_dir: std::path::PathBuf,
}

#[tonic::async_trait]
impl pb::admin_server::Admin for AdminService {
    async fn import_cameras(
        &self,
        req: Request<pb::ImportCamerasRequest>,
    ) -> Result<Response<pb::ImportCamerasResponse>, Status> {
        let who = caller(&req)?;
        let force = who.require_bof("registering cameras")?.clone();
        let mut good = Vec::new();
        let mut rejected = Vec::new();
        for (i, wire) in req.into_inner().cameras.into_iter().enumerate() {
            let id = wire.camera_id.clone();
            match proto::camera_from_pb(wire, force.clone()) {
                Ok(c) => good.push(c),
                Err(e) => rejected.push(pb::CameraRejection {
                    index: i as u32,
                    camera_id: id,
                    message: e.to_string(),
                }),
            }
        }
        let store = self.store.clone();
        let registry = self.cameras.clone();
        let stored = tokio::task::spawn_blocking(move || registry.register(&store, good))
            .await
            .map_err(|e| ServiceError::internal(format!("camera task failed: {e}")))?
            .map_err(|e| {
                ServiceError::unavailable(format!("store unavailable, cameras not stored: {e}"))
            })?;
        info!(force = %force, stored, rejected = rejected.len(), "cameras imported");
        Ok(Response::new(pb::ImportCamerasResponse {
            stored: stored as u32,
            rejected,
        }))
    }

    async fn list_cameras(
        &self,
        req: Request<pb::ListCamerasRequest>,
    ) -> Result<Response<pb::ListCamerasResponse>, Status> {
        let who = caller(&req)?;
        let wanted = match req.get_ref().force.trim() {
            "" => None,
            f => Some(ForceId::new(f).map_err(|e| ServiceError::invalid(e.to_string()))?),
        };
        let filter = match (&who.principal, wanted) {
            (Principal::Bof { force }, Some(w)) if &w != force => {
                return Err(ServiceError::denied(format!(
                    "bof {force} may list only its own cameras, not {w}'s"
                ))
                .into());
            }
            (Principal::Bof { force }, _) => Some(force.clone()),
            (_, w) => w,
        };
        let cameras = self
            .store
            .cameras(filter.as_ref())
            .map_err(|e| ServiceError::unavailable(e.to_string()))?;
        // A covert camera's position and description are its force's alone.
        let own = who.principal.force();
        Ok(Response::new(pb::ListCamerasResponse {
            cameras: cameras
                .iter()
                .filter(|c| c.kind != CameraKind::Covert || Some(&c.force) == own)
                .map(proto::camera_to_pb)
                .collect(),
        }))
    }

    async fn run_retention(
        &self,
        req: Request<pb::RunRetentionRequest>,
    ) -> Result<Response<pb::RetentionReport>, Status> {
        let p = caller(&req)?.principal;
        if !matches!(&p, Principal::User { roles, .. } if roles.contains(&nadc_core::Role::Admin)) {
            return Err(ServiceError::denied(format!(
                "running retention needs a user with the admin role; caller is {p}"
            ))
            .into());
        }
        let actor = crate::governance::Actor::of(&p);
        // A change like any other: in replicated mode every replica makes
        // the same pass.
        let report = match self.changes.submit(self.retention.change()).await {
            Ok(crate::changes::Changed::Retention(r)) => r,
            Ok(_) => return Err(ServiceError::internal("a retention pass gave no report").into()),
            Err(e) => {
                return Err(ServiceError::unavailable(format!(
                    "retention pass failed: {}",
                    Status::from(e).message()
                ))
                .into());
            }
        };
        let (retention, done) = (self.retention.clone(), report.clone());
        tokio::task::spawn_blocking(move || retention.audit(&actor, &done, true))
            .await
            .map_err(|e| ServiceError::internal(e.to_string()))??;
        Ok(Response::new(crate::retention::report_to_pb(&report)))
    }

    type SnapshotStream = crate::snapshot::SnapshotStream;

    async fn snapshot(
        &self,
        req: Request<pb::SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        let who = caller(&req)?;
        let stream = crate::snapshot::snapshot(
            &who.principal,
            self.replication.as_ref(),
            self.store.clone(),
            &self.governance,
            &self.data_dir,
        )
        .await?;
        Ok(Response::new(stream))
    }

    async fn node_info(
        &self,
        req: Request<pb::NodeInfoRequest>,
    ) -> Result<Response<pb::NodeInfoResponse>, Status> {
        let who = caller(&req)?;
        let stats = self
            .store
            .stats()
            .map_err(|e| ServiceError::unavailable(e.to_string()))?;
        // Where this node's reads lie, for a peer to know whether a search
        // can reach them: every coarse cell holding a read (a mobile or GPS
        // read lies wherever it was taken, not at a registered camera).
        // Only a configured peer is told: they say where mobile and covert
        // units have worked. Anyone else is told where the cameras they may
        // know of are: a covert camera's cell only to its own force (even
        // coarse, it says where a covert camera is).
        let own = who.principal.force();
        let peer = match &who.principal {
            Principal::Node { name } => self.federation.as_ref().is_some_and(|f| f.is_peer(name)),
            _ => false,
        };
        let mut coarse_cells: Vec<u64> = if peer {
            self.store
                .coarse_cells()
                .map_err(|e| ServiceError::unavailable(e.to_string()))?
        } else {
            self.store
                .cameras(None)
                .map_err(|e| ServiceError::unavailable(e.to_string()))?
                .iter()
                .filter(|c| c.kind != CameraKind::Covert || Some(&c.force) == own)
                .map(|c| c.position.cell_at(nadc_core::geo::COARSE_RESOLUTION))
                .collect()
        };
        coarse_cells.sort_unstable();
        coarse_cells.dedup();
        if peer {
            // Where the reads lie, however coarsely, is disclosed: audited,
            // durably, before it leaves, with the cells told and the forces
            // whose reads they place.
            let g = &self.governance;
            let what = crate::governance::Audited::holdings(
                serde_json::json!({"coarse_cells": coarse_cells}),
                &stats.reads_by_force,
            );
            let actor = crate::governance::Actor::of(&who.principal);
            g.record(g.entry(&actor, "federation.holdings", &what, Outcome::Ok))
                .await?;
        }
        Ok(Response::new(pb::NodeInfoResponse {
            node: self.node.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            caller: who.principal.describe(),
            reads: stats.total_reads(),
            forces: stats
                .reads_by_force
                .iter()
                .map(|(f, n)| pb::ForceCount {
                    force: f.to_string(),
                    rows: *n,
                })
                .collect(),
            retention_days: self.retention_days,
            earliest: stats.earliest.map(proto::to_pb_time),
            latest: stats.latest.map(proto::to_pb_time),
            coarse_cells,
            cells_of_reads: peer,
            replication: match &self.replication {
                Some(r) => Some(r.status().await),
                None => None,
            },
        }))
    }
}
