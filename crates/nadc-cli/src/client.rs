//! Client commands: push, cameras, search, node.

use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, Subcommand};
use futures::StreamExt;
use nadc_bof::format::{self, Format};
use nadc_bof::push::{PushOptions, PushReport, push_rows};
use nadc_bof::{ClientTls, pb};
use nadc_core::Timestamp;
use tonic::transport::Channel;

use crate::NodeArgs;
use crate::output::{OutputFormat, print_rows, print_vrm_summaries};

#[derive(Args, Debug)]
pub struct PushArgs {
    #[command(flatten)]
    pub(crate) node: NodeArgs,
    /// The reads file (CSV or NDJSON), or `-` for stdin.
    pub(crate) file: PathBuf,
    /// File format (default: from the extension).
    #[arg(long)]
    pub(crate) format: Option<String>,
    /// Reads per batch.
    #[arg(long, default_value_t = 2000)]
    pub(crate) batch_size: usize,
    /// Batches in flight.
    #[arg(long, default_value_t = 8)]
    pub(crate) window: usize,
    /// Show every rejected read and malformed row (default: the first 20).
    #[arg(long)]
    pub(crate) all_errors: bool,
    /// Make every batch durable in this on-disk spool before sending it, and
    /// keep retrying (with backoff) while the node is down or busy. Batches
    /// left from an earlier run are sent first.
    #[arg(long)]
    pub(crate) spool: Option<PathBuf>,
    /// Keep running: tail FILE for appended rows, or take each complete
    /// *.csv / *.ndjson file put in a directory (moved to done/ once
    /// spooled). Needs --spool. Stop with Ctrl-C or SIGTERM.
    #[arg(long)]
    pub(crate) follow: bool,
    /// Most disk the spool may use, MiB; when full, input is paused.
    #[arg(long, default_value_t = 1024)]
    pub(crate) spool_max_mb: u64,
    /// After Ctrl-C or SIGTERM, how long to keep delivering, seconds.
    #[arg(long, default_value_t = 10)]
    pub(crate) drain_timeout_s: u64,
    /// Write each batch's acknowledgement latency (milliseconds, from
    /// sending it to its acknowledgement; one per line, in order) to this
    /// file. Not with --spool.
    #[arg(long, conflicts_with = "spool")]
    pub(crate) ack_log: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum CamerasCommand {
    /// Register (or update) your force's cameras from a CSV or NDJSON file.
    Import {
        #[command(flatten)]
        node: NodeArgs,
        /// The cameras file, or `-` for stdin.
        file: PathBuf,
        /// File format (default: from the extension).
        #[arg(long)]
        format: Option<String>,
    },
    /// List registered cameras.
    List {
        #[command(flatten)]
        node: NodeArgs,
        /// Only this force's cameras.
        #[arg(long)]
        force: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum SearchCommand {
    /// A vehicle's timeline (its reads in time order), or with ? and * a
    /// wildcard search, or with --fuzzy an OCR-fuzzy search; every row
    /// carries its provenance (and, for wildcard and fuzzy, how it matched).
    Vrm {
        #[command(flatten)]
        node: NodeArgs,
        #[command(flatten)]
        access: AccessArgs,
        /// The VRM (any spacing or case), or a pattern: ? one character, * any run.
        vrm: String,
        /// Also match confusable characters (0/O/D/Q, 1/I, 2/Z, 5/S, 8/B, 6/G) and edits.
        #[arg(long)]
        fuzzy: bool,
        /// Edits allowed with --fuzzy (0 to 2).
        #[arg(long, default_value_t = 1)]
        max_edits: u32,
        /// Confusable groups instead of the default, e.g. 0ODQ,1I.
        #[arg(long, value_delimiter = ',')]
        groups: Vec<String>,
        /// For wildcard and fuzzy searches: list the matching VRMs (how each
        /// matched, first and last seen, reads) instead of the reads.
        #[arg(long)]
        by_vrm: bool,
        /// Window start, RFC 3339 (default: retention start).
        #[arg(long)]
        from: Option<String>,
        /// Window end, RFC 3339 (default: now).
        #[arg(long)]
        to: Option<String>,
        /// Rows to skip first (paging, with --limit).
        #[arg(long, default_value_t = 0)]
        offset: u32,
        /// Most rows (default: the node's).
        #[arg(long, default_value_t = 0)]
        limit: u32,
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        format: OutputFormat,
    },
    /// Vehicles seen in one or more areas (circles with their own windows).
    Geo {
        #[command(flatten)]
        node: NodeArgs,
        #[command(flatten)]
        access: AccessArgs,
        /// An area as LAT,LON,RADIUS_M,FROM,TO (times RFC 3339); repeat for more.
        #[arg(long = "area", required_unless_present = "polygons")]
        areas: Vec<String>,
        /// A polygon area as FROM,TO,WKT-or-GeoJSON (or FROM,TO,@FILE); repeat for more.
        /// Areas are numbered circles first, then polygons.
        #[arg(long = "polygon")]
        polygons: Vec<String>,
        /// any: seen in any area; all: seen in every area within its window.
        #[arg(long = "match", value_enum, default_value = "any")]
        matching: Matching,
        /// Rows to skip first (paging, with --limit).
        #[arg(long, default_value_t = 0)]
        offset: u32,
        /// Most rows (default: the node's).
        #[arg(long, default_value_t = 0)]
        limit: u32,
        /// Lift the node's caps on radius and window length.
        #[arg(long)]
        allow_broad: bool,
        /// List the matching VRMs (areas, first and last seen, reads) instead of the reads.
        #[arg(long)]
        by_vrm: bool,
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        format: OutputFormat,
    },
    /// Vehicles by make, model and colour (case-insensitive), in a window or in areas.
    Vehicle {
        #[command(flatten)]
        node: NodeArgs,
        #[command(flatten)]
        access: AccessArgs,
        /// Make, e.g. Ford.
        #[arg(long)]
        make: Option<String>,
        /// Model, e.g. Focus.
        #[arg(long)]
        model: Option<String>,
        /// Colour, e.g. Blue.
        #[arg(long)]
        colour: Option<String>,
        /// An area as LAT,LON,RADIUS_M,FROM,TO; repeat for more (then --from/--to are not used).
        #[arg(long = "area")]
        areas: Vec<String>,
        /// A polygon area as FROM,TO,WKT-or-GeoJSON (or FROM,TO,@FILE).
        #[arg(long = "polygon")]
        polygons: Vec<String>,
        /// any or all, as in `search geo`.
        #[arg(long = "match", value_enum, default_value = "any")]
        matching: Matching,
        /// Window start when no area is given, RFC 3339.
        #[arg(long)]
        from: Option<String>,
        /// Window end when no area is given, RFC 3339.
        #[arg(long)]
        to: Option<String>,
        /// Rows to skip first (paging, with --limit).
        #[arg(long, default_value_t = 0)]
        offset: u32,
        /// Most rows (default: the node's).
        #[arg(long, default_value_t = 0)]
        limit: u32,
        /// Lift the node's caps on radius and window length.
        #[arg(long)]
        allow_broad: bool,
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        format: OutputFormat,
    },
    /// What one or more cameras read in a window.
    Camera {
        #[command(flatten)]
        node: NodeArgs,
        #[command(flatten)]
        access: AccessArgs,
        /// Cameras as FORCE:CAMERA_ID (or CAMERA_ID with --force).
        #[arg(required = true)]
        cameras: Vec<String>,
        /// The force of cameras given without one.
        #[arg(long)]
        force: Option<String>,
        /// Window start, RFC 3339.
        #[arg(long)]
        from: String,
        /// Window end, RFC 3339.
        #[arg(long)]
        to: String,
        /// Rows to skip first (paging, with --limit).
        #[arg(long, default_value_t = 0)]
        offset: u32,
        /// Most rows (default: the node's).
        #[arg(long, default_value_t = 0)]
        limit: u32,
        /// Lift the node's cap on window length.
        #[arg(long)]
        allow_broad: bool,
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        format: OutputFormat,
    },
    /// Vehicles travelling with one or more targets: read at the same
    /// camera within --window seconds of a target's read, one row per
    /// companion, ranked by co-occurrences then distinct cameras.
    Convoy(crate::alerting::ConvoyArgs),
    /// Cloned plates: one VRM read at two places too far apart for the time
    /// between them.
    Clones(crate::alerting::ClonesArgs),
}

/// How the areas of a geographic search combine.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Matching {
    /// Vehicles seen in any area.
    Any,
    /// Vehicles seen in every area, each within its own window.
    All,
}

#[derive(Subcommand, Debug)]
pub enum NodeCommand {
    /// What the node is and holds.
    Info {
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Delete expired reads now, except those under legal holds (admin).
    Retention {
        #[command(flatten)]
        node: NodeArgs,
    },
}

/// The client config file's contents.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientConfig {
    node: Option<String>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    ca: Option<PathBuf>,
    /// Default purpose code for searches.
    purpose: Option<String>,
    /// Default case reference for searches.
    case: Option<String>,
}

/// Why a search is made: required by the node on every search.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct AccessArgs {
    /// Purpose code, e.g. serious-crime, major-crime, counter-terrorism,
    /// volume-crime, missing-person, road-traffic-collision (also
    /// NADC_PURPOSE, or `purpose` in the client config).
    #[arg(long, env = "NADC_PURPOSE")]
    pub purpose: Option<String>,
    /// Case or crime reference (also NADC_CASE, or `case` in the client config).
    #[arg(long = "case", env = "NADC_CASE")]
    pub case_ref: Option<String>,
    /// The force whose case it is, for a case another force shared with
    /// yours (also NADC_CASE_FORCE; default: your own force's case).
    #[arg(long = "case-force", env = "NADC_CASE_FORCE")]
    pub case_force: Option<String>,
    /// A supervisor's authorisation id, to reach data older than the
    /// standard tier (90 days by default).
    #[arg(long, env = "NADC_AUTHORISATION")]
    pub authorisation: Option<String>,
    /// If the window reaches older data than you may see, search the part
    /// you may see (the summary says so) instead of being refused.
    #[arg(long)]
    pub clip: bool,
    /// Search only the node you connect to, not its peers.
    #[arg(long)]
    pub local: bool,
}

impl AccessArgs {
    /// The scope asked for.
    pub fn scope(&self) -> i32 {
        if self.local {
            pb::Scope::Local as i32
        } else {
            pb::Scope::Unspecified as i32
        }
    }
}

/// The access context of a search: flags, environment, else the client config.
pub fn access_context(n: &NodeArgs, a: &AccessArgs) -> anyhow::Result<pb::AccessContext> {
    let (cfg, _) = client_config(n)?;
    Ok(pb::AccessContext {
        purpose: a.purpose.clone().or(cfg.purpose).unwrap_or_default(),
        case_ref: a.case_ref.clone().or(cfg.case).unwrap_or_default(),
        authorisation: a.authorisation.clone().unwrap_or_default(),
        clip_to_permitted: a.clip,
        case_force: a.case_force.clone().unwrap_or_default(),
    })
}

fn client_config(n: &NodeArgs) -> anyhow::Result<(ClientConfig, Option<PathBuf>)> {
    let (path, explicit) = match &n.client_config {
        Some(p) => (p.clone(), true),
        None => match std::env::var_os("HOME") {
            Some(home) => (PathBuf::from(home).join(".config/nadc/client.toml"), false),
            None => return Ok((ClientConfig::default(), None)),
        },
    };
    if !explicit && !path.exists() {
        return Ok((ClientConfig::default(), None));
    }
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("read client config {}", path.display()))?;
    let mut cfg: ClientConfig =
        toml::from_str(&text).with_context(|| format!("parse client config {}", path.display()))?;
    // Relative paths in the file are relative to the file.
    let base = path.parent().map(PathBuf::from).unwrap_or_default();
    for p in [&mut cfg.cert, &mut cfg.key, &mut cfg.ca]
        .into_iter()
        .flatten()
    {
        if p.is_relative() {
            *p = base.join(&*p);
        }
    }
    Ok((cfg, Some(path)))
}

/// Resolves flags, environment and config file into a node address and TLS files.
pub fn resolve_node(n: &NodeArgs) -> anyhow::Result<(String, ClientTls)> {
    let (cfg, path) = client_config(n)?;
    let from = |flag: &Option<PathBuf>, file: Option<PathBuf>, name: &str| {
        flag.clone().or(file).with_context(|| {
            format!(
                "no {name} given: use --{name} FILE, set NADC_{}, or put `{name} = \"FILE\"` in {}",
                name.to_uppercase(),
                path.as_ref()
                    .map_or("~/.config/nadc/client.toml".into(), |p| p
                        .display()
                        .to_string())
            )
        })
    };
    let node = n
        .node
        .clone()
        .or(cfg.node)
        .unwrap_or_else(|| "https://127.0.0.1:7443".into());
    let tls = ClientTls {
        ca: from(&n.ca, cfg.ca, "ca")?,
        cert: from(&n.cert, cfg.cert, "cert")?,
        key: from(&n.key, cfg.key, "key")?,
    };
    Ok((node, tls))
}

pub(crate) async fn channel(n: &NodeArgs) -> anyhow::Result<Channel> {
    let (node, tls) = resolve_node(n)?;
    Ok(nadc_bof::connect(&node, &tls).await?)
}

/// The format of `file` (`-`: stdin): `format` if given, else its extension.
pub(crate) fn input_format(file: &std::path::Path, format: Option<&str>) -> anyhow::Result<Format> {
    match format {
        Some(f) => Ok(f.parse()?),
        None if file.as_os_str() == "-" => {
            anyhow::bail!("reading stdin: give --format csv or --format ndjson")
        }
        None => Format::from_path(file).with_context(|| {
            format!(
                "cannot tell the format of {} from its extension: give --format csv or ndjson",
                file.display()
            )
        }),
    }
}

fn open_input(
    file: &PathBuf,
    format: Option<&str>,
) -> anyhow::Result<(Box<dyn Read + Send>, Format)> {
    let fmt = input_format(file, format)?;
    let input: Box<dyn Read + Send> = if file.as_os_str() == "-" {
        Box::new(std::io::stdin())
    } else {
        Box::new(std::fs::File::open(file).with_context(|| format!("open {}", file.display()))?)
    };
    Ok((input, fmt))
}

pub(crate) fn parse_time(
    s: &Option<String>,
    name: &str,
) -> anyhow::Result<Option<prost_types::Timestamp>> {
    s.as_deref()
        .map(|t| {
            Timestamp::parse_rfc3339(t)
                .map(nadc_proto::to_pb_time)
                .with_context(|| format!("parse --{name}"))
        })
        .transpose()
}

/// Prints a push report's summary and errors.
pub fn print_push_report(report: &PushReport, elapsed: Duration, all_errors: bool) {
    let t = &report.totals;
    let secs = elapsed.as_secs_f64().max(1e-9);
    println!(
        "pushed {} reads in {:.2} s ({:.0} reads/s): accepted {}, duplicates {}, rejected {}, malformed rows {}",
        t.acknowledged,
        secs,
        t.acknowledged as f64 / secs,
        t.accepted,
        t.duplicates,
        t.rejected,
        report.malformed.len()
    );
    let cap = if all_errors { usize::MAX } else { 20 };
    for r in report.rejected.iter().take(cap) {
        println!(
            "  rejected: batch {} read {} (read_id {:?}): {}: {}",
            r.batch_seq,
            r.index,
            r.read_id,
            r.code,
            crate::output::terminal_text(&r.message)
        );
    }
    for m in report.malformed.iter().take(cap) {
        println!(
            "  malformed: {}",
            crate::output::terminal_text(&m.to_string())
        );
    }
    let hidden =
        report.rejected.len().saturating_sub(cap) + report.malformed.len().saturating_sub(cap);
    if hidden > 0 {
        println!("  ... and {hidden} more (use --all-errors)");
    }
}

pub async fn push(a: PushArgs) -> anyhow::Result<ExitCode> {
    if let Some(dir) = a.spool.clone() {
        return crate::follow::push_spooled(a, dir).await;
    }
    anyhow::ensure!(
        !a.follow,
        "--follow needs --spool DIR: a long-running push keeps its reads in a spool"
    );
    let (input, fmt) = open_input(&a.file, a.format.as_deref())?;
    let rows =
        format::read_rows(input, fmt).with_context(|| format!("read {}", a.file.display()))?;
    let ch = channel(&a.node).await?;
    let bar = if std::io::stderr().is_terminal() {
        let b = indicatif::ProgressBar::new_spinner();
        b.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {elapsed} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        b.enable_steady_tick(Duration::from_millis(200));
        Some(b)
    } else {
        None
    };
    let started = Instant::now();
    let report = push_rows(
        ch,
        rows,
        PushOptions {
            batch_size: a.batch_size,
            window: a.window,
        },
        |p| {
            if let Some(b) = &bar {
                let rate = p.acknowledged as f64 / started.elapsed().as_secs_f64().max(1e-9);
                b.set_message(format!(
                    "{} reads acknowledged ({rate:.0}/s): {} accepted, {} duplicates, {} rejected",
                    p.acknowledged, p.accepted, p.duplicates, p.rejected
                ));
            }
        },
    )
    .await
    .context("push reads")?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if let Some(path) = &a.ack_log {
        let lines: String = report
            .ack_latency
            .iter()
            .map(|d| format!("{:.3}\n", d.as_secs_f64() * 1e3))
            .collect();
        std::fs::write(path, lines).with_context(|| format!("write {}", path.display()))?;
    }
    print_push_report(&report, started.elapsed(), a.all_errors);
    Ok(ExitCode::SUCCESS)
}

pub async fn cameras(cmd: CamerasCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        CamerasCommand::Import { node, file, format } => {
            let (input, fmt) = open_input(&file, format.as_deref())?;
            let mut cameras = Vec::new();
            let mut malformed = 0;
            for row in format::camera_rows(input, fmt)? {
                match row {
                    Ok(c) => cameras.push(c),
                    Err(e) => {
                        malformed += 1;
                        println!("  malformed: {e}");
                    }
                }
            }
            let mut client = pb::admin_client::AdminClient::new(channel(&node).await?);
            let resp = client
                .import_cameras(pb::ImportCamerasRequest { cameras })
                .await
                .map_err(nadc_bof::ClientError::from)
                .context("import cameras")?
                .into_inner();
            println!(
                "stored {} cameras, rejected {}, malformed rows {malformed}",
                resp.stored,
                resp.rejected.len()
            );
            for r in &resp.rejected {
                println!(
                    "  rejected: camera {} ({:?}): {}",
                    r.index, r.camera_id, r.message
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        CamerasCommand::List { node, force } => {
            let mut client = pb::admin_client::AdminClient::new(channel(&node).await?);
            let resp = client
                .list_cameras(pb::ListCamerasRequest {
                    force: force.unwrap_or_default(),
                })
                .await
                .map_err(nadc_bof::ClientError::from)
                .context("list cameras")?
                .into_inner();
            // A camera id is the force's free text: written through the
            // spreadsheet-safe CSV writer, not joined by hand.
            let mut w = crate::output::SpreadsheetCsv::new(std::io::stdout().lock());
            w.row([
                "force",
                "camera_id",
                "lat",
                "lon",
                "bearing",
                "kind",
                "lanes",
            ])?;
            for c in resp.cameras {
                w.row([
                    c.force,
                    c.camera_id,
                    format!("{:.6}", c.lat),
                    format!("{:.6}", c.lon),
                    c.bearing.map(|b| b.to_string()).unwrap_or_default(),
                    pb::CameraKind::try_from(c.kind)
                        .map(|k| k.as_str_name())
                        .unwrap_or("?")
                        .to_string(),
                    c.lanes.map(|l| l.to_string()).unwrap_or_default(),
                ])?;
            }
            w.flush()?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// A collected search result.
#[derive(Debug, Default)]
pub struct Collected {
    /// Rows in result order.
    pub rows: Vec<pb::ReadRow>,
    /// Per-VRM summaries (geographic searches).
    pub vrms: Vec<pb::VrmAreaSummary>,
    /// The final summary.
    pub summary: Option<pb::SearchSummary>,
}

/// Collects a streamed search result.
pub async fn collect_stream(
    stream: tonic::Streaming<pb::SearchChunk>,
) -> anyhow::Result<Collected> {
    collect(stream).await
}

async fn collect(mut stream: tonic::Streaming<pb::SearchChunk>) -> anyhow::Result<Collected> {
    let mut out = Collected::default();
    while let Some(chunk) = stream.next().await {
        match chunk.map_err(nadc_bof::ClientError::from)?.chunk {
            Some(pb::search_chunk::Chunk::Rows(b)) => out.rows.extend(b.rows),
            Some(pb::search_chunk::Chunk::Vrms(v)) => out.vrms.extend(v.vrms),
            Some(pb::search_chunk::Chunk::Summary(s)) => out.summary = Some(s),
            None => {}
        }
    }
    Ok(out)
}

/// Collects a search's streamed answer (or its refusal), naming the search.
async fn answer(
    call: Result<tonic::Response<tonic::Streaming<pb::SearchChunk>>, tonic::Status>,
    what: &'static str,
) -> anyhow::Result<Collected> {
    let stream = call
        .map_err(nadc_bof::ClientError::from)
        .context(what)?
        .into_inner();
    collect(stream).await.context(what)
}

pub(crate) fn search_client(ch: Channel) -> pb::search_client::SearchClient<Channel> {
    pb::search_client::SearchClient::new(ch).max_decoding_message_size(64 << 20)
}

/// Runs a VRM timeline search and collects the rows and summary.
pub async fn vrm_timeline(
    ch: Channel,
    req: pb::VrmTimelineRequest,
) -> anyhow::Result<(Vec<pb::ReadRow>, Option<pb::SearchSummary>)> {
    let stream = search_client(ch)
        .vrm_timeline(req)
        .await
        .map_err(nadc_bof::ClientError::from)?
        .into_inner();
    let c = collect(stream).await?;
    Ok((c.rows, c.summary))
}

/// Runs a geographic search.
pub async fn geo_search(ch: Channel, req: pb::GeoSearchRequest) -> anyhow::Result<Collected> {
    let stream = search_client(ch)
        .geo_search(req)
        .await
        .map_err(nadc_bof::ClientError::from)?
        .into_inner();
    collect(stream).await
}

/// Parses `LAT,LON,RADIUS_M,FROM,TO`.
pub fn parse_area(s: &str) -> anyhow::Result<pb::Area> {
    let parts: Vec<&str> = s.split(',').map(str::trim).collect();
    let [lat, lon, radius, from, to] = parts.as_slice() else {
        anyhow::bail!("--area {s:?}: expected LAT,LON,RADIUS_M,FROM,TO (times RFC 3339)");
    };
    let num = |v: &str, what: &str| {
        v.parse::<f64>()
            .with_context(|| format!("--area {s:?}: {what} {v:?} is not a number"))
    };
    let time = |v: &str, what: &str| {
        Timestamp::parse_rfc3339(v)
            .map(nadc_proto::to_pb_time)
            .with_context(|| format!("--area {s:?}: {what}"))
    };
    Ok(pb::Area {
        lat: num(lat, "latitude")?,
        lon: num(lon, "longitude")?,
        radius_m: num(radius, "radius")?,
        from: Some(time(from, "from")?),
        to: Some(time(to, "to")?),
        polygon: String::new(),
    })
}

/// Parses `FROM,TO,POLYGON`: the polygon as WKT or GeoJSON text, or
/// `@FILE` to read it from a file.
pub fn parse_polygon_area(s: &str) -> anyhow::Result<pb::Area> {
    let mut parts = s.splitn(3, ',');
    let (Some(from), Some(to), Some(shape)) = (parts.next(), parts.next(), parts.next()) else {
        anyhow::bail!("--polygon {s:?}: expected FROM,TO,WKT-or-GeoJSON (or FROM,TO,@FILE)");
    };
    let time = |v: &str, what: &str| {
        Timestamp::parse_rfc3339(v.trim())
            .map(nadc_proto::to_pb_time)
            .with_context(|| format!("--polygon: {what}"))
    };
    let polygon = match shape.trim().strip_prefix('@') {
        Some(path) => {
            std::fs::read_to_string(path).with_context(|| format!("read polygon file {path}"))?
        }
        None => shape.to_string(),
    };
    Ok(pb::Area {
        from: Some(time(from, "from")?),
        to: Some(time(to, "to")?),
        polygon,
        ..Default::default()
    })
}

fn all_areas(circles: &[String], polygons: &[String]) -> anyhow::Result<Vec<pb::Area>> {
    circles
        .iter()
        .map(|a| parse_area(a))
        .chain(polygons.iter().map(|p| parse_polygon_area(p)))
        .collect()
}

/// Parses a camera as `FORCE:CAMERA_ID`, or `CAMERA_ID` with a default force.
fn parse_camera(s: &str, force: Option<&str>) -> anyhow::Result<pb::CameraRef> {
    match (s.split_once(':'), force) {
        (Some((f, id)), _) => Ok(pb::CameraRef {
            force: f.to_string(),
            camera_id: id.to_string(),
        }),
        (None, Some(f)) => Ok(pb::CameraRef {
            force: f.to_string(),
            camera_id: s.to_string(),
        }),
        (None, None) => anyhow::bail!("camera {s:?}: write FORCE:CAMERA_ID or give --force"),
    }
}

pub async fn search(cmd: SearchCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        SearchCommand::Convoy(a) => crate::alerting::convoy(a).await,
        SearchCommand::Clones(a) => crate::alerting::clones(a).await,
        SearchCommand::Vrm {
            node,
            access,
            vrm,
            fuzzy,
            max_edits,
            groups,
            by_vrm,
            from,
            to,
            limit,
            offset,
            format,
        } => {
            let (from, to) = (parse_time(&from, "from")?, parse_time(&to, "to")?);
            let ch = channel(&node).await?;
            let out = &mut std::io::stdout().lock();
            if fuzzy || by_vrm || offset > 0 || vrm.contains(['?', '*']) {
                let req = pb::VrmSearchRequest {
                    access: Some(access_context(&node, &access)?),
                    scope: access.scope(),
                    on_behalf_of: None,
                    pattern: vrm,
                    fuzzy,
                    max_edits: Some(max_edits),
                    confusable_groups: groups,
                    from,
                    to,
                    limit,
                    offset,
                };
                let c = answer(search_client(ch).vrm_search(req).await, "search vrm").await?;
                if by_vrm {
                    print_vrm_summaries(out, format, &c.vrms, c.summary.as_ref())?;
                } else {
                    print_rows(out, format, &c.rows, c.summary.as_ref(), false)?;
                }
            } else {
                let req = pb::VrmTimelineRequest {
                    scope: access.scope(),
                    on_behalf_of: None,
                    access: Some(access_context(&node, &access)?),
                    vrm,
                    from,
                    to,
                    limit,
                };
                let (rows, summary) = vrm_timeline(ch, req).await.context("search vrm")?;
                print_rows(out, format, &rows, summary.as_ref(), true)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        SearchCommand::Geo {
            node,
            access,
            areas,
            polygons,
            matching,
            limit,
            offset,
            allow_broad,
            by_vrm,
            format,
        } => {
            let req = pb::GeoSearchRequest {
                access: Some(access_context(&node, &access)?),
                scope: access.scope(),
                on_behalf_of: None,
                areas: all_areas(&areas, &polygons)?,
                r#match: match matching {
                    Matching::Any => pb::AreaMatch::Any,
                    Matching::All => pb::AreaMatch::All,
                } as i32,
                limit,
                offset,
                allow_broad,
            };
            let c = geo_search(channel(&node).await?, req)
                .await
                .context("search geo")?;
            let out = &mut std::io::stdout().lock();
            if by_vrm {
                print_vrm_summaries(out, format, &c.vrms, c.summary.as_ref())?;
            } else {
                print_rows(out, format, &c.rows, c.summary.as_ref(), false)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        SearchCommand::Vehicle {
            node,
            access,
            make,
            model,
            colour,
            areas,
            polygons,
            matching,
            from,
            to,
            limit,
            offset,
            allow_broad,
            format,
        } => {
            let req = pb::VehicleSearchRequest {
                access: Some(access_context(&node, &access)?),
                scope: access.scope(),
                on_behalf_of: None,
                make,
                model,
                colour,
                areas: all_areas(&areas, &polygons)?,
                r#match: match matching {
                    Matching::Any => pb::AreaMatch::Any,
                    Matching::All => pb::AreaMatch::All,
                } as i32,
                from: parse_time(&from, "from")?,
                to: parse_time(&to, "to")?,
                limit,
                offset,
                allow_broad,
            };
            let call = search_client(channel(&node).await?)
                .vehicle_search(req)
                .await;
            let c = answer(call, "search vehicle").await?;
            print_rows(
                &mut std::io::stdout().lock(),
                format,
                &c.rows,
                c.summary.as_ref(),
                false,
            )?;
            Ok(ExitCode::SUCCESS)
        }
        SearchCommand::Camera {
            node,
            access,
            cameras,
            force,
            from,
            to,
            limit,
            offset,
            allow_broad,
            format,
        } => {
            let req = pb::CameraSearchRequest {
                access: Some(access_context(&node, &access)?),
                scope: access.scope(),
                on_behalf_of: None,
                cameras: cameras
                    .iter()
                    .map(|c| parse_camera(c, force.as_deref()))
                    .collect::<anyhow::Result<_>>()?,
                from: parse_time(&Some(from), "from")?,
                to: parse_time(&Some(to), "to")?,
                limit,
                offset,
                allow_broad,
            };
            let call = search_client(channel(&node).await?)
                .camera_search(req)
                .await;
            let c = answer(call, "search camera").await?;
            print_rows(
                &mut std::io::stdout().lock(),
                format,
                &c.rows,
                c.summary.as_ref(),
                false,
            )?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub async fn node(cmd: NodeCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        NodeCommand::Retention { node } => crate::governance::retention(&node).await,
        NodeCommand::Info { node } => {
            let mut client = pb::admin_client::AdminClient::new(channel(&node).await?);
            let info = client
                .node_info(pb::NodeInfoRequest {})
                .await
                .map_err(nadc_bof::ClientError::from)
                .context("node info")?
                .into_inner();
            println!("node:      {} (nadc {})", info.node, info.version);
            println!("you are:   {}", info.caller);
            println!("reads:     {}", info.reads);
            for f in &info.forces {
                println!("  {:<10} {}", f.force, f.rows);
            }
            println!("retention: {} days", info.retention_days);
            let t = |t: &Option<_>| {
                t.as_ref()
                    .and_then(nadc_proto::from_pb_time)
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_else(|| "-".into())
            };
            println!("earliest:  {}", t(&info.earliest));
            println!("latest:    {}", t(&info.latest));
            if let Some(r) = &info.replication {
                println!(
                    "replica:   of log stream {} ({}), applied to {}, {} behind",
                    r.stream,
                    if r.forces.is_empty() {
                        "every force".to_string()
                    } else {
                        r.forces.join(", ")
                    },
                    r.applied,
                    r.behind
                );
                if r.log_reachable {
                    println!(
                        "log:       last position {}, leader {}, {} of {} copies current",
                        r.last_in_log, r.leader, r.replicas_current, r.replicas
                    );
                } else {
                    println!("log:       not reachable");
                }
                if !r.problem.is_empty() {
                    println!("problem:   {}", r.problem);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
