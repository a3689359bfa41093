//! `nadc analyse results` and `nadc analyse transparency`: a force's
//! results (hits per list and what came of them, searches per operation
//! and purpose) and the public transparency report.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use nadc_bof::{ClientError, pb};

use crate::NodeArgs;
use crate::client::{AccessArgs, access_context, channel, parse_time};
use crate::output::{OutputFormat, print_records};

/// `nadc analyse results`.
#[derive(Args, Debug)]
pub struct ResultsArgs {
    #[command(flatten)]
    node: NodeArgs,
    #[command(flatten)]
    access: AccessArgs,
    /// Period start, RFC 3339 (its UTC day).
    #[arg(long)]
    from: String,
    /// Period end, RFC 3339 (its UTC day).
    #[arg(long)]
    to: String,
    /// Only this list of your force.
    #[arg(long, default_value = "")]
    list: String,
    /// Split by UTC month.
    #[arg(long)]
    by_month: bool,
    /// table, csv or ndjson.
    #[arg(long, value_enum, default_value = "table")]
    format: OutputFormat,
}

/// `nadc analyse transparency`.
#[derive(Args, Debug)]
pub struct TransparencyArgs {
    #[command(flatten)]
    node: NodeArgs,
    /// First month, YYYY-MM.
    #[arg(long)]
    from_month: String,
    /// Last month, YYYY-MM.
    #[arg(long)]
    to_month: String,
    /// Counts below this are suppressed (at least 5).
    #[arg(long, default_value_t = 10)]
    min_count: u32,
    /// This node only.
    #[arg(long)]
    local: bool,
    /// table, csv or ndjson (one row per force, month and measure).
    #[arg(long, value_enum, default_value = "table")]
    format: OutputFormat,
}

const RESULTS_HEADER: [&str; 17] = [
    "kind",
    "name",
    "purpose",
    "month",
    "reads_checked",
    "hits",
    "confirmed",
    "rejected",
    "unverified",
    "stopped",
    "arrested",
    "no_action",
    "not_located",
    "hits_per_million",
    "searches",
    "refused",
    "rows",
];

/// One record per list (and month) and per operation, purpose (and month).
fn results_records(r: &pb::ResultsResponse) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for l in &r.lists {
        let mut row = vec![
            "list".to_string(),
            l.list.clone(),
            String::new(),
            l.month.clone(),
        ];
        row.extend(
            [
                l.reads_checked,
                l.hits,
                l.confirmed,
                l.rejected,
                l.unverified,
                l.stopped,
                l.arrested,
                l.no_action,
                l.not_located,
            ]
            .map(|n| n.to_string()),
        );
        row.push(format!("{:.2}", l.hits_per_million));
        row.extend([String::new(), String::new(), String::new()]);
        out.push(row);
    }
    for s in &r.searches {
        let mut row = vec![
            "operation".to_string(),
            s.case_ref.clone(),
            s.purpose.clone(),
            s.month.clone(),
        ];
        row.extend(std::iter::repeat_n(String::new(), 10));
        row.extend([s.searches, s.refused, s.rows].map(|n| n.to_string()));
        out.push(row);
    }
    out
}

pub async fn results(a: ResultsArgs) -> anyhow::Result<ExitCode> {
    let req = pb::ResultsRequest {
        access: Some(access_context(&a.node, &a.access)?),
        from: parse_time(&Some(a.from), "from")?,
        to: parse_time(&Some(a.to), "to")?,
        list: a.list,
        by_month: a.by_month,
        scope: a.access.scope(),
        on_behalf_of: None,
    };
    let r = pb::analysis_client::AnalysisClient::new(channel(&a.node).await?)
        .results(req)
        .await
        .map_err(ClientError::from)
        .context("results analysis")?
        .into_inner();
    crate::output::warn_stale(&r.stale);
    let mut out = std::io::stdout().lock();
    if a.format == OutputFormat::Table {
        writeln!(
            out,
            "{}: {} read(s) held in the period; node {}{}",
            r.force,
            r.reads,
            r.node,
            if r.partial { " (PARTIAL)" } else { "" }
        )?;
    }
    print_records(
        &mut out,
        a.format,
        "results",
        &RESULTS_HEADER,
        &results_records(&r),
    )?;
    Ok(ExitCode::SUCCESS)
}

/// A published count as text: the value, or "<MIN" when suppressed.
fn shown(c: &Option<pb::PublishedCount>, min: u32) -> String {
    match c {
        Some(c) if c.suppressed => format!("<{min}"),
        Some(c) => c.value.to_string(),
        None => "0".into(),
    }
}

/// One record per force, month and measure.
pub fn transparency_records(r: &pb::TransparencyResponse) -> Vec<Vec<String>> {
    let min = r.min_count;
    let mut out = Vec::new();
    for row in &r.rows {
        let mut push = |measure: String, c: &Option<pb::PublishedCount>| {
            out.push(vec![
                row.force.clone(),
                row.month.clone(),
                measure,
                shown(c, min),
            ]);
        };
        for p in &row.searches {
            push(format!("searches:{}", p.purpose), &p.searches);
        }
        for (name, c) in [
            ("reads_held", &row.reads_held),
            ("hits", &row.hits),
            ("confirmed", &row.confirmed),
            ("rejected", &row.rejected),
            ("stopped", &row.stopped),
            ("arrested", &row.arrested),
            ("no_action", &row.no_action),
            ("not_located", &row.not_located),
            ("deleted_by_retention", &row.deleted_by_retention),
            ("holds_placed", &row.holds_placed),
            ("holds_released", &row.holds_released),
        ] {
            push(name.to_string(), c);
        }
    }
    for h in &r.holds {
        out.push(vec![
            h.force.clone(),
            "now".into(),
            "holds_in_force:cases".into(),
            shown(&h.cases, min),
        ]);
        out.push(vec![
            h.force.clone(),
            "now".into(),
            "holds_in_force:reads".into(),
            shown(&h.reads, min),
        ]);
    }
    out
}

pub async fn transparency(a: TransparencyArgs) -> anyhow::Result<ExitCode> {
    let req = pb::TransparencyRequest {
        from_month: a.from_month,
        to_month: a.to_month,
        min_count: a.min_count,
        scope: if a.local {
            pb::Scope::Local as i32
        } else {
            pb::Scope::Unspecified as i32
        },
        on_behalf_of: None,
    };
    let r = pb::analysis_client::AnalysisClient::new(channel(&a.node).await?)
        .transparency(req)
        .await
        .map_err(ClientError::from)
        .context("transparency report")?
        .into_inner();
    crate::output::warn_stale(&r.stale);
    let mut out = std::io::stdout().lock();
    if a.format == OutputFormat::Table {
        for n in &r.notes {
            writeln!(out, "note: {n}")?;
        }
    }
    print_records(
        &mut out,
        a.format,
        "transparency report",
        &["force", "month", "measure", "value"],
        &transparency_records(&r),
    )?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suppressed_counts_are_written_below_the_minimum() {
        let r = pb::TransparencyResponse {
            min_count: 10,
            rows: vec![pb::TransparencyRow {
                force: "AVON".into(),
                month: "2026-11".into(),
                hits: Some(pb::PublishedCount {
                    value: 0,
                    suppressed: true,
                }),
                reads_held: Some(pb::PublishedCount {
                    value: 120,
                    suppressed: false,
                }),
                ..Default::default()
            }],
            ..Default::default()
        };
        let recs = transparency_records(&r);
        assert!(recs.contains(&vec![
            "AVON".into(),
            "2026-11".into(),
            "hits".into(),
            "<10".into()
        ]));
        assert!(recs.contains(&vec![
            "AVON".into(),
            "2026-11".into(),
            "reads_held".into(),
            "120".into()
        ]));
    }
}
