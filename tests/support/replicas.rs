//! Two nodes in replicated mode on a three-server NATS JetStream cluster
//! (`tests/replication*.rs`): their configs, BOFs and users, and what
//! their stores hold.

use std::collections::BTreeSet;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nadc_bof::pb;
use nadc_core::time::{Clock, ManualClock};
use nadc_core::{Role, StoredRead};
use nadc_node::replication::ReplicationConfig;
use nadc_node::{NodeConfig, RunningNode, TlsFiles};
use nadc_pki::{InitSpec, PkiLayout};
use nadc_store::{RocksStore, Store, StoreOptions};
use tokio::net::TcpListener;
use tonic::transport::Channel;

use super::nats::NatsCluster;
use super::{access, force, now};

pub struct Replicas {
    pub dir: tempfile::TempDir,
    pub layout: PkiLayout,
    pub nats: NatsCluster,
    pub configs: Vec<NodeConfig>,
    pub nodes: Vec<Option<RunningNode>>,
    pub urls: Vec<String>,
    /// Each node's clock (kept across its restarts).
    pub clocks: Vec<Arc<ManualClock>>,
}

pub const NODES: [&str; 2] = ["node-1", "node-2"];

impl Replicas {
    pub async fn start() -> Self {
        Self::start_with(|_, _| {}).await
    }

    /// The same, node `i`'s configuration changed by `configure`.
    pub async fn start_with(configure: impl Fn(usize, &mut NodeConfig)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let spec = InitSpec {
            node_names: NODES
                .iter()
                .map(|n| n.to_string())
                .chain(["nats".to_string(), "node-3".to_string()])
                .collect(),
            forces: vec![force("AVON"), force("KENT")],
            users: vec![
                ("alice".into(), vec![Role::Analyst], force("AVON")),
                ("ada".into(), vec![Role::Admin], force("AVON")),
                ("sam".into(), vec![Role::Supervisor], force("AVON")),
                (
                    "harry".into(),
                    vec![Role::HotlistManager, Role::Analyst],
                    force("AVON"),
                ),
                (
                    "hilda".into(),
                    vec![Role::Disclosure, Role::Supervisor],
                    force("AVON"),
                ),
            ],
            ..Default::default()
        };
        let layout = nadc_pki::init(&dir.path().join("pki"), &spec, false).unwrap();
        let nats = NatsCluster::start(dir.path(), &layout, &NODES);
        let mut me = Self {
            dir,
            layout,
            nats,
            configs: Vec::new(),
            nodes: Vec::new(),
            urls: Vec::new(),
            clocks: Vec::new(),
        };
        for name in NODES {
            let mut cfg = NodeConfig::new(
                me.dir.path().join(name),
                TlsFiles {
                    ca: me.layout.ca_cert(),
                    cert: me.layout.node_cert(name),
                    key: me.layout.node_key(name),
                    crl: Vec::new(),
                },
            );
            cfg.replication = Some(ReplicationConfig {
                servers: me.nats.urls(),
                stream: "NADC_READS".into(),
                subject_prefix: "nadc.reads".into(),
                replicas: 3,
                log_days: 7,
                forces: Vec::new(),
                append_timeout_ms: 2_000,
                apply_timeout_ms: 30_000,
                max_lag: 1_000,
                snapshot_to: NODES.iter().map(|n| n.to_string()).collect(),
                retention_ahead_s: 3_600,
                tls: true,
            });
            configure(me.configs.len(), &mut cfg);
            me.configs.push(cfg);
            me.clocks.push(Arc::new(ManualClock::new(now())));
            me.nodes.push(None);
            me.urls.push(String::new());
        }
        // (Ports a restarted node can have again.)
        for i in 0..NODES.len() {
            let addr = format!("127.0.0.1:{}", super::restartable_port());
            me.start_node(i, &addr).await;
        }
        me
    }

    pub async fn start_node(&mut self, i: usize, addr: &str) {
        let listener = TcpListener::bind(addr).await.unwrap();
        self.urls[i] = format!("https://{}", listener.local_addr().unwrap());
        let data = self.configs[i].data_dir.clone();
        let store = tokio::task::spawn_blocking(move || {
            RocksStore::open(&data, StoreOptions::default()).unwrap()
        })
        .await
        .unwrap();
        let clock: Arc<dyn Clock> = self.clocks[i].clone();
        self.nodes[i] = Some(
            nadc_node::start_with_listener(&self.configs[i], Arc::new(store), listener, clock)
                .await
                .unwrap(),
        );
    }

    pub async fn channel(&self, i: usize, tls: nadc_bof::ClientTls) -> Channel {
        nadc_bof::connect(&self.urls[i], &tls).await.unwrap()
    }

    /// A channel to node `i` as user `name`.
    pub async fn user(&self, i: usize, name: &str) -> Channel {
        let tls = nadc_bof::ClientTls {
            ca: self.layout.ca_cert(),
            cert: self.layout.user_cert(name),
            key: self.layout.user_key(name),
        };
        self.channel(i, tls).await
    }

    pub async fn bof(&self, i: usize, f: &str) -> pb::ingest_client::IngestClient<Channel> {
        let tls = nadc_bof::ClientTls {
            ca: self.layout.ca_cert(),
            cert: self.layout.bof_cert(&force(f)),
            key: self.layout.bof_key(&force(f)),
        };
        pb::ingest_client::IngestClient::new(self.channel(i, tls).await)
    }

    /// Stops every node and gives each store's reads, in sequence order.
    pub async fn stop_and_read(&mut self) -> Vec<Vec<StoredRead>> {
        let mut out = Vec::new();
        for i in 0..NODES.len() {
            if let Some(n) = self.nodes[i].take() {
                n.shutdown().await.unwrap();
            }
            out.push(stored_reads(self.configs[i].data_dir.clone()).await);
        }
        out
    }
}

/// A node's replication status, as `nadc node info` shows it, asked as
/// `user`.
pub async fn replication_status(r: &Replicas, i: usize, user: &str) -> pb::ReplicationStatus {
    let tls = nadc_bof::ClientTls {
        ca: r.layout.ca_cert(),
        cert: r.layout.user_cert(user),
        key: r.layout.user_key(user),
    };
    pb::admin_client::AdminClient::new(r.channel(i, tls).await)
        .node_info(pb::NodeInfoRequest {})
        .await
        .unwrap()
        .into_inner()
        .replication
        .expect("a node in replicated mode tells its replication status")
}

/// Every read a stopped node's store holds (captured within 30 days of
/// the tests' now), in sequence order.
pub async fn stored_reads(data: PathBuf) -> Vec<StoredRead> {
    tokio::task::spawn_blocking(move || {
        let s = RocksStore::open(&data, StoreOptions::default()).unwrap();
        let mut reads = Vec::new();
        s.scan_days(
            now().minus_days(30),
            now().plus_millis(30 * 86_400_000),
            &mut |r| {
                reads.push(r);
                ControlFlow::Continue(())
            },
        )
        .unwrap();
        reads.sort_by_key(|r| r.seq);
        reads
    })
    .await
    .unwrap()
}

/// `n` reads of force `f` with their own positions (no camera register
/// needed), ids `{tag}-{i}`.
pub fn batch(f: &str, tag: &str, n: usize, seq: u64) -> pb::ReadBatch {
    let reads = (0..n)
        .map(|i| pb::Read {
            read_id: format!("{tag}-{i}"),
            vrm: format!(
                "R{}{:02} {}",
                tag.len() % 10,
                i % 100,
                ["ABC", "XYZ", "KLM"][i % 3]
            ),
            observed_at: Some(nadc_proto::to_pb_time(
                now().plus_millis(-((i as i64 + 1) * 60_000)),
            )),
            camera_id: format!("CAM{}", i % 7),
            lat: Some(51.4 + (i % 13) as f64 * 0.01),
            lon: Some(-2.6 + (i % 11) as f64 * 0.01),
            ..Default::default()
        })
        .collect();
    pb::ReadBatch {
        force: f.into(),
        batch_seq: seq,
        reads,
    }
}

/// Pushes `b`, sending it again while the node answers UNAVAILABLE with a
/// retry hint (as a BOF does), for at most 60 s.
pub async fn push_until_taken(
    client: &mut pb::ingest_client::IngestClient<Channel>,
    b: &pb::ReadBatch,
) -> pb::BatchResult {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match client.push_batch(b.clone()).await {
            Ok(r) => return r.into_inner(),
            Err(s) if s.code() == tonic::Code::Unavailable => {
                let hint = nadc_bof::retry_after(&s)
                    .unwrap_or_else(|| panic!("UNAVAILABLE without a retry hint: {s}"));
                assert!(Instant::now() < deadline, "never taken: {s}");
                tokio::time::sleep(hint.min(Duration::from_millis(300))).await;
            }
            Err(s) => panic!("{s}"),
        }
    }
}

/// Asserts that `reads` hold every (force, read id) of `expected` once and
/// nothing else, naming a few of any missing or extra.
pub fn assert_holds(which: &str, reads: &[StoredRead], expected: &BTreeSet<(String, String)>) {
    let got: BTreeSet<_> = reads
        .iter()
        .map(|r| (r.force.to_string(), r.read.read_id.clone()))
        .collect();
    assert_eq!(got.len(), reads.len(), "{which}: a read stored twice");
    let missing: Vec<_> = expected.difference(&got).collect();
    let extra: Vec<_> = got.difference(expected).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{which}: {} acknowledged reads missing (first: {:?}), {} never acknowledged (first: {:?})",
        missing.len(),
        &missing[..missing.len().min(5)],
        extra.len(),
        &extra[..extra.len().min(5)],
    );
}

/// Alice's timeline of `vrm` at node `i`: its rows, without the answering
/// node's name (the one thing two replicas' answers differ in), and its
/// summary.
pub async fn timeline(r: &Replicas, i: usize, vrm: &str) -> (Vec<pb::ReadRow>, pb::SearchSummary) {
    let (mut rows, summary) = timeline_as_sent(r, i, vrm).await;
    for row in &mut rows {
        if let Some(p) = row.provenance.as_mut() {
            p.node.clear();
        }
    }
    (rows, summary)
}

/// Alice's timeline of `vrm` at node `i` (national where it has peers),
/// its rows as sent, and its summary.
pub async fn timeline_as_sent(
    r: &Replicas,
    i: usize,
    vrm: &str,
) -> (Vec<pb::ReadRow>, pb::SearchSummary) {
    let tls = nadc_bof::ClientTls {
        ca: r.layout.ca_cert(),
        cert: r.layout.user_cert("alice"),
        key: r.layout.user_key("alice"),
    };
    let mut search = pb::search_client::SearchClient::new(r.channel(i, tls).await);
    let mut stream = search
        .vrm_timeline(pb::VrmTimelineRequest {
            access: access(),
            vrm: vrm.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let (mut rows, mut summary) = (Vec::new(), None);
    while let Some(c) = stream.message().await.unwrap() {
        match c.chunk {
            Some(pb::search_chunk::Chunk::Rows(b)) => rows.extend(b.rows),
            Some(pb::search_chunk::Chunk::Summary(s)) => summary = Some(s),
            _ => {}
        }
    }
    (rows, summary.expect("a search ends with its summary"))
}
/// The config file of a node process in replicated mode (its data dir and
/// certificate come from `nadc serve`'s flags).
pub fn replicated_config(dir: &std::path::Path, layout: &PkiLayout, servers: &[String]) -> PathBuf {
    let servers: Vec<String> = servers.iter().map(|s| format!("{s:?}")).collect();
    let text = format!(
        r#"data_dir = "data"

[tls]
ca = {ca:?}
cert = {cert:?}
key = {key:?}

[replication]
servers = [{servers}]
append_timeout_ms = 2000
"#,
        ca = layout.ca_cert().display().to_string(),
        cert = layout.node_cert("node-1").display().to_string(),
        key = layout.node_key("node-1").display().to_string(),
        servers = servers.join(", "),
    );
    let path = dir.join("node.toml");
    std::fs::write(&path, text).unwrap();
    path
}
