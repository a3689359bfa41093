//! Replicated mode on a real NATS JetStream cluster (issue 22): three
//! `nats-server` processes with R3 streams, two nodes whose stores are
//! replicas of the log, BOFs pushing over mTLS to either.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nadc_bof::pb;
use nadc_core::time::{Clock, ManualClock};
use nadc_core::{Role, StoredRead};
use nadc_node::replication::ReplicationConfig;
use nadc_node::{NodeConfig, RunningNode, TlsFiles};
use nadc_pki::{InitSpec, PkiLayout};
use nadc_store::{RocksStore, Store, StoreOptions};
use support::nats::NatsCluster;
use support::{access, force, now};
use tokio::net::TcpListener;
use tonic::transport::Channel;

struct Replicas {
    dir: tempfile::TempDir,
    layout: PkiLayout,
    nats: NatsCluster,
    configs: Vec<NodeConfig>,
    nodes: Vec<Option<RunningNode>>,
    urls: Vec<String>,
}

const NODES: [&str; 2] = ["node-1", "node-2"];

impl Replicas {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let spec = InitSpec {
            node_names: NODES
                .iter()
                .map(|n| n.to_string())
                .chain(["nats".to_string()])
                .collect(),
            forces: vec![force("AVON"), force("KENT")],
            users: vec![("alice".into(), vec![Role::Analyst], force("AVON"))],
            ..Default::default()
        };
        let layout = nadc_pki::init(&dir.path().join("pki"), &spec, false).unwrap();
        let nats = NatsCluster::start(
            dir.path(),
            &layout.ca_cert(),
            &layout.node_cert("nats"),
            &layout.node_key("nats"),
        );
        let mut me = Self {
            dir,
            layout,
            nats,
            configs: Vec::new(),
            nodes: Vec::new(),
            urls: Vec::new(),
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
                tls: true,
            });
            me.configs.push(cfg);
            me.nodes.push(None);
            me.urls.push(String::new());
        }
        for i in 0..NODES.len() {
            me.start_node(i, "127.0.0.1:0").await;
        }
        me
    }

    async fn start_node(&mut self, i: usize, addr: &str) {
        let listener = TcpListener::bind(addr).await.unwrap();
        self.urls[i] = format!("https://{}", listener.local_addr().unwrap());
        let data = self.configs[i].data_dir.clone();
        let store = tokio::task::spawn_blocking(move || {
            RocksStore::open(&data, StoreOptions::default()).unwrap()
        })
        .await
        .unwrap();
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(now()));
        self.nodes[i] = Some(
            nadc_node::start_with_listener(&self.configs[i], Arc::new(store), listener, clock)
                .await
                .unwrap(),
        );
    }

    async fn channel(&self, i: usize, tls: nadc_bof::ClientTls) -> Channel {
        nadc_bof::connect(&self.urls[i], &tls).await.unwrap()
    }

    async fn bof(&self, i: usize, f: &str) -> pb::ingest_client::IngestClient<Channel> {
        let tls = nadc_bof::ClientTls {
            ca: self.layout.ca_cert(),
            cert: self.layout.bof_cert(&force(f)),
            key: self.layout.bof_key(&force(f)),
        };
        pb::ingest_client::IngestClient::new(self.channel(i, tls).await)
    }

    /// Stops every node and gives each store's reads, in sequence order.
    async fn stop_and_read(&mut self) -> Vec<Vec<StoredRead>> {
        let mut out = Vec::new();
        for i in 0..NODES.len() {
            if let Some(n) = self.nodes[i].take() {
                n.shutdown().await.unwrap();
            }
            let data = self.configs[i].data_dir.clone();
            out.push(
                tokio::task::spawn_blocking(move || {
                    let s = RocksStore::open(&data, StoreOptions::default()).unwrap();
                    let mut reads = Vec::new();
                    s.scan_days(
                        now().minus_days(2),
                        now().plus_millis(86_400_000),
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
                .unwrap(),
            );
        }
        out
    }
}

/// `n` reads of force `f` with their own positions (no camera register
/// needed), ids `{tag}-{i}`.
fn batch(f: &str, tag: &str, n: usize, seq: u64) -> pb::ReadBatch {
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
async fn push_until_taken(
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

/// Every (force, read id) of `reads`, each once.
fn identities(reads: &[StoredRead]) -> BTreeSet<(String, String)> {
    let set: BTreeSet<_> = reads
        .iter()
        .map(|r| (r.force.to_string(), r.read.read_id.clone()))
        .collect();
    assert_eq!(set.len(), reads.len(), "a read stored twice");
    set
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_hold_the_same_reads_and_a_lost_quorum_refuses_pushes_until_it_is_back() {
    let mut r = Replicas::start().await;
    let mut expected: BTreeSet<(String, String)> = BTreeSet::new();
    let mut add = |b: &pb::ReadBatch| {
        for read in &b.reads {
            expected.insert((b.force.clone(), read.read_id.clone()));
        }
    };

    // AVON pushes to node-1, KENT to node-2.
    let mut avon = r.bof(0, "AVON").await;
    let mut kent = r.bof(1, "KENT").await;
    for (k, tag) in ["a1", "a2", "a3"].iter().enumerate() {
        let b = batch("AVON", tag, 100, k as u64);
        let res = push_until_taken(&mut avon, &b).await;
        assert_eq!((res.accepted, res.duplicates), (100, 0), "{res:?}");
        add(&b);
    }
    let b = batch("KENT", "k1", 50, 0);
    let res = push_until_taken(&mut kent, &b).await;
    assert_eq!((res.accepted, res.duplicates), (50, 0), "{res:?}");
    add(&b);

    // The same batch again, to the other node: every read a duplicate,
    // as a store tells it.
    let mut avon2 = r.bof(1, "AVON").await;
    let res = push_until_taken(&mut avon2, &batch("AVON", "a2", 100, 9)).await;
    assert_eq!((res.accepted, res.duplicates), (0, 100), "{res:?}");
    // A batch with a bad read: rejected by name, the rest replicated.
    let mut bad = batch("AVON", "a4", 10, 10);
    bad.reads[3].vrm = "!!".into();
    let res = push_until_taken(&mut avon, &bad).await;
    assert_eq!(res.accepted, 9);
    assert_eq!(res.rejected.len(), 1);
    assert_eq!(res.rejected[0].index, 3);
    bad.reads.remove(3);
    add(&bad);

    // Quorum lost: two of the three servers down. A push is refused with
    // UNAVAILABLE and a retry hint, and nothing of it is reported stored.
    r.nats.servers[1].kill();
    r.nats.servers[2].kill();
    let lost = batch("AVON", "q1", 20, 11);
    let refused = avon.push_batch(lost.clone()).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused}");
    assert!(nadc_bof::retry_after(&refused).is_some(), "{refused}");
    // Searches on the stores go on.
    let tls = nadc_bof::ClientTls {
        ca: r.layout.ca_cert(),
        cert: r.layout.user_cert("alice"),
        key: r.layout.user_key("alice"),
    };
    let mut search = pb::search_client::SearchClient::new(r.channel(1, tls).await);
    let mut stream = search
        .vrm_timeline(pb::VrmTimelineRequest {
            access: access(),
            vrm: "R200 ABC".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut rows = 0;
    while let Some(c) = stream.message().await.unwrap() {
        if let Some(pb::search_chunk::Chunk::Rows(b)) = c.chunk {
            rows += b.rows.len();
        }
    }
    assert!(rows > 0, "no rows from a replica while the log is down");

    // Quorum back: the refused batch is taken when sent again.
    r.nats.servers[1].restart();
    r.nats.servers[2].restart();
    let res = push_until_taken(&mut avon, &lost).await;
    assert_eq!(res.accepted + res.duplicates, 20, "{res:?}");
    add(&lost);

    // A last batch to node-1, then the same to node-2: each is
    // acknowledged only once that node's replica has applied it, and so
    // everything before it in the log (node-2's copy is all duplicates).
    let b = batch("AVON", "a5", 5, 12);
    let res = push_until_taken(&mut avon, &b).await;
    assert_eq!(res.accepted, 5, "{res:?}");
    let res = push_until_taken(&mut avon2, &b).await;
    assert_eq!(res.duplicates, 5, "{res:?}");
    add(&b);

    let stores = r.stop_and_read().await;
    assert_eq!(identities(&stores[0]), expected);
    assert_eq!(identities(&stores[1]), expected);
    // Applied in the same order: the same reads under the same numbers,
    // received at the same instants.
    assert!(stores[0] == stores[1], "the replicas differ");
}
