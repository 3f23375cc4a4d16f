//! The per-job handle each verb state holds: who is calling, until when, and
//! where every decision is recorded.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::audit::{AuditRecord, AuditSink, Decision};

/// One job as the verbs see it. Cheap to clone (an `Arc` inside).
#[derive(Clone)]
pub struct Job(Arc<JobInner>);

struct JobInner {
    id: u64,
    tool: Arc<str>,
    deadline: Instant,
    audit: Arc<dyn AuditSink>,
}

impl Job {
    /// A job `id` of `tool` that must finish by `deadline`, auditing to `audit`.
    pub fn new(id: u64, tool: Arc<str>, deadline: Instant, audit: Arc<dyn AuditSink>) -> Self {
        Self(Arc::new(JobInner {
            id,
            tool,
            deadline,
            audit,
        }))
    }

    /// The job's number, unique within this host process.
    pub fn id(&self) -> u64 {
        self.0.id
    }

    /// The name of the tool this job runs.
    pub fn tool(&self) -> &str {
        &self.0.tool
    }

    /// The instant by which the whole job, host calls included, must end.
    pub fn deadline(&self) -> Instant {
        self.0.deadline
    }

    /// Time left before the deadline (zero once it passed). Every verb that
    /// waits must wait at most this long.
    pub fn remaining(&self) -> Duration {
        self.0.deadline.saturating_duration_since(Instant::now())
    }

    /// Whether this job's audit sink keeps records; when it does not, a
    /// verb may skip building the details of a record.
    pub fn audits(&self) -> bool {
        self.0.audit.enabled()
    }

    /// Records one verb decision in the audit trail.
    pub fn audit(
        &self,
        verb: &'static str,
        op: &'static str,
        decision: Decision,
        started: Instant,
        detail: Option<String>,
    ) {
        if !self.audits() {
            return;
        }
        self.0.audit.record(AuditRecord {
            time: std::time::SystemTime::now(),
            job: self.0.id,
            tool: self.0.tool.to_string(),
            verb,
            op,
            decision,
            duration: started.elapsed(),
            detail,
        });
    }
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("id", &self.0.id)
            .field("tool", &self.0.tool)
            .finish_non_exhaustive()
    }
}
