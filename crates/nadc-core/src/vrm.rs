//! Vehicle registration marks (VRMs).
//!
//! A [`Vrm`] is always normalised: upper case `A-Z0-9`, separators
//! removed, 1 to [`MAX_VRM_LEN`] characters. `AB12 CDE`, `ab12-cde`,
//! `AB.12.CDE` and `AB12CDE` are the same VRM. The raw OCR text is kept
//! beside it on every read.
//!
//! Raw text is data, never markup or a formula: it may hold only letters
//! `A-Z` (either case), digits and the [`SEPARATORS`] (space, `-`, `.`:
//! what UK and foreign plates and OCR output put between groups). Anything
//! else (`<`, `=`, `_`, a tab, a zero-width space, `É`, a Cyrillic `А`) is
//! refused naming the character and its position, never dropped: dropping
//! it would turn `AB12<script>` into the plate `AB12SCRIPT` and could raise
//! a false hit. No transliteration is done here: a BOF whose camera reads
//! non-Latin letters transliterates them (NAS table) before sending.
//!
//! A plate is personal data: `Debug` and [`Vrm::redacted`] show only the
//! first two characters, so a VRM that reaches a log is not disclosed.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest normalised VRM accepted (UK plates have at most 7; foreign plates
/// run longer).
pub const MAX_VRM_LEN: usize = 15;

/// Longest raw OCR text accepted, in bytes.
pub const MAX_RAW_LEN: usize = 64;

/// The characters allowed between the letters and digits of a raw VRM,
/// removed by normalising: space, hyphen and full stop.
pub const SEPARATORS: [char; 3] = [' ', '-', '.'];

/// Whether `c` is one of the [`SEPARATORS`].
pub fn is_separator(c: char) -> bool {
    SEPARATORS.contains(&c)
}

/// Why a VRM was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VrmError {
    /// Nothing left after removing the separators.
    #[error("VRM is empty (no letters or digits)")]
    Empty,
    /// Longer than [`MAX_VRM_LEN`] once normalised, or raw text over [`MAX_RAW_LEN`] bytes.
    #[error("VRM is too long: {len} characters (at most {max})")]
    TooLong {
        /// Length found.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// A character that is not a letter, digit or separator.
    #[error(
        "VRM has character {ch:?} at position {pos}: only A-Z and 0-9 are allowed, with space, '-' and '.' as separators"
    )]
    IllegalChar {
        /// The character.
        ch: char,
        /// Its 1-based position in the raw text.
        pos: usize,
    },
}

/// A normalised VRM.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Vrm(String);

impl Vrm {
    /// Normalises raw OCR (or typed) text: upper-cases and removes the
    /// [`SEPARATORS`]; any other character that is not `A-Z`, `a-z` or
    /// `0-9` is refused with its 1-based position.
    pub fn normalise(raw: &str) -> Result<Self, VrmError> {
        if raw.len() > MAX_RAW_LEN {
            return Err(VrmError::TooLong {
                len: raw.chars().count(),
                max: MAX_RAW_LEN,
            });
        }
        let mut out = String::with_capacity(raw.len());
        for (i, ch) in raw.chars().enumerate() {
            if ch.is_ascii_alphanumeric() {
                out.push(ch.to_ascii_uppercase());
            } else if is_separator(ch) {
                continue;
            } else {
                return Err(VrmError::IllegalChar { ch, pos: i + 1 });
            }
        }
        if out.is_empty() {
            return Err(VrmError::Empty);
        }
        if out.len() > MAX_VRM_LEN {
            return Err(VrmError::TooLong {
                len: out.len(),
                max: MAX_VRM_LEN,
            });
        }
        Ok(Self(out))
    }

    /// The normalised text, e.g. `AB12CDE`. Personal data: do not log it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A form safe for logs: the first two characters, the rest masked.
    pub fn redacted(&self) -> String {
        redact(&self.0)
    }
}

/// Masks all but the first two characters of a plate-like string.
pub fn redact(s: &str) -> String {
    s.chars()
        .enumerate()
        .map(|(i, c)| if i < 2 { c } else { '*' })
        .collect()
}

impl fmt::Debug for Vrm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Vrm({})", self.redacted())
    }
}

/// Displays the full VRM: for results and exports, never for logs.
impl fmt::Display for Vrm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Vrm {
    type Error = VrmError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::normalise(&s)
    }
}

impl From<Vrm> for String {
    fn from(v: Vrm) -> String {
        v.0
    }
}

impl std::str::FromStr for Vrm {
    type Err = VrmError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::normalise(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check(raw: &str, expected: Result<&str, VrmError>) {
        let got = Vrm::normalise(raw);
        assert_eq!(
            got.as_ref().map(Vrm::as_str),
            expected.as_ref().map(|s| *s),
            "{raw:?}"
        );
    }

    #[test]
    fn normalisation_table() {
        check("AB12 CDE", Ok("AB12CDE"));
        check("ab12-cde", Ok("AB12CDE"));
        check("  ab12.cde ", Ok("AB12CDE"));
        check("AB-12.CDE", Ok("AB12CDE"));
        // Foreign plates: hyphens and dots between groups.
        check("B-MW 1234", Ok("BMW1234"));
        check("12.AB.34", Ok("12AB34"));
        check("A123 BCD", Ok("A123BCD"));
        check("ABC 123A", Ok("ABC123A"));
        check("1", Ok("1"));
        check("", Err(VrmError::Empty));
        check(" - . ", Err(VrmError::Empty));
        check("AB12 CDÉ", Err(VrmError::IllegalChar { ch: 'É', pos: 8 }));
        check("AB12€CDE", Err(VrmError::IllegalChar { ch: '€', pos: 5 }));
        check(
            "ABCDEFGHIJKLMNOP",
            Err(VrmError::TooLong { len: 16, max: 15 }),
        );
    }

    #[test]
    fn characters_never_on_a_plate_are_refused_not_dropped() {
        let e = |ch, pos| Err(VrmError::IllegalChar { ch, pos });
        // Markup and formulas: once dropped, now refused.
        check("AB12<script>", e('<', 5));
        check("AB12=CDE", e('=', 5));
        check("=HYPERLINK(1)", e('=', 1));
        check("+AB12", e('+', 1));
        check("@AB12", e('@', 1));
        check("AB12&CDE", e('&', 5));
        check("AB12\"CDE", e('"', 5));
        check("AB12'CDE", e('\'', 5));
        check("AB_12", e('_', 3));
        check("AB1?CDE", e('?', 4));
        check("AB1*", e('*', 4));
        check("AB12,CDE", e(',', 5));
        check("AB12/CDE", e('/', 5));
        // Whitespace other than a space, control and invisible characters.
        check("AB12\tCDE", e('\t', 5));
        check("AB12 CDE\n", e('\n', 9));
        check("AB12\rCDE", e('\r', 5));
        check("AB12\u{1b}[2J", e('\u{1b}', 5));
        check("AB\u{200b}12CDE", e('\u{200b}', 3));
        check("AB12\u{a0}CDE", e('\u{a0}', 5));
        check("AB12\u{202e}EDC", e('\u{202e}', 5));
        check("\u{feff}AB12CDE", e('\u{feff}', 1));
        // Letters outside A-Z, and digits outside 0-9.
        check("\u{410}B12CDE", e('\u{410}', 1));
        check("AB\u{ff11}2CDE", e('\u{ff11}', 3));
        check("AB12 CD\u{dc}", e('\u{dc}', 8));
    }

    #[test]
    fn a_refusal_names_the_character_and_its_position() {
        let e = Vrm::normalise("AB12<script>").unwrap_err().to_string();
        assert!(e.contains("'<' at position 5"), "{e}");
        assert!(e.contains("space, '-' and '.'"), "{e}");
        let e = Vrm::normalise("AB\u{200b}12").unwrap_err().to_string();
        assert!(e.contains("'\\u{200b}' at position 3"), "{e}");
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let e = Vrm::normalise("AB\u{0}1").unwrap_err().to_string();
        assert!(e.contains("position 3"), "{e}");
        let e = Vrm::normalise(&"A".repeat(100)).unwrap_err().to_string();
        assert!(e.contains("too long"), "{e}");
    }

    #[test]
    fn debug_is_redacted() {
        let v = Vrm::normalise("AB12CDE").unwrap();
        assert_eq!(format!("{v:?}"), "Vrm(AB*****)");
        assert!(!format!("{v:?}").contains("12CDE"));
        assert_eq!(v.to_string(), "AB12CDE");
    }

    proptest! {
        #[test]
        fn normalise_is_idempotent_and_clean(raw in "[ -~\t\u{a0}\u{200b}\u{410}]{0,20}") {
            if let Ok(v) = Vrm::normalise(&raw) {
                prop_assert!(v.as_str().bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()));
                prop_assert!(!v.as_str().is_empty() && v.as_str().len() <= MAX_VRM_LEN);
                prop_assert_eq!(Vrm::normalise(v.as_str()).unwrap(), v.clone());
                // Separators and case never change the result.
                let spaced: String = raw.chars().flat_map(|c| [c.to_ascii_lowercase(), ' ']).collect();
                if spaced.len() <= MAX_RAW_LEN {
                    prop_assert_eq!(Vrm::normalise(&spaced).unwrap(), v.clone());
                }
                // It is exactly the input's letters and digits.
                let alnum: String = raw.chars().filter(char::is_ascii_alphanumeric).collect();
                prop_assert_eq!(v.as_str(), alnum.to_ascii_uppercase());
            }
            // Accepted exactly when every character is a letter, digit or separator
            // (and the length fits): nothing else is ever dropped.
            let clean = raw.chars().all(|c| c.is_ascii_alphanumeric() || is_separator(c));
            match Vrm::normalise(&raw) {
                Err(VrmError::IllegalChar { ch, pos }) => {
                    prop_assert!(!clean);
                    prop_assert_eq!(raw.chars().nth(pos - 1), Some(ch));
                    prop_assert!(!ch.is_ascii_alphanumeric() && !is_separator(ch));
                }
                other => prop_assert!(clean, "{:?} -> {:?}", raw, other),
            }
        }
    }
}
