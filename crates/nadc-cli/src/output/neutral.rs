//! Text from BOFs, users and peers made safe for where it is written: a
//! spreadsheet (no cell starts a formula), KML (no XML or HTML markup) and
//! a terminal (no escape sequences or invisible reordering).

use std::borrow::Cow;
use std::io::Write;

/// Characters that make a spreadsheet read a cell as a formula when they
/// start it (OWASP's CSV injection list, with line feed and the full-width
/// forms some spreadsheets also accept).
const FORMULA_STARTS: [char; 11] = [
    '=', '+', '-', '@', '\t', '\r', '\n', '\u{FF1D}', '\u{FF0B}', '\u{FF0D}', '\u{FF20}',
];

/// Whether `s` is a plain decimal number (`-2.587900`, `+3`, `45`): a
/// spreadsheet reads it as that number, never as a formula.
fn is_plain_number(s: &str) -> bool {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    !(int.is_empty() && frac.is_empty())
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
}

/// A CSV cell a spreadsheet reads as data: text that starts with a formula
/// character (`=HYPERLINK(...)`, `+cmd`, `@SUM`, `-2+3`, a leading tab) gets
/// a leading `'`, which spreadsheets show as text and do not run. Plain
/// numbers (a negative longitude) are left as they are.
pub fn spreadsheet_cell(s: &str) -> Cow<'_, str> {
    if s.starts_with(FORMULA_STARTS) && !is_plain_number(s) {
        Cow::Owned(format!("'{s}"))
    } else {
        Cow::Borrowed(s)
    }
}

/// Whether `c` must not reach a terminal: a control character (the start
/// of an escape sequence, a carriage return that overwrites the line) or
/// an invisible formatting character (bidirectional overrides).
fn unsafe_for_terminal(c: char) -> bool {
    c.is_control() || nadc_core::text::is_invisible_format(c)
}

/// Text for a terminal: each control or invisible formatting character
/// shown as `\u{FFFD}`, so a BOF's text cannot move the cursor, recolour or
/// clear the screen, or reorder what is shown, and its presence is seen.
pub fn terminal_text(s: &str) -> Cow<'_, str> {
    if s.chars().any(unsafe_for_terminal) {
        Cow::Owned(
            s.chars()
                .map(|c| {
                    if unsafe_for_terminal(c) {
                        '\u{FFFD}'
                    } else {
                        c
                    }
                })
                .collect(),
        )
    } else {
        Cow::Borrowed(s)
    }
}

/// [`terminal_text`] for text of several lines: line feeds are kept.
pub fn terminal_lines(s: &str) -> String {
    s.split('\n')
        .map(terminal_text)
        .collect::<Vec<_>>()
        .join("\n")
}

/// A CSV writer for people and spreadsheets: every text cell quoted (a
/// spreadsheet that splits on `;` or tabs cannot cut a cell in two and
/// start a new one with `=`), and every cell through [`spreadsheet_cell`].
pub struct SpreadsheetCsv<W: Write> {
    w: csv::Writer<W>,
}

impl<W: Write> SpreadsheetCsv<W> {
    /// A writer onto `out`.
    pub fn new(out: W) -> Self {
        Self {
            w: csv::WriterBuilder::new()
                .quote_style(csv::QuoteStyle::NonNumeric)
                .from_writer(out),
        }
    }

    /// Writes one record.
    pub fn row<I, T>(&mut self, cells: I) -> csv::Result<()>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<str>,
    {
        self.w.write_record(
            cells
                .into_iter()
                .map(|c| spreadsheet_cell(c.as_ref()).into_owned()),
        )
    }

    /// Flushes what was written.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.w.flush()
    }
}

/// Text for KML. Every reader parses KML as XML, and Google Earth then
/// shows placemark text in balloons as HTML: so `<` and `>` are first
/// escaped for HTML (a BOF's `<b>red</b>` or `<script>` shows as those
/// characters, never as markup), then the result for XML ([`xml`]), which
/// also drops control characters XML cannot carry.
pub fn kml_text(s: &str) -> String {
    xml(&s.replace('<', "&lt;").replace('>', "&gt;"))
}

/// Escapes text for XML content and attributes.
pub fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() && c != '\n' && c != '\t' => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One neutraliser, its input and what must come out.
    fn check(f: fn(&str) -> String, input: &str, expected: &str) {
        assert_eq!(f(input), expected, "{input:?}");
    }

    fn spreadsheet(s: &str) -> String {
        spreadsheet_cell(s).into_owned()
    }

    fn terminal(s: &str) -> String {
        terminal_text(s).into_owned()
    }

    #[test]
    fn spreadsheet_cells_never_start_a_formula() {
        let f = spreadsheet;
        check(f, "=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")");
        check(f, "+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0");
        check(f, "-2+3+cmd|' /C calc'!A0", "'-2+3+cmd|' /C calc'!A0");
        check(f, "@SUM(A1:A9)", "'@SUM(A1:A9)");
        check(f, "\t=1+1", "'\t=1+1");
        check(f, "\r=1+1", "'\r=1+1");
        check(f, "\n=1+1", "'\n=1+1");
        check(f, "\u{FF1D}1+1", "'\u{FF1D}1+1");
        check(f, "-", "'-");
        check(f, "-.", "'-.");
        check(f, "-1e9", "'-1e9");
        // Plain numbers, including negative ones, are left as numbers.
        check(f, "-2.587900", "-2.587900");
        check(f, "+44", "+44");
        check(f, "-0", "-0");
        check(f, "-.5", "-.5");
        // Text that does not start a formula is left alone.
        check(f, "Ford", "Ford");
        check(f, "A=B", "A=B");
        check(f, " =1+1", " =1+1");
        check(f, "", "");
        check(f, "'=quoted", "'=quoted");
    }

    #[test]
    fn terminal_text_cannot_drive_the_terminal() {
        let f = terminal;
        check(f, "Ford", "Ford");
        check(f, "Citroën", "Citroën");
        check(f, "\u{1b}[2J\u{1b}[31mred", "\u{FFFD}[2J\u{FFFD}[31mred");
        check(f, "ok\rFAKE", "ok\u{FFFD}FAKE");
        check(f, "a\nb\tc", "a\u{FFFD}b\u{FFFD}c");
        check(f, "\u{9b}31m", "\u{FFFD}31m");
        check(f, "abc\u{202e}fed", "abc\u{FFFD}fed");
        check(f, "a\u{200b}b", "a\u{FFFD}b");
        assert_eq!(
            terminal_lines("line 1\u{1b}[A\nline 2"),
            "line 1\u{FFFD}[A\nline 2"
        );
    }

    #[test]
    fn kml_text_is_neither_xml_nor_html_markup() {
        let f = kml_text;
        check(f, "Ford", "Ford");
        check(f, "<b>red</b>", "&amp;lt;b&amp;gt;red&amp;lt;/b&amp;gt;");
        check(f, "AT&T", "AT&amp;T");
        check(f, "]]><x/>", "]]&amp;gt;&amp;lt;x/&amp;gt;");
        check(f, "\"q\" 'a'", "&quot;q&quot; &apos;a&apos;");
        check(f, "a\u{1b}b\u{0}c", "abc");
    }
}
