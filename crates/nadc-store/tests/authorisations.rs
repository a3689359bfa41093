//! Authorisations in the RocksDB store: ids scoped by force, revocation,
//! and a store written before either still loading.
#![allow(clippy::unwrap_used)]

use nadc_core::access::{Authorisation, Revocation};
use nadc_core::{ForceId, Timestamp};
use nadc_store::{RocksStore, Store, StoreOptions};

const DAY: i64 = 86_400_000;

fn now() -> Timestamp {
    Timestamp::parse_rfc3339("2026-11-24T12:00:00Z").unwrap()
}

fn force(f: &str) -> ForceId {
    ForceId::new(f).unwrap()
}

fn auth(f: &str, id: &str, by: &str) -> Authorisation {
    Authorisation {
        id: id.into(),
        granted_by: by.into(),
        force: force(f),
        granted_at: now(),
        case_ref: "OP-OLD".into(),
        purpose: "serious-crime".into(),
        user: String::new(),
        data_from: now().plus_millis(-200 * DAY),
        data_to: now(),
        expires_at: now().plus_millis(7 * DAY),
        reason: "murder inquiry".into(),
        revoked: None,
    }
}

fn revocation(by: &str) -> Revocation {
    Revocation {
        by: by.into(),
        at: now().plus_millis(DAY),
        reason: "case closed".into(),
    }
}

fn open(dir: &std::path::Path) -> RocksStore {
    RocksStore::open(dir, StoreOptions::default()).unwrap()
}

#[test]
fn two_forces_may_use_one_id_and_a_revocation_touches_its_own_force_only() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = open(dir.path());
        assert!(s.put_authorisation(&auth("AVON", "AUTH-1", "sam")).unwrap());
        assert!(s.put_authorisation(&auth("KENT", "AUTH-1", "kim")).unwrap());
        // The same force and id again: refused, the first kept.
        assert!(!s.put_authorisation(&auth("AVON", "AUTH-1", "sue")).unwrap());
        // Nothing to revoke under a force that has no such id.
        assert_eq!(
            s.revoke_authorisation(&force("MET"), "AUTH-1", &revocation("max"))
                .unwrap(),
            None
        );
        let (a, fresh) = s
            .revoke_authorisation(&force("KENT"), "AUTH-1", &revocation("kay"))
            .unwrap()
            .unwrap();
        assert!(fresh);
        assert_eq!(a.force, force("KENT"));
        // A second revocation changes nothing: the first stands.
        let (a, fresh) = s
            .revoke_authorisation(&force("KENT"), "AUTH-1", &revocation("kim"))
            .unwrap()
            .unwrap();
        assert!(!fresh);
        assert_eq!(a.revoked.unwrap().by, "kay");
        s.close().unwrap();
    }
    let s = open(dir.path());
    let all: Vec<(String, String, String, Option<String>)> = s
        .authorisations()
        .unwrap()
        .into_iter()
        .map(|a| {
            (
                a.force.to_string(),
                a.id,
                a.granted_by,
                a.revoked.map(|r| r.by),
            )
        })
        .collect();
    assert_eq!(
        all,
        [
            ("AVON".into(), "AUTH-1".into(), "sam".into(), None),
            (
                "KENT".into(),
                "AUTH-1".into(),
                "kim".into(),
                Some("kay".into())
            ),
        ]
    );
}

/// An authorisation as the store wrote it before ids were scoped by force:
/// key `AUTH-OLD`, value the postcard encoding of (id "AUTH-OLD", granted
/// by "sam", force "AVON", granted 2026-11-24T12:00:00Z, case "OP-OLD",
/// purpose "serious-crime", any user, data from 200 days before to the
/// grant, expiring 7 days after it, reason "murder inquiry"). Encoded by
/// hand from postcard's format (varint lengths, zigzag varint times), not
/// by this crate.
const UNSCOPED: &str = "08415554482d4f4c440373616d0441564f4e80e8ead6c168064f502d4f4c440d736572696f75732d6372696d650080e8abf7c06780e8ead6c16880f8ce97c6680e6d757264657220696e7175697279";

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn raw_keys(dir: &std::path::Path) -> Vec<Vec<u8>> {
    let opts = rocksdb::Options::default();
    let names = rocksdb::DB::list_cf(&opts, dir).unwrap();
    let db = rocksdb::DB::open_cf(&opts, dir, &names).unwrap();
    let cf = db.cf_handle("authorisations").unwrap();
    db.iterator_cf(cf, rocksdb::IteratorMode::Start)
        .map(|kv| kv.unwrap().0.to_vec())
        .collect()
}

#[test]
fn a_store_upgraded_in_place_keeps_its_authorisations_under_force_scoped_keys() {
    let dir = tempfile::tempdir().unwrap();
    open(dir.path()).close().unwrap();
    {
        let opts = rocksdb::Options::default();
        let names = rocksdb::DB::list_cf(&opts, dir.path()).unwrap();
        let db = rocksdb::DB::open_cf(&opts, dir.path(), &names).unwrap();
        let cf = db.cf_handle("authorisations").unwrap();
        db.put_cf(cf, b"AUTH-OLD", unhex(UNSCOPED)).unwrap();
    }
    {
        let s = open(dir.path());
        assert_eq!(
            s.authorisations().unwrap(),
            [auth("AVON", "AUTH-OLD", "sam")]
        );
        // Its id is now AVON's: KENT may use it too, AVON not again.
        assert!(
            !s.put_authorisation(&auth("AVON", "AUTH-OLD", "sue"))
                .unwrap()
        );
        assert!(
            s.put_authorisation(&auth("KENT", "AUTH-OLD", "kim"))
                .unwrap()
        );
        s.close().unwrap();
    }
    // Moved, not copied: only force-scoped keys are left.
    assert_eq!(
        raw_keys(dir.path()),
        [b"AVON\x00AUTH-OLD".to_vec(), b"KENT\x00AUTH-OLD".to_vec()]
    );
    // Opening again moves nothing and loses nothing.
    let s = open(dir.path());
    assert_eq!(s.authorisations().unwrap().len(), 2);
    let (a, fresh) = s
        .revoke_authorisation(&force("AVON"), "AUTH-OLD", &revocation("sue"))
        .unwrap()
        .unwrap();
    assert!(fresh && a.revoked.is_some());
}

#[test]
fn an_authorisation_under_another_key_is_reported_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = open(dir.path());
        s.put_authorisation(&auth("AVON", "AUTH-1", "sam")).unwrap();
        s.close().unwrap();
    }
    {
        // Someone with the disk copies AVON's authorisation under KENT.
        let opts = rocksdb::Options::default();
        let names = rocksdb::DB::list_cf(&opts, dir.path()).unwrap();
        let db = rocksdb::DB::open_cf(&opts, dir.path(), &names).unwrap();
        let cf = db.cf_handle("authorisations").unwrap();
        let v = db.get_cf(cf, b"AVON\x00AUTH-1").unwrap().unwrap();
        db.put_cf(cf, b"KENT\x00AUTH-1", v).unwrap();
    }
    let s = open(dir.path());
    let e = s.authorisations().unwrap_err().to_string();
    assert!(e.contains("under another key"), "{e}");
}
