//! `nadc analyse sites`: candidate camera sites, from incidents (a CSV
//! export), your force's hits and road links (GeoJSON, e.g. an OS Open
//! Roads extract).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use nadc_bof::{ClientError, pb};
use serde_json::{Value, json};

use crate::NodeArgs;
use crate::client::{AccessArgs, access_context, channel, parse_time};
use crate::output::{OutputFormat, print_records};

/// `nadc analyse sites`.
#[derive(Args, Debug)]
pub struct SitesArgs {
    #[command(flatten)]
    node: NodeArgs,
    #[command(flatten)]
    access: AccessArgs,
    /// Incidents to weigh: CSV naming lat and lon (as for `analyse
    /// pattern`; times are not used).
    #[arg(long)]
    incidents: Option<PathBuf>,
    /// Also weigh your force's hotlist hits between --from and --to.
    #[arg(long)]
    count_hits: bool,
    /// Hits window start, RFC 3339 (default: 24 hours ago).
    #[arg(long)]
    from: Option<String>,
    /// Hits window end, RFC 3339 (default: now).
    #[arg(long)]
    to: Option<String>,
    /// Road links: GeoJSON LineString or MultiLineString features (a
    /// `name` property names each).
    #[arg(long)]
    roads: Option<PathBuf>,
    /// H3 resolution of the cells, 6 to 10.
    #[arg(long, default_value_t = 8)]
    resolution: u32,
    /// How many of the densest cells are hot.
    #[arg(long, default_value_t = 20)]
    hot_cells: u32,
    /// Uncovered: no camera within this many metres.
    #[arg(long, default_value_t = 1000.0)]
    min_distance: f64,
    /// Most sites listed.
    #[arg(long, default_value_t = 50)]
    limit: u32,
    /// table, csv, ndjson or geojson (sites as points, hot cells as
    /// hexagons).
    #[arg(long, value_enum, default_value = "table")]
    format: OutputFormat,
}

/// The road links of a GeoJSON document.
pub fn roads(text: &str) -> anyhow::Result<Vec<pb::RoadLink>> {
    let doc: Value = serde_json::from_str(text).context("not JSON")?;
    let features: Vec<&Value> = match doc.get("type").and_then(Value::as_str) {
        Some("FeatureCollection") => doc
            .get("features")
            .and_then(Value::as_array)
            .map(|f| f.iter().collect())
            .unwrap_or_default(),
        Some("Feature") => vec![&doc],
        _ => anyhow::bail!("a GeoJSON FeatureCollection or Feature is needed"),
    };
    let mut out = Vec::new();
    for (i, f) in features.iter().enumerate() {
        let name = f
            .pointer("/properties/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let geometry = f
            .get("geometry")
            .context(format!("feature {i}: no geometry"))?;
        let lines: Vec<&Value> = match geometry.get("type").and_then(Value::as_str) {
            Some("LineString") => vec![geometry.get("coordinates").unwrap_or(&Value::Null)],
            Some("MultiLineString") => geometry
                .get("coordinates")
                .and_then(Value::as_array)
                .map(|l| l.iter().collect())
                .unwrap_or_default(),
            _ => continue,
        };
        for line in lines {
            let mut link = pb::RoadLink {
                name: name.clone(),
                ..Default::default()
            };
            for p in line
                .as_array()
                .context(format!("feature {i}: bad coordinates"))?
            {
                let (lon, lat) = (
                    p.get(0).and_then(Value::as_f64),
                    p.get(1).and_then(Value::as_f64),
                );
                let (Some(lon), Some(lat)) = (lon, lat) else {
                    anyhow::bail!("feature {i}: a position is not [longitude, latitude]");
                };
                link.lat.push(lat);
                link.lon.push(lon);
            }
            out.push(link);
        }
    }
    Ok(out)
}

const HEADER: [&str; 10] = [
    "rank",
    "kind",
    "lat",
    "lon",
    "incidents",
    "hits",
    "nearest_camera",
    "nearest_m",
    "road",
    "cell",
];

fn kind(k: i32) -> &'static str {
    if k == pb::SiteKind::RoadCrossing as i32 {
        "road crossing"
    } else {
        "hot cell"
    }
}

fn records(r: &pb::SitesResponse) -> Vec<Vec<String>> {
    r.sites
        .iter()
        .enumerate()
        .map(|(i, s)| {
            vec![
                (i + 1).to_string(),
                kind(s.kind).to_string(),
                format!("{:.6}", s.lat),
                format!("{:.6}", s.lon),
                s.incidents.to_string(),
                s.hits.to_string(),
                s.nearest
                    .as_ref()
                    .map_or_else(String::new, |c| format!("{}/{}", c.force, c.camera_id)),
                if s.nearest.is_some() {
                    format!("{:.0}", s.nearest_m)
                } else {
                    String::new()
                },
                s.link.clone(),
                format!("{:x}", s.cell),
            ]
        })
        .collect()
}

pub async fn run(a: SitesArgs) -> anyhow::Result<ExitCode> {
    let incidents = match &a.incidents {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("read {}", p.display()))?;
            crate::pattern::incidents(&text).with_context(|| format!("{}", p.display()))?
        }
        None => Vec::new(),
    };
    let links = match &a.roads {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("read {}", p.display()))?;
            roads(&text).with_context(|| format!("{}", p.display()))?
        }
        None => Vec::new(),
    };
    let req = pb::SitesRequest {
        access: Some(access_context(&a.node, &a.access)?),
        incidents,
        count_hits: a.count_hits,
        from: parse_time(&a.from, "from")?,
        to: parse_time(&a.to, "to")?,
        resolution: a.resolution,
        hot_cells: a.hot_cells,
        min_distance_m: a.min_distance,
        links,
        limit: a.limit,
        allow_broad: false,
        scope: a.access.scope(),
        on_behalf_of: None,
    };
    let r = pb::analysis_client::AnalysisClient::new(channel(&a.node).await?)
        .camera_sites(req)
        .await
        .map_err(ClientError::from)
        .context("camera positioning")?
        .into_inner();
    crate::output::warn_stale(&r.stale);
    let mut out = std::io::stdout().lock();
    match a.format {
        OutputFormat::Geojson => {
            let mut features: Vec<Value> = r
                .hot
                .iter()
                .map(|c| {
                    json!({"type": "Feature",
                        "geometry": {"type": "Polygon", "coordinates": [crate::analyse::hexagon(c.cell)]},
                        "properties": {"kind": "hot cell", "cell": format!("{:x}", c.cell),
                            "incidents": c.incidents, "hits": c.hits}})
                })
                .collect();
            for (rec, s) in records(&r).into_iter().zip(&r.sites) {
                let props: serde_json::Map<String, Value> = HEADER
                    .iter()
                    .zip(rec)
                    .map(|(k, v)| (k.to_string(), Value::String(v)))
                    .collect();
                let mut props = props;
                props.insert("kind".into(), json!("site"));
                props.insert("site".into(), json!(kind(s.kind)));
                features.push(json!({"type": "Feature",
                    "geometry": {"type": "Point", "coordinates": [s.lon, s.lat]},
                    "properties": props}));
            }
            writeln!(
                out,
                "{}",
                json!({"type": "FeatureCollection", "features": features,
                    "properties": {"hits_counted": r.hits_counted,
                        "cameras_considered": r.cameras_considered, "node": r.node,
                        "partial": r.partial}})
            )?;
        }
        format => {
            if format == OutputFormat::Table {
                writeln!(
                    out,
                    "{} candidate site(s); {} hit(s) counted, {} camera(s) weighed; node {}{}",
                    r.sites.len(),
                    r.hits_counted,
                    r.cameras_considered,
                    r.node,
                    if r.partial { " (PARTIAL)" } else { "" }
                )?;
            }
            print_records(&mut out, format, "camera sites", &HEADER, &records(&r))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roads_from_geojson_lines_and_multilines() {
        let v = roads(
            r#"{"type":"FeatureCollection","features":[
            {"type":"Feature","properties":{"name":"A4"},"geometry":{"type":"LineString","coordinates":[[-2.6,51.4],[-2.5,51.45]]}},
            {"type":"Feature","properties":{},"geometry":{"type":"MultiLineString","coordinates":[[[-2.6,51.4],[-2.5,51.4]],[[0,51],[1,51],[2,51]]]}},
            {"type":"Feature","properties":{},"geometry":{"type":"Point","coordinates":[0,0]}}]}"#,
        )
        .unwrap();
        assert_eq!(v.len(), 3);
        assert_eq!(
            (v[0].name.as_str(), v[0].lat.clone()),
            ("A4", vec![51.4, 51.45])
        );
        assert_eq!(v[2].lon, vec![0.0, 1.0, 2.0]);
        let e =
            roads(r#"{"type":"Feature","geometry":{"type":"LineString","coordinates":[["a",1]]}}"#)
                .unwrap_err();
        assert!(e.to_string().contains("feature 0"), "{e}");
    }
}
