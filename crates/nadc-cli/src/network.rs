//! `nadc analyse network`: the co-travel graph of seed vehicles, hop by
//! hop, as GraphML (Gephi, yEd), CSV node and edge lists (i2 Analyst's
//! Notebook imports them), NDJSON or a table.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};
use nadc_bof::{ClientError, pb};
use serde_json::json;

use crate::NodeArgs;
use crate::alerting::list_ref;
use crate::client::{AccessArgs, access_context, channel, parse_time};
use crate::output::{SpreadsheetCsv, terminal_text, time, xml};

/// How a network is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum NetworkFormat {
    /// Vehicles, then edges, as text.
    Table,
    /// GraphML: vehicles as nodes, co-travel as weighted, directed edges.
    Graphml,
    /// CSV: one vehicle per row (i2 entities).
    NodesCsv,
    /// CSV: one edge per row (i2 links).
    EdgesCsv,
    /// One JSON object per vehicle and per edge.
    Ndjson,
}

/// `nadc analyse network`.
#[derive(Args, Debug)]
pub struct NetworkArgs {
    #[command(flatten)]
    node: NodeArgs,
    #[command(flatten)]
    access: AccessArgs,
    /// The seed VRMs.
    vrms: Vec<String>,
    /// Also every active entry of this list of your force (NAME).
    #[arg(long)]
    hotlist: Option<String>,
    /// Period start, RFC 3339.
    #[arg(long)]
    from: String,
    /// Period end, RFC 3339.
    #[arg(long)]
    to: String,
    /// Co-travel: read at the same camera within this many seconds.
    #[arg(long, default_value_t = 120)]
    window_s: u32,
    /// Least target reads accompanied for an edge.
    #[arg(long, default_value_t = 2)]
    min_count: u32,
    /// Least cameras for an edge.
    #[arg(long, default_value_t = 1)]
    min_cameras: u32,
    /// Hops from the seeds (1 to 3).
    #[arg(long, default_value_t = 1)]
    hops: u32,
    /// Vehicles expanded per hop, strongest first (at most 25).
    #[arg(long, default_value_t = 10)]
    expand: u32,
    /// Lift the node's caps on the period.
    #[arg(long)]
    allow_broad: bool,
    #[arg(long, value_enum, default_value = "table")]
    format: NetworkFormat,
}

pub async fn run(a: NetworkArgs) -> anyhow::Result<ExitCode> {
    let req = pb::NetworkRequest {
        access: Some(access_context(&a.node, &a.access)?),
        vrms: a.vrms,
        hotlist: a.hotlist.as_deref().map(list_ref),
        from: parse_time(&Some(a.from), "from")?,
        to: parse_time(&Some(a.to), "to")?,
        window_s: a.window_s,
        min_count: a.min_count,
        min_cameras: a.min_cameras,
        hops: a.hops,
        expand: a.expand,
        allow_broad: a.allow_broad,
        scope: a.access.scope(),
    };
    let r = pb::analysis_client::AnalysisClient::new(channel(&a.node).await?)
        .max_decoding_message_size(256 << 20)
        .associate_network(req)
        .await
        .map_err(ClientError::from)
        .context("associate network")?
        .into_inner();
    crate::output::warn_stale(&r.stale);
    print_network(&mut std::io::stdout().lock(), a.format, &r)?;
    Ok(ExitCode::SUCCESS)
}

/// The first and last time of an edge's pairs (the companion's reads).
fn span(e: &pb::NetworkEdge) -> (String, String) {
    let times: Vec<String> = e
        .pairs
        .iter()
        .filter_map(|p| p.companion.as_ref()?.provenance.as_ref())
        .map(|p| time(&p.observed_at))
        .collect();
    (
        times.iter().min().cloned().unwrap_or_default(),
        times.iter().max().cloned().unwrap_or_default(),
    )
}

/// Writes a network in `format`.
pub fn print_network(
    out: &mut dyn Write,
    format: NetworkFormat,
    r: &pb::NetworkResponse,
) -> anyhow::Result<()> {
    match format {
        NetworkFormat::Graphml => {
            writeln!(out, r#"<?xml version="1.0" encoding="UTF-8"?>"#)?;
            writeln!(
                out,
                r#"<graphml xmlns="http://graphml.graphdrawing.org/xmlns">"#
            )?;
            for (id, on, name, ty) in [
                ("hop", "node", "hop", "int"),
                ("expanded", "node", "expanded", "boolean"),
                ("co", "edge", "co_occurrences", "int"),
                ("cams", "edge", "cameras", "int"),
                ("weight", "edge", "weight", "double"),
                ("first", "edge", "first_seen", "string"),
                ("last", "edge", "last_seen", "string"),
            ] {
                writeln!(
                    out,
                    r#"  <key id="{id}" for="{on}" attr.name="{name}" attr.type="{ty}"/>"#
                )?;
            }
            writeln!(out, r#"  <graph id="co-travel" edgedefault="directed">"#)?;
            for n in &r.nodes {
                writeln!(
                    out,
                    r#"    <node id="{}"><data key="hop">{}</data><data key="expanded">{}</data></node>"#,
                    xml(&n.vrm),
                    n.hop,
                    n.expanded
                )?;
            }
            for e in &r.edges {
                let (first, last) = span(e);
                writeln!(
                    out,
                    r#"    <edge source="{}" target="{}"><data key="co">{}</data><data key="cams">{}</data><data key="weight">{}</data><data key="first">{}</data><data key="last">{}</data></edge>"#,
                    xml(&e.target),
                    xml(&e.companion),
                    e.co_occurrences,
                    e.cameras,
                    e.co_occurrences,
                    xml(&first),
                    xml(&last)
                )?;
            }
            writeln!(out, "  </graph>\n</graphml>")?;
        }
        NetworkFormat::NodesCsv => {
            let mut w = SpreadsheetCsv::new(&mut *out);
            w.row(["vrm", "hop", "expanded"])?;
            for n in &r.nodes {
                w.row([n.vrm.clone(), n.hop.to_string(), n.expanded.to_string()])?;
            }
        }
        NetworkFormat::EdgesCsv => {
            let mut w = SpreadsheetCsv::new(&mut *out);
            w.row([
                "target",
                "companion",
                "co_occurrences",
                "cameras",
                "first_seen",
                "last_seen",
            ])?;
            for e in &r.edges {
                let (first, last) = span(e);
                w.row([
                    e.target.clone(),
                    e.companion.clone(),
                    e.co_occurrences.to_string(),
                    e.cameras.to_string(),
                    first,
                    last,
                ])?;
            }
        }
        NetworkFormat::Ndjson => {
            for n in &r.nodes {
                writeln!(
                    out,
                    "{}",
                    json!({"kind": "vehicle", "vrm": n.vrm, "hop": n.hop, "expanded": n.expanded})
                )?;
            }
            for e in &r.edges {
                let (first, last) = span(e);
                writeln!(
                    out,
                    "{}",
                    json!({"kind": "edge", "target": e.target, "companion": e.companion,
                        "co_occurrences": e.co_occurrences, "cameras": e.cameras,
                        "first_seen": first, "last_seen": last, "pairs": e.pairs.len()})
                )?;
            }
        }
        NetworkFormat::Table => {
            for n in &r.nodes {
                writeln!(
                    out,
                    "{} hop {}{}",
                    terminal_text(&n.vrm),
                    n.hop,
                    if n.expanded { " (expanded)" } else { "" }
                )?;
            }
            for e in &r.edges {
                writeln!(
                    out,
                    "{} -> {}: {} co-occurrence(s) at {} camera(s)",
                    terminal_text(&e.target),
                    terminal_text(&e.companion),
                    e.co_occurrences,
                    e.cameras
                )?;
            }
            writeln!(
                out,
                "{} vehicle(s), {} edge(s), {} hop(s){}{}",
                r.nodes.len(),
                r.edges.len(),
                r.hops,
                if r.truncated {
                    "; some hops had more vehicles than were expanded"
                } else {
                    ""
                },
                if r.partial {
                    "; PARTIAL: a node's part is missing"
                } else {
                    ""
                }
            )?;
        }
    }
    Ok(())
}
