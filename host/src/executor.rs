//! The job executor: a tokio runtime of its own for guests, so that the
//! runtime reading requests is never queued behind them.
//!
//! A guest runs until its next epoch tick (10 ms) before it yields. When
//! guests shared the MCP server's runtime, a new request's read, its decode,
//! its response and every hop between them each waited for a worker behind
//! whole slices of the spinning guests: with as many CPU-bound jobs as cores,
//! a trivial `tools/call` was not even read for 0.5–0.9 s. On a runtime of
//! their own (this one, [`JobExecutor`]), guests only compete with the
//! request runtime for the CPU, and the operating system's scheduler gives a
//! thread that wakes for I/O its turn within a few milliseconds; the request
//! runtime's workers are then idle in their I/O driver, never behind a guest.
//!
//! What a job still waits for is its own start, on this runtime, behind the
//! running guests. Two things keep that short. Its workers look at newly
//! spawned jobs before re-queued ones
//! ([`tokio::runtime::Builder::global_queue_interval`] of 1: spawned from
//! outside, jobs arrive in the global queue, while a guest that yielded goes
//! to the back of its worker's local queue), so a new job never waits for a
//! turn of every spinner. And when every worker is taken, spawning a job
//! advances the engine's epoch at once (at most once per [`NUDGE_INTERVAL`]):
//! each running guest yields at its next epoch check, as at a tick, and its
//! worker picks up the new job, instead of the job waiting up to a whole
//! tick for a slice to end. Guests that spin are then interrupted more often
//! only while new jobs keep arriving, by at most one yield per millisecond.
//! A job in its [`FIRST_SLICE`] does not yield to a nudge (or a tick): it
//! would go to the back of its worker's queue, behind every spinning guest
//! there, for one slice of each; it yields when its first slice ends.
//!
//! Dropping the future of a spawned job cancels it ([`SpawnedJob`]): when
//! the job ran in its caller's task, dropping the caller dropped the store;
//! now that it runs in a task of its own, the handle's drop fires the job's
//! [`Cancel`], and the job stops within one epoch tick, frees its slot and is
//! audited as cancelled.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use airlock_core::Cancel;
use wasmtime::{Engine, EngineWeak};

use crate::engine::Deadlines;

/// The reason a job whose caller dropped its [`SpawnedJob`] is cancelled with.
pub const CALLER_GONE: &str = "its caller stopped waiting for it";

/// The shortest time between two epoch advances made for new jobs.
pub const NUDGE_INTERVAL: Duration = Duration::from_millis(1);

/// How long a job runs before an epoch advance makes it yield: a job just
/// started is not sent behind the guests queued on its worker by the nudge
/// for the job spawned after it (most jobs end well within it). It is wall
/// time, and the operating system may take the worker's core away in the
/// middle of a job for a scheduling slice of its own (a few milliseconds
/// when more threads want to run than there are cores): with 1 ms, a
/// trivial call interrupted that way yielded behind 8 spinning guests and
/// answered in 70–120 ms, in most runs of `tests/responsive.rs`; with 4 ms,
/// none did in 16 runs (every call under 27 ms).
pub const FIRST_SLICE: Duration = Duration::from_millis(4);

/// A multi-thread tokio runtime that runs jobs and nothing else.
pub struct JobExecutor {
    runtime: Option<tokio::runtime::Runtime>,
    workers: usize,
    load: Arc<Load>,
}

/// How many jobs the executor runs, and when it last advanced the epoch.
struct Load {
    running: AtomicUsize,
    engine: EngineWeak,
    /// The epoch ticker, for a nudge that must wait for [`NUDGE_INTERVAL`].
    deadlines: Deadlines,
    since: Instant,
    /// Microseconds after `since` of the last nudge, or of the next one
    /// when the ticker is to make it.
    nudged: AtomicU64,
}

impl Load {
    /// Advances the epoch now, or, when it was advanced for a job less than
    /// [`NUDGE_INTERVAL`] ago, has the ticker advance it when the interval
    /// ends. A job spawned while a nudge is due is started by that one.
    fn nudge(&self) {
        let interval = NUDGE_INTERVAL.as_micros() as u64;
        let now = self.since.elapsed().as_micros() as u64;
        let last = self.nudged.load(Ordering::Relaxed);
        if last > now {
            return;
        }
        let at = if now - last >= interval {
            now
        } else {
            last + interval
        };
        if self
            .nudged
            .compare_exchange(last, at, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            // Another spawn just nudged, or scheduled the nudge.
            return;
        }
        if at > now {
            self.deadlines
                .wake_at(self.since + Duration::from_micros(at));
        } else if let Some(engine) = self.engine.upgrade() {
            engine.increment_epoch();
        }
    }
}

/// Counts a job as running from its first poll to its end.
struct Running(Arc<Load>);

impl Running {
    fn start(load: &Arc<Load>) -> Self {
        load.running.fetch_add(1, Ordering::Relaxed);
        Self(load.clone())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::Relaxed);
    }
}

impl JobExecutor {
    /// An executor of `workers` threads (at least one), named `airlock-job`,
    /// for jobs of `engine`, whose epoch it advances for a new job when every
    /// worker is taken (itself, or through the epoch ticker's `deadlines`).
    pub fn new(workers: usize, engine: &Engine, deadlines: Deadlines) -> std::io::Result<Self> {
        let workers = workers.max(1);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .thread_name("airlock-job")
            .enable_all()
            // A job just spawned goes before a guest that yielded at its
            // tick (see the module's doc).
            .global_queue_interval(1)
            // Verbs wait for I/O and timers on this runtime: check them after
            // every poll, not after 61 of them (~0.6 s behind spinning guests).
            .event_interval(1)
            .build()?;
        Ok(Self {
            runtime: Some(runtime),
            workers,
            load: Arc::new(Load {
                running: AtomicUsize::new(0),
                engine: engine.weak(),
                deadlines,
                since: Instant::now(),
                nudged: AtomicU64::new(0),
            }),
        })
    }

    /// Its worker threads.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Runs `job` on this executor; the returned future completes with its
    /// output, and dropping it first cancels `cancel` (the job's own handle)
    /// with [`CALLER_GONE`]. A panic of the job resumes in the caller.
    pub fn spawn<F>(&self, cancel: Cancel, job: F) -> SpawnedJob<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let runtime = self.runtime.as_ref().expect("the runtime lives until drop");
        let load = self.load.clone();
        let task = runtime.spawn(async move {
            let _running = Running::start(&load);
            job.await
        });
        // Every worker may be inside a guest until its next tick: have them
        // yield now, so that one of them starts this job.
        if self.load.running.load(Ordering::Relaxed) >= self.workers {
            self.load.nudge();
        }
        SpawnedJob {
            task,
            cancel: Some(cancel),
        }
    }
}

impl Drop for JobExecutor {
    /// Stops the workers without waiting for them: a host may be dropped
    /// from inside an async task, even from one of this runtime's own jobs
    /// (the last reference to it held by a job that just finished), where a
    /// blocking shutdown would panic. A job still running is dropped with its
    /// store.
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// A job running on a [`JobExecutor`]: a future of its output that cancels
/// the job when dropped before the job ended.
pub struct SpawnedJob<T> {
    task: tokio::task::JoinHandle<T>,
    /// Taken once the job ended: nothing left to cancel.
    cancel: Option<Cancel>,
}

/// Why a [`SpawnedJob`] ended without its output.
#[derive(Debug, thiserror::Error)]
#[error("the job executor stopped before the job ended; the host is shutting down")]
pub struct ExecutorStopped;

impl<T> Future for SpawnedJob<T> {
    type Output = Result<T, ExecutorStopped>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let done = match Pin::new(&mut self.task).poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(done) => done,
        };
        self.cancel = None;
        Poll::Ready(match done {
            Ok(output) => Ok(output),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(ExecutorStopped),
        })
    }
}

impl<T> Drop for SpawnedJob<T> {
    fn drop(&mut self) {
        if let Some(cancel) = self.cancel.take() {
            cancel.cancel(CALLER_GONE);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn executor(workers: usize) -> (JobExecutor, crate::engine::EpochTicker) {
        let engine = Engine::default();
        let ticker = crate::engine::EpochTicker::start(&engine);
        let executor = JobExecutor::new(workers, &engine, ticker.deadlines().clone()).unwrap();
        (executor, ticker)
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_spawned_job_runs_on_the_executors_threads_and_returns_its_output() {
        let (executor, _ticker) = executor(2);
        assert_eq!(executor.workers(), 2);
        let cancel = Cancel::new();
        let name = executor
            .spawn(cancel.clone(), async {
                std::thread::current().name().map(str::to_string)
            })
            .await
            .unwrap();
        assert_eq!(name.as_deref(), Some("airlock-job"));
        // Completed, then dropped: nothing is cancelled.
        assert!(!cancel.is_cancelled());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn dropping_a_spawned_job_cancels_it() {
        let (executor, _ticker) = executor(1);
        let cancel = Cancel::new();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let watched = cancel.clone();
        let job = executor.spawn(cancel.clone(), async move {
            watched.cancelled().await;
            let _ = tx.send(watched.reason().map(str::to_string));
        });
        drop(job);
        let reason = tokio::time::timeout(std::time::Duration::from_secs(5), rx)
            .await
            .expect("the job saw its cancel")
            .unwrap();
        assert_eq!(reason.as_deref(), Some(CALLER_GONE));
    }

    #[test]
    fn an_executor_dropped_inside_an_async_task_does_not_panic() {
        let outer = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        outer.block_on(async {
            let (executor, _ticker) = executor(1);
            let job = executor.spawn(Cancel::new(), std::future::pending::<()>());
            drop(executor);
            // Its job was dropped with it.
            assert!(matches!(job.await, Err(ExecutorStopped)));
        });
    }
}
