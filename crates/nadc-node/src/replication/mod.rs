//! Replicated mode (issue 22): NATS JetStream as the log in front of the
//! stores.
//!
//! A node in replicated mode does not write a BOF's batch to its store
//! itself. It appends the validated batch to a JetStream stream replicated
//! across the NATS cluster (one subject per owning force), and each store
//! replica applies the stream in log order:
//! - **Acknowledged only once replicated.** A BOF hears back only after
//!   JetStream's quorum has acknowledged the append and the node's own
//!   replica has applied it, so the per-read outcomes (stored, duplicate)
//!   are those of a store, as in the embedded mode. If the log cannot take
//!   the batch the BOF gets UNAVAILABLE with `retry-after-ms` and nothing
//!   is acknowledged (a batch the log kept before its acknowledgement was
//!   lost comes back as duplicates when sent again).
//! - **Exactly once, in order.** The applier reads the stream from the
//!   position its store holds (`Store::log_position`) and writes each
//!   message's reads with the message's position in one durable write
//!   (`Store::append_logged`): a replica stopped at any moment resumes
//!   after the last message it applied. The store's position is the only
//!   cursor; JetStream's ordered consumer only delivers from it.
//! - **The same reads.** What depends on the node that took the batch (its
//!   clock, retention, camera register) was decided once and travels with
//!   the reads (`nadc_proto::log`); replicas apply the same entries in the
//!   same order, so they hold the same reads under the same numbers.
//! - **The same state.** Changes to hotlists, legal holds and retention
//!   passes go into the log too (`crate::changes`, on a subject every
//!   replica applies), answered once the node's replica has applied them:
//!   replicas match each read against the same lists, so they log the same
//!   hits and clone flags under the same positions, and hold and delete the
//!   same reads. (Convoy alerts are still each replica's own.)
//! - **Never past a gap.** A replica refuses to apply when the log no
//!   longer holds what follows its position, when the stream is not the
//!   one its position counts in, or when it holds other forces than it
//!   did (the position's scope); it says why (`nadc node info`).

mod apply;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use nadc_core::ForceId;
use nadc_proto::log::{Change, LoggedBatch, LoggedChange};
use nadc_proto::pb;
use nadc_store::{Appended, NewRead, Store};
use serde::Deserialize;
use tokio::sync::{oneshot, watch};

use crate::alerts::Alerting;
use crate::changes::{Changed, State};
use crate::error::ServiceError;

/// `[replication]` in the node's configuration: present, the node runs in
/// replicated mode.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicationConfig {
    /// The NATS servers' URLs (`tls://host:port`, or `nats://` with `tls`
    /// off); the client finds the rest of the cluster from any of them.
    pub servers: Vec<String>,
    /// The JetStream stream of reads (created if missing).
    #[serde(default = "default_stream")]
    pub stream: String,
    /// Subjects are this, a dot and the owning force's code.
    #[serde(default = "default_subject_prefix")]
    pub subject_prefix: String,
    /// Copies the cluster keeps of each message (R3 on three servers).
    #[serde(default = "default_replicas")]
    pub replicas: usize,
    /// How long the log keeps a message, in days: a replica rebuilt from a
    /// snapshot replays from there, so snapshots must be newer.
    #[serde(default = "default_log_days")]
    pub log_days: u32,
    /// The forces whose reads this node's store holds (none: every
    /// force's).
    #[serde(default)]
    pub forces: Vec<String>,
    /// How long a push waits for the cluster to acknowledge an append,
    /// milliseconds; past it the BOF is told to retry.
    #[serde(default = "default_append_timeout_ms")]
    pub append_timeout_ms: u64,
    /// How long a push waits for the node's own replica to apply an
    /// appended batch, milliseconds; past it the BOF is told to retry (its
    /// reads are then reported as duplicates: they are kept).
    #[serde(default = "default_apply_timeout_ms")]
    pub apply_timeout_ms: u64,
    /// Messages behind the log past which this replica's search answers
    /// say they may lack the newest reads (`SearchSummary.stale`).
    #[serde(default = "default_max_lag")]
    pub max_lag: u64,
    /// The nodes (by certificate name) that may take a snapshot of this
    /// node's store to start a replica from (none: no node may).
    #[serde(default)]
    pub snapshot_to: Vec<String>,
    /// How far after the cluster took it a retention pass may be dated,
    /// seconds (the asking node's clock against the cluster's): a pass
    /// dated later is refused by every replica alike, so a node whose clock
    /// runs fast cannot delete what has not expired. The same on every
    /// node (default one hour).
    #[serde(default = "default_retention_ahead_s")]
    pub retention_ahead_s: u64,
    /// Connect to NATS over TLS with the node's own certificate and CA
    /// bundle (`[tls]`), the NATS servers verifying it (default true).
    #[serde(default = "default_true")]
    pub tls: bool,
}

fn default_stream() -> String {
    "NADC_READS".into()
}
fn default_subject_prefix() -> String {
    "nadc.reads".into()
}
fn default_replicas() -> usize {
    3
}
fn default_log_days() -> u32 {
    7
}
fn default_append_timeout_ms() -> u64 {
    5_000
}
fn default_apply_timeout_ms() -> u64 {
    30_000
}
fn default_max_lag() -> u64 {
    1_000
}
fn default_retention_ahead_s() -> u64 {
    3_600
}
fn default_true() -> bool {
    true
}

/// How long a BOF is asked to wait before sending a refused batch again.
const RETRY_AFTER: Duration = Duration::from_secs(2);
/// How often the log's last position is asked.
const LOG_WATCH_EVERY: Duration = Duration::from_secs(2);
/// Not connected to the log for this long makes the replica's answers
/// stale.
const LOG_SILENT_AFTER: Duration = Duration::from_secs(10);
/// Pause before the applier reconnects after its consumer failed.
const APPLIER_BACKOFF: Duration = Duration::from_millis(500);

/// Why replicated mode could not start.
#[derive(Debug, thiserror::Error)]
pub enum ReplicationError {
    /// The configuration is unusable.
    #[error("[replication]: {0}")]
    Config(String),
    /// The NATS client could not be set up.
    #[error("connecting to NATS: {0}")]
    Connect(String),
}

/// What the node's replica made of an entry this node appended.
enum Applied {
    /// A batch: each read's outcome, in order.
    Reads(Vec<Appended>),
    /// A change: what it did, or why it changed nothing.
    Change(Box<Result<Changed, ServiceError>>),
}

/// The node's side of the replicated log: appends, and the applier's
/// hand-back of outcomes to the pushes waiting for them.
pub struct Replication {
    cfg: ReplicationConfig,
    client: async_nats::Client,
    js: jetstream::Context,
    node: String,
    /// The forces whose reads the node's replica holds (none: all).
    holds: Vec<ForceId>,
    next_nonce: AtomicU64,
    waiting: std::sync::Mutex<HashMap<u64, oneshot::Sender<Applied>>>,
    /// The last position the node's replica applied.
    applied: AtomicU64,
    /// Messages of its subjects still to apply, by the last one delivered.
    pending: AtomicU64,
    /// Why the applier is not applying, if it is not.
    problem: std::sync::Mutex<Option<String>>,
    /// The log's last position when last asked, and when that was.
    last_in_log: AtomicU64,
    heard: std::sync::Mutex<Option<std::time::Instant>>,
}

impl std::fmt::Debug for Replication {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replication")
            .field("stream", &self.cfg.stream)
            .field("node", &self.node)
            .finish()
    }
}

impl Replication {
    /// Connects to the NATS cluster (in the background: a node whose
    /// cluster is down starts, serves searches, and refuses pushes until it
    /// is back) and starts the applier.
    pub async fn start(
        cfg: ReplicationConfig,
        tls: &crate::config::TlsFiles,
        node: String,
        store: Arc<dyn Store>,
        alerting: Arc<Alerting>,
        shared: Arc<State>,
        stop: watch::Receiver<bool>,
    ) -> Result<Arc<Self>, ReplicationError> {
        if cfg.servers.is_empty() {
            return Err(ReplicationError::Config(
                "servers: name at least one".into(),
            ));
        }
        if cfg.stream.is_empty() || cfg.stream.contains(['.', ' ', '*', '>']) {
            return Err(ReplicationError::Config(format!(
                "stream {:?}: a name without dots, spaces or wildcards",
                cfg.stream
            )));
        }
        let forces = cfg
            .forces
            .iter()
            .map(|f| ForceId::new(f).map_err(|e| ReplicationError::Config(format!("forces: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let mut opts = async_nats::ConnectOptions::new()
            .name(format!("nadc {node}"))
            .retry_on_initial_connect()
            .connection_timeout(Duration::from_secs(5));
        if cfg.tls {
            opts = opts
                .require_tls(true)
                .add_root_certificates(tls.ca.clone())
                .add_client_certificate(tls.cert.clone(), tls.key.clone());
        }
        let client = opts
            .connect(cfg.servers.as_slice())
            .await
            .map_err(|e| ReplicationError::Connect(e.to_string()))?;
        let mut js = jetstream::new(client.clone());
        js.set_timeout(Duration::from_millis(cfg.append_timeout_ms));
        let applied = store
            .log_position(&cfg.stream)
            .map_err(|e| ReplicationError::Connect(format!("store: {e}")))?
            .map_or(0, |p| p.seq);
        let me = Arc::new(Self {
            cfg,
            client,
            js,
            node,
            holds: forces,
            // Numbers of earlier runs are still in the log: this run's
            // start at random, so none meets one of theirs.
            next_nonce: AtomicU64::new(rand::random::<u64>() >> 1),
            waiting: Default::default(),
            applied: AtomicU64::new(applied),
            pending: AtomicU64::new(0),
            problem: Default::default(),
            last_in_log: AtomicU64::new(0),
            heard: Default::default(),
        });
        // Every replica applies the changes, whichever forces it holds.
        let filters = if me.holds.is_empty() {
            vec![format!("{}.>", me.cfg.subject_prefix)]
        } else {
            let mut f: Vec<String> = me.holds.iter().map(|f| me.subject(f)).collect();
            f.push(me.changes_subject());
            f
        };
        tokio::spawn(me.clone().watch_log(stop.clone()));
        tokio::spawn(
            me.clone()
                .apply_loop(store, alerting, shared, filters, stop),
        );
        Ok(me)
    }

    /// Every few seconds: whether the node is connected to the log, and
    /// the log's last position, so that how far behind this replica is
    /// never rests on its applier alone (which may wait on a consumer
    /// that gets nothing).
    async fn watch_log(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        loop {
            if self.client.connection_state() == async_nats::connection::State::Connected {
                *self.heard.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some(std::time::Instant::now());
                if let Ok(info) = self.log_info().await {
                    self.last_in_log
                        .store(info.state.last_sequence, Ordering::Relaxed);
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(LOG_WATCH_EVERY) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }

    /// This replica, if a search it answers now may lack the newest
    /// reads: further behind the log than `max_lag`, not applying it, or
    /// not hearing from it.
    pub fn stale(&self) -> Option<pb::StaleReplica> {
        let behind = self.behind(self.last_in_log.load(Ordering::Relaxed));
        let unheard = match *self.heard.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(t) => t.elapsed() > LOG_SILENT_AFTER,
            None => false,
        };
        let problem = self.lock_problem().clone().or_else(|| {
            unheard.then(|| {
                format!(
                    "not connected to the log for over {} s",
                    LOG_SILENT_AFTER.as_secs()
                )
            })
        });
        (behind > self.cfg.max_lag || problem.is_some()).then(|| pb::StaleReplica {
            node: self.node.clone(),
            behind,
            problem: problem.unwrap_or_default(),
        })
    }

    /// Whether node `name` may take a snapshot of this node's store.
    pub fn may_snapshot(&self, name: &str) -> bool {
        self.cfg.snapshot_to.iter().any(|n| n == name)
    }

    fn subject(&self, force: &ForceId) -> String {
        format!("{}.{}", self.cfg.subject_prefix, force.as_str())
    }

    /// The subject of changes to the lists: lower case, so no force's
    /// (force codes are upper case).
    fn changes_subject(&self) -> String {
        format!("{}.changes", self.cfg.subject_prefix)
    }

    /// The stream, created as configured if it is missing.
    async fn stream(&self) -> Result<stream::Stream, String> {
        self.js
            .get_or_create_stream(stream::Config {
                name: self.cfg.stream.clone(),
                subjects: vec![format!("{}.>", self.cfg.subject_prefix)],
                num_replicas: self.cfg.replicas,
                max_age: Duration::from_secs(u64::from(self.cfg.log_days) * 86_400),
                storage: stream::StorageType::File,
                ..Default::default()
            })
            .await
            .map_err(|e| e.to_string())
    }

    /// The last log position the node's replica has applied.
    pub fn applied(&self) -> u64 {
        self.applied.load(Ordering::Relaxed)
    }

    /// Messages of its subjects this replica has still to apply: the
    /// applier's last reading, or, for a replica of every force, the log's
    /// last position `last_in_log` past what it applied, if more.
    fn behind(&self, last_in_log: u64) -> u64 {
        let pending = self.pending.load(Ordering::Relaxed);
        if self.holds.is_empty() {
            pending.max(last_in_log.saturating_sub(self.applied()))
        } else {
            pending
        }
    }

    /// The stream's state as the log gives it now (for at most a second).
    async fn log_info(&self) -> Result<stream::Info, String> {
        tokio::time::timeout(Duration::from_secs(1), async {
            let mut s = self
                .js
                .get_stream(&self.cfg.stream)
                .await
                .map_err(|e| e.to_string())?;
            s.info().await.cloned().map_err(|e| e.to_string())
        })
        .await
        .map_err(|_| "the log did not answer within a second".to_string())?
    }

    /// Appends `reads` of `force` (validated, received at `received_at`)
    /// to the log and waits until the node's replica has applied them:
    /// their outcomes, in order.
    pub async fn append(
        &self,
        force: &ForceId,
        reads: Vec<NewRead>,
    ) -> Result<Vec<Appended>, ServiceError> {
        if !self.holds.is_empty() && !self.holds.contains(force) {
            return Err(ServiceError::precondition(format!(
                "this node's store does not hold {force}'s reads: push them to a node whose replica does"
            )));
        }
        let Some(received_at) = reads.first().map(|r| r.received_at) else {
            return Ok(Vec::new());
        };
        // A replica that is not applying the log could not answer: the
        // BOF is told at once, rather than after appending to the log.
        if let Some(problem) = self.lock_problem().clone() {
            return Err(ServiceError::Later(
                format!("this node's replica is not applying the replicated log: {problem}"),
                RETRY_AFTER,
            ));
        }
        let count = reads.len();
        let nonce = self.next_nonce.fetch_add(1, Ordering::Relaxed);
        let batch = LoggedBatch {
            force: force.clone(),
            origin_node: self.node.clone(),
            nonce,
            received_at,
            reads: reads.into_iter().map(|r| (r.read, r.position)).collect(),
        };
        let payload = prost::Message::encode_to_vec(&nadc_proto::log::batch_to_entry(&batch));
        let (seq, applied) = self
            .publish_and_wait(self.subject(force), payload, nonce, "batch")
            .await?;
        match applied {
            Applied::Reads(outcomes) if outcomes.len() == count => Ok(outcomes),
            Applied::Reads(outcomes) => Err(ServiceError::internal(format!(
                "the log entry applied at position {seq} gave {} outcomes for {count} reads",
                outcomes.len()
            ))),
            Applied::Change(_) => Err(ServiceError::internal(format!(
                "the log entry applied at position {seq} was not the batch appended"
            ))),
        }
    }

    /// Makes a change to the replicas' shared state through the log, and
    /// waits until the node's replica has applied it: what it did, or why
    /// it changed nothing.
    pub async fn change(&self, change: Change) -> Result<Changed, ServiceError> {
        if let Some(problem) = self.lock_problem().clone() {
            return Err(ServiceError::Later(
                format!("this node's replica is not applying the replicated log: {problem}"),
                RETRY_AFTER,
            ));
        }
        let nonce = self.next_nonce.fetch_add(1, Ordering::Relaxed);
        let logged = LoggedChange {
            origin_node: self.node.clone(),
            nonce,
            change,
        };
        let payload = prost::Message::encode_to_vec(
            &nadc_proto::log::change_to_entry(&logged)
                .map_err(|e| ServiceError::internal(e.to_string()))?,
        );
        let (seq, applied) = self
            .publish_and_wait(self.changes_subject(), payload, nonce, "change")
            .await?;
        match applied {
            Applied::Change(r) => *r,
            Applied::Reads(_) => Err(ServiceError::internal(format!(
                "the log entry applied at position {seq} was not the change appended"
            ))),
        }
    }

    /// Appends `payload` (a log entry numbered `nonce` by this node) on
    /// `subject` and waits for the cluster's acknowledgement, then for the
    /// node's replica to apply it: its position and what the replica made
    /// of it.
    async fn publish_and_wait(
        &self,
        subject: String,
        payload: Vec<u8>,
        nonce: u64,
        what: &str,
    ) -> Result<(u64, Applied), ServiceError> {
        let (tx, rx) = oneshot::channel();
        self.lock_waiting().insert(nonce, tx);
        let later = |e: String| {
            ServiceError::Later(
                format!(
                    "replicated log unavailable, {what} not acknowledged: {e}; send it again \
                     (a batch's reads the log kept are then reported as duplicates)"
                ),
                RETRY_AFTER,
            )
        };
        let payload = prost::bytes::Bytes::from(payload);
        let publish = || async {
            self.js
                .publish(subject.clone(), payload.clone())
                .await?
                .await
        };
        let acked = match publish().await {
            // No stream yet (a new cluster, before any replica made it):
            // made as configured, and the entry sent once more.
            Err(e) if e.kind() == jetstream::context::PublishErrorKind::StreamNotFound => {
                match self.stream().await {
                    Ok(_) => publish().await.map_err(|e| later(e.to_string())),
                    Err(e) => Err(later(e)),
                }
            }
            r => r.map_err(|e| later(e.to_string())),
        };
        let ack = match acked {
            Ok(a) => a,
            Err(e) => {
                self.lock_waiting().remove(&nonce);
                return Err(e);
            }
        };
        let applied =
            tokio::time::timeout(Duration::from_millis(self.cfg.apply_timeout_ms), rx).await;
        self.lock_waiting().remove(&nonce);
        match applied {
            Ok(Ok(a)) => Ok((ack.sequence, a)),
            _ => Err(ServiceError::Later(
                format!(
                    "{what} replicated at position {} but not yet applied by this node's store; \
                     send it again (a batch's reads will be reported as duplicates)",
                    ack.sequence
                ),
                RETRY_AFTER,
            )),
        }
    }

    fn lock_problem(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.problem.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The replica's state and the log's, asked of the log now (for at
    /// most a second).
    pub async fn status(&self) -> pb::ReplicationStatus {
        let mut out = pb::ReplicationStatus {
            stream: self.cfg.stream.clone(),
            applied: self.applied(),
            behind: self.behind(0),
            problem: self.lock_problem().clone().unwrap_or_default(),
            forces: self.holds.iter().map(|f| f.to_string()).collect(),
            ..Default::default()
        };
        match self.log_info().await {
            Ok(info) => {
                out.log_reachable = true;
                out.last_in_log = info.state.last_sequence;
                out.behind = self.behind(info.state.last_sequence);
                if let Some(c) = info.cluster {
                    out.leader = c.leader.unwrap_or_default();
                    // The leader is not among its replicas.
                    out.replicas = c.replicas.len() as u32 + 1;
                    out.replicas_current = c
                        .replicas
                        .iter()
                        .filter(|p| p.current && !p.offline)
                        .count() as u32
                        + u32::from(!out.leader.is_empty());
                }
            }
            Err(e) => {
                if out.problem.is_empty() {
                    out.problem = format!("the log cannot be asked: {e}");
                }
            }
        }
        out
    }

    fn lock_waiting(&self) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<Applied>>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }
}
