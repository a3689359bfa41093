//! The RocksDB store on a real database in a temp dir.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::ops::ControlFlow;
use std::sync::Arc;

use nadc_core::read::ReadInput;
use nadc_core::{Camera, CameraKind, ForceId, GeoPoint, Timestamp, Vrm};
use nadc_store::{Appended, NewRead, RocksStore, Store, StoreError, StoreOptions, scan_counts};

fn t0() -> Timestamp {
    Timestamp::parse_rfc3339("2026-11-24T00:00:00Z").unwrap()
}

fn new_read(id: &str, vrm: &str, secs: i64) -> NewRead {
    let read = ReadInput {
        read_id: id.into(),
        vrm: vrm.into(),
        observed_at: Some(t0().plus_millis(secs * 1000)),
        camera_id: "C1".into(),
        lat: Some(51.5),
        lon: Some(-2.5),
        ..Default::default()
    }
    .validate()
    .unwrap();
    NewRead {
        position: read.position.unwrap(),
        read,
        received_at: t0(),
        alerts: Vec::new(),
        earlier_in_batch: Vec::new(),
    }
}

/// The audit entry of a verification.
fn verify_entry() -> nadc_core::audit::AuditEntry {
    nadc_core::audit::AuditEntry {
        at: t0(),
        node: "node-1".into(),
        user: "op".into(),
        force: Some(ForceId::new("AVON").unwrap()),
        roles: Vec::new(),
        action: "alert.verify".into(),
        purpose: String::new(),
        case_ref: String::new(),
        authorisation: String::new(),
        query: "{}".into(),
        returned: Vec::new(),
        outcome: nadc_core::audit::Outcome::Ok,
    }
}

/// Records `state` at `position` with its audit entry: whether it was
/// recorded, and the outcome the entry was written with.
fn verify(s: &dyn Store, position: u64, state: &nadc_core::alert::AlertState) -> (bool, String) {
    let (set, e) = s
        .set_alert_state(position, state, verify_entry(), None)
        .unwrap();
    (set, e.entry.outcome.as_str().to_string())
}

fn timeline(s: &dyn Store, vrm: &str, from: i64, to: i64) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    s.vrm_timeline(
        &Vrm::normalise(vrm).unwrap(),
        t0().plus_millis(from * 1000),
        t0().plus_millis(to * 1000),
        &mut |r| {
            out.push((r.read.read_id.clone(), r.seq));
            ControlFlow::Continue(())
        },
    )
    .unwrap();
    out
}

#[test]
fn append_dedups_and_timelines_are_ordered_and_windowed() {
    let dir = tempfile::tempdir().unwrap();
    let s = RocksStore::open(dir.path(), StoreOptions::default()).unwrap();
    let avon = ForceId::new("AVON").unwrap();
    let out = s
        .append(
            &avon,
            vec![
                new_read("b", "AB12CDE", 20),
                new_read("a", "AB12CDE", 10),
                new_read("a", "AB12CDE", 10),
            ],
        )
        .unwrap();
    assert_eq!(
        out,
        [
            Appended::Stored { seq: 1 },
            Appended::Stored { seq: 2 },
            Appended::Duplicate { seq: 2 }
        ]
    );
    let again = s.append(&avon, vec![new_read("a", "AB12CDE", 10)]).unwrap();
    assert_eq!(again, [Appended::Duplicate { seq: 2 }]);
    // Same read id on another capture day is another read.
    let next_day = s
        .append(&avon, vec![new_read("a", "AB12CDE", 86_400 + 5)])
        .unwrap();
    assert_eq!(next_day, [Appended::Stored { seq: 3 }]);
    assert_eq!(
        timeline(&s, "AB12CDE", 0, 200_000),
        [("a".into(), 2), ("b".into(), 1), ("a".into(), 3)]
    );
    assert_eq!(
        timeline(&s, "AB12CDE", 15, 20),
        [("b".into(), 1)],
        "inclusive window"
    );
    assert_eq!(timeline(&s, "AB12CDE", 21, 86_400), []);
    assert!(
        timeline(&s, "AB12CD", 0, 200_000).is_empty(),
        "no prefix bleed"
    );
    assert!(
        timeline(&s, "AB12CDE", 30, 10).is_empty(),
        "inverted window"
    );
    let stats = s.stats().unwrap();
    assert_eq!(stats.total_reads(), 3);
    assert_eq!(stats.earliest, Some(t0().plus_millis(10_000)));
}

#[test]
fn concurrent_appends_store_each_identity_exactly_once_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(RocksStore::open(dir.path(), StoreOptions::default()).unwrap());
    let forces = ["AVON", "KENT"].map(|f| ForceId::new(f).unwrap());
    // Eight writers; ids overlap between writers of the same force.
    let handles: Vec<_> = (0..8)
        .map(|w| {
            let s = s.clone();
            let force = forces[w % 2].clone();
            std::thread::spawn(move || {
                let mut stored = Vec::new();
                for b in 0..20 {
                    let batch: Vec<NewRead> = (0..50)
                        .map(|i| {
                            new_read(
                                &format!("r{}", (w / 2) % 2 * 500 + b * 50 + i),
                                "AB12CDE",
                                i as i64,
                            )
                        })
                        .collect();
                    for o in s.append(&force, batch).unwrap() {
                        if let Appended::Stored { seq } = o {
                            stored.push(seq);
                        }
                    }
                }
                stored
            })
        })
        .collect();
    let mut seqs = Vec::new();
    for h in handles {
        seqs.extend(h.join().unwrap());
    }
    // Per force, four writers push ids r0..r999 or r500..r1499 (each range
    // twice, concurrently): 1500 distinct reads per force.
    assert_eq!(seqs.len(), 2 * 1500, "each (force, read id) stored once");
    let unique: HashSet<u64> = seqs.iter().copied().collect();
    assert_eq!(unique.len(), seqs.len(), "sequence numbers never reused");
    s.close().unwrap();
    assert_eq!(
        s.append(&forces[0], vec![new_read("x", "A1", 1)]),
        Err(StoreError::Closed)
    );
    drop(s);
    let s = RocksStore::open(dir.path(), StoreOptions::default()).unwrap();
    let counts = scan_counts(&s).unwrap();
    assert_eq!(counts.values().sum::<u64>(), 3000);
    assert_eq!(
        s.stats().unwrap().total_reads(),
        3000,
        "counters persisted with the data"
    );
    let more = s
        .append(&forces[0], vec![new_read("fresh", "A1", 1)])
        .unwrap();
    let Appended::Stored { seq } = more[0] else {
        panic!("{more:?}")
    };
    assert!(!unique.contains(&seq) && seq > *unique.iter().max().unwrap());
}

#[test]
fn cameras_are_stored_by_force() {
    let dir = tempfile::tempdir().unwrap();
    let s = RocksStore::open(dir.path(), StoreOptions::default()).unwrap();
    let cam = |f: &str, id: &str, lat: f64| Camera {
        force: ForceId::new(f).unwrap(),
        camera_id: id.into(),
        position: GeoPoint::new(lat, -1.0).unwrap(),
        bearing: None,
        kind: CameraKind::Fixed,
        lanes: Some(2),
        description: None,
        covers_hard_shoulder: None,
        roundabout: None,
        range_m: None,
    };
    s.put_cameras(&[
        cam("AVON", "C1", 51.0),
        cam("AVON", "C2", 51.1),
        cam("AVONX", "C1", 52.0),
    ])
    .unwrap();
    s.put_cameras(&[cam("AVON", "C1", 51.5)]).unwrap();
    let avon = s.cameras(Some(&ForceId::new("AVON").unwrap())).unwrap();
    assert_eq!(avon.len(), 2, "the AVON prefix does not reach AVONX");
    assert_eq!(avon[0].position.lat(), 51.5, "re-registering replaces");
    assert_eq!(s.cameras(None).unwrap().len(), 3);
}

fn hit_detail(vrm: &str) -> nadc_core::alert::AlertDetail {
    use nadc_core::hotlist::{Action, HotlistEntry, HotlistId};
    nadc_core::alert::AlertDetail::Hit {
        list: HotlistId::new(ForceId::new("AVON").unwrap(), "L").unwrap(),
        purpose: "serious crime".into(),
        entry: HotlistEntry {
            vrm: Vrm::normalise(vrm).unwrap(),
            reason: "wanted".into(),
            intel_ref: "INT/1".into(),
            action: Action::Stop,
            convoy: false,
            created_by: "hm".into(),
            created_at: t0(),
            expires_at: t0().plus_millis(1000),
        },
        matched: nadc_core::vrm_match::MatchKind::Exact,
    }
}

fn logged(s: &dyn Store, after: u64) -> Vec<(u64, nadc_core::alert::Alert)> {
    let mut out = Vec::new();
    s.alerts(after, &mut |p, a| {
        out.push((p, a));
        ControlFlow::Continue(())
    })
    .unwrap();
    out
}

#[test]
fn alerts_are_logged_with_new_reads_only_and_survive_reopen() {
    use nadc_core::alert::{AlertState, Verification};
    let dir = tempfile::tempdir().unwrap();
    let avon = ForceId::new("AVON").unwrap();
    {
        let s = RocksStore::open(dir.path(), StoreOptions::default()).unwrap();
        assert_eq!(s.last_alert(), 0);
        let mut a = new_read("a", "AB12CDE", 10);
        a.alerts.push(hit_detail("AB12CDE"));
        let b = new_read("b", "XY12ZZZ", 11);
        let out = s.append(&avon, vec![a.clone(), b]).unwrap();
        let Appended::Stored { seq } = out[0] else {
            panic!("{out:?}")
        };
        assert_eq!(s.last_alert(), 1);
        // The same read again is a duplicate and raises nothing again.
        s.append(&avon, vec![a]).unwrap();
        assert_eq!(s.last_alert(), 1);
        let log = logged(&s, 0);
        assert_eq!(log.len(), 1);
        assert_eq!(log[0].0, 1);
        assert_eq!(log[0].1.read.seq, seq);
        assert_eq!(log[0].1.read_force, avon);
        let fetched = s.get_reads(&[log[0].1.read]).unwrap();
        assert_eq!(fetched[0].read.read_id, "a");
        // Alerts raised on their own get the next positions.
        let mut later = log[0].1.clone();
        later.detail = hit_detail("ZZ99ZZZ");
        assert_eq!(
            s.log_alerts(vec![later.clone(), later]).unwrap(),
            vec![2, 3]
        );
        let rejected = AlertState {
            state: Verification::Rejected,
            by: "op".into(),
            by_force: avon.clone(),
            at: t0(),
            note: "image shows AB12CDF".into(),
            outcome: None,
        };
        assert_eq!(verify(&s, 2, &rejected), (true, "ok".into()));
        // No alert at 9: nothing is recorded for it, and the audit entry
        // says so.
        assert_eq!(verify(&s, 9, &rejected), (false, "refused".into()));
        assert_eq!(s.alert_states(&[9]).unwrap(), [None]);
        s.close().unwrap();
    }
    let s = RocksStore::open(dir.path(), StoreOptions::default()).unwrap();
    assert_eq!(s.last_alert(), 3);
    assert_eq!(
        logged(&s, 1).iter().map(|(p, _)| *p).collect::<Vec<_>>(),
        vec![2, 3]
    );
    let states = s.alert_states(&[1, 2, 3]).unwrap();
    assert!(states[0].is_none() && states[2].is_none());
    assert_eq!(states[1].as_ref().unwrap().state, Verification::Rejected);
    let mut c = new_read("c", "AB12CDE", 12);
    c.alerts.push(hit_detail("AB12CDE"));
    s.append(&avon, vec![c]).unwrap();
    assert_eq!(s.last_alert(), 4);
}

#[test]
fn hotlists_and_entries_persist_and_delete_together() {
    use nadc_core::hotlist::{Fuzzy, Hotlist, HotlistId};
    let dir = tempfile::tempdir().unwrap();
    let avon = ForceId::new("AVON").unwrap();
    let list = |name: &str| Hotlist {
        id: HotlistId::new(avon.clone(), name).unwrap(),
        purpose: "serious crime".into(),
        description: String::new(),
        fuzzy: Fuzzy::OFF,
        created_by: "hm".into(),
        created_at: t0(),
        rules: Vec::new(),
    };
    let entry = |v: &str| match hit_detail(v) {
        nadc_core::alert::AlertDetail::Hit { entry, .. } => entry,
        _ => unreachable!(),
    };
    {
        let s = RocksStore::open(dir.path(), StoreOptions::default()).unwrap();
        // "L" sorts before "L2": entries of one must not land in the other.
        for name in ["L", "L2"] {
            s.put_hotlist(&list(name)).unwrap();
        }
        s.put_hotlist_entries(&list("L").id, &[entry("AB12CDE"), entry("CD34EFG")])
            .unwrap();
        s.put_hotlist_entries(&list("L2").id, &[entry("EF56GHI")])
            .unwrap();
        let gone = s
            .remove_hotlist_entries(
                &list("L").id,
                &[
                    Vrm::normalise("CD34EFG").unwrap(),
                    Vrm::normalise("NOPE").unwrap(),
                ],
            )
            .unwrap();
        assert_eq!(gone, 1);
        s.close().unwrap();
    }
    let s = RocksStore::open(dir.path(), StoreOptions::default()).unwrap();
    let all = s.hotlists().unwrap();
    let names: Vec<(String, Vec<String>)> = all
        .iter()
        .map(|(l, e)| {
            (
                l.id.name.clone(),
                e.iter().map(|e| e.vrm.as_str().to_string()).collect(),
            )
        })
        .collect();
    assert_eq!(
        names,
        vec![
            ("L".to_string(), vec!["AB12CDE".to_string()]),
            ("L2".to_string(), vec!["EF56GHI".to_string()])
        ]
    );
    s.delete_hotlist(&list("L").id).unwrap();
    let all = s.hotlists().unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].0.id.name, "L2");
    assert_eq!(all[0].1.len(), 1);
}

#[test]
fn camera_entries_carry_the_vrm_without_fetching_records() {
    let dir = tempfile::tempdir().unwrap();
    let s = RocksStore::open(dir.path(), StoreOptions::default()).unwrap();
    let avon = ForceId::new("AVON").unwrap();
    s.append(
        &avon,
        vec![
            new_read("a", "AB12CDE", 10),
            new_read("b", "XY12ZZZ", 20),
            new_read("c", "AB12CDE", 30),
        ],
    )
    .unwrap();
    let mut got = Vec::new();
    s.camera_entries(
        &avon,
        "C1",
        t0().plus_millis(10_000),
        t0().plus_millis(20_000),
        &mut |e| {
            got.push((e.vrm.as_str().to_string(), e.observed_at));
            ControlFlow::Continue(())
        },
    )
    .unwrap();
    assert_eq!(
        got,
        vec![
            ("AB12CDE".to_string(), t0().plus_millis(10_000)),
            ("XY12ZZZ".to_string(), t0().plus_millis(20_000)),
        ]
    );
}

/// A camera's reads are found wherever they lie: a mobile camera moving
/// between cells over two days, beside a fixed camera of another force
/// with the same id in one of its cells and a camera of its own force in
/// the other; in time order, every read of the camera and no other.
#[test]
fn a_cameras_reads_are_found_in_every_cell_it_read_in_and_only_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let s = RocksStore::open(dir.path(), StoreOptions::default()).unwrap();
    let (avon, kent) = (ForceId::new("AVON").unwrap(), ForceId::new("KENT").unwrap());
    let at = |id: &str, camera: &str, lat: f64, secs: i64| {
        let read = ReadInput {
            read_id: id.into(),
            vrm: format!("AB{:02}CDE", secs % 97),
            observed_at: Some(t0().plus_millis(secs * 1000)),
            camera_id: camera.into(),
            lat: Some(lat),
            lon: Some(-2.5),
            ..Default::default()
        }
        .validate()
        .unwrap();
        NewRead::new(read.clone(), read.position.unwrap(), t0())
    };
    // The van: 40 reads, every 30 minutes over 20 hours (two UTC days),
    // alternating between places 2 km apart; each place has another
    // camera reading at the same times.
    let mut van = Vec::new();
    let mut others = Vec::new();
    for i in 0..40 {
        let lat = if i % 2 == 0 { 51.50 } else { 51.52 };
        let secs = 40_000 + i * 1_800;
        van.push(at(&format!("v{i}"), "VAN-1", lat, secs));
        others.push(at(&format!("o{i}"), "C9", lat, secs));
    }
    s.append(&avon, van).unwrap();
    s.append(&avon, others).unwrap();
    let same_id = (0..10)
        .map(|i| at(&format!("k{i}"), "VAN-1", 51.50, 40_000 + i * 1_800))
        .collect();
    s.append(&kent, same_id).unwrap();
    let (from, to) = (t0(), t0().plus_millis(3 * 86_400_000));
    let mut reads = Vec::new();
    s.camera_reads(&avon, "VAN-1", from, to, &mut |r| {
        reads.push((r.read.read_id.clone(), r.read.observed_at, r.force.clone()));
        ControlFlow::Continue(())
    })
    .unwrap();
    let want: Vec<String> = (0..40).map(|i| format!("v{i}")).collect();
    assert_eq!(reads.iter().map(|r| r.0.clone()).collect::<Vec<_>>(), want);
    assert!(reads.windows(2).all(|w| w[0].1 < w[1].1));
    assert!(reads.iter().all(|r| r.2 == avon));
    assert_ne!(
        reads[0].1.day(),
        reads[39].1.day(),
        "the reads span two days"
    );
    // Entries: the same reads, with their VRMs; a window inside the range.
    let mut entries = Vec::new();
    let (lo, hi) = (reads[5].1, reads[30].1);
    s.camera_entries(&avon, "VAN-1", lo, hi, &mut |e| {
        entries.push((e.observed_at, e.vrm.to_string()));
        ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(entries.len(), 26);
    assert_eq!(entries.first().map(|e| e.0), Some(lo));
    assert_eq!(entries.last().map(|e| e.0), Some(hi));
    // KENT's camera of the same id is KENT's.
    let mut n = 0;
    s.camera_reads(&kent, "VAN-1", from, to, &mut |r| {
        assert_eq!(r.force, kent);
        n += 1;
        ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(n, 10);
}

#[test]
fn expiry_in_small_steps_deletes_a_day_except_kept_forces_and_held_reads() {
    use nadc_store::ExpireDay;
    let dir = tempfile::tempdir().unwrap();
    let s = RocksStore::open(dir.path(), StoreOptions::default()).unwrap();
    let (avon, kent) = (ForceId::new("AVON").unwrap(), ForceId::new("KENT").unwrap());
    let out = s
        .append(
            &avon,
            (0..10)
                .map(|i| new_read(&format!("a{i}"), &format!("AB{i}CDE"), i))
                .collect(),
        )
        .unwrap();
    s.append(&kent, vec![new_read("k0", "KE1NTR", 5)]).unwrap();
    let held_seq = match out[4] {
        Appended::Stored { seq } => seq,
        other => panic!("{other:?}"),
    };
    let day = t0().day();
    // Step by step, three reads at a time, keeping KENT and one held read.
    let mut from_seq = 0;
    let (mut deleted, mut held, mut steps) = (0, 0, 0);
    loop {
        let step = s
            .expire(ExpireDay {
                day,
                keep_forces: [kent.clone()].into(),
                held: [held_seq].into(),
                from_seq,
                max: 3,
            })
            .unwrap();
        steps += 1;
        deleted += step.deleted.get(&avon).copied().unwrap_or(0);
        held += step.held;
        match step.next_seq {
            Some(n) => from_seq = n,
            None => break,
        }
    }
    assert_eq!((deleted, held), (9, 1));
    assert!(steps >= 3);
    let counts = scan_counts(&s).unwrap();
    assert_eq!(counts.get(&avon), Some(&1));
    assert_eq!(counts.get(&kent), Some(&1));
    assert_eq!(s.stats().unwrap().reads_by_force.get(&avon), Some(&1));
    assert_eq!(timeline(&s, "AB4CDE", 0, 100).len(), 1);
    assert!(timeline(&s, "AB3CDE", 0, 100).is_empty());
    // Then the whole day, with nothing kept: one range delete.
    let step = s
        .expire(ExpireDay {
            day,
            max: 100,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(step.deleted.values().sum::<u64>(), 2);
    assert!(scan_counts(&s).unwrap().is_empty());
    assert!(timeline(&s, "KE1NTR", 0, 100).is_empty());
    assert_eq!(s.stats().unwrap().total_reads(), 0);
}

/// Every distinct VRM in the store's dictionary.
fn dictionary(s: &dyn Store) -> Vec<String> {
    let mut out = Vec::new();
    s.vrm_dict("", false, &mut |v| {
        out.push(v.as_str().to_owned());
        ControlFlow::Continue(())
    })
    .unwrap();
    out
}

/// The writer skips dictionary writes for VRMs it has written before; a
/// VRM that expiry took out of the dictionary must go back in with its
/// next read.
#[test]
fn the_vrm_dictionary_holds_the_vrms_with_reads_through_expiry_and_new_reads() {
    use nadc_store::ExpireDay;
    let dir = tempfile::tempdir().unwrap();
    let s = RocksStore::open(dir.path(), StoreOptions::default()).unwrap();
    let avon = ForceId::new("AVON").unwrap();
    s.append(&avon, vec![new_read("a0", "AB1CDE", 5)]).unwrap();
    s.append(
        &avon,
        vec![new_read("a1", "AB1CDE", 6), new_read("a2", "XY2ZZZ", 7)],
    )
    .unwrap();
    assert_eq!(dictionary(&s), ["AB1CDE", "XY2ZZZ"]);
    let step = s
        .expire(ExpireDay {
            day: t0().day(),
            max: 100,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(step.deleted.values().sum::<u64>(), 3);
    assert!(dictionary(&s).is_empty());
    s.append(&avon, vec![new_read("b0", "AB1CDE", 86_400 + 5)])
        .unwrap();
    assert_eq!(dictionary(&s), ["AB1CDE"]);
    drop(s);
    let s = RocksStore::open(dir.path(), StoreOptions::default()).unwrap();
    assert_eq!(dictionary(&s), ["AB1CDE"]);
}

#[test]
fn usage_counts_every_read_and_compaction_keeps_them_all_in_less_space() {
    let dir = tempfile::tempdir().unwrap();
    let s = RocksStore::open(dir.path(), StoreOptions::default()).unwrap();
    let avon = ForceId::new("AVON").unwrap();
    let n = 5_000;
    for chunk in 0..5 {
        let reads = (0..n / 5)
            .map(|i| {
                let k = chunk * (n / 5) + i;
                new_read(&format!("AVON-{k:08}"), &format!("AB{:02}CDE", k % 97), k)
            })
            .collect();
        s.append(&avon, reads).unwrap();
    }
    // Nothing flushed yet: the tables are empty.
    let before: u64 = s.usage().unwrap().iter().map(|u| u.table_bytes).sum();
    // The day settles: its records move from the open form to the settled.
    let day = t0().day();
    assert_eq!(s.open_days().unwrap(), [day]);
    let settled = s.settle_open_days().unwrap();
    assert_eq!(settled.len(), 1);
    assert_eq!((settled[0].day, settled[0].reads), (day, n as u64));
    assert!(s.open_days().unwrap().is_empty());
    s.compact().unwrap();
    let usage = s.usage().unwrap();
    let by_name = |name: &str| usage.iter().find(|u| u.name == name).unwrap().clone();
    for cf in ["refs", "geo", "vrm_by_day", "dedup"] {
        assert_eq!(by_name(cf).keys, n as u64, "{cf}");
        assert!(by_name(cf).table_bytes > 0, "{cf}");
    }
    for cf in ["geo_open", "vrm_open"] {
        assert_eq!(by_name(cf).table_bytes, 0, "{cf}");
    }
    // One camera, one cell, one day: one entry.
    assert_eq!(by_name("camera_cells").keys, 1);
    assert!(before < by_name("geo").table_bytes, "{before}");
    // Warming reads what searches read, up to the budget given.
    let all = s.warm_cache(u64::MAX).unwrap();
    assert!(all > n as u64 * 40, "{all}");
    let some = s.warm_cache(10_000).unwrap();
    assert!((10_000..11_000).contains(&some), "{some}");
    // Fully compacted, every read is still there and found.
    assert_eq!(
        timeline(&s, "AB05CDE", 0, n).len(),
        (n as usize).div_ceil(97)
    );
    assert_eq!(scan_counts(&s).unwrap()[&avon], n as u64);
}

#[test]
fn a_search_audit_entry_and_its_register_entries_are_written_together_under_its_sequence() {
    use nadc_core::audit::{AuditEntry, Outcome};
    let dir = tempfile::tempdir().unwrap();
    let entry = |user: &str| AuditEntry {
        at: t0(),
        node: "node-1".into(),
        user: user.into(),
        force: Some(ForceId::new("AVON").unwrap()),
        roles: Vec::new(),
        action: "search.vrm_timeline".into(),
        purpose: "serious-crime".into(),
        case_ref: "OP-1".into(),
        authorisation: String::new(),
        query: "{}".into(),
        returned: Vec::new(),
        outcome: Outcome::Ok,
    };
    let (first, second) = {
        let s = RocksStore::open(dir.path(), StoreOptions::default()).unwrap();
        let a = s
            .append_audit_registered(
                entry("alice"),
                "case",
                vec![(b"OP-1/r1/".to_vec(), b"x".to_vec())],
            )
            .unwrap();
        let b = s
            .append_audit_registered(
                entry("bob"),
                "case",
                vec![
                    (b"OP-1/r1/".to_vec(), b"y".to_vec()),
                    (b"OP-1/r2/".to_vec(), b"z".to_vec()),
                ],
            )
            .unwrap();
        s.close().unwrap();
        (a, b)
    };
    assert_eq!(second.seq, first.seq + 1);
    assert_eq!(second.prev, first.hash);
    // After a reopen: each key carries the sequence of the search that
    // wrote it, and the audit log holds both searches.
    let s = RocksStore::open(dir.path(), StoreOptions::default()).unwrap();
    let mut got = Vec::new();
    s.registry("case", b"OP-1/", &mut |k, v| {
        got.push((k.to_vec(), v.to_vec()));
        ControlFlow::Continue(())
    })
    .unwrap();
    let key = |r: &[u8], seq: u64| [r, &seq.to_be_bytes()[..]].concat();
    assert_eq!(
        got,
        vec![
            (key(b"OP-1/r1/", first.seq), b"x".to_vec()),
            (key(b"OP-1/r1/", second.seq), b"y".to_vec()),
            (key(b"OP-1/r2/", second.seq), b"z".to_vec()),
        ]
    );
    let mut users = Vec::new();
    s.audit(0, &mut |e| {
        users.push(e.entry.user.clone());
        ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(users, ["alice", "bob"]);
}

/// Bytes of write-ahead log in a store's directory. A log RocksDB deletes
/// between the listing and its size holds nothing any more.
fn wal_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
        .map(|e| e.metadata().map_or(0, |m| m.len()))
        .sum()
}

/// Appends 10,000 reads in 20 batches, letting the engine catch up after
/// each: the flushes a batch past the WAL cap asks for run in the
/// background, and the test judges what they leave, not how fast they run.
fn load_10k(s: &RocksStore) {
    let avon = ForceId::new("AVON").unwrap();
    for b in 0..20 {
        let reads = (0..500)
            .map(|i| new_read(&format!("w{b}-{i}"), &format!("WA{b}L{i}"), i64::from(i)))
            .collect();
        s.append(&avon, reads).unwrap();
        s.wait_for_background_work().unwrap();
    }
}

#[test]
fn the_write_ahead_log_stays_under_its_cap_and_nothing_is_lost() {
    let bound = 1 << 20;
    let capped = tempfile::tempdir().unwrap();
    let s = RocksStore::open(
        capped.path(),
        StoreOptions {
            max_wal_bytes: 256 << 10,
            ..StoreOptions::default()
        },
    )
    .unwrap();
    load_10k(&s);
    let left = wal_bytes(capped.path());
    assert!(left <= bound, "{left} bytes of WAL under a 256 KiB cap");
    drop(s);
    let s = RocksStore::open(capped.path(), StoreOptions::default()).unwrap();
    assert_eq!(scan_counts(&s).unwrap().values().sum::<u64>(), 10_000);

    // The same load under the default cap keeps it all in the log.
    let uncapped = tempfile::tempdir().unwrap();
    let s = RocksStore::open(uncapped.path(), StoreOptions::default()).unwrap();
    load_10k(&s);
    let kept = wal_bytes(uncapped.path());
    assert!(kept > 2 * bound, "only {kept} bytes of WAL without a cap");
}

fn stored_ref(out: &[Appended], i: usize, day: u32) -> nadc_store::ReadRef {
    match out[i] {
        Appended::Stored { seq } => nadc_store::ReadRef { day, seq },
        ref other => panic!("{other:?}"),
    }
}

fn clone_detail(other: nadc_store::ReadRef) -> nadc_core::alert::AlertDetail {
    nadc_core::alert::AlertDetail::Clone {
        other,
        distance_m: 170_000.0,
        seconds: 600.0,
        speed_kmh: 1_020.0,
    }
}

/// Expires `day` in steps of two reads, keeping `held`; alerts deleted.
fn expire_day(s: &dyn Store, day: u32, held: &[u64]) -> u64 {
    expire_from(s, day, held, 0, 2)
}

/// Expires the rest of `day` from `from_seq`, `max` reads a step, keeping
/// `held`; alerts deleted.
fn expire_from(s: &dyn Store, day: u32, held: &[u64], mut from_seq: u64, max: usize) -> u64 {
    let mut alerts = 0;
    loop {
        let step = s
            .expire(nadc_store::ExpireDay {
                day,
                held: held.iter().copied().collect(),
                from_seq,
                max,
                ..Default::default()
            })
            .unwrap();
        alerts += step.alerts_deleted;
        match step.next_seq {
            Some(n) => from_seq = n,
            None => return alerts,
        }
    }
}

/// An alert is shown with the reads it names, so none may outlive them:
/// retention deletes an alert with the first of its reads to go, and an
/// alert naming a read already gone is not logged.
#[test]
fn alerts_go_with_the_reads_they_name_and_are_never_logged_without_them() {
    use nadc_core::alert::{Alert, AlertState, Verification};
    let dir = tempfile::tempdir().unwrap();
    let s = RocksStore::open(dir.path(), StoreOptions::default()).unwrap();
    let avon = ForceId::new("AVON").unwrap();
    let day = t0().day();
    let mut a = new_read("a", "AB12CDE", 10);
    a.alerts.push(hit_detail("AB12CDE"));
    let mut k = new_read("k", "KE12PTT", 12);
    k.alerts.push(hit_detail("KE12PTT"));
    let out = s
        .append(&avon, vec![a, new_read("b", "CL0NE1", 11), k])
        .unwrap();
    let (a, b, k) = (
        stored_ref(&out, 0, day),
        stored_ref(&out, 1, day),
        stored_ref(&out, 2, day),
    );
    // The next day, CL0NE1 again far away: a clone of b, raised with the
    // read; and one of a logged on its own.
    let mut c = new_read("c", "CL0NE1", 86_400 + 5);
    c.alerts.push(clone_detail(b));
    let out = s.append(&avon, vec![c]).unwrap();
    let c = stored_ref(&out, 0, day + 1);
    let later = Alert {
        raised_at: t0(),
        read: c,
        read_force: avon.clone(),
        detail: clone_detail(a),
    };
    assert_eq!(s.log_alerts(vec![later]).unwrap(), [4]);
    let state = AlertState {
        state: Verification::Confirmed,
        by: "op".into(),
        by_force: avon.clone(),
        at: t0(),
        note: String::new(),
        outcome: Some(nadc_core::alert::HitOutcome::Arrested),
    };
    assert_eq!(verify(&s, 1, &state), (true, "ok".into()));
    assert_eq!(
        logged(&s, 0).iter().map(|(p, _)| *p).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );

    // The first day expires but k is held: a's hit and both clones go
    // (each names a read of that day), k's hit stays.
    assert_eq!(expire_day(&s, day, &[k.seq]), 3);
    let left = logged(&s, 0);
    assert_eq!(left.iter().map(|(p, _)| *p).collect::<Vec<_>>(), [2]);
    assert_eq!(left[0].1.read, k);
    assert_eq!(s.alert_states(&[1]).unwrap(), [None]);
    // Verifying an alert retention deleted records nothing.
    assert_eq!(verify(&s, 1, &state), (false, "refused".into()));
    assert_eq!(s.alert_states(&[1]).unwrap(), [None]);
    // Every read a logged alert names can be fetched.
    assert_eq!(s.get_reads(&[k, c]).unwrap().len(), 2);

    // Alerts naming a deleted read are not logged, on their own or with a
    // new read; the read itself is stored.
    let gone = Alert {
        raised_at: t0(),
        read: a,
        read_force: avon.clone(),
        detail: hit_detail("AB12CDE"),
    };
    assert!(s.log_alerts(vec![gone]).unwrap().is_empty());
    let mut d = new_read("d", "CL0NE1", 86_400 + 9);
    d.alerts.push(clone_detail(b));
    let out = s.append(&avon, vec![d]).unwrap();
    assert!(matches!(out[0], Appended::Stored { .. }), "{out:?}");
    assert_eq!(logged(&s, 0).len(), 1);
    assert_eq!(s.last_alert(), 4);
}

/// A store written before alerts were indexed by read gets the index built
/// when it is opened, so its old alerts expire with their reads too.
#[test]
fn a_store_from_before_the_alert_index_has_it_built_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let avon = ForceId::new("AVON").unwrap();
    {
        let s = RocksStore::open(dir.path(), StoreOptions::default()).unwrap();
        let mut a = new_read("a", "AB12CDE", 10);
        a.alerts.push(hit_detail("AB12CDE"));
        s.append(&avon, vec![a]).unwrap();
        s.close().unwrap();
    }
    {
        let opts = rocksdb::Options::default();
        let names = rocksdb::DB::list_cf(&opts, dir.path()).unwrap();
        let mut db = rocksdb::DB::open_cf(&opts, dir.path(), &names).unwrap();
        db.drop_cf("alert_reads").unwrap();
    }
    let s = RocksStore::open(dir.path(), StoreOptions::default()).unwrap();
    assert_eq!(logged(&s, 0).len(), 1);
    assert_eq!(expire_day(&s, t0().day(), &[]), 1);
    assert!(logged(&s, 0).is_empty());
}

/// A day expired whole keeps its records until its last step (one range
/// delete): an alert logged between its steps, naming a read an earlier
/// step passed, still goes with the day.
#[test]
fn an_alert_logged_while_its_day_expires_goes_with_the_day() {
    use nadc_core::alert::Alert;
    use nadc_store::ExpireDay;
    let dir = tempfile::tempdir().unwrap();
    let s = RocksStore::open(dir.path(), StoreOptions::default()).unwrap();
    let avon = ForceId::new("AVON").unwrap();
    let day = t0().day();
    let out = s
        .append(
            &avon,
            (0..3)
                .map(|i| new_read(&format!("r{i}"), "AB12CDE", i))
                .collect(),
        )
        .unwrap();
    let first = stored_ref(&out, 0, day);
    let step = s
        .expire(ExpireDay {
            day,
            max: 1,
            ..Default::default()
        })
        .unwrap();
    let from_seq = step.next_seq.expect("three reads take three steps");
    let alert = Alert {
        raised_at: t0(),
        read: first,
        read_force: avon.clone(),
        detail: hit_detail("AB12CDE"),
    };
    assert_eq!(s.log_alerts(vec![alert]).unwrap(), [1]);
    assert_eq!(expire_from(&s, day, &[], from_seq, 1), 1);
    assert!(logged(&s, 0).is_empty());
    assert!(scan_counts(&s).unwrap().is_empty());
}

#[test]
fn holds_from_before_cases_had_owners_belong_to_their_reads_force_once_reopened() {
    use nadc_store::keys::read_key;
    let dir = tempfile::tempdir().unwrap();
    let (avon, kent) = (ForceId::new("AVON").unwrap(), ForceId::new("KENT").unwrap());
    let day = t0().day();
    let (a0, k0) = {
        let s = RocksStore::open(dir.path(), StoreOptions::default()).unwrap();
        let a = s.append(&avon, vec![new_read("a0", "AB1CDE", 1)]).unwrap();
        let k = s.append(&kent, vec![new_read("k0", "KE1NTR", 2)]).unwrap();
        s.close().unwrap();
        (stored_ref(&a, 0, day), stored_ref(&k, 0, day))
    };
    // Holds in the old layout, `day · seq · case_ref`, written raw: one on
    // each force's read, one on a read that is gone.
    {
        let names = rocksdb::DB::list_cf(&rocksdb::Options::default(), dir.path()).unwrap();
        let db = rocksdb::DB::open_cf(&rocksdb::Options::default(), dir.path(), &names).unwrap();
        let holds = db.cf_handle("holds").unwrap();
        for (d, seq) in [(a0.day, a0.seq), (k0.day, k0.seq), (day, 999_999)] {
            let mut k = read_key(d, seq).to_vec();
            k.extend_from_slice(b"OP-OLD");
            db.put_cf(&holds, k, []).unwrap();
        }
    }
    let s = RocksStore::open(dir.path(), StoreOptions::default()).unwrap();
    let holds = s.holds().unwrap();
    let case = |f: &ForceId| {
        Some(nadc_store::CaseId {
            owner: f.clone(),
            case_ref: "OP-OLD".into(),
        })
    };
    assert_eq!(holds.len(), 2, "{holds:?}");
    assert_eq!(holds[&a0], vec![case(&avon)]);
    assert_eq!(holds[&k0], vec![case(&kent)]);
    // Now the owner's release lets them go, one force at a time.
    assert_eq!(s.release(&case(&avon).unwrap()).unwrap(), 1);
    assert_eq!(s.holds().unwrap().keys().collect::<Vec<_>>(), [&k0]);
}

/// Counts per (capture day, owning force) made here from what was pushed.
fn counted(pushed: &[(ForceId, i64)]) -> std::collections::BTreeMap<(u32, ForceId), u64> {
    let mut out = std::collections::BTreeMap::new();
    for (f, secs) in pushed {
        *out.entry((t0().plus_millis(secs * 1000).day(), f.clone()))
            .or_default() += 1;
    }
    out
}

#[test]
fn reads_are_counted_per_day_and_force_through_expiry_reopening_and_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let avon = ForceId::new("AVON").unwrap();
    let kent = ForceId::new("KENT").unwrap();
    let day = 86_400;
    let mut pushed = Vec::new();
    {
        let s = RocksStore::open(dir.path(), StoreOptions::default()).unwrap();
        for (i, secs) in [0, 10, day + 5, 2 * day + 7, 2 * day + 8, 3 * day]
            .iter()
            .enumerate()
        {
            let f = if i % 3 == 0 { &kent } else { &avon };
            s.append(f, vec![new_read(&format!("r{i}"), "AB12CDE", *secs)])
                .unwrap();
            pushed.push((f.clone(), *secs));
        }
        // A duplicate is not counted again.
        s.append(&avon, vec![new_read("r1", "AB12CDE", 10)])
            .unwrap();
        let first = t0().day();
        assert_eq!(s.reads_by_day(first, first + 3).unwrap(), counted(&pushed));
        // A window of days.
        let middle: Vec<_> = counted(&pushed)
            .into_iter()
            .filter(|((d, _), _)| (first + 1..=first + 2).contains(d))
            .collect();
        assert_eq!(
            s.reads_by_day(first + 1, first + 2)
                .unwrap()
                .into_iter()
                .collect::<Vec<_>>(),
            middle
        );
        // Expiry takes its day's reads off.
        expire_day(&s, first, &[]);
        pushed.retain(|(_, secs)| *secs >= day);
        assert_eq!(s.reads_by_day(first, first + 3).unwrap(), counted(&pushed));
        s.close().unwrap();
    }
    let first = t0().day();
    {
        let s = RocksStore::open(dir.path(), StoreOptions::default()).unwrap();
        assert_eq!(s.reads_by_day(first, first + 3).unwrap(), counted(&pushed));
        s.close().unwrap();
    }
    // A store from before day counts (no counts, no mark) is counted when
    // opened.
    {
        let cfs = rocksdb::DB::list_cf(&rocksdb::Options::default(), dir.path()).unwrap();
        let db = rocksdb::DB::open_cf(&rocksdb::Options::default(), dir.path(), &cfs).unwrap();
        let meta = db.cf_handle("meta").unwrap();
        let keys: Vec<Box<[u8]>> = db
            .iterator_cf(meta, rocksdb::IteratorMode::Start)
            .map(|kv| kv.unwrap().0)
            .filter(|k| k.starts_with(b"daycount"))
            .collect();
        assert!(keys.len() > 1);
        for k in keys {
            db.delete_cf(meta, k).unwrap();
        }
    }
    let s = RocksStore::open(dir.path(), StoreOptions::default()).unwrap();
    assert_eq!(s.reads_by_day(first, first + 3).unwrap(), counted(&pushed));
    s.append(&avon, vec![new_read("late", "AB12CDE", 3 * day + 1)])
        .unwrap();
    pushed.push((avon.clone(), 3 * day + 1));
    assert_eq!(s.reads_by_day(first, first + 3).unwrap(), counted(&pushed));
}
