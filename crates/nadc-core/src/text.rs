//! Free text a BOF or user supplies (make, model, colour, image
//! references): what may be stored, so that it reads the same to every
//! person who sees it.
//!
//! Control characters (a terminal escape, a carriage return, NUL) and the
//! invisible formatting characters (zero-width spaces and joiners, the
//! bidirectional overrides and isolates that can make text display in an
//! order other than the one stored, a byte-order mark) are refused. The
//! outputs neutralise text again for where it is written (a terminal, a
//! spreadsheet, KML), so text stored before this rule is safe there too.

/// Whether `c` is an invisible formatting character: one that changes how
/// the text around it displays (bidirectional overrides and isolates) or
/// shows nothing at all (zero-width characters, soft hyphen, byte-order
/// mark). The Unicode format characters (category Cf) that can appear in
/// text a camera or a person writes.
pub fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{061C}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
    )
}

/// Why a piece of free text was refused: the first offending character
/// and its 1-based position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    /// A control character (Unicode category Cc).
    #[error("control characters: {ch:?} at position {pos}")]
    Control {
        /// The character.
        ch: char,
        /// Its 1-based position.
        pos: usize,
    },
    /// An invisible formatting character ([`is_invisible_format`]).
    #[error("an invisible formatting character: {ch:?} at position {pos}")]
    Invisible {
        /// The character.
        ch: char,
        /// Its 1-based position.
        pos: usize,
    },
}

/// Checks free text: no control or invisible formatting characters.
pub fn check_free_text(s: &str) -> Result<(), TextError> {
    for (i, ch) in s.chars().enumerate() {
        if ch.is_control() {
            return Err(TextError::Control { ch, pos: i + 1 });
        }
        if is_invisible_format(ch) {
            return Err(TextError::Invisible { ch, pos: i + 1 });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(s: &str, expected: Result<(), TextError>) {
        assert_eq!(check_free_text(s), expected, "{s:?}");
    }

    #[test]
    fn free_text_table() {
        use TextError::{Control, Invisible};
        check("Ford", Ok(()));
        check("Citroën", Ok(()));
        check("Land Rover / Range-Rover (4x4)", Ok(()));
        // Markup and formulas are text: neutralised where written, not refused.
        check("=HYPERLINK(\"http://x\")", Ok(()));
        check("<b>red</b>", Ok(()));
        check(
            "Bl\u{1b}[31mue",
            Err(Control {
                ch: '\u{1b}',
                pos: 3,
            }),
        );
        check("red\r\n", Err(Control { ch: '\r', pos: 4 }));
        check("\tred", Err(Control { ch: '\t', pos: 1 }));
        check(
            "\u{9b}31m",
            Err(Control {
                ch: '\u{9b}',
                pos: 1,
            }),
        );
        check(
            "re\u{200b}d",
            Err(Invisible {
                ch: '\u{200b}',
                pos: 3,
            }),
        );
        check(
            "der\u{202e}",
            Err(Invisible {
                ch: '\u{202e}',
                pos: 4,
            }),
        );
        check(
            "\u{2066}x",
            Err(Invisible {
                ch: '\u{2066}',
                pos: 1,
            }),
        );
        check(
            "\u{feff}Ford",
            Err(Invisible {
                ch: '\u{feff}',
                pos: 1,
            }),
        );
    }

    #[test]
    fn the_message_names_the_character_and_position() {
        let e = check_free_text("Bl\u{1b}ue").unwrap_err().to_string();
        assert_eq!(e, "control characters: '\\u{1b}' at position 3");
    }
}
