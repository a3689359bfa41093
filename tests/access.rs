//! Lawful access end to end over mTLS: purpose and case on every search,
//! the data-age tiers with supervisors' authorisations (exact boundaries on
//! an injected clock), and the hash-chained audit log: who searched whose
//! data, and tampering detected.

mod support;

use nadc_bof::pb;
use nadc_core::Timestamp;
use nadc_core::audit::ChainedEntry;
use support::{Harness, batch, now};
use tonic::transport::Channel;

const DAY: i64 = 86_400_000;

fn ctx(purpose: &str, case: &str, auth: &str, clip: bool) -> Option<pb::AccessContext> {
    Some(pb::AccessContext {
        purpose: purpose.into(),
        case_ref: case.into(),
        authorisation: auth.into(),
        clip_to_permitted: clip,
        ..Default::default()
    })
}

fn read_at(id: &str, vrm: &str, camera: &str, at: Timestamp) -> pb::Read {
    pb::Read {
        read_id: id.into(),
        vrm: vrm.into(),
        observed_at: Some(nadc_proto::to_pb_time(at)),
        camera_id: camera.into(),
        ..Default::default()
    }
}

/// A timeline over the last `days` days under `access`: rows' read ids and
/// the summary, or the refusal.
async fn timeline(
    ch: Channel,
    vrm: &str,
    days: i64,
    access: Option<pb::AccessContext>,
) -> Result<(Vec<String>, pb::SearchSummary), tonic::Status> {
    let mut c = pb::search_client::SearchClient::new(ch);
    let s = c
        .vrm_timeline(pb::VrmTimelineRequest {
            vrm: vrm.into(),
            from: Some(nadc_proto::to_pb_time(now().plus_millis(-days * DAY))),
            to: Some(nadc_proto::to_pb_time(now())),
            limit: 0,
            access,
            ..Default::default()
        })
        .await?
        .into_inner();
    let (ids, summary) = support::read_ids(s).await?;
    Ok((ids, summary.unwrap()))
}

async fn audit(h: &Harness, q: pb::AuditQuery) -> Vec<pb::AuditRecord> {
    h.audit_entries("audrey", q).await
}

async fn grant(h: &Harness, req: pb::GrantRequest) -> Result<pb::AuthorisationInfo, tonic::Status> {
    let mut c = pb::authorisations_client::AuthorisationsClient::new(h.user("sam").await);
    c.grant(req).await.map(tonic::Response::into_inner)
}

fn grant_req(id: &str, purpose: &str, data_days: i64, expires_days: i64) -> pb::GrantRequest {
    pb::GrantRequest {
        id: id.into(),
        case_ref: "OP-OLD".into(),
        purpose: purpose.into(),
        user: String::new(),
        data_from: Some(nadc_proto::to_pb_time(now().plus_millis(-data_days * DAY))),
        data_to: Some(nadc_proto::to_pb_time(now())),
        expires_at: Some(nadc_proto::to_pb_time(
            now().plus_millis(expires_days * DAY),
        )),
        reason: "murder inquiry: vehicle seen near the scene in the spring".into(),
    }
}

/// AVON and KENT reads of one vehicle: 120 and 10 days ago, and exactly
/// 90 days ago.
async fn loaded() -> Harness {
    let h = Harness::start().await;
    h.cameras("AVON", 2).await;
    h.cameras("KENT", 1).await;
    let mut avon = pb::ingest_client::IngestClient::new(h.bof("AVON").await);
    let r = avon
        .push_batch(batch(vec![
            read_at("old", "OL12DER", "C1", now().plus_millis(-120 * DAY)),
            read_at("edge", "OL12DER", "C2", now().minus_days(90)),
            read_at("new", "OL12DER", "C1", now().plus_millis(-10 * DAY)),
        ]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.accepted, 3, "{:?}", r.rejected);
    let mut kent = pb::ingest_client::IngestClient::new(h.bof("KENT").await);
    kent.push_batch(batch(vec![read_at(
        "kent-1",
        "OL12DER",
        "C1",
        now().plus_millis(-5 * DAY),
    )]))
    .await
    .unwrap();
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_search_needs_a_listed_purpose_and_a_case_reference() {
    let h = loaded().await;
    let alice = h.user("alice").await;
    for (access, wants) in [
        (None, "purpose is required"),
        (ctx("", "OP-1", "", false), "purpose is required"),
        (
            ctx("curiosity", "OP-1", "", false),
            "not one of this node's purposes",
        ),
        (
            ctx("serious-crime", "", "", false),
            "case reference is required",
        ),
    ] {
        let e = timeline(alice.clone(), "OL12DER", 30, access)
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(e.message().contains(wants), "{}", e.message());
    }
    // Every kind of search is checked, not only timelines.
    let mut c = pb::search_client::SearchClient::new(alice.clone());
    let e = c
        .geo_search(pb::GeoSearchRequest {
            areas: vec![pb::Area {
                lat: 51.46,
                lon: -2.58,
                radius_m: 500.0,
                from: Some(nadc_proto::to_pb_time(now().plus_millis(-DAY))),
                to: Some(nadc_proto::to_pb_time(now())),
                polygon: String::new(),
            }],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(
        e.message().contains("purpose is required"),
        "{}",
        e.message()
    );
    let e = c
        .clones(pb::ClonesRequest {
            from: Some(nadc_proto::to_pb_time(now().plus_millis(-DAY))),
            to: Some(nadc_proto::to_pb_time(now())),
            access: ctx("serious-crime", "", "", false),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(e.message().contains("case reference"), "{}", e.message());
    // Refusals are audited too.
    let refused = audit(
        &h,
        pb::AuditQuery {
            user: "alice".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(refused.len(), 6);
    assert!(refused.iter().all(|r| r.outcome == "refused"));
    assert!(refused.iter().any(|r| r.action == "search.geo"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn older_data_needs_an_authorisation_and_the_tiers_are_exact() {
    let h = loaded().await;
    let alice = h.user("alice").await;
    let standard = ctx("serious-crime", "OP-OLD", "", false);
    // 90 days back exactly: standard tier.
    let (ids, summary) = timeline(alice.clone(), "OL12DER", 90, standard.clone())
        .await
        .unwrap();
    assert_eq!(ids, ["edge", "new", "kent-1"]);
    assert!(summary.clipped_from.is_none());
    // 150 days back without an authorisation: refused, saying why.
    let e = timeline(alice.clone(), "OL12DER", 150, standard.clone())
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
    assert!(e.message().contains("authorisation"), "{}", e.message());
    // Or clipped on request, and the summary says from when.
    let (ids, summary) = timeline(
        alice.clone(),
        "OL12DER",
        150,
        ctx("serious-crime", "OP-OLD", "", true),
    )
    .await
    .unwrap();
    assert_eq!(ids, ["edge", "new", "kent-1"]);
    assert_eq!(
        summary.clipped_from,
        Some(nadc_proto::to_pb_time(now().plus_millis(-150 * DAY)))
    );

    // Only a supervisor grants, only for an extended purpose.
    let mut c = pb::authorisations_client::AuthorisationsClient::new(alice.clone());
    let e = c
        .grant(grant_req("AUTH-1", "serious-crime", 200, 7))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
    let e = grant(&h, grant_req("AUTH-V", "volume-crime", 200, 7))
        .await
        .unwrap_err();
    assert!(e.message().contains("volume-crime"), "{}", e.message());
    grant(&h, grant_req("AUTH-1", "serious-crime", 200, 7))
        .await
        .unwrap();
    let dup = grant(&h, grant_req("AUTH-1", "serious-crime", 200, 7))
        .await
        .unwrap_err();
    assert_eq!(dup.code(), tonic::Code::AlreadyExists);

    // Under the authorisation, the old read is found.
    let authorised = ctx("serious-crime", "OP-OLD", "AUTH-1", false);
    let (ids, _) = timeline(alice.clone(), "OL12DER", 150, authorised.clone())
        .await
        .unwrap();
    assert_eq!(ids, ["old", "edge", "new", "kent-1"]);
    // Not for another case, another purpose, or beyond the range it opens.
    let e = timeline(
        alice.clone(),
        "OL12DER",
        150,
        ctx("serious-crime", "OP-OTHER", "AUTH-1", false),
    )
    .await
    .unwrap_err();
    assert!(e.message().contains("is for case"), "{}", e.message());
    let e = timeline(
        alice.clone(),
        "OL12DER",
        150,
        ctx("major-crime", "OP-OLD", "AUTH-1", false),
    )
    .await
    .unwrap_err();
    assert!(e.message().contains("purpose"), "{}", e.message());
    let e = timeline(alice.clone(), "OL12DER", 250, authorised.clone())
        .await
        .unwrap_err();
    assert!(e.message().contains("covers data from"), "{}", e.message());
    // A KENT user cannot use AVON's authorisation.
    let carol = h.user("carol").await;
    let e = timeline(carol, "OL12DER", 150, authorised.clone()).await;
    assert!(e.is_err());

    // It lapses exactly at its expiry (the node's clock is injected).
    h.clock.set(now().plus_millis(7 * DAY - 1));
    assert!(
        timeline(alice.clone(), "OL12DER", 150, authorised.clone())
            .await
            .is_ok()
    );
    h.clock.set(now().plus_millis(7 * DAY));
    let e = timeline(alice.clone(), "OL12DER", 150, authorised)
        .await
        .unwrap_err();
    assert!(e.message().contains("expired"), "{}", e.message());

    // The grant is audited, and so is every refused one: by a user who may
    // not grant, for a purpose that cannot open older data, and an id the
    // force already has.
    let grants = audit(
        &h,
        pb::AuditQuery {
            action: "authorisation.".into(),
            ..Default::default()
        },
    )
    .await;
    let outcomes: Vec<(&str, &str)> = grants
        .iter()
        .map(|r| (r.user.as_str(), r.outcome.as_str()))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("alice", "refused"),
            ("sam", "refused"),
            ("sam", "ok"),
            ("sam", "refused")
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_audit_says_who_searched_whose_data_and_detects_tampering() {
    let mut h = loaded().await;
    let alice = h.user("alice").await;
    timeline(
        alice.clone(),
        "OL12DER",
        30,
        ctx("serious-crime", "OP-A", "", false),
    )
    .await
    .unwrap();
    timeline(
        alice.clone(),
        "NO12ONE",
        30,
        ctx("volume-crime", "OP-B", "", false),
    )
    .await
    .unwrap();
    // Who searched KENT's data: alice, under OP-A, with the row counts.
    let kent = audit(
        &h,
        pb::AuditQuery {
            owning_force: "KENT".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(kent.len(), 1);
    let r = &kent[0];
    assert_eq!(
        (r.user.as_str(), r.force.as_str(), r.case_ref.as_str()),
        ("alice", "AVON", "OP-A")
    );
    assert_eq!(r.action, "search.vrm_timeline");
    assert_eq!(r.roles, ["analyst"]);
    assert!(r.query.contains("OL12DER"), "{}", r.query);
    let returned: Vec<(&str, u64)> = r
        .returned
        .iter()
        .map(|f| (f.force.as_str(), f.rows))
        .collect();
    assert_eq!(returned, [("AVON", 1), ("KENT", 1)]);
    let by_case = audit(
        &h,
        pb::AuditQuery {
            case_ref: "OP-B".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(by_case.len(), 1);
    assert_eq!(by_case[0].purpose, "volume-crime");

    // Only auditors read the audit.
    let mut c = pb::audit_client::AuditClient::new(alice.clone());
    let e = c.verify(pb::VerifyAuditRequest {}).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
    let mut auditor = pb::audit_client::AuditClient::new(h.user("audrey").await);
    let v = auditor
        .verify(pb::VerifyAuditRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(v.intact, "{v:?}");
    // The two searches, the auditor's two queries, alice's refused
    // verification (refused at the gate, audited there) and this one (an
    // auditor's own queries are audited too).
    assert_eq!(v.entries, 6);

    // Someone with access to the disk edits entry 1 (hiding the case) and
    // recomputes nothing: the chain breaks at entry 1.
    h.node.take().unwrap().shutdown().await.unwrap();
    {
        let opts = rocksdb::Options::default();
        let cfs = rocksdb::DB::list_cf(&opts, h.data_dir()).unwrap();
        let db = rocksdb::DB::open_cf(&opts, h.data_dir(), cfs).unwrap();
        let cf = db.cf_handle("audit").unwrap();
        let key = 1u64.to_be_bytes();
        let mut e: ChainedEntry =
            postcard::from_bytes(&db.get_cf(cf, key).unwrap().unwrap()).unwrap();
        e.entry.case_ref = "NOTHING-TO-SEE".into();
        db.put_cf(cf, key, postcard::to_stdvec(&e).unwrap())
            .unwrap();
    }
    h.start_node().await;
    let mut auditor = pb::audit_client::AuditClient::new(h.user("audrey").await);
    let v = auditor
        .verify(pb::VerifyAuditRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(!v.intact);
    assert_eq!(v.broken_at, 1);
    assert!(v.reason.contains("altered"), "{}", v.reason);

    // The same check offline, on the stopped node's store, from the CLI.
    h.node.take().unwrap().shutdown().await.unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_nadc"))
        .args(["audit", "verify", "--data"])
        .arg(h.data_dir())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(text.contains("AUDIT CHAIN BROKEN at entry 1"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hotlist_changes_and_verifications_are_audited() {
    let h = loaded().await;
    let mut harry = pb::hotlists_client::HotlistsClient::new(h.user("harry").await);
    harry
        .create_hotlist(pb::CreateHotlistRequest {
            name: "wanted".into(),
            purpose: "serious crime".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    harry
        .add_entries(pb::AddEntriesRequest {
            list: Some(pb::HotlistRef {
                owner: String::new(),
                name: "wanted".into(),
            }),
            entries: vec![pb::HotlistEntry {
                vrm: "HL11HIT".into(),
                reason: "robbery".into(),
                intel_ref: "INT/9".into(),
                action: pb::Action::Stop as i32,
                expires_at: Some(nadc_proto::to_pb_time(now().plus_millis(DAY))),
                ..Default::default()
            }],
            look_back_days: 0,
            access: None,
        })
        .await
        .unwrap();
    let mut bof = pb::ingest_client::IngestClient::new(h.bof("AVON").await);
    bof.push_batch(batch(vec![read_at(
        "hit-1",
        "HL11HIT",
        "C1",
        now().plus_millis(-60_000),
    )]))
    .await
    .unwrap();
    let mut alerts = pb::alerts_client::AlertsClient::new(h.user("alice").await);
    alerts
        .verify(pb::VerifyRequest {
            position: 1,
            state: pb::Verification::Confirmed as i32,
            note: "patch image matches".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let changes = audit(
        &h,
        pb::AuditQuery {
            action: "hotlist.".into(),
            ..Default::default()
        },
    )
    .await;
    let actions: Vec<(&str, &str)> = changes
        .iter()
        .map(|r| (r.user.as_str(), r.action.as_str()))
        .collect();
    assert_eq!(
        actions,
        [("harry", "hotlist.create"), ("harry", "hotlist.add")]
    );
    assert!(changes[1].query.contains("HL11HIT") && changes[1].query.contains("INT/9"));
    let verified = audit(
        &h,
        pb::AuditQuery {
            action: "alert.verify".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(verified.len(), 1);
    assert_eq!(verified[0].user, "alice");
    assert!(
        verified[0].query.contains("confirmed"),
        "{}",
        verified[0].query
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_byte_flipped_in_the_stored_log_is_detected_at_its_entry() {
    let mut h = loaded().await;
    let alice = h.user("alice").await;
    for case in ["OP-1", "OP-2", "OP-3"] {
        timeline(
            alice.clone(),
            "OL12DER",
            30,
            ctx("serious-crime", case, "", false),
        )
        .await
        .unwrap();
    }
    h.node.take().unwrap().shutdown().await.unwrap();
    for offset in [0usize, 40, 80] {
        // Each time a different byte of entry 2; put back afterwards.
        let opts = rocksdb::Options::default();
        let cfs = rocksdb::DB::list_cf(&opts, h.data_dir()).unwrap();
        let db = rocksdb::DB::open_cf(&opts, h.data_dir(), cfs).unwrap();
        let cf = db.cf_handle("audit").unwrap();
        let key = 2u64.to_be_bytes();
        let original = db.get_cf(cf, key).unwrap().unwrap();
        let mut bytes = original.clone();
        let at = offset.min(bytes.len() - 1);
        bytes[at] ^= 0x01;
        db.put_cf(cf, key, &bytes).unwrap();
        drop(db);
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_nadc"))
            .args(["audit", "verify", "--data"])
            .arg(h.data_dir())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(!out.status.success(), "byte {at}: {text}");
        assert!(text.contains("BROKEN at entry 2"), "byte {at}: {text}");
        let db = rocksdb::DB::open_cf(
            &opts,
            h.data_dir(),
            rocksdb::DB::list_cf(&opts, h.data_dir()).unwrap(),
        )
        .unwrap();
        db.put_cf(db.cf_handle("audit").unwrap(), key, &original)
            .unwrap();
    }
    // Restored, the chain verifies again, online.
    h.start_node().await;
    let mut auditor = pb::audit_client::AuditClient::new(h.user("audrey").await);
    let v = auditor
        .verify(pb::VerifyAuditRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(v.intact, "{v:?}");
    // The three searches and this verification, audited before it walked.
    assert_eq!(v.entries, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_search_without_a_window_is_not_refused_by_the_clock_moving_on() {
    // The default window of a VRM search starts exactly at the standard
    // tier; the access check must use the same instant, however far the
    // clock moves between the two.
    let mut h = loaded().await;
    h.ticking = true;
    h.restart().await;
    let alice = h.user("alice").await;
    for _ in 0..5 {
        let mut c = pb::search_client::SearchClient::new(alice.clone());
        let mut s = c
            .vrm_timeline(pb::VrmTimelineRequest {
                vrm: "OL12DER".into(),
                access: ctx("serious-crime", "OP-TICK", "", false),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let mut ids = Vec::new();
        while let Some(c) = s.message().await.unwrap() {
            if let Some(pb::search_chunk::Chunk::Rows(b)) = c.chunk {
                ids.extend(
                    b.rows
                        .into_iter()
                        .map(|r| r.provenance.unwrap().bof_read_id),
                );
            }
        }
        // The read exactly 90 days old is in or out depending on how far
        // the clock has moved; the recent ones are always there, the old
        // one never.
        assert!(
            ids.contains(&"new".to_string()) && ids.contains(&"kent-1".to_string()),
            "{ids:?}"
        );
        assert!(!ids.contains(&"old".to_string()), "{ids:?}");
    }
}

/// A user naming a relay in their own request (as if a peer node relayed
/// them) is refused and audited: only a node's certificate relays, so the
/// field cannot skip the case check or mark the search as relayed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_user_posing_as_a_relay_is_refused() {
    let h = support::Harness::start().await;
    let e = nadc_bof::pb::search_client::SearchClient::new(h.user("alice").await)
        .vrm_timeline(nadc_bof::pb::VrmTimelineRequest {
            vrm: "AB12CDE".into(),
            access: support::case_access("KENT-CASE-NOT-MINE"),
            on_behalf_of: Some(nadc_bof::pb::OnBehalfOf {
                user: "alice".into(),
                force: "AVON".into(),
                roles: vec!["analyst".into()],
                via_node: "node-2".into(),
            }),
            ..Default::default()
        })
        .await
        .map(drop)
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
    assert!(e.message().contains("on_behalf_of"), "{}", e.message());
    let refused = h
        .audit_entries(
            "audrey",
            nadc_bof::pb::AuditQuery {
                user: "alice".into(),
                ..Default::default()
            },
        )
        .await;
    assert!(
        refused
            .iter()
            .any(|r| r.action == "search.vrm_timeline" && r.outcome.starts_with("refused")),
        "{refused:?}"
    );
}
