//! Days settling from the open form to the settled form, on a real store:
//! every read path answers as a brute-force model of the reads held says,
//! before, during and after settling, with late reads, expiry, holds and
//! reopening between; and so do the coarse cells the reads lie in.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use nadc_core::read::ReadInput;
use nadc_core::{CellRange, ForceId, Timestamp, Vrm};
use nadc_store::{
    Appended, ExpireDay, NewRead, ReadRef, RocksStore, Store, StoreOptions, VrmEntry,
};

fn t0() -> Timestamp {
    Timestamp::parse_rfc3339("2026-10-01T00:00:00Z").unwrap()
}

const DAY_MS: i64 = 86_400_000;
const DAYS: i64 = 4;

/// splitmix64: the test's own randomness, seeded per case.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What the model keeps of a read.
#[derive(Clone, Debug, PartialEq)]
struct Held {
    force: String,
    vrm: String,
    camera: String,
    at: Timestamp,
    lat: f64,
    lon: f64,
}

/// The reads held, by sequence number.
type Model = BTreeMap<u64, Held>;

fn forces() -> [ForceId; 2] {
    ["AVON", "KENT"].map(|f| ForceId::new(f).unwrap())
}

/// A read as a BOF sends it, received at `t0`.
fn new_read(
    id: String,
    vrm: String,
    at: Timestamp,
    camera: String,
    (lat, lon): (f64, f64),
) -> NewRead {
    let read = ReadInput {
        read_id: id,
        vrm,
        observed_at: Some(at),
        camera_id: camera,
        lat: Some(lat),
        lon: Some(lon),
        ..Default::default()
    }
    .validate()
    .unwrap();
    let position = read.position.unwrap();
    NewRead::new(read, position, t0())
}

/// Appends `n` random reads (four days, 30 vehicles, five fixed cameras
/// and a van that moves) and adds what was stored to the model.
fn append(s: &RocksStore, model: &mut Model, rng: &mut Rng, batch: usize, n: usize) {
    let force = forces()[batch % 2].clone();
    let news: Vec<NewRead> = (0..n)
        .map(|i| {
            let cam = rng.below(6);
            let (lat, lon) = if cam == 5 {
                (
                    51.0 + rng.below(1000) as f64 / 1000.0,
                    -2.0 - rng.below(1000) as f64 / 1000.0,
                )
            } else {
                (51.4 + cam as f64 / 100.0, -2.6)
            };
            let camera = if cam == 5 {
                "VAN".into()
            } else {
                format!("C{cam}")
            };
            let vrm = format!("AB{:02}CDE", rng.below(30));
            let at = t0().plus_millis(rng.below((DAYS * DAY_MS) as u64) as i64);
            new_read(format!("{batch}-{i}"), vrm, at, camera, (lat, lon))
        })
        .collect();
    let out = s.append(&force, news.clone()).unwrap();
    for (n, o) in news.into_iter().zip(out) {
        let Appended::Stored { seq } = o else {
            panic!("no duplicates are sent")
        };
        model.insert(
            seq,
            Held {
                force: force.as_str().into(),
                vrm: n.read.vrm.as_str().into(),
                camera: n.read.camera_id.clone(),
                at: n.read.observed_at,
                lat: n.position.lat(),
                lon: n.position.lon(),
            },
        );
    }
}

fn held(r: &nadc_core::StoredRead) -> Held {
    Held {
        force: r.force.as_str().into(),
        vrm: r.read.vrm.as_str().into(),
        camera: r.read.camera_id.clone(),
        at: r.read.observed_at,
        lat: r.position.lat(),
        lon: r.position.lon(),
    }
}

/// Every read path against the model.
fn check(s: &RocksStore, model: &Model, rng: &mut Rng, when: &str) {
    // Every read, once.
    let mut all = Model::new();
    s.scan_days(Timestamp::EPOCH, Timestamp::MAX, &mut |r| {
        assert!(
            all.insert(r.seq, held(&r)).is_none(),
            "{when}: seq {} twice",
            r.seq
        );
        ControlFlow::Continue(())
    })
    .unwrap();
    same(&all, model, &format!("{when}: scan"));
    // Every held read's coarse cell (by h3o's own parent relation) is
    // among those the store says hold reads.
    let cells: BTreeSet<u64> = s.coarse_cells().unwrap().into_iter().collect();
    for (seq, h) in model {
        let cell = coarse(h.lat, h.lon);
        assert!(cells.contains(&cell), "{when}: seq {seq}'s cell {cell:x}");
    }
    // The whole plane over a random window: every read in it, once.
    let (from, to) = window(rng);
    let mut seqs = Vec::new();
    s.geo_scan(
        &[CellRange {
            start: 0,
            end: u64::MAX,
        }],
        from,
        to,
        &mut |h| {
            assert_eq!(
                held(&h.read().unwrap()),
                model[&h.seq],
                "{when}: geo record"
            );
            seqs.push(h.seq);
            ControlFlow::Continue(())
        },
    )
    .unwrap();
    let want: Vec<u64> = model
        .iter()
        .filter(|(_, r)| r.at >= from && r.at <= to)
        .map(|(s, _)| *s)
        .collect();
    let got: BTreeSet<u64> = seqs.iter().copied().collect();
    assert_eq!(got.len(), seqs.len(), "{when}: geo gave a read twice");
    assert_eq!(got, want.into_iter().collect(), "{when}: geo");
    // Timelines and cameras, in time order (ties by seq).
    for _ in 0..4 {
        let vrm = format!("AB{:02}CDE", rng.below(30));
        let (from, to) = window(rng);
        let mut got = Vec::new();
        s.vrm_timeline(&Vrm::normalise(&vrm).unwrap(), from, to, &mut |r| {
            got.push((r.read.observed_at, r.seq));
            ControlFlow::Continue(())
        })
        .unwrap();
        assert_eq!(
            got,
            ordered(model, from, to, |r| r.vrm == vrm),
            "{when}: timeline"
        );
        let camera = match rng.below(6) {
            5 => "VAN".to_string(),
            c => format!("C{c}"),
        };
        let force = &forces()[rng.below(2) as usize];
        let mut got = Vec::new();
        s.camera_reads(force, &camera, from, to, &mut |r| {
            got.push((r.read.observed_at, r.seq));
            ControlFlow::Continue(())
        })
        .unwrap();
        let want = ordered(model, from, to, |r| {
            r.camera == camera && r.force == force.as_str()
        });
        assert_eq!(got, want, "{when}: camera {camera}");
        // The reads either side of a moment.
        let at = t0().plus_millis(rng.below((DAYS * DAY_MS) as u64) as i64);
        let look = rng.below(DAY_MS as u64) as i64;
        let got = s
            .vrm_neighbours(&[(Vrm::normalise(&vrm).unwrap(), at)], look)
            .unwrap();
        let near = ordered(model, at.plus_millis(-look), at.plus_millis(look), |r| {
            r.vrm == vrm
        });
        let earlier = near.iter().rev().find(|(t, _)| *t <= at).map(|(_, s)| *s);
        let later = near.iter().find(|(t, _)| *t > at).map(|(_, s)| *s);
        let seq = |e: &Option<VrmEntry>| e.as_ref().map(|e| e.seq);
        assert_eq!(
            (seq(&got[0][0]), seq(&got[0][1])),
            (earlier, later),
            "{when}: neighbours"
        );
    }
    // By reference, in the order asked.
    let refs: Vec<ReadRef> = model
        .iter()
        .filter(|_| rng.below(20) == 0)
        .map(|(seq, r)| ReadRef {
            day: r.at.day(),
            seq: *seq,
        })
        .collect();
    let got = s.get_reads(&refs).unwrap();
    assert_eq!(got.len(), refs.len(), "{when}: get_reads");
    for (r, g) in refs.iter().zip(&got) {
        assert_eq!(
            (g.seq, held(g)),
            (r.seq, model[&r.seq].clone()),
            "{when}: get_reads"
        );
    }
}

/// Fails naming the first read that differs (the models are large).
fn same(got: &Model, want: &Model, what: &str) {
    if got != want {
        let missing = want.keys().find(|k| !got.contains_key(k));
        let extra = got.keys().find(|k| !want.contains_key(k));
        let changed = want
            .iter()
            .find(|(k, v)| got.get(k).is_some_and(|g| g != *v));
        panic!(
            "{what}: {} reads, want {}; first missing {missing:?}, first extra {extra:?}, first changed {changed:?}",
            got.len(),
            want.len()
        );
    }
}

fn window(rng: &mut Rng) -> (Timestamp, Timestamp) {
    let a = rng.below((DAYS * DAY_MS) as u64) as i64;
    let b = rng.below((DAYS * DAY_MS) as u64) as i64;
    (t0().plus_millis(a.min(b)), t0().plus_millis(a.max(b)))
}

fn ordered(
    model: &Model,
    from: Timestamp,
    to: Timestamp,
    keep: impl Fn(&Held) -> bool,
) -> Vec<(Timestamp, u64)> {
    let mut v: Vec<(Timestamp, u64)> = model
        .iter()
        .filter(|(_, r)| r.at >= from && r.at <= to && keep(r))
        .map(|(s, r)| (r.at, *s))
        .collect();
    v.sort();
    v
}

fn open(dir: &std::path::Path) -> RocksStore {
    RocksStore::open(
        dir,
        StoreOptions {
            sync: false,
            settle_in_background: false,
            ..Default::default()
        },
    )
    .unwrap()
}

#[test]
fn every_read_path_answers_as_the_model_through_settling_late_reads_expiry_and_reopening() {
    for case in 0..6u64 {
        let dir = tempfile::tempdir().unwrap();
        let mut s = open(dir.path());
        let mut rng = Rng(case);
        let mut model = Model::new();
        let day0 = t0().day();
        for step in 0..14 {
            let when = format!("case {case} step {step}");
            match rng.below(7) {
                0..=2 => {
                    let n = 1 + rng.below(400) as usize;
                    append(&s, &mut model, &mut rng, step, n)
                }
                3 | 4 => {
                    let day = day0 + rng.below(DAYS as u64) as u32;
                    let had = model.values().filter(|r| r.at.day() == day).count();
                    let settled = s.settle_day(day).unwrap();
                    // A settled day's reads are all in the settled form.
                    assert!(!s.open_days().unwrap().contains(&day), "{when}");
                    if let Some(settled) = settled {
                        assert!(settled.reads as usize <= had, "{when}");
                    }
                }
                5 => {
                    // Expiry of one force's reads of a day, some held.
                    let day = day0 + rng.below(DAYS as u64) as u32;
                    let keep = forces()[rng.below(2) as usize].clone();
                    let held: HashSet<u64> = model
                        .iter()
                        .filter(|(_, r)| r.at.day() == day && rng.below(4) == 0)
                        .map(|(s, _)| *s)
                        .collect();
                    let mut from_seq = 0;
                    loop {
                        let out = s
                            .expire(ExpireDay {
                                day,
                                keep_forces: [keep.clone()].into(),
                                held: held.clone(),
                                from_seq,
                                max: 150,
                            })
                            .unwrap();
                        match out.next_seq {
                            Some(n) => from_seq = n,
                            None => break,
                        }
                    }
                    model.retain(|seq, r| {
                        r.at.day() != day || r.force == keep.as_str() || held.contains(seq)
                    });
                }
                _ => {
                    s.close().unwrap();
                    drop(s);
                    s = open(dir.path());
                }
            }
            check(&s, &model, &mut rng, &when);
        }
        // Every day settled, and a whole day expired: nothing left of it.
        s.settle_open_days().unwrap();
        assert!(s.open_days().unwrap().is_empty());
        check(&s, &model, &mut rng, &format!("case {case}, all settled"));
        let mut from_seq = 0;
        loop {
            let out = s
                .expire(ExpireDay {
                    day: day0,
                    from_seq,
                    max: 100,
                    ..Default::default()
                })
                .unwrap();
            match out.next_seq {
                Some(n) => from_seq = n,
                None => break,
            }
        }
        model.retain(|_, r| r.at.day() != day0);
        check(
            &s,
            &model,
            &mut rng,
            &format!("case {case}, first day expired"),
        );
    }
}

#[test]
fn a_search_running_while_its_day_settles_meets_each_read_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let mut rng = Rng(99);
    let mut model = Model::new();
    for batch in 0..6 {
        append(&s, &mut model, &mut rng, batch, 500);
    }
    let days: Vec<u32> = s.open_days().unwrap();
    assert_eq!(days.len(), DAYS as usize);
    // The first day settles half-way through a scan of everything, a
    // late read of it arrives, and the next day settles too: the scan
    // (one snapshot) meets every read it started with, once.
    let mut seen = Model::new();
    let mut n = 0;
    let before = model.clone();
    s.scan_days(Timestamp::EPOCH, Timestamp::MAX, &mut |r| {
        n += 1;
        if n == 300 {
            assert!(s.settle_day(days[0]).unwrap().is_some());
            append(&s, &mut model, &mut Rng(5), 100, 3);
            assert!(s.settle_day(days[1]).unwrap().is_some());
        }
        assert!(
            seen.insert(r.seq, held(&r)).is_none(),
            "seq {} twice",
            r.seq
        );
        ControlFlow::Continue(())
    })
    .unwrap();
    same(&seen, &before, "the scan begun before settling");
    // Afterwards, the late reads too.
    check(&s, &model, &mut rng, "after");
}

#[test]
fn days_settle_in_the_background_once_ended_and_quiet() {
    let dir = tempfile::tempdir().unwrap();
    let s = RocksStore::open(
        dir.path(),
        StoreOptions {
            sync: false,
            settle_after: Duration::ZERO,
            settle_quiet: Duration::ZERO,
            ..Default::default()
        },
    )
    .unwrap();
    let mut rng = Rng(3);
    let mut model = Model::new();
    append(&s, &mut model, &mut rng, 0, 200);
    assert!(!s.open_days().unwrap().is_empty());
    // The days ended long ago and take no more reads: the settling
    // thread moves them all. Waited for by their state, with a deadline.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !s.open_days().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "days still open after 60 s");
        std::thread::yield_now();
    }
    check(&s, &model, &mut rng, "settled in the background");
    s.close().unwrap();
}

#[test]
fn expiry_and_settling_run_whole_while_reads_keep_arriving() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(open(dir.path()));
    let avon = forces()[0].clone();
    let day_reads = |tag: &str, day: i64, n: usize| -> Vec<NewRead> {
        (0..n)
            .map(|i| {
                new_read(
                    format!("{tag}-{i}"),
                    format!("AB{:02}CDE", i % 30),
                    t0().plus_millis(day * DAY_MS + i as i64 * 1000),
                    "C1".into(),
                    (51.5, -2.5),
                )
            })
            .collect()
    };
    s.append(&avon, day_reads("a", 0, 2_000)).unwrap();
    s.append(&avon, day_reads("b", 1, 2_000)).unwrap();
    // Reads of a third day keep arriving from three BOFs throughout, so
    // the writer always has a queue to drain into a group.
    let stop = Arc::new(AtomicBool::new(false));
    let feeders: Vec<_> = (0..3)
        .map(|k| {
            let (s, stop, avon) = (s.clone(), stop.clone(), avon.clone());
            std::thread::spawn(move || {
                let mut batch = 0;
                while !stop.load(Ordering::Relaxed) {
                    s.append(&avon, day_reads(&format!("c{k}-{batch}"), 2, 50))
                        .unwrap();
                    batch += 1;
                }
                batch
            })
        })
        .collect();
    let first = t0().day();
    // Settling's last step is never lost in a group: the day is settled
    // when the call returns.
    let settled = s.settle_day(first).unwrap().unwrap();
    assert_eq!(settled.reads, 2_000);
    assert!(!s.open_days().unwrap().contains(&first));
    // Nor is an expiry step: every one runs, 10 reads at a time.
    let (mut from_seq, mut steps, mut deleted) = (0, 0, 0);
    loop {
        let out = s
            .expire(ExpireDay {
                day: first + 1,
                from_seq,
                max: 10,
                ..Default::default()
            })
            .unwrap();
        deleted += out.deleted.values().sum::<u64>();
        steps += 1;
        match out.next_seq {
            Some(n) => from_seq = n,
            None => break,
        }
    }
    stop.store(true, Ordering::Relaxed);
    let batches: usize = feeders.into_iter().map(|f| f.join().unwrap()).sum();
    assert_eq!((deleted, steps), (2_000, 200));
    assert!(batches > 0);
    assert_eq!(
        s.reads_by_day(first, first + 2)
            .unwrap()
            .values()
            .sum::<u64>(),
        2_000 + 50 * batches as u64
    );
}

fn coarse(lat: f64, lon: f64) -> u64 {
    let ll = h3o::LatLng::new(lat, lon).unwrap();
    u64::from(ll.to_cell(h3o::Resolution::Five))
}

/// The coarse cells the store says its reads lie in (what a node tells its
/// peers, so that a search far from all of them skips it) are exactly the
/// cells of the reads held, by h3o's own cell of each position, wherever
/// the reads were taken; kept through settling, reopening and expiry.
#[test]
fn the_coarse_cells_are_those_of_the_reads_held() {
    let dir = tempfile::tempdir().unwrap();
    let opts = || StoreOptions {
        settle_in_background: false,
        ..StoreOptions::default()
    };
    let force = forces()[0].clone();
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
                .map(|(k, r)| {
                    let i = b * 250 + k;
                    let at = t0().plus_millis(r.0 * DAY_MS + i as i64 * 1_000);
                    let vrm = format!("AB{:02}CDE", i % 50);
                    new_read(format!("r{i}"), vrm, at, "VAN".into(), (r.1, r.2))
                })
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
