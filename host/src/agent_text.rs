//! Text that reaches an agent's model (tool descriptions and the docs inside
//! schemas): control and invisible characters, in which a description could
//! hide instructions or reorder what a reviewer sees, are removed, and every
//! text is capped in length.

use unicode_general_category::{GeneralCategory, get_general_category};

/// Longest description, in characters, that a tool or a schema part may
/// carry; longer text is cut and ends with `…`.
pub const MAX_DESCRIPTION_CHARS: usize = 2048;

/// Whether `c` is dropped from agent-facing text: control characters (C0
/// but line breaks and tabs, DEL, C1), format characters (bidi embeddings,
/// overrides and isolates U+202A–U+202E and U+2066–U+2069, marks such as
/// U+200E, zero-width characters U+200B–U+200D, U+2060, U+FEFF, tag
/// characters U+E0000–U+E007F, the soft hyphen), variation selectors, other
/// characters that render as nothing (the combining grapheme joiner, Hangul
/// fillers), private-use and unassigned code points.
pub fn is_hidden(c: char) -> bool {
    if matches!(
        c,
        '\u{034F}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{17B4}'
            | '\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FFA0}'
            | '\u{E0100}'..='\u{E01EF}'
    ) {
        return true;
    }
    matches!(
        get_general_category(c),
        GeneralCategory::Control
            | GeneralCategory::Format
            | GeneralCategory::PrivateUse
            | GeneralCategory::Surrogate
            | GeneralCategory::Unassigned
    )
}

/// `text` with every hidden character (see [`is_hidden`]) removed; line
/// breaks of every kind (`\r\n`, `\r`, vertical tab, form feed, U+0085,
/// U+2028, U+2029) become `\n` and tabs become spaces.
pub fn sanitize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\n' | '\u{0B}' | '\u{0C}' | '\u{85}' | '\u{2028}' | '\u{2029}' => out.push('\n'),
            '\r' => {
                if chars.peek() != Some(&'\n') {
                    out.push('\n');
                }
            }
            '\t' => out.push(' '),
            c if is_hidden(c) => {}
            c => out.push(c),
        }
    }
    out
}

/// `text` cut to at most `max` characters; a cut text ends with `…` (counted).
pub fn cap(mut text: String, max: usize) -> String {
    if max == 0 {
        text.clear();
        return text;
    }
    if let Some((at, _)) = text.char_indices().nth(max) {
        let keep = text[..at]
            .char_indices()
            .nth(max - 1)
            .map_or(at, |(i, _)| i);
        text.truncate(keep);
        let trimmed = text.trim_end().len();
        text.truncate(trimmed);
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_characters_are_removed() {
        let poisoned = "Counts\u{1b}[2J words\u{7f}\u{9b}31m\u{202E}txt.exe\u{202C}\u{2066}x\u{2069}\
                        \u{200B}\u{200C}\u{200D}\u{2060}\u{FEFF}\u{200E}\u{200F}\u{061C}\u{AD}\
                        \u{E0041}\u{E0042}\u{FE0F}\u{E0100}\u{34F}\u{3164}\u{E000}\u{0}\u{7}";
        assert_eq!(sanitize(poisoned), "Counts[2J words31mtxt.exex");
        for c in [
            '\u{202A}', '\u{202B}', '\u{202D}', '\u{2067}', '\u{2068}', '\u{9f}',
        ] {
            assert!(is_hidden(c), "{:?}", c);
        }
        // Text in any script, emoji and punctuation stays.
        let kept = "Zählt Wörter — слова, 単語, كلمات 🙂 `text` (a, b) 1/2";
        assert_eq!(sanitize(kept), kept);
    }

    #[test]
    fn line_breaks_become_newlines_and_tabs_spaces() {
        assert_eq!(
            sanitize("a\r\nb\rc\u{b}d\u{c}e\u{85}f\u{2028}g\u{2029}h\ti"),
            "a\nb\nc\nd\ne\nf\ng\nh i"
        );
    }

    #[test]
    fn long_text_is_cut_on_a_character_boundary() {
        assert_eq!(cap("short".into(), 10), "short");
        assert_eq!(cap("exactly".into(), 7), "exactly");
        assert_eq!(cap("abcdefgh".into(), 5), "abcd…");
        assert_eq!(cap("ab  cdefgh".into(), 5), "ab…");
        let cut = cap("é".repeat(5000), MAX_DESCRIPTION_CHARS);
        assert_eq!(cut.chars().count(), MAX_DESCRIPTION_CHARS);
        assert!(cut.ends_with("é…"));
        assert_eq!(cap("abc".into(), 0), "");
    }
}
