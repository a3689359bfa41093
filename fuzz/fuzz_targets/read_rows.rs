//! CSV and NDJSON parsing of BOF files (`nadc_bof::format`), through to
//! read validation (`ReadInput::validate`) and camera validation
//! (`nadc_proto::camera_from_pb`).
//!
//! Input: one mode byte, then the file's bytes:
//! `c` reads as CSV, `n` reads as NDJSON, `C` cameras as CSV, `N` cameras as
//! NDJSON (any other byte picks one of the four by its low bits).
//!
//! Properties:
//! - parsing never panics; a header problem is an error for the whole file;
//! - every row error carries a 1-based line number within the file;
//! - every read row that validates holds the invariants of a `Read`
//!   (`nadc_fuzz::check_accepted_read`), with a capture time in the
//!   supported range;
//! - reads that validate survive `write_reads_csv` and parsing again
//!   unchanged (for NDJSON input, up to the whitespace around the raw VRM,
//!   which CSV cells cannot keep);
//! - camera rows either convert to a camera that validates or are refused.
#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use nadc_bof::format::{Format, camera_rows, read_rows, write_reads_csv};
use nadc_core::read::ReadInput;
use nadc_core::{ForceId, Timestamp};
use nadc_fuzz::check_accepted_read;
use nadc_proto::{camera_from_pb, from_pb_time, pb};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, file)) = data.split_first() else {
        return;
    };
    let (format, cameras) = match mode {
        b'c' => (Format::Csv, false),
        b'n' => (Format::Ndjson, false),
        b'C' => (Format::Csv, true),
        b'N' => (Format::Ndjson, true),
        m => (
            if m & 1 == 0 {
                Format::Csv
            } else {
                Format::Ndjson
            },
            m & 2 != 0,
        ),
    };
    // Every line terminator CSV knows (\n, \r\n and a lone \r) ends a line.
    let max_line = 1 + file.iter().filter(|b| **b == b'\n' || **b == b'\r').count() as u64;
    let line_ok = |line: u64| (1..=max_line).contains(&line);
    let input = || Box::new(Cursor::new(file.to_vec()));
    if cameras {
        let Ok(rows) = camera_rows(input(), format) else {
            return;
        };
        let force = ForceId::new("AVON").expect("valid force");
        for row in rows {
            match row {
                Ok(c) => {
                    if let Ok(camera) = camera_from_pb(c, force.clone()) {
                        assert!(camera.validate().is_ok(), "{camera:?}");
                        assert_eq!(camera.force, force);
                    }
                }
                Err(e) => assert!(line_ok(e.line), "line {} of {max_line}: {e}", e.line),
            }
        }
        return;
    }
    let Ok(rows) = read_rows(input(), format) else {
        return;
    };
    let mut valid: Vec<pb::Read> = Vec::new();
    for row in rows {
        match row {
            Ok(r) => {
                let in_range = r
                    .observed_at
                    .as_ref()
                    .is_none_or(|t| from_pb_time(t).is_some());
                assert!(in_range, "parsed time {:?} out of range", r.observed_at);
                let input = ReadInput::from(r.clone());
                if let Ok(read) = input.clone().validate() {
                    check_accepted_read(&input, &read);
                    assert!((Timestamp::EPOCH..=Timestamp::MAX).contains(&read.observed_at));
                    valid.push(r);
                }
            }
            Err(e) => assert!(line_ok(e.line), "line {} of {max_line}: {e}", e.line),
        }
    }
    if valid.is_empty() {
        return;
    }
    let mut csv = Vec::new();
    write_reads_csv(&mut csv, &valid).expect("writing to memory");
    let again: Vec<pb::Read> = read_rows(Box::new(Cursor::new(csv.clone())), Format::Csv)
        .expect("our own header")
        .map(|r| {
            r.unwrap_or_else(|e| {
                panic!(
                    "re-reading our own CSV: {e}\n{}",
                    String::from_utf8_lossy(&csv)
                )
            })
        })
        .collect();
    if format == Format::Ndjson {
        for r in &mut valid {
            r.vrm = r.vrm.trim().to_string();
        }
    }
    assert_eq!(
        again,
        valid,
        "CSV round trip\n{}",
        String::from_utf8_lossy(&csv)
    );
});
