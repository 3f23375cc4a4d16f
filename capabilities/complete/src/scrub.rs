//! Scrubbing: what a provider failure becomes for the guest (a short
//! classified `upstream` text, never the provider's words) and for the host
//! (the provider's words, with every fragment of an API key redacted).

use std::collections::HashSet;
use std::time::Duration;

use airlock_core::VerbError;
use airlock_core::unescape;

/// A key fragment this long or longer is redacted wherever it appears.
pub const MIN_FRAGMENT: usize = 8;
/// What a redacted run of bytes becomes.
const REDACTED: &str = "[redacted]";
/// How much of a provider's text the host keeps for the audit trail.
pub(crate) const MAX_LOGGED_BYTES: usize = 1024;

/// Finds and hides fragments of secrets: every run of at least
/// [`MIN_FRAGMENT`] bytes that also occurs in a secret (a whole secret when
/// it is shorter than that).
#[derive(Default)]
pub(crate) struct Redactor {
    /// Per window width, every window of that width of every secret.
    windows: Vec<(usize, HashSet<Box<[u8]>>)>,
}

impl Redactor {
    /// A redactor for these secrets.
    pub(crate) fn new<'a>(secrets: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let mut r = Self::default();
        for secret in secrets.into_iter().filter(|s| !s.is_empty()) {
            let width = secret.len().min(MIN_FRAGMENT);
            let slot = match r.windows.iter().position(|(w, _)| *w == width) {
                Some(i) => i,
                None => {
                    r.windows.push((width, HashSet::new()));
                    r.windows.len() - 1
                }
            };
            r.windows[slot]
                .1
                .extend(secret.windows(width).map(Box::<[u8]>::from));
        }
        r
    }

    /// Windows of `text` that are fragments of a secret. Any fragment of
    /// length >= the window width is the union of its windows, so marking
    /// every matching window hides all of it.
    fn windows_in(&self, text: &[u8], ranges: &mut Vec<(usize, usize)>) {
        for (width, set) in &self.windows {
            for (i, w) in text.windows(*width).enumerate() {
                if set.contains(w) {
                    ranges.push((i, i + width));
                }
            }
        }
    }

    /// Byte ranges of `text` that are fragments of a secret, merged and
    /// sorted: as written, and in each decoded view of it (a key echoed as
    /// JSON `\u` escapes, percent-encoded or as HTML references), mapped
    /// back to the bytes that spell it.
    fn ranges(&self, text: &[u8]) -> Vec<(usize, usize)> {
        unescape::find_in_views(text, |view, out| self.windows_in(view, out))
    }

    /// `text` (lossily decoded) with every secret fragment replaced.
    pub(crate) fn redact(&self, text: &[u8]) -> String {
        let ranges = self.ranges(text);
        let out = unescape::replace_ranges(text, &ranges, REDACTED.as_bytes());
        String::from_utf8_lossy(&out).into_owned()
    }

    /// `text` unchanged when it holds no secret fragment, else redacted.
    pub(crate) fn redact_string(&self, text: String) -> String {
        let ranges = self.ranges(text.as_bytes());
        if ranges.is_empty() {
            return text;
        }
        let out = unescape::replace_ranges(text.as_bytes(), &ranges, REDACTED.as_bytes());
        String::from_utf8_lossy(&out).into_owned()
    }

    /// At most [`MAX_LOGGED_BYTES`] of `text`, redacted, for the host's logs.
    pub(crate) fn excerpt(&self, text: &[u8]) -> String {
        if text.len() <= MAX_LOGGED_BYTES {
            return self.redact(text);
        }
        // Redact the whole text first so a fragment cut by the clip still
        // counts, then clip the redacted text.
        let redacted = self.redact(text);
        let mut cut = MAX_LOGGED_BYTES.min(redacted.len());
        while !redacted.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}… ({} bytes in all)", &redacted[..cut], text.len())
    }
}

/// Why one provider call failed, in the host's words (already redacted).
/// [`Failure::to_guest`] is the only thing the guest sees of it.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Failure {
    /// The provider answered with a non-success status.
    #[error("status {status}: {said}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// How long the provider asked us to wait, if it said.
        retry_after: Option<Duration>,
        /// An excerpt of its body, redacted.
        said: String,
    },
    /// The connection failed (refused, reset, TLS, DNS).
    #[error("transport: {0}")]
    Unreachable(String),
    /// The body passed the read limit.
    #[error("response body over {0} bytes")]
    TooLarge(usize),
    /// A success status with a body that is not the protocol's JSON.
    #[error("malformed response: {why}; body starts: {said}")]
    Malformed {
        /// What did not parse.
        why: String,
        /// An excerpt of the body, redacted.
        said: String,
    },
    /// The provider's own request timeout passed (the job still had time).
    #[error("no answer within the provider's request timeout of {0:?}")]
    ProviderTimeout(Duration),
    /// The job's deadline passed.
    #[error("the job's deadline passed")]
    Deadline,
}

impl Failure {
    /// The classified, scrubbed error the guest receives.
    pub(crate) fn to_guest(&self) -> VerbError {
        match self {
            Self::Status { status, .. } => VerbError::upstream(match status {
                401 | 403 => "authentication failed".to_string(),
                429 => "rate limited".to_string(),
                500..=599 => format!("provider error (status {status})"),
                400..=499 => format!("request rejected (status {status})"),
                _ => format!("unexpected response (status {status})"),
            }),
            Self::Unreachable(_) => VerbError::upstream("provider unreachable"),
            Self::TooLarge(_) => VerbError::upstream("response too large"),
            Self::Malformed { .. } => VerbError::upstream("malformed response"),
            Self::ProviderTimeout(_) => VerbError::upstream("provider timed out"),
            Self::Deadline => VerbError::timeout(),
        }
    }

    /// Whether trying again may help (rate limits and server errors).
    pub(crate) fn retryable(&self) -> bool {
        matches!(self, Self::Status { status, .. } if *status == 429 || (500..=599).contains(status))
    }

    /// The wait the provider asked for, if any.
    pub(crate) fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// An error and its causes on one line (reqwest hides the useful part in
/// `source()`).
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}
