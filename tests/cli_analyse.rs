//! `nadc analyse` end to end, as separate processes: a node started with
//! `nadc serve`, cameras and reads pushed with the CLI, then the alibi and
//! journey checks, hot spots, camera health, a subject profile and an
//! associate network in their output formats,
//! each parsed back by a real parser (csv, geojson, serde_json).

use std::path::PathBuf;
use std::process::Output;

mod support;
use support::process::{Server, identity, pki_init};

fn run(args: &[&str], env: &[(&str, PathBuf)], url: &str) -> Output {
    support::process::nadc(args, env, url, "OP-ANALYSE")
}

/// RFC 3339 for `mins` minutes ago, to the second.
fn minutes_ago(mins: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::minutes(mins))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// The UK calendar date of an RFC 3339 time: GMT, or BST (UTC+1) from
/// 01:00 UTC on the last Sunday of March to 01:00 UTC on the last Sunday
/// of October (written here apart from nadc-core's own).
fn uk_date(t: &str) -> chrono::NaiveDate {
    use chrono::{Datelike, TimeZone};
    let t = chrono::DateTime::parse_from_rfc3339(t)
        .unwrap()
        .with_timezone(&chrono::Utc);
    let last_sunday = |month: u32| {
        let mut d = chrono::NaiveDate::from_ymd_opt(t.year(), month, 31).unwrap();
        while d.weekday() != chrono::Weekday::Sun {
            d = d.pred_opt().unwrap();
        }
        chrono::Utc.from_utc_datetime(&d.and_hms_opt(1, 0, 0).unwrap())
    };
    let summer = t >= last_sunday(3) && t < last_sunday(10);
    (t + chrono::Duration::hours(i64::from(summer))).date_naive()
}

fn geojson(out: &Output) -> geojson::FeatureCollection {
    String::from_utf8_lossy(&out.stdout)
        .parse::<geojson::GeoJson>()
        .unwrap()
        .try_into()
        .unwrap()
}

fn kinds(fc: &geojson::FeatureCollection, kind: &str) -> Vec<geojson::Feature> {
    fc.features
        .iter()
        .filter(|f| f.property("kind").and_then(|k| k.as_str()) == Some(kind))
        .cloned()
        .collect()
}

#[test]
fn every_analysis_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    pki_init(&pki, "AVON", "alice:analyst:AVON");
    let server = Server::start(dir.path());
    let avon = identity(&pki, "bofs", "AVON");
    let alice = identity(&pki, "users", "alice");

    // Two cameras 11 km apart (Bristol, Keynsham), and a third near Bath.
    let cameras = dir.path().join("cameras.csv");
    std::fs::write(
        &cameras,
        "camera_id,lat,lon,bearing,kind,lanes,description\n\
         BRS,51.4545,-2.5879,,fixed,2,\n\
         KEY,51.4140,-2.4960,,fixed,2,\n\
         BATH,51.3811,-2.3590,,fixed,2,\n",
    )
    .unwrap();
    run(
        &["cameras", "import", cameras.to_str().unwrap()],
        &avon,
        &server.url,
    );
    // The subject at Bristol 60 minutes ago and at Keynsham 50 minutes
    // ago; other traffic at Bath every 5 minutes for the last 90.
    // The subject's read times, kept: the journey claims them exactly.
    let (at60, at50) = (minutes_ago(60), minutes_ago(50));
    let reads = dir.path().join("reads.csv");
    let mut csv = String::from(
        "read_id,vrm,observed_at,camera_id,lat,lon,bearing,lane,confidence,make,model,colour\n",
    );
    csv += &format!("s1,AB51XYZ,{at60},BRS,,,,,,,,\n");
    csv += &format!("s2,AB51XYZ,{at50},KEY,,,,,,,,\n");
    // A vehicle travelling with it at both cameras.
    csv += &format!("c1,CO50NVY,{at60},BRS,,,,,,,,\n");
    csv += &format!("c2,CO50NVY,{at50},KEY,,,,,,,,\n");
    for k in 0..18 {
        csv += &format!("t{k},TR4FF1C,{},BATH,,,,,,,,\n", minutes_ago(90 - 5 * k));
    }
    std::fs::write(&reads, csv).unwrap();
    let out = run(&["push", reads.to_str().unwrap()], &avon, &server.url);
    assert!(out.status.success());

    // Alibi: at Bath 55 minutes ago? From Bristol (60) to Keynsham (50)
    // via Bath is over 25 km in 10 minutes: not possible at 100 km/h.
    let at_bath = [
        "analyse",
        "alibi",
        "AB51XYZ",
        "--at",
        "51.3811,-2.3590",
        "--radius",
        "300",
        "--from",
        &minutes_ago(56),
        "--to",
        &minutes_ago(54),
        "--max-speed",
        "100",
    ];
    let table = run(&at_bath, &alice, &server.url);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains("NOT POSSIBLE"), "{text}");
    assert!(text.contains("camera AVON/BATH: working"), "{text}");
    assert!(text.contains("does not exclude presence"), "{text}");
    let mut args = at_bath.to_vec();
    args.extend(["--format", "geojson"]);
    let fc = geojson(&run(&args, &alice, &server.url));
    let claims = kinds(&fc, "claim");
    assert_eq!(claims.len(), 1);
    assert_eq!(
        claims[0].property("verdict").and_then(|v| v.as_str()),
        Some("not possible")
    );
    assert_eq!(kinds(&fc, "read").len(), 2);
    assert_eq!(kinds(&fc, "route").len(), 1);
    assert_eq!(kinds(&fc, "camera").len(), 1);

    // Journey: Bristol then Keynsham (as read), then Bath 40 minutes ago
    // (12 km in 10 minutes: possible at 100 km/h? no, 72 km/h needed: yes).
    let route = dir.path().join("route.csv");
    std::fs::write(
        &route,
        format!(
            "label,lat,lon,from,to,radius_m\n\
             home,51.4545,-2.5879,{},,300\n\
             keynsham,51.4140,-2.4960,{},,300\n\
             bath,51.3811,-2.3590,{},{},300\n",
            at60,
            at50,
            minutes_ago(41),
            minutes_ago(39),
        ),
    )
    .unwrap();
    let out = run(
        &[
            "analyse",
            "journey",
            "AB51XYZ",
            "--route",
            route.to_str().unwrap(),
            "--max-speed",
            "100",
            "--format",
            "csv",
        ],
        &alice,
        &server.url,
    );
    let mut r = csv::Reader::from_reader(out.stdout.as_slice());
    let header = r.headers().unwrap().clone();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let rows: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
    let verdicts: Vec<(&str, &str)> = rows
        .iter()
        .map(|row| (&row[col("label")], &row[col("verdict")]))
        .collect();
    assert_eq!(
        verdicts,
        [
            ("home", "seen there"),
            ("keynsham", "seen there"),
            ("bath", "possible unseen"),
        ]
    );
    let out = run(
        &[
            "analyse",
            "journey",
            "AB51XYZ",
            "--route",
            route.to_str().unwrap(),
            "--max-speed",
            "100",
            "--format",
            "ndjson",
        ],
        &alice,
        &server.url,
    );
    let legs: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["kind"] == "leg")
        .collect();
    assert_eq!(legs.len(), 2);
    assert!(legs.iter().all(|l| l["possible"] == true), "{legs:?}");

    // Hot spots of the subject as GeoJSON hexagons; camera health as CSV.
    let fc = geojson(&run(
        &[
            "analyse",
            "hotspots",
            "AB51XYZ",
            "--from",
            &minutes_ago(120),
            "--to",
            &minutes_ago(0),
            "--format",
            "geojson",
        ],
        &alice,
        &server.url,
    ));
    let counted: u64 = fc
        .features
        .iter()
        .map(|f| f.property("count").and_then(|c| c.as_u64()).unwrap())
        .sum();
    assert_eq!(counted, 2);
    let out = run(
        &[
            "analyse",
            "cameras",
            "--from",
            &minutes_ago(120),
            "--to",
            &minutes_ago(0),
            "--baseline-days",
            "7",
            "--format",
            "csv",
        ],
        &alice,
        &server.url,
    );
    let mut r = csv::Reader::from_reader(out.stdout.as_slice());
    assert_eq!(r.records().count(), 3);
    let out = run(
        &[
            "analyse",
            "cameras",
            "--from",
            &minutes_ago(120),
            "--to",
            &minutes_ago(0),
            "--baseline-days",
            "7",
            "--format",
            "geojson",
        ],
        &alice,
        &server.url,
    );
    let fc = geojson(&out);
    assert_eq!(fc.features.len(), 3);
    assert!(fc.features.iter().all(|f| f.property("status").is_some()));

    // A profile of the subject's two reads (one day): two places, one
    // journey between them, neither usual, both reads outliers.
    let profile = |format: &str| {
        run(
            &[
                "analyse",
                "profile",
                "AB51XYZ",
                "--from",
                &minutes_ago(120),
                "--to",
                &minutes_ago(0),
                "--format",
                format,
            ],
            &alice,
            &server.url,
        )
    };
    let out = profile("csv");
    let mut r = csv::Reader::from_reader(out.stdout.as_slice());
    let kinds_seen: Vec<String> = r.records().map(|row| row.unwrap()[0].to_string()).collect();
    assert_eq!(
        kinds_seen,
        ["location", "location", "journey", "outlier", "outlier"]
    );
    let fc = geojson(&profile("geojson"));
    assert_eq!(kinds(&fc, "location").len(), 2);
    assert_eq!(kinds(&fc, "journey").len(), 1);
    assert_eq!(kinds(&fc, "read").len(), 2);
    let text = String::from_utf8_lossy(&profile("table").stdout).to_string();
    // The two reads are 10 minutes apart: on two UK days when midnight
    // falls between them.
    let days = if uk_date(&at60) == uk_date(&at50) {
        1
    } else {
        2
    };
    assert!(
        text.contains(&format!("2 read(s) on {days} day(s)")),
        "{text}"
    );
    assert!(text.contains("tracks a vehicle, not a person"), "{text}");

    // Its associate network: GraphML and the CSV edge list, parsed back.
    let network = |format: &str| {
        run(
            &[
                "analyse",
                "network",
                "AB51XYZ",
                "--from",
                &minutes_ago(120),
                "--to",
                &minutes_ago(0),
                "--format",
                format,
            ],
            &alice,
            &server.url,
        )
    };
    let graphml = network("graphml").stdout;
    let mut reader = quick_xml::Reader::from_reader(graphml.as_slice());
    let (mut nodes, mut edges) = (Vec::new(), Vec::new());
    let mut buf = Vec::new();
    loop {
        match reader.read_event_into(&mut buf).unwrap() {
            quick_xml::events::Event::Start(e) | quick_xml::events::Event::Empty(e) => {
                let attr = |name: &[u8]| {
                    e.attributes()
                        .map(Result::unwrap)
                        .find(|a| a.key.as_ref() == name)
                        .map(|a| String::from_utf8(a.value.to_vec()).unwrap())
                };
                match e.name().as_ref() {
                    b"node" => nodes.push(attr(b"id").unwrap()),
                    b"edge" => edges.push((attr(b"source").unwrap(), attr(b"target").unwrap())),
                    _ => {}
                }
            }
            quick_xml::events::Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    nodes.sort();
    assert_eq!(nodes, ["AB51XYZ", "CO50NVY"]);
    assert_eq!(edges, [("AB51XYZ".to_string(), "CO50NVY".to_string())]);
    let out = network("edges-csv");
    let mut r = csv::Reader::from_reader(out.stdout.as_slice());
    let rows: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 1);
    assert_eq!(&rows[0][2], "2", "co-occurrences");

    // Crime pattern: incidents at Bristol and Keynsham when the subject and
    // its companion passed; both were near both.
    let incidents = dir.path().join("incidents.csv");
    std::fs::write(
        &incidents,
        format!(
            "reference,type,time,lat,lon\nCR/1,robbery,{at60},51.4545,-2.5879\n\
             CR/2,robbery,{at50},51.4140,-2.4960\n"
        ),
    )
    .unwrap();
    let pattern = |format: &str| {
        run(
            &[
                "analyse",
                "pattern",
                "--incidents",
                incidents.to_str().unwrap(),
                "--radius",
                "300",
                "--window-minutes",
                "5",
                "--format",
                format,
            ],
            &alice,
            &server.url,
        )
    };
    let out = pattern("csv");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut r = csv::Reader::from_reader(out.stdout.as_slice());
    let rows: Vec<(String, String)> = r
        .records()
        .map(|x| {
            let x = x.unwrap();
            (x[1].to_string(), x[3].to_string())
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("AB51XYZ".to_string(), "CR/1".to_string()),
            ("AB51XYZ".to_string(), "CR/2".to_string()),
            ("CO50NVY".to_string(), "CR/1".to_string()),
            ("CO50NVY".to_string(), "CR/2".to_string()),
        ]
    );
    let fc = geojson(&pattern("geojson"));
    assert_eq!(kinds(&fc, "incident").len(), 2);
    assert_eq!(kinds(&fc, "read").len(), 4);

    // Camera sites: three incidents far from every camera, and a road
    // through them.
    let far = dir.path().join("far.csv");
    std::fs::write(
        &far,
        format!("time,lat,lon\n{at60},51.5,-2.7\n{at60},51.5,-2.7\n{at50},51.5,-2.7\n"),
    )
    .unwrap();
    let roads = dir.path().join("roads.geojson");
    std::fs::write(
        &roads,
        r#"{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"name":"B4055"},"geometry":{"type":"LineString","coordinates":[[-2.75,51.5],[-2.65,51.5]]}}]}"#,
    )
    .unwrap();
    let out = run(
        &[
            "analyse",
            "sites",
            "--incidents",
            far.to_str().unwrap(),
            "--roads",
            roads.to_str().unwrap(),
            "--format",
            "geojson",
        ],
        &alice,
        &server.url,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fc = geojson(&out);
    assert_eq!(kinds(&fc, "hot cell").len(), 1);
    let sites = kinds(&fc, "site");
    assert!(sites.len() >= 2, "{sites:?}");
    assert_eq!(
        sites[0].property("site").and_then(|v| v.as_str()),
        Some("hot cell")
    );
    assert!(
        sites[1..]
            .iter()
            .all(|s| s.property("road").and_then(|v| v.as_str()) == Some("B4055"))
    );

    // Results and the transparency report, as CSV.
    let out = run(
        &[
            "analyse",
            "results",
            "--from",
            &minutes_ago(24 * 60),
            "--to",
            &minutes_ago(0),
            "--format",
            "csv",
        ],
        &alice,
        &server.url,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut r = csv::Reader::from_reader(out.stdout.as_slice());
    let ops: Vec<csv::StringRecord> = r
        .records()
        .map(Result::unwrap)
        .filter(|x| &x[0] == "operation")
        .collect();
    assert_eq!(ops.len(), 1, "{ops:?}");
    assert_eq!(&ops[0][1], "OP-ANALYSE");
    assert!(ops[0][14].parse::<u64>().unwrap() >= 8, "{ops:?}");
    // Only closed months are reported (tests/results.rs): the last one,
    // with no reads, is written as CSV with its header.
    let last = (chrono::Utc::now() - chrono::Duration::days(40))
        .format("%Y-%m")
        .to_string();
    let report = |from: &str, to: &str| {
        run(
            &[
                "analyse",
                "transparency",
                "--from-month",
                from,
                "--to-month",
                to,
                "--min-count",
                "5",
                "--format",
                "csv",
            ],
            &alice,
            &server.url,
        )
    };
    let out = report(&last, &last);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut r = csv::Reader::from_reader(out.stdout.as_slice());
    assert_eq!(
        r.headers().unwrap().iter().collect::<Vec<_>>(),
        ["force", "month", "measure", "value"]
    );
    server.stop();
}
