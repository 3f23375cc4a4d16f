//! The per-job handle each verb state holds: who is calling, until when,
//! whether the caller cancelled, and where every decision is recorded.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::audit::{AuditRecord, AuditSink, Decision};
use crate::cancel::{Cancel, JobControl, JobEvents};

/// One job as the verbs see it. Cheap to clone (an `Arc` inside).
#[derive(Clone)]
pub struct Job(Arc<JobInner>);

/// Whom a job runs for: its tool's name and the audit trail its verb calls
/// go to. A host keeps one per tool and shares it with every job of the
/// tool, so that starting a job clones one pointer, not one per field.
pub trait JobOwner: Send + Sync + 'static {
    /// The tool's name.
    fn tool(&self) -> &str;
    /// Where the job's verb calls are recorded.
    fn audit(&self) -> &dyn AuditSink;
}

/// The owner of a job made by [`Job::new`] and [`Job::controlled`].
struct Named {
    tool: Arc<str>,
    audit: Arc<dyn AuditSink>,
}

impl JobOwner for Named {
    fn tool(&self) -> &str {
        &self.tool
    }
    fn audit(&self) -> &dyn AuditSink {
        &*self.audit
    }
}

struct JobInner {
    id: u64,
    owner: Arc<dyn JobOwner>,
    deadline: Instant,
    cancel: Cancel,
    events: Option<Arc<dyn JobEvents>>,
    calls: AtomicU32,
    hostcall_bytes: AtomicUsize,
}

impl Job {
    /// A job `id` of `tool` that must finish by `deadline`, auditing to `audit`.
    pub fn new(id: u64, tool: Arc<str>, deadline: Instant, audit: Arc<dyn AuditSink>) -> Self {
        Self::controlled(id, tool, deadline, audit, &JobControl::default())
    }

    /// Like [`Job::new`], cancelled through `control.cancel` and reporting
    /// each verb call to `control.events`.
    pub fn controlled(
        id: u64,
        tool: Arc<str>,
        deadline: Instant,
        audit: Arc<dyn AuditSink>,
        control: &JobControl,
    ) -> Self {
        Self::owned(id, Arc::new(Named { tool, audit }), deadline, control)
    }

    /// A job `id` run for `owner` that must finish by `deadline`, cancelled
    /// through `control.cancel` and reporting each verb call to
    /// `control.events`.
    pub fn owned(
        id: u64,
        owner: Arc<dyn JobOwner>,
        deadline: Instant,
        control: &JobControl,
    ) -> Self {
        Self(Arc::new(JobInner {
            id,
            owner,
            deadline,
            cancel: control.cancel.clone(),
            events: control.events.clone(),
            calls: AtomicU32::new(0),
            hostcall_bytes: AtomicUsize::new(usize::MAX),
        }))
    }

    /// Sets the job's hostcall-data budget: the most bytes one verb call may
    /// move between the guest and the host, either way. The host sets it
    /// before the job runs; unlimited until then.
    pub fn set_hostcall_bytes(&self, bytes: usize) {
        self.0.hostcall_bytes.store(bytes, Ordering::Relaxed);
    }

    /// The job's hostcall-data budget (see [`Job::set_hostcall_bytes`]): a
    /// verb returning rows, bodies or lists stops before handing back more.
    pub fn hostcall_bytes(&self) -> usize {
        self.0.hostcall_bytes.load(Ordering::Relaxed)
    }

    /// The job's number, unique within this host process.
    pub fn id(&self) -> u64 {
        self.0.id
    }

    /// The name of the tool this job runs.
    pub fn tool(&self) -> &str {
        self.0.owner.tool()
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

    /// The job's cancellation handle. Every verb that waits on something
    /// outside the host races it against this (see [`Cancel::run`]).
    pub fn cancel(&self) -> &Cancel {
        &self.0.cancel
    }

    /// Whether the job's caller cancelled it.
    pub fn is_cancelled(&self) -> bool {
        self.0.cancel.is_cancelled()
    }

    /// How many verb calls were recorded so far (allowed or denied).
    pub fn verb_calls(&self) -> u32 {
        self.0.calls.load(Ordering::Relaxed)
    }

    /// Whether anyone reads this job's records (its audit sink keeps them,
    /// or its caller watches its verb calls); when nobody does, a verb may
    /// skip building the details of a record.
    pub fn audits(&self) -> bool {
        self.0.owner.audit().enabled() || self.0.events.is_some()
    }

    /// When a verb call starts, for its record's duration: the clock when
    /// anyone reads the records ([`Job::audits`]), else the deadline, with no
    /// clock read (~20 ns, a third of what a cheap verb's call costs).
    pub fn call_started(&self) -> Instant {
        if self.audits() {
            Instant::now()
        } else {
            self.0.deadline
        }
    }

    /// Whether the audit sink keeps records (watchers aside): what only the
    /// trail gets, such as [`AuditRecord::content`], need not be built otherwise.
    pub fn keeps_records(&self) -> bool {
        self.0.owner.audit().enabled()
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
        self.audit_with_content(verb, op, decision, started, detail, None);
    }

    /// [`Job::audit`] with `content` for the audit sink alone.
    pub fn audit_with_content(
        &self,
        verb: &'static str,
        op: &'static str,
        decision: Decision,
        started: Instant,
        detail: Option<String>,
        content: Option<String>,
    ) {
        self.0.calls.fetch_add(1, Ordering::Relaxed);
        if !self.audits() {
            return;
        }
        let mut record = AuditRecord {
            time: std::time::SystemTime::now(),
            job: self.0.id,
            tool: self.tool().to_string(),
            verb,
            op,
            decision,
            duration: started.elapsed(),
            detail,
            content: None,
        };
        if let Some(events) = &self.0.events {
            events.verb_call(&record);
        }
        if self.0.owner.audit().enabled() {
            record.content = content;
            self.0.owner.audit().record(record);
        }
    }
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("id", &self.0.id)
            .field("tool", &self.tool())
            .finish_non_exhaustive()
    }
}

/// Audits a verb call whose future is dropped before it ends (the host
/// cancelling the job, or its deadline passing), so no call goes unrecorded;
/// [`InFlight::disarm`] it when the call ends and is audited normally.
pub struct InFlight {
    job: Option<Job>,
    verb: &'static str,
    op: &'static str,
    started: Instant,
    detail: String,
}

impl Job {
    /// A guard for a verb call that started at `started`, audited with
    /// `detail` if it is abandoned.
    pub fn in_flight(
        &self,
        verb: &'static str,
        op: &'static str,
        started: Instant,
        detail: String,
    ) -> InFlight {
        InFlight {
            job: Some(self.clone()),
            verb,
            op,
            started,
            detail,
        }
    }
}

impl InFlight {
    /// The call ended normally; it is audited by the caller.
    pub fn disarm(mut self) {
        self.job = None;
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(job) = self.job.take() {
            let why = if job.is_cancelled() {
                "cancelled: the job's caller cancelled it during the call"
            } else {
                "timeout: the job ended during the call"
            };
            let detail = std::mem::take(&mut self.detail);
            job.audit(
                self.verb,
                self.op,
                Decision::Deny(why.into()),
                self.started,
                Some(detail),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{JobEvents, MemoryAudit};
    use std::sync::Mutex;

    #[derive(Default)]
    struct Watcher(Mutex<Vec<AuditRecord>>);

    impl JobEvents for Watcher {
        fn verb_call(&self, record: &AuditRecord) {
            self.0.lock().unwrap().push(record.clone());
        }
    }

    /// A call's start is read from the clock only when a record will be
    /// written, so an audited duration is real and an unread one is free.
    #[test]
    fn a_call_reads_the_clock_only_when_someone_reads_its_record() {
        let deadline = Instant::now() + std::time::Duration::from_secs(60);
        let quiet = Job::new(1, "t".into(), deadline, Arc::new(crate::NullAudit));
        assert_eq!(quiet.call_started(), deadline);
        let audited = Job::new(2, "t".into(), deadline, Arc::new(MemoryAudit::default()));
        let before = Instant::now();
        let started = audited.call_started();
        assert!(started >= before && started < deadline, "{started:?}");
    }

    /// The operator's content (logged prompts) goes to the audit sink and
    /// never to a job's watcher (MCP progress, which the client reads).
    #[test]
    fn content_reaches_the_audit_trail_only() {
        let audit = Arc::new(MemoryAudit::default());
        let watcher = Arc::new(Watcher::default());
        let control = JobControl {
            events: Some(watcher.clone()),
            ..JobControl::default()
        };
        let job = Job::controlled(1, "t".into(), Instant::now(), audit.clone(), &control);
        assert!(job.keeps_records());
        job.audit_with_content(
            "complete",
            "chat",
            Decision::Allow,
            Instant::now(),
            Some("tokens=3".into()),
            Some("prompt=secret plans".into()),
        );
        let kept = audit.records();
        assert_eq!(kept[0].content.as_deref(), Some("prompt=secret plans"));
        let seen = watcher.0.lock().unwrap();
        assert_eq!(seen[0].detail.as_deref(), Some("tokens=3"));
        assert_eq!(seen[0].content, None);
    }
}
