//! Hotlists and real-time alerts end to end over mTLS: a hotlist manager
//! creates lists, BOFs push reads, subscribers receive hits (with both VRMs,
//! how they matched and provenance), resume after reconnecting, verify
//! hits; clone and convoy alerts are raised as reads arrive.

mod support;

use std::time::Duration;

use nadc_bof::pb;
use support::{Harness, batch, now, read};
use tonic::transport::Channel;

type Hotlists = pb::hotlists_client::HotlistsClient<Channel>;
type Alerts = pb::alerts_client::AlertsClient<Channel>;

fn entry(vrm: &str, action: pb::Action, expires_mins: i64) -> pb::HotlistEntry {
    pb::HotlistEntry {
        vrm: vrm.into(),
        reason: "wanted for robbery".into(),
        intel_ref: "INT/2026/0042".into(),
        action: action as i32,
        expires_at: Some(nadc_proto::to_pb_time(
            now().plus_millis(expires_mins * 60_000),
        )),
        ..Default::default()
    }
}

fn list(name: &str) -> Option<pb::HotlistRef> {
    Some(pb::HotlistRef {
        owner: String::new(),
        name: name.into(),
    })
}

/// harry (AVON hotlist manager) creates `name` and adds `entries`.
async fn make_list(h: &Harness, name: &str, fuzzy: bool, entries: Vec<pb::HotlistEntry>) {
    let mut c = Hotlists::new(h.user("harry").await);
    c.create_hotlist(pb::CreateHotlistRequest {
        name: name.into(),
        purpose: "serious crime".into(),
        fuzzy,
        ..Default::default()
    })
    .await
    .unwrap();
    let r = c
        .add_entries(pb::AddEntriesRequest {
            list: list(name),
            entries,
            look_back_days: 0,
            access: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(r.rejected.is_empty(), "{:?}", r.rejected);
}

async fn push(h: &Harness, force: &str, reads: Vec<pb::Read>) -> pb::BatchResult {
    let mut c = pb::ingest_client::IngestClient::new(h.bof(force).await);
    c.push_batch(batch(reads)).await.unwrap().into_inner()
}

/// Everything logged after `after` that passes `req`'s filters.
async fn history(h: &Harness, mut req: pb::WatchRequest) -> Vec<pb::AlertEvent> {
    req.history_only = true;
    let mut c = Alerts::new(h.user("alice").await);
    let mut s = c.watch(req).await.unwrap().into_inner();
    let mut out = Vec::new();
    while let Some(e) = s.message().await.unwrap() {
        out.push(e);
    }
    out
}

async fn next(s: &mut tonic::Streaming<pb::AlertEvent>) -> pb::AlertEvent {
    tokio::time::timeout(Duration::from_secs(20), s.message())
        .await
        .expect("an alert within 20 s")
        .unwrap()
        .expect("the stream stays open")
}

fn kind(e: &pb::AlertEvent) -> pb::AlertKind {
    pb::AlertKind::try_from(e.kind).unwrap()
}

fn read_vrm(e: &pb::AlertEvent) -> &str {
    &e.read.as_ref().unwrap().vrm
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hit_reaches_a_live_subscriber_with_both_vrms_how_it_matched_and_provenance() {
    let h = Harness::start().await;
    h.cameras("AVON", 3).await;
    make_list(
        &h,
        "wanted",
        true,
        vec![entry("AB12 CDE", pb::Action::Stop, 60)],
    )
    .await;
    let mut alice = Alerts::new(h.user("alice").await);
    let mut live = alice
        .watch(pb::WatchRequest::default())
        .await
        .unwrap()
        .into_inner();

    let mut bad = read("r4", "AB12 CDE", "C1", 3);
    bad.lat = Some(123.0);
    bad.lon = Some(0.0);
    let mut exact = read("r1", "ab12cde", "C1", 5);
    exact.patch_image_ref = Some("bof://avon/patch/r1.jpg".into());
    let result = push(
        &h,
        "AVON",
        vec![
            exact,
            read("r2", "A812 CDE", "C2", 4),
            read("r3", "NOPE123", "C3", 4),
            bad,
        ],
    )
    .await;
    assert_eq!(result.accepted, 3);
    assert_eq!(result.rejected.len(), 1);

    let first = next(&mut live).await;
    let second = next(&mut live).await;
    for e in [&first, &second] {
        assert_eq!(kind(e), pb::AlertKind::Hit);
        let l = e.list.as_ref().unwrap();
        assert_eq!((l.owner.as_str(), l.name.as_str()), ("AVON", "wanted"));
        let en = e.entry.as_ref().unwrap();
        assert_eq!(en.vrm, "AB12CDE");
        assert_eq!(en.intel_ref, "INT/2026/0042");
        assert_eq!(en.action, pb::Action::Stop as i32);
        let p = e.read.as_ref().unwrap().provenance.as_ref().unwrap();
        assert_eq!(p.owning_force, "AVON");
        assert_eq!(p.node, "node-1");
        assert_eq!(
            e.verification.as_ref().unwrap().state,
            pb::Verification::Unverified as i32
        );
    }
    assert!(first.position < second.position);
    assert_eq!(read_vrm(&first), "AB12CDE");
    assert_eq!(
        first.r#match.as_ref().unwrap().kind,
        pb::vrm_match::Kind::Exact as i32
    );
    assert_eq!(
        first.read.as_ref().unwrap().patch_image_ref.as_deref(),
        Some("bof://avon/patch/r1.jpg")
    );
    // The fuzzy hit says which character differs.
    assert_eq!(read_vrm(&second), "A812CDE");
    let m = second.r#match.as_ref().unwrap();
    assert_eq!(m.kind, pb::vrm_match::Kind::Confusable as i32);
    assert_eq!(m.positions, vec![2]);
    assert_eq!(second.substitutions, "list B read 8 at 2");

    // Pushing the same reads again stores nothing and raises nothing.
    let again = push(&h, "AVON", vec![read("r1", "AB12CDE", "C1", 5)]).await;
    assert_eq!(again.duplicates, 1);
    assert_eq!(
        history(&h, pb::WatchRequest::default()).await.len(),
        2,
        "a duplicate read raised a second hit"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn expired_entries_stop_matching_and_exact_lists_ignore_confusables() {
    let h = Harness::start().await;
    h.cameras("KENT", 2).await;
    make_list(
        &h,
        "short",
        false,
        vec![entry("XY99ZZZ", pb::Action::Notify, 10)],
    )
    .await;
    push(
        &h,
        "KENT",
        vec![
            read("k1", "XY99ZZZ", "C1", 1),
            // An exact list does not match a confusable variant.
            read("k2", "XY992ZZ", "C1", 1),
        ],
    )
    .await;
    let hits = history(&h, pb::WatchRequest::default()).await;
    assert_eq!(hits.len(), 1);
    assert_eq!(read_vrm(&hits[0]), "XY99ZZZ");
    // An alert on another force's read carries that force as owner.
    assert_eq!(
        hits[0]
            .read
            .as_ref()
            .unwrap()
            .provenance
            .as_ref()
            .unwrap()
            .owning_force,
        "KENT"
    );

    // Eleven minutes later the entry has expired.
    h.clock.set(now().plus_millis(11 * 60_000));
    let r = push(&h, "KENT", vec![read("k3", "XY99ZZZ", "C2", -10)]).await;
    assert_eq!(r.accepted, 1);
    assert_eq!(
        history(&h, pb::WatchRequest::default()).await.len(),
        1,
        "an expired entry still matched"
    );
    // The list shows it as inactive.
    let mut c = Hotlists::new(h.user("alice").await);
    let info = c
        .get_hotlist(pb::HotlistRef {
            owner: "AVON".into(),
            name: "short".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let l = info.list.unwrap();
    assert_eq!((l.entries, l.active_entries), (1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_subscriber_resumes_from_its_last_position_even_across_a_restart() {
    let mut h = Harness::start().await;
    h.cameras("AVON", 2).await;
    make_list(
        &h,
        "wanted",
        false,
        vec![
            entry("AA11AAA", pb::Action::Arrest, 600),
            entry("BB22BBB", pb::Action::Stop, 600),
        ],
    )
    .await;
    push(
        &h,
        "AVON",
        vec![
            read("a1", "AA11AAA", "C1", 30),
            read("b1", "BB22BBB", "C1", 29),
            read("a2", "AA11AAA", "C2", 20),
        ],
    )
    .await;
    let all = history(&h, pb::WatchRequest::default()).await;
    let positions: Vec<u64> = all.iter().map(|e| e.position).collect();
    assert_eq!(positions.len(), 3);
    // Resuming after the first position gives exactly the rest.
    let rest = history(
        &h,
        pb::WatchRequest {
            after: positions[0],
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        rest.iter().map(|e| e.position).collect::<Vec<_>>(),
        positions[1..]
    );
    // Filters: only arrests.
    let arrests = history(
        &h,
        pb::WatchRequest {
            actions: vec![pb::Action::Arrest as i32],
            ..Default::default()
        },
    )
    .await;
    assert_eq!(arrests.len(), 2);
    assert!(arrests.iter().all(|e| read_vrm(e) == "AA11AAA"));
    // Only KENT's reads or lists: none.
    assert!(
        history(
            &h,
            pb::WatchRequest {
                forces: vec!["KENT".into()],
                ..Default::default()
            },
        )
        .await
        .is_empty()
    );

    // The subscriber goes away; hits raised meanwhile are stored, and
    // survive a restart of the node.
    let last_seen = positions[2];
    push(&h, "AVON", vec![read("b2", "BB22BBB", "C2", 10)]).await;
    h.restart().await;
    let mut alice = Alerts::new(h.user("alice").await);
    let mut resumed = alice
        .watch(pb::WatchRequest {
            after: last_seen,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let missed = next(&mut resumed).await;
    assert_eq!(read_vrm(&missed), "BB22BBB");
    assert!(missed.position > last_seen);
    // And it keeps following; a subscriber asking for new alerts only
    // gets just that one.
    let mut fresh = alice
        .watch(pb::WatchRequest {
            from_now: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    push(&h, "AVON", vec![read("a3", "AA11AAA", "C1", 5)]).await;
    let live = next(&mut resumed).await;
    assert_eq!(read_vrm(&live), "AA11AAA");
    assert_eq!(live.position, missed.position + 1);
    assert_eq!(next(&mut fresh).await.position, live.position);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn operators_verify_hits_and_only_managers_change_lists() {
    let h = Harness::start().await;
    h.cameras("AVON", 1).await;
    make_list(
        &h,
        "wanted",
        true,
        vec![entry("CD34EFG", pb::Action::Stop, 60)],
    )
    .await;
    push(&h, "AVON", vec![read("v1", "CD34EF6", "C1", 2)]).await;
    let hit = history(&h, pb::WatchRequest::default()).await.remove(0);

    let mut alice = Alerts::new(h.user("alice").await);
    let verified = alice
        .verify(pb::VerifyRequest {
            position: hit.position,
            state: pb::Verification::Rejected as i32,
            note: "patch image shows CD34EFC".into(),
            outcome: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let v = verified.verification.unwrap();
    assert_eq!(v.state, pb::Verification::Rejected as i32);
    assert_eq!((v.by.as_str(), v.by_force.as_str()), ("alice", "AVON"));
    // The stored alert now shows it.
    let again = history(&h, pb::WatchRequest::default()).await.remove(0);
    assert_eq!(
        again.verification.unwrap().note,
        "patch image shows CD34EFC"
    );
    let missing = alice
        .verify(pb::VerifyRequest {
            position: hit.position + 100,
            state: pb::Verification::Confirmed as i32,
            note: String::new(),
            outcome: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);
    // Only a confirmed hit has an outcome; a confirmed one keeps it.
    let e = alice
        .verify(pb::VerifyRequest {
            position: hit.position,
            state: pb::Verification::Rejected as i32,
            note: String::new(),
            outcome: pb::HitOutcome::Arrested as i32,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(
        e.message().contains("only a confirmed hit"),
        "{}",
        e.message()
    );
    let e = alice
        .verify(pb::VerifyRequest {
            position: hit.position,
            state: pb::Verification::Confirmed as i32,
            note: String::new(),
            outcome: 99,
        })
        .await
        .unwrap_err();
    assert!(e.message().contains("outcome 99"), "{}", e.message());
    alice
        .verify(pb::VerifyRequest {
            position: hit.position,
            state: pb::Verification::Confirmed as i32,
            note: "stopped on the M5".into(),
            outcome: pb::HitOutcome::Arrested as i32,
        })
        .await
        .unwrap();
    let again = history(&h, pb::WatchRequest::default()).await.remove(0);
    let v = again.verification.unwrap();
    assert_eq!(
        (v.state, v.outcome),
        (
            pb::Verification::Confirmed as i32,
            pb::HitOutcome::Arrested as i32
        )
    );

    // A BOF may neither watch nor verify.
    let mut bof = Alerts::new(h.bof("AVON").await);
    let e = bof
        .watch(pb::WatchRequest::default())
        .await
        .expect_err("a BOF watching alerts is refused");
    assert_eq!(e.code(), tonic::Code::PermissionDenied);

    // An analyst cannot create lists; a KENT admin cannot change AVON's.
    let mut analyst = Hotlists::new(h.user("alice").await);
    let e = analyst
        .create_hotlist(pb::CreateHotlistRequest {
            name: "mine".into(),
            purpose: "x".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
    assert!(e.message().contains("hotlist-manager"), "{}", e.message());
    let mut kent = Hotlists::new(h.user("carol").await);
    let e = kent
        .add_entries(pb::AddEntriesRequest {
            list: Some(pb::HotlistRef {
                owner: "AVON".into(),
                name: "wanted".into(),
            }),
            entries: vec![entry("ZZ11ZZZ", pb::Action::Stop, 60)],
            look_back_days: 0,
            access: None,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied);

    // Each entry is checked on its own: bad ones are named, good ones kept.
    let mut harry = Hotlists::new(h.user("harry").await);
    let mut no_intel = entry("EF56GHI", pb::Action::Stop, 60);
    no_intel.intel_ref = String::new();
    let expired = entry("GH78IJK", pb::Action::Stop, -5);
    let mut no_action = entry("IJ90KLM", pb::Action::Stop, 60);
    no_action.action = pb::Action::Unspecified as i32;
    let r = harry
        .add_entries(pb::AddEntriesRequest {
            list: list("wanted"),
            entries: vec![
                no_intel,
                entry("KL12MNO", pb::Action::Arrest, 60),
                expired,
                no_action,
                entry("ABCDEFGHIJKLMNOPQ", pb::Action::Stop, 60),
            ],
            look_back_days: 0,
            access: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.stored, 1);
    let fields: Vec<(u32, &str)> = r
        .rejected
        .iter()
        .map(|x| (x.index, x.field.as_str()))
        .collect();
    assert_eq!(
        fields,
        vec![
            (0, "intel_ref"),
            (2, "expires_at"),
            (3, "action"),
            (4, "vrm")
        ]
    );
    let removed = harry
        .remove_entries(pb::RemoveEntriesRequest {
            list: list("wanted"),
            vrms: vec!["KL12 MNO".into(), "NOT0NLIST".into()],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(removed.removed, 1);
    assert_eq!(removed.not_found, vec!["NOT0NLIST".to_string()]);
    let dup = harry
        .create_hotlist(pb::CreateHotlistRequest {
            name: "wanted".into(),
            purpose: "x".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(dup.code(), tonic::Code::AlreadyExists);
    let gone = harry.delete_hotlist(list("wanted").unwrap()).await.unwrap();
    assert_eq!(gone.into_inner().entries_deleted, 1);
    // A deleted list matches nothing.
    push(&h, "AVON", vec![read("v2", "CD34EFG", "C1", 1)]).await;
    let after = history(&h, pb::WatchRequest::default()).await;
    assert_eq!(after.len(), 1, "{after:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cloned_plate_raises_a_live_alert_and_normal_driving_does_not() {
    let h = Harness::start().await;
    h.cameras("AVON", 3).await;
    h.cameras("MET", 1).await;
    // Normal driving: C1 then C3 (2.2 km) fifteen minutes later, and a
    // second read at the same camera.
    push(
        &h,
        "AVON",
        vec![
            read("n1", "NM11NMN", "C1", 40),
            read("n2", "NM11NMN", "C3", 25),
            read("n3", "NM11NMN", "C3", 24),
        ],
    )
    .await;
    assert!(history(&h, pb::WatchRequest::default()).await.is_empty());

    // The same plate in Bristol and, ten minutes later, in London: one
    // plate on two cars.
    push(&h, "AVON", vec![read("c1", "CL0NE12", "C1", 20)]).await;
    let mut london = read("m1", "CL0NE12", "VAN", 10);
    london.lat = Some(51.5074);
    london.lon = Some(-0.1278);
    push(&h, "MET", vec![london]).await;
    let alerts = history(&h, pb::WatchRequest::default()).await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let a = &alerts[0];
    assert_eq!(kind(a), pb::AlertKind::Clone);
    assert_eq!(read_vrm(a), "CL0NE12");
    let (this, other) = (
        a.read.as_ref().unwrap().provenance.as_ref().unwrap(),
        a.other_read.as_ref().unwrap().provenance.as_ref().unwrap(),
    );
    assert_eq!(
        (this.owning_force.as_str(), this.bof_read_id.as_str()),
        ("MET", "m1")
    );
    assert_eq!(
        (other.owning_force.as_str(), other.bof_read_id.as_str()),
        ("AVON", "c1")
    );
    assert!(
        (160_000.0..180_000.0).contains(&a.distance_m),
        "{}",
        a.distance_m
    );
    assert_eq!(a.seconds, 600.0);
    assert!(a.speed_kmh > 900.0);

    // Two reads of one plate far apart in the same batch are flagged too.
    let mut far = read("p2", "PA1R123", "VAN", 5);
    far.lat = Some(53.4808);
    far.lon = Some(-2.2426);
    push(&h, "AVON", vec![read("p1", "PA1R123", "C2", 6), far]).await;
    let alerts = history(
        &h,
        pb::WatchRequest {
            kinds: vec![pb::AlertKind::Clone as i32],
            ..Default::default()
        },
    )
    .await;
    assert_eq!(alerts.len(), 2);
    assert_eq!(read_vrm(&alerts[1]), "PA1R123");
    assert_eq!(
        alerts[1]
            .other_read
            .as_ref()
            .unwrap()
            .provenance
            .as_ref()
            .unwrap()
            .bof_read_id,
        "p1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hit_on_a_convoy_entry_names_the_companions_seen_with_the_target() {
    let h = Harness::start().await;
    h.cameras("AVON", 3).await;
    let mut target = entry("TG11TGT", pb::Action::Notify, 600);
    target.convoy = true;
    make_list(&h, "convoy", false, vec![target]).await;
    let mut alice = Alerts::new(h.user("alice").await);
    let mut live = alice
        .watch(pb::WatchRequest {
            kinds: vec![pb::AlertKind::Convoy as i32],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    // The companion follows the target through three cameras about a
    // minute behind; another car passes C1 once near the target.
    push(
        &h,
        "AVON",
        vec![
            read("k1", "KM22KMK", "C1", 59),
            read("k2", "KM22KMK", "C2", 39),
            read("k3", "KM22KMK", "C3", 19),
            read("x1", "XX33XXX", "C1", 60),
            read("y1", "YY44YYY", "C2", 10),
        ],
    )
    .await;
    // One target read: no companion seen twice yet, so no alert.
    push(&h, "AVON", vec![read("t1", "TG11TGT", "C1", 60)]).await;
    // The second: the companion has been with it twice.
    push(&h, "AVON", vec![read("t2", "TG11TGT", "C2", 40)]).await;
    let first = next(&mut live).await;
    assert_eq!(kind(&first), pb::AlertKind::Convoy);
    assert_eq!(first.entry.as_ref().unwrap().vrm, "TG11TGT");
    assert_eq!(first.purpose, "serious crime");
    let named: Vec<(&str, u32, u32)> = first
        .companions
        .iter()
        .map(|c| (c.vrm.as_str(), c.co_occurrences, c.cameras))
        .collect();
    assert_eq!(named, vec![("KM22KMK", 2, 2)]);
    // The third read adds nothing new: no alert. A new companion joins
    // for the third and fourth reads: an alert naming both.
    push(&h, "AVON", vec![read("t3", "TG11TGT", "C3", 20)]).await;
    push(
        &h,
        "AVON",
        vec![
            read("j1", "JN55JNJ", "C3", 21),
            read("j2", "JN55JNJ", "C1", 6),
        ],
    )
    .await;
    push(&h, "AVON", vec![read("t4", "TG11TGT", "C1", 5)]).await;
    let second = next(&mut live).await;
    let named: Vec<(&str, u32, u32)> = second
        .companions
        .iter()
        .map(|c| (c.vrm.as_str(), c.co_occurrences, c.cameras))
        .collect();
    assert_eq!(named, vec![("KM22KMK", 3, 3), ("JN55JNJ", 2, 2)]);
    assert_eq!(
        second
            .read
            .as_ref()
            .unwrap()
            .provenance
            .as_ref()
            .unwrap()
            .bof_read_id,
        "t4"
    );
}

fn bof_read_id(r: &Option<pb::ReadRow>) -> &str {
    &r.as_ref().unwrap().provenance.as_ref().unwrap().bof_read_id
}

/// Lat/lon of central London, far from the AVON test cameras near Bristol.
fn in_london(mut r: pb::Read) -> pb::Read {
    r.lat = Some(51.5074);
    r.lon = Some(-0.1278);
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retention_deletes_alerts_with_their_reads_and_no_alert_names_a_deleted_read() {
    let mut h = Harness::start().await;
    // The clock moves a year on: the whole retention period is the standard
    // tier here, so the watcher may see the reads near the cut (tiers are
    // tests/governed.rs's business).
    h.configure = |c| c.access.standard_days = 365;
    h.restart().await;
    h.cameras("AVON", 1).await;
    h.cameras("MET", 1).await;
    // now() is noon; midnight is 720 minutes before it. CL0NE34 is read
    // in Bristol and, a minute later, in London just before midnight: a
    // clone alert, on the day that expires first.
    push(&h, "AVON", vec![read("old", "CL0NE34", "C1", 722)]).await;
    push(
        &h,
        "MET",
        vec![in_london(read("pair", "CL0NE34", "VAN", 721))],
    )
    .await;
    let clone_alerts = || {
        history(
            &h,
            pb::WatchRequest {
                kinds: vec![pb::AlertKind::Clone as i32],
                ..Default::default()
            },
        )
    };
    assert_eq!(clone_alerts().await.len(), 1);

    // A year on, retention's cut falls at that midnight: both reads go,
    // and the alert that names them.
    const DAY: i64 = 86_400_000;
    let midnight = now().plus_millis(-720 * 60_000);
    h.clock.set(midnight.plus_millis(365 * DAY + 60_000));
    let mut admin = pb::admin_client::AdminClient::new(h.user("carol").await);
    let report = admin
        .run_retention(pb::RunRetentionRequest {})
        .await
        .unwrap()
        .into_inner();
    let deleted: Vec<_> = report
        .deleted
        .iter()
        .map(|d| (d.force.as_str(), d.deleted))
        .collect();
    assert_eq!(deleted, [("AVON", 1), ("MET", 1)]);
    assert_eq!(report.alerts_deleted, 1);
    assert!(clone_alerts().await.is_empty());

    // A late London read of the plate minutes after the deleted ones,
    // still inside retention: nothing stored is near it, so no clone. A
    // second plate read in Bristol and London on the kept side of the cut
    // shows the check still runs.
    push(&h, "AVON", vec![read("kept", "KE3PME", "C1", 718)]).await;
    let r = push(
        &h,
        "MET",
        vec![
            in_london(read("late", "CL0NE34", "VAN", 717)),
            in_london(read("far", "KE3PME", "VAN", 716)),
        ],
    )
    .await;
    assert_eq!(r.accepted, 2, "{:?}", r.rejected);
    let clones = clone_alerts().await;
    let named: Vec<(&str, &str)> = clones
        .iter()
        .map(|a| (bof_read_id(&a.read), bof_read_id(&a.other_read)))
        .collect();
    assert_eq!(named, [("far", "kept")]);
}
