//! Shared harness for the end-to-end tests: a real node (real RocksDB in a
//! temp dir, real certificates, TLS on 127.0.0.1 port 0) and real clients.
#![allow(dead_code)]

pub mod alibi_ref;
pub mod cluster;
pub mod handshake;
pub mod nats;
pub mod process;
pub mod prom;
pub mod replicas;
pub mod spooled;

use std::path::PathBuf;
use std::sync::Arc;

use nadc_bof::{ClientTls, pb};
use nadc_core::time::{Clock, ManualClock};
use nadc_core::{ForceId, Role, Timestamp};
use nadc_node::{NodeConfig, RunningNode, TlsFiles};
use nadc_pki::{InitSpec, PkiLayout};
use nadc_store::{RocksStore, StoreOptions};
use tempfile::TempDir;
use tonic::transport::Channel;

pub const FORCES: [&str; 3] = ["AVON", "KENT", "MET"];

/// A free loopback port for a server the test stops and starts again on
/// it (a NATS server, a node process): below the kernel's ephemeral range,
/// so that while the server is down no outgoing connection and no port-0
/// listener of the test takes it; each handed out once per test process.
pub fn restartable_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const BASE: u32 = 10_000;
    let ephemeral_from = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32_768)
        .clamp(BASE + 1_000, 65_535);
    let span = ephemeral_from - BASE;
    // Test processes started one after another start apart.
    let seed = std::process::id().wrapping_mul(7_919) % span;
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        assert!(n < span, "no free port below the ephemeral range left");
        let port = u16::try_from(BASE + (seed + n) % span).unwrap_or(u16::MAX);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// "Now" for the tests: a fixed instant, so windows are exact.
pub fn now() -> Timestamp {
    Timestamp::parse_rfc3339("2026-11-24T12:00:00Z").unwrap()
}

/// The purpose and case the tests search under.
pub fn access() -> Option<pb::AccessContext> {
    Some(pb::AccessContext {
        purpose: "serious-crime".into(),
        case_ref: "OP-TEST".into(),
        ..Default::default()
    })
}

/// The purpose the tests search under, with case `case`.
pub fn case_access(case: &str) -> Option<pb::AccessContext> {
    Some(pb::AccessContext {
        purpose: "serious-crime".into(),
        case_ref: case.into(),
        ..Default::default()
    })
}

pub fn force(f: &str) -> ForceId {
    ForceId::new(f).unwrap()
}

pub struct Harness {
    pub dir: TempDir,
    pub layout: PkiLayout,
    pub clock: ManualClock,
    pub node: Option<RunningNode>,
    pub url: String,
    /// Changes made to the node's configuration at each start.
    pub configure: fn(&mut NodeConfig),
    /// Whether the node's clock moves on a millisecond at every reading
    /// (as a real clock does between two readings), instead of standing.
    pub ticking: bool,
}

/// A clock that moves on a millisecond each time it is read.
#[derive(Clone, Debug)]
pub struct TickingClock(ManualClock);

impl Clock for TickingClock {
    fn now(&self) -> Timestamp {
        let t = self.0.now();
        self.0.set(t.plus_millis(1));
        t
    }
}

impl Harness {
    /// A PKI (node-1; BOFs AVON, KENT, MET; users alice analyst AVON, carol
    /// admin KENT, harry hotlist-manager AVON, sam supervisor AVON, audrey auditor
    /// AVON, dora disclosure AVON, ivan investigator AVON, kim investigator and
    /// hotlist-manager KENT, kurt auditor KENT, nora AVON with no role), and a
    /// started node.
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let spec = InitSpec {
            node_names: vec!["node-1".into()],
            forces: FORCES.iter().map(|f| force(f)).collect(),
            users: vec![
                ("alice".into(), vec![Role::Analyst], force("AVON")),
                ("carol".into(), vec![Role::Admin], force("KENT")),
                ("harry".into(), vec![Role::HotlistManager], force("AVON")),
                ("sam".into(), vec![Role::Supervisor], force("AVON")),
                ("audrey".into(), vec![Role::Auditor], force("AVON")),
                ("dora".into(), vec![Role::Disclosure], force("AVON")),
                ("ivan".into(), vec![Role::Investigator], force("AVON")),
                (
                    "kim".into(),
                    vec![Role::Investigator, Role::HotlistManager],
                    force("KENT"),
                ),
                ("kurt".into(), vec![Role::Auditor], force("KENT")),
                ("nora".into(), vec![], force("AVON")),
            ],
            ..Default::default()
        };
        let layout = nadc_pki::init(&dir.path().join("pki"), &spec, false).unwrap();
        let mut h = Harness {
            dir,
            layout,
            clock: ManualClock::new(now()),
            node: None,
            url: String::new(),
            configure: |_| {},
            ticking: false,
        };
        h.start_node().await;
        h
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn config(&self) -> NodeConfig {
        let mut cfg = NodeConfig::new(
            self.data_dir(),
            TlsFiles {
                ca: self.layout.ca_cert(),
                cert: self.layout.node_cert("node-1"),
                key: self.layout.node_key("node-1"),
                crl: Vec::new(),
            },
        );
        cfg.listen = "127.0.0.1:0".parse().unwrap();
        (self.configure)(&mut cfg);
        cfg
    }

    pub async fn start_node(&mut self) {
        let cfg = self.config();
        let data = self.data_dir();
        let store =
            tokio::task::spawn_blocking(move || RocksStore::open(&data, StoreOptions::default()))
                .await
                .unwrap()
                .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let clock: Arc<dyn Clock> = if self.ticking {
            Arc::new(TickingClock(self.clock.clone()))
        } else {
            Arc::new(self.clock.clone())
        };
        let node = nadc_node::start_with_listener(&cfg, Arc::new(store), listener, clock)
            .await
            .unwrap();
        self.url = format!("https://{}", node.addr);
        self.node = Some(node);
    }

    /// Graceful stop then start on the same data directory.
    pub async fn restart(&mut self) {
        self.node.take().unwrap().shutdown().await.unwrap();
        self.start_node().await;
    }

    pub fn bof_tls(&self, f: &str) -> ClientTls {
        ClientTls {
            ca: self.layout.ca_cert(),
            cert: self.layout.bof_cert(&force(f)),
            key: self.layout.bof_key(&force(f)),
        }
    }

    pub fn user_tls(&self, name: &str) -> ClientTls {
        ClientTls {
            ca: self.layout.ca_cert(),
            cert: self.layout.user_cert(name),
            key: self.layout.user_key(name),
        }
    }

    pub async fn bof(&self, f: &str) -> Channel {
        nadc_bof::connect(&self.url, &self.bof_tls(f))
            .await
            .unwrap()
    }

    pub async fn user(&self, name: &str) -> Channel {
        nadc_bof::connect(&self.url, &self.user_tls(name))
            .await
            .unwrap()
    }

    /// Registers fixed cameras C1..Cn for `f` around Bristol, plus a mobile `VAN`.
    pub async fn cameras(&self, f: &str, n: usize) {
        let mut cameras: Vec<pb::Camera> = (1..=n)
            .map(|i| pb::Camera {
                camera_id: format!("C{i}"),
                lat: 51.45 + i as f64 * 0.01,
                lon: -2.58,
                bearing: Some(90.0),
                kind: pb::CameraKind::Fixed as i32,
                lanes: Some(2),
                ..Default::default()
            })
            .collect();
        cameras.push(pb::Camera {
            camera_id: "VAN".into(),
            lat: 51.5,
            lon: -2.6,
            kind: pb::CameraKind::Mobile as i32,
            ..Default::default()
        });
        let mut admin = pb::admin_client::AdminClient::new(self.bof(f).await);
        let r = admin
            .import_cameras(pb::ImportCamerasRequest { cameras })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.stored as usize, n + 1, "{:?}", r.rejected);
    }

    pub async fn timeline(&self, user: &str, vrm: &str) -> (Vec<pb::ReadRow>, pb::SearchSummary) {
        let mut client = pb::search_client::SearchClient::new(self.user(user).await);
        let mut stream = client
            .vrm_timeline(pb::VrmTimelineRequest {
                access: access(),
                vrm: vrm.into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let mut rows = Vec::new();
        let mut summary = None;
        while let Some(c) = stream.message().await.unwrap() {
            match c.chunk.unwrap() {
                pb::search_chunk::Chunk::Rows(b) => rows.extend(b.rows),
                pb::search_chunk::Chunk::Summary(s) => summary = Some(s),
                pb::search_chunk::Chunk::Vrms(_) => panic!("a timeline has no VRM summaries"),
            }
        }
        (rows, summary.expect("a search ends with a summary"))
    }

    /// The rows of alice's (an analyst's) timeline of `vrm` under case `case`.
    pub async fn case_rows(&self, vrm: &str, case: &str) -> Vec<pb::ReadRow> {
        let mut c = pb::search_client::SearchClient::new(self.user("alice").await);
        let mut s = c
            .vrm_timeline(pb::VrmTimelineRequest {
                vrm: vrm.into(),
                access: case_access(case),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let mut rows = Vec::new();
        while let Some(c) = s.message().await.unwrap() {
            if let Some(pb::search_chunk::Chunk::Rows(b)) = c.chunk {
                rows.extend(b.rows);
            }
        }
        rows
    }

    /// `manager` creates hotlist `name` of their force holding `vrm`
    /// (action stop, 30 days, intelligence reference `INT/<name>/1`).
    pub async fn hotlist(&self, manager: &str, name: &str, vrm: &str) {
        let mut c = pb::hotlists_client::HotlistsClient::new(self.user(manager).await);
        c.create_hotlist(pb::CreateHotlistRequest {
            name: name.into(),
            purpose: "serious crime".into(),
            ..Default::default()
        })
        .await
        .unwrap();
        let r = c
            .add_entries(pb::AddEntriesRequest {
                list: Some(pb::HotlistRef {
                    owner: String::new(),
                    name: name.into(),
                }),
                entries: vec![pb::HotlistEntry {
                    vrm: vrm.into(),
                    reason: "wanted for robbery".into(),
                    intel_ref: format!("INT/{name}/1"),
                    action: pb::Action::Stop as i32,
                    expires_at: Some(nadc_proto::to_pb_time(now().plus_millis(30 * 86_400_000))),
                    ..Default::default()
                }],
                look_back_days: 0,
                access: None,
            })
            .await
            .unwrap()
            .into_inner();
        assert!(r.rejected.is_empty(), "{:?}", r.rejected);
    }

    /// The audit entries `q` selects, as the auditor `auditor` may read them.
    pub async fn audit_entries(&self, auditor: &str, q: pb::AuditQuery) -> Vec<pb::AuditRecord> {
        let mut c = pb::audit_client::AuditClient::new(self.user(auditor).await);
        let mut s = c.query(q).await.unwrap().into_inner();
        let mut out = Vec::new();
        while let Some(r) = s.message().await.unwrap() {
            out.push(r);
        }
        out
    }

    pub async fn node_info(&self, user: &str) -> pb::NodeInfoResponse {
        let mut admin = pb::admin_client::AdminClient::new(self.user(user).await);
        admin
            .node_info(pb::NodeInfoRequest {})
            .await
            .unwrap()
            .into_inner()
    }
}

/// A search's answer: its rows' BOF read ids and its summary, or the status
/// the stream failed with.
pub async fn read_ids(
    mut s: tonic::Streaming<pb::SearchChunk>,
) -> Result<(Vec<String>, Option<pb::SearchSummary>), tonic::Status> {
    let (mut ids, mut summary) = (Vec::new(), None);
    while let Some(c) = s.message().await? {
        match c.chunk.unwrap() {
            pb::search_chunk::Chunk::Rows(b) => ids.extend(
                b.rows
                    .into_iter()
                    .map(|r| r.provenance.unwrap().bof_read_id),
            ),
            pb::search_chunk::Chunk::Summary(s) => summary = Some(s),
            pb::search_chunk::Chunk::Vrms(_) => {}
        }
    }
    Ok((ids, summary))
}

/// A returned read as a case register names it (to mark it as material).
pub fn case_read_ref(r: &pb::ReadRow) -> pb::CaseReadRef {
    let p = r.provenance.clone().unwrap();
    pb::CaseReadRef {
        node: p.node,
        seq: p.seq,
        observed_at: p.observed_at,
    }
}

/// A returned read as a legal hold names it.
pub fn held_read(r: &pb::ReadRow) -> pb::HeldRead {
    let p = r.provenance.clone().unwrap();
    pb::HeldRead {
        seq: p.seq,
        observed_at: p.observed_at,
    }
}

/// A read at camera `camera` `mins_ago` minutes before [`now`].
pub fn read(id: &str, vrm: &str, camera: &str, mins_ago: i64) -> pb::Read {
    pb::Read {
        read_id: id.into(),
        vrm: vrm.into(),
        observed_at: Some(nadc_proto::to_pb_time(
            now().plus_millis(-mins_ago * 60_000),
        )),
        camera_id: camera.into(),
        confidence: Some(90.0),
        make: Some("Ford".into()),
        model: Some("Focus".into()),
        colour: Some("Blue".into()),
        ..Default::default()
    }
}

pub fn batch(reads: Vec<pb::Read>) -> pb::ReadBatch {
    pb::ReadBatch {
        batch_seq: 1,
        force: String::new(),
        reads,
    }
}
