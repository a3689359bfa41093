//! The `nadc` binary end to end, as separate processes: `pki init`, `serve`
//! (stopped with SIGTERM and started again), `cameras import`, `push` of a
//! CSV with a malformed row, and `search vrm` in every output format, each
//! parsed back by a real parser. The node is killed with SIGKILL after
//! acknowledging reads and must still hold them when started again.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const NADC: &str = env!("CARGO_BIN_EXE_nadc");

struct Server {
    child: Option<Child>,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Server {
    fn start(dir: &Path) -> Server {
        let addr_file = dir.join("addr");
        let _ = std::fs::remove_file(&addr_file);
        let mut server = Server {
            child: None,
            url: String::new(),
        };
        server.child = Some(
            Command::new(NADC)
                .args(["serve", "--listen", "127.0.0.1:0"])
                .arg("--data")
                .arg(dir.join("data"))
                .arg("--tls-dir")
                .arg(dir.join("pki"))
                .arg("--addr-file")
                .arg(&addr_file)
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap(),
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(a) = std::fs::read_to_string(&addr_file)
                && !a.is_empty()
            {
                server.url = format!("https://{a}");
                return server;
            }
            assert!(Instant::now() < deadline, "node did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: no chance to flush anything.
    fn kill(mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// SIGTERM, then wait for a clean exit.
    fn stop(mut self) {
        let mut child = self.child.take().unwrap();
        let pid = child.id().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(status.success());
        let code = child.wait().unwrap();
        assert!(code.success(), "node exited with {code}");
    }
}

fn run(args: &[&str], env: &[(&str, PathBuf)], url: &str) -> Output {
    let mut cmd = Command::new(NADC);
    cmd.args(args).env("NADC_NODE", url);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "nadc {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn identity(pki: &Path, kind: &str, name: &str) -> Vec<(&'static str, PathBuf)> {
    vec![
        ("NADC_CA", pki.join("ca.crt")),
        ("NADC_CERT", pki.join(kind).join(format!("{name}.crt"))),
        ("NADC_KEY", pki.join(kind).join(format!("{name}.key"))),
    ]
}

#[test]
fn the_binary_serves_pushes_and_searches_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    let out = Command::new(NADC)
        .args([
            "pki",
            "init",
            "--forces",
            "AVON,KENT",
            "--users",
            "alice:analyst:AVON",
        ])
        .arg("--out")
        .arg(&pki)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
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

    // Pushing the same file again after the restart: duplicates only.
    let out = run(&["push", reads.to_str().unwrap()], &avon, &server.url);
    assert!(String::from_utf8_lossy(&out.stdout).contains("accepted 0, duplicates 2"));

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
