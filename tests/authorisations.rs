//! Supervisors' authorisations end to end over mTLS, tried as an adversary
//! would: the authorised range enforced at both ends, no
//! self-authorisation, the expiry cap, revocation, and ids scoped by force;
//! each refusal with its status, a message naming the rule, and the audit
//! entry it leaves (read by an auditor of the actor's force).

mod support;

use nadc_bof::pb;
use nadc_core::{Role, Timestamp};
use nadc_pki::InitSpec;
use support::{FORCES, Harness, batch, force, now};
use tonic::Code;
use tonic::transport::Channel;

const DAY: i64 = 86_400_000;

/// A time as the wire carries it.
macro_rules! ts {
    ($t:expr) => {
        Some(nadc_proto::to_pb_time($t))
    };
}

/// A node whose users are, in AVON: sam and sue (supervisors), alice
/// (analyst), audrey (auditor); in KENT: kim (supervisor), ken (analyst),
/// kay (auditor). AVON's reads of OL12DER: 120 ("old") and 100 ("mid") days
/// ago, exactly 90 days ago ("edge"), and 10 days ago ("new").
async fn node() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let users = [
        ("sam", Role::Supervisor, "AVON"),
        ("sue", Role::Supervisor, "AVON"),
        ("alice", Role::Analyst, "AVON"),
        ("audrey", Role::Auditor, "AVON"),
        ("kim", Role::Supervisor, "KENT"),
        ("ken", Role::Analyst, "KENT"),
        ("kay", Role::Auditor, "KENT"),
    ];
    let spec = InitSpec {
        node_names: vec!["node-1".into()],
        forces: FORCES.iter().map(|f| force(f)).collect(),
        users: users
            .iter()
            .map(|(n, r, f)| (n.to_string(), vec![*r], force(f)))
            .collect(),
        ..Default::default()
    };
    let layout = nadc_pki::init(&dir.path().join("pki"), &spec, false).unwrap();
    let mut h = Harness {
        dir,
        layout,
        clock: nadc_core::time::ManualClock::new(now()),
        node: None,
        url: String::new(),
        configure: |_| {},
        ticking: false,
    };
    h.start_node().await;
    h.cameras("AVON", 1).await;
    let read = |id: &str, t: Timestamp| pb::Read {
        read_id: id.into(),
        vrm: "OL12DER".into(),
        observed_at: ts!(t),
        camera_id: "C1".into(),
        ..Default::default()
    };
    let mut bof = pb::ingest_client::IngestClient::new(h.bof("AVON").await);
    let r = bof
        .push_batch(batch(vec![
            read("old", now().plus_millis(-120 * DAY)),
            read("mid", now().plus_millis(-100 * DAY)),
            read("edge", now().minus_days(90)),
            read("new", now().plus_millis(-10 * DAY)),
        ]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.accepted, 4, "{:?}", r.rejected);
    h
}

/// A grant of `id` for case OP-OLD, serious crime, any user of the force,
/// opening capture times `from..=to`, expiring `expires`.
fn grant_req(id: &str, from: Timestamp, to: Timestamp, expires: Timestamp) -> pb::GrantRequest {
    pb::GrantRequest {
        id: id.into(),
        case_ref: "OP-OLD".into(),
        purpose: "serious-crime".into(),
        user: String::new(),
        data_from: ts!(from),
        data_to: ts!(to),
        expires_at: ts!(expires),
        reason: "murder inquiry: vehicle seen near the scene in the spring".into(),
    }
}

/// The usual grant: 200 days back to now, for 7 days.
fn wide(id: &str) -> pb::GrantRequest {
    grant_req(
        id,
        now().plus_millis(-200 * DAY),
        now(),
        now().plus_millis(7 * DAY),
    )
}

async fn grant(
    h: &Harness,
    who: &str,
    req: pb::GrantRequest,
) -> Result<pb::AuthorisationInfo, tonic::Status> {
    let mut c = pb::authorisations_client::AuthorisationsClient::new(h.user(who).await);
    c.grant(req).await.map(tonic::Response::into_inner)
}

async fn revoke(
    h: &Harness,
    who: &str,
    id: &str,
    reason: &str,
) -> Result<pb::AuthorisationInfo, tonic::Status> {
    let mut c = pb::authorisations_client::AuthorisationsClient::new(h.user(who).await);
    c.revoke(pb::RevokeRequest {
        id: id.into(),
        reason: reason.into(),
    })
    .await
    .map(tonic::Response::into_inner)
}

async fn list(h: &Harness, who: &str) -> Vec<pb::AuthorisationInfo> {
    let mut c = pb::authorisations_client::AuthorisationsClient::new(h.user(who).await);
    c.list_authorisations(pb::ListAuthorisationsRequest {})
        .await
        .unwrap()
        .into_inner()
        .authorisations
}

/// OL12DER's reads in `from..=to` as `who` under case `case` and
/// authorisation `auth` (clipped if `clip`): read ids and the summary's
/// clipped_from, or the refusal.
async fn search(
    ch: Channel,
    case: &str,
    auth: &str,
    from: Timestamp,
    to: Timestamp,
    clip: bool,
) -> Result<(Vec<String>, Option<Timestamp>), tonic::Status> {
    let mut c = pb::search_client::SearchClient::new(ch);
    let s = c
        .vrm_timeline(pb::VrmTimelineRequest {
            vrm: "OL12DER".into(),
            from: ts!(from),
            to: ts!(to),
            access: Some(pb::AccessContext {
                purpose: "serious-crime".into(),
                case_ref: case.into(),
                authorisation: auth.into(),
                clip_to_permitted: clip,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await?
        .into_inner();
    let (ids, summary) = support::read_ids(s).await?;
    let clipped = summary
        .and_then(|s| s.clipped_from)
        .as_ref()
        .and_then(nadc_proto::from_pb_time);
    Ok((ids, clipped))
}

/// 150 days back to now: reaches older data.
async fn search_old(
    h: &Harness,
    who: &str,
    case: &str,
    auth: &str,
) -> Result<Vec<String>, tonic::Status> {
    search(
        h.user(who).await,
        case,
        auth,
        now().plus_millis(-150 * DAY),
        now(),
        false,
    )
    .await
    .map(|(ids, _)| ids)
}

/// Whether `who`'s search under `case` and `auth` reaches the read of
/// 120 days ago ("old"; panics on a refusal).
async fn opens_old(h: &Harness, who: &str, case: &str, auth: &str) -> bool {
    search_old(h, who, case, auth)
        .await
        .unwrap()
        .contains(&"old".to_string())
}

/// The audit entries of `user` whose action starts with `action`, read by
/// the auditor `auditor` (of the user's force).
async fn audit(h: &Harness, auditor: &str, user: &str, action: &str) -> Vec<pb::AuditRecord> {
    let q = pb::AuditQuery {
        user: user.into(),
        action: action.into(),
        ..Default::default()
    };
    h.audit_entries(auditor, q).await
}

/// Asserts a refusal's code and that its message names the rule.
#[track_caller]
fn refused<T: std::fmt::Debug>(r: Result<T, tonic::Status>, code: Code, rule: &str) {
    let e = r.unwrap_err();
    assert_eq!(e.code(), code, "{}", e.message());
    assert!(
        e.message().contains(rule),
        "{:?} lacks {rule:?}",
        e.message()
    );
}

/// Asserts that the last of `entries` is a refusal naming `rule`.
#[track_caller]
fn last_refused(entries: &[pb::AuditRecord], rule: &str) {
    let last = entries.last().expect("an audit entry");
    assert_eq!(last.outcome, "refused", "{last:?}");
    assert!(
        last.reason.contains(rule),
        "{:?} lacks {rule:?}",
        last.reason
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_authorised_range_is_enforced_at_both_ends() {
    let h = node().await;
    let (from, to) = (now().plus_millis(-130 * DAY), now().plus_millis(-110 * DAY));
    grant(
        &h,
        "sam",
        grant_req("AUTH-R", from, to, now().plus_millis(7 * DAY)),
    )
    .await
    .unwrap();
    let alice = h.user("alice").await;
    // The range itself, to the millisecond at both ends: opened.
    let (ids, _) = search(alice.clone(), "OP-OLD", "AUTH-R", from, to, false)
        .await
        .unwrap();
    assert_eq!(ids, ["old"]);
    // One millisecond past its end, or before its start: refused.
    refused(
        search(
            alice.clone(),
            "OP-OLD",
            "AUTH-R",
            from,
            to.plus_millis(1),
            false,
        )
        .await,
        Code::PermissionDenied,
        "covers data to",
    );
    refused(
        search(
            alice.clone(),
            "OP-OLD",
            "AUTH-R",
            from.plus_millis(-1),
            to,
            false,
        )
        .await,
        Code::PermissionDenied,
        "covers data from",
    );
    // A window from inside the range to now crosses the unauthorised gap
    // between the range and the standard tier: refused.
    refused(
        search(alice.clone(), "OP-OLD", "AUTH-R", from, now(), false).await,
        Code::PermissionDenied,
        "covers data to",
    );
    let entries = audit(&h, "audrey", "alice", "search.").await;
    assert_eq!(entries.iter().filter(|e| e.outcome == "refused").count(), 3);
    last_refused(&entries, "covers data to");
    // Clipped, it keeps only the standard tier: neither the gap ("mid")
    // nor, past the gap, the range ("old").
    let (ids, clipped) = search(alice.clone(), "OP-OLD", "AUTH-R", from, now(), true)
        .await
        .unwrap();
    assert_eq!(ids, ["edge", "new"]);
    assert_eq!(clipped, Some(from));
    // A window ending in the gap cannot be clipped to anything: refused.
    refused(
        search(
            alice.clone(),
            "OP-OLD",
            "AUTH-R",
            from,
            now().plus_millis(-100 * DAY),
            true,
        )
        .await,
        Code::PermissionDenied,
        "clip_to_permitted cannot help",
    );
    last_refused(
        &audit(&h, "audrey", "alice", "search.").await,
        "covers data to",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_supervisor_cannot_authorise_their_own_searches() {
    let h = node().await;
    // Naming themselves: refused at grant, and audited.
    let mut own = wide("AUTH-SELF");
    own.user = "sam".into();
    refused(
        grant(&h, "sam", own).await,
        Code::PermissionDenied,
        "no self-authorisation",
    );
    last_refused(
        &audit(&h, "audrey", "sam", "authorisation.grant").await,
        "no self-authorisation",
    );
    assert!(list(&h, "sam").await.is_empty());
    // One for any user of the force does not cover its granter's searches.
    grant(&h, "sam", wide("AUTH-ANY")).await.unwrap();
    refused(
        search_old(&h, "sam", "OP-OLD", "AUTH-ANY").await,
        Code::PermissionDenied,
        "no self-authorisation",
    );
    last_refused(
        &audit(&h, "audrey", "sam", "search.").await,
        "no self-authorisation",
    );
    // Another supervisor, or an analyst, of the force: covered.
    assert!(opens_old(&h, "sue", "OP-OLD", "AUTH-ANY").await);
    assert!(opens_old(&h, "alice", "OP-OLD", "AUTH-ANY").await);
    // And sue may authorise sam.
    let mut for_sam = wide("AUTH-SAM");
    for_sam.user = "sam".into();
    grant(&h, "sue", for_sam).await.unwrap();
    assert!(opens_old(&h, "sam", "OP-OLD", "AUTH-SAM").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_grant_beyond_the_expiry_cap_is_refused() {
    let h = node().await;
    let (from, to) = (now().plus_millis(-200 * DAY), now());
    // Exactly the cap (30 days by default) after the grant: granted.
    grant(
        &h,
        "sam",
        grant_req("AUTH-30", from, to, now().plus_millis(30 * DAY)),
    )
    .await
    .unwrap();
    // A millisecond more: refused, naming the cap.
    refused(
        grant(
            &h,
            "sam",
            grant_req("AUTH-31", from, to, now().plus_millis(30 * DAY + 1)),
        )
        .await,
        Code::InvalidArgument,
        "max_authorisation_days = 30",
    );
    let entries = audit(&h, "audrey", "sam", "authorisation.grant").await;
    let outcomes: Vec<(&str, &str)> = entries
        .iter()
        .map(|r| (r.authorisation.as_str(), r.outcome.as_str()))
        .collect();
    assert_eq!(outcomes, [("AUTH-30", "ok"), ("AUTH-31", "refused")]);
    last_refused(&entries, "max_authorisation_days = 30");
    assert_eq!(list(&h, "sue").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_the_forces_supervisors_revoke_and_a_revoked_authorisation_opens_nothing() {
    let mut h = node().await;
    grant(&h, "sam", wide("AUTH-1")).await.unwrap();
    assert!(opens_old(&h, "alice", "OP-OLD", "AUTH-1").await);
    // KENT's supervisor cannot reach AVON's authorisation: not found in
    // KENT, audited for KENT's auditor, and it still opens.
    refused(
        revoke(&h, "kim", "AUTH-1", "not mine").await,
        Code::NotFound,
        "does not exist in KENT",
    );
    last_refused(
        &audit(&h, "kay", "kim", "authorisation.revoke").await,
        "does not exist in KENT",
    );
    // Nor can an analyst of AVON, nor a supervisor without a reason.
    refused(
        revoke(&h, "alice", "AUTH-1", "done").await,
        Code::PermissionDenied,
        "supervisor role",
    );
    last_refused(
        &audit(&h, "audrey", "alice", "authorisation.revoke").await,
        "supervisor role",
    );
    refused(
        revoke(&h, "sue", "AUTH-1", " ").await,
        Code::InvalidArgument,
        "reason is required",
    );
    assert!(search_old(&h, "alice", "OP-OLD", "AUTH-1").await.is_ok());

    // AVON's other supervisor revokes it.
    h.clock.set(now().plus_millis(3_600_000));
    let r = revoke(&h, "sue", "AUTH-1", "suspect charged")
        .await
        .unwrap();
    assert_eq!(
        (
            r.revoked_by.as_str(),
            r.revoke_reason.as_str(),
            r.revoked_at.as_ref().and_then(nadc_proto::from_pb_time)
        ),
        ("sue", "suspect charged", Some(now().plus_millis(3_600_000)))
    );
    let entries = audit(&h, "audrey", "sue", "authorisation.revoke").await;
    let outcomes: Vec<&str> = entries.iter().map(|r| r.outcome.as_str()).collect();
    assert_eq!(outcomes, ["refused", "ok"]);
    assert_eq!(entries[1].authorisation, "AUTH-1");
    assert!(
        entries[1].query.contains("suspect charged"),
        "{}",
        entries[1].query
    );
    // From then on it opens nothing, naming the revocation; clipped, only
    // the standard tier is left.
    refused(
        search_old(&h, "alice", "OP-OLD", "AUTH-1").await,
        Code::PermissionDenied,
        "revoked by sue",
    );
    last_refused(
        &audit(&h, "audrey", "alice", "search.").await,
        "revoked by sue",
    );
    let (ids, _) = search(
        h.user("alice").await,
        "OP-OLD",
        "AUTH-1",
        now().plus_millis(-150 * DAY),
        now(),
        true,
    )
    .await
    .unwrap();
    assert!(
        !ids.contains(&"old".to_string()) && !ids.contains(&"mid".to_string()),
        "{ids:?}"
    );
    // Revoking again changes nothing.
    refused(
        revoke(&h, "sam", "AUTH-1", "again").await,
        Code::FailedPrecondition,
        "already revoked by sue",
    );
    // It stays listed as revoked, and so across a restart.
    h.restart().await;
    let listed = list(&h, "sam").await;
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (
            listed[0].revoked_by.as_str(),
            listed[0].revoke_reason.as_str()
        ),
        ("sue", "suspect charged")
    );
    refused(
        search_old(&h, "alice", "OP-OLD", "AUTH-1").await,
        Code::PermissionDenied,
        "revoked by sue",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ids_are_scoped_by_force() {
    let mut h = node().await;
    let avon = grant(&h, "sam", wide("AUTH-1")).await.unwrap();
    let mut kent_req = wide("AUTH-1");
    kent_req.case_ref = "OP-KENT".into();
    let kent = grant(&h, "kim", kent_req).await.unwrap();
    assert_eq!((avon.force.as_str(), kent.force.as_str()), ("AVON", "KENT"));
    grant(&h, "sam", wide("AUTH-AVON")).await.unwrap();
    // A force's own id again is still refused, and audited.
    refused(
        grant(&h, "sue", wide("AUTH-1")).await,
        Code::AlreadyExists,
        "already exists in AVON",
    );
    last_refused(
        &audit(&h, "audrey", "sue", "authorisation.grant").await,
        "already exists",
    );
    // Listing is the caller's force's only.
    let ids = |l: Vec<pb::AuthorisationInfo>| -> Vec<(String, String)> {
        l.into_iter().map(|a| (a.force, a.id)).collect()
    };
    assert_eq!(
        ids(list(&h, "sam").await),
        [
            ("AVON".into(), "AUTH-1".into()),
            ("AVON".into(), "AUTH-AVON".into())
        ]
    );
    assert_eq!(
        ids(list(&h, "kay").await),
        [("KENT".into(), "AUTH-1".into())]
    );
    assert_eq!(
        ids(list(&h, "ken").await),
        [("KENT".into(), "AUTH-1".into())]
    );
    // Each listing is audited, with how many it showed.
    let listed = audit(&h, "audrey", "sam", "authorisation.list").await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].outcome, "ok");
    assert!(
        listed[0].query.contains("\"listed\":2"),
        "{}",
        listed[0].query
    );

    // KENT's analyst quoting AVON's ids opens nothing: "AUTH-1" is KENT's
    // own (for another case), "AUTH-AVON" does not exist in KENT.
    refused(
        search_old(&h, "ken", "OP-OLD", "AUTH-1").await,
        Code::PermissionDenied,
        "is for case \"OP-KENT\"",
    );
    refused(
        search_old(&h, "ken", "OP-OLD", "AUTH-AVON").await,
        Code::PermissionDenied,
        "does not exist in KENT",
    );
    last_refused(
        &audit(&h, "kay", "ken", "search.").await,
        "does not exist in KENT",
    );
    // Under KENT's own case its own AUTH-1 opens; AVON's opens for AVON.
    assert!(opens_old(&h, "ken", "OP-KENT", "AUTH-1").await);
    assert!(opens_old(&h, "alice", "OP-OLD", "AUTH-1").await);

    // KENT revoking its AUTH-1 leaves AVON's open, across a restart.
    revoke(&h, "kim", "AUTH-1", "operation over").await.unwrap();
    h.restart().await;
    refused(
        search_old(&h, "ken", "OP-KENT", "AUTH-1").await,
        Code::PermissionDenied,
        "revoked by kim",
    );
    assert!(opens_old(&h, "alice", "OP-OLD", "AUTH-1").await);
    assert!(
        list(&h, "sam")
            .await
            .iter()
            .all(|a| a.revoked_by.is_empty())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refused_grants_are_audited_with_a_bounded_record() {
    let h = node().await;
    // Megabytes in every text field: refused, and the audit entry stays small.
    let big = "X".repeat(200_000);
    let mut req = wide(&big);
    req.case_ref = big.clone();
    req.user = big.clone();
    req.reason = big.clone();
    refused(
        grant(&h, "sam", req).await,
        Code::InvalidArgument,
        "malformed",
    );
    // By someone who may not grant at all: refused and audited too.
    refused(
        grant(&h, "alice", wide("AUTH-A")).await,
        Code::PermissionDenied,
        "supervisor role",
    );
    let mut revoke_big = pb::authorisations_client::AuthorisationsClient::new(h.user("sam").await);
    refused(
        revoke_big
            .revoke(pb::RevokeRequest {
                id: big.clone(),
                reason: big.clone(),
            })
            .await,
        Code::InvalidArgument,
        "longer than 1000 characters",
    );
    let entries = audit(&h, "audrey", "sam", "authorisation.").await;
    assert_eq!(entries.len(), 2);
    for e in &entries {
        assert_eq!(e.outcome, "refused");
        let size = e.query.len() + e.reason.len() + e.case_ref.len() + e.authorisation.len();
        assert!(size < 4_000, "{size} bytes audited");
        assert!(e.query.contains("(200000 characters)"), "{}", e.query);
    }
    last_refused(
        &audit(&h, "audrey", "alice", "authorisation.grant").await,
        "supervisor role",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_cli_revokes_and_lists_revoked_authorisations() {
    let h = node().await;
    grant(&h, "sam", wide("AUTH-CLI")).await.unwrap();
    let tls = h.user_tls("sue");
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_nadc"))
            .args(args)
            .env("NADC_NODE", &h.url)
            .env("NADC_CA", &tls.ca)
            .env("NADC_CERT", &tls.cert)
            .env("NADC_KEY", &tls.key)
            .output()
            .unwrap()
    };
    let out = run(&["authorise", "revoke", "AUTH-CLI", "--reason", "case closed"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("authorisation AUTH-CLI (AVON) revoked by sue"),
        "{text}"
    );
    let out = run(&["authorise", "list", "--format", "csv"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        text.contains("revoked_by") && text.contains("sue") && text.contains("case closed"),
        "{text}"
    );
    let out = run(&["authorise", "revoke", "NOPE", "--reason", "x"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist in AVON"));
}
