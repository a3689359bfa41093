//! Alibi and journey checks (issue 20, item 4) against a brute-force
//! reference (`support::alibi_ref`, written apart from nadc): generated
//! cameras, a subject's reads and other traffic around Bristol, random
//! claims plus planted ones; each verdict, each possible second, the reads
//! before, after, at the place and elsewhere, and the cameras listed; a
//! journey's legs; the audit, bad claims, and another force's covert
//! cameras.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use nadc_bof::pb;
use nadc_core::Timestamp;
use rand::{Rng, SeedableRng};
use support::alibi_ref::{RefClaim, RefRead, answered_seconds, judge, metres, span_ms};
use support::{Harness, case_access, now};

const SUBJECT: &str = "AB51XYZ";
const SPEED: f64 = 100.0;
const CAMERAS: usize = 14;
/// Cameras K0..K9 read other traffic; K10.. only the subject, if anyone.
const BUSY: usize = 10;
const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;

fn ts(ms: i64) -> Option<prost_types::Timestamp> {
    Some(nadc_proto::to_pb_time(Timestamp::from_millis(ms)))
}

/// What was pushed: camera positions, the subject's reads, every read's
/// camera and time (for coverage).
struct World {
    cameras: Vec<(f64, f64)>,
    subject: Vec<RefRead>,
    /// (camera index, ms) of every read, the subject's included.
    all: Vec<(usize, i64)>,
}

fn read(id: String, vrm: &str, camera: usize, ms: i64) -> pb::Read {
    pb::Read {
        read_id: id,
        vrm: vrm.into(),
        observed_at: ts(ms),
        camera_id: format!("K{camera}"),
        confidence: Some(90.0),
        ..Default::default()
    }
}

async fn world(h: &Harness) -> World {
    let mut rng = rand::rngs::StdRng::seed_from_u64(2026);
    let cameras: Vec<(f64, f64)> = (0..CAMERAS)
        .map(|_| {
            (
                51.30 + rng.random_range(0.0..0.36),
                -2.85 + rng.random_range(0.0..0.55),
            )
        })
        .collect();
    let bof = h.bof("AVON").await;
    let r = pb::admin_client::AdminClient::new(bof.clone())
        .import_cameras(pb::ImportCamerasRequest {
            cameras: cameras
                .iter()
                .enumerate()
                .map(|(i, (lat, lon))| pb::Camera {
                    camera_id: format!("K{i}"),
                    lat: *lat,
                    lon: *lon,
                    kind: pb::CameraKind::Fixed as i32,
                    ..Default::default()
                })
                .collect(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.stored as usize, CAMERAS);
    // KENT's covert camera beside K0: AVON's users never see it.
    let r = pb::admin_client::AdminClient::new(h.bof("KENT").await)
        .import_cameras(pb::ImportCamerasRequest {
            cameras: vec![pb::Camera {
                camera_id: "KCOV".into(),
                lat: cameras[0].0 + 0.0005,
                lon: cameras[0].1,
                kind: pb::CameraKind::Covert as i32,
                ..Default::default()
            }],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.stored, 1);
    let n = now().millis();
    let mut reads = Vec::new();
    let mut subject = Vec::new();
    let mut all = Vec::new();
    // The subject: 30 reads at random cameras in the 11 hours to an hour
    // ago, and two planted 20 minutes apart at K0 then K1, 6 hours ago.
    let mut plant = |id: String, camera: usize, ms: i64, reads: &mut Vec<pb::Read>| {
        reads.push(read(id.clone(), SUBJECT, camera, ms));
        subject.push(RefRead {
            id,
            ms,
            lat: cameras[camera].0,
            lon: cameras[camera].1,
        });
        all.push((camera, ms));
    };
    for k in 0..30 {
        let camera = rng.random_range(0..CAMERAS);
        let ms = n - 12 * HOUR + rng.random_range(HOUR / 1000..12 * HOUR / 1000) * 1000;
        plant(format!("s{k}"), camera, ms, &mut reads);
    }
    plant("p1".into(), 0, n - 6 * HOUR, &mut reads);
    plant("p2".into(), 1, n - 6 * HOUR + 20 * MIN, &mut reads);
    // Other traffic at the busy cameras, every 20 minutes for 13 hours.
    for camera in 0..BUSY {
        for k in 0..39 {
            let ms = n - 13 * HOUR + k * 20 * MIN + camera as i64 * 7_000;
            reads.push(read(format!("t{camera}-{k}"), "TR4FF1C", camera, ms));
            all.push((camera, ms));
        }
    }
    let r = pb::ingest_client::IngestClient::new(bof)
        .push_batch(support::batch(reads))
        .await
        .unwrap()
        .into_inner();
    assert!(r.rejected.is_empty(), "{:?}", r.rejected);
    World {
        cameras,
        subject,
        all,
    }
}

fn claim_pb(c: &RefClaim) -> pb::PlaceClaim {
    pb::PlaceClaim {
        lat: c.lat,
        lon: c.lon,
        radius_m: c.radius_m,
        from: ts(c.from_ms),
        to: ts(c.to_ms),
        label: String::new(),
    }
}

fn request(claims: &[RefClaim]) -> pb::AlibiRequest {
    pb::AlibiRequest {
        access: case_access("OP-ALIBI"),
        vrm: SUBJECT.into(),
        claims: claims.iter().map(claim_pb).collect(),
        max_speed_kmh: SPEED,
        around_hours: 14,
        baseline_days: 7,
        ..Default::default()
    }
}

async fn check(h: &Harness, user: &str, claims: &[RefClaim]) -> pb::AlibiResponse {
    pb::analysis_client::AnalysisClient::new(h.user(user).await)
        .alibi(request(claims))
        .await
        .unwrap()
        .into_inner()
}

/// The ids of the answer's reads at `idx`.
fn ids(r: &pb::AlibiResponse, idx: &[u32]) -> BTreeSet<String> {
    idx.iter()
        .map(|i| {
            r.reads[*i as usize]
                .provenance
                .as_ref()
                .unwrap()
                .bof_read_id
                .clone()
        })
        .collect()
}

fn id(r: &pb::AlibiResponse, i: Option<u32>) -> Option<String> {
    i.map(|i| ids(r, &[i]).into_iter().next().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_claim_is_judged_as_the_brute_force_reference_judges_it() {
    let h = Harness::start().await;
    let w = world(&h).await;
    let n = now().millis();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut claims = Vec::new();
    for _ in 0..40 {
        let (lat, lon) = if rng.random_bool(0.5) {
            let (lat, lon) = w.cameras[rng.random_range(0..CAMERAS)];
            (
                lat + rng.random_range(-0.01..0.01),
                lon + rng.random_range(-0.01..0.01),
            )
        } else {
            (
                51.30 + rng.random_range(0.0..0.36),
                -2.85 + rng.random_range(0.0..0.55),
            )
        };
        let from_ms = n - 12 * HOUR + rng.random_range(0..11 * HOUR);
        let to_ms = from_ms
            + if rng.random_bool(0.2) {
                0
            } else {
                rng.random_range(0..90 * MIN)
            };
        claims.push(RefClaim {
            lat,
            lon,
            radius_m: rng.random_range(300.0..4_000.0),
            from_ms,
            to_ms,
        });
    }
    // Planted: at K0 around p1 (seen there); 80 km east between p1 and
    // p2, 20 minutes apart near Bristol (not possible at 100 km/h).
    let (k0, p1) = (w.cameras[0], n - 6 * HOUR);
    claims.push(RefClaim {
        lat: k0.0,
        lon: k0.1,
        radius_m: 300.0,
        from_ms: p1 - 10 * MIN,
        to_ms: p1 + 10 * MIN,
    });
    claims.push(RefClaim {
        lat: 51.45,
        lon: -1.40,
        radius_m: 500.0,
        from_ms: p1 + 5 * MIN,
        to_ms: p1 + 15 * MIN,
    });

    let mut verdicts = BTreeMap::<i32, usize>::new();
    for c in &claims {
        let r = check(&h, "alice", std::slice::from_ref(c)).await;
        let want = judge(c, &w.subject, SPEED);
        // Every read of the subject is weighed, in time order.
        let got_ids: BTreeSet<String> = ids(&r, &(0..r.reads.len() as u32).collect::<Vec<_>>());
        let all_ids: BTreeSet<String> = w.subject.iter().map(|s| s.id.clone()).collect();
        assert_eq!(got_ids, all_ids);
        let res = &r.claims[0];
        assert_eq!(id(&r, res.before), want.before, "{c:?}");
        assert_eq!(id(&r, res.after), want.after, "{c:?}");
        assert_eq!(ids(&r, &res.at_place), want.at_place, "{c:?}");
        assert_eq!(ids(&r, &res.elsewhere), want.elsewhere, "{c:?}");
        assert_eq!(answered_seconds(c, res), want.possible_seconds, "{c:?}");
        // The cameras at the place, and which of them read anything then.
        let near: BTreeSet<usize> = (0..CAMERAS)
            .filter(|i| metres(w.cameras[*i], (c.lat, c.lon)) <= c.radius_m)
            .collect();
        let listed: BTreeSet<String> = res
            .cameras
            .iter()
            .map(|k| format!("{}/{}", k.force, k.camera_id))
            .collect();
        let want_listed: BTreeSet<String> = near.iter().map(|i| format!("AVON/K{i}")).collect();
        assert_eq!(listed, want_listed, "{c:?}");
        // Coverage: a read of any vehicle within 15 minutes of the window.
        let covered = w.all.iter().any(|(k, ms)| {
            near.contains(k) && c.from_ms - 15 * MIN <= *ms && *ms <= c.to_ms + 15 * MIN
        });
        let verdict = if want.seen_there {
            pb::AlibiVerdict::SeenThere
        } else if res.possible.is_empty() {
            pb::AlibiVerdict::NotPossible
        } else if covered {
            pb::AlibiVerdict::PossibleUnseen
        } else {
            pb::AlibiVerdict::PossibleNoCoverage
        };
        assert_eq!(res.verdict, verdict as i32, "{c:?}: {}", res.statement);
        // Not possible only when no second of the window is (a sliver
        // between two seconds aside).
        if res.possible.is_empty() {
            assert!(want.possible_seconds.is_empty(), "{c:?}");
        }
        for s in &res.possible {
            let (a, b) = span_ms(s);
            assert!(c.from_ms <= a && a <= b && b <= c.to_ms, "{c:?}");
        }
        assert!(!res.statement.is_empty());
        assert_eq!(r.caveats.len(), 3);
        *verdicts.entry(res.verdict).or_default() += 1;
    }
    // Each verdict was reached, the planted ones as planted.
    assert_eq!(verdicts.len(), 4, "{verdicts:?}");
    let planted = check(&h, "alice", &claims[claims.len() - 2..]).await;
    assert_eq!(
        planted.claims[0].verdict,
        pb::AlibiVerdict::SeenThere as i32
    );
    assert_eq!(
        planted.claims[1].verdict,
        pb::AlibiVerdict::NotPossible as i32
    );
    assert_eq!(
        ids(&planted, &planted.claims[0].at_place),
        BTreeSet::from(["p1".to_string()])
    );
    assert!(ids(&planted, &planted.claims[1].ruled_out_by).contains("p1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_journeys_legs_need_the_speed_of_their_distance_over_the_time_allowed() {
    let h = Harness::start().await;
    let w = world(&h).await;
    let n = now().millis();
    let (k0, k1) = (w.cameras[0], w.cameras[1]);
    let p1 = n - 6 * HOUR;
    let claims = [
        RefClaim {
            lat: k0.0,
            lon: k0.1,
            radius_m: 200.0,
            from_ms: p1,
            to_ms: p1,
        },
        RefClaim {
            lat: k1.0,
            lon: k1.1,
            radius_m: 200.0,
            from_ms: p1 + 20 * MIN,
            to_ms: p1 + 20 * MIN,
        },
        // Bath to Swindon-ish in ten minutes: no.
        RefClaim {
            lat: 51.56,
            lon: -1.78,
            radius_m: 200.0,
            from_ms: p1 + 30 * MIN,
            to_ms: p1 + 30 * MIN,
        },
    ];
    let r = check(&h, "alice", &claims).await;
    assert_eq!(r.claims.len(), 3);
    assert_eq!(r.legs.len(), 2);
    for (leg, pair) in r.legs.iter().zip(claims.windows(2)) {
        let d = (metres((pair[0].lat, pair[0].lon), (pair[1].lat, pair[1].lon))
            - pair[0].radius_m
            - pair[1].radius_m)
            .max(0.0);
        let kmh = d / 1000.0 / ((pair[1].to_ms - pair[0].from_ms) as f64 / HOUR as f64);
        assert!((leg.distance_m - d).abs() < 1.0, "{leg:?} {d}");
        assert!((leg.required_kmh - kmh).abs() < 0.01, "{leg:?} {kmh}");
        assert_eq!(leg.possible, kmh <= SPEED, "{leg:?}");
    }
    assert!(!r.legs[1].possible, "{:?}", r.legs[1]);
    // The first two places are where the subject was read at those times.
    assert_eq!(r.claims[0].verdict, pb::AlibiVerdict::SeenThere as i32);
    assert_eq!(r.claims[1].verdict, pb::AlibiVerdict::SeenThere as i32);
    assert_eq!(r.claims[2].verdict, pb::AlibiVerdict::NotPossible as i32);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_check_is_audited_with_its_reads_and_bad_claims_are_named() {
    let h = Harness::start().await;
    let w = world(&h).await;
    let n = now().millis();
    let k0 = w.cameras[0];
    let claim = RefClaim {
        lat: k0.0,
        lon: k0.1,
        radius_m: 1_000.0,
        from_ms: n - 6 * HOUR - 10 * MIN,
        to_ms: n - 6 * HOUR + 10 * MIN,
    };
    // A mobile camera registered at K0: its registered place is only its
    // base, so it gives no coverage there.
    pb::admin_client::AdminClient::new(h.bof("AVON").await)
        .import_cameras(pb::ImportCamerasRequest {
            cameras: vec![pb::Camera {
                camera_id: "MOB".into(),
                lat: k0.0,
                lon: k0.1,
                kind: pb::CameraKind::Mobile as i32,
                ..Default::default()
            }],
        })
        .await
        .unwrap();
    let r = check(&h, "alice", &[claim]).await;
    // KENT's covert camera beside K0 is KENT's business only.
    let listed = |r: &pb::AlibiResponse| -> BTreeSet<String> {
        r.claims[0]
            .cameras
            .iter()
            .map(|k| format!("{}/{}", k.force, k.camera_id))
            .collect()
    };
    assert!(!listed(&r).contains("KENT/KCOV"), "{:?}", listed(&r));
    assert!(!listed(&r).contains("AVON/MOB"), "{:?}", listed(&r));
    assert!(listed(&r).contains("AVON/K0"));
    let kims = check(&h, "kim", &[claim]).await;
    assert!(listed(&kims).contains("KENT/KCOV"), "{:?}", listed(&kims));
    // MoU: kim is shown AVON's reads flagged for consultation.
    assert!(kims.reads.iter().all(|r| r.mou_consult));
    assert!(r.reads.iter().all(|r| !r.mou_consult));

    // The audit entry names the search and what it disclosed.
    let entries = h
        .audit_entries(
            "audrey",
            pb::AuditQuery {
                user: "alice".into(),
                action: "search.alibi".into(),
                ..Default::default()
            },
        )
        .await;
    let closing: Vec<_> = entries.iter().filter(|e| e.outcome == "ok").collect();
    assert_eq!(closing.len(), 1, "{entries:?}");
    assert_eq!(closing[0].case_ref, "OP-ALIBI");
    let rows: u64 = closing[0]
        .returned
        .iter()
        .filter(|f| f.force == "AVON")
        .map(|f| f.rows)
        .sum();
    assert_eq!(rows, w.subject.len() as u64);
    // The camera rows it disclosed besides the reads are noted per force.
    let q: serde_json::Value = serde_json::from_str(&closing[0].query).unwrap();
    assert_eq!(
        q["camera_rows"]["AVON"].as_u64(),
        Some(r.claims[0].cameras.len() as u64),
        "{q}"
    );

    // Bad claims are refused, naming the claim and the field.
    let mut c = pb::analysis_client::AnalysisClient::new(h.user("alice").await);
    let mut wide = request(&[claim]);
    wide.claims[0].radius_m = 20_000.0;
    let e = c.alibi(wide).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(
        e.message().contains("claims[0]") && e.message().contains("radius_m"),
        "{}",
        e.message()
    );
    let mut inverted = request(&[claim, claim]);
    inverted.claims[1].to = ts(claim.from_ms - MIN);
    let e = c.alibi(inverted).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(
        e.message().contains("claims[1]") && e.message().contains("inverted"),
        "{}",
        e.message()
    );
    // A journey's places must be in time order.
    let later = RefClaim {
        from_ms: claim.from_ms + HOUR,
        to_ms: claim.to_ms + HOUR,
        ..claim
    };
    let e = c.alibi(request(&[later, claim])).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(
        e.message().contains("claims[1]") && e.message().contains("time order"),
        "{}",
        e.message()
    );
    let mut none = request(&[]);
    none.claims.clear();
    let e = c.alibi(none).await.unwrap_err();
    assert!(e.message().contains("at least one"), "{}", e.message());
    // Without a case, it is refused like any search.
    let mut no_case = request(&[claim]);
    no_case.access = support::access().map(|mut a| {
        a.case_ref.clear();
        a
    });
    let e = c.alibi(no_case).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e}");
}

/// Past the node's search limit, an alibi check keeps the vehicle's reads
/// nearest in time to the claim, not the earliest.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_truncated_check_keeps_the_reads_nearest_the_claim() {
    let mut h = Harness::start().await;
    h.configure = |c| c.max_search_limit = 5;
    h.restart().await;
    h.cameras("AVON", 1).await;
    let start = now().millis() - 12 * HOUR;
    let reads: Vec<pb::Read> = (0..20)
        .map(|i| pb::Read {
            read_id: format!("t{i}"),
            vrm: "TR0NCAT".into(),
            observed_at: ts(start + i * 30 * MIN),
            camera_id: "C1".into(),
            ..Default::default()
        })
        .collect();
    let r = pb::ingest_client::IngestClient::new(h.bof("AVON").await)
        .push_batch(support::batch(reads))
        .await
        .unwrap()
        .into_inner();
    assert!(r.rejected.is_empty(), "{:?}", r.rejected);
    // The claim: at C1 at the time of read t10.
    let at = start + 10 * 30 * MIN;
    let got = pb::analysis_client::AnalysisClient::new(h.user("alice").await)
        .alibi(pb::AlibiRequest {
            access: case_access("OP-TRUNC"),
            vrm: "TR0NCAT".into(),
            claims: vec![pb::PlaceClaim {
                lat: 51.46,
                lon: -2.58,
                radius_m: 300.0,
                from: ts(at),
                to: ts(at),
                label: String::new(),
            }],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(got.truncated);
    let kept: Vec<String> = got
        .reads
        .iter()
        .map(|r| r.provenance.clone().unwrap().bof_read_id)
        .collect();
    assert_eq!(kept, ["t8", "t9", "t10", "t11", "t12"]);
}
