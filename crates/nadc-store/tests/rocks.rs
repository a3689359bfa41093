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
    }
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
