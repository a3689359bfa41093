//! BOFs pushing through their on-disk spools while the node is faulted
//! (`tests/reliability.rs`, `tests/power_cut.rs`): batches whose read ids
//! follow from their sequence number, so what the node must hold follows
//! from each spool's acknowledged mark, and the check of a store against
//! it.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use nadc_bof::spool::{self, DeliveryEvent, RetryPolicy, Spool, SpoolConfig};
use nadc_bof::{ClientTls, pb};
use nadc_core::Timestamp;
use nadc_store::{RocksStore, Store, StoreOptions};
use rand::Rng;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Reads per spooled batch.
pub const BATCH: usize = 100;

/// The TLS files of `force`'s BOF under `dir/pki` (`nadc pki init`'s layout).
pub fn bof_tls(dir: &Path, force: &str) -> ClientTls {
    let pki = dir.join("pki");
    ClientTls {
        ca: pki.join("ca.crt"),
        cert: pki.join("bofs").join(format!("{force}.crt")),
        key: pki.join("bofs").join(format!("{force}.key")),
    }
}

pub fn read_id(force: &str, seq: u64, i: usize) -> String {
    format!("{force}-{seq}-{i}")
}

/// Batch `seq` of `force`: its reads' ids are derived from `(seq, i)`, so
/// the acknowledged set is known from the spool's acknowledged mark.
pub fn batch(force: &str, seq: u64, base: Timestamp) -> Vec<pb::Read> {
    sized_batch(force, seq, base, BATCH)
}

pub fn sized_batch(force: &str, seq: u64, base: Timestamp, n: usize) -> Vec<pb::Read> {
    (0..n)
        .map(|i| pb::Read {
            read_id: read_id(force, seq, i),
            vrm: format!("CR{:02}{}", seq % 100, ["ABC", "DEF", "GHJ"][i % 3]),
            observed_at: Some(nadc_proto::to_pb_time(
                base.plus_millis((seq % 1000) as i64 * 1000 + i as i64),
            )),
            camera_id: format!("{force}-CAM{}", i % 7),
            lat: Some(51.45 + (i as f64) * 1e-4),
            lon: Some(-2.58),
            ..Default::default()
        })
        .collect()
}

/// Every stored read's (force, read id) with how many times it is stored.
pub fn stored(data: &Path) -> HashMap<(String, String), u32> {
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
pub fn check(data: &Path, acked: &HashMap<&str, u64>, when: &str) -> usize {
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

/// Quick retries: the node is down for well under a second at a time.
pub fn quick_retries() -> RetryPolicy {
    RetryPolicy {
        base: Duration::from_millis(20),
        cap: Duration::from_millis(300),
    }
}

/// A BOF's delivery loop.
type Delivery = JoinHandle<Result<(), nadc_bof::ClientError>>;

/// One BOF per force, each a producer spooling `batches` batches at its own
/// pace (5–40 ms apart) and a delivery loop sending the spool to its node,
/// retrying while the node is down.
pub struct SpooledBofs {
    pub spools: Vec<(&'static str, Arc<Spool>)>,
    tasks: Vec<(JoinHandle<()>, Delivery)>,
    stop: watch::Sender<bool>,
    batches: u64,
}

impl SpooledBofs {
    /// Spools under `dir/spool-FORCE`; `force`'s BOF pushes to `url(force)`
    /// with `tls(force)`.
    pub fn start(
        dir: &Path,
        forces: &[&'static str],
        batches: u64,
        base: Timestamp,
        url: impl Fn(&str) -> String,
        tls: impl Fn(&str) -> ClientTls,
    ) -> SpooledBofs {
        let (stop, stop_rx) = watch::channel(false);
        let mut spools = Vec::new();
        let mut tasks = Vec::new();
        for &force in forces {
            let spool = Arc::new(
                Spool::open(SpoolConfig::new(dir.join(format!("spool-{force}")))).unwrap(),
            );
            spools.push((force, spool.clone()));
            let producer = {
                let spool = spool.clone();
                tokio::spawn(async move {
                    for seq in 1..=batches {
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
            let channel = nadc_bof::connect_lazy(&url(force), &tls(force)).unwrap();
            let delivery = tokio::spawn(spool::deliver(
                spool,
                channel,
                4,
                quick_retries(),
                stop_rx.clone(),
                |e| {
                    if let DeliveryEvent::Acked { rejected, .. } = e {
                        assert!(rejected.is_empty(), "{rejected:?}");
                    }
                },
            ));
            tasks.push((producer, delivery));
        }
        SpooledBofs {
            spools,
            tasks,
            stop,
            batches,
        }
    }

    /// Each force's acknowledged mark: batches `1..=mark` are acknowledged.
    pub fn acked(&self) -> HashMap<&'static str, u64> {
        self.spools
            .iter()
            .map(|(f, s)| (*f, s.status().acked))
            .collect()
    }

    /// Lets every BOF finish and drain its spool; every batch must be
    /// acknowledged. Returns the acknowledged marks.
    pub async fn finish(self) -> HashMap<&'static str, u64> {
        let _ = self.stop.send(true);
        for (producer, delivery) in self.tasks {
            producer.await.unwrap();
            tokio::time::timeout(Duration::from_secs(120), delivery)
                .await
                .expect("delivery drained")
                .unwrap()
                .unwrap();
        }
        let acked: HashMap<&str, u64> = self
            .spools
            .iter()
            .map(|(f, s)| (*f, s.status().acked))
            .collect();
        for (f, n) in &acked {
            assert_eq!(*n, self.batches, "{f}: not all acknowledged");
        }
        acked
    }
}
