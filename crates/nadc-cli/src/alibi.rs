//! `nadc analyse alibi` and `nadc analyse journey`: could a vehicle have
//! been at a place (or along a claimed route) at the times claimed, judged
//! against its reads and the cameras' coverage.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use nadc_bof::{ClientError, pb};
use nadc_core::Timestamp;
use serde_json::{Value, json};

use crate::NodeArgs;
use crate::client::{AccessArgs, access_context, channel, parse_time};
use crate::output::{OutputFormat, SpreadsheetCsv, terminal_text, time};

/// What both checks take besides their claims.
#[derive(Args, Debug)]
pub struct CheckArgs {
    #[command(flatten)]
    node: NodeArgs,
    #[command(flatten)]
    access: AccessArgs,
    /// A speed no vehicle is assumed to exceed, km/h.
    #[arg(long, default_value_t = 160.0)]
    max_speed: f64,
    /// Hours of the vehicle's reads weighed before the first claim and
    /// after the last.
    #[arg(long, default_value_t = 24)]
    around_hours: u32,
    /// Days before each window that give each camera's usual rate.
    #[arg(long, default_value_t = 28)]
    baseline_days: u32,
    /// Lift the node's cap on the span read.
    #[arg(long)]
    allow_broad: bool,
    /// table, csv (one row per claim), ndjson or geojson (places, reads,
    /// route, cameras and legs).
    #[arg(long, value_enum, default_value = "table")]
    format: OutputFormat,
}

/// `nadc analyse alibi`.
#[derive(Args, Debug)]
pub struct AlibiArgs {
    #[command(flatten)]
    check: CheckArgs,
    /// The vehicle.
    vrm: String,
    /// The place, LAT,LON.
    #[arg(long)]
    at: String,
    /// The place's radius, metres.
    #[arg(long, default_value_t = 500.0)]
    radius: f64,
    /// Window start, RFC 3339.
    #[arg(long)]
    from: String,
    /// Window end, RFC 3339 (default: the start, a claimed instant).
    #[arg(long)]
    to: Option<String>,
}

/// `nadc analyse journey`.
#[derive(Args, Debug)]
pub struct JourneyArgs {
    #[command(flatten)]
    check: CheckArgs,
    /// The vehicle.
    vrm: String,
    /// The claimed route: CSV with a header naming lat, lon, from and
    /// optionally to, radius_m and label; one place per row, in time order.
    #[arg(long)]
    route: PathBuf,
}

fn place(at: &str) -> anyhow::Result<(f64, f64)> {
    let (lat, lon) = at
        .split_once(',')
        .context("--at: LAT,LON (for example 51.4545,-2.5879)")?;
    Ok((
        lat.trim().parse().context("--at: the latitude")?,
        lon.trim().parse().context("--at: the longitude")?,
    ))
}

pub async fn alibi(a: AlibiArgs) -> anyhow::Result<ExitCode> {
    let (lat, lon) = place(&a.at)?;
    let from = parse_time(&Some(a.from.clone()), "from")?;
    let to = match &a.to {
        Some(_) => parse_time(&a.to, "to")?,
        None => from,
    };
    let claim = pb::PlaceClaim {
        lat,
        lon,
        radius_m: a.radius,
        from,
        to,
        label: String::new(),
    };
    run(a.check, a.vrm, vec![claim]).await
}

pub async fn journey(a: JourneyArgs) -> anyhow::Result<ExitCode> {
    let text =
        std::fs::read_to_string(&a.route).with_context(|| format!("read {}", a.route.display()))?;
    let claims = route(&text).with_context(|| format!("{}", a.route.display()))?;
    run(a.check, a.vrm, claims).await
}

/// The claims of a route CSV.
fn route(text: &str) -> anyhow::Result<Vec<pb::PlaceClaim>> {
    let mut r = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let header: Vec<String> = r.headers()?.iter().map(str::to_lowercase).collect();
    let col = |name: &str| header.iter().position(|h| h == name);
    let (lat, lon, from) = match (col("lat"), col("lon"), col("from")) {
        (Some(a), Some(b), Some(c)) => (a, b, c),
        _ => anyhow::bail!(
            "the header must name lat, lon and from (and may name to, radius_m, label)"
        ),
    };
    let (to, radius, label) = (col("to"), col("radius_m"), col("label"));
    let mut claims = Vec::new();
    for (i, row) in r.records().enumerate() {
        let row = row?;
        let line = i + 2;
        let field = |k: usize| row.get(k).unwrap_or("");
        let number = |k: usize, what: &str| -> anyhow::Result<f64> {
            field(k)
                .parse()
                .with_context(|| format!("line {line}: {what} {:?} is not a number", field(k)))
        };
        let when = |k: usize, what: &str| -> anyhow::Result<prost_types::Timestamp> {
            Timestamp::parse_rfc3339(field(k))
                .map(nadc_proto::to_pb_time)
                .with_context(|| {
                    format!("line {line}: {what} {:?} is not an RFC 3339 time", field(k))
                })
        };
        let start = when(from, "from")?;
        claims.push(pb::PlaceClaim {
            lat: number(lat, "lat")?,
            lon: number(lon, "lon")?,
            radius_m: match radius.filter(|k| !field(*k).is_empty()) {
                Some(k) => number(k, "radius_m")?,
                None => 0.0,
            },
            from: Some(start),
            to: Some(match to.filter(|k| !field(*k).is_empty()) {
                Some(k) => when(k, "to")?,
                None => start,
            }),
            label: label.map(|k| field(k).to_string()).unwrap_or_default(),
        });
    }
    anyhow::ensure!(!claims.is_empty(), "no places in the route");
    Ok(claims)
}

async fn run(a: CheckArgs, vrm: String, claims: Vec<pb::PlaceClaim>) -> anyhow::Result<ExitCode> {
    let req = pb::AlibiRequest {
        access: Some(access_context(&a.node, &a.access)?),
        vrm,
        claims: claims.clone(),
        max_speed_kmh: a.max_speed,
        around_hours: a.around_hours,
        baseline_days: a.baseline_days,
        allow_broad: a.allow_broad,
        scope: a.access.scope(),
        on_behalf_of: None,
    };
    let r = pb::analysis_client::AnalysisClient::new(channel(&a.node).await?)
        .max_decoding_message_size(64 << 20)
        .alibi(req)
        .await
        .map_err(ClientError::from)
        .context("alibi check")?
        .into_inner();
    crate::output::warn_stale(&r.stale);
    print_alibi(&mut std::io::stdout().lock(), a.format, &claims, &r)?;
    Ok(ExitCode::SUCCESS)
}

fn verdict(v: i32) -> String {
    pb::AlibiVerdict::try_from(v)
        .map(|v| {
            v.as_str_name()
                .trim_start_matches("ALIBI_VERDICT_")
                .to_lowercase()
                .replace('_', " ")
        })
        .unwrap_or_default()
}

fn status(s: i32) -> String {
    pb::CameraStatus::try_from(s)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("CAMERA_STATUS_")
                .to_lowercase()
                .replace('_', " ")
        })
        .unwrap_or_default()
}

/// A read in a few words: when, where (camera), whose.
fn read_text(r: &pb::ReadRow) -> String {
    let p = r.provenance.clone().unwrap_or_default();
    format!(
        "{} {}/{} ({:.5},{:.5}) node {}",
        time(&p.observed_at),
        p.owning_force,
        p.camera_id,
        r.lat,
        r.lon,
        p.node
    )
}

fn spans(c: &pb::ClaimResult) -> String {
    c.possible
        .iter()
        .map(|s| format!("{}..{}", time(&s.from), time(&s.to)))
        .collect::<Vec<_>>()
        .join("|")
}

fn cameras(c: &pb::ClaimResult) -> String {
    c.cameras
        .iter()
        .map(|k| {
            format!(
                "{}/{}:{}:{}",
                k.force,
                k.camera_id,
                status(k.status),
                k.reads
            )
        })
        .collect::<Vec<_>>()
        .join("|")
}

fn read_at(r: &pb::AlibiResponse, i: Option<u32>) -> String {
    i.and_then(|i| r.reads.get(i as usize))
        .map(read_text)
        .unwrap_or_default()
}

/// Writes an alibi answer in `format`.
pub fn print_alibi(
    out: &mut dyn Write,
    format: OutputFormat,
    claims: &[pb::PlaceClaim],
    r: &pb::AlibiResponse,
) -> anyhow::Result<()> {
    let header = [
        "claim",
        "label",
        "lat",
        "lon",
        "radius_m",
        "from",
        "to",
        "verdict",
        "possible",
        "read_before",
        "read_after",
        "reads_at_place",
        "reads_elsewhere",
        "ruled_out_by",
        "cameras",
        "statement",
    ];
    let row = |c: &pb::ClaimResult| -> Vec<String> {
        let claim = claims.get(c.claim as usize).cloned().unwrap_or_default();
        vec![
            c.claim.to_string(),
            claim.label.clone(),
            format!("{:.6}", claim.lat),
            format!("{:.6}", claim.lon),
            format!("{:.0}", claim.radius_m),
            time(&claim.from),
            time(&claim.to),
            verdict(c.verdict),
            spans(c),
            read_at(r, c.before),
            read_at(r, c.after),
            c.at_place.len().to_string(),
            c.elsewhere.len().to_string(),
            c.ruled_out_by.len().to_string(),
            cameras(c),
            c.statement.clone(),
        ]
    };
    match format {
        OutputFormat::Csv => {
            let mut w = SpreadsheetCsv::new(&mut *out);
            w.row(header)?;
            for c in &r.claims {
                w.row(row(c))?;
            }
        }
        OutputFormat::Ndjson => {
            for c in &r.claims {
                let mut o = serde_json::Map::new();
                o.insert("kind".into(), json!("claim"));
                for (k, v) in header.iter().zip(row(c)) {
                    o.insert(k.to_string(), Value::String(v));
                }
                writeln!(out, "{}", Value::Object(o))?;
            }
            for l in &r.legs {
                writeln!(
                    out,
                    "{}",
                    json!({"kind": "leg", "from_claim": l.from_claim, "to_claim": l.to_claim,
                        "distance_m": l.distance_m, "required_kmh": l.required_kmh,
                        "possible": l.possible})
                )?;
            }
            for read in &r.reads {
                let p = read.provenance.clone().unwrap_or_default();
                writeln!(
                    out,
                    "{}",
                    json!({"kind": "read", "observed_at": time(&p.observed_at),
                        "vrm": read.vrm, "lat": read.lat, "lon": read.lon,
                        "force": p.owning_force, "camera": p.camera_id, "node": p.node,
                        "mou_consult": read.mou_consult})
                )?;
            }
        }
        OutputFormat::Geojson => writeln!(out, "{}", geojson(claims, r, &header, row))?,
        OutputFormat::Kml => {
            anyhow::bail!("an alibi check is written as table, csv, ndjson or geojson")
        }
        OutputFormat::Table => table(out, claims, r)?,
    }
    Ok(())
}

fn geojson(
    claims: &[pb::PlaceClaim],
    r: &pb::AlibiResponse,
    header: &[&str],
    row: impl Fn(&pb::ClaimResult) -> Vec<String>,
) -> Value {
    let mut features = Vec::new();
    for c in &r.claims {
        let Some(claim) = claims.get(c.claim as usize) else {
            continue;
        };
        let mut props = serde_json::Map::new();
        props.insert("kind".into(), json!("claim"));
        for (k, v) in header.iter().zip(row(c)) {
            props.insert(k.to_string(), Value::String(v));
        }
        props.insert("radius_m".into(), json!(claim.radius_m));
        features.push(json!({"type": "Feature",
            "geometry": {"type": "Point", "coordinates": [claim.lon, claim.lat]},
            "properties": props}));
        for k in &c.cameras {
            features.push(json!({"type": "Feature",
                "geometry": {"type": "Point", "coordinates": [k.lon, k.lat]},
                "properties": {"kind": "camera", "claim": c.claim,
                    "camera": format!("{}/{}", k.force, k.camera_id),
                    "status": status(k.status), "reads": k.reads, "expected": k.expected}}));
        }
    }
    for l in &r.legs {
        let (Some(a), Some(b)) = (
            claims.get(l.from_claim as usize),
            claims.get(l.to_claim as usize),
        ) else {
            continue;
        };
        features.push(json!({"type": "Feature",
            "geometry": {"type": "LineString", "coordinates": [[a.lon, a.lat], [b.lon, b.lat]]},
            "properties": {"kind": "leg", "from_claim": l.from_claim, "to_claim": l.to_claim,
                "distance_m": l.distance_m, "required_kmh": l.required_kmh,
                "possible": l.possible}}));
    }
    for read in &r.reads {
        let p = read.provenance.clone().unwrap_or_default();
        features.push(json!({"type": "Feature",
            "geometry": {"type": "Point", "coordinates": [read.lon, read.lat]},
            "properties": {"kind": "read", "observed_at": time(&p.observed_at),
                "force": p.owning_force, "camera": p.camera_id, "node": p.node,
                "mou_consult": read.mou_consult}}));
    }
    if r.reads.len() > 1 {
        // The vehicle's route, its reads in time order.
        let line: Vec<[f64; 2]> = r.reads.iter().map(|x| [x.lon, x.lat]).collect();
        features.push(json!({"type": "Feature",
            "geometry": {"type": "LineString", "coordinates": line},
            "properties": {"kind": "route"}}));
    }
    json!({"type": "FeatureCollection", "features": features,
        "properties": {"max_speed_kmh": r.max_speed_kmh, "caveats": r.caveats,
            "node": r.node, "partial": r.partial, "truncated": r.truncated}})
}

fn table(
    out: &mut dyn Write,
    claims: &[pb::PlaceClaim],
    r: &pb::AlibiResponse,
) -> anyhow::Result<()> {
    for c in &r.claims {
        let claim = claims.get(c.claim as usize).cloned().unwrap_or_default();
        let name = if claim.label.is_empty() {
            format!("{:.5},{:.5}", claim.lat, claim.lon)
        } else {
            claim.label.clone()
        };
        writeln!(
            out,
            "claim {}: {} (within {:.0} m) {} .. {}: {}",
            c.claim,
            terminal_text(&name),
            claim.radius_m,
            time(&claim.from),
            time(&claim.to),
            verdict(c.verdict).to_uppercase()
        )?;
        writeln!(out, "  {}", c.statement)?;
        if !c.possible.is_empty() {
            writeln!(out, "  possible: {}", spans(c).replace('|', ", "))?;
        }
        for (what, i) in [
            ("last read before", c.before),
            ("first read after", c.after),
        ] {
            if i.is_some() {
                writeln!(out, "  {what}: {}", read_at(r, i))?;
            }
        }
        for (what, idx) in [
            ("read at the place", &c.at_place),
            ("read elsewhere", &c.elsewhere),
        ] {
            for i in idx {
                writeln!(out, "  {what}: {}", read_at(r, Some(*i)))?;
            }
        }
        for k in &c.cameras {
            writeln!(
                out,
                "  camera {}/{}: {} ({} reads, {:.1} expected)",
                k.force,
                k.camera_id,
                status(k.status),
                k.reads,
                k.expected
            )?;
        }
        if c.cameras.is_empty() {
            writeln!(out, "  no camera you may see within the radius")?;
        }
    }
    for l in &r.legs {
        writeln!(
            out,
            "leg {} -> {}: {:.1} km, needs {:.0} km/h on average: {}",
            l.from_claim,
            l.to_claim,
            l.distance_m / 1000.0,
            l.required_kmh.min(99_999.0),
            if l.possible {
                "possible"
            } else {
                "NOT POSSIBLE"
            }
        )?;
    }
    writeln!(
        out,
        "{} read(s) of the vehicle weighed{}; maximum speed {:.0} km/h; node {} ({:.1} ms)",
        r.reads.len(),
        if r.truncated { " (truncated)" } else { "" },
        r.max_speed_kmh,
        r.node,
        r.elapsed_us as f64 / 1000.0
    )?;
    crate::output::footer(out, &r.nodes, r.partial, &r.caveats)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_names_its_columns_and_each_bad_field_by_line() {
        let claims = route(
            "label,lat,lon,from,to,radius_m\n\
             home,51.45,-2.58,2026-11-20T08:00:00Z,,\n\
             work,51.50,-2.60,2026-11-20T09:00:00Z,2026-11-20T09:30:00Z,800\n",
        )
        .unwrap();
        assert_eq!(claims.len(), 2);
        assert_eq!(claims[0].label, "home");
        assert_eq!(claims[0].from, claims[0].to, "no `to`: an instant");
        assert_eq!(claims[0].radius_m, 0.0, "the node's default");
        assert_eq!(claims[1].radius_m, 800.0);
        let e = route("lat,lon,from\n51.45,west,2026-11-20T08:00:00Z\n").unwrap_err();
        assert!(format!("{e:#}").contains("line 2: lon"), "{e:#}");
        let e = route("lat,lon\n51.45,-2.58\n").unwrap_err();
        assert!(format!("{e:#}").contains("from"), "{e:#}");
        assert_eq!(place(" 51.45 , -2.58 ").unwrap(), (51.45, -2.58));
        assert!(place("51.45").is_err());
    }
}
