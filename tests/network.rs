//! Associate networks (issue 20, item 3): planted co-travel (a seed with an
//! associate at three cameras; the associate with a second at one camera,
//! twice; a passer-by once), the network at one and two hops against a
//! brute-force count of co-occurrences made here, each hop audited as a
//! convoy search, and the GraphML and CSV exports parsed back.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use nadc_bof::pb;
use support::{Harness, case_access, now};

const SEED: &str = "SE12EED";
const A: &str = "AS50CAT";
const B: &str = "BE70ND";
const PASSER: &str = "PA55ER";
const WINDOW_S: i64 = 120;
const MIN: i64 = 60_000;

/// (id, vrm, camera, ms) of every read planted.
fn planted() -> Vec<(String, &'static str, &'static str, i64)> {
    let t0 = now().millis() - 10 * 60 * MIN;
    let mut r = Vec::new();
    let mut add = |vrm: &'static str, cam: &'static str, ms: i64| {
        let id = format!("{vrm}-{}", r.len());
        r.push((id, vrm, cam, ms));
    };
    for (k, cam) in ["C1", "C2", "C3"].into_iter().enumerate() {
        let at = t0 + k as i64 * 60 * MIN;
        add(SEED, cam, at);
        add(A, cam, at + (30 + 10 * k as i64) * 1000);
    }
    // The associate with a second vehicle, at C4, twice.
    for k in 0..2 {
        let at = t0 + (4 + k) * 60 * MIN;
        add(A, "C4", at);
        add(B, "C4", at + 10_000);
    }
    // A passer-by beside the seed once.
    add(PASSER, "C1", t0 + 45_000);
    r
}

/// Target reads of `target` accompanied by `other` (same camera, within
/// the window), and at how many cameras: counted over every pair.
fn co_travel(target: &str, other: &str) -> (u32, u32) {
    let reads = planted();
    let mut n = 0;
    let mut cams = BTreeSet::new();
    for (_, v, cam, ms) in reads.iter().filter(|r| r.1 == target) {
        let _ = v;
        if reads
            .iter()
            .any(|o| o.1 == other && o.2 == *cam && (o.3 - ms).abs() <= WINDOW_S * 1000)
        {
            n += 1;
            cams.insert(*cam);
        }
    }
    (n, cams.len() as u32)
}

async fn network(h: &Harness, hops: u32) -> pb::NetworkResponse {
    pb::analysis_client::AnalysisClient::new(h.user("alice").await)
        .associate_network(pb::NetworkRequest {
            access: case_access("OP-NETWORK"),
            vrms: vec![SEED.into()],
            from: Some(nadc_proto::to_pb_time(now().plus_millis(-24 * 60 * MIN))),
            to: Some(nadc_proto::to_pb_time(now())),
            window_s: WINDOW_S as u32,
            hops,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

fn edges(r: &pb::NetworkResponse) -> BTreeMap<(String, String), (u32, u32)> {
    r.edges
        .iter()
        .map(|e| {
            (
                (e.target.clone(), e.companion.clone()),
                (e.co_occurrences, e.cameras),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_network_grows_hop_by_hop_as_the_co_travel_counts_say() {
    let h = Harness::start().await;
    h.cameras("AVON", 4).await;
    let reads = planted()
        .into_iter()
        .map(|(id, vrm, cam, ms)| pb::Read {
            read_id: id,
            vrm: vrm.into(),
            observed_at: Some(nadc_proto::to_pb_time(nadc_core::Timestamp::from_millis(
                ms,
            ))),
            camera_id: cam.into(),
            ..Default::default()
        })
        .collect();
    let r = pb::ingest_client::IngestClient::new(h.bof("AVON").await)
        .push_batch(support::batch(reads))
        .await
        .unwrap()
        .into_inner();
    assert!(r.rejected.is_empty(), "{:?}", r.rejected);

    // The reference: every edge with at least two co-occurrences.
    let edge = |t: &str, c: &str| ((t.to_string(), c.to_string()), co_travel(t, c));
    assert_eq!(co_travel(SEED, PASSER).0, 1, "below the minimum");

    let one = network(&h, 1).await;
    assert_eq!(edges(&one), BTreeMap::from([edge(SEED, A)]));
    let vehicles: Vec<(&str, u32)> = one.nodes.iter().map(|n| (n.vrm.as_str(), n.hop)).collect();
    assert_eq!(vehicles, [(A, 1), (SEED, 0)]);
    assert_eq!(one.hops, 1);

    let two = network(&h, 2).await;
    assert_eq!(
        edges(&two),
        BTreeMap::from([edge(SEED, A), edge(A, SEED), edge(A, B)])
    );
    let hops: BTreeMap<&str, u32> = two.nodes.iter().map(|n| (n.vrm.as_str(), n.hop)).collect();
    assert_eq!(hops, BTreeMap::from([(SEED, 0), (A, 1), (B, 2)]));
    // Every edge carries the reads it rests on.
    for e in &two.edges {
        assert_eq!(e.pairs.len() as u32, e.co_occurrences);
        assert!(
            e.pairs
                .iter()
                .all(|p| p.target.as_ref().unwrap().vrm == e.target)
        );
    }

    // Each hop was a convoy search, audited as one; the network too.
    let audit = |action: &str| {
        let h = &h;
        let action = action.to_string();
        async move {
            h.audit_entries(
                "audrey",
                pb::AuditQuery {
                    user: "alice".into(),
                    action: action.clone(),
                    ..Default::default()
                },
            )
            .await
            .into_iter()
            .filter(|e| e.action == action && e.outcome == "ok")
            .count()
        }
    };
    assert_eq!(audit("search.convoy").await, 3, "one hop, then two");
    assert_eq!(audit("search.network").await, 2);

    // Asking for more hops than allowed is refused, naming the cap, and
    // audited; without a case the first hop's convoy refuses it.
    let mut c = pb::analysis_client::AnalysisClient::new(h.user("alice").await);
    let e = c
        .associate_network(pb::NetworkRequest {
            access: case_access("OP-NETWORK"),
            vrms: vec![SEED.into()],
            hops: 4,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().contains("at most 3"), "{}", e.message());
    let refused = h
        .audit_entries(
            "audrey",
            pb::AuditQuery {
                user: "alice".into(),
                action: "search.network".into(),
                ..Default::default()
            },
        )
        .await
        .into_iter()
        .filter(|e| e.action == "search.network" && e.outcome != "ok")
        .count();
    assert_eq!(refused, 1);
    let e = c
        .associate_network(pb::NetworkRequest {
            vrms: vec![SEED.into()],
            from: Some(nadc_proto::to_pb_time(now().plus_millis(-60 * MIN))),
            to: Some(nadc_proto::to_pb_time(now())),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e}");
}
