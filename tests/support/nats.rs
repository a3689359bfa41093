//! A real NATS JetStream cluster on 127.0.0.1: three `nats-server`
//! processes, routed to each other, clients over TLS with certificates
//! from the test's PKI (the servers verify the nodes' certificates).
//!
//! The server binary: `$NADC_NATS_SERVER`, else `nats-server` on the PATH,
//! else where `scripts/bootstrap.sh` installs it
//! (`~/.cache/nadc/nats/bin/nats-server`). A missing binary fails the
//! test, naming the install step: it is never skipped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `nats-server` binary.
pub fn server_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("NADC_NATS_SERVER") {
        return PathBuf::from(p);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join("nats-server");
            if p.is_file() {
                return p;
            }
        }
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let p = home.join(".cache/nadc/nats/bin/nats-server");
    assert!(
        p.is_file(),
        "nats-server not found ($NADC_NATS_SERVER, PATH, {}): run the tests with scripts/test, which installs it",
        p.display()
    );
    p
}

/// A free TCP port on 127.0.0.1 that stays free while its server is down
/// (`super::restartable_port`). (A NATS cluster's routes name each other's
/// ports before the servers start, so a server cannot be given port 0.)
fn free_port() -> u16 {
    super::restartable_port()
}

/// One server of the cluster.
pub struct NatsServer {
    child: Option<Child>,
    pub name: String,
    pub port: u16,
    pub cluster_port: u16,
    dir: PathBuf,
}

impl NatsServer {
    /// The URL clients connect to.
    pub fn url(&self) -> String {
        format!("tls://127.0.0.1:{}", self.port)
    }

    fn log(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    fn start(&mut self) {
        let _ = std::fs::remove_file(self.log());
        let child = Command::new(server_binary())
            .arg("-c")
            .arg(self.dir.join("server.conf"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.log()).unwrap())
            .spawn()
            .unwrap();
        self.child = Some(child);
        // Ready when it says so (its log, not a clock).
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let log = std::fs::read_to_string(self.log()).unwrap_or_default();
            if log.contains("Server is ready") {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("{} exited ({status}):\n{log}", self.name);
            }
            assert!(
                Instant::now() < deadline,
                "{} did not start:\n{log}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: what it had not written is lost, as in a crash.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// Starts it again on the same ports and store.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "{} is running", self.name);
        self.start();
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Three routed servers with JetStream.
pub struct NatsCluster {
    pub servers: Vec<NatsServer>,
}

impl NatsCluster {
    /// Starts three servers under `dir`, serving TLS with `layout`'s
    /// `nats` node certificate and requiring client certificates issued by
    /// its CA; of those, only the node certificates of `nodes` may connect
    /// (each mapped to a NATS user by its subject, as
    /// deploy/REPLICATION.md configures it).
    pub fn start(dir: &Path, layout: &nadc_pki::PkiLayout, nodes: &[&str]) -> Self {
        let (ca, cert, key) = (
            layout.ca_cert(),
            layout.node_cert("nats"),
            layout.node_key("nats"),
        );
        let users: Vec<String> = nodes
            .iter()
            .map(|n| format!("    {{ user: \"CN=nadc node {n}\" }}"))
            .collect();
        let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
        let routes: Vec<String> = ports
            .iter()
            .map(|(_, c)| format!("\"nats-route://127.0.0.1:{c}\""))
            .collect();
        let mut servers = Vec::new();
        for (i, (port, cluster_port)) in ports.iter().enumerate() {
            let name = format!("nats-{}", i + 1);
            let sdir = dir.join(&name);
            std::fs::create_dir_all(sdir.join("js")).unwrap();
            let conf = format!(
                r#"server_name: "{name}"
listen: "127.0.0.1:{port}"
jetstream {{
  store_dir: "{js}"
}}
tls {{
  cert_file: "{cert}"
  key_file: "{key}"
  ca_file: "{ca}"
  verify_and_map: true
}}
authorization {{
  users = [
{users}
  ]
}}
cluster {{
  name: "nadc-test"
  no_advertise: true
  listen: "127.0.0.1:{cluster_port}"
  routes: [{routes}]
}}
"#,
                js = sdir.join("js").display(),
                cert = cert.display(),
                key = key.display(),
                ca = ca.display(),
                routes = routes.join(", "),
                users = users.join("\n"),
            );
            std::fs::write(sdir.join("server.conf"), conf).unwrap();
            servers.push(NatsServer {
                child: None,
                name,
                port: *port,
                cluster_port: *cluster_port,
                dir: sdir,
            });
        }
        for s in &mut servers {
            s.start();
        }
        Self { servers }
    }

    /// Every server's client URL.
    pub fn urls(&self) -> Vec<String> {
        self.servers.iter().map(NatsServer::url).collect()
    }
}
