//! Matching VRMs the way OCR gets them wrong: wildcard patterns, confusable
//! characters (0/O/D/Q, 1/I, 2/Z, 5/S, 8/B, 6/G by default), and a bounded
//! number of edits. Every match says how it matched, so an operator can see
//! why a plate that is not the one asked for was returned.

use std::fmt;

use crate::vrm::{MAX_VRM_LEN, Vrm};

/// Groups of characters OCR confuses. Characters in one group are treated
/// as the same character by fuzzy matching.
#[derive(Clone, PartialEq, Eq)]
pub struct ConfusableGroups {
    /// For each ASCII byte, the representative of its group (itself if none).
    canon: [u8; 128],
}

/// The default groups (Genetec AutoVu's "OCR equivalence" and the NAS list).
pub const DEFAULT_GROUPS: [&str; 6] = ["0ODQ", "1I", "2Z", "5S", "8B", "6G"];

impl Default for ConfusableGroups {
    fn default() -> Self {
        Self::new(&DEFAULT_GROUPS).unwrap_or_else(|_| Self::identity())
    }
}

impl fmt::Debug for ConfusableGroups {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.groups()).finish()
    }
}

/// Why a pattern or group list was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// A character other than A-Z, 0-9, `?`, `*` and the VRM separators
    /// (space, `-`, `.`).
    #[error(
        "pattern has character {ch:?} at position {pos}: use A-Z, 0-9, ? (one character) and * (any run), with space, '-' and '.' as separators"
    )]
    BadChar {
        /// The character.
        ch: char,
        /// 1-based position.
        pos: usize,
    },
    /// Nothing to match.
    #[error("pattern is empty")]
    Empty,
    /// Longer than a VRM can be.
    #[error("pattern is too long: {0} characters (at most {MAX_VRM_LEN} besides *)")]
    TooLong(usize),
    /// Only wildcards: would match every vehicle.
    #[error("pattern {0:?} has no letters or digits: it would match every vehicle")]
    OnlyWildcards(String),
    /// A confusable group with a character outside A-Z0-9, or a character in two groups.
    #[error(
        "confusable group {0:?} is invalid: A-Z and 0-9 only, each character in one group at most"
    )]
    BadGroup(String),
    /// Too many edits asked for.
    #[error("max edits {0} is too many: 0 to 2")]
    TooManyEdits(u8),
}

impl ConfusableGroups {
    fn identity() -> Self {
        let mut canon = [0u8; 128];
        for (i, c) in canon.iter_mut().enumerate() {
            *c = i as u8;
        }
        Self { canon }
    }

    /// Groups from strings such as `"0ODQ"`; the first character of each
    /// group represents it.
    pub fn new<S: AsRef<str>>(groups: &[S]) -> Result<Self, PatternError> {
        let mut g = Self::identity();
        let mut seen = [false; 128];
        for group in groups {
            let text = group.as_ref().to_ascii_uppercase();
            let bytes = text.as_bytes();
            if bytes.is_empty()
                || bytes
                    .iter()
                    .any(|b| !b.is_ascii_alphanumeric() || seen[*b as usize])
            {
                return Err(PatternError::BadGroup(group.as_ref().to_string()));
            }
            for b in bytes {
                seen[*b as usize] = true;
                g.canon[*b as usize] = bytes[0];
            }
        }
        Ok(g)
    }

    /// The groups, as strings.
    pub fn groups(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for rep in b'0'..=b'Z' {
            if !rep.is_ascii_alphanumeric() || self.canon[rep as usize] != rep {
                continue;
            }
            let members: String = (b'0'..=b'Z')
                .filter(|c| c.is_ascii_alphanumeric() && self.canon[*c as usize] == rep)
                .map(char::from)
                .collect();
            if members.len() > 1 {
                out.push(members);
            }
        }
        out
    }

    /// The representative of `c`'s group.
    pub fn canon(&self, c: u8) -> u8 {
        self.canon.get(c as usize).copied().unwrap_or(c)
    }

    /// A VRM with every character replaced by its group's representative.
    /// Two VRMs that differ only by confusable characters have the same
    /// skeleton (and a skeleton is as long as its VRM).
    pub fn skeleton(&self, vrm: &str) -> String {
        vrm.bytes().map(|b| char::from(self.canon(b))).collect()
    }

    /// The characters that are representatives (the alphabet of skeletons).
    pub fn skeleton_alphabet(&self) -> Vec<u8> {
        (b'0'..=b'Z')
            .filter(|c| c.is_ascii_alphanumeric() && self.canon(*c) == *c)
            .collect()
    }
}

/// How a VRM matched a search. Ordered best first.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum MatchKind {
    /// The same VRM.
    Exact,
    /// The same but for confusable characters at these 1-based positions.
    Confusable {
        /// Positions (1-based) where a confusable character differs.
        positions: Vec<usize>,
    },
    /// Within this many edits (insertions, deletions, substitutions of
    /// non-confusable characters); confusable differences cost nothing.
    Edits {
        /// Edit distance.
        distance: u8,
    },
    /// Matched a wildcard pattern.
    Wildcard,
}

impl MatchKind {
    /// Rank for ordering results: exact first.
    pub fn rank(&self) -> u8 {
        match self {
            MatchKind::Exact => 0,
            MatchKind::Confusable { .. } => 1,
            MatchKind::Edits { distance } => 1 + distance,
            MatchKind::Wildcard => 10,
        }
    }

    /// A label for people, e.g. `confusable at 3,5` or `1 edit`.
    pub fn label(&self) -> String {
        match self {
            MatchKind::Exact => "exact".into(),
            MatchKind::Confusable { positions } => format!(
                "confusable at {}",
                positions
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            MatchKind::Edits { distance: 1 } => "1 edit".into(),
            MatchKind::Edits { distance } => format!("{distance} edits"),
            MatchKind::Wildcard => "wildcard".into(),
        }
    }
}

/// Levenshtein distance between `a` and `b`, or `None` if above `max`.
pub fn bounded_edit_distance(a: &[u8], b: &[u8], max: usize) -> Option<usize> {
    if a.len().abs_diff(b.len()) > max {
        return None;
    }
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        let mut row_min = cur[0];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
            row_min = row_min.min(cur[j + 1]);
        }
        if row_min > max {
            return None;
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    let d = prev[b.len()];
    (d <= max).then_some(d)
}

/// How `candidate` matches `query` under `groups` with at most `max_edits`
/// edits, or `None` if it does not.
pub fn classify(
    groups: &ConfusableGroups,
    query: &Vrm,
    candidate: &Vrm,
    max_edits: u8,
) -> Option<MatchKind> {
    let (q, c) = (query.as_str().as_bytes(), candidate.as_str().as_bytes());
    if q == c {
        return Some(MatchKind::Exact);
    }
    if q.len() == c.len()
        && q.iter()
            .zip(c)
            .all(|(a, b)| groups.canon(*a) == groups.canon(*b))
    {
        let positions = q
            .iter()
            .zip(c)
            .enumerate()
            .filter(|(_, (a, b))| a != b)
            .map(|(i, _)| i + 1)
            .collect();
        return Some(MatchKind::Confusable { positions });
    }
    let (sq, sc) = (
        groups.skeleton(query.as_str()),
        groups.skeleton(candidate.as_str()),
    );
    let d = bounded_edit_distance(sq.as_bytes(), sc.as_bytes(), usize::from(max_edits))?;
    Some(MatchKind::Edits { distance: d as u8 })
}

/// Every string within one edit of `s` over `alphabet` (including `s`).
pub fn edit_neighbours(s: &str, alphabet: &[u8]) -> Vec<String> {
    let b = s.as_bytes();
    let mut out = vec![s.to_string()];
    for i in 0..b.len() {
        let mut del = b.to_vec();
        del.remove(i);
        out.push(String::from_utf8_lossy(&del).into_owned());
        for &c in alphabet {
            if c != b[i] {
                let mut sub = b.to_vec();
                sub[i] = c;
                out.push(String::from_utf8_lossy(&sub).into_owned());
            }
        }
    }
    for i in 0..=b.len() {
        for &c in alphabet {
            let mut ins = b.to_vec();
            ins.insert(i, c);
            out.push(String::from_utf8_lossy(&ins).into_owned());
        }
    }
    out.retain(|x| !x.is_empty() && x.len() <= MAX_VRM_LEN);
    out.sort();
    out.dedup();
    out
}

/// A wildcard pattern: `?` is one character, `*` any run (including none).
#[derive(Clone, PartialEq, Eq)]
pub struct Pattern {
    text: String,
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pattern({})", crate::vrm::redact(&self.text))
    }
}

impl Pattern {
    /// Parses a pattern: upper-cases, drops the VRM separators (space, `-`,
    /// `.`), collapses runs of `*`. Any other character (`<`, `=`, `_`, a
    /// letter outside A-Z) is refused with its 1-based position, as in a
    /// raw VRM ([`crate::vrm::SEPARATORS`]).
    pub fn parse(raw: &str) -> Result<Self, PatternError> {
        let mut text = String::new();
        for (i, ch) in raw.chars().enumerate() {
            match ch {
                '?' => text.push('?'),
                '*' if text.ends_with('*') => {}
                '*' => text.push('*'),
                c if c.is_ascii_alphanumeric() => text.push(c.to_ascii_uppercase()),
                c if crate::vrm::is_separator(c) => {}
                c => return Err(PatternError::BadChar { ch: c, pos: i + 1 }),
            }
        }
        if text.is_empty() {
            return Err(PatternError::Empty);
        }
        let fixed = text.chars().filter(|c| *c != '*').count();
        if fixed > MAX_VRM_LEN {
            return Err(PatternError::TooLong(fixed));
        }
        if !text.chars().any(|c| c.is_ascii_alphanumeric()) {
            return Err(PatternError::OnlyWildcards(text));
        }
        Ok(Self { text })
    }

    /// Whether the pattern has wildcards (otherwise it is a plain VRM).
    pub fn is_wildcard(&self) -> bool {
        self.text.contains(['?', '*'])
    }

    /// The pattern text, e.g. `AB1?C*`.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The literal characters before the first wildcard.
    pub fn literal_prefix(&self) -> &str {
        let end = self.text.find(['?', '*']).unwrap_or(self.text.len());
        &self.text[..end]
    }

    /// Whether `vrm` matches the pattern.
    pub fn matches(&self, vrm: &str) -> bool {
        glob(self.text.as_bytes(), vrm.as_bytes())
    }
}

/// Iterative glob match with backtracking to the last `*`.
fn glob(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        // A `*` in the pattern is a wildcard even where the subject has a
        // `*` too (found by fuzzing: `*99?ZZ` against `*99?AY99ZZZ`).
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, si));
            pi += 1;
        } else if pi < p.len() && (p[pi] == b'?' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v(s: &str) -> Vrm {
        Vrm::normalise(s).unwrap()
    }

    #[test]
    fn classify_table() {
        let g = ConfusableGroups::default();
        let check = |q: &str, c: &str, edits: u8, want: Option<MatchKind>| {
            assert_eq!(classify(&g, &v(q), &v(c), edits), want, "{q} vs {c}");
        };
        check("AB12CDE", "AB12CDE", 0, Some(MatchKind::Exact));
        check(
            "AB12CDE",
            "A812C0E",
            0,
            Some(MatchKind::Confusable {
                positions: vec![2, 6],
            }),
        );
        check(
            "AB12CDE",
            "ABI2CDE",
            0,
            Some(MatchKind::Confusable { positions: vec![3] }),
        );
        check("AB12CDE", "AB12CDF", 0, None);
        check(
            "AB12CDE",
            "AB12CDF",
            1,
            Some(MatchKind::Edits { distance: 1 }),
        );
        check(
            "AB12CDE",
            "AB12CD",
            1,
            Some(MatchKind::Edits { distance: 1 }),
        );
        check(
            "AB12CDE",
            "XAB12CDE",
            1,
            Some(MatchKind::Edits { distance: 1 }),
        );
        check(
            "AB12CDE",
            "A812CD",
            1,
            Some(MatchKind::Edits { distance: 1 }),
        );
        check("AB12CDE", "XX12CDE", 1, None);
        check(
            "AB12CDE",
            "XX12CDE",
            2,
            Some(MatchKind::Edits { distance: 2 }),
        );
    }

    #[test]
    fn groups_are_configurable_and_checked() {
        let g = ConfusableGroups::new(&["0O", "1I"]).unwrap();
        assert_eq!(g.skeleton("O1I5"), "0115");
        assert_eq!(g.groups(), vec!["0O".to_string(), "1I".to_string()]);
        assert!(ConfusableGroups::new(&["0O", "O1"]).is_err());
        assert!(ConfusableGroups::new(&["0-"]).is_err());
        assert_eq!(ConfusableGroups::default().skeleton("QDO8B5S"), "0008855");
    }

    #[test]
    fn patterns() {
        let p = Pattern::parse("ab1? c*").unwrap();
        assert_eq!(p.as_str(), "AB1?C*");
        assert_eq!(p.literal_prefix(), "AB1");
        assert!(p.matches("AB12CDE") && p.matches("AB1XC") && !p.matches("AB12DCE"));
        assert!(
            Pattern::parse("**")
                .unwrap_err()
                .to_string()
                .contains("every vehicle")
        );
        assert!(
            Pattern::parse("AB€")
                .unwrap_err()
                .to_string()
                .contains("position 3")
        );
        assert_eq!(Pattern::parse("ab-1?.c *").unwrap().as_str(), "AB1?C*");
        for (raw, ch, pos) in [
            ("AB12<script>", '<', 5),
            ("AB1?=*", '=', 5),
            ("AB_1*", '_', 3),
            ("AB1?\t*", '\t', 5),
            ("AB\u{200b}1*", '\u{200b}', 3),
        ] {
            assert_eq!(
                Pattern::parse(raw),
                Err(PatternError::BadChar { ch, pos }),
                "{raw:?}"
            );
        }
        assert!(!Pattern::parse("AB12CDE").unwrap().is_wildcard());
        assert_eq!(Pattern::parse("A**B").unwrap().as_str(), "A*B");
    }

    /// A plain recursive glob, as the reference.
    fn reference_glob(p: &[u8], s: &[u8]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(b'*'), _) => {
                reference_glob(&p[1..], s) || (!s.is_empty() && reference_glob(p, &s[1..]))
            }
            (Some(b'?'), Some(_)) => reference_glob(&p[1..], &s[1..]),
            (Some(a), Some(b)) if a == b => reference_glob(&p[1..], &s[1..]),
            _ => false,
        }
    }

    /// Plain full-matrix Levenshtein, as the reference.
    fn reference_distance(a: &[u8], b: &[u8]) -> usize {
        let mut d = vec![vec![0; b.len() + 1]; a.len() + 1];
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

    proptest! {
        #[test]
        fn glob_equals_reference(p in "[AB1?*]{1,8}", s in "[AB1?*]{0,8}") {
            prop_assert_eq!(glob(p.as_bytes(), s.as_bytes()), reference_glob(p.as_bytes(), s.as_bytes()));
        }

        #[test]
        fn bounded_distance_equals_reference(a in "[A-D0-2]{0,9}", b in "[A-D0-2]{0,9}", max in 0usize..4) {
            let d = reference_distance(a.as_bytes(), b.as_bytes());
            prop_assert_eq!(bounded_edit_distance(a.as_bytes(), b.as_bytes(), max), (d <= max).then_some(d));
        }

        #[test]
        fn neighbours_are_exactly_the_one_edit_ball(s in "[A-D0-2]{1,6}", t in "[A-D0-2]{1,7}") {
            let alphabet: Vec<u8> = b"ABCD012".to_vec();
            let n = edit_neighbours(&s, &alphabet);
            let within = reference_distance(s.as_bytes(), t.as_bytes()) <= 1;
            prop_assert_eq!(n.binary_search(&t).is_ok(), within);
        }

        #[test]
        fn classify_agrees_with_definitions(q in "[A-Z0-9]{1,8}", c in "[A-Z0-9]{1,8}", edits in 0u8..3) {
            let g = ConfusableGroups::default();
            let got = classify(&g, &v(&q), &v(&c), edits);
            let same_skeleton = g.skeleton(&q) == g.skeleton(&c);
            let d = reference_distance(g.skeleton(&q).as_bytes(), g.skeleton(&c).as_bytes());
            match got {
                Some(MatchKind::Exact) => prop_assert_eq!(&q, &c),
                Some(MatchKind::Confusable { positions }) => {
                    prop_assert!(same_skeleton && q != c);
                    prop_assert!(!positions.is_empty());
                }
                Some(MatchKind::Edits { distance }) => {
                    prop_assert!(!same_skeleton);
                    prop_assert_eq!(usize::from(distance), d);
                    prop_assert!(d <= usize::from(edits));
                }
                Some(MatchKind::Wildcard) => prop_assert!(false),
                None => prop_assert!(!same_skeleton && d > usize::from(edits)),
            }
        }
    }
}
