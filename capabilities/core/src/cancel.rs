//! What a job's caller holds to stop it and to watch it: the cancellation
//! handle (the CLI on Ctrl-C, an MCP client that cancels or goes away) and an
//! optional sink for the job's verb calls as they happen (MCP progress).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use tokio::sync::Notify;

use crate::audit::AuditRecord;

/// A job's cancellation handle. Cheap to clone; every clone cancels and sees
/// the same job. The first reason given wins.
#[derive(Clone, Default)]
pub struct Cancel(Arc<CancelInner>);

/// A flag and a wake-up rather than a `CancellationToken`: every job checks
/// its handle at each epoch tick and on the way in and out, and the token
/// takes a lock for each of those reads; the flag is one atomic load, and
/// nothing waits on the wake-up unless a job actually waits.
#[derive(Default)]
struct CancelInner {
    cancelled: AtomicBool,
    wake: Notify,
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
        self.0.cancelled.store(true, Ordering::Release);
        self.0.wake.notify_waiters();
    }

    /// Whether the job was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.0.cancelled.load(Ordering::Acquire)
    }

    /// Completes once the job is cancelled.
    pub async fn cancelled(&self) {
        loop {
            // Registered before the flag is read: a cancel in between still
            // wakes this waiter.
            let woken = self.0.wake.notified();
            let mut woken = std::pin::pin!(woken);
            woken.as_mut().enable();
            if self.is_cancelled() {
                return;
            }
            woken.await;
        }
    }

    /// Runs `fut` unless the job is cancelled first (then `None`, and `fut`
    /// is dropped: a request it was making is abandoned, its connection closed).
    pub async fn run<F: Future>(&self, fut: F) -> Option<F::Output> {
        tokio::select! {
            biased;
            () = self.cancelled() => None,
            out = fut => Some(out),
        }
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

    /// A job waiting on a verb learns of a cancel from another thread at
    /// once, and whatever the verb was running is dropped.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_waiting_job_is_woken_by_a_cancel_from_another_thread() {
        let c = Cancel::new();
        let canceller = c.clone();
        let waiting = tokio::spawn({
            let c = c.clone();
            async move { c.run(std::future::pending::<()>()).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "nothing cancelled it yet");
        std::thread::spawn(move || canceller.cancel("the client went away"))
            .join()
            .unwrap();
        let out = tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("the cancel wakes the waiting job")
            .unwrap();
        assert_eq!(out, None);
        // Cancelled before it starts: the future is never polled.
        assert_eq!(c.run(async { 1 }).await, None);
        c.cancelled().await;
        assert_eq!(Cancel::new().run(async { 1 }).await, Some(1));
    }
}
