//! Three nodes on 127.0.0.1, each with its own RocksDB and node
//! certificate, holding one force's data each; node-1 has the others as
//! peers (so a search at node-1 is national).

use std::sync::Arc;

use nadc_bof::ClientTls;
use nadc_core::Role;
use nadc_core::time::{Clock, ManualClock};
use nadc_node::federation::PeerConfig;
use nadc_node::{NodeConfig, RunningNode, TlsFiles};
use nadc_pki::{InitSpec, PkiLayout};
use nadc_store::{RocksStore, StoreOptions};
use tokio::net::TcpListener;
use tonic::transport::Channel;

use super::{force, now};

pub const NODES: [(&str, &str); 3] = [("node-1", "AVON"), ("node-2", "KENT"), ("node-3", "MET")];

pub struct Cluster {
    pub _dir: tempfile::TempDir,
    pub layout: PkiLayout,
    pub nodes: Vec<Option<RunningNode>>,
    pub urls: Vec<String>,
    pub configs: Vec<NodeConfig>,
}

pub async fn run_node(cfg: &NodeConfig, listener: TcpListener) -> RunningNode {
    // After a restart, tasks of the stopped node still ending (e.g. a watch
    // whose stream was cut) may hold the store for a moment.
    let mut tries = 0;
    let store = loop {
        let data = cfg.data_dir.clone();
        match tokio::task::spawn_blocking(move || RocksStore::open(&data, StoreOptions::default()))
            .await
            .unwrap()
        {
            Ok(s) => break s,
            Err(_) if tries < 50 => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(e) => panic!("open {}: {e}", cfg.data_dir.display()),
        }
    };
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(now()));
    nadc_node::start_with_listener(cfg, Arc::new(store), listener, clock)
        .await
        .unwrap()
}

impl Cluster {
    /// Three nodes; node-1 has node-2 and node-3 as peers, and they have
    /// node-1 (so a search at node-1 is national, and node-1 may relay).
    pub async fn start() -> Self {
        Self::start_with(Vec::new(), None).await
    }

    /// Three nodes, node-1 also having `extra` peers and, if given, only
    /// these roles allowed national searches.
    pub async fn start_with(extra: Vec<PeerConfig>, national_roles: Option<Vec<Role>>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let spec = InitSpec {
            node_names: NODES.iter().map(|(n, _)| n.to_string()).collect(),
            forces: NODES.iter().map(|(_, f)| force(f)).collect(),
            users: vec![
                ("alice".into(), vec![Role::Analyst], force("AVON")),
                ("kate".into(), vec![Role::Auditor], force("KENT")),
                ("hank".into(), vec![Role::HotlistManager], force("KENT")),
            ],
            ..Default::default()
        };
        let layout = nadc_pki::init(&dir.path().join("pki"), &spec, false).unwrap();
        let mut listeners = Vec::new();
        for _ in NODES {
            listeners.push(TcpListener::bind("127.0.0.1:0").await.unwrap());
        }
        let urls: Vec<String> = listeners
            .iter()
            .map(|l| format!("https://{}", l.local_addr().unwrap()))
            .collect();
        let mut nodes = Vec::new();
        let mut configs = Vec::new();
        for (i, listener) in listeners.into_iter().enumerate() {
            let name = NODES[i].0;
            let mut cfg = NodeConfig::new(
                dir.path().join(name),
                TlsFiles {
                    ca: layout.ca_cert(),
                    cert: layout.node_cert(name),
                    key: layout.node_key(name),
                    crl: Vec::new(),
                },
            );
            cfg.federation_deadline_ms = 1500;
            if let Some(roles) = national_roles.clone() {
                cfg.access.national_roles = roles;
            }
            cfg.peers = if i == 0 {
                vec![1, 2]
                    .into_iter()
                    .map(|j| PeerConfig::new(NODES[j].0, &urls[j]))
                    .chain(extra.clone())
                    .collect()
            } else {
                vec![PeerConfig::new("node-1", &urls[0])]
            };
            nodes.push(Some(run_node(&cfg, listener).await));
            configs.push(cfg);
        }
        Self {
            _dir: dir,
            layout,
            nodes,
            urls,
            configs,
        }
    }

    /// Stops node `i` and starts it again on the same address and data.
    pub async fn restart(&mut self, i: usize) {
        self.nodes[i].take().unwrap().shutdown().await.unwrap();
        let addr = self.urls[i].trim_start_matches("https://").to_string();
        let listener = TcpListener::bind(&addr).await.unwrap();
        self.nodes[i] = Some(run_node(&self.configs[i], listener).await);
    }

    pub async fn connect(
        &self,
        node: usize,
        cert: std::path::PathBuf,
        key: std::path::PathBuf,
    ) -> Channel {
        nadc_bof::connect(
            &self.urls[node],
            &ClientTls {
                ca: self.layout.ca_cert(),
                cert,
                key,
            },
        )
        .await
        .unwrap()
    }

    pub async fn user(&self, node: usize, name: &str) -> Channel {
        self.connect(
            node,
            self.layout.user_cert(name),
            self.layout.user_key(name),
        )
        .await
    }

    pub async fn bof(&self, node: usize, f: &str) -> Channel {
        self.connect(
            node,
            self.layout.bof_cert(&force(f)),
            self.layout.bof_key(&force(f)),
        )
        .await
    }
}
