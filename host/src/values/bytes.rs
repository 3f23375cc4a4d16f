//! `list<u8>` arguments written as base64 text, the compact alternative to a
//! JSON array of numbers. One spelling is accepted: RFC 4648 base64 with the
//! standard alphabet (`A-Z a-z 0-9 + /`), `=` padding, canonical final bits and
//! no whitespace, which is what `base64.b64encode`, `btoa` and
//! `Buffer.toString("base64")` write. URL-safe and unpadded text is refused with
//! a message saying how to fix it, so that every byte string has exactly one
//! base64 form and the JSON Schema's `pattern` ([`PATTERN`]) says exactly what
//! is accepted.
//!
//! The decoded size follows from the length alone ([`decoded_len`]), so a size
//! budget can refuse a huge string before a byte of it is decoded or any
//! memory is set aside for it; [`decode`] then writes the `Val::U8` list
//! wasmtime lowers in one allocation, through a small stack buffer.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use base64::{DecodeError, DecodeSliceError};
use wasmtime::component::Val;

/// The JSON Schema `pattern` of the base64 text [`decode`] accepts: whole
/// quads, then at most one padded quad whose last symbol leaves no stray bits.
pub const PATTERN: &str =
    "^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/][AQgw]==|[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=)?$";

/// Text decoded per step: whole quads, so only the last step may hold padding.
const CHUNK: usize = 4096;

/// How many bytes `text` decodes to, from its length and padding alone, or why
/// its length cannot be base64. Reads at most the last two bytes.
pub fn decoded_len(text: &str) -> Result<usize, String> {
    let n = text.len();
    if !n.is_multiple_of(4) {
        return Err(format!(
            "invalid base64 for list<u8>: its length {n} is not a multiple of 4; pad the end with `=` (standard base64 is always padded)"
        ));
    }
    let tail = &text.as_bytes()[n.saturating_sub(2)..];
    let pad = tail.iter().rev().take_while(|&&b| b == b'=').count();
    Ok(n / 4 * 3 - pad)
}

/// Decodes `text`, which [`decoded_len`] measured as `len` bytes, into `Val::U8`s.
pub fn decode(text: &str, len: usize) -> Result<Vec<Val>, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(len);
    let mut buf = [0u8; CHUNK / 4 * 3];
    let mut at = 0;
    for chunk in bytes.chunks(CHUNK) {
        let last = at + chunk.len() == bytes.len();
        // A chunk that ends in padding decodes on its own; the text as a whole
        // is only base64 if nothing follows that padding.
        if !last && chunk.last() == Some(&b'=') {
            let first = chunk.iter().position(|&b| b == b'=').unwrap_or(0);
            return Err(describe(text, DecodeError::InvalidByte(at + first, b'=')));
        }
        let n = STANDARD
            .decode_slice(chunk, &mut buf)
            .map_err(|e| match e {
                DecodeSliceError::DecodeError(e) => describe(text, shifted(e, at)),
                DecodeSliceError::OutputSliceTooSmall => {
                    "internal error: the base64 buffer is too small; please report this".into()
                }
            })?;
        out.extend(buf[..n].iter().map(|&b| Val::U8(b)));
        at += chunk.len();
    }
    debug_assert_eq!(out.len(), len, "decoded_len agrees with the decoder");
    Ok(out)
}

/// `e` with its offset moved from the chunk starting at `at` to the whole text.
fn shifted(e: DecodeError, at: usize) -> DecodeError {
    match e {
        DecodeError::InvalidByte(i, b) => DecodeError::InvalidByte(at + i, b),
        DecodeError::InvalidLastSymbol(i, b) => DecodeError::InvalidLastSymbol(at + i, b),
        DecodeError::InvalidLength(n) => DecodeError::InvalidLength(at + n),
        DecodeError::InvalidPadding => DecodeError::InvalidPadding,
    }
}

/// What is wrong with `text` and how to write it instead.
fn describe(text: &str, e: DecodeError) -> String {
    let detail = match e {
        DecodeError::InvalidByte(at, b'=') => format!(
            "padding `=` at offset {at} is not at the end; `=` may only end the text (at most two)"
        ),
        DecodeError::InvalidByte(at, b) if b.is_ascii_whitespace() => format!(
            "{} at offset {at}; write base64 as one unbroken line, without spaces or line breaks",
            match b {
                b'\n' | b'\r' => "a line break",
                b'\t' => "a tab",
                _ => "a space",
            }
        ),
        DecodeError::InvalidByte(at, b @ (b'-' | b'_')) => format!(
            "`{}` at offset {at} is URL-safe base64; use the standard alphabet: `+` for `-` and `/` for `_`",
            char::from(b)
        ),
        DecodeError::InvalidByte(at, _) => format!(
            "{} at offset {at} is not a base64 character (A-Z, a-z, 0-9, `+`, `/`, and `=` at the end)",
            shown_char(text, at)
        ),
        DecodeError::InvalidLastSymbol(at, b) => format!(
            "`{}` at offset {at} sets bits past the end of the data, so this is not how these bytes encode; encode them again",
            char::from(b)
        ),
        DecodeError::InvalidLength(_) | DecodeError::InvalidPadding => {
            "the padding does not fit the length; encode the bytes again (standard base64 with `=` padding)"
                .to_string()
        }
    };
    format!("invalid base64 for list<u8>: {detail}")
}

/// The character starting at byte `at` of `text`, escaped for a message.
fn shown_char(text: &str, at: usize) -> String {
    let c = text
        .get(at..)
        .and_then(|rest| rest.chars().next())
        .unwrap_or(char::REPLACEMENT_CHARACTER);
    format!("`{}`", c.escape_debug())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::values::tests::Rng;

    fn bytes_of(vals: &[Val]) -> Vec<u8> {
        vals.iter()
            .map(|v| match v {
                Val::U8(b) => *b,
                other => panic!("not a u8: {other:?}"),
            })
            .collect()
    }

    fn decoded(text: &str) -> Result<Vec<u8>, String> {
        let len = decoded_len(text)?;
        decode(text, len).map(|v| bytes_of(&v))
    }

    #[test]
    fn standard_padded_base64_decodes() {
        let cases: [(&str, &[u8]); 6] = [
            ("", b""),
            ("aA==", b"h"),
            ("aGk=", b"hi"),
            ("aGV5", b"hey"),
            ("+/+/", &[0xfb, 0xff, 0xbf]),
            ("AAEC/w==", &[0, 1, 2, 255]),
        ];
        for (text, want) in cases {
            assert_eq!(decoded_len(text), Ok(want.len()), "{text}");
            assert_eq!(decoded(text).as_deref(), Ok(want), "{text}");
        }
    }

    #[test]
    fn every_other_spelling_is_refused_with_what_to_do() {
        let cases = [
            (
                "aGk",
                "its length 3 is not a multiple of 4; pad the end with `=`",
            ),
            (
                "aG-k",
                "`-` at offset 2 is URL-safe base64; use the standard alphabet: `+` for `-`",
            ),
            ("a_==", "`_` at offset 1 is URL-safe base64"),
            ("aGk=aGk=", "padding `=` at offset 3 is not at the end"),
            ("=aGk", "padding `=` at offset 0 is not at the end"),
            ("a===", "padding `=` at offset 1 is not at the end"),
            ("aGl=", "`l` at offset 2 sets bits past the end of the data"),
            ("aB==", "`B` at offset 1 sets bits past the end of the data"),
            ("aGk=\n", "its length 5 is not a multiple of 4"),
            ("aGV5\naGk=", "its length 9 is not a multiple of 4"),
            (
                "aGV5\r\naG",
                "a line break at offset 4; write base64 as one unbroken line",
            ),
            (
                "aG k",
                "a space at offset 2; write base64 as one unbroken line",
            ),
            ("aG\tk", "a tab at offset 2"),
            ("aG%k", "`%` at offset 2 is not a base64 character"),
            ("aé=", "`é` at offset 1 is not a base64 character"),
            (
                "aG\u{1b}k",
                "`\\u{1b}` at offset 2 is not a base64 character",
            ),
        ];
        for (text, want) in cases {
            let e = decoded(text).expect_err(text);
            assert!(e.starts_with("invalid base64 for list<u8>: "), "{e}");
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }

    #[test]
    fn padding_at_a_chunk_boundary_is_still_refused() {
        // The first chunk ends in valid padding and would decode on its own.
        let mut text = "A".repeat(CHUNK - 4);
        text.push_str("AA==");
        text.push_str("AAAA");
        assert_eq!(text.len(), CHUNK + 4);
        let e = decoded(&text).unwrap_err();
        assert!(
            e.contains(&format!(
                "padding `=` at offset {} is not at the end",
                CHUNK - 2
            )),
            "{e}"
        );
        // Offsets in later chunks count from the start of the text.
        let mut text = "A".repeat(3 * CHUNK);
        text.replace_range(2 * CHUNK + 5..2 * CHUNK + 6, "*");
        let e = decoded(&text).unwrap_err();
        assert!(
            e.contains(&format!("`*` at offset {}", 2 * CHUNK + 5)),
            "{e}"
        );
    }

    #[test]
    fn long_text_decodes_across_chunks() {
        let mut rng = Rng(7);
        for len in [CHUNK / 4 * 3 - 1, CHUNK / 4 * 3, CHUNK / 4 * 3 + 1, 100_000] {
            let data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            let text = STANDARD.encode(&data);
            assert_eq!(decoded_len(&text), Ok(len));
            assert_eq!(decoded(&text), Ok(data), "{len} bytes");
        }
    }

    #[test]
    fn the_pattern_accepts_exactly_what_decodes() {
        let pattern = regex::Regex::new(PATTERN).expect("the pattern compiles");
        let symbols = b"ABQgwz09+/=-_ \nAAAA";
        let mut rng = Rng(0x5eed);
        let (mut ok, mut bad) = (0, 0);
        for round in 0..5_000 {
            let len = rng.below(7) as usize;
            let data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            let mut text = STANDARD.encode(&data).into_bytes();
            // Damage some: replace, insert or drop a symbol.
            if rng.below(2) == 0 {
                let at = rng.below(text.len() as u64 + 1) as usize;
                let sym = symbols[rng.below(symbols.len() as u64) as usize];
                match (rng.below(3), at < text.len()) {
                    (0, true) => text[at] = sym,
                    (1, true) => {
                        text.remove(at);
                    }
                    _ => text.insert(at, sym),
                }
            }
            let text = String::from_utf8(text).unwrap();
            let accepted = decoded(&text).is_ok();
            assert_eq!(
                accepted,
                pattern.is_match(&text),
                "round {round}: {text:?}: the decoder and the pattern disagree"
            );
            if accepted { ok += 1 } else { bad += 1 }
        }
        assert!(ok > 2_000 && bad > 1_000, "{ok} / {bad}");
    }
}
