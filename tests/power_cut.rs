//! Durability that SIGKILL cannot show. A killed process leaves the
//! kernel's page cache intact, so it never tests the fsyncs. Here the
//! disk under the node (or under a BOF's spool) is a fault-injecting file
//! system (`nadc-faultfs`): at random moments during ingest its power is
//! cut, and every write not yet synced is lost, then the process is
//! killed and started again on what survived.
//!
//! - The embedded store: every read the node acknowledged is on the disk
//!   after every cut, exactly once.
//! - A replica in replicated mode: after cuts on its disk, it ends with
//!   every read the log acknowledged, exactly once, the same as the other.
//! - A spooling BOF (`nadc push --follow --spool`): every row of every
//!   file it took (moved to `done/`) reaches the node, exactly once.
//!
//! `NADC_POWER_CUTS` sets the number of cuts per test (default 4).

mod support;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nadc_core::time::{Clock, SystemClock};
use nadc_faultfs::{FaultFs, Lost};
use nadc_pki::InitSpec;
use rand::Rng;
use support::force;
use support::nats::NatsCluster;
use support::process::{Server, free_listen_addr};
use support::replicas::{batch, push_until_taken, replicated_config};
use support::spooled::{BATCH, SpooledBofs, bof_tls, check, stored};

const NADC: &str = env!("CARGO_BIN_EXE_nadc");

fn cuts() -> usize {
    std::env::var("NADC_POWER_CUTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4)
}

/// A directory `mnt` whose writes land in `disk` through the faulty file
/// system.
struct Disk {
    disk: PathBuf,
    mnt: PathBuf,
    fs: Option<FaultFs>,
    /// What each cut lost.
    cuts: Vec<Lost>,
}

impl Disk {
    fn mount(disk: PathBuf, mnt: PathBuf) -> Disk {
        std::fs::create_dir_all(&disk).unwrap();
        std::fs::create_dir_all(&mnt).unwrap();
        let mut d = Disk {
            disk,
            mnt,
            fs: None,
            cuts: Vec::new(),
        };
        d.remount();
        d
    }

    fn remount(&mut self) {
        self.fs = Some(FaultFs::mount(&self.disk, &self.mnt).expect("mount the fault file system"));
    }

    /// The power cut.
    fn cut(&mut self) -> Lost {
        let lost = self.fs.as_ref().unwrap().cut_power().unwrap();
        self.cuts.push(lost);
        lost
    }

    /// The power cut under a store: it must lose something (RocksDB's
    /// info log is never synced), or the cut fell nowhere.
    fn cut_store(&mut self) {
        let lost = self.cut();
        assert!(lost.bytes > 0, "the cut lost nothing: {lost:?}");
    }

    fn unmount(&mut self) {
        self.fs.take().unwrap().unmount().unwrap();
    }

    fn report(&self, what: &str) {
        let files: usize = self.cuts.iter().map(|l| l.files).sum();
        let bytes: u64 = self.cuts.iter().map(|l| l.bytes).sum();
        eprintln!(
            "power cuts under {what}: {} cuts, {files} files rolled back, {bytes} unsynced bytes lost",
            self.cuts.len()
        );
    }
}

async fn pause() {
    let wait = rand::rng().random_range(300..1_200);
    tokio::time::sleep(Duration::from_millis(wait)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn power_cuts_under_the_embedded_store_lose_no_acknowledged_read() {
    nadc_node::tls::install_crypto_provider();
    const FORCES: [&str; 3] = ["AVON", "KENT", "WILTS"];
    let cuts = cuts();
    let batches = 40 + 15 * cuts as u64;
    let dir = tempfile::tempdir().unwrap();
    support::process::pki_init(
        &dir.path().join("pki"),
        &FORCES.join(","),
        "alice:analyst:AVON",
    );
    // `nadc serve --data DIR/data`: the faulty disk is mounted there.
    let mut disk = Disk::mount(dir.path().join("disk"), dir.path().join("data"));
    let listen = free_listen_addr();
    let mut server = Server::start_on(dir.path(), &listen);
    let url = server.url.clone();
    let bofs = SpooledBofs::start(
        dir.path(),
        &FORCES,
        batches,
        SystemClock.now().plus_millis(-3_600_000),
        |_| url.clone(),
        |f| bof_tls(dir.path(), f),
    );
    for k in 1..=cuts {
        pause().await;
        disk.cut_store();
        server.kill();
        // Only acknowledgements received before the kill can be read now.
        let acked = bofs.acked();
        disk.unmount();
        let n = check(&disk.disk, &acked, &format!("after power cut {k}"));
        assert!(n >= acked.values().sum::<u64>() as usize * BATCH);
        disk.remount();
        server = Server::start_on(dir.path(), &listen);
    }
    let acked = bofs.finish().await;
    server.stop();
    disk.unmount();
    let n = check(&disk.disk, &acked, "at the end");
    assert_eq!(n, FORCES.len() * batches as usize * BATCH);
    disk.report("the embedded store");
}

/// A node process in replicated mode, `dir/data` its data.
fn replica(dir: &Path, listen: &str) -> Server {
    let args = [
        "--config".to_string(),
        dir.join("node.toml").display().to_string(),
        "--node-name".into(),
        dir.file_name().unwrap().to_string_lossy().into_owned(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Server::start_with(dir, listen, &args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn power_cuts_under_a_replica_lose_nothing_the_log_acknowledged() {
    nadc_node::tls::install_crypto_provider();
    const FORCES: [&str; 2] = ["AVON", "KENT"];
    const NODES: [&str; 2] = ["node-1", "node-2"];
    let cuts = cuts();
    let batches = 30 + 10 * cuts as u64;
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    let spec = InitSpec {
        node_names: ["node-1", "node-2", "nats"].map(String::from).to_vec(),
        forces: FORCES.iter().map(|f| force(f)).collect(),
        ..Default::default()
    };
    let layout = nadc_pki::init(&pki, &spec, false).unwrap();
    let nats = NatsCluster::start(dir.path(), &layout, &NODES);
    let mut servers = Vec::new();
    let mut listens = Vec::new();
    let mut node_dirs = Vec::new();
    for name in NODES {
        let nd = dir.path().join(name);
        std::fs::create_dir_all(&nd).unwrap();
        std::os::unix::fs::symlink(&pki, nd.join("pki")).unwrap();
        replicated_config(&nd, &layout, &nats.urls());
        node_dirs.push(nd);
    }
    // node-2's data on the faulty disk.
    let mut disk = Disk::mount(node_dirs[1].join("disk"), node_dirs[1].join("data"));
    for nd in &node_dirs {
        let listen = free_listen_addr();
        servers.push(Some(replica(nd, &listen)));
        listens.push(listen);
    }
    // AVON pushes to node-1, KENT to node-2, each through its spool.
    let urls: HashMap<&str, String> = FORCES
        .iter()
        .zip(&servers)
        .map(|(f, s)| (*f, s.as_ref().unwrap().url.clone()))
        .collect();
    let bofs = SpooledBofs::start(
        dir.path(),
        &FORCES,
        batches,
        SystemClock.now().plus_millis(-3_600_000),
        |f| urls[f].clone(),
        |f| bof_tls(dir.path(), f),
    );
    for k in 1..=cuts {
        pause().await;
        disk.cut_store();
        servers[1].take().unwrap().kill();
        disk.unmount();
        // Whatever the cut left, it is a store that opens, with nothing
        // in it twice.
        check(&disk.disk, &HashMap::new(), &format!("after power cut {k}"));
        disk.remount();
        servers[1] = Some(replica(&node_dirs[1], &listens[1]));
    }
    let acked = bofs.finish().await;
    // One more batch through each node: acknowledged once that node's
    // replica has applied it and everything before it in the log.
    let last = batch("AVON", "last", 5, 1);
    for (s, want) in servers.iter().zip([(5, 0), (0, 5)]) {
        let channel = nadc_bof::connect(&s.as_ref().unwrap().url, &bof_tls(dir.path(), "AVON"))
            .await
            .unwrap();
        let mut client = nadc_bof::pb::ingest_client::IngestClient::new(channel);
        let r = push_until_taken(&mut client, &last).await;
        assert_eq!((r.accepted, r.duplicates), want, "{r:?}");
    }
    for s in servers.iter_mut() {
        s.take().unwrap().stop();
    }
    disk.unmount();
    let one = stored(&node_dirs[0].join("data"));
    let two = stored(&disk.disk);
    check(&node_dirs[0].join("data"), &acked, "node-1 at the end");
    check(&disk.disk, &acked, "node-2 at the end");
    assert_eq!(
        one.len(),
        FORCES.len() * batches as usize * BATCH + last.reads.len()
    );
    assert!(one == two, "the replicas differ");
    disk.report("a replica");
    drop(nats);
}

/// A CSV file of `rows` reads whose ids start `prefix`.
fn csv(prefix: &str, rows: usize) -> String {
    let base = SystemClock.now().plus_millis(-3_600_000);
    let mut out = String::from(
        "read_id,vrm,observed_at,camera_id,lat,lon,bearing,lane,confidence,make,model,colour\n",
    );
    for i in 0..rows {
        let t = base.plus_millis(i as i64 * 1000);
        out.push_str(&format!(
            "{prefix}-{i},PC{:03}ABC,{},CAM{},51.4{},-2.5,,,,,,\n",
            i % 500,
            t.to_rfc3339(),
            i % 9,
            i % 10
        ));
    }
    out
}

/// A BOF process, killed if the test ends first (a process left running
/// would hold the mount open).
struct Pusher(Option<Child>);

impl Drop for Pusher {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Pusher {
    fn child(&mut self) -> &mut Child {
        self.0.as_mut().unwrap()
    }
}

/// `nadc push --follow --spool SPOOL INBOX` as AVON's BOF.
fn pusher(dir: &Path, url: &str, spool: &Path, inbox: &Path, log: &Path) -> Pusher {
    let tls = bof_tls(dir, "AVON");
    Pusher(Some(
        Command::new(NADC)
            .args(["push", "--follow", "--batch-size", "250", "--spool"])
            .arg(spool)
            .arg(inbox)
            .env("NADC_NODE", url)
            .env("NADC_CA", tls.ca)
            .env("NADC_CERT", tls.cert)
            .env("NADC_KEY", tls.key)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn power_cuts_under_a_bofs_spool_lose_no_row_it_took() {
    const FILES: usize = 60;
    const ROWS: usize = 300;
    let cuts = cuts();
    let dir = tempfile::tempdir().unwrap();
    support::process::pki_init(&dir.path().join("pki"), "AVON", "alice:analyst:AVON");
    let server = Server::start(dir.path());
    let inbox = dir.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let mut disk = Disk::mount(dir.path().join("spool-disk"), dir.path().join("spool"));

    // Files dropped into the inbox (written aside, renamed in) while the
    // BOF runs.
    let producer = {
        let inbox = inbox.clone();
        std::thread::spawn(move || {
            for n in 0..FILES {
                let tmp = inbox.join(format!(".f{n:03}.tmp"));
                std::fs::write(&tmp, csv(&format!("f{n:03}"), ROWS)).unwrap();
                std::fs::rename(&tmp, inbox.join(format!("f{n:03}.csv"))).unwrap();
                std::thread::sleep(Duration::from_millis(rand::rng().random_range(20..80)));
            }
        })
    };
    let mut run = 0;
    let mut bof = pusher(
        dir.path(),
        &server.url,
        &disk.mnt,
        &inbox,
        &dir.path().join(format!("push{run}.log")),
    );
    for _ in 0..cuts {
        pause().await;
        // (The spool syncs each batch before it is taken: a cut finds
        // little or nothing unsynced.)
        disk.cut();
        bof.child().kill().unwrap();
        bof.child().wait().unwrap();
        disk.unmount();
        disk.remount();
        run += 1;
        let log = dir.path().join(format!("push{run}.log"));
        bof = pusher(dir.path(), &server.url, &disk.mnt, &inbox, &log);
    }
    producer.join().unwrap();
    // Every file taken, and one more dropped in for the BOF's last run:
    // once it is spooled, that run is reading input. Then SIGTERM: it
    // stops taking input and drains its spool before it exits.
    std::fs::write(inbox.join(".last.tmp"), csv("last", ROWS)).unwrap();
    std::fs::rename(inbox.join(".last.tmp"), inbox.join("last.csv")).unwrap();
    let log = dir.path().join(format!("push{run}.log"));
    let deadline = Instant::now() + Duration::from_secs(120);
    while std::fs::read_dir(inbox.join("done")).map_or(0, |d| d.count()) < FILES + 1
        || !std::fs::read_to_string(&log).unwrap().contains("last.csv")
    {
        assert!(Instant::now() < deadline, "files not all taken");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = Command::new("kill")
        .args(["-TERM", &bof.child().id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = bof.0.take().unwrap().wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("everything delivered"),
        "{stdout}\n{}",
        std::fs::read_to_string(&log).unwrap()
    );
    server.stop();
    disk.unmount();

    let stored = stored(&dir.path().join("data"));
    let want: BTreeSet<(String, String)> = (0..FILES)
        .map(|n| format!("f{n:03}"))
        .chain(["last".to_string()])
        .flat_map(|f| (0..ROWS).map(move |i| ("AVON".to_string(), format!("{f}-{i}"))))
        .collect();
    let missing: Vec<_> = want
        .iter()
        .filter(|k| !stored.contains_key(*k))
        .take(5)
        .collect();
    assert!(
        missing.is_empty(),
        "rows of files the BOF took are lost: {missing:?}"
    );
    assert_eq!(stored.len(), want.len());
    assert!(stored.values().all(|n| *n == 1), "a row stored twice");
    disk.report("a BOF's spool");
}
