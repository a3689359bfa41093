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
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use nadc_bof::spool::{self, Spool, SpoolConfig};
use nadc_bof::{ClientTls, pb};
use nadc_core::time::{Clock, SystemClock};
use rand::Rng;
use support::process::{Server, free_listen_addr};
use support::spooled::{
    BATCH, SpooledBofs, batch, bof_tls, check, quick_retries, read_id, sized_batch, stored,
};
use tokio::sync::watch;

const NADC: &str = env!("CARGO_BIN_EXE_nadc");
const FORCES: [&str; 3] = ["AVON", "KENT", "WILTS"];
const FLOOD_BATCH: usize = 2_000;
/// The node's memory bound under the overload test: its idle footprint
/// (~40 MiB in a debug build) plus, at most, the requests in service (6
/// connections x 4 requests x 2,000 reads) and the memtables of what it
/// stores. Measured: 78 MiB. Queued instead of shed, the ~80 MiB of
/// requests the test sends would all be held at once.
const RSS_BOUND: u64 = 256 << 20;

fn pki_init(dir: &Path) {
    support::process::pki_init(&dir.join("pki"), &FORCES.join(","), "alice:analyst:AVON");
}

/// `force`'s BOF delivering `spool` to the node at `url`, eight batches in
/// flight, retrying quickly, until `stop`.
fn deliver(
    dir: &Path,
    url: &str,
    force: &str,
    spool: Arc<Spool>,
    stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<Result<(), nadc_bof::ClientError>> {
    let channel = nadc_bof::connect_lazy(url, &bof_tls(dir, force)).unwrap();
    tokio::spawn(spool::deliver(
        spool,
        channel,
        8,
        quick_retries(),
        stop,
        |_| {},
    ))
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
    let listen = free_listen_addr();
    let mut server = Server::start_on(dir.path(), &listen);
    let base = SystemClock.now().plus_millis(-3_600_000);

    // Each BOF: a producer spooling its batches at its own pace, and a
    // delivery loop retrying quickly while the node is down.
    let url = server.url.clone();
    let bofs = SpooledBofs::start(
        dir.path(),
        &FORCES,
        batches_per_force,
        base,
        |_| url.clone(),
        |f| bof_tls(dir.path(), f),
    );

    let data = dir.path().join("data");
    let mut survived = 0;
    for k in 0..iterations {
        let wait = rand::rng().random_range(150..900);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        server.kill();
        // Only acknowledgements received before the kill can be read now.
        let acked = bofs.acked();
        let n = check(&data, &acked, &format!("after kill {}", k + 1));
        assert!(n >= acked.values().sum::<u64>() as usize * BATCH);
        survived += 1;
        server = Server::start_on(dir.path(), &listen);
    }

    // Let every BOF finish and drain its spool.
    let acked = bofs.finish().await;
    server.stop();
    let n = check(&data, &acked, "at the end");
    assert_eq!(n, FORCES.len() * batches_per_force as usize * BATCH);
    eprintln!(
        "crash-kill: {survived} kills survived, {n} reads stored once each, 0 lost, 0 duplicated"
    );
}

/// A long-running BOF (`nadc push --spool --follow DIR`) started while the
/// node is down spools a dropped-in file and keeps retrying; killed with
/// SIGKILL, it loses nothing: started again once the node is up, it
/// delivers the spool, and the node holds every good row exactly once.
#[test]
fn a_killed_bof_loses_nothing_it_spooled_and_delivers_it_when_the_node_is_back() {
    let dir = tempfile::tempdir().unwrap();
    pki_init(dir.path());
    let listen = free_listen_addr();
    let inbox = dir.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let spool = dir.path().join("spool");
    let base = SystemClock.now().plus_millis(-3_600_000);
    let mut csv = String::from(
        "read_id,vrm,observed_at,camera_id,lat,lon,bearing,lane,confidence,make,model,colour\n",
    );
    for i in 0..3000 {
        if i == 1234 {
            csv.push_str("bad-row,AB12CDE,not-a-time,CAM,51.4,-2.5,,,,,,\n");
        }
        let t = base.plus_millis(i * 1000);
        csv.push_str(&format!(
            "bof-{i},SP{:03}ABC,{},CAM{},51.4{},-2.5,,,,,,\n",
            i % 500,
            t.to_rfc3339(),
            i % 9,
            i % 10
        ));
    }
    // Written under another name and renamed in, as a BOF should.
    std::fs::write(inbox.join(".reads.tmp"), csv).unwrap();
    std::fs::rename(inbox.join(".reads.tmp"), inbox.join("reads.csv")).unwrap();

    let pusher = |stderr: std::fs::File| {
        let tls = bof_tls(dir.path(), "AVON");
        Command::new(NADC)
            .args(["push", "--follow", "--batch-size", "250", "--spool"])
            .arg(&spool)
            .arg(&inbox)
            .env("NADC_NODE", format!("https://{listen}"))
            .env("NADC_CA", tls.ca)
            .env("NADC_CERT", tls.cert)
            .env("NADC_KEY", tls.key)
            .stdout(std::process::Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap()
    };
    let log1 = dir.path().join("push1.log");
    let mut first = pusher(std::fs::File::create(&log1).unwrap());
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !inbox.join("done/reads.csv").exists() {
        assert!(std::time::Instant::now() < deadline, "file never spooled");
        std::thread::sleep(Duration::from_millis(50));
    }
    // It has tried the node (down) at least once.
    while !std::fs::read_to_string(&log1)
        .unwrap()
        .contains("retrying in")
    {
        assert!(std::time::Instant::now() < deadline, "no retry reported");
        std::thread::sleep(Duration::from_millis(50));
    }
    first.kill().unwrap();
    first.wait().unwrap();
    let log1 = std::fs::read_to_string(&log1).unwrap();
    assert!(
        log1.contains("malformed") && log1.contains("line 1236"),
        "{log1}"
    );

    let server = Server::start_on(dir.path(), &listen);
    let log2 = dir.path().join("push2.log");
    let second = pusher(std::fs::File::create(&log2).unwrap());
    // Once delivery has begun, SIGTERM: it stops taking input and drains
    // the spool before exiting.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !spool.join("acked").exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "spool not delivered: {}",
            std::fs::read_to_string(&log2).unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = Command::new("kill")
        .args(["-TERM", &second.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = second.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        std::fs::read_to_string(&log2).unwrap()
    );
    assert!(stdout.contains("everything delivered"), "{stdout}");
    server.stop();
    let stored = stored(&dir.path().join("data"));
    assert_eq!(stored.len(), 3000);
    assert!(stored.values().all(|n| *n == 1));
    assert!(stored.contains_key(&("AVON".to_string(), "bof-2999".to_string())));
}

fn user_tls(dir: &Path, name: &str) -> ClientTls {
    let pki = dir.join("pki");
    ClientTls {
        ca: pki.join("ca.crt"),
        cert: pki.join("users").join(format!("{name}.crt")),
        key: pki.join("users").join(format!("{name}.key")),
    }
}

/// Peak resident memory of process `pid` while `stop` is unset, in bytes.
fn watch_rss(pid: u32, stop: Arc<std::sync::atomic::AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut peak = 0;
        while !stop.load(std::sync::atomic::Ordering::SeqCst) {
            if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
                let kb: u64 = status
                    .lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                    .unwrap_or(0);
                peak = peak.max(kb * 1024);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        peak
    })
}

/// Far more pushing than the node's limits admit: push streams with wide
/// windows and floods of concurrent unary batches. The node sheds what it
/// cannot take with RESOURCE_EXHAUSTED and a retry hint, keeps its memory
/// under a bound, keeps answering searches, and stores every batch it
/// acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn overload_is_shed_with_retry_hints_memory_stays_bounded_and_searches_go_on() {
    nadc_node::tls::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    pki_init(dir.path());
    let config = dir.path().join("node.toml");
    std::fs::write(
        &config,
        "data_dir = \"data\"\n[tls]\nca = \"pki/ca.crt\"\ncert = \"pki/nodes/node-1.crt\"\nkey = \"pki/nodes/node-1.key\"\n\
         [limits]\ningest_concurrency = 2\nqueue_wait_ms = 100\nmax_requests_per_connection = 4\n\
         max_message_bytes = 8388608\n",
    )
    .unwrap();
    let server = Server::start_with(
        dir.path(),
        "127.0.0.1:0",
        &["--config", config.to_str().unwrap()],
    );
    let stop_rss = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let rss = watch_rss(server.pid(), stop_rss.clone());
    let base = SystemClock.now().plus_millis(-3_600_000);
    let url = server.url.clone();

    // Unary floods: each task fires 48 batches of 2,000 reads at once on
    // one connection (about 80 MiB of requests in all).
    let mut floods = Vec::new();
    for (t, force) in FORCES.iter().cycle().take(6).enumerate() {
        let ch = nadc_bof::connect(&url, &bof_tls(dir.path(), force))
            .await
            .unwrap();
        floods.push(tokio::spawn(async move {
            let calls = (0..48u64).map(|k| {
                let seq = 10_000 + (t as u64) * 100 + k;
                let reads = sized_batch(force, seq, base, FLOOD_BATCH);
                let ch = ch.clone();
                async move {
                    let r = nadc_bof::push::push_batch(
                        ch,
                        pb::ReadBatch {
                            batch_seq: seq,
                            force: String::new(),
                            reads,
                        },
                    )
                    .await;
                    (seq, r)
                }
            });
            let mut acked = Vec::new();
            let (mut shed, mut hinted) = (0, 0);
            for (seq, r) in futures::future::join_all(calls).await {
                match r {
                    Ok(res) => {
                        assert_eq!(
                            res.accepted as usize,
                            FLOOD_BATCH,
                            "{:?}",
                            res.rejected.first()
                        );
                        acked.push((*force, seq));
                    }
                    Err(nadc_bof::ClientError::Rpc(s)) => {
                        // Over the connection's request cap (shed by the
                        // transport), or waiting too long for an ingest
                        // slot (with the node's retry hint).
                        assert_eq!(s.code(), tonic::Code::ResourceExhausted, "{s:?}");
                        if nadc_bof::retry_after(&s).is_some() {
                            hinted += 1;
                        } else {
                            shed += 1;
                        }
                    }
                    Err(e) => panic!("{e}"),
                }
            }
            (acked, shed, hinted)
        }));
    }
    // Push streams with wide windows, held back by the node's slots.
    let mut streams = Vec::new();
    for force in FORCES {
        let ch = nadc_bof::connect(&url, &bof_tls(dir.path(), force))
            .await
            .unwrap();
        let rows: Vec<Result<pb::Read, nadc_bof::format::RowError>> = (1..=40)
            .flat_map(|seq| batch(force, seq, base))
            .map(Ok)
            .collect();
        streams.push(tokio::spawn(async move {
            nadc_bof::push::push_rows(
                ch,
                Box::new(rows.into_iter()),
                nadc_bof::push::PushOptions {
                    batch_size: BATCH,
                    window: 64,
                },
                |_| {},
            )
            .await
            .unwrap()
        }));
    }
    // Searches all along.
    let searcher = {
        let ch = nadc_bof::connect(&url, &user_tls(dir.path(), "alice"))
            .await
            .unwrap();
        let stop = stop_rss.clone();
        tokio::spawn(async move {
            let mut client = pb::search_client::SearchClient::new(ch);
            let mut answered = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let mut s = client
                    .vrm_timeline(pb::VrmTimelineRequest {
                        access: support::access(),
                        vrm: "CR01ABC".into(),
                        ..Default::default()
                    })
                    .await
                    .expect("a search during overload is answered");
                while s
                    .get_mut()
                    .message()
                    .await
                    .expect("search stream")
                    .is_some()
                {}
                answered += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            answered
        })
    };

    let mut acked: Vec<(&str, u64)> = Vec::new();
    let (mut shed, mut hinted) = (0, 0);
    for f in floods {
        let (a, s, h) = f.await.unwrap();
        acked.extend(a);
        shed += s;
        hinted += h;
    }
    for (force, s) in FORCES.iter().zip(streams) {
        let report = s.await.unwrap();
        assert_eq!(report.totals.accepted as usize, 40 * BATCH, "{force}");
        acked.extend((1..=40).map(|seq| (*force, seq)));
    }
    stop_rss.store(true, std::sync::atomic::Ordering::SeqCst);
    let peak = rss.join().unwrap();
    let answered = searcher.await.unwrap();
    server.stop();

    assert!(
        shed > 0,
        "no request was shed: the load did not exceed the limits"
    );
    assert!(
        hinted > 0,
        "no batch was refused for want of an ingest slot"
    );
    assert!(answered > 0, "no search was answered during the load");
    let stored = stored(&dir.path().join("data"));
    assert!(stored.values().all(|n| *n == 1));
    for (force, seq) in &acked {
        let n = if *seq >= 10_000 { FLOOD_BATCH } else { BATCH };
        for i in 0..n {
            assert!(
                stored.contains_key(&(force.to_string(), read_id(force, *seq, i))),
                "acknowledged batch {seq} of {force} lost"
            );
        }
    }
    eprintln!(
        "overload: {} batches acknowledged, {shed} shed by the connection cap, {hinted} refused with a retry hint, {answered} searches answered, node peak RSS {} MiB",
        acked.len(),
        peak >> 20
    );
    assert!(peak < RSS_BOUND, "node peak RSS {} MiB", peak >> 20);
}

/// Every read id a timeline of `vrm` returns, as (force, read id).
async fn timeline_ids(
    client: &mut pb::search_client::SearchClient<tonic::transport::Channel>,
    vrm: &str,
) -> Vec<(String, String)> {
    let mut s = client
        .vrm_timeline(pb::VrmTimelineRequest {
            access: support::access(),
            vrm: vrm.into(),
            limit: 100_000,
            ..Default::default()
        })
        .await
        .expect("timeline")
        .into_inner();
    let mut out = Vec::new();
    while let Some(c) = s.message().await.expect("timeline stream") {
        if let Some(pb::search_chunk::Chunk::Rows(b)) = c.chunk {
            for r in b.rows {
                let p = r.provenance.expect("provenance");
                out.push((p.owning_force, p.bof_read_id));
            }
        }
    }
    out
}

/// A node restarted cleanly (SIGTERM) ends its push streams gracefully. A
/// BOF that had every batch acknowledged at that moment must reconnect and
/// deliver what it spools afterwards, not take the graceful end as its own
/// stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bof_caught_up_when_the_node_restarts_delivers_what_it_spools_afterwards() {
    nadc_node::tls::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    pki_init(dir.path());
    let listen = free_listen_addr();
    let server = Server::start_on(dir.path(), &listen);
    let spool = Arc::new(Spool::open(SpoolConfig::new(dir.path().join("spool-AVON"))).unwrap());
    let (stop_tx, stop_rx) = watch::channel(false);
    let delivery = deliver(dir.path(), &server.url, "AVON", spool.clone(), stop_rx);
    let base = SystemClock.now().plus_millis(-3_600_000);
    let acked = |n: u64| {
        let spool = spool.clone();
        async move {
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            while spool.status().acked < n {
                assert!(
                    std::time::Instant::now() < deadline,
                    "batch {n} not acknowledged in 30 s (acknowledged: {})",
                    spool.status().acked
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    spool.append(&batch("AVON", 1, base)).unwrap();
    acked(1).await;
    // Caught up, and the node restarts.
    server.stop();
    let server = Server::start_on(dir.path(), &listen);
    spool.append(&batch("AVON", 2, base)).unwrap();
    acked(2).await;
    assert!(
        !delivery.is_finished(),
        "delivery ended without being asked to"
    );
    let _ = stop_tx.send(true);
    delivery.await.unwrap().unwrap();
    server.stop();
    let found = stored(&dir.path().join("data"));
    assert_eq!(found.len(), 2 * BATCH);
}

/// A bounded soak: three BOFs push through their spools without pause,
/// a user searches all along (no search may fail or return a read twice),
/// and the node is restarted (SIGTERM, then started again) half-way. At
/// the end every acknowledged read is found by searching, exactly once.
/// `NADC_SOAK_SECS` sets the length (default 6 s; minutes for the long
/// run in deploy/RELIABILITY.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn soak_with_a_restart_ends_with_every_acknowledged_read_searchable_exactly_once() {
    nadc_node::tls::install_crypto_provider();
    let secs: u64 = std::env::var("NADC_SOAK_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    let dir = tempfile::tempdir().unwrap();
    pki_init(dir.path());
    let listen = free_listen_addr();
    let mut server = Server::start_on(dir.path(), &listen);
    let url = server.url.clone();
    let base = SystemClock.now().plus_millis(-3_600_000);
    let end = std::time::Instant::now() + Duration::from_secs(secs);

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut bofs = Vec::new();
    for force in FORCES {
        let spool = Arc::new(
            Spool::open(SpoolConfig::new(dir.path().join(format!("spool-{force}")))).unwrap(),
        );
        let producer = {
            let spool = spool.clone();
            tokio::spawn(async move {
                let mut seq = 0;
                while std::time::Instant::now() < end {
                    seq += 1;
                    let (s, reads) = (spool.clone(), batch(force, seq, base));
                    tokio::task::spawn_blocking(move || s.append(&reads))
                        .await
                        .unwrap()
                        .unwrap();
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                seq
            })
        };
        let delivery = deliver(dir.path(), &url, force, spool.clone(), stop_rx.clone());
        bofs.push((force, spool, producer, delivery));
    }
    let searches = {
        let ch = nadc_bof::connect_lazy(&url, &user_tls(dir.path(), "alice")).unwrap();
        tokio::spawn(async move {
            let mut client = pb::search_client::SearchClient::new(ch);
            let (mut ok, mut refused) = (0, 0);
            let mut k = 0u64;
            while std::time::Instant::now() < end {
                k += 1;
                let vrm = format!("CR{:02}ABC", k % 100);
                // While the node restarts a search may be refused; it must
                // never return a read twice.
                let r = client
                    .vrm_timeline(pb::VrmTimelineRequest {
                        access: support::access(),
                        vrm,
                        limit: 100_000,
                        ..Default::default()
                    })
                    .await;
                match r {
                    Ok(s) => {
                        let mut s = s.into_inner();
                        let mut seen = std::collections::HashSet::new();
                        let mut complete = true;
                        loop {
                            match s.message().await {
                                Ok(Some(c)) => {
                                    if let Some(pb::search_chunk::Chunk::Rows(b)) = c.chunk {
                                        for r in b.rows {
                                            let p = r.provenance.unwrap();
                                            assert!(
                                                seen.insert((p.owning_force, p.bof_read_id)),
                                                "a search returned a read twice"
                                            );
                                        }
                                    }
                                }
                                Ok(None) => break,
                                Err(_) => {
                                    complete = false;
                                    break;
                                }
                            }
                        }
                        if complete { ok += 1 } else { refused += 1 }
                    }
                    Err(_) => refused += 1,
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            (ok, refused)
        })
    };

    tokio::time::sleep(Duration::from_secs(secs) / 2).await;
    server.stop();
    server = Server::start_on(dir.path(), &listen);

    let (ok, refused) = searches.await.unwrap();
    let _ = stop_tx.send(true);
    let mut batches = HashMap::new();
    for (force, spool, producer, delivery) in bofs {
        let produced = producer.await.unwrap();
        tokio::time::timeout(Duration::from_secs(120), delivery)
            .await
            .expect("delivery drained")
            .unwrap()
            .unwrap();
        assert_eq!(spool.status().acked, produced, "{force}");
        batches.insert(force, produced);
    }

    // Every acknowledged read, found by searching, exactly once.
    let ch = nadc_bof::connect(&server.url, &user_tls(dir.path(), "alice"))
        .await
        .unwrap();
    let mut client = pb::search_client::SearchClient::new(ch);
    let mut found: HashMap<(String, String), u32> = HashMap::new();
    for n in 0..100 {
        for suffix in ["ABC", "DEF", "GHJ"] {
            for id in timeline_ids(&mut client, &format!("CR{n:02}{suffix}")).await {
                *found.entry(id).or_default() += 1;
            }
        }
    }
    server.stop();
    let total: u64 = batches.values().sum::<u64>() * BATCH as u64;
    assert!(found.values().all(|n| *n == 1), "a read found twice");
    for (force, produced) in &batches {
        for seq in 1..=*produced {
            for i in 0..BATCH {
                assert!(
                    found.contains_key(&(force.to_string(), read_id(force, seq, i))),
                    "acknowledged read {} not found by searching",
                    read_id(force, seq, i)
                );
            }
        }
    }
    assert_eq!(found.len() as u64, total);
    assert!(ok > 0, "no search completed during the soak");
    eprintln!(
        "soak: {secs} s, {total} reads acknowledged and each found once, {ok} searches answered ({refused} cut by the restart)"
    );
}

/// `nadc push --spool DIR --follow FILE` tails the file like `tail -f`:
/// rows appended while it runs are spooled and delivered too.
#[test]
fn a_followed_file_delivers_rows_appended_while_it_runs() {
    let dir = tempfile::tempdir().unwrap();
    pki_init(dir.path());
    let server = Server::start(dir.path());
    let base = SystemClock.now().plus_millis(-3_600_000);
    let row = |i: i64| {
        format!(
            "tail-{i},TL{i:03}ABC,{},CAM1,51.45,-2.58,,,,,,\n",
            base.plus_millis(i * 1000).to_rfc3339()
        )
    };
    let file = dir.path().join("reads.csv");
    let mut text = String::from(
        "read_id,vrm,observed_at,camera_id,lat,lon,bearing,lane,confidence,make,model,colour\n",
    );
    (0..10).for_each(|i| text.push_str(&row(i)));
    std::fs::write(&file, text).unwrap();
    let tls = bof_tls(dir.path(), "AVON");
    let spool = dir.path().join("spool");
    let pusher = Command::new(NADC)
        .args(["push", "--follow", "--spool"])
        .arg(&spool)
        .arg(&file)
        .env("NADC_NODE", &server.url)
        .env("NADC_CA", tls.ca)
        .env("NADC_CERT", tls.cert)
        .env("NADC_KEY", tls.key)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let acked = || {
        std::fs::read_to_string(spool.join("acked"))
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while acked() < 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "first rows not delivered"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let first = acked();
    // Appended later, in two writes (a row split across them).
    let more: String = (10..20).map(row).collect();
    let (a, b) = more.split_at(more.len() / 2 + 3);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .unwrap();
    std::io::Write::write_all(&mut f, a.as_bytes()).unwrap();
    std::io::Write::flush(&mut f).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    std::io::Write::write_all(&mut f, b.as_bytes()).unwrap();
    drop(f);
    while acked() <= first {
        assert!(
            std::time::Instant::now() < deadline,
            "appended rows not delivered"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The rest (if it came as a second batch) is spooled within a linger;
    // SIGTERM then delivers whatever is spooled before exiting.
    std::thread::sleep(Duration::from_millis(1000));
    let status = Command::new("kill")
        .args(["-TERM", &pusher.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = pusher.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("everything delivered"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    server.stop();
    let stored = stored(&dir.path().join("data"));
    assert_eq!(stored.len(), 20, "{:?}", stored.keys().collect::<Vec<_>>());
    assert!(stored.values().all(|n| *n == 1));
}
