//! Structured searches over mTLS against a real node holding a few hundred
//! thousand generated reads, each checked against a brute-force answer
//! computed from the generated data itself.

mod support;

use std::collections::{BTreeSet, HashMap};

use nadc_bof::pb;
use nadc_bof::push::{PushOptions, push_rows};
use nadc_cli::synth::{SOUTH, SynthConfig, SynthData, generate};
use nadc_core::{GeoPoint, Timestamp};
use support::Harness;
use tonic::transport::Channel;

fn day() -> Timestamp {
    // The day before the harness's "now".
    support::now().minus_days(1).plus_millis(-12 * 3_600_000)
}

async fn loaded() -> (Harness, SynthData) {
    let h = Harness::start().await;
    let data = generate(
        &SynthConfig::new(11, 16_000, Timestamp::from_day_ms(day().day(), 0)).in_forces(&SOUTH),
    );
    let mut tasks = Vec::new();
    for (force, reads) in &data.reads {
        // The harness PKI has BOFs for AVON, KENT and MET only; WMP's reads
        // are pushed by no one (a force not connected yet).
        if !support::FORCES.contains(&force.as_str()) {
            continue;
        }
        let mut admin = pb::admin_client::AdminClient::new(h.bof(force.as_str()).await);
        admin
            .import_cameras(pb::ImportCamerasRequest {
                cameras: data.cameras[force].clone(),
            })
            .await
            .unwrap();
        let ch = h.bof(force.as_str()).await;
        let rows: nadc_bof::format::Rows<pb::Read> = Box::new(reads.clone().into_iter().map(Ok));
        tasks.push(tokio::spawn(push_rows(
            ch,
            rows,
            PushOptions::default(),
            |_| {},
        )));
    }
    for t in tasks {
        let report = t.await.unwrap().unwrap();
        assert_eq!(report.totals.rejected, 0, "{:?}", report.rejected.first());
    }
    (h, data)
}

/// Every pushed read with its resolved position and owning force.
fn truth(data: &SynthData) -> Vec<(String, String, String, GeoPoint, Timestamp)> {
    let mut out = Vec::new();
    for (force, reads) in &data.reads {
        if !support::FORCES.contains(&force.as_str()) {
            continue;
        }
        let cams: HashMap<&str, &pb::Camera> = data.cameras[force]
            .iter()
            .map(|c| (c.camera_id.as_str(), c))
            .collect();
        for r in reads {
            let (lat, lon) = match (r.lat, r.lon) {
                (Some(a), Some(b)) => (a, b),
                _ => (
                    cams[r.camera_id.as_str()].lat,
                    cams[r.camera_id.as_str()].lon,
                ),
            };
            let t = nadc_proto::from_pb_time(r.observed_at.as_ref().unwrap()).unwrap();
            out.push((
                force.to_string(),
                r.read_id.clone(),
                r.camera_id.clone(),
                GeoPoint::new(lat, lon).unwrap(),
                t,
            ));
        }
    }
    out
}

async fn geo(
    ch: Channel,
    req: pb::GeoSearchRequest,
) -> Result<(Vec<pb::ReadRow>, Vec<pb::VrmAreaSummary>, pb::SearchSummary), tonic::Status> {
    let mut client = pb::search_client::SearchClient::new(ch).max_decoding_message_size(64 << 20);
    let mut stream = client.geo_search(req).await?.into_inner();
    let (mut rows, mut vrms, mut summary) = (Vec::new(), Vec::new(), None);
    while let Some(c) = stream.message().await? {
        match c.chunk.unwrap() {
            pb::search_chunk::Chunk::Rows(b) => rows.extend(b.rows),
            pb::search_chunk::Chunk::Vrms(v) => vrms.extend(v.vrms),
            pb::search_chunk::Chunk::Summary(s) => summary = Some(s),
        }
    }
    Ok((rows, vrms, summary.unwrap()))
}

fn area(p: GeoPoint, radius_m: f64, from: Timestamp, to: Timestamp) -> pb::Area {
    pb::Area {
        lat: p.lat(),
        lon: p.lon(),
        radius_m,
        from: Some(nadc_proto::to_pb_time(from)),
        to: Some(nadc_proto::to_pb_time(to)),
        polygon: String::new(),
    }
}

/// The rows of a streamed search result.
async fn rows_of(mut stream: tonic::Streaming<pb::SearchChunk>) -> Vec<pb::ReadRow> {
    let mut rows = Vec::new();
    while let Some(c) = stream.message().await.unwrap() {
        if let Some(pb::search_chunk::Chunk::Rows(b)) = c.chunk {
            rows.extend(b.rows);
        }
    }
    rows
}

fn ids(rows: &[pb::ReadRow]) -> BTreeSet<(String, String)> {
    rows.iter()
        .map(|r| {
            let p = r.provenance.as_ref().unwrap();
            (p.owning_force.clone(), p.bof_read_id.clone())
        })
        .collect()
}

#[tokio::test]
async fn structured_searches_match_brute_force() {
    let (h, data) = loaded().await;
    let all = truth(&data);
    assert!(all.len() > 100_000, "{} reads", all.len());
    let alice = h.user("alice").await;
    let start = Timestamp::from_day_ms(day().day(), 0);

    // Geographic, ANY: three areas around towns at different hours, plus a
    // tiny circle; compared with a brute-force scan of every pushed read.
    let towns = nadc_cli::synth::towns();
    let areas: Vec<(GeoPoint, f64, Timestamp, Timestamp)> = vec![
        (
            GeoPoint::new(towns[0].lat, towns[0].lon).unwrap(),
            1_000.0,
            start.plus_millis(8 * 3_600_000),
            start.plus_millis(9 * 3_600_000),
        ),
        (
            GeoPoint::new(towns[6].lat, towns[6].lon).unwrap(),
            5_000.0,
            start,
            start.plus_millis(86_399_999),
        ),
        (
            GeoPoint::new(towns[3].lat, towns[3].lon).unwrap(),
            2_500.0,
            start.plus_millis(12 * 3_600_000),
            start.plus_millis(15 * 3_600_000),
        ),
    ];
    let req = pb::GeoSearchRequest {
        access: support::access(),
        areas: areas
            .iter()
            .map(|(p, r, f, t)| area(*p, *r, *f, *t))
            .collect(),
        r#match: pb::AreaMatch::Any as i32,
        limit: 1_000_000,
        allow_broad: false,
        ..Default::default()
    };
    let (rows, vrms, summary) = geo(alice.clone(), req).await.unwrap();
    let want: BTreeSet<(String, String)> = all
        .iter()
        .filter(|(_, _, _, p, t)| {
            areas
                .iter()
                .any(|(c, r, f, to)| f <= t && t <= to && p.distance_m(*c) <= *r)
        })
        .map(|(f, id, ..)| (f.clone(), id.clone()))
        .collect();
    assert!(want.len() > 1_000, "a meaningful search: {}", want.len());
    assert_eq!(ids(&rows), want);
    assert_eq!(summary.rows as usize, rows.len());
    assert_eq!(
        vrms.iter().map(|v| v.reads).sum::<u64>(),
        summary.total_rows
    );
    let per_force: u64 = summary.forces.iter().map(|f| f.rows).sum();
    assert_eq!(per_force, summary.rows);

    // Geographic, ALL: the convoy target and its companion pass the same
    // two places in order; ask for vehicles at the first camera of the
    // target's day and at its last, each within 15 minutes.
    let (target, companion) = data.convoy.clone().unwrap();
    let target_norm = target.replace(' ', "");
    let target_rows: Vec<&(String, String, String, GeoPoint, Timestamp)> = {
        let by_id: HashMap<(&str, &str), &pb::Read> = data
            .reads
            .iter()
            .flat_map(|(f, rs)| {
                rs.iter()
                    .map(move |r| ((f.as_str(), r.read_id.as_str()), r))
            })
            .collect();
        let mut v: Vec<_> = all
            .iter()
            .filter(|(f, id, ..)| by_id[&(f.as_str(), id.as_str())].vrm == target)
            .collect();
        v.sort_by_key(|x| x.4);
        v
    };
    let (first, last) = (target_rows[0], target_rows[target_rows.len() - 1]);
    let window = 15 * 60_000;
    let req = pb::GeoSearchRequest {
        access: support::access(),
        areas: vec![
            area(
                first.3,
                300.0,
                first.4.plus_millis(-window),
                first.4.plus_millis(window),
            ),
            area(
                last.3,
                300.0,
                last.4.plus_millis(-window),
                last.4.plus_millis(window),
            ),
        ],
        r#match: pb::AreaMatch::All as i32,
        limit: 0,
        allow_broad: false,
        ..Default::default()
    };
    let (rows, vrms, _) = geo(alice.clone(), req).await.unwrap();
    let found: BTreeSet<&str> = vrms.iter().map(|v| v.vrm.as_str()).collect();
    assert!(found.contains(target_norm.as_str()), "{found:?}");
    assert!(
        found.contains(companion.replace(' ', "").as_str()),
        "{found:?}"
    );
    assert!(
        vrms.iter().all(|v| v.areas == [0, 1]),
        "ALL means every area"
    );
    assert!(rows.iter().all(|r| found.contains(r.vrm.as_str())));

    // Camera search: what passed one camera in two hours.
    let cam = &first.2;
    let force = &first.0;
    let (from, to) = (
        first.4.plus_millis(-3_600_000),
        first.4.plus_millis(3_600_000),
    );
    let mut client =
        pb::search_client::SearchClient::new(alice.clone()).max_decoding_message_size(64 << 20);
    let stream = client
        .camera_search(pb::CameraSearchRequest {
            access: support::access(),
            cameras: vec![pb::CameraRef {
                force: force.clone(),
                camera_id: cam.clone(),
            }],
            from: Some(nadc_proto::to_pb_time(from)),
            to: Some(nadc_proto::to_pb_time(to)),
            limit: 0,
            allow_broad: false,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let rows = rows_of(stream).await;
    let want: BTreeSet<(String, String)> = all
        .iter()
        .filter(|(f, _, c, _, t)| f == force && c == cam && from <= *t && *t <= to)
        .map(|(f, id, ..)| (f.clone(), id.clone()))
        .collect();
    assert!(!want.is_empty());
    assert_eq!(ids(&rows), want);

    // VRM searches: fuzzy and wildcard, against classify / glob over every
    // pushed read (the generator misreads 1% of plates with confusables).
    use nadc_core::vrm_match::{ConfusableGroups, Pattern, classify};
    let vrm_of: HashMap<(String, String), nadc_core::Vrm> = data
        .reads
        .iter()
        .filter(|(f, _)| support::FORCES.contains(&f.as_str()))
        .flat_map(|(f, rs)| {
            rs.iter().map(move |r| {
                (
                    (f.to_string(), r.read_id.clone()),
                    nadc_core::Vrm::normalise(&r.vrm).unwrap(),
                )
            })
        })
        .collect();
    let query = nadc_core::Vrm::normalise(&target).unwrap();
    let groups = ConfusableGroups::default();
    for (pattern, fuzzy) in [
        (target.clone(), true),
        (format!("{}*", &target_norm[..3]), false),
        (
            format!("{}?{}", &target_norm[..4], &target_norm[5..]),
            false,
        ),
    ] {
        let mut client =
            pb::search_client::SearchClient::new(alice.clone()).max_decoding_message_size(64 << 20);
        let stream = client
            .vrm_search(pb::VrmSearchRequest {
                access: support::access(),
                pattern: pattern.clone(),
                fuzzy,
                max_edits: Some(1),
                confusable_groups: vec![],
                from: None,
                to: None,
                limit: 1_000_000,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let rows = rows_of(stream).await;
        let p = Pattern::parse(&pattern).unwrap();
        let want: BTreeSet<(String, String)> = vrm_of
            .iter()
            .filter(|(_, v)| {
                if fuzzy {
                    classify(&groups, &query, v, 1).is_some()
                } else {
                    p.matches(v.as_str())
                }
            })
            .map(|(k, _)| k.clone())
            .collect();
        assert!(!want.is_empty());
        assert_eq!(ids(&rows), want, "{pattern}");
        let first = rows[0].r#match.as_ref().unwrap();
        if fuzzy {
            assert_eq!(rows[0].vrm, target_norm, "exact ranked first");
            assert_eq!(first.label, "exact");
        } else {
            assert_eq!(first.label, "wildcard");
        }
    }

    // Vehicle details, in a window and within an area, against brute force.
    let by_id: HashMap<(String, String), &pb::Read> = data
        .reads
        .iter()
        .filter(|(f, _)| support::FORCES.contains(&f.as_str()))
        .flat_map(|(f, rs)| {
            rs.iter()
                .map(move |r| ((f.to_string(), r.read_id.clone()), r))
        })
        .collect();
    let (wfrom, wto) = (
        start.plus_millis(8 * 3_600_000),
        start.plus_millis(10 * 3_600_000),
    );
    let town = GeoPoint::new(towns[6].lat, towns[6].lon).unwrap();
    for with_area in [false, true] {
        let mut client =
            pb::search_client::SearchClient::new(alice.clone()).max_decoding_message_size(64 << 20);
        let stream = client
            .vehicle_search(pb::VehicleSearchRequest {
                access: support::access(),
                make: Some("ford".into()),
                model: None,
                colour: Some("BLUE".into()),
                areas: if with_area {
                    vec![area(town, 5_000.0, wfrom, wto)]
                } else {
                    vec![]
                },
                r#match: 0,
                from: Some(nadc_proto::to_pb_time(wfrom)),
                to: Some(nadc_proto::to_pb_time(wto)),
                limit: 1_000_000,
                allow_broad: false,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let rows = rows_of(stream).await;
        let want: BTreeSet<(String, String)> = all
            .iter()
            .filter(|(f, id, _, p, t)| {
                let r = by_id[&(f.clone(), id.clone())];
                wfrom <= *t
                    && *t <= wto
                    && r.make.as_deref() == Some("Ford")
                    && r.colour.as_deref() == Some("Blue")
                    && (!with_area || p.distance_m(town) <= 5_000.0)
            })
            .map(|(f, id, ..)| (f.clone(), id.clone()))
            .collect();
        assert!(!want.is_empty());
        assert_eq!(ids(&rows), want, "with_area {with_area}");
    }

    // Over-broad searches are refused with a clear error unless allowed.
    let broad = pb::GeoSearchRequest {
        access: support::access(),
        areas: vec![area(
            first.3,
            100_000.0,
            start.plus_millis(8 * 3_600_000),
            start.plus_millis(9 * 3_600_000),
        )],
        r#match: 0,
        limit: 10,
        allow_broad: false,
        ..Default::default()
    };
    let e = geo(alice.clone(), broad.clone()).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition);
    assert!(
        e.message().contains("radius 100000 m") && e.message().contains("allow_broad"),
        "{e}"
    );
    // Lifting the caps is for supervisors: refused for analyst alice,
    // allowed for supervisor sam.
    let lifted = pb::GeoSearchRequest {
        access: support::access(),
        allow_broad: true,
        ..broad
    };
    let e = geo(alice.clone(), lifted.clone()).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
    assert!(e.message().contains("supervisor"), "{e}");
    let (rows, _, summary) = geo(h.user("sam").await, lifted).await.unwrap();
    assert_eq!(rows.len(), 10);
    assert!(summary.truncated && summary.total_rows > 10);
    let bad = pb::GeoSearchRequest {
        access: support::access(),
        areas: vec![area(first.3, -5.0, start, start)],
        r#match: 0,
        limit: 0,
        allow_broad: false,
        ..Default::default()
    };
    let e = geo(alice, bad).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(
        e.message().contains("area 1") && e.message().contains("radius"),
        "{e}"
    );
    convoy_and_clones(&h, &data).await;
}

/// A companion by brute force: (co-occurrences, cameras).
type Expected = (u32, u32);

/// Per companion: the target reads it accompanied and the cameras.
type Sightings = HashMap<String, (BTreeSet<usize>, BTreeSet<(String, String)>)>;

/// Convoy and clone analyses over mTLS on the generated day, against a
/// brute-force answer from the generated reads and the planted ground truth.
async fn convoy_and_clones(h: &Harness, data: &SynthData) {
    let start = Timestamp::from_day_ms(day().day(), 0);
    let end = start.plus_millis(nadc_core::time::MS_PER_DAY - 1);
    let norm = |v: &str| nadc_core::Vrm::normalise(v).unwrap().to_string();
    let (target, companion) = data.convoy.clone().unwrap();
    let (target, companion) = (norm(&target), norm(&companion));
    let window_ms = 120_000;

    // Brute force: every pushed read by (force, camera), then the target's
    // reads, then who else was at the same camera within the window.
    let mut by_camera: HashMap<(String, String), Vec<(Timestamp, String)>> = HashMap::new();
    let mut target_reads = Vec::new();
    for (force, reads) in &data.reads {
        if !support::FORCES.contains(&force.as_str()) {
            continue;
        }
        for r in reads {
            let t = nadc_proto::from_pb_time(r.observed_at.as_ref().unwrap()).unwrap();
            let vrm = nadc_core::Vrm::normalise(&r.vrm).unwrap().to_string();
            let cam = (force.to_string(), r.camera_id.clone());
            if vrm == target {
                target_reads.push((cam.clone(), t));
            }
            by_camera.entry(cam).or_default().push((t, vrm));
        }
    }
    let mut want: Sightings = HashMap::new();
    for (i, (cam, t)) in target_reads.iter().enumerate() {
        for (u, vrm) in &by_camera[cam] {
            if *vrm != target && (u.millis() - t.millis()).abs() <= window_ms {
                let e = want.entry(vrm.clone()).or_default();
                e.0.insert(i);
                e.1.insert(cam.clone());
            }
        }
    }
    let mut want: Vec<(String, Expected)> = want
        .into_iter()
        .map(|(v, (reads, cams))| (v, (reads.len() as u32, cams.len() as u32)))
        .collect();
    want.sort_by(|a, b| (b.1.0, b.1.1, &a.0).cmp(&(a.1.0, a.1.1, &b.0)));

    let req = pb::ConvoyRequest {
        access: support::access(),
        vrms: vec![target.clone()],
        from: Some(nadc_proto::to_pb_time(start)),
        to: Some(nadc_proto::to_pb_time(end)),
        window_s: 120,
        min_count: 1,
        min_cameras: 1,
        limit: 100_000,
        ..Default::default()
    };
    let ans = nadc_cli_convoy(h, req).await;
    let got: Vec<(String, Expected)> = ans
        .iter()
        .map(|c| (c.vrm.clone(), (c.co_occurrences, c.cameras)))
        .collect();
    assert_eq!(got, want, "convoy differs from brute force");
    // The planted companion is first, with a co-occurrence at (almost)
    // every camera the target passed.
    assert_eq!(ans[0].vrm, companion);
    assert!(ans[0].co_occurrences as usize * 10 >= target_reads.len() * 7);
    assert!(
        ans.get(1)
            .is_none_or(|c| c.co_occurrences < ans[0].co_occurrences)
    );
    for p in &ans[0].pairs {
        let (t, c) = (
            p.target.as_ref().unwrap().provenance.as_ref().unwrap(),
            p.companion.as_ref().unwrap().provenance.as_ref().unwrap(),
        );
        assert_eq!(
            (&t.owning_force, &t.camera_id),
            (&c.owning_force, &c.camera_id)
        );
        assert!(p.gap_ms.abs() <= window_ms);
    }

    // Clones: the planted plate, and nothing else, over the whole day.
    let mut client = pb::search_client::SearchClient::new(h.user("alice").await)
        .max_decoding_message_size(64 << 20);
    let mut stream = client
        .clones(pb::ClonesRequest {
            access: support::access(),
            from: Some(nadc_proto::to_pb_time(start)),
            to: Some(nadc_proto::to_pb_time(end)),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut pairs = Vec::new();
    while let Some(c) = stream.message().await.unwrap() {
        if let Some(pb::clones_chunk::Chunk::Pair(p)) = c.chunk {
            pairs.push(p);
        }
    }
    let planted = norm(data.clone.as_deref().unwrap());
    assert!(!pairs.is_empty(), "the planted clone was not found");
    for p in &pairs {
        assert_eq!(p.vrm, planted, "normal traffic flagged as a clone");
        assert!(p.speed_kmh > 250.0 && p.distance_m >= 2_000.0);
    }
}

async fn nadc_cli_convoy(h: &Harness, req: pb::ConvoyRequest) -> Vec<pb::Companion> {
    let mut client = pb::search_client::SearchClient::new(h.user("alice").await)
        .max_decoding_message_size(64 << 20);
    let mut stream = client.convoy(req).await.unwrap().into_inner();
    let mut out = Vec::new();
    let mut summary = None;
    while let Some(c) = stream.message().await.unwrap() {
        match c.chunk.unwrap() {
            pb::convoy_chunk::Chunk::Companion(c) => out.push(c),
            pb::convoy_chunk::Chunk::Summary(s) => summary = Some(s),
        }
    }
    let s = summary.expect("a convoy search ends with a summary");
    assert_eq!(s.companions as usize, out.len());
    assert!(!s.truncated);
    out
}
