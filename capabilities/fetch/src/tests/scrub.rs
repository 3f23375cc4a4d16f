//! The reflection scrubber against a hostile upstream's spellings: every
//! character of a secret escaped (or not) its own way, in JSON, JavaScript,
//! percent or HTML syntax, in any case; hex in any case; and inputs built to
//! make a naive scan slow.

use super::*;
use crate::scrub::{Scrubber, spellings};
use airlock_core::unescape::decode;
use proptest::prelude::*;

/// `text` with every decoded layer too (what a guest could turn it into).
fn views(text: &[u8]) -> Vec<Vec<u8>> {
    let mut out = vec![text.to_vec()];
    while let Some(next) = decode(out.last().expect("one view")) {
        out.push(next);
        if out.len() > 4 {
            break;
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// One character as a hostile upstream might write it.
fn spell(c: u8, how: u8, zeros: usize) -> String {
    let named = match c {
        b'+' => Some("&plus;"),
        b'/' => Some("&sol;"),
        b'=' => Some("&equals;"),
        b'&' => Some("&amp;"),
        b'<' => Some("&lt;"),
        _ => None,
    };
    let z = "0".repeat(zeros);
    match how % 12 {
        0 => char::from(c).to_string(),
        1 => format!("\\u{c:04x}"),
        2 => format!("\\u{c:04X}"),
        3 if c == b'/' => "\\/".to_string(),
        3 => format!("\\x{c:02x}"),
        4 => format!("\\u{{{c:X}}}"),
        5 => format!("&#{z}{c};"),
        6 => format!("&#x{z}{c:x};"),
        7 => format!("&#X{z}{c:X};"),
        8 => named.map_or_else(|| format!("&#{c};"), str::to_string),
        9 => format!("%{c:02X}"),
        10 => format!("%{c:02x}"),
        _ => format!("%u{c:04X}"),
    }
}

mod secrets {
    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Any mix of raw and escaped characters, in any case, is found and
        /// no view of what is left holds the secret.
        #[test]
        fn a_secret_in_any_mix_of_escapes_is_scrubbed(
            secret in "[A-Za-z0-9+/=_.~!*:-]{8,40}",
            hows in prop::collection::vec(any::<u8>(), 40),
            zeros in prop::collection::vec(0usize..4, 40),
            before in "[a-z {}\":,]{0,12}",
            after in "[a-z {}\":,]{0,12}",
        ) {
            let spelled: String = secret
                .bytes()
                .enumerate()
                .map(|(i, c)| spell(c, hows[i], zeros[i]))
                .collect();
            let text = format!("{before}{spelled}{after}");
            let scrubber = Scrubber::new([secret.as_bytes()]);
            let (out, n) = scrubber.scrub(text.as_bytes());
            prop_assert!(n >= 1, "{text}");
            for view in views(&out) {
                prop_assert!(!contains(&view, secret.as_bytes()), "{text} -> {}", String::from_utf8_lossy(&out));
            }
            // The text around it survives.
            let out = String::from_utf8_lossy(&out);
            prop_assert!(out.starts_with(&before) && out.ends_with(&after), "{out}");
        }
    }

    #[test]
    fn every_listed_spelling_and_hex_in_any_case_is_scrubbed() {
        let scrubber = Scrubber::new([SECRET.as_bytes()]);
        let mut labels = Vec::new();
        for (label, spelled) in spellings(SECRET.as_bytes()) {
            let mut text = b"{\"echo\":\"".to_vec();
            text.extend_from_slice(&spelled);
            text.extend_from_slice(b"\"}");
            let (out, n) = scrubber.scrub(&text);
            assert_eq!(
                (n, out.as_slice()),
                (1, &b"{\"echo\":\"[REDACTED]\"}"[..]),
                "{label}"
            );
            labels.push(label);
        }
        for wanted in [
            "json-u",
            "json-U",
            "html-dec",
            "html-hex",
            "html-HEX",
            "html-named",
            "hex",
            "HEX",
        ] {
            assert!(labels.contains(&wanted), "{wanted} missing from {labels:?}");
        }
        // Hex with the case of each digit chosen by the upstream.
        let mixed: String = SECRET
            .bytes()
            .enumerate()
            .map(|(i, b)| {
                if i % 2 == 0 {
                    format!("{b:02X}")
                } else {
                    format!("{b:02x}")
                }
            })
            .collect();
        let (out, n) = scrubber.scrub_str(&format!("id={mixed};"));
        assert_eq!((out.as_str(), n), ("id=[REDACTED];", 1));
    }

    #[test]
    fn escapes_nested_three_layers_deep_are_scrubbed() {
        // An HTML page holding a JSON string holding a percent-encoded token.
        let pct: String = SECRET.bytes().map(|b| format!("%{b:02X}")).collect();
        let json = pct.replace('%', "\\u0025");
        let html = json.replace('\\', "&#92;");
        let scrubber = Scrubber::new([SECRET.as_bytes()]);
        for text in [pct, json, html] {
            let (out, n) = scrubber.scrub_str(&format!("<p>{text}</p>"));
            assert_eq!((out.as_str(), n), ("<p>[REDACTED]</p>", 1), "{text}");
        }
    }

    #[test]
    fn text_without_the_secret_is_left_alone() {
        let scrubber = Scrubber::new([SECRET.as_bytes()]);
        let text = r#"{"a":"\u0073\u0033cr3t", "b":"&#x2F;&plus; %2F", "c":"s3cr3t/T0KEN+with=chars&mor"}"#;
        assert_eq!(scrubber.scrub_str(text), (text.to_string(), 0));
    }

    #[test]
    fn hostile_inputs_are_scanned_in_linear_time() {
        let scrubber = Scrubber::new([SECRET.as_bytes(), b"Bearer s3cr3t/T0KEN+with=chars&more"]);
        // Half-escapes, unterminated references and backslash runs: each
        // byte starts a candidate that fails late.
        for unit in [
            &b"\\u00"[..],
            b"&#0000",
            b"\\\\",
            b"%u00",
            b"&amp",
            b"s3cr3t/T0KEN",
        ] {
            let text = unit.repeat((2 << 20) / unit.len());
            let started = Instant::now();
            let (out, n) = scrubber.scrub(&text);
            let took = started.elapsed();
            assert_eq!(
                (out.len(), n),
                (text.len(), 0),
                "{:?}",
                String::from_utf8_lossy(unit)
            );
            assert!(
                took < Duration::from_secs(20),
                "{:?}: 2 MiB took {took:?}",
                String::from_utf8_lossy(unit)
            );
        }
    }
}
