//! The interchange format BOFs produce: CSV with a header row, or NDJSON
//! (one JSON object per line) with the same field names.
//!
//! Reads: `read_id,vrm,observed_at,camera_id,lat,lon,bearing,lane,confidence,make,model,colour`
//! in any order, plus optional `country,patch_image_ref,overview_image_ref,candidates`.
//! Cameras: `camera_id,lat,lon,bearing,kind,lanes` plus optional
//! `description,covers_hard_shoulder,roundabout,range_m`.
//!
//! A header problem (missing or unknown column) stops the file. A bad row is
//! reported with its line number and the rows around it go on.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::str::FromStr;

use nadc_core::{CameraKind, Roundabout, Timestamp};
use nadc_proto::{pb, to_pb_kind, to_pb_time};

use crate::ClientError;

/// Columns every reads file has (cells of optional fields may be empty).
pub const READ_COLUMNS: [&str; 12] = [
    "read_id",
    "vrm",
    "observed_at",
    "camera_id",
    "lat",
    "lon",
    "bearing",
    "lane",
    "confidence",
    "make",
    "model",
    "colour",
];
/// Columns a reads file may add.
pub const READ_OPTIONAL_COLUMNS: [&str; 4] = [
    "country",
    "patch_image_ref",
    "overview_image_ref",
    "candidates",
];
/// Columns every cameras file has.
pub const CAMERA_COLUMNS: [&str; 6] = ["camera_id", "lat", "lon", "bearing", "kind", "lanes"];
/// Columns a cameras file may add.
pub const CAMERA_OPTIONAL_COLUMNS: [&str; 4] = [
    "description",
    "covers_hard_shoulder",
    "roundabout",
    "range_m",
];

/// Separator of alternative OCR candidates within one cell.
pub const CANDIDATE_SEPARATOR: char = '|';

/// File formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Comma-separated values with a header row.
    Csv,
    /// One JSON object per line.
    Ndjson,
}

impl FromStr for Format {
    type Err = ClientError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "csv" => Ok(Format::Csv),
            "ndjson" | "jsonl" | "json" => Ok(Format::Ndjson),
            _ => Err(ClientError::Input(format!(
                "format {s:?} is unknown: csv or ndjson"
            ))),
        }
    }
}

impl Format {
    /// Picks the format from a file's extension.
    pub fn from_path(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "csv" => Some(Format::Csv),
            "ndjson" | "jsonl" | "json" => Some(Format::Ndjson),
            _ => None,
        }
    }
}

/// A bad row: where and what.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct RowError {
    /// 1-based line number in the file.
    pub line: u64,
    /// What is wrong.
    pub message: String,
}

/// One row's cells by column name (trimmed; empty cells are absent).
struct Row<'a> {
    cells: HashMap<&'a str, String>,
}

impl Row<'_> {
    fn text(&self, name: &str) -> Option<String> {
        self.cells.get(name).cloned()
    }

    fn parse<T: FromStr>(&self, name: &str, what: &str) -> Result<Option<T>, String> {
        match self.cells.get(name) {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| format!("column {name}: {v:?} is not {what}")),
        }
    }
}

fn check_header(
    header: &[String],
    required: &[&str],
    optional: &[&str],
) -> Result<(), ClientError> {
    for h in header {
        if !required.contains(&h.as_str()) && !optional.contains(&h.as_str()) {
            return Err(ClientError::Input(format!(
                "unknown column {h:?}; columns are {} and optionally {}",
                required.join(","),
                optional.join(",")
            )));
        }
    }
    let missing: Vec<&str> = required
        .iter()
        .filter(|r| !header.iter().any(|h| h == *r))
        .copied()
        .collect();
    if !missing.is_empty() {
        return Err(ClientError::Input(format!(
            "missing column(s) {} (cells may be empty, but the column must be in the header)",
            missing.join(",")
        )));
    }
    Ok(())
}

fn read_from_row(row: &Row<'_>) -> Result<pb::Read, String> {
    let observed_at = match row.text("observed_at") {
        None => None,
        Some(t) => Some(to_pb_time(
            Timestamp::parse_rfc3339(&t).map_err(|e| format!("column observed_at: {e}"))?,
        )),
    };
    let candidates = row
        .text("candidates")
        .map(|c| {
            c.split(CANDIDATE_SEPARATOR)
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    Ok(pb::Read {
        read_id: row.text("read_id").unwrap_or_default(),
        vrm: row.cells.get("vrm").cloned().unwrap_or_default(),
        observed_at,
        camera_id: row.text("camera_id").unwrap_or_default(),
        lat: row.parse("lat", "a number")?,
        lon: row.parse("lon", "a number")?,
        bearing: row.parse("bearing", "a number")?,
        lane: row.parse("lane", "a whole number")?,
        confidence: row.parse("confidence", "a number")?,
        make: row.text("make"),
        model: row.text("model"),
        colour: row.text("colour"),
        country: row.text("country"),
        patch_image_ref: row.text("patch_image_ref"),
        overview_image_ref: row.text("overview_image_ref"),
        candidates,
    })
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "yes" | "y" | "1" => Some(true),
        "false" | "no" | "n" | "0" => Some(false),
        _ => None,
    }
}

fn camera_from_row(row: &Row<'_>) -> Result<pb::Camera, String> {
    let kind = match row.text("kind") {
        None => return Err("column kind is empty".into()),
        Some(k) => to_pb_kind(CameraKind::from_str(&k).map_err(|e| e.to_string())?) as i32,
    };
    let roundabout = match row.text("roundabout") {
        None => pb::Roundabout::Unspecified,
        Some(r) => match Roundabout::from_str(&r).map_err(|e| e.to_string())? {
            Roundabout::Entry => pb::Roundabout::Entry,
            Roundabout::Exit => pb::Roundabout::Exit,
        },
    } as i32;
    let covers_hard_shoulder = match row.text("covers_hard_shoulder") {
        None => None,
        Some(v) => Some(
            parse_bool(&v)
                .ok_or_else(|| format!("column covers_hard_shoulder: {v:?} is not true/false"))?,
        ),
    };
    Ok(pb::Camera {
        camera_id: row.text("camera_id").unwrap_or_default(),
        lat: row.parse("lat", "a number")?.ok_or("column lat is empty")?,
        lon: row.parse("lon", "a number")?.ok_or("column lon is empty")?,
        bearing: row.parse("bearing", "a number")?,
        kind,
        lanes: row.parse("lanes", "a whole number")?,
        description: row.text("description"),
        covers_hard_shoulder,
        roundabout,
        range_m: row.parse("range_m", "a whole number of metres")?,
        force: String::new(),
    })
}

/// Rows of a file, each converted or reported with its line number.
pub type Rows<T> = Box<dyn Iterator<Item = Result<T, RowError>> + Send>;

fn csv_rows<T: 'static>(
    input: Box<dyn Read + Send>,
    required: &'static [&'static str],
    optional: &'static [&'static str],
    convert: fn(&Row<'_>) -> Result<T, String>,
) -> Result<Rows<T>, ClientError> {
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::None)
        .from_reader(input);
    let header: Vec<String> = rdr
        .byte_headers()
        .map_err(|e| ClientError::Input(format!("header row: {e}")))?
        .iter()
        .map(|h| String::from_utf8_lossy(h).trim().to_ascii_lowercase())
        .collect();
    check_header(&header, required, optional)?;
    let names: Vec<&'static str> = header
        .iter()
        .map(|h| {
            required
                .iter()
                .chain(optional)
                .find(|c| **c == h.as_str())
                .copied()
                .unwrap_or("")
        })
        .collect();
    let mut record = csv::ByteRecord::new();
    let iter = std::iter::from_fn(move || {
        loop {
            match rdr.read_byte_record(&mut record) {
                Ok(false) => return None,
                Ok(true) => {}
                Err(e) => {
                    let line = e.position().map(|p| p.line()).unwrap_or(0);
                    return Some(Err(RowError {
                        line,
                        message: format!("malformed CSV: {e}"),
                    }));
                }
            }
            let line = record.position().map(|p| p.line()).unwrap_or(0);
            if record.iter().all(|c| c.iter().all(u8::is_ascii_whitespace)) {
                continue;
            }
            if record.len() != names.len() {
                return Some(Err(RowError {
                    line,
                    message: format!("has {} cells; the header has {}", record.len(), names.len()),
                }));
            }
            let mut cells = HashMap::with_capacity(names.len());
            for (name, cell) in names.iter().zip(record.iter()) {
                let Ok(text) = std::str::from_utf8(cell) else {
                    return Some(Err(RowError {
                        line,
                        message: format!("column {name} is not valid UTF-8"),
                    }));
                };
                let text = text.trim();
                if !text.is_empty() {
                    cells.insert(*name, text.to_string());
                }
            }
            return Some(convert(&Row { cells }).map_err(|message| RowError { line, message }));
        }
    });
    Ok(Box::new(iter))
}

fn ndjson_rows<T: 'static>(
    input: Box<dyn Read + Send>,
    required: &'static [&'static str],
    optional: &'static [&'static str],
    convert: fn(&Row<'_>) -> Result<T, String>,
) -> Rows<T> {
    let mut lines = BufReader::new(input);
    let mut line_no = 0u64;
    let mut buf = Vec::new();
    let iter = std::iter::from_fn(move || {
        loop {
            buf.clear();
            match lines.read_until(b'\n', &mut buf) {
                Ok(0) => return None,
                Ok(_) => line_no += 1,
                Err(e) => {
                    return Some(Err(RowError {
                        line: line_no + 1,
                        message: format!("read error: {e}"),
                    }));
                }
            }
            let err = |message: String| {
                Some(Err(RowError {
                    line: line_no,
                    message,
                }))
            };
            let Ok(text) = std::str::from_utf8(&buf) else {
                return err("line is not valid UTF-8".into());
            };
            if text.trim().is_empty() {
                continue;
            }
            let obj: serde_json::Map<String, serde_json::Value> = match serde_json::from_str(text) {
                Ok(o) => o,
                Err(e) => return err(format!("not a JSON object: {e}")),
            };
            let mut cells = HashMap::with_capacity(obj.len());
            for (k, v) in obj {
                let Some(name) = required.iter().chain(optional).find(|c| **c == k) else {
                    return err(format!("unknown field {k:?}"));
                };
                let text = match v {
                    serde_json::Value::Null => continue,
                    serde_json::Value::String(s) => s,
                    serde_json::Value::Number(n) => n.to_string(),
                    serde_json::Value::Bool(b) => b.to_string(),
                    serde_json::Value::Array(items) => items
                        .iter()
                        .map(|i| {
                            i.as_str()
                                .map(str::to_string)
                                .unwrap_or_else(|| i.to_string())
                        })
                        .collect::<Vec<_>>()
                        .join(&CANDIDATE_SEPARATOR.to_string()),
                    serde_json::Value::Object(_) => {
                        return err(format!("field {k:?} is an object"));
                    }
                };
                let text = if *name == "vrm" {
                    text
                } else {
                    text.trim().to_string()
                };
                if !text.trim().is_empty() {
                    cells.insert(*name, text);
                }
            }
            return Some(convert(&Row { cells }).map_err(|message| RowError {
                line: line_no,
                message,
            }));
        }
    });
    Box::new(iter)
}

/// Parses reads from `input` in `format`.
pub fn read_rows(
    input: Box<dyn Read + Send>,
    format: Format,
) -> Result<Rows<pb::Read>, ClientError> {
    match format {
        Format::Csv => csv_rows(input, &READ_COLUMNS, &READ_OPTIONAL_COLUMNS, read_from_row),
        Format::Ndjson => Ok(ndjson_rows(
            input,
            &READ_COLUMNS,
            &READ_OPTIONAL_COLUMNS,
            read_from_row,
        )),
    }
}

/// Parses cameras from `input` in `format`.
pub fn camera_rows(
    input: Box<dyn Read + Send>,
    format: Format,
) -> Result<Rows<pb::Camera>, ClientError> {
    match format {
        Format::Csv => csv_rows(
            input,
            &CAMERA_COLUMNS,
            &CAMERA_OPTIONAL_COLUMNS,
            camera_from_row,
        ),
        Format::Ndjson => Ok(ndjson_rows(
            input,
            &CAMERA_COLUMNS,
            &CAMERA_OPTIONAL_COLUMNS,
            camera_from_row,
        )),
    }
}

/// Writes reads as CSV with the standard header (used by generators and
/// tests; any BOF software may produce the same).
pub fn write_reads_csv<W: std::io::Write>(out: W, reads: &[pb::Read]) -> Result<(), ClientError> {
    let mut w = csv::Writer::from_writer(out);
    let io = |e: csv::Error| ClientError::Input(format!("write csv: {e}"));
    let mut header: Vec<&str> = READ_COLUMNS.to_vec();
    header.extend_from_slice(&READ_OPTIONAL_COLUMNS);
    w.write_record(&header).map_err(io)?;
    for r in reads {
        w.write_record(read_to_cells(r)).map_err(io)?;
    }
    w.flush()
        .map_err(|e| ClientError::Input(format!("write csv: {e}")))
}

/// The CSV cells of a read, in [`READ_COLUMNS`] then [`READ_OPTIONAL_COLUMNS`] order.
pub fn read_to_cells(r: &pb::Read) -> Vec<String> {
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    let num = |v: Option<String>| v.unwrap_or_default();
    vec![
        r.read_id.clone(),
        r.vrm.clone(),
        r.observed_at
            .as_ref()
            .and_then(nadc_proto::from_pb_time)
            .map(|t| t.to_rfc3339())
            .unwrap_or_default(),
        r.camera_id.clone(),
        num(r.lat.map(|v| v.to_string())),
        num(r.lon.map(|v| v.to_string())),
        num(r.bearing.map(|v| v.to_string())),
        num(r.lane.map(|v| v.to_string())),
        num(r.confidence.map(|v| v.to_string())),
        opt(&r.make),
        opt(&r.model),
        opt(&r.colour),
        opt(&r.country),
        opt(&r.patch_image_ref),
        opt(&r.overview_image_ref),
        r.candidates.join(&CANDIDATE_SEPARATOR.to_string()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reads(text: &str, f: Format) -> Vec<Result<pb::Read, RowError>> {
        read_rows(Box::new(std::io::Cursor::new(text.as_bytes().to_vec())), f)
            .unwrap()
            .collect()
    }

    const HEADER: &str =
        "vrm,read_id,observed_at,camera_id,lat,lon,bearing,lane,confidence,make,model,colour";

    #[test]
    fn csv_any_column_order_and_empty_cells() {
        let text = format!(
            "{HEADER}\nAB12 CDE,r1,2026-11-24T08:00:00Z,C1,51.5,-2.5,90,1,88.5,Ford,Focus,Blue\n\
             XY99ZZZ,r2,2026-11-24T09:00:00+01:00,C2,,,,,,,,\n"
        );
        let rows = reads(&text, Format::Csv);
        assert_eq!(rows.len(), 2);
        let r1 = rows[0].as_ref().unwrap();
        assert_eq!((r1.read_id.as_str(), r1.vrm.as_str()), ("r1", "AB12 CDE"));
        assert_eq!(r1.lat, Some(51.5));
        assert_eq!(r1.lane, Some(1));
        let r2 = rows[1].as_ref().unwrap();
        assert_eq!(r2.lat, None);
        assert_eq!(r2.observed_at, r1.observed_at);
    }

    #[test]
    fn csv_bad_rows_are_numbered_and_the_rest_kept() {
        let text = format!(
            "{HEADER}\nA1,r1,2026-11-24T08:00:00Z,C1,abc,1,,,,,,\nA2,r2,24/11/2026,C1,,,,,,,,\nA3,r3\nA4,r4,2026-11-24T08:00:00Z,C1,,,,,,,,\n"
        );
        let rows = reads(&text, Format::Csv);
        assert_eq!(rows.len(), 4);
        let e = rows[0].as_ref().unwrap_err();
        assert_eq!(e.line, 2);
        assert!(
            e.message.contains("column lat") && e.message.contains("abc"),
            "{e}"
        );
        let e = rows[1].as_ref().unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.message.contains("observed_at"), "{e}");
        let e = rows[2].as_ref().unwrap_err();
        assert!(e.message.contains("2 cells"), "{e}");
        assert_eq!(rows[3].as_ref().unwrap().read_id, "r4");
    }

    #[test]
    fn csv_non_utf8_cell() {
        let mut bytes = format!("{HEADER}\n").into_bytes();
        bytes.extend_from_slice(b"A\xff1,r1,2026-11-24T08:00:00Z,C1,,,,,,,,\n");
        let rows: Vec<_> = read_rows(Box::new(std::io::Cursor::new(bytes)), Format::Csv)
            .unwrap()
            .collect();
        assert!(
            rows[0]
                .as_ref()
                .unwrap_err()
                .message
                .contains("vrm is not valid UTF-8")
        );
    }

    #[test]
    fn header_problems_stop_the_file() {
        let bad = |h: &str| {
            read_rows(
                Box::new(std::io::Cursor::new(format!("{h}\n").into_bytes())),
                Format::Csv,
            )
            .err()
            .map(|e| e.to_string())
            .unwrap()
        };
        assert!(bad(&format!("{HEADER},speed")).contains("unknown column \"speed\""));
        assert!(bad("read_id,vrm").contains("missing column(s) observed_at"));
    }

    #[test]
    fn ndjson_reads() {
        let text = "{\"read_id\":\"r1\",\"vrm\":\"AB12 CDE\",\"observed_at\":\"2026-11-24T08:00:00Z\",\"camera_id\":\"C1\",\"lat\":51.5,\"lon\":-2.5,\"candidates\":[\"AB12CDF\"]}\n\
                    \n\
                    {\"read_id\":\"r2\",\"vrm\":\"X\",\"speed\":3}\n\
                    not json\n";
        let rows = reads(text, Format::Ndjson);
        assert_eq!(rows.len(), 3);
        let r1 = rows[0].as_ref().unwrap();
        assert_eq!(r1.candidates, vec!["AB12CDF".to_string()]);
        assert_eq!(r1.lon, Some(-2.5));
        let e = rows[1].as_ref().unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.message.contains("speed"));
        assert_eq!(rows[2].as_ref().unwrap_err().line, 4);
    }

    #[test]
    fn csv_round_trip() {
        let text = format!(
            "{HEADER},candidates\nAB12 CDE,r1,2026-11-24T08:00:00Z,C1,51.5,-2.5,90,1,88.5,Ford,Focus,Blue,AB12CDF|AB12C0E\n"
        );
        let parsed: Vec<pb::Read> = reads(&text, Format::Csv)
            .into_iter()
            .map(Result::unwrap)
            .collect();
        let mut out = Vec::new();
        write_reads_csv(&mut out, &parsed).unwrap();
        let again: Vec<pb::Read> = read_rows(Box::new(std::io::Cursor::new(out)), Format::Csv)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(again, parsed);
        assert_eq!(again[0].candidates.len(), 2);
    }

    #[test]
    fn cameras_csv() {
        let text = "camera_id,lat,lon,bearing,kind,lanes,roundabout,covers_hard_shoulder\n\
                    C1,51.5,-2.5,90,fixed,3,entry,yes\nC2,51.5,-2.5,,drone,,,\nC3,,1,,fixed,,,\n";
        let rows: Vec<_> = camera_rows(
            Box::new(std::io::Cursor::new(text.as_bytes().to_vec())),
            Format::Csv,
        )
        .unwrap()
        .collect();
        let c1 = rows[0].as_ref().unwrap();
        assert_eq!(c1.roundabout, pb::Roundabout::Entry as i32);
        assert_eq!(c1.covers_hard_shoulder, Some(true));
        assert!(rows[1].as_ref().unwrap_err().message.contains("drone"));
        assert!(
            rows[2]
                .as_ref()
                .unwrap_err()
                .message
                .contains("lat is empty")
        );
    }
}
