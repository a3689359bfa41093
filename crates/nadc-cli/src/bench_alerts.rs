//! `nadc bench alerts` and `nadc bench convoy`: real-time hit latency under
//! a steady ingest load, and retrospective convoy time for a planted target,
//! from client processes over mTLS against a running node.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use nadc_bof::format::{Format, camera_rows};
use nadc_bof::{ClientTls, pb};
use nadc_core::{ForceId, Timestamp};
use nadc_pki::PkiLayout;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tonic::transport::Channel;

use crate::alerting::convoy_search;

/// Who the benchmark connects as: files from a `nadc pki init` directory.
#[derive(Args, Debug, Clone)]
pub struct BenchIdentity {
    /// The node, as https://HOST:PORT.
    #[arg(long, env = "NADC_NODE")]
    node: String,
    /// The `nadc pki init` directory.
    #[arg(long)]
    tls_dir: PathBuf,
    /// The force whose BOF certificate pushes reads.
    #[arg(long, default_value = "AVON")]
    force: String,
    /// The user (needs a searching role; for `alerts` also hotlist-manager).
    #[arg(long, default_value = "bench")]
    user: String,
}

impl BenchIdentity {
    fn layout(&self) -> PkiLayout {
        PkiLayout::new(&self.tls_dir)
    }

    async fn bof(&self) -> anyhow::Result<Channel> {
        let l = self.layout();
        let f = ForceId::new(&self.force)?;
        let tls = ClientTls {
            ca: l.ca_cert(),
            cert: l.bof_cert(&f),
            key: l.bof_key(&f),
        };
        Ok(nadc_bof::connect(&self.node, &tls).await?)
    }

    async fn user(&self) -> anyhow::Result<Channel> {
        let l = self.layout();
        let tls = ClientTls {
            ca: l.ca_cert(),
            cert: l.user_cert(&self.user),
            key: l.user_key(&self.user),
        };
        Ok(nadc_bof::connect(&self.node, &tls).await?)
    }
}

#[derive(Args, Debug)]
pub struct AlertsBenchArgs {
    #[command(flatten)]
    who: BenchIdentity,
    /// Background ingest load, reads per second (random plates, own GPS).
    #[arg(long, default_value_t = 20_000)]
    rate: u32,
    /// Seconds of measurement (after 2 s of warm-up load).
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// Hotlisted probe reads per second (each a one-read batch).
    #[arg(long, default_value_t = 20)]
    probes: u32,
    /// Entries on the benchmark's hotlist.
    #[arg(long, default_value_t = 10_000)]
    entries: usize,
}

#[derive(Args, Debug)]
pub struct ConvoyBenchArgs {
    #[command(flatten)]
    who: BenchIdentity,
    /// The directory `nadc gen` wrote (the target is planted at the force's
    /// generated cameras, on the generated day).
    #[arg(long)]
    gen_dir: PathBuf,
    /// The UTC day of the generated data, YYYY-MM-DD.
    #[arg(long)]
    day: String,
    /// Reads of the planted target.
    #[arg(long, default_value_t = 200)]
    target_reads: usize,
    /// Timed convoy searches (after 5 untimed).
    #[arg(long, default_value_t = 50)]
    iterations: usize,
}

const UK: (f64, f64, f64, f64) = (50.5, 54.5, -3.5, 0.0);

fn random_plate(rng: &mut ChaCha8Rng) -> String {
    const L: &[u8] = b"ABCDEFGHJKLMNOPRSTUVWXY";
    let l = |rng: &mut ChaCha8Rng| L[rng.random_range(0..L.len())] as char;
    format!(
        "{}{}{:02}{}{}{}",
        l(rng),
        l(rng),
        rng.random_range(0..100),
        l(rng),
        l(rng),
        l(rng)
    )
}

fn gps_read(id: String, vrm: String, rng: &mut ChaCha8Rng, at: Timestamp) -> pb::Read {
    pb::Read {
        read_id: id,
        vrm,
        observed_at: Some(nadc_proto::to_pb_time(at)),
        camera_id: format!("BENCH-VAN-{}", rng.random_range(0..50)),
        lat: Some(rng.random_range(UK.0..UK.1)),
        lon: Some(rng.random_range(UK.2..UK.3)),
        confidence: Some(90.0),
        ..Default::default()
    }
}

fn now() -> Timestamp {
    Timestamp::from_millis(chrono::Utc::now().timestamp_millis())
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn summary(name: &str, mut v: Vec<f64>) -> String {
    if v.is_empty() {
        return format!("{name}: no samples");
    }
    v.sort_by(f64::total_cmp);
    format!(
        "{name}: n {}, p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        v.len(),
        pct(&v, 0.5),
        pct(&v, 0.9),
        pct(&v, 0.99),
        v[v.len() - 1]
    )
}

/// Sends/acks of the probes, by read id, and arrival times of their alerts.
#[derive(Default)]
struct Probes {
    sent: HashMap<String, (Instant, Option<Instant>)>,
    alerted: HashMap<String, Instant>,
}

pub async fn alerts(a: AlertsBenchArgs) -> anyhow::Result<ExitCode> {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let run_id = format!("{:x}", chrono::Utc::now().timestamp_millis());
    // The list: `entries` plates of the form HL<2 digits><3 letters>. The
    // background load's plates are random, so one may hit the list now and
    // then; such hits are not probes and are not counted.
    let listed: Vec<String> = (0..a.entries)
        .map(|i| format!("HL{:02}{}", i % 100, to_letters(i / 100)))
        .collect();
    let user = a.who.user().await?;
    let mut hotlists = pb::hotlists_client::HotlistsClient::new(user.clone());
    let name = format!("bench-{run_id}");
    hotlists
        .create_hotlist(pb::CreateHotlistRequest {
            name: name.clone(),
            purpose: "benchmark".into(),
            fuzzy: true,
            max_edits: 1,
            ..Default::default()
        })
        .await
        .map_err(nadc_bof::ClientError::from)
        .context("create the benchmark hotlist (the user needs hotlist-manager)")?;
    for chunk in listed.chunks(1000) {
        let entries = chunk
            .iter()
            .map(|v| pb::HotlistEntry {
                vrm: v.clone(),
                reason: "benchmark".into(),
                intel_ref: "BENCH".into(),
                action: pb::Action::Intelligence as i32,
                expires_at: Some(nadc_proto::to_pb_time(now().plus_millis(86_400_000))),
                ..Default::default()
            })
            .collect();
        let r = hotlists
            .add_entries(pb::AddEntriesRequest {
                list: Some(pb::HotlistRef {
                    owner: String::new(),
                    name: name.clone(),
                }),
                entries,
                look_back_days: 0,
                access: None,
            })
            .await
            .map_err(nadc_bof::ClientError::from)?
            .into_inner();
        anyhow::ensure!(r.rejected.is_empty(), "entries refused: {:?}", r.rejected);
    }

    // The subscriber: hits on this run's list, from now on.
    let probes = Arc::new(Mutex::new(Probes::default()));
    let mut alerts = pb::alerts_client::AlertsClient::new(user.clone());
    let mut stream = alerts
        .watch(pb::WatchRequest {
            from_now: true,
            kinds: vec![pb::AlertKind::Hit as i32],
            ..Default::default()
        })
        .await
        .map_err(nadc_bof::ClientError::from)?
        .into_inner();
    let p = probes.clone();
    let watcher = tokio::spawn(async move {
        while let Ok(Some(e)) = stream.message().await {
            let at = Instant::now();
            if let Some(id) = e
                .read
                .as_ref()
                .and_then(|r| r.provenance.as_ref())
                .map(|p| p.bof_read_id.clone())
                && let Ok(mut p) = p.lock()
            {
                p.alerted.insert(id, at);
            }
        }
    });

    // Background load: batches of 1000 random reads paced to `rate`.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut loaders = Vec::new();
    let loaded = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let workers: u32 = 4;
    for w in 0..workers {
        let ch = a.who.bof().await?;
        let (stop, loaded, run_id) = (stop.clone(), loaded.clone(), run_id.clone());
        let per_worker = f64::from(a.rate) / f64::from(workers);
        loaders.push(tokio::spawn(async move {
            let mut rng = ChaCha8Rng::seed_from_u64(100 + u64::from(w));
            let batch = 1000usize;
            let interval = Duration::from_secs_f64(batch as f64 / per_worker.max(1.0));
            let mut tick = tokio::time::interval(interval);
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                tick.tick().await;
                let t = now();
                let reads = (0..batch)
                    .map(|_| {
                        n += 1;
                        let plate = random_plate(&mut rng);
                        gps_read(format!("L{run_id}-{w}-{n}"), plate, &mut rng, t)
                    })
                    .collect();
                let r = nadc_bof::push::push_batch(
                    ch.clone(),
                    pb::ReadBatch {
                        batch_seq: n,
                        force: String::new(),
                        reads,
                    },
                )
                .await?;
                loaded.fetch_add(u64::from(r.accepted), std::sync::atomic::Ordering::Relaxed);
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let started = Instant::now();
    let loaded_before = loaded.load(std::sync::atomic::Ordering::Relaxed);

    // Probes: one hotlisted read per batch, paced.
    let probe_ch = a.who.bof().await?;
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(a.probes.max(1))));
    let mut i = 0usize;
    while started.elapsed() < Duration::from_secs(a.seconds) {
        tick.tick().await;
        i += 1;
        let id = format!("P{run_id}-{i}");
        let vrm = listed.choose(&mut rng).context("no entries")?.clone();
        let read = gps_read(id.clone(), vrm, &mut rng, now());
        let sent = Instant::now();
        if let Ok(mut p) = probes.lock() {
            p.sent.insert(id.clone(), (sent, None));
        }
        nadc_bof::push::push_batch(
            probe_ch.clone(),
            pb::ReadBatch {
                batch_seq: i as u64,
                force: String::new(),
                reads: vec![read],
            },
        )
        .await?;
        let acked = Instant::now();
        if let Ok(mut p) = probes.lock()
            && let Some(s) = p.sent.get_mut(&id)
        {
            s.1 = Some(acked);
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let loaded_reads = loaded.load(std::sync::atomic::Ordering::Relaxed) - loaded_before;
    // Let the last alerts arrive.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for l in loaders {
        l.await??;
    }
    watcher.abort();

    let p = probes
        .lock()
        .map_err(|_| anyhow::anyhow!("probe lock poisoned"))?;
    let (mut from_ack, mut from_send) = (Vec::new(), Vec::new());
    let mut missing = 0;
    for (id, (sent, acked)) in &p.sent {
        match (p.alerted.get(id), acked) {
            (Some(at), Some(acked)) => {
                let ms = |a: Instant, b: Instant| {
                    if a >= b {
                        (a - b).as_secs_f64() * 1000.0
                    } else {
                        -((b - a).as_secs_f64() * 1000.0)
                    }
                };
                from_ack.push(ms(*at, *acked));
                from_send.push(ms(*at, *sent));
            }
            _ => missing += 1,
        }
    }
    println!(
        "hit latency under {:.0} reads/s of background ingest ({} probes, {} entries on a fuzzy list; {} probes without an alert)",
        loaded_reads as f64 / elapsed,
        p.sent.len(),
        a.entries,
        missing
    );
    println!(
        "  {}",
        summary("read acknowledged -> alert received", from_ack)
    );
    println!("  {}", summary("read sent -> alert received", from_send));
    Ok(if missing == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn to_letters(mut n: usize) -> String {
    const L: &[u8] = b"ABCDEFGHJKLMNPRSTUVWXYZ";
    let mut s = Vec::new();
    for _ in 0..3 {
        s.push(L[n % L.len()]);
        n /= L.len();
    }
    s.reverse();
    String::from_utf8_lossy(&s).into_owned()
}

pub async fn convoy(a: ConvoyBenchArgs) -> anyhow::Result<ExitCode> {
    let day = Timestamp::parse_rfc3339(&format!("{}T00:00:00Z", a.day))
        .with_context(|| format!("parse --day {}", a.day))?;
    let cameras_file = a.gen_dir.join(&a.who.force).join("cameras.csv");
    let cameras: Vec<String> = camera_rows(
        Box::new(
            std::fs::File::open(&cameras_file)
                .with_context(|| format!("open {}", cameras_file.display()))?,
        ),
        Format::Csv,
    )?
    .filter_map(Result::ok)
    .filter(|c| c.kind == pb::CameraKind::Fixed as i32)
    .map(|c| c.camera_id)
    .collect();
    anyhow::ensure!(
        !cameras.is_empty(),
        "no fixed cameras in {}",
        cameras_file.display()
    );
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let run_id = format!("{:x}", chrono::Utc::now().timestamp_millis());
    let (target, companion) = (
        format!("QT{}", &run_id[run_id.len() - 5..]).to_uppercase(),
        format!("QC{}", &run_id[run_id.len() - 5..]).to_uppercase(),
    );
    // The target's reads spread over the day; the companion follows it
    // 30 to 90 s behind at three in four of them.
    let step = 86_400_000 / (a.target_reads as i64 + 1);
    let mut reads = Vec::new();
    let mut together = 0;
    for i in 0..a.target_reads {
        let cam = cameras.choose(&mut rng).context("no cameras")?.clone();
        let at = day.plus_millis(step * (i as i64 + 1));
        let mk = |id: String, vrm: &str, at: Timestamp| pb::Read {
            read_id: id,
            vrm: vrm.to_string(),
            observed_at: Some(nadc_proto::to_pb_time(at)),
            camera_id: cam.clone(),
            confidence: Some(90.0),
            ..Default::default()
        };
        reads.push(mk(format!("CT{run_id}-{i}"), &target, at));
        if rng.random_bool(0.75) {
            together += 1;
            let gap = rng.random_range(30_000..90_000);
            reads.push(mk(
                format!("CC{run_id}-{i}"),
                &companion,
                at.plus_millis(gap),
            ));
        }
    }
    let r = nadc_bof::push::push_batch(
        a.who.bof().await?,
        pb::ReadBatch {
            batch_seq: 1,
            force: String::new(),
            reads,
        },
    )
    .await?;
    anyhow::ensure!(
        r.rejected.is_empty(),
        "planted reads refused: {:?}",
        r.rejected.first()
    );
    let user = a.who.user().await?;
    let req = pb::ConvoyRequest {
        access: crate::bench::access(),
        vrms: vec![target.clone()],
        from: Some(nadc_proto::to_pb_time(day)),
        to: Some(nadc_proto::to_pb_time(day.plus_millis(86_399_999))),
        limit: 10,
        ..Default::default()
    };
    let mut times = Vec::with_capacity(a.iterations);
    let mut last = None;
    for i in 0..a.iterations + 5 {
        let t = Instant::now();
        let ans = convoy_search(user.clone(), req.clone()).await?;
        if i >= 5 {
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        last = Some(ans);
    }
    let ans = last.context("no searches")?;
    let first = ans.companions.first().context("no companion found")?;
    let s = ans.summary.unwrap_or_default();
    println!(
        "convoy for a target with {} reads ({} camera index entries examined; top companion {} with {} of {} planted co-occurrences, {} companions in all)",
        s.target_reads,
        s.entries_examined,
        if first.vrm == companion {
            "is the planted one"
        } else {
            "is NOT the planted one"
        },
        first.co_occurrences,
        together,
        s.total_companions
    );
    println!("  {}", summary("retrospective convoy, end to end", times));
    Ok(if first.vrm == companion {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
