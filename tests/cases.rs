//! Cases belong to a force, over mTLS: AVON's OP-1 is AVON's. KENT's
//! searcher, supervisor and disclosure officer cannot see its schedule,
//! mark its material, record its consultations, search under it, hold its
//! reads, see its held reads or release its holds (each refusal names the
//! rule and is audited); KENT's own OP-1 is another case; once AVON shares
//! OP-1 with KENT, KENT's users are members (audited), except that only
//! AVON releases its holds; only reads returned under a case can be held
//! for it.

mod support;

use nadc_bof::pb;
use nadc_core::Role;
use support::{Harness, batch, case_read_ref, force, held_read, read};
use tonic::Code;

/// KENT users, issued by the harness's CA: kate (analyst), ken
/// (supervisor), kim (disclosure) and kurt (auditor).
fn kent_users(h: &Harness) {
    let ca = h.layout.load_ca().unwrap();
    for (name, role) in [
        ("kate", Role::Analyst),
        ("ken", Role::Supervisor),
        ("kim", Role::Disclosure),
        ("kurt", Role::Auditor),
    ] {
        let ck = ca.issue_user(&force("KENT"), name, &[role]).unwrap();
        nadc_pki::write_certified_key(&h.layout.user_cert(name), &h.layout.user_key(name), &ck)
            .unwrap();
    }
}

fn ctx(case: &str, owner: &str) -> Option<pb::AccessContext> {
    Some(pb::AccessContext {
        purpose: "serious-crime".into(),
        case_ref: case.into(),
        case_force: owner.into(),
        ..Default::default()
    })
}

async fn drain(
    s: Result<tonic::Response<tonic::Streaming<pb::SearchChunk>>, tonic::Status>,
) -> Result<Vec<pb::ReadRow>, tonic::Status> {
    let mut s = s?.into_inner();
    let mut rows = Vec::new();
    while let Some(c) = s.message().await? {
        if let Some(pb::search_chunk::Chunk::Rows(b)) = c.chunk {
            rows.extend(b.rows);
        }
    }
    Ok(rows)
}

async fn timeline(
    h: &Harness,
    user: &str,
    vrm: &str,
    case: &str,
    owner: &str,
) -> Result<Vec<pb::ReadRow>, tonic::Status> {
    let mut c = pb::search_client::SearchClient::new(h.user(user).await);
    drain(
        c.vrm_timeline(pb::VrmTimelineRequest {
            vrm: vrm.into(),
            access: ctx(case, owner),
            ..Default::default()
        })
        .await,
    )
    .await
}

async fn held(
    h: &Harness,
    user: &str,
    case: &str,
    owner: &str,
) -> Result<Vec<String>, tonic::Status> {
    let mut c = pb::search_client::SearchClient::new(h.user(user).await);
    let rows = drain(
        c.held_reads(pb::HeldReadsRequest {
            access: ctx(case, owner),
        })
        .await,
    )
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| r.provenance.unwrap().bof_read_id)
        .collect())
}

async fn schedule(
    h: &Harness,
    user: &str,
    case: &str,
    owner: &str,
) -> Result<pb::ScheduleResponse, tonic::Status> {
    let mut d = pb::disclosure_client::DisclosureClient::new(h.user(user).await);
    d.schedule(pb::ScheduleRequest {
        case_ref: case.into(),
        case_force: owner.into(),
    })
    .await
    .map(tonic::Response::into_inner)
}

async fn mark(
    h: &Harness,
    user: &str,
    owner: &str,
    reads: Vec<pb::CaseReadRef>,
) -> Result<u32, tonic::Status> {
    let mut d = pb::disclosure_client::DisclosureClient::new(h.user(user).await);
    d.mark_material(pb::MarkMaterialRequest {
        case_ref: "OP-1".into(),
        case_force: owner.into(),
        reads,
        ..Default::default()
    })
    .await
    .map(|r| r.into_inner().marked)
}

async fn consult(h: &Harness, user: &str, owner: &str) -> Result<(), tonic::Status> {
    let mut d = pb::disclosure_client::DisclosureClient::new(h.user(user).await);
    d.set_consultation(pb::SetConsultationRequest {
        case_ref: "OP-1".into(),
        case_force: owner.into(),
        force: "KENT".into(),
        status: pb::ConsultationStatus::Approved as i32,
        note: "agreed".into(),
    })
    .await
    .map(drop)
}

async fn place(
    h: &Harness,
    user: &str,
    case: &str,
    owner: &str,
    reads: Vec<pb::HeldRead>,
) -> Result<u64, tonic::Status> {
    let mut c = pb::holds_client::HoldsClient::new(h.user(user).await);
    c.place(pb::PlaceHoldRequest {
        case_ref: case.into(),
        case_force: owner.into(),
        reads,
        reason: "evidence".into(),
    })
    .await
    .map(|r| r.into_inner().reads)
}

async fn release(h: &Harness, user: &str, owner: &str) -> Result<u64, tonic::Status> {
    let mut c = pb::holds_client::HoldsClient::new(h.user(user).await);
    c.release(pb::ReleaseHoldRequest {
        case_ref: "OP-1".into(),
        case_force: owner.into(),
    })
    .await
    .map(|r| r.into_inner().reads)
}

async fn share(
    h: &Harness,
    user: &str,
    with: &str,
) -> Result<pb::ShareCaseResponse, tonic::Status> {
    share_or_end(h, user, with, false).await
}

/// `user` shares their force's OP-1 with `with`, or ends the share.
async fn share_or_end(
    h: &Harness,
    user: &str,
    with: &str,
    revoke: bool,
) -> Result<pb::ShareCaseResponse, tonic::Status> {
    let mut d = pb::disclosure_client::DisclosureClient::new(h.user(user).await);
    d.share(pb::ShareCaseRequest {
        case_ref: "OP-1".into(),
        force: with.into(),
        revoke,
        ..Default::default()
    })
    .await
    .map(tonic::Response::into_inner)
}

/// Asserts a refusal with `code` whose message contains `rule`.
fn refused<T: std::fmt::Debug>(what: &str, r: Result<T, tonic::Status>, code: Code, rule: &str) {
    match r {
        Err(e) => {
            assert_eq!(e.code(), code, "{what}: {e:?}");
            assert!(e.message().contains(rule), "{what}: {}", e.message());
        }
        Ok(v) => panic!("{what}: not refused: {v:?}"),
    }
}

/// `user`'s audit entries (as KENT's auditor reads them), as (action,
/// case, outcome, reason).
async fn audited(h: &Harness, user: &str) -> Vec<(String, String, String, String)> {
    let q = pb::AuditQuery {
        user: user.into(),
        ..Default::default()
    };
    h.audit_entries("kurt", q)
        .await
        .into_iter()
        .map(|e| (e.action, e.case_ref, e.outcome, e.reason))
        .collect()
}

const NOT_SHARED: &str = "case AVON/OP-1 belongs to AVON and is not shared with KENT";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_case_is_its_forces_until_shared_and_only_its_force_releases_its_holds() {
    let h = Harness::start().await;
    kent_users(&h);
    h.cameras("AVON", 2).await;
    h.cameras("KENT", 1).await;
    let mut avon = pb::ingest_client::IngestClient::new(h.bof("AVON").await);
    avon.push_batch(batch(vec![
        read("a1", "CA53REF", "C1", 50),
        read("a2", "CA53REF", "C2", 40),
    ]))
    .await
    .unwrap();
    let mut kent = pb::ingest_client::IngestClient::new(h.bof("KENT").await);
    kent.push_batch(batch(vec![
        read("k1", "CA53REF", "C1", 20),
        read("k2", "OT43HER", "C1", 10),
    ]))
    .await
    .unwrap();

    // AVON opens OP-1 with a search and holds a1 for it.
    let rows = timeline(&h, "alice", "CA53REF", "OP-1", "").await.unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(
        place(&h, "dora", "OP-1", "", vec![held_read(&rows[0])])
            .await
            .unwrap(),
        1
    );

    // KENT's users, naming AVON's OP-1, are refused everything.
    refused(
        "kate schedule",
        schedule(&h, "kate", "OP-1", "AVON").await,
        Code::PermissionDenied,
        NOT_SHARED,
    );
    refused(
        "kim schedule",
        schedule(&h, "kim", "OP-1", "AVON").await,
        Code::PermissionDenied,
        NOT_SHARED,
    );
    refused(
        "kate mark",
        mark(&h, "kate", "AVON", vec![case_read_ref(&rows[1])]).await,
        Code::PermissionDenied,
        NOT_SHARED,
    );
    refused(
        "kim consult",
        consult(&h, "kim", "AVON").await,
        Code::PermissionDenied,
        NOT_SHARED,
    );
    refused(
        "kate search",
        timeline(&h, "kate", "CA53REF", "OP-1", "AVON").await,
        Code::PermissionDenied,
        NOT_SHARED,
    );
    refused(
        "kate held",
        held(&h, "kate", "OP-1", "AVON").await,
        Code::PermissionDenied,
        NOT_SHARED,
    );
    refused(
        "ken hold",
        place(&h, "ken", "OP-1", "AVON", vec![held_read(&rows[1])]).await,
        Code::PermissionDenied,
        NOT_SHARED,
    );
    refused(
        "kim release",
        release(&h, "kim", "AVON").await,
        Code::PermissionDenied,
        NOT_SHARED,
    );
    refused(
        "ken release",
        release(&h, "ken", "AVON").await,
        Code::PermissionDenied,
        NOT_SHARED,
    );
    // Nor can KENT share AVON's case with itself.
    let mut d = pb::disclosure_client::DisclosureClient::new(h.user("ken").await);
    refused(
        "ken share",
        d.share(pb::ShareCaseRequest {
            case_ref: "OP-1".into(),
            case_force: "AVON".into(),
            force: "KENT".into(),
            ..Default::default()
        })
        .await,
        Code::PermissionDenied,
        "only its own force shares it",
    );
    // Each refusal is audited, naming the case as KENT names it and the rule.
    let kate = audited(&h, "kate").await;
    let actions: Vec<&str> = kate.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(
        actions,
        [
            "case.schedule",
            "case.mark",
            "search.vrm_timeline",
            "search.held_reads"
        ]
    );
    for (action, case, outcome, reason) in &kate {
        assert_eq!(
            (case.as_str(), outcome.as_str()),
            ("AVON/OP-1", "refused"),
            "{action}"
        );
        assert!(reason.contains(NOT_SHARED), "{action}: {reason}");
    }
    let kim: Vec<(String, String)> = audited(&h, "kim")
        .await
        .into_iter()
        .map(|e| (e.0, e.2))
        .collect();
    assert_eq!(
        kim,
        [
            ("case.schedule".to_string(), "refused".to_string()),
            ("case.consultation".into(), "refused".into()),
            ("hold.release".into(), "refused".into()),
        ]
    );
    let ken: Vec<String> = audited(&h, "ken").await.into_iter().map(|e| e.0).collect();
    assert_eq!(ken, ["hold.place", "hold.release", "case.share"]);

    // KENT's own OP-1 is another case: its schedule is KENT's, empty of
    // AVON's searches, and AVON's hold is not in it.
    let own = schedule(&h, "kate", "OP-1", "").await.unwrap();
    assert_eq!(own.owner_force, "KENT");
    assert!(
        own.agencies.is_empty() && own.searches.is_empty(),
        "{own:?}"
    );
    assert!(held(&h, "kate", "OP-1", "").await.unwrap().is_empty());
    let kent_rows = timeline(&h, "kate", "CA53REF", "OP-1", "").await.unwrap();
    assert_eq!(kent_rows.len(), 3);
    // A read never returned under a case cannot be held for it.
    let k2 = timeline(&h, "kate", "OT43HER", "OP-2", "").await.unwrap();
    refused(
        "kim holds a read of another case",
        place(&h, "kim", "OP-1", "", vec![held_read(&k2[0])]).await,
        Code::PermissionDenied,
        &format!(
            "read seq {} captured {} was not returned under case OP-1 at this node",
            k2[0].provenance.as_ref().unwrap().seq,
            &nadc_proto::from_pb_time(
                k2[0]
                    .provenance
                    .as_ref()
                    .unwrap()
                    .observed_at
                    .as_ref()
                    .unwrap()
            )
            .unwrap()
            .to_rfc3339()[..10]
        ),
    );
    // AVON's schedule still knows only alice's search.
    let avon_s = schedule(&h, "dora", "OP-1", "").await.unwrap();
    assert_eq!(avon_s.owner_force, "AVON");
    let users: Vec<&str> = avon_s.searches.iter().map(|s| s.user.as_str()).collect();
    assert_eq!(users, ["alice"]);

    // AVON's supervisor shares OP-1 with KENT (an analyst cannot).
    refused(
        "alice share",
        share(&h, "alice", "KENT").await,
        Code::PermissionDenied,
        "Disclosure.Share needs a user with the supervisor or disclosure role",
    );
    let shared = share(&h, "sam", "KENT").await.unwrap();
    assert_eq!(
        (shared.owner_force.as_str(), shared.case_ref.as_str()),
        ("AVON", "OP-1")
    );
    assert_eq!(shared.members.len(), 1);
    assert_eq!(
        (
            shared.members[0].force.as_str(),
            shared.members[0].shared_by.as_str()
        ),
        ("KENT", "sam")
    );

    // The share is in AVON's audit: who shared which case with whom.
    let q = pb::AuditQuery {
        action: "case.share".into(),
        ..Default::default()
    };
    let shares: Vec<_> = h
        .audit_entries("audrey", q)
        .await
        .into_iter()
        .map(|e| (e.user, e.case_ref, e.outcome, e.query))
        .collect();
    assert!(
        shares
            .iter()
            .any(
                |(u, c, o, q)| (u.as_str(), c.as_str(), o.as_str()) == ("sam", "OP-1", "ok")
                    && q.contains("\"share_with\":\"KENT\"")
            ),
        "{shares:?}"
    );

    // Now KENT's users are members.
    let rows2 = timeline(&h, "kate", "CA53REF", "OP-1", "AVON")
        .await
        .unwrap();
    assert_eq!(rows2.len(), 3);
    assert_eq!(
        mark(&h, "kate", "AVON", vec![case_read_ref(&rows[1])])
            .await
            .unwrap(),
        1
    );
    consult(&h, "kim", "AVON").await.unwrap();
    assert_eq!(held(&h, "kate", "OP-1", "AVON").await.unwrap(), ["a1"]);
    assert_eq!(
        place(&h, "ken", "OP-1", "AVON", vec![held_read(&rows[1])])
            .await
            .unwrap(),
        1
    );
    let s = schedule(&h, "kim", "OP-1", "AVON").await.unwrap();
    assert_eq!(s.members[0].force, "KENT");
    // The searches under it: alice's, kate's timeline, and kate's showing
    // of its held reads (a disclosure under the case too).
    let searches: Vec<(&str, &str)> = s
        .searches
        .iter()
        .map(|s| (s.user.as_str(), s.action.as_str()))
        .collect();
    assert_eq!(
        searches,
        [
            ("alice", "search.vrm_timeline"),
            ("kate", "search.vrm_timeline"),
            ("kate", "search.held_reads")
        ]
    );
    let avon_part = s.agencies.iter().find(|a| a.force == "AVON").unwrap();
    assert_eq!(avon_part.material, 1);
    let kent_part = s.agencies.iter().find(|a| a.force == "KENT").unwrap();
    assert_eq!(
        kent_part.consultation.as_ref().unwrap().status,
        pb::ConsultationStatus::Approved as i32
    );
    // Only AVON releases AVON's holds, even once shared.
    refused(
        "ken release shared",
        release(&h, "ken", "AVON").await,
        Code::PermissionDenied,
        "only its own force's supervisors and disclosure officers release its holds",
    );
    assert_eq!(held(&h, "kate", "OP-1", "AVON").await.unwrap().len(), 2);
    assert_eq!(release(&h, "dora", "").await.unwrap(), 2);

    // The members' actions are audited under AVON/OP-1.
    let kate_ok: Vec<(String, String)> = audited(&h, "kate")
        .await
        .into_iter()
        .filter(|e| e.2 == "ok" && e.1 == "AVON/OP-1")
        .map(|e| (e.0, e.1))
        .collect();
    let actions: Vec<&str> = kate_ok.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(
        actions,
        [
            "search.vrm_timeline",
            "case.mark",
            "search.held_reads",
            "search.held_reads"
        ]
    );
    let ken: Vec<(String, String)> = audited(&h, "ken")
        .await
        .into_iter()
        .map(|e| (e.0, e.2))
        .collect();
    assert_eq!(
        ken[3..],
        [
            ("hold.place".to_string(), "ok".to_string()),
            ("hold.release".into(), "refused".into())
        ]
    );
}

async fn unshare(
    h: &Harness,
    user: &str,
    with: &str,
) -> Result<pb::ShareCaseResponse, tonic::Status> {
    share_or_end(h, user, with, true).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_ended_share_closes_the_case_to_that_force_and_stays_ended_after_a_restart() {
    let mut h = Harness::start().await;
    kent_users(&h);
    h.cameras("AVON", 1).await;
    let mut avon = pb::ingest_client::IngestClient::new(h.bof("AVON").await);
    avon.push_batch(batch(vec![read("a1", "CA53REF", "C1", 50)]))
        .await
        .unwrap();
    assert_eq!(
        timeline(&h, "alice", "CA53REF", "OP-1", "")
            .await
            .unwrap()
            .len(),
        1
    );
    share(&h, "sam", "KENT").await.unwrap();
    assert_eq!(
        timeline(&h, "kate", "CA53REF", "OP-1", "AVON")
            .await
            .unwrap()
            .len(),
        1
    );

    // Only the owner's supervisor or disclosure officer ends it.
    refused(
        "kate unshare",
        unshare(&h, "kate", "KENT").await,
        Code::PermissionDenied,
        "supervisor or disclosure",
    );
    refused(
        "ken unshare AVON's",
        {
            let mut d = pb::disclosure_client::DisclosureClient::new(h.user("ken").await);
            d.share(pb::ShareCaseRequest {
                case_ref: "OP-1".into(),
                case_force: "AVON".into(),
                force: "KENT".into(),
                revoke: true,
            })
            .await
        },
        Code::PermissionDenied,
        "only its own force shares it",
    );
    let ended = unshare(&h, "dora", "KENT").await.unwrap();
    assert!(ended.members.is_empty(), "{ended:?}");
    refused(
        "kate after the end",
        timeline(&h, "kate", "CA53REF", "OP-1", "AVON").await,
        Code::PermissionDenied,
        NOT_SHARED,
    );
    refused(
        "kim's schedule after the end",
        schedule(&h, "kim", "OP-1", "AVON").await,
        Code::PermissionDenied,
        NOT_SHARED,
    );
    refused(
        "ending it twice",
        unshare(&h, "dora", "KENT").await,
        Code::FailedPrecondition,
        "not shared with KENT",
    );

    // The end is durable: a restarted node still refuses KENT.
    h.restart().await;
    refused(
        "kate after a restart",
        timeline(&h, "kate", "CA53REF", "OP-1", "AVON").await,
        Code::PermissionDenied,
        NOT_SHARED,
    );
    // Shared again, KENT is a member again (also after a restart).
    share(&h, "sam", "KENT").await.unwrap();
    h.restart().await;
    assert_eq!(
        timeline(&h, "kate", "CA53REF", "OP-1", "AVON")
            .await
            .unwrap()
            .len(),
        1
    );

    // Each share, end and refused end is in AVON's audit, by whom (KENT's
    // refused attempts are KENT's auditor's business).
    let q = pb::AuditQuery {
        action: "case.".into(),
        ..Default::default()
    };
    let changes: Vec<(String, String)> = h
        .audit_entries("audrey", q)
        .await
        .into_iter()
        .filter(|e| e.action.contains("share"))
        .map(|e| (e.action, e.user))
        .collect();
    assert_eq!(
        changes,
        [
            ("case.share".to_string(), "sam".to_string()),
            ("case.unshare".into(), "dora".into()),
            ("case.unshare".into(), "dora".into()),
            ("case.share".into(), "sam".into()),
        ]
    );
}
