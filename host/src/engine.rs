//! The one hardened wasmtime `Engine` per process and the epoch ticker that
//! drives job deadlines. Settings follow the project's hardening recipe.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch advances: the granularity of CPU deadlines.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Core module instances one job may create (a Rust tool needs 3 or 4).
pub const CORE_INSTANCES_PER_JOB: u32 = 16;
/// Linear memories one job may create.
pub const MEMORIES_PER_JOB: u32 = 2;
/// Tables one job may create.
pub const TABLES_PER_JOB: u32 = 8;

/// Limits of the pooling allocator, sized for `max_jobs` concurrent jobs.
#[derive(Debug, Clone, Copy)]
pub struct PoolSize {
    /// Jobs that may hold an instance at the same time.
    pub max_jobs: u32,
    /// Largest linear memory any job may reach (the store limit is lower).
    pub max_memory_bytes: usize,
}

impl Default for PoolSize {
    fn default() -> Self {
        Self {
            max_jobs: 256,
            max_memory_bytes: 256 << 20,
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

    // Every total is the per-job limit times the job slots: a job admitted by
    // the host's semaphore always finds room, so the pool is never exhausted
    // by concurrency, only a tool over the per-job limits fails (at once).
    let j = pool.max_jobs;
    let mut pooling = PoolingAllocationConfig::new();
    pooling
        .total_component_instances(j)
        .total_core_instances(CORE_INSTANCES_PER_JOB * j)
        .total_memories(MEMORIES_PER_JOB * j)
        .total_tables(TABLES_PER_JOB * j)
        .total_stacks(j)
        .max_memory_size(pool.max_memory_bytes)
        .table_elements(10_000)
        .max_core_instances_per_component(CORE_INSTANCES_PER_JOB)
        .max_memories_per_component(MEMORIES_PER_JOB)
        .max_tables_per_component(TABLES_PER_JOB)
        .linear_memory_keep_resident(64 << 10)
        // Zero the top of a reused fiber stack instead of decommitting it:
        // measured -25% on a trivial job (bench job_cold).
        .async_stack_keep_resident(16 << 10)
        .table_keep_resident(16 << 10)
        .pagemap_scan(Enabled::Auto);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
    config
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until dropped.
pub struct EpochTicker {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl EpochTicker {
    /// Starts the ticker thread for `engine`.
    pub fn start(engine: &Engine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let engine = engine.weak();
        let flag = stop.clone();
        let handle = std::thread::Builder::new()
            .name("airlock-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    match engine.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })
            .expect("spawning the epoch ticker thread");
        Self {
            stop,
            handle: Some(handle),
        }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
