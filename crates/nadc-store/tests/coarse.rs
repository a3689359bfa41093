//! The coarse cells a store says its reads lie in (what a node tells its
//! peers, so that a search far from all of them skips it): exactly the
//! cells of the reads held, by h3o's own parent relation, wherever the
//! reads were taken; kept across reopening and after retention.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use nadc_core::read::ReadInput;
use nadc_core::{ForceId, Timestamp};
use nadc_store::{ExpireDay, NewRead, RocksStore, Store, StoreOptions};

const DAY_MS: i64 = 86_400_000;

fn t0() -> Timestamp {
    Timestamp::parse_rfc3339("2026-10-01T00:00:00Z").unwrap()
}

/// splitmix64.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % n
    }
}

/// A read taken by a mobile unit at its own position.
fn read(i: usize, day: i64, (lat, lon): (f64, f64)) -> NewRead {
    let read = ReadInput {
        read_id: format!("r{i}"),
        vrm: format!("AB{:02}CDE", i % 50),
        observed_at: Some(t0().plus_millis(day * DAY_MS + i as i64 * 1_000)),
        camera_id: "VAN".into(),
        lat: Some(lat),
        lon: Some(lon),
        ..Default::default()
    }
    .validate()
    .unwrap();
    NewRead {
        position: read.position.unwrap(),
        read,
        received_at: t0(),
        alerts: Vec::new(),
    }
}

fn coarse(lat: f64, lon: f64) -> u64 {
    let ll = h3o::LatLng::new(lat, lon).unwrap();
    u64::from(ll.to_cell(h3o::Resolution::Five))
}

#[test]
fn the_coarse_cells_are_those_of_the_reads_held() {
    let dir = tempfile::tempdir().unwrap();
    let opts = || StoreOptions {
        settle_in_background: false,
        ..StoreOptions::default()
    };
    let force = ForceId::new("AVON").unwrap();
    let mut rng = Rng(7);
    // Three days of reads anywhere in a box of 2° by 3° (some hundreds of
    // coarse cells), the first day's also in a corner no later read is.
    let mut held: Vec<(i64, f64, f64)> = Vec::new();
    for i in 0..3_000 {
        let day = (i % 3) as i64;
        let (lat, lon) = if day == 0 && i % 2 == 0 {
            (54.0 + rng.below(500) as f64 / 1000.0, -4.0)
        } else {
            (
                51.0 + rng.below(2_000) as f64 / 1000.0,
                -3.0 + rng.below(3_000) as f64 / 1000.0,
            )
        };
        held.push((day, lat, lon));
    }
    let cells_of = |reads: &[(i64, f64, f64)]| -> Vec<u64> {
        let set: BTreeSet<u64> = reads.iter().map(|r| coarse(r.1, r.2)).collect();
        set.into_iter().collect()
    };
    {
        let s = RocksStore::open(dir.path(), opts()).unwrap();
        assert!(s.coarse_cells().unwrap().is_empty(), "an empty store");
        for (b, chunk) in held.chunks(250).enumerate() {
            let reads = chunk
                .iter()
                .enumerate()
                .map(|(k, r)| read(b * 250 + k, r.0, (r.1, r.2)))
                .collect();
            s.append(&force, reads).unwrap();
        }
        let want = cells_of(&held);
        assert!(
            want.len() > 100,
            "{} cells: the data miss the point",
            want.len()
        );
        assert_eq!(s.coarse_cells().unwrap(), want);
        // Settling a day moves its reads, not where they lie.
        s.settle_day(t0().day()).unwrap();
        assert_eq!(s.coarse_cells().unwrap(), want);
        s.close().unwrap();
    }
    // Kept when reopened; and once the first day has gone, the corner's
    // cells are no longer said to hold reads.
    let s = RocksStore::open(dir.path(), opts()).unwrap();
    assert_eq!(s.coarse_cells().unwrap(), cells_of(&held));
    let mut from_seq = 0;
    loop {
        let out = s
            .expire(ExpireDay {
                day: t0().day(),
                from_seq,
                max: 500,
                ..Default::default()
            })
            .unwrap();
        match out.next_seq {
            Some(n) => from_seq = n,
            None => break,
        }
    }
    held.retain(|r| r.0 != 0);
    let want = cells_of(&held);
    assert!(!want.contains(&coarse(54.2, -4.0)), "the corner is gone");
    assert_eq!(s.coarse_cells().unwrap(), want);
}
