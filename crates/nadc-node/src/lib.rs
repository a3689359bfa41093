//! The nadc node: gRPC services over mutually authenticated TLS, the ingest
//! pipeline, and the searches, on a [`Store`].
//!
//! Invariants:
//! - Every RPC is over TLS 1.3 with a client certificate verified against
//!   the node's CA; the caller's principal comes only from that certificate.
//! - The owning force of a read or camera is the pushing BOF's force.
//! - A batch is acknowledged only after [`Store::append`] returned, i.e.
//!   after its reads are durable; rejected reads are reported one by one and
//!   never stop the good reads of the same batch.
//! - Nothing here names the storage engine; the node gets an `Arc<dyn Store>`.
//! - Logs never carry a full VRM.
#![deny(missing_docs, unsafe_code)]

pub mod admin;
pub mod alerts;
pub mod auth;
pub mod cameras;
pub mod cases;
pub mod changes;
pub mod config;
pub mod connections;
pub mod disclosure;
pub mod edge;
pub mod error;
pub mod federation;
pub mod governance;
pub mod hedge;
pub mod hotlists;
pub mod ingest;
pub mod limits;
pub mod merge;
pub mod metrics;
pub mod page;
pub mod recent;
pub mod relay;
pub mod replication;
pub mod reports;
pub mod retention;
pub mod rules;
pub mod search;
pub mod snapshot;
pub mod spool;
pub mod tls;
pub mod trust;
pub mod workers;

use std::net::SocketAddr;
use std::sync::Arc;

use nadc_core::time::{Clock, SystemClock};
use nadc_proto::pb;
use nadc_store::Store;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

pub use config::{AccessConfig, AlertsConfig, NodeConfig, SearchCaps, TlsFiles};

/// Why a node could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// TLS setup failed.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// Binding the listen address failed.
    #[error("listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] nadc_store::StoreError),
    /// The gRPC server failed.
    #[error("grpc server: {0}")]
    Server(String),
    /// Replicated mode could not start.
    #[error(transparent)]
    Replication(#[from] replication::ReplicationError),
    /// The result spool's directory could not be made ready.
    #[error("result spool {path}: {source}")]
    Spool {
        /// The directory.
        path: std::path::PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// A running node.
pub struct RunningNode {
    /// The address it listens on (with the real port when 0 was asked for).
    pub addr: SocketAddr,
    /// The node's name (from its certificate).
    pub name: String,
    stop: watch::Sender<bool>,
    server: JoinHandle<Result<(), tonic::transport::Error>>,
    /// The periodic retention pass, if configured: it holds the store, so
    /// it is awaited before the store is closed.
    retention: Option<JoinHandle<()>>,
    store: Arc<dyn Store>,
    tls: Arc<tls::NodeTls>,
    /// Where its metrics are served, if they are.
    pub metrics_addr: Option<SocketAddr>,
}

impl RunningNode {
    /// Re-reads the TLS files named in the configuration (CA, CRLs, the
    /// node's certificate and key): new connections use them; open ones
    /// carry on, except those whose certificate the CRLs now revoke, which
    /// are cut. On error (naming the file) the node keeps the configuration
    /// it had; a certificate naming another node is refused.
    pub fn reload_tls(&self) -> Result<tls::Reloaded, NodeError> {
        let reloaded = self.tls.reload()?;
        info!(node = %self.name, crls = reloaded.crls.len(), cut = reloaded.cut,
            "tls configuration reloaded");
        Ok(reloaded)
    }

    /// Stops accepting, lets calls in flight finish, then closes the store
    /// (waiting for queued writes and flushing to disk).
    ///
    /// Push streams stop reading at once (batches in progress are still
    /// acknowledged) and following alert watches end. Calls still open
    /// after [`SHUTDOWN_GRACE`] are no longer waited for (they acknowledge
    /// nothing new, and end when the process exits); the store is closed.
    pub async fn shutdown(mut self) -> Result<(), NodeError> {
        let _ = self.stop.send(true);
        match tokio::time::timeout(SHUTDOWN_GRACE, &mut self.server).await {
            Ok(served) => served
                .map_err(|e| NodeError::Server(e.to_string()))?
                .map_err(|e| NodeError::Server(e.to_string()))?,
            Err(_) => {
                warn!(node = %self.name, grace_s = SHUTDOWN_GRACE.as_secs(),
                    "calls still open after the grace period are no longer waited for");
                self.server.abort();
                let _ = (&mut self.server).await;
            }
        }
        // The retention loop ends on the stop signal (a pass under way
        // finishes first): nothing of this node holds the store after this.
        if let Some(retention) = self.retention.take() {
            let _ = retention.await;
        }
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.close())
            .await
            .map_err(|e| NodeError::Server(e.to_string()))??;
        info!(node = %self.name, "node stopped");
        Ok(())
    }
}

/// Most retrospective hits one hotlist addition logs.
const RETROSPECTIVE_HITS: usize = 10_000;

/// How long a stopping node waits for open calls to finish.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Starts a node on an already bound listener (tests bind `127.0.0.1:0`
/// first and pass the listener in, so there is no port race).
pub async fn start_with_listener(
    cfg: &NodeConfig,
    store: Arc<dyn Store>,
    listener: TcpListener,
    clock: Arc<dyn Clock>,
) -> Result<RunningNode, NodeError> {
    tls::install_crypto_provider();
    let tls = Arc::new(tls::NodeTls::load(&cfg.tls, &cfg.trust)?);
    let name = tls.node().to_string();
    let addr = listener.local_addr().map_err(|source| NodeError::Bind {
        addr: cfg.listen,
        source,
    })?;
    let registry = {
        let store = store.clone();
        Arc::new(
            tokio::task::spawn_blocking(move || cameras::CameraRegistry::load(store.as_ref()))
                .await
                .map_err(|e| NodeError::Server(e.to_string()))??,
        )
    };

    let governance = {
        let (store, node, clock, policy) = (
            store.clone(),
            name.clone(),
            clock.clone(),
            cfg.access_policy(),
        );
        Arc::new(
            tokio::task::spawn_blocking(move || {
                governance::Governance::load(store, node, clock, policy)
            })
            .await
            .map_err(|e| NodeError::Server(e.to_string()))??,
        )
    };
    let hotlists = {
        let store = store.clone();
        Arc::new(
            tokio::task::spawn_blocking(move || hotlists::HotlistRegistry::load(store))
                .await
                .map_err(|e| NodeError::Server(e.to_string()))??,
        )
    };
    let federation = if cfg.peers.is_empty() {
        None
    } else {
        Some(Arc::new(
            federation::Federation::new(
                name.clone(),
                &cfg.peers,
                tls.clone(),
                federation::FederationOptions {
                    deadline: std::time::Duration::from_millis(cfg.federation_deadline_ms),
                    hedge_after: cfg
                        .federation_hedge_ms
                        .map(std::time::Duration::from_millis),
                    peer_concurrency: cfg.federation_peer_concurrency,
                },
            )
            .map_err(|e| NodeError::Server(format!("peers: {e}")))?,
        ))
    };
    let hub = Arc::new(alerts::AlertHub::new(store.last_alert()));
    let recent = (cfg.alerts.clone_check && cfg.alerts.clone_recent_reads > 0)
        .then(|| -> Result<_, NodeError> {
            Ok(Arc::new(recent::RecentReads::new(
                store.stats().map_err(NodeError::Store)?.latest,
                cfg.alerts.clone_recent_reads,
            )))
        })
        .transpose()?;
    let alerting = Arc::new(alerts::Alerting {
        store: store.clone(),
        hotlists: hotlists.clone(),
        hub: hub.clone(),
        config: cfg.alerts.clone(),
        clock: clock.clone(),
        named: Default::default(),
        recent: recent.clone(),
        changes: Default::default(),
    });
    let spool_dir = cfg.data_dir.join("spool");
    let spools = spool::Spools::new(
        spool_dir.clone(),
        cfg.limits.spool_memory_bytes,
        cfg.limits.spool_disk_bytes,
        // One user's searches together take at most half the disk budget.
        cfg.limits.spool_disk_bytes / 2 / cfg.limits.searches_per_user as u64,
    )
    .map_err(|source| NodeError::Spool {
        path: spool_dir,
        source,
    })?;
    let search_workers = workers::SearchWorkers::new(&cfg.limits, spools);
    let (stop_tx, stop_rx) = watch::channel(false);
    // (Force codes were checked with the rest of the configuration.)
    let per_force_days: std::collections::BTreeMap<_, _> = cfg
        .retention
        .per_force_days
        .iter()
        .filter_map(|(f, d)| nadc_core::ForceId::new(f).ok().map(|f| (f, *d)))
        .collect();
    snapshot::clear_leftovers(&cfg.data_dir);
    let retention = Arc::new(retention::Retention {
        store: store.clone(),
        governance: governance.clone(),
        policy: nadc_proto::log::RetentionPolicy {
            default_days: cfg.retention_days,
            per_force: per_force_days.clone(),
        },
        recent,
    });
    let state = Arc::new(changes::State {
        store: store.clone(),
        hotlists: hotlists.clone(),
        retention: retention.clone(),
        governance: governance.clone(),
        hub: hub.clone(),
    });
    let replication = match &cfg.replication {
        Some(r) => Some(
            replication::Replication::start(
                r.clone(),
                &cfg.tls,
                name.clone(),
                store.clone(),
                alerting.clone(),
                state.clone(),
                stop_rx.clone(),
            )
            .await?,
        ),
        None => None,
    };
    let changes = Arc::new(changes::Changes {
        state,
        replication: replication.clone(),
    });
    let metrics = metrics::Metrics::new(store.clone());
    if let Some(r) = &replication {
        metrics.watch_replication(r.clone());
    }
    let metrics_addr = match cfg.metrics_listen {
        Some(at) => {
            let l = metrics::bind(at)
                .await
                .map_err(|source| NodeError::Bind { addr: at, source })?;
            let bound = l.local_addr().ok();
            tokio::spawn(metrics::serve(l, metrics.clone(), stop_rx.clone()));
            bound
        }
        None => None,
    };
    // (Set once, here, before the node serves.)
    let _ = alerting.changes.set(changes.clone());
    // Searches, analyses and audit queries share these workers (alert
    // watches count against their user's cap but take no worker): ingest
    // and live alerting keep the rest of the blocking pool.
    let alerts_service = alerts::AlertsService {
        store: store.clone(),
        hub: hub.clone(),
        node: name.clone(),
        clock: clock.clone(),
        governance: governance.clone(),
        federation: federation.clone(),
        stop: stop_rx.clone(),
        workers: search_workers.clone(),
        changes: changes.clone(),
    };
    let hotlist_service = hotlists::HotlistsService {
        registry: hotlists.clone(),
        clock: clock.clone(),
        governance: governance.clone(),
        store: store.clone(),
        max_retrospective: RETROSPECTIVE_HITS,
        node: name.clone(),
        workers: search_workers.clone(),
        changes: changes.clone(),
    };
    let ingest = ingest::IngestService {
        store: store.clone(),
        validator: ingest::Validator {
            cameras: registry.clone(),
            clock: clock.clone(),
            retention_days: cfg.retention_days,
            per_force_days,
            future_tolerance_s: cfg.future_tolerance_s,
        },
        max_batch_reads: cfg.max_batch_reads,
        alerting,
        admission: limits::Admission::new(&cfg.limits),
        stop: stop_rx.clone(),
        replication: replication.clone(),
        metrics: metrics.clone(),
    };
    let peers = federation.clone();
    let search = search::SearchService {
        store: store.clone(),
        node: name.clone(),
        clock,
        hotlists,
        governance: governance.clone(),
        federation,
        retention_days: cfg.retention_days,
        default_limit: cfg.default_search_limit,
        max_limit: cfg.max_search_limit,
        caps: cfg.search_caps.clone(),
        workers: search_workers.clone(),
        cameras: registry.clone(),
        replication: replication.clone(),
    };
    let disclosure_service = disclosure::DisclosureService {
        store: store.clone(),
        governance: governance.clone(),
    };
    let holds = retention::HoldsService {
        store: store.clone(),
        governance: governance.clone(),
        changes: changes.clone(),
    };
    let admin = admin::AdminService {
        retention: retention.clone(),
        changes: changes.clone(),
        store: store.clone(),
        cameras: registry,
        node: name.clone(),
        retention_days: cfg.retention_days,
        federation: peers,
        governance: governance.clone(),
        replication,
        data_dir: cfg.data_dir.clone(),
    };

    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<pb::ingest_server::IngestServer<ingest::IngestService>>()
        .await;
    health_reporter
        .set_serving::<pb::search_server::SearchServer<search::SearchService>>()
        .await;
    health_reporter
        .set_serving::<pb::analysis_server::AnalysisServer<search::AnalysisService>>()
        .await;
    health_reporter
        .set_serving::<pb::admin_server::AdminServer<admin::AdminService>>()
        .await;
    health_reporter
        .set_serving::<pb::hotlists_server::HotlistsServer<hotlists::HotlistsService>>()
        .await;
    health_reporter
        .set_serving::<pb::alerts_server::AlertsServer<alerts::AlertsService>>()
        .await;
    let authorisations = governance::AuthorisationsService {
        governance: governance.clone(),
        changes: changes.clone(),
    };
    let audit = governance::AuditService {
        store: store.clone(),
        governance: governance.clone(),
        workers: search_workers.clone(),
    };
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(nadc_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| NodeError::Server(e.to_string()))?;

    let retention = (cfg.retention.interval_s > 0).then(|| {
        tokio::spawn(retention.run_periodically(
            changes,
            std::time::Duration::from_secs(cfg.retention.interval_s),
            stop_rx.clone(),
        ))
    });
    let incoming = tls::accept_loop(
        listener,
        tls.clone(),
        stop_rx.clone(),
        std::time::Duration::from_millis(cfg.limits.handshake_timeout_ms),
    );
    let mut stop_signal = stop_rx;
    let max_message = cfg.limits.max_message_bytes;
    let router = tonic::transport::Server::builder()
        .max_concurrent_streams(cfg.limits.max_concurrent_streams)
        .concurrency_limit_per_connection(cfg.limits.max_requests_per_connection)
        .load_shed(true)
        .layer(metrics::RpcTimingLayer(metrics))
        .layer(edge::BoundStatusLayer)
        .layer(auth::AuthLayer::new(governance.clone()))
        // A connection whose peer stopped answering is closed.
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(
            cfg.limits.keepalive_interval_s,
        )))
        .http2_keepalive_timeout(Some(std::time::Duration::from_secs(
            cfg.limits.keepalive_timeout_s,
        )))
        // Idle connections do not accumulate: past its age a connection is
        // shut down gracefully (at once if no stream is open).
        .max_connection_age(std::time::Duration::from_secs(
            cfg.limits.max_connection_age_s,
        ))
        .add_service(health)
        .add_service(reflection)
        .add_service(
            pb::ingest_server::IngestServer::new(ingest)
                .max_decoding_message_size(max_message)
                .max_encoding_message_size(max_message),
        )
        .add_service(
            pb::analysis_server::AnalysisServer::new(search::AnalysisService(search.clone()))
                .max_decoding_message_size(max_message)
                .max_encoding_message_size(max_message),
        )
        .add_service(
            pb::search_server::SearchServer::new(search)
                .max_decoding_message_size(max_message)
                .max_encoding_message_size(max_message),
        )
        .add_service(
            pb::admin_server::AdminServer::new(admin)
                .max_decoding_message_size(max_message)
                .max_encoding_message_size(max_message),
        )
        .add_service(
            pb::hotlists_server::HotlistsServer::new(hotlist_service)
                .max_decoding_message_size(max_message)
                .max_encoding_message_size(max_message),
        )
        .add_service(
            pb::alerts_server::AlertsServer::new(alerts_service)
                .max_decoding_message_size(max_message)
                .max_encoding_message_size(max_message),
        )
        .add_service(pb::authorisations_server::AuthorisationsServer::new(
            authorisations,
        ))
        .add_service(
            pb::audit_server::AuditServer::new(audit).max_encoding_message_size(max_message),
        )
        .add_service(
            pb::holds_server::HoldsServer::new(holds).max_decoding_message_size(max_message),
        )
        .add_service(
            pb::disclosure_server::DisclosureServer::new(disclosure_service)
                .max_decoding_message_size(max_message)
                .max_encoding_message_size(max_message),
        );
    let server = tokio::spawn(router.serve_with_incoming_shutdown(incoming, async move {
        let _ = stop_signal.changed().await;
    }));
    info!(node = %name, addr = %addr, retention_days = cfg.retention_days, "node serving");
    Ok(RunningNode {
        addr,
        name,
        stop: stop_tx,
        server,
        retention,
        store,
        tls,
        metrics_addr,
    })
}

/// Binds `cfg.listen` and starts a node with the system clock.
pub async fn start(cfg: &NodeConfig, store: Arc<dyn Store>) -> Result<RunningNode, NodeError> {
    let listener = TcpListener::bind(cfg.listen)
        .await
        .map_err(|source| NodeError::Bind {
            addr: cfg.listen,
            source,
        })?;
    start_with_listener(cfg, store, listener, Arc::new(SystemClock)).await
}
