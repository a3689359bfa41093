//! What a node says of where its reads lie, and to whom. A mobile unit's
//! read lies wherever it was taken: the node tells a configured peer the
//! coarse cell it lies in (so that a national search near it asks the
//! node), and tells nobody else (it says where the unit worked): another
//! node's certificate that is not its peer, and its users, are told only
//! the cells of the cameras they may know of.

mod support;

use nadc_bof::pb;
use support::cluster::Cluster;
use tonic::transport::Channel;

/// Where the fixed camera is, and where the mobile unit read, 90 km east.
const CAMERA: (f64, f64) = (51.4545, -2.5879);
const ROAD: (f64, f64) = (51.4, -1.3);

fn coarse((lat, lon): (f64, f64)) -> u64 {
    let ll = h3o::LatLng::new(lat, lon).unwrap();
    u64::from(ll.to_cell(h3o::Resolution::Five))
}

async fn told(ch: Channel) -> (Vec<u64>, bool) {
    let info = pb::admin_client::AdminClient::new(ch)
        .node_info(pb::NodeInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    (info.coarse_cells, info.cells_of_reads)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_a_configured_peer_is_told_where_the_reads_lie() {
    let mut c = Cluster::start().await;
    // node-3 (MET's) has a fixed camera, and a read of a mobile unit on
    // the road, far from it.
    let bof = c.bof(2, "MET").await;
    let camera = pb::Camera {
        camera_id: "FIXED-1".into(),
        lat: CAMERA.0,
        lon: CAMERA.1,
        kind: pb::CameraKind::Fixed as i32,
        ..Default::default()
    };
    let imported = pb::admin_client::AdminClient::new(bof.clone())
        .import_cameras(pb::ImportCamerasRequest {
            cameras: vec![camera],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(imported.stored, 1, "{:?}", imported.rejected);
    let read = pb::Read {
        read_id: "van-1".into(),
        vrm: "AB12CDE".into(),
        observed_at: Some(nadc_proto::to_pb_time(support::now())),
        camera_id: "VAN-1".into(),
        lat: Some(ROAD.0),
        lon: Some(ROAD.1),
        ..Default::default()
    };
    let ack = pb::ingest_client::IngestClient::new(bof)
        .push_batch(support::batch(vec![read]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ack.accepted, 1, "{:?}", ack.rejected);
    let (camera, road) = (coarse(CAMERA), coarse(ROAD));
    assert_ne!(camera, road);

    // node-1 is node-3's configured peer: it is told where the read lies.
    let as_node = |name: &str| (c.layout.node_cert(name), c.layout.node_key(name));
    let (cert, key) = as_node("node-1");
    let (cells, of_reads) = told(c.connect(2, cert, key).await).await;
    assert!(of_reads);
    assert_eq!(cells, vec![road], "the reads' cells, not the camera's");

    // node-2 holds a node certificate of the same CA, but node-3 does not
    // have it as a peer: the cameras' cells only, not said to be the
    // reads'.
    let (cert, key) = as_node("node-2");
    let (cells, of_reads) = told(c.connect(2, cert, key).await).await;
    assert!(!of_reads);
    assert_eq!(cells, vec![camera]);

    // Nor is a user (the camera is fixed: every force may know of it).
    let (cells, of_reads) = told(c.user(2, "kate").await).await;
    assert!(!of_reads);
    assert_eq!(cells, vec![camera]);

    for node in c.nodes.iter_mut().filter_map(Option::take) {
        node.shutdown().await.unwrap();
    }

    // What node-1 was told is in node-3's audit log, with the cells and
    // the force whose reads they place; telling the cameras' cells
    // disclosed no read, and is not.
    let store =
        nadc_store::RocksStore::open(&c.configs[2].data_dir, nadc_store::StoreOptions::default())
            .unwrap();
    let mut told_to = Vec::new();
    nadc_store::Store::audit(&store, 1, &mut |e| {
        if e.entry.action == "federation.holdings" {
            told_to.push(e.entry);
        }
        std::ops::ControlFlow::Continue(())
    })
    .unwrap();
    assert!(
        !told_to.is_empty(),
        "telling a peer where the reads lie is audited"
    );
    for e in &told_to {
        assert_eq!(e.user, "node:node-1", "only the peer was told");
        assert!(e.query.contains(&road.to_string()), "{}", e.query);
        assert_eq!(
            e.returned,
            vec![(nadc_core::ForceId::new("MET").unwrap(), 1)]
        );
    }
}
