//! Subject profiles (issue 20, item 2) against what was planted: a vehicle
//! that commutes every weekday for three weeks (home, a junction, work in
//! the morning; work, home in the evening) and makes one odd trip. The
//! usual locations and journeys, the one outlier and its score, the hours
//! and weekdays are checked against counts made here from the planted
//! reads (cells from h3o directly, days and hours from chrono).

mod support;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Datelike, TimeZone, Timelike};
use nadc_bof::pb;
use support::{Harness, case_access, now};

const SUBJECT: &str = "CO11UTE";
const MIN: i64 = 60_000;
const DAY: i64 = 86_400_000;

/// (camera, lat, lon) of the cameras `Harness::cameras` registers.
fn camera(i: usize) -> (String, f64, f64) {
    (format!("C{i}"), 51.45 + i as f64 * 0.01, -2.58)
}

/// The planted reads: (id, camera, lat, lon, ms).
fn planted() -> Vec<(String, String, f64, f64, i64)> {
    let midnight = now().millis() - now().millis().rem_euclid(DAY);
    let mut out = Vec::new();
    let mut d = 1;
    let mut weekdays = 0;
    while weekdays < 15 {
        let day = midnight - d * DAY;
        d += 1;
        let wd = chrono::Utc.timestamp_millis_opt(day).unwrap().weekday();
        if wd.num_days_from_monday() >= 5 {
            continue;
        }
        weekdays += 1;
        for (k, (cam, at)) in [
            (1, 7 * 60 + 30),
            (2, 7 * 60 + 40),
            (4, 7 * 60 + 50),
            (4, 17 * 60 + 30),
            (1, 17 * 60 + 45),
        ]
        .into_iter()
        .enumerate()
        {
            let (id, lat, lon) = camera(cam);
            out.push((format!("d{d}-{k}"), id, lat, lon, day + at * MIN));
        }
        if weekdays == 7 {
            // The odd trip: a mobile camera far out, at 13:00.
            out.push((
                "odd".into(),
                "VAN".into(),
                51.60,
                -2.40,
                day + 13 * 60 * MIN,
            ));
        }
    }
    out.sort_by_key(|r| r.4);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_commute_is_usual_and_the_odd_trip_is_the_outlier() {
    let h = Harness::start().await;
    h.cameras("AVON", 4).await;
    let reads = planted();
    let r = pb::ingest_client::IngestClient::new(h.bof("AVON").await)
        .push_batch(support::batch(
            reads
                .iter()
                .map(|(id, cam, lat, lon, ms)| pb::Read {
                    read_id: id.clone(),
                    vrm: SUBJECT.into(),
                    observed_at: Some(nadc_proto::to_pb_time(nadc_core::Timestamp::from_millis(
                        *ms,
                    ))),
                    camera_id: cam.clone(),
                    lat: (cam == "VAN").then_some(*lat),
                    lon: (cam == "VAN").then_some(*lon),
                    ..Default::default()
                })
                .collect(),
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(r.rejected.is_empty(), "{:?}", r.rejected);

    let p = pb::analysis_client::AnalysisClient::new(h.user("alice").await)
        .subject_profile(pb::SubjectProfileRequest {
            access: case_access("OP-PROFILE"),
            vrm: SUBJECT.into(),
            from: Some(nadc_proto::to_pb_time(now().plus_millis(-28 * DAY))),
            to: Some(nadc_proto::to_pb_time(now())),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();

    // The reference: cells at resolution 8, UK local days and hours (GMT
    // in November: UTC).
    let cell = |lat: f64, lon: f64| {
        u64::from(
            h3o::LatLng::new(lat, lon)
                .unwrap()
                .to_cell(h3o::Resolution::Eight),
        )
    };
    let dt = |ms: i64| chrono::Utc.timestamp_millis_opt(ms).unwrap();
    let mut days_at: BTreeMap<u64, BTreeSet<i64>> = BTreeMap::new();
    let mut by_hour = vec![0u32; 24];
    let mut by_weekday = vec![0u32; 7];
    for (_, _, lat, lon, ms) in &reads {
        days_at
            .entry(cell(*lat, *lon))
            .or_default()
            .insert(ms.div_euclid(DAY));
        by_hour[dt(*ms).hour() as usize] += 1;
        by_weekday[dt(*ms).weekday().num_days_from_monday() as usize] += 1;
    }
    assert_eq!(p.active_days, 15);
    assert_eq!(p.reads.len(), reads.len());
    assert_eq!(p.by_hour, by_hour);
    assert_eq!(p.by_weekday, by_weekday);
    let got: BTreeMap<u64, (u32, bool)> = p
        .locations
        .iter()
        .map(|l| (l.cell, (l.days, l.usual)))
        .collect();
    let want: BTreeMap<u64, (u32, bool)> = days_at
        .iter()
        .map(|(c, d)| (*c, (d.len() as u32, d.len() >= 2)))
        .collect();
    assert_eq!(got, want);
    // Home, the junction and work are usual, 15 days each; the odd place
    // is not.
    let (c1, c2, c4) = (
        cell(camera(1).1, camera(1).2),
        cell(camera(2).1, camera(2).2),
        cell(camera(4).1, camera(4).2),
    );
    assert_eq!(p.locations[..3].iter().filter(|l| l.usual).count(), 3);
    // Each usual location lists the camera there.
    let home = p.locations.iter().find(|l| l.cell == c1).unwrap();
    assert!(
        home.cameras_near
            .iter()
            .any(|c| c.force == "AVON" && c.camera_id == "C1"),
        "{:?}",
        home.cameras_near
    );
    // Two usual journeys, each made on all 15 days: to work and home.
    let journeys: Vec<(Vec<u64>, u32, bool)> = p
        .journeys
        .iter()
        .map(|j| (j.cells.clone(), j.days, j.usual))
        .collect();
    assert_eq!(
        journeys,
        [(vec![c1, c2, c4], 15, true), (vec![c4, c1], 15, true)]
    );
    let morning = &p.journeys[0];
    assert!(morning.start_hours.iter().all(|h| *h == 7));
    // The one outlier: the odd trip, seen on 1 of 15 days.
    assert_eq!(p.outliers.len(), 1, "{:?}", p.outliers);
    let odd = &p.outliers[0];
    let row = &p.reads[odd.read_index as usize];
    assert_eq!(row.provenance.as_ref().unwrap().bof_read_id, "odd");
    assert!(
        (odd.score - (1.0 - 1.0 / 15.0)).abs() < 1e-9,
        "{}",
        odd.score
    );
    assert!(odd.reason.contains("1 of 15"), "{}", odd.reason);
    assert_eq!(p.caveats.len(), 3);

    // Audited as a search, with the reads it disclosed.
    let entries = h
        .audit_entries(
            "audrey",
            pb::AuditQuery {
                user: "alice".into(),
                action: "search.profile".into(),
                ..Default::default()
            },
        )
        .await;
    let ok: Vec<_> = entries.iter().filter(|e| e.outcome == "ok").collect();
    assert_eq!(ok.len(), 1);
    assert_eq!(ok[0].case_ref, "OP-PROFILE");
    assert_eq!(ok[0].returned[0].rows, reads.len() as u64);

    // Refused as a search is: without a case, and past the data-age tier
    // without an authorisation; each refusal audited.
    let mut c = pb::analysis_client::AnalysisClient::new(h.user("alice").await);
    let ask = |access, from_days: i64| pb::SubjectProfileRequest {
        access,
        vrm: SUBJECT.into(),
        from: Some(nadc_proto::to_pb_time(now().plus_millis(-from_days * DAY))),
        to: Some(nadc_proto::to_pb_time(
            now().plus_millis(-(from_days - 7) * DAY),
        )),
        ..Default::default()
    };
    let e = c.subject_profile(ask(None, 28)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e}");
    let e = c
        .subject_profile(ask(case_access("OP-PROFILE"), 120))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e}");
    let refused = h
        .audit_entries(
            "audrey",
            pb::AuditQuery {
                user: "alice".into(),
                action: "search.profile".into(),
                ..Default::default()
            },
        )
        .await
        .into_iter()
        .filter(|e| e.action == "search.profile" && e.outcome != "ok")
        .count();
    assert_eq!(refused, 2);
}
