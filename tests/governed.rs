//! The governed path, tried as an adversarial user would with ordinary
//! certificates (deploy/ACCESS.md): alerts, verifications, hotlist entries,
//! covert cameras and the audit log stay with the force they belong to;
//! history is disclosed like a search; summaries and audit entries hold no
//! more than what was sent. Each rule is checked for the exact status, a
//! message naming the rule, and the audit entry it leaves.

mod support;

use nadc_bof::pb;
use nadc_core::Timestamp;
use support::{Harness, access, batch, now, read};
use tonic::Code;
use tonic::transport::Channel;

type Alerts = pb::alerts_client::AlertsClient<Channel>;
type Hotlists = pb::hotlists_client::HotlistsClient<Channel>;

const MIN: i64 = 60_000;

async fn push(h: &Harness, force: &str, reads: Vec<pb::Read>) {
    let mut c = pb::ingest_client::IngestClient::new(h.bof(force).await);
    let r = c.push_batch(batch(reads)).await.unwrap().into_inner();
    assert!(r.rejected.is_empty(), "{:?}", r.rejected);
}

/// AVON's list `avon-wanted` (AB12CDE) and KENT's `kent-wanted` (XY99ZZZ),
/// both hit by AVON reads: alert 1 is AVON's, alert 2 KENT's.
async fn two_forces_lists() -> Harness {
    let h = Harness::start().await;
    h.cameras("AVON", 2).await;
    h.hotlist("harry", "avon-wanted", "AB12CDE").await;
    h.hotlist("kim", "kent-wanted", "XY99ZZZ").await;
    push(
        &h,
        "AVON",
        vec![
            read("a1", "AB12CDE", "C1", 5),
            read("a2", "XY99ZZZ", "C2", 4),
        ],
    )
    .await;
    h
}

/// A watch's events up to the log's end, or the status it ended with.
async fn history(
    h: &Harness,
    user: &str,
    mut req: pb::WatchRequest,
) -> Result<Vec<pb::AlertEvent>, tonic::Status> {
    req.history_only = true;
    let mut c = Alerts::new(h.user(user).await);
    let mut s = c.watch(req).await?.into_inner();
    let mut out = Vec::new();
    while let Some(e) = s.message().await? {
        out.push(e);
    }
    Ok(out)
}

fn listed(events: &[pb::AlertEvent]) -> Vec<(u64, String)> {
    events
        .iter()
        .map(|e| (e.position, e.list.as_ref().unwrap().name.clone()))
        .collect()
}

/// Every audit entry, as the auditor `who` may read them.
async fn audit(h: &Harness, who: &str, action: &str) -> Vec<pb::AuditRecord> {
    let q = pb::AuditQuery {
        action: action.into(),
        ..Default::default()
    };
    h.audit_entries(who, q).await
}

fn who_and_outcome(records: &[pb::AuditRecord]) -> Vec<(String, String)> {
    records
        .iter()
        .map(|r| (r.user.clone(), r.outcome.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watching_alerts_needs_an_alerting_role_and_shows_only_the_forces_own() {
    let h = two_forces_lists().await;
    // No role, or roles that do not act on alerts: refused, and audited.
    for user in ["nora", "audrey", "carol", "dora"] {
        let e = history(&h, user, pb::WatchRequest::default())
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::PermissionDenied, "{user}: {e:?}");
        assert!(
            e.message().contains("alerting role") || e.message().contains("alerts needs the"),
            "{user}: {}",
            e.message()
        );
    }
    // A BOF certificate cannot watch either.
    let mut bof = Alerts::new(h.bof("AVON").await);
    let e = bof.watch(pb::WatchRequest::default()).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);

    // AVON's analyst sees the hit on AVON's list only, though both reads
    // are AVON's: KENT's list (its reason, its intelligence reference) is
    // KENT's. KENT's investigator sees KENT's only.
    let avon = history(&h, "alice", pb::WatchRequest::default())
        .await
        .unwrap();
    assert_eq!(listed(&avon), [(1, "avon-wanted".to_string())]);
    let kent = history(&h, "kim", pb::WatchRequest::default())
        .await
        .unwrap();
    assert_eq!(listed(&kent), [(2, "kent-wanted".to_string())]);
    // Asking for the other force's list by name changes nothing.
    let asked = history(
        &h,
        "alice",
        pb::WatchRequest {
            lists: vec![pb::HotlistRef {
                owner: "KENT".into(),
                name: "kent-wanted".into(),
            }],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(asked.is_empty(), "{asked:?}");

    let refused = audit(&h, "audrey", "alert.watch").await;
    let refusals: Vec<_> = who_and_outcome(&refused)
        .into_iter()
        .filter(|(_, o)| o == "refused")
        .map(|(u, _)| u)
        .collect();
    assert_eq!(refusals, ["nora", "audrey", "dora", "bof:AVON"]);
    // What was disclosed is audited, counted per owning force.
    // (kim's too: the read kim was shown is AVON's.)
    let disclosed = audit(&h, "audrey", "alert.disclosed").await;
    assert_eq!(
        who_and_outcome(&disclosed),
        [("alice".into(), "ok".into()), ("kim".into(), "ok".into())]
    );
    assert_eq!(disclosed[0].returned[0].force, "AVON");
    assert_eq!(disclosed[0].returned[0].rows, 1);
    let kent = audit(&h, "kurt", "alert.disclosed").await;
    assert_eq!(who_and_outcome(&kent), [("kim".into(), "ok".into())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replaying_history_needs_a_purpose_and_case_and_obeys_the_data_age_tier() {
    let h = two_forces_lists().await;
    // A hit raised now on a read captured 100 days ago (a late push).
    push(
        &h,
        "AVON",
        vec![read("old", "AB12CDE", "C1", 100 * 24 * 60)],
    )
    .await;
    // Live, without a case: the fresh hit only; the old read is past the
    // standard tier and is left out.
    let live = history(&h, "alice", pb::WatchRequest::default())
        .await
        .unwrap();
    assert_eq!(live.iter().map(|e| e.position).collect::<Vec<_>>(), [1]);

    // Two hours on, both are history.
    h.clock.set(now().plus_millis(120 * MIN));
    let e = history(&h, "alice", pb::WatchRequest::default())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert!(
        e.message().contains("purpose and a case reference"),
        "{}",
        e.message()
    );
    // Under a case: refused at the old read's alert, naming the tier...
    let with_case = pb::WatchRequest {
        access: access(),
        ..Default::default()
    };
    let e = history(&h, "alice", with_case.clone()).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    assert!(e.message().contains("authorisation"), "{}", e.message());
    // ...or, clipped, without it.
    let mut clipped = with_case.clone();
    clipped.access.as_mut().unwrap().clip_to_permitted = true;
    let got = history(&h, "alice", clipped).await.unwrap();
    assert_eq!(got.iter().map(|e| e.position).collect::<Vec<_>>(), [1]);
    // History under another force's case (not shared with AVON) is
    // refused: it would register AVON's disclosures in KENT's case.
    let mut theirs = with_case.clone();
    theirs.access.as_mut().unwrap().case_force = "KENT".into();
    let e = history(&h, "alice", theirs).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert!(
        e.message().contains("not shared with AVON"),
        "{}",
        e.message()
    );
    // A malformed context is refused as a search's is.
    let mut bad = with_case;
    bad.access.as_mut().unwrap().purpose = "curiosity".into();
    let e = history(&h, "alice", bad).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);

    // The history disclosed is audited under its case.
    let disclosed = audit(&h, "audrey", "alert.disclosed").await;
    let last = disclosed.last().unwrap();
    assert_eq!(
        (last.case_ref.as_str(), last.purpose.as_str()),
        ("OP-TEST", "serious-crime")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_the_owning_force_verifies_an_alert_and_the_verification_is_audited() {
    let h = two_forces_lists().await;
    let verify = |user: &'static str, position: u64| {
        let h = &h;
        async move {
            let mut c = Alerts::new(h.user(user).await);
            c.verify(pb::VerifyRequest {
                position,
                state: pb::Verification::Rejected as i32,
                note: "misread".into(),
                ..Default::default()
            })
            .await
        }
    };
    // KENT's investigator on AVON's hit, and AVON's analyst on KENT's.
    let e = verify("kim", 1).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    assert!(
        e.message().contains("only AVON's users verify it"),
        "{}",
        e.message()
    );
    let e = verify("alice", 2).await.unwrap_err();
    assert!(
        e.message().contains("only KENT's users verify it"),
        "{}",
        e.message()
    );
    // No alerting role.
    let e = verify("nora", 1).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    // The owners.
    let ok = verify("alice", 1).await.unwrap().into_inner();
    assert_eq!(
        ok.verification.unwrap().state,
        pb::Verification::Rejected as i32
    );
    verify("kim", 2).await.unwrap();
    let e = verify("alice", 99).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound);

    let entries = audit(&h, "audrey", "alert.verify").await;
    assert_eq!(
        who_and_outcome(&entries),
        [
            ("alice".into(), "refused".into()),
            ("nora".into(), "refused".into()),
            ("alice".into(), "ok".into()),
            ("kim".into(), "ok".into()),
            ("alice".into(), "refused".into()),
        ]
    );
    // KENT's auditor sees KENT's own entries only.
    let kent = audit(&h, "kurt", "alert.verify").await;
    assert_eq!(
        who_and_outcome(&kent),
        [
            ("kim".into(), "refused".into()),
            ("kim".into(), "ok".into())
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hotlist_entries_and_covert_cameras_stay_with_their_force() {
    let h = two_forces_lists().await;
    let mut kim = Hotlists::new(h.user("kim").await);
    let e = kim
        .get_hotlist(pb::HotlistRef {
            owner: "AVON".into(),
            name: "avon-wanted".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    assert!(
        e.message().contains("AVON's intelligence"),
        "{}",
        e.message()
    );
    let lists = kim
        .list_hotlists(pb::ListHotlistsRequest {})
        .await
        .unwrap()
        .into_inner();
    let names: Vec<_> = lists
        .lists
        .iter()
        .map(|l| l.list.as_ref().unwrap().name.clone())
        .collect();
    assert_eq!(names, ["kent-wanted"]);
    let mut harry = Hotlists::new(h.user("harry").await);
    let own = harry
        .get_hotlist(pb::HotlistRef {
            owner: String::new(),
            name: "avon-wanted".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(own.entries[0].intel_ref, "INT/avon-wanted/1");
    // No role that acts on lists: refused.
    let mut nora = Hotlists::new(h.user("nora").await);
    let e = nora
        .list_hotlists(pb::ListHotlistsRequest {})
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    // A convoy search cannot name another force's list to learn its VRMs.
    let mut search = pb::search_client::SearchClient::new(h.user("kim").await);
    let e = search
        .convoy(pb::ConvoyRequest {
            hotlist: Some(pb::HotlistRef {
                owner: "AVON".into(),
                name: "avon-wanted".into(),
            }),
            access: access(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    // Who read which list's entries is audited.
    let shown = audit(&h, "audrey", "hotlist.show").await;
    assert_eq!(who_and_outcome(&shown), [("harry".into(), "ok".into())]);
    let kent_shown = audit(&h, "kurt", "hotlist.show").await;
    assert_eq!(
        who_and_outcome(&kent_shown),
        [("kim".into(), "refused".into())]
    );

    // A covert camera is listed to its own force only.
    let mut avon_bof = pb::admin_client::AdminClient::new(h.bof("AVON").await);
    avon_bof
        .import_cameras(pb::ImportCamerasRequest {
            cameras: vec![pb::Camera {
                camera_id: "HIDDEN".into(),
                // Far from the other cameras: a coarse cell of its own.
                lat: 54.0,
                lon: -1.5,
                kind: pb::CameraKind::Covert as i32,
                ..Default::default()
            }],
        })
        .await
        .unwrap();
    let ids = |user: &'static str| {
        let h = &h;
        async move {
            let mut c = pb::admin_client::AdminClient::new(h.user(user).await);
            c.list_cameras(pb::ListCamerasRequest::default())
                .await
                .unwrap()
                .into_inner()
                .cameras
                .into_iter()
                .map(|c| c.camera_id)
                .collect::<Vec<_>>()
        }
    };
    assert!(ids("alice").await.contains(&"HIDDEN".to_string()));
    let kent_sees = ids("kim").await;
    assert!(!kent_sees.contains(&"HIDDEN".to_string()), "{kent_sees:?}");
    assert!(kent_sees.contains(&"C1".to_string()), "{kent_sees:?}");
    // Nor does its coarse cell show in the node's description to another
    // force's user (a peer node is told every cell, to route searches).
    let cells = |user: &'static str| {
        let h = &h;
        async move {
            let mut c = pb::admin_client::AdminClient::new(h.user(user).await);
            c.node_info(pb::NodeInfoRequest {})
                .await
                .unwrap()
                .into_inner()
                .coarse_cells
        }
    };
    let (avon, kent) = (cells("alice").await, cells("kim").await);
    assert_eq!(avon.len(), kent.len() + 1, "{avon:?} {kent:?}");
    assert!(kent.iter().all(|c| avon.contains(c)), "{avon:?} {kent:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn auditors_read_their_own_forces_entries_and_their_queries_are_audited() {
    let h = two_forces_lists().await;
    // alice (AVON) searches AVON data; kim (KENT) searches and finds nothing.
    let (rows, _) = h.timeline("alice", "AB12CDE").await;
    assert_eq!(rows.len(), 1);
    let (rows, _) = h.timeline("kim", "NO12THING").await;
    assert!(rows.is_empty());
    let users =
        |records: Vec<pb::AuditRecord>| records.into_iter().map(|r| r.user).collect::<Vec<_>>();
    assert_eq!(users(audit(&h, "audrey", "search.").await), ["alice"]);
    assert_eq!(users(audit(&h, "kurt", "search.").await), ["kim"]);
    // kim's search of AVON data is AVON's auditor's business.
    h.timeline("kim", "AB12CDE").await;
    assert_eq!(
        users(audit(&h, "audrey", "search.").await),
        ["alice", "kim"]
    );
    // Each query was audited before it answered, the verification too.
    let mut c = pb::audit_client::AuditClient::new(h.user("kurt").await);
    c.verify(pb::VerifyAuditRequest {}).await.unwrap();
    let own = users(audit(&h, "kurt", "audit.").await);
    assert_eq!(own, ["kurt", "kurt", "kurt"]);
    // Not an auditor: refused.
    let mut c = pb::audit_client::AuditClient::new(h.user("alice").await);
    let e = c.query(pb::AuditQuery::default()).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn vrm_summaries_describe_only_the_rows_sent() {
    let h = Harness::start().await;
    h.cameras("AVON", 2).await;
    push(
        &h,
        "AVON",
        vec![
            read("s1", "AA11AAA", "C1", 30),
            read("s2", "BB22BBB", "C1", 20),
            read("s3", "CC33CCC", "C2", 10),
            read("s4", "AA11AAA", "C2", 5),
        ],
    )
    .await;
    let geo = |offset: u32, limit: u32| {
        let h = &h;
        async move {
            let mut c = pb::search_client::SearchClient::new(h.user("alice").await);
            let mut s = c
                .geo_search(pb::GeoSearchRequest {
                    areas: vec![pb::Area {
                        lat: 51.47,
                        lon: -2.58,
                        radius_m: 5_000.0,
                        from: Some(nadc_proto::to_pb_time(now().plus_millis(-60 * MIN))),
                        to: Some(nadc_proto::to_pb_time(now())),
                        ..Default::default()
                    }],
                    limit,
                    offset,
                    access: access(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            let (mut rows, mut vrms, mut total) = (Vec::new(), Vec::new(), 0);
            while let Some(c) = s.message().await.unwrap() {
                match c.chunk.unwrap() {
                    pb::search_chunk::Chunk::Rows(b) => {
                        rows.extend(b.rows.into_iter().map(|r| r.vrm))
                    }
                    pb::search_chunk::Chunk::Vrms(v) => {
                        vrms.extend(v.vrms.into_iter().map(|v| (v.vrm, v.reads)))
                    }
                    pb::search_chunk::Chunk::Summary(s) => total = s.total_rows,
                }
            }
            (rows, vrms, total)
        }
    };
    // Everything: every vehicle summarised.
    let (rows, vrms, total) = geo(0, 10).await;
    assert_eq!((rows.len(), total), (4, 4));
    assert_eq!(
        vrms,
        [
            ("AA11AAA".into(), 2),
            ("BB22BBB".into(), 1),
            ("CC33CCC".into(), 1)
        ]
    );
    // One row: one vehicle, one read, whatever else matched.
    let (rows, vrms, total) = geo(0, 1).await;
    assert_eq!((rows, total), (vec!["AA11AAA".to_string()], 4));
    assert_eq!(vrms, [("AA11AAA".into(), 1)]);
    // Past the end: no rows, so no vehicle.
    let (rows, vrms, _) = geo(10, 5).await;
    assert!(rows.is_empty() && vrms.is_empty(), "{rows:?} {vrms:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refused_request_leaves_a_small_audit_entry_whatever_it_held() {
    let h = Harness::start().await;
    let mut c = pb::search_client::SearchClient::new(h.user("alice").await);
    // A polygon of a megabyte that does not parse, and a purpose of 100 kB.
    let huge = format!("POLYGON(({}))", "1 2, ".repeat(200_000));
    let e = c
        .geo_search(pb::GeoSearchRequest {
            areas: vec![pb::Area {
                polygon: huge.clone(),
                from: Some(nadc_proto::to_pb_time(now().plus_millis(-MIN))),
                to: Some(nadc_proto::to_pb_time(now())),
                ..Default::default()
            }],
            access: access(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        e.code(),
        Code::InvalidArgument,
        "{}",
        &e.message()[..200.min(e.message().len())]
    );
    let mut long_purpose = access();
    long_purpose.as_mut().unwrap().purpose = "x".repeat(100_000);
    let e = c
        .vrm_timeline(pb::VrmTimelineRequest {
            vrm: "AB12CDE".into(),
            access: long_purpose,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{}", e.message());
    // A refusal naming a field of 100 kB still reaches the client, cut.
    let e = c
        .convoy(pb::ConvoyRequest {
            vrms: vec!["A".repeat(100_000)],
            access: access(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{}", &e.message()[..100]);
    assert!(e.message().len() < 4_096, "{} bytes", e.message().len());
    assert!(
        e.message().contains("message cut"),
        "{}",
        &e.message()[..100]
    );
    let refused = audit(&h, "audrey", "search.").await;
    assert_eq!(refused.len(), 3);
    for r in &refused {
        assert_eq!(r.outcome, "refused");
        assert!(r.query.len() < 2_048, "{} bytes", r.query.len());
        assert!(r.reason.len() < 1_024, "{} bytes", r.reason.len());
        assert!(r.purpose.len() < 1_024, "{} bytes", r.purpose.len());
    }
    // The polygon is named by its length and digest, not copied.
    assert!(
        refused[0].query.contains(&format!("{} bytes", huge.len())),
        "{}",
        refused[0].query
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_search_answering_in_many_chunks_is_audited_before_its_first_row() {
    let h = Harness::start().await;
    h.cameras("AVON", 1).await;
    let reads: Vec<pb::Read> = (0..1_200)
        .map(|i| read(&format!("m{i}"), "MA11ANY", "C1", 1 + i / 100))
        .collect();
    push(&h, "AVON", reads).await;
    let (rows, _) = h.timeline("alice", "MA11ANY").await;
    assert_eq!(rows.len(), 1_200);
    let (rows, _) = h.timeline("alice", "NO12ONE").await;
    assert!(rows.is_empty());
    let entries = audit(&h, "audrey", "search.").await;
    let actions: Vec<_> = entries.iter().map(|r| r.action.as_str()).collect();
    // The long answer: opened (before its first chunk), then closed with
    // what it returned. The short one: one entry, durable before any row.
    assert_eq!(
        actions,
        [
            "search.vrm_timeline.opened",
            "search.vrm_timeline",
            "search.vrm_timeline"
        ]
    );
    assert!(entries[0].seq < entries[1].seq);
    assert!(entries[0].returned.is_empty());
    assert_eq!(entries[1].returned[0].rows, 1_200);
    let _ = Timestamp::EPOCH;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_search_refused_before_it_is_planned_is_audited_too() {
    let h = Harness::start().await;
    let timeline = |ch: Channel, limit: u32| async move {
        let mut c = pb::search_client::SearchClient::new(ch);
        c.vrm_timeline(pb::VrmTimelineRequest {
            vrm: "AB12CDE".into(),
            limit,
            access: access(),
            ..Default::default()
        })
        .await
        .map(drop)
    };
    // A BOF, and a user without a searching role.
    let e = timeline(h.bof("AVON").await, 0).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    let e = timeline(h.user("nora").await, 0).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    // A limit over the node's maximum, refused before the search is run.
    let mut c = pb::search_client::SearchClient::new(h.user("alice").await);
    let e = c
        .geo_search(pb::GeoSearchRequest {
            limit: u32::MAX,
            access: access(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let refused = audit(&h, "audrey", "search.").await;
    let got: Vec<_> = refused
        .iter()
        .map(|r| (r.user.as_str(), r.action.as_str(), r.outcome.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("bof:AVON", "search.vrm_timeline", "refused"),
            ("nora", "search.vrm_timeline", "refused"),
            ("alice", "search.geo", "refused"),
        ]
    );
    // Refused at the gate (no searching role), the request is never read:
    // the entry says who tried which search, nothing the request claimed.
    assert_eq!(refused[0].case_ref, "");
}
