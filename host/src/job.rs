//! One job: a fresh `Store` with its budget armed before instantiation, one
//! call of one export, and the mapping of every way it can end into a typed
//! [`JobError`]. The store is dropped when the job ends; it is never reused.

use std::sync::Arc;
use std::time::{Duration, Instant};

use airlock_core::{AuditSink, Job, JobOwner};
use airlock_log::LogLine;
use serde_json::Value;
use wasmtime::component::{ResourceTable, ResourceTableError, Val};
use wasmtime::{ResourceLimiter, Store, Trap, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::values::{ArgError, ArgsError};
use crate::verbs::{Capabilities, Grants, VerbStates};
use crate::wasi::Captured;

/// The limits of one job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Wall-clock time for the whole job, host calls included.
    pub timeout: Duration,
    /// WebAssembly fuel (about one unit per instruction).
    pub fuel: u64,
    /// Largest linear memory, in bytes.
    pub memory: usize,
    /// Largest result (as JSON) and largest stdout or stderr, in bytes.
    pub output: usize,
    /// Largest table, in elements.
    pub table_elements: usize,
    /// Bytes the guest may copy to the host in one call.
    pub hostcall_bytes: usize,
    /// Resource handles the guest may hold at once.
    pub resources: usize,
}

impl Default for Budget {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            fuel: 2_000_000_000,
            memory: 64 << 20,
            output: 1 << 20,
            table_elements: 10_000,
            hostcall_bytes: 4 << 20,
            resources: 4096,
        }
    }
}

/// Which limit stopped a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetKind {
    /// All fuel consumed.
    Fuel,
    /// The wall-clock deadline passed.
    Deadline,
    /// Linear memory or tables would grow past the limit.
    Memory,
    /// The result, stdout or stderr was larger than allowed.
    Output,
    /// The guest tried to copy more bytes to the host in one call than allowed.
    HostcallData,
    /// The guest tried to hold more resource handles at once than allowed.
    Resources,
}

impl BudgetKind {
    /// The name used in messages and JSON (`fuel`, `deadline`, ...).
    pub fn name(self) -> &'static str {
        match self {
            BudgetKind::Fuel => "fuel",
            BudgetKind::Deadline => "deadline",
            BudgetKind::Memory => "memory",
            BudgetKind::Output => "output",
            BudgetKind::HostcallData => "hostcall-data",
            BudgetKind::Resources => "resources",
        }
    }
}

impl std::fmt::Display for BudgetKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How a job failed. Each variant has its own CLI exit code and MCP text.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The named function is not exported, or none was named and several are.
    #[error("{0}")]
    NoSuchFunction(String),
    /// The JSON arguments do not fit the export's WIT types.
    #[error("invalid arguments: {0}")]
    InvalidArguments(#[from] ArgError),
    /// A limit of the job's budget was reached.
    #[error("the {which} budget ran out: {detail}")]
    Budget {
        /// Which limit.
        which: BudgetKind,
        /// What happened and how to raise the limit.
        detail: String,
    },
    /// The guest trapped (a bug or a deliberate abort in the tool).
    #[error("the tool trapped ({code}): {message}")]
    Trap {
        /// Short trap code: `unreachable`, `stack overflow`, `exit(1)`...
        code: String,
        /// Details, including the tail of the guest's stderr (e.g. its panic message).
        message: String,
    },
    /// The export returned its own `err` value.
    #[error("the tool returned an error: {0}")]
    ToolError(Value),
    /// Every job slot of the host stayed taken for the job's whole timeout, so
    /// the job never started. Nothing of the tool ran; retrying later is safe.
    #[error(
        "all {slots} job slots stayed busy for {}; the job did not start: retry later, or raise the host's `max_jobs` (and `max_running`, where it is set)",
        humantime::format_duration(*.waited)
    )]
    Busy {
        /// The host's job slots (its `max_jobs`).
        slots: u32,
        /// How long the job waited for one.
        waited: Duration,
    },
    /// The job's caller cancelled it (a cancel request, a deleted session, a
    /// client that went away, Ctrl-C). The guest was stopped and any request
    /// a verb was making abandoned; what it did before is in the audit trail.
    #[error(
        "the job was cancelled ({reason}) after {} and {verb_calls} verb calls; nothing of it runs any more",
        humantime::format_duration(Duration::from_millis(elapsed.as_millis() as u64))
    )]
    Cancelled {
        /// Who cancelled it and how (`the client cancelled the call`).
        reason: String,
        /// How long it had run.
        elapsed: Duration,
        /// Verb calls it had made (each one is in the audit trail).
        verb_calls: u32,
    },
    /// A host failure that is not the guest's doing.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Arguments that do not fit are invalid; byte lists past the limit one call
/// may pass (the job's hostcall-data budget, both ways) are that budget.
impl From<ArgsError> for JobError {
    fn from(e: ArgsError) -> Self {
        match e {
            ArgsError::Invalid(e) => JobError::InvalidArguments(e),
            ArgsError::TooManyBytes(e) => JobError::Budget {
                which: BudgetKind::HostcallData,
                detail: format!(
                    "argument `{}` brings the call's byte lists to {}, more than the {} one call may pass to the tool; send the data in smaller calls",
                    e.path,
                    crate::units::format_size(e.bytes),
                    crate::units::format_size(e.limit)
                ),
            },
        }
    }
}

impl JobError {
    /// The error's kind as in the design's taxonomy.
    pub fn kind(&self) -> &'static str {
        match self {
            JobError::NoSuchFunction(_) | JobError::InvalidArguments(_) => "invalid-arguments",
            JobError::Budget { .. } => "budget",
            JobError::Trap { .. } => "trap",
            JobError::ToolError(_) => "tool-error",
            JobError::Busy { .. } => "busy",
            JobError::Cancelled { .. } => "cancelled",
            JobError::Internal(_) => "internal",
        }
    }
}

/// What a successful job produced.
#[derive(Debug, Clone)]
pub struct JobOutput {
    /// The job's number in this process.
    pub job: u64,
    /// The export's result as JSON (the `ok` payload for `result` returns).
    pub value: Value,
    /// What the guest printed to stdout.
    pub stdout: String,
    /// What the guest printed to stderr.
    pub stderr: String,
    /// What the guest logged through the `log` verb.
    pub logs: Vec<LogLine>,
    /// Fuel consumed.
    pub fuel_used: u64,
    /// Wall-clock duration of the job.
    pub elapsed: Duration,
}

/// Everything one job's store holds.
pub struct JobState {
    /// The null WASI context and its stdio pipes, made at the job's first
    /// WASI call: a job that makes none pays for neither.
    /// Boxed, as the verbs' states are: the store moves this struct, and
    /// most jobs never make what is boxed.
    wasi: Option<Box<(WasiCtx, Captured)>>,
    /// The cap on stdout and stderr, each ([`Budget::output`]).
    output_cap: usize,
    table: ResourceTable,
    limiter: JobLimiter,
    pub(crate) verbs: VerbStates,
}

impl WasiView for JobState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        let JobState {
            wasi,
            output_cap,
            table,
            ..
        } = self;
        let (ctx, _) = &mut **wasi.get_or_insert_with(|| {
            let captured = Captured::new(*output_cap);
            Box::new((captured.null_ctx(), captured))
        });
        WasiCtxView { ctx, table }
    }
}

impl JobState {
    /// What the guest wrote to stdout and stderr; `None` when it made no
    /// WASI call (so it wrote nothing).
    pub(crate) fn captured(&self) -> Option<&Captured> {
        self.wasi.as_deref().map(|(_, captured)| captured)
    }
}

/// Store limits that remember which limit refused a growth.
struct JobLimiter {
    memory: usize,
    core_instances: usize,
    table_elements: usize,
    hit: Option<&'static str>,
}

impl ResourceLimiter for JobLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory {
            self.hit = Some("memory");
            wasmtime::bail!("memory limit of {} bytes reached", self.memory);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.table_elements {
            self.hit = Some("table");
            wasmtime::bail!("table limit of {} elements reached", self.table_elements);
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        self.core_instances
    }
    fn tables(&self) -> usize {
        crate::engine::TABLES_PER_JOB as usize
    }
    fn memories(&self) -> usize {
        crate::engine::MEMORIES_PER_JOB as usize
    }
}

/// What every job of one tool shares, behind one pointer made at load: the
/// tool's name and grants, and the host's verbs, audit trail and epoch
/// ticker. A job clones this one pointer instead of five (and its parts
/// take one field each instead of four).
pub(crate) struct ToolContext {
    pub name: Arc<str>,
    pub grants: Grants,
    pub caps: Arc<Capabilities>,
    pub audit: Arc<dyn AuditSink>,
    /// The epoch ticker, asked to wake at a job's deadline once it is near.
    pub deadlines: crate::engine::Deadlines,
}

impl JobOwner for ToolContext {
    fn tool(&self) -> &str {
        &self.name
    }
    fn audit(&self) -> &dyn AuditSink {
        &*self.audit
    }
}

/// The pieces of a job prepared by the host before the store exists.
pub(crate) struct JobParts {
    pub context: Arc<ToolContext>,
    /// The job's handle; its cancel interrupts the guest at the next epoch
    /// tick.
    pub job: Job,
    /// Core module instances the job may create (the host's pool setting).
    pub core_instances: u32,
}

/// Builds the store of a job started at `started`, with every limit armed
/// before anything is instantiated.
pub(crate) fn new_store(
    engine: &wasmtime::Engine,
    budget: &Budget,
    started: Instant,
    parts: JobParts,
) -> wasmtime::Result<Store<JobState>> {
    let deadline = parts.job.deadline();
    let mut table = ResourceTable::new();
    table.set_max_capacity(budget.resources);
    let state = JobState {
        wasi: None,
        output_cap: budget.output,
        table,
        limiter: JobLimiter {
            memory: budget.memory,
            core_instances: parts.core_instances as usize,
            table_elements: budget.table_elements,
            hit: None,
        },
        verbs: VerbStates::new(parts.context, parts.job),
    };
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.limiter);
    // Handles the guest holds of any resource (a stream, an inert socket
    // stub): the same budget as the host's resource table.
    store.set_max_component_handles(budget.resources);
    store.set_fuel(budget.fuel)?;
    store.set_hostcall_fuel(budget.hostcall_bytes);
    store.set_epoch_deadline(1);
    // The callback reaches the job and the ticker through the store rather
    // than holding clones of its own.
    fn deadlines(s: &JobState) -> &crate::engine::Deadlines {
        &s.verbs.context().deadlines
    }
    // A deadline closer than one tick would be seen only at the next tick:
    // ask the ticker to advance the epoch at the deadline itself.
    let mut woken = budget.timeout <= deadlines(store.data()).tick();
    if woken {
        deadlines(store.data()).wake_at(deadline);
    }
    // A job keeps its worker through its first slice: an epoch advance then
    // (a tick, or a nudge for a job spawned behind it, see
    // `crate::executor`) would send it to the back of its worker's queue,
    // behind every guest waiting there, when it is probably about to end.
    // It yields when its first slice ends instead (the ticker is asked to
    // advance the epoch then).
    let first_slice_end = started + crate::executor::FIRST_SLICE;
    let mut in_first_slice = true;
    let mut woken_at_slice_end = false;
    store.epoch_deadline_callback(move |store| {
        let now = Instant::now();
        let state = store.data();
        if state.verbs.job().is_cancelled() || now >= deadline {
            return Ok(UpdateDeadline::Interrupt);
        }
        let deadlines = deadlines(state);
        if !woken && deadline - now <= deadlines.tick() {
            deadlines.wake_at(deadline);
            woken = true;
        }
        if in_first_slice {
            if now < first_slice_end {
                if !woken_at_slice_end {
                    deadlines.wake_at(first_slice_end);
                    woken_at_slice_end = true;
                }
                return Ok(UpdateDeadline::Continue(1));
            }
            in_first_slice = false;
        }
        Ok(UpdateDeadline::Yield(1))
    });
    Ok(store)
}

/// How [`watch`] saw a job's call end.
pub(crate) enum Watched<T> {
    /// The call ended by itself.
    Done(T),
    /// The job's caller cancelled it first.
    Cancelled,
    /// Its deadline passed first.
    PastDeadline,
}

/// Runs a job's `call` until it ends, `cancel` fires or `deadline` passes.
/// The cancel is read before every poll, so a cancelled job that yielded
/// never gets another slice. The waits are armed only once the call is
/// pending (a guest yielding, a verb waiting upstream): a job that ends in
/// its first poll takes no timer and no wake-up.
pub(crate) async fn watch<F: Future>(
    call: F,
    cancel: &airlock_core::Cancel,
    deadline: Instant,
) -> Watched<F::Output> {
    use std::task::Poll;
    let mut call = std::pin::pin!(call);
    let mut cancelled = std::pin::pin!(None);
    let mut past = std::pin::pin!(None);
    std::future::poll_fn(|cx| {
        if cancel.is_cancelled() {
            return Poll::Ready(Watched::Cancelled);
        }
        if let Poll::Ready(out) = call.as_mut().poll(cx) {
            return Poll::Ready(Watched::Done(out));
        }
        if cancelled.is_none() {
            cancelled.set(Some(cancel.cancelled()));
            past.set(Some(tokio::time::sleep_until(deadline.into())));
        }
        if let Some(c) = cancelled.as_mut().as_pin_mut()
            && c.poll(cx).is_ready()
        {
            return Poll::Ready(Watched::Cancelled);
        }
        if let Some(p) = past.as_mut().as_pin_mut()
            && p.poll(cx).is_ready()
        {
            return Poll::Ready(Watched::PastDeadline);
        }
        Poll::Pending
    })
    .await
}

/// Takes the log lines out of a finished job's store.
pub(crate) fn take_logs(store: &mut Store<JobState>) -> Vec<LogLine> {
    store.data_mut().verbs.take_log_lines()
}

/// Maps a failed call into the job's typed error. The order matters: a limit
/// the host recorded explains a trap better than the trap's own code.
pub(crate) fn classify_failure(
    err: wasmtime::Error,
    store: &Store<JobState>,
    budget: &Budget,
) -> JobError {
    // The host's own failure on the way (a fresh store it could not make for
    // the job), not the guest's.
    let err = match err.downcast::<JobError>() {
        Ok(host) => return host,
        Err(err) => err,
    };
    let captured = store.data().captured();
    if let Some(which) = store.data().limiter.hit {
        let (kind, detail) = if which == "memory" {
            (
                BudgetKind::Memory,
                format!(
                    "the tool tried to grow its memory past {}; raise `memory` in the tool's budget if it needs more",
                    crate::units::format_size(budget.memory)
                ),
            )
        } else {
            (
                BudgetKind::Memory,
                format!(
                    "the tool tried to grow a table past {} elements",
                    budget.table_elements
                ),
            )
        };
        return JobError::Budget {
            which: kind,
            detail,
        };
    }
    if let Some(trap) = err.downcast_ref::<Trap>() {
        match trap {
            Trap::OutOfFuel => {
                return JobError::Budget {
                    which: BudgetKind::Fuel,
                    detail: format!(
                        "the tool used all {} units of fuel; raise `fuel` in the tool's budget if it needs more",
                        budget.fuel
                    ),
                };
            }
            Trap::Interrupt => return deadline_error(budget),
            _ => {}
        }
    }
    if captured.is_some_and(Captured::overflowed) {
        return stdio_overflow(budget);
    }
    if let Some(exit) = err.downcast_ref::<wasmtime_wasi::I32Exit>() {
        return JobError::Trap {
            code: format!("exit({})", exit.0),
            message: format!("the tool called exit with status {}", exit.0)
                + &stderr_tail(captured),
        };
    }
    if err.chain().any(|e| {
        matches!(e.downcast_ref(), Some(ResourceTableError::Full))
            || e.to_string().contains("store handle limit exceeded")
    }) {
        return JobError::Budget {
            which: BudgetKind::Resources,
            detail: format!(
                "the tool tried to hold more than {} resource handles at once; drop handles it no longer needs, or raise `resources` in the tool's budget",
                budget.resources
            ),
        };
    }
    let text = format!("{err:#}");
    if text.contains("too much data is being copied between the host and the guest") {
        return JobError::Budget {
            which: BudgetKind::HostcallData,
            detail: format!(
                "the tool tried to pass more than {} to the host in one call",
                crate::units::format_size(budget.hostcall_bytes)
            ),
        };
    }
    let (code, message) = match err.downcast_ref::<Trap>() {
        Some(trap) => (trap_code(trap), trap.to_string()),
        // A host function's error: its own words with the context around
        // them ("failed to map memory: ..."), not the backtrace wasmtime
        // wraps it in.
        None => ("error".to_string(), error_words(&err)),
    };
    JobError::Trap {
        code,
        message: message + &stderr_tail(captured),
    }
}

/// A short, stable name for a trap.
fn trap_code(trap: &Trap) -> String {
    match trap {
        Trap::StackOverflow => "stack overflow",
        Trap::UnreachableCodeReached => "unreachable",
        Trap::MemoryOutOfBounds => "memory out of bounds",
        Trap::IntegerDivisionByZero => "integer division by zero",
        Trap::IntegerOverflow => "integer overflow",
        Trap::TableOutOfBounds => "table out of bounds",
        Trap::IndirectCallToNull => "indirect call to null",
        Trap::BadSignature => "bad signature",
        Trap::BadConversionToInteger => "bad conversion to integer",
        Trap::CannotEnterComponent => "cannot enter component",
        _ => "trap",
    }
    .to_string()
}

/// The output budget error for stdout or stderr past the cap.
pub(crate) fn stdio_overflow(budget: &Budget) -> JobError {
    JobError::Budget {
        which: BudgetKind::Output,
        detail: format!(
            "the tool wrote more than {} to stdout or stderr",
            crate::units::format_size(budget.output)
        ),
    }
}

pub(crate) fn deadline_error(budget: &Budget) -> JobError {
    JobError::Budget {
        which: BudgetKind::Deadline,
        detail: format!(
            "the job ran past its {} deadline; raise `timeout` in the tool's budget if it needs longer",
            humantime::format_duration(budget.timeout)
        ),
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").to_string()
}

/// Each level of `err`'s chain but the wasm backtrace, one line each, joined
/// by `: `, outermost first.
fn error_words(err: &wasmtime::Error) -> String {
    let backtrace = err
        .downcast_ref::<wasmtime::WasmBacktrace>()
        .map(ToString::to_string);
    err.chain()
        .map(|e| e.to_string())
        .filter(|e| backtrace.as_ref() != Some(e))
        .map(|e| first_line(&e))
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(": ")
}

/// The guest's panic message from its stderr (Rust prints `panicked at
/// FILE:LINE:COL:` and the message on the next line), or its last line.
fn stderr_tail(captured: Option<&Captured>) -> String {
    let Some(captured) = captured else {
        return String::new();
    };
    let err = captured.stderr.contents();
    let text = String::from_utf8_lossy(&err);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let tail = match lines.iter().rposition(|l| l.contains("panicked at")) {
        Some(i) => {
            let at = lines[i].split("panicked at").nth(1).unwrap_or("").trim();
            let message = lines.get(i + 1).copied().unwrap_or("");
            format!("panicked at {} {message}", at.trim_end_matches(':'))
        }
        None => match lines.last() {
            Some(l) => (*l).to_string(),
            None => return String::new(),
        },
    };
    let mut tail = tail.trim().to_string();
    tail.truncate(tail.floor_char_boundary(300));
    format!("; guest stderr: {tail}")
}

/// Splits a top-level `result<T, E>` into success or the tool's own error.
pub(crate) fn unwrap_result(result: Option<Val>, returns_result: bool) -> Result<Value, JobError> {
    let Some(v) = result else {
        return Ok(Value::Null);
    };
    let json = |v: Option<Box<Val>>| v.map_or(Value::Null, |v| crate::values::to_json(*v));
    match v {
        Val::Result(Ok(ok)) if returns_result => Ok(json(ok)),
        Val::Result(Err(e)) if returns_result => Err(JobError::ToolError(json(e))),
        v => Ok(crate::values::to_json(v)),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use airlock_core::JobControl;

    /// An engine, and a job of a tool named `t` with `grants` on it, for
    /// tests of what a job's store holds.
    pub(crate) fn test_job(
        grants: Grants,
        audit: Arc<dyn AuditSink>,
    ) -> (wasmtime::Engine, Arc<ToolContext>, Job) {
        let engine = crate::engine::build_engine(crate::engine::PoolSize {
            max_jobs: 1,
            ..Default::default()
        })
        .unwrap();
        let ticker = crate::engine::EpochTicker::with_tick(&engine, Duration::from_secs(1));
        let context = Arc::new(ToolContext {
            name: "t".into(),
            grants,
            caps: Arc::new(Capabilities::default()),
            audit,
            deadlines: ticker.deadlines().clone(),
        });
        let job = Job::owned(
            1,
            context.clone(),
            Instant::now() + Duration::from_secs(5),
            &JobControl::default(),
        );
        (engine, context, job)
    }

    /// A host failure carried through a job's call (the fresh store a job
    /// refused by a pool flush could not get) stays the host's error; any
    /// other error from the call is the tool's.
    #[test]
    fn a_host_failure_during_the_call_is_not_called_the_tool_s() {
        let (engine, context, job) = test_job(Grants::default(), Arc::new(airlock_core::NullAudit));
        let budget = Budget::default();
        let parts = JobParts {
            context,
            job,
            core_instances: 1,
        };
        let store = new_store(&engine, &budget, Instant::now(), parts).unwrap();
        let host = wasmtime::Error::new(JobError::Internal("no store".into()));
        let e = classify_failure(host, &store, &budget);
        assert!(
            matches!(&e, JobError::Internal(m) if m == "no store"),
            "{e:?}"
        );
        let guest = wasmtime::format_err!("no store");
        let e = classify_failure(guest, &store, &budget);
        assert!(
            matches!(&e, JobError::Trap { code, .. } if code == "error"),
            "{e:?}"
        );
    }

    #[test]
    fn byte_lists_past_the_limit_are_the_hostcall_data_budget() {
        let e = JobError::from(ArgsError::from(crate::values::TooManyBytes {
            path: "rec[1].data".into(),
            bytes: (4 << 20) + 1,
            limit: 4 << 20,
        }));
        assert_eq!(e.kind(), "budget");
        assert_eq!(
            e.to_string(),
            "the hostcall-data budget ran out: argument `rec[1].data` brings the call's byte lists to 4194305 bytes, more than the 4MiB one call may pass to the tool; send the data in smaller calls"
        );
        let e = JobError::from(ArgsError::from(ArgError {
            path: "b".into(),
            message: "invalid base64 for list<u8>: ...".into(),
        }));
        assert_eq!(e.kind(), "invalid-arguments");
        assert!(matches!(e, JobError::InvalidArguments(a) if a.path == "b"));
    }

    #[test]
    fn a_host_error_keeps_the_context_around_its_cause() {
        let err = wasmtime::Error::from(std::io::Error::from_raw_os_error(16))
            .context("mapping a memory image\nwith a second line");
        assert_eq!(
            error_words(&err),
            format!(
                "mapping a memory image: {}",
                std::io::Error::from_raw_os_error(16)
            )
        );
    }
}
