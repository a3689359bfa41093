//! A replica cut off from the log (its one NATS server killed) says so:
//! in every search's and every analysis's answer, and in its metrics;
//! the replica still hearing the log answers as current.

mod support;

use std::time::{Duration, Instant};

use nadc_bof::pb;
use support::replicas::*;
use support::{access, now};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_cut_off_from_the_log_says_its_answers_may_be_stale() {
    // node-2 reaches the cluster through nats-3 only (the servers do not
    // advertise each other to clients), node-1 through all three. Both
    // serve metrics.
    let mut r = Replicas::start_with(|i, cfg| {
        cfg.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
        if i == 1
            && let Some(rep) = cfg.replication.as_mut()
        {
            rep.servers.truncate(3);
            rep.servers.drain(..2);
        }
    })
    .await;
    let mut avon = r.bof(0, "AVON").await;
    let b = batch("AVON", "s0", 10, 0);
    push_until_taken(&mut avon, &b).await;
    let mut avon2 = r.bof(1, "AVON").await;
    assert_eq!(push_until_taken(&mut avon2, &b).await.duplicates, 10);
    assert!(timeline(&r, 1, "R200 ABC").await.1.stale.is_empty());
    // nats-3 goes: the cluster keeps its quorum and takes node-1's reads,
    // node-2 hears nothing more.
    r.nats.servers[2].kill();
    push_until_taken(&mut avon, &batch("AVON", "s1", 10, 1)).await;
    // (Measured: 10 to 37 s, as the cluster elects new leaders.)
    let deadline = Instant::now() + Duration::from_secs(90);
    let stale = loop {
        let stale = timeline(&r, 1, "R200 ABC").await.1.stale;
        if !stale.is_empty() {
            break stale;
        }
        if Instant::now() >= deadline {
            let st = replication_status(&r, 1, "alice").await;
            panic!("node-2 never said it was cut off: {st:?}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(stale[0].node, "node-2");
    assert!(
        !stale[0].problem.is_empty() || stale[0].behind > 0,
        "{stale:?}"
    );
    assert!(timeline(&r, 0, "R200 ABC").await.1.stale.is_empty());
    // The metrics say so: node-2 stale and its log unreachable, node-1
    // current with the log's last position applied.
    let scrape = |i: usize| {
        let addr = r.nodes[i].as_ref().unwrap().metrics_addr.unwrap();
        tokio::task::spawn_blocking(move || support::prom::metrics(addr))
    };
    let (one, two) = (scrape(0).await.unwrap(), scrape(1).await.unwrap());
    let gauge = |m: &support::prom::Samples, name: &str| support::prom::get(m, name, &[]);
    assert_eq!(gauge(&two, "nadc_replication_stale"), 1.0);
    assert_eq!(gauge(&two, "nadc_replication_log_reachable"), 0.0);
    assert_eq!(gauge(&one, "nadc_replication_stale"), 0.0);
    assert_eq!(gauge(&one, "nadc_replication_log_reachable"), 1.0);
    assert_eq!(gauge(&one, "nadc_replication_behind"), 0.0);
    assert_eq!(
        gauge(&one, "nadc_replication_applied_position"),
        gauge(&one, "nadc_replication_last_position")
    );
    assert!(
        gauge(&one, "nadc_replication_applied_position")
            > gauge(&two, "nadc_replication_applied_position")
    );
    // Every analysis says so too, at node-2 and only there.
    for (kind, stale) in analyses_stale(&r, 1).await {
        assert_eq!(stale.len(), 1, "{kind}: {stale:?}");
        assert_eq!(stale[0].node, "node-2", "{kind}");
    }
    for (kind, stale) in analyses_stale(&r, 0).await {
        assert!(stale.is_empty(), "{kind} at node-1: {stale:?}");
    }
}

/// What each analysis answered at node `i` says of replicas behind the
/// log, by analysis.
async fn analyses_stale(r: &Replicas, i: usize) -> Vec<(&'static str, Vec<pb::StaleReplica>)> {
    let mut c = pb::analysis_client::AnalysisClient::new(r.user(i, "alice").await);
    let t = |minutes: i64| Some(nadc_proto::to_pb_time(now().plus_millis(minutes * 60_000)));
    let (from, to) = (t(-120), t(0));
    let vrm = "R200 ABC".to_string();
    let incidents: Vec<pb::Incident> = [-60, -30]
        .iter()
        .enumerate()
        .map(|(k, m)| pb::Incident {
            reference: format!("CRI-{k}"),
            kind: "burglary".into(),
            at: t(*m),
            lat: 51.4,
            lon: -2.6,
        })
        .collect();
    // The last closed month.
    let month = now().plus_millis(-35 * 86_400_000).to_rfc3339()[..7].to_string();
    vec![
        (
            "hot spots",
            c.hot_spots(pb::HotSpotsRequest {
                access: access(),
                from,
                to,
                vrms: vec![vrm.clone()],
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .stale,
        ),
        (
            "camera health",
            c.camera_health(pb::CameraHealthRequest {
                access: access(),
                from,
                to,
                force: "AVON".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .stale,
        ),
        (
            "alibi",
            c.alibi(pb::AlibiRequest {
                access: access(),
                vrm: vrm.clone(),
                claims: vec![pb::PlaceClaim {
                    lat: 51.4,
                    lon: -2.6,
                    radius_m: 500.0,
                    from,
                    to,
                    label: "home".into(),
                }],
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .stale,
        ),
        (
            "subject profile",
            c.subject_profile(pb::SubjectProfileRequest {
                access: access(),
                vrm: vrm.clone(),
                from,
                to,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .stale,
        ),
        (
            "associate network",
            c.associate_network(pb::NetworkRequest {
                access: access(),
                vrms: vec![vrm.clone()],
                from,
                to,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .stale,
        ),
        (
            "crime pattern",
            c.crime_pattern(pb::PatternRequest {
                access: access(),
                incidents: incidents.clone(),
                radius_m: 500.0,
                window_minutes: 30,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .stale,
        ),
        (
            "camera sites",
            c.camera_sites(pb::SitesRequest {
                access: access(),
                incidents,
                from,
                to,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .stale,
        ),
        (
            "results",
            c.results(pb::ResultsRequest {
                access: access(),
                from,
                to,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .stale,
        ),
        (
            "transparency",
            c.transparency(pb::TransparencyRequest {
                from_month: month.clone(),
                to_month: month,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .stale,
        ),
    ]
}
