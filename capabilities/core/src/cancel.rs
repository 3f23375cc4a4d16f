//! What a job's caller holds to stop it and to watch it: the cancellation
//! handle (the CLI on Ctrl-C, an MCP client that cancels or goes away) and an
//! optional sink for the job's verb calls as they happen (MCP progress).

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use crate::audit::AuditRecord;

/// A job's cancellation handle. Cheap to clone; every clone cancels and sees
/// the same job. The first reason given wins.
#[derive(Clone, Default)]
pub struct Cancel(Arc<CancelInner>);

#[derive(Default)]
struct CancelInner {
    token: CancellationToken,
    why: OnceLock<(Instant, String)>,
}

impl Cancel {
    /// A handle nobody has cancelled yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancels the job, saying why (`the client cancelled the call`). Later
    /// calls keep the first reason.
    pub fn cancel(&self, reason: impl Into<String>) {
        // The reason is set before the token fires, so whoever sees the
        // cancellation also sees why.
        let _ = self.0.why.set((Instant::now(), reason.into()));
        self.0.token.cancel();
    }

    /// Whether the job was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.0.token.is_cancelled()
    }

    /// Completes once the job is cancelled.
    pub async fn cancelled(&self) {
        self.0.token.cancelled().await;
    }

    /// Runs `fut` unless the job is cancelled first (then `None`, and `fut`
    /// is dropped: a request it was making is abandoned, its connection closed).
    pub async fn run<F: Future>(&self, fut: F) -> Option<F::Output> {
        self.0.token.run_until_cancelled(fut).await
    }

    /// Why the job was cancelled, if it was.
    pub fn reason(&self) -> Option<&str> {
        self.0.why.get().map(|(_, why)| why.as_str())
    }

    /// When the job was cancelled, if it was.
    pub fn cancelled_at(&self) -> Option<Instant> {
        self.0.why.get().map(|(at, _)| *at)
    }
}

impl std::fmt::Debug for Cancel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cancel")
            .field("reason", &self.reason())
            .finish()
    }
}

/// Receives every verb call of a job as it is decided, the same record the
/// audit trail gets (names and reasons, never secret values). Runs on the job
/// path: an implementation must only queue the record and return.
pub trait JobEvents: Send + Sync + 'static {
    /// One verb call, allowed or denied.
    fn verb_call(&self, record: &AuditRecord);
}

/// What the caller of a job holds: its cancellation handle and, if the
/// caller wants to watch it, where its verb calls are reported.
#[derive(Clone, Default)]
pub struct JobControl {
    /// Cancels the job.
    pub cancel: Cancel,
    /// Told about each verb call while the job runs.
    pub events: Option<Arc<dyn JobEvents>>,
}

impl JobControl {
    /// A control with a fresh cancellation handle and no event sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// This control, reporting verb calls to `events`.
    pub fn with_events(mut self, events: Arc<dyn JobEvents>) -> Self {
        self.events = Some(events);
        self
    }
}

impl std::fmt::Debug for JobControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobControl")
            .field("cancel", &self.cancel)
            .field("events", &self.events.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_reason_wins_and_clones_share_it() {
        let c = Cancel::new();
        let other = c.clone();
        assert!(!other.is_cancelled() && other.reason().is_none());
        c.cancel("the client cancelled the call");
        other.cancel("the session was deleted");
        assert!(other.is_cancelled());
        assert_eq!(other.reason(), Some("the client cancelled the call"));
        assert!(other.cancelled_at().is_some());
    }
}
