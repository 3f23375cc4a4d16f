//! Every secret the test hosts hold, and every spelling of one that a careless
//! host could leave behind: raw, hex in both cases, and the spellings the fetch
//! scrubber removes from reflections (`airlock_fetch::spellings`: base64 and
//! base64url whole and at each byte alignment, percent-encoded, JSON). Every
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
    let mut out = vec![
        (format!("{name} raw"), secret.to_vec()),
        (format!("{name} hex"), hex::encode(secret).into_bytes()),
        (
            format!("{name} HEX"),
            hex::encode_upper(secret).into_bytes(),
        ),
    ];
    out.extend(
        airlock_fetch::spellings(secret)
            .into_iter()
            .map(|(label, bytes)| (format!("{name} {label}"), bytes)),
    );
    out.sort_by(|a, b| a.1.cmp(&b.1));
    out.dedup_by(|a, b| a.1 == b.1);
    out
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
