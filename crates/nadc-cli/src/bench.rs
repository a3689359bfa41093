//! `nadc bench search`: search latency from a client process, end to end
//! (mTLS, the node's planning and scans, streaming the whole result), over
//! data made by `nadc gen`. Inputs are drawn (seeded) from the generated
//! files: VRMs from the reads, places and times from reads at cameras, and
//! for convoy analyses the generated period (`truth.json`).

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
use crate::client::resolve_node;

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
    /// Who travelled with a VRM over the whole generated period: read at
    /// the same camera within [`CONVOY_WINDOW_S`] of one of its reads.
    Convoy,
    /// Hot spots (`Analysis.HotSpots`) of a VRM's reads over the whole
    /// generated period, resolution 7 (nadc alone: PostGIS has no H3).
    HotspotsVrm,
    /// Hot spots of all traffic in the hour around a sampled read,
    /// resolution 7: a scan of that day's reads.
    HotspotsTraffic,
    /// An alibi check of a sampled read's VRM: could it have been within
    /// 1 km of a place 5 km north of the read in the hour after it? Its
    /// reads 24 hours either side weighed, the cameras there judged over a
    /// 28-day baseline.
    Alibi,
    /// A subject profile of a VRM over the whole generated period.
    Profile,
    /// The associate network of a VRM over the whole generated period,
    /// two hops (each a convoy search with the benchmark's settings).
    Network,
    /// Crime pattern: vehicles near at least two of 20 sampled reads taken
    /// as incidents (500 m, ±30 minutes).
    Pattern,
    /// Camera positioning: 200 sampled reads as incidents, a road link
    /// from each of the first 20 to the next.
    Sites,
    /// Results analysis of the benchmark user's force over the period.
    Results,
    /// The transparency report for the months of the period.
    Transparency,
    /// Camera health of every camera in the hour before a sampled read,
    /// over a 7-day baseline.
    CameraHealth,
    /// A sampled VRM added to a hotlist with a one-day look-back
    /// (retrospective hits; the user must manage hotlists too).
    Retrospective,
}

impl Kind {
    /// Whether a PostGIS peer can be asked the same (it has no H3 cells).
    pub fn has_sql_peer(self) -> bool {
        !matches!(
            self,
            Kind::HotspotsVrm
                | Kind::HotspotsTraffic
                | Kind::Alibi
                | Kind::Pattern
                | Kind::Sites
                | Kind::Results
                | Kind::Transparency
                | Kind::CameraHealth
                | Kind::Retrospective
        )
    }
}

/// The convoy analysis benchmarked, spelt out in the request rather than
/// left to the node's defaults, so the SQL peer asks exactly the same:
/// sighting window in seconds either side of a target read.
pub const CONVOY_WINDOW_S: u32 = 120;
/// Least co-occurrences (target reads accompanied) to list a companion.
pub const CONVOY_MIN_COUNT: u32 = 2;
/// Least distinct cameras to list a companion.
pub const CONVOY_MIN_CAMERAS: u32 = 1;
/// Most companions returned.
pub const CONVOY_LIMIT: u32 = 100;

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
    /// Ask the node searched only, not its peers (the single-node side of
    /// the fan-out benchmark, `benches/federation.sh`).
    #[arg(long)]
    local: bool,
    /// Also write each timed search's latency, milliseconds, one a line in
    /// the order asked (the same inputs for the same seed), so runs against
    /// different nodes can be compared search by search.
    #[arg(long)]
    times: Option<PathBuf>,
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

/// The period `nadc gen` simulated (`truth.json`: its first day and how
/// many days), inclusive at both ends: a convoy analysis over it covers
/// each target's whole timeline.
fn generated_period(dir: &std::path::Path) -> anyhow::Result<(Timestamp, Timestamp)> {
    let path = dir.join("truth.json");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "read {} (written by `nadc gen` into its --out directory)",
            path.display()
        )
    })?;
    period_of(&text).with_context(|| format!("parse {}", path.display()))
}

/// The period of a `truth.json`'s text: from its `day` for its `days`.
fn period_of(truth: &str) -> anyhow::Result<(Timestamp, Timestamp)> {
    #[derive(serde::Deserialize)]
    struct Truth {
        day: String,
        days: u32,
    }
    let t: Truth = serde_json::from_str(truth)?;
    let from = Timestamp::parse_rfc3339(&t.day).with_context(|| format!("day {:?}", t.day))?;
    let days = i64::from(t.days.max(1));
    Ok((
        from,
        from.plus_millis(days * nadc_core::time::MS_PER_DAY - 1),
    ))
}

/// A companion as both systems rank it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompanionCount {
    /// Its VRM.
    pub vrm: String,
    /// Distinct target reads it was read with.
    pub co_occurrences: u64,
    /// Distinct cameras (force, camera id) of those target reads.
    pub cameras: u64,
}

/// What one search returned, as far as the two systems are compared on it.
#[derive(Clone, Debug, Default)]
pub struct Answer {
    /// Rows returned: reads, or for a convoy the companions.
    pub rows: usize,
    /// Fuzzy VRM searches: the distinct VRMs of the rows, sorted (the
    /// candidate set, which a count alone could hide).
    pub vrms: Vec<String>,
    /// Convoys: the companions returned, in rank order.
    pub companions: Vec<CompanionCount>,
    /// Convoys: companions passing the filters, before the limit.
    pub total: u64,
    /// Convoys: (target read, companion read) pairs returned.
    pub pairs: u64,
    /// Convoys: the target's reads in the period (reported, not compared:
    /// the SQL does not return it).
    pub target_reads: u64,
    /// The nodes that failed, if the national answer was partial.
    pub failed: Vec<String>,
}

impl Answer {
    /// The answer of a search returning reads, given their VRMs.
    pub(crate) fn of_reads<'a>(kind: Kind, vrms: impl Iterator<Item = &'a str>) -> Answer {
        let vrms: Vec<&str> = vrms.collect();
        let rows = vrms.len();
        let vrms = if kind == Kind::Fuzzy {
            let set: std::collections::BTreeSet<&str> = vrms.into_iter().collect();
            set.into_iter().map(str::to_string).collect()
        } else {
            Vec::new()
        };
        Answer {
            rows,
            vrms,
            ..Default::default()
        }
    }
}

/// How PostGIS's answer differs from nadc's, if it does: the row count,
/// the matched VRMs, and for convoys every ranked companion with its
/// counts, the total before the limit and the pairs.
pub fn disagreement(nadc: &Answer, peer: &Answer) -> Option<String> {
    if nadc.rows != peer.rows {
        return Some(format!("nadc {} rows, PostGIS {}", nadc.rows, peer.rows));
    }
    if nadc.vrms != peer.vrms {
        let only = |a: &[String], b: &[String]| {
            a.iter()
                .filter(|v| !b.contains(v))
                .cloned()
                .collect::<Vec<_>>()
                .join(" ")
        };
        return Some(format!(
            "matched VRMs differ: only nadc [{}], only PostGIS [{}]",
            only(&nadc.vrms, &peer.vrms),
            only(&peer.vrms, &nadc.vrms)
        ));
    }
    if let Some((rank, (a, b))) = nadc
        .companions
        .iter()
        .zip(&peer.companions)
        .enumerate()
        .find(|(_, (a, b))| a != b)
    {
        return Some(format!(
            "companion ranked {}: nadc {} ({} co-occurrences, {} cameras), PostGIS {} ({}, {})",
            rank + 1,
            a.vrm,
            a.co_occurrences,
            a.cameras,
            b.vrm,
            b.co_occurrences,
            b.cameras
        ));
    }
    if nadc.total != peer.total {
        return Some(format!(
            "companions before the limit: nadc {}, PostGIS {}",
            nadc.total, peer.total
        ));
    }
    if nadc.pairs != peer.pairs {
        return Some(format!(
            "pairs: nadc {}, PostGIS {}",
            nadc.pairs, peer.pairs
        ));
    }
    None
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

/// Who travelled with `s`'s VRM over `period`, asked of the node with the
/// benchmark's convoy settings.
async fn convoy(
    ch: &Channel,
    scope: i32,
    s: &Sample,
    period: (Timestamp, Timestamp),
) -> anyhow::Result<Answer> {
    let ans = crate::alerting::convoy_search(
        ch.clone(),
        pb::ConvoyRequest {
            access: access(),
            vrms: vec![s.vrm.clone()],
            from: Some(nadc_proto::to_pb_time(period.0)),
            to: Some(nadc_proto::to_pb_time(period.1)),
            window_s: CONVOY_WINDOW_S,
            min_count: CONVOY_MIN_COUNT,
            min_cameras: CONVOY_MIN_CAMERAS,
            limit: CONVOY_LIMIT,
            scope,
            ..Default::default()
        },
    )
    .await?;
    let summary = ans.summary.context("the convoy answer has no summary")?;
    Ok(Answer {
        failed: failed_nodes(&summary.nodes),
        rows: ans.companions.len(),
        pairs: ans.companions.iter().map(|c| c.pairs.len() as u64).sum(),
        companions: ans
            .companions
            .into_iter()
            .map(|c| CompanionCount {
                vrm: c.vrm,
                co_occurrences: c.co_occurrences.into(),
                cameras: c.cameras.into(),
            })
            .collect(),
        total: summary.total_companions,
        target_reads: summary.target_reads,
        vrms: Vec::new(),
    })
}

async fn run_one(
    ch: &Channel,
    kind: Kind,
    scope: pb::Scope,
    s: &Sample,
    other: &Sample,
    series: &[Sample],
    period: (Timestamp, Timestamp),
) -> anyhow::Result<Answer> {
    let scope = scope as i32;
    let mut client =
        pb::search_client::SearchClient::new(ch.clone()).max_decoding_message_size(256 << 20);
    const H: i64 = 3_600_000;
    let stream = match kind {
        Kind::Pattern => return crate::bench_analysis::pattern(ch, scope, series).await,
        Kind::Sites => return crate::bench_analysis::sites(ch, scope, series).await,
        Kind::Results => return crate::bench_analysis::results(ch, scope, period.0).await,
        Kind::Transparency => {
            return crate::bench_analysis::transparency(ch, scope).await;
        }
        Kind::CameraHealth => return crate::bench_analysis::camera_health(ch, scope, s).await,
        Kind::Retrospective => return crate::bench_analysis::retrospective(ch, s).await,
        Kind::Convoy => return convoy(ch, scope, s, period).await,
        Kind::Network => {
            let r = pb::analysis_client::AnalysisClient::new(ch.clone())
                .max_decoding_message_size(256 << 20)
                .associate_network(pb::NetworkRequest {
                    access: crate::bench::access(),
                    scope,
                    vrms: vec![s.vrm.clone()],
                    from: Some(nadc_proto::to_pb_time(period.0)),
                    to: Some(nadc_proto::to_pb_time(period.1)),
                    window_s: CONVOY_WINDOW_S,
                    min_count: CONVOY_MIN_COUNT,
                    min_cameras: CONVOY_MIN_CAMERAS,
                    hops: 2,
                    ..Default::default()
                })
                .await?
                .into_inner();
            return Ok(Answer {
                rows: r.nodes.len(),
                total: r.edges.len() as u64,
                failed: failed_nodes(&r.nodes_asked),
                ..Default::default()
            });
        }
        Kind::Profile => {
            let r = pb::analysis_client::AnalysisClient::new(ch.clone())
                .max_decoding_message_size(256 << 20)
                .subject_profile(pb::SubjectProfileRequest {
                    access: crate::bench::access(),
                    scope,
                    vrm: s.vrm.clone(),
                    from: Some(nadc_proto::to_pb_time(period.0)),
                    to: Some(nadc_proto::to_pb_time(period.1)),
                    ..Default::default()
                })
                .await?
                .into_inner();
            return Ok(Answer {
                rows: r.reads.len(),
                total: r.locations.len() as u64,
                failed: failed_nodes(&r.nodes),
                ..Default::default()
            });
        }
        Kind::Alibi => {
            let r = pb::analysis_client::AnalysisClient::new(ch.clone())
                .max_decoding_message_size(256 << 20)
                .alibi(pb::AlibiRequest {
                    access: crate::bench::access(),
                    scope,
                    vrm: s.vrm.clone(),
                    claims: vec![pb::PlaceClaim {
                        lat: s.lat + 5_000.0 / 111_195.0,
                        lon: s.lon,
                        radius_m: 1_000.0,
                        from: Some(nadc_proto::to_pb_time(s.at.plus_millis(10 * 60_000))),
                        to: Some(nadc_proto::to_pb_time(s.at.plus_millis(70 * 60_000))),
                        label: String::new(),
                    }],
                    around_hours: 24,
                    baseline_days: 28,
                    ..Default::default()
                })
                .await?
                .into_inner();
            return Ok(Answer {
                rows: r.reads.len(),
                total: r.claims.iter().map(|c| c.cameras.len() as u64).sum(),
                failed: failed_nodes(&r.nodes),
                ..Default::default()
            });
        }
        Kind::HotspotsVrm | Kind::HotspotsTraffic => {
            let (vrms, all_traffic, from, to) = if kind == Kind::HotspotsVrm {
                (vec![s.vrm.clone()], false, period.0, period.1)
            } else {
                (
                    Vec::new(),
                    true,
                    s.at.plus_millis(-H / 2),
                    s.at.plus_millis(H / 2),
                )
            };
            let r = pb::analysis_client::AnalysisClient::new(ch.clone())
                .max_decoding_message_size(256 << 20)
                .hot_spots(pb::HotSpotsRequest {
                    access: crate::bench::access(),
                    scope,
                    vrms,
                    all_traffic,
                    from: Some(nadc_proto::to_pb_time(from)),
                    to: Some(nadc_proto::to_pb_time(to)),
                    resolution: 7,
                    ..Default::default()
                })
                .await?
                .into_inner();
            return Ok(Answer {
                rows: r.cells_counted as usize,
                total: r.total,
                failed: failed_nodes(&r.nodes),
                ..Default::default()
            });
        }
        Kind::Vrm => {
            client
                .vrm_timeline(pb::VrmTimelineRequest {
                    scope,
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
                    scope,
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
                    scope,
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
                    scope,
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
                    scope,
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
                    scope,
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
    let c = crate::client::collect_stream(stream).await?;
    let mut answer = Answer::of_reads(kind, c.rows.iter().map(|r| r.vrm.as_str()));
    answer.failed = failed_nodes(c.summary.iter().flat_map(|s| &s.nodes));
    Ok(answer)
}

/// The nodes of a national answer that failed.
pub(crate) fn failed_nodes<'a>(
    outcomes: impl IntoIterator<Item = &'a pb::NodeOutcome>,
) -> Vec<String> {
    outcomes
        .into_iter()
        .filter(|o| !o.ok)
        .map(|o| o.node.clone())
        .collect()
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
    let period = generated_period(&a.gen_dir)?;
    let (node, tls) = resolve_node(&a.node)?;
    let ch = nadc_bof::connect(&node, &tls).await?;
    let peer = match &a.postgis {
        Some(_) if !a.kind.has_sql_peer() => {
            anyhow::bail!(
                "{:?} has no PostGIS counterpart (no H3 cells there)",
                a.kind
            )
        }
        Some(conn) => Some(crate::bench_peer::Peer::connect(conn, a.kind).await?),
        None => None,
    };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(a.seed);
    let scope = if a.local {
        pb::Scope::Local
    } else {
        pb::Scope::Unspecified
    };
    let warmup = (a.iterations / 10).max(1);
    let mut times = Vec::with_capacity(a.iterations);
    let mut peer_times = Vec::with_capacity(a.iterations);
    let mut audited_times = Vec::with_capacity(a.iterations);
    // Sums over the timed searches: rows, and for convoys companions
    // before the limit, pairs and target reads.
    let (mut rows, mut total, mut pairs, mut target_reads) = (0u64, 0u64, 0u64, 0u64);
    let mut disagree = Vec::new();
    // The failed nodes of each partial national answer.
    let mut partial: Vec<String> = Vec::new();
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
        // A series of sampled reads taken as incidents.
        let series: Vec<Sample> = if matches!(a.kind, Kind::Pattern | Kind::Sites) {
            let n = if a.kind == Kind::Pattern {
                crate::bench_analysis::PATTERN_INCIDENTS
            } else {
                crate::bench_analysis::SITES_INCIDENTS
            };
            (0..n)
                .filter_map(|_| samples.choose(&mut rng).cloned())
                .collect()
        } else {
            Vec::new()
        };
        let started = Instant::now();
        let got = run_one(&ch, a.kind, scope, s, &other, &series, period).await?;
        let took = started.elapsed();
        if i >= warmup {
            times.push(took);
            rows += got.rows as u64;
            total += got.total;
            pairs += got.pairs;
            target_reads += got.target_reads;
            if !got.failed.is_empty() {
                partial.push(got.failed.join(" "));
            }
        }
        if let Some(peer) = &peer {
            // Without and with its audit row, the order alternating so
            // neither always finds the other's pages cached.
            for audited in [i % 2 == 0, i % 2 == 1] {
                let started = Instant::now();
                let theirs = peer.search(s, &other, period, audited).await?;
                let took = started.elapsed();
                if i >= warmup {
                    if audited {
                        audited_times.push(took);
                    } else {
                        peer_times.push(took);
                    }
                }
                if let Some(d) = disagreement(&got, &theirs) {
                    disagree.push(format!(
                        "{:?} for {} near {:.6},{:.6} at {}: {d}",
                        a.kind, s.vrm, s.lat, s.lon, s.at,
                    ));
                }
            }
        }
    }
    if let Some(path) = &a.times {
        let lines: String = times
            .iter()
            .map(|t| format!("{:.3}\n", t.as_secs_f64() * 1000.0))
            .collect();
        std::fs::write(path, lines).with_context(|| format!("write {}", path.display()))?;
    }
    let searches = times.len();
    let mean = |n: u64| n as f64 / searches as f64;
    println!(
        "{:?}: {searches} searches, nadc {}, mean rows {:.1}",
        a.kind,
        line(&mut times)?,
        mean(rows)
    );
    if !partial.is_empty() {
        let mut failed = partial.clone();
        failed.sort();
        failed.dedup();
        println!(
            "{:?}: {} of {searches} answers partial (failed: {})",
            a.kind,
            partial.len(),
            failed.join(", ")
        );
    }
    if a.kind == Kind::Network {
        println!(
            "{:?}: mean edges {:.1} (rows above: vehicles in the network)",
            a.kind,
            mean(total)
        );
    } else if a.kind == Kind::Profile {
        println!(
            "{:?}: mean locations {:.1} (rows above: the vehicle's reads profiled)",
            a.kind,
            mean(total)
        );
    } else if let Some(what) = match a.kind {
        Kind::Pattern => Some("reads near the incidents (rows above: vehicles near two or more)"),
        Kind::Sites => Some("cameras weighed (rows above: candidate sites)"),
        Kind::Results => Some("reads held in the period (rows above: operation rows)"),
        Kind::Transparency => Some("reads held (rows above: force and month rows)"),
        Kind::CameraHealth => Some("reads counted in the hour (rows above: cameras judged)"),
        Kind::Retrospective => Some("entries stored (rows above: retrospective hits logged)"),
        _ => None,
    } {
        println!("{:?}: mean {what} {:.1}", a.kind, mean(total));
    } else if a.kind == Kind::Alibi {
        println!(
            "{:?}: mean cameras judged at the place {:.1} (rows above: the vehicle's reads weighed)",
            a.kind,
            mean(total)
        );
    } else if !a.kind.has_sql_peer() {
        println!(
            "{:?}: mean reads counted {:.1} (rows above: cells with a count)",
            a.kind,
            mean(total)
        );
    }
    if a.kind == Kind::Convoy {
        println!(
            "{:?}: mean target reads {:.1}, companions before the limit {:.1}, pairs returned {:.1} \
             (±{CONVOY_WINDOW_S} s, at least {CONVOY_MIN_COUNT} co-occurrences and \
             {CONVOY_MIN_CAMERAS} camera, top {CONVOY_LIMIT})",
            a.kind,
            mean(target_reads),
            mean(total),
            mean(pairs)
        );
    }
    if peer.is_some() {
        println!("{:?}: PostGIS {}", a.kind, line(&mut peer_times)?);
        println!(
            "{:?}: PostGIS audited {}",
            a.kind,
            line(&mut audited_times)?
        );
        let ratio = |theirs: &[Duration], p: f64| {
            pct(theirs, p).as_secs_f64() / pct(&times, p).as_secs_f64().max(1e-9)
        };
        println!(
            "{:?}: PostGIS audited/nadc p50 {:.2}x, p99 {:.2}x; PostGIS/nadc p50 {:.2}x, p99 {:.2}x; \
             answers agree in {} of {} searches",
            a.kind,
            ratio(&audited_times, 0.50),
            ratio(&audited_times, 0.99),
            ratio(&peer_times, 0.50),
            ratio(&peer_times, 0.99),
            2 * (warmup + searches) - disagree.len(),
            2 * (warmup + searches)
        );
        if !disagree.is_empty() {
            for d in disagree.iter().take(10) {
                eprintln!("answers disagree: {d}");
            }
            return Ok(ExitCode::FAILURE);
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::{Answer, CompanionCount, Kind, disagreement, period_of};

    fn companion(vrm: &str, co_occurrences: u64, cameras: u64) -> CompanionCount {
        CompanionCount {
            vrm: vrm.into(),
            co_occurrences,
            cameras,
        }
    }

    fn convoy(companions: Vec<CompanionCount>, total: u64, pairs: u64) -> Answer {
        Answer {
            rows: companions.len(),
            companions,
            total,
            pairs,
            ..Default::default()
        }
    }

    #[test]
    fn the_period_is_the_generated_days_inclusive() {
        let (from, to) =
            period_of(r#"{"day": "2026-11-23T00:00:00.000Z", "days": 2, "seed": 1}"#).unwrap();
        assert_eq!(from.to_rfc3339(), "2026-11-23T00:00:00.000Z");
        assert_eq!(to.to_rfc3339(), "2026-11-24T23:59:59.999Z");
        assert!(period_of(r#"{"day": "yesterday", "days": 1}"#).is_err());
    }

    #[test]
    fn fuzzy_answers_keep_their_distinct_vrms_sorted() {
        let a = Answer::of_reads(Kind::Fuzzy, ["AB12CDE", "A812CDE", "AB12CDE"].into_iter());
        assert_eq!(a.rows, 3);
        assert_eq!(a.vrms, ["A812CDE", "AB12CDE"]);
        let a = Answer::of_reads(Kind::Vrm, ["AB12CDE", "AB12CDE"].into_iter());
        assert_eq!(a.rows, 2);
        assert!(a.vrms.is_empty());
    }

    #[test]
    fn answers_agree_on_counts_vrms_and_ranked_companions() {
        let fuzzy = |vrms: &[&str]| Answer {
            rows: 5,
            vrms: vrms.iter().map(|v| v.to_string()).collect(),
            ..Default::default()
        };
        assert_eq!(
            disagreement(&fuzzy(&["AB12CDE"]), &fuzzy(&["AB12CDE"])),
            None
        );
        let d = disagreement(
            &fuzzy(&["AB12CDE", "A812CDE"]),
            &fuzzy(&["AB12CDE", "AB12CDF"]),
        );
        assert_eq!(
            d.as_deref(),
            Some("matched VRMs differ: only nadc [A812CDE], only PostGIS [AB12CDF]")
        );
        let rows = |n| Answer {
            rows: n,
            ..Default::default()
        };
        assert_eq!(
            disagreement(&rows(3), &rows(4)).as_deref(),
            Some("nadc 3 rows, PostGIS 4")
        );

        let nadc = convoy(
            vec![companion("XY11ABC", 5, 3), companion("XY22ABC", 2, 1)],
            7,
            7,
        );
        assert_eq!(disagreement(&nadc, &nadc.clone()), None);
        let swapped = convoy(
            vec![companion("XY11ABC", 5, 3), companion("XY22ABC", 2, 2)],
            7,
            7,
        );
        assert_eq!(
            disagreement(&nadc, &swapped).as_deref(),
            Some(
                "companion ranked 2: nadc XY22ABC (2 co-occurrences, 1 cameras), PostGIS XY22ABC (2, 2)"
            )
        );
        let more = convoy(nadc.companions.clone(), 8, 7);
        assert!(
            disagreement(&nadc, &more)
                .unwrap()
                .starts_with("companions before the limit")
        );
        let pairs = convoy(nadc.companions.clone(), 7, 6);
        assert!(disagreement(&nadc, &pairs).unwrap().starts_with("pairs"));
    }
}
