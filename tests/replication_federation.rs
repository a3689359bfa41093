//! Federation over replicas: a national search at an embedded node whose
//! peer is one replica of the log and whose peer's replica is the other.
//! While the peer answers from behind the log (cut off from the NATS
//! cluster), the next search asks the current replica first and reports
//! it as having answered in the peer's place, with why; the answer is
//! then whole and carries no stale notice. An analysis asks the same way.

mod support;

use std::time::{Duration, Instant};

use nadc_bof::pb;
use nadc_core::time::ManualClock;
use nadc_node::federation::PeerConfig;
use nadc_node::{NodeConfig, TlsFiles};
use std::sync::Arc;
use support::replicas::*;
use support::{access, now};

/// A national timeline of `vrm` at node `i`: the rows' read ids with the
/// node each came from, and the summary.
async fn national(r: &Replicas, i: usize, vrm: &str) -> (Vec<(String, String)>, pb::SearchSummary) {
    let (rows, summary) = timeline_as_sent(r, i, vrm).await;
    let mut ids: Vec<(String, String)> = rows
        .into_iter()
        .filter_map(|r| r.provenance)
        .map(|p| (p.bof_read_id, p.node))
        .collect();
    ids.sort();
    (ids, summary)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_national_search_asks_the_current_replica_before_a_peer_behind_the_log() {
    // node-3, embedded, federates with node-2 as its peer and node-1 as
    // node-2's replica; both replicas accept node-3's relayed searches.
    let addr3 = format!("127.0.0.1:{}", support::restartable_port());
    let url3 = format!("https://{addr3}");
    let mut r = Replicas::start_with(|i, cfg| {
        cfg.peers = vec![PeerConfig::new("node-3", &url3)];
        // node-2 reaches the cluster through nats-3 alone.
        if i == 1
            && let Some(rep) = cfg.replication.as_mut()
        {
            rep.servers.truncate(3);
            rep.servers.drain(..2);
        }
    })
    .await;
    let mut cfg = NodeConfig::new(
        r.dir.path().join("node-3"),
        TlsFiles {
            ca: r.layout.ca_cert(),
            cert: r.layout.node_cert("node-3"),
            key: r.layout.node_key("node-3"),
            crl: Vec::new(),
        },
    );
    cfg.peers = vec![
        PeerConfig::new("node-2", &r.urls[1]),
        PeerConfig {
            replica_of: Some("node-2".into()),
            ..PeerConfig::new("node-1", &r.urls[0])
        },
    ];
    r.configs.push(cfg);
    r.clocks.push(Arc::new(ManualClock::new(now())));
    r.nodes.push(None);
    r.urls.push(String::new());
    r.start_node(2, &addr3).await;

    let mut avon = r.bof(0, "AVON").await;
    let b = batch("AVON", "s0", 10, 0);
    push_until_taken(&mut avon, &b).await;
    let mut avon2 = r.bof(1, "AVON").await;
    assert_eq!(push_until_taken(&mut avon2, &b).await.duplicates, 10);
    // Both replicas current: node-2 answers as itself.
    let (ids, s) = national(&r, 2, "R200 ABC").await;
    assert_eq!(ids, [("s0-0".to_string(), "node-2".to_string())]);
    assert!(s.stale.is_empty() && s.nodes[1].replica.is_empty(), "{s:?}");

    // nats-3 goes: the cluster keeps its quorum and takes node-1's reads,
    // node-2 hears nothing more.
    r.nats.servers[2].kill();
    push_until_taken(&mut avon, &batch("AVON", "s1", 10, 1)).await;
    // (Measured: 10 to 37 s, as the cluster elects new leaders.)
    let deadline = Instant::now() + Duration::from_secs(90);
    let behind = loop {
        let (ids, s) = national(&r, 2, "R200 ABC").await;
        if !s.stale.is_empty() {
            break (ids, s);
        }
        assert!(Instant::now() < deadline, "node-2 never said it was behind");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    // The answer that said so came from node-2, and lacks s1's read.
    assert_eq!(behind.0, [("s0-0".to_string(), "node-2".to_string())]);
    assert_eq!(behind.1.stale[0].node, "node-2");

    // The next asks node-1 first: whole, current, and reported as node-1
    // answering in node-2's place, with why.
    let (ids, s) = national(&r, 2, "R200 ABC").await;
    assert_eq!(
        ids,
        [
            ("s0-0".to_string(), "node-1".to_string()),
            ("s1-0".to_string(), "node-1".to_string())
        ]
    );
    assert!(s.stale.is_empty(), "{:?}", s.stale);
    let o = &s.nodes[1];
    assert_eq!(
        (o.node.as_str(), o.ok, o.replica.as_str()),
        ("node-2", true, "node-1")
    );
    assert!(
        o.replica_reason.contains("behind the log"),
        "{}",
        o.replica_reason
    );

    // An analysis asks the same way: hot spots of the vehicle count both
    // reads, from node-1 in node-2's place, and say nothing is stale.
    let mut analysis = pb::analysis_client::AnalysisClient::new(r.user(2, "alice").await);
    let t = |m: i64| Some(nadc_proto::to_pb_time(now().plus_millis(m * 60_000)));
    let h = analysis
        .hot_spots(pb::HotSpotsRequest {
            access: access(),
            vrms: vec!["R200 ABC".into()],
            from: t(-180),
            to: t(1),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(h.total, 2, "{h:?}");
    assert!(h.stale.is_empty(), "{:?}", h.stale);
    let o = h.nodes.iter().find(|o| o.node == "node-2").unwrap();
    assert_eq!((o.ok, o.replica.as_str()), (true, "node-1"));
    assert!(o.replica_reason.contains("behind the log"), "{o:?}");
}
