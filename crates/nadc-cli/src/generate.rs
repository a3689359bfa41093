//! `nadc gen`: writes synthetic traffic in the interchange format, one
//! folder per force (`cameras.csv`, `reads.csv` or `reads.ndjson`), plus
//! `truth.json` naming the planted patterns.

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use nadc_bof::format::{READ_COLUMNS, READ_OPTIONAL_COLUMNS, read_to_cells, write_reads_csv};
use nadc_bof::pb;
use nadc_core::Timestamp;
use nadc_core::time::{Clock, SystemClock};

use crate::synth::{SynthConfig, generate};

#[derive(Args, Debug)]
pub struct GenArgs {
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
    /// Simulated vehicles (about 16 reads each).
    #[arg(long, default_value_t = 20_000)]
    vehicles: usize,
    /// Random seed.
    #[arg(long, default_value_t = 2026)]
    seed: u64,
    /// The UTC day simulated, YYYY-MM-DD (default: yesterday).
    #[arg(long)]
    day: Option<String>,
    /// Reads file format: csv or ndjson.
    #[arg(long, default_value = "csv")]
    format: String,
}

fn write_cameras(path: &std::path::Path, cameras: &[pb::Camera]) -> anyhow::Result<()> {
    let mut w =
        csv::Writer::from_path(path).with_context(|| format!("create {}", path.display()))?;
    w.write_record([
        "camera_id",
        "lat",
        "lon",
        "bearing",
        "kind",
        "lanes",
        "description",
        "range_m",
    ])?;
    for c in cameras {
        let kind = match pb::CameraKind::try_from(c.kind) {
            Ok(pb::CameraKind::Mobile) => "mobile",
            _ => "fixed",
        };
        w.write_record([
            c.camera_id.clone(),
            c.lat.to_string(),
            c.lon.to_string(),
            c.bearing.map(|b| b.to_string()).unwrap_or_default(),
            kind.to_string(),
            c.lanes.map(|l| l.to_string()).unwrap_or_default(),
            c.description.clone().unwrap_or_default(),
            c.range_m.map(|r| r.to_string()).unwrap_or_default(),
        ])?;
    }
    w.flush()?;
    Ok(())
}

fn write_ndjson(path: &std::path::Path, reads: &[pb::Read]) -> anyhow::Result<()> {
    let file = std::fs::File::create(path).with_context(|| format!("create {}", path.display()))?;
    let mut w = BufWriter::new(file);
    let names: Vec<&str> = READ_COLUMNS
        .iter()
        .chain(&READ_OPTIONAL_COLUMNS)
        .copied()
        .collect();
    for r in reads {
        let obj: serde_json::Map<String, serde_json::Value> = names
            .iter()
            .zip(read_to_cells(r))
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (k.to_string(), serde_json::Value::String(v)))
            .collect();
        writeln!(w, "{}", serde_json::Value::Object(obj))?;
    }
    w.flush()?;
    Ok(())
}

pub fn run(a: GenArgs) -> anyhow::Result<ExitCode> {
    let day_start = match &a.day {
        Some(d) => Timestamp::parse_rfc3339(&format!("{d}T00:00:00Z"))
            .with_context(|| format!("parse --day {d}"))?,
        None => Timestamp::from_day_ms(SystemClock.now().day().saturating_sub(1), 0),
    };
    let ndjson = match a.format.as_str() {
        "csv" => false,
        "ndjson" => true,
        other => anyhow::bail!("--format {other:?}: csv or ndjson"),
    };
    let data = generate(&SynthConfig {
        seed: a.seed,
        vehicles: a.vehicles,
        day_start,
        detection: 0.92,
        misread: 0.01,
    });
    for (force, cameras) in &data.cameras {
        let dir = a.out.join(force.as_str());
        std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        write_cameras(&dir.join("cameras.csv"), cameras)?;
        let reads = data.reads.get(force).map(Vec::as_slice).unwrap_or_default();
        if ndjson {
            write_ndjson(&dir.join("reads.ndjson"), reads)?;
        } else {
            let path = dir.join("reads.csv");
            let file = std::fs::File::create(&path)
                .with_context(|| format!("create {}", path.display()))?;
            write_reads_csv(BufWriter::new(file), reads)?;
        }
        println!(
            "{force}: {} cameras, {} reads in {}",
            cameras.len(),
            reads.len(),
            dir.display()
        );
    }
    let truth = serde_json::json!({
        "seed": a.seed,
        "vehicles": a.vehicles,
        "day": day_start.to_rfc3339(),
        "reads": data.total_reads(),
        "convoy": data.convoy.as_ref().map(|(t, c)| serde_json::json!({"target": t, "companion": c})),
        "clone": data.clone,
    });
    let path = a.out.join("truth.json");
    std::fs::write(&path, serde_json::to_string_pretty(&truth)?)
        .with_context(|| format!("write {}", path.display()))?;
    println!(
        "{} reads in all; ground truth in {}",
        data.total_reads(),
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}
