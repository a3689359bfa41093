//! Convoy analysis against a brute-force reference over every stored read,
//! on a real store.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};

use nadc_core::read::ReadInput;
use nadc_core::{ForceId, StoredRead, Timestamp, Vrm};
use nadc_query::{ConvoyQuery, QueryError, convoy};
use nadc_store::{Appended, NewRead, RocksStore, Store, StoreOptions};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};

/// 23:00, so two hours of reads cross a UTC day boundary.
fn t0() -> Timestamp {
    Timestamp::parse_rfc3339("2026-11-20T23:00:00Z").unwrap()
}

fn force(f: &str) -> ForceId {
    ForceId::new(f).unwrap()
}

fn vrm(v: &str) -> Vrm {
    Vrm::normalise(v).unwrap()
}

/// A store in a temporary directory and every read it holds.
struct Db {
    _dir: tempfile::TempDir,
    store: RocksStore,
    reads: Vec<StoredRead>,
}

/// A read to store: owning force, VRM, camera, ms after `t0`.
type Spec = (ForceId, String, String, i64);

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
    let mut by_force: BTreeMap<ForceId, Vec<NewRead>> = BTreeMap::new();
    for (i, (f, v, camera, ms)) in specs.iter().enumerate() {
        // Each camera at its own place.
        let site = camera.bytes().map(f64::from).sum::<f64>() / 1000.0;
        let read = ReadInput {
            read_id: format!("r{i}"),
            vrm: v.clone(),
            observed_at: Some(t0().plus_millis(*ms)),
            camera_id: camera.clone(),
            lat: Some(51.4 + site),
            lon: Some(-2.6 + site),
            ..Default::default()
        }
        .validate()
        .unwrap();
        by_force.entry(f.clone()).or_default().push(NewRead::new(
            read.clone(),
            read.position.unwrap(),
            t0(),
        ));
    }
    let mut reads = Vec::new();
    for (f, news) in by_force {
        let out = store.append(&f, news.clone()).unwrap();
        for (n, o) in news.into_iter().zip(out) {
            let Appended::Stored { seq } = o else {
                panic!("duplicate in fixture")
            };
            reads.push(StoredRead {
                seq,
                force: f.clone(),
                received_at: n.received_at,
                position: n.position,
                read: n.read,
            });
        }
    }
    Db {
        _dir: dir,
        store,
        reads,
    }
}

/// What is compared: per companion (VRM, co-occurrences, cameras, targets,
/// pairs as (target seq, companion seq, gap ms)), ranked; and the total.
type Summary = (
    Vec<(String, u32, u32, Vec<String>, Vec<(u64, u64, i64)>)>,
    usize,
);

/// The reference: every target read against every read, straight from the
/// module's definition.
fn reference(reads: &[StoredRead], q: &ConvoyQuery) -> (Summary, usize) {
    let targets: BTreeSet<&Vrm> = q.targets.iter().collect();
    let w = i64::from(q.window_s) * 1000;
    let target_reads: Vec<&StoredRead> = reads
        .iter()
        .filter(|r| {
            targets.contains(&r.read.vrm)
                && q.from <= r.read.observed_at
                && r.read.observed_at <= q.to
        })
        .collect();
    // companion -> (target time, target seq) -> (target read, closest read)
    type PerTarget<'a> = BTreeMap<(Timestamp, u64), (&'a StoredRead, &'a StoredRead)>;
    let mut found: BTreeMap<&Vrm, PerTarget> = BTreeMap::new();
    for tr in &target_reads {
        for r in reads {
            let gap = r.read.observed_at.millis() - tr.read.observed_at.millis();
            if r.force != tr.force
                || r.read.camera_id != tr.read.camera_id
                || gap.abs() > w
                || targets.contains(&r.read.vrm)
            {
                continue;
            }
            let slot = found
                .entry(&r.read.vrm)
                .or_default()
                .entry((tr.read.observed_at, tr.seq))
                .or_insert((tr, r));
            let key = |c: &StoredRead| {
                let g = c.read.observed_at.millis() - tr.read.observed_at.millis();
                (g.abs(), c.read.observed_at, c.seq)
            };
            if key(r) < key(slot.1) {
                slot.1 = r;
            }
        }
    }
    let mut companions: Vec<_> = found
        .into_iter()
        .map(|(v, per)| {
            let cameras: BTreeSet<(&ForceId, &str)> = per
                .values()
                .map(|(t, _)| (&t.force, t.read.camera_id.as_str()))
                .collect();
            let accompanied: BTreeSet<String> =
                per.values().map(|(t, _)| t.read.vrm.to_string()).collect();
            let pairs: Vec<(u64, u64, i64)> = per
                .values()
                .map(|(t, c)| {
                    (
                        t.seq,
                        c.seq,
                        c.read.observed_at.millis() - t.read.observed_at.millis(),
                    )
                })
                .collect();
            (
                v.to_string(),
                per.len() as u32,
                cameras.len() as u32,
                accompanied.into_iter().collect::<Vec<_>>(),
                pairs,
            )
        })
        .filter(|c| c.1 >= q.min_count && c.2 >= q.min_cameras)
        .collect();
    companions.sort_by(|a, b| b.1.cmp(&a.1).then(b.2.cmp(&a.2)).then(a.0.cmp(&b.0)));
    let total = companions.len();
    companions.truncate(q.limit);
    ((companions, total), target_reads.len())
}

fn summarise(r: &nadc_query::ConvoyResult) -> Summary {
    (
        r.companions
            .iter()
            .map(|c| {
                (
                    c.vrm.to_string(),
                    c.co_occurrences,
                    c.cameras,
                    c.targets.iter().map(|t| t.to_string()).collect(),
                    c.pairs
                        .iter()
                        .map(|p| (p.target.seq, p.companion.seq, p.gap_ms))
                        .collect(),
                )
            })
            .collect(),
        r.total_companions,
    )
}

fn query(targets: Vec<Vrm>, from: Timestamp, to: Timestamp, window_s: u32) -> ConvoyQuery {
    ConvoyQuery {
        targets,
        from,
        to,
        window_s,
        min_count: 1,
        min_cameras: 1,
        limit: usize::MAX,
        max_target_reads: usize::MAX,
        max_candidates: usize::MAX,
    }
}

const POOL: [&str; 8] = ["AA1", "BB2", "CC3", "DD4", "EE5", "FF6", "GG7", "HH8"];
const CAMERAS: [&str; 3] = ["C1", "C2", "C3"];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]
    #[test]
    fn convoy_equals_brute_force(
        seed in any::<u64>(),
        n in 50usize..300,
        targets in proptest::collection::vec(0usize..POOL.len() + 1, 1..4),
        // Often a multiple of the grid, so gaps of exactly W occur.
        window_s in prop_oneof![1u32..600, (1u32..20).prop_map(|k| k * 30), Just(3600u32)],
        coarse in any::<bool>(),
        min_count in 1u32..4,
        min_cameras in 1u32..3,
        limit in prop_oneof![Just(usize::MAX), 0usize..5],
        window in (0i64..7_200_000, 0i64..7_200_000),
    ) {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let forces = [force("AVON"), force("KENT")];
        // Times on a 5 s or a 60 s grid, so equal times and equal gaps
        // either side (ties) are common.
        let (slots, step) = if coarse { (120i64, 60_000) } else { (1440, 5_000) };
        let specs: Vec<Spec> = (0..n)
            .map(|_| {
                (
                    forces[rng.random_range(0..2)].clone(),
                    POOL[rng.random_range(0..POOL.len())].to_string(),
                    CAMERAS[rng.random_range(0..CAMERAS.len())].to_string(),
                    rng.random_range(0..slots) * step,
                )
            })
            .collect();
        let db = build(&specs);
        // Index POOL.len() is a VRM with no reads.
        let targets: Vec<Vrm> = targets
            .into_iter()
            .map(|i| vrm(POOL.get(i).copied().unwrap_or("ZZ9")))
            .collect();
        let (a, b) = window;
        let mut q = query(targets, t0().plus_millis(a.min(b)), t0().plus_millis(a.max(b)), window_s);
        q.min_count = min_count;
        q.min_cameras = min_cameras;
        q.limit = limit;
        let got = convoy(&db.store, &q).unwrap();
        let (want, target_reads) = reference(&db.reads, &q);
        prop_assert_eq!(summarise(&got), want.clone());
        prop_assert_eq!(got.target_reads, target_reads);
        prop_assert_eq!(got.truncated, want.1 > q.limit);
        // The fetched records are the pairs' reads.
        for c in &got.companions {
            for p in &c.pairs {
                prop_assert_eq!(&p.companion.read.vrm, &c.vrm);
                prop_assert_eq!(&p.companion.force, &p.target.force);
                prop_assert_eq!(&p.companion.read.camera_id, &p.target.read.camera_id);
                prop_assert_eq!(
                    p.gap_ms,
                    p.companion.read.observed_at.millis() - p.target.read.observed_at.millis()
                );
            }
        }
    }
}

#[test]
fn a_planted_companion_ranks_first() {
    let avon = force("AVON");
    let kent = force("KENT");
    let mut specs: Vec<Spec> = Vec::new();
    // The target passes five cameras (two forces) ten minutes apart; the
    // companion passes each 20 s later.
    let route = [
        (&avon, "C1"),
        (&avon, "C2"),
        (&avon, "C3"),
        (&kent, "C1"),
        (&kent, "C4"),
    ];
    for (i, (f, camera)) in route.iter().enumerate() {
        let t = i as i64 * 600_000;
        specs.push(((*f).clone(), "TARGET1".into(), camera.to_string(), t));
        specs.push((
            (*f).clone(),
            "FOLLOW1".into(),
            camera.to_string(),
            t + 20_000,
        ));
    }
    // Noise: vehicles near the target at one or two cameras, or at the
    // right camera too long after, or at a same-named camera of the other
    // force.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    for k in 0..40 {
        let i = rng.random_range(0..route.len());
        let (f, camera) = route[i];
        let t = i as i64 * 600_000 + rng.random_range(-100_000..100_000);
        specs.push((f.clone(), format!("NOISE{}", k % 12), camera.to_string(), t));
    }
    // Ties for the closest read: 30 s before and after the target (the
    // earlier wins), and two reads at the same time (the lower seq wins).
    specs.push((avon.clone(), "TIE1".into(), "C2".into(), 600_000 + 30_000));
    specs.push((avon.clone(), "TIE1".into(), "C2".into(), 600_000 - 30_000));
    specs.push((avon.clone(), "TIE2".into(), "C3".into(), 1_200_000 + 7_000));
    specs.push((avon.clone(), "TIE2".into(), "C3".into(), 1_200_000 + 7_000));
    specs.push((kent.clone(), "OTHER1".into(), "C2".into(), 600_000));
    specs.push((avon.clone(), "LATE1".into(), "C1".into(), 200_000));
    let db = build(&specs);
    let q = query(
        vec![vrm("TARGET1"), vrm("target 1")],
        t0(),
        t0().plus_millis(3_600_000),
        ConvoyQuery::DEFAULT_WINDOW_S,
    );
    let got = convoy(&db.store, &q).unwrap();
    assert_eq!(got.targets, vec![vrm("TARGET1")]);
    assert_eq!(got.target_reads, 5);
    let first = &got.companions[0];
    assert_eq!(first.vrm, vrm("FOLLOW1"));
    assert_eq!((first.co_occurrences, first.cameras), (5, 5));
    assert_eq!(first.targets, vec![vrm("TARGET1")]);
    assert_eq!(
        first.pairs.iter().map(|p| p.gap_ms).collect::<Vec<_>>(),
        vec![20_000; 5]
    );
    assert!(
        first
            .pairs
            .windows(2)
            .all(|w| w[0].target.read.observed_at < w[1].target.read.observed_at)
    );
    assert!(got.companions[1..].iter().all(|c| c.co_occurrences < 5));
    let names: BTreeSet<String> = got.companions.iter().map(|c| c.vrm.to_string()).collect();
    assert!(!names.contains("OTHER1"), "another force's camera C2");
    assert!(!names.contains("LATE1"), "200 s after the target");
    let find = |v: &str| {
        got.companions
            .iter()
            .find(|c| c.vrm == vrm(v))
            .unwrap()
            .pairs
            .clone()
    };
    assert_eq!(
        find("TIE1").iter().map(|p| p.gap_ms).collect::<Vec<_>>(),
        vec![-30_000]
    );
    let tie2 = find("TIE2");
    let tie2_seqs: Vec<u64> = db
        .reads
        .iter()
        .filter(|r| r.read.vrm == vrm("TIE2"))
        .map(|r| r.seq)
        .collect();
    assert_eq!(tie2.len(), 1);
    assert_eq!(tie2[0].companion.seq, *tie2_seqs.iter().min().unwrap());
    // The planted convoy agrees with the reference.
    assert_eq!(summarise(&got), reference(&db.reads, &q).0);
    // Filters and limits.
    let strict = ConvoyQuery {
        min_count: 5,
        min_cameras: 5,
        ..q.clone()
    };
    let got = convoy(&db.store, &strict).unwrap();
    assert_eq!(got.companions.len(), 1);
    assert_eq!(got.total_companions, 1);
    let one = ConvoyQuery {
        limit: 1,
        ..q.clone()
    };
    let got = convoy(&db.store, &one).unwrap();
    assert_eq!(got.companions.len(), 1);
    assert!(got.truncated && got.total_companions > 1);
}

#[test]
fn refuses_bad_and_broad_queries() {
    let avon = force("AVON");
    let specs: Vec<Spec> = (0..20)
        .map(|i| (avon.clone(), format!("V{}", i % 4), "C1".into(), i * 1000))
        .collect();
    let db = build(&specs);
    let q = query(vec![vrm("V0")], t0(), t0().plus_millis(60_000), 120);
    assert!(convoy(&db.store, &q).is_ok());
    let invalid = |q: ConvoyQuery, field: &str| match convoy(&db.store, &q) {
        Err(QueryError::Invalid(m)) => assert!(m.contains(field), "{m}"),
        other => panic!("{field}: {other:?}"),
    };
    invalid(
        ConvoyQuery {
            targets: vec![],
            ..q.clone()
        },
        "targets",
    );
    invalid(
        ConvoyQuery {
            from: q.to.plus_millis(1),
            ..q.clone()
        },
        "inverted",
    );
    invalid(
        ConvoyQuery {
            window_s: 0,
            ..q.clone()
        },
        "window_s",
    );
    invalid(
        ConvoyQuery {
            window_s: 3601,
            ..q.clone()
        },
        "window_s",
    );
    invalid(
        ConvoyQuery {
            min_count: 0,
            ..q.clone()
        },
        "min_count",
    );
    invalid(
        ConvoyQuery {
            min_cameras: 0,
            ..q.clone()
        },
        "min_cameras",
    );
    let broad = |q: ConvoyQuery| {
        assert!(matches!(
            convoy(&db.store, &q),
            Err(QueryError::TooBroad(_))
        ))
    };
    // V0 has 5 reads; 20 entries lie around them.
    broad(ConvoyQuery {
        max_target_reads: 4,
        ..q.clone()
    });
    broad(ConvoyQuery {
        max_candidates: 19,
        ..q.clone()
    });
    let fits = convoy(
        &db.store,
        &ConvoyQuery {
            max_target_reads: 5,
            max_candidates: 20,
            ..q.clone()
        },
    )
    .unwrap();
    assert_eq!(fits.entries_examined, 20);
}
