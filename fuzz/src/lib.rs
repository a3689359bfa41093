//! Helpers shared by the nadc fuzz targets: plain reference implementations
//! (the oracles the targets compare against) and the invariants of a
//! validated read.
//!
//! The references are written for obviousness, not speed; the targets keep
//! their inputs short enough that the quadratic ones stay cheap.

use nadc_core::camera::validate_camera_id;
use nadc_core::read::{
    MAX_CANDIDATES, MAX_DETAIL_LEN, MAX_IMAGE_REF_LEN, MAX_READ_ID_LEN, ReadInput,
};
use nadc_core::vrm::MAX_VRM_LEN;
use nadc_core::{Read, Vrm};

/// Full-matrix Levenshtein distance.
pub fn reference_distance(a: &[u8], b: &[u8]) -> usize {
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            d[i][j] = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + usize::from(a[i - 1] != b[j - 1]));
        }
    }
    d[a.len()][b.len()]
}

/// Glob match by dynamic programming: `?` is one byte, `*` any run.
pub fn reference_glob(p: &[u8], s: &[u8]) -> bool {
    // m[i][j]: p[..i] matches s[..j].
    let mut m = vec![vec![false; s.len() + 1]; p.len() + 1];
    m[0][0] = true;
    for i in 1..=p.len() {
        for j in 0..=s.len() {
            m[i][j] = match p[i - 1] {
                b'*' => m[i - 1][j] || (j > 0 && m[i][j - 1]),
                b'?' => j > 0 && m[i - 1][j - 1],
                c => j > 0 && s[j - 1] == c && m[i - 1][j - 1],
            };
        }
    }
    m[p.len()][s.len()]
}

/// Whether `s` is a normalised VRM: 1 to 15 of `A-Z0-9`.
pub fn is_normalised_vrm(s: &str) -> bool {
    (1..=MAX_VRM_LEN).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// No control characters, and no invisible formatting characters
/// (`nadc_core::text`).
fn no_control(s: &str) -> bool {
    nadc_core::text::check_free_text(s).is_ok()
}

/// Checks an optional text field as validation documents it: absent when
/// missing or blank, else trimmed, at most `max` bytes, no control characters.
fn check_text(field: &str, input: &Option<String>, got: &Option<String>, max: usize) {
    let want = input.as_deref().map(str::trim).filter(|t| !t.is_empty());
    assert_eq!(got.as_deref(), want, "{field}");
    if let Some(v) = got {
        assert!(v.len() <= max && no_control(v), "{field}: {v:?}");
    }
}

/// Asserts that `read`, which `input.validate()` accepted, holds every
/// invariant `nadc_core::read` documents, and that each field is the input
/// field as documented (trimmed, rounded, normalised).
pub fn check_accepted_read(input: &ReadInput, read: &Read) {
    assert_eq!(read.read_id, input.read_id.trim());
    assert!(!read.read_id.is_empty() && read.read_id.len() <= MAX_READ_ID_LEN);
    assert!(!read.read_id.chars().any(char::is_control));

    assert!(
        is_normalised_vrm(read.vrm.as_str()),
        "{:?}",
        read.vrm.as_str()
    );
    assert_eq!(Vrm::normalise(&input.vrm).as_ref(), Ok(&read.vrm));
    assert_eq!(read.vrm_raw, input.vrm);

    assert_eq!(Some(read.observed_at), input.observed_at);

    assert_eq!(read.camera_id, input.camera_id.trim());
    assert!(validate_camera_id(&read.camera_id).is_ok());

    match (input.lat, input.lon, read.position) {
        (None, None, None) => {}
        (Some(lat), Some(lon), Some(p)) => {
            assert!((-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon));
            assert!((-90_000_000..=90_000_000).contains(&p.lat_e6()));
            assert!((-180_000_000..=180_000_000).contains(&p.lon_e6()));
            // Rounded to the nearest microdegree.
            assert!((p.lat() - lat).abs() <= 0.5e-6 + 1e-12, "{lat} -> {p:?}");
            assert!((p.lon() - lon).abs() <= 0.5e-6 + 1e-12, "{lon} -> {p:?}");
        }
        other => panic!("position {other:?} accepted"),
    }

    match (input.bearing, read.bearing) {
        (None, None) => {}
        (Some(b), Some(got)) => {
            assert!((0.0..360.0).contains(&b), "bearing {b} accepted");
            assert!(got < 360);
            assert_eq!(f64::from(got), b.round() % 360.0, "bearing {b}");
        }
        other => panic!("bearing {other:?}"),
    }

    assert_eq!(read.lane.map(u32::from), input.lane);
    assert!(read.lane.is_none_or(|l| l <= 16));

    assert_eq!(
        read.confidence.map(f32::to_bits),
        input.confidence.map(f32::to_bits)
    );
    assert!(
        read.confidence
            .is_none_or(|c| c.is_finite() && (0.0..=100.0).contains(&c))
    );

    check_text("make", &input.make, &read.make, MAX_DETAIL_LEN);
    check_text("model", &input.model, &read.model, MAX_DETAIL_LEN);
    check_text("colour", &input.colour, &read.colour, MAX_DETAIL_LEN);
    check_text(
        "patch_image_ref",
        &input.patch_image_ref,
        &read.patch_image_ref,
        MAX_IMAGE_REF_LEN,
    );
    check_text(
        "overview_image_ref",
        &input.overview_image_ref,
        &read.overview_image_ref,
        MAX_IMAGE_REF_LEN,
    );

    let want_country = input
        .country
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_ascii_uppercase);
    assert_eq!(read.country, want_country);
    if let Some(c) = &read.country {
        assert!(
            (1..=3).contains(&c.len()) && c.bytes().all(|b| b.is_ascii_uppercase()),
            "{c:?}"
        );
    }

    assert!(input.candidates.len() <= MAX_CANDIDATES);
    let want: Vec<&str> = input
        .candidates
        .iter()
        .map(|c| c.trim())
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(read.candidates, want);
    for c in &read.candidates {
        assert!(Vrm::normalise(c).is_ok(), "candidate {c:?}");
    }
}
