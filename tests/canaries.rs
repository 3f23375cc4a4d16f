//! Every secret the test hosts hold, and every spelling of one that a careless
//! host could leave behind: raw, and the spellings the fetch scrubber removes
//! from reflections (`airlock_fetch::spellings`: base64 and base64url whole
//! and at each byte alignment, percent-encoded, hex in both cases, JSON `\/`
//! and `\u` escapes, HTML references). [`reflections`] is what a hostile
//! upstream sends back instead: mixes no fixed list can hold. Every
//! [`crate::TestHost`] greps its whole audit trail for all of them when it is
//! dropped, so each test that runs jobs also checks that the audit holds no
//! secret.

use crate::{OTHER_KEY, WEBHOOK_KEY};

/// The secret the fetch test hosts release as `token`; its characters change
/// under every encoding, so each spelling of a reflection is distinct.
pub const FETCH_SECRET: &str = "s3cr3t/T0KEN+with=chars&more";

/// The API key of every LLM provider in the `complete` tests.
pub const LLM_KEY: &str = "sk-test-abcdef1234567890XYZ";

/// The canary scan's HMAC key.
pub const CANARY_HMAC_KEY: &[u8] = b"canary-hmac-Qx7vZ2mK9pL4wR8tY1nB";

/// The canary scan's Ed25519 seed.
pub const CANARY_ED_SEED: [u8; 32] = [
    0xc3, 0x5a, 0x91, 0x0e, 0x7f, 0x22, 0xd4, 0x68, 0xb1, 0x3c, 0x05, 0xee, 0x49, 0x86, 0x1d, 0xa7,
    0x5b, 0xf0, 0x32, 0x9c, 0x64, 0x0b, 0xd8, 0x17, 0xae, 0x53, 0xc9, 0x2e, 0x81, 0x76, 0x3f, 0xe5,
];

/// The canary scan's LLM API key.
pub const CANARY_LLM_KEY: &str = "sk-canary-llm-Hq3Jv8Rw2Zt6Yp1Ls9Kd";

/// The canary scan's fetch credential.
pub const CANARY_FETCH_SECRET: &str = "canary-fetch-Mb4Xn7Qc1Wv5Te8Ra2Uj/+=";

/// Every spelling of `secret`, each labelled `"{name} {spelling}"`.
pub fn spellings(name: &str, secret: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = vec![(format!("{name} raw"), secret.to_vec())];
    out.extend(
        airlock_fetch::spellings(secret)
            .into_iter()
            .map(|(label, bytes)| (format!("{name} {label}"), bytes)),
    );
    out.sort_by(|a, b| a.1.cmp(&b.1));
    out.dedup_by(|a, b| a.1 == b.1);
    out
}

/// `token` as a hostile upstream reflects it, labelled: raw, base64,
/// percent-encoded (lower-case hex); each character
/// JSON-escaped in lower, upper or mixed case, only the `/` `+` `=` `&`
/// escaped, `\/`, hex in both cases, HTML decimal, hex (`x` and `X`) and
/// named references. A guest's JSON or HTML parser turns each back into the
/// token; as JSON string values every one is valid.
pub fn reflections(token: &str) -> Vec<(&'static str, String)> {
    let each = |f: &dyn Fn(usize, u8) -> String| -> String {
        token.bytes().enumerate().map(|(i, b)| f(i, b)).collect()
    };
    let special = |b: u8| matches!(b, b'/' | b'+' | b'=' | b'&');
    vec![
        ("raw", token.to_string()),
        (
            "base64",
            airlock_fetch::spellings(token.as_bytes())
                .into_iter()
                .find(|(label, _)| *label == "base64")
                .map(|(_, b)| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default(),
        ),
        (
            "percent",
            each(&|_, b| {
                if b.is_ascii_alphanumeric() {
                    char::from(b).to_string()
                } else {
                    format!("%{b:02x}")
                }
            }),
        ),
        ("json all escaped", each(&|_, b| format!("\\u{b:04x}"))),
        (
            "json all escaped upper",
            each(&|_, b| format!("\\u{b:04X}")),
        ),
        (
            "json mixed-case escapes",
            each(&|i, b| {
                let hex = format!("{b:04x}");
                let hex = if i % 2 == 0 { hex.to_uppercase() } else { hex };
                format!("\\u{hex}")
            }),
        ),
        (
            "json partially escaped",
            each(&|i, b| {
                if special(b) || i % 4 == 0 {
                    format!("\\u{b:04X}")
                } else {
                    char::from(b).to_string()
                }
            }),
        ),
        (
            "json escaped slash and plus",
            each(&|i, b| match b {
                b'/' if i % 2 == 0 => "\\/".to_string(),
                b'/' => "\\u002F".to_string(),
                b'+' => "\\u002b".to_string(),
                b => char::from(b).to_string(),
            }),
        ),
        ("hex lower", hex::encode(token)),
        ("hex upper", hex::encode_upper(token)),
        ("html decimal", each(&|_, b| format!("&#{b};"))),
        ("html hex lower", each(&|_, b| format!("&#x{b:x};"))),
        ("html hex upper", each(&|_, b| format!("&#X{b:X};"))),
        (
            "html named",
            each(&|_, b| match b {
                b'+' => "&plus;".to_string(),
                b'/' => "&sol;".to_string(),
                b'=' => "&equals;".to_string(),
                b'&' => "&amp;".to_string(),
                b => char::from(b).to_string(),
            }),
        ),
        (
            "html partially escaped",
            each(&|_, b| {
                if special(b) {
                    format!("&#x{b:X};")
                } else {
                    char::from(b).to_string()
                }
            }),
        ),
    ]
}

/// Every spelling of the canary scan's four secrets.
pub fn canaries() -> Vec<(String, Vec<u8>)> {
    [
        spellings("hmac key", CANARY_HMAC_KEY),
        spellings("ed25519 seed", &CANARY_ED_SEED),
        spellings("llm key", CANARY_LLM_KEY.as_bytes()),
        spellings("fetch secret", CANARY_FETCH_SECRET.as_bytes()),
    ]
    .concat()
}

/// Every spelling of every secret any test host holds.
pub fn all_secrets() -> Vec<(String, Vec<u8>)> {
    [
        canaries(),
        spellings("webhook key", WEBHOOK_KEY),
        spellings("other key", OTHER_KEY),
        spellings("fetch token", FETCH_SECRET.as_bytes()),
        spellings("llm test key", LLM_KEY.as_bytes()),
    ]
    .concat()
}

/// Panics if any spelling of any test secret occurs in `text` (`what` says
/// where the text came from).
#[track_caller]
pub fn assert_no_secret(what: &str, text: &str) {
    for (name, pattern) in all_secrets() {
        assert!(
            memchr::memmem::find(text.as_bytes(), &pattern).is_none(),
            "the {name} spelling of a test secret is in {what}: {text}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

    /// The base64 spellings really occur in an encoding of a text that holds
    /// the secret, whatever its offset.
    #[test]
    fn every_base64_spelling_occurs_in_a_real_encoding_of_a_text_holding_the_secret() {
        for prefix in [&b""[..], b"a", b"ab", b"abc", b"abcd"] {
            let mut text = prefix.to_vec();
            text.extend_from_slice(CANARY_HMAC_KEY);
            text.extend_from_slice(b"tail");
            let encoded = [STANDARD.encode(&text), URL_SAFE_NO_PAD.encode(&text)];
            let shift = prefix.len() % 3;
            let wanted: Vec<_> = spellings("k", CANARY_HMAC_KEY)
                .into_iter()
                .filter(|(name, _)| {
                    name.starts_with("k base64") && name.ends_with(&format!("+{shift}"))
                })
                .collect();
            // base64url equals base64 (and is deduplicated) where no `+` or `/` occurs.
            assert!(!wanted.is_empty(), "no base64 spelling for shift {shift}");
            for (name, pattern) in wanted {
                assert!(
                    encoded
                        .iter()
                        .any(|e| memchr::memmem::find(e.as_bytes(), &pattern).is_some()),
                    "{name} not found in {encoded:?}"
                );
            }
        }
    }
}
