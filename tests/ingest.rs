//! End to end: BOFs push over mTLS into a real node, users search, the node
//! restarts, identities are refused where they must be.

mod support;

use nadc_bof::pb;
use nadc_bof::push::{PushOptions, push_batch, push_rows};
use support::{Harness, batch, read};

fn code(c: pb::ReadErrorCode) -> i32 {
    c as i32
}

#[tokio::test]
async fn pushed_reads_come_back_in_a_timeline_with_provenance() {
    let h = Harness::start().await;
    h.cameras("AVON", 3).await;
    h.cameras("KENT", 3).await;
    // The same vehicle seen by two forces, out of order in the pushes.
    let r = push_batch(
        h.bof("AVON").await,
        batch(vec![
            read("a1", "AB12 CDE", "C1", 30),
            read("a2", "ab12-cde", "C2", 10),
        ]),
    )
    .await
    .unwrap();
    assert_eq!((r.accepted, r.duplicates, r.rejected.len()), (2, 0, 0));
    let mut own_gps = read("k1", "AB12CDE", "VAN", 20);
    own_gps.lat = Some(51.2704);
    own_gps.lon = Some(0.5227);
    let r = push_batch(
        h.bof("KENT").await,
        batch(vec![own_gps, read("k2", "ZZ99ZZZ", "C1", 5)]),
    )
    .await
    .unwrap();
    assert_eq!(r.accepted, 2);

    let (rows, summary) = h.timeline("alice", "ab12 cde").await;
    let ids: Vec<&str> = rows
        .iter()
        .map(|r| r.provenance.as_ref().unwrap().bof_read_id.as_str())
        .collect();
    assert_eq!(ids, ["a1", "k1", "a2"], "time order across forces");
    let forces: Vec<&str> = rows
        .iter()
        .map(|r| r.provenance.as_ref().unwrap().owning_force.as_str())
        .collect();
    assert_eq!(forces, ["AVON", "KENT", "AVON"]);
    for r in &rows {
        let p = r.provenance.as_ref().unwrap();
        assert_eq!(r.vrm, "AB12CDE");
        assert_eq!(p.node, "node-1");
        assert_eq!(
            nadc_proto::from_pb_time(p.received_at.as_ref().unwrap()),
            Some(support::now()),
            "received time stamped by the node's clock"
        );
        assert!(p.observed_at.is_some());
    }
    // Raw OCR text kept; camera position used for fixed cameras, own GPS for the van.
    assert_eq!(rows[2].vrm_raw, "ab12-cde");
    assert!(
        (rows[0].lat - 51.46).abs() < 1e-9
            && !rows[0].provenance.as_ref().unwrap().position_from_read
    );
    assert!(
        (rows[1].lat - 51.2704).abs() < 1e-9
            && rows[1].provenance.as_ref().unwrap().position_from_read
    );
    assert_eq!(summary.rows, 3);
    assert_eq!(summary.cameras, 3);
    let per_force: Vec<(&str, u64)> = summary
        .forces
        .iter()
        .map(|f| (f.force.as_str(), f.rows))
        .collect();
    assert_eq!(per_force, [("AVON", 2), ("KENT", 1)]);
}

#[tokio::test]
async fn a_read_pushed_twice_is_stored_once() {
    let h = Harness::start().await;
    h.cameras("AVON", 2).await;
    let reads = vec![
        read("r1", "AB12CDE", "C1", 3),
        read("r2", "AB12CDE", "C2", 2),
    ];
    let first = push_batch(h.bof("AVON").await, batch(reads.clone()))
        .await
        .unwrap();
    assert_eq!((first.accepted, first.duplicates), (2, 0));
    let again = push_batch(h.bof("AVON").await, batch(reads)).await.unwrap();
    assert_eq!((again.accepted, again.duplicates), (0, 2));
    assert_eq!(again.duplicate_indexes, [0, 1]);
    // The same read id from another force is a different read.
    h.cameras("KENT", 2).await;
    let other = push_batch(
        h.bof("KENT").await,
        batch(vec![read("r1", "AB12CDE", "C1", 3)]),
    )
    .await
    .unwrap();
    assert_eq!(other.accepted, 1);
    let (rows, _) = h.timeline("alice", "AB12CDE").await;
    assert_eq!(rows.len(), 3);
}

#[tokio::test]
async fn bad_reads_are_rejected_one_by_one_and_good_ones_kept() {
    let h = Harness::start().await;
    h.cameras("AVON", 2).await;
    let mut reads = vec![read("good-1", "AB12CDE", "C1", 5)];
    let mut bad = |id: &str, edit: &dyn Fn(&mut pb::Read)| {
        let mut r = read(id, "AB12CDE", "C1", 5);
        edit(&mut r);
        reads.push(r);
    };
    bad("", &|_| {});
    bad("empty-vrm", &|r| r.vrm = " - ".into());
    bad("long-vrm", &|r| r.vrm = "ABCDEFGHIJKLMNOPQRS".into());
    bad("illegal", &|r| r.vrm = "AB12 CD€".into());
    bad("no-time", &|r| r.observed_at = None);
    bad("lat-range", &|r| {
        r.lat = Some(91.0);
        r.lon = Some(0.0);
    });
    bad("lat-nan", &|r| {
        r.lat = Some(f64::NAN);
        r.lon = Some(0.0);
    });
    bad("half-pos", &|r| r.lat = Some(51.0));
    bad("unknown-cam", &|r| r.camera_id = "NOPE".into());
    bad("van-no-gps", &|r| r.camera_id = "VAN".into());
    bad("old", &|r| {
        r.observed_at = Some(nadc_proto::to_pb_time(support::now().minus_days(400)))
    });
    bad("future", &|r| {
        r.observed_at = Some(nadc_proto::to_pb_time(
            support::now().plus_millis(3_600_000),
        ))
    });
    bad("good-1", &|_| {});
    bad("conf", &|r| r.confidence = Some(150.0));
    reads.push(read("good-2", "XY34 ZZZ", "C2", 1));
    let r = push_batch(h.bof("AVON").await, batch(reads)).await.unwrap();
    use pb::ReadErrorCode as C;
    let got: Vec<(u32, &str, i32)> = r
        .rejected
        .iter()
        .map(|x| (x.index, x.read_id.as_str(), x.code))
        .collect();
    assert_eq!(
        got,
        vec![
            (1, "", code(C::InvalidReadId)),
            (2, "empty-vrm", code(C::InvalidVrm)),
            (3, "long-vrm", code(C::InvalidVrm)),
            (4, "illegal", code(C::InvalidVrm)),
            (5, "no-time", code(C::InvalidTime)),
            (6, "lat-range", code(C::InvalidPosition)),
            (7, "lat-nan", code(C::InvalidPosition)),
            (8, "half-pos", code(C::InvalidPosition)),
            (9, "unknown-cam", code(C::UnknownCamera)),
            (10, "van-no-gps", code(C::NoPosition)),
            (11, "old", code(C::TooOld)),
            (12, "future", code(C::InFuture)),
            (13, "good-1", code(C::DuplicateInBatch)),
            (14, "conf", code(C::InvalidField)),
        ]
    );
    let msg = |i: usize| r.rejected[i].message.as_str();
    assert!(
        msg(3).contains('€') && msg(3).contains("position 8"),
        "{}",
        msg(3)
    );
    assert!(
        msg(8).contains("NOPE") && msg(8).contains("AVON"),
        "{}",
        msg(8)
    );
    assert!(msg(10).contains("365-day"), "{}", msg(10));
    assert_eq!(r.accepted, 2);
    let (rows, _) = h.timeline("alice", "XY34ZZZ").await;
    assert_eq!(rows.len(), 1);
}

#[tokio::test]
async fn oversized_batches_and_foreign_force_claims_are_refused() {
    let h = Harness::start().await;
    h.cameras("KENT", 1).await;
    let too_many: Vec<pb::Read> = (0..10_001)
        .map(|i| read(&format!("r{i}"), "AB1", "C1", 1))
        .collect();
    let e = push_batch(h.bof("KENT").await, batch(too_many))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("10001 reads") && e.contains("at most 10000"),
        "{e}"
    );
    let mut claim = batch(vec![read("r1", "AB12CDE", "C1", 1)]);
    claim.force = "AVON".into();
    let e = push_batch(h.bof("KENT").await, claim)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("PermissionDenied") && e.contains("certificate is for KENT"),
        "{e}"
    );
}

#[tokio::test]
async fn roles_decide_who_may_push_and_search() {
    let h = Harness::start().await;
    h.cameras("AVON", 1).await;
    // A user cannot push.
    let e = push_batch(
        h.user("alice").await,
        batch(vec![read("r1", "AB12CDE", "C1", 1)]),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("PermissionDenied") && e.contains("BOF certificate"),
        "{e}"
    );
    // A BOF cannot search.
    let mut search = pb::search_client::SearchClient::new(h.bof("AVON").await);
    let e = search
        .vrm_timeline(pb::VrmTimelineRequest {
            access: support::access(),
            vrm: "AB12CDE".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e}");
    // A user without a searching role cannot search.
    let mut search = pb::search_client::SearchClient::new(h.user("carol").await);
    let e = search
        .vrm_timeline(pb::VrmTimelineRequest {
            access: support::access(),
            vrm: "AB12CDE".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
    assert!(e.message().contains("carol"), "{e}");
    // Bad search parameters are named.
    let mut search = pb::search_client::SearchClient::new(h.user("alice").await);
    let e = search
        .vrm_timeline(pb::VrmTimelineRequest {
            access: support::access(),
            vrm: "AB12CDE".into(),
            from: Some(nadc_proto::to_pb_time(support::now())),
            to: Some(nadc_proto::to_pb_time(support::now().minus_days(1))),
            limit: 0,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(e.message().contains("inverted"), "{e}");
}

#[tokio::test]
async fn clients_without_a_valid_certificate_are_refused() {
    let h = Harness::start().await;
    // Another CA entirely: its BOF certificate must not be accepted.
    let other = tempfile::tempdir().unwrap();
    let spec = nadc_pki::InitSpec {
        node_names: vec!["rogue".into()],
        forces: vec![support::force("AVON")],
        ..Default::default()
    };
    let rogue = nadc_pki::init(other.path(), &spec, false).unwrap();
    let tls = nadc_bof::ClientTls {
        ca: h.layout.ca_cert(),
        cert: rogue.bof_cert(&support::force("AVON")),
        key: rogue.bof_key(&support::force("AVON")),
    };
    let outcome = match nadc_bof::connect(&h.url, &tls).await {
        Err(e) => e.to_string(),
        Ok(ch) => push_batch(ch, batch(vec![read("r1", "AB12CDE", "C1", 1)]))
            .await
            .unwrap_err()
            .to_string(),
    };
    assert!(!outcome.is_empty());

    // No client certificate at all: a plain TLS client trusting the node's CA.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ca = std::fs::read(h.layout.ca_cert()).unwrap();
    let config = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(ca))
        .domain_name("localhost");
    let result = async {
        let ch = tonic::transport::Channel::from_shared(h.url.clone())?
            .tls_config(config)?
            .connect()
            .await?;
        let mut admin = pb::admin_client::AdminClient::new(ch);
        admin.node_info(pb::NodeInfoRequest {}).await?;
        Ok::<_, Box<dyn std::error::Error>>(())
    }
    .await;
    assert!(result.is_err(), "a client without a certificate was served");

    // A client that does not trust the node's CA refuses the node.
    let tls = nadc_bof::ClientTls {
        ca: rogue.ca_cert(),
        ..h.bof_tls("AVON")
    };
    let refused = match nadc_bof::connect(&h.url, &tls).await {
        Err(e) => e.to_string(),
        Ok(ch) => push_batch(ch, batch(vec![])).await.unwrap_err().to_string(),
    };
    assert!(
        refused.to_lowercase().contains("certificate") || refused.contains("transport"),
        "{refused}"
    );

    // The node still serves a valid client.
    assert_eq!(h.node_info("alice").await.node, "node-1");
}

#[tokio::test]
async fn every_acknowledged_read_survives_a_restart() {
    let mut h = Harness::start().await;
    h.cameras("MET", 4).await;
    let reads: Vec<pb::Read> = (0..5_000)
        .map(|i| {
            read(
                &format!("m{i}"),
                &format!("MT{:02}ABC", i % 50),
                &format!("C{}", 1 + i % 4),
                (i % 600) as i64,
            )
        })
        .collect();
    let rows: nadc_bof::format::Rows<pb::Read> = Box::new(reads.clone().into_iter().map(Ok));
    let report = push_rows(
        h.bof("MET").await,
        rows,
        PushOptions {
            batch_size: 700,
            window: 4,
        },
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(report.totals.accepted, 5_000);
    assert_eq!(report.totals.batches, 8);
    h.restart().await;
    let info = h.node_info("alice").await;
    assert_eq!(info.reads, 5_000);
    let (rows, _) = h.timeline("alice", "MT07ABC").await;
    assert_eq!(rows.len(), 100);
    let times: Vec<_> = rows
        .iter()
        .map(|r| {
            nadc_proto::from_pb_time(r.provenance.as_ref().unwrap().observed_at.as_ref().unwrap())
                .unwrap()
        })
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "timeline in time order"
    );
    // A limited timeline says it was cut and how many match in all.
    let mut search = pb::search_client::SearchClient::new(h.user("alice").await);
    let mut stream = search
        .vrm_timeline(pb::VrmTimelineRequest {
            access: support::access(),
            vrm: "MT07ABC".into(),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let (mut n, mut summary) = (0, None);
    while let Some(c) = stream.message().await.unwrap() {
        match c.chunk.unwrap() {
            pb::search_chunk::Chunk::Rows(b) => n += b.rows.len(),
            pb::search_chunk::Chunk::Summary(s) => summary = Some(s),
            pb::search_chunk::Chunk::Vrms(_) => {}
        }
    }
    let summary = summary.unwrap();
    assert_eq!(
        (n, summary.rows, summary.total_rows, summary.truncated),
        (10, 10, 100, true)
    );
    // Pushing everything again after the restart stores nothing new.
    let rows: nadc_bof::format::Rows<pb::Read> = Box::new(reads.into_iter().map(Ok));
    let report = push_rows(h.bof("MET").await, rows, PushOptions::default(), |_| {})
        .await
        .unwrap();
    assert_eq!(
        (report.totals.accepted, report.totals.duplicates),
        (0, 5_000)
    );
    // Cameras survive too: reads without coordinates still resolve.
    let r = push_batch(
        h.bof("MET").await,
        batch(vec![read("new", "NEW1", "C3", 1)]),
    )
    .await
    .unwrap();
    assert_eq!(r.accepted, 1);
}

#[tokio::test]
async fn health_and_reflection_are_served() {
    let h = Harness::start().await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(h.bof("AVON").await);
    let resp = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "nadc.v1.Ingest".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        resp.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let mut reflection = ServerReflectionClient::new(h.user("alice").await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) =
        responses.message().await.unwrap().unwrap().message_response
    else {
        panic!("no service list");
    };
    let names: Vec<&str> = list.service.iter().map(|s| s.name.as_str()).collect();
    for wanted in [
        "nadc.v1.Ingest",
        "nadc.v1.Search",
        "nadc.v1.Admin",
        "grpc.health.v1.Health",
    ] {
        assert!(names.contains(&wanted), "{wanted} not in {names:?}");
    }
}

/// A force over its configured rate is refused with RESOURCE_EXHAUSTED and
/// a retry hint, over a unary call and a push stream alike; nothing of the
/// refused batch is stored, and another force is not held back.
#[tokio::test]
async fn a_force_over_its_rate_is_refused_with_a_retry_hint_and_others_push_on() {
    let mut h = Harness::start().await;
    h.configure = |c| {
        c.limits.per_force_reads_per_s = 1;
        c.limits.per_force_burst = 10;
    };
    h.restart().await;
    h.cameras("AVON", 1).await;
    h.cameras("KENT", 1).await;
    let reads = |prefix: &str, n: usize| -> Vec<pb::Read> {
        (0..n)
            .map(|i| read(&format!("{prefix}{i}"), "AB12CDE", "C1", 10))
            .collect()
    };
    // The burst is spent (a batch may overdraw it) ...
    let r = push_batch(h.bof("AVON").await, batch(reads("a", 12)))
        .await
        .unwrap();
    assert_eq!(r.accepted, 12);
    // ... so the next batch waits about 3 s at 1 read/s.
    let e = match push_batch(h.bof("AVON").await, batch(reads("b", 1))).await {
        Err(nadc_bof::ClientError::Rpc(s)) => s,
        other => panic!("not refused: {other:?}"),
    };
    assert_eq!(e.code(), tonic::Code::ResourceExhausted);
    assert!(
        e.message().contains("AVON") && e.message().contains("rate"),
        "{}",
        e.message()
    );
    let hint = nadc_bof::retry_after(&e).expect("a retry hint");
    assert!(hint >= std::time::Duration::from_secs(2), "{hint:?}");
    // A push stream is refused the same way.
    let rows: Vec<Result<pb::Read, nadc_bof::format::RowError>> =
        reads("c", 1).into_iter().map(Ok).collect();
    let e = push_rows(
        h.bof("AVON").await,
        Box::new(rows.into_iter()),
        PushOptions::default(),
        |_| {},
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("ResourceExhausted") && e.contains("retry after"),
        "{e}"
    );
    // KENT has its own bucket.
    let r = push_batch(h.bof("KENT").await, batch(reads("k", 3)))
        .await
        .unwrap();
    assert_eq!(r.accepted, 3);
    let (rows, _) = h.timeline("alice", "AB12CDE").await;
    assert_eq!(rows.len(), 15, "only the admitted batches are stored");
}
