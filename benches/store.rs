//! In-process benchmarks (no network, no TLS): the store's durable write
//! rate, and the pure functions on the ingest and search paths.
//!
//! `cargo bench --bench store`. The store benchmark writes batches of 1,000
//! reads to a real RocksDB in a temp dir with the write-ahead log synced
//! (as the node does) and, for comparison in the same run, unsynced, so the
//! cost of durability and of the network (see benches/peer/postgis.sh) can be
//! told apart.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use nadc_core::read::ReadInput;
use nadc_core::{Circle, ForceId, GeoPoint, Timestamp, Vrm};
use nadc_store::{NewRead, RocksStore, Store, StoreOptions};

const BATCH: usize = 1000;

fn batch(start: u64) -> Vec<NewRead> {
    let t0 = Timestamp::parse_rfc3339("2026-11-24T00:00:00Z").expect("valid time");
    (0..BATCH as u64)
        .map(|i| {
            let n = start + i;
            let read = ReadInput {
                read_id: format!("AVON-{n:012}"),
                vrm: format!(
                    "AB{:02} {}",
                    n % 100,
                    ["CDE", "XYZ", "KLM", "PRS"][(n % 4) as usize]
                ),
                observed_at: Some(t0.plus_millis((n * 997 % 86_400_000) as i64)),
                camera_id: format!("AVON-CAM-{:04}", n % 200),
                lat: Some(51.3 + (n % 1000) as f64 * 0.0003),
                lon: Some(-2.7 + (n % 777) as f64 * 0.0005),
                bearing: Some(90.0),
                lane: Some(1),
                confidence: Some(91.0),
                make: Some("Ford".into()),
                model: Some("Focus".into()),
                colour: Some("Blue".into()),
                ..Default::default()
            }
            .validate()
            .expect("valid read");
            NewRead {
                position: read.position.expect("has a position"),
                read,
                received_at: t0,
                alerts: Vec::new(),
                earlier_in_batch: Vec::new(),
            }
        })
        .collect()
}

fn store_append(c: &mut Criterion) {
    let force = ForceId::new("AVON").expect("valid force");
    let mut g = c.benchmark_group("store_append");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.sample_size(30);
    for sync in [true, false] {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = RocksStore::open(
            dir.path(),
            StoreOptions {
                sync,
                ..Default::default()
            },
        )
        .expect("open store");
        let mut next = 0u64;
        g.bench_function(
            if sync {
                "synced_1000_reads"
            } else {
                "unsynced_1000_reads"
            },
            |b| {
                b.iter_batched(
                    || {
                        next += BATCH as u64;
                        batch(next)
                    },
                    |reads| store.append(&force, reads).expect("append"),
                    BatchSize::LargeInput,
                )
            },
        );
        store.close().expect("close");
    }
    g.finish();
}

fn pure_functions(c: &mut Criterion) {
    let centre = GeoPoint::new(51.4545, -2.5879).expect("valid point");
    for (name, r) in [("cover_circle_1km", 1_000.0), ("cover_circle_5km", 5_000.0)] {
        let circle = Circle::new(centre, r).expect("valid circle");
        c.bench_function(name, |b| {
            b.iter(|| {
                nadc_core::geo::cover_circle(black_box(&circle), nadc_core::geo::DEFAULT_MAX_RANGES)
            })
        });
    }
    c.bench_function("vrm_normalise", |b| {
        b.iter(|| Vrm::normalise(black_box("ab12 cde")))
    });
    c.bench_function("index_cell", |b| b.iter(|| black_box(centre).index_cell()));
}

criterion_group!(benches, store_append, pure_functions);
criterion_main!(benches);
