//! `nadc hotlist rules`: a list's trigger rules ("alert when a vehicle on
//! this list enters this area between these hours"), set from flags (one
//! rule) or a CSV file (several), or cleared.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use nadc_bof::{ClientError, pb};
use nadc_core::Timestamp;

use crate::NodeArgs;
use crate::output::{terminal_text, time};

/// `nadc hotlist rules`.
#[derive(Args, Debug)]
pub struct RulesArgs {
    #[command(flatten)]
    node: NodeArgs,
    /// The list (your force's).
    name: String,
    /// One rule's area: a circle, LAT,LON,RADIUS_M ...
    #[arg(long, conflicts_with_all = ["polygon", "file", "clear"])]
    circle: Option<String>,
    /// ... or a polygon, WKT (longitude latitude).
    #[arg(long, conflicts_with_all = ["file", "clear"])]
    polygon: Option<String>,
    /// The rule holds from this time (RFC 3339) ...
    #[arg(long)]
    from: Option<String>,
    /// ... until this one.
    #[arg(long)]
    until: Option<String>,
    /// Each day between these UK local hours, START-END (22-6 wraps past
    /// midnight; default all day).
    #[arg(long)]
    hours: Option<String>,
    /// What the rule is for.
    #[arg(long, default_value = "")]
    label: String,
    /// Several rules: CSV with a header naming label, lat, lon, radius_m,
    /// polygon, from, until, hours (any may be empty).
    #[arg(long, conflicts_with = "clear")]
    file: Option<PathBuf>,
    /// Remove every rule: every read of a listed vehicle hits again.
    #[arg(long)]
    clear: bool,
}

fn hours(s: &str) -> anyhow::Result<(u32, u32)> {
    let (a, b) = s
        .split_once('-')
        .context("hours: START-END, for example 22-6")?;
    Ok((
        a.trim().parse().context("hours: the start hour")?,
        b.trim().parse().context("hours: the end hour")?,
    ))
}

fn when(s: &str, what: &str) -> anyhow::Result<Option<prost_types::Timestamp>> {
    if s.trim().is_empty() {
        return Ok(None);
    }
    Timestamp::parse_rfc3339(s.trim())
        .map(|t| Some(nadc_proto::to_pb_time(t)))
        .with_context(|| format!("{what} {s:?} is not an RFC 3339 time"))
}

/// One rule from its parts (as given on the command line or a CSV row).
#[allow(clippy::too_many_arguments)]
fn rule(
    label: &str,
    circle: Option<(f64, f64, u32)>,
    polygon: &str,
    from: &str,
    until: &str,
    span: &str,
) -> anyhow::Result<pb::TriggerRule> {
    let (start_hour, end_hour) = if span.trim().is_empty() {
        (0, 0)
    } else {
        hours(span)?
    };
    let (lat, lon, radius_m) = circle.unwrap_or_default();
    anyhow::ensure!(
        circle.is_some() || !polygon.trim().is_empty(),
        "a rule needs an area: a circle or a polygon"
    );
    Ok(pb::TriggerRule {
        label: label.to_string(),
        lat,
        lon,
        radius_m,
        polygon: polygon.to_string(),
        from: when(from, "from")?,
        until: when(until, "until")?,
        start_hour,
        end_hour,
    })
}

fn circle(s: &str) -> anyhow::Result<(f64, f64, u32)> {
    let parts: Vec<&str> = s.split(',').map(str::trim).collect();
    let [lat, lon, r] = parts[..] else {
        anyhow::bail!("circle: LAT,LON,RADIUS_M, for example 51.4545,-2.5879,800");
    };
    Ok((
        lat.parse().context("circle: the latitude")?,
        lon.parse().context("circle: the longitude")?,
        r.parse().context("circle: the radius in whole metres")?,
    ))
}

/// The rules of a CSV file.
pub fn rules_csv(text: &str) -> anyhow::Result<Vec<pb::TriggerRule>> {
    let mut r = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let header: Vec<String> = r.headers()?.iter().map(str::to_lowercase).collect();
    let col = |name: &str| header.iter().position(|h| h == name);
    let cols = [
        "label", "lat", "lon", "radius_m", "polygon", "from", "until", "hours",
    ]
    .map(col);
    anyhow::ensure!(
        cols.iter().any(Option::is_some),
        "the header must name label, lat, lon, radius_m, polygon, from, until or hours"
    );
    let mut out = Vec::new();
    for (i, row) in r.records().enumerate() {
        let row = row?;
        let f = |k: usize| cols[k].and_then(|c| row.get(c)).unwrap_or("");
        let one = || -> anyhow::Result<pb::TriggerRule> {
            let c = if f(1).is_empty() && f(2).is_empty() {
                None
            } else {
                Some(circle(&format!("{},{},{}", f(1), f(2), f(3)))?)
            };
            rule(f(0), c, f(4), f(5), f(6), f(7))
        };
        out.push(one().with_context(|| format!("line {}", i + 2))?);
    }
    Ok(out)
}

pub async fn run(a: RulesArgs) -> anyhow::Result<ExitCode> {
    let rules = if a.clear {
        Vec::new()
    } else if let Some(file) = &a.file {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("read {}", file.display()))?;
        rules_csv(&text).with_context(|| format!("{}", file.display()))?
    } else {
        let c = a.circle.as_deref().map(circle).transpose()?;
        vec![rule(
            &a.label,
            c,
            a.polygon.as_deref().unwrap_or(""),
            a.from.as_deref().unwrap_or(""),
            a.until.as_deref().unwrap_or(""),
            a.hours.as_deref().unwrap_or(""),
        )?]
    };
    let info = pb::hotlists_client::HotlistsClient::new(crate::client::channel(&a.node).await?)
        .set_rules(pb::SetRulesRequest {
            list: Some(pb::HotlistRef {
                owner: String::new(),
                name: a.name.clone(),
            }),
            rules,
        })
        .await
        .map_err(ClientError::from)
        .context("set rules")?
        .into_inner();
    let r = info.list.unwrap_or_default();
    if info.rules.is_empty() {
        println!(
            "list {}/{}: no rules, every read of a listed vehicle hits",
            r.owner, r.name
        );
    }
    for (i, x) in info.rules.iter().enumerate() {
        let area = if x.polygon.is_empty() {
            format!("within {} m of {:.5},{:.5}", x.radius_m, x.lat, x.lon)
        } else {
            "inside the polygon".to_string()
        };
        let period = match (&x.from, &x.until) {
            (None, None) => String::new(),
            (f, u) => format!(
                ", from {} until {}",
                f.as_ref().map_or("-".into(), |_| time(f)),
                u.as_ref().map_or("-".into(), |_| time(u))
            ),
        };
        let daily = if x.start_hour == x.end_hour {
            "all day".to_string()
        } else {
            format!("{:02}:00-{:02}:00 UK time", x.start_hour, x.end_hour)
        };
        println!(
            "{}",
            terminal_text(&format!(
                "list {}/{} rule {}: {} {area}{period}, {daily}",
                r.owner,
                r.name,
                i + 1,
                x.label
            ))
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_from_csv_and_bad_lines_named() {
        let v = rules_csv(
            "label,lat,lon,radius_m,polygon,from,until,hours\n\
             centre,51.45,-2.58,800,,2026-12-01T00:00:00Z,,22-6\n\
             park,,,,\"POLYGON((-2.6 51.4, -2.5 51.4, -2.5 51.5, -2.6 51.4))\",,,\n",
        )
        .unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(
            (v[0].radius_m, v[0].start_hour, v[0].end_hour),
            (800, 22, 6)
        );
        assert!(v[0].from.is_some() && v[0].until.is_none());
        assert!(v[1].polygon.starts_with("POLYGON"));
        let e = format!(
            "{:#}",
            rules_csv("label,lat,lon,radius_m\nx,51.4,-2.5,far\n").unwrap_err()
        );
        assert!(e.contains("line 2") && e.contains("radius"), "{e}");
        let e = format!("{:#}", rules_csv("label,hours\nx,22-6\n").unwrap_err());
        assert!(e.contains("needs an area"), "{e}");
    }
}
