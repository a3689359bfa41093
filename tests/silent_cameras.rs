//! Silent cameras in search summaries (issue 20, item 5): a geographic or
//! camera search names the cameras in its areas, or searched, that read
//! nothing in the window though they usually read then, with their last
//! read, so a missing read is never mistaken for absence. Cameras that
//! read, and cameras that never read, are not named; another force's
//! covert camera only to that force.

mod support;

use nadc_bof::pb;
use support::{Harness, access, now};

const HOUR: i64 = 3_600_000;

/// Hourly reads at `camera` from `from_h` to `to_h` hours ago.
fn hourly(force: &str, camera: &str, from_h: i64, to_h: i64) -> Vec<pb::Read> {
    (to_h..=from_h)
        .map(|h| pb::Read {
            read_id: format!("{force}-{camera}-{h}"),
            vrm: format!("TR{h}AF"),
            observed_at: Some(nadc_proto::to_pb_time(now().plus_millis(-h * HOUR))),
            camera_id: camera.into(),
            ..Default::default()
        })
        .collect()
}

async fn push(h: &Harness, force: &str, reads: Vec<pb::Read>) {
    let r = pb::ingest_client::IngestClient::new(h.bof(force).await)
        .push_batch(support::batch(reads))
        .await
        .unwrap()
        .into_inner();
    assert!(r.rejected.is_empty(), "{:?}", r.rejected);
}

async fn geo(h: &Harness, user: &str, lat: f64, radius_m: f64) -> pb::SearchSummary {
    let mut s = pb::search_client::SearchClient::new(h.user(user).await)
        .geo_search(pb::GeoSearchRequest {
            access: access(),
            areas: vec![pb::Area {
                lat,
                lon: -2.58,
                radius_m,
                from: Some(nadc_proto::to_pb_time(now().plus_millis(-6 * HOUR))),
                to: Some(nadc_proto::to_pb_time(now())),
                ..Default::default()
            }],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut summary = None;
    while let Some(c) = s.message().await.unwrap() {
        if let Some(pb::search_chunk::Chunk::Summary(x)) = c.chunk {
            summary = Some(x);
        }
    }
    summary.unwrap()
}

fn named(s: &pb::SearchSummary) -> Vec<String> {
    s.silent_cameras
        .iter()
        .map(|c| format!("{}/{}", c.force, c.camera_id))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn searches_name_the_cameras_that_went_silent_and_when() {
    let h = Harness::start().await;
    // C1..C3 at 51.46, 51.47, 51.48 (AVON), within 2 km of the area's
    // centre; KENT's covert camera beside C2.
    h.cameras("AVON", 3).await;
    pb::admin_client::AdminClient::new(h.bof("KENT").await)
        .import_cameras(pb::ImportCamerasRequest {
            cameras: vec![pb::Camera {
                camera_id: "KCOV".into(),
                lat: 51.4701,
                lon: -2.58,
                kind: pb::CameraKind::Covert as i32,
                ..Default::default()
            }],
        })
        .await
        .unwrap();
    // C1 reads every hour to now; C2 read every hour for four weeks and
    // stopped 9 hours ago; C3 never reads; KENT's covert camera stopped
    // with C2.
    let weeks = 4 * 7 * 24 + 6;
    push(&h, "AVON", hourly("AVON", "C1", weeks, 0)).await;
    push(&h, "AVON", hourly("AVON", "C2", weeks, 9)).await;
    push(&h, "KENT", hourly("KENT", "KCOV", weeks, 9)).await;

    let s = geo(&h, "alice", 51.47, 3_000.0).await;
    assert_eq!(named(&s), ["AVON/C2"]);
    let c2 = &s.silent_cameras[0];
    assert_eq!(c2.status, pb::CameraStatus::Silent as i32);
    assert_eq!(c2.reads, 0);
    // Seven reads expected (hourly, both ends of the six hours included),
    // from the same window of each of the four weeks before.
    assert!((c2.expected - 7.0).abs() < 1e-9, "{}", c2.expected);
    assert_eq!(
        c2.last_read,
        Some(nadc_proto::to_pb_time(now().plus_millis(-9 * HOUR)))
    );
    // KENT's user is shown KENT's covert camera too.
    assert_eq!(
        named(&geo(&h, "kim", 51.47, 3_000.0).await),
        ["AVON/C2", "KENT/KCOV"]
    );
    // An area that holds only C1 (reading) and C3 (never read) names none.
    let s = geo(&h, "alice", 51.47, 1_500.0).await;
    assert_eq!(named(&s), ["AVON/C2"], "C2 is at the centre");
    let s = geo(&h, "alice", 51.455, 1_000.0).await;
    assert!(named(&s).is_empty(), "{:?}", named(&s));
    let s = geo(&h, "alice", 51.485, 1_000.0).await;
    assert!(named(&s).is_empty(), "{:?}", named(&s));

    // A camera search of C1 and C2 names C2.
    let mut s = pb::search_client::SearchClient::new(h.user("alice").await)
        .camera_search(pb::CameraSearchRequest {
            access: access(),
            cameras: ["C1", "C2", "C3"]
                .iter()
                .map(|c| pb::CameraRef {
                    force: "AVON".into(),
                    camera_id: c.to_string(),
                })
                .collect(),
            from: Some(nadc_proto::to_pb_time(now().plus_millis(-6 * HOUR))),
            to: Some(nadc_proto::to_pb_time(now())),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut summary = None;
    while let Some(c) = s.message().await.unwrap() {
        if let Some(pb::search_chunk::Chunk::Summary(x)) = c.chunk {
            summary = Some(x);
        }
    }
    assert_eq!(named(&summary.unwrap()), ["AVON/C2"]);
}

/// A camera's silence is judged only on what the searcher may see: its
/// usual rate in the weeks before a window near the edge of the data-age
/// tier lies past the tier, so nothing is said of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn silence_is_not_judged_from_reads_past_the_tier() {
    let h = Harness::start().await;
    h.cameras("AVON", 1).await;
    let day = 24 * HOUR;
    // C1 read hourly from 120 to 88 days ago, then nothing.
    let reads: Vec<pb::Read> = (88 * 24..=120 * 24)
        .map(|hh| pb::Read {
            read_id: format!("old-{hh}"),
            vrm: format!("OL{hh}D"),
            observed_at: Some(nadc_proto::to_pb_time(now().plus_millis(-hh * HOUR))),
            camera_id: "C1".into(),
            ..Default::default()
        })
        .collect();
    for chunk in reads.chunks(500) {
        push(&h, "AVON", chunk.to_vec()).await;
    }
    let window = |days: i64| {
        let h = &h;
        async move {
            let mut s = pb::search_client::SearchClient::new(h.user("alice").await)
                .geo_search(pb::GeoSearchRequest {
                    access: access(),
                    areas: vec![pb::Area {
                        lat: 51.46,
                        lon: -2.58,
                        radius_m: 500.0,
                        from: Some(nadc_proto::to_pb_time(now().plus_millis(-days * day))),
                        to: Some(nadc_proto::to_pb_time(
                            now().plus_millis(-days * day + 6 * HOUR),
                        )),
                        ..Default::default()
                    }],
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            let mut summary = None;
            while let Some(c) = s.message().await.unwrap() {
                if let Some(pb::search_chunk::Chunk::Summary(x)) = c.chunk {
                    summary = Some(x);
                }
            }
            summary.unwrap()
        }
    };
    // 86 days ago (inside the 90-day tier, silent): the four weeks before
    // lie past the tier, and nothing is said.
    assert!(named(&window(86).await).is_empty());
    // 82 days ago: one week before lies inside the tier (89 days ago, when
    // it read), so its silence is named.
    let s = window(82).await;
    assert_eq!(named(&s), ["AVON/C1"]);
    // Its last read, found without looking past the tier.
    let last = nadc_proto::from_pb_time(s.silent_cameras[0].last_read.as_ref().unwrap()).unwrap();
    assert_eq!(last, now().plus_millis(-88 * day));
    // The audit notes the camera row disclosed, besides the reads.
    let entries = h
        .audit_entries(
            "audrey",
            pb::AuditQuery {
                user: "alice".into(),
                action: "search.geo".into(),
                ..Default::default()
            },
        )
        .await;
    let noted: Vec<String> = entries
        .iter()
        .filter(|e| e.action == "search.geo" && e.outcome == "ok")
        .map(|e| {
            let q: serde_json::Value = serde_json::from_str(&e.query).unwrap();
            q["camera_rows"].to_string()
        })
        .collect();
    assert_eq!(noted, ["null", r#"{"AVON":1}"#]);
}
