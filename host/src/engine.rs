//! The one hardened wasmtime `Engine` per process and the epoch ticker that
//! drives job deadlines. Settings follow the project's hardening recipe.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch advances by default ([`crate::HostOptions::epoch_tick`]):
/// how often a running job checks for cancellation. Deadlines do not wait for
/// it: a job less than a tick from its deadline asks the ticker to wake then.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Core module instances one job may create, by default
/// ([`PoolSize::core_instances_per_job`]). Measured: a Rust tool needs 3 or 4,
/// a componentize-js 0.23 tool 4, a componentize-py 0.25 tool 14; 32 leaves
/// room for those toolchains to grow and still bounds a hostile component.
pub const CORE_INSTANCES_PER_JOB: u32 = 32;
/// Linear memories one job may create.
pub const MEMORIES_PER_JOB: u32 = 2;
/// Tables one job may create.
pub const TABLES_PER_JOB: u32 = 8;

/// Pool slots whose pages are given back to the kernel together
/// ([`PoolingAllocationConfig::decommit_batch_size`]): one `process_madvise`
/// call for a batch instead of one `madvise` per job. Every job decommits
/// most of its 2 MiB fiber stack (only the top 16 KiB is zeroed in place;
/// memories are reset with `memset` after a `PAGEMAP_SCAN`). With two
/// workers those per-job calls made the kernel shoot down the other core's
/// TLB (0.099 shootdown interrupts a job, 0.013 batched) and a job cost
/// 12.3 µs of CPU against 5.1 µs on one worker; batched by 32, 6.8 µs, and
/// two workers ran 1.80× the jobs per second (raw wasmtime `word_count`, 2
/// cores; 16: 1.69×; 64: 1.81× but 1% slower on one worker, where 32 is 6%
/// faster). Airlock's own `job_throughput` on two workers went from 149.5k
/// to 213.5k jobs/s, one worker unchanged (medians of three alternating
/// runs). Larger `linear_memory_keep_resident` (256 KiB, 1 MiB) and
/// `table_keep_resident` (64 KiB) did not help: a trivial job dirties less
/// than 64 KiB of memory and its tables fit in 16 KiB, so none of them is
/// decommitted anyway. A slot returns to the pool only once its batch is
/// flushed, zeroed as before; a job that finds the pool empty flushes the
/// queue itself. A batch being flushed by another thread is in neither the
/// queue nor the pool for that moment, so an admitted job can still be
/// refused: it then starts again in a fresh store, before any of its guest
/// code has run (`Airlock::refreshed_after_flush`; seen in 12 of 200 runs of
/// `tools_using_every_core_instance_a_job_may_have_never_exhaust_the_pool`
/// before, 0 of 200 after; an idle instance the same way, 4 of 20 runs of
/// `idle_instances_made_on_every_core_at_once_never_exhaust_the_pool`
/// before, 0 of 40 after), so an admitted job or idle instance still always
/// finds room (tests/integration/residue.rs also runs a one-job pool).
pub const DECOMMIT_BATCH: usize = 32;

/// Limits of the pooling allocator, sized for `max_jobs` concurrent jobs.
/// Up to about 4,000 jobs every memory gets a 4 GiB slot (no bounds checks
/// in compiled code); a larger pool gets slots of `max_memory_bytes`.
#[derive(Debug, Clone, Copy)]
pub struct PoolSize {
    /// Jobs that may hold an instance at the same time, running or idle
    /// ([`crate::Airlock::idle`]): instances, memories and tables.
    pub max_jobs: u32,
    /// Of those, jobs that may run at the same time (`None`: all of them).
    /// Only a running job needs a fiber stack, and every pooled stack costs
    /// two kernel memory mappings (the stack and its guard page) from the
    /// start, whether used or not: a pool sized for many idle instances
    /// keeps this small so that the mappings go to the instances
    /// (`vm.max_map_count`, see README).
    pub max_running: Option<u32>,
    /// Largest linear memory any job may reach (the store limit is lower).
    pub max_memory_bytes: usize,
    /// Core module instances one job may create: a component needing more is
    /// refused at load, before it is compiled.
    pub core_instances_per_job: u32,
}

impl PoolSize {
    /// Jobs that may run at the same time: [`PoolSize::max_running`], at
    /// most [`PoolSize::max_jobs`].
    pub fn running(&self) -> u32 {
        self.max_running
            .map_or(self.max_jobs, |r| r.min(self.max_jobs))
    }
}

impl Default for PoolSize {
    fn default() -> Self {
        Self {
            max_jobs: 256,
            max_running: None,
            max_memory_bytes: 256 << 20,
            core_instances_per_job: CORE_INSTANCES_PER_JOB,
        }
    }
}

/// Builds the engine: Cranelift, fuel and epochs on, risky proposals off,
/// pooling allocator with pages kept resident for fast reuse. Threads, GC,
/// exceptions, stack switching and component-model async are not even
/// compiled in (cargo features).
pub fn build_engine(pool: PoolSize) -> wasmtime::Result<Engine> {
    Engine::new(&config(pool))
}

/// [`build_engine`] with wasmtime's guest debugging on, so that a
/// [`crate::probe::MemoryProbe`] can read every linear memory of a job. For
/// wall tests only: debug instrumentation slows every guest down.
#[cfg(feature = "guest-debug")]
pub fn build_debug_engine(pool: PoolSize) -> wasmtime::Result<Engine> {
    let mut config = config(pool);
    config.guest_debug(true);
    Engine::new(&config)
}

/// The settings [`build_engine`] uses.
fn config(pool: PoolSize) -> Config {
    let mut config = Config::new();
    config
        .strategy(wasmtime::Strategy::Cranelift)
        .consume_fuel(true)
        .epoch_interruption(true)
        .wasm_memory64(false)
        .max_wasm_stack(512 << 10)
        .async_stack_zeroing(true);

    // Every total is the per-job limit times the job slots (stacks: times the
    // jobs that may run): a job admitted by the host's semaphores always
    // finds room, so the pool is never exhausted by concurrency, only a tool
    // over the per-job limits fails (at once). An idle instance holds no
    // stack: instantiating a component calls no guest code on a fiber unless
    // it has a start function, and wasmtime takes a stack only for a call.
    let j = pool.max_jobs;
    if pool_address_space(j) > MAX_POOL_ADDRESS_SPACE {
        // Too many 4 GiB slots for the address space: give each memory a
        // slot of its largest size (plus the guard). Compiled code then
        // checks bounds explicitly instead of relying on the reservation.
        config.memory_reservation(pool.max_memory_bytes as u64);
    }
    let mut pooling = PoolingAllocationConfig::new();
    pooling
        .total_component_instances(j)
        .total_core_instances(pool.core_instances_per_job.saturating_mul(j))
        .total_memories(MEMORIES_PER_JOB * j)
        .total_tables(TABLES_PER_JOB * j)
        .total_stacks(pool.running())
        .max_memory_size(pool.max_memory_bytes)
        .table_elements(10_000)
        .max_core_instances_per_component(pool.core_instances_per_job)
        .max_memories_per_component(MEMORIES_PER_JOB)
        .max_tables_per_component(TABLES_PER_JOB)
        .linear_memory_keep_resident(64 << 10)
        // Zero the top of a reused fiber stack instead of decommitting it:
        // measured -25% on a trivial job (bench job_cold).
        .async_stack_keep_resident(16 << 10)
        .table_keep_resident(16 << 10)
        .pagemap_scan(Enabled::Auto)
        .decommit_batch_size(DECOMMIT_BATCH);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
    config
}

/// Address space the pool may reserve for linear memories with the default
/// 4 GiB slots before [`build_engine`] shrinks the slots: a quarter of the
/// 128 TiB a 64-bit Linux process has.
const MAX_POOL_ADDRESS_SPACE: u64 = 32 << 40;

/// Address space of the memory slots of a pool for `max_jobs` with wasmtime's
/// default reservation (4 GiB) and guard (32 MiB): two memories per job.
fn pool_address_space(max_jobs: u32) -> u64 {
    2 * u64::from(max_jobs) * ((4 << 30) + (32 << 20))
}

/// Advances the engine's epoch every tick until dropped, and also at each
/// instant a job asked for with [`Deadlines::wake_at`]: a job about to pass
/// its deadline is interrupted at the deadline, not at the next tick.
pub struct EpochTicker {
    deadlines: Deadlines,
    handle: Option<JoinHandle<()>>,
}

/// The ticker's wake-up list, shared with the jobs.
#[derive(Clone)]
pub struct Deadlines {
    shared: Arc<TickerShared>,
    tick: Duration,
}

struct TickerShared {
    state: Mutex<TickerState>,
    wake: Condvar,
}

#[derive(Default)]
struct TickerState {
    stop: bool,
    /// Instants the epoch must also advance at, earliest first.
    at: BinaryHeap<Reverse<Instant>>,
}

impl Deadlines {
    /// The tick: how often the epoch advances regardless of deadlines.
    pub fn tick(&self) -> Duration {
        self.tick
    }

    /// Advances the epoch at `instant` as well (a job's deadline). Jobs call
    /// this only when their deadline is less than a tick away, so the list
    /// holds the few jobs about to run out, never every job started.
    pub fn wake_at(&self, instant: Instant) {
        let mut state = self.shared.state.lock().expect("the ticker's lock");
        let earliest = state
            .at
            .peek()
            .is_none_or(|Reverse(first)| instant < *first);
        state.at.push(Reverse(instant));
        drop(state);
        if earliest {
            self.shared.wake.notify_one();
        }
    }
}

impl EpochTicker {
    /// Starts the ticker thread for `engine`, ticking every [`EPOCH_TICK`].
    pub fn start(engine: &Engine) -> Self {
        Self::with_tick(engine, EPOCH_TICK)
    }

    /// Starts the ticker thread for `engine`, ticking every `tick`.
    pub fn with_tick(engine: &Engine, tick: Duration) -> Self {
        let shared = Arc::new(TickerShared {
            state: Mutex::default(),
            wake: Condvar::new(),
        });
        let engine = engine.weak();
        let thread_shared = shared.clone();
        let handle = std::thread::Builder::new()
            .name("airlock-epoch".into())
            .spawn(move || run_ticker(&thread_shared, &engine, tick))
            .expect("spawning the epoch ticker thread");
        Self {
            deadlines: Deadlines { shared, tick },
            handle: Some(handle),
        }
    }

    /// The handle jobs use to be woken at their deadline.
    pub fn deadlines(&self) -> &Deadlines {
        &self.deadlines
    }
}

/// Ticks at fixed instants, not a fixed sleep after each tick, so wake-up
/// delays do not add up; between ticks, wakes at each requested instant.
fn run_ticker(shared: &TickerShared, engine: &wasmtime::EngineWeak, tick: Duration) {
    let mut next_tick = Instant::now() + tick;
    let mut state = shared.state.lock().expect("the ticker's lock");
    loop {
        if state.stop {
            return;
        }
        let now = Instant::now();
        let mut due = false;
        while state.at.peek().is_some_and(|Reverse(at)| *at <= now) {
            state.at.pop();
            due = true;
        }
        if now >= next_tick {
            due = true;
            next_tick += tick;
            if next_tick <= now {
                next_tick = now + tick;
            }
        }
        if due {
            drop(state);
            match engine.upgrade() {
                Some(engine) => engine.increment_epoch(),
                None => return,
            }
            state = shared.state.lock().expect("the ticker's lock");
            continue;
        }
        let until = state
            .at
            .peek()
            .map_or(next_tick, |Reverse(at)| (*at).min(next_tick));
        state = shared
            .wake
            .wait_timeout(state, until.saturating_duration_since(now))
            .expect("the ticker's lock")
            .0;
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.deadlines
            .shared
            .state
            .lock()
            .expect("the ticker's lock")
            .stop = true;
        self.deadlines.shared.wake.notify_one();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_pools_keep_4_gib_slots_and_large_pools_shrink_them() {
        assert!(pool_address_space(PoolSize::default().max_jobs) <= MAX_POOL_ADDRESS_SPACE);
        assert!(pool_address_space(4_000) <= MAX_POOL_ADDRESS_SPACE);
        assert!(pool_address_space(4_100) > MAX_POOL_ADDRESS_SPACE);
        assert!(pool_address_space(20_480) > MAX_POOL_ADDRESS_SPACE);
    }
}
