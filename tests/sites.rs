//! Camera positioning (issue 20, item 8) against a reference written here:
//! cells from h3o directly, weights counted from the planted incidents and
//! hits, distances by the oracle's geodesic distance. An uncovered hot cell is a
//! site, a covered one is not; a road through an uncovered hot cell gives
//! two crossings on the cell's edge; nationally a camera registered at
//! another node covers a cell this node alone would list.

mod support;

use std::collections::BTreeMap;

use nadc_bof::pb;
use support::{Harness, case_access, now};

const RES: h3o::Resolution = h3o::Resolution::Eight;

fn cell(p: (f64, f64)) -> u64 {
    u64::from(h3o::LatLng::new(p.0, p.1).unwrap().to_cell(RES))
}

fn centre(c: u64) -> (f64, f64) {
    let ll = h3o::LatLng::from(h3o::CellIndex::try_from(c).unwrap());
    (ll.lat(), ll.lng())
}

/// The WGS84 geodesic distance in metres, by the oracle (Vincenty), not
/// by the code under test.
fn geodesic(a: (f64, f64), b: (f64, f64)) -> f64 {
    nadc_oracle::distance_m(a.0, a.1, b.0, b.1)
}

/// Camera Ci of `Harness::cameras`.
fn camera(i: usize) -> (f64, f64) {
    (51.45 + i as f64 * 0.01, -2.58)
}

/// Three clusters: A (six incidents, far from any camera), B (five, next
/// to camera C2), C (three incidents and four hits, far from any camera).
const A: (f64, f64) = (51.40, -2.70);
const C: (f64, f64) = (51.30, -2.40);

fn b() -> (f64, f64) {
    (camera(2).0 + 0.0009, camera(2).1)
}

fn incidents() -> Vec<pb::Incident> {
    let at = |p: (f64, f64)| pb::Incident {
        lat: p.0,
        lon: p.1,
        at: Some(nadc_proto::to_pb_time(now())),
        ..Default::default()
    };
    std::iter::repeat_n(at(A), 6)
        .chain(std::iter::repeat_n(at(b()), 5))
        .chain(std::iter::repeat_n(at(C), 3))
        .collect()
}

/// A road due east through the centre of `c`'s cell.
fn road_through(name: &str, c: (f64, f64)) -> pb::RoadLink {
    let m = centre(cell(c));
    pb::RoadLink {
        name: name.into(),
        lat: vec![m.0, m.0],
        lon: vec![m.1 - 0.03, m.1 + 0.03],
    }
}

fn request() -> pb::SitesRequest {
    pb::SitesRequest {
        access: case_access("OP-SITES"),
        incidents: incidents(),
        count_hits: true,
        from: Some(nadc_proto::to_pb_time(now().plus_millis(-86_400_000))),
        to: Some(nadc_proto::to_pb_time(now())),
        hot_cells: 3,
        min_distance_m: 1_000.0,
        links: vec![road_through("A4 west", C), road_through("B road", b())],
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn uncovered_hot_cells_and_the_roads_into_them_are_sites() {
    let h = Harness::start().await;
    h.cameras("AVON", 4).await;
    h.hotlist("harry", "wanted", "H1TSXX").await;
    let reads: Vec<pb::Read> = (0..4)
        .map(|k| pb::Read {
            read_id: format!("h{k}"),
            vrm: "H1TSXX".into(),
            observed_at: Some(nadc_proto::to_pb_time(now().plus_millis(-(k + 1) * 60_000))),
            camera_id: "GPS".into(),
            lat: Some(C.0),
            lon: Some(C.1),
            ..Default::default()
        })
        .collect();
    let r = pb::ingest_client::IngestClient::new(h.bof("AVON").await)
        .push_batch(support::batch(reads))
        .await
        .unwrap()
        .into_inner();
    assert!(r.rejected.is_empty(), "{:?}", r.rejected);

    let got = pb::analysis_client::AnalysisClient::new(h.user("alice").await)
        .camera_sites(request())
        .await
        .unwrap()
        .into_inner();

    // The reference: weights per cell, the three heaviest, those with no
    // camera (C1..C4, and the mobile VAN is not a fixed camera) within
    // 1 km of their centre, heaviest first.
    let mut weight: BTreeMap<u64, u64> = BTreeMap::new();
    for i in incidents() {
        *weight.entry(cell((i.lat, i.lon))).or_default() += 1;
    }
    *weight.entry(cell(C)).or_default() += 4;
    let mut hot: Vec<(u64, u64)> = weight.into_iter().collect();
    hot.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    hot.truncate(3);
    let cams: Vec<(f64, f64)> = (1..=4).map(camera).collect();
    let nearest = |p: (f64, f64)| {
        cams.iter()
            .map(|c| geodesic(p, *c))
            .fold(f64::MAX, f64::min)
    };
    let want: Vec<u64> = hot
        .iter()
        .filter(|(c, _)| nearest(centre(*c)) > 1_000.0)
        .map(|(c, _)| *c)
        .collect();
    assert_eq!(want, [cell(C), cell(A)]);
    let cells: Vec<u64> = got
        .sites
        .iter()
        .filter(|s| s.kind == pb::SiteKind::Cell as i32)
        .map(|s| s.cell)
        .collect();
    assert_eq!(cells, want);
    let top = &got.sites[0];
    assert_eq!((top.incidents, top.hits), (3, 4));
    assert!((top.nearest_m - nearest(centre(cell(C)))).abs() < 1.0);
    assert_eq!(got.hits_counted, 4);
    let hot_got: Vec<(u64, u64)> = got
        .hot
        .iter()
        .map(|c| (c.cell, c.incidents + c.hits))
        .collect();
    assert_eq!(hot_got, hot);

    // The road through C's cell crosses its edge twice, uncovered; the
    // road through B's (covered) cell gives nothing.
    let crossings: Vec<&pb::CameraSite> = got
        .sites
        .iter()
        .filter(|s| s.kind == pb::SiteKind::RoadCrossing as i32)
        .collect();
    assert_eq!(crossings.len(), 2, "{crossings:?}");
    for x in crossings {
        assert_eq!((x.link_index, x.link.as_str()), (0, "A4 west"));
        assert_eq!(x.cell, cell(C));
        let west = cell((x.lat, x.lon - 0.00003)) == cell(C);
        let east = cell((x.lat, x.lon + 0.00003)) == cell(C);
        assert_ne!(west, east, "not on the edge: {x:?}");
        assert!(nearest((x.lat, x.lon)) > 1_000.0);
    }

    // The hits the weights rest on are registered under the case.
    let schedule = pb::disclosure_client::DisclosureClient::new(h.user("dora").await)
        .schedule(pb::ScheduleRequest {
            case_ref: "OP-SITES".into(),
            case_force: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let registered: usize = schedule.agencies.iter().map(|a| a.reads.len()).sum();
    assert_eq!(registered, 4);

    // Bad requests are refused, naming what is wrong.
    for (q, words) in [
        (
            pb::SitesRequest {
                incidents: vec![],
                count_hits: false,
                ..request()
            },
            "nothing to weigh",
        ),
        (
            pb::SitesRequest {
                links: vec![pb::RoadLink {
                    name: "x".into(),
                    lat: vec![51.0],
                    lon: vec![-2.0],
                }],
                ..request()
            },
            "links[0]",
        ),
        (
            pb::SitesRequest {
                links: vec![pb::RoadLink {
                    name: "round the world".into(),
                    lat: vec![51.5, -33.9, 51.5],
                    lon: vec![-0.1, 151.2, -0.1],
                }],
                ..request()
            },
            "km in all",
        ),
        (
            pb::SitesRequest {
                resolution: 11,
                ..request()
            },
            "resolution 11",
        ),
        (
            pb::SitesRequest {
                min_distance_m: 50_000.0,
                ..request()
            },
            "min_distance_m",
        ),
    ] {
        let e = pb::analysis_client::AnalysisClient::new(h.user("alice").await)
            .camera_sites(q)
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{words}");
        assert!(e.message().contains(words), "{words}: {}", e.message());
    }
    let e = pb::analysis_client::AnalysisClient::new(h.user("nora").await)
        .camera_sites(request())
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_camera_at_another_node_covers_a_cell_nationally() {
    use support::cluster::Cluster;
    let c = Cluster::start().await;
    // KENT's node has a camera next to cluster A.
    pb::admin_client::AdminClient::new(c.bof(1, "KENT").await)
        .import_cameras(pb::ImportCamerasRequest {
            cameras: vec![pb::Camera {
                camera_id: "K-A".into(),
                lat: A.0 + 0.001,
                lon: A.1,
                kind: pb::CameraKind::Fixed as i32,
                ..Default::default()
            }],
        })
        .await
        .unwrap();
    let q = pb::SitesRequest {
        count_hits: false,
        links: vec![],
        ..request()
    };
    let ask = async |scope: pb::Scope| {
        pb::analysis_client::AnalysisClient::new(c.user(0, "alice").await)
            .camera_sites(pb::SitesRequest {
                scope: scope as i32,
                ..q.clone()
            })
            .await
            .unwrap()
            .into_inner()
    };
    let alone = ask(pb::Scope::Local).await;
    let cells: Vec<u64> = alone.sites.iter().map(|s| s.cell).collect();
    assert_eq!(cells, [cell(A), cell(b()), cell(C)]);
    let national = ask(pb::Scope::Unspecified).await;
    let cells: Vec<u64> = national.sites.iter().map(|s| s.cell).collect();
    assert_eq!(cells, [cell(b()), cell(C)]);
    assert_eq!(national.cameras_considered, 1);
    assert_eq!(national.nodes.len(), 3);
    assert!(!national.partial);
}
