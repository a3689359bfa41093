//! Bad input, class by class: every kind of bad read and bad request gets a
//! precise reason (a code, and a message naming the field), and the good
//! reads around it are still stored and searchable.
//!
//! - one batch holding every class of bad read, good reads interleaved;
//! - bytes that are not UTF-8, in a CSV/NDJSON file and on the wire;
//! - batches over the node's read limit and messages over its size limit;
//! - malformed CSV and NDJSON rows pushed with the `nadc` binary;
//! - malformed search parameters.

mod support;

use std::io::Cursor;
use std::path::PathBuf;
use std::process::Output;

use nadc_bof::format::{Format, read_rows};
use nadc_bof::pb;
use nadc_core::Timestamp;
use support::process::identity;
use support::{Harness, access, batch, now, read};
use tonic::Code;

use pb::ReadErrorCode as C;

/// `now()` moved by `secs` seconds.
fn secs(s: i64) -> Timestamp {
    now().plus_millis(s * 1000)
}

fn set_time(r: &mut pb::Read, t: Timestamp) {
    r.observed_at = Some(nadc_proto::to_pb_time(t));
}

fn set_pos(r: &mut pb::Read, lat: f64, lon: f64) {
    r.lat = Some(lat);
    r.lon = Some(lon);
}

/// One row of the bad-read table: a read id, an edit of a good read, and
/// what the node must answer (`None`: stored; else the code and words its
/// message must contain).
struct Case {
    id: &'static str,
    edit: fn(&mut pb::Read),
    expect: Option<(C, &'static [&'static str])>,
}

const fn ok(id: &'static str, edit: fn(&mut pb::Read)) -> Case {
    Case {
        id,
        edit,
        expect: None,
    }
}

const fn bad(
    id: &'static str,
    edit: fn(&mut pb::Read),
    code: C,
    words: &'static [&'static str],
) -> Case {
    Case {
        id,
        edit,
        expect: Some((code, words)),
    }
}

/// Every class of bad read, with good reads between them. Every read is of
/// AB12CDE at C1 five minutes ago unless its edit says otherwise.
fn table() -> Vec<Case> {
    vec![
        ok("good-1", |_| {}),
        // Read ids.
        bad("", |_| {}, C::InvalidReadId, &["read_id is missing"]),
        bad("   ", |_| {}, C::InvalidReadId, &["read_id is missing"]),
        bad(
            "id-ctrl\u{7}",
            |_| {},
            C::InvalidReadId,
            &["read_id", "control characters"],
        ),
        bad(
            "x",
            |r| r.read_id = "x".repeat(129),
            C::InvalidReadId,
            &["read_id", "1 to 128 bytes"],
        ),
        // VRMs.
        bad(
            "vrm-empty",
            |r| r.vrm.clear(),
            C::InvalidVrm,
            &["VRM is empty"],
        ),
        bad(
            "vrm-punct",
            |r| r.vrm = " - . ".into(),
            C::InvalidVrm,
            &["VRM is empty"],
        ),
        bad(
            "vrm-long",
            |r| r.vrm = "ABCDEFGHJKLMNPQR".into(),
            C::InvalidVrm,
            &["VRM is too long", "16 characters", "at most 15"],
        ),
        bad(
            "vrm-raw-long",
            |r| r.vrm = "A ".repeat(35),
            C::InvalidVrm,
            &["VRM is too long", "at most 64"],
        ),
        bad(
            "vrm-nul",
            |r| r.vrm = "AB\u{0}12".into(),
            C::InvalidVrm,
            &["VRM has character '\\0' at position 3"],
        ),
        bad(
            "vrm-accent",
            |r| r.vrm = "AB12 CDÉ".into(),
            C::InvalidVrm,
            &["'É'", "position 8", "only A-Z and 0-9"],
        ),
        bad(
            "vrm-cyrillic",
            // A Cyrillic А that looks like a Latin A.
            |r| r.vrm = "\u{410}B12CDE".into(),
            C::InvalidVrm,
            &["position 1"],
        ),
        // Characters never on a plate are refused, naming the character
        // and its position; before, they were dropped, so `AB12<script>`
        // was stored as the plate AB12SCRIPT.
        bad(
            "vrm-markup",
            |r| r.vrm = "AB12<script>".into(),
            C::InvalidVrm,
            &["VRM has character '<' at position 5"],
        ),
        bad(
            "vrm-formula",
            |r| r.vrm = "AB12=CDE".into(),
            C::InvalidVrm,
            &["VRM has character '=' at position 5"],
        ),
        bad(
            "vrm-zero-width",
            |r| r.vrm = "AB12\u{200b}CDE".into(),
            C::InvalidVrm,
            &["VRM has character '\\u{200b}' at position 5"],
        ),
        bad(
            "vrm-fullwidth-digit",
            |r| r.vrm = "AB\u{ff11}2CDE".into(),
            C::InvalidVrm,
            &["position 3"],
        ),
        bad(
            "vrm-question",
            |r| r.vrm = "AB12CD?".into(),
            C::InvalidVrm,
            &["'?' at position 7", "space, '-' and '.' as separators"],
        ),
        bad(
            "vrm-tab",
            |r| r.vrm = "AB12\tCDE".into(),
            C::InvalidVrm,
            &["'\\t' at position 5"],
        ),
        bad(
            "candidate-markup",
            |r| r.candidates = vec!["AB12CDE".into(), "AB12<CDE".into()],
            C::InvalidField,
            &["candidate: VRM has character '<' at position 5"],
        ),
        // Spaces, hyphens and full stops are separators: removed, not refused.
        ok("good-punct", |r| r.vrm = " ab-12 c.d.e ".into()),
        // Markup and formulas in vehicle details are text: stored as sent,
        // neutralised where written (tests/hostile_text.rs).
        ok("good-hostile-text", |r| {
            r.make = Some("=HYPERLINK(\"http://x\")".into());
            r.colour = Some("<b>red</b>".into());
        }),
        // Capture times.
        bad(
            "no-time",
            |r| r.observed_at = None,
            C::InvalidTime,
            &["observed_at is missing"],
        ),
        bad(
            "pre-1970",
            |r| {
                let mut t = nadc_proto::to_pb_time(Timestamp::EPOCH);
                t.seconds = -86_400;
                r.observed_at = Some(t);
            },
            C::InvalidTime,
            &["observed_at", "1970-01-01"],
        ),
        bad(
            "bad-nanos",
            |r| {
                let mut t = nadc_proto::to_pb_time(secs(-300));
                t.nanos = 1_000_000_000;
                r.observed_at = Some(t);
            },
            C::InvalidTime,
            &["observed_at is outside"],
        ),
        bad(
            "future",
            |r| set_time(r, secs(301)),
            C::InFuture,
            &["observed_at", "more than 300 s ahead"],
        ),
        ok("good-future-edge", |r| set_time(r, secs(300))),
        bad(
            "old",
            |r| set_time(r, now().minus_days(400)),
            C::TooOld,
            &["observed_at", "365-day retention period"],
        ),
        bad(
            "old-edge",
            |r| set_time(r, now().minus_days(365).plus_millis(-1)),
            C::TooOld,
            &["365-day retention period"],
        ),
        // Positions.
        bad(
            "lat-91",
            |r| set_pos(r, 91.0, 0.0),
            C::InvalidPosition,
            &["latitude 91 is out of range"],
        ),
        bad(
            "lat-minus-91",
            |r| set_pos(r, -90.5, 0.0),
            C::InvalidPosition,
            &["latitude -90.5"],
        ),
        bad(
            "lon-181",
            |r| set_pos(r, 51.0, -180.5),
            C::InvalidPosition,
            &["longitude -180.5 is out of range"],
        ),
        bad(
            "lat-nan",
            |r| set_pos(r, f64::NAN, 0.0),
            C::InvalidPosition,
            &["latitude NaN"],
        ),
        bad(
            "lon-nan",
            |r| set_pos(r, 51.0, f64::NAN),
            C::InvalidPosition,
            &["longitude NaN"],
        ),
        bad(
            "lat-inf",
            |r| set_pos(r, f64::INFINITY, 0.0),
            C::InvalidPosition,
            &["latitude inf"],
        ),
        bad(
            "lon-neg-inf",
            |r| set_pos(r, 51.0, f64::NEG_INFINITY),
            C::InvalidPosition,
            &["longitude -inf"],
        ),
        bad(
            "lat-only",
            |r| r.lat = Some(51.0),
            C::InvalidPosition,
            &["lat given without lon"],
        ),
        bad(
            "lon-only",
            |r| r.lon = Some(-2.0),
            C::InvalidPosition,
            &["lon given without lat"],
        ),
        // Cameras.
        bad(
            "no-camera",
            |r| r.camera_id.clear(),
            C::InvalidCamera,
            &["camera_id \"\" is invalid"],
        ),
        bad(
            "unknown-cam",
            |r| r.camera_id = "NOPE".into(),
            C::UnknownCamera,
            &["camera \"NOPE\"", "not registered for AVON", "no lat/lon"],
        ),
        // An unregistered camera is fine when the read has its own position
        // (documented in common.proto: "Must be registered unless the read
        // carries its own position").
        ok("good-own-gps", |r| {
            r.camera_id = "ROADSIDE-7".into();
            set_pos(r, 51.3, -2.4);
        }),
        bad(
            "van-no-gps",
            |r| r.camera_id = "VAN".into(),
            C::NoPosition,
            &["camera \"VAN\" is mobile", "must carry their own lat/lon"],
        ),
        ok("good-van", |r| {
            r.camera_id = "VAN".into();
            set_pos(r, 51.51, -2.61);
        }),
        // Duplicates within the batch: by read id and capture day.
        bad(
            "good-1",
            |_| {},
            C::DuplicateInBatch,
            &["read_id \"good-1\" appears earlier in this batch"],
        ),
        bad(
            "good-1",
            |r| set_time(r, secs(-60)),
            C::DuplicateInBatch,
            &["good-1"],
        ),
        ok("good-1", |r| set_time(r, now().minus_days(2))),
        // Other fields.
        bad(
            "conf-150",
            |r| r.confidence = Some(150.0),
            C::InvalidField,
            &["confidence 150 is invalid"],
        ),
        bad(
            "conf-nan",
            |r| r.confidence = Some(f32::NAN),
            C::InvalidField,
            &["confidence NaN"],
        ),
        bad(
            "conf-neg",
            |r| r.confidence = Some(-1.0),
            C::InvalidField,
            &["confidence -1"],
        ),
        bad(
            "bearing",
            |r| r.bearing = Some(360.0),
            C::InvalidField,
            &["bearing 360"],
        ),
        bad(
            "lane",
            |r| r.lane = Some(17),
            C::InvalidField,
            &["lane 17 is invalid"],
        ),
        bad(
            "make-long",
            |r| r.make = Some("m".repeat(65)),
            C::InvalidField,
            &["make is too long: 65 bytes"],
        ),
        bad(
            "colour-ctrl",
            |r| r.colour = Some("Bl\u{1b}ue".into()),
            C::InvalidField,
            &["colour contains control characters"],
        ),
        bad(
            "make-bidi",
            |r| r.make = Some("Fo\u{202e}rd".into()),
            C::InvalidField,
            &["make contains an invisible formatting character: '\\u{202e}' at position 3"],
        ),
        bad(
            "model-escape",
            |r| r.model = Some("\u{1b}[2JFocus".into()),
            C::InvalidField,
            &["model contains control characters: '\\u{1b}' at position 1"],
        ),
        bad(
            "image-ref-zero-width",
            |r| r.overview_image_ref = Some("img/1\u{200b}.jpg".into()),
            C::InvalidField,
            &["overview_image_ref contains an invisible formatting character"],
        ),
        bad(
            "country",
            |r| r.country = Some("G1".into()),
            C::InvalidField,
            &["country \"G1\" is invalid"],
        ),
        bad(
            "candidates",
            |r| r.candidates = vec!["AB12CDE".into(); 9],
            C::InvalidField,
            &["9 candidates given (at most 8)"],
        ),
        bad(
            "candidate-bad",
            |r| r.candidates = vec!["AB12CD€".into()],
            C::InvalidField,
            &["candidate: VRM has character '€'"],
        ),
        ok("good-last", |r| set_time(r, secs(-60))),
    ]
}

/// A timeline of `vrm` from three days ago to an hour ahead (the default
/// window ends now).
async fn timeline(h: &Harness, vrm: &str) -> Vec<pb::ReadRow> {
    let mut client = pb::search_client::SearchClient::new(h.user("alice").await);
    let mut stream = client
        .vrm_timeline(pb::VrmTimelineRequest {
            access: access(),
            vrm: vrm.into(),
            from: Some(nadc_proto::to_pb_time(now().minus_days(3))),
            to: Some(nadc_proto::to_pb_time(secs(3600))),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut rows = Vec::new();
    while let Some(c) = stream.message().await.unwrap() {
        if let Some(pb::search_chunk::Chunk::Rows(b)) = c.chunk {
            rows.extend(b.rows);
        }
    }
    rows
}

fn read_ids(rows: &[pb::ReadRow]) -> Vec<String> {
    rows.iter()
        .map(|r| r.provenance.as_ref().unwrap().bof_read_id.clone())
        .collect()
}

#[tokio::test]
async fn every_class_of_bad_read_is_named_and_the_good_reads_of_the_batch_are_kept() {
    let h = Harness::start().await;
    h.cameras("AVON", 2).await;
    let cases = table();
    let reads: Vec<pb::Read> = cases
        .iter()
        .map(|c| {
            let mut r = read(c.id, "AB12CDE", "C1", 5);
            (c.edit)(&mut r);
            r
        })
        .collect();
    let mut ingest = pb::ingest_client::IngestClient::new(h.bof("AVON").await);
    let result = ingest
        .push_batch(batch(reads.clone()))
        .await
        .unwrap()
        .into_inner();

    // Every bad read, and only those, by index, echoed read id and code.
    let want: Vec<(u32, &str, i32)> = cases
        .iter()
        .enumerate()
        .filter_map(|(i, c)| {
            let (code, _) = c.expect?;
            Some((i as u32, reads[i].read_id.as_str(), code as i32))
        })
        .collect();
    let got: Vec<(u32, &str, i32)> = result
        .rejected
        .iter()
        .map(|x| (x.index, x.read_id.as_str(), x.code))
        .collect();
    assert_eq!(got, want, "rejections by index, read id and code");
    // Each message names the field and what is wrong with it.
    for rej in &result.rejected {
        let case = &cases[rej.index as usize];
        let (code, words) = case.expect.unwrap();
        for w in words {
            assert!(
                rej.message.contains(w),
                "{:?} ({code:?}): message {:?} lacks {w:?}",
                case.id,
                rej.message
            );
        }
    }
    let good: Vec<&str> = cases
        .iter()
        .filter(|c| c.expect.is_none())
        .map(|c| c.id)
        .collect();
    assert_eq!(result.accepted as usize, good.len(), "{good:?}");
    assert_eq!((result.duplicates, result.duplicate_indexes.len()), (0, 0));

    // Exactly the good reads are stored and found, in capture-time order.
    let rows = timeline(&h, "AB12CDE").await;
    assert_eq!(
        read_ids(&rows),
        [
            "good-1",
            "good-1",
            "good-punct",
            "good-hostile-text",
            "good-own-gps",
            "good-van",
            "good-last",
            "good-future-edge",
        ],
        "good reads in the timeline"
    );
    let own = rows
        .iter()
        .find(|r| r.provenance.as_ref().unwrap().bof_read_id == "good-own-gps")
        .unwrap();
    assert!((own.lat - 51.3).abs() < 1e-9 && own.provenance.as_ref().unwrap().position_from_read);
    let punct = rows
        .iter()
        .find(|r| r.provenance.as_ref().unwrap().bof_read_id == "good-punct")
        .unwrap();
    assert_eq!(
        (punct.vrm.as_str(), punct.vrm_raw.as_str()),
        ("AB12CDE", " ab-12 c.d.e ")
    );
    let hostile = rows
        .iter()
        .find(|r| r.provenance.as_ref().unwrap().bof_read_id == "good-hostile-text")
        .unwrap();
    assert_eq!(
        (hostile.make.as_deref(), hostile.colour.as_deref()),
        (Some("=HYPERLINK(\"http://x\")"), Some("<b>red</b>")),
        "details are stored as sent"
    );
    // No plate was made from a refused VRM's letters.
    assert!(timeline(&h, "AB12SCRIPT").await.is_empty());
    assert_eq!(
        h.node_info("alice").await.reads,
        good.len() as u64,
        "nothing else stored"
    );
}

/// Rows of `text` parsed as `format`: (line, read id) of the good ones and
/// (line, message) of the bad ones.
fn parse(text: &[u8], format: Format) -> (Vec<String>, Vec<(u64, String)>) {
    let rows = read_rows(Box::new(Cursor::new(text.to_vec())), format).unwrap();
    let (mut good, mut bad) = (Vec::new(), Vec::new());
    for r in rows {
        match r {
            Ok(r) => good.push(r.read_id),
            Err(e) => bad.push((e.line, e.message)),
        }
    }
    (good, bad)
}

#[test]
fn bytes_that_are_not_utf8_in_a_file_are_reported_by_line_and_the_other_rows_kept() {
    let header =
        "read_id,vrm,observed_at,camera_id,lat,lon,bearing,lane,confidence,make,model,colour\n";
    let mut csv = header.as_bytes().to_vec();
    csv.extend_from_slice(b"r1,AB12CDE,2026-11-24T11:00:00Z,C1,,,,,,,,\n");
    csv.extend_from_slice(b"r2,AB\xff12CDE,2026-11-24T11:00:00Z,C1,,,,,,,,\n");
    csv.extend_from_slice(b"r3,AB12CDE,2026-11-24T11:00:00Z,C1,,,,,,Fo\xc3\x28rd,,\n");
    csv.extend_from_slice(b"r4,AB12CDE,2026-11-24T11:00:00Z,C1,,,,,,,,\n");
    let (good, bad) = parse(&csv, Format::Csv);
    assert_eq!(good, ["r1", "r4"]);
    assert_eq!(
        bad,
        [
            (3, "column vrm is not valid UTF-8".to_string()),
            (4, "column make is not valid UTF-8".to_string()),
        ]
    );

    let mut ndjson = Vec::new();
    ndjson.extend_from_slice(br#"{"read_id":"n1","vrm":"AB12CDE","observed_at":"2026-11-24T11:00:00Z","camera_id":"C1"}"#);
    ndjson.extend_from_slice(b"\n");
    ndjson.extend_from_slice(b"{\"read_id\":\"n2\",\"vrm\":\"AB\xfe12\",\"observed_at\":\"2026-11-24T11:00:00Z\",\"camera_id\":\"C1\"}\n");
    ndjson.extend_from_slice(br#"{"read_id":"n3","vrm":"AB12CDE","observed_at":"2026-11-24T11:00:00Z","camera_id":"C1"}"#);
    ndjson.extend_from_slice(b"\n");
    let (good, bad) = parse(&ndjson, Format::Ndjson);
    assert_eq!(good, ["n1", "n3"]);
    assert_eq!(bad, [(2, "line is not valid UTF-8".to_string())]);
}

/// `pb::Read` with `bytes` where the real message has `string vrm`: the
/// same wire layout, but any bytes may be sent.
#[derive(Clone, PartialEq, prost::Message)]
struct RawRead {
    #[prost(string, tag = "1")]
    read_id: String,
    #[prost(bytes = "vec", tag = "2")]
    vrm: Vec<u8>,
    #[prost(message, optional, tag = "3")]
    observed_at: Option<RawTime>,
    #[prost(string, tag = "4")]
    camera_id: String,
}

/// `google.protobuf.Timestamp`.
#[derive(Clone, PartialEq, prost::Message)]
struct RawTime {
    #[prost(int64, tag = "1")]
    seconds: i64,
    #[prost(int32, tag = "2")]
    nanos: i32,
}

/// `pb::ReadBatch` of [`RawRead`]s.
#[derive(Clone, PartialEq, prost::Message)]
struct RawBatch {
    #[prost(uint64, tag = "1")]
    batch_seq: u64,
    #[prost(message, repeated, tag = "3")]
    reads: Vec<RawRead>,
}

fn raw_read(id: &str, vrm: &[u8]) -> RawRead {
    RawRead {
        read_id: id.into(),
        vrm: vrm.to_vec(),
        observed_at: Some(RawTime {
            seconds: secs(-300).millis() / 1000,
            nanos: 0,
        }),
        camera_id: "C1".into(),
    }
}

async fn push_raw(h: &Harness, b: RawBatch) -> Result<pb::BatchResult, tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(h.bof("AVON").await);
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let path = tonic::codegen::http::uri::PathAndQuery::from_static("/nadc.v1.Ingest/PushBatch");
    let codec = tonic_prost::ProstCodec::<RawBatch, pb::BatchResult>::default();
    grpc.unary(tonic::Request::new(b), path, codec)
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test]
async fn a_batch_with_bytes_that_are_not_utf8_cannot_be_decoded_and_the_node_goes_on() {
    let h = Harness::start().await;
    h.cameras("AVON", 1).await;
    // The same layout with valid text is an ordinary batch.
    let r = push_raw(
        &h,
        RawBatch {
            batch_seq: 1,
            reads: vec![raw_read("w1", b"AB12CDE")],
        },
    )
    .await
    .unwrap();
    assert_eq!((r.batch_seq, r.accepted), (1, 1));

    // Protobuf strings must be UTF-8: a batch with a VRM that is not cannot
    // be decoded at all, so none of it is stored, and the error says why.
    let e = push_raw(
        &h,
        RawBatch {
            batch_seq: 2,
            reads: vec![raw_read("w2", b"AB12CDE"), raw_read("w3", b"AB\xff12")],
        },
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), Code::Internal, "{e:?}");
    assert!(
        e.message().contains("Read.vrm") && e.message().contains("not UTF-8"),
        "{e:?}"
    );
    let rows = timeline(&h, "AB12CDE").await;
    assert_eq!(
        read_ids(&rows),
        ["w1"],
        "nothing of the undecodable batch stored"
    );

    // The node is still up and takes the next batch.
    let mut ingest = pb::ingest_client::IngestClient::new(h.bof("AVON").await);
    let r = ingest
        .push_batch(batch(vec![read("w2", "AB12CDE", "C1", 1)]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.accepted, 1);
    assert_eq!(read_ids(&timeline(&h, "AB12CDE").await), ["w1", "w2"]);
}

#[tokio::test]
async fn batches_over_the_read_limit_and_messages_over_the_size_limit_are_refused() {
    let mut h = Harness::start().await;
    h.configure = |c| {
        c.max_batch_reads = 5;
        c.limits.max_message_bytes = 64 << 10;
    };
    h.restart().await;
    h.cameras("AVON", 1).await;
    let reads = |prefix: &str, n: usize| -> Vec<pb::Read> {
        (0..n)
            .map(|i| read(&format!("{prefix}{i}"), "AB12CDE", "C1", 10))
            .collect()
    };
    let mut ingest = pb::ingest_client::IngestClient::new(h.bof("AVON").await);

    // At the limit: stored.
    let r = ingest
        .push_batch(batch(reads("at-", 5)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.accepted, 5);
    // One over: refused whole, naming the count and the limit.
    let e = ingest
        .push_batch(batch(reads("over-", 6)))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert_eq!(e.message(), "batch 1 has 6 reads; at most 5 per batch");

    // In a stream, the batches before the oversized one are kept and
    // acknowledged; the oversized one ends the stream with the reason.
    let mut first = batch(reads("s-", 3));
    first.batch_seq = 10;
    let mut second = batch(reads("big-", 6));
    second.batch_seq = 11;
    let mut results = ingest
        .push_stream(tokio_stream::iter(vec![first, second]))
        .await
        .unwrap()
        .into_inner();
    let r = results.message().await.unwrap().unwrap();
    assert_eq!((r.batch_seq, r.accepted), (10, 3));
    let e = results.message().await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("batch 11 has 6 reads"), "{e:?}");

    // A message over max_message_bytes is refused by the transport before
    // it is decoded.
    let mut huge = read("huge", "AB12CDE", "C1", 1);
    huge.make = Some("m".repeat(70_000));
    let e = ingest
        .push_batch(batch(vec![huge, read("with-huge", "AB12CDE", "C1", 1)]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::OutOfRange, "{e:?}");
    assert!(
        e.message().contains("message length too large") && e.message().contains("65536"),
        "{e:?}"
    );

    // The node stays up; exactly the accepted reads are stored.
    let r = ingest
        .push_batch(batch(reads("after-", 1)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.accepted, 1);
    let rows = timeline(&h, "AB12CDE").await;
    let mut ids = read_ids(&rows);
    ids.sort();
    assert_eq!(
        ids,
        [
            "after-0", "at-0", "at-1", "at-2", "at-3", "at-4", "s-0", "s-1", "s-2"
        ]
    );
}

/// `row` with every cell that is exactly `T` replaced by `t`.
fn with_time(row: &[u8], t: &str) -> Vec<u8> {
    let cells: Vec<&[u8]> = row
        .split(|b| *b == b',')
        .map(|c| if c == b"T" { t.as_bytes() } else { c })
        .collect();
    cells.join(&b',')
}

/// The lines of `out`'s stdout that report a malformed row.
fn malformed_lines(stdout: &str) -> Vec<&str> {
    stdout
        .lines()
        .filter_map(|l| l.trim().strip_prefix("malformed: "))
        .collect()
}

#[test]
fn nadc_push_reports_malformed_rows_by_line_and_sends_the_good_ones() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    support::process::pki_init(&pki, "AVON", "alice:analyst:AVON");
    let server = support::process::Server::start(dir.path());
    let avon = identity(&pki, "bofs", "AVON");
    let alice = identity(&pki, "users", "alice");
    let cameras = dir.path().join("cameras.csv");
    std::fs::write(
        &cameras,
        "camera_id,lat,lon,bearing,kind,lanes\nCAM1,51.47,-2.56,45,fixed,2\n",
    )
    .unwrap();
    run(
        &["cameras", "import", cameras.to_str().unwrap()],
        &avon,
        &server.url,
    );

    // The node runs on the real clock: date the reads an hour ago.
    let t = (chrono::Utc::now() - chrono::Duration::hours(1))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let mut csv =
        b"read_id,vrm,observed_at,camera_id,lat,lon,bearing,lane,confidence,make,model,colour\n"
            .to_vec();
    let rows: [&[u8]; 8] = [
        b"c1,BD51 SMR,T,CAM1,,,,,,,,\n",
        b"c2,BD51SMR,T,CAM1\n",
        b"c3,BD51SMR,yesterday,CAM1,,,,,,,,\n",
        b"c4,BD51SMR,T,CAM1,north,-2.5,,,,,,\n",
        b"c5,BD51\xffSMR,T,CAM1,,,,,,,,\n",
        b"c6,BD51SMR,T,CAM1,,,,two,,,,\n",
        b"c7,BD51SMR,T,CAM1,,,,,,,,,extra\n",
        b"c8,BD51SMR,T,CAM1,51.5,-2.5,,,,,,\n",
    ];
    for r in rows {
        csv.extend_from_slice(&with_time(r, &t));
    }
    let csv_path = dir.path().join("reads.csv");
    std::fs::write(&csv_path, &csv).unwrap();
    let out = run(&["push", csv_path.to_str().unwrap()], &avon, &server.url);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("accepted 2, duplicates 0, rejected 0, malformed rows 6"),
        "{stdout}"
    );
    let malformed = malformed_lines(&stdout);
    let expected: [(&str, &[&str]); 6] = [
        ("line 3:", &["has 4 cells; the header has 12"]),
        ("line 4:", &["column observed_at"]),
        ("line 5:", &["column lat", "\"north\" is not a number"]),
        ("line 6:", &["column vrm is not valid UTF-8"]),
        ("line 7:", &["column lane", "\"two\" is not a whole number"]),
        ("line 8:", &["has 13 cells; the header has 12"]),
    ];
    assert_eq!(malformed.len(), expected.len(), "{stdout}");
    for (line, (prefix, words)) in malformed.iter().zip(expected) {
        assert!(line.starts_with(prefix), "{line:?} is not {prefix}");
        for w in words {
            assert!(line.contains(w), "{line:?} lacks {w:?}");
        }
    }

    let good = |id: &str, vrm: &str| {
        format!(r#"{{"read_id":"{id}","vrm":"{vrm}","observed_at":"{t}","camera_id":"CAM1"}}"#)
    };
    let ndjson = [
        good("n1", "BD51SMR"),
        "{not json".to_string(),
        r#"["a","list"]"#.to_string(),
        format!(
            r#"{{"read_id":"n4","vrm":"BD51SMR","observed_at":"{t}","camera_id":"CAM1","lat":"north","lon":-2.5}}"#
        ),
        format!(
            r#"{{"read_id":"n5","vrm":"BD51SMR","observed_at":"{t}","camera_id":"CAM1","lane":1.5}}"#
        ),
        format!(
            r#"{{"read_id":{{"id":6}},"vrm":"BD51SMR","observed_at":"{t}","camera_id":"CAM1"}}"#
        ),
        r#"{"read_id":"n7","vrm":"BD51SMR","observed_at":12345,"camera_id":"CAM1"}"#.to_string(),
        format!(r#"{{"read_id":"n8","plate":"BD51SMR","observed_at":"{t}","camera_id":"CAM1"}}"#),
        String::new(),
        good("n10", "BD51SMR"),
        // Well formed, but refused by the node: reported as a rejection.
        good("n11", "BD51SM€"),
    ];
    let nd_path = dir.path().join("reads.ndjson");
    std::fs::write(&nd_path, ndjson.join("\n") + "\n").unwrap();
    let out = run(&["push", nd_path.to_str().unwrap()], &avon, &server.url);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("accepted 2, duplicates 0, rejected 1, malformed rows 7"),
        "{stdout}"
    );
    assert!(
        stdout.contains("read_id \"n11\"") && stdout.contains("invalid_vrm"),
        "{stdout}"
    );
    let malformed = malformed_lines(&stdout);
    let expected: [(&str, &[&str]); 7] = [
        ("line 2:", &["not a JSON object"]),
        ("line 3:", &["not a JSON object"]),
        ("line 4:", &["column lat", "\"north\" is not a number"]),
        ("line 5:", &["column lane", "\"1.5\" is not a whole number"]),
        ("line 6:", &["field \"read_id\" is an object"]),
        ("line 7:", &["column observed_at"]),
        ("line 8:", &["unknown field \"plate\""]),
    ];
    assert_eq!(malformed.len(), expected.len(), "{stdout}");
    for (line, (prefix, words)) in malformed.iter().zip(expected) {
        assert!(line.starts_with(prefix), "{line:?} is not {prefix}");
        for w in words {
            assert!(line.contains(w), "{line:?} lacks {w:?}");
        }
    }

    // Exactly the good rows of both files were stored.
    let out = run(
        &["search", "vrm", "BD51SMR", "--format", "ndjson"],
        &alice,
        &server.url,
    );
    let mut ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["bof_read_id"].as_str().unwrap().to_string()
        })
        .collect();
    ids.sort();
    assert_eq!(ids, ["c1", "c8", "n1", "n10"]);
    server.stop();
}

/// A search request of any kind.
enum Search {
    Timeline(pb::VrmTimelineRequest),
    Vrm(pb::VrmSearchRequest),
    Geo(pb::GeoSearchRequest),
    Vehicle(pb::VehicleSearchRequest),
    Camera(pb::CameraSearchRequest),
}

/// Runs `s` as alice; the refusal, whether it comes as the call's status
/// or in the stream, or `None` if the search succeeds.
async fn refusal(h: &Harness, s: Search) -> Option<tonic::Status> {
    let mut client = pb::search_client::SearchClient::new(h.user("alice").await);
    let call = match s {
        Search::Timeline(r) => client.vrm_timeline(r).await,
        Search::Vrm(r) => client.vrm_search(r).await,
        Search::Geo(r) => client.geo_search(r).await,
        Search::Vehicle(r) => client.vehicle_search(r).await,
        Search::Camera(r) => client.camera_search(r).await,
    };
    let mut stream = match call {
        Err(status) => return Some(status),
        Ok(r) => r.into_inner(),
    };
    loop {
        match stream.message().await {
            Err(status) => return Some(status),
            Ok(None) => return None,
            Ok(Some(_)) => {}
        }
    }
}

/// A circle of `radius_m` around (`lat`, `lon`) over the last hour.
fn circle(lat: f64, lon: f64, radius_m: f64) -> pb::Area {
    pb::Area {
        lat,
        lon,
        radius_m,
        from: Some(nadc_proto::to_pb_time(secs(-3600))),
        to: Some(nadc_proto::to_pb_time(now())),
        polygon: String::new(),
    }
}

fn geo(areas: Vec<pb::Area>) -> pb::GeoSearchRequest {
    pb::GeoSearchRequest {
        areas,
        access: access(),
        ..Default::default()
    }
}

fn polygon(wkt: &str) -> pb::Area {
    pb::Area {
        polygon: wkt.into(),
        ..circle(0.0, 0.0, 0.0)
    }
}

fn vrm_search(pattern: &str) -> pb::VrmSearchRequest {
    pb::VrmSearchRequest {
        pattern: pattern.into(),
        access: access(),
        ..Default::default()
    }
}

fn timeline_req(vrm: &str) -> pb::VrmTimelineRequest {
    pb::VrmTimelineRequest {
        vrm: vrm.into(),
        access: access(),
        ..Default::default()
    }
}

fn camera_req(force: &str, camera_id: &str) -> pb::CameraSearchRequest {
    pb::CameraSearchRequest {
        cameras: vec![pb::CameraRef {
            force: force.into(),
            camera_id: camera_id.into(),
        }],
        from: Some(nadc_proto::to_pb_time(secs(-3600))),
        to: Some(nadc_proto::to_pb_time(now())),
        access: access(),
        ..Default::default()
    }
}

#[tokio::test]
async fn malformed_search_parameters_are_refused_naming_the_parameter() {
    let h = Harness::start().await;
    h.cameras("AVON", 1).await;
    let mut ingest = pb::ingest_client::IngestClient::new(h.bof("AVON").await);
    ingest
        .push_batch(batch(vec![read("s1", "AB12CDE", "C1", 5)]))
        .await
        .unwrap();
    let t = |s: i64| Some(nadc_proto::to_pb_time(secs(s)));
    let inverted = |mut a: pb::Area| {
        std::mem::swap(&mut a.from, &mut a.to);
        a
    };
    let invalid = Code::InvalidArgument;
    let broad = Code::FailedPrecondition;
    let cases: Vec<(&str, Search, Code, &[&str])> = vec![
        // Geographic searches: radius, centre, window, polygon, match.
        (
            "negative radius",
            Search::Geo(geo(vec![circle(51.46, -2.58, -5.0)])),
            invalid,
            &["area 1", "radius -5 m is not allowed"],
        ),
        (
            "zero radius",
            Search::Geo(geo(vec![circle(51.46, -2.58, 0.0)])),
            invalid,
            &["area 1", "radius 0 m"],
        ),
        (
            "NaN radius",
            Search::Geo(geo(vec![circle(51.46, -2.58, f64::NAN)])),
            invalid,
            &["radius NaN m"],
        ),
        (
            "radius over the node's cap",
            Search::Geo(geo(vec![circle(51.46, -2.58, 25_000.0)])),
            broad,
            &[
                "area 1",
                "radius 25000 m is over this node's cap of 20000 m",
            ],
        ),
        (
            "radius over the absolute maximum",
            Search::Geo(geo(vec![circle(51.46, -2.58, 2_000_000.0)])),
            invalid,
            &["radius 2000000 m is not allowed", "at most 1000000 m"],
        ),
        (
            "NaN centre",
            Search::Geo(geo(vec![circle(f64::NAN, -2.58, 100.0)])),
            invalid,
            &["area 1", "latitude NaN is out of range"],
        ),
        (
            "latitude out of range",
            Search::Geo(geo(vec![circle(95.0, -2.58, 100.0)])),
            invalid,
            &["latitude 95 is out of range"],
        ),
        (
            "longitude out of range",
            Search::Geo(geo(vec![circle(51.46, 200.0, 100.0)])),
            invalid,
            &["longitude 200 is out of range"],
        ),
        (
            "second area bad",
            Search::Geo(geo(vec![
                circle(51.46, -2.58, 100.0),
                circle(51.46, -2.58, -1.0),
            ])),
            invalid,
            &["area 2", "radius -1 m"],
        ),
        (
            "inverted area window",
            Search::Geo(geo(vec![inverted(circle(51.46, -2.58, 100.0))])),
            invalid,
            &["area 1", "the window is inverted"],
        ),
        (
            "area window missing",
            Search::Geo(geo(vec![pb::Area {
                from: None,
                ..circle(51.46, -2.58, 100.0)
            }])),
            invalid,
            &["area 1: from is required"],
        ),
        (
            "area window too long",
            Search::Geo(geo(vec![pb::Area {
                from: t(-40 * 24 * 3600),
                ..circle(51.46, -2.58, 100.0)
            }])),
            broad,
            &["area 1", "over this node's cap of 744 hours"],
        ),
        (
            "no areas",
            Search::Geo(geo(vec![])),
            invalid,
            &["at least one area"],
        ),
        (
            "unknown match mode",
            Search::Geo(pb::GeoSearchRequest {
                r#match: 7,
                ..geo(vec![circle(51.46, -2.58, 100.0)])
            }),
            invalid,
            &["match 7 is unknown"],
        ),
        (
            "polygon that is not WKT or GeoJSON",
            Search::Geo(geo(vec![polygon("POLYGON((garbage))")])),
            invalid,
            &["area 1", "polygon"],
        ),
        (
            "polygon with two vertices",
            Search::Geo(geo(vec![polygon(
                "POLYGON((-2.6 51.4, -2.5 51.5, -2.6 51.4))",
            )])),
            invalid,
            &["area 1", "polygon", "at least 3 distinct vertices"],
        ),
        (
            "polygon vertex out of range",
            Search::Geo(geo(vec![polygon(
                "POLYGON((-2.6 51.4, -2.5 95, -2.4 51.4, -2.6 51.4))",
            )])),
            invalid,
            &["area 1", "latitude 95"],
        ),
        (
            "limit over the node's maximum",
            Search::Geo(pb::GeoSearchRequest {
                limit: 2_000_000,
                ..geo(vec![circle(51.46, -2.58, 100.0)])
            }),
            invalid,
            &["limit 2000000 is above this node's maximum of 1000000"],
        ),
        // VRM searches: patterns, fuzziness, windows.
        (
            "only wildcards",
            Search::Vrm(vrm_search("**")),
            invalid,
            &["pattern", "has no letters or digits"],
        ),
        (
            "only one-character wildcards",
            Search::Vrm(vrm_search("???")),
            invalid,
            &["pattern", "has no letters or digits"],
        ),
        (
            "illegal character in a pattern",
            Search::Vrm(vrm_search("AB1?£*")),
            invalid,
            &["pattern has character '£' at position 5"],
        ),
        (
            "markup in a pattern",
            Search::Vrm(vrm_search("AB12<script>*")),
            invalid,
            &["pattern has character '<' at position 5"],
        ),
        (
            "formula in a pattern",
            Search::Vrm(vrm_search("AB1?=CDE")),
            invalid,
            &["pattern has character '=' at position 5"],
        ),
        (
            "empty pattern",
            Search::Vrm(vrm_search(" ")),
            invalid,
            &["pattern is empty"],
        ),
        (
            "pattern too long",
            Search::Vrm(vrm_search("ABCDEFGHJKLMNPQR*")),
            invalid,
            &["pattern is too long: 16 characters"],
        ),
        (
            "fuzzy wildcard",
            Search::Vrm(pb::VrmSearchRequest {
                fuzzy: true,
                ..vrm_search("AB1*")
            }),
            invalid,
            &["wildcard pattern cannot also be fuzzy"],
        ),
        (
            "max_edits over 2",
            Search::Vrm(pb::VrmSearchRequest {
                fuzzy: true,
                max_edits: Some(3),
                ..vrm_search("AB12CDE")
            }),
            invalid,
            &["max_edits 3 is too many: 0 to 2"],
        ),
        (
            "bad confusable group",
            Search::Vrm(pb::VrmSearchRequest {
                fuzzy: true,
                confusable_groups: vec!["0O".into(), "O8".into()],
                ..vrm_search("AB12CDE")
            }),
            invalid,
            &["confusable group", "is invalid"],
        ),
        (
            "inverted VRM search window",
            Search::Vrm(pb::VrmSearchRequest {
                from: t(0),
                to: t(-3600),
                ..vrm_search("AB12CDE")
            }),
            invalid,
            &["the window is inverted"],
        ),
        // Timelines.
        (
            "empty VRM",
            Search::Timeline(timeline_req("")),
            invalid,
            &["vrm: VRM is empty"],
        ),
        (
            "illegal VRM",
            Search::Timeline(timeline_req("AB12€")),
            invalid,
            &["vrm: VRM has character '€' at position 5"],
        ),
        (
            "markup in a timeline VRM",
            Search::Timeline(timeline_req("AB12<script>")),
            invalid,
            &["vrm: VRM has character '<' at position 5"],
        ),
        (
            "zero-width space in a timeline VRM",
            Search::Timeline(timeline_req("AB\u{200b}12CDE")),
            invalid,
            &["vrm: VRM has character '\\u{200b}' at position 3"],
        ),
        (
            "wildcard in a timeline",
            Search::Timeline(timeline_req("AB12*")),
            invalid,
            &["vrm: wildcard at position 5", "use a VRM search"],
        ),
        (
            "inverted timeline window",
            Search::Timeline(pb::VrmTimelineRequest {
                from: t(0),
                to: t(-3600),
                ..timeline_req("AB12CDE")
            }),
            invalid,
            &["the window is inverted"],
        ),
        (
            "timeline window before 1970",
            Search::Timeline(pb::VrmTimelineRequest {
                from: {
                    let mut x = nadc_proto::to_pb_time(now());
                    x.seconds = -1;
                    Some(x)
                },
                ..timeline_req("AB12CDE")
            }),
            invalid,
            &["from is outside 1970-01-01 to 9999-12-31"],
        ),
        (
            "timeline limit over the maximum",
            Search::Timeline(pb::VrmTimelineRequest {
                limit: 1_000_001,
                ..timeline_req("AB12CDE")
            }),
            invalid,
            &["limit 1000001 is above"],
        ),
        // Vehicle searches.
        (
            "vehicle search without details",
            Search::Vehicle(pb::VehicleSearchRequest {
                from: t(-3600),
                to: t(0),
                access: access(),
                ..Default::default()
            }),
            invalid,
            &["at least one of make, model or colour"],
        ),
        (
            "vehicle search without a window or area",
            Search::Vehicle(pb::VehicleSearchRequest {
                make: Some("Ford".into()),
                access: access(),
                ..Default::default()
            }),
            invalid,
            &["from (needed when no area is given) is required"],
        ),
        (
            "inverted vehicle window",
            Search::Vehicle(pb::VehicleSearchRequest {
                make: Some("Ford".into()),
                from: t(0),
                to: t(-3600),
                access: access(),
                ..Default::default()
            }),
            invalid,
            &["vehicle search: the window is inverted"],
        ),
        // Camera searches.
        (
            "no cameras",
            Search::Camera(pb::CameraSearchRequest {
                cameras: vec![],
                ..camera_req("AVON", "C1")
            }),
            invalid,
            &["at least one camera"],
        ),
        (
            "empty camera id",
            Search::Camera(camera_req("AVON", "")),
            invalid,
            &["camera_id \"\" is invalid"],
        ),
        (
            "bad force code",
            Search::Camera(camera_req("av on!", "C1")),
            invalid,
            &["camera \"C1\""],
        ),
        (
            "inverted camera window",
            Search::Camera(pb::CameraSearchRequest {
                from: t(0),
                to: t(-3600),
                ..camera_req("AVON", "C1")
            }),
            invalid,
            &["camera search: the window is inverted"],
        ),
        (
            "camera window missing",
            Search::Camera(pb::CameraSearchRequest {
                to: None,
                ..camera_req("AVON", "C1")
            }),
            invalid,
            &["to is required"],
        ),
        // The access context every search needs.
        (
            "no purpose",
            Search::Timeline(pb::VrmTimelineRequest {
                access: None,
                ..timeline_req("AB12CDE")
            }),
            invalid,
            &["purpose"],
        ),
    ];
    let mut failures = Vec::new();
    for (name, search, code, words) in cases {
        let Some(e) = refusal(&h, search).await else {
            failures.push(format!("{name}: accepted; want {code:?} with {words:?}"));
            continue;
        };
        if e.code() != code || !words.iter().all(|w| e.message().contains(w)) {
            failures.push(format!(
                "{name}: got {:?} {:?}; want {code:?} with {words:?}",
                e.code(),
                e.message()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The same node still answers a good search.
    assert_eq!(read_ids(&timeline(&h, "AB12CDE").await), ["s1"]);
}

fn run(args: &[&str], env: &[(&str, PathBuf)], url: &str) -> Output {
    support::process::nadc(args, env, url, "OP-BAD-INPUT")
}
