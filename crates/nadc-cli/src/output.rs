//! Result output: a terminal table, CSV (opens in a spreadsheet), NDJSON,
//! and GeoJSON (points, plus the route as a LineString for a timeline).
//!
//! Every format carries each row's provenance. For machine formats the
//! search summary goes to stderr so stdout stays parseable.
//!
//! Text from BOFs, users and peers is data, never markup, a formula or a
//! terminal command, wherever it is written for a person or a spreadsheet:
//! CSV cells that a spreadsheet would run as a formula get a leading `'`
//! ([`spreadsheet_cell`]) and every text cell is quoted; KML text is
//! escaped for XML and again for the HTML of Google Earth's balloons
//! ([`kml_text`]); the terminal table shows control and invisible
//! formatting characters as `\u{FFFD}` ([`terminal_text`]). NDJSON and
//! GeoJSON are for programs and carry the exact text, JSON-escaped.

use std::io::Write;

mod neutral;
pub use neutral::{SpreadsheetCsv, kml_text, terminal_lines, terminal_text, xml};

use nadc_bof::pb;
use serde_json::{Value, json};

/// Output formats for search results.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns for a terminal.
    Table,
    /// CSV with a header row.
    Csv,
    /// One JSON object per row.
    Ndjson,
    /// A GeoJSON FeatureCollection.
    Geojson,
    /// KML (Google Earth, QGIS): a placemark per read, the route as a line.
    Kml,
}

/// Column names of CSV output (and keys of NDJSON output).
pub const COLUMNS: [&str; 23] = [
    "observed_at",
    "vrm",
    "vrm_raw",
    "owning_force",
    "camera_id",
    "lat",
    "lon",
    "bearing",
    "lane",
    "confidence",
    "make",
    "model",
    "colour",
    "country",
    "bof_read_id",
    "received_at",
    "node",
    "seq",
    "position_from_read",
    "patch_image_ref",
    "overview_image_ref",
    "areas",
    "match",
];

pub fn time(t: &Option<prost_types::Timestamp>) -> String {
    t.as_ref()
        .and_then(nadc_proto::from_pb_time)
        .map(|t| t.to_rfc3339())
        .unwrap_or_default()
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map(ToString::to_string).unwrap_or_default()
}

/// The cells of a row in [`COLUMNS`] order.
pub fn cells(r: &pb::ReadRow) -> Vec<String> {
    let p = r.provenance.clone().unwrap_or_default();
    vec![
        time(&p.observed_at),
        r.vrm.clone(),
        r.vrm_raw.clone(),
        p.owning_force,
        p.camera_id,
        format!("{:.6}", r.lat),
        format!("{:.6}", r.lon),
        opt(&r.bearing),
        opt(&r.lane),
        opt(&r.confidence),
        opt(&r.make),
        opt(&r.model),
        opt(&r.colour),
        opt(&r.country),
        p.bof_read_id,
        time(&p.received_at),
        p.node,
        p.seq.to_string(),
        p.position_from_read.to_string(),
        opt(&r.patch_image_ref),
        opt(&r.overview_image_ref),
        areas_text(&r.areas),
        r.r#match
            .as_ref()
            .map(|m| m.label.clone())
            .unwrap_or_default(),
    ]
}

/// Area numbers as people count them (1-based), joined by `|`.
fn areas_text(areas: &[u32]) -> String {
    areas
        .iter()
        .map(|a| (a + 1).to_string())
        .collect::<Vec<_>>()
        .join("|")
}

/// Writes per-VRM summaries of a geographic search.
pub fn print_vrm_summaries(
    out: &mut dyn Write,
    format: OutputFormat,
    vrms: &[pb::VrmAreaSummary],
    summary: Option<&pb::SearchSummary>,
) -> anyhow::Result<()> {
    let cells = |v: &pb::VrmAreaSummary| {
        vec![
            v.vrm.clone(),
            areas_text(&v.areas),
            time(&v.first_seen),
            time(&v.last_seen),
            v.reads.to_string(),
            v.r#match
                .as_ref()
                .map(|m| m.label.clone())
                .unwrap_or_default(),
        ]
    };
    let header = ["vrm", "areas", "first_seen", "last_seen", "reads", "match"];
    match format {
        OutputFormat::Table => {
            writeln!(
                out,
                "{:<15} {:<8} {:<25} {:<25} {:<6} match",
                header[0], header[1], header[2], header[3], header[4]
            )?;
            for v in vrms {
                let c: Vec<String> = cells(v)
                    .iter()
                    .map(|c| terminal_text(c).into_owned())
                    .collect();
                writeln!(
                    out,
                    "{:<15} {:<8} {:<25} {:<25} {:<6} {}",
                    c[0], c[1], c[2], c[3], c[4], c[5]
                )?;
            }
            writeln!(out, "{} vehicles", vrms.len())?;
        }
        OutputFormat::Csv => {
            let mut w = SpreadsheetCsv::new(out);
            w.row(header)?;
            for v in vrms {
                w.row(cells(v))?;
            }
            w.flush()?;
        }
        OutputFormat::Ndjson => {
            for v in vrms {
                let obj: serde_json::Map<String, Value> = header
                    .iter()
                    .zip(cells(v))
                    .map(|(k, c)| (k.to_string(), Value::String(c)))
                    .collect();
                writeln!(out, "{}", Value::Object(obj))?;
            }
        }
        OutputFormat::Geojson | OutputFormat::Kml => {
            anyhow::bail!("--by-vrm lists vehicles, not places: use --format table, csv or ndjson")
        }
    }
    if let Some(s) = summary {
        eprintln!("{}", summary_text(s));
    }
    Ok(())
}

pub fn properties(r: &pb::ReadRow) -> serde_json::Map<String, Value> {
    COLUMNS
        .iter()
        .zip(cells(r))
        .filter(|(k, _)| !matches!(**k, "lat" | "lon"))
        .map(|(k, v)| (k.to_string(), Value::String(v)))
        .collect()
}

fn summary_text(s: &pb::SearchSummary) -> String {
    let forces: Vec<String> = s
        .forces
        .iter()
        .map(|f| format!("{} {}", f.force, f.rows))
        .collect();
    let text = format!(
        "{} rows{} from {} camera(s); owning forces: {}; {:.1} ms on the node",
        s.rows,
        if s.truncated {
            format!(" (truncated at the limit; {} match)", s.total_rows)
        } else {
            String::new()
        },
        s.cameras,
        if forces.is_empty() {
            "none".into()
        } else {
            forces.join(", ")
        },
        s.elapsed_us as f64 / 1000.0
    ) + &clipped_text(&s.clipped_from)
        + &silent_text(&s.silent_cameras)
        + &stale_text(&s.stale)
        + &nodes_text(&s.nodes, s.partial);
    // Force codes, node names and peers' errors come from the wire.
    terminal_text(&text).into_owned()
}

/// The end of an analysis table: each node's outcome (nationally, or when
/// a part is missing), then the caveats, one per line.
pub fn footer(
    out: &mut dyn std::io::Write,
    nodes: &[pb::NodeOutcome],
    partial: bool,
    caveats: &[String],
) -> std::io::Result<()> {
    if nodes.len() > 1 || partial {
        writeln!(out, "{}", nodes_text(nodes, partial))?;
    }
    for c in caveats {
        writeln!(out, "note: {c}")?;
    }
    Ok(())
}

/// The nodes of a national search: each one's rows (and the replica that
/// answered in its place, with why), the skipped, and the failed with why.
pub fn nodes_text(nodes: &[pb::NodeOutcome], partial: bool) -> String {
    if nodes.is_empty() {
        return String::new();
    }
    let each: Vec<String> = nodes
        .iter()
        .map(|n| match (n.ok, n.skipped) {
            (true, true) => format!("{} skipped (holds nothing there)", n.node),
            (true, false) if !n.replica.is_empty() => format!(
                "{} {} rows from its replica {} ({})",
                n.node, n.rows, n.replica, n.replica_reason
            ),
            (true, false) => format!("{} {} rows", n.node, n.rows),
            (false, _) => format!("{} FAILED: {}", n.node, n.error),
        })
        .collect();
    format!(
        "; {}nodes: {}",
        if partial { "PARTIAL RESULT, " } else { "" },
        each.join(", ")
    )
}

/// A note naming the searched cameras that were silent: no read from them
/// is not evidence of absence.
pub fn silent_text(cameras: &[pb::CameraHealthRow]) -> String {
    if cameras.is_empty() {
        return String::new();
    }
    let each: Vec<String> = cameras
        .iter()
        .map(|c| match &c.last_read {
            Some(_) => format!(
                "{}/{} (last read {})",
                c.force,
                c.camera_id,
                time(&c.last_read)
            ),
            None => format!("{}/{}", c.force, c.camera_id),
        })
        .collect();
    format!(
        "; SILENT CAMERAS (no read in the window, though they usually read then: no read there is not absence): {}",
        each.join(", ")
    )
}

/// A note naming the replicas that answered while behind the replicated
/// log: their answers may lack the newest reads.
pub fn stale_text(stale: &[pb::StaleReplica]) -> String {
    if stale.is_empty() {
        return String::new();
    }
    let each: Vec<String> = stale
        .iter()
        .map(|r| match r.problem.as_str() {
            "" => format!("{} ({} messages behind)", r.node, r.behind),
            p => format!("{} (not applying the log: {p})", r.node),
        })
        .collect();
    format!(
        "; REPLICA BEHIND THE LOG (the newest reads may be missing from its part): {}",
        each.join(", ")
    )
}

/// Warns on standard error, whatever the output format, that replicas
/// behind the log answered part of an analysis.
pub fn warn_stale(stale: &[pb::StaleReplica]) {
    let text = stale_text(stale);
    if let Some(t) = text.strip_prefix("; ") {
        eprintln!("warning: {t}");
    }
}

/// A note for a window clipped to the data the caller may see.
pub fn clipped_text(clipped_from: &Option<prost_types::Timestamp>) -> String {
    match clipped_from {
        Some(t) => format!(
            "; WINDOW CLIPPED: asked from {}, but data that old needs a supervisor's authorisation, so the search started later",
            time(&Some(*t))
        ),
        None => String::new(),
    }
}

/// Writes `rows` in `format`. `route` adds a LineString of the rows in
/// order to GeoJSON (for timelines).
pub fn print_rows(
    out: &mut dyn Write,
    format: OutputFormat,
    rows: &[pb::ReadRow],
    summary: Option<&pb::SearchSummary>,
    route: bool,
) -> anyhow::Result<()> {
    match format {
        OutputFormat::Table => {
            let all_cells: Vec<Vec<String>> = rows.iter().map(cells).collect();
            // Areas (geographic searches) and match (VRM searches) only when present.
            let extra: Vec<(usize, &str)> = [(21, "areas"), (22, "match")]
                .into_iter()
                .filter(|(i, _)| all_cells.iter().any(|c| !c[*i].is_empty()))
                .collect();
            let mut header = vec![
                "observed_at",
                "vrm",
                "force",
                "camera",
                "lat",
                "lon",
                "vehicle",
                "bof_read_id",
                "received_at",
            ];
            header.extend(extra.iter().map(|(_, n)| *n));
            let table: Vec<Vec<String>> = all_cells
                .iter()
                .map(|c| {
                    let c: Vec<String> = c.iter().map(|x| terminal_text(x).into_owned()).collect();
                    let vehicle = [&c[10], &c[11], &c[12]]
                        .iter()
                        .filter(|s| !s.is_empty())
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(" ");
                    vec![
                        c[0].clone(),
                        c[1].clone(),
                        c[3].clone(),
                        c[4].clone(),
                        c[5].clone(),
                        c[6].clone(),
                        vehicle,
                        c[14].clone(),
                        c[15].clone(),
                    ]
                    .into_iter()
                    .chain(extra.iter().map(|(i, _)| c[*i].clone()))
                    .collect()
                })
                .collect();
            let widths: Vec<usize> = (0..header.len())
                .map(|i| {
                    table
                        .iter()
                        .map(|r| r[i].len())
                        .chain([header[i].len()])
                        .max()
                        .unwrap_or(0)
                })
                .collect();
            let line = |cells: Vec<&str>| {
                cells
                    .iter()
                    .zip(&widths)
                    .map(|(c, w)| format!("{c:<w$}"))
                    .collect::<Vec<_>>()
                    .join("  ")
                    .trim_end()
                    .to_string()
            };
            writeln!(out, "{}", line(header.to_vec()))?;
            for r in &table {
                writeln!(out, "{}", line(r.iter().map(String::as_str).collect()))?;
            }
            if let Some(s) = summary {
                writeln!(out, "{}", summary_text(s))?;
            }
        }
        OutputFormat::Csv => {
            let mut w = SpreadsheetCsv::new(out);
            w.row(COLUMNS)?;
            for r in rows {
                w.row(cells(r))?;
            }
            w.flush()?;
            if let Some(s) = summary {
                eprintln!("{}", summary_text(s));
            }
        }
        OutputFormat::Ndjson => {
            for r in rows {
                let mut obj = properties(r);
                obj.insert("lat".into(), json!(r.lat));
                obj.insert("lon".into(), json!(r.lon));
                writeln!(out, "{}", Value::Object(obj))?;
            }
            if let Some(s) = summary {
                eprintln!("{}", summary_text(s));
            }
        }
        OutputFormat::Kml => {
            write_kml(out, rows, route)?;
            if let Some(s) = summary {
                eprintln!("{}", summary_text(s));
            }
        }
        OutputFormat::Geojson => {
            let mut features: Vec<Value> = rows
                .iter()
                .map(|r| {
                    json!({
                        "type": "Feature",
                        "geometry": {"type": "Point", "coordinates": [r.lon, r.lat]},
                        "properties": properties(r),
                    })
                })
                .collect();
            if route && rows.len() >= 2 {
                let coords: Vec<Value> = rows.iter().map(|r| json!([r.lon, r.lat])).collect();
                features.push(json!({
                    "type": "Feature",
                    "geometry": {"type": "LineString", "coordinates": coords},
                    "properties": {
                        "kind": "route",
                        "vrm": rows[0].vrm,
                        "from": time(&rows[0].provenance.clone().unwrap_or_default().observed_at),
                        "to": time(&rows[rows.len() - 1].provenance.clone().unwrap_or_default().observed_at),
                        "points": rows.len(),
                    },
                }));
            }
            let fc = json!({"type": "FeatureCollection", "features": features});
            writeln!(out, "{}", serde_json::to_string_pretty(&fc)?)?;
            if let Some(s) = summary {
                eprintln!("{}", summary_text(s));
            }
        }
    }
    Ok(())
}

/// Writes rows as a KML document: one placemark per read (its provenance
/// in ExtendedData), and for timelines the route as a LineString.
fn write_kml(out: &mut dyn Write, rows: &[pb::ReadRow], route: bool) -> anyhow::Result<()> {
    writeln!(out, r#"<?xml version="1.0" encoding="UTF-8"?>"#)?;
    writeln!(out, r#"<kml xmlns="http://www.opengis.net/kml/2.2">"#)?;
    writeln!(out, "<Document><name>nadc search result</name>")?;
    for r in rows {
        let c = cells(r);
        writeln!(out, "<Placemark>")?;
        writeln!(out, "<name>{} {}</name>", kml_text(&r.vrm), kml_text(&c[0]))?;
        writeln!(out, "<TimeStamp><when>{}</when></TimeStamp>", xml(&c[0]))?;
        writeln!(out, "<ExtendedData>")?;
        for (k, v) in COLUMNS.iter().zip(&c) {
            if !v.is_empty() {
                writeln!(
                    out,
                    r#"<Data name="{k}"><value>{}</value></Data>"#,
                    kml_text(v)
                )?;
            }
        }
        writeln!(out, "</ExtendedData>")?;
        writeln!(
            out,
            "<Point><coordinates>{},{}</coordinates></Point>",
            r.lon, r.lat
        )?;
        writeln!(out, "</Placemark>")?;
    }
    if route && rows.len() >= 2 {
        let coords: Vec<String> = rows
            .iter()
            .map(|r| format!("{},{}", r.lon, r.lat))
            .collect();
        writeln!(
            out,
            "<Placemark><name>route {}</name>",
            kml_text(&rows[0].vrm)
        )?;
        writeln!(
            out,
            "<LineString><tessellate>1</tessellate><coordinates>{}</coordinates></LineString>",
            coords.join(" ")
        )?;
        writeln!(out, "</Placemark>")?;
    }
    writeln!(out, "</Document></kml>")?;
    Ok(())
}

/// Writes records of named string fields as a table, CSV or NDJSON (the
/// other formats are refused, naming `what`).
pub fn print_records(
    out: &mut dyn Write,
    format: OutputFormat,
    what: &str,
    header: &[&str],
    records: &[Vec<String>],
) -> anyhow::Result<()> {
    match format {
        OutputFormat::Table => {
            let records: Vec<Vec<String>> = records
                .iter()
                .map(|r| r.iter().map(|c| terminal_text(c).into_owned()).collect())
                .collect();
            let widths: Vec<usize> = (0..header.len())
                .map(|i| {
                    records
                        .iter()
                        .map(|r| r[i].len())
                        .chain([header[i].len()])
                        .max()
                        .unwrap_or(0)
                })
                .collect();
            let line = |cells: &mut dyn Iterator<Item = &str>| {
                cells
                    .zip(&widths)
                    .map(|(c, w)| format!("{c:<w$}"))
                    .collect::<Vec<_>>()
                    .join("  ")
                    .trim_end()
                    .to_string()
            };
            writeln!(out, "{}", line(&mut header.iter().copied()))?;
            for r in &records {
                writeln!(out, "{}", line(&mut r.iter().map(String::as_str)))?;
            }
        }
        OutputFormat::Csv => {
            let mut w = SpreadsheetCsv::new(out);
            w.row(header)?;
            for r in records {
                w.row(r)?;
            }
            w.flush()?;
        }
        OutputFormat::Ndjson => {
            for r in records {
                let obj: serde_json::Map<String, Value> = header
                    .iter()
                    .zip(r)
                    .map(|(k, c)| (k.to_string(), Value::String(c.clone())))
                    .collect();
                writeln!(out, "{}", Value::Object(obj))?;
            }
        }
        OutputFormat::Geojson | OutputFormat::Kml => {
            anyhow::bail!("{what} are not places: use --format table, csv or ndjson")
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A row with hostile text in every field a BOF or peer supplies.
    fn hostile_row() -> pb::ReadRow {
        pb::ReadRow {
            vrm: "AB12CDE".into(),
            vrm_raw: "=AB12 CDE".into(),
            lat: 51.5,
            lon: -2.5879,
            make: Some("=HYPERLINK(\"http://x\")".into()),
            model: Some("\u{1b}[2J<i>Focus</i>".into()),
            colour: Some("<b>red</b>".into()),
            patch_image_ref: Some("]]><script>alert(1)</script>&x".into()),
            overview_image_ref: Some("@SUM(1)".into()),
            provenance: Some(pb::Provenance {
                owning_force: "AVON".into(),
                camera_id: "-CAM;=1+1".into(),
                bof_read_id: "+r1".into(),
                node: "n1".into(),
                seq: 7,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn csv_output_neutralises_text_and_keeps_numbers() {
        let mut out = Vec::new();
        print_rows(&mut out, OutputFormat::Csv, &[hostile_row()], None, false).unwrap();
        let mut rdr = csv::Reader::from_reader(out.as_slice());
        let header = rdr.headers().unwrap().clone();
        let row = rdr.records().next().unwrap().unwrap();
        let cell = |name: &str| &row[header.iter().position(|h| h == name).unwrap()];
        assert_eq!(cell("make"), "'=HYPERLINK(\"http://x\")");
        assert_eq!(cell("vrm_raw"), "'=AB12 CDE");
        assert_eq!(cell("overview_image_ref"), "'@SUM(1)");
        assert_eq!(cell("camera_id"), "'-CAM;=1+1");
        assert_eq!(cell("bof_read_id"), "'+r1");
        assert_eq!(cell("colour"), "<b>red</b>");
        assert_eq!(cell("lon"), "-2.587900");
        assert_eq!(cell("seq"), "7");
        // Text cells are quoted, so a spreadsheet that splits on ';' keeps
        // `-CAM;=1+1` whole instead of starting a cell with `=1+1`; numbers
        // are not.
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains(",\"'-CAM;=1+1\","), "{text}");
        assert!(text.contains(",-2.587900,"), "{text}");
    }

    #[test]
    fn kml_output_is_well_formed_and_carries_no_markup() {
        let mut out = Vec::new();
        print_rows(&mut out, OutputFormat::Kml, &[hostile_row()], None, false).unwrap();
        let kml = String::from_utf8(out).unwrap();
        let mut reader = quick_xml::Reader::from_str(&kml);
        let (mut elements, mut values) = (Vec::new(), Vec::new());
        loop {
            match reader.read_event().expect("well-formed XML") {
                quick_xml::events::Event::Start(e) => {
                    elements.push(String::from_utf8_lossy(e.name().as_ref()).into_owned())
                }
                quick_xml::events::Event::Text(t) => values.push(t.decode().unwrap().into_owned()),
                quick_xml::events::Event::GeneralRef(r) => {
                    let name = r.decode().unwrap().into_owned();
                    let c = match name.as_str() {
                        "lt" => "<",
                        "gt" => ">",
                        "amp" => "&",
                        "quot" => "\"",
                        "apos" => "'",
                        other => panic!("unknown entity {other}"),
                    };
                    values.push(c.to_string());
                }
                quick_xml::events::Event::Eof => break,
                _ => {}
            }
        }
        // Only the KML writer's own elements: none from the data.
        for e in &elements {
            assert!(
                [
                    "kml",
                    "Document",
                    "name",
                    "Placemark",
                    "TimeStamp",
                    "when",
                    "ExtendedData",
                    "Data",
                    "value",
                    "Point",
                    "coordinates"
                ]
                .contains(&e.as_str()),
                "element {e} from the data"
            );
        }
        // The text, as XML gives it to a reader, holds no markup for HTML
        // either: `<` only as `&lt;`, and no control characters.
        let text = values.concat();
        assert!(!text.contains('<') && !text.contains('\u{1b}'), "{text}");
        assert!(text.contains("&lt;b&gt;red&lt;/b&gt;"), "{text}");
        assert!(
            text.contains("]]&gt;&lt;script&gt;alert(1)&lt;/script&gt;&x"),
            "{text}"
        );
        assert!(text.contains("-2.5879"), "{text}");
    }

    #[test]
    fn the_table_shows_no_terminal_escapes() {
        let mut out = Vec::new();
        print_rows(&mut out, OutputFormat::Table, &[hostile_row()], None, false).unwrap();
        let table = String::from_utf8(out).unwrap();
        assert!(!table.contains('\u{1b}'), "{table:?}");
        assert!(table.contains("\u{FFFD}[2J<i>Focus</i>"), "{table:?}");
        let mut out = Vec::new();
        print_records(
            &mut out,
            OutputFormat::Table,
            "entries",
            &["reason"],
            &[vec!["stolen\u{1b}]0;pwned\u{7}".into()]],
        )
        .unwrap();
        let table = String::from_utf8(out).unwrap();
        assert!(
            !table.contains('\u{1b}') && !table.contains('\u{7}'),
            "{table:?}"
        );
    }
}
