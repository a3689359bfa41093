//! Geographic search against a brute-force reference on a real store.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use nadc_core::geo::Polygon;
use nadc_core::read::ReadInput;
use nadc_core::{Circle, ForceId, GeoPoint, StoredRead, Timestamp};
use nadc_query::{Area, AreaMatch, GeoQuery, Shape, geo_search};
use nadc_store::{Appended, NewRead, RocksStore, Store, StoreOptions};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};

struct Fixture {
    store: RocksStore,
    reads: Vec<StoredRead>,
    sites: Vec<GeoPoint>,
}

fn t0() -> Timestamp {
    Timestamp::parse_rfc3339("2026-11-20T00:00:00Z").unwrap()
}

const DAYS: i64 = 3;

/// 6,000 reads of 150 vehicles over three days around Bristol: most at 80
/// fixed sites, some anywhere (mobile), a few exactly on day boundaries.
fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = common::fixture_dir("nadc-query-geo-fixture");
        let store = RocksStore::open(
            &dir,
            StoreOptions {
                sync: false,
                ..Default::default()
            },
        )
        .unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(42);
        let sites: Vec<GeoPoint> = (0..80)
            .map(|_| {
                GeoPoint::new(
                    51.45 + rng.random_range(-0.15..0.15),
                    -2.59 + rng.random_range(-0.25..0.25),
                )
                .unwrap()
            })
            .collect();
        let forces = ["AVON", "KENT"].map(|f| ForceId::new(f).unwrap());
        let mut reads = Vec::new();
        for batch in 0..12 {
            // The store's two forms, and a day with both: the first day
            // settles after 8 batches (the last 4 then add late reads to
            // it, in the open form), the second at the end, the third
            // stays open.
            if batch == 8 {
                assert!(store.settle_day(t0().day()).unwrap().is_some());
            }
            let force = &forces[batch % 2];
            let news: Vec<NewRead> = (0..500)
                .map(|i| {
                    let pos = if rng.random_bool(0.8) {
                        sites[rng.random_range(0..sites.len())]
                    } else {
                        GeoPoint::new(
                            51.45 + rng.random_range(-0.2..0.2),
                            -2.59 + rng.random_range(-0.3..0.3),
                        )
                        .unwrap()
                    };
                    let ms = if i % 97 == 0 {
                        rng.random_range(0..DAYS) * 86_400_000 // midnight exactly
                    } else {
                        rng.random_range(0..DAYS * 86_400_000)
                    };
                    let read = ReadInput {
                        read_id: format!("{batch}-{i}"),
                        vrm: format!("V{:03}", rng.random_range(0..150)),
                        observed_at: Some(t0().plus_millis(ms)),
                        camera_id: "C".into(),
                        lat: Some(pos.lat()),
                        lon: Some(pos.lon()),
                        ..Default::default()
                    }
                    .validate()
                    .unwrap();
                    NewRead {
                        position: pos,
                        read,
                        received_at: t0(),
                        alerts: Vec::new(),
                        earlier_in_batch: Vec::new(),
                    }
                })
                .collect();
            let out = store.append(force, news.clone()).unwrap();
            for (n, o) in news.into_iter().zip(out) {
                let Appended::Stored { seq } = o else {
                    panic!("duplicate in fixture")
                };
                reads.push(StoredRead {
                    seq,
                    force: force.clone(),
                    received_at: n.received_at,
                    position: n.position,
                    read: n.read,
                });
            }
        }
        assert!(store.settle_day(t0().day() + 1).unwrap().is_some());
        assert_eq!(store.open_days().unwrap(), [t0().day(), t0().day() + 2]);
        Fixture {
            store,
            reads,
            sites,
        }
    })
}

/// Whether `p` is in `shape`, by the oracles (Vincenty's geodesic, a
/// winding-number point in polygon), not by the code under test.
fn reference_contains(shape: &Shape, p: GeoPoint) -> bool {
    match shape {
        Shape::Circle(c) => {
            let o = c.centre();
            nadc_oracle::distance_m(o.lat(), o.lon(), p.lat(), p.lon()) <= c.radius_m()
        }
        Shape::Polygon { polygon, .. } => {
            let ring: Vec<(i64, i64)> = polygon
                .vertices()
                .iter()
                .map(|v| (i64::from(v.lon_e6()), i64::from(v.lat_e6())))
                .collect();
            nadc_oracle::in_polygon(&ring, (i64::from(p.lon_e6()), i64::from(p.lat_e6())))
        }
    }
}

/// The reference: every read checked against every area.
fn brute_force(
    reads: &[StoredRead],
    areas: &[Area],
    matching: AreaMatch,
) -> BTreeMap<u64, Vec<u32>> {
    let mut rows: BTreeMap<u64, Vec<u32>> = BTreeMap::new();
    let mut vrm_areas: BTreeMap<&str, BTreeSet<u32>> = BTreeMap::new();
    for r in reads {
        for (i, a) in areas.iter().enumerate() {
            if a.from <= r.read.observed_at
                && r.read.observed_at <= a.to
                && reference_contains(&a.shape, r.position)
            {
                rows.entry(r.seq).or_default().push(i as u32);
                vrm_areas
                    .entry(r.read.vrm.as_str())
                    .or_default()
                    .insert(i as u32);
            }
        }
    }
    if matching == AreaMatch::All {
        let by_seq: BTreeMap<u64, &str> =
            reads.iter().map(|r| (r.seq, r.read.vrm.as_str())).collect();
        rows.retain(|seq, _| vrm_areas[by_seq[seq]].len() == areas.len());
    }
    rows
}

type AreaSpec = (
    usize,
    (f64, f64),
    f64,
    i64,
    i64,
    bool,
    Option<(usize, usize)>,
    Option<Vec<f64>>,
);

fn area_strategy() -> impl Strategy<Value = AreaSpec> {
    (
        0usize..80,
        (-0.2f64..0.2, -0.3f64..0.3),
        prop_oneof![1.0f64..200.0, 200.0f64..3_000.0, 3_000.0f64..30_000.0],
        0i64..DAYS * 86_400_000,
        prop_oneof![0i64..3_600_000, 0i64..DAYS * 86_400_000],
        any::<bool>(),
        // Sometimes the window starts and ends exactly on reads' capture times.
        proptest::option::of((0usize..6_000, 0usize..6_000)),
        // Sometimes a polygon: vertices at these fractions of the radius,
        // evenly spaced in angle (star-shaped, often concave).
        proptest::option::of(proptest::collection::vec(0.05f64..1.0, 3..9)),
    )
}

fn to_area(f: &Fixture, a: AreaSpec) -> Area {
    let (site, (dlat, dlon), radius, start, len, on_site, snap, polygon) = a;
    let centre = if on_site {
        f.sites[site]
    } else {
        GeoPoint::new(51.45 + dlat, -2.59 + dlon).unwrap()
    };
    let (from, to) = match snap {
        Some((i, j)) => {
            let (a, b) = (f.reads[i].read.observed_at, f.reads[j].read.observed_at);
            (a.min(b), a.max(b))
        }
        None => (t0().plus_millis(start), t0().plus_millis(start + len)),
    };
    match polygon {
        None => Area::circle(Circle::new(centre, radius).unwrap(), from, to),
        Some(fractions) => {
            let n = fractions.len();
            let ring = fractions
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    let a = i as f64 / n as f64 * std::f64::consts::TAU;
                    let d = radius * f / 111_320.0;
                    GeoPoint::new(
                        centre.lat() + d * a.sin(),
                        centre.lon() + d * a.cos() / centre.lat().to_radians().cos(),
                    )
                    .unwrap()
                })
                .collect();
            match Polygon::new(ring).and_then(Shape::polygon) {
                Ok(shape) => Area { shape, from, to },
                Err(_) => Area::circle(Circle::new(centre, radius).unwrap(), from, to),
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn geo_search_equals_brute_force(areas in proptest::collection::vec(area_strategy(), 1..4), all in any::<bool>()) {
        let f = fixture();
        let areas: Vec<Area> = areas.into_iter().map(|a| to_area(f, a)).collect();
        let matching = if all { AreaMatch::All } else { AreaMatch::Any };
        let q = GeoQuery { areas: areas.clone(), matching, limit: usize::MAX, offset: 0, max_candidates: usize::MAX };
        let got = geo_search(&f.store, &q).unwrap();
        let got_rows: BTreeMap<u64, Vec<u32>> = got.rows.iter().map(|r| (r.read.seq, r.areas.clone())).collect();
        let want = brute_force(&f.reads, &areas, matching);
        prop_assert_eq!(&got_rows, &want);
        // Rows are in time order and the summary counts exactly them.
        prop_assert!(got.rows.windows(2).all(|w| (w[0].read.read.observed_at, w[0].read.seq) <= (w[1].read.read.observed_at, w[1].read.seq)));
        prop_assert_eq!(got.summary.rows as usize, got.rows.len());
        prop_assert_eq!(got.vrms.iter().map(|v| v.reads).sum::<u64>(), got.total_rows);
    }
}

#[test]
fn all_areas_needs_every_area_and_limits_truncate() {
    let f = fixture();
    let site = f.sites[3];
    let whole = |c| Area::circle(c, t0(), t0().plus_millis(DAYS * 86_400_000));
    let near = whole(Circle::new(site, 50.0).unwrap());
    let far_away = whole(Circle::new(GeoPoint::new(55.0, -4.0).unwrap(), 1000.0).unwrap());
    let q = |areas: Vec<Area>, matching, limit| GeoQuery {
        areas,
        matching,
        limit,
        offset: 0,
        max_candidates: usize::MAX,
    };
    let any = geo_search(
        &f.store,
        &q(
            vec![near.clone(), far_away.clone()],
            AreaMatch::Any,
            usize::MAX,
        ),
    )
    .unwrap();
    assert!(!any.rows.is_empty());
    let all = geo_search(
        &f.store,
        &q(vec![near.clone(), far_away], AreaMatch::All, usize::MAX),
    )
    .unwrap();
    assert!(
        all.rows.is_empty() && all.vrms.is_empty(),
        "nobody was in the empty area"
    );
    let limited = geo_search(&f.store, &q(vec![near.clone()], AreaMatch::Any, 3)).unwrap();
    assert_eq!(limited.rows.len(), 3);
    assert!(limited.summary.truncated);
    assert_eq!(limited.total_rows, any.total_rows);
    // Pages of 7 put back together are the whole result, in order.
    let mut paged = Vec::new();
    for page in 0.. {
        let p = geo_search(
            &f.store,
            &GeoQuery {
                offset: page * 7,
                ..q(vec![near.clone()], AreaMatch::Any, 7)
            },
        )
        .unwrap();
        assert_eq!(p.total_rows, any.total_rows);
        let more = p.summary.truncated;
        paged.extend(p.rows.into_iter().map(|r| r.read.seq));
        if !more {
            break;
        }
    }
    let whole_near =
        geo_search(&f.store, &q(vec![near.clone()], AreaMatch::Any, usize::MAX)).unwrap();
    assert_eq!(
        paged,
        whole_near
            .rows
            .iter()
            .map(|r| r.read.seq)
            .collect::<Vec<_>>()
    );
    let too_broad = GeoQuery {
        max_candidates: 2,
        ..q(vec![near.clone()], AreaMatch::Any, 10)
    };
    assert!(
        geo_search(&f.store, &too_broad)
            .unwrap_err()
            .to_string()
            .contains("too broad")
    );
    let inverted = Area {
        from: t0().plus_millis(5),
        to: t0(),
        ..near
    };
    assert!(
        geo_search(&f.store, &q(vec![inverted], AreaMatch::Any, 10))
            .unwrap_err()
            .to_string()
            .contains("inverted")
    );
}
