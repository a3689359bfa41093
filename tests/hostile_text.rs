//! Input is data, never markup or formulas, end to end against real nodes:
//!
//! - a raw VRM with a character never on a plate is refused naming the
//!   character and its position, at ingest (`nadc push`), in hotlist
//!   entries, and the good rows beside it are kept;
//! - markup and formulas a BOF puts in vehicle details are stored as sent
//!   and neutralised where `nadc search` writes them for a spreadsheet
//!   (CSV: a leading `'`), for Google Earth (KML: no XML or HTML markup)
//!   and for a terminal.
//!
//! The oracles are the formats' own parsers (the csv crate, quick-xml),
//! not the code under test.

mod support;

use std::path::PathBuf;
use std::process::Output;

use nadc_bof::pb;
use support::process::{Server, identity, pki_init};
use support::{Harness, now};

fn run(args: &[&str], env: &[(&str, PathBuf)], url: &str) -> Output {
    support::process::nadc(args, env, url, "OP-HOSTILE")
}

const MAKE: &str = "=HYPERLINK(\"http://x\")";
const COLOUR: &str = "<b>red</b>";
const IMAGE: &str = "]]><script>alert(1)</script>&x=1";

/// Text of the KML `kml` as a reader gets it, and the elements in it.
fn kml_text_and_elements(kml: &str) -> (String, Vec<String>) {
    let mut reader = quick_xml::Reader::from_str(kml);
    let (mut text, mut elements) = (String::new(), Vec::new());
    loop {
        match reader.read_event().expect("well-formed XML") {
            quick_xml::events::Event::Start(e) => {
                elements.push(String::from_utf8_lossy(e.name().as_ref()).into_owned())
            }
            quick_xml::events::Event::Text(t) => text.push_str(&t.decode().unwrap()),
            quick_xml::events::Event::GeneralRef(r) => {
                text.push_str(match r.decode().unwrap().as_ref() {
                    "lt" => "<",
                    "gt" => ">",
                    "amp" => "&",
                    "quot" => "\"",
                    "apos" => "'",
                    other => panic!("unexpected entity {other}"),
                })
            }
            quick_xml::events::Event::Eof => break,
            _ => {}
        }
    }
    (text, elements)
}

#[test]
fn nadc_refuses_markup_plates_and_neutralises_hostile_details_in_csv_kml_and_tables() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    pki_init(&pki, "AVON", "alice:analyst:AVON");
    let server = Server::start(dir.path());
    let (avon, alice) = (
        identity(&pki, "bofs", "AVON"),
        identity(&pki, "users", "alice"),
    );
    // A camera description with a terminal escape is refused; a camera id
    // that is a formula is stored and neutralised by `cameras list`.
    let cameras = dir.path().join("cameras.csv");
    std::fs::write(
        &cameras,
        "camera_id,lat,lon,bearing,kind,lanes,description\n\
         CAM1,51.47,-2.56,45,fixed,2,M32 <b>junction</b> 1\n\
         CAM2,51.47,-2.56,45,fixed,2,M32 \u{1b}[2J\n\
         \"=1+1,x\",51.47,-2.56,45,fixed,2,\n",
    )
    .unwrap();
    let out = run(
        &["cameras", "import", cameras.to_str().unwrap()],
        &avon,
        &server.url,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("stored 2 cameras, rejected 1"), "{stdout}");
    assert!(
        stdout.contains("\"CAM2\"")
            && stdout.contains("description contains control characters: '\\u{1b}' at position 5"),
        "{stdout}"
    );
    let out = run(&["cameras", "list"], &avon, &server.url);
    let mut rdr = csv::Reader::from_reader(out.stdout.as_slice());
    let ids: Vec<String> = rdr.records().map(|r| r.unwrap()[1].to_string()).collect();
    assert!(ids.contains(&"'=1+1,x".to_string()), "{ids:?}");

    let t = (chrono::Utc::now() - chrono::Duration::hours(1))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let csv_cell = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    let reads = [
        format!(
            "h1,AB12 CDE,{t},CAM1,,,,,,{},Focus,{},{}",
            csv_cell(MAKE),
            csv_cell(COLOUR),
            csv_cell(IMAGE)
        ),
        format!("h2,AB12<script>,{t},CAM1,,,,,,,,,"),
        format!("h3,AB12=CDE,{t},CAM1,,,,,,,,,"),
        format!("h4,AB12\u{200b}CDE,{t},CAM1,,,,,,,,,"),
        format!("h5,AB-12.CDE,{t},CAM1,,,,,,,,,"),
    ];
    let file = dir.path().join("reads.csv");
    std::fs::write(
        &file,
        "read_id,vrm,observed_at,camera_id,lat,lon,bearing,lane,confidence,make,model,colour,patch_image_ref\n"
            .to_string()
            + &reads.join("\n")
            + "\n",
    )
    .unwrap();
    let out = run(&["push", file.to_str().unwrap()], &avon, &server.url);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("accepted 2, duplicates 0, rejected 3"),
        "{stdout}"
    );
    for (id, what) in [
        ("h2", "VRM has character '<' at position 5"),
        ("h3", "VRM has character '=' at position 5"),
        ("h4", "VRM has character '\\u{200b}' at position 5"),
    ] {
        let line = stdout
            .lines()
            .find(|l| l.contains(&format!("read_id \"{id}\"")))
            .unwrap_or_else(|| panic!("{id} not reported: {stdout}"));
        assert!(
            line.contains("invalid_vrm") && line.contains(what),
            "{line}"
        );
    }
    // The refused VRMs made no plate: AB12SCRIPT was never stored.
    let out = run(
        &["search", "vrm", "AB12SCRIPT", "--format", "ndjson"],
        &alice,
        &server.url,
    );
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // CSV: the formula is text, the markup is inert text, numbers stay numbers.
    let out = run(
        &["search", "vrm", "AB12CDE", "--format", "csv"],
        &alice,
        &server.url,
    );
    let mut rdr = csv::Reader::from_reader(out.stdout.as_slice());
    let header = rdr.headers().unwrap().clone();
    let rows: Vec<csv::StringRecord> = rdr.records().map(Result::unwrap).collect();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    assert_eq!(rows.len(), 2);
    let h1 = rows
        .iter()
        .find(|r| &r[col("bof_read_id")] == "h1")
        .unwrap();
    assert_eq!(&h1[col("make")], format!("'{MAKE}"));
    assert_eq!(&h1[col("colour")], COLOUR);
    assert_eq!(&h1[col("patch_image_ref")], IMAGE);
    assert_eq!(&h1[col("lon")], "-2.560000", "a negative number is kept");
    let h5 = rows
        .iter()
        .find(|r| &r[col("bof_read_id")] == "h5")
        .unwrap();
    assert_eq!(&h5[col("vrm_raw")], "AB-12.CDE");
    // No cell of the file, as a spreadsheet splits it on ',' or ';',
    // starts with '=' outside quotes.
    let text = String::from_utf8_lossy(&out.stdout);
    for cell in text.lines().flat_map(|l| l.split([',', ';'])) {
        assert!(!cell.starts_with('='), "{cell:?} in {text}");
    }
    assert!(!text.contains("\"=HYPERLINK"), "{text}");

    // KML: well formed, only the writer's elements, and no markup in the
    // text a reader (Google Earth's HTML balloons included) gets.
    let out = run(
        &["search", "vrm", "AB12CDE", "--format", "kml"],
        &alice,
        &server.url,
    );
    let kml = String::from_utf8(out.stdout).unwrap();
    let (text, elements) = kml_text_and_elements(&kml);
    for e in ["b", "script"] {
        assert!(!elements.iter().any(|x| x == e), "<{e}> element: {kml}");
    }
    assert!(!text.contains('<'), "{text}");
    assert!(text.contains("&lt;b&gt;red&lt;/b&gt;"), "{text}");
    assert!(
        text.contains("]]&gt;&lt;script&gt;alert(1)&lt;/script&gt;&x=1"),
        "{text}"
    );
    assert!(text.contains(MAKE), "{text}");

    // The terminal table shows the details as text.
    let out = run(&["search", "vrm", "AB12CDE"], &alice, &server.url);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains(&format!("{MAKE} Focus {COLOUR}")), "{table}");
    server.stop();
}

fn entry(vrm: &str) -> pb::HotlistEntry {
    pb::HotlistEntry {
        vrm: vrm.into(),
        reason: "wanted".into(),
        intel_ref: "INT/1".into(),
        action: pb::Action::Stop as i32,
        expires_at: Some(nadc_proto::to_pb_time(now().plus_millis(3_600_000))),
        ..Default::default()
    }
}

#[tokio::test]
async fn hotlist_entries_with_characters_never_on_a_plate_are_refused_naming_them() {
    let h = Harness::start().await;
    let mut c = pb::hotlists_client::HotlistsClient::new(h.user("harry").await);
    c.create_hotlist(pb::CreateHotlistRequest {
        name: "wanted".into(),
        purpose: "serious crime".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let r = c
        .add_entries(pb::AddEntriesRequest {
            list: Some(pb::HotlistRef {
                owner: String::new(),
                name: "wanted".into(),
            }),
            entries: vec![
                entry("AB12<script>"),
                entry("TG11 TGT"),
                entry("AB12=CDE"),
                entry("AB\u{410}12"),
                entry("XY-99.ZZZ"),
            ],
            look_back_days: 0,
            access: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.stored, 2, "{:?}", r.rejected);
    let got: Vec<(u32, &str, &str)> = r
        .rejected
        .iter()
        .map(|x| (x.index, x.field.as_str(), x.message.as_str()))
        .collect();
    assert_eq!(got.len(), 3, "{got:?}");
    for ((index, field, message), (want_index, want)) in got.iter().zip([
        (0, "VRM has character '<' at position 5"),
        (2, "VRM has character '=' at position 5"),
        (3, "VRM has character '\u{410}' at position 3"),
    ]) {
        assert_eq!((*index, *field), (want_index, "vrm"), "{message}");
        assert!(message.contains(want), "{message:?} lacks {want:?}");
    }
    // Exactly the good entries are on the list, normalised.
    let listed = c
        .get_hotlist(pb::HotlistRef {
            owner: String::new(),
            name: "wanted".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut vrms: Vec<&str> = listed.entries.iter().map(|e| e.vrm.as_str()).collect();
    vrms.sort();
    assert_eq!(vrms, ["TG11TGT", "XY99ZZZ"]);
}
