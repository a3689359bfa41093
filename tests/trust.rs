//! What each CA may issue, end to end over real mTLS on 127.0.0.1 against
//! `nadc serve --config` (issue 19, class 7): each CA in a node's bundle
//! issues only what its binding (`[[trust.issuers]]`) allows, refused at the
//! handshake with an alert and the reason logged with the client's address;
//! a configuration that binds some CAs but not all is refused at load,
//! naming the CA left out.
//!
//! A second CA, bound to KENT, issues its certificates with the openssl
//! commands of `deploy/PKI.md` (scripts/bootstrap.sh installs openssl; on a
//! machine without it the same certificates are made with nadc's own CA
//! code, and the test says so). Relaying and peer identity are in
//! tests/trust_peers.rs.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nadc_bof::{ClientTls, pb};
use nadc_core::{ForceId, Principal, Role};
use nadc_pki::DevCa;

const NADC: &str = env!("CARGO_BIN_EXE_nadc");

fn force(f: &str) -> ForceId {
    ForceId::new(f).unwrap()
}

/// A user of force `f` with `roles`.
fn user(f: &str, name: &str, roles: &[Role]) -> Principal {
    Principal::User {
        force: force(f),
        name: name.into(),
        roles: roles.to_vec(),
    }
}

// ---------------------------------------------------------------------------
// A second CA, made with openssl as deploy/PKI.md section 4 says.

fn have_openssl() -> bool {
    Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A force's own CA in `dir` (`ca.crt`, `ca.key`), and certificates it
/// issues.
struct ForceCa {
    dir: PathBuf,
    with_openssl: bool,
}

impl ForceCa {
    fn new(dir: &Path, cn: &str) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let with_openssl = have_openssl();
        if with_openssl {
            openssl(
                dir,
                &[
                    "genpkey",
                    "-algorithm",
                    "EC",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-256",
                    "-out",
                    "ca.key",
                ],
            );
            openssl(
                dir,
                &[
                    "req",
                    "-x509",
                    "-new",
                    "-key",
                    "ca.key",
                    "-sha256",
                    "-days",
                    "3650",
                    "-subj",
                    &format!("/O=Kent Police/CN={cn}"),
                    "-addext",
                    "basicConstraints=critical,CA:TRUE,pathlen:0",
                    "-addext",
                    "keyUsage=critical,keyCertSign,cRLSign",
                    "-addext",
                    "subjectKeyIdentifier=hash",
                    "-out",
                    "ca.crt",
                ],
            );
        } else {
            eprintln!(
                "openssl is not installed (scripts/bootstrap.sh installs it): making {cn}'s \
                 certificates with nadc's own CA code instead"
            );
            let ca = DevCa::generate(cn).unwrap();
            std::fs::write(dir.join("ca.crt"), ca.cert_pem()).unwrap();
            std::fs::write(dir.join("ca.key"), ca.key_pem()).unwrap();
        }
        Self {
            dir: dir.to_path_buf(),
            with_openssl,
        }
    }

    fn cert(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// Issues `name.crt`/`name.key` for `principal`: a CSR made beside its
    /// key, signed by the CA with the extensions it decides.
    fn issue(&self, name: &str, principal: &Principal) -> (PathBuf, PathBuf) {
        let (crt, key) = (
            self.dir.join(format!("{name}.crt")),
            self.dir.join(format!("{name}.key")),
        );
        if !self.with_openssl {
            let ca = DevCa::from_pem(
                &std::fs::read_to_string(self.cert()).unwrap(),
                &std::fs::read_to_string(self.dir.join("ca.key")).unwrap(),
            )
            .unwrap();
            let now = chrono::Utc::now();
            let (dns, ips) = match principal {
                Principal::Node { .. } => (
                    vec!["localhost".to_string()],
                    vec!["127.0.0.1".parse().unwrap()],
                ),
                _ => (Vec::new(), Vec::new()),
            };
            let issued = ca
                .issue_with_validity(
                    principal,
                    &dns,
                    &ips,
                    now - chrono::TimeDelta::minutes(5),
                    now + chrono::TimeDelta::days(30),
                )
                .unwrap();
            nadc_pki::write_certified_key(&crt, &key, &issued).unwrap();
            return (crt, key);
        }
        let (eku, extra) = match principal {
            Principal::Node { .. } => ("serverAuth, clientAuth", ", DNS:localhost, IP:127.0.0.1"),
            _ => ("clientAuth", ""),
        };
        let uris: Vec<String> = nadc_pki::principal_uris(principal)
            .into_iter()
            .map(|u| format!("URI:{u}"))
            .collect();
        self.issue_with_openssl(name, &format!("{}{extra}", uris.join(", ")), eku)
    }

    /// Issues `name.crt`/`name.key` with openssl: subjectAltName `san`,
    /// extended key usage `eku`.
    fn issue_with_openssl(&self, name: &str, san: &str, eku: &str) -> (PathBuf, PathBuf) {
        let (crt, key) = (
            self.dir.join(format!("{name}.crt")),
            self.dir.join(format!("{name}.key")),
        );
        std::fs::write(
            self.dir.join(format!("{name}.ext")),
            format!(
                "basicConstraints       = critical, CA:FALSE\n\
                 keyUsage               = critical, digitalSignature\n\
                 extendedKeyUsage       = {eku}\n\
                 subjectAltName         = {san}\n\
                 subjectKeyIdentifier   = hash\n\
                 authorityKeyIdentifier = keyid\n"
            ),
        )
        .unwrap();
        let (k, csr, c, ext) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
            format!("{name}.ext"),
        );
        openssl(
            &self.dir,
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
                &k,
            ],
        );
        openssl(
            &self.dir,
            &[
                "req",
                "-new",
                "-key",
                &k,
                "-subj",
                &format!("/O=Kent Police/CN={name}"),
                "-out",
                &csr,
            ],
        );
        openssl(
            &self.dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-set_serial",
                "0x7e3a9d11c0ffee5eed5eed5eed5eed01",
                "-days",
                "730",
                "-sha256",
                "-extfile",
                &ext,
                "-out",
                &c,
            ],
        );
        (crt, key)
    }
}

/// The CA bundle: the files' certificates, one after the other.
fn bundle(path: &Path, cas: &[PathBuf]) {
    let mut all = String::new();
    for ca in cas {
        all.push_str(&std::fs::read_to_string(ca).unwrap());
    }
    std::fs::write(path, all).unwrap();
}

// ---------------------------------------------------------------------------
// The node as a process: `nadc serve --config`, its log (JSON lines) kept.

struct Served {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve_command(dir: &Path, config: &Path, log: &Path) -> Command {
    let mut cmd = Command::new(NADC);
    cmd.args(["--log-format", "json", "serve", "--config"])
        .arg(config)
        .args(["--listen", "127.0.0.1:0", "--addr-file"])
        .arg(dir.join("addr"))
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap());
    cmd
}

impl Served {
    fn start(dir: &Path, config: &Path) -> Self {
        let log = dir.join("node.log");
        let child = serve_command(dir, config, &log).spawn().unwrap();
        let mut served = Served {
            child,
            addr: "127.0.0.1:1".parse().unwrap(),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(a) = std::fs::read_to_string(dir.join("addr"))
                && let Ok(addr) = a.trim().parse()
            {
                served.addr = addr;
                return served;
            }
            if let Some(status) = served.child.try_wait().unwrap() {
                panic!(
                    "node exited with {status}: {}",
                    std::fs::read_to_string(&served.log).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "node did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The node's log entry refusing the handshake from `peer`, waiting for
    /// it to be written (the client reads the alert before the node logs).
    fn refusal_logged_for(&self, peer: SocketAddr) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            let found = text
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .find(|e| {
                    e["fields"]["message"] == "tls handshake refused"
                        && e["fields"]["peer"] == peer.to_string()
                });
            if let Some(e) = found {
                return e;
            }
            assert!(
                Instant::now() < deadline,
                "no refusal logged for {peer}:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The caller the node saw (NodeInfo), or the client's error.
async fn node_info(url: &str, tls: &ClientTls) -> Result<String, String> {
    let ch = nadc_bof::connect(url, tls)
        .await
        .map_err(|e| e.to_string())?;
    pb::admin_client::AdminClient::new(ch)
        .node_info(pb::NodeInfoRequest {})
        .await
        .map(|r| r.into_inner().caller)
        .map_err(|s| nadc_bof::ClientError::from(s).to_string())
}

/// Asserts the node refused the certificate at the handshake with the
/// `certificate_unknown` alert, and logged, with the client's address, a
/// reason containing each of `words`.
fn assert_refused_at_handshake(node: &Served, ca: &Path, cert: &Path, key: &Path, words: &[&str]) {
    let (client, alert) = support::handshake::handshake(node.addr, ca, cert, key);
    let alert = alert.expect("the node served a certificate outside its CA's binding");
    assert_eq!(alert, "received fatal alert: CertificateUnknown");
    let meaning = nadc_bof::tls_alert_meaning(&alert).unwrap();
    assert!(meaning.contains("its CA may not issue it"), "{meaning}");
    let logged = node.refusal_logged_for(client);
    let reason = logged["fields"]["reason"].as_str().unwrap();
    for w in words {
        assert!(
            reason.contains(w),
            "{w:?} not in the logged reason: {reason}"
        );
    }
}

#[tokio::test]
async fn a_ca_bound_to_one_force_issues_neither_other_forces_nor_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    support::process::pki_init(&d.join("pki"), "AVON", "alice:analyst:AVON");
    let kent = ForceCa::new(&d.join("kent"), "KENT nadc CA");
    let kent_bof = kent.issue(
        "KENT-bof",
        &Principal::Bof {
            force: force("KENT"),
        },
    );
    let kim = kent.issue("kim", &user("KENT", "kim", &[Role::Analyst]));
    // What a CA trusted for KENT must not be able to mint: a user of
    // another force, a node, a user with a role its binding leaves out.
    let eve = kent.issue("eve", &user("AVON", "eve", &[Role::Supervisor]));
    let rogue_node = kent.issue(
        "node-9",
        &Principal::Node {
            name: "node-9".into(),
        },
    );
    let kate = kent.issue("kate", &user("KENT", "kate", &[Role::Analyst, Role::Admin]));
    bundle(&d.join("bundle.pem"), &[d.join("pki/ca.crt"), kent.cert()]);
    let node = serve_with_kent_ca(
        d,
        "kent/ca.crt",
        "roles = [\"analyst\", \"investigator\", \"supervisor\", \"disclosure\"]\n",
    );
    let ca = d.join("bundle.pem");
    let tls = |(cert, key): &(PathBuf, PathBuf)| ClientTls {
        ca: ca.clone(),
        cert: cert.clone(),
        key: key.clone(),
    };

    // Within its binding, the KENT CA's certificates work.
    assert_eq!(
        node_info(&node.url(), &tls(&kent_bof)).await.unwrap(),
        "bof KENT"
    );
    assert_eq!(
        node_info(&node.url(), &tls(&kim)).await.unwrap(),
        "user kim of KENT"
    );
    // So do the national CA's (made by `nadc pki init`).
    let alice = (d.join("pki/users/alice.crt"), d.join("pki/users/alice.key"));
    assert_eq!(
        node_info(&node.url(), &tls(&alice)).await.unwrap(),
        "user alice of AVON"
    );

    assert_refused_at_handshake(
        &node,
        &ca,
        &eve.0,
        &eve.1,
        &[
            "user eve of AVON",
            "KENT nadc CA",
            "certificates of KENT only, not of AVON",
            "[[trust.issuers]]",
        ],
    );
    assert_refused_at_handshake(
        &node,
        &ca,
        &rogue_node.0,
        &rogue_node.1,
        &["node node-9", "KENT nadc CA", "not node certificates"],
    );
    assert_refused_at_handshake(
        &node,
        &ca,
        &kate.0,
        &kate.1,
        &["user kate of KENT", "not admin"],
    );
    // A certificate naming no nadc principal: no binding can allow it.
    if kent.with_openssl {
        let anonymous = kent.issue_with_openssl(
            "anon",
            "URI:https://kent.police.example/staff/7",
            "clientAuth",
        );
        assert_refused_at_handshake(
            &node,
            &ca,
            &anonymous.0,
            &anonymous.1,
            &["names no nadc principal", "no nadc principal URI"],
        );
    } else {
        eprintln!("without openssl, a certificate naming no principal is not tried");
    }
    // Through the client library too, nothing is served.
    node_info(&node.url(), &tls(&eve))
        .await
        .expect_err("the node served a certificate outside its CA's binding");
}

/// node-1 of `nadc pki init` in `d`, serving with `bundle.pem` as its CAs:
/// the national CA bound to AVON (and nodes), `kent_ca` bound to KENT's
/// BOFs and users, with `kent_extra` (more lines of its binding).
fn serve_with_kent_ca(d: &Path, kent_ca: &str, kent_extra: &str) -> Served {
    let config = d.join("node.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"data\"\n\
             [tls]\n\
             ca = \"bundle.pem\"\n\
             cert = \"pki/nodes/node-1.crt\"\n\
             key = \"pki/nodes/node-1.key\"\n\
             [[trust.issuers]]\n\
             ca = \"pki/ca.crt\"\n\
             issues = [\"node\", \"bof\", \"user\"]\n\
             forces = [\"AVON\"]\n\
             [[trust.issuers]]\n\
             ca = \"{kent_ca}\"\n\
             issues = [\"bof\", \"user\"]\n\
             forces = [\"KENT\"]\n\
             {kent_extra}"
        ),
    )
    .unwrap();
    Served::start(d, &config)
}

/// `nadc serve --config` exits at once with an error (not serving).
fn refused_at_load(dir: &Path, config: &Path) -> String {
    let log = dir.join("refused.log");
    let mut child = serve_command(dir, config, &log).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the node started with a configuration it must refuse");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success());
    assert!(
        !dir.join("addr").exists(),
        "the node listened before refusing"
    );
    std::fs::read_to_string(log).unwrap()
}

#[test]
fn bindings_that_leave_a_ca_of_the_bundle_unbound_are_refused_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    support::process::pki_init(&d.join("pki"), "AVON", "");
    let kent = ForceCa::new(&d.join("kent"), "KENT nadc CA");
    let met = ForceCa::new(&d.join("met"), "MET nadc CA");
    bundle(
        &d.join("bundle.pem"),
        &[d.join("pki/ca.crt"), kent.cert(), met.cert()],
    );
    let base = "data_dir = \"data\"\n\
                [tls]\n\
                ca = \"bundle.pem\"\n\
                cert = \"pki/nodes/node-1.crt\"\n\
                key = \"pki/nodes/node-1.key\"\n\
                [[trust.issuers]]\n\
                ca = \"pki/ca.crt\"\n\
                issues = [\"node\"]\n\
                [[trust.issuers]]\n\
                ca = \"kent/ca.crt\"\n\
                issues = [\"bof\", \"user\"]\n\
                forces = [\"KENT\"]\n";
    let config = d.join("node.toml");
    std::fs::write(&config, base).unwrap();
    let e = refused_at_load(d, &config);
    assert!(
        e.contains("CA \"O=Kent Police, CN=MET nadc CA\" (certificate 3 in the bundle")
            && e.contains("is not bound"),
        "{e}"
    );
    // A binding naming a CA the bundle lacks would bind nothing.
    bundle(&d.join("bundle.pem"), &[d.join("pki/ca.crt"), kent.cert()]);
    std::fs::write(
        &config,
        format!("{base}[[trust.issuers]]\nca = \"met/ca.crt\"\nissues = [\"node\"]\n"),
    )
    .unwrap();
    let e = refused_at_load(d, &config);
    assert!(
        e.contains("MET nadc CA") && e.contains("is not in the CA bundle"),
        "{e}"
    );
    // Every CA bound: the node starts (and without bindings, as before).
    std::fs::write(&config, base).unwrap();
    drop(Served::start(d, &config));
    std::fs::write(&config, base.split("[[trust.issuers]]").next().unwrap()).unwrap();
    drop(Served::start(d, &config));
}

#[tokio::test]
async fn an_intermediate_ca_issues_within_its_roots_binding() {
    assert!(
        have_openssl(),
        "this test makes an intermediate CA with openssl: install it (scripts/bootstrap.sh does)"
    );
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    support::process::pki_init(&d.join("pki"), "AVON", "");
    // KENT's root (bound to KENT) and its issuing CA (not in the bundle).
    let root = d.join("kent-root");
    std::fs::create_dir_all(&root).unwrap();
    let key = [
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
    ];
    openssl(&root, &[&key[..], &["-out", "root.key"]].concat());
    openssl(
        &root,
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            "root.key",
            "-sha256",
            "-days",
            "3650",
            "-subj",
            "/O=Kent Police/CN=KENT root CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE,pathlen:1",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-addext",
            "subjectKeyIdentifier=hash",
            "-out",
            "root.crt",
        ],
    );
    let issuing = ForceCa {
        dir: d.join("kent-issuing"),
        with_openssl: true,
    };
    std::fs::create_dir_all(&issuing.dir).unwrap();
    std::fs::write(
        issuing.dir.join("sub.ext"),
        "basicConstraints       = critical, CA:TRUE, pathlen:0\n\
         keyUsage               = critical, keyCertSign, cRLSign\n\
         subjectKeyIdentifier   = hash\n\
         authorityKeyIdentifier = keyid\n",
    )
    .unwrap();
    openssl(&issuing.dir, &[&key[..], &["-out", "ca.key"]].concat());
    openssl(
        &issuing.dir,
        &[
            "req",
            "-new",
            "-key",
            "ca.key",
            "-subj",
            "/O=Kent Police/CN=KENT issuing CA",
            "-out",
            "sub.csr",
        ],
    );
    let root_crt = root.join("root.crt").display().to_string();
    let root_key = root.join("root.key").display().to_string();
    openssl(
        &issuing.dir,
        &[
            "x509",
            "-req",
            "-in",
            "sub.csr",
            "-CA",
            &root_crt,
            "-CAkey",
            &root_key,
            "-set_serial",
            "0x5a17e0c0ffee5eed5eed5eed5eed5e01",
            "-days",
            "3650",
            "-sha256",
            "-extfile",
            "sub.ext",
            "-out",
            "ca.crt",
        ],
    );
    // Leaves from the issuing CA, each file its chain (leaf first).
    let chained = |(crt, key): (PathBuf, PathBuf)| {
        let chain = std::fs::read_to_string(&crt).unwrap()
            + &std::fs::read_to_string(issuing.cert()).unwrap();
        std::fs::write(&crt, chain).unwrap();
        (crt, key)
    };
    let kent_bof = chained(issuing.issue(
        "KENT-bof",
        &Principal::Bof {
            force: force("KENT"),
        },
    ));
    let eve = chained(issuing.issue("eve", &user("AVON", "eve", &[Role::Analyst])));
    bundle(
        &d.join("bundle.pem"),
        &[d.join("pki/ca.crt"), root.join("root.crt")],
    );
    let node = serve_with_kent_ca(d, "kent-root/root.crt", "");
    let ca = d.join("bundle.pem");
    let tls = ClientTls {
        ca: ca.clone(),
        cert: kent_bof.0.clone(),
        key: kent_bof.1.clone(),
    };
    assert_eq!(node_info(&node.url(), &tls).await.unwrap(), "bof KENT");
    // The root's binding holds for what its issuing CA signs.
    assert_refused_at_handshake(
        &node,
        &ca,
        &eve.0,
        &eve.1,
        &[
            "user eve of AVON",
            "CA \"O=Kent Police, CN=KENT root CA\"",
            "not of AVON",
        ],
    );
}
