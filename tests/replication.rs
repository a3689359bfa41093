//! Replicated mode on a real NATS JetStream cluster (issue 22): three
//! `nats-server` processes with R3 streams, two nodes whose stores are
//! replicas of the log, BOFs pushing over mTLS to either.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nadc_bof::pb;
use nadc_pki::InitSpec;
use nadc_store::{RocksStore, Store, StoreOptions};
use support::nats::NatsCluster;
use support::replicas::*;
use support::{access, force, now};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_hold_the_same_reads_and_a_lost_quorum_refuses_pushes_until_it_is_back() {
    let mut r = Replicas::start().await;
    let mut expected: BTreeSet<(String, String)> = BTreeSet::new();
    let mut add = |b: &pb::ReadBatch| {
        for read in &b.reads {
            expected.insert((b.force.clone(), read.read_id.clone()));
        }
    };

    // AVON pushes to node-1, KENT to node-2.
    let mut avon = r.bof(0, "AVON").await;
    let mut kent = r.bof(1, "KENT").await;
    for (k, tag) in ["a1", "a2", "a3"].iter().enumerate() {
        let b = batch("AVON", tag, 100, k as u64);
        let res = push_until_taken(&mut avon, &b).await;
        assert_eq!((res.accepted, res.duplicates), (100, 0), "{res:?}");
        add(&b);
    }
    let b = batch("KENT", "k1", 50, 0);
    let res = push_until_taken(&mut kent, &b).await;
    assert_eq!((res.accepted, res.duplicates), (50, 0), "{res:?}");
    add(&b);

    // The same batch again, to the other node: every read a duplicate,
    // as a store tells it.
    let mut avon2 = r.bof(1, "AVON").await;
    let res = push_until_taken(&mut avon2, &batch("AVON", "a2", 100, 9)).await;
    assert_eq!((res.accepted, res.duplicates), (0, 100), "{res:?}");
    // A batch with a bad read: rejected by name, the rest replicated.
    let mut bad = batch("AVON", "a4", 10, 10);
    bad.reads[3].vrm = "!!".into();
    let res = push_until_taken(&mut avon, &bad).await;
    assert_eq!(res.accepted, 9);
    assert_eq!(res.rejected.len(), 1);
    assert_eq!(res.rejected[0].index, 3);
    bad.reads.remove(3);
    add(&bad);

    // Quorum lost: two of the three servers down. A push is refused with
    // UNAVAILABLE and a retry hint, and nothing of it is reported stored.
    r.nats.servers[1].kill();
    r.nats.servers[2].kill();
    let lost = batch("AVON", "q1", 20, 11);
    let refused = avon.push_batch(lost.clone()).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused}");
    assert!(nadc_bof::retry_after(&refused).is_some(), "{refused}");
    // Searches on the stores go on.
    let rows = timeline(&r, 1, "R200 ABC").await.0.len();
    assert!(rows > 0, "no rows from a replica while the log is down");

    // Quorum back: the refused batch is taken when sent again.
    r.nats.servers[1].restart();
    r.nats.servers[2].restart();
    let res = push_until_taken(&mut avon, &lost).await;
    assert_eq!(res.accepted + res.duplicates, 20, "{res:?}");
    add(&lost);

    // A last batch to node-1, then the same to node-2: each is
    // acknowledged only once that node's replica has applied it, and so
    // everything before it in the log (node-2's copy is all duplicates).
    let b = batch("AVON", "a5", 5, 12);
    let res = push_until_taken(&mut avon, &b).await;
    assert_eq!(res.accepted, 5, "{res:?}");
    let res = push_until_taken(&mut avon2, &b).await;
    assert_eq!(res.duplicates, 5, "{res:?}");
    add(&b);
    // node-2 applied the log's last message (its own), so it is not behind.
    let st = replication_status(&r, 1, "alice").await;
    assert!(st.log_reachable, "{st:?}");
    assert_eq!((st.applied, st.behind), (st.last_in_log, 0), "{st:?}");
    assert_eq!(st.replicas, 3, "{st:?}");
    assert!(st.applied > 0 && st.stream == "NADC_READS", "{st:?}");

    let stores = r.stop_and_read().await;
    assert_holds("node-1", &stores[0], &expected);
    assert_holds("node-2", &stores[1], &expected);
    // Applied in the same order: the same reads under the same numbers,
    // received at the same instants.
    assert!(stores[0] == stores[1], "the replicas differ");
}

/// Pushes `batches` batches of `size` reads of force `f` to `url`, each
/// sent again after a failure (the node down or restarting, the log
/// refusing it) until it is acknowledged; counts acknowledged batches in
/// `done`. Gives the batches, all acknowledged.
async fn keep_pushing(
    url: String,
    tls: nadc_bof::ClientTls,
    f: &'static str,
    batches: usize,
    size: usize,
    done: tokio::sync::watch::Sender<usize>,
) -> Vec<pb::ReadBatch> {
    let mut client =
        pb::ingest_client::IngestClient::new(nadc_bof::connect_lazy(&url, &tls).unwrap());
    let mut acked = Vec::new();
    for k in 0..batches {
        let b = batch(f, &format!("{}{k}", f.to_lowercase()), size, k as u64);
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            match client.push_batch(b.clone()).await {
                Ok(r) => {
                    let r = r.into_inner();
                    assert!(r.rejected.is_empty(), "{r:?}");
                    assert_eq!(r.accepted + r.duplicates, size as u32, "{r:?}");
                    break;
                }
                // The node gone (a refused connection, a cut one) or the
                // log refusing: sent again, as a BOF does.
                Err(s)
                    if matches!(
                        s.code(),
                        tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled
                    ) =>
                {
                    assert!(Instant::now() < deadline, "batch {k} never taken: {s}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(s) => panic!("batch {k}: {s}"),
            }
        }
        acked.push(b);
        done.send_replace(k + 1);
    }
    acked
}

/// Batches each pusher sends: enough that both are still pushing through
/// the kills below.
const BATCHES: usize = 300;

/// Waits until a pusher has `n` batches acknowledged (or has ended: its
/// outcome is checked when it is joined).
async fn progress(done: &mut tokio::sync::watch::Receiver<usize>, n: usize) {
    let _ = done.wait_for(|k| *k >= n.min(BATCHES)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_killed_while_bofs_push_applies_every_acknowledged_read_once() {
    use support::process::{Server, free_listen_addr};
    let dir = tempfile::tempdir().unwrap();
    let spec = InitSpec {
        node_names: ["node-1", "node-2", "nats"].map(String::from).to_vec(),
        forces: vec![force("AVON"), force("KENT")],
        ..Default::default()
    };
    let pki = dir.path().join("pki");
    let layout = nadc_pki::init(&pki, &spec, false).unwrap();
    let mut nats = NatsCluster::start(dir.path(), &layout, &NODES);
    let mut servers = Vec::new();
    let mut node_dirs = Vec::new();
    for name in NODES {
        let nd = dir.path().join(name);
        std::fs::create_dir_all(&nd).unwrap();
        std::os::unix::fs::symlink(&pki, nd.join("pki")).unwrap();
        let config = replicated_config(&nd, &layout, &nats.urls());
        let listen = free_listen_addr();
        let args = [
            "--config".to_string(),
            config.display().to_string(),
            "--node-name".into(),
            name.into(),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        servers.push(Some(Server::start_with(&nd, &listen, &args)));
        node_dirs.push((
            nd,
            listen,
            args.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        ));
    }
    let bof = |f: &str| nadc_bof::ClientTls {
        ca: layout.ca_cert(),
        cert: layout.bof_cert(&force(f)),
        key: layout.bof_key(&force(f)),
    };
    let (avon_tx, mut avon_done) = tokio::sync::watch::channel(0);
    let (kent_tx, mut kent_done) = tokio::sync::watch::channel(0);
    let avon = tokio::spawn(keep_pushing(
        servers[0].as_ref().unwrap().url.clone(),
        bof("AVON"),
        "AVON",
        BATCHES,
        20,
        avon_tx,
    ));
    let kent = tokio::spawn(keep_pushing(
        servers[1].as_ref().unwrap().url.clone(),
        bof("KENT"),
        "KENT",
        BATCHES,
        20,
        kent_tx,
    ));

    // node-2 SIGKILLed mid-stream; the log goes on taking AVON's batches
    // through node-1; node-2 restarted on the same port and data.
    progress(&mut kent_done, 5).await;
    servers[1].take().unwrap().kill();
    let seen = *avon_done.borrow();
    progress(&mut avon_done, seen + 5).await;
    let (nd, listen, args) = &node_dirs[1];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    servers[1] = Some(Server::start_with(nd, listen, &args));

    // One NATS server SIGKILLed and restarted while both push: the quorum
    // of two goes on.
    progress(&mut kent_done, 15).await;
    nats.servers[1].kill();
    let seen = *avon_done.borrow();
    progress(&mut avon_done, seen + 5).await;
    nats.servers[1].restart();

    let mut expected = BTreeSet::new();
    for b in avon.await.unwrap().into_iter().chain(kent.await.unwrap()) {
        for read in &b.reads {
            expected.insert((b.force.clone(), read.read_id.clone()));
        }
    }
    // A last batch through node-1, then the same through node-2: each
    // acknowledged once its node's replica applied it and all before it.
    let last = batch("AVON", "last", 5, 99);
    for (i, want) in [(0, (5, 0)), (1, (0, 5))] {
        let mut c = pb::ingest_client::IngestClient::new(
            nadc_bof::connect(&servers[i].as_ref().unwrap().url, &bof("AVON"))
                .await
                .unwrap(),
        );
        let r = push_until_taken(&mut c, &last).await;
        assert_eq!((r.accepted, r.duplicates), want, "{r:?}");
    }
    for read in &last.reads {
        expected.insert(("AVON".to_string(), read.read_id.clone()));
    }
    for s in servers.iter_mut() {
        s.take().unwrap().stop();
    }
    let mut stores = Vec::new();
    for (nd, _, _) in &node_dirs {
        stores.push(stored_reads(nd.join("data")).await);
    }
    assert_holds("node-1", &stores[0], &expected);
    assert_holds("node-2", &stores[1], &expected);
    assert!(stores[0] == stores[1], "the replicas differ");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_older_than_the_log_window_refuses_to_skip_what_it_missed() {
    let mut r = Replicas::start().await;
    // node-2 stops; the log goes on through node-1.
    r.nodes[1].take().unwrap().shutdown().await.unwrap();
    let mut avon = r.bof(0, "AVON").await;
    for k in 0..3 {
        let b = batch("AVON", &format!("w{k}"), 10, k);
        assert_eq!(push_until_taken(&mut avon, &b).await.accepted, 10);
    }
    // What node-2 missed leaves the log (as past the log's window).
    let client = async_nats::ConnectOptions::new()
        .require_tls(true)
        .add_root_certificates(r.layout.ca_cert())
        .add_client_certificate(r.layout.node_cert("node-1"), r.layout.node_key("node-1"))
        .connect(r.nats.urls())
        .await
        .unwrap();
    let js = async_nats::jetstream::new(client);
    let stream = js.get_stream("NADC_READS").await.unwrap();
    let last = stream.get_info().await.unwrap().state.last_sequence;
    stream.purge().sequence(last).await.unwrap();
    // Restarted, node-2 does not skip the gap: it says why it is not
    // applying, and node-1 goes on.
    let addr = r.urls[1].trim_start_matches("https://").to_string();
    r.start_node(1, &addr).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let st = loop {
        let st = replication_status(&r, 1, "alice").await;
        if st.problem.contains("no longer holds") {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "the gap was not reported: {st:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(st.applied < last, "{st:?}");
    // Its answers say they may lack the newest reads, and why; node-1's
    // do not.
    let stale = timeline(&r, 1, "R200 ABC").await.1.stale;
    assert_eq!(stale.len(), 1, "{stale:?}");
    assert_eq!(stale[0].node, "node-2");
    assert!(stale[0].problem.contains("no longer holds"), "{stale:?}");
    assert!(timeline(&r, 0, "R200 ABC").await.1.stale.is_empty());
    // So do its convoy and cloned-plate analyses.
    let tls = nadc_bof::ClientTls {
        ca: r.layout.ca_cert(),
        cert: r.layout.user_cert("alice"),
        key: r.layout.user_key("alice"),
    };
    let mut search = pb::search_client::SearchClient::new(r.channel(1, tls).await);
    let window = (
        Some(nadc_proto::to_pb_time(now().minus_days(1))),
        Some(nadc_proto::to_pb_time(now())),
    );
    let mut convoy = search
        .convoy(pb::ConvoyRequest {
            vrms: vec!["R200 ABC".into()],
            from: window.0,
            to: window.1,
            access: access(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut convoy_stale = None;
    while let Some(c) = convoy.message().await.unwrap() {
        if let Some(pb::convoy_chunk::Chunk::Summary(s)) = c.chunk {
            convoy_stale = Some(s.stale);
        }
    }
    let convoy_stale = convoy_stale.expect("a convoy answer ends with its summary");
    assert_eq!(convoy_stale.len(), 1, "{convoy_stale:?}");
    assert_eq!(convoy_stale[0].node, "node-2");
    let mut clones = search
        .clones(pb::ClonesRequest {
            from: window.0,
            to: window.1,
            max_speed_kmh: 250.0,
            access: access(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut clones_stale = None;
    while let Some(c) = clones.message().await.unwrap() {
        if let Some(pb::clones_chunk::Chunk::Summary(s)) = c.chunk {
            clones_stale = Some(s.stale);
        }
    }
    let clones_stale = clones_stale.expect("a clones answer ends with its summary");
    assert_eq!(clones_stale.len(), 1, "{clones_stale:?}");
    let stores = r.stop_and_read().await;
    assert_eq!(stores[0].len(), 30);
    assert!(
        stores[1].is_empty(),
        "node-2 applied past what the log no longer holds"
    );
}

/// `nadc replica rebuild` as node `me`, from node `from`, into `data`.
fn rebuild(r: &Replicas, me: &str, from: usize, data: &std::path::Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_nadc"))
        .args(["replica", "rebuild", "--data"])
        .arg(data)
        .env("NADC_NODE", &r.urls[from])
        .env("NADC_CA", r.layout.ca_cert())
        .env("NADC_CERT", r.layout.node_cert(me))
        .env("NADC_KEY", r.layout.node_key(me))
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_wiped_and_rebuilt_from_another_answers_alike() {
    let mut r = Replicas::start().await;
    let mut avon = r.bof(0, "AVON").await;
    let mut kent = r.bof(1, "KENT").await;
    for k in 0..3 {
        push_until_taken(&mut avon, &batch("AVON", &format!("b{k}"), 40, k)).await;
        push_until_taken(&mut kent, &batch("KENT", &format!("c{k}"), 40, k)).await;
    }
    // node-2's disk is lost; the log goes on without it.
    r.nodes[1].take().unwrap().shutdown().await.unwrap();
    let data = r.configs[1].data_dir.clone();
    std::fs::remove_dir_all(&data).unwrap();
    push_until_taken(&mut avon, &batch("AVON", "d0", 40, 10)).await;

    // Only a node named in snapshot_to, by its node certificate, gets a
    // copy: node-3 is refused, and so is a user.
    let refused = rebuild(&r, "node-3", 0, &r.dir.path().join("stolen"));
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("snapshot_to"), "{err}");
    assert!(!r.dir.path().join("stolen").exists());
    let tls = nadc_bof::ClientTls {
        ca: r.layout.ca_cert(),
        cert: r.layout.user_cert("alice"),
        key: r.layout.user_key("alice"),
    };
    let mut admin = pb::admin_client::AdminClient::new(r.channel(0, tls).await);
    let denied = admin.snapshot(pb::SnapshotRequest {}).await.unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied, "{denied}");

    // Rebuilt from node-1's copy, then started: it replays the log after
    // the copy's position, including what came after the copy.
    let out = rebuild(&r, "node-2", 0, &data);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("resumes the log NADC_READS after position")
    );
    push_until_taken(&mut avon, &batch("AVON", "d1", 40, 11)).await;
    let addr = r.urls[1].trim_start_matches("https://").to_string();
    r.start_node(1, &addr).await;
    let last = batch("AVON", "last", 5, 12);
    push_until_taken(&mut avon, &last).await;
    let mut avon2 = r.bof(1, "AVON").await;
    assert_eq!(push_until_taken(&mut avon2, &last).await.duplicates, 5);

    // Every search answer alike (the timelines of every VRM pushed).
    let vrms: BTreeSet<String> = (0..40)
        .map(|i| format!("R2{:02} {}", i % 100, ["ABC", "XYZ", "KLM"][i % 3]))
        .chain((0..5).map(|i| format!("R4{:02} {}", i, ["ABC", "XYZ", "KLM"][i % 3])))
        .collect();
    for vrm in &vrms {
        let a = timeline(&r, 0, vrm).await.0;
        let b = timeline(&r, 1, vrm).await.0;
        assert!(!a.is_empty(), "{vrm}");
        assert!(a == b, "the timelines of {vrm} differ");
    }
    let stores = r.stop_and_read().await;
    assert_eq!(stores[0].len(), 6 * 40 + 2 * 40 + 5);
    assert!(stores[0] == stores[1], "the replicas differ");

    // node-1 audited both: the copy it gave node-2 and the one it refused
    // node-3; and node-2's copy holds none of node-1's audit chain.
    let audit = |dir: PathBuf| {
        let s = RocksStore::open(&dir, StoreOptions::default()).unwrap();
        let mut entries = Vec::new();
        s.audit(1, &mut |e| {
            entries.push(e.entry);
            ControlFlow::Continue(())
        })
        .unwrap();
        entries
    };
    let one = audit(r.configs[0].data_dir.clone());
    let snaps: Vec<_> = one
        .iter()
        .filter(|e| e.action == "replica.snapshot")
        .collect();
    assert!(
        snaps
            .iter()
            .any(|e| e.user.contains("node-2") && e.outcome == nadc_core::audit::Outcome::Ok),
        "{snaps:?}"
    );
    assert!(
        snaps
            .iter()
            .any(|e| e.user.contains("node-3") && e.outcome != nadc_core::audit::Outcome::Ok),
        "{snaps:?}"
    );
    let two = audit(r.configs[1].data_dir.clone());
    assert!(
        two.iter().all(|e| e.node != "node-1"),
        "node-1's audit chain was copied"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_whose_forces_changed_refuses_to_go_on_from_its_old_position() {
    let mut r = Replicas::start().await;
    let mut avon = r.bof(0, "AVON").await;
    let b = batch("AVON", "f0", 10, 0);
    push_until_taken(&mut avon, &b).await;
    let mut avon2 = r.bof(1, "AVON").await;
    assert_eq!(push_until_taken(&mut avon2, &b).await.duplicates, 10);
    // node-2 comes back holding AVON only: its position counted every
    // force's messages, so it is no position in AVON's alone.
    r.nodes[1].take().unwrap().shutdown().await.unwrap();
    if let Some(rep) = r.configs[1].replication.as_mut() {
        rep.forces = vec!["AVON".into()];
    }
    let addr = r.urls[1].trim_start_matches("https://").to_string();
    r.start_node(1, &addr).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let st = loop {
        let st = replication_status(&r, 1, "alice").await;
        if !st.problem.is_empty() {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "the changed scope was not reported: {st:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        st.problem.contains("forces this replica holds changed"),
        "{st:?}"
    );
    // Pushes to it are refused at once, with a retry hint.
    let mut avon2 = r.bof(1, "AVON").await;
    let refused = avon2
        .push_batch(batch("AVON", "f1", 5, 1))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused}");
    assert!(nadc_bof::retry_after(&refused).is_some());
    assert!(refused.message().contains("not applying"), "{refused}");
}
