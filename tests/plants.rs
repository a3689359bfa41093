//! The generator's analysis plants (`nadc gen`, issue 20) found by the
//! analyses they are planted for, on two weeks of synthetic traffic pushed
//! over mTLS: the offender near every incident planted for it and no
//! other; the hub's associates in its network; the commuter's odd day as
//! its profile's only outliers; the possible and impossible journeys
//! judged so; the silent camera silent on its day. The ground truth comes
//! from the generator, the verdicts from the node.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use nadc_bof::pb;
use nadc_bof::push::{PushOptions, push_rows};
use nadc_cli::synth::{Generator, SynthConfig};
use nadc_core::{Timestamp, Vrm};
use support::{Harness, case_access};

const DAY: i64 = 86_400_000;

fn norm(plate: &str) -> String {
    Vrm::normalise(plate).unwrap().as_str().to_string()
}

fn time(ms: i64) -> Option<prost_types::Timestamp> {
    Some(nadc_proto::to_pb_time(Timestamp::from_millis(ms)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_plant_is_found_by_its_analysis() {
    // Two weeks from Monday 2026-11-09, before the harness's now (24th).
    let start = Timestamp::parse_rfc3339("2026-11-09T00:00:00Z").unwrap();
    let mut cfg = SynthConfig::new(5, 240, start).in_forces(&support::FORCES);
    cfg.days = 14;
    cfg.detection = 1.0;
    cfg.misread = 0.0;
    let g = Generator::new(&cfg);
    let mut reads: BTreeMap<nadc_core::ForceId, Vec<pb::Read>> = BTreeMap::new();
    g.run(&mut |f, r| reads.entry(f.clone()).or_default().push(r));
    let plants = g.plants();
    let planted = g.planted();
    let cameras = g.cameras();

    let h = Harness::start().await;
    let mut tasks = Vec::new();
    for (force, rs) in &reads {
        pb::admin_client::AdminClient::new(h.bof(force.as_str()).await)
            .import_cameras(pb::ImportCamerasRequest {
                cameras: cameras[force].clone(),
            })
            .await
            .unwrap();
        let rows: nadc_bof::format::Rows<pb::Read> = Box::new(rs.clone().into_iter().map(Ok));
        tasks.push(tokio::spawn(push_rows(
            h.bof(force.as_str()).await,
            rows,
            PushOptions::default(),
            |_| {},
        )));
    }
    for t in tasks {
        let report = t.await.unwrap().unwrap();
        assert_eq!(report.totals.rejected, 0, "{:?}", report.rejected.first());
    }
    let mut analysis = pb::analysis_client::AnalysisClient::new(h.user("alice").await);

    // The offender: near every incident planted for it, and the only
    // vehicle near that many.
    let offender = norm(plants.offender.as_ref().unwrap());
    let theirs: BTreeSet<u32> = planted
        .incidents
        .iter()
        .enumerate()
        .filter(|(_, x)| x.offender)
        .map(|(i, _)| i as u32)
        .collect();
    assert!(theirs.len() >= 10, "{}", theirs.len());
    let pattern = analysis
        .crime_pattern(pb::PatternRequest {
            access: case_access("OP-GEN"),
            incidents: planted
                .incidents
                .iter()
                .map(|x| pb::Incident {
                    at: time(x.at_ms),
                    lat: x.lat,
                    lon: x.lon,
                    ..Default::default()
                })
                .collect(),
            radius_m: 300.0,
            window_minutes: 10,
            min_incidents: theirs.len() as u32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let found: Vec<(&str, BTreeSet<u32>)> = pattern
        .vehicles
        .iter()
        .map(|v| (v.vrm.as_str(), v.near.iter().map(|n| n.incident).collect()))
        .collect();
    assert_eq!(found, [(offender.as_str(), theirs)]);

    // The associates: the hub's network holds them both.
    let (hub, members) = plants.associates.clone().unwrap();
    let network = analysis
        .associate_network(pb::NetworkRequest {
            access: case_access("OP-GEN"),
            vrms: vec![norm(&hub)],
            from: time(start.millis()),
            to: time(start.millis() + 14 * DAY - 1),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let companions: BTreeSet<String> = network
        .edges
        .iter()
        .filter(|e| e.target == norm(&hub))
        .map(|e| e.companion.clone())
        .collect();
    for m in &members {
        assert!(companions.contains(&norm(m)), "{m} not in {companions:?}");
    }

    // The commuter: regular, but for its odd day.
    let commuter = plants.commuter.clone().unwrap();
    let odd_day = commuter.odd_day.unwrap();
    let profile = analysis
        .subject_profile(pb::SubjectProfileRequest {
            access: case_access("OP-GEN"),
            vrm: norm(&commuter.plate),
            from: time(start.millis()),
            to: time(start.millis() + 14 * DAY - 1),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!profile.outliers.is_empty());
    for o in &profile.outliers {
        let r = &profile.reads[o.read_index as usize];
        let at =
            nadc_proto::from_pb_time(r.provenance.as_ref().unwrap().observed_at.as_ref().unwrap())
                .unwrap();
        assert_eq!(
            (at.millis() - start.millis()).div_euclid(DAY),
            i64::from(odd_day),
            "an outlier off the odd day: {o:?}"
        );
    }
    assert!(profile.journeys.iter().any(|j| j.usual));

    // The journeys: the commute as made is possible; the far town twenty
    // minutes after leaving home is not.
    let (left, arrived) = planted.commute.clone().unwrap();
    let claim = |c: &nadc_cli::synth::Claim| pb::PlaceClaim {
        lat: c.lat,
        lon: c.lon,
        radius_m: 300.0,
        from: time(c.at_ms),
        to: time(c.at_ms),
        label: c.label.clone(),
    };
    let towns = g.towns();
    let home = towns.iter().position(|t| t.name == commuter.home).unwrap();
    let far = towns[(home + towns.len() / 2) % towns.len()];
    let far_claim = nadc_cli::synth::Claim {
        lat: far.lat,
        lon: far.lon,
        at_ms: left.at_ms + 20 * 60_000,
        label: "far".into(),
    };
    for (claims, possible) in [([&left, &arrived], true), ([&left, &far_claim], false)] {
        let r = analysis
            .alibi(pb::AlibiRequest {
                access: case_access("OP-GEN"),
                vrm: norm(&commuter.plate),
                claims: claims.iter().map(|c| claim(c)).collect(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let not_possible = r
            .claims
            .iter()
            .any(|c| c.verdict == pb::AlibiVerdict::NotPossible as i32);
        assert_eq!(not_possible, !possible, "{:?}", r.claims);
    }

    // The silent camera: silent on its day.
    let (force, camera_id, day) = plants.silent.clone().unwrap();
    let day_start = start.millis() + i64::from(day) * DAY;
    let health = analysis
        .camera_health(pb::CameraHealthRequest {
            access: case_access("OP-GEN"),
            from: time(day_start),
            to: time(day_start + DAY - 1),
            baseline_days: 7,
            force: force.to_string(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let row = health
        .cameras
        .iter()
        .find(|c| c.camera_id == camera_id)
        .unwrap();
    assert_eq!(row.status, pb::CameraStatus::Silent as i32, "{row:?}");
}
