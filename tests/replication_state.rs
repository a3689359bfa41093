//! Replicated mode (issue 22): state changes go through the log like reads,
//! so replicas that apply it agree on more than their reads. Three
//! `nats-server` processes, two nodes whose stores are replicas of the log.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;
use std::ops::ControlFlow;
use std::path::PathBuf;

use nadc_bof::pb;
use nadc_core::alert::{Alert, AlertDetail, AlertState, Verification};
use nadc_core::hotlist::{Hotlist, HotlistEntry};
use nadc_store::{RocksStore, Store, StoreOptions};
use support::now;
use support::replicas::*;
use tonic::transport::Channel;

type Hotlists = pb::hotlists_client::HotlistsClient<Channel>;

/// Asks `call` again while the node answers UNAVAILABLE with a retry hint
/// (as a client does), for at most 60 s.
async fn retrying<T, F, Fut>(mut call: F) -> Result<T, tonic::Status>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        match call().await {
            Ok(r) => return Ok(r.into_inner()),
            Err(s) if s.code() == tonic::Code::Unavailable => {
                let hint = nadc_bof::retry_after(&s)
                    .unwrap_or_else(|| panic!("UNAVAILABLE without a retry hint: {s}"));
                assert!(std::time::Instant::now() < deadline, "never taken: {s}");
                tokio::time::sleep(hint.min(std::time::Duration::from_millis(300))).await;
            }
            Err(s) => return Err(s),
        }
    }
}

fn list_ref(name: &str) -> Option<pb::HotlistRef> {
    Some(pb::HotlistRef {
        owner: "AVON".into(),
        name: name.into(),
    })
}

fn entry(vrm: &str) -> pb::HotlistEntry {
    pb::HotlistEntry {
        vrm: vrm.into(),
        reason: "stolen".into(),
        intel_ref: "INT/1".into(),
        action: pb::Action::Notify as i32,
        expires_at: Some(nadc_proto::to_pb_time(now().plus_millis(86_400_000))),
        ..Default::default()
    }
}

fn create(name: &str) -> pb::CreateHotlistRequest {
    pb::CreateHotlistRequest {
        name: name.into(),
        purpose: "serious crime".into(),
        ..Default::default()
    }
}

/// A read of `vrm` at (`lat`, `lon`), `mins` minutes before now.
fn read(id: &str, vrm: &str, mins: i64, lat: f64, lon: f64) -> pb::Read {
    pb::Read {
        read_id: id.into(),
        vrm: vrm.into(),
        observed_at: Some(nadc_proto::to_pb_time(now().plus_millis(-mins * 60_000))),
        camera_id: "CAM1".into(),
        lat: Some(lat),
        lon: Some(lon),
        ..Default::default()
    }
}

/// A read of `vrm` at camera `camera`, `mins` minutes before now.
fn read_at(id: &str, vrm: &str, camera: &str, mins: i64) -> pb::Read {
    pb::Read {
        camera_id: camera.into(),
        ..read(id, vrm, mins, 51.45, -2.58)
    }
}

fn avon(reads: Vec<pb::Read>, seq: u64) -> pb::ReadBatch {
    pb::ReadBatch {
        force: "AVON".into(),
        batch_seq: seq,
        reads,
    }
}

/// A last read, z1, pushed to node-1 and then to node-2: each answers once
/// its replica has applied the log up to it, so both have applied every
/// change made before.
async fn both_applied_everything(r: &Replicas) {
    let last = avon(vec![read("z1", "ZZ99 ZZZ", 1, 51.45, -2.58)], 99);
    let res = push_until_taken(&mut r.bof(0, "AVON").await, &last).await;
    assert_eq!(res.accepted + res.duplicates, 1, "{res:?}");
    let res = push_until_taken(&mut r.bof(1, "AVON").await, &last).await;
    assert_eq!(res.duplicates, 1, "{res:?}");
}

/// What a stopped node's store holds beside its reads: its alert log with
/// each alert's verification, and its lists.
type State = (
    Vec<(u64, Alert, Option<AlertState>)>,
    Vec<(Hotlist, Vec<HotlistEntry>)>,
);

async fn state(data: PathBuf) -> State {
    tokio::task::spawn_blocking(move || {
        let s = RocksStore::open(&data, StoreOptions::default()).unwrap();
        let mut alerts = Vec::new();
        s.alerts(0, &mut |p, a| {
            alerts.push((p, a));
            ControlFlow::Continue(())
        })
        .unwrap();
        let positions: Vec<u64> = alerts.iter().map(|(p, _)| *p).collect();
        let states = s.alert_states(&positions).unwrap();
        let alerts = alerts
            .into_iter()
            .zip(states)
            .map(|((p, a), st)| (p, a, st))
            .collect();
        (alerts, s.hotlists().unwrap())
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hotlist_changes_go_through_the_log_and_replicas_log_the_same_alerts() {
    let mut r = Replicas::start().await;
    let (mut h1, mut h2) = (
        Hotlists::new(r.user(0, "harry").await),
        Hotlists::new(r.user(1, "harry").await),
    );

    // The log up and taking appends before anything else.
    caught_up(&r, 0, "warm").await;
    // The same list asked of both nodes at once: the log orders the two,
    // so one is created and the other refused as existing, on both
    // replicas alike. (A request the log kept but did not acknowledge in
    // time is asked again, and then finds the list made.)
    let (h1a, h2a) = (h1.clone(), h2.clone());
    let (a, b) = tokio::join!(
        retrying(|| {
            let mut c = h1a.clone();
            async move { c.create_hotlist(create("stolen")).await }
        }),
        retrying(|| {
            let mut c = h2a.clone();
            async move { c.create_hotlist(create("stolen")).await }
        })
    );
    let codes: Vec<tonic::Code> = [&a, &b]
        .iter()
        .map(|x| x.as_ref().map_or_else(|s| s.code(), |_| tonic::Code::Ok))
        .collect();
    assert!(
        codes.iter().filter(|c| **c == tonic::Code::Ok).count() <= 1
            && codes
                .iter()
                .all(|c| matches!(c, tonic::Code::Ok | tonic::Code::AlreadyExists)),
        "{a:?} {b:?}"
    );

    // Entries added at node-2; reads pushed to node-1, which never took
    // the change from a user: matched against it all the same.
    let added = h2
        .add_entries(pb::AddEntriesRequest {
            list: list_ref("stolen"),
            entries: vec![entry("HT11 HIT"), entry("GO22 NE")],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(added.stored, 2);
    let mut bof = r.bof(0, "AVON").await;
    // A hit, and two reads of one plate 170 km apart ten minutes apart in
    // one batch, the later one first (a clone flag within the batch).
    let res = push_until_taken(
        &mut bof,
        &avon(
            vec![
                read("r1", "HT11 HIT", 30, 51.45, -2.58),
                read("c2", "CL0 NE", 20, 51.5074, -0.1278),
                read("c1", "CL0 NE", 30, 51.45, -2.58),
                read("g1", "GO22 NE", 25, 51.45, -2.58),
            ],
            1,
        ),
    )
    .await;
    assert_eq!(res.accepted, 4, "{res:?}");

    // An entry removed at node-1, a list's rules set at node-2: a read of
    // the removed plate pushed to node-2 hits nothing on either replica.
    let removed = h1
        .remove_entries(pb::RemoveEntriesRequest {
            list: list_ref("stolen"),
            vrms: vec!["GO22NE".into()],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(removed.removed, 1);
    let mut bof2 = r.bof(1, "AVON").await;
    let res = push_until_taken(
        &mut bof2,
        &avon(vec![read("g2", "GO22 NE", 5, 51.45, -2.58)], 2),
    )
    .await;
    assert_eq!(res.accepted, 1, "{res:?}");

    // A look-back at node-1 for the cloned plate: decided by node-1,
    // logged by both.
    let looked = h1
        .add_entries(pb::AddEntriesRequest {
            list: list_ref("stolen"),
            entries: vec![entry("CL0 NE")],
            look_back_days: 1,
            access: support::access(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(looked.retrospective_hits, 2, "{looked:?}");
    // Alice rejects the first of them at node-2 (a misread): recorded on
    // both replicas, each with her audit entry.
    caught_up(&r, 1, "k0").await;
    let verified = pb::alerts_client::AlertsClient::new(r.user(1, "alice").await)
        .verify(pb::VerifyRequest {
            position: looked.first_position,
            state: pb::Verification::Rejected as i32,
            note: "patch shows CL0 NF".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(verified.position, looked.first_position);

    // A convoy entry: the companion seen with the target at two cameras.
    // Node-1 took the target's reads, so node-1 alone analyses the convoy
    // and logs its alert through the log; node-2's watcher sees it.
    let mut target = entry("TG11 TGT");
    target.convoy = true;
    h2.add_entries(pb::AddEntriesRequest {
        list: list_ref("stolen"),
        entries: vec![target],
        ..Default::default()
    })
    .await
    .unwrap();
    let mut watch = pb::alerts_client::AlertsClient::new(r.user(1, "alice").await)
        .watch(pb::WatchRequest {
            kinds: vec![pb::AlertKind::Convoy as i32],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let companions = avon(
        vec![
            read_at("k1", "KM22 KMK", "C1", 59),
            read_at("k2", "KM22 KMK", "C2", 39),
        ],
        4,
    );
    assert_eq!(push_until_taken(&mut bof, &companions).await.accepted, 2);
    for (i, (id, cam, mins)) in [("t1", "C1", 60), ("t2", "C2", 40)].into_iter().enumerate() {
        let b = avon(vec![read_at(id, "TG11 TGT", cam, mins)], 5 + i as u64);
        assert_eq!(push_until_taken(&mut bof, &b).await.accepted, 1);
    }
    let convoy = tokio::time::timeout(std::time::Duration::from_secs(30), watch.message())
        .await
        .expect("a convoy alert at node-2 within 30 s")
        .unwrap()
        .expect("the watch stays open");
    assert_eq!(convoy.entry.as_ref().unwrap().vrm, "TG11TGT");

    // A list created and deleted through different nodes is gone from
    // both; deleting it again is refused as a missing list.
    h1.create_hotlist(create("gone")).await.unwrap();
    caught_up(&r, 1, "k1").await;
    h2.delete_hotlist(list_ref("gone").unwrap()).await.unwrap();
    let again = h1
        .delete_hotlist(list_ref("gone").unwrap())
        .await
        .unwrap_err();
    assert_eq!(again.code(), tonic::Code::NotFound, "{again}");

    both_applied_everything(&r).await;

    let reads = r.stop_and_read().await;
    assert!(reads[0] == reads[1], "the replicas' reads differ");
    let (s1, s2) = (
        state(r.configs[0].data_dir.clone()).await,
        state(r.configs[1].data_dir.clone()).await,
    );
    // Every alert at the same position, raised at the same instant, on
    // the same read: the log's order decided them, not the replica.
    assert_eq!(s1.0, s2.0, "the replicas' alert logs differ");
    assert_eq!(s1.1, s2.1, "the replicas' lists differ");
    let by_read = |id: &str| {
        reads[0]
            .iter()
            .find(|x| x.read.read_id == id)
            .map(|x| x.seq)
            .unwrap()
    };
    let kinds: BTreeSet<(u64, &str)> =
        s1.0.iter()
            .map(|(_, a, _)| {
                let kind = match &a.detail {
                    AlertDetail::Hit { .. } => "hit",
                    AlertDetail::RetroHit { .. } => "retro",
                    AlertDetail::Convoy { .. } => "convoy",
                    AlertDetail::Clone { .. } => "clone",
                };
                (a.read.seq, kind)
            })
            .collect();
    let expected: BTreeSet<(u64, &str)> = [
        ("r1", "hit"),
        ("g1", "hit"),
        ("c2", "clone"),
        ("c1", "retro"),
        ("c2", "retro"),
        ("t1", "hit"),
        ("t2", "hit"),
        ("t2", "convoy"),
    ]
    .into_iter()
    .map(|(id, k)| (by_read(id), k))
    .collect();
    assert_eq!(kinds, expected);
    assert_eq!(s1.0.len(), expected.len());
    // One verification, the same on both: Alice's rejection.
    let verified: Vec<(u64, Verification, &str)> =
        s1.0.iter()
            .filter_map(|(p, _, st)| st.as_ref().map(|st| (*p, st.state, st.by.as_str())))
            .collect();
    assert_eq!(
        verified,
        [(looked.first_position, Verification::Rejected, "alice")]
    );
    // The lists: "stolen" with the entry left, "gone" gone.
    assert_eq!(s1.1.len(), 1);
    let vrms: BTreeSet<&str> = s1.1[0].1.iter().map(|e| e.vrm.as_str()).collect();
    assert_eq!(vrms, BTreeSet::from(["CL0NE", "HT11HIT", "TG11TGT"]));
}

/// `user`'s timeline of `vrm` at node `i` under case `case_ref`.
async fn case_rows(
    r: &Replicas,
    i: usize,
    user: &str,
    vrm: &str,
    case_ref: &str,
) -> Vec<pb::ReadRow> {
    let mut search = pb::search_client::SearchClient::new(r.user(i, user).await);
    let mut stream = search
        .vrm_timeline(pb::VrmTimelineRequest {
            access: Some(pb::AccessContext {
                purpose: "serious-crime".into(),
                case_ref: case_ref.into(),
                ..Default::default()
            }),
            vrm: vrm.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut rows = Vec::new();
    while let Some(c) = stream.message().await.unwrap() {
        if let Some(pb::search_chunk::Chunk::Rows(b)) = c.chunk {
            rows.extend(b.rows);
        }
    }
    rows
}

async fn run_retention(r: &Replicas, i: usize) -> pb::RetentionReport {
    pb::admin_client::AdminClient::new(r.user(i, "ada").await)
        .run_retention(pb::RunRetentionRequest {})
        .await
        .unwrap()
        .into_inner()
}

fn deleted(report: &pb::RetentionReport) -> u64 {
    report.deleted.iter().map(|d| d.deleted).sum()
}

async fn holds(data: PathBuf) -> Vec<(nadc_core::ReadRef, Vec<Option<nadc_store::CaseId>>)> {
    tokio::task::spawn_blocking(move || {
        let s = RocksStore::open(&data, StoreOptions::default()).unwrap();
        s.holds().unwrap().into_iter().collect()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn holds_and_retention_passes_go_through_the_log_and_replicas_keep_and_delete_alike() {
    const DAY: i64 = 86_400_000;
    // The test moves a node's clock a year on: the passes it asks for are
    // dated a year after the cluster takes them.
    let mut r = Replicas::start_with(|_, cfg| {
        if let Some(rep) = cfg.replication.as_mut() {
            rep.retention_ahead_s = 400 * 86_400;
        }
    })
    .await;
    let mut bof = r.bof(0, "AVON").await;
    let res = push_until_taken(
        &mut bof,
        &avon(
            vec![
                read("a1", "EX11 PRD", 60, 51.45, -2.58),
                read("a2", "EX11 PRD", 30, 51.45, -2.58),
                read("a3", "HE12 LDR", 20, 51.45, -2.58),
            ],
            1,
        ),
    )
    .await;
    assert_eq!(res.accepted, 3, "{res:?}");

    // Hilda holds a3 at node-2, where she saw it under her case: both
    // replicas hold it, each under its own number for the read.
    caught_up(&r, 1, "k0").await;
    let rows = case_rows(&r, 1, "hilda", "HE12LDR", "OP-HOLD").await;
    assert_eq!(rows.len(), 1);
    let mut hold_at_2 = pb::holds_client::HoldsClient::new(r.user(1, "hilda").await);
    let placed = hold_at_2
        .place(pb::PlaceHoldRequest {
            case_ref: "OP-HOLD".into(),
            reads: vec![support::held_read(&rows[0])],
            reason: "evidence in a murder trial".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(placed.reads, 1);

    // A year and two days on at node-1 only: its pass goes through the log
    // with its instant, so node-2 (whose clock has not moved) deletes the
    // same reads and keeps the same held one.
    r.clocks[0].set(now().plus_millis(367 * DAY));
    let report = run_retention(&r, 0).await;
    // (a1, a2, and KENT's k0 from catching node-2 up.)
    assert_eq!((deleted(&report), report.held), (3, 1), "{report:?}");
    // (A push to node-2 is answered once its replica has applied the log
    // up to it, the pass among it.)
    let mut bof2 = r.bof(1, "AVON").await;
    let res = push_until_taken(
        &mut bof2,
        &avon(vec![read("m1", "MM11 MMM", 5, 51.45, -2.58)], 2),
    )
    .await;
    assert_eq!(res.accepted, 1, "{res:?}");
    assert!(
        case_rows(&r, 1, "alice", "EX11PRD", "OP-TEST")
            .await
            .is_empty()
    );
    assert_eq!(
        case_rows(&r, 1, "alice", "HE12LDR", "OP-TEST").await.len(),
        1
    );

    // Released at node-1; the next pass, asked at node-2, deletes it on
    // both.
    let mut hold_at_1 = pb::holds_client::HoldsClient::new(r.user(0, "hilda").await);
    let released = hold_at_1
        .release(pb::ReleaseHoldRequest {
            case_ref: "OP-HOLD".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(released.reads, 1);
    r.clocks[1].set(now().plus_millis(367 * DAY));
    let before_release = run_retention(&r, 1).await;
    // (m1 too: a year on from node-2's clock.)
    assert_eq!(deleted(&before_release), 2, "{before_release:?}");

    r.clocks[0].set(now());
    r.clocks[1].set(now());
    both_applied_everything(&r).await;

    let reads = r.stop_and_read().await;
    assert!(reads[0] == reads[1], "the replicas' reads differ");
    let ids: Vec<&str> = reads[0].iter().map(|x| x.read.read_id.as_str()).collect();
    assert_eq!(ids, ["z1"]);
    let (h1, h2) = (
        holds(r.configs[0].data_dir.clone()).await,
        holds(r.configs[1].data_dir.clone()).await,
    );
    assert!(h1.is_empty() && h2.is_empty(), "{h1:?} {h2:?}");
}

/// A read pushed to node `i` and acknowledged: node `i`'s replica has then
/// applied everything before it in the log.
async fn caught_up(r: &Replicas, i: usize, id: &str) {
    let mut bof = r.bof(i, "KENT").await;
    let b = pb::ReadBatch {
        force: "KENT".into(),
        batch_seq: 0,
        reads: vec![read(id, "KT11 KTK", 1, 51.2, 0.5)],
    };
    let res = push_until_taken(&mut bof, &b).await;
    assert_eq!(res.accepted + res.duplicates, 1, "{res:?}");
}

/// Alice's timeline of OL12DER over the last 150 days at node `i`, under
/// case OP-OLD and authorisation `auth`: read ids, or the refusal.
async fn search_old(r: &Replicas, i: usize, auth: &str) -> Result<Vec<String>, tonic::Status> {
    let mut c = pb::search_client::SearchClient::new(r.user(i, "alice").await);
    let s = c
        .vrm_timeline(pb::VrmTimelineRequest {
            vrm: "OL12DER".into(),
            from: Some(nadc_proto::to_pb_time(now().plus_millis(-150 * 86_400_000))),
            to: Some(nadc_proto::to_pb_time(now())),
            access: Some(pb::AccessContext {
                purpose: "serious-crime".into(),
                case_ref: "OP-OLD".into(),
                authorisation: auth.into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await?
        .into_inner();
    Ok(support::read_ids(s).await?.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_authorisation_granted_at_one_node_opens_and_its_revocation_closes_every_replica() {
    let r = Replicas::start().await;
    let mut bof = r.bof(0, "AVON").await;
    // A read 120 days old: past the standard tier, so searching it needs
    // an authorisation.
    let res = push_until_taken(
        &mut bof,
        &avon(
            vec![read("old", "OL12 DER", 120 * 24 * 60, 51.45, -2.58)],
            1,
        ),
    )
    .await;
    assert_eq!(res.accepted, 1, "{res:?}");
    let refused = search_old(&r, 1, "A-1").await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused}");

    // Granted at node-1; node-2 opens it once it has applied the log.
    let mut sam1 = pb::authorisations_client::AuthorisationsClient::new(r.user(0, "sam").await);
    sam1.grant(pb::GrantRequest {
        id: "A-1".into(),
        case_ref: "OP-OLD".into(),
        purpose: "serious-crime".into(),
        user: String::new(),
        data_from: Some(nadc_proto::to_pb_time(now().plus_millis(-200 * 86_400_000))),
        data_to: Some(nadc_proto::to_pb_time(now())),
        expires_at: Some(nadc_proto::to_pb_time(now().plus_millis(7 * 86_400_000))),
        reason: "murder inquiry: vehicle seen near the scene in the spring".into(),
    })
    .await
    .unwrap();
    caught_up(&r, 1, "k1").await;
    assert_eq!(search_old(&r, 1, "A-1").await.unwrap(), ["old"]);
    // The same id granted again at node-2: refused there as it exists.
    let mut sam2 = pb::authorisations_client::AuthorisationsClient::new(r.user(1, "sam").await);
    let again = sam2
        .grant(pb::GrantRequest {
            id: "A-1".into(),
            case_ref: "OP-OLD".into(),
            purpose: "serious-crime".into(),
            data_from: Some(nadc_proto::to_pb_time(now().plus_millis(-10 * 86_400_000))),
            data_to: Some(nadc_proto::to_pb_time(now())),
            expires_at: Some(nadc_proto::to_pb_time(now().plus_millis(86_400_000))),
            reason: "another inquiry".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), tonic::Code::AlreadyExists, "{again}");

    // Revoked at node-2: node-1 closes it once it has applied the log.
    sam2.revoke(pb::RevokeRequest {
        id: "A-1".into(),
        reason: "inquiry closed".into(),
    })
    .await
    .unwrap();
    caught_up(&r, 0, "k2").await;
    let closed = search_old(&r, 0, "A-1").await.unwrap_err();
    assert_eq!(closed.code(), tonic::Code::PermissionDenied, "{closed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_clone_flag_verified_is_the_one_recorded_on_every_replica() {
    let mut r = Replicas::start().await;
    let mut watch = pb::alerts_client::AlertsClient::new(r.user(0, "alice").await)
        .watch(pb::WatchRequest {
            kinds: vec![pb::AlertKind::Clone as i32],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut bof = r.bof(0, "AVON").await;
    // The plate in London an hour ago and five minutes ago, then in
    // Bristol half an hour ago: two clone flags on the Bristol read, raised
    // at the same instant, told apart only by their other read.
    let london = avon(
        vec![
            read("l1", "DU55 PLT", 60, 51.5074, -0.1278),
            read("l2", "DU55 PLT", 5, 51.5074, -0.1278),
        ],
        1,
    );
    assert_eq!(push_until_taken(&mut bof, &london).await.accepted, 2);
    let bristol = avon(vec![read("b1", "DU55 PLT", 30, 51.45, -2.58)], 2);
    assert_eq!(push_until_taken(&mut bof, &bristol).await.accepted, 1);
    let mut positions = Vec::new();
    while positions.len() < 2 {
        let e = tokio::time::timeout(std::time::Duration::from_secs(30), watch.message())
            .await
            .expect("two clone alerts within 30 s")
            .unwrap()
            .expect("the watch stays open");
        positions.push(e.position);
    }
    // The second verified at node-2.
    both_applied_everything(&r).await;
    pb::alerts_client::AlertsClient::new(r.user(1, "alice").await)
        .verify(pb::VerifyRequest {
            position: positions[1],
            state: pb::Verification::Confirmed as i32,
            note: "two cars".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    both_applied_everything(&r).await;
    r.stop_and_read().await;
    for data in [r.configs[0].data_dir.clone(), r.configs[1].data_dir.clone()] {
        let (alerts, _) = state(data).await;
        let verified: Vec<u64> = alerts
            .iter()
            .filter(|(_, _, st)| st.is_some())
            .map(|(p, _, _)| *p)
            .collect();
        assert_eq!(verified, [positions[1]]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retention_pass_dated_past_the_clusters_time_is_refused_by_every_replica() {
    let mut r = Replicas::start().await;
    let mut bof = r.bof(0, "AVON").await;
    let b = avon(vec![read("a1", "EX11 PRD", 60, 51.45, -2.58)], 1);
    assert_eq!(push_until_taken(&mut bof, &b).await.accepted, 1);
    // Node-1's clock runs a year fast: its pass would delete a1 everywhere.
    r.clocks[0].set(now().plus_millis(367 * 86_400_000));
    let refused = pb::admin_client::AdminClient::new(r.user(0, "ada").await)
        .run_retention(pb::RunRetentionRequest {})
        .await
        .unwrap_err();
    assert!(refused.message().contains("refused"), "{refused}");
    r.clocks[0].set(now());
    both_applied_everything(&r).await;
    let reads = r.stop_and_read().await;
    for held in &reads {
        let ids: Vec<&str> = held.iter().map(|x| x.read.read_id.as_str()).collect();
        assert_eq!(ids, ["a1", "z1"]);
    }
}
