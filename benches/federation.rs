//! Fan-out overhead: three nodes on 127.0.0.1 (real RocksDB, real mTLS), each
//! holding one force's generated reads; the same VRM timelines asked of
//! each node alone (scope local) and nationally at node-1; then the time to
//! an answer with one node dead, and with one node silent (the deadline).
//!
//!   cargo bench --bench federation [-- VEHICLES SEARCHES]
//!
//! Defaults: 20,000 vehicles (~330k reads over four forces; the three
//! nodes hold AVON, KENT and MET), 300 searches per kind.

use std::sync::Arc;
use std::time::Instant;

use nadc_bof::{ClientTls, pb};
use nadc_core::time::{Clock, ManualClock};
use nadc_core::{ForceId, Role, Timestamp};
use nadc_node::federation::PeerConfig;
use nadc_node::{NodeConfig, RunningNode, TlsFiles};
use nadc_pki::{InitSpec, PkiLayout};
use nadc_store::{RocksStore, StoreOptions};
use rand::SeedableRng;
use rand::seq::IndexedRandom;
use tokio::net::TcpListener;
use tonic::transport::Channel;

const NODES: [(&str, &str); 3] = [("node-1", "AVON"), ("node-2", "KENT"), ("node-3", "MET")];

fn force(f: &str) -> ForceId {
    ForceId::new(f).expect("force code")
}

async fn start(
    dir: &std::path::Path,
    layout: &PkiLayout,
    now: Timestamp,
    extra_peer: Option<PeerConfig>,
) -> (Vec<Option<RunningNode>>, Vec<String>) {
    let mut listeners = Vec::new();
    for _ in NODES {
        listeners.push(TcpListener::bind("127.0.0.1:0").await.expect("bind"));
    }
    let urls: Vec<String> = listeners
        .iter()
        .map(|l| format!("https://{}", l.local_addr().expect("addr")))
        .collect();
    let mut nodes = Vec::new();
    for (i, listener) in listeners.into_iter().enumerate() {
        let name = NODES[i].0;
        let mut cfg = NodeConfig::new(
            dir.join(name),
            TlsFiles {
                ca: layout.ca_cert(),
                cert: layout.node_cert(name),
                key: layout.node_key(name),
                crl: Vec::new(),
            },
        );
        cfg.federation_deadline_ms = 1000;
        cfg.alerts.clone_check = false;
        cfg.peers = if i == 0 {
            [1, 2]
                .into_iter()
                .map(|j| PeerConfig::new(NODES[j].0, &urls[j]))
                .chain(extra_peer.clone())
                .collect()
        } else {
            vec![PeerConfig::new("node-1", &urls[0])]
        };
        let data = cfg.data_dir.clone();
        let store =
            tokio::task::spawn_blocking(move || RocksStore::open(&data, StoreOptions::default()))
                .await
                .expect("join")
                .expect("store");
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(now));
        nodes.push(Some(
            nadc_node::start_with_listener(&cfg, Arc::new(store), listener, clock)
                .await
                .expect("node"),
        ));
    }
    (nodes, urls)
}

async fn channel(
    url: &str,
    layout: &PkiLayout,
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
) -> Channel {
    nadc_bof::connect(
        url,
        &ClientTls {
            ca: layout.ca_cert(),
            cert,
            key,
        },
    )
    .await
    .expect("connect")
}

async fn timeline(ch: Channel, vrm: &str, scope: pb::Scope) -> (usize, pb::SearchSummary) {
    let mut c = pb::search_client::SearchClient::new(ch).max_decoding_message_size(64 << 20);
    let mut s = c
        .vrm_timeline(pb::VrmTimelineRequest {
            vrm: vrm.into(),
            scope: scope as i32,
            access: Some(pb::AccessContext {
                purpose: "serious-crime".into(),
                case_ref: "BENCH".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect("search")
        .into_inner();
    let (mut rows, mut summary) = (0, None);
    while let Some(c) = s.message().await.expect("chunk") {
        match c.chunk {
            Some(pb::search_chunk::Chunk::Rows(b)) => rows += b.rows.len(),
            Some(pb::search_chunk::Chunk::Summary(x)) => summary = Some(x),
            _ => {}
        }
    }
    (rows, summary.expect("summary"))
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let vehicles: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let searches: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(300);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run(vehicles, searches));
}

async fn run(vehicles: usize, searches: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = InitSpec {
        node_names: NODES.iter().map(|(n, _)| n.to_string()).collect(),
        forces: NODES.iter().map(|(_, f)| force(f)).collect(),
        users: vec![("bench".into(), vec![Role::Analyst], force("AVON"))],
        ..Default::default()
    };
    let layout = nadc_pki::init(&dir.path().join("pki"), &spec, false).expect("pki");
    let now = Timestamp::from_millis(chrono::Utc::now().timestamp_millis());
    let day = Timestamp::from_day_ms(now.day() - 1, 0);
    let data = nadc_cli::synth::generate(
        &nadc_cli::synth::SynthConfig::new(5, vehicles, day).in_forces(&nadc_cli::synth::SOUTH),
    );
    let (mut nodes, urls) = start(dir.path(), &layout, now, None).await;
    let mut plates = Vec::new();
    for (i, (_, f)) in NODES.iter().enumerate() {
        let f = force(f);
        let bof = channel(&urls[i], &layout, layout.bof_cert(&f), layout.bof_key(&f)).await;
        let mut admin = pb::admin_client::AdminClient::new(bof.clone());
        admin
            .import_cameras(pb::ImportCamerasRequest {
                cameras: data.cameras[&f].clone(),
            })
            .await
            .expect("cameras");
        let reads = data.reads[&f].clone();
        plates.extend(reads.iter().map(|r| r.vrm.clone()));
        let rows: nadc_bof::format::Rows<pb::Read> = Box::new(reads.into_iter().map(Ok));
        nadc_bof::push::push_rows(bof, rows, Default::default(), |_| {})
            .await
            .expect("push");
    }
    let user = |i: usize| {
        channel(
            &urls[i],
            &layout,
            layout.user_cert("bench"),
            layout.user_key("bench"),
        )
    };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
    let sample: Vec<String> = (0..searches)
        .map(|_| plates.choose(&mut rng).expect("plates").clone())
        .collect();
    let report = std::cell::RefCell::new(Vec::new());
    let timed = |label: String, mut t: Vec<f64>, rows: usize| {
        let n = t.len();
        let (p50, p99) = (pct(&mut t, 0.5), pct(&mut t, 0.99));
        report.borrow_mut().push(format!(
            "{label}: {n} searches, p50 {p50:.2} ms, p99 {p99:.2} ms, mean rows {:.1}",
            rows as f64 / n as f64
        ));
        (p50, p99)
    };
    let mut single = Vec::new();
    for (i, (name, _)) in NODES.iter().enumerate() {
        let ch = user(i).await;
        let (mut t, mut rows) = (Vec::new(), 0);
        for (k, v) in sample.iter().enumerate() {
            let started = Instant::now();
            let (r, _) = timeline(ch.clone(), v, pb::Scope::Local).await;
            if k >= searches / 10 {
                t.push(started.elapsed().as_secs_f64() * 1000.0);
                rows += r;
            }
        }
        single.push(timed(format!("{name} alone (scope local)"), t, rows));
    }
    let ch = user(0).await;
    let (mut t, mut rows) = (Vec::new(), 0);
    for (k, v) in sample.iter().enumerate() {
        let started = Instant::now();
        let (r, s) = timeline(ch.clone(), v, pb::Scope::Unspecified).await;
        assert!(!s.partial, "a national search was partial");
        if k >= searches / 10 {
            t.push(started.elapsed().as_secs_f64() * 1000.0);
            rows += r;
        }
    }
    let national = timed("national at node-1 over 3 nodes".into(), t, rows);
    let slowest = single
        .iter()
        .fold((0.0f64, 0.0f64), |a, b| (a.0.max(b.0), a.1.max(b.1)));
    report.borrow_mut().push(format!(
        "fan-out overhead: national / slowest single node: p50 {:.2}x, p99 {:.2}x",
        national.0 / slowest.0,
        national.1 / slowest.1
    ));
    // One node dead: the connection is refused at once.
    if let Some(n) = nodes[2].take() {
        n.shutdown().await.expect("shutdown");
    }
    let (mut t, mut rows) = (Vec::new(), 0);
    for v in sample.iter().take(50) {
        let started = Instant::now();
        let (r, s) = timeline(ch.clone(), v, pb::Scope::Unspecified).await;
        assert!(s.partial);
        t.push(started.elapsed().as_secs_f64() * 1000.0);
        rows += r;
    }
    timed("national with node-3 dead (partial)".into(), t, rows);
    for n in nodes.into_iter().flatten() {
        n.shutdown().await.expect("shutdown");
    }
    // A silent peer: the answer waits for the 1 s deadline.
    let silent = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let silent_url = format!("https://{}", silent.local_addr().expect("addr"));
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let dir2 = tempfile::tempdir().expect("tempdir");
    let (nodes, urls) = start(
        dir2.path(),
        &layout,
        now,
        Some(PeerConfig::new("node-4", &silent_url)),
    )
    .await;
    let ch = channel(
        &urls[0],
        &layout,
        layout.user_cert("bench"),
        layout.user_key("bench"),
    )
    .await;
    let mut t = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let (_, s) = timeline(ch.clone(), "AB12CDE", pb::Scope::Unspecified).await;
        assert!(s.partial);
        t.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    timed(
        "national with a silent peer (1000 ms deadline)".into(),
        t,
        0,
    );
    for n in nodes.into_iter().flatten() {
        n.shutdown().await.expect("shutdown");
    }
    println!(
        "\nFederation fan-out ({} reads generated, {} cores, {} build), {}",
        data.total_reads(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        &now.to_rfc3339()[..10]
    );
    for line in report.borrow().iter() {
        println!("  {line}");
    }
}
