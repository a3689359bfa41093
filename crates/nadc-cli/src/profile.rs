//! `nadc analyse profile`: a vehicle's usual locations, times and journeys
//! over a period, and the reads that do not fit.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use nadc_bof::{ClientError, pb};
use serde_json::{Value, json};

use crate::NodeArgs;
use crate::client::{AccessArgs, access_context, channel, parse_time};
use crate::output::{OutputFormat, SpreadsheetCsv, terminal_text, time};

/// `nadc analyse profile`.
#[derive(Args, Debug)]
pub struct ProfileArgs {
    #[command(flatten)]
    node: NodeArgs,
    #[command(flatten)]
    access: AccessArgs,
    /// The vehicle.
    vrm: String,
    /// Period start, RFC 3339.
    #[arg(long)]
    from: String,
    /// Period end, RFC 3339.
    #[arg(long)]
    to: String,
    /// H3 resolution of a location, 6 to 10 (8: about 0.7 km²).
    #[arg(long, default_value_t = 8)]
    resolution: u32,
    /// Reads further apart than this start a new trip, minutes.
    #[arg(long, default_value_t = 30)]
    trip_gap_minutes: u32,
    /// Days that make a location or journey usual.
    #[arg(long, default_value_t = 2)]
    min_days: u32,
    /// Lift the node's cap on the period's length.
    #[arg(long)]
    allow_broad: bool,
    /// table, csv (locations, journeys and outliers, one per row), ndjson or
    /// geojson (location hexagons, journeys, outliers and reads).
    #[arg(long, value_enum, default_value = "table")]
    format: OutputFormat,
}

pub async fn run(a: ProfileArgs) -> anyhow::Result<ExitCode> {
    let req = pb::SubjectProfileRequest {
        access: Some(access_context(&a.node, &a.access)?),
        vrm: a.vrm,
        from: parse_time(&Some(a.from), "from")?,
        to: parse_time(&Some(a.to), "to")?,
        resolution: a.resolution,
        trip_gap_minutes: a.trip_gap_minutes,
        min_days: a.min_days,
        allow_broad: a.allow_broad,
        scope: a.access.scope(),
        on_behalf_of: None,
    };
    let r = pb::analysis_client::AnalysisClient::new(channel(&a.node).await?)
        .max_decoding_message_size(64 << 20)
        .subject_profile(req)
        .await
        .map_err(ClientError::from)
        .context("subject profile")?
        .into_inner();
    crate::output::warn_stale(&r.stale);
    print_profile(&mut std::io::stdout().lock(), a.format, &r)?;
    Ok(ExitCode::SUCCESS)
}

fn cameras(l: &pb::ProfileLocation) -> String {
    l.cameras_near
        .iter()
        .map(|c| format!("{}/{}", c.force, c.camera_id))
        .collect::<Vec<_>>()
        .join("|")
}

fn path(r: &pb::SubjectProfileResponse, cells: &[u64]) -> String {
    let name = |cell: &u64| {
        r.locations
            .iter()
            .position(|l| l.cell == *cell)
            .map_or_else(|| format!("{cell:x}"), |i| format!("L{}", i + 1))
    };
    cells.iter().map(name).collect::<Vec<_>>().join(" > ")
}

fn centre(r: &pb::SubjectProfileResponse, cell: u64) -> [f64; 2] {
    r.locations
        .iter()
        .find(|l| l.cell == cell)
        .map_or([0.0, 0.0], |l| [l.lon, l.lat])
}

fn read_text(r: &pb::SubjectProfileResponse, i: u32) -> String {
    r.reads.get(i as usize).map_or_else(String::new, |row| {
        let p = row.provenance.clone().unwrap_or_default();
        format!(
            "{} {}/{} ({:.5},{:.5})",
            time(&p.observed_at),
            p.owning_force,
            p.camera_id,
            row.lat,
            row.lon
        )
    })
}

/// One row per location, journey and outlier.
fn rows(r: &pb::SubjectProfileResponse) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for (i, l) in r.locations.iter().enumerate() {
        out.push(vec![
            "location".into(),
            format!("L{}", i + 1),
            format!("{:x}", l.cell),
            format!("{:.6}", l.lat),
            format!("{:.6}", l.lon),
            l.days.to_string(),
            l.reads.to_string(),
            l.usual.to_string(),
            format!("{:.2}", l.share_of_days),
            cameras(l),
            String::new(),
        ]);
    }
    for (i, j) in r.journeys.iter().enumerate() {
        out.push(vec![
            "journey".into(),
            format!("J{}", i + 1),
            path(r, &j.cells),
            String::new(),
            String::new(),
            j.days.to_string(),
            j.trips.to_string(),
            j.usual.to_string(),
            String::new(),
            String::new(),
            format!(
                "starts at {}",
                j.start_hours
                    .iter()
                    .map(|h| format!("{h:02}:00"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ]);
    }
    for o in &r.outliers {
        let row = r.reads.get(o.read_index as usize);
        out.push(vec![
            "outlier".into(),
            format!("{:.2}", o.score),
            read_text(r, o.read_index),
            row.map_or_else(String::new, |x| format!("{:.6}", x.lat)),
            row.map_or_else(String::new, |x| format!("{:.6}", x.lon)),
            String::new(),
            String::new(),
            "false".into(),
            String::new(),
            String::new(),
            o.reason.clone(),
        ]);
    }
    out
}

const HEADER: [&str; 11] = [
    "kind", "name", "where", "lat", "lon", "days", "reads", "usual", "share", "cameras", "note",
];

/// Writes a subject profile in `format`.
pub fn print_profile(
    out: &mut dyn Write,
    format: OutputFormat,
    r: &pb::SubjectProfileResponse,
) -> anyhow::Result<()> {
    match format {
        OutputFormat::Csv => {
            let mut w = SpreadsheetCsv::new(&mut *out);
            w.row(HEADER)?;
            for row in rows(r) {
                w.row(row)?;
            }
        }
        OutputFormat::Ndjson => {
            for row in rows(r) {
                let o: serde_json::Map<String, Value> = HEADER
                    .iter()
                    .zip(row)
                    .map(|(k, v)| (k.to_string(), Value::String(v)))
                    .collect();
                writeln!(out, "{}", Value::Object(o))?;
            }
        }
        OutputFormat::Geojson => {
            let mut features = Vec::new();
            for (i, l) in r.locations.iter().enumerate() {
                features.push(json!({"type": "Feature",
                    "geometry": {"type": "Polygon", "coordinates": [crate::analyse::hexagon(l.cell)]},
                    "properties": {"kind": "location", "name": format!("L{}", i + 1),
                        "days": l.days, "reads": l.reads, "usual": l.usual,
                        "share_of_days": l.share_of_days, "by_hour": l.by_hour,
                        "cameras": cameras(l)}}));
            }
            for (i, j) in r.journeys.iter().enumerate() {
                let line: Vec<[f64; 2]> = j.cells.iter().map(|c| centre(r, *c)).collect();
                features.push(json!({"type": "Feature",
                    "geometry": {"type": "LineString", "coordinates": line},
                    "properties": {"kind": "journey", "name": format!("J{}", i + 1),
                        "days": j.days, "trips": j.trips, "usual": j.usual,
                        "start_hours": j.start_hours}}));
            }
            for o in &r.outliers {
                if let Some(x) = r.reads.get(o.read_index as usize) {
                    features.push(json!({"type": "Feature",
                        "geometry": {"type": "Point", "coordinates": [x.lon, x.lat]},
                        "properties": {"kind": "outlier", "score": o.score,
                            "reason": o.reason, "read": read_text(r, o.read_index)}}));
                }
            }
            for (i, x) in r.reads.iter().enumerate() {
                features.push(json!({"type": "Feature",
                    "geometry": {"type": "Point", "coordinates": [x.lon, x.lat]},
                    "properties": {"kind": "read", "read": read_text(r, i as u32),
                        "mou_consult": x.mou_consult}}));
            }
            writeln!(
                out,
                "{}",
                json!({"type": "FeatureCollection", "features": features,
                    "properties": {"active_days": r.active_days, "by_hour": r.by_hour,
                        "by_weekday": r.by_weekday, "caveats": r.caveats,
                        "node": r.node, "partial": r.partial}})
            )?;
        }
        OutputFormat::Kml => anyhow::bail!("a profile is written as table, csv, ndjson or geojson"),
        OutputFormat::Table => {
            writeln!(
                out,
                "{} read(s) on {} day(s){}; node {} ({:.1} ms)",
                r.reads.len(),
                r.active_days,
                if r.truncated { " (truncated)" } else { "" },
                r.node,
                r.elapsed_us as f64 / 1000.0
            )?;
            for row in rows(r) {
                let line = match row[0].as_str() {
                    "location" => format!(
                        "{} {}: {} day(s), {} read(s){}; cameras near: {}",
                        row[1],
                        if row[7] == "true" { "USUAL" } else { "other" },
                        row[5],
                        row[6],
                        format_args!(" at {},{}", row[3], row[4]),
                        row[9]
                    ),
                    "journey" => format!(
                        "{} {}: {} on {} day(s), {} trip(s), {}",
                        row[1],
                        if row[7] == "true" { "USUAL" } else { "other" },
                        row[2],
                        row[5],
                        row[6],
                        row[10]
                    ),
                    _ => format!("OUTLIER {} {}: {}", row[1], row[2], row[10]),
                };
                writeln!(out, "{}", terminal_text(&line))?;
            }
            writeln!(
                out,
                "by hour (UK local): {}",
                r.by_hour
                    .iter()
                    .enumerate()
                    .filter(|(_, n)| **n > 0)
                    .map(|(h, n)| format!("{h:02}h {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )?;
            crate::output::footer(out, &r.nodes, r.partial, &r.caveats)?;
        }
    }
    Ok(())
}
