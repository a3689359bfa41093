//! The key module's round-trip and order properties.

use super::*;
use proptest::prelude::*;

fn vrm_strategy() -> impl Strategy<Value = Vrm> {
    "[A-Z0-9]{1,15}".prop_map(|s| Vrm::normalise(&s).unwrap())
}

fn time_strategy() -> impl Strategy<Value = Timestamp> {
    (0..=Timestamp::MAX.millis()).prop_map(Timestamp::from_millis)
}

/// The coarse cell of a point, found through h3o's parent relation
/// (not through the key arithmetic the test checks).
fn coarse_of(lat: f64, lon: f64) -> (u64, u64) {
    let cell = h3o::LatLng::new(lat, lon)
        .unwrap()
        .to_cell(nadc_core::geo::INDEX_RESOLUTION);
    let coarse = cell.parent(nadc_core::geo::COARSE_RESOLUTION).unwrap();
    (u64::from(cell), u64::from(coarse))
}

proptest! {
    #[test]
    fn coarse_keys_round_trip_and_order(a in any::<u64>(), b in any::<u64>()) {
        prop_assert_eq!(decode_coarse_key(&coarse_key(a)), Some(a));
        prop_assert_eq!(coarse_key(a).cmp(&coarse_key(b)), a.cmp(&b));
        prop_assert_eq!(decode_coarse_key(&settled_key(7)), None);
    }

    /// Seeking past a coarse cell skips exactly the index cells within
    /// it: every point in it lies before, every point beyond it in key
    /// order lies in another coarse cell. Points within half a degree,
    /// so that many share a coarse cell.
    #[test]
    fn seeking_past_a_coarse_cell_skips_only_its_cells(
        day in 0u32..40_000,
        p in (51.0f64..51.5, -1.5f64..-1.0),
        q in (51.0f64..51.5, -1.5f64..-1.0),
    ) {
        let (pc, pcoarse) = coarse_of(p.0, p.1);
        let (qc, qcoarse) = coarse_of(q.0, q.1);
        let after = geo_after_coarse(day, pcoarse);
        let (kp, kq) = (geo_key(day, pc, 0, 0), geo_key(day, qc, 86_399_999, u64::MAX));
        prop_assert!(kp < after);
        if qcoarse == pcoarse {
            prop_assert!(kq < after);
        } else if kq > kp {
            prop_assert!(kq >= after, "{qc:x} in {qcoarse:x} skipped by {pcoarse:x}");
        }
        prop_assert!(geo_key(day + 1, 0, 0, 0) >= after);
    }
}

proptest! {
    #[test]
    fn read_keys_round_trip_and_order(a in any::<(u32, u64)>(), b in any::<(u32, u64)>()) {
        prop_assert_eq!(decode_read_key(&read_key(a.0, a.1)), Some(a));
        prop_assert_eq!(read_key(a.0, a.1).cmp(&read_key(b.0, b.1)), a.cmp(&b));
    }

    #[test]
    fn geo_keys_round_trip_and_order(
        a in any::<(u32, u64, u32, u64)>(), b in any::<(u32, u64, u32, u64)>(),
    ) {
        let ka = geo_key(a.0, a.1, a.2, a.3);
        let d = decode_geo_key(&ka).unwrap();
        prop_assert_eq!((d.day, d.cell, d.ms_of_day, d.seq), a);
        prop_assert_eq!(ka.cmp(&geo_key(b.0, b.1, b.2, b.3)), a.cmp(&b));
    }

    #[test]
    fn settled_keys_round_trip_and_order_by_day(a in any::<u32>(), b in any::<u32>()) {
        prop_assert_eq!(decode_settled_key(&settled_key(a)), Some(a));
        prop_assert_eq!(settled_key(a).cmp(&settled_key(b)), a.cmp(&b));
        prop_assert!(settled_key(a).starts_with(SETTLED_PREFIX));
        // Apart from the other counters of `meta`.
        prop_assert_eq!(decode_settled_key(&day_count_start(a)), None);
    }

    #[test]
    fn log_position_keys_round_trip_apart_from_the_other_meta_keys(stream in "[A-Za-z0-9_-]{1,32}") {
        let k = log_position_key(&stream);
        prop_assert_eq!(decode_log_position_key(&k), Some(stream.as_str()));
        prop_assert_eq!(decode_settled_key(&k), None);
        prop_assert_eq!(decode_day_count_key(&k), None);
        prop_assert_eq!(decode_coarse_key(&k), None);
        let settled = settled_key(1);
        prop_assert_eq!(decode_log_position_key(&settled), None);
        let scope = log_scope_key(&stream);
        prop_assert_eq!(decode_log_position_key(&scope), None);
        prop_assert!(scope != k);
    }

    #[test]
    fn record_keys_of_both_forms_give_their_day_and_seq(
        vrm in vrm_strategy(), t in time_strategy(), cell in any::<u64>(), seq in any::<u64>(),
    ) {
        let (day, ms) = (t.day(), t.ms_of_day());
        prop_assert_eq!(record_key_day_seq(&geo_key(day, cell, ms, seq)), Some((day, seq)));
        prop_assert_eq!(record_key_day_seq(&vrm_key(&vrm, t, seq)), Some((day, seq)));
        prop_assert_eq!(record_key_day_seq(&geo_key(day, cell, ms, seq)[..11]), None);
    }

    #[test]
    fn vrm_keys_round_trip_and_order(
        va in vrm_strategy(), vb in vrm_strategy(),
        ta in time_strategy(), tb in time_strategy(),
        sa in any::<u64>(), sb in any::<u64>(),
    ) {
        let ka = vrm_key(&va, ta, sa);
        prop_assert_eq!(decode_vrm_key(&ka), Some((va.as_str(), ta, sa)));
        prop_assert_eq!(decode_tail(&ka), Some((ta, sa)));
        // Ordered by day, then VRM (whole VRMs never interleave), then
        // time and seq.
        let kb = vrm_key(&vb, tb, sb);
        if ta.day() != tb.day() {
            prop_assert_eq!(ka.cmp(&kb), ta.day().cmp(&tb.day()));
        } else if va == vb {
            prop_assert_eq!(ka.cmp(&kb), (ta, sa).cmp(&(tb, sb)));
        } else {
            prop_assert_eq!(ka.cmp(&kb), vrm_prefix(ta.day(), &va).cmp(&vrm_prefix(ta.day(), &vb)));
            prop_assert!(!ka.starts_with(&vrm_prefix(ta.day(), &vb)));
        }
        prop_assert!(ka.starts_with(&vrm_prefix(ta.day(), &va)));
        prop_assert!(vrm_bound(&va, ta) <= ka);
        prop_assert!(vrm_bound(&va, ta.plus_millis(1)) > ka || ta.ms_of_day() == (nadc_core::time::MS_PER_DAY - 1) as u32);
    }

    #[test]
    fn camera_cell_keys_round_trip_and_order(
        f in "[A-Z]{2,8}", cam in "[ -~&&[^\u{0}]]{1,20}", cam2 in "[ -~&&[^\u{0}]]{1,20}",
        day in any::<u32>(), day2 in any::<u32>(), cell in any::<u64>(), cell2 in any::<u64>(),
    ) {
        let force = ForceId::new(&f).unwrap();
        let k = camera_cell_key(day, &force, &cam, cell);
        prop_assert_eq!(decode_camera_cell_key(&k), Some((day, force.as_str(), cam.as_str(), cell)));
        prop_assert!(k.starts_with(&camera_prefix(day, &force, &cam)));
        let k2 = camera_cell_key(day2, &force, &cam2, cell2);
        if day != day2 {
            prop_assert_eq!(k.cmp(&k2), day.cmp(&day2));
        } else if cam == cam2 {
            prop_assert_eq!(k.cmp(&k2), cell.cmp(&cell2));
        } else {
            prop_assert!(!k2.starts_with(&camera_prefix(day, &force, &cam)));
        }
    }

    #[test]
    fn refs_and_day_sets_round_trip(
        cell in any::<u64>(), ms in 0u32..86_400_000,
        days in proptest::collection::btree_set(any::<u32>(), 0..40),
    ) {
        prop_assert_eq!(decode_ref_value(&ref_value(cell, ms)), Some((cell, ms)));
        prop_assert_eq!(decode_days(&encode_days(&days)), Some(days.clone()));
        let joined: Vec<u8> = days.iter().flat_map(|d| day_operand(*d)).collect();
        prop_assert_eq!(decode_days(&joined), Some(days));
    }

    #[test]
    fn set_seq_numbers_every_key_that_ends_in_one(
        vrm in vrm_strategy(), t in time_strategy(), cell in any::<u64>(), seq in any::<u64>(),
    ) {
        let (day, ms) = (t.day(), t.ms_of_day());
        let cases: [(Vec<u8>, Vec<u8>); 3] = [
            (read_key(day, 0).to_vec(), read_key(day, seq).to_vec()),
            (geo_key(day, cell, ms, 0).to_vec(), geo_key(day, cell, ms, seq).to_vec()),
            (vrm_key(&vrm, t, 0), vrm_key(&vrm, t, seq)),
        ];
        for (mut unnumbered, numbered) in cases {
            set_seq(&mut unnumbered, seq);
            prop_assert_eq!(unnumbered, numbered);
        }
    }

    #[test]
    fn hotlist_entry_keys_round_trip(f in "[A-Z]{2,8}", name in "[A-Za-z0-9._-]{1,20}", vrm in vrm_strategy()) {
        let force = ForceId::new(&f).unwrap();
        let k = hotlist_entry_key(&force, &name, &vrm);
        prop_assert_eq!(decode_hotlist_entry_key(&k), Some((force.as_str(), name.as_str())));
        prop_assert!(k.starts_with(&hotlist_entries_prefix(&force, &name)));
        prop_assert!(!hotlist_key(&force, &name).starts_with(&[HOTLIST_ENTRY_TAG]));
    }

    #[test]
    fn authorisation_keys_round_trip_and_stay_in_their_force(
        fa in "[A-Z]{2,8}", fb in "[A-Z]{2,8}", id in "[ -~]{1,64}",
    ) {
        let (a, b) = (ForceId::new(&fa).unwrap(), ForceId::new(&fb).unwrap());
        let k = authorisation_key(&a, &id);
        prop_assert_eq!(decode_authorisation_key(&k), Some((a.as_str(), id.as_str())));
        prop_assert!(!is_unscoped_authorisation_key(&k));
        prop_assert!(is_unscoped_authorisation_key(id.as_bytes()));
        // Another force's key for the same id differs, and one force's
        // prefix never holds another's keys.
        let mut prefix = a.as_str().as_bytes().to_vec();
        prefix.push(SEP);
        prop_assert!(k.starts_with(&prefix));
        if a != b {
            prop_assert_ne!(&authorisation_key(&b, &id), &k);
            prop_assert!(!authorisation_key(&b, &id).starts_with(&prefix));
        }
    }

    #[test]
    fn day_count_keys_round_trip_order_by_day_and_start_where_their_day_does(
        a in any::<u32>(), b in any::<u32>(), f in "[A-Z]{2,8}", g in "[A-Z]{2,8}",
    ) {
        let (fa, fb) = (ForceId::new(&f).unwrap(), ForceId::new(&g).unwrap());
        let (ka, kb) = (day_count_key(a, &fa), day_count_key(b, &fb));
        prop_assert_eq!(decode_day_count_key(&ka), Some((a, fa.as_str())));
        if a != b {
            prop_assert_eq!(ka.cmp(&kb), a.cmp(&b));
        } else {
            prop_assert_eq!(ka.cmp(&kb), fa.as_str().cmp(fb.as_str()));
        }
        prop_assert!(ka.starts_with(&day_count_start(a)));
        prop_assert!(day_count_start(a) <= ka);
        // Every day count sorts before the completion mark, so a scan
        // of the counts never meets it.
        prop_assert!(ka.as_slice() < DAY_COUNTS_COMPLETE);
    }

    #[test]
    fn dedup_keys_round_trip(day in any::<u32>(), f in "[A-Z]{2,8}", id in "[ -~]{1,40}") {
        let force = ForceId::new(&f).unwrap();
        let k = dedup_key(day, &force, &id);
        prop_assert_eq!(decode_dedup_key(&k), Some((day, force.as_str(), id.as_str())));
    }

    #[test]
    fn hold_keys_round_trip(day in any::<u32>(), seq in any::<u64>(), f in "[A-Z]{2,8}", case in "[ -~]{1,64}") {
        let owner = ForceId::new(&f).unwrap();
        let k = hold_key(day, seq, &owner, &case);
        prop_assert_eq!(decode_hold_key(&k), Some((day, seq, Some(owner.as_str()), case.as_str())));
        // A hold written before owners: no separator, no owner.
        let mut legacy = read_key(day, seq).to_vec();
        legacy.extend_from_slice(case.as_bytes());
        prop_assert_eq!(decode_hold_key(&legacy), Some((day, seq, None, case.as_str())));
    }

    #[test]
    fn case_keys_round_trip_and_keep_cases_apart(
        fa in "[A-Z]{2,8}", fb in "[A-Z]{2,8}", ca in "[ -~]{1,64}", cb in "[ -~]{1,64}",
        node in "[a-z0-9-]{1,20}", day in any::<u32>(), seq in any::<u64>(), audit in any::<u64>(),
    ) {
        let (a, b) = (ForceId::new(&fa).unwrap(), ForceId::new(&fb).unwrap());
        let mut k = case_read_key(CASE_READ, &a, &ca, &node, day, seq);
        prop_assert_eq!(decode_case_read_rest(&k[case_prefix(CASE_READ, &a, &ca).len()..]), Some((node.as_str(), day, seq, None)));
        k.extend_from_slice(&audit.to_be_bytes());
        let (tag, owner, case, rest) = decode_case_key(&k).unwrap();
        prop_assert_eq!((tag, owner, case), (CASE_READ, a.as_str(), ca.as_str()));
        prop_assert_eq!(decode_case_read_rest(rest), Some((node.as_str(), day, seq, Some(audit))));
        // Another case's prefix (other owner or other reference) never
        // matches: AVON's OP-1 is not KENT's, nor AVON's OP-10.
        if (a.as_str(), ca.as_str()) != (b.as_str(), cb.as_str()) {
            prop_assert!(!k.starts_with(&case_prefix(CASE_READ, &b, &cb)));
        }
        let s = case_share_key(&a, &ca, &b);
        let (tag, owner, case, rest) = decode_case_key(&s).unwrap();
        let mut member = b.as_str().as_bytes().to_vec();
        member.push(SEP);
        prop_assert_eq!((tag, owner, case, rest), (CASE_SHARED, a.as_str(), ca.as_str(), member.as_slice()));
    }

    #[test]
    fn legacy_case_keys_round_trip(
        case in "[ -~]{1,64}", node in "[a-z0-9-]{1,20}", day in any::<u32>(), seq in any::<u64>(), audit in any::<u64>(),
    ) {
        let m = legacy_case_material_key(&case, &node, day, seq);
        prop_assert_eq!(decode_legacy_case_key(&m), Some((LEGACY_CASE_MATERIAL, case.as_str(), node.as_str(), day, seq, None)));
        let mut r = m.clone();
        r[0] = LEGACY_CASE_READ;
        r.extend_from_slice(&audit.to_be_bytes());
        prop_assert_eq!(decode_legacy_case_key(&r), Some((LEGACY_CASE_READ, case.as_str(), node.as_str(), day, seq, Some(audit))));
    }

    #[test]
    fn prefix_end_bounds_every_extension(p in proptest::collection::vec(any::<u8>(), 0..8), ext in proptest::collection::vec(any::<u8>(), 0..8)) {
        let mut k = p.clone();
        k.extend_from_slice(&ext);
        match prefix_end(&p) {
            Some(end) => prop_assert!(k < end && p < end),
            None => prop_assert!(p.iter().all(|b| *b == 0xFF)),
        }
    }
}

#[test]
fn vrm_prefix_does_not_match_longer_vrm() {
    let short = Vrm::normalise("AB1").unwrap();
    let long = Vrm::normalise("AB12").unwrap();
    let k = vrm_key(&long, Timestamp::from_millis(5), 1);
    assert!(!k.starts_with(&vrm_prefix(0, &short)));
}

#[test]
fn decoders_refuse_garbage() {
    assert_eq!(decode_read_key(&[1, 2, 3]), None);
    assert_eq!(decode_geo_key(&[0; 23]), None);
    assert_eq!(decode_vrm_key(b"AB12"), None);
    assert_eq!(decode_vrm_key(b"\0\0\0\x01AB\x00short"), None);
    assert_eq!(
        decode_vrm_key(&[0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1]),
        None
    );
    assert_eq!(
        decode_camera_cell_key(b"\0\0\0\x01AVON\x00C1\x00\x01"),
        None
    );
    assert_eq!(decode_ref_value(&[0; 11]), None);
    assert_eq!(decode_days(&[0; 5]), None);
    // A millisecond past the day is no time of it.
    let mut k = vrm_key(
        &Vrm::normalise("AB1").unwrap(),
        Timestamp::from_millis(5),
        1,
    );
    let at = k.len() - 12;
    k[at..at + 4].copy_from_slice(&86_400_000u32.to_be_bytes());
    assert_eq!(decode_vrm_key(&k), None);
    assert_eq!(decode_dedup_key(&[0, 0]), None);
    assert_eq!(decode_authorisation_key(b"AUTH-1"), None);
    assert_eq!(decode_authorisation_key(b"AVON\x00"), None);
}

#[test]
fn authorisation_key_bytes_are_as_documented() {
    let avon = ForceId::new("AVON").unwrap();
    assert_eq!(authorisation_key(&avon, "AUTH-1"), b"AVON\x00AUTH-1");
}
