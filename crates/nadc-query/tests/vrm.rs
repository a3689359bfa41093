//! VRM search (exact, wildcard, fuzzy) against a straightforward reference
//! over every stored read.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::OnceLock;

use nadc_core::read::ReadInput;
use nadc_core::vrm_match::{ConfusableGroups, MatchKind, Pattern};
use nadc_core::{ForceId, StoredRead, Timestamp};
use nadc_query::{VrmQuery, vrm_search};
use nadc_store::{Appended, NewRead, RocksStore, Store, StoreOptions};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};

struct Fixture {
    store: RocksStore,
    reads: Vec<StoredRead>,
}

fn t0() -> Timestamp {
    Timestamp::parse_rfc3339("2026-11-20T00:00:00Z").unwrap()
}

/// VRMs over a small, confusable-dense alphabet so fuzzy matches abound.
const ALPHABET: &[u8] = b"AB8O0DI1Z2";

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = common::fixture_dir("nadc-query-vrm-fixture");
        let store = RocksStore::open(
            &dir,
            StoreOptions {
                sync: false,
                ..Default::default()
            },
        )
        .unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let force = ForceId::new("AVON").unwrap();
        let mut reads = Vec::new();
        let vrms: Vec<String> = (0..400)
            .map(|_| {
                let len = rng.random_range(2..=6);
                (0..len)
                    .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
                    .collect()
            })
            .collect();
        for batch in 0..4 {
            // Both forms: the first day settles after two batches (the
            // next two add late reads to it, open), the second stays open.
            if batch == 2 {
                assert!(store.settle_day(t0().day()).unwrap().is_some());
            }
            let news: Vec<NewRead> = (0..500)
                .map(|i| {
                    let read = ReadInput {
                        read_id: format!("{batch}-{i}"),
                        vrm: vrms[rng.random_range(0..vrms.len())].clone(),
                        observed_at: Some(t0().plus_millis(rng.random_range(0..2 * 86_400_000))),
                        camera_id: "C".into(),
                        lat: Some(51.5),
                        lon: Some(-2.5),
                        ..Default::default()
                    }
                    .validate()
                    .unwrap();
                    NewRead {
                        position: read.position.unwrap(),
                        read,
                        received_at: t0(),
                        alerts: Vec::new(),
                        earlier_in_batch: Vec::new(),
                    }
                })
                .collect();
            for (n, o) in news
                .clone()
                .into_iter()
                .zip(store.append(&force, news).unwrap())
            {
                let Appended::Stored { seq } = o else {
                    panic!()
                };
                reads.push(StoredRead {
                    seq,
                    force: force.clone(),
                    received_at: t0(),
                    position: n.position,
                    read: n.read,
                });
            }
        }
        assert_eq!(store.open_days().unwrap(), [t0().day(), t0().day() + 1]);
        Fixture { store, reads }
    })
}

/// The reference: every read matched by the oracle (built from the
/// confusable table `table`), not by the code under test.
fn reference(reads: &[StoredRead], q: &VrmQuery, table: &[&str]) -> BTreeMap<u64, MatchKind> {
    let mut out = BTreeMap::new();
    for r in reads {
        let t = r.read.observed_at;
        if t < q.from || t > q.to {
            continue;
        }
        let query = q.pattern.as_str();
        let how = if q.pattern.is_wildcard() || q.fuzzy {
            let max = if q.fuzzy { usize::from(q.max_edits) } else { 0 };
            nadc_oracle::vrm_match(table, query, r.read.vrm.as_str(), max)
        } else {
            (query == r.read.vrm.as_str()).then_some(nadc_oracle::Match::Exact)
        };
        let how = how.map(|m| match m {
            nadc_oracle::Match::Exact => MatchKind::Exact,
            nadc_oracle::Match::Confusable(positions) => MatchKind::Confusable { positions },
            nadc_oracle::Match::Edits(d) => MatchKind::Edits { distance: d as u8 },
            nadc_oracle::Match::Wildcard => MatchKind::Wildcard,
        });
        if let Some(h) = how {
            out.insert(r.seq, h);
        }
    }
    out
}

fn pattern_strategy() -> impl Strategy<Value = String> {
    let ch = prop_oneof![
        6 => proptest::sample::select(ALPHABET.to_vec()).prop_map(char::from),
        1 => Just('?'),
        1 => Just('*'),
    ];
    proptest::collection::vec(ch, 1..7).prop_map(|v| v.into_iter().collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn vrm_search_equals_reference(
        text in pattern_strategy(),
        fuzzy in any::<bool>(),
        max_edits in 0u8..3,
        custom in any::<bool>(),
        window in (0i64..86_400_000, 0i64..2 * 86_400_000),
    ) {
        let f = fixture();
        let Ok(pattern) = Pattern::parse(&text) else { return Ok(()) };
        let fuzzy = fuzzy && !pattern.is_wildcard();
        let table: &[&str] = if custom { &["0O", "8B"] } else { &nadc_oracle::DEFAULT_TABLE };
        let groups = if custom { ConfusableGroups::new(table).unwrap() } else { ConfusableGroups::default() };
        let q = VrmQuery {
            pattern,
            fuzzy,
            max_edits,
            groups,
            from: t0().plus_millis(window.0),
            to: t0().plus_millis(window.0 + window.1),
            limit: usize::MAX,
            offset: 0,
            max_vrms: usize::MAX,
        };
        let got = vrm_search(&f.store, &q).unwrap();
        let got_rows: BTreeMap<u64, MatchKind> = got.rows.iter().map(|r| (r.read.seq, r.how.clone())).collect();
        prop_assert_eq!(&got_rows, &reference(&f.reads, &q, table));
        // Ranked: exact, confusable, edits by distance, then wildcard.
        prop_assert!(got.rows.windows(2).all(|w| w[0].how.rank() <= w[1].how.rank()));
        prop_assert_eq!(got.vrms.iter().map(|v| v.reads).sum::<u64>(), got.total_rows);
    }
}

#[test]
fn limits_and_errors() {
    let f = fixture();
    let q = |text: &str, fuzzy: bool, limit, max_vrms| VrmQuery {
        pattern: Pattern::parse(text).unwrap(),
        fuzzy,
        max_edits: 1,
        groups: ConfusableGroups::default(),
        from: t0(),
        to: t0().plus_millis(3 * 86_400_000),
        limit,
        offset: 0,
        max_vrms,
    };
    let all = vrm_search(&f.store, &q("A*", false, usize::MAX, usize::MAX)).unwrap();
    assert!(all.rows.len() > 10);
    let some = vrm_search(&f.store, &q("A*", false, 5, usize::MAX)).unwrap();
    assert_eq!(some.rows.len(), 5);
    assert!(some.summary.truncated);
    assert_eq!(some.total_rows, all.total_rows);
    let e = vrm_search(&f.store, &q("A*", false, 5, 3))
        .unwrap_err()
        .to_string();
    assert!(e.contains("more than 3 distinct VRMs"), "{e}");
    let e = vrm_search(&f.store, &q("A?", true, 5, 100))
        .unwrap_err()
        .to_string();
    assert!(e.contains("cannot also be fuzzy"), "{e}");
}
