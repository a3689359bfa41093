//! A store written by the layout of December 2026 (before issue 21's
//! layout work), committed under `tests/fixtures/store-2026-12`, opens in
//! this code with everything in it: reads in every index, the per-day
//! counts, cameras, a hotlist with a trigger rule, an alert with its
//! verification and outcome, the audit chain, a legal hold and a registry
//! entry; and takes new reads. Each later layout must keep this test
//! passing (migrating in place) or refuse the store naming its migration.
//!
//! The fixture was written once by this file's writer:
//! `NADC_WRITE_FIXTURE=1 cargo test --workspace --test fixture`. Do not
//! regenerate it to make a new layout pass: that is what it guards.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use nadc_core::alert::{AlertDetail, AlertState, HitOutcome, Verification};
use nadc_core::audit::{AuditEntry, ChainCheck, Outcome};
use nadc_core::hotlist::{Action, Fuzzy, Hotlist, HotlistEntry, HotlistId};
use nadc_core::read::ReadInput;
use nadc_core::trigger::{RuleArea, TriggerRule};
use nadc_core::{Camera, CameraKind, ForceId, GeoPoint, Timestamp, Vrm};
use nadc_store::{CaseId, NewRead, ReadRef, RocksStore, Store, StoreOptions};

const VRMS: [&str; 4] = ["AB12CDE", "XY34FGH", "LM56NOP", "QR78STU"];
const READS: i64 = 40;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/store-2026-12")
}

fn day0() -> Timestamp {
    Timestamp::parse_rfc3339("2026-11-20T00:00:00Z").unwrap()
}

fn force(f: &str) -> ForceId {
    ForceId::new(f).unwrap()
}

/// Read `i`: its force, VRM, time and camera.
fn plan(i: i64) -> (ForceId, &'static str, Timestamp, &'static str) {
    let f = if i % 4 == 3 { "KENT" } else { "AVON" };
    let camera = if f == "KENT" { "K1" } else { "C1" };
    (
        force(f),
        VRMS[(i % 4) as usize],
        day0().plus_millis(i * 37 * 60_000),
        camera,
    )
}

fn entry(action: &str) -> AuditEntry {
    AuditEntry {
        at: day0(),
        node: "node-1".into(),
        user: "fixture".into(),
        force: Some(force("AVON")),
        roles: Vec::new(),
        action: action.into(),
        purpose: "serious-crime".into(),
        case_ref: "OP-FIX".into(),
        authorisation: String::new(),
        query: "{}".into(),
        returned: Vec::new(),
        outcome: Outcome::Ok,
    }
}

fn listed() -> HotlistEntry {
    HotlistEntry {
        vrm: Vrm::normalise("AB12CDE").unwrap(),
        reason: "wanted".into(),
        intel_ref: "INT/1".into(),
        action: Action::Stop,
        convoy: false,
        created_by: "harry".into(),
        created_at: day0(),
        expires_at: day0().plus_millis(400 * 86_400_000),
    }
}

fn list() -> Hotlist {
    Hotlist {
        id: HotlistId::new(force("AVON"), "wanted").unwrap(),
        purpose: "serious crime".into(),
        description: String::new(),
        fuzzy: Fuzzy::OFF,
        created_by: "harry".into(),
        created_at: day0(),
        rules: vec![TriggerRule {
            label: "centre".into(),
            area: RuleArea::Circle {
                centre: GeoPoint::new(51.45, -2.58).unwrap(),
                radius_m: 2_000,
            },
            from: None,
            until: None,
            start_hour: 0,
            end_hour: 0,
        }],
    }
}

/// Writes the fixture (once; see the module's notes).
fn write(dir: &Path) {
    let s = RocksStore::open(dir, StoreOptions::default()).unwrap();
    s.put_cameras(&[
        Camera {
            force: force("AVON"),
            camera_id: "C1".into(),
            position: GeoPoint::new(51.45, -2.58).unwrap(),
            bearing: None,
            kind: CameraKind::Fixed,
            lanes: None,
            description: None,
            covers_hard_shoulder: None,
            roundabout: None,
            range_m: None,
        },
        Camera {
            force: force("KENT"),
            camera_id: "K1".into(),
            position: GeoPoint::new(51.27, 0.52).unwrap(),
            bearing: None,
            kind: CameraKind::Fixed,
            lanes: None,
            description: None,
            covers_hard_shoulder: None,
            roundabout: None,
            range_m: None,
        },
    ])
    .unwrap();
    s.put_hotlist(&list()).unwrap();
    s.put_hotlist_entries(&list().id, &[listed()]).unwrap();
    for i in 0..READS {
        let (f, vrm, at, camera) = plan(i);
        let (lat, lon) = if camera == "K1" {
            (51.27, 0.52)
        } else {
            (51.45, -2.58)
        };
        let read = ReadInput {
            read_id: format!("r{i}"),
            vrm: vrm.into(),
            observed_at: Some(at),
            camera_id: camera.into(),
            lat: Some(lat),
            lon: Some(lon),
            ..Default::default()
        }
        .validate()
        .unwrap();
        let mut new = NewRead::new(read.clone(), read.position.unwrap(), at);
        if i == 0 {
            new.alerts.push(AlertDetail::Hit {
                list: list().id,
                purpose: "serious crime".into(),
                entry: listed(),
                matched: nadc_core::vrm_match::MatchKind::Exact,
            });
        }
        s.append(&f, vec![new]).unwrap();
    }
    s.append_audit(vec![entry("search.vrm_timeline"), entry("search.geo")])
        .unwrap();
    s.set_alert_state(
        1,
        &AlertState {
            state: Verification::Confirmed,
            by: "olly".into(),
            by_force: force("AVON"),
            at: day0(),
            note: "image matches".into(),
            outcome: Some(HitOutcome::Arrested),
        },
        entry("alert.verify"),
        None,
    )
    .unwrap();
    let first_two: Vec<ReadRef> = (0..2)
        .map(|seq| ReadRef {
            day: day0().day(),
            seq: seq + 1,
        })
        .collect();
    s.hold(
        &CaseId {
            owner: force("AVON"),
            case_ref: "OP-FIX".into(),
        },
        &first_two,
    )
    .unwrap();
    s.put_registry(
        "cases",
        vec![(b"AVON/OP-FIX".to_vec(), Some(b"opened".to_vec()))],
    )
    .unwrap();
    s.close().unwrap();
}

/// A copy of the fixture to open (opening writes to a store's directory).
fn copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn a_store_written_by_the_december_2026_layout_opens_whole() {
    let fixture = fixture_dir();
    if std::env::var_os("NADC_WRITE_FIXTURE").is_some() {
        let _ = std::fs::remove_dir_all(&fixture);
        write(&fixture);
        // The engine's own logs are not part of the store.
        for e in std::fs::read_dir(&fixture).unwrap() {
            let name = e.unwrap().file_name().to_string_lossy().to_string();
            if name.starts_with("LOG") {
                std::fs::remove_file(fixture.join(name)).unwrap();
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    copy(&fixture, dir.path());
    let s = RocksStore::open(dir.path(), StoreOptions::default()).unwrap();

    // Reads, per force and per day.
    let stats = s.stats().unwrap();
    assert_eq!(stats.reads_by_force.get(&force("AVON")), Some(&30));
    assert_eq!(stats.reads_by_force.get(&force("KENT")), Some(&10));
    let mut by_day: BTreeMap<(u32, ForceId), u64> = BTreeMap::new();
    for i in 0..READS {
        let (f, _, at, _) = plan(i);
        *by_day.entry((at.day(), f)).or_default() += 1;
    }
    assert_eq!(
        s.reads_by_day(day0().day(), day0().day() + 2).unwrap(),
        by_day
    );
    // A VRM timeline, in time order.
    let mut ids = Vec::new();
    s.vrm_timeline(
        &Vrm::normalise("AB12CDE").unwrap(),
        day0(),
        day0().plus_millis(2 * 86_400_000),
        &mut |r| {
            ids.push(r.read.read_id.clone());
            ControlFlow::Continue(())
        },
    )
    .unwrap();
    let want: Vec<String> = (0..READS)
        .filter(|i| i % 4 == 0)
        .map(|i| format!("r{i}"))
        .collect();
    assert_eq!(ids, want);
    // The geographic index around KENT's camera.
    let circle = nadc_core::Circle::new(GeoPoint::new(51.27, 0.52).unwrap(), 500.0).unwrap();
    let cover = nadc_core::geo::cover_circle(&circle, nadc_core::geo::DEFAULT_MAX_RANGES);
    let mut kent = 0;
    s.geo_scan(
        &cover,
        day0(),
        day0().plus_millis(2 * 86_400_000),
        &mut |_| {
            kent += 1;
            ControlFlow::Continue(())
        },
    )
    .unwrap();
    assert_eq!(kent, 10);
    // The records moved whole: every read by every path, as written.
    let everything = (day0(), day0().plus_millis(3 * 86_400_000));
    let mut by_geo = Vec::new();
    let all_gb = nadc_core::geo::cover_circle(
        &nadc_core::Circle::new(GeoPoint::new(51.3, -1.0).unwrap(), 200_000.0).unwrap(),
        nadc_core::geo::DEFAULT_MAX_RANGES,
    );
    s.geo_scan(&all_gb, everything.0, everything.1, &mut |hit| {
        by_geo.push(hit.read().unwrap());
        ControlFlow::Continue(())
    })
    .unwrap();
    by_geo.sort_by_key(|r| r.seq);
    assert_eq!(by_geo.len(), READS as usize);
    // The coarse cells holding reads, which this layout did not keep:
    // found when the store is opened. Every read's cell (by h3o) is among
    // them, and nothing further than a cell's neighbours.
    let said = s.coarse_cells().unwrap();
    let mut near = std::collections::BTreeSet::new();
    for r in &by_geo {
        let ll = h3o::LatLng::new(r.position.lat(), r.position.lon()).unwrap();
        let cell = ll.to_cell(h3o::Resolution::Five);
        assert!(said.contains(&u64::from(cell)), "{}'s cell", r.read.read_id);
        near.extend(cell.grid_disk::<Vec<_>>(2).into_iter().map(u64::from));
    }
    assert!(said.iter().all(|c| near.contains(c)), "{said:?}");
    for r in &by_geo {
        let i: i64 = r.read.read_id[1..].parse().unwrap();
        let (f, vrm, at, camera) = plan(i);
        assert_eq!(
            (
                &r.force,
                r.read.vrm.as_str(),
                r.read.observed_at,
                r.read.camera_id.as_str()
            ),
            (&f, vrm, at, camera)
        );
    }
    let refs: Vec<ReadRef> = by_geo.iter().map(|r| r.read_ref()).collect();
    assert_eq!(s.get_reads(&refs).unwrap(), by_geo);
    let mut by_scan = Vec::new();
    s.scan_days(everything.0, everything.1, &mut |r| {
        by_scan.push(r);
        ControlFlow::Continue(())
    })
    .unwrap();
    by_scan.sort_by_key(|r| r.seq);
    assert_eq!(by_scan, by_geo);
    let mut kent_camera = Vec::new();
    s.camera_reads(&force("KENT"), "K1", everything.0, everything.1, &mut |r| {
        kent_camera.push(r.read.read_id);
        ControlFlow::Continue(())
    })
    .unwrap();
    let want: Vec<String> = (0..READS)
        .filter(|i| i % 4 == 3)
        .map(|i| format!("r{i}"))
        .collect();
    assert_eq!(kent_camera, want);
    let mut passed = Vec::new();
    s.camera_entries(&force("KENT"), "K1", everything.0, everything.1, &mut |e| {
        passed.push(e.vrm.to_string());
        ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(passed, vec!["QR78STU"; 10]);
    let mut dictionary = Vec::new();
    s.vrm_dict("", false, &mut |v| {
        dictionary.push(v.to_string());
        ControlFlow::Continue(())
    })
    .unwrap();
    dictionary.sort();
    let mut want: Vec<String> = VRMS.iter().map(|v| v.to_string()).collect();
    want.sort();
    assert_eq!(dictionary, want);
    let (_, _, at5, _) = plan(5);
    let near = s
        .vrm_neighbours(&[(Vrm::normalise(VRMS[1]).unwrap(), at5)], 86_400_000)
        .unwrap();
    assert_eq!(near[0][0].as_ref().map(|e| e.observed_at), Some(at5));
    assert_eq!(near[0][1].as_ref().map(|e| e.observed_at), Some(plan(9).2));
    // Cameras, the list with its rule and entry.
    assert_eq!(s.cameras(None).unwrap().len(), 2);
    let lists = s.hotlists().unwrap();
    assert_eq!(lists.len(), 1);
    assert_eq!(lists[0].0, list());
    assert_eq!(lists[0].1, vec![listed()]);
    // The alert and its verification.
    let mut alerts = Vec::new();
    s.alerts(0, &mut |p, a| {
        alerts.push((p, a));
        ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(alerts.len(), 1);
    let state = s.alert_states(&[alerts[0].0]).unwrap().remove(0).unwrap();
    assert_eq!(
        (state.state, state.outcome),
        (Verification::Confirmed, Some(HitOutcome::Arrested))
    );
    // The audit chain, whole.
    let mut check = ChainCheck::default();
    let mut n = 0;
    s.audit(1, &mut |e| {
        check.check(&e).unwrap();
        n += 1;
        ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(n, 3);
    // The hold and the registry entry.
    assert_eq!(s.holds().unwrap().len(), 2);
    let mut registered = Vec::new();
    s.registry("cases", b"", &mut |k, v| {
        registered.push((k.to_vec(), v.to_vec()));
        ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(registered, [(b"AVON/OP-FIX".to_vec(), b"opened".to_vec())]);
    // And it takes new reads.
    let read = ReadInput {
        read_id: "new".into(),
        vrm: "AB12CDE".into(),
        observed_at: Some(day0().plus_millis(3_600_000)),
        camera_id: "C1".into(),
        lat: Some(51.45),
        lon: Some(-2.58),
        ..Default::default()
    }
    .validate()
    .unwrap();
    let position = read.position.unwrap();
    s.append(&force("AVON"), vec![NewRead::new(read, position, day0())])
        .unwrap();
    assert_eq!(
        s.stats().unwrap().reads_by_force.get(&force("AVON")),
        Some(&31)
    );
    // A read stored before the move is still known: a duplicate.
    let again = by_geo
        .iter()
        .find(|r| r.read.read_id == "r0")
        .unwrap()
        .clone();
    let appended = s
        .append(
            &again.force,
            vec![NewRead::new(again.read, again.position, day0())],
        )
        .unwrap();
    assert_eq!(
        appended,
        [nadc_store::Appended::Duplicate { seq: again.seq }]
    );
    // Opened again, the store is in the new layout and not moved twice.
    drop(s);
    let names = rocksdb_names(dir.path());
    for old in ["reads", "vrm", "camera"] {
        assert!(!names.iter().any(|n| n == old), "{old} left in {names:?}");
    }
    let s = RocksStore::open(dir.path(), StoreOptions::default()).unwrap();
    assert_eq!(s.stats().unwrap().total_reads(), 41);
    assert_eq!(s.get_reads(&refs).unwrap(), by_geo);
}

/// The column families of the store at `dir`.
fn rocksdb_names(dir: &Path) -> Vec<String> {
    rocksdb::DB::list_cf(&rocksdb::Options::default(), dir).unwrap()
}
