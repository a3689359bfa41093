//! The clone check's recent reads in memory against the store they stand in
//! for: on a real RocksDB, every answer memory gives must be the store's.
#![allow(clippy::unwrap_used)]

mod common;

use nadc_core::read::ReadInput;
use nadc_core::{ForceId, GeoPoint, Timestamp, Vrm};
use nadc_node::recent::RecentReads;
use nadc_store::{NewRead, RocksStore, Store, StoreOptions};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const MIN: i64 = 60_000;

fn t0() -> Timestamp {
    Timestamp::parse_rfc3339("2026-11-20T00:00:00Z").unwrap()
}

/// 30 VRMs read anywhere in a square degree; one read in ten late, by up
/// to five hours.
struct Traffic {
    rng: ChaCha8Rng,
    vrms: Vec<String>,
    clock: Timestamp,
    id: u32,
}

impl Traffic {
    fn vrm(&mut self) -> String {
        self.vrms[self.rng.random_range(0..self.vrms.len())].clone()
    }

    /// The next read, the clock moved on by up to `step_ms`.
    fn read(&mut self, step_ms: i64) -> NewRead {
        self.clock = self.clock.plus_millis(self.rng.random_range(0..step_ms));
        self.id += 1;
        let late = if self.rng.random_bool(0.1) {
            self.rng.random_range(0..300) * MIN
        } else {
            0
        };
        let at = self
            .clock
            .plus_millis(-late - self.rng.random_range(0..5 * MIN));
        let pos = GeoPoint::new(
            51.0 + self.rng.random_range(0.0..1.0),
            -2.0 + self.rng.random_range(0.0..1.0),
        )
        .unwrap();
        let read = ReadInput {
            read_id: format!("r{}", self.id),
            vrm: self.vrm(),
            observed_at: Some(at),
            camera_id: "C1".into(),
            lat: Some(pos.lat()),
            lon: Some(pos.lon()),
            ..Default::default()
        }
        .validate()
        .unwrap();
        NewRead::new(read, pos, t0())
    }
}

/// What the clone check remembers of each read.
fn sightings(reads: &[NewRead]) -> Vec<(Vrm, Timestamp, GeoPoint)> {
    reads
        .iter()
        .map(|r| (r.read.vrm.clone(), r.read.observed_at, r.position))
        .collect()
}

/// Reads appended in batches to a store that already held an hour of reads
/// when memory started, with re-pushed duplicates; after each batch, probes
/// of random VRMs at random times up to eight hours back, asked of both.
/// Returns (answered by memory, asked).
fn run(seed: u64, max_reads: usize) -> (usize, usize) {
    let dir = tempfile::tempdir().unwrap();
    let store = RocksStore::open(
        dir.path(),
        StoreOptions {
            sync: false,
            ..Default::default()
        },
    )
    .unwrap();
    let force = ForceId::new("AVON").unwrap();
    let mut traffic = Traffic {
        rng: ChaCha8Rng::seed_from_u64(seed),
        vrms: (0..30).map(|i| format!("AB{i:02}CDE")).collect(),
        clock: t0(),
        id: 0,
    };
    let look = 90 * MIN;
    let before: Vec<NewRead> = (0..200).map(|_| traffic.read(20_000)).collect();
    store.append(&force, before).unwrap();
    let recent = RecentReads::new(store.stats().unwrap().latest, max_reads);
    let (mut answered, mut asked) = (0, 0);
    for _ in 0..150 {
        let n = traffic.rng.random_range(1..40);
        let mut batch: Vec<NewRead> = (0..n).map(|_| traffic.read(60_000)).collect();
        if traffic.rng.random_bool(0.2) {
            batch.push(batch[0].clone());
        }
        let sightings = sightings(&batch);
        let outcomes = store.append(&force, batch).unwrap();
        recent.add(&sightings, &outcomes);
        // A quarter at the very time of a read just stored (the read is its
        // own earlier neighbour), the rest anywhere up to eight hours back.
        let probes: Vec<(Vrm, Timestamp)> = (0..20)
            .map(|_| {
                if traffic.rng.random_bool(0.25) {
                    let (v, t, _) = &sightings[traffic.rng.random_range(0..sightings.len())];
                    return (v.clone(), *t);
                }
                let back = traffic.rng.random_range(0..8 * 60) * MIN;
                (
                    Vrm::normalise(&traffic.vrm()).unwrap(),
                    traffic.clock.plus_millis(-back),
                )
            })
            .collect();
        let truth = store.vrm_neighbours(&probes, look).unwrap();
        let memory = recent.neighbours(probes.iter().map(|(v, t)| (v, *t)), look);
        for ((memory, truth), probe) in memory.into_iter().zip(truth).zip(&probes) {
            asked += 1;
            if let Some(memory) = memory {
                answered += 1;
                assert_eq!(memory, truth, "seed {seed}, probe at {}", probe.1);
            }
        }
        assert!(recent.len() <= max_reads);
    }
    (answered, asked)
}

#[test]
fn memory_answers_what_the_store_would_and_most_of_it() {
    let (mut answered, mut asked) = (0, 0);
    for seed in 0..6 {
        // Room for everything, then a cap that evicts all along.
        for cap in [100_000, 150] {
            let (a, n) = run(seed, cap);
            answered += a;
            asked += n;
        }
    }
    // Not a vacuous pass: memory answered many probes by itself (the probes
    // reach up to eight hours back, past what it holds; 48 % measured).
    assert!(
        answered * 3 > asked,
        "memory answered {answered} of {asked} probes"
    );
}

/// A retention pass makes memory forget the days it deletes before it
/// deletes them: afterwards no probe is answered with a deleted read.
#[test]
fn a_retention_pass_makes_memory_forget_the_days_it_deletes() {
    use std::sync::Arc;

    use nadc_core::time::ManualClock;
    use nadc_node::governance::Governance;
    use nadc_node::retention::Retention;

    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(
        RocksStore::open(
            dir.path(),
            StoreOptions {
                sync: false,
                ..Default::default()
            },
        )
        .unwrap(),
    );
    let force = ForceId::new("AVON").unwrap();
    let recent = Arc::new(RecentReads::new(None, 1_000));
    // AB01CDE every ten minutes across midnight: t0 is the first day's
    // end, so six reads fall on each side.
    let midnight = t0().plus_millis(86_400_000);
    let reads: Vec<NewRead> = (-6..6)
        .map(|i| {
            let at = midnight.plus_millis(i * 10 * MIN);
            common::read_at(&format!("r{i}"), "AB01CDE", at, t0())
        })
        .collect();
    let sightings = sightings(&reads);
    let outcomes = store.append(&force, reads).unwrap();
    recent.add(&sightings, &outcomes);
    assert_eq!(recent.len(), 12);

    // A year after midnight: the first day goes.
    let clock = ManualClock::new(midnight.plus_millis(365 * 86_400_000 + MIN));
    let governance = Governance::load(
        store.clone(),
        "test".into(),
        Arc::new(clock),
        Default::default(),
    )
    .unwrap();
    let retention = Retention {
        store: store.clone(),
        governance: Arc::new(governance),
        policy: nadc_proto::log::RetentionPolicy {
            default_days: 365,
            per_force: Default::default(),
        },
        recent: Some(recent.clone()),
    };
    let report = retention.run_once().unwrap();
    assert_eq!(report.deleted.values().sum::<u64>(), 6);
    assert_eq!(recent.len(), 6);
    let vrm = Vrm::normalise("AB01CDE").unwrap();
    let probes: Vec<(Vrm, Timestamp)> = (-8..8)
        .map(|i| (vrm.clone(), midnight.plus_millis(i * 5 * MIN)))
        .collect();
    let truth = store.vrm_neighbours(&probes, 90 * MIN).unwrap();
    let memory = recent.neighbours(probes.iter().map(|(v, t)| (v, *t)), 90 * MIN);
    for ((memory, truth), probe) in memory.into_iter().zip(truth).zip(&probes) {
        if let Some(memory) = memory {
            assert_eq!(memory, truth, "probe at {}", probe.1);
        }
    }
}
