//! What may reach the operator's terminal. Anything a host says (errors,
//! versions, states, `/readyz` reasons kept by the monitor) may lie: an
//! escape sequence in it can retitle the window, hide or rewrite lines, or
//! on some terminals answer back as typed input; a bidirectional override
//! or an invisible character makes the text read differently from what it
//! is. Every place that prints host text passes it through here, and
//! inventory validation refuses the same characters in values that are
//! printed or sent to a host.

use std::borrow::Cow;

/// A character that does not show as itself: C0 and C1 controls, DEL,
/// line and paragraph separators, and Unicode's format characters
/// (general category Cf: bidirectional embeddings, overrides and isolates,
/// zero-width spaces and joiners, the BOM, tag characters, ...), plus the
/// few blank letters used to fake an empty name.
pub fn is_hidden(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') || is_format(c) || is_blank_letter(c)
}

/// The bidirectional controls alone (Trojan Source, CVE-2021-42574): these
/// reorder what is displayed around them.
pub fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
    )
}

/// Unicode 15.1's general category Cf, as ranges: small enough to keep here
/// rather than pull in a Unicode tables crate.
const FORMAT: &[(char, char)] = &[
    ('\u{00AD}', '\u{00AD}'),
    ('\u{0600}', '\u{0605}'),
    ('\u{061C}', '\u{061C}'),
    ('\u{06DD}', '\u{06DD}'),
    ('\u{070F}', '\u{070F}'),
    ('\u{0890}', '\u{0891}'),
    ('\u{08E2}', '\u{08E2}'),
    ('\u{180E}', '\u{180E}'),
    ('\u{200B}', '\u{200F}'),
    ('\u{202A}', '\u{202E}'),
    ('\u{2060}', '\u{2064}'),
    ('\u{2066}', '\u{206F}'),
    ('\u{FEFF}', '\u{FEFF}'),
    ('\u{FFF9}', '\u{FFFB}'),
    ('\u{110BD}', '\u{110BD}'),
    ('\u{110CD}', '\u{110CD}'),
    ('\u{13430}', '\u{1343F}'),
    ('\u{1BCA0}', '\u{1BCA3}'),
    ('\u{1D173}', '\u{1D17A}'),
    ('\u{E0001}', '\u{E0001}'),
    ('\u{E0020}', '\u{E007F}'),
];

fn is_format(c: char) -> bool {
    FORMAT.iter().any(|&(lo, hi)| (lo..=hi).contains(&c))
}

/// Letters that render as nothing (Hangul fillers, the Braille blank).
fn is_blank_letter(c: char) -> bool {
    matches!(
        c,
        '\u{115F}' | '\u{1160}' | '\u{3164}' | '\u{FFA0}' | '\u{2800}'
    )
}

/// One line of host text for the terminal: every hidden character, line
/// breaks and tabs included, is written as Rust escapes it (`\u{1b}`,
/// `\n`), so what is shown is all there is.
pub fn escape(s: &str) -> Cow<'_, str> {
    escape_except(s, |_| false)
}

/// Host text that may span lines (an error's stderr, a diff): as [`escape`],
/// but line breaks and tabs stay.
pub fn escape_lines(s: &str) -> Cow<'_, str> {
    escape_except(s, |c| c == '\n' || c == '\t')
}

fn escape_except(s: &str, keep: impl Fn(char) -> bool) -> Cow<'_, str> {
    if !s.chars().any(|c| is_hidden(c) && !keep(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_hidden(c) && !keep(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A JSON document for the terminal: serde_json escapes C0 controls but
/// writes DEL, C1 controls and format characters as they are. Those can
/// only occur inside strings, where `\uXXXX` (a surrogate pair above the
/// BMP) means the same character: the document stays the same JSON.
pub fn escape_json(json: &str) -> Cow<'_, str> {
    if !json.chars().any(is_hidden_in_json) {
        return Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len() + 8);
    for c in json.chars() {
        if is_hidden_in_json(c) {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Hidden, but not the JSON document's own whitespace.
fn is_hidden_in_json(c: char) -> bool {
    is_hidden(c) && !matches!(c, '\n' | '\t' | '\r')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a lying host might send: a title change, a screen clear, an
    /// OSC 52 clipboard write, C1 CSI, DEL, a right-to-left override, a
    /// zero-width space, a BOM and a tag character.
    const LIES: &str = "ok\u{1b}]0;owned\u{7}\u{1b}[2J\u{1b}]52;c;cm0gLXJm\u{7}\u{9b}31m\u{7f}\u{202e}gnp.exe\u{200b}\u{feff}\u{e0041}\rdone";

    fn shows_only_printable(s: &str) {
        assert!(!s.chars().any(is_hidden), "{s:?}");
    }

    #[test]
    fn a_lying_line_is_shown_escaped() {
        let e = escape(LIES);
        shows_only_printable(&e);
        assert!(e.starts_with("ok\\u{1b}]0;owned\\u{7}\\u{1b}[2J"), "{e}");
        assert!(e.contains("\\u{9b}31m\\u{7f}\\u{202e}gnp.exe\\u{200b}\\u{feff}\\u{e0041}\\rdone"));
        assert_eq!(escape("a\nb\tc"), "a\\nb\\tc");
    }

    #[test]
    fn multi_line_text_keeps_its_lines() {
        let text = format!("first\n\t{LIES}\n");
        let e = escape_lines(&text);
        assert!(e.starts_with("first\n\tok\\u{1b}"), "{e}");
        assert!(e.ends_with("\\rdone\n"));
        assert!(!e.contains(['\u{1b}', '\u{202e}', '\r']));
    }

    #[test]
    fn plain_text_is_not_copied() {
        for s in ["openclaw 2026.9.6", "ünïcödé ✓ 日本語", "a\tb"] {
            assert!(matches!(escape_lines(s), Cow::Borrowed(_)), "{s}");
        }
        assert!(matches!(escape("2026.9.6"), Cow::Borrowed(_)));
    }

    #[test]
    fn json_stays_the_same_json() {
        let v = serde_json::json!({"failing": [LIES, "\u{1d173}x"], "n": 1});
        let text = serde_json::to_string_pretty(&v).unwrap();
        let e = escape_json(&text);
        shows_only_printable(&e.replace(['\n', '\t'], ""));
        let back: serde_json::Value = serde_json::from_str(&e).unwrap();
        assert_eq!(back, v);
        assert!(e.contains("\\ud834\\udd73x"), "{e}");
    }

    #[test]
    fn bidi_controls_are_hidden_characters() {
        for c in [
            '\u{202a}', '\u{202e}', '\u{2066}', '\u{2069}', '\u{200e}', '\u{061c}',
        ] {
            assert!(is_bidi_control(c) && is_hidden(c), "{c:?}");
        }
        for c in ['a', 'é', '✓', ' ', '日'] {
            assert!(!is_hidden(c) && !is_bidi_control(c), "{c:?}");
        }
    }
}
