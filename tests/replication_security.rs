//! Who may reach the replicated log: the nodes of the log alone.

mod support;

use std::path::PathBuf;

use nadc_pki::InitSpec;
use support::force;
use support::nats::NatsCluster;
use support::replicas::NODES;

/// Only nodes reach the log. The NATS servers map a client certificate to
/// a user by its subject, and only the nodes' subjects are users: a BOF's
/// or a user's certificate, though issued by the same CA, is refused, so
/// nothing but a node can publish a read or a change. A node's connects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_node_certificates_reach_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let spec = InitSpec {
        node_names: ["node-1", "node-2", "node-9", "nats"]
            .map(String::from)
            .to_vec(),
        forces: vec![force("AVON")],
        users: vec![(
            "alice".into(),
            vec![nadc_core::Role::Analyst],
            force("AVON"),
        )],
        ..Default::default()
    };
    let layout = nadc_pki::init(&dir.path().join("pki"), &spec, false).unwrap();
    let nats = NatsCluster::start(dir.path(), &layout, &NODES);
    let connect = |cert: PathBuf, key: PathBuf| {
        async_nats::ConnectOptions::new()
            .require_tls(true)
            .add_root_certificates(layout.ca_cert())
            .add_client_certificate(cert, key)
            .connect(nats.urls())
    };
    let refused = [
        (
            "AVON's BOF",
            layout.bof_cert(&force("AVON")),
            layout.bof_key(&force("AVON")),
        ),
        ("alice", layout.user_cert("alice"), layout.user_key("alice")),
        // A node of the CA, but not one of the log's.
        (
            "node-9",
            layout.node_cert("node-9"),
            layout.node_key("node-9"),
        ),
    ];
    for (who, cert, key) in refused {
        let e = connect(cert, key).await.expect_err(who);
        assert!(
            e.to_string().to_lowercase().contains("authorization"),
            "{who}: {e}"
        );
    }
    let node = connect(layout.node_cert("node-1"), layout.node_key("node-1"))
        .await
        .unwrap();
    node.publish("nadc.probe", "".into()).await.unwrap();
    node.flush().await.unwrap();
}
