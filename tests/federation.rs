//! Federation over mTLS between three nodes on 127.0.0.1, each with its own
//! RocksDB and certificate, holding different forces' data: a national
//! timeline at any node spans them all in time order with provenance and
//! MoU flags; each node audits the relayed search as its own; only a
//! configured peer's node certificate may relay; a dead node gives a
//! partial answer naming it, within the deadline.

use std::sync::Arc;
use std::time::{Duration, Instant};

mod support;

use nadc_bof::pb;
use nadc_core::Role;
use nadc_core::time::{Clock, ManualClock};
use nadc_node::federation::PeerConfig;
use nadc_store::{RocksStore, StoreOptions};
use tokio::net::TcpListener;
use tonic::transport::Channel;

use support::cluster::{Cluster, NODES};
use support::now;

fn read(id: &str, vrm: &str, mins_ago: i64) -> pb::Read {
    pb::Read {
        read_id: id.into(),
        vrm: vrm.into(),
        observed_at: Some(nadc_proto::to_pb_time(
            now().plus_millis(-mins_ago * 60_000),
        )),
        camera_id: "GPS-1".into(),
        lat: Some(51.45),
        lon: Some(-2.58),
        ..Default::default()
    }
}

fn access() -> Option<pb::AccessContext> {
    Some(pb::AccessContext {
        purpose: "serious-crime".into(),
        case_ref: "OP-NATIONAL".into(),
        ..Default::default()
    })
}

async fn timeline(
    ch: Channel,
    req: pb::VrmTimelineRequest,
) -> Result<(Vec<pb::ReadRow>, pb::SearchSummary), tonic::Status> {
    let mut c = pb::search_client::SearchClient::new(ch);
    let mut s = c.vrm_timeline(req).await?.into_inner();
    let (mut rows, mut summary) = (Vec::new(), None);
    while let Some(c) = s.message().await? {
        match c.chunk.unwrap() {
            pb::search_chunk::Chunk::Rows(b) => rows.extend(b.rows),
            pb::search_chunk::Chunk::Summary(s) => summary = Some(s),
            pb::search_chunk::Chunk::Vrms(_) => {}
        }
    }
    Ok((rows, summary.unwrap()))
}

fn ids(rows: &[pb::ReadRow]) -> Vec<(String, String, bool)> {
    rows.iter()
        .map(|r| {
            let p = r.provenance.clone().unwrap();
            (p.node, p.bof_read_id, r.mou_consult)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_national_timeline_spans_the_nodes_and_a_dead_node_makes_it_partial() {
    let mut c = Cluster::start().await;
    // Each node holds one force's reads of the same vehicle, interleaved in time.
    for (i, (_, f)) in NODES.iter().enumerate() {
        let mut bof = pb::ingest_client::IngestClient::new(c.bof(i, f).await);
        let base = 10 * i as i64;
        let r = bof
            .push_batch(pb::ReadBatch {
                batch_seq: 1,
                force: String::new(),
                reads: vec![
                    read(&format!("{f}-early"), "NA71ONL", 60 - base),
                    read(&format!("{f}-late"), "NA71ONL", 30 - base),
                ],
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.accepted, 2, "{:?}", r.rejected);
    }
    let req = pb::VrmTimelineRequest {
        vrm: "NA71ONL".into(),
        access: access(),
        ..Default::default()
    };
    let (rows, summary) = timeline(c.user(0, "alice").await, req.clone())
        .await
        .unwrap();
    assert_eq!(
        ids(&rows),
        [
            ("node-1".to_string(), "AVON-early".to_string(), false),
            ("node-2".into(), "KENT-early".into(), true),
            ("node-3".into(), "MET-early".into(), true),
            ("node-1".into(), "AVON-late".into(), false),
            ("node-2".into(), "KENT-late".into(), true),
            ("node-3".into(), "MET-late".into(), true),
        ]
    );
    assert!(!summary.partial);
    assert_eq!(summary.rows, 6);
    assert_eq!(summary.nodes.len(), 3);
    assert!(summary.nodes.iter().all(|n| n.ok && n.rows == 2));
    let forces: Vec<(String, u64)> = summary
        .forces
        .iter()
        .map(|f| (f.force.clone(), f.rows))
        .collect();
    assert_eq!(
        forces,
        [("AVON".into(), 2), ("KENT".into(), 2), ("MET".into(), 2)]
    );
    // The limit applies to the merged result.
    let (rows, summary) = timeline(
        c.user(0, "alice").await,
        pb::VrmTimelineRequest {
            limit: 4,
            ..req.clone()
        },
    )
    .await
    .unwrap();
    assert_eq!(rows.len(), 4);
    assert!(summary.truncated);
    // A fuzzy VRM search is national too, ranked as one result, and paging
    // applies to the merged ranking.
    let fuzzy = |offset: u32, limit: u32| pb::VrmSearchRequest {
        pattern: "NA7IONL".into(),
        fuzzy: true,
        offset,
        limit,
        access: access(),
        ..Default::default()
    };
    let run_fuzzy = |r: pb::VrmSearchRequest| async {
        let mut client = pb::search_client::SearchClient::new(c.user(0, "alice").await);
        let mut s = client.vrm_search(r).await.unwrap().into_inner();
        let mut rows = Vec::new();
        while let Some(ch) = s.message().await.unwrap() {
            if let Some(pb::search_chunk::Chunk::Rows(b)) = ch.chunk {
                rows.extend(b.rows);
            }
        }
        rows
    };
    let whole = run_fuzzy(fuzzy(0, 0)).await;
    assert_eq!(whole.len(), 6);
    assert!(
        whole
            .iter()
            .all(|r| r.r#match.as_ref().unwrap().kind == pb::vrm_match::Kind::Confusable as i32)
    );
    let page = run_fuzzy(fuzzy(2, 2)).await;
    assert_eq!(ids(&page), ids(&whole[2..4]));

    // This node only.
    let (rows, _) = timeline(
        c.user(0, "alice").await,
        pb::VrmTimelineRequest {
            scope: pb::Scope::Local as i32,
            ..req.clone()
        },
    )
    .await
    .unwrap();
    assert_eq!(rows.len(), 2);

    // KENT's node audited alice's search, relayed by node-1, as its own:
    // KENT can see who searched its data.
    let mut audit = pb::audit_client::AuditClient::new(c.user(1, "kate").await);
    let mut s = audit
        .query(pb::AuditQuery {
            owning_force: "KENT".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut entries = Vec::new();
    while let Some(e) = s.message().await.unwrap() {
        entries.push(e);
    }
    assert!(!entries.is_empty());
    assert_eq!(entries[0].user, "alice@node-1");
    assert_eq!(entries[0].force, "AVON");
    assert_eq!(entries[0].case_ref, "OP-NATIONAL");

    // node-1's case register holds every node's reads the national search
    // returned, grouped by owning agency in the schedule.
    let mut d = pb::disclosure_client::DisclosureClient::new(c.user(0, "alice").await);
    let schedule = d
        .schedule(pb::ScheduleRequest {
            case_ref: "OP-NATIONAL".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let per_agency: Vec<(String, Vec<String>)> = schedule
        .agencies
        .iter()
        .map(|a| {
            (
                a.force.clone(),
                a.reads.iter().map(|i| i.node.clone()).collect(),
            )
        })
        .collect();
    assert_eq!(
        per_agency,
        [
            (
                "AVON".to_string(),
                vec!["node-1".to_string(), "node-1".into()]
            ),
            ("KENT".into(), vec!["node-2".into(), "node-2".into()]),
            ("MET".into(), vec!["node-3".into(), "node-3".into()]),
        ]
    );

    // Only a configured peer's node certificate may relay a search.
    let relayed = pb::VrmTimelineRequest {
        on_behalf_of: Some(pb::OnBehalfOf {
            user: "mallory".into(),
            force: "KENT".into(),
            roles: vec!["analyst".into()],
            via_node: "x".into(),
        }),
        scope: pb::Scope::Local as i32,
        ..req.clone()
    };
    let bof = c.bof(1, "KENT").await;
    let e = timeline(bof, relayed.clone()).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
    let stranger = c
        .connect(1, c.layout.node_cert("node-3"), c.layout.node_key("node-3"))
        .await;
    let e = timeline(stranger, relayed).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
    assert!(
        e.message().contains("not a configured peer"),
        "{}",
        e.message()
    );

    // node-3 goes down: the answer comes back by the deadline, partial,
    // naming it.
    c.nodes[2].take().unwrap().shutdown().await.unwrap();
    let started = Instant::now();
    let (rows, summary) = timeline(c.user(0, "alice").await, req).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(rows.len(), 4);
    assert!(summary.partial);
    let dead = summary.nodes.iter().find(|n| n.node == "node-3").unwrap();
    assert!(!dead.ok);
    assert!(!dead.error.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_peer_that_never_answers_does_not_hold_the_search_hostage() {
    let address = silent_peer().await;
    let c = Cluster::start_with(vec![PeerConfig::new("node-4", &address)], None).await;
    let mut bof = pb::ingest_client::IngestClient::new(c.bof(1, "KENT").await);
    bof.push_batch(pb::ReadBatch {
        batch_seq: 1,
        force: String::new(),
        reads: vec![read("k1", "SL0W123", 5)],
    })
    .await
    .unwrap();
    let started = Instant::now();
    let (rows, summary) = timeline(
        c.user(0, "alice").await,
        pb::VrmTimelineRequest {
            vrm: "SL0W123".into(),
            access: access(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let took = started.elapsed();
    // The deadline is 1.5 s: the answer comes (well before the test's own
    // patience runs out), with node-2's row and node-4 named as missing.
    assert!(took < Duration::from_secs(30), "{took:?}");
    assert_eq!(ids(&rows), [("node-2".to_string(), "k1".to_string(), true)]);
    assert!(summary.partial);
    let silent = summary.nodes.iter().find(|n| n.node == "node-4").unwrap();
    assert!(!silent.ok);
    assert!(silent.error.contains("deadline"), "{}", silent.error);
}

/// A node that accepts connections and then says nothing; its address.
async fn silent_peer() -> String {
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("https://{}", silent.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = silent.accept().await {
            held.push(sock);
        }
    });
    address
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_answers_for_a_peer_that_fails_or_is_slow() {
    let mut c = Cluster::start().await;
    // node-3 holds KENT's reads too, as node-2's replica.
    for i in [1, 2] {
        let mut bof = pb::ingest_client::IngestClient::new(c.bof(i, "KENT").await);
        let r = bof
            .push_batch(pb::ReadBatch {
                batch_seq: 1,
                force: String::new(),
                reads: vec![read("k1", "RE91ICA", 20), read("k2", "RE91ICA", 10)],
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.accepted, 2, "{:?}", r.rejected);
    }
    let node_3 = c.urls[2].clone();
    let replica = |of: &str| nadc_node::federation::PeerConfig {
        replica_of: Some(of.into()),
        ..PeerConfig::new("node-3", &node_3)
    };
    // A replica of a peer not configured is refused at start, naming it.
    let mut bad = c.configs[0].clone();
    bad.peers = vec![replica("node-9")];
    let elsewhere = tempfile::tempdir().unwrap();
    let store = RocksStore::open(elsewhere.path(), StoreOptions::default()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(now()));
    let refused = nadc_node::start_with_listener(&bad, Arc::new(store), listener, clock).await;
    let e = refused.err().expect("a replica of no peer is refused");
    assert!(
        e.to_string()
            .contains("node-9, which is not a configured peer"),
        "{e}"
    );

    c.configs[0].peers = vec![PeerConfig::new("node-2", &c.urls[1]), replica("node-2")];
    c.restart(0).await;
    let req = pb::VrmTimelineRequest {
        vrm: "RE91ICA".into(),
        access: access(),
        ..Default::default()
    };
    let outcomes = |s: &pb::SearchSummary| -> Vec<(String, bool, String)> {
        s.nodes
            .iter()
            .map(|o| (o.node.clone(), o.ok, o.replica.clone()))
            .collect()
    };

    // node-2 answers; its replica is not asked as a node of its own.
    let (rows, s) = timeline(c.user(0, "alice").await, req.clone())
        .await
        .unwrap();
    assert_eq!(
        ids(&rows),
        [
            ("node-2".to_string(), "k1".to_string(), true),
            ("node-2".into(), "k2".into(), true)
        ]
    );
    assert_eq!(
        outcomes(&s),
        [
            ("node-1".to_string(), true, String::new()),
            ("node-2".into(), true, String::new())
        ]
    );

    // node-2 is down: node-3 answers in its place, and the answer is whole.
    c.nodes[1].take().unwrap().shutdown().await.unwrap();
    let (rows, s) = timeline(c.user(0, "alice").await, req.clone())
        .await
        .unwrap();
    assert_eq!(
        ids(&rows),
        [
            ("node-3".to_string(), "k1".to_string(), true),
            ("node-3".into(), "k2".into(), true)
        ]
    );
    assert!(!s.partial);
    assert_eq!(outcomes(&s)[1], ("node-2".into(), true, "node-3".into()));
    assert!(!s.nodes[1].replica_reason.is_empty());

    // A peer that never answers, hedged after 100 ms: node-3 answers well
    // within the 1.5 s deadline, and the answer is whole.
    c.configs[0].peers = vec![
        PeerConfig::new("node-4", &silent_peer().await),
        replica("node-4"),
    ];
    c.configs[0].federation_hedge_ms = Some(100);
    c.restart(0).await;
    let (rows, s) = timeline(c.user(0, "alice").await, req).await.unwrap();
    assert_eq!(rows.len(), 2);
    assert!(!s.partial);
    assert_eq!(outcomes(&s)[1], ("node-4".into(), true, "node-3".into()));
    assert!(
        s.nodes[1].replica_reason.contains("hedge delay"),
        "{}",
        s.nodes[1].replica_reason
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_national_search_needs_the_national_permission() {
    let c = Cluster::start_with(Vec::new(), Some(vec![Role::Supervisor])).await;
    let req = pb::VrmTimelineRequest {
        vrm: "AB12CDE".into(),
        access: access(),
        ..Default::default()
    };
    let e = timeline(c.user(0, "alice").await, req.clone())
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
    assert!(e.message().contains("national"), "{}", e.message());
    // Her own node only is allowed.
    let (rows, summary) = timeline(
        c.user(0, "alice").await,
        pb::VrmTimelineRequest {
            scope: pb::Scope::Local as i32,
            ..req
        },
    )
    .await
    .unwrap();
    assert!(rows.is_empty());
    assert!(summary.nodes.is_empty());
}

fn area(lat: f64, lon: f64, radius_m: f64) -> pb::Area {
    pb::Area {
        lat,
        lon,
        radius_m,
        from: Some(nadc_proto::to_pb_time(now().plus_millis(-3_600_000))),
        to: Some(nadc_proto::to_pb_time(now())),
        polygon: String::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn national_searches_skip_nodes_that_cannot_contribute() {
    let c = Cluster::start().await;
    // AVON's cameras in Bristol (node-1), KENT's in Maidstone (node-2),
    // MET's in London (node-3).
    let places = [(51.4545, -2.5879), (51.2720, 0.5290), (51.5074, -0.1278)];
    for (i, (_, f)) in NODES.iter().enumerate() {
        let (lat, lon) = places[i];
        let mut admin = pb::admin_client::AdminClient::new(c.bof(i, f).await);
        admin
            .import_cameras(pb::ImportCamerasRequest {
                cameras: vec![pb::Camera {
                    camera_id: "CAM-1".into(),
                    lat,
                    lon,
                    kind: pb::CameraKind::Fixed as i32,
                    ..Default::default()
                }],
            })
            .await
            .unwrap();
        let mut bof = pb::ingest_client::IngestClient::new(c.bof(i, f).await);
        bof.push_batch(pb::ReadBatch {
            batch_seq: 1,
            force: String::new(),
            reads: vec![pb::Read {
                read_id: format!("{f}-1"),
                vrm: format!("GE0{i}ABC"),
                observed_at: Some(nadc_proto::to_pb_time(
                    now().plus_millis(-600_000 + i as i64),
                )),
                camera_id: "CAM-1".into(),
                make: Some("Ford".into()),
                ..Default::default()
            }],
        })
        .await
        .unwrap();
    }
    let geo = |areas: Vec<pb::Area>, matching: pb::AreaMatch| pb::GeoSearchRequest {
        areas,
        r#match: matching as i32,
        access: access(),
        ..Default::default()
    };
    let run = |req: pb::GeoSearchRequest| async {
        let mut client = pb::search_client::SearchClient::new(c.user(0, "alice").await);
        let mut s = client.geo_search(req).await.unwrap().into_inner();
        let (mut rows, mut vrms, mut summary) = (Vec::new(), Vec::new(), None);
        while let Some(ch) = s.message().await.unwrap() {
            match ch.chunk.unwrap() {
                pb::search_chunk::Chunk::Rows(b) => rows.extend(b.rows),
                pb::search_chunk::Chunk::Vrms(v) => vrms.extend(v.vrms),
                pb::search_chunk::Chunk::Summary(x) => summary = Some(x),
            }
        }
        (rows, vrms, summary.unwrap())
    };
    let outcome = |s: &pb::SearchSummary, node: &str| {
        let o = s.nodes.iter().find(|o| o.node == node).unwrap();
        (o.ok, o.skipped, o.rows)
    };

    // Near Maidstone: only node-2 can contribute; node-3 (London, 50 km
    // away) is not asked.
    let (rows, vrms, s) = run(geo(
        vec![area(places[1].0, places[1].1, 2_000.0)],
        pb::AreaMatch::Any,
    ))
    .await;
    assert_eq!(
        ids(&rows),
        [("node-2".to_string(), "KENT-1".to_string(), true)]
    );
    assert_eq!(vrms.len(), 1);
    assert_eq!(outcome(&s, "node-2"), (true, false, 1));
    assert_eq!(outcome(&s, "node-3"), (true, true, 0));
    assert!(!s.partial);

    // The same place two days before node-2's earliest read: node-2 holds
    // nothing that old, so it is not asked either.
    let days_ago = |d: i64| Some(nadc_proto::to_pb_time(now().plus_millis(-d * 86_400_000)));
    let (rows, _, s) = run(geo(
        vec![pb::Area {
            from: days_ago(3),
            to: days_ago(2),
            ..area(places[1].0, places[1].1, 2_000.0)
        }],
        pb::AreaMatch::Any,
    ))
    .await;
    assert!(rows.is_empty());
    assert_eq!(outcome(&s, "node-2"), (true, true, 0));
    assert!(!s.partial);

    // Bristol or London: node-1's and node-3's reads in time order, with
    // the per-VRM summaries of both; node-2 skipped.
    let (rows, vrms, s) = run(geo(
        vec![
            area(places[0].0, places[0].1, 2_000.0),
            area(places[2].0, places[2].1, 2_000.0),
        ],
        pb::AreaMatch::Any,
    ))
    .await;
    assert_eq!(
        ids(&rows),
        [
            ("node-1".to_string(), "AVON-1".to_string(), false),
            ("node-3".into(), "MET-1".into(), true),
        ]
    );
    let summary_vrms: Vec<(String, Vec<u32>)> = vrms
        .iter()
        .map(|v| (v.vrm.clone(), v.areas.clone()))
        .collect();
    assert_eq!(
        summary_vrms,
        [
            ("GE00ABC".to_string(), vec![0]),
            ("GE02ABC".into(), vec![1])
        ]
    );
    assert_eq!(outcome(&s, "node-2"), (true, true, 0));

    // ALL across nodes: a vehicle read in Bristol (AVON, node-1) and then
    // in London (MET, node-3) is found; those seen in one place only are not.
    for (i, f, mins) in [(0, "AVON", 30), (2, "MET", 10)] {
        let mut bof = pb::ingest_client::IngestClient::new(c.bof(i, f).await);
        bof.push_batch(pb::ReadBatch {
            batch_seq: 2,
            force: String::new(),
            reads: [("TRAVEL", "TR4VELR"), ("STAYED", "ST4YEDS")]
                .into_iter()
                // A second Volvo, seen in Bristol only.
                .filter(|(id, _)| *id == "TRAVEL" || f == "AVON")
                .map(|(id, vrm)| pb::Read {
                    read_id: format!("{f}-{id}"),
                    vrm: vrm.into(),
                    observed_at: Some(nadc_proto::to_pb_time(now().plus_millis(-mins * 60_000))),
                    camera_id: "CAM-1".into(),
                    make: Some("Volvo".into()),
                    ..Default::default()
                })
                .collect(),
        })
        .await
        .unwrap();
    }
    let (rows, vrms, s) = run(geo(
        vec![
            area(places[0].0, places[0].1, 2_000.0),
            area(places[2].0, places[2].1, 2_000.0),
        ],
        pb::AreaMatch::All,
    ))
    .await;
    assert_eq!(
        ids(&rows),
        [
            ("node-1".to_string(), "AVON-TRAVEL".to_string(), false),
            ("node-3".into(), "MET-TRAVEL".into(), true),
        ]
    );
    let all: Vec<(String, Vec<u32>, u64)> = vrms
        .iter()
        .map(|v| (v.vrm.clone(), v.areas.clone(), v.reads))
        .collect();
    assert_eq!(all, [("TR4VELR".to_string(), vec![0, 1], 2)]);
    assert!(!s.partial);
    assert_eq!(outcome(&s, "node-2"), (true, true, 0));

    // The same as a vehicle search: Volvos in Bristol and then London.
    let mut client = pb::search_client::SearchClient::new(c.user(0, "alice").await);
    let mut stream = client
        .vehicle_search(pb::VehicleSearchRequest {
            make: Some("volvo".into()),
            areas: vec![
                area(places[0].0, places[0].1, 2_000.0),
                area(places[2].0, places[2].1, 2_000.0),
            ],
            r#match: pb::AreaMatch::All as i32,
            access: access(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let (mut volvos, mut summary) = (Vec::new(), None);
    while let Some(ch) = stream.message().await.unwrap() {
        match ch.chunk {
            Some(pb::search_chunk::Chunk::Rows(b)) => volvos.extend(b.rows),
            Some(pb::search_chunk::Chunk::Summary(x)) => summary = Some(x),
            _ => {}
        }
    }
    assert_eq!(
        ids(&volvos),
        [
            ("node-1".to_string(), "AVON-TRAVEL".to_string(), false),
            ("node-3".into(), "MET-TRAVEL".into(), true),
        ]
    );
    assert!(!summary.expect("a summary").partial);

    // "What passed KENT's camera", asked at node-1: node-2 answers.
    let mut client = pb::search_client::SearchClient::new(c.user(0, "alice").await);
    let mut stream = client
        .camera_search(pb::CameraSearchRequest {
            cameras: vec![pb::CameraRef {
                force: "KENT".into(),
                camera_id: "CAM-1".into(),
            }],
            from: Some(nadc_proto::to_pb_time(now().plus_millis(-3_600_000))),
            to: Some(nadc_proto::to_pb_time(now())),
            access: access(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let (mut camera_rows, mut summary) = (Vec::new(), None);
    while let Some(ch) = stream.message().await.unwrap() {
        match ch.chunk {
            Some(pb::search_chunk::Chunk::Rows(b)) => camera_rows.extend(b.rows),
            Some(pb::search_chunk::Chunk::Summary(x)) => summary = Some(x),
            _ => {}
        }
    }
    assert_eq!(
        ids(&camera_rows),
        [("node-2".to_string(), "KENT-1".to_string(), true)]
    );
    // Only node-2 holds KENT's reads: node-3 is not asked.
    let summary = summary.expect("a summary");
    assert_eq!(outcome(&summary, "node-2"), (true, false, 1));
    assert_eq!(outcome(&summary, "node-3"), (true, true, 0));

    // A timeline ending before the peers' earliest reads: neither is asked.
    let (rows, summary) = timeline(
        c.user(0, "alice").await,
        pb::VrmTimelineRequest {
            vrm: "GE01ABC".into(),
            from: days_ago(3),
            to: days_ago(2),
            access: access(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(rows.is_empty());
    assert_eq!(outcome(&summary, "node-2"), (true, true, 0));
    assert_eq!(outcome(&summary, "node-3"), (true, true, 0));
    // Over the last hour node-2 is asked, and has the read.
    let (rows, summary) = timeline(
        c.user(0, "alice").await,
        pb::VrmTimelineRequest {
            vrm: "GE01ABC".into(),
            from: days_ago(1),
            to: Some(nadc_proto::to_pb_time(now())),
            access: access(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        ids(&rows),
        [("node-2".to_string(), "KENT-1".to_string(), true)]
    );
    assert_eq!(outcome(&summary, "node-2"), (true, false, 1));

    // Fords anywhere in the last hour: one on each node, in time order.
    let mut stream = client
        .vehicle_search(pb::VehicleSearchRequest {
            make: Some("ford".into()),
            from: Some(nadc_proto::to_pb_time(now().plus_millis(-3_600_000))),
            to: Some(nadc_proto::to_pb_time(now())),
            access: access(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut fords = Vec::new();
    while let Some(ch) = stream.message().await.unwrap() {
        if let Some(pb::search_chunk::Chunk::Rows(b)) = ch.chunk {
            fords.extend(b.rows);
        }
    }
    let nodes: Vec<String> = ids(&fords).into_iter().map(|(n, _, _)| n).collect();
    assert_eq!(nodes, ["node-1", "node-2", "node-3"]);

    // Convoy across nodes: a companion a minute behind the target in
    // Bristol (node-1) and in London (node-3) is seen with it twice, at two
    // cameras, only when both nodes are asked.
    for (i, f, mins) in [(0, "AVON", 50), (2, "MET", 40)] {
        let mut bof = pb::ingest_client::IngestClient::new(c.bof(i, f).await);
        let at = |m: i64| Some(nadc_proto::to_pb_time(now().plus_millis(-m * 60_000)));
        bof.push_batch(pb::ReadBatch {
            batch_seq: 3,
            force: String::new(),
            reads: vec![
                pb::Read {
                    read_id: format!("{f}-TGT"),
                    vrm: "CV01TGT".into(),
                    observed_at: at(mins),
                    camera_id: "CAM-1".into(),
                    ..Default::default()
                },
                pb::Read {
                    read_id: format!("{f}-CMP"),
                    vrm: "CV02CMP".into(),
                    observed_at: at(mins - 1),
                    camera_id: "CAM-1".into(),
                    ..Default::default()
                },
            ],
        })
        .await
        .unwrap();
    }
    let convoy = |scope: pb::Scope| pb::ConvoyRequest {
        vrms: vec!["CV01TGT".into()],
        from: Some(nadc_proto::to_pb_time(now().plus_millis(-3_600_000))),
        to: Some(nadc_proto::to_pb_time(now())),
        scope: scope as i32,
        access: access(),
        ..Default::default()
    };
    let run_convoy = |r: pb::ConvoyRequest| async {
        let mut client = pb::search_client::SearchClient::new(c.user(0, "alice").await);
        let mut s = client.convoy(r).await.unwrap().into_inner();
        let (mut companions, mut summary) = (Vec::new(), None);
        while let Some(ch) = s.message().await.unwrap() {
            match ch.chunk.unwrap() {
                pb::convoy_chunk::Chunk::Companion(x) => companions.push(x),
                pb::convoy_chunk::Chunk::Summary(x) => summary = Some(x),
            }
        }
        (companions, summary.unwrap())
    };
    let (companions, s) = run_convoy(convoy(pb::Scope::Unspecified)).await;
    assert_eq!(companions.len(), 1);
    let k = &companions[0];
    assert_eq!(
        (k.vrm.as_str(), k.co_occurrences, k.cameras, k.rank),
        ("CV02CMP", 2, 2, 1)
    );
    let nodes: Vec<String> = k
        .pairs
        .iter()
        .map(|p| {
            p.companion
                .as_ref()
                .unwrap()
                .provenance
                .as_ref()
                .unwrap()
                .node
                .clone()
        })
        .collect();
    assert_eq!(nodes, ["node-1", "node-3"]);
    assert_eq!(s.target_reads, 2);
    assert!(!s.partial);
    let (companions, _) = run_convoy(convoy(pb::Scope::Local)).await;
    assert!(
        companions.is_empty(),
        "one co-occurrence on node-1 alone is below the minimum"
    );
    // Two days ago no peer held anything: both are skipped.
    let (companions, s) = run_convoy(pb::ConvoyRequest {
        from: days_ago(3),
        to: days_ago(2),
        ..convoy(pb::Scope::Unspecified)
    })
    .await;
    assert!(companions.is_empty());
    let skipped: Vec<&str> = s
        .nodes
        .iter()
        .filter(|o| o.skipped)
        .map(|o| o.node.as_str())
        .collect();
    assert_eq!(skipped, ["node-2", "node-3"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_hotlist_hits_of_every_node_come_back_in_one_national_history() {
    let mut c = Cluster::start().await;
    // KENT's node has a list; a KENT read hits it there, and an AVON read of
    // the same plate on node-1 does not (node-1 has no list).
    let mut lists = pb::hotlists_client::HotlistsClient::new(c.user(1, "hank").await);
    lists
        .create_hotlist(pb::CreateHotlistRequest {
            name: "kent-wanted".into(),
            purpose: "serious crime".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    lists
        .add_entries(pb::AddEntriesRequest {
            list: Some(pb::HotlistRef {
                owner: String::new(),
                name: "kent-wanted".into(),
            }),
            entries: vec![pb::HotlistEntry {
                vrm: "HI75KNT".into(),
                reason: "burglary".into(),
                intel_ref: "KENT/INT/7".into(),
                action: pb::Action::Stop as i32,
                expires_at: Some(nadc_proto::to_pb_time(now().plus_millis(86_400_000))),
                ..Default::default()
            }],
            look_back_days: 0,
            access: None,
        })
        .await
        .unwrap();
    for (i, f) in [(1, "KENT"), (0, "AVON")] {
        let mut bof = pb::ingest_client::IngestClient::new(c.bof(i, f).await);
        bof.push_batch(pb::ReadBatch {
            batch_seq: 1,
            force: String::new(),
            reads: vec![read(&format!("{f}-h"), "HI75KNT", 5)],
        })
        .await
        .unwrap();
    }
    let watch = |scope: pb::Scope| pb::WatchRequest {
        history_only: true,
        scope: scope as i32,
        kinds: vec![pb::AlertKind::Hit as i32],
        ..Default::default()
    };
    // hank (KENT's hotlist manager, an alerting role) watches at node-1:
    // the hits on KENT's list are KENT's (AVON's alice sees none of them).
    let history = |req: pb::WatchRequest| async {
        let mut a = pb::alerts_client::AlertsClient::new(c.user(0, "hank").await);
        let mut s = a.watch(req).await.unwrap().into_inner();
        let mut out = Vec::new();
        while let Some(e) = s.message().await.unwrap() {
            out.push(e);
        }
        out
    };
    let national = history(watch(pb::Scope::Unspecified)).await;
    assert_eq!(national.len(), 1);
    assert_eq!(national[0].node, "node-2");
    assert_eq!(national[0].read.as_ref().unwrap().vrm, "HI75KNT");
    assert_eq!(national[0].list.as_ref().unwrap().owner, "KENT");
    assert!(history(watch(pb::Scope::Local)).await.is_empty());

    let mut alice = pb::alerts_client::AlertsClient::new(c.user(0, "alice").await);
    let mut s = alice
        .watch(watch(pb::Scope::Unspecified))
        .await
        .unwrap()
        .into_inner();
    assert!(s.message().await.unwrap().is_none(), "alice saw KENT's hit");

    // Following at node-1: a hit raised on node-2 after the watch opened
    // arrives, naming its node; the one raised before does not.
    let mut a = pb::alerts_client::AlertsClient::new(c.user(0, "hank").await);
    let mut live = a
        .watch(pb::WatchRequest {
            kinds: vec![pb::AlertKind::Hit as i32],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    // The peer's follower connects in the background: push until it sees one.
    let mut bof = pb::ingest_client::IngestClient::new(c.bof(1, "KENT").await);
    let mut n = 0;
    let event = loop {
        n += 1;
        bof.push_batch(pb::ReadBatch {
            batch_seq: 1 + n,
            force: String::new(),
            reads: vec![read(&format!("KENT-live-{n}"), "HI75KNT", 1)],
        })
        .await
        .unwrap();
        match tokio::time::timeout(std::time::Duration::from_millis(500), live.message()).await {
            Ok(m) => break m.unwrap().expect("an event"),
            Err(_) => assert!(n < 20, "no live alert from node-2"),
        }
    };
    assert_eq!(event.node, "node-2");
    let p = event.read.as_ref().unwrap().provenance.as_ref().unwrap();
    assert!(p.bof_read_id.starts_with("KENT-live-"), "{}", p.bof_read_id);

    // node-2 restarts: the watch at node-1 goes on, says node-2 was lost
    // and then that it is back, and node-2's next hit arrives once its
    // follower has reconnected, resumed after the last position it had
    // (nothing replayed).
    c.restart(1).await;
    let mut bof = pb::ingest_client::IngestClient::new(c.bof(1, "KENT").await);
    bof.push_batch(pb::ReadBatch {
        batch_seq: 100,
        force: String::new(),
        reads: vec![read("KENT-after-restart", "HI75KNT", 1)],
    })
    .await
    .unwrap();
    let mut notices = Vec::new();
    let next = loop {
        let e = tokio::time::timeout(std::time::Duration::from_secs(30), live.message())
            .await
            .expect("the live watch went quiet after node-2 restarted")
            .unwrap()
            .expect("an event");
        match e.peer {
            Some(p) => notices.push((p.node, p.reachable, p.error.is_empty())),
            None => break e,
        }
    };
    assert_eq!(
        notices,
        [
            ("node-2".to_string(), false, false),
            ("node-2".into(), true, true)
        ]
    );
    assert_eq!(next.node, "node-2");
    assert!(next.position > event.position);
    let p = next.read.as_ref().unwrap().provenance.as_ref().unwrap();
    assert_eq!(p.bof_read_id, "KENT-after-restart");
}
