//! The redactor and the failure classification, without a server.

use crate::scrub::{Failure, MAX_LOGGED_BYTES, Redactor};
use airlock_core::{VerbError, WitError};
use std::time::Duration;

use super::{KEY, assert_no_key_fragment};

fn redactor() -> Redactor {
    Redactor::new([KEY.as_bytes()])
}

mod secrets {
    use super::*;

    #[test]
    fn whole_keys_prefixes_suffixes_and_middles_are_redacted() {
        let r = redactor();
        assert_eq!(
            r.redact(format!("key {KEY} end").as_bytes()),
            "key [redacted] end"
        );
        assert_eq!(
            r.redact(b"Incorrect API key provided: sk-test-abcdef123456..."),
            "Incorrect API key provided: [redacted]..."
        );
        assert_eq!(r.redact(b"ends ...567890XYZ"), "ends ...[redacted]");
        assert_eq!(r.redact(b"mid cdef1234 x"), "mid [redacted] x");
        assert_eq!(r.redact(b"seven: cdef123 stays"), "seven: cdef123 stays");
        assert_eq!(r.redact(b"nothing here"), "nothing here");
        let twice = format!("{KEY}{KEY}");
        assert_eq!(r.redact(twice.as_bytes()), "[redacted]");
        assert_eq!(r.redact_string("plain".into()), "plain");
    }

    #[test]
    fn a_key_echoed_in_escapes_is_redacted_where_it_is_spelled() {
        let r = redactor();
        let json: String = KEY.bytes().map(|b| format!("\\u{b:04X}")).collect();
        let html: String = KEY.bytes().map(|b| format!("&#x{b:x};")).collect();
        let pct: String = KEY.bytes().map(|b| format!("%{b:02x}")).collect();
        // Only some characters escaped, in a provider's JSON error.
        let mixed = KEY.replacen("sk-", "sk\\u002D", 1);
        for spelled in [json, html, pct, mixed] {
            let out = r.redact(format!("{{\"error\":\"bad key {spelled}\"}}").as_bytes());
            assert_eq!(out, "{\"error\":\"bad key [redacted]\"}", "{spelled}");
        }
        // Half of the key, escaped, is still a fragment.
        let half: String = KEY
            .bytes()
            .take(12)
            .map(|b| format!("\\u{b:04x}"))
            .collect();
        assert_eq!(r.redact(format!("x {half} y").as_bytes()), "x [redacted] y");
    }

    #[test]
    fn short_keys_are_redacted_whole_and_several_keys_at_once() {
        let r = Redactor::new([b"abc".as_slice(), b"0123456789".as_slice(), b"".as_slice()]);
        assert_eq!(
            r.redact(b"xabcx 12345678 0123"),
            "x[redacted]x [redacted] 0123"
        );
        assert_eq!(Redactor::default().redact(b"anything"), "anything");
    }

    #[test]
    fn excerpts_are_clipped_after_redaction_and_survive_broken_utf8() {
        let r = redactor();
        let mut long = "é".repeat(MAX_LOGGED_BYTES);
        long.push_str(KEY);
        let e = r.excerpt(long.as_bytes());
        assert!(
            e.ends_with(&format!("… ({} bytes in all)", long.len())),
            "{e}"
        );
        assert!(e.len() < MAX_LOGGED_BYTES + 40);
        assert_no_key_fragment(&e);
        let mut bytes = b"\xff\xfe ".to_vec();
        bytes.extend_from_slice(KEY.as_bytes());
        assert_eq!(r.excerpt(&bytes), "\u{fffd}\u{fffd} [redacted]");
    }
}

#[test]
fn failures_classify_into_short_guest_texts() {
    let status = |status| Failure::Status {
        status,
        retry_after: None,
        said: format!("echo {KEY}"),
    };
    let guest = |f: Failure| match f.to_guest() {
        VerbError::Guest(WitError::Upstream(r)) => r,
        other => panic!("{other:?}"),
    };
    assert_eq!(guest(status(401)), "authentication failed");
    assert_eq!(guest(status(403)), "authentication failed");
    assert_eq!(guest(status(429)), "rate limited");
    assert_eq!(guest(status(529)), "provider error (status 529)");
    assert_eq!(guest(status(413)), "request rejected (status 413)");
    assert_eq!(
        guest(Failure::Unreachable(KEY.into())),
        "provider unreachable"
    );
    assert_eq!(guest(Failure::TooLarge(1)), "response too large");
    assert_eq!(
        guest(Failure::Malformed {
            why: KEY.into(),
            said: KEY.into()
        }),
        "malformed response"
    );
    assert!(matches!(
        Failure::Deadline.to_guest(),
        VerbError::Guest(WitError::Timeout)
    ));
    assert!(status(429).retryable() && status(502).retryable());
    assert!(!status(401).retryable() && !status(400).retryable() && !Failure::Deadline.retryable());
    let f = Failure::Status {
        status: 429,
        retry_after: Some(Duration::from_secs(1)),
        said: String::new(),
    };
    assert_eq!(f.retry_after(), Some(Duration::from_secs(1)));
}
