//! National analyses over three nodes: a hot-spot count equals a
//! brute-force count of every node's reads (cells from h3o, hours from
//! chrono), cells shared by nodes adding up; camera health lists every
//! node's cameras; an alibi check weighs every node's reads and cameras as
//! the brute-force reference does. Each node's outcome is reported, and a
//! dead node makes the answer partial, naming it.

mod support;

use std::collections::BTreeMap;

use chrono::{Datelike, TimeZone, Timelike};
use nadc_bof::pb;
use support::cluster::{Cluster, NODES};
use support::now;

/// The entries of `action` at node-1, as KENT's auditor reads them: who,
/// and the rows each disclosed per owning force.
async fn national_entries(c: &Cluster, action: &str) -> Vec<(String, BTreeMap<String, u64>)> {
    let mut s = pb::audit_client::AuditClient::new(c.user(0, "kate").await)
        .query(pb::AuditQuery {
            action: action.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut out = Vec::new();
    while let Some(e) = s.message().await.unwrap() {
        if e.action == action {
            let returned = e
                .returned
                .iter()
                .map(|f| (f.force.clone(), f.rows))
                .collect();
            out.push((e.user, returned));
        }
    }
    out
}

/// Places the reads are taken at: Bristol, Maidstone, London, and one cell
/// every node has reads in (Swindon).
const PLACES: [(f64, f64); 4] = [
    (51.4545, -2.5879),
    (51.2704, 0.5227),
    (51.5072, -0.1276),
    (51.5558, -1.7797),
];

/// Node `i`'s reads of the subject: some at its own place, some at the
/// shared one, at hours that differ by node.
fn reads_of(i: usize) -> Vec<pb::Read> {
    let (_, f) = NODES[i];
    (0..(4 + 3 * i))
        .map(|k| {
            let (lat, lon) = if k % 2 == 0 { PLACES[i] } else { PLACES[3] };
            pb::Read {
                read_id: format!("{f}-{k}"),
                vrm: "NA71ONL".into(),
                observed_at: Some(nadc_proto::to_pb_time(
                    now().plus_millis(-((k as i64) * 317 + 11 * i as i64 + 5) * 60_000),
                )),
                camera_id: format!("GPS-{k}"),
                lat: Some(lat),
                lon: Some(lon),
                ..Default::default()
            }
        })
        .collect()
}

/// Counts per cell and by hour over `reads`, independently of nadc.
fn reference(
    reads: &[(String, pb::Read)],
) -> (BTreeMap<u64, u64>, Vec<u64>, BTreeMap<String, u64>) {
    let mut cells = BTreeMap::new();
    let mut hours = vec![0u64; 168];
    let mut forces = BTreeMap::new();
    for (force, r) in reads {
        let ll = h3o::LatLng::new(r.lat.unwrap(), r.lon.unwrap()).unwrap();
        *cells
            .entry(u64::from(ll.to_cell(h3o::Resolution::Seven)))
            .or_default() += 1;
        let t = r.observed_at.as_ref().unwrap();
        let dt = chrono::Utc.timestamp_opt(t.seconds, 0).unwrap();
        hours[dt.weekday().num_days_from_monday() as usize * 24 + dt.hour() as usize] += 1;
        *forces.entry(force.clone()).or_default() += 1;
    }
    (cells, hours, forces)
}

fn request() -> pb::HotSpotsRequest {
    pb::HotSpotsRequest {
        access: Some(pb::AccessContext {
            purpose: "serious-crime".into(),
            case_ref: "OP-NATIONAL".into(),
            ..Default::default()
        }),
        vrms: vec!["NA71ONL".into()],
        from: Some(nadc_proto::to_pb_time(now().plus_millis(-7 * 86_400_000))),
        to: Some(nadc_proto::to_pb_time(now())),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_national_hot_spot_count_equals_the_count_over_every_nodes_reads() {
    let mut c = Cluster::start().await;
    let mut all = Vec::new();
    for (i, (_, f)) in NODES.iter().enumerate() {
        let reads = reads_of(i);
        let mut bof = pb::ingest_client::IngestClient::new(c.bof(i, f).await);
        let r = bof
            .push_batch(pb::ReadBatch {
                batch_seq: 1,
                force: String::new(),
                reads: reads.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(r.rejected.is_empty(), "{:?}", r.rejected);
        all.extend(reads.into_iter().map(|r| (f.to_string(), r)));
    }
    let (cells, hours, forces) = reference(&all);
    let ask = async |c: &Cluster| {
        pb::analysis_client::AnalysisClient::new(c.user(0, "alice").await)
            .hot_spots(request())
            .await
            .unwrap()
            .into_inner()
    };
    let got = ask(&c).await;
    assert_eq!(got.total, all.len() as u64);
    assert_eq!(got.by_hour_of_week, hours);
    let got_forces: BTreeMap<String, u64> = got
        .forces
        .iter()
        .map(|f| (f.force.clone(), f.rows))
        .collect();
    assert_eq!(got_forces, forces);
    let got_cells: BTreeMap<u64, u64> = got.cells.iter().map(|c| (c.cell, c.count)).collect();
    assert_eq!(got_cells, cells);
    // The shared cell is the busiest, and holds every force's reads.
    let top = &got.cells[0];
    assert_eq!(top.forces.len(), 3, "{:?}", top.forces);
    assert!(!got.partial);
    let nodes: Vec<(&str, bool)> = got.nodes.iter().map(|n| (n.node.as_str(), n.ok)).collect();
    assert_eq!(
        nodes,
        [("node-1", true), ("node-2", true), ("node-3", true)]
    );
    // node-1 audited what the peers contributed before passing it on:
    // KENT's reads (node-2) and MET's (node-3), so KENT's auditor sees it.
    assert_eq!(
        national_entries(&c, "search.hotspots.national").await,
        [(
            "alice".to_string(),
            BTreeMap::from([
                ("KENT".to_string(), reads_of(1).len() as u64),
                ("MET".to_string(), reads_of(2).len() as u64),
            ])
        )]
    );
    // This node alone counts only its own reads.
    let mut local = request();
    local.scope = pb::Scope::Local as i32;
    let mine = pb::analysis_client::AnalysisClient::new(c.user(0, "alice").await)
        .hot_spots(local)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(mine.total, reads_of(0).len() as u64);

    // node-3 down: the answer is partial, names it, and counts the rest.
    c.nodes[2].take().unwrap().shutdown().await.unwrap();
    let partial = ask(&c).await;
    assert!(partial.partial);
    let down = partial.nodes.iter().find(|n| n.node == "node-3").unwrap();
    assert!(!down.ok && !down.error.is_empty(), "{down:?}");
    assert_eq!(
        partial.total,
        (reads_of(0).len() + reads_of(1).len()) as u64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn national_camera_health_lists_every_nodes_cameras_and_a_dead_node_makes_it_partial() {
    let mut c = Cluster::start().await;
    for (i, (_, f)) in NODES.iter().enumerate() {
        let (lat, lon) = PLACES[i];
        pb::admin_client::AdminClient::new(c.bof(i, f).await)
            .import_cameras(pb::ImportCamerasRequest {
                cameras: vec![pb::Camera {
                    camera_id: format!("{f}-CAM"),
                    lat,
                    lon,
                    kind: pb::CameraKind::Fixed as i32,
                    ..Default::default()
                }],
            })
            .await
            .unwrap();
    }
    // KENT's camera read a vehicle every hour for the week before the last
    // day, and nothing since: silent. The others never read anything.
    let reads: Vec<pb::Read> = (25..=8 * 24i64)
        .map(|h| pb::Read {
            read_id: format!("k{h}"),
            vrm: "KE1NTR".into(),
            observed_at: Some(nadc_proto::to_pb_time(now().plus_millis(-h * 3_600_000))),
            camera_id: "KENT-CAM".into(),
            ..Default::default()
        })
        .collect();
    let r = pb::ingest_client::IngestClient::new(c.bof(1, "KENT").await)
        .push_batch(pb::ReadBatch {
            batch_seq: 1,
            force: String::new(),
            reads,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(r.rejected.is_empty(), "{:?}", r.rejected);
    let ask = async |c: &Cluster| {
        pb::analysis_client::AnalysisClient::new(c.user(0, "alice").await)
            .camera_health(pb::CameraHealthRequest {
                access: request().access,
                from: Some(nadc_proto::to_pb_time(now().plus_millis(-24 * 3_600_000))),
                to: Some(nadc_proto::to_pb_time(now())),
                baseline_days: 7,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
    };
    let got = ask(&c).await;
    let rows: Vec<(&str, i32)> = got
        .cameras
        .iter()
        .map(|r| (r.camera_id.as_str(), r.status))
        .collect();
    assert_eq!(
        rows,
        [
            ("KENT-CAM", pb::CameraStatus::Silent as i32),
            ("AVON-CAM", pb::CameraStatus::NoData as i32),
            ("MET-CAM", pb::CameraStatus::NoData as i32),
        ]
    );
    assert!(!got.partial);
    // The peers' camera rows were audited at node-1 before they left it.
    assert_eq!(
        national_entries(&c, "search.camera_health.national").await,
        [(
            "alice".to_string(),
            BTreeMap::from([("KENT".to_string(), 1), ("MET".to_string(), 1)])
        )]
    );
    // A national search of the place names KENT's camera as silent: a
    // missing read there is not absence.
    let mut s = pb::search_client::SearchClient::new(c.user(0, "alice").await)
        .geo_search(pb::GeoSearchRequest {
            access: request().access,
            areas: vec![pb::Area {
                lat: PLACES[1].0,
                lon: PLACES[1].1,
                radius_m: 1_000.0,
                from: Some(nadc_proto::to_pb_time(now().plus_millis(-6 * 3_600_000))),
                to: Some(nadc_proto::to_pb_time(now())),
                ..Default::default()
            }],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut silent = Vec::new();
    while let Some(chunk) = s.message().await.unwrap() {
        if let Some(pb::search_chunk::Chunk::Summary(x)) = chunk.chunk {
            silent = x.silent_cameras;
        }
    }
    let silent: Vec<(&str, &str)> = silent
        .iter()
        .map(|k| (k.force.as_str(), k.camera_id.as_str()))
        .collect();
    assert_eq!(silent, [("KENT", "KENT-CAM")]);
    c.nodes[2].take().unwrap().shutdown().await.unwrap();
    let partial = ask(&c).await;
    assert!(partial.partial);
    assert_eq!(partial.cameras.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_national_alibi_check_weighs_every_nodes_reads_and_cameras() {
    use support::alibi_ref::{RefClaim, RefRead, answered_seconds, judge};
    let mut c = Cluster::start().await;
    let mut all = Vec::new();
    for (i, (_, f)) in NODES.iter().enumerate() {
        let (lat, lon) = PLACES[i];
        pb::admin_client::AdminClient::new(c.bof(i, f).await)
            .import_cameras(pb::ImportCamerasRequest {
                cameras: vec![pb::Camera {
                    camera_id: format!("{f}-CAM"),
                    lat,
                    lon,
                    kind: pb::CameraKind::Fixed as i32,
                    ..Default::default()
                }],
            })
            .await
            .unwrap();
        let reads = reads_of(i);
        let r = pb::ingest_client::IngestClient::new(c.bof(i, f).await)
            .push_batch(pb::ReadBatch {
                batch_seq: 1,
                force: String::new(),
                reads: reads.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(r.rejected.is_empty(), "{:?}", r.rejected);
        all.extend(reads.into_iter().map(|r| {
            RefRead {
                id: r.read_id.clone(),
                ms: nadc_proto::from_pb_time(r.observed_at.as_ref().unwrap())
                    .unwrap()
                    .millis(),
                lat: r.lat.unwrap(),
                lon: r.lon.unwrap(),
            }
        }));
    }
    let n = now().millis();
    let min = 60_000;
    let kent_there = n - (317 + 11 + 5) * min;
    // In time order, as a journey's places are: Maidstone, then Swindon
    // when KENT's reader there read it (node-2's read), then London.
    let claims = [
        RefClaim {
            lat: PLACES[1].0,
            lon: PLACES[1].1,
            radius_m: 500.0,
            from_ms: n - 20 * 60 * min,
            to_ms: n - 19 * 60 * min,
        },
        RefClaim {
            lat: PLACES[3].0,
            lon: PLACES[3].1,
            radius_m: 500.0,
            from_ms: kent_there - 5 * min,
            to_ms: kent_there + 5 * min,
        },
        RefClaim {
            lat: PLACES[2].0,
            lon: PLACES[2].1,
            radius_m: 2_000.0,
            from_ms: n - 100 * min,
            to_ms: n - 90 * min,
        },
    ];
    let request = |scope: pb::Scope| pb::AlibiRequest {
        access: request().access,
        vrm: "NA71ONL".into(),
        claims: claims
            .iter()
            .map(|c| pb::PlaceClaim {
                lat: c.lat,
                lon: c.lon,
                radius_m: c.radius_m,
                from: Some(nadc_proto::to_pb_time(nadc_core::Timestamp::from_millis(
                    c.from_ms,
                ))),
                to: Some(nadc_proto::to_pb_time(nadc_core::Timestamp::from_millis(
                    c.to_ms,
                ))),
                label: String::new(),
            })
            .collect(),
        max_speed_kmh: 120.0,
        around_hours: 48,
        baseline_days: 7,
        scope: scope as i32,
        ..Default::default()
    };
    let ask = async |c: &Cluster, scope| {
        pb::analysis_client::AnalysisClient::new(c.user(0, "alice").await)
            .alibi(request(scope))
            .await
            .unwrap()
            .into_inner()
    };
    let got = ask(&c, pb::Scope::Unspecified).await;
    let ids = |r: &pb::AlibiResponse, idx: &[u32]| -> Vec<String> {
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
    };
    // Every node's reads, once each, in time order.
    let mut want: Vec<&RefRead> = all.iter().collect();
    want.sort_by_key(|r| r.ms);
    let every: Vec<u32> = (0..got.reads.len() as u32).collect();
    assert_eq!(
        ids(&got, &every),
        want.iter().map(|r| r.id.clone()).collect::<Vec<_>>()
    );
    for (claim, res) in claims.iter().zip(&got.claims) {
        let reference = judge(claim, &all, 120.0);
        assert_eq!(answered_seconds(claim, res), reference.possible_seconds);
        assert_eq!(
            ids(&got, &res.at_place)
                .into_iter()
                .collect::<std::collections::BTreeSet<_>>(),
            reference.at_place
        );
        assert_eq!(
            res.before.map(|i| ids(&got, &[i]).remove(0)),
            reference.before
        );
        assert_eq!(
            res.after.map(|i| ids(&got, &[i]).remove(0)),
            reference.after
        );
    }
    assert_eq!(got.claims[1].verdict, pb::AlibiVerdict::SeenThere as i32);
    // Each place's camera is registered with its own force's node.
    let cams: Vec<String> = got.claims[0]
        .cameras
        .iter()
        .map(|k| k.camera_id.clone())
        .collect();
    assert_eq!(cams, ["KENT-CAM"]);
    assert!(!got.partial && got.nodes.len() == 3, "{:?}", got.nodes);
    // node-1 audited the peers' reads before passing them on.
    assert_eq!(
        national_entries(&c, "search.alibi.national").await,
        [(
            "alice".to_string(),
            BTreeMap::from([
                ("KENT".to_string(), reads_of(1).len() as u64),
                ("MET".to_string(), reads_of(2).len() as u64),
            ])
        )]
    );
    // node-1 alone has not seen KENT's read at Swindon.
    let local = ask(&c, pb::Scope::Local).await;
    assert_eq!(local.reads.len(), reads_of(0).len());
    assert_ne!(local.claims[1].verdict, pb::AlibiVerdict::SeenThere as i32);
    // node-2 down: partial, named, and KENT's read is missing from it.
    c.nodes[1].take().unwrap().shutdown().await.unwrap();
    let partial = ask(&c, pb::Scope::Unspecified).await;
    assert!(partial.partial);
    assert!(partial.nodes.iter().any(|n| n.node == "node-2" && !n.ok));
    assert_eq!(partial.reads.len(), reads_of(0).len() + reads_of(2).len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_national_profile_puts_every_nodes_reads_of_a_place_together() {
    let c = Cluster::start().await;
    let mut all = Vec::new();
    for (i, (_, f)) in NODES.iter().enumerate() {
        let reads = reads_of(i);
        let r = pb::ingest_client::IngestClient::new(c.bof(i, f).await)
            .push_batch(pb::ReadBatch {
                batch_seq: 1,
                force: String::new(),
                reads: reads.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(r.rejected.is_empty(), "{:?}", r.rejected);
        all.extend(reads);
    }
    let p = pb::analysis_client::AnalysisClient::new(c.user(0, "alice").await)
        .subject_profile(pb::SubjectProfileRequest {
            access: request().access,
            vrm: "NA71ONL".into(),
            from: Some(nadc_proto::to_pb_time(now().plus_millis(-7 * 86_400_000))),
            to: Some(nadc_proto::to_pb_time(now())),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(p.reads.len(), all.len());
    assert!(!p.partial && p.nodes.len() == 3, "{:?}", p.nodes);
    // The reference: each place's reads and days (UTC days: November).
    let mut want: BTreeMap<u64, (u32, std::collections::BTreeSet<i64>)> = BTreeMap::new();
    for r in &all {
        let cell = u64::from(
            h3o::LatLng::new(r.lat.unwrap(), r.lon.unwrap())
                .unwrap()
                .to_cell(h3o::Resolution::Eight),
        );
        let e = want.entry(cell).or_default();
        e.0 += 1;
        e.1.insert(r.observed_at.as_ref().unwrap().seconds.div_euclid(86_400));
    }
    let got: BTreeMap<u64, (u32, u32)> = p
        .locations
        .iter()
        .map(|l| (l.cell, (l.reads, l.days)))
        .collect();
    let want: BTreeMap<u64, (u32, u32)> = want
        .into_iter()
        .map(|(c, (n, d))| (c, (n, d.len() as u32)))
        .collect();
    assert_eq!(got, want);
    // Swindon, where every node's reads are, is the busiest place, and
    // lists the cameras of all three forces that read the vehicle there.
    let swindon = &p.locations[0];
    let forces: std::collections::BTreeSet<&str> = swindon
        .cameras_near
        .iter()
        .map(|k| k.force.as_str())
        .collect();
    assert_eq!(forces.len(), 3, "{:?}", swindon.cameras_near);
    assert_eq!(
        national_entries(&c, "search.profile.national").await,
        [(
            "alice".to_string(),
            BTreeMap::from([
                ("KENT".to_string(), reads_of(1).len() as u64),
                ("MET".to_string(), reads_of(2).len() as u64),
            ])
        )]
    );
}
