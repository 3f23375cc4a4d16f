//! Audit records: one per verb call, saying what was decided and why. Records
//! carry names and reasons, never secret values or payload bytes.

use std::time::{Duration, SystemTime};

/// Whether a verb call was performed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The grant allowed it and the host performed it.
    Allow,
    /// Refused or failed; the text is the guest-visible kind and reason.
    Deny(String),
}

/// One verb call as the audit trail records it.
#[derive(Debug, Clone)]
pub struct AuditRecord {
    /// When the call ended.
    pub time: SystemTime,
    /// The job's number.
    pub job: u64,
    /// The tool's name.
    pub tool: String,
    /// The verb (`sign`, `log`).
    pub verb: &'static str,
    /// The function called (`hmac-sha256`, `emit`).
    pub op: &'static str,
    /// Allowed or denied, with the reason.
    pub decision: Decision,
    /// How long the host spent on it.
    pub duration: Duration,
    /// Extra non-secret facts (the key name used, the log message).
    pub detail: Option<String>,
    /// What the operator asked to see of the call's content (`[complete]
    /// log_content`: prompts and completions). Only the audit sink gets it:
    /// a job's watchers (MCP progress) never do.
    pub content: Option<String>,
}

/// Where audit records go. Implementations must not block for long: they run
/// on the job path.
pub trait AuditSink: Send + Sync + 'static {
    /// Stores one record.
    fn record(&self, record: AuditRecord);

    /// Whether records are kept at all. A sink that discards everything
    /// says `false`, and verbs then skip building records (clock reads,
    /// allocations) on the job path.
    fn enabled(&self) -> bool {
        true
    }

    /// Ends the trail of this host run (a sealed trail writes its closing
    /// checkpoint). Records after it start a new run. The default does nothing.
    fn close(&self) {}
}

/// Discards every record (unit tests and benchmarks).
#[derive(Debug, Default, Clone, Copy)]
pub struct NullAudit;

impl AuditSink for NullAudit {
    fn record(&self, _record: AuditRecord) {}

    fn enabled(&self) -> bool {
        false
    }
}

/// Keeps records in memory (tests, and callers that inspect a job's trail).
#[derive(Debug, Default)]
pub struct MemoryAudit(std::sync::Mutex<Vec<AuditRecord>>);

impl MemoryAudit {
    /// A copy of every record so far.
    pub fn records(&self) -> Vec<AuditRecord> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl AuditSink for MemoryAudit {
    fn record(&self, record: AuditRecord) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(record);
    }
}
