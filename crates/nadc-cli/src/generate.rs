//! `nadc gen`: writes synthetic traffic in the interchange format, one
//! folder per force (`cameras.csv`, `reads.csv` or `reads.ndjson`), plus
//! `truth.json` naming the planted patterns, the analysis plants' inputs
//! (`incidents.csv`, `journeys/possible.csv` and `journeys/impossible.csv`:
//! `synth::plants`) and `samples.csv`, a uniform
//! sample of the reads with their positions (what `nadc bench search` draws
//! its inputs from, without reading the whole data set again).
//!
//! The reads stream from the simulation straight into the files, in
//! capture-time order per force: memory does not grow with the number of
//! reads or days.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use nadc_bof::format::{READ_COLUMNS, READ_OPTIONAL_COLUMNS, read_to_cells};
use nadc_bof::pb;
use nadc_core::time::{Clock, SystemClock};
use nadc_core::{ForceId, Timestamp};
use rand::{Rng, SeedableRng};

use crate::synth::{Generator, SynthConfig};

#[derive(Args, Debug)]
pub struct GenArgs {
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
    /// Simulated vehicles (each travelling day gives about 16 reads; about
    /// 620,000 vehicles make 10 million reads a day).
    #[arg(long, default_value_t = 20_000)]
    vehicles: usize,
    /// Days simulated.
    #[arg(long, default_value_t = 1)]
    days: u32,
    /// Random seed.
    #[arg(long, default_value_t = 2026)]
    seed: u64,
    /// The first UTC day simulated, YYYY-MM-DD (default: the days up to and
    /// including yesterday).
    #[arg(long)]
    day: Option<String>,
    /// Only the towns of these forces, comma-separated (default: all of
    /// Great Britain).
    #[arg(long, value_delimiter = ',')]
    forces: Vec<String>,
    /// Reads file format: csv or ndjson.
    #[arg(long, default_value = "csv")]
    format: String,
    /// Reads kept in `samples.csv`.
    #[arg(long, default_value_t = 20_000)]
    samples: usize,
}

/// One force's reads file.
enum ReadsFile {
    Csv(Box<csv::Writer<BufWriter<File>>>),
    Ndjson(BufWriter<File>),
}

impl ReadsFile {
    fn create(dir: &Path, ndjson: bool) -> anyhow::Result<Self> {
        let path = dir.join(if ndjson { "reads.ndjson" } else { "reads.csv" });
        let file = File::create(&path).with_context(|| format!("create {}", path.display()))?;
        let out = BufWriter::with_capacity(1 << 20, file);
        if ndjson {
            return Ok(ReadsFile::Ndjson(out));
        }
        let mut w = csv::Writer::from_writer(out);
        let header: Vec<&str> = READ_COLUMNS
            .iter()
            .chain(&READ_OPTIONAL_COLUMNS)
            .copied()
            .collect();
        w.write_record(&header)?;
        Ok(ReadsFile::Csv(Box::new(w)))
    }

    fn write(&mut self, r: &pb::Read) -> anyhow::Result<()> {
        match self {
            ReadsFile::Csv(w) => w.write_record(read_to_cells(r))?,
            ReadsFile::Ndjson(w) => {
                let obj: serde_json::Map<String, serde_json::Value> = READ_COLUMNS
                    .iter()
                    .chain(&READ_OPTIONAL_COLUMNS)
                    .zip(read_to_cells(r))
                    .filter(|(_, v)| !v.is_empty())
                    .map(|(k, v)| (k.to_string(), serde_json::Value::String(v)))
                    .collect();
                writeln!(w, "{}", serde_json::Value::Object(obj))?;
            }
        }
        Ok(())
    }

    fn finish(self) -> anyhow::Result<()> {
        match self {
            ReadsFile::Csv(mut w) => w.flush()?,
            ReadsFile::Ndjson(mut w) => w.flush()?,
        }
        Ok(())
    }
}

/// The columns of `samples.csv`.
pub const SAMPLE_COLUMNS: [&str; 8] = [
    "force",
    "vrm",
    "observed_at",
    "camera_id",
    "lat",
    "lon",
    "make",
    "colour",
];

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

pub fn run(a: GenArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(a.days >= 1, "--days must be at least 1");
    let day_start = match &a.day {
        Some(d) => Timestamp::parse_rfc3339(&format!("{d}T00:00:00Z"))
            .with_context(|| format!("parse --day {d}"))?,
        None => Timestamp::from_day_ms(SystemClock.now().day().saturating_sub(a.days), 0),
    };
    let ndjson = match a.format.as_str() {
        "csv" => false,
        "ndjson" => true,
        other => anyhow::bail!("--format {other:?}: csv or ndjson"),
    };
    let mut cfg = SynthConfig::new(a.seed, a.vehicles, day_start);
    cfg.days = a.days;
    cfg.forces = a
        .forces
        .iter()
        .map(|f| f.trim().to_ascii_uppercase())
        .collect();
    let g = Generator::new(&cfg);
    let cameras = g.cameras();
    anyhow::ensure!(
        !cameras.is_empty(),
        "--forces {}: no town of the synthetic world is in those forces (try {})",
        a.forces.join(","),
        crate::synth::SOUTH.join(",")
    );
    let mut files = BTreeMap::new();
    let mut positions = std::collections::HashMap::new();
    for (force, cams) in &cameras {
        let dir = a.out.join(force.as_str());
        std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        write_cameras(&dir.join("cameras.csv"), cams)?;
        files.insert(force.clone(), (ReadsFile::create(&dir, ndjson)?, 0u64));
        for c in cams {
            positions.insert((force.clone(), c.camera_id.clone()), (c.lat, c.lon));
        }
    }
    // A uniform sample of the reads (reservoir sampling), for benchmarks.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(a.seed ^ 0x5A3F_1E00);
    let mut samples: Vec<(ForceId, pb::Read)> = Vec::with_capacity(a.samples);
    let mut failed: Option<anyhow::Error> = None;
    let started = Instant::now();
    let mut seen = 0u64;
    let total = g.run(&mut |force, read| {
        if failed.is_some() {
            return;
        }
        seen += 1;
        if seen.is_multiple_of(10_000_000) {
            eprintln!(
                "{seen} reads generated ({:.0} s)",
                started.elapsed().as_secs_f64()
            );
        }
        if let Some((file, n)) = files.get_mut(force) {
            *n += 1;
            if let Err(e) = file.write(&read) {
                failed = Some(e);
                return;
            }
        }
        if samples.len() < a.samples {
            samples.push((force.clone(), read));
        } else {
            let i = rng.random_range(0..seen);
            if (i as usize) < a.samples {
                samples[i as usize] = (force.clone(), read);
            }
        }
    });
    if let Some(e) = failed {
        return Err(e);
    }
    let mut counts = serde_json::Map::new();
    for (force, (file, n)) in files {
        file.finish()?;
        println!(
            "{force}: {} cameras, {n} reads in {}",
            cameras[&force].len(),
            a.out.join(force.as_str()).display()
        );
        counts.insert(force.to_string(), n.into());
    }
    write_samples(&a.out.join("samples.csv"), &samples, &positions)?;
    let plants = g.plants();
    let planted = g.planted();
    let analysis = write_plants(&a.out, &g, &plants, &planted)?;
    let truth = g.truth();
    let truth = serde_json::json!({
        "seed": a.seed,
        "vehicles": a.vehicles,
        "day": day_start.to_rfc3339(),
        "days": a.days,
        "reads": total,
        "reads_by_force": counts,
        "cameras": cameras.values().map(Vec::len).sum::<usize>(),
        "convoy": truth.convoy.as_ref().map(|(t, c)| serde_json::json!({"target": t, "companion": c})),
        "clone": truth.clone,
        "analysis": analysis,
    });
    let path = a.out.join("truth.json");
    std::fs::write(&path, serde_json::to_string_pretty(&truth)?)
        .with_context(|| format!("write {}", path.display()))?;
    println!(
        "{total} reads in all over {} day(s) in {:.1} s; ground truth in {}",
        a.days,
        started.elapsed().as_secs_f64(),
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Writes what the analysis plants need as input (`incidents.csv`, the
/// journey claims in `journeys/`) and returns their ground truth.
fn write_plants(
    out: &Path,
    g: &crate::synth::Generator,
    plants: &crate::synth::Plants,
    planted: &crate::synth::Planted,
) -> anyhow::Result<serde_json::Value> {
    let time = |ms: i64| Timestamp::from_millis(ms).to_rfc3339();
    if !planted.incidents.is_empty() {
        let path = out.join("incidents.csv");
        let mut w =
            csv::Writer::from_path(&path).with_context(|| format!("create {}", path.display()))?;
        w.write_record(["reference", "type", "time", "lat", "lon"])?;
        for (i, x) in planted.incidents.iter().enumerate() {
            w.write_record([
                format!("INC-{:04}", i + 1),
                "burglary".into(),
                time(x.at_ms),
                format!("{:.6}", x.lat),
                format!("{:.6}", x.lon),
            ])?;
        }
        w.flush()?;
    }
    let mut journeys = serde_json::Map::new();
    if let Some((left, arrived)) = &planted.commute {
        let dir = out.join("journeys");
        std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        // The far side of the country, twenty minutes after it left home.
        let towns = g.towns();
        let home = plants
            .commuter
            .as_ref()
            .and_then(|c| towns.iter().position(|t| t.name == c.home))
            .unwrap_or(0);
        let far = towns[(home + towns.len() / 2) % towns.len()];
        let impossible = crate::synth::Claim {
            lat: far.lat,
            lon: far.lon,
            at_ms: left.at_ms + 20 * 60_000,
            label: format!("in {}", far.name),
        };
        for (name, claims) in [
            ("possible", [left, arrived]),
            ("impossible", [left, &impossible]),
        ] {
            let path = dir.join(format!("{name}.csv"));
            let mut w = csv::Writer::from_path(&path)
                .with_context(|| format!("create {}", path.display()))?;
            w.write_record(["lat", "lon", "from", "to", "radius_m", "label"])?;
            for c in claims {
                w.write_record([
                    format!("{:.6}", c.lat),
                    format!("{:.6}", c.lon),
                    time(c.at_ms),
                    time(c.at_ms),
                    "300".into(),
                    c.label.clone(),
                ])?;
            }
            w.flush()?;
            journeys.insert(name.into(), path.display().to_string().into());
        }
    }
    let near: Vec<String> = planted
        .incidents
        .iter()
        .enumerate()
        .filter(|(_, x)| x.offender)
        .map(|(i, _)| format!("INC-{:04}", i + 1))
        .collect();
    Ok(serde_json::json!({
        "commuter": plants.commuter.as_ref().map(|c| serde_json::json!({
            "vrm": c.plate, "home": c.home, "work": c.work,
            "odd_day": c.odd_day, "odd_town": c.odd_town})),
        "associates": plants.associates.as_ref().map(|(hub, members)| serde_json::json!({
            "hub": hub, "members": members})),
        "offender": plants.offender.as_ref().map(|v| serde_json::json!({
            "vrm": v, "incidents": planted.incidents.len(), "near": near})),
        "silent_camera": plants.silent.as_ref().map(|(f, id, day)| serde_json::json!({
            "force": f.as_str(), "camera_id": id, "day": day})),
        "journeys": journeys,
    }))
}

fn write_samples(
    path: &Path,
    samples: &[(ForceId, pb::Read)],
    positions: &std::collections::HashMap<(ForceId, String), (f64, f64)>,
) -> anyhow::Result<()> {
    let mut w =
        csv::Writer::from_path(path).with_context(|| format!("create {}", path.display()))?;
    w.write_record(SAMPLE_COLUMNS)?;
    for (force, r) in samples {
        let (lat, lon) = match (r.lat, r.lon) {
            (Some(lat), Some(lon)) => (lat, lon),
            _ => positions
                .get(&(force.clone(), r.camera_id.clone()))
                .copied()
                .with_context(|| format!("camera {} has no position", r.camera_id))?,
        };
        let at = r
            .observed_at
            .as_ref()
            .and_then(nadc_proto::from_pb_time)
            .context("a generated read has no time")?;
        w.write_record([
            force.to_string(),
            r.vrm.clone(),
            at.to_rfc3339(),
            r.camera_id.clone(),
            lat.to_string(),
            lon.to_string(),
            r.make.clone().unwrap_or_default(),
            r.colour.clone().unwrap_or_default(),
        ])?;
    }
    w.flush()?;
    Ok(())
}
