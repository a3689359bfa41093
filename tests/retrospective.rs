//! Retrospective hits (issue 20, item 7): an entry added with a look-back
//! logs the stored reads it would have hit as hits marked retrospective,
//! exactly those (checked against the reads planted, by time and by the
//! list's matching), for the list's force. A look-back is a search: it
//! needs a searching role as well as hotlist-manager, a purpose and a case
//! (the reads hit are registered and audited under it), and stops at the
//! standard data-age tier; a watch shows retrospective hits only under a
//! purpose and case, as it shows history.

mod support;

use std::collections::BTreeMap;

use nadc_bof::pb;
use support::{Harness, access, case_access, now};

const DAY: i64 = 86_400_000;
const SUBJECT: &str = "RT12ABC";

/// (read id, force, VRM, days ago) of every read planted.
const PLANTED: [(&str, &str, &str, i64); 9] = [
    ("a1", "AVON", SUBJECT, 1),
    ("a5", "AVON", SUBJECT, 5),
    ("a20", "AVON", SUBJECT, 20),
    ("a40", "AVON", SUBJECT, 40),
    ("a89", "AVON", SUBJECT, 89),
    ("a95", "AVON", SUBJECT, 95),
    ("k3", "KENT", SUBJECT, 3),
    // A confusable read (B read as 8), and another vehicle.
    ("c2", "AVON", "RT12A8C", 2),
    ("o4", "AVON", "XY99ZZZ", 4),
];

async fn plant(h: &Harness) {
    h.cameras("AVON", 1).await;
    h.cameras("KENT", 1).await;
    for force in ["AVON", "KENT"] {
        let reads = PLANTED
            .iter()
            .filter(|r| r.1 == force)
            .map(|(id, _, vrm, days)| pb::Read {
                read_id: id.to_string(),
                vrm: vrm.to_string(),
                observed_at: Some(nadc_proto::to_pb_time(now().plus_millis(-days * DAY))),
                camera_id: "C1".into(),
                ..Default::default()
            })
            .collect();
        let r = pb::ingest_client::IngestClient::new(h.bof(force).await)
            .push_batch(support::batch(reads))
            .await
            .unwrap()
            .into_inner();
        assert!(r.rejected.is_empty(), "{:?}", r.rejected);
    }
}

/// kim: KENT, investigator and hotlist-manager.
const MANAGER: &str = "kim";

async fn list(h: &Harness, name: &str, fuzzy: bool) {
    pb::hotlists_client::HotlistsClient::new(h.user(MANAGER).await)
        .create_hotlist(pb::CreateHotlistRequest {
            name: name.into(),
            purpose: "serious crime".into(),
            fuzzy,
            ..Default::default()
        })
        .await
        .unwrap();
}

async fn list_as(h: &Harness, user: &str, name: &str) {
    pb::hotlists_client::HotlistsClient::new(h.user(user).await)
        .create_hotlist(pb::CreateHotlistRequest {
            name: name.into(),
            purpose: "serious crime".into(),
            ..Default::default()
        })
        .await
        .unwrap();
}

async fn add(
    h: &Harness,
    name: &str,
    look_back_days: u32,
) -> Result<pb::AddEntriesResponse, tonic::Status> {
    add_as(h, MANAGER, name, look_back_days, case_access("OP-RETRO")).await
}

async fn add_as(
    h: &Harness,
    user: &str,
    name: &str,
    look_back_days: u32,
    access: Option<pb::AccessContext>,
) -> Result<pb::AddEntriesResponse, tonic::Status> {
    pb::hotlists_client::HotlistsClient::new(h.user(user).await)
        .add_entries(pb::AddEntriesRequest {
            list: Some(pb::HotlistRef {
                owner: String::new(),
                name: name.into(),
            }),
            entries: vec![pb::HotlistEntry {
                vrm: SUBJECT.into(),
                reason: "wanted for robbery".into(),
                intel_ref: format!("INT/{name}/1"),
                action: pb::Action::Stop as i32,
                expires_at: Some(nadc_proto::to_pb_time(now().plus_millis(30 * DAY))),
                ..Default::default()
            }],
            look_back_days,
            access,
        })
        .await
        .map(tonic::Response::into_inner)
}

/// The ids the reference says a list hits in `days`: exact, or also the
/// confusable read for a fuzzy list.
fn reference(days: i64, fuzzy: bool) -> Vec<&'static str> {
    let mut ids: Vec<(i64, &str)> = PLANTED
        .iter()
        .filter(|(_, _, vrm, ago)| {
            *ago <= days && (*vrm == SUBJECT || (fuzzy && *vrm == "RT12A8C"))
        })
        .map(|(id, _, _, ago)| (-ago, *id))
        .collect();
    ids.sort();
    ids.into_iter().map(|(_, id)| id).collect()
}

/// The alert history after `after`, as kim (KENT, alerting) reads it.
async fn history(h: &Harness, after: u64) -> Vec<pb::AlertEvent> {
    let mut s = pb::alerts_client::AlertsClient::new(h.user(MANAGER).await)
        .watch(pb::WatchRequest {
            after,
            history_only: true,
            access: access(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut out = Vec::new();
    while let Some(e) = s.message().await.unwrap() {
        out.push(e);
    }
    out
}

fn read_id(e: &pb::AlertEvent) -> String {
    e.read
        .as_ref()
        .unwrap()
        .provenance
        .as_ref()
        .unwrap()
        .bof_read_id
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_entry_added_with_a_look_back_logs_the_reads_it_would_have_hit() {
    let h = Harness::start().await;
    plant(&h).await;
    list(&h, "exact", false).await;
    // Watchers following live before the entry is added: one under a
    // purpose and case, one without.
    let follow = |access: Option<pb::AccessContext>| {
        let h = &h;
        async move {
            pb::alerts_client::AlertsClient::new(h.user(MANAGER).await)
                .watch(pb::WatchRequest {
                    from_now: true,
                    access,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
        }
    };
    let mut live = follow(access()).await;
    let mut bare = follow(None).await;

    // A hotlist manager without a searching role may not look back.
    list_as(&h, "harry", "avon").await;
    let e = add_as(&h, "harry", "avon", 30, access()).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e}");
    assert!(e.message().contains("searching role"), "{}", e.message());
    // Nor without a case.
    let e = add_as(&h, MANAGER, "exact", 30, None).await.unwrap_err();
    assert_ne!(e.code(), tonic::Code::Ok);

    let r = add(&h, "exact", 30).await.unwrap();
    let want = reference(30, false);
    assert_eq!(r.retrospective_hits as usize, want.len());
    assert!(!r.retrospective_truncated);
    let events = history(&h, r.first_position - 1).await;
    let got: Vec<String> = events.iter().map(read_id).collect();
    assert_eq!(got, want, "oldest read first");
    for e in &events {
        assert!(e.retrospective, "{e:?}");
        assert_eq!(e.kind, pb::AlertKind::Hit as i32);
        assert_eq!(e.list.as_ref().unwrap().name, "exact");
        assert_eq!(e.entry.as_ref().unwrap().vrm, SUBJECT);
        assert_eq!(e.raised_at, Some(nadc_proto::to_pb_time(now())));
    }
    assert_eq!(
        (events[0].position, events.last().unwrap().position),
        (r.first_position, r.last_position)
    );
    // The live watcher under a case is told of them as they are logged.
    for id in &want {
        let e = live.message().await.unwrap().unwrap();
        assert_eq!(read_id(&e), *id);
        assert!(e.retrospective);
    }
    // The one without a case is not: the next it sees is a live hit.
    let r = pb::ingest_client::IngestClient::new(h.bof("AVON").await)
        .push_batch(support::batch(vec![pb::Read {
            read_id: "live".into(),
            vrm: SUBJECT.into(),
            observed_at: Some(nadc_proto::to_pb_time(now())),
            camera_id: "C1".into(),
            ..Default::default()
        }]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.accepted, 1);
    let e = bare.message().await.unwrap().unwrap();
    assert_eq!(read_id(&e), "live");
    assert!(!e.retrospective);

    // The look-back is audited under its case with the reads it
    // disclosed, per owning force (AVON's among them); the addition too.
    let entries = h
        .audit_entries(
            "kurt",
            pb::AuditQuery {
                action: "hotlist.add.retrospective".into(),
                ..Default::default()
            },
        )
        .await;
    let e = entries
        .iter()
        .find(|e| e.action == "hotlist.add.retrospective")
        .unwrap();
    assert_eq!(e.case_ref, "OP-RETRO");
    assert!(e.query.contains("\"look_back_days\":30"), "{}", e.query);
    let returned: BTreeMap<String, u64> = e
        .returned
        .iter()
        .map(|f| (f.force.clone(), f.rows))
        .collect();
    assert_eq!(
        returned,
        BTreeMap::from([("AVON".to_string(), 3), ("KENT".to_string(), 1)])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fuzzy_list_hits_confusable_reads_and_the_tier_bounds_the_look_back() {
    let h = Harness::start().await;
    plant(&h).await;
    list(&h, "fuzzy", true).await;
    // Past the standard tier: refused, naming it.
    let e = add(&h, "fuzzy", 91).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(
        e.message().contains("standard data-age tier, 90 days"),
        "{}",
        e.message()
    );
    let r = add(&h, "fuzzy", 90).await.unwrap();
    let events = history(&h, r.first_position - 1).await;
    let got: Vec<String> = events.iter().map(read_id).collect();
    assert_eq!(got, reference(90, true));
    let confusable = events.iter().find(|e| read_id(e) == "c2").unwrap();
    assert_eq!(confusable.substitutions, "list B read 8 at 6");
    // Added again, nothing is hit twice.
    let again = add(&h, "fuzzy", 90).await.unwrap();
    assert_eq!(again.retrospective_hits, 0);
    // Without a look-back nothing retrospective is logged.
    list(&h, "plain", false).await;
    let r = add(&h, "plain", 0).await.unwrap();
    assert_eq!(r.retrospective_hits, 0);
}

/// Reads arriving while an entry is added with a look-back: each hits the
/// list once, live or retrospectively, never both and never neither.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_read_arriving_while_an_entry_is_added_hits_once() {
    let h = Harness::start().await;
    h.cameras("AVON", 1).await;
    for round in 0..4 {
        let name = format!("race{round}");
        list(&h, &name, false).await;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let bof = h.bof("AVON").await;
        let pusher = tokio::spawn(async move {
            let mut c = pb::ingest_client::IngestClient::new(bof);
            let mut tx = Some(tx);
            for i in 0..60 {
                let r = c
                    .push_batch(support::batch(vec![pb::Read {
                        read_id: format!("race{round}-{i}"),
                        vrm: SUBJECT.into(),
                        observed_at: Some(nadc_proto::to_pb_time(
                            now().plus_millis(-3_600_000 - i * 1_000),
                        )),
                        camera_id: "C1".into(),
                        ..Default::default()
                    }]))
                    .await
                    .unwrap()
                    .into_inner();
                assert!(r.rejected.is_empty(), "{:?}", r.rejected);
                if i == 5 {
                    tx.take().unwrap().send(()).unwrap();
                }
            }
        });
        rx.await.unwrap();
        add(&h, &name, 7).await.unwrap();
        pusher.await.unwrap();
        let mut hits: BTreeMap<String, u32> = BTreeMap::new();
        for e in history(&h, 0).await {
            let list = e.list.as_ref().map(|l| l.name.clone()).unwrap_or_default();
            if list == name {
                *hits.entry(read_id(&e)).or_default() += 1;
            }
        }
        // Every read of this round once (and the planted older reads of
        // the subject, none here).
        let want: BTreeMap<String, u32> =
            (0..60).map(|i| (format!("race{round}-{i}"), 1)).collect();
        let got: BTreeMap<String, u32> = hits
            .into_iter()
            .filter(|(id, _)| id.starts_with(&format!("race{round}-")))
            .collect();
        assert_eq!(got, want, "round {round}");
    }
}
