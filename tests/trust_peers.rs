//! Trust between peers, end to end over real mTLS on 127.0.0.1 (issue 19,
//! class 7): a CA bound to one force cannot mint a node certificate to
//! relay searches with; a peer relays only users of the forces it is
//! configured for (`[[peers]] relays`), holding roles it may relay
//! (`relay_roles`); and a node talks to a peer only once the peer's
//! certificate names the node configured at that address, and comes from a
//! CA that may issue nodes. The second CA is made in process (rcgen);
//! tests/trust.rs makes one with openssl.

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use nadc_bof::{ClientTls, pb};
use nadc_core::time::{Clock, ManualClock};
use nadc_core::{ForceId, Role};
use nadc_node::federation::PeerConfig;
use nadc_node::trust::{Issued, IssuerBinding, TrustConfig};
use nadc_node::{NodeConfig, RunningNode, TlsFiles};
use nadc_pki::{DevCa, InitSpec, PkiLayout};
use nadc_store::{RocksStore, StoreOptions};
use tokio::net::TcpListener;
use tonic::Code;

fn force(f: &str) -> ForceId {
    ForceId::new(f).unwrap()
}

/// The CA bundle: the files' certificates, one after the other.
fn bundle(path: &Path, cas: &[PathBuf]) {
    let mut all = String::new();
    for ca in cas {
        all.push_str(&std::fs::read_to_string(ca).unwrap());
    }
    std::fs::write(path, all).unwrap();
}

fn now() -> nadc_core::Timestamp {
    support::now()
}

struct Pki {
    _dir: tempfile::TempDir,
    layout: PkiLayout,
    /// National CA + KENT CA.
    bundle: PathBuf,
    kent_ca: PathBuf,
    /// A KENT-CA certificate naming `nadc://node/node-1`: the forgery.
    forged_node_1: (PathBuf, PathBuf),
    /// A KENT-CA node certificate of a node of its own (node-5).
    rogue_node_5: (PathBuf, PathBuf),
}

impl Pki {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let spec = InitSpec {
            node_names: vec!["node-1".into(), "node-2".into()],
            forces: vec![force("KENT")],
            users: vec![
                ("alice".into(), vec![Role::Analyst], force("AVON")),
                ("kim".into(), vec![Role::Analyst], force("KENT")),
                (
                    "abe".into(),
                    vec![Role::Auditor, Role::Analyst],
                    force("AVON"),
                ),
            ],
            ..Default::default()
        };
        let layout = nadc_pki::init(&dir.path().join("pki"), &spec, false).unwrap();
        let kent = DevCa::generate("KENT force CA").unwrap();
        let kent_ca = dir.path().join("kent-ca.crt");
        std::fs::write(&kent_ca, kent.cert_pem()).unwrap();
        let bundle = dir.path().join("bundle.pem");
        self::bundle(&bundle, &[layout.ca_cert(), kent_ca.clone()]);
        let write = |name: &str| {
            let issued = kent.issue_node(name, &[], &[]).unwrap();
            let (c, k) = (
                dir.path().join(format!("kent-{name}.crt")),
                dir.path().join(format!("kent-{name}.key")),
            );
            nadc_pki::write_certified_key(&c, &k, &issued).unwrap();
            (c, k)
        };
        let forged_node_1 = write("node-1");
        let rogue_node_5 = write("node-5");
        Self {
            layout,
            bundle,
            kent_ca,
            forged_node_1,
            rogue_node_5,
            _dir: dir,
        }
    }

    /// National CA: nodes and any force's users and BOFs; KENT CA: KENT's.
    fn bound(&self) -> TrustConfig {
        TrustConfig {
            issuers: vec![
                IssuerBinding {
                    ca: self.layout.ca_cert(),
                    issues: vec![Issued::Node, Issued::Bof, Issued::User],
                    forces: vec!["*".into()],
                    roles: None,
                },
                IssuerBinding {
                    ca: self.kent_ca.clone(),
                    issues: vec![Issued::Bof, Issued::User],
                    forces: vec!["KENT".into()],
                    roles: None,
                },
            ],
        }
    }

    fn config(&self, dir: &Path, cert: (PathBuf, PathBuf), trust: TrustConfig) -> NodeConfig {
        let mut cfg = NodeConfig::new(
            dir.to_path_buf(),
            TlsFiles {
                ca: self.bundle.clone(),
                cert: cert.0,
                key: cert.1,
                crl: Vec::new(),
            },
        );
        cfg.trust = trust;
        cfg.federation_deadline_ms = 2000;
        cfg
    }

    fn tls(&self, (cert, key): (PathBuf, PathBuf)) -> ClientTls {
        ClientTls {
            ca: self.bundle.clone(),
            cert,
            key,
        }
    }

    fn user(&self, name: &str) -> (PathBuf, PathBuf) {
        (self.layout.user_cert(name), self.layout.user_key(name))
    }

    fn node(&self, name: &str) -> (PathBuf, PathBuf) {
        (self.layout.node_cert(name), self.layout.node_key(name))
    }
}

async fn start(cfg: &NodeConfig, listener: TcpListener) -> RunningNode {
    let data = cfg.data_dir.clone();
    let store =
        tokio::task::spawn_blocking(move || RocksStore::open(&data, StoreOptions::default()))
            .await
            .unwrap()
            .unwrap();
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(now()));
    nadc_node::start_with_listener(cfg, Arc::new(store), listener, clock)
        .await
        .unwrap()
}

fn peer(name: &str, url: &str, relays: &[&str]) -> PeerConfig {
    PeerConfig {
        relays: Some(relays.iter().map(|s| s.to_string()).collect()),
        ..PeerConfig::new(name, url)
    }
}

/// node-1 (where AVON's and KENT's users search nationally), node-2
/// (holding KENT's reads; node-1 may relay AVON's users only), and node-5,
/// a node whose certificate the KENT CA issued.
struct Cluster {
    pki: Pki,
    dirs: tempfile::TempDir,
    urls: [String; 3],
    nodes: Vec<RunningNode>,
}

impl Cluster {
    async fn start(node_1_peers: impl Fn(&[String; 3]) -> Vec<PeerConfig>) -> Self {
        let pki = Pki::new();
        let dirs = tempfile::tempdir().unwrap();
        let listeners = [
            TcpListener::bind("127.0.0.1:0").await.unwrap(),
            TcpListener::bind("127.0.0.1:0").await.unwrap(),
            TcpListener::bind("127.0.0.1:0").await.unwrap(),
        ];
        let urls = listeners
            .each_ref()
            .map(|l| format!("https://{}", l.local_addr().unwrap()));
        let [l1, l2, l5] = listeners;
        let mut c1 = pki.config(&dirs.path().join("n1"), pki.node("node-1"), pki.bound());
        c1.peers = node_1_peers(&urls);
        let mut c2 = pki.config(&dirs.path().join("n2"), pki.node("node-2"), pki.bound());
        c2.peers = vec![peer("node-1", &urls[0], &["AVON"])];
        // node-5 trusts both CAs for everything (its operator's choice).
        let mut c5 = pki.config(
            &dirs.path().join("n5"),
            pki.rogue_node_5.clone(),
            TrustConfig::default(),
        );
        c5.peers = vec![PeerConfig::new("node-1", &urls[0])];
        let nodes = vec![
            start(&c1, l1).await,
            start(&c2, l2).await,
            start(&c5, l5).await,
        ];
        Self {
            pki,
            dirs,
            urls,
            nodes,
        }
    }

    /// `user`'s national search (every node) at node-1: rows and summary.
    async fn national_search(&self, user: &str) -> (usize, pb::SearchSummary) {
        let ch = nadc_bof::connect(&self.urls[0], &self.pki.tls(self.pki.user(user)))
            .await
            .unwrap();
        let req = pb::VrmTimelineRequest {
            scope: pb::Scope::Unspecified as i32,
            ..timeline_request(None)
        };
        timeline(ch, req).await.unwrap()
    }

    async fn shutdown(self) {
        for n in self.nodes {
            n.shutdown().await.unwrap();
        }
        drop(self.dirs);
    }

    /// Stops the nodes, then reads the users named in node-2's audit log
    /// from its store.
    async fn stop_reading_audit_users_of_node_2(self) -> Vec<String> {
        for n in self.nodes {
            n.shutdown().await.unwrap();
        }
        let data = self.dirs.path().join("n2");
        tokio::task::spawn_blocking(move || {
            use nadc_store::Store;
            let store = RocksStore::open(&data, StoreOptions::default()).unwrap();
            let mut users = Vec::new();
            store
                .audit(0, &mut |e| {
                    users.push(e.entry.user.clone());
                    std::ops::ControlFlow::Continue(())
                })
                .unwrap();
            users
        })
        .await
        .unwrap()
    }
}

fn timeline_request(relay: Option<pb::OnBehalfOf>) -> pb::VrmTimelineRequest {
    pb::VrmTimelineRequest {
        access: support::access(),
        vrm: "KE11ENT".into(),
        on_behalf_of: relay,
        scope: pb::Scope::Local as i32,
        ..Default::default()
    }
}

async fn timeline(
    ch: tonic::transport::Channel,
    req: pb::VrmTimelineRequest,
) -> Result<(usize, pb::SearchSummary), tonic::Status> {
    let mut s = pb::search_client::SearchClient::new(ch)
        .vrm_timeline(req)
        .await?
        .into_inner();
    let (mut rows, mut summary) = (0, None);
    while let Some(c) = s.message().await? {
        match c.chunk {
            Some(pb::search_chunk::Chunk::Rows(b)) => rows += b.rows.len(),
            Some(pb::search_chunk::Chunk::Summary(x)) => summary = Some(x),
            _ => {}
        }
    }
    Ok((rows, summary.expect("a search ends with a summary")))
}

fn relayed(user: &str, force: &str, roles: &[&str]) -> Option<pb::OnBehalfOf> {
    Some(pb::OnBehalfOf {
        user: user.into(),
        force: force.into(),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        via_node: "node-1".into(),
    })
}

async fn push_kent_read(c: &Cluster) {
    let kent = nadc_bof::connect(
        &c.urls[1],
        &c.pki.tls((
            c.pki.layout.bof_cert(&force("KENT")),
            c.pki.layout.bof_key(&force("KENT")),
        )),
    )
    .await
    .unwrap();
    let mut r = support::read("k1", "KE11ENT", "GPS-1", 5);
    (r.lat, r.lon) = (Some(51.28), Some(1.08));
    let pushed = nadc_bof::push::push_batch(kent, support::batch(vec![r]))
        .await
        .unwrap();
    assert_eq!(pushed.accepted, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_relays_only_its_forces_users_with_searching_roles() {
    let c = Cluster::start(|urls| vec![peer("node-2", &urls[1], &["*"])]).await;
    push_kent_read(&c).await;
    let node_1 = || async {
        nadc_bof::connect(&c.urls[1], &c.pki.tls(c.pki.node("node-1")))
            .await
            .unwrap()
    };

    // node-1 relaying an AVON analyst: served, under node-2's own audit.
    let (rows, _) = timeline(
        node_1().await,
        timeline_request(relayed("ann", "AVON", &["analyst"])),
    )
    .await
    .unwrap();
    assert_eq!(rows, 1);

    // A KENT user: node-1 may relay AVON's users only.
    let e = timeline(
        node_1().await,
        timeline_request(relayed("mallory", "KENT", &["supervisor"])),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert_eq!(
        e.message(),
        "relay rule: peer node-1 may relay users of AVON only ([[peers]] relays), not user \
         mallory of KENT"
    );

    // An AVON user holding a role that is not for relaying.
    for role in ["auditor", "admin"] {
        let e = timeline(
            node_1().await,
            timeline_request(relayed("ann", "AVON", &["analyst", role])),
        )
        .await
        .unwrap_err();
        assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
        assert!(
            e.message().starts_with("relay rule: peer node-1 may relay users holding the roles analyst, investigator, supervisor, disclosure, hotlist-manager only ([[peers]] relay_roles)")
                && e.message().contains(&format!("not {role} (user ann of AVON)")),
            "{}",
            e.message()
        );
    }

    // The alert history relays through the same rule.
    let e = pb::alerts_client::AlertsClient::new(node_1().await)
        .watch(pb::WatchRequest {
            history_only: true,
            scope: pb::Scope::Local as i32,
            on_behalf_of: relayed("mallory", "KENT", &["analyst"]),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert!(
        e.message()
            .starts_with("relay rule: peer node-1 may relay users of AVON only"),
        "{}",
        e.message()
    );

    // A relayed name or node that is not what it claims.
    for (relay, words) in [
        (
            relayed("ann@elsewhere", "AVON", &["analyst"]),
            "relayed user's name",
        ),
        (
            Some(pb::OnBehalfOf {
                via_node: "node-2".into(),
                ..relayed("ann", "AVON", &["analyst"]).unwrap()
            }),
            "the caller is node node-1",
        ),
    ] {
        let e = timeline(node_1().await, timeline_request(relay))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
        assert!(e.message().contains(words), "{}", e.message());
    }

    // End to end: alice (AVON) searching nationally at node-1 reaches
    // node-2's read; kim (KENT) does not, and the summary says why.
    let (rows, summary) = c.national_search("alice").await;
    assert_eq!(rows, 1);
    assert!(!summary.partial, "{summary:?}");
    // A user who also audits searches nationally as before: node-1 relays
    // only the roles a search needs.
    let (rows, summary) = c.national_search("abe").await;
    assert_eq!(rows, 1);
    assert!(!summary.partial, "{summary:?}");
    let (rows, summary) = c.national_search("kim").await;
    assert_eq!(rows, 0);
    assert!(summary.partial);
    let n2 = summary.nodes.iter().find(|n| n.node == "node-2").unwrap();
    assert!(!n2.ok);
    assert!(
        n2.error
            .contains("relay rule: peer node-1 may relay users of AVON only"),
        "{}",
        n2.error
    );

    // node-2's audit has the relayed searches it served, under the relaying
    // node's name; a refused relay is audited as the relaying node's own
    // refusal (its user is only what the peer claimed), never as the user.
    let entries = c.stop_reading_audit_users_of_node_2().await;
    assert!(entries.contains(&"ann@node-1".to_string()), "{entries:?}");
    assert!(entries.contains(&"alice@node-1".to_string()), "{entries:?}");
    assert!(entries.contains(&"node:node-1".to_string()), "{entries:?}");
    assert!(
        !entries
            .iter()
            .any(|u| u.starts_with("mallory") || u.starts_with("kim")),
        "{entries:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_force_ca_cannot_mint_a_node_and_a_peer_must_be_the_node_configured() {
    let c = Cluster::start(|urls| {
        vec![
            peer("node-2", &urls[1], &["*"]),
            // node-2's address, configured under another name.
            peer("node-4", &urls[1], &[]),
            // A node whose certificate the KENT CA issued.
            peer("node-5", &urls[2], &[]),
        ]
    })
    .await;
    push_kent_read(&c).await;

    // The KENT CA's `nadc://node/node-1` is refused at node-2's handshake,
    // so it cannot relay a search as AVON's supervisor.
    let (bundle, (cert, key)) = (c.pki.bundle.clone(), c.pki.forged_node_1.clone());
    let node_2: std::net::SocketAddr = c.urls[1].trim_start_matches("https://").parse().unwrap();
    let (_, alert) = tokio::task::spawn_blocking(move || {
        support::handshake::handshake(node_2, &bundle, &cert, &key)
    })
    .await
    .unwrap();
    assert_eq!(
        alert.as_deref(),
        Some("received fatal alert: CertificateUnknown"),
        "a forged node certificate was served"
    );
    let forged = c.pki.tls(c.pki.forged_node_1.clone());
    let relayed_search = async {
        let ch = nadc_bof::connect(&c.urls[1], &forged).await?;
        timeline(
            ch,
            timeline_request(relayed("sam", "AVON", &["supervisor"])),
        )
        .await
        .map_err(nadc_bof::ClientError::from)
    };
    relayed_search
        .await
        .expect_err("a forged node certificate relayed a search");
    // The real node-1 certificate relays as before.
    let (rows, _) = timeline(
        nadc_bof::connect(&c.urls[1], &c.pki.tls(c.pki.node("node-1")))
            .await
            .unwrap(),
        timeline_request(relayed("sam", "AVON", &["supervisor"])),
    )
    .await
    .unwrap();
    assert_eq!(rows, 1);

    // node-1's national search: node-2 answers; the address configured as
    // node-4 presents node-2's certificate; node-5's certificate comes from
    // a CA that may not issue nodes. Each is named with the reason.
    let (rows, summary) = c.national_search("alice").await;
    assert_eq!(rows, 1, "node-2's read, once");
    assert!(summary.partial);
    let node = |n: &str| summary.nodes.iter().find(|x| x.node == n).unwrap().clone();
    assert!(node("node-2").ok, "{:?}", node("node-2"));
    let n4 = node("node-4");
    assert!(!n4.ok);
    assert!(
        n4.error
            .contains("expected nadc://node/node-4, presented nadc://node/node-2"),
        "{}",
        n4.error
    );
    let n5 = node("node-5");
    assert!(!n5.ok);
    assert!(
        n5.error
            .contains("node node-5 is outside what CA \"CN=KENT force CA\" may issue")
            && n5.error.contains("not node certificates"),
        "{}",
        n5.error
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_would_leave_a_ca_unbound_changes_nothing() {
    let c = Cluster::start(|urls| vec![peer("node-2", &urls[1], &["*"])]).await;
    push_kent_read(&c).await;
    // A new CA lands in the bundle without a binding.
    let before = std::fs::read_to_string(&c.pki.bundle).unwrap();
    let stray = DevCa::generate("MET force CA").unwrap();
    std::fs::write(&c.pki.bundle, format!("{before}{}", stray.cert_pem())).unwrap();
    let e = c.nodes[1].reload_tls().unwrap_err().to_string();
    assert!(
        e.contains("CA \"CN=MET force CA\" (certificate 3 in the bundle")
            && e.contains("is not bound"),
        "{e}"
    );
    // node-2 serves as before: node-1 relays alice's search.
    std::fs::write(&c.pki.bundle, &before).unwrap();
    let (rows, summary) = c.national_search("alice").await;
    assert_eq!(rows, 1);
    assert!(!summary.partial, "{summary:?}");
    c.nodes[1].reload_tls().unwrap();
    c.shutdown().await;
}
