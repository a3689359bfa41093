//! `nadc bench search`: search latency from a client process, end to end
//! (mTLS, the node's planning and scans, streaming the whole result), over
//! data made by `nadc gen`. Inputs are drawn (seeded) from the generated
//! files: VRMs from the reads, places and times from reads at cameras.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use nadc_bof::pb;
use nadc_core::Timestamp;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use tonic::transport::Channel;

use crate::NodeArgs;
use crate::client::{Collected, resolve_node};

/// Searches the benchmark can time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// A VRM's timeline over the whole retention period.
    Vrm,
    /// A fuzzy VRM search (confusables and one edit).
    Fuzzy,
    /// One 1 km circle, one hour.
    Geo1km1h,
    /// One 5 km circle, 24 hours.
    Geo5km24h,
    /// Two 1 km circles, one hour each, ALL.
    GeoTwoAreaAll,
    /// Make and colour within a 5 km circle over 2 hours.
    Vehicle,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(flatten)]
    node: NodeArgs,
    /// The directory `nadc gen` wrote.
    #[arg(long)]
    gen_dir: PathBuf,
    /// Which search.
    #[arg(long, value_enum)]
    kind: Kind,
    /// Timed searches (after 10 % as many untimed warm-up searches).
    #[arg(long, default_value_t = 200)]
    iterations: usize,
    /// Seed for choosing inputs.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Most of the generator's sampled reads to draw inputs from.
    #[arg(long, default_value_t = 20_000)]
    sample: usize,
    /// Also ask PostgreSQL + PostGIS, loaded with the same reads by
    /// `benches/peer/postgis.sh`, each search with the same inputs
    /// (a connection string, e.g. `host=/tmp/sock port=55433
    /// user=postgres dbname=nadc`): both are timed, and their row counts
    /// must agree.
    #[arg(long)]
    postgis: Option<String>,
}

/// A generated read the inputs of a search are drawn from.
#[derive(Clone, Debug)]
pub struct Sample {
    pub vrm: String,
    pub lat: f64,
    pub lon: f64,
    pub at: Timestamp,
    pub make: Option<String>,
    pub colour: Option<String>,
}

/// The reads `nadc gen` sampled uniformly over the whole data set
/// (`samples.csv`), with their positions.
fn load_samples(dir: &std::path::Path, limit: usize) -> anyhow::Result<Vec<Sample>> {
    let path = dir.join("samples.csv");
    let mut r = csv::Reader::from_path(&path).with_context(|| {
        format!(
            "open {} (written by `nadc gen` into its --out directory)",
            path.display()
        )
    })?;
    /// A row of `samples.csv`, by its header ([`crate::generate::SAMPLE_COLUMNS`]).
    #[derive(serde::Deserialize)]
    struct Row {
        vrm: String,
        observed_at: String,
        lat: f64,
        lon: f64,
        make: Option<String>,
        colour: Option<String>,
    }
    let mut out = Vec::new();
    for (line, row) in r.deserialize::<Row>().enumerate() {
        let at = |line: usize| format!("{} line {}", path.display(), line + 2);
        let row = row.with_context(|| at(line))?;
        out.push(Sample {
            vrm: row.vrm,
            at: Timestamp::parse_rfc3339(&row.observed_at).with_context(|| at(line))?,
            lat: row.lat,
            lon: row.lon,
            make: row.make,
            colour: row.colour,
        });
        if out.len() == limit {
            break;
        }
    }
    anyhow::ensure!(!out.is_empty(), "no samples in {}", path.display());
    Ok(out)
}

/// Another sighting of the sample's vehicle at least an hour away from it,
/// if it has one.
async fn elsewhere(ch: &Channel, s: &Sample) -> anyhow::Result<Option<Sample>> {
    let mut client =
        pb::search_client::SearchClient::new(ch.clone()).max_decoding_message_size(256 << 20);
    let stream = client
        .vrm_timeline(pb::VrmTimelineRequest {
            access: access(),
            vrm: s.vrm.clone(),
            ..Default::default()
        })
        .await?
        .into_inner();
    let rows = crate::client::collect_stream(stream).await?.rows;
    Ok(rows.into_iter().find_map(|r| {
        let at = r
            .provenance
            .as_ref()
            .and_then(|p| p.observed_at.as_ref())
            .and_then(nadc_proto::from_pb_time)?;
        ((at.millis() - s.at.millis()).abs() >= 3_600_000).then(|| Sample {
            vrm: r.vrm.clone(),
            lat: r.lat,
            lon: r.lon,
            at,
            make: r.make.clone(),
            colour: r.colour.clone(),
        })
    }))
}

fn area(s: &Sample, radius_m: f64, before_ms: i64, after_ms: i64) -> pb::Area {
    pb::Area {
        lat: s.lat,
        lon: s.lon,
        radius_m,
        from: Some(nadc_proto::to_pb_time(s.at.plus_millis(-before_ms))),
        to: Some(nadc_proto::to_pb_time(s.at.plus_millis(after_ms))),
        polygon: String::new(),
    }
}

async fn run_one(
    ch: &Channel,
    kind: Kind,
    s: &Sample,
    other: &Sample,
) -> anyhow::Result<Collected> {
    let mut client =
        pb::search_client::SearchClient::new(ch.clone()).max_decoding_message_size(256 << 20);
    const H: i64 = 3_600_000;
    let stream = match kind {
        Kind::Vrm => {
            client
                .vrm_timeline(pb::VrmTimelineRequest {
                    scope: 0,
                    on_behalf_of: None,
                    access: crate::bench::access(),
                    vrm: s.vrm.clone(),
                    from: None,
                    to: None,
                    limit: 0,
                })
                .await?
        }
        Kind::Fuzzy => {
            client
                .vrm_search(pb::VrmSearchRequest {
                    access: crate::bench::access(),
                    pattern: s.vrm.clone(),
                    fuzzy: true,
                    max_edits: Some(1),
                    ..Default::default()
                })
                .await?
        }
        Kind::Geo1km1h => {
            client
                .geo_search(pb::GeoSearchRequest {
                    access: crate::bench::access(),
                    areas: vec![area(s, 1_000.0, H / 2, H / 2)],
                    limit: 1_000_000,
                    ..Default::default()
                })
                .await?
        }
        Kind::Geo5km24h => {
            client
                .geo_search(pb::GeoSearchRequest {
                    access: crate::bench::access(),
                    areas: vec![area(s, 5_000.0, 12 * H, 12 * H)],
                    limit: 1_000_000,
                    ..Default::default()
                })
                .await?
        }
        Kind::GeoTwoAreaAll => {
            client
                .geo_search(pb::GeoSearchRequest {
                    access: crate::bench::access(),
                    areas: vec![
                        area(s, 1_000.0, H / 2, H / 2),
                        area(other, 1_000.0, H / 2, H / 2),
                    ],
                    r#match: pb::AreaMatch::All as i32,
                    limit: 1_000_000,
                    ..Default::default()
                })
                .await?
        }
        Kind::Vehicle => {
            client
                .vehicle_search(pb::VehicleSearchRequest {
                    access: crate::bench::access(),
                    make: s.make.clone().or(Some("Ford".into())),
                    colour: s.colour.clone(),
                    areas: vec![area(s, 5_000.0, H, H)],
                    limit: 1_000_000,
                    ..Default::default()
                })
                .await?
        }
    }
    .into_inner();
    crate::client::collect_stream(stream).await
}

/// The purpose and case the benchmarks search under.
pub fn access() -> Option<pb::AccessContext> {
    Some(pb::AccessContext {
        purpose: "serious-crime".into(),
        case_ref: "BENCHMARK".into(),
        ..Default::default()
    })
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Latency percentiles of one system.
fn line(times: &mut [Duration]) -> anyhow::Result<String> {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    Ok(format!(
        "p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        ms(pct(times, 0.50)),
        ms(pct(times, 0.90)),
        ms(pct(times, 0.99)),
        ms(*times.last().context("no timings")?),
    ))
}

pub async fn run(a: BenchArgs) -> anyhow::Result<ExitCode> {
    let samples = load_samples(&a.gen_dir, a.sample)?;
    let (node, tls) = resolve_node(&a.node)?;
    let ch = nadc_bof::connect(&node, &tls).await?;
    let peer = match &a.postgis {
        Some(conn) => Some(crate::bench_peer::Peer::connect(conn, a.kind).await?),
        None => None,
    };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(a.seed);
    let warmup = (a.iterations / 10).max(1);
    let mut times = Vec::with_capacity(a.iterations);
    let mut peer_times = Vec::with_capacity(a.iterations);
    let mut rows = 0u64;
    let mut disagree = Vec::new();
    for i in 0..warmup + a.iterations {
        let s = samples.choose(&mut rng).context("no samples")?;
        // The second area of an ALL search: where the same vehicle was at
        // least an hour apart from the first sighting (its timeline,
        // fetched untimed), else a random other read.
        let other = match a.kind {
            Kind::GeoTwoAreaAll => elsewhere(&ch, s)
                .await?
                .filter(|_| rng.random_bool(0.9))
                .unwrap_or_else(|| {
                    samples
                        .choose(&mut rng)
                        .cloned()
                        .unwrap_or_else(|| s.clone())
                }),
            _ => s.clone(),
        };
        let started = Instant::now();
        let c = run_one(&ch, a.kind, s, &other).await?;
        let took = started.elapsed();
        if i >= warmup {
            times.push(took);
            rows += c.rows.len() as u64;
        }
        if let Some(peer) = &peer {
            let started = Instant::now();
            let n = peer.search(s, &other).await?;
            let took = started.elapsed();
            if i >= warmup {
                peer_times.push(took);
            }
            if n != c.rows.len() {
                disagree.push(format!(
                    "{:?} near {:.6},{:.6} at {}: nadc {} rows, PostGIS {n}",
                    a.kind,
                    s.lat,
                    s.lon,
                    s.at,
                    c.rows.len()
                ));
            }
        }
    }
    let searches = times.len();
    println!(
        "{:?}: {searches} searches, nadc {}, mean rows {:.1}",
        a.kind,
        line(&mut times)?,
        rows as f64 / searches as f64
    );
    if peer.is_some() {
        println!("{:?}: PostGIS {}", a.kind, line(&mut peer_times)?);
        let ratio =
            |p: f64| pct(&peer_times, p).as_secs_f64() / pct(&times, p).as_secs_f64().max(1e-9);
        println!(
            "{:?}: PostGIS/nadc p50 {:.2}x, p99 {:.2}x; row counts agree in {} of {} searches",
            a.kind,
            ratio(0.50),
            ratio(0.99),
            warmup + searches - disagree.len(),
            warmup + searches
        );
        if !disagree.is_empty() {
            for d in disagree.iter().take(10) {
                eprintln!("row counts disagree: {d}");
            }
            return Ok(ExitCode::FAILURE);
        }
    }
    Ok(ExitCode::SUCCESS)
}
