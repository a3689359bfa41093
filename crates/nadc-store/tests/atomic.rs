//! What one durable write of the store holds beside the reads it appends:
//! the clone flags between reads of the same append, and the replicated
//! log's position (a real RocksDB in a temp dir).
#![allow(clippy::unwrap_used)]

use std::ops::ControlFlow;

use nadc_core::alert::{Alert, AlertDetail};
use nadc_core::read::ReadInput;
use nadc_core::{ForceId, Timestamp};
use nadc_store::{
    Appended, BatchClone, CloneFlag, NewRead, RocksStore, Store, StoreOptions, scan_counts,
};

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
    NewRead::new(
        read.clone(),
        read.position.unwrap(),
        t0().plus_millis(90_000),
    )
}

/// Message `seq` of the log stream the tests apply.
fn at(seq: u64) -> nadc_store::LogPosition {
    nadc_store::LogPosition {
        stream: "nadc-reads".into(),
        seq,
        scope: "stream nadc-reads created then; subjects all".into(),
    }
}

fn flag(km: f64) -> Option<CloneFlag> {
    Some(CloneFlag {
        distance_m: km * 1000.0,
        seconds: 60.0,
        speed_kmh: km * 60.0,
    })
}

fn alerts(s: &dyn Store) -> Vec<(u64, Alert)> {
    let mut out = Vec::new();
    s.alerts(0, &mut |p, a| {
        out.push((p, a));
        ControlFlow::Continue(())
    })
    .unwrap();
    out
}

/// (read seq, other seq, distance km) of each clone alert.
fn clones(s: &dyn Store) -> Vec<(u64, u64, f64)> {
    alerts(s)
        .into_iter()
        .filter_map(|(_, a)| match a.detail {
            AlertDetail::Clone {
                other, distance_m, ..
            } => Some((a.read.seq, other.seq, distance_m / 1000.0)),
            _ => None,
        })
        .collect()
}

fn seq(o: &Appended) -> u64 {
    match o {
        Appended::Stored { seq } | Appended::Duplicate { seq } => *seq,
    }
}

#[test]
fn a_clone_flag_within_an_append_names_the_nearest_earlier_read_stored_new_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = RocksStore::open(dir.path(), StoreOptions::default()).unwrap();
    let avon = ForceId::new("AVON").unwrap();
    // Stored before: the read the batch's nearest candidate duplicates.
    let first = s
        .append(&avon, vec![new_read("old", "AB12CDE", 50)])
        .unwrap();
    let old_seq = seq(&first[0]);

    // Batch order is not capture order: "late" (captured at 100 s) comes
    // first, its earlier reads after it. Its nearest earlier read, "old"
    // again, is a duplicate; the next, "mid", is stored new here, so the
    // flag with "mid" is the one raised.
    let mut late = new_read("late", "AB12CDE", 100);
    late.earlier_in_batch = vec![
        BatchClone {
            earlier: 1,
            flag: flag(300.0),
        },
        BatchClone {
            earlier: 2,
            flag: flag(200.0),
        },
        BatchClone {
            earlier: 3,
            flag: flag(100.0),
        },
    ];
    let old_again = new_read("old", "AB12CDE", 50);
    let mid = new_read("mid", "AB12CDE", 40);
    let early = new_read("early", "AB12CDE", 10);
    // A read whose nearest new earlier read raises no flag: nothing.
    let mut quiet = new_read("quiet", "XY99ZZZ", 100);
    quiet.earlier_in_batch = vec![BatchClone {
        earlier: 5,
        flag: None,
    }];
    let quiet_before = new_read("quiet-before", "XY99ZZZ", 90);
    let out = s
        .append(
            &avon,
            vec![late, old_again, mid, early, quiet, quiet_before],
        )
        .unwrap();
    assert!(matches!(out[1], Appended::Duplicate { seq } if seq == old_seq));
    let (late_seq, mid_seq) = (seq(&out[0]), seq(&out[2]));
    assert_eq!(clones(&s), vec![(late_seq, mid_seq, 200.0)]);
    // Raised when the read was received, as every replica applying the
    // same append would raise it.
    assert!(
        alerts(&s)
            .iter()
            .all(|(_, a)| a.raised_at == t0().plus_millis(90_000))
    );

    // The same batch again: every read a duplicate, nothing raised again.
    let mut again = new_read("late", "AB12CDE", 100);
    again.earlier_in_batch = vec![BatchClone {
        earlier: 1,
        flag: flag(1.0),
    }];
    s.append(&avon, vec![again, new_read("mid", "AB12CDE", 40)])
        .unwrap();
    assert_eq!(clones(&s).len(), 1);
}

#[test]
fn a_clone_flag_whose_earlier_reads_are_all_duplicates_raises_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = RocksStore::open(dir.path(), StoreOptions::default()).unwrap();
    let avon = ForceId::new("AVON").unwrap();
    s.append(&avon, vec![new_read("a", "AB12CDE", 10)]).unwrap();
    let mut b = new_read("b", "AB12CDE", 20);
    b.earlier_in_batch = vec![BatchClone {
        earlier: 1,
        flag: flag(50.0),
    }];
    let out = s
        .append(&avon, vec![b, new_read("a", "AB12CDE", 10)])
        .unwrap();
    assert!(matches!(
        out[..],
        [Appended::Stored { .. }, Appended::Duplicate { .. }]
    ));
    assert!(clones(&s).is_empty());
}

#[test]
fn a_log_position_is_written_with_what_it_applied_even_when_all_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let avon = ForceId::new("AVON").unwrap();
    let pos = |s: &RocksStore| s.log_position("nadc-reads").unwrap().map(|p| p.seq);
    {
        let s = RocksStore::open(dir.path(), StoreOptions::default()).unwrap();
        assert_eq!(pos(&s), None);
        let out = s
            .append_logged(&avon, vec![new_read("p1", "AB12CDE", 1)], &at(3))
            .unwrap();
        assert!(matches!(out[..], [Appended::Stored { .. }]));
        assert_eq!(s.log_position("nadc-reads").unwrap(), Some(at(3)));
        // The same read again, from a later message: a duplicate, and the
        // position still moves on.
        let out = s
            .append_logged(&avon, vec![new_read("p1", "AB12CDE", 1)], &at(7))
            .unwrap();
        assert!(matches!(out[..], [Appended::Duplicate { .. }]));
        assert_eq!(pos(&s), Some(7));
        // Another stream's position is its own.
        assert!(s.log_position("other").unwrap().is_none());
        // A plain append leaves it alone.
        s.append(&avon, vec![new_read("p2", "AB12CDF", 2)]).unwrap();
        assert_eq!(pos(&s), Some(7));
    }
    let s = RocksStore::open(dir.path(), StoreOptions::default()).unwrap();
    assert_eq!(s.log_position("nadc-reads").unwrap(), Some(at(7)));
    assert_eq!(scan_counts(&s).unwrap().values().sum::<u64>(), 2);
}

#[test]
fn a_position_set_on_its_own_follows_the_appends_before_it_and_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let avon = ForceId::new("AVON").unwrap();
    {
        let s = RocksStore::open(dir.path(), StoreOptions::default()).unwrap();
        s.append_logged(&avon, vec![new_read("p1", "AB12CDE", 1)], &at(1))
            .unwrap();
        s.set_log_position(&at(2)).unwrap();
        assert_eq!(s.log_position("nadc-reads").unwrap(), Some(at(2)));
        s.append_logged(&avon, vec![new_read("p2", "AB12CDE", 2)], &at(3))
            .unwrap();
        s.set_log_position(&at(4)).unwrap();
    }
    let s = RocksStore::open(dir.path(), StoreOptions::default()).unwrap();
    assert_eq!(s.log_position("nadc-reads").unwrap(), Some(at(4)));
    assert_eq!(scan_counts(&s).unwrap().values().sum::<u64>(), 2);
}

#[test]
fn a_read_is_found_by_what_names_it_on_every_replica() {
    let dir = tempfile::tempdir().unwrap();
    let s = RocksStore::open(dir.path(), StoreOptions::default()).unwrap();
    let (avon, kent) = (ForceId::new("AVON").unwrap(), ForceId::new("KENT").unwrap());
    let out = s
        .append(
            &avon,
            vec![new_read("a1", "AB12CDE", 1), new_read("a2", "AB12CDE", 2)],
        )
        .unwrap();
    let day = t0().day();
    let found = s
        .find_reads(&[
            (day, avon.clone(), "a2".into()),
            (day, kent.clone(), "a1".into()),
            (day + 1, avon.clone(), "a1".into()),
            (day, avon.clone(), "a9".into()),
            (day, avon.clone(), "a1".into()),
        ])
        .unwrap();
    let refs = |o: &Appended| Some(nadc_core::ReadRef { day, seq: seq(o) });
    assert_eq!(found, vec![refs(&out[1]), None, None, None, refs(&out[0])]);
}

#[test]
fn alerts_from_the_log_are_written_with_its_position_even_when_there_are_none() {
    let dir = tempfile::tempdir().unwrap();
    let avon = ForceId::new("AVON").unwrap();
    let s = RocksStore::open(dir.path(), StoreOptions::default()).unwrap();
    let out = s
        .append_logged(&avon, vec![new_read("p1", "AB12CDE", 1)], &at(1))
        .unwrap();
    let alert = Alert {
        raised_at: t0(),
        read: nadc_core::ReadRef {
            day: t0().day(),
            seq: seq(&out[0]),
        },
        read_force: avon.clone(),
        detail: AlertDetail::Clone {
            other: nadc_core::ReadRef {
                day: t0().day(),
                seq: seq(&out[0]),
            },
            distance_m: 1.0,
            seconds: 1.0,
            speed_kmh: 3.6,
        },
    };
    let first = s.log_alerts_logged(vec![alert.clone()], &at(2)).unwrap();
    assert_eq!(s.log_position("nadc-reads").unwrap(), Some(at(2)));
    let none = s.log_alerts_logged(Vec::new(), &at(3)).unwrap();
    assert!(none.is_empty());
    assert_eq!(s.log_position("nadc-reads").unwrap(), Some(at(3)));
    let second = s.log_alerts_logged(vec![alert], &at(4)).unwrap();
    assert!(second[0] > first[0]);
    assert_eq!(alerts(&s).len(), 2);
}
