//! Reliability under faults: the node (`nadc serve`, a separate process) is
//! killed with SIGKILL at random moments while several BOFs push
//! concurrently through their on-disk spools, and restarted on the same
//! port. After every kill the node's RocksDB is opened directly and must
//! hold every read the node had acknowledged, each exactly once; at the end
//! every read produced is stored exactly once.
//!
//! `NADC_CRASH_ITERATIONS` sets the number of kills (default 6, a few
//! seconds each); the long run in BENCHMARKS.md uses hundreds.

mod support;

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use nadc_bof::spool::{self, DeliveryEvent, RetryPolicy, Spool, SpoolConfig};
use nadc_bof::{ClientTls, pb};
use nadc_core::Timestamp;
use nadc_core::time::{Clock, SystemClock};
use nadc_store::{RocksStore, Store, StoreOptions};
use rand::Rng;
use support::process::Server;
use tokio::sync::watch;

const NADC: &str = env!("CARGO_BIN_EXE_nadc");
const FORCES: [&str; 3] = ["AVON", "KENT", "WILTS"];
const BATCH: usize = 100;

fn pki_init(dir: &Path) {
    let out = Command::new(NADC)
        .args(["pki", "init", "--forces", &FORCES.join(","), "--out"])
        .arg(dir.join("pki"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn bof_tls(dir: &Path, force: &str) -> ClientTls {
    let pki = dir.join("pki");
    ClientTls {
        ca: pki.join("ca.crt"),
        cert: pki.join("bofs").join(format!("{force}.crt")),
        key: pki.join("bofs").join(format!("{force}.key")),
    }
}

fn read_id(force: &str, seq: u64, i: usize) -> String {
    format!("{force}-{seq}-{i}")
}

/// Batch `seq` of `force`: its reads' ids are derived from `(seq, i)`, so
/// the acknowledged set is known from the spool's acknowledged mark.
fn batch(force: &str, seq: u64, base: Timestamp) -> Vec<pb::Read> {
    (0..BATCH)
        .map(|i| pb::Read {
            read_id: read_id(force, seq, i),
            vrm: format!("CR{:02}{}", seq % 100, ["ABC", "DEF", "GHJ"][i % 3]),
            observed_at: Some(nadc_proto::to_pb_time(
                base.plus_millis((seq as i64) * 1000 + i as i64),
            )),
            camera_id: format!("{force}-CAM{}", i % 7),
            lat: Some(51.45 + (i as f64) * 1e-4),
            lon: Some(-2.58),
            ..Default::default()
        })
        .collect()
}

/// Every stored read's (force, read id) with how many times it is stored.
fn stored(data: &Path) -> HashMap<(String, String), u32> {
    let store = RocksStore::open(data, StoreOptions::default()).unwrap();
    let mut out = HashMap::new();
    store
        .scan_days(Timestamp::EPOCH, Timestamp::MAX, &mut |r| {
            *out.entry((r.force.to_string(), r.read.read_id.clone()))
                .or_default() += 1;
            ControlFlow::Continue(())
        })
        .unwrap();
    store.close().unwrap();
    out
}

/// Checks that every read of batches `1..=acked[force]` is stored exactly
/// once and nothing is stored twice; returns the number stored.
fn check(data: &Path, acked: &HashMap<&str, u64>, when: &str) -> usize {
    let stored = stored(data);
    let dup: Vec<_> = stored.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(
        dup.is_empty(),
        "{when}: reads stored more than once: {dup:?}"
    );
    for (force, &upto) in acked {
        for seq in 1..=upto {
            for i in 0..BATCH {
                let key = (force.to_string(), read_id(force, seq, i));
                assert!(
                    stored.contains_key(&key),
                    "{when}: acknowledged read {} of batch {seq} is lost",
                    key.1
                );
            }
        }
    }
    stored.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_during_concurrent_ingest_loses_no_acknowledged_read_and_stores_none_twice() {
    nadc_node::tls::install_crypto_provider();
    let iterations: usize = std::env::var("NADC_CRASH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    let batches_per_force: u64 = 40 + 15 * iterations as u64;
    let dir = tempfile::tempdir().unwrap();
    pki_init(dir.path());
    let listen = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let mut server = Server::start_on(dir.path(), &listen);
    let base = SystemClock.now().plus_millis(-3_600_000);

    // Each BOF: a producer spooling its batches at its own pace, and a
    // delivery loop retrying quickly while the node is down.
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut spools: Vec<(&str, Arc<Spool>)> = Vec::new();
    let mut tasks = Vec::new();
    for force in FORCES {
        let spool = Arc::new(
            Spool::open(SpoolConfig::new(dir.path().join(format!("spool-{force}")))).unwrap(),
        );
        spools.push((force, spool.clone()));
        let producer = {
            let spool = spool.clone();
            tokio::spawn(async move {
                for seq in 1..=batches_per_force {
                    let s = spool.clone();
                    let reads = batch(force, seq, base);
                    let got = tokio::task::spawn_blocking(move || s.append(&reads))
                        .await
                        .unwrap()
                        .unwrap();
                    assert_eq!(got, seq);
                    let pause = rand::rng().random_range(5..40);
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                }
            })
        };
        let channel = nadc_bof::connect_lazy(&server.url, &bof_tls(dir.path(), force)).unwrap();
        let delivery = tokio::spawn(spool::deliver(
            spool,
            channel,
            4,
            RetryPolicy {
                base: Duration::from_millis(20),
                cap: Duration::from_millis(300),
            },
            stop_rx.clone(),
            |e| {
                if let DeliveryEvent::Acked { rejected, .. } = e {
                    assert!(rejected.is_empty(), "{rejected:?}");
                }
            },
        ));
        tasks.push((producer, delivery));
    }

    let data = dir.path().join("data");
    let mut survived = 0;
    for k in 0..iterations {
        let wait = rand::rng().random_range(150..900);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        server.kill();
        // Only acknowledgements received before the kill can be read now.
        let acked: HashMap<&str, u64> =
            spools.iter().map(|(f, s)| (*f, s.status().acked)).collect();
        let n = check(&data, &acked, &format!("after kill {}", k + 1));
        assert!(n >= acked.values().sum::<u64>() as usize * BATCH);
        survived += 1;
        server = Server::start_on(dir.path(), &listen);
    }

    // Let every BOF finish and drain its spool.
    let _ = stop_tx.send(true);
    for (producer, delivery) in tasks {
        producer.await.unwrap();
        tokio::time::timeout(Duration::from_secs(120), delivery)
            .await
            .expect("delivery drained")
            .unwrap()
            .unwrap();
    }
    let acked: HashMap<&str, u64> = spools.iter().map(|(f, s)| (*f, s.status().acked)).collect();
    for (f, s) in &spools {
        assert_eq!(
            s.status().acked,
            batches_per_force,
            "{f}: not all acknowledged"
        );
    }
    server.stop();
    let n = check(&data, &acked, "at the end");
    assert_eq!(n, FORCES.len() * batches_per_force as usize * BATCH);
    eprintln!(
        "crash-kill: {survived} kills survived, {n} reads stored once each, 0 lost, 0 duplicated"
    );
}
