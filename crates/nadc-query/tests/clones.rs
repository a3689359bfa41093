//! Cloned-plate detection against a brute-force reference over every
//! stored read, on a real store.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use nadc_core::read::ReadInput;
use nadc_core::{ForceId, GeoPoint, StoredRead, Timestamp, Vrm};
use nadc_query::{CloneQuery, CloneRule, QueryError, clone_check, clones};
use nadc_store::{Appended, NewRead, RocksStore, Store, StoreOptions};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};

/// 22:00, so the reads cross UTC day boundaries.
fn t0() -> Timestamp {
    Timestamp::parse_rfc3339("2026-11-20T22:00:00Z").unwrap()
}

fn vrm(v: &str) -> Vrm {
    Vrm::normalise(v).unwrap()
}

fn avon() -> ForceId {
    ForceId::new("AVON").unwrap()
}

struct Db {
    _dir: tempfile::TempDir,
    store: RocksStore,
    reads: Vec<StoredRead>,
}

/// A read to store: VRM, ms after `t0`, position.
type Spec = (String, i64, GeoPoint);

fn build(specs: &[Spec]) -> Db {
    let dir = tempfile::tempdir().unwrap();
    let store = RocksStore::open(
        dir.path(),
        StoreOptions {
            sync: false,
            ..Default::default()
        },
    )
    .unwrap();
    let news: Vec<NewRead> = specs
        .iter()
        .enumerate()
        .map(|(i, (v, ms, p))| {
            let read = ReadInput {
                read_id: format!("r{i}"),
                vrm: v.clone(),
                observed_at: Some(t0().plus_millis(*ms)),
                camera_id: format!("C{}", i % 7),
                lat: Some(p.lat()),
                lon: Some(p.lon()),
                ..Default::default()
            }
            .validate()
            .unwrap();
            NewRead::new(read, *p, t0())
        })
        .collect();
    let out = store.append(&avon(), news.clone()).unwrap();
    let reads = news
        .into_iter()
        .zip(out)
        .map(|(n, o)| {
            let Appended::Stored { seq } = o else {
                panic!("duplicate in fixture")
            };
            StoredRead {
                seq,
                force: avon(),
                received_at: n.received_at,
                position: n.position,
                read: n.read,
            }
        })
        .collect();
    Db {
        _dir: dir,
        store,
        reads,
    }
}

/// The reference: per VRM, its reads in the window by (time, seq), every
/// consecutive pair tested with the rule written out again. Returns
/// (VRM, first seq, second seq, speed) ordered by VRM then first time.
fn reference(reads: &[StoredRead], q: &CloneQuery) -> Vec<(String, u64, u64, f64)> {
    let mut by_vrm: BTreeMap<&Vrm, Vec<&StoredRead>> = BTreeMap::new();
    for r in reads {
        let t = r.read.observed_at;
        if q.from <= t && t <= q.to && q.vrm.as_ref().is_none_or(|v| *v == r.read.vrm) {
            by_vrm.entry(&r.read.vrm).or_default().push(r);
        }
    }
    let mut out = Vec::new();
    for (v, mut track) in by_vrm {
        track.sort_by_key(|r| (r.read.observed_at, r.seq));
        for w in track.windows(2) {
            let d = w[0].position.distance_m(w[1].position);
            let s =
                (w[1].read.observed_at.millis() - w[0].read.observed_at.millis()) as f64 / 1000.0;
            if d >= q.min_distance_m && (s == 0.0 || d / s * 3.6 > q.max_speed_kmh) {
                let speed = if s == 0.0 { f64::INFINITY } else { d / s * 3.6 };
                out.push((v.to_string(), w[0].seq, w[1].seq, speed));
            }
        }
    }
    out
}

fn query(from: Timestamp, to: Timestamp) -> CloneQuery {
    CloneQuery {
        from,
        to,
        max_speed_kmh: CloneRule::DEFAULT_MAX_SPEED_KMH,
        min_distance_m: CloneRule::DEFAULT_MIN_DISTANCE_M,
        vrm: None,
        limit: usize::MAX,
        max_reads_in_memory: usize::MAX,
    }
}

const VRMS: usize = 12;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]
    #[test]
    fn clones_equal_brute_force(
        seed in any::<u64>(),
        n in 20usize..300,
        max_speed_kmh in 20.0f64..400.0,
        min_distance_m in prop_oneof![Just(0.0f64), 0.0f64..50_000.0],
        window in (0i64..3 * 86_400_000, 0i64..3 * 86_400_000),
        limit in prop_oneof![Just(usize::MAX), 0usize..6],
        one_vrm in proptest::option::of(0usize..VRMS),
        small_memory in any::<bool>(),
    ) {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        // A few sites over southern England; times on a 1-minute grid so
        // equal times (infinite speed) occur.
        let sites: Vec<GeoPoint> = (0..10)
            .map(|_| GeoPoint::new(rng.random_range(50.5..52.5), rng.random_range(-4.0..0.5)).unwrap())
            .collect();
        let specs: Vec<Spec> = (0..n)
            .map(|_| {
                (
                    format!("P{}", rng.random_range(0..VRMS)),
                    rng.random_range(0..3 * 1440i64) * 60_000,
                    sites[rng.random_range(0..sites.len())],
                )
            })
            .collect();
        let db = build(&specs);
        let (a, b) = window;
        let mut q = query(t0().plus_millis(a.min(b)), t0().plus_millis(a.max(b)));
        q.max_speed_kmh = max_speed_kmh;
        q.min_distance_m = min_distance_m;
        q.limit = limit;
        q.vrm = one_vrm.map(|i| vrm(&format!("P{i}")));
        // The most reads any one VRM has in the window: memory below the
        // whole window but above any one VRM's forces several passes.
        let mut per_vrm: BTreeMap<&Vrm, usize> = BTreeMap::new();
        let mut in_window = 0usize;
        for r in &db.reads {
            if q.from <= r.read.observed_at && r.read.observed_at <= q.to {
                *per_vrm.entry(&r.read.vrm).or_default() += 1;
                in_window += 1;
            }
        }
        let busiest = per_vrm.values().copied().max().unwrap_or(0);
        if small_memory {
            q.max_reads_in_memory = busiest.max(1);
        }
        let got = clones(&db.store, &q).unwrap();
        let mut want = reference(&db.reads, &q);
        let total = want.len();
        want.truncate(limit);
        let got_pairs: Vec<(String, u64, u64, f64)> = got
            .pairs
            .iter()
            .map(|p| (p.first.read.vrm.to_string(), p.first.seq, p.second.seq, p.speed_kmh))
            .collect();
        prop_assert_eq!(got_pairs, want);
        prop_assert_eq!(got.total, total);
        prop_assert_eq!(got.truncated, total > limit);
        let examined = match &q.vrm {
            Some(v) => per_vrm.get(v).copied().unwrap_or(0),
            None => in_window,
        };
        prop_assert_eq!(got.reads_examined, examined as u64);
        if small_memory && q.vrm.is_none() && in_window > busiest.max(1) {
            prop_assert!(got.passes > 1);
        }
        for p in &got.pairs {
            prop_assert_eq!(&p.first.read.vrm, &p.second.read.vrm);
            prop_assert!(p.first.read.observed_at <= p.second.read.observed_at);
            prop_assert_eq!(p.distance_m, p.first.position.distance_m(p.second.position));
        }
    }
}

fn bristol() -> GeoPoint {
    GeoPoint::new(51.45, -2.59).unwrap()
}

/// `km` kilometres east of Bristol.
fn east_of_bristol(km: f64) -> GeoPoint {
    GeoPoint::new(51.45, -2.59 + km / (111.32 * 51.45f64.to_radians().cos())).unwrap()
}

#[test]
fn a_planted_clone_is_found_and_normal_traffic_is_not() {
    let mut specs: Vec<Spec> = Vec::new();
    // Normal traffic: vehicles driving east at 60 km/h (a camera every
    // 5 km, every 5 minutes), several times a day.
    for v in 0..5 {
        for trip in 0..3 {
            for k in 0..8 {
                let t = (v * 600_000) + trip * 4 * 3_600_000 + k * 300_000;
                specs.push((format!("NORMAL{v}"), t, east_of_bristol(5.0 * k as f64)));
            }
        }
    }
    let normal = build(&specs);
    let q = query(t0(), t0().plus_millis(86_400_000));
    let got = clones(&normal.store, &q).unwrap();
    assert_eq!(got.total, 0, "{:?}", got.pairs);
    assert_eq!(got.reads_examined, 120);
    // A clone: the same plate 200 km apart 30 minutes apart.
    specs.push(("CL0NE1".into(), 3_600_000, bristol()));
    specs.push(("CL0NE1".into(), 5_400_000, east_of_bristol(200.0)));
    let db = build(&specs);
    let got = clones(&db.store, &q).unwrap();
    assert_eq!(got.total, 1);
    let p = &got.pairs[0];
    assert_eq!(p.first.read.vrm, vrm("CL0NE1"));
    assert_eq!(p.first.position, bristol());
    assert!(
        (p.distance_m - 200_000.0).abs() < 1_000.0,
        "{}",
        p.distance_m
    );
    assert_eq!(p.seconds, 1800.0);
    assert!((p.speed_kmh - 400.0).abs() < 2.0, "{}", p.speed_kmh);
    // The same through the one-VRM path, and memory for one VRM at a time.
    let one = clones(
        &db.store,
        &CloneQuery {
            vrm: Some(vrm("CL0NE1")),
            ..q.clone()
        },
    )
    .unwrap();
    assert_eq!(one.pairs, got.pairs);
    let passes = clones(
        &db.store,
        &CloneQuery {
            max_reads_in_memory: 24,
            ..q.clone()
        },
    )
    .unwrap();
    assert_eq!(passes.pairs, got.pairs);
    assert!(passes.passes > 2, "{}", passes.passes);
    // A cap below one VRM's reads is refused, not truncated.
    assert!(matches!(
        clones(
            &db.store,
            &CloneQuery {
                max_reads_in_memory: 23,
                ..q.clone()
            }
        ),
        Err(QueryError::TooBroad(_))
    ));
    // Bad input.
    for bad in [
        CloneQuery {
            from: q.to.plus_millis(1),
            ..q.clone()
        },
        CloneQuery {
            max_speed_kmh: 0.0,
            ..q.clone()
        },
        CloneQuery {
            min_distance_m: f64::NAN,
            ..q.clone()
        },
    ] {
        assert!(matches!(
            clones(&db.store, &bad),
            Err(QueryError::Invalid(_))
        ));
    }
}

#[test]
fn clone_check_flags_the_neighbour_of_a_new_read() {
    let specs: Vec<Spec> = vec![
        ("LIVE1".into(), 0, bristol()),
        ("LIVE1".into(), 3_600_000, east_of_bristol(10.0)),
        ("OTHER".into(), 1_800_000, bristol()),
        // An hour before the first, far east.
        ("LIVE1".into(), -3_600_000, east_of_bristol(400.0)),
        // A stored clone pair, to check a read that is already held.
        ("SELF1".into(), 0, bristol()),
        ("SELF1".into(), 1_800_000, east_of_bristol(200.0)),
    ];
    let db = build(&specs);
    let rule = CloneRule::default();
    let hour = 3_600_000;
    let check = |at: i64, p: GeoPoint, _read_id: &str| {
        clone_check(
            &db.store,
            &vrm("LIVE1"),
            t0().plus_millis(at),
            p,
            &rule,
            6 * hour,
        )
        .unwrap()
    };
    // 200 km away 30 minutes after the first read: flagged against it; the
    // later read, 190 km away 30 minutes after, is flagged too.
    let flagged = check(1_800_000, east_of_bristol(200.0), "new");
    assert_eq!(flagged.len(), 2, "{flagged:?}");
    assert_eq!(flagged[0].other, db.reads[0].read_ref());
    assert_eq!(flagged[0].seconds, 1800.0);
    assert!((flagged[0].speed_kmh - 400.0).abs() < 2.0);
    assert_eq!(flagged[1].other, db.reads[1].read_ref());
    // Near Bristol half an hour later: plausible.
    assert!(check(1_800_000, east_of_bristol(3.0), "new").is_empty());
    // At the same time as a stored read, far away: infinite speed. The
    // stored read at the same time is the earlier neighbour (the new read
    // sorts after it), so the one an hour before is not compared.
    let same_time = check(0, east_of_bristol(50.0), "new");
    assert_eq!(same_time.len(), 1);
    assert_eq!(same_time[0].other, db.reads[0].read_ref());
    assert_eq!(same_time[0].speed_kmh, f64::INFINITY);
    // A re-push of a stored read finds its stored copy first, at distance
    // 0: nothing is flagged (and the store drops a duplicate's alerts).
    let again = clone_check(
        &db.store,
        &vrm("SELF1"),
        t0().plus_millis(1_800_000),
        east_of_bristol(200.0),
        &rule,
        6 * hour,
    )
    .unwrap();
    assert!(again.is_empty(), "{again:?}");
    // Outside the look-back: nothing to compare with.
    let lonely = clone_check(
        &db.store,
        &vrm("LIVE1"),
        t0().plus_millis(30 * hour),
        east_of_bristol(300.0),
        &rule,
        hour,
    )
    .unwrap();
    assert!(lonely.is_empty());
}
