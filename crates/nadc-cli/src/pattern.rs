//! `nadc analyse pattern`: which vehicles were near at least K of a series
//! of incidents (imported from a CSV export of a crime system), ranked,
//! with the reads behind each.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use nadc_bof::{ClientError, pb};
use nadc_core::Timestamp;
use serde_json::{Value, json};

use crate::NodeArgs;
use crate::client::{AccessArgs, access_context, channel};
use crate::output::{OutputFormat, SpreadsheetCsv, terminal_text, time};

/// `nadc analyse pattern`.
#[derive(Args, Debug)]
pub struct PatternArgs {
    #[command(flatten)]
    node: NodeArgs,
    #[command(flatten)]
    access: AccessArgs,
    /// The incidents: CSV with a header naming time (RFC 3339), lat and
    /// lon, and optionally reference and type; one incident per row.
    #[arg(long)]
    incidents: PathBuf,
    /// Near: within this many metres of an incident's place ...
    #[arg(long, default_value_t = 500.0)]
    radius: f64,
    /// ... and this many minutes either side of its time.
    #[arg(long, default_value_t = 30)]
    window_minutes: u32,
    /// Vehicles near at least this many incidents.
    #[arg(long, default_value_t = 2)]
    min_incidents: u32,
    /// Vehicles listed, most incidents first.
    #[arg(long, default_value_t = 100)]
    limit: u32,
    /// Only these vehicles (repeatable).
    #[arg(long = "vrm")]
    vrms: Vec<String>,
    /// Lift the node's radius cap.
    #[arg(long)]
    allow_broad: bool,
    /// table, csv (one row per vehicle and incident it was near), ndjson
    /// or geojson (incidents, and the reads behind each vehicle).
    #[arg(long, value_enum, default_value = "table")]
    format: OutputFormat,
}

/// The incidents of a CSV export.
pub fn incidents(text: &str) -> anyhow::Result<Vec<pb::Incident>> {
    let mut r = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let header: Vec<String> = r.headers()?.iter().map(str::to_lowercase).collect();
    let col = |names: &[&str]| header.iter().position(|h| names.contains(&h.as_str()));
    let (Some(at), Some(lat), Some(lon)) = (
        col(&["time", "at", "occurred_at"]),
        col(&["lat", "latitude"]),
        col(&["lon", "lng", "longitude"]),
    ) else {
        anyhow::bail!("the header must name time, lat and lon (and may name reference, type)");
    };
    let (reference, kind) = (
        col(&["reference", "ref", "crime_ref"]),
        col(&["type", "kind"]),
    );
    let mut out = Vec::new();
    for (i, row) in r.records().enumerate() {
        let row = row?;
        let line = i + 2;
        let field = |k: usize| row.get(k).unwrap_or("");
        let number = |k: usize, what: &str| -> anyhow::Result<f64> {
            field(k)
                .parse()
                .with_context(|| format!("line {line}: {what} {:?} is not a number", field(k)))
        };
        let when = Timestamp::parse_rfc3339(field(at)).with_context(|| {
            format!("line {line}: time {:?} is not an RFC 3339 time", field(at))
        })?;
        out.push(pb::Incident {
            reference: reference.map(|k| field(k).to_string()).unwrap_or_default(),
            kind: kind.map(|k| field(k).to_string()).unwrap_or_default(),
            at: Some(nadc_proto::to_pb_time(when)),
            lat: number(lat, "lat")?,
            lon: number(lon, "lon")?,
        });
    }
    anyhow::ensure!(!out.is_empty(), "no incidents in the file");
    Ok(out)
}

pub async fn run(a: PatternArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&a.incidents)
        .with_context(|| format!("read {}", a.incidents.display()))?;
    let incidents = incidents(&text).with_context(|| format!("{}", a.incidents.display()))?;
    let req = pb::PatternRequest {
        access: Some(access_context(&a.node, &a.access)?),
        incidents: incidents.clone(),
        radius_m: a.radius,
        window_minutes: a.window_minutes,
        min_incidents: a.min_incidents,
        limit: a.limit,
        allow_broad: a.allow_broad,
        scope: a.access.scope(),
        vrms: a.vrms,
        ..Default::default()
    };
    let r = pb::analysis_client::AnalysisClient::new(channel(&a.node).await?)
        .max_decoding_message_size(64 << 20)
        .crime_pattern(req)
        .await
        .map_err(ClientError::from)
        .context("crime pattern analysis")?
        .into_inner();
    crate::output::warn_stale(&r.stale);
    print_pattern(&mut std::io::stdout().lock(), a.format, &incidents, &r)?;
    Ok(ExitCode::SUCCESS)
}

/// An incident's name: its reference, else its line.
fn incident_name(incidents: &[pb::Incident], i: u32) -> String {
    match incidents.get(i as usize) {
        Some(x) if !x.reference.is_empty() => x.reference.clone(),
        _ => format!("#{}", i + 1),
    }
}

const HEADER: [&str; 15] = [
    "rank",
    "vrm",
    "incidents_near",
    "incident",
    "incident_type",
    "incident_at",
    "read_at",
    "offset_s",
    "distance_m",
    "owning_force",
    "camera_id",
    "read_lat",
    "read_lon",
    "bof_read_id",
    "mou_consult",
];

/// One row per vehicle and incident it was near (its nearest read there).
fn rows(incidents: &[pb::Incident], r: &pb::PatternResponse) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for (rank, v) in r.vehicles.iter().enumerate() {
        for n in &v.near {
            let inc = incidents.get(n.incident as usize);
            let read = r.reads.get(n.read_index as usize);
            let p = read.and_then(|x| x.provenance.clone()).unwrap_or_default();
            out.push(vec![
                (rank + 1).to_string(),
                v.vrm.clone(),
                v.near.len().to_string(),
                incident_name(incidents, n.incident),
                inc.map(|x| x.kind.clone()).unwrap_or_default(),
                inc.map_or_else(String::new, |x| time(&x.at)),
                time(&p.observed_at),
                format!("{:.0}", n.offset_s),
                format!("{:.0}", n.distance_m),
                p.owning_force,
                p.camera_id,
                read.map_or_else(String::new, |x| format!("{:.6}", x.lat)),
                read.map_or_else(String::new, |x| format!("{:.6}", x.lon)),
                p.bof_read_id,
                read.is_some_and(|x| x.mou_consult).to_string(),
            ]);
        }
    }
    out
}

/// Writes a crime pattern answer in `format`.
pub fn print_pattern(
    out: &mut dyn Write,
    format: OutputFormat,
    incidents: &[pb::Incident],
    r: &pb::PatternResponse,
) -> anyhow::Result<()> {
    match format {
        OutputFormat::Csv => {
            let mut w = SpreadsheetCsv::new(&mut *out);
            w.row(HEADER)?;
            for row in rows(incidents, r) {
                w.row(row)?;
            }
        }
        OutputFormat::Ndjson => {
            for row in rows(incidents, r) {
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
            for (i, x) in incidents.iter().enumerate() {
                features.push(json!({"type": "Feature",
                    "geometry": {"type": "Point", "coordinates": [x.lon, x.lat]},
                    "properties": {"kind": "incident", "incident": incident_name(incidents, i as u32),
                        "type": x.kind, "at": time(&x.at)}}));
            }
            for (rank, v) in r.vehicles.iter().enumerate() {
                for i in &v.read_indexes {
                    let Some(x) = r.reads.get(*i as usize) else {
                        continue;
                    };
                    let p = x.provenance.clone().unwrap_or_default();
                    let near: Vec<String> = v
                        .near
                        .iter()
                        .filter(|n| n.read_index == *i)
                        .map(|n| incident_name(incidents, n.incident))
                        .collect();
                    features.push(json!({"type": "Feature",
                        "geometry": {"type": "Point", "coordinates": [x.lon, x.lat]},
                        "properties": {"kind": "read", "rank": rank + 1, "vrm": v.vrm,
                            "incidents_near": v.near.len(), "nearest_for": near,
                            "read_at": time(&p.observed_at), "owning_force": p.owning_force,
                            "camera_id": p.camera_id, "bof_read_id": p.bof_read_id,
                            "mou_consult": x.mou_consult}}));
                }
            }
            writeln!(
                out,
                "{}",
                json!({"type": "FeatureCollection", "features": features,
                    "properties": {"qualified": r.qualified, "truncated": r.truncated,
                        "vehicles_near_any": r.vehicles_near_any, "caveats": r.caveats,
                        "node": r.node, "partial": r.partial}})
            )?;
        }
        OutputFormat::Kml => {
            anyhow::bail!("a crime pattern is written as table, csv, ndjson or geojson")
        }
        OutputFormat::Table => {
            writeln!(
                out,
                "{} vehicle(s) near at least the incidents asked{} of {} read near any; node {} ({:.1} ms)",
                r.qualified,
                if r.truncated {
                    format!(" ({} shown)", r.vehicles.len())
                } else {
                    String::new()
                },
                r.vehicles_near_any,
                r.node,
                r.elapsed_us as f64 / 1000.0
            )?;
            for (rank, v) in r.vehicles.iter().enumerate() {
                let list: Vec<String> = v
                    .near
                    .iter()
                    .map(|n| {
                        format!(
                            "{} ({:.0} m, {:+.0} min)",
                            incident_name(incidents, n.incident),
                            n.distance_m,
                            n.offset_s / 60.0
                        )
                    })
                    .collect();
                let line = format!(
                    "{:>3}. {} near {} incident(s): {}",
                    rank + 1,
                    v.vrm,
                    v.near.len(),
                    list.join(", ")
                );
                writeln!(out, "{}", terminal_text(&line))?;
            }
            crate::output::footer(out, &r.nodes, r.partial, &r.caveats)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incidents_are_read_by_header_name_and_a_bad_line_is_named() {
        let ok = "Reference,Type,Time,Lat,Lon\nCR/1,burglary,2026-11-20T02:00:00Z,51.45,-2.58\n\
                  CR/2,burglary,2026-11-21T03:00:00Z,51.46,-2.59\n";
        let v = incidents(ok).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[1].reference, "CR/2");
        assert_eq!(v[0].kind, "burglary");
        assert!((v[1].lon + 2.59).abs() < 1e-12);
        let bad = "time,lat,lon\n2026-11-20T02:00:00Z,north,-2.58\n";
        let e = format!("{:#}", incidents(bad).unwrap_err());
        assert!(e.contains("line 2") && e.contains("lat"), "{e}");
        let e = format!("{:#}", incidents("when,lat,lon\n").unwrap_err());
        assert!(e.contains("must name time"), "{e}");
    }
}
