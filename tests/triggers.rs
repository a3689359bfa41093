//! Trigger rules (issue 20, item 6): "alert when a vehicle on this list
//! enters this area between these hours". A listed vehicle is read over a
//! grid of places and hours; the reads that hit are exactly those a
//! reference written here admits (the oracle's geodesic distance, hours of the day in
//! GMT, the rule's period); a list without rules hits on every read; the
//! rules survive a restart, are cleared, are refused when bad (naming the
//! rule and field) and cannot be set on another force's list.

mod support;

use std::collections::BTreeSet;

use nadc_bof::pb;
use nadc_core::Timestamp;
use support::{Harness, batch, now};
use tonic::Code;

type Hotlists = pb::hotlists_client::HotlistsClient<tonic::transport::Channel>;

const CENTRE: (f64, f64) = (51.4545, -2.5879);
const RADIUS: u32 = 800;
const HOUR: i64 = 3_600_000;

fn list(name: &str) -> Option<pb::HotlistRef> {
    Some(pb::HotlistRef {
        owner: String::new(),
        name: name.into(),
    })
}

/// The WGS84 geodesic distance in metres, by the oracle (Vincenty), not
/// by the code under test.
fn geodesic(a: (f64, f64), b: (f64, f64)) -> f64 {
    nadc_oracle::distance_m(a.0, a.1, b.0, b.1)
}

/// The rule: within 800 m of the centre, 22:00 to 06:00, from three days
/// before now until one day before.
fn night_rule() -> pb::TriggerRule {
    pb::TriggerRule {
        label: "town centre, nights".into(),
        lat: CENTRE.0,
        lon: CENTRE.1,
        radius_m: RADIUS,
        from: Some(nadc_proto::to_pb_time(now().plus_millis(-72 * HOUR))),
        until: Some(nadc_proto::to_pb_time(now().plus_millis(-24 * HOUR))),
        start_hour: 22,
        end_hour: 6,
        ..Default::default()
    }
}

/// The reference's verdict on a read at `p` at `ms` (November: UK time is
/// UTC).
fn admitted(p: (f64, f64), ms: i64) -> bool {
    let from = now().millis() - 72 * HOUR;
    let until = now().millis() - 24 * HOUR;
    let hour = ms.rem_euclid(24 * HOUR) / HOUR;
    geodesic(p, CENTRE) <= f64::from(RADIUS)
        && (from..until).contains(&ms)
        && !(6..22).contains(&hour)
}

/// Reads of `vrm` on a grid: places 0 to 1.4 km from the centre (away from
/// the edge), every 90 minutes over four days.
fn grid(vrm: &str, prefix: &str) -> Vec<(pb::Read, (f64, f64), i64)> {
    let mut out = Vec::new();
    let mut k = 0;
    for step in 0..6 {
        let d = f64::from(step) * 280.0 + 20.0;
        let p = (CENTRE.0 + d / 111_320.0, CENTRE.1);
        for slot in 0..64 {
            let ms = now().millis() - 96 * HOUR + slot * 90 * 60_000 + step as i64 * 60_000;
            k += 1;
            out.push((
                pb::Read {
                    read_id: format!("{prefix}{k}"),
                    vrm: vrm.into(),
                    observed_at: Some(nadc_proto::to_pb_time(Timestamp::from_millis(ms))),
                    camera_id: "GPS".into(),
                    lat: Some(p.0),
                    lon: Some(p.1),
                    ..Default::default()
                },
                p,
                ms,
            ));
        }
    }
    out
}

async fn make_list(h: &Harness, name: &str, vrm: &str, rules: Vec<pb::TriggerRule>) {
    let mut c = Hotlists::new(h.user("harry").await);
    let info = c
        .create_hotlist(pb::CreateHotlistRequest {
            name: name.into(),
            purpose: "serious crime".into(),
            rules: rules.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.rules.len(), rules.len());
    let r = c
        .add_entries(pb::AddEntriesRequest {
            list: list(name),
            entries: vec![pb::HotlistEntry {
                vrm: vrm.into(),
                reason: "burglary series".into(),
                intel_ref: "INT/7".into(),
                action: pb::Action::Intelligence as i32,
                expires_at: Some(nadc_proto::to_pb_time(now().plus_millis(30 * 24 * HOUR))),
                ..Default::default()
            }],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(r.rejected.is_empty(), "{:?}", r.rejected);
}

/// The read ids hit on `name`, from the alert log.
async fn hits(h: &Harness, name: &str) -> BTreeSet<String> {
    let mut s = pb::alerts_client::AlertsClient::new(h.user("alice").await)
        .watch(pb::WatchRequest {
            history_only: true,
            lists: vec![pb::HotlistRef {
                owner: "AVON".into(),
                name: name.into(),
            }],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut out = BTreeSet::new();
    while let Some(e) = s.message().await.unwrap() {
        out.insert(e.read.unwrap().provenance.unwrap().bof_read_id);
    }
    out
}

async fn push(h: &Harness, reads: Vec<pb::Read>) {
    let r = pb::ingest_client::IngestClient::new(h.bof("AVON").await)
        .push_batch(batch(reads))
        .await
        .unwrap()
        .into_inner();
    assert!(r.rejected.is_empty(), "{:?}", r.rejected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_read_hits_only_inside_a_rules_area_period_and_hours() {
    let mut h = Harness::start().await;
    make_list(&h, "nights", "N1GHTS", vec![night_rule()]).await;
    make_list(&h, "always", "ALW4YS", vec![]).await;
    let polygon = pb::TriggerRule {
        label: "the square".into(),
        // A box around the centre, about 1.1 km by 0.7 km.
        polygon: "POLYGON((-2.5929 51.4495, -2.5829 51.4495, -2.5829 51.4595, -2.5929 51.4595, -2.5929 51.4495))".into(),
        ..Default::default()
    };
    make_list(&h, "square", "SQU4RE", vec![polygon]).await;

    let nights = grid("N1GHTS", "n");
    let always = grid("ALW4YS", "a");
    let square = grid("SQU4RE", "s");
    for g in [&nights, &always, &square] {
        push(&h, g.iter().map(|(r, _, _)| r.clone()).collect()).await;
    }
    let want: BTreeSet<String> = nights
        .iter()
        .filter(|(_, p, ms)| admitted(*p, *ms))
        .map(|(r, _, _)| r.read_id.clone())
        .collect();
    // Some reads hit and some do not, for each reason.
    assert!(
        want.len() > 5 && want.len() < nights.len() / 4,
        "{}",
        want.len()
    );
    assert_eq!(hits(&h, "nights").await, want);
    assert_eq!(hits(&h, "always").await.len(), always.len());
    let in_box =
        |p: (f64, f64)| (51.4495..=51.4595).contains(&p.0) && (-2.5929..=-2.5829).contains(&p.1);
    let want_square: BTreeSet<String> = square
        .iter()
        .filter(|(_, p, _)| in_box(*p))
        .map(|(r, _, _)| r.read_id.clone())
        .collect();
    assert!(!want_square.is_empty() && want_square.len() < square.len());
    assert_eq!(hits(&h, "square").await, want_square);

    // The rules are stored: after a restart the same reads hit the same way.
    h.restart().await;
    let again: Vec<pb::Read> = nights
        .iter()
        .map(|(r, _, _)| pb::Read {
            read_id: format!("again-{}", r.read_id),
            ..r.clone()
        })
        .collect();
    push(&h, again).await;
    let both = hits(&h, "nights").await;
    assert_eq!(both.len(), 2 * want.len());
    let got = Hotlists::new(h.user("harry").await)
        .get_hotlist(list("nights").unwrap())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.list.unwrap().rules, vec![night_rule()]);

    // Cleared, every read of the vehicle hits again.
    let info = Hotlists::new(h.user("harry").await)
        .set_rules(pb::SetRulesRequest {
            list: list("nights"),
            rules: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    assert!(info.rules.is_empty());
    let third: Vec<pb::Read> = nights
        .iter()
        .map(|(r, _, _)| pb::Read {
            read_id: format!("third-{}", r.read_id),
            ..r.clone()
        })
        .collect();
    push(&h, third).await;
    assert_eq!(
        hits(&h, "nights").await.len(),
        2 * want.len() + nights.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_rules_are_refused_by_name_and_another_forces_list_is_out_of_reach() {
    let h = Harness::start().await;
    make_list(&h, "nights", "N1GHTS", vec![night_rule()]).await;
    let set = async |user: &str, owner: &str, rules: Vec<pb::TriggerRule>| {
        Hotlists::new(h.user(user).await)
            .set_rules(pb::SetRulesRequest {
                list: Some(pb::HotlistRef {
                    owner: owner.into(),
                    name: "nights".into(),
                }),
                rules,
            })
            .await
            .map(|r| r.into_inner())
    };
    let cases = [
        (
            pb::TriggerRule {
                start_hour: 25,
                ..night_rule()
            },
            "rules[1]: start_hour",
        ),
        (
            pb::TriggerRule {
                radius_m: 0,
                ..night_rule()
            },
            "rules[1]: radius_m",
        ),
        (
            pb::TriggerRule {
                lat: 95.0,
                ..night_rule()
            },
            "rules[1]: lat",
        ),
        (
            pb::TriggerRule {
                until: night_rule().from,
                ..night_rule()
            },
            "rules[1]: until",
        ),
        (
            pb::TriggerRule {
                polygon: "POLYGON((0 0, 1 1))".into(),
                ..night_rule()
            },
            "rules[1]: polygon",
        ),
        (
            pb::TriggerRule {
                label: "x\u{202e}y".into(),
                ..night_rule()
            },
            "rules[1]: label",
        ),
    ];
    for (bad, words) in cases {
        let e = set("harry", "", vec![night_rule(), bad]).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{words}");
        assert!(e.message().contains(words), "{words}: {}", e.message());
    }
    let e = set("harry", "", vec![night_rule(); 51]).await.unwrap_err();
    assert!(e.message().contains("at most 50"), "{}", e.message());
    // The list kept its rule through every refusal.
    let got = Hotlists::new(h.user("harry").await)
        .get_hotlist(list("nights").unwrap())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.list.unwrap().rules, vec![night_rule()]);
    // KENT's manager cannot reach AVON's list; an analyst cannot set rules.
    let e = set("kim", "AVON", vec![]).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    let e = set("alice", "", vec![]).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
}
