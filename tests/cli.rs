//! The `nadc` binary end to end, as separate processes: `pki init`, `serve`
//! (stopped with SIGTERM and started again), `cameras import`, `push` of a
//! CSV with a malformed row, and `search vrm` in every output format, each
//! parsed back by a real parser. The node is killed with SIGKILL after
//! acknowledging reads and must still hold them when started again.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const NADC: &str = env!("CARGO_BIN_EXE_nadc");

mod support;
use support::process::{Server, identity, pki_init};

fn run(args: &[&str], env: &[(&str, PathBuf)], url: &str) -> Output {
    support::process::nadc(args, env, url, "OP-CLI")
}

#[test]
fn the_binary_serves_pushes_and_searches_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    pki_init(&pki, "AVON,KENT", "alice:analyst:AVON");
    for f in [
        "ca.crt",
        "nodes/node-1.crt",
        "nodes/node-1.key",
        "bofs/AVON.crt",
        "bofs/KENT.key",
        "users/alice.crt",
    ] {
        assert!(pki.join(f).exists(), "{f} missing");
    }

    let server = Server::start(dir.path());
    let avon = identity(&pki, "bofs", "AVON");
    let alice = identity(&pki, "users", "alice");

    let cameras = dir.path().join("cameras.csv");
    std::fs::write(
        &cameras,
        "camera_id,lat,lon,bearing,kind,lanes,description\nM32-J1,51.4700,-2.5600,45,fixed,3,M32 junction 1\nA4-BATH,51.3900,-2.3700,270,fixed,2,\n",
    )
    .unwrap();
    let out = run(
        &["cameras", "import", cameras.to_str().unwrap()],
        &avon,
        &server.url,
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("stored 2 cameras"));

    let reads = dir.path().join("reads.csv");
    let mut f = std::fs::File::create(&reads).unwrap();
    writeln!(
        f,
        "read_id,vrm,observed_at,camera_id,lat,lon,bearing,lane,confidence,make,model,colour"
    )
    .unwrap();
    writeln!(
        f,
        "r1,AB12 CDE,2026-11-23T08:00:00Z,M32-J1,,,45,1,91,Ford,Focus,Blue"
    )
    .unwrap();
    writeln!(f, "r2,AB12CDE,2026-11-23T09:30:00+01:00,A4-BATH,,,,,,,,").unwrap();
    writeln!(f, "r3,AB12CDE,not-a-time,A4-BATH,,,,,,,,").unwrap();
    writeln!(f, "r4,AB12CD€,2026-11-23T08:45:00Z,A4-BATH,,,,,,,,").unwrap();
    drop(f);
    // The push uses the system clock's retention window; these reads are
    // dated relative to the real "now" only loosely, so keep them recent.
    let now = chrono_now_minus_hours(20);
    let text = std::fs::read_to_string(&reads)
        .unwrap()
        .replace("2026-11-23T08", &format!("{now}T08"))
        .replace("2026-11-23T09", &format!("{now}T09"));
    std::fs::write(&reads, text).unwrap();
    let out = run(&["push", reads.to_str().unwrap()], &avon, &server.url);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("accepted 2, duplicates 0, rejected 1, malformed rows 1"),
        "{stdout}"
    );
    assert!(
        stdout.contains("line 4") && stdout.contains("observed_at"),
        "{stdout}"
    );
    assert!(stdout.contains("invalid_vrm"), "{stdout}");

    // Killed outright: every acknowledged read must still be there.
    server.kill();
    let server = Server::start(dir.path());

    // Pushing the same file again after the restart: duplicates only. In
    // batches of one read, each batch's acknowledgement latency logged.
    let acks = dir.path().join("acks.log");
    let out = run(
        &[
            "push",
            "--batch-size",
            "1",
            "--ack-log",
            acks.to_str().unwrap(),
            reads.to_str().unwrap(),
        ],
        &avon,
        &server.url,
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("accepted 0, duplicates 2"));
    let latencies: Vec<f64> = std::fs::read_to_string(&acks)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    // Three batches sent (the two good reads and the one with a bad VRM).
    assert_eq!(latencies.len(), 3, "{latencies:?}");
    assert!(latencies.iter().all(|ms| *ms > 0.0 && *ms < 60_000.0));

    let out = run(
        &["search", "vrm", "ab12 cde", "--format", "csv"],
        &alice,
        &server.url,
    );
    let mut rdr = csv::Reader::from_reader(out.stdout.as_slice());
    let headers = rdr.headers().unwrap().clone();
    let rows: Vec<csv::StringRecord> = rdr.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2);
    let col = |name: &str| headers.iter().position(|h| h == name).unwrap();
    assert_eq!(&rows[0][col("bof_read_id")], "r1");
    assert_eq!(&rows[1][col("bof_read_id")], "r2");
    assert_eq!(&rows[0][col("owning_force")], "AVON");
    assert_eq!(&rows[1][col("camera_id")], "A4-BATH");
    assert!(!rows[0][col("received_at")].is_empty());

    let out = run(
        &["search", "vrm", "AB12CDE", "--format", "ndjson"],
        &alice,
        &server.url,
    );
    let lines = ndjson(&out);
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["owning_force"], "AVON");
    assert!((lines[0]["lat"].as_f64().unwrap() - 51.47).abs() < 1e-9);

    let out = run(
        &["search", "vrm", "AB12CDE", "--format", "geojson"],
        &alice,
        &server.url,
    );
    let fc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(fc["type"], "FeatureCollection");
    let features = fc["features"].as_array().unwrap();
    assert_eq!(features.len(), 3, "two points and the route");
    assert_eq!(features[2]["geometry"]["type"], "LineString");
    assert_eq!(
        features[2]["geometry"]["coordinates"][0][0]
            .as_f64()
            .unwrap(),
        -2.56
    );

    let out = run(&["search", "vrm", "AB12CDE"], &alice, &server.url);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("2 rows") && table.contains("AVON 2"),
        "{table}"
    );

    // KML, read back with an XML parser: two placemarks and the route.
    let out = run(
        &["search", "vrm", "AB12CDE", "--format", "kml"],
        &alice,
        &server.url,
    );
    let kml = String::from_utf8(out.stdout).unwrap();
    let (mut placemarks, mut coordinates, mut data_names) = (0, Vec::new(), Vec::new());
    let mut reader = quick_xml::Reader::from_str(&kml);
    let mut in_coords = false;
    loop {
        match reader.read_event().unwrap() {
            quick_xml::events::Event::Start(e) if e.name().as_ref() == b"Placemark" => {
                placemarks += 1
            }
            quick_xml::events::Event::Start(e) if e.name().as_ref() == b"coordinates" => {
                in_coords = true
            }
            quick_xml::events::Event::Start(e) if e.name().as_ref() == b"Data" => {
                for a in e.attributes() {
                    data_names.push(String::from_utf8(a.unwrap().value.to_vec()).unwrap());
                }
            }
            quick_xml::events::Event::Text(t) if in_coords => {
                coordinates.push(t.decode().unwrap().into_owned());
                in_coords = false;
            }
            quick_xml::events::Event::Eof => break,
            _ => {}
        }
    }
    assert_eq!(placemarks, 3, "two reads and the route");
    assert_eq!(coordinates[0], "-2.56,51.47");
    assert!(
        coordinates[2].contains(' '),
        "the route is a line: {}",
        coordinates[2]
    );
    assert!(
        data_names.iter().any(|n| n == "owning_force")
            && data_names.iter().any(|n| n == "bof_read_id")
    );

    // Geographic search as GeoJSON, read back with a GeoJSON parser.
    let day = now;
    let area = format!("51.4700,-2.5600,200,{day}T00:00:00Z,{day}T23:59:59Z");
    let out = run(
        &["search", "geo", "--area", &area, "--format", "geojson"],
        &alice,
        &server.url,
    );
    let gj: geojson::GeoJson = String::from_utf8(out.stdout).unwrap().parse().unwrap();
    let geojson::GeoJson::FeatureCollection(fc) = gj else {
        panic!("not a FeatureCollection")
    };
    assert_eq!(fc.features.len(), 1, "only the M32 read is within 200 m");
    let props = fc.features[0].properties.as_ref().unwrap();
    assert_eq!(props["bof_read_id"], "r1");
    assert_eq!(props["areas"], "1");

    // The same place as a polygon (WKT), and a polygon that misses it.
    let square = |d: f64| {
        format!(
            "{day}T00:00:00Z,{day}T23:59:59Z,POLYGON(({w} {s}, {e} {s}, {e} {n}, {w} {n}, {w} {s}))",
            w = -2.56 - d,
            e = -2.56 + d,
            s = 51.47 - d,
            n = 51.47 + d
        )
    };
    let out = run(
        &[
            "search",
            "geo",
            "--polygon",
            &square(0.001),
            "--format",
            "ndjson",
        ],
        &alice,
        &server.url,
    );
    let lines = ndjson(&out);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["bof_read_id"], "r1");
    let off =
        format!("{day}T00:00:00Z,{day}T23:59:59Z,POLYGON((-2.50 51.40, -2.49 51.40, -2.49 51.41))");
    let out = run(
        &["search", "geo", "--polygon", &off, "--format", "ndjson"],
        &alice,
        &server.url,
    );
    assert!(out.stdout.is_empty());

    // Vehicle details (case-insensitive) as CSV; camera search as NDJSON.
    let from = format!("{day}T00:00:00Z");
    let to = format!("{day}T23:59:59Z");
    let out = run(
        &[
            "search", "vehicle", "--make", "FORD", "--colour", "blue", "--from", &from, "--to",
            &to, "--format", "csv",
        ],
        &alice,
        &server.url,
    );
    let rows: Vec<csv::StringRecord> = csv::Reader::from_reader(out.stdout.as_slice())
        .records()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows.len(), 1, "only r1 has make and colour");
    let out = run(
        &[
            "search",
            "camera",
            "AVON:A4-BATH",
            "--from",
            &from,
            "--to",
            &to,
            "--format",
            "ndjson",
        ],
        &alice,
        &server.url,
    );
    let lines = ndjson(&out);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["bof_read_id"], "r2");
    // Wildcard and fuzzy searches label how each row matched.
    let out = run(
        &["search", "vrm", "AB1?C*", "--format", "ndjson"],
        &alice,
        &server.url,
    );
    let lines = ndjson(&out);
    assert_eq!(lines.len(), 2);
    assert!(lines.iter().all(|l| l["match"] == "wildcard"));
    let out = run(
        &["search", "vrm", "A812 C0E", "--fuzzy", "--format", "ndjson"],
        &alice,
        &server.url,
    );
    let lines = ndjson(&out);
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["match"], "confusable at 2,6");
    // First and last seen per matching VRM.
    let out = run(
        &[
            "search", "vrm", "A812 C0E", "--fuzzy", "--by-vrm", "--format", "csv",
        ],
        &alice,
        &server.url,
    );
    let rows: Vec<csv::StringRecord> = csv::Reader::from_reader(out.stdout.as_slice())
        .records()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (&rows[0][0], &rows[0][4], &rows[0][5]),
        ("AB12CDE", "2", "confusable at 2,6")
    );
    assert!(rows[0][2] < rows[0][3], "first seen before last seen");

    // A BOF certificate cannot search; the error names the rule.
    let mut cmd = Command::new(NADC);
    cmd.args(["search", "vrm", "AB12CDE"])
        .env("NADC_NODE", &server.url);
    for (k, v) in &avon {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("user certificate"));

    // The same identity from a client config file (paths relative to it).
    let config = dir.path().join("alice.toml");
    std::fs::write(
        &config,
        "ca = \"pki/ca.crt\"\ncert = \"pki/users/alice.crt\"\nkey = \"pki/users/alice.key\"\n",
    )
    .unwrap();
    let out = run(
        &["node", "info", "--client-config", config.to_str().unwrap()],
        &[],
        &server.url,
    );
    let info = String::from_utf8_lossy(&out.stdout);
    assert!(
        info.contains("reads:     2") && info.contains("user alice of AVON"),
        "{info}"
    );
    server.stop();
}

/// The lines of an NDJSON output, parsed.
fn ndjson(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The UTC date `hours` hours ago, as YYYY-MM-DD.
fn chrono_now_minus_hours(hours: i64) -> String {
    let t = chrono::Utc::now() - chrono::Duration::hours(hours);
    t.format("%Y-%m-%d").to_string()
}

/// `nadc` with `args`, whatever its exit status.
fn run_any(args: &[&str], env: &[(&str, PathBuf)], url: &str) -> Output {
    let mut cmd = Command::new(NADC);
    cmd.args(args)
        .env("NADC_NODE", url)
        .env_remove("NADC_PURPOSE")
        .env_remove("NADC_CASE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// RFC 3339 for `mins` minutes ago.
/// `mins` minutes before one instant fixed for the whole test process,
/// to the second: reads a minute apart are exactly 60 s apart, however
/// the clock ticks while they are written.
fn minutes_ago(mins: i64) -> String {
    static NOW: std::sync::OnceLock<chrono::DateTime<chrono::Utc>> = std::sync::OnceLock::new();
    (*NOW.get_or_init(chrono::Utc::now) - chrono::Duration::minutes(mins))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

#[test]
fn hotlists_alerts_convoy_and_clones_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    pki_init(
        &pki,
        "AVON",
        "alice:analyst:AVON,harry:hotlist-manager:AVON,dora:disclosure:AVON",
    );
    let server = Server::start(dir.path());
    let (avon, alice, harry) = (
        identity(&pki, "bofs", "AVON"),
        identity(&pki, "users", "alice"),
        identity(&pki, "users", "harry"),
    );
    let cameras = dir.path().join("cameras.csv");
    std::fs::write(
        &cameras,
        "camera_id,lat,lon,bearing,kind,lanes\nM32-J1,51.4700,-2.5600,,fixed,\nA4-BATH,51.3900,-2.3700,,fixed,\n",
    )
    .unwrap();
    run(
        &["cameras", "import", cameras.to_str().unwrap()],
        &avon,
        &server.url,
    );

    run(
        &[
            "hotlist",
            "create",
            "wanted",
            "--purpose",
            "serious crime",
            "--fuzzy",
        ],
        &harry,
        &server.url,
    );
    // An analyst may not change lists.
    let out = run_any(
        &["hotlist", "create", "mine", "--purpose", "x"],
        &alice,
        &server.url,
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("hotlist-manager"));
    // Import: a good row, one the node refuses (no intelligence
    // reference), and one malformed here (unknown action); each named by line.
    let entries = dir.path().join("entries.csv");
    std::fs::write(
        &entries,
        "vrm,reason,intel_ref,action,expires,convoy\nTG11 TGT,wanted for robbery,INT/1,stop,30d,yes\nNO12 INT,no intel,,arrest,30d,\nBA12 DAC,bad action,INT/3,detain,30d,\n",
    )
    .unwrap();
    let out = run_any(
        &["hotlist", "import", "wanted", entries.to_str().unwrap()],
        &harry,
        &server.url,
    );
    assert!(!out.status.success(), "an import with bad rows must fail");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        stdout.contains("1 entries stored")
            && stdout.contains("1 refused")
            && stdout.contains("1 malformed"),
        "{stdout}"
    );
    assert!(
        stderr.contains("line 3") && stderr.contains("intel_ref"),
        "{stderr}"
    );
    assert!(
        stderr.contains("line 4") && stderr.contains("detain"),
        "{stderr}"
    );
    let out = run(
        &["hotlist", "show", "wanted", "--format", "csv"],
        &alice,
        &server.url,
    );
    let mut csv = csv::Reader::from_reader(out.stdout.as_slice());
    let rows: Vec<csv::StringRecord> = csv.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 1);
    assert_eq!(&rows[0][0], "TG11TGT");
    assert_eq!(&rows[0][1], "stop");
    assert_eq!(&rows[0][5], "true");

    // A live subscriber process waits for the first alert.
    let mut watcher = Command::new(NADC)
        .args(["alerts", "watch", "--count", "1", "--format", "ndjson"])
        .env("NADC_NODE", &server.url)
        .envs(alice.iter().map(|(k, v)| (*k, v.clone())))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));

    // The target (read once as TG11 T6T) and its companion pass both
    // cameras a minute apart; a cloned plate is at both within 2 minutes.
    let reads = dir.path().join("reads.csv");
    let rows = [
        ("t1", "TG11 T6T", 60, "M32-J1"),
        ("k1", "KM22 KMK", 59, "M32-J1"),
        ("t2", "TG11 TGT", 40, "A4-BATH"),
        ("k2", "KM22 KMK", 39, "A4-BATH"),
        ("x1", "XX33 XXX", 30, "M32-J1"),
        ("c1", "CL0N 123", 20, "M32-J1"),
        ("c2", "CL0N 123", 18, "A4-BATH"),
    ];
    let mut text = String::from(
        "read_id,vrm,observed_at,camera_id,lat,lon,bearing,lane,confidence,make,model,colour\n",
    );
    for (id, vrm, mins, cam) in rows {
        text.push_str(&format!("{id},{vrm},{},{cam},,,,,,,,\n", minutes_ago(mins)));
    }
    std::fs::write(&reads, text).unwrap();
    run(&["push", reads.to_str().unwrap()], &avon, &server.url);

    let deadline = Instant::now() + Duration::from_secs(30);
    while watcher.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "no alert reached the watcher");
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = watcher.wait_with_output().unwrap();
    let live = ndjson(&out);
    assert_eq!(live.len(), 1);
    assert_eq!(live[0]["kind"], "hit");
    assert_eq!(live[0]["read"]["vrm"], "TG11T6T");
    assert_eq!(live[0]["list_vrm"], "TG11TGT");
    assert_eq!(live[0]["substitutions"], "list G read 6 at 6");
    assert_eq!(live[0]["read"]["owning_force"], "AVON");
    assert_eq!(live[0]["verification"]["state"], "unverified");

    // Everything logged: two hits, the clone, and convoy alerts.
    let out = run(
        &["alerts", "watch", "--history", "--format", "ndjson"],
        &alice,
        &server.url,
    );
    let all = ndjson(&out);
    let kinds: Vec<&str> = all.iter().map(|a| a["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "hit").count(),
        2,
        "{kinds:?}"
    );
    let clone = all.iter().find(|a| a["kind"] == "clone").unwrap();
    assert_eq!(clone["read"]["vrm"], "CL0N123");
    assert_eq!(clone["other_read"]["bof_read_id"], "c1");
    let position = live[0]["position"].as_u64().unwrap().to_string();
    let out = run(
        &[
            "alerts",
            "verify",
            &position,
            "--state",
            "rejected",
            "--note",
            "patch shows TG11 T6T",
        ],
        &alice,
        &server.url,
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("verification: rejected by alice"));

    // Retrospective convoy: the companion first, with both co-occurrences.
    let (from, to) = (minutes_ago(120), minutes_ago(0));
    let out = run(
        &[
            "search", "convoy", "TG11TGT", "TG11T6T", "--from", &from, "--to", &to, "--pairs",
            "--format", "csv",
        ],
        &alice,
        &server.url,
    );
    let mut csv = csv::Reader::from_reader(out.stdout.as_slice());
    let header = csv.headers().unwrap().clone();
    let rows: Vec<csv::StringRecord> = csv.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2, "one row per supporting pair");
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    for r in &rows {
        assert_eq!(&r[col("rank")], "1");
        assert_eq!(&r[col("vrm")], "KM22KMK");
        assert_eq!(&r[col("co_occurrences")], "2");
        assert_eq!(&r[col("cameras")], "2");
        assert_eq!(&r[col("gap_s")], "60.0");
    }
    let out = run(
        &[
            "search",
            "convoy",
            "--hotlist",
            "wanted",
            "--from",
            &from,
            "--to",
            &to,
            "--min-count",
            "1",
        ],
        &alice,
        &server.url,
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("KM22KMK"), "{table}");

    // Retrospective clones.
    let out = run(
        &[
            "search", "clones", "--from", &from, "--to", &to, "--format", "ndjson",
        ],
        &alice,
        &server.url,
    );
    let pairs = ndjson(&out);
    assert_eq!(pairs.len(), 1);
    assert_eq!(pairs[0]["vrm"], "CL0N123");
    assert_eq!(pairs[0]["first_bof_read_id"], "c1");
    assert_eq!(pairs[0]["second_bof_read_id"], "c2");
    // The case register: a timeline exported as CSV, its read marked as
    // material, the owning agency's consultation recorded by a disclosure
    // officer, and the schedule as JSON and CSV.
    let out = run(
        &["search", "vrm", "TG11TGT", "--format", "csv"],
        &alice,
        &server.url,
    );
    let export = dir.path().join("export.csv");
    std::fs::write(&export, &out.stdout).unwrap();
    let out = run(
        &[
            "disclosure",
            "mark",
            "--case",
            "OP-CLI",
            "--reads",
            export.to_str().unwrap(),
        ],
        &alice,
        &server.url,
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 reads marked as material"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let dora = identity(&pki, "users", "dora");
    run(
        &[
            "disclosure",
            "consult",
            "--case",
            "OP-CLI",
            "--force",
            "AVON",
            "--status",
            "approved",
            "--note",
            "own force",
        ],
        &dora,
        &server.url,
    );
    let out = run(
        &[
            "disclosure",
            "schedule",
            "--case",
            "OP-CLI",
            "--format",
            "json",
        ],
        &dora,
        &server.url,
    );
    let schedule: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let avon_part = &schedule["agencies"][0];
    assert_eq!(avon_part["force"], "AVON");
    assert_eq!(avon_part["consultation"]["status"], "approved");
    assert_eq!(avon_part["material"], 1);
    assert_eq!(avon_part["reads"][0]["vrm"], "TG11TGT");
    assert_eq!(avon_part["reads"][0]["material"], true);
    let out = run(
        &[
            "disclosure",
            "schedule",
            "--case",
            "OP-CLI",
            "--format",
            "csv",
        ],
        &dora,
        &server.url,
    );
    let mut csv = csv::Reader::from_reader(out.stdout.as_slice());
    assert!(csv.records().map(Result::unwrap).any(|r| &r[2] == "true"));
    // The case is AVON's: its disclosure officer shares it with KENT.
    let out = run(
        &["disclosure", "share", "--case", "OP-CLI", "--force", "KENT"],
        &dora,
        &server.url,
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("AVON/OP-CLI is shared with KENT (by dora"),
        "{said}"
    );
    server.stop();
}

#[test]
fn pki_revoke_then_sighup_makes_the_running_node_refuse_the_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    pki_init(&pki, "AVON,KENT", "");
    // An empty CRL, so the node (--tls-dir) starts with DIR/crl.pem configured.
    let crl = run_any(&["pki", "crl", "--dir", pki.to_str().unwrap()], &[], "");
    assert!(
        crl.status.success(),
        "{}",
        String::from_utf8_lossy(&crl.stderr)
    );
    assert!(String::from_utf8_lossy(&crl.stdout).contains("(0 revoked)"));

    let server = Server::start(dir.path());
    let avon = identity(&pki, "bofs", "AVON");
    let kent = identity(&pki, "bofs", "KENT");
    let info = |who: &[(&str, PathBuf)]| run_any(&["node", "info"], who, &server.url);
    assert!(info(&avon).status.success());

    let out = run_any(
        &[
            "pki",
            "revoke",
            "--dir",
            pki.to_str().unwrap(),
            "--bof",
            "AVON",
        ],
        &[],
        "",
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("revoked serial") && stdout.contains("1 revoked certificate"),
        "{stdout}"
    );
    // Not reloaded yet: still served.
    assert!(info(&avon).status.success());

    server.signal("HUP");
    // The reload happens when the node handles the signal; wait for it.
    let deadline = Instant::now() + Duration::from_secs(30);
    // The client reads the node's alert after its side of the handshake;
    // on a loaded machine the connection can close before the alert is
    // read, so a refusal without the reason is retried until one names it.
    let mut refused_once = false;
    loop {
        let out = info(&avon);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if out.status.success() {
            assert!(!refused_once, "AVON was served again after a refusal");
        } else {
            refused_once = true;
            if stderr.contains("revoked") {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the node never refused AVON as revoked after SIGHUP: {stderr}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // SIGHUP did not stop the node, and other certificates still work.
    assert!(info(&kent).status.success());
    server.stop();
}

#[test]
fn a_command_piped_into_a_reader_that_goes_ends_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(NADC)
        .args(["gen", "--vehicles", "500", "--forces", "AVON,KENT", "--out"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The reader goes before reading anything (as `| head -0` does).
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        out.status.success() || out.status.signal() == Some(13),
        "{:?}: {stderr}",
        out.status
    );
}
