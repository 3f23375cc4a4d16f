//! The `log` verb: a tool writes leveled messages into its job's log and the
//! audit trail. Messages are capped per call and per job so a chatty or
//! hostile tool cannot grow host memory.
#![deny(missing_docs)]

use std::sync::Arc;

use airlock_core::bindings::airlock::verbs::log;
use airlock_core::{Capability, Decision, Job, ScopeChange, VerbError};
use serde::{Deserialize, Serialize};
use wasmtime::component::{HasSelf, Linker};

pub use log::Level;

/// Default cap on one message, in bytes.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 4 * 1024;
/// Default cap on all messages of one job, in bytes.
pub const DEFAULT_MAX_TOTAL_BYTES: usize = 64 * 1024;
/// How much of a message the audit record keeps.
const AUDIT_EXCERPT_BYTES: usize = 200;

/// Host-wide: the log verb needs nothing but the job's own buffer.
#[derive(Debug, Default, Clone, Copy)]
pub struct LogCapability;

/// How much one tool may log (`[tools.NAME.grants.log]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LogGrant {
    /// Longest message kept; longer ones are truncated (default 4 KiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_message_bytes: Option<usize>,
    /// Total bytes per job; further calls fail with `exhausted("log-bytes")` (default 64 KiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_total_bytes: Option<usize>,
}

impl LogGrant {
    fn max_message(&self) -> usize {
        self.max_message_bytes.unwrap_or(DEFAULT_MAX_MESSAGE_BYTES)
    }
    fn max_total(&self) -> usize {
        self.max_total_bytes.unwrap_or(DEFAULT_MAX_TOTAL_BYTES)
    }
}

/// One line of a job's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// Its level.
    pub level: Level,
    /// The message, possibly truncated.
    pub message: String,
    /// Whether the message was cut at the per-message cap.
    pub truncated: bool,
}

/// One job's log.
pub struct LogState {
    grant: Arc<LogGrant>,
    job: Job,
    used: usize,
    lines: Vec<LogLine>,
}

impl LogState {
    /// Takes the lines written so far (the host calls this when the job ends).
    pub fn take_lines(&mut self) -> Vec<LogLine> {
        std::mem::take(&mut self.lines)
    }
}

impl Capability for LogCapability {
    const VERB: &'static str = "log";
    const INTERFACE: &'static str = "airlock:verbs/log";
    type Grant = LogGrant;
    type State = LogState;

    fn check_grant(&self, grant: &LogGrant) -> Result<(), String> {
        if grant.max_message() == 0 || grant.max_total() == 0 {
            return Err(
                "log caps must be greater than zero; remove the grant to deny logging".into(),
            );
        }
        Ok(())
    }

    fn state(&self, grant: Arc<LogGrant>, job: Job) -> LogState {
        LogState {
            grant,
            job,
            used: 0,
            lines: Vec::new(),
        }
    }

    fn describe(grant: &LogGrant) -> Vec<String> {
        vec![format!(
            "may write to its job log: messages up to {} bytes, {} bytes per job",
            grant.max_message(),
            grant.max_total()
        )]
    }

    /// Larger caps widen; an absent cap is its default.
    fn compare(before: &LogGrant, after: &LogGrant) -> Vec<ScopeChange> {
        let message = ScopeChange::limit(
            Self::VERB,
            "max_message_bytes",
            before.max_message(),
            after.max_message(),
        );
        let total = ScopeChange::limit(
            Self::VERB,
            "max_total_bytes",
            before.max_total(),
            after.max_total(),
        );
        message.into_iter().chain(total).collect()
    }

    fn add_to_linker<T: Send + 'static>(
        linker: &mut Linker<T>,
        get: fn(&mut T) -> &mut LogState,
    ) -> wasmtime::Result<()> {
        log::add_to_linker::<T, HasSelf<LogState>>(linker, get)
    }
}

airlock_core::impl_types_host!(LogState);

/// Cuts `s` to at most `max` bytes on a character boundary.
fn truncate(s: &mut String, max: usize) -> bool {
    if s.len() <= max {
        return false;
    }
    let mut cut = max;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    s.truncate(cut);
    true
}

/// The lower-case name of a level (`info`).
pub fn level_name(level: Level) -> &'static str {
    match level {
        Level::Debug => "debug",
        Level::Info => "info",
        Level::Warn => "warn",
        Level::Error => "error",
    }
}

impl log::Host for LogState {
    fn emit(&mut self, level: Level, mut message: String) -> Result<(), VerbError> {
        let started = self.job.call_started();
        let room = self.grant.max_total().saturating_sub(self.used);
        if room == 0 {
            self.job.audit(
                "log",
                "emit",
                Decision::Deny("exhausted: log-bytes".into()),
                started,
                None,
            );
            return Err(VerbError::exhausted("log-bytes"));
        }
        let truncated = truncate(&mut message, self.grant.max_message().min(room));
        self.used += message.len();
        if self.job.audits() {
            let excerpt = &message[..message.floor_char_boundary(AUDIT_EXCERPT_BYTES)];
            self.job.audit(
                "log",
                "emit",
                Decision::Allow,
                started,
                Some(format!("{}: {excerpt}", level_name(level))),
            );
        }
        self.lines.push(LogLine {
            level,
            message,
            truncated,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_core::{MemoryAudit, WitError};
    use log::Host as _;
    use std::time::{Duration, Instant};

    fn state(grant: LogGrant) -> (LogState, Arc<MemoryAudit>) {
        let audit = Arc::new(MemoryAudit::default());
        let job = Job::new(
            1,
            "t".into(),
            Instant::now() + Duration::from_secs(1),
            audit.clone(),
        );
        (LogCapability.state(Arc::new(grant), job), audit)
    }

    #[tokio::test]
    async fn lines_are_kept_in_order_and_audited() {
        let (mut s, audit) = state(LogGrant::default());
        s.emit(Level::Info, "one".into()).unwrap();
        s.emit(Level::Error, "two".into()).unwrap();
        let lines = s.take_lines();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1].level, Level::Error);
        assert_eq!(lines[1].message, "two");
        let records = audit.records();
        assert_eq!(records[0].detail.as_deref(), Some("info: one"));
        assert_eq!(records[1].decision, Decision::Allow);
    }

    mod log_scope {
        use super::*;

        #[tokio::test]
        async fn long_messages_are_truncated_on_a_char_boundary() {
            let (mut s, _) = state(LogGrant {
                max_message_bytes: Some(5),
                ..LogGrant::default()
            });
            s.emit(Level::Warn, "ab\u{e9}\u{e9}\u{e9}".into()).unwrap();
            let line = &s.take_lines()[0];
            assert!(line.truncated);
            assert_eq!(line.message, "ab\u{e9}");
        }

        #[tokio::test]
        async fn the_job_budget_runs_out_with_exhausted() {
            let (mut s, audit) = state(LogGrant {
                max_total_bytes: Some(10),
                ..LogGrant::default()
            });
            s.emit(Level::Info, "12345678".into()).unwrap();
            s.emit(Level::Info, "abcdef".into()).unwrap();
            let err = s.emit(Level::Info, "more".into()).unwrap_err();
            assert!(
                matches!(err, VerbError::Guest(WitError::Exhausted(ref w)) if w == "log-bytes")
            );
            let lines = s.take_lines();
            assert_eq!(
                lines[1].message, "ab",
                "second message cut to the remaining room"
            );
            assert!(matches!(audit.records()[2].decision, Decision::Deny(_)));
        }

        #[test]
        fn zero_caps_are_refused_at_load() {
            let g = LogGrant {
                max_total_bytes: Some(0),
                ..LogGrant::default()
            };
            assert!(LogCapability.check_grant(&g).is_err());
            assert!(LogCapability.check_grant(&LogGrant::default()).is_ok());
            assert!(
                LogCapability::describe(&LogGrant::default())[0].contains("65536 bytes per job")
            );
        }
    }

    /// Comparing two log grants: larger caps widen, an absent cap is its
    /// default.
    mod compare {
        use super::*;
        use proptest::prelude::*;

        fn g(message: Option<usize>, total: Option<usize>) -> LogGrant {
            LogGrant {
                max_message_bytes: message,
                max_total_bytes: total,
            }
        }

        fn lines(before: &LogGrant, after: &LogGrant) -> Vec<String> {
            LogCapability::compare(before, after)
                .into_iter()
                .map(|c| format!("{}{}", if c.widens { "W " } else { "N " }, c.line))
                .collect()
        }

        #[test]
        fn larger_caps_widen_and_absent_is_the_default() {
            let default = LogGrant::default();
            assert!(LogCapability::compare(&default, &default).is_empty());
            let explicit = g(
                Some(DEFAULT_MAX_MESSAGE_BYTES),
                Some(DEFAULT_MAX_TOTAL_BYTES),
            );
            assert!(LogCapability::compare(&default, &explicit).is_empty());
            assert_eq!(
                lines(&default, &g(Some(8192), Some(1024))),
                [
                    "W ~ log max_message_bytes 4096 → 8192",
                    "N ~ log max_total_bytes 65536 → 1024"
                ]
            );
            assert_eq!(
                lines(&g(Some(8192), None), &default),
                ["N ~ log max_message_bytes 8192 → 4096"]
            );
        }

        #[test]
        fn the_grant_round_trips_through_json() {
            let grant = g(Some(10), None);
            let json = serde_json::to_string(&grant).unwrap();
            assert_eq!(json, r#"{"max_message_bytes":10}"#);
            assert_eq!(serde_json::from_str::<LogGrant>(&json).unwrap(), grant);
            assert!(serde_json::from_str::<LogGrant>(r#"{"max_lines":1}"#).is_err());
        }

        proptest! {
            #[test]
            fn narrowing_never_widens_and_the_way_back_always_does(
                m in prop::option::of(1usize..1 << 20),
                t in prop::option::of(1usize..1 << 20),
                cut in 1usize..1 << 20,
                which in any::<bool>(),
            ) {
                let wide = g(m, t);
                prop_assert!(LogCapability::compare(&wide, &wide).is_empty());
                let lower = |v: usize| v - 1 - cut % v;
                let narrow = if which {
                    g(Some(lower(wide.max_message())), t)
                } else {
                    g(m, Some(lower(wide.max_total())))
                };
                prop_assert!(!LogCapability::compare(&wide, &narrow).iter().any(|c| c.widens));
                prop_assert!(LogCapability::compare(&narrow, &wide).iter().any(|c| c.widens));
            }
        }
    }
}
