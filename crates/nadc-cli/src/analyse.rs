//! `nadc analyse`: analyses for investigators and analysts (the Analysis
//! service), governed as searches (`--purpose`, `--case`).

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use nadc_bof::{ClientError, pb};
use serde_json::{Value, json};

use crate::NodeArgs;
use crate::alerting::list_ref;
use crate::client::{AccessArgs, access_context, channel, parse_time};
use crate::output::{OutputFormat, SpreadsheetCsv, terminal_text};

#[derive(Subcommand, Debug)]
pub enum AnalyseCommand {
    /// Hot spots and timing: reads, hits or verified hits counted by H3
    /// cell and by hour of the week (UK local time, or --utc), the busiest
    /// cells first.
    Hotspots(HotspotsArgs),
    /// Camera health: each camera's reads in a window against its own
    /// usual rate by hour of the week (silent cameras first), so a missing
    /// read is not mistaken for absence.
    Cameras(CamerasArgs),
    /// Alibi check: could the vehicle have been at a place between two
    /// times? Judged against its reads around then (at a maximum speed) and
    /// the coverage of the cameras at the place.
    Alibi(crate::alibi::AlibiArgs),
    /// Journey check: a claimed route (places and times, from a CSV file)
    /// against the vehicle's reads, each camera's coverage at each place,
    /// and the speed each leg needs.
    Journey(crate::alibi::JourneyArgs),
    /// Subject profile: the vehicle's usual locations, times and journeys
    /// over a period, and the reads that do not fit, scored.
    Profile(crate::profile::ProfileArgs),
    /// Associate network: the co-travel graph of seed vehicles from their
    /// convoy companions, hop by hop; GraphML, or CSV node and edge lists
    /// for i2 Analyst's Notebook.
    Network(crate::network::NetworkArgs),
    /// Crime pattern: the vehicles near at least K of a series of incidents
    /// (a CSV of time, place, type and reference), within ±T and R metres,
    /// ranked, with the reads behind each.
    Pattern(crate::pattern::PatternArgs),
    /// Results analysis: your force's hits per list with their
    /// verification, outcomes and hit rate, and searches per operation and
    /// purpose (aggregates only).
    Results(crate::reports::ResultsArgs),
    /// Camera positioning: hot cells (incidents and your force's hits) with
    /// no camera within a distance, and where road links cross into them
    /// uncovered, ranked as candidate camera sites.
    Sites(crate::sites::SitesArgs),
    /// The public transparency report: per force and month, searches by
    /// purpose, reads held, hits and outcomes, deletions by retention and
    /// holds; small counts suppressed.
    Transparency(crate::reports::TransparencyArgs),
}

/// `nadc analyse cameras`.
#[derive(Args, Debug)]
pub struct CamerasArgs {
    #[command(flatten)]
    node: NodeArgs,
    #[command(flatten)]
    access: AccessArgs,
    /// Window start, RFC 3339 (default: 24 hours ago).
    #[arg(long)]
    from: Option<String>,
    /// Window end, RFC 3339 (default: now).
    #[arg(long)]
    to: Option<String>,
    /// Days before the window that give each camera's usual rate.
    #[arg(long, default_value_t = 28)]
    baseline_days: u32,
    /// Only this force's cameras.
    #[arg(long, default_value = "")]
    force: String,
    /// Lift the node's cap on the baseline and window's length.
    #[arg(long)]
    allow_broad: bool,
    /// table, csv or geojson (each camera a point with its status).
    #[arg(long, value_enum, default_value = "table")]
    format: OutputFormat,
}

/// What a hot-spot analysis counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Count {
    /// The subject's reads.
    Reads,
    /// Hotlist hits raised for your force.
    Hits,
    /// Those hits verified as confirmed.
    VerifiedHits,
}

/// `nadc analyse hotspots`.
#[derive(Args, Debug)]
pub struct HotspotsArgs {
    #[command(flatten)]
    node: NodeArgs,
    #[command(flatten)]
    access: AccessArgs,
    /// Subject VRMs (for hits: only hits on these).
    vrms: Vec<String>,
    /// Also every active entry of this list of your force (NAME).
    #[arg(long)]
    hotlist: Option<String>,
    /// What to count.
    #[arg(long, value_enum, default_value = "reads")]
    count: Count,
    /// Count every read in the window (no subject): a full scan of its days.
    #[arg(long)]
    all_traffic: bool,
    /// Count the reads of vehicles of this make (no subject).
    #[arg(long)]
    make: Option<String>,
    /// ... of this model.
    #[arg(long)]
    model: Option<String>,
    /// ... of this colour.
    #[arg(long)]
    colour: Option<String>,
    /// H3 resolution of the cells, 0 to 10 (7: about 5 km²).
    #[arg(long, default_value_t = 7)]
    resolution: u32,
    /// Window start, RFC 3339 (default: 24 hours ago).
    #[arg(long)]
    from: Option<String>,
    /// Window end, RFC 3339 (default: now).
    #[arg(long)]
    to: Option<String>,
    /// Cells listed (the totals cover every cell).
    #[arg(long, default_value_t = 20)]
    limit: u32,
    /// Lift the node's cap on window length.
    #[arg(long)]
    allow_broad: bool,
    /// Hours of the week in UTC (default: UK local time, GMT or BST).
    #[arg(long)]
    utc: bool,
    /// table, csv, ndjson or geojson (hexagons with their counts).
    #[arg(long, value_enum, default_value = "table")]
    format: OutputFormat,
}

/// Runs an analysis subcommand.
pub async fn run(command: AnalyseCommand) -> anyhow::Result<ExitCode> {
    match command {
        AnalyseCommand::Hotspots(a) => hotspots(a).await,
        AnalyseCommand::Cameras(a) => cameras(a).await,
        AnalyseCommand::Alibi(a) => crate::alibi::alibi(a).await,
        AnalyseCommand::Journey(a) => crate::alibi::journey(a).await,
        AnalyseCommand::Profile(a) => crate::profile::run(a).await,
        AnalyseCommand::Network(a) => crate::network::run(a).await,
        AnalyseCommand::Pattern(a) => crate::pattern::run(a).await,
        AnalyseCommand::Results(a) => crate::reports::results(a).await,
        AnalyseCommand::Sites(a) => crate::sites::run(a).await,
        AnalyseCommand::Transparency(a) => crate::reports::transparency(a).await,
    }
}

async fn cameras(a: CamerasArgs) -> anyhow::Result<ExitCode> {
    let req = pb::CameraHealthRequest {
        access: Some(access_context(&a.node, &a.access)?),
        from: parse_time(&a.from, "from")?,
        to: parse_time(&a.to, "to")?,
        baseline_days: a.baseline_days,
        force: a.force,
        allow_broad: a.allow_broad,
        scope: a.access.scope(),
        on_behalf_of: None,
    };
    let r = pb::analysis_client::AnalysisClient::new(channel(&a.node).await?)
        .max_decoding_message_size(64 << 20)
        .camera_health(req)
        .await
        .map_err(ClientError::from)
        .context("camera health")?
        .into_inner();
    crate::output::warn_stale(&r.stale);
    let header = [
        "status",
        "camera",
        "lat",
        "lon",
        "reads",
        "expected",
        "last_read",
    ];
    let rows: Vec<Vec<String>> = r
        .cameras
        .iter()
        .map(|c| {
            let status = pb::CameraStatus::try_from(c.status)
                .map(|s| {
                    s.as_str_name()
                        .trim_start_matches("CAMERA_STATUS_")
                        .to_lowercase()
                        .replace('_', " ")
                })
                .unwrap_or_default();
            vec![
                status,
                format!("{}/{}", c.force, c.camera_id),
                format!("{:.6}", c.lat),
                format!("{:.6}", c.lon),
                c.reads.to_string(),
                format!("{:.1}", c.expected),
                crate::output::time(&c.last_read),
            ]
        })
        .collect();
    let out = &mut std::io::stdout().lock();
    match a.format {
        OutputFormat::Csv => {
            let mut w = SpreadsheetCsv::new(&mut *out);
            w.row(header)?;
            for row in rows {
                w.row(row)?;
            }
        }
        OutputFormat::Table => {
            for row in std::iter::once(header.map(String::from).to_vec()).chain(rows) {
                writeln!(
                    out,
                    "{}",
                    row.iter()
                        .map(|c| format!("{:<14}", terminal_text(c)))
                        .collect::<Vec<_>>()
                        .join(" ")
                )?;
            }
        }
        OutputFormat::Geojson => {
            let features: Vec<Value> = r
                .cameras
                .iter()
                .zip(rows)
                .map(|(c, row)| {
                    let props: serde_json::Map<String, Value> = header
                        .iter()
                        .zip(row)
                        .map(|(k, v)| (k.to_string(), Value::String(v)))
                        .collect();
                    json!({"type": "Feature",
                        "geometry": {"type": "Point", "coordinates": [c.lon, c.lat]},
                        "properties": props})
                })
                .collect();
            writeln!(
                out,
                "{}",
                json!({"type": "FeatureCollection", "features": features,
                    "properties": {"node": r.node, "partial": r.partial}})
            )?;
        }
        other => anyhow::bail!("camera health is written as table, csv or geojson, not {other:?}"),
    }
    Ok(ExitCode::SUCCESS)
}

const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// `Mon 08:00` for hour-of-week `h`.
fn hour_name(h: usize) -> String {
    format!("{} {:02}:00", DAYS[h / 24 % 7], h % 24)
}

/// The busiest hour of the week in `hours`, if any was counted.
fn peak(hours: &[u64]) -> Option<usize> {
    let max = *hours.iter().max()?;
    (max > 0).then(|| hours.iter().position(|n| *n == max).unwrap_or(0))
}

fn forces_text(forces: &[pb::ForceCount]) -> String {
    forces
        .iter()
        .map(|f| format!("{} {}", f.force, f.rows))
        .collect::<Vec<_>>()
        .join(", ")
}

fn cameras_text(cameras: &[pb::CameraRef]) -> String {
    cameras
        .iter()
        .map(|c| format!("{}/{}", c.force, c.camera_id))
        .collect::<Vec<_>>()
        .join("|")
}

/// The cell's hexagon as a closed GeoJSON ring, [lon, lat] pairs.
pub(crate) fn hexagon(cell: u64) -> Vec<[f64; 2]> {
    let Ok(c) = h3o::CellIndex::try_from(cell) else {
        return Vec::new();
    };
    let mut ring: Vec<[f64; 2]> = c.boundary().iter().map(|ll| [ll.lng(), ll.lat()]).collect();
    if let Some(first) = ring.first().copied() {
        ring.push(first);
    }
    ring
}

async fn hotspots(a: HotspotsArgs) -> anyhow::Result<ExitCode> {
    let req = pb::HotSpotsRequest {
        access: Some(access_context(&a.node, &a.access)?),
        from: parse_time(&a.from, "from")?,
        to: parse_time(&a.to, "to")?,
        resolution: a.resolution,
        vrms: a.vrms,
        hotlist: a.hotlist.as_deref().map(list_ref),
        count: match a.count {
            Count::Reads => pb::HotSpotCount::Reads,
            Count::Hits => pb::HotSpotCount::Hits,
            Count::VerifiedHits => pb::HotSpotCount::VerifiedHits,
        } as i32,
        limit: a.limit,
        allow_broad: a.allow_broad,
        scope: a.access.scope(),
        on_behalf_of: None,
        all_traffic: a.all_traffic,
        make: a.make,
        model: a.model,
        colour: a.colour,
        utc: a.utc,
    };
    let mut client = pb::analysis_client::AnalysisClient::new(channel(&a.node).await?)
        .max_decoding_message_size(64 << 20);
    let r = client
        .hot_spots(req)
        .await
        .map_err(ClientError::from)
        .context("hot-spot analysis")?
        .into_inner();
    crate::output::warn_stale(&r.stale);
    print_hot_spots(&mut std::io::stdout().lock(), a.format, &r)?;
    Ok(ExitCode::SUCCESS)
}

/// Writes a hot-spot answer in `format`.
pub fn print_hot_spots(
    out: &mut dyn Write,
    format: OutputFormat,
    r: &pb::HotSpotsResponse,
) -> anyhow::Result<()> {
    let header = [
        "rank",
        "cell",
        "lat",
        "lon",
        "count",
        "peak_hour",
        "forces",
        "cameras",
    ];
    let cells = |i: usize, c: &pb::HotSpotCell| -> Vec<String> {
        vec![
            (i + 1).to_string(),
            format!("{:x}", c.cell),
            format!("{:.6}", c.lat),
            format!("{:.6}", c.lon),
            c.count.to_string(),
            peak(&c.by_hour_of_week).map(hour_name).unwrap_or_default(),
            forces_text(&c.forces),
            cameras_text(&c.cameras),
        ]
    };
    match format {
        OutputFormat::Csv => {
            let mut w = SpreadsheetCsv::new(&mut *out);
            w.row(header)?;
            for (i, c) in r.cells.iter().enumerate() {
                w.row(cells(i, c))?;
            }
        }
        OutputFormat::Ndjson => {
            for (i, c) in r.cells.iter().enumerate() {
                let mut o = serde_json::Map::new();
                for (k, v) in header.iter().zip(cells(i, c)) {
                    o.insert(k.to_string(), Value::String(v));
                }
                o.insert("by_hour_of_week".into(), json!(c.by_hour_of_week));
                writeln!(out, "{}", Value::Object(o))?;
            }
        }
        OutputFormat::Geojson | OutputFormat::Kml => {
            if format == OutputFormat::Kml {
                anyhow::bail!("hot spots are written as table, csv, ndjson or geojson");
            }
            let features: Vec<Value> = r
                .cells
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let mut props = serde_json::Map::new();
                    for (k, v) in header.iter().zip(cells(i, c)) {
                        props.insert(k.to_string(), Value::String(v));
                    }
                    props.insert("count".into(), json!(c.count));
                    props.insert("by_hour_of_week".into(), json!(c.by_hour_of_week));
                    json!({
                        "type": "Feature",
                        "geometry": {"type": "Polygon", "coordinates": [hexagon(c.cell)]},
                        "properties": props,
                    })
                })
                .collect();
            let fc = json!({
                "type": "FeatureCollection",
                "features": features,
                "properties": {"total": r.total, "cells_counted": r.cells_counted,
                    "resolution": r.resolution, "node": r.node, "hours_in": r.hours_in,
                    "forces": forces_text(&r.forces)},
            });
            writeln!(out, "{fc}")?;
        }
        OutputFormat::Table => {
            let rows: Vec<Vec<String>> = r
                .cells
                .iter()
                .enumerate()
                .map(|(i, c)| cells(i, c))
                .collect();
            let widths: Vec<usize> = (0..header.len())
                .map(|k| {
                    rows.iter()
                        .map(|row| row[k].chars().count())
                        .chain([header[k].len()])
                        .max()
                        .unwrap_or(0)
                })
                .collect();
            let line = |cols: Vec<String>| {
                cols.iter()
                    .zip(&widths)
                    .map(|(c, w)| format!("{:<w$}", terminal_text(c), w = *w))
                    .collect::<Vec<_>>()
                    .join("  ")
            };
            writeln!(
                out,
                "{}",
                line(header.iter().map(|h| h.to_string()).collect())
            )?;
            for row in rows {
                writeln!(out, "{}", line(row))?;
            }
            writeln!(
                out,
                "{} counted in {} cell(s) at resolution {}; owning forces: {}; node {} ({:.1} ms)",
                r.total,
                r.cells_counted,
                r.resolution,
                forces_text(&r.forces),
                r.node,
                r.elapsed_us as f64 / 1000.0
            )?;
            if r.nodes.len() > 1 || r.partial {
                writeln!(out, "{}", crate::output::nodes_text(&r.nodes, r.partial))?;
            }
            if let Some(c) = &r.clipped_from {
                writeln!(
                    out,
                    "window clipped: asked from {}",
                    crate::output::time(&Some(*c))
                )?;
            }
            // The week, hour by hour: when to deploy.
            writeln!(
                out,
                "by hour of the week ({}):",
                if r.hours_in.is_empty() {
                    "UTC"
                } else {
                    r.hours_in.as_str()
                }
            )?;
            writeln!(
                out,
                "     {}",
                (0..24).map(|h| format!("{h:>4}")).collect::<String>()
            )?;
            for (d, day) in DAYS.iter().enumerate() {
                let hours = r.by_hour_of_week.get(d * 24..d * 24 + 24).unwrap_or(&[]);
                writeln!(
                    out,
                    "{day}  {}",
                    hours.iter().map(|n| format!("{n:>4}")).collect::<String>()
                )?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_are_named_and_the_peak_is_the_first_busiest() {
        assert_eq!(hour_name(0), "Mon 00:00");
        assert_eq!(hour_name(167), "Sun 23:00");
        assert_eq!(peak(&[0, 3, 1, 3]), Some(1));
        assert_eq!(peak(&[0, 0]), None);
    }

    #[test]
    fn a_hexagon_is_a_closed_ring_around_its_cell() {
        let cell = u64::from(
            h3o::LatLng::new(51.45, -2.58)
                .unwrap()
                .to_cell(h3o::Resolution::Seven),
        );
        let ring = hexagon(cell);
        assert_eq!(ring.len(), 7);
        assert_eq!(ring.first(), ring.last());
        assert!(
            ring.iter()
                .all(|[lon, lat]| (lat - 51.45).abs() < 0.05 && (lon + 2.58).abs() < 0.05)
        );
    }
}
