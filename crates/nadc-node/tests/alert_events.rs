//! Alert events built on a real RocksDB while retention deletes: alerts a
//! subscriber's page read just before a retention write are left out, not
//! reported as corruption.
#![allow(clippy::unwrap_used)]

mod common;

use std::ops::ControlFlow;

use nadc_core::alert::{Alert, AlertDetail};
use nadc_core::{ForceId, Timestamp};
use nadc_node::alerts::events;
use nadc_store::{Appended, ExpireDay, NewRead, ReadRef, RocksStore, Store, StoreOptions};

fn t0() -> Timestamp {
    Timestamp::parse_rfc3339("2026-11-20T23:00:00Z").unwrap()
}

/// A read of CL0NE12 `mins` minutes after t0, raising a clone alert
/// against `other` if given.
fn read(id: &str, mins: i64, other: Option<ReadRef>) -> NewRead {
    let mut new = common::read_at(id, "CL0NE12", t0().plus_millis(mins * 60_000), t0());
    new.alerts.extend(other.map(|other| AlertDetail::Clone {
        other,
        distance_m: 170_000.0,
        seconds: 600.0,
        speed_kmh: 1_020.0,
    }));
    new
}

fn bof_read_id(row: &Option<nadc_proto::pb::ReadRow>) -> String {
    let row = row.as_ref().unwrap();
    row.provenance.as_ref().unwrap().bof_read_id.clone()
}

fn stored(store: &dyn Store, force: &ForceId, r: NewRead) -> ReadRef {
    let day = r.read.observed_at.day();
    match store.append(force, vec![r]).unwrap()[0] {
        Appended::Stored { seq } => ReadRef { day, seq },
        ref other => panic!("{other:?}"),
    }
}

#[test]
fn alerts_retention_deleted_after_they_were_read_are_left_out_of_the_events() {
    let dir = tempfile::tempdir().unwrap();
    let store = RocksStore::open(dir.path(), StoreOptions::default()).unwrap();
    let force = ForceId::new("AVON").unwrap();
    // a just before midnight; b and c after it, each flagged against the
    // read before.
    let a = stored(&store, &force, read("a", 50, None));
    let b = stored(&store, &force, read("b", 70, Some(a)));
    stored(&store, &force, read("c", 80, Some(b)));
    let mut page: Vec<(u64, Alert)> = Vec::new();
    store
        .alerts(0, &mut |p, alert| {
            page.push((p, alert));
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(page.len(), 2);

    // Retention deletes a's day, and with a the alert naming it, after
    // the page was read.
    let step = store
        .expire(ExpireDay {
            day: a.day,
            max: 100,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(step.alerts_deleted, 1);

    let built = events(&store, "node-1", page).unwrap();
    let ids: Vec<(String, String)> = built
        .iter()
        .map(|e| (bof_read_id(&e.read), bof_read_id(&e.other_read)))
        .collect();
    assert_eq!(ids, [("c".to_string(), "b".to_string())]);
}
