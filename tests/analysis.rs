//! The Analysis service against a real node over mTLS: hot spots and
//! timing checked against a brute-force count of the planted reads (cells
//! from h3o directly, hours of the week from chrono), hits and verified
//! hits, and the governed path (audit entry, case register, refusals).

mod support;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Datelike, TimeZone, Timelike};
use nadc_bof::pb;
use support::{Harness, access, batch, case_access, now, read};
use tonic::Code;

/// The last 30 days to [`now`], as the wire's times.
macro_rules! window {
    () => {
        (
            Some(nadc_proto::to_pb_time(now().plus_millis(-30 * 86_400_000))),
            Some(nadc_proto::to_pb_time(now())),
        )
    };
}

/// Cameras far apart, each in its own resolution-7 cell: (force, id, lat, lon).
const CAMERAS: [(&str, &str, f64, f64); 4] = [
    ("AVON", "BRS", 51.4545, -2.5879),
    ("AVON", "BTH", 51.3811, -2.3590),
    ("AVON", "SWI", 51.5558, -1.7797),
    ("KENT", "MDS", 51.2704, 0.5227),
];

const SUBJECT: &str = "AB12CDE";

async fn cameras(h: &Harness) {
    for force in ["AVON", "KENT"] {
        let cameras = CAMERAS
            .iter()
            .filter(|c| c.0 == force)
            .map(|(_, id, lat, lon)| pb::Camera {
                camera_id: (*id).into(),
                lat: *lat,
                lon: *lon,
                kind: pb::CameraKind::Fixed as i32,
                ..Default::default()
            })
            .collect();
        let mut admin = pb::admin_client::AdminClient::new(h.bof(force).await);
        admin
            .import_cameras(pb::ImportCamerasRequest { cameras })
            .await
            .unwrap();
    }
}

/// The planted reads: (force, read). The subject is read 30 times at AVON's
/// three cameras (Bristol most), 5 times at KENT's; another vehicle at
/// Bristol too, which no subject count may include.
fn planted() -> Vec<(&'static str, pb::Read)> {
    let mut out = Vec::new();
    for i in 0..30i64 {
        let camera = match i % 6 {
            0..=2 => "BRS",
            3 | 4 => "BTH",
            _ => "SWI",
        };
        // Spread over three weeks and every hour of the day.
        out.push((
            "AVON",
            read(&format!("a{i}"), SUBJECT, camera, 37 + i * 661),
        ));
    }
    for i in 0..5i64 {
        out.push((
            "KENT",
            read(&format!("k{i}"), SUBJECT, "MDS", 90 + i * 1_003),
        ));
    }
    for i in 0..7i64 {
        let mut other = read(&format!("o{i}"), "OT43HER", "BRS", 50 + i * 500);
        other.make = Some("Vauxhall".into());
        out.push(("AVON", other));
    }
    out
}

/// What a count of `reads` must be: per cell (count, forces, hours,
/// cameras), overall hours and per force. Written from the planted reads
/// with h3o and chrono, not through nadc's code.
/// One cell's expected count, per force, by hour of the week, and cameras.
type CellWant = (u64, BTreeMap<String, u64>, Vec<u64>, BTreeSet<String>);

struct Expected {
    cells: BTreeMap<u64, CellWant>,
    hours: Vec<u64>,
    forces: BTreeMap<String, u64>,
}

fn expected(reads: &[(&str, pb::Read)], res: h3o::Resolution) -> Expected {
    let mut e = Expected {
        cells: BTreeMap::new(),
        hours: vec![0; 168],
        forces: BTreeMap::new(),
    };
    for (force, r) in reads {
        let (_, _, lat, lon) = CAMERAS.iter().find(|c| c.1 == r.camera_id).unwrap();
        let cell = u64::from(h3o::LatLng::new(*lat, *lon).unwrap().to_cell(res));
        let t = r.observed_at.as_ref().unwrap();
        let dt = chrono::Utc
            .timestamp_opt(t.seconds, t.nanos as u32)
            .unwrap();
        let hour = dt.weekday().num_days_from_monday() as usize * 24 + dt.hour() as usize;
        let c = e
            .cells
            .entry(cell)
            .or_insert_with(|| (0, BTreeMap::new(), vec![0; 168], BTreeSet::new()));
        c.0 += 1;
        *c.1.entry(force.to_string()).or_default() += 1;
        c.2[hour] += 1;
        c.3.insert(format!("{force}/{}", r.camera_id));
        e.hours[hour] += 1;
        *e.forces.entry(force.to_string()).or_default() += 1;
    }
    e
}

fn forces(f: &[pb::ForceCount]) -> BTreeMap<String, u64> {
    f.iter().map(|f| (f.force.clone(), f.rows)).collect()
}

async fn hot_spots(
    h: &Harness,
    user: &str,
    req: pb::HotSpotsRequest,
) -> Result<pb::HotSpotsResponse, tonic::Status> {
    pb::analysis_client::AnalysisClient::new(h.user(user).await)
        .hot_spots(req)
        .await
        .map(tonic::Response::into_inner)
}

async fn push_all(h: &Harness, reads: &[(&str, pb::Read)]) {
    for force in ["AVON", "KENT"] {
        let mine: Vec<pb::Read> = reads
            .iter()
            .filter(|(f, _)| *f == force)
            .map(|(_, r)| r.clone())
            .collect();
        let mut c = pb::ingest_client::IngestClient::new(h.bof(force).await);
        let r = c.push_batch(batch(mine)).await.unwrap().into_inner();
        assert!(r.rejected.is_empty(), "{:?}", r.rejected);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hot_spots_count_every_read_of_the_subject_by_cell_and_hour_exactly() {
    let h = Harness::start().await;
    cameras(&h).await;
    let reads = planted();
    push_all(&h, &reads).await;
    let subject: Vec<_> = reads
        .iter()
        .filter(|(_, r)| r.vrm == SUBJECT)
        .cloned()
        .collect();
    let (from, to) = window!();
    for res in [h3o::Resolution::Seven, h3o::Resolution::Four] {
        let want = expected(&subject, res);
        let got = hot_spots(
            &h,
            "alice",
            pb::HotSpotsRequest {
                access: access(),
                vrms: vec![SUBJECT.into(), "ab12 cde".into()],
                resolution: u32::from(u8::from(res)),
                from,
                to,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(got.total, subject.len() as u64, "each read counted once");
        assert_eq!(got.cells_counted, want.cells.len() as u64);
        assert_eq!(got.by_hour_of_week, want.hours);
        assert_eq!(forces(&got.forces), want.forces);
        // Ranked by count, then cell; each cell exact.
        let mut order: Vec<(u64, u64)> = want.cells.iter().map(|(c, v)| (v.0, *c)).collect();
        order.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let got_order: Vec<(u64, u64)> = got.cells.iter().map(|c| (c.count, c.cell)).collect();
        assert_eq!(got_order, order, "resolution {res}");
        for c in &got.cells {
            let (n, f, hours, cams) = &want.cells[&c.cell];
            assert_eq!(c.count, *n);
            assert_eq!(&forces(&c.forces), f);
            assert_eq!(&c.by_hour_of_week, hours);
            let got_cams: BTreeSet<String> = c
                .cameras
                .iter()
                .map(|k| format!("{}/{}", k.force, k.camera_id))
                .collect();
            assert_eq!(&got_cams, cams);
            // The centre is the cell's own.
            let centre = h3o::LatLng::new(c.lat, c.lon).unwrap().to_cell(res);
            assert_eq!(u64::from(centre), c.cell);
        }
    }
    // A ranking of one: the busiest cell (Bristol), totals still whole.
    let top = hot_spots(
        &h,
        "alice",
        pb::HotSpotsRequest {
            access: access(),
            vrms: vec![SUBJECT.into()],
            from,
            to,
            limit: 1,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(top.cells.len(), 1);
    assert_eq!(top.cells[0].count, 15);
    assert_eq!(top.total, 35);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hits_and_verified_hits_are_counted_where_the_hit_reads_were_taken() {
    let h = Harness::start().await;
    cameras(&h).await;
    // Reads before the list exists raise nothing.
    push_all(&h, &planted()).await;
    h.hotlist("harry", "wanted", SUBJECT).await;
    let hits = vec![
        ("AVON", read("h1", SUBJECT, "BRS", 30)),
        ("AVON", read("h2", SUBJECT, "BRS", 20)),
        ("AVON", read("h3", SUBJECT, "SWI", 10)),
        ("KENT", read("h4", SUBJECT, "MDS", 5)),
    ];
    push_all(&h, &hits).await;
    let (from, to) = window!();
    let count = |count: pb::HotSpotCount, user: &'static str| {
        let h = &h;
        async move {
            hot_spots(
                h,
                user,
                pb::HotSpotsRequest {
                    access: access(),
                    count: count as i32,
                    from,
                    to,
                    ..Default::default()
                },
            )
            .await
            .unwrap()
        }
    };
    let all = count(pb::HotSpotCount::Hits, "alice").await;
    let want = expected(&hits, h3o::Resolution::Seven);
    assert_eq!(all.total, 4);
    assert_eq!(all.by_hour_of_week, want.hours);
    let got: BTreeMap<u64, u64> = all.cells.iter().map(|c| (c.cell, c.count)).collect();
    let want_cells: BTreeMap<u64, u64> = want.cells.iter().map(|(c, v)| (*c, v.0)).collect();
    assert_eq!(got, want_cells);
    // Hits on named VRMs only: none on another vehicle.
    let other = hot_spots(
        &h,
        "alice",
        pb::HotSpotsRequest {
            access: access(),
            count: pb::HotSpotCount::Hits as i32,
            vrms: vec!["OT43HER".into()],
            from,
            to,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(other.total, 0);
    // KENT has no list: no hit is KENT's.
    assert_eq!(count(pb::HotSpotCount::Hits, "kim").await.total, 0);
    // One verified as confirmed, one rejected: one verified hit.
    let mut history = pb::alerts_client::AlertsClient::new(h.user("alice").await)
        .watch(pb::WatchRequest {
            history_only: true,
            access: access(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut positions = BTreeMap::new();
    while let Some(e) = history.message().await.unwrap() {
        let id = e.read.unwrap().provenance.unwrap().bof_read_id;
        positions.insert(id, e.position);
    }
    let mut alerts = pb::alerts_client::AlertsClient::new(h.user("alice").await);
    for (id, state) in [
        ("h1", pb::Verification::Confirmed),
        ("h2", pb::Verification::Rejected),
    ] {
        alerts
            .verify(pb::VerifyRequest {
                position: positions[id],
                state: state as i32,
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let verified = count(pb::HotSpotCount::VerifiedHits, "alice").await;
    assert_eq!(verified.total, 1);
    assert_eq!(verified.cells.len(), 1);
    assert_eq!(verified.cells[0].cameras[0].camera_id, "BRS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hot_spot_analysis_is_governed_as_a_search() {
    let h = Harness::start().await;
    cameras(&h).await;
    push_all(&h, &planted()).await;
    let (from, to) = window!();
    let req = |access: Option<pb::AccessContext>| pb::HotSpotsRequest {
        access,
        vrms: vec![SUBJECT.into()],
        from,
        to,
        ..Default::default()
    };
    // No purpose or case: refused, as a search is.
    let e = hot_spots(&h, "alice", req(None)).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e}");
    // A window reaching past the standard tier: refused, naming the rule.
    let mut old = req(case_access("OP-HS"));
    old.from = Some(nadc_proto::to_pb_time(now().plus_millis(-100 * 86_400_000)));
    old.to = Some(nadc_proto::to_pb_time(now().plus_millis(-80 * 86_400_000)));
    let e = hot_spots(&h, "alice", old).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    assert!(e.message().contains("authorisation"), "{}", e.message());
    // A resolution finer than the index: refused by name.
    let mut fine = req(case_access("OP-HS"));
    fine.resolution = 11;
    let e = hot_spots(&h, "alice", fine).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("resolution 11"), "{}", e.message());
    // Answered: audited with what it rests on, per owning force, and the
    // reads counted are in the case's register.
    let r = hot_spots(&h, "alice", req(case_access("OP-HS")))
        .await
        .unwrap();
    assert_eq!(r.total, 35);
    let entries = h
        .audit_entries(
            "audrey",
            pb::AuditQuery {
                action: "search.hotspots".into(),
                ..Default::default()
            },
        )
        .await;
    let outcomes: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| (e.outcome.as_str(), e.case_ref.as_str()))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("refused", ""),
            ("refused", "OP-HS"),
            ("refused", "OP-HS"),
            ("ok", "OP-HS")
        ]
    );
    let ok = entries.last().unwrap();
    let returned: BTreeMap<String, u64> = ok
        .returned
        .iter()
        .map(|f| (f.force.clone(), f.rows))
        .collect();
    assert_eq!(
        returned,
        BTreeMap::from([("AVON".into(), 30), ("KENT".into(), 5)])
    );
    let schedule = pb::disclosure_client::DisclosureClient::new(h.user("dora").await)
        .schedule(pb::ScheduleRequest {
            case_ref: "OP-HS".into(),
            case_force: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let registered: usize = schedule.agencies.iter().map(|a| a.reads.len()).sum();
    assert_eq!(registered, 35);
    // Nobody's VRM is in the log line or the audit query beyond the request.
    assert!(!ok.query.contains("OT43HER"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn all_traffic_and_vehicle_details_are_counted_without_a_subject() {
    let h = Harness::start().await;
    cameras(&h).await;
    let reads = planted();
    push_all(&h, &reads).await;
    let (from, to) = window!();
    let ask = |all_traffic: bool, make: Option<&'static str>| {
        let h = &h;
        async move {
            hot_spots(
                h,
                "alice",
                pb::HotSpotsRequest {
                    access: case_access("OP-TRAFFIC"),
                    all_traffic,
                    make: make.map(String::from),
                    from,
                    to,
                    ..Default::default()
                },
            )
            .await
        }
    };
    // Every read in the window, by cell and hour.
    let all = ask(true, None).await.unwrap();
    let want = expected(&reads, h3o::Resolution::Seven);
    assert_eq!(all.total, reads.len() as u64);
    assert_eq!(all.by_hour_of_week, want.hours);
    let got: BTreeMap<u64, u64> = all.cells.iter().map(|c| (c.cell, c.count)).collect();
    let cells: BTreeMap<u64, u64> = want.cells.iter().map(|(c, v)| (*c, v.0)).collect();
    assert_eq!(got, cells);
    // By make (case does not matter): the Vauxhall's reads only.
    let vauxhalls: Vec<_> = reads
        .iter()
        .filter(|(_, r)| r.make.as_deref() == Some("Vauxhall"))
        .cloned()
        .collect();
    let by_make = ask(false, Some("VAUXHALL")).await.unwrap();
    assert_eq!(by_make.total, vauxhalls.len() as u64);
    assert_eq!(
        by_make.by_hour_of_week,
        expected(&vauxhalls, h3o::Resolution::Seven).hours
    );
    // Traffic and a subject at once: refused, saying why.
    let e = hot_spots(
        &h,
        "alice",
        pb::HotSpotsRequest {
            access: case_access("OP-TRAFFIC"),
            all_traffic: true,
            vrms: vec![SUBJECT.into()],
            from,
            to,
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("not both"), "{}", e.message());
    // An aggregate of everyone's traffic registers no read under the case.
    let schedule = pb::disclosure_client::DisclosureClient::new(h.user("dora").await)
        .schedule(pb::ScheduleRequest {
            case_ref: "OP-TRAFFIC".into(),
            case_force: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        schedule
            .agencies
            .iter()
            .map(|a| a.reads.len())
            .sum::<usize>(),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_camera_that_went_silent_is_named_with_when_and_a_working_one_is_not() {
    let h = Harness::start().await;
    // Cameras C1 and C2 (and the mobile VAN) of AVON.
    h.cameras("AVON", 2).await;
    // A read an hour at C1 for eight days (the 7-day baseline and the last
    // day); at C2 the same, but nothing in the last day.
    let hour = 60;
    let mut reads = Vec::new();
    for i in 0..8 * 24i64 {
        let mins_ago = 30 + i * hour;
        reads.push(read(&format!("c1-{i}"), "AB12CDE", "C1", mins_ago));
        if mins_ago > 24 * hour {
            reads.push(read(&format!("c2-{i}"), "XY34FGH", "C2", mins_ago));
        }
    }
    let mut c = pb::ingest_client::IngestClient::new(h.bof("AVON").await);
    let r = c.push_batch(batch(reads)).await.unwrap().into_inner();
    assert!(r.rejected.is_empty(), "{:?}", r.rejected);
    let ask = |baseline_days: u32| {
        let h = &h;
        async move {
            pb::analysis_client::AnalysisClient::new(h.user("alice").await)
                .camera_health(pb::CameraHealthRequest {
                    access: case_access("OP-CAMS"),
                    from: Some(nadc_proto::to_pb_time(now().plus_millis(-24 * 3_600_000))),
                    to: Some(nadc_proto::to_pb_time(now().plus_millis(-1))),
                    baseline_days,
                    ..Default::default()
                })
                .await
        }
    };
    let got = ask(7).await.unwrap().into_inner();
    let rows: Vec<(String, i32, u64, i64)> = got
        .cameras
        .iter()
        .map(|c| {
            (
                c.camera_id.clone(),
                c.status,
                c.reads,
                // Expected, rounded: a read an hour for 24 hours.
                c.expected.round() as i64,
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("C2".to_string(), pb::CameraStatus::Silent as i32, 0, 24),
            ("C1".into(), pb::CameraStatus::Working as i32, 24, 24),
            ("VAN".into(), pb::CameraStatus::NoData as i32, 0, 0),
        ]
    );
    // When C2 went silent: its last read, 24.5 hours before now.
    let last = nadc_proto::from_pb_time(got.cameras[0].last_read.as_ref().unwrap()).unwrap();
    assert_eq!(last, now().plus_millis(-(30 + 24 * 60) * 60_000));
    // A baseline under a week cannot judge every hour of the week.
    let e = ask(3).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("at least 7"), "{}", e.message());
    // Audited under the case, with the rows it disclosed per force.
    let entries = h
        .audit_entries(
            "audrey",
            pb::AuditQuery {
                action: "search.camera_health".into(),
                ..Default::default()
            },
        )
        .await;
    let outcomes: Vec<&str> = entries.iter().map(|e| e.outcome.as_str()).collect();
    assert_eq!(outcomes, ["ok", "refused"]);
    // What it disclosed: AVON's three camera rows (C1, C2, VAN).
    assert_eq!(entries[0].returned[0].rows, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hours_of_the_week_are_uk_local_time_unless_utc_is_asked() {
    let h = Harness::start().await;
    cameras(&h).await;
    // Tuesday 20 October 2026, 07:30 UTC: 08:30 in London (BST until 01:00
    // UTC on Sunday 25 October). Tuesday 17 November, 07:30 UTC: 07:30 GMT.
    let at = |s: &str| {
        let mut r = read("x", "LO12CAL", "BRS", 0);
        r.read_id = s.to_string();
        r.observed_at = Some(nadc_proto::to_pb_time(
            nadc_core::Timestamp::parse_rfc3339(s).unwrap(),
        ));
        ("AVON", r)
    };
    push_all(
        &h,
        &[at("2026-10-20T07:30:00Z"), at("2026-11-17T07:30:00Z")],
    )
    .await;
    let ask = |utc: bool| pb::HotSpotsRequest {
        access: access(),
        vrms: vec!["LO12CAL".into()],
        from: Some(nadc_proto::to_pb_time(
            nadc_core::Timestamp::parse_rfc3339("2026-10-19T00:00:00Z").unwrap(),
        )),
        to: Some(nadc_proto::to_pb_time(
            nadc_core::Timestamp::parse_rfc3339("2026-11-18T00:00:00Z").unwrap(),
        )),
        utc,
        ..Default::default()
    };
    let tuesday = |hour: usize| 24 + hour;
    let local = hot_spots(&h, "alice", ask(false)).await.unwrap();
    assert_eq!(local.hours_in, "Europe/London");
    assert_eq!(local.by_hour_of_week[tuesday(8)], 1, "08:30 BST");
    assert_eq!(local.by_hour_of_week[tuesday(7)], 1, "07:30 GMT");
    let utc = hot_spots(&h, "alice", ask(true)).await.unwrap();
    assert_eq!(utc.hours_in, "UTC");
    assert_eq!(utc.by_hour_of_week[tuesday(7)], 2);
    assert_eq!(utc.by_hour_of_week.iter().sum::<u64>(), 2);
}
