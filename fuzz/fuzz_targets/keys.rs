//! Store key encodings (`crates/nadc-store/src/keys.rs`).
//!
//! nadc-store links RocksDB, so this target does not depend on it: it
//! compiles `keys.rs` itself as a module (the file uses only `nadc_core` and
//! std). Input: bytes decoded by `arbitrary` into an [`Op`]; key parts are
//! built so that they are valid (a VRM of `A-Z0-9`, a valid force code,
//! ids without control characters), as the store only ever writes those.
//!
//! Properties (from the module's documentation):
//! - every decoder returns `None` or a value on any bytes, never panics, and
//!   whatever it decodes encodes back to the same bytes;
//! - encode then decode gives the parts back;
//! - byte order is key order: `(day, seq)`, `(day, cell, ms, seq)`, and
//!   for one VRM `(day, time, seq)`, for one camera `(day, cell)`; every
//!   per-read key starts with its day; within a day keys of different VRMs
//!   or cameras never interleave, a prefix scan of one never runs into
//!   another, and `vrm_bound` is a correct scan start;
//! - `prefix_end` is above every extension of the prefix.
#![no_main]

#[allow(dead_code)]
#[path = "../../crates/nadc-store/src/keys.rs"]
mod keys;

use arbitrary::Arbitrary;
use keys::*;
use libfuzzer_sys::fuzz_target;
use nadc_core::camera::validate_camera_id;
use nadc_core::hotlist::HotlistId;
use nadc_core::vrm_match::ConfusableGroups;
use nadc_core::{ForceId, Timestamp, Vrm};

/// A VRM from arbitrary bytes: each byte picks a character of `A-Z0-9`.
#[derive(Arbitrary, Debug)]
struct VrmBytes(Vec<u8>);

impl VrmBytes {
    fn vrm(&self) -> Option<Vrm> {
        const ALPHABET: &[u8; 36] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        let s: String = self
            .0
            .iter()
            .take(15)
            .map(|b| char::from(ALPHABET[usize::from(*b) % 36]))
            .collect();
        Vrm::normalise(&s).ok()
    }
}

/// A force code from arbitrary bytes: each byte picks from `A-Z0-9_`.
#[derive(Arbitrary, Debug)]
struct ForceBytes(Vec<u8>);

impl ForceBytes {
    fn force(&self) -> Option<ForceId> {
        const ALPHABET: &[u8; 37] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_";
        let s: String = self
            .0
            .iter()
            .take(16)
            .map(|b| char::from(ALPHABET[usize::from(*b) % 37]))
            .collect();
        ForceId::new(&s).ok()
    }
}

/// A capture time: never negative (validation refuses pre-1970) and at
/// most `Timestamp::MAX` (validation refuses later ones; a day number
/// then fits its four bytes).
fn time(ms: u64) -> Timestamp {
    Timestamp::from_millis(((ms >> 1) as i64) % (Timestamp::MAX.millis() + 1))
}

#[derive(Arbitrary, Debug)]
enum Op {
    /// Every decoder on the same arbitrary bytes.
    Decode(Vec<u8>),
    Read([(u32, u64); 2]),
    Geo([(u32, u64, u32, u64); 2], u64, u32),
    Vrm([(VrmBytes, u64, u64); 2]),
    Camera([(u32, ForceBytes, String, u64); 2]),
    Dedup(u32, ForceBytes, String),
    VrmDict(VrmBytes),
    Hold(u32, u64, ForceBytes, String),
    Days(Vec<u32>),
    Hotlist(ForceBytes, String, VrmBytes),
    PrefixEnd(Vec<u8>, Vec<u8>),
}

fuzz_target!(|op: Op| match op {
    Op::Decode(bytes) => decode_all(&bytes),
    Op::Read([a, b]) => {
        let (ka, kb) = (read_key(a.0, a.1), read_key(b.0, b.1));
        assert_eq!(decode_read_key(&ka), Some(a));
        assert_eq!(ka.cmp(&kb), a.cmp(&b));
        assert!(ka.starts_with(&day_start(a.0)));
    }
    Op::Geo([a, b], cell, ms) => {
        let (ka, kb) = (geo_key(a.0, a.1, a.2, a.3), geo_key(b.0, b.1, b.2, b.3));
        let d = decode_geo_key(&ka).expect("own key decodes");
        assert_eq!((d.day, d.cell, d.ms_of_day, d.seq), a);
        assert_eq!(ka.cmp(&kb), a.cmp(&b));
        assert!(ka.starts_with(&day_start(a.0)));
        assert_eq!(decode_ref_value(&ref_value(cell, ms)), Some((cell, ms)));
    }
    Op::Vrm([(va, ta, sa), (vb, tb, sb)]) => {
        let (Some(va), Some(vb)) = (va.vrm(), vb.vrm()) else {
            return;
        };
        let (ta, tb) = (time(ta), time(tb));
        let (ka, kb) = (vrm_key(&va, ta, sa), vrm_key(&vb, tb, sb));
        assert_eq!(decode_vrm_key(&ka), Some((va.as_str(), ta, sa)));
        assert_eq!(decode_tail(&ka), Some((ta, sa)));
        assert!(ka.starts_with(&day_start(ta.day())));
        let (pa, pb) = (vrm_prefix(ta.day(), &va), vrm_prefix(tb.day(), &vb));
        assert!(ka.starts_with(&pa));
        let end = prefix_end(&pa).expect("a VRM prefix is not all 0xFF");
        assert!(ka < end);
        if ta.day() != tb.day() {
            assert_eq!(ka.cmp(&kb), ta.day().cmp(&tb.day()));
        } else if va == vb {
            assert_eq!(ka.cmp(&kb), (ta, sa).cmp(&(tb, sb)));
            // A scan from vrm_bound(t) sees exactly the entries at or after t.
            assert_eq!(vrm_bound(&va, ta) <= kb, ta <= tb);
        } else {
            assert_eq!(ka.cmp(&kb), pa.cmp(&pb));
            assert!(!ka.starts_with(&pb) && !kb.starts_with(&pa));
            assert!(kb < vrm_bound(&va, ta) || kb >= end);
        }
    }
    Op::Camera([(da, fa, ca, xa), (db, fb, cb, xb)]) => {
        let (Some(fa), Some(fb)) = (fa.force(), fb.force()) else {
            return;
        };
        if validate_camera_id(&ca).is_err() || validate_camera_id(&cb).is_err() {
            return;
        }
        let (ka, kb) = (camera_cell_key(da, &fa, &ca, xa), camera_cell_key(db, &fb, &cb, xb));
        assert_eq!(
            decode_camera_cell_key(&ka),
            Some((da, fa.as_str(), ca.as_str(), xa))
        );
        let (pa, pb) = (camera_prefix(da, &fa, &ca), camera_prefix(db, &fb, &cb));
        assert!(ka.starts_with(&pa) && ka.starts_with(&day_start(da)));
        if da != db {
            assert_eq!(ka.cmp(&kb), da.cmp(&db));
        } else if (&fa, &ca) == (&fb, &cb) {
            assert_eq!(ka.cmp(&kb), xa.cmp(&xb));
        } else {
            assert!(!ka.starts_with(&pb) && !kb.starts_with(&pa));
            assert_eq!(ka.cmp(&kb), pa.cmp(&pb));
        }
        assert_eq!(cameras_key(&fa, &ca), pa[4..pa.len() - 1]);
    }
    Op::Dedup(day, force, read_id) => {
        let Some(force) = force.force() else { return };
        if read_id.is_empty() || read_id.chars().any(char::is_control) {
            return;
        }
        let k = dedup_key(day, &force, &read_id);
        assert_eq!(
            decode_dedup_key(&k),
            Some((day, force.as_str(), read_id.as_str()))
        );
        assert!(k.starts_with(&day_start(day)));
    }
    Op::VrmDict(v) => {
        let Some(v) = v.vrm() else { return };
        let skeleton = ConfusableGroups::default().skeleton(v.as_str());
        let k = vrm_dict_key(&skeleton, &v);
        assert_eq!(
            decode_vrm_dict_key(&k),
            Some((skeleton.as_str(), v.as_str()))
        );
        let mut prefix = skeleton.clone().into_bytes();
        prefix.push(SEP);
        assert!(k.starts_with(&prefix));
    }
    Op::Hold(day, seq, owner, case_ref) => {
        let Some(owner) = owner.force() else { return };
        if case_ref.chars().any(char::is_control) {
            return;
        }
        let k = hold_key(day, seq, &owner, &case_ref);
        assert_eq!(
            decode_hold_key(&k),
            Some((day, seq, Some(owner.as_str()), case_ref.as_str()))
        );
        assert!(k.starts_with(&read_key(day, seq)));
    }
    Op::Days(days) => {
        let set: std::collections::BTreeSet<u32> = days.iter().copied().collect();
        let v = encode_days(&set);
        assert_eq!(decode_days(&v), Some(set.clone()));
        let operands: Vec<u8> = days.iter().flat_map(|d| day_operand(*d)).collect();
        assert_eq!(decode_days(&operands), Some(set));
    }
    Op::Hotlist(owner, name, v) => {
        let (Some(owner), Some(v)) = (owner.force(), v.vrm()) else {
            return;
        };
        let Ok(id) = HotlistId::new(owner.clone(), &name) else {
            return;
        };
        let name = id.name.as_str();
        let k = hotlist_entry_key(&owner, name, &v);
        assert_eq!(decode_hotlist_entry_key(&k), Some((owner.as_str(), name)));
        assert!(k.starts_with(&hotlist_entries_prefix(&owner, name)));
        let def = hotlist_key(&owner, name);
        assert_eq!(def.first(), Some(&HOTLIST_TAG));
        assert_eq!(decode_hotlist_entry_key(&def), None);
    }
    Op::PrefixEnd(prefix, ext) => {
        let mut k = prefix.clone();
        k.extend_from_slice(&ext);
        match prefix_end(&prefix) {
            Some(end) => {
                assert!(prefix < end && k < end);
                assert!(!end.starts_with(&prefix) || prefix.is_empty());
            }
            None => assert!(prefix.iter().all(|b| *b == 0xFF)),
        }
    }
});

/// Runs every decoder on `b`; whatever decodes must encode back to `b`
/// when its parts are ones the store can write.
fn decode_all(b: &[u8]) {
    if let Some((day, seq)) = decode_read_key(b) {
        assert_eq!(read_key(day, seq), b);
    }
    if let Some(g) = decode_geo_key(b) {
        assert_eq!(geo_key(g.day, g.cell, g.ms_of_day, g.seq), b);
    }
    if let Some((cell, ms)) = decode_ref_value(b) {
        assert_eq!(ref_value(cell, ms), b);
    }
    if let Some(days) = decode_days(b) {
        // A set encodes ascending and once each: `b` if it was.
        let again = encode_days(&days);
        assert!(again.len() <= b.len());
    }
    if let Some((text, t, seq)) = decode_vrm_key(b) {
        assert!(t >= Timestamp::EPOCH);
        if let Ok(v) = Vrm::normalise(text)
            && v.as_str() == text
        {
            assert_eq!(vrm_key(&v, t, seq), b);
        }
    }
    if let Some((day, force, camera, cell)) = decode_camera_cell_key(b)
        && let Ok(f) = ForceId::new(force)
        && f.as_str() == force
    {
        assert_eq!(camera_cell_key(day, &f, camera, cell), b);
    }
    if let Some((day, force, read_id)) = decode_dedup_key(b)
        && let Ok(f) = ForceId::new(force)
        && f.as_str() == force
    {
        assert_eq!(dedup_key(day, &f, read_id), b);
    }
    if let Some((skeleton, vrm)) = decode_vrm_dict_key(b)
        && let Ok(v) = Vrm::normalise(vrm)
        && v.as_str() == vrm
    {
        assert_eq!(vrm_dict_key(skeleton, &v), b);
    }
    if let Some((day, seq, Some(owner), case_ref)) = decode_hold_key(b)
        && let Ok(f) = ForceId::new(owner)
        && f.as_str() == owner
    {
        assert_eq!(hold_key(day, seq, &f, case_ref), b);
    }
    if let Some((owner, name)) = decode_hotlist_entry_key(b)
        && let Ok(f) = ForceId::new(owner)
        && f.as_str() == owner
    {
        let prefix = hotlist_entries_prefix(&f, name);
        assert!(b.starts_with(&prefix));
        if let Ok(v) = Vrm::normalise(std::str::from_utf8(&b[prefix.len()..]).unwrap_or(""))
            && v.as_str().as_bytes() == &b[prefix.len()..]
        {
            assert_eq!(hotlist_entry_key(&f, name, &v), b);
        }
    }
    if let Some((t, seq)) = decode_tail(b) {
        assert!(t >= Timestamp::EPOCH);
        assert_eq!(&b[..4], t.day().to_be_bytes());
        assert_eq!(&b[b.len() - 12..b.len() - 8], t.ms_of_day().to_be_bytes());
        assert_eq!(&b[b.len() - 8..], seq.to_be_bytes());
    }
    if let Some(v) = be_u64(b) {
        assert_eq!(v.to_be_bytes(), b);
    }
    if let Some(end) = prefix_end(b) {
        assert!(end.as_slice() > b);
    }
}
