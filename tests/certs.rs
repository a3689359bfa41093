//! Certificates end to end, against a real node over real TLS: each way a
//! certificate can be wrong is refused with an error that says which, a
//! revoked certificate is refused once the node has the CRL, and the node's
//! TLS files are reloaded without a restart (new connections only; a broken
//! or foreign reload changes nothing).

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use chrono::{TimeDelta, Utc};
use nadc_bof::push::push_batch;
use nadc_bof::{ClientTls, pb};
use nadc_core::Principal;
use nadc_pki::{PkiLayout, Serial};
use support::{Harness, batch, force, read};
use tonic::transport::Channel;

/// What a client with `tls` gets from the node: the caller the node saw,
/// or the error text the client library shows a person.
async fn node_info(url: &str, tls: &ClientTls) -> Result<String, String> {
    let ch = nadc_bof::connect(url, tls)
        .await
        .map_err(|e| e.to_string())?;
    info_over(ch).await
}

async fn info_over(ch: Channel) -> Result<String, String> {
    pb::admin_client::AdminClient::new(ch)
        .node_info(pb::NodeInfoRequest {})
        .await
        .map(|r| r.into_inner().caller)
        .map_err(|s| nadc_bof::ClientError::from(s).to_string())
}

/// Asserts the client was refused and its error names `alert` and explains it
/// with `words`.
/// Like [`assert_refused`] for a call that can be made again: the client
/// reads the node's alert after its side of the handshake, and on a loaded
/// machine hyper can report the closed connection before the alert, so a
/// refusal that does not yet name its reason is retried (a few times); every
/// attempt must be refused.
macro_rules! refused {
    ($call:expr, $alert:expr, $words:expr $(,)?) => {{
        let mut last = String::new();
        for _ in 0..10 {
            last = ($call)
                .await
                .expect_err("the node served a certificate it must refuse");
            if last.contains($alert) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_refused(Err(last), $alert, $words);
    }};
}

fn assert_refused(outcome: Result<String, String>, alert: &str, words: &str) {
    let err = outcome.expect_err("the node served a certificate it must refuse");
    assert!(err.contains(alert), "{alert} not named in: {err}");
    assert!(err.contains(words), "{words:?} not in: {err}");
}

/// A node whose `[tls] crl` names the harness PKI's `crl.pem`.
fn with_crl(cfg: &mut nadc_node::NodeConfig) {
    cfg.tls.crl = vec![cfg.tls.ca.with_file_name("crl.pem")];
}

async fn push_one(ch: Channel, id: &str) -> Result<u32, String> {
    push_batch(ch, batch(vec![read(id, "AB12CDE", "C1", 5)]))
        .await
        .map(|r| r.accepted)
        .map_err(|e| e.to_string())
}

/// The leaf certificate the node at `addr` presents, read by a plain rustls
/// client (with alice's certificate, so the handshake completes).
async fn served_certificate(addr: SocketAddr, layout: &PkiLayout) -> Vec<u8> {
    let (ca, cert, key) = (
        layout.ca_cert(),
        layout.user_cert("alice"),
        layout.user_key("alice"),
    );
    tokio::task::spawn_blocking(move || {
        let config = support::handshake::client_config(&ca, &cert, &key);
        let mut conn =
            rustls::ClientConnection::new(config, "localhost".try_into().unwrap()).unwrap();
        let mut tcp = std::net::TcpStream::connect(addr).unwrap();
        while conn.is_handshaking() {
            conn.complete_io(&mut tcp).unwrap();
        }
        conn.peer_certificates().unwrap()[0].to_vec()
    })
    .await
    .unwrap()
}

fn serial_of_file(path: &Path) -> Serial {
    let pem = std::fs::read_to_string(path).unwrap();
    Serial::of_cert_der(&nadc_pki::cert_der_from_pem(&pem).unwrap()).unwrap()
}

#[tokio::test]
async fn no_client_certificate_is_refused_as_certificate_required() {
    let h = Harness::start().await;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ca = std::fs::read(h.layout.ca_cert()).unwrap();
    let config = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(ca))
        .domain_name("localhost");
    let outcome = match Channel::from_shared(h.url.clone())
        .unwrap()
        .tls_config(config)
        .unwrap()
        .connect()
        .await
    {
        Err(e) => Err(nadc_bof::error_chain(&e)),
        Ok(ch) => info_over(ch).await,
    };
    assert_refused(
        outcome,
        "CertificateRequired",
        "requires a client certificate",
    );
    // The node still serves clients that have one.
    assert_eq!(
        node_info(&h.url, &h.user_tls("alice")).await.unwrap(),
        "user alice of AVON"
    );
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused() {
    let h = Harness::start().await;
    let other = tempfile::tempdir().unwrap();
    let (cert, key) = (other.path().join("a.crt"), other.path().join("a.key"));
    let tls = ClientTls {
        cert: cert.clone(),
        key: key.clone(),
        ..h.bof_tls("AVON")
    };

    // A CA the node has never heard of: unknown issuer.
    let stranger = nadc_pki::DevCa::generate("AVON rogue CA").unwrap();
    nadc_pki::write_certified_key(&cert, &key, &stranger.issue_bof(&force("AVON")).unwrap())
        .unwrap();
    refused!(
        node_info(&h.url, &tls),
        "UnknownCA",
        "not issued by a CA the node trusts",
    );

    // Another development PKI: a CA with the very same name as the node's,
    // so only the signature gives it away.
    let spec = nadc_pki::InitSpec {
        forces: vec![force("AVON")],
        ..Default::default()
    };
    let twin = nadc_pki::init(&other.path().join("twin"), &spec, false).unwrap();
    let tls = ClientTls {
        cert: twin.bof_cert(&force("AVON")),
        key: twin.bof_key(&force("AVON")),
        ..h.bof_tls("AVON")
    };
    refused!(
        node_info(&h.url, &tls),
        "DecryptError",
        "not signed by the CA the node trusts",
    );
    assert_eq!(
        node_info(&h.url, &h.bof_tls("AVON")).await.unwrap(),
        "bof AVON"
    );
}

#[tokio::test]
async fn an_expired_certificate_is_refused_as_expired() {
    let h = Harness::start().await;
    let ca = h.layout.load_ca().unwrap();
    let now = Utc::now();
    let expired = ca
        .issue_with_validity(
            &Principal::Bof {
                force: force("AVON"),
            },
            &[],
            &[],
            now - TimeDelta::days(800),
            now - TimeDelta::days(1),
        )
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("old.crt"), dir.path().join("old.key"));
    nadc_pki::write_certified_key(&cert, &key, &expired).unwrap();
    let tls = ClientTls {
        cert,
        key,
        ..h.bof_tls("AVON")
    };
    refused!(
        node_info(&h.url, &tls),
        "CertificateExpired",
        "it has expired",
    );
    assert_eq!(
        node_info(&h.url, &h.bof_tls("AVON")).await.unwrap(),
        "bof AVON"
    );
}

#[tokio::test]
async fn a_revoked_certificate_is_refused_while_the_others_still_work() {
    let mut h = Harness::start().await;
    h.cameras("KENT", 1).await;
    let revoked = h
        .layout
        .revoke_cert_file(&h.layout.bof_cert(&force("AVON")))
        .unwrap();
    assert_eq!(
        revoked.serial,
        serial_of_file(&h.layout.bof_cert(&force("AVON")))
    );
    // Before the node has the CRL, the certificate still works.
    assert_eq!(
        node_info(&h.url, &h.bof_tls("AVON")).await.unwrap(),
        "bof AVON"
    );

    h.configure = with_crl;
    h.restart().await;
    refused!(
        node_info(&h.url, &h.bof_tls("AVON")),
        "CertificateRevoked",
        "it has been revoked",
    );
    // The client library's own connect-and-push path says the same.
    let pushed = match nadc_bof::connect(&h.url, &h.bof_tls("AVON")).await {
        Ok(ch) => push_one(ch, "a1").await,
        Err(e) => Err(e.to_string()),
    };
    assert_refused(
        pushed.map(|n| n.to_string()),
        "CertificateRevoked",
        "revoked",
    );

    // Another force's BOF and a user are untouched.
    assert_eq!(push_one(h.bof("KENT").await, "k1").await, Ok(1));
    let (rows, _) = h.timeline("alice", "AB12CDE").await;
    assert_eq!(rows.len(), 1);
}

#[tokio::test]
async fn a_wrong_role_is_refused_with_permission_denied_naming_the_caller() {
    let h = Harness::start().await;
    // A BOF certificate searching.
    let mut search = pb::search_client::SearchClient::new(h.bof("AVON").await);
    let status = search
        .vrm_timeline(pb::VrmTimelineRequest {
            access: support::access(),
            vrm: "AB12CDE".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    assert!(
        status.message().contains("caller is bof AVON"),
        "{status:?}"
    );
    // A user certificate pushing reads.
    let err = push_one(h.user("alice").await, "x1").await.unwrap_err();
    assert!(
        err.contains("PermissionDenied") && err.contains("user alice of AVON"),
        "{err}"
    );
}

#[tokio::test]
async fn reloading_a_new_crl_refuses_and_cuts_the_connections_of_the_revoked_certificate_only() {
    let mut h = Harness::start().await;
    h.cameras("AVON", 1).await;
    h.cameras("KENT", 1).await;
    // The node starts with the CA's CRL configured, listing nothing yet.
    assert_eq!(h.layout.write_crl().unwrap(), 0);
    h.configure = with_crl;
    h.restart().await;
    let open = h.bof("AVON").await;
    assert_eq!(push_one(open.clone(), "a1").await, Ok(1));
    let kent_open = h.bof("KENT").await;
    assert_eq!(push_one(kent_open.clone(), "k0").await, Ok(1));
    // A push stream left open across the revocation.
    let (batches, rx) = tokio::sync::mpsc::channel(4);
    let mut acks = pb::ingest_client::IngestClient::new(open.clone())
        .push_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    batches
        .send(batch(vec![read("s1", "AB12CDE", "C1", 6)]))
        .await
        .unwrap();
    assert_eq!(acks.message().await.unwrap().unwrap().accepted, 1);

    h.layout
        .revoke_cert_file(&h.layout.bof_cert(&force("AVON")))
        .unwrap();
    // Not yet reloaded: the node still has the old (empty) CRL.
    assert_eq!(push_one(h.bof("AVON").await, "a2").await, Ok(1));

    let node = h.node.as_ref().unwrap();
    let reloaded = node.reload_tls().unwrap();
    assert_eq!(reloaded.crls.len(), 1);
    assert_eq!(reloaded.crls[0].revoked.len(), 1);
    // Both of AVON's BOF connections (the first channel's and this test's
    // two handshakes before the reload) were cut; nobody else's.
    assert!(reloaded.cut >= 1, "{reloaded:?}");
    // The open stream ends with an error, and acknowledges nothing more.
    let _ = batches
        .send(batch(vec![read("s2", "AB12CDE", "C1", 7)]))
        .await;
    let after = acks.message().await;
    assert!(after.is_err(), "the stream goes on: {after:?}");

    refused!(
        node_info(&h.url, &h.bof_tls("AVON")),
        "CertificateRevoked",
        "revoked",
    );
    // A connection accepted before the reload was cut: its channel can
    // only reconnect, and that is refused.
    let again = push_one(open, "a3").await.unwrap_err();
    assert!(
        again.contains("revoked") || again.contains("transport"),
        "{again}"
    );
    // Everyone else connects as before.
    assert_eq!(push_one(kent_open, "k1").await, Ok(1));
    assert_eq!(push_one(h.bof("KENT").await, "k2").await, Ok(1));
    assert_eq!(
        node_info(&h.url, &h.user_tls("alice")).await.unwrap(),
        "user alice of AVON"
    );
}

#[tokio::test]
async fn a_failed_reload_names_the_file_and_keeps_the_old_configuration() {
    let h = Harness::start().await;
    let node = h.node.as_ref().unwrap();
    let (cert, key) = (h.layout.node_cert("node-1"), h.layout.node_key("node-1"));
    let original = (std::fs::read(&cert).unwrap(), std::fs::read(&key).unwrap());
    let served = served_certificate(node.addr, &h.layout).await;

    // A damaged certificate file.
    std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\nnot base64!\n").unwrap();
    let err = node.reload_tls().unwrap_err().to_string();
    assert!(err.contains(&cert.display().to_string()), "{err}");
    assert_eq!(
        node_info(&h.url, &h.user_tls("alice")).await.unwrap(),
        "user alice of AVON",
        "still serving"
    );
    assert_eq!(served_certificate(node.addr, &h.layout).await, served);

    // A valid certificate, but for another node: the name cannot change.
    let ca = h.layout.load_ca().unwrap();
    let foreign = ca.issue_node("node-2", &[], &[]).unwrap();
    nadc_pki::write_certified_key(&cert, &key, &foreign).unwrap();
    let err = node.reload_tls().unwrap_err().to_string();
    assert!(
        err.contains("\"node-2\"") && err.contains("\"node-1\""),
        "{err}"
    );
    assert_eq!(served_certificate(node.addr, &h.layout).await, served);

    // The original files again: the reload works.
    std::fs::write(&cert, &original.0).unwrap();
    std::fs::write(&key, &original.1).unwrap();
    node.reload_tls().unwrap();
    assert_eq!(served_certificate(node.addr, &h.layout).await, served);

    // A CRL file that is named but is not a CRL of this CA.
    let other = nadc_pki::DevCa::generate("some other CA").unwrap();
    let stray = h.dir.path().join("stray-crl.pem");
    std::fs::write(&stray, other.issue_crl(&[], 1, Utc::now()).unwrap()).unwrap();
    let mut cfg = h.config();
    cfg.tls.crl = vec![stray.clone()];
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let store = nadc_store::RocksStore::open(
        &h.dir.path().join("data-2"),
        nadc_store::StoreOptions::default(),
    )
    .unwrap();
    let refused =
        nadc_node::start_with_listener(&cfg, Arc::new(store), listener, Arc::new(h.clock.clone()))
            .await
            .err()
            .expect("a node must not start with a CRL from a CA it does not trust")
            .to_string();
    assert!(
        refused.contains(&stray.display().to_string()) && refused.contains("some other CA"),
        "{refused}"
    );
}

#[tokio::test]
async fn a_renewed_node_certificate_is_served_to_new_connections_after_reload() {
    let h = Harness::start().await;
    let node = h.node.as_ref().unwrap();
    let before = served_certificate(node.addr, &h.layout).await;
    assert_eq!(
        Serial::of_cert_der(&before).unwrap(),
        serial_of_file(&h.layout.node_cert("node-1"))
    );
    let open = h.user("alice").await;

    // Renewal: a new key and certificate for the same node name.
    let ca = h.layout.load_ca().unwrap();
    let renewed = ca.issue_node("node-1", &[], &[]).unwrap();
    nadc_pki::write_certified_key(
        &h.layout.node_cert("node-1"),
        &h.layout.node_key("node-1"),
        &renewed,
    )
    .unwrap();
    node.reload_tls().unwrap();

    let after = served_certificate(node.addr, &h.layout).await;
    assert_eq!(
        after,
        renewed.cert_der().unwrap(),
        "the renewed certificate"
    );
    assert_ne!(after, before);
    // Clients connect as before, and the connection opened earlier carries on.
    assert_eq!(
        node_info(&h.url, &h.bof_tls("KENT")).await.unwrap(),
        "bof KENT"
    );
    assert_eq!(info_over(open).await.unwrap(), "user alice of AVON");
    assert_eq!(h.node_info("alice").await.node, "node-1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_does_not_call_a_peer_whose_certificate_is_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let spec = nadc_pki::InitSpec {
        node_names: vec!["node-1".into(), "node-2".into()],
        forces: vec![force("KENT")],
        users: vec![(
            "alice".into(),
            vec![nadc_core::Role::Analyst],
            force("AVON"),
        )],
        ..Default::default()
    };
    let layout = nadc_pki::init(&dir.path().join("pki"), &spec, false).unwrap();
    // node-2's certificate is revoked; only node-1 has the CRL.
    layout
        .revoke_cert_file(&layout.node_cert("node-2"))
        .unwrap();
    let listeners = [
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
    ];
    let urls: Vec<String> = listeners
        .iter()
        .map(|l| format!("https://{}", l.local_addr().unwrap()))
        .collect();
    let mut nodes = Vec::new();
    for (i, listener) in listeners.into_iter().enumerate() {
        let (name, peer) = [("node-1", "node-2"), ("node-2", "node-1")][i];
        let mut cfg = nadc_node::NodeConfig::new(
            dir.path().join(name),
            nadc_node::TlsFiles {
                ca: layout.ca_cert(),
                cert: layout.node_cert(name),
                key: layout.node_key(name),
                crl: if i == 0 {
                    vec![layout.crl()]
                } else {
                    Vec::new()
                },
            },
        );
        cfg.peers = vec![nadc_node::federation::PeerConfig::new(peer, &urls[1 - i])];
        let store =
            nadc_store::RocksStore::open(&cfg.data_dir, nadc_store::StoreOptions::default())
                .unwrap();
        let clock = Arc::new(nadc_core::time::ManualClock::new(support::now()));
        nodes.push(
            nadc_node::start_with_listener(&cfg, Arc::new(store), listener, clock)
                .await
                .unwrap(),
        );
    }
    // KENT's read is on node-2.
    let kent = nadc_bof::connect(
        &urls[1],
        &ClientTls {
            ca: layout.ca_cert(),
            cert: layout.bof_cert(&force("KENT")),
            key: layout.bof_key(&force("KENT")),
        },
    )
    .await
    .unwrap();
    let mut gps = read("k1", "AB12CDE", "GPS-1", 5);
    (gps.lat, gps.lon) = (Some(51.45), Some(-2.58));
    assert_eq!(
        push_batch(kent, batch(vec![gps])).await.unwrap().accepted,
        1
    );

    // A national search at node-1 does not reach node-2, and says why.
    let alice = nadc_bof::connect(
        &urls[0],
        &ClientTls {
            ca: layout.ca_cert(),
            cert: layout.user_cert("alice"),
            key: layout.user_key("alice"),
        },
    )
    .await
    .unwrap();
    let mut search = pb::search_client::SearchClient::new(alice);
    let mut stream = search
        .vrm_timeline(pb::VrmTimelineRequest {
            access: support::access(),
            vrm: "AB12CDE".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let (mut rows, mut summary) = (0, None);
    while let Some(c) = stream.message().await.unwrap() {
        match c.chunk.unwrap() {
            pb::search_chunk::Chunk::Rows(b) => rows += b.rows.len(),
            pb::search_chunk::Chunk::Summary(s) => summary = Some(s),
            pb::search_chunk::Chunk::Vrms(_) => {}
        }
    }
    let summary = summary.unwrap();
    assert_eq!(rows, 0, "node-2's read must not come back");
    assert!(summary.partial);
    let peer = summary.nodes.iter().find(|n| n.node == "node-2").unwrap();
    assert!(!peer.ok);
    assert!(peer.error.contains("Revoked"), "{}", peer.error);
    for node in nodes {
        node.shutdown().await.unwrap();
    }
}
