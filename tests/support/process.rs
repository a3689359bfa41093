//! The `nadc` binary as a separate process.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const NADC: &str = env!("CARGO_BIN_EXE_nadc");

pub struct Server {
    child: Option<Child>,
    /// `https://127.0.0.1:PORT`.
    pub url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Server {
    /// `nadc serve` on a free port, data in `dir/data`, PKI in `dir/pki`.
    pub fn start(dir: &Path) -> Server {
        Self::start_on(dir, "127.0.0.1:0")
    }

    /// The same on `listen` (a restarted node keeps its port).
    pub fn start_on(dir: &Path, listen: &str) -> Server {
        Self::start_with(dir, listen, &[])
    }

    /// The same with more `nadc serve` arguments (e.g. `--config FILE`).
    pub fn start_with(dir: &Path, listen: &str, extra: &[&str]) -> Server {
        let addr_file = dir.join("addr");
        let _ = std::fs::remove_file(&addr_file);
        let mut server = Server {
            child: None,
            url: String::new(),
        };
        server.child = Some(
            Command::new(NADC)
                .args(["serve", "--listen", listen])
                .args(extra)
                .arg("--data")
                .arg(dir.join("data"))
                .arg("--tls-dir")
                .arg(dir.join("pki"))
                .arg("--addr-file")
                .arg(&addr_file)
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap(),
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(a) = std::fs::read_to_string(&addr_file)
                && !a.is_empty()
            {
                server.url = format!("https://{a}");
                return server;
            }
            assert!(Instant::now() < deadline, "node did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, |c| c.id())
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill(mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// Sends `signal` (e.g. `HUP`) with kill(1).
    pub fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().unwrap().id().to_string();
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn stop(mut self) {
        let mut child = self.child.take().unwrap();
        let pid = child.id().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(status.success());
        let code = child.wait().unwrap();
        assert!(code.success(), "node exited with {code}");
    }
}

/// Runs `nadc ARGS` against the node at `url` with `env` (e.g. an
/// [`identity`]), a purpose and the case reference `case`; asserts that it
/// succeeded.
pub fn nadc(args: &[&str], env: &[(&str, PathBuf)], url: &str, case: &str) -> Output {
    let out = Command::new(NADC)
        .args(args)
        .env("NADC_NODE", url)
        .env("NADC_PURPOSE", "serious-crime")
        .env("NADC_CASE", case)
        .envs(env.iter().map(|(k, v)| (*k, v)))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "nadc {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The `NADC_CA`/`NADC_CERT`/`NADC_KEY` of `kind/name` (e.g. `bofs`,
/// `AVON`) in a `nadc pki init` directory.
pub fn identity(pki: &Path, kind: &str, name: &str) -> Vec<(&'static str, PathBuf)> {
    vec![
        ("NADC_CA", pki.join("ca.crt")),
        ("NADC_CERT", pki.join(kind).join(format!("{name}.crt"))),
        ("NADC_KEY", pki.join(kind).join(format!("{name}.key"))),
    ]
}

/// A free loopback address to listen on, which stays free while its node
/// is down (so a restarted node keeps it: `super::restartable_port`).
pub fn free_listen_addr() -> String {
    format!("127.0.0.1:{}", super::restartable_port())
}

/// `nadc pki init --out PKI --forces FORCES --users USERS` (no users when
/// empty), asserting it succeeded.
pub fn pki_init(pki: &Path, forces: &str, users: &str) {
    let mut init = Command::new(NADC);
    init.args(["pki", "init", "--forces", forces]);
    if !users.is_empty() {
        init.args(["--users", users]);
    }
    let out = init.arg("--out").arg(pki).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
