//! VRM normalisation and matching (`nadc_core::vrm`, `nadc_core::vrm_match`).
//!
//! Input: UTF-8 text, one field per line (missing lines are empty):
//!
//! ```text
//! line 1   raw query VRM          e.g. "ab12 cde"
//! line 2   raw candidate VRM      e.g. "A812C0E"
//! line 3   wildcard pattern       e.g. "AB1?C*"
//! line 4   confusable groups      comma-separated, e.g. "0ODQ,1I" (blank: the defaults)
//! line 5   max edits and an edit  first byte: max edits (its value mod 4); the rest picks
//!                                 one edit of the query for the neighbourhood check
//! ```
//!
//! Properties, each from the doc comments of the code under test:
//! - `Vrm::normalise`: the result is `A-Z0-9`, 1 to 15 characters, is the
//!   input's letters and digits upper-cased, and normalising it again gives
//!   it back; only the separators (space, `-`, `.`) are ever dropped: any
//!   other character is refused; serde goes through the same
//!   normalisation; an error names the right character and position.
//! - `ConfusableGroups`: canon is idempotent, skeletons keep length, and
//!   `groups()` rebuilds the same partition.
//! - `classify` agrees with its definition (exact, same skeleton, or
//!   Levenshtein distance of skeletons within max edits) and is symmetric.
//! - `bounded_edit_distance` equals a full-matrix reference and is symmetric.
//! - `edit_neighbours` is exactly the one-edit ball over the alphabet.
//! - `Pattern::parse` output is clean and stable, `matches` equals a
//!   reference glob, and every match starts with the literal prefix (the
//!   store's prefix scan relies on it).
#![no_main]

use libfuzzer_sys::fuzz_target;
use nadc_core::Vrm;
use nadc_core::vrm::{MAX_RAW_LEN, MAX_VRM_LEN, VrmError, is_separator, redact};
use nadc_core::vrm_match::{
    ConfusableGroups, MatchKind, Pattern, PatternError, bounded_edit_distance, classify,
    edit_neighbours,
};
use nadc_fuzz::{is_normalised_vrm, reference_distance, reference_glob};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.split('\n');
    let mut next = || lines.next().unwrap_or("");
    let (raw_q, raw_c, raw_p, raw_g, raw_e) = (next(), next(), next(), next(), next());

    let q = check_normalise(raw_q);
    let c = check_normalise(raw_c);
    check_normalise(raw_p);

    let groups = check_groups(raw_g);
    let max_edits = raw_e.bytes().next().map_or(1, |b| b % 4);

    check_distance(raw_q.as_bytes(), raw_c.as_bytes(), usize::from(max_edits));
    if let (Some(q), Some(c)) = (&q, &c) {
        check_classify(&groups, q, c, max_edits);
        check_classify(&groups, q, q, max_edits);
    }
    if let Some(q) = &q {
        check_neighbours(&groups, q, c.as_ref(), raw_e.as_bytes());
    }
    check_pattern(raw_p, [q.as_ref(), c.as_ref()], raw_c);
});

fn check_normalise(raw: &str) -> Option<Vrm> {
    let got = Vrm::normalise(raw);
    // Serde deserialises through the same normalisation.
    let via_serde: Result<Vrm, _> = serde_json::from_value(serde_json::Value::from(raw));
    assert_eq!(
        via_serde.ok(),
        got.clone().ok(),
        "serde vs normalise of {raw:?}"
    );
    let alnum: String = raw
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let allowed = |c: char| c.is_ascii_alphanumeric() || is_separator(c);
    match got {
        Ok(v) => {
            assert!(raw.chars().all(allowed), "{raw:?} accepted");
            let s = v.as_str();
            assert!(is_normalised_vrm(s), "{raw:?} -> {s:?}");
            assert_eq!(s, alnum, "{raw:?}");
            assert!(raw.len() <= MAX_RAW_LEN);
            assert_eq!(Vrm::normalise(s).as_ref(), Ok(&v), "not idempotent");
            assert_eq!(v.to_string(), s);
            let json = serde_json::to_string(&v).expect("a Vrm serialises");
            assert_eq!(serde_json::from_str::<Vrm>(&json).ok().as_ref(), Some(&v));
            // Debug and redacted show two characters at most.
            let r = v.redacted();
            assert_eq!(r.len(), s.len());
            assert!(
                r.starts_with(&s[..s.len().min(2)])
                    && r[s.len().min(2)..].bytes().all(|b| b == b'*')
            );
            assert_eq!(format!("{v:?}"), format!("Vrm({r})"));
            Some(v)
        }
        Err(VrmError::Empty) => {
            assert!(alnum.is_empty(), "{raw:?} called empty");
            assert!(raw.chars().all(allowed), "{raw:?} called empty");
            None
        }
        Err(VrmError::TooLong { len, max }) => {
            assert!(
                (raw.len() > MAX_RAW_LEN && max == MAX_RAW_LEN)
                    || (alnum.len() > MAX_VRM_LEN && max == MAX_VRM_LEN && len == alnum.len()),
                "{raw:?}: too long {len} > {max}"
            );
            None
        }
        Err(VrmError::IllegalChar { ch, pos }) => {
            assert!(pos >= 1);
            assert_eq!(raw.chars().nth(pos - 1), Some(ch), "{raw:?}");
            assert!(!allowed(ch));
            assert!(raw.chars().take(pos - 1).all(allowed));
            None
        }
    }
}

fn check_groups(raw: &str) -> ConfusableGroups {
    if raw.is_empty() {
        return ConfusableGroups::default();
    }
    let parts: Vec<&str> = raw.split(',').collect();
    let g = match ConfusableGroups::new(&parts) {
        Ok(g) => g,
        Err(PatternError::BadGroup(_)) => return ConfusableGroups::default(),
        Err(e) => panic!("unexpected group error {e:?}"),
    };
    for b in 0u8..=255 {
        let c = g.canon(b);
        assert_eq!(g.canon(c), c, "canon not idempotent at {b}");
        if b.is_ascii_alphanumeric() && !b.is_ascii_lowercase() {
            assert!(c.is_ascii_uppercase() || c.is_ascii_digit(), "{b} -> {c}");
        } else {
            assert_eq!(c, b, "{b} is in no group but maps to {c}");
        }
    }
    // groups() lists the same partition, and parses back to it.
    let listed = g.groups();
    let again = ConfusableGroups::new(&listed).expect("groups() parses");
    for a in b'0'..=b'Z' {
        for b in b'0'..=b'Z' {
            assert_eq!(
                g.canon(a) == g.canon(b),
                again.canon(a) == again.canon(b),
                "{listed:?}: {} {}",
                a as char,
                b as char
            );
        }
    }
    for &c in &g.skeleton_alphabet() {
        assert_eq!(g.canon(c), c);
    }
    g
}

fn check_distance(a: &[u8], b: &[u8], max: usize) {
    let (a, b) = (&a[..a.len().min(40)], &b[..b.len().min(40)]);
    let d = reference_distance(a, b);
    for m in [0, max, 2, 255] {
        let got = bounded_edit_distance(a, b, m);
        assert_eq!(got, (d <= m).then_some(d), "max {m}");
        assert_eq!(bounded_edit_distance(b, a, m), got, "not symmetric");
    }
    assert_eq!(bounded_edit_distance(a, a, 0), Some(0));
}

/// The comparable part of a match: `Confusable` positions are the same
/// whichever side is the query.
fn check_classify(g: &ConfusableGroups, q: &Vrm, c: &Vrm, max_edits: u8) {
    let (qs, cs) = (q.as_str(), c.as_str());
    let (sq, sc) = (g.skeleton(qs), g.skeleton(cs));
    assert_eq!(
        (sq.len(), sc.len()),
        (qs.len(), cs.len()),
        "skeleton changed length"
    );
    let d = reference_distance(sq.as_bytes(), sc.as_bytes());
    let got = classify(g, q, c, max_edits);
    match &got {
        Some(MatchKind::Exact) => assert_eq!(qs, cs),
        Some(MatchKind::Confusable { positions }) => {
            assert!(qs != cs && sq == sc);
            let want: Vec<usize> = (0..qs.len())
                .filter(|&i| qs.as_bytes()[i] != cs.as_bytes()[i])
                .map(|i| i + 1)
                .collect();
            assert_eq!(positions, &want);
        }
        Some(MatchKind::Edits { distance }) => {
            assert!(sq != sc);
            assert_eq!(usize::from(*distance), d);
            assert!(d <= usize::from(max_edits));
        }
        Some(MatchKind::Wildcard) => panic!("classify returned Wildcard"),
        None => assert!(sq != sc && d > usize::from(max_edits)),
    }
    assert_eq!(classify(g, c, q, max_edits), got, "classify not symmetric");
    if let Some(k) = &got {
        let _ = (k.rank(), k.label());
    }
}

fn check_neighbours(g: &ConfusableGroups, q: &Vrm, c: Option<&Vrm>, edit: &[u8]) {
    let s = q.as_str();
    let alphabet = g.skeleton_alphabet();
    let n = edit_neighbours(s, &alphabet);
    assert!(
        n.windows(2).all(|w| w[0] < w[1]),
        "not sorted and deduplicated"
    );
    assert!(
        n.binary_search(&s.to_string()).is_ok(),
        "{s:?} not in its own ball"
    );
    for t in &n {
        assert!(!t.is_empty() && t.len() <= MAX_VRM_LEN, "{t:?}");
        assert!(
            within_one_edit(s.as_bytes(), t.as_bytes()),
            "{s:?} -> {t:?}"
        );
    }
    let complete = |t: &str| {
        let within = !t.is_empty()
            && t.len() <= MAX_VRM_LEN
            && within_one_edit(s.as_bytes(), t.as_bytes())
            && t.bytes().all(|b| alphabet.contains(&b));
        if within {
            assert!(
                n.binary_search(&t.to_string()).is_ok(),
                "{s:?}: {t:?} missing"
            );
        }
    };
    if let Some(c) = c {
        complete(c.as_str());
    }
    // One edit of the query picked by the input, over the alphabet.
    if let ([op, pos, ch, ..], false) = (edit, alphabet.is_empty()) {
        let mut t = s.as_bytes().to_vec();
        let ch = alphabet[usize::from(*ch) % alphabet.len()];
        let i = usize::from(*pos) % (t.len() + 1);
        match op % 3 {
            0 => t.insert(i, ch),
            1 if i < t.len() => t[i] = ch,
            _ if i < t.len() => {
                t.remove(i);
            }
            _ => {}
        }
        complete(&String::from_utf8(t).expect("ASCII"));
    }
}

fn check_pattern(raw: &str, vrms: [Option<&Vrm>; 2], other: &str) {
    let p = match Pattern::parse(raw) {
        Ok(p) => p,
        Err(PatternError::BadChar { ch, pos }) => {
            assert_eq!(raw.chars().nth(pos - 1), Some(ch));
            let allowed =
                |c: char| c.is_ascii_alphanumeric() || is_separator(c) || matches!(c, '?' | '*');
            assert!(!allowed(ch) && raw.chars().take(pos - 1).all(allowed));
            return;
        }
        Err(PatternError::Empty | PatternError::OnlyWildcards(_) | PatternError::TooLong(_)) => {
            return;
        }
        Err(e) => panic!("unexpected pattern error {e:?}"),
    };
    let t = p.as_str();
    // What parse documents: upper case, separators dropped, runs of * collapsed.
    let mut want = String::new();
    for ch in raw.chars() {
        match ch {
            '*' if want.ends_with('*') => {}
            '?' | '*' => want.push(ch),
            c if c.is_ascii_alphanumeric() => want.push(c.to_ascii_uppercase()),
            c => assert!(is_separator(c), "{raw:?}: {c:?} dropped"),
        }
    }
    assert_eq!(t, want);
    assert!(
        t.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'?' || b == b'*')
    );
    assert!(!t.contains("**") && t.bytes().any(|b| b.is_ascii_alphanumeric()));
    assert!(t.bytes().filter(|b| *b != b'*').count() <= MAX_VRM_LEN);
    assert_eq!(Pattern::parse(t).as_ref(), Ok(&p), "parse not idempotent");
    assert_eq!(p.is_wildcard(), t.contains(['?', '*']));
    let prefix = p.literal_prefix();
    assert!(t.starts_with(prefix) && !prefix.contains(['?', '*']));
    assert!(prefix.len() == t.len() || t[prefix.len()..].starts_with(['?', '*']));
    let _ = format!("{p:?}");

    // The pattern's simplest instance matches it.
    let instance: String = t
        .chars()
        .filter(|c| *c != '*')
        .map(|c| if c == '?' { '0' } else { c })
        .collect();
    assert!(p.matches(&instance), "{t:?} does not match {instance:?}");

    let subjects = vrms
        .iter()
        .flatten()
        .map(|v| v.as_str())
        .chain([other, instance.as_str()]);
    for s in subjects {
        let s = truncate(s, 64);
        let m = p.matches(s);
        // A `*` in the subject once failed to match a `*` in the pattern
        // (regressions/vrm/).
        assert_eq!(
            m,
            reference_glob(t.as_bytes(), s.as_bytes()),
            "{t:?} vs {s:?}"
        );
        if m {
            assert!(
                s.starts_with(prefix),
                "{s:?} matches {t:?} without its prefix"
            );
        }
        if !p.is_wildcard() {
            assert_eq!(m, s == t);
        }
    }
    let _ = redact(t);
}

/// `s` cut to at most `max` bytes at a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Whether `a` and `b` are at most one insertion, deletion or substitution
/// apart (a linear-time oracle for the neighbourhood check).
fn within_one_edit(a: &[u8], b: &[u8]) -> bool {
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    let common = short.iter().zip(long).take_while(|(x, y)| x == y).count();
    match long.len() - short.len() {
        0 => short[common..]
            .iter()
            .zip(&long[common..])
            .skip(1)
            .all(|(x, y)| x == y),
        1 => short[common..] == long[common + 1..],
        _ => false,
    }
}
