//! Terminal safety: text from guests, components and toolkits reaches the
//! operator's terminal with every control character shown as visible text, so
//! it cannot move the cursor, set the title, add hyperlinks or forge lines.
//! The CLI's `outln!`/`out!` (stdout) and `errln!` (stderr) print through here.

use std::borrow::Cow;
use std::fmt::{self, Write as _};
use std::io::Write as _;

/// Whether `c` must not reach a terminal as itself: C0 controls (ESC, BEL,
/// `\r`, `\n`, ...), DEL, C1 controls (U+0080–U+009F, where U+009B is a CSI)
/// and the bidirectional embeddings, overrides and isolates (U+202A–U+202E,
/// U+2066–U+2069) that reorder what the reader sees.
pub fn is_unsafe(c: char) -> bool {
    matches!(c, '\0'..='\x1f' | '\x7f'..='\u{9f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` as one line: every unsafe character, `\n` included, written as
/// visible text (`\x1b`, `\r`, `\n`, `\u202e`). Borrows when nothing needs it.
pub fn escape_control(text: &str) -> Cow<'_, str> {
    escape(text, false)
}

/// `text` with every unsafe character but `\n` escaped, for output whose line
/// breaks the printer chose. On JSON text it keeps the JSON exact: the only
/// unsafe characters `serde_json` leaves raw (DEL, C1, bidi) become `\u`
/// escapes that parse back to the same characters, and no C0 control but the
/// pretty-printer's `\n` occurs outside a string.
pub fn escape_text(text: &str) -> Cow<'_, str> {
    escape(text, true)
}

fn escape(text: &str, keep_newlines: bool) -> Cow<'_, str> {
    let unsafe_char = |c: char| is_unsafe(c) && !(keep_newlines && c == '\n');
    let Some(first) = text.find(unsafe_char) else {
        return Cow::Borrowed(text);
    };
    let mut out = String::with_capacity(text.len() + 16);
    out.push_str(&text[..first]);
    for c in text[first..].chars() {
        if !unsafe_char(c) {
            out.push(c);
            continue;
        }
        let _ = match c {
            '\n' => out.write_str("\\n"),
            '\r' => out.write_str("\\r"),
            '\t' => out.write_str("\\t"),
            '\0'..='\x1f' => write!(out, "\\x{:02x}", c as u32),
            // The JSON spelling, so escaped JSON text stays JSON.
            _ => write!(out, "\\u{:04x}", c as u32),
        };
    }
    Cow::Owned(out)
}

/// Writes `args` to stdout with [`escape_text`], then a newline if asked.
/// When stdout is closed (piped into `head`, say) the process ends quietly
/// instead of panicking on the broken pipe.
pub(crate) fn write_stdout(args: fmt::Arguments<'_>, newline: bool) {
    let text = fmt::format(args);
    let mut out = std::io::stdout().lock();
    let written = out
        .write_all(escape_text(&text).as_bytes())
        .and_then(|()| {
            if newline {
                out.write_all(b"\n")
            } else {
                Ok(())
            }
        })
        .and_then(|()| out.flush());
    if written.is_err() {
        std::process::exit(0);
    }
}

/// Writes `args` to stderr as exactly one line, with [`escape_control`].
/// A failed write to stderr is ignored: there is nowhere left to report it.
pub(crate) fn write_stderr_line(args: fmt::Arguments<'_>) {
    let text = fmt::format(args);
    let mut line = escape_control(&text).into_owned();
    line.push('\n');
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// `eprintln!` for text that may hold guest, component or toolkit text: the
/// whole formatted line goes through [`escape_control`], so one call prints
/// exactly one line and nothing in it reaches the terminal as a control.
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::term::write_stderr_line(format_args!($($arg)*))
    };
}
pub(crate) use errln;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_control_is_shown_as_text() {
        let attack = "a\x1b]0;title\x07b\x1b]8;;https://x.example\x1b\\link\x1b]8;;\x1b\\\r\n[info] forged\u{9b}2J\u{7f}\u{202e}cba\u{2066}\t";
        let one = escape_control(attack);
        assert_eq!(
            one,
            "a\\x1b]0;title\\x07b\\x1b]8;;https://x.example\\x1b\\link\\x1b]8;;\\x1b\\\\r\\n[info] forged\\u009b2J\\u007f\\u202ecba\\u2066\\t"
        );
        assert!(!one.chars().any(is_unsafe), "{one}");
        let kept = escape_text(attack);
        assert_eq!(kept.matches('\n').count(), 1);
        assert!(kept.contains("\\r\n[info] forged"), "{kept}");
    }

    #[test]
    fn safe_text_is_borrowed_and_unchanged() {
        for text in ["plain ascii", "é 中 😀 \u{a0} \u{200b} \u{2028}", ""] {
            assert!(matches!(escape_control(text), Cow::Borrowed(s) if s == text));
        }
        assert!(matches!(
            escape_text("two\nlines"),
            Cow::Borrowed("two\nlines")
        ));
    }

    #[test]
    fn escaped_json_is_the_same_json() {
        let original = "\x1b[31m\u{7f}\u{85}\u{9b}\u{202a}\u{2069}\r\n\"\\ é";
        let value = serde_json::json!({ original: [original, { "k": original }] });
        for text in [
            serde_json::to_string(&value).unwrap(),
            serde_json::to_string_pretty(&value).unwrap(),
        ] {
            let shown = escape_text(&text);
            assert!(!shown.chars().any(|c| is_unsafe(c) && c != '\n'), "{shown}");
            let back: serde_json::Value = serde_json::from_str(&shown).unwrap();
            assert_eq!(back, value);
        }
    }
}
