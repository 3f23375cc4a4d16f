//! Helpers shared by the benches: where the guests are, the criterion
//! settings (short, so `cargo xtask bench` stays under ~10 minutes on two
//! cores; `AIRLOCK_BENCH_QUICK=1` shortens them further), runtimes, a host
//! with one loaded tool, and the raw-wasmtime `word_count` job baseline.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use airlock::engine::{PoolSize, build_engine};
use airlock::{Airlock, Budget, Capabilities, Grants, HostOptions, NullAudit, Tool};
use criterion::Criterion;
use wasmtime::component::{Component, ComponentExportIndex, InstancePre, Linker, Val};
use wasmtime::{Engine, Store};

/// The text every `word_count` job of the benches counts: 16 bytes.
pub const TEXT: &str = "hello wasm world";

/// `word_count` on plain wasmtime, the floor of a job: an engine built by the
/// same `build_engine` (pooling, fuel, epochs, stack zeroing match), an empty
/// `Linker<()>` pre-instantiated once, the export index resolved once.
pub struct RawWordCount {
    engine: Engine,
    pre: InstancePre<()>,
    count: ComponentExportIndex,
    fuel: u64,
}

impl RawWordCount {
    /// Compiles `word_count` and pre-instantiates it.
    pub fn new() -> Self {
        let engine = build_engine(PoolSize::default()).expect("the engine builds");
        let component =
            Component::from_file(&engine, guest("word_count")).expect("word_count compiles");
        let pre = Linker::<()>::new(&engine)
            .instantiate_pre(&component)
            .expect("word_count imports nothing");
        let count = component
            .get_export_index(None, "count")
            .expect("word_count exports count");
        let fuel = Budget::default().fuel;
        Self {
            engine,
            pre,
            count,
            fuel,
        }
    }

    /// One job with only what wasmtime requires of this configuration: a
    /// store, fuel and an epoch deadline, instantiate, call `count` on
    /// [`TEXT`], drop.
    pub async fn job(&self) -> wasmtime::Result<Val> {
        let mut store = Store::new(&self.engine, ());
        store.set_fuel(self.fuel)?;
        store.set_epoch_deadline(1);
        let instance = self.pre.instantiate_async(&mut store).await?;
        let func = instance
            .get_func(&mut store, self.count)
            .ok_or_else(|| wasmtime::format_err!("no export `count`"))?;
        let mut results = [Val::Bool(false)];
        func.call_async(&mut store, &[Val::String(TEXT.into())], &mut results)
            .await?;
        let [result] = results;
        Ok(result)
    }
}

/// Where the guest components are: `$AIRLOCK_GUESTS`, else this workspace's
/// `target/wasm32-wasip2/release`.
pub fn guests_dir() -> PathBuf {
    std::env::var_os("AIRLOCK_GUESTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/wasm32-wasip2/release")
        })
}

/// The guest `name` (`word_count`), which must have been built.
pub fn guest(name: &str) -> PathBuf {
    let path = guests_dir().join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "guest {} is missing; run `cargo xtask build-guests` or set AIRLOCK_GUESTS",
        path.display()
    );
    path
}

/// Whether `AIRLOCK_BENCH_QUICK` asks for the shortest runs.
pub fn quick() -> bool {
    std::env::var_os("AIRLOCK_BENCH_QUICK").is_some_and(|v| !v.is_empty() && v != "0")
}

/// The criterion settings every group starts from.
pub fn config() -> Criterion {
    let (warm, measure) = if quick() { (300, 1000) } else { (700, 2500) };
    Criterion::default()
        .sample_size(50)
        .warm_up_time(Duration::from_millis(warm))
        .measurement_time(Duration::from_millis(measure))
        .without_plots()
}

/// A current-thread tokio runtime (one job at a time, as the CLI runs).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread tokio runtime")
}

/// A host with default options, a fresh cache directory and `caps`.
pub fn host(caps: Capabilities, options: HostOptions) -> (Airlock, tempfile::TempDir) {
    let cache = tempfile::tempdir().expect("a temporary cache directory");
    let host = Airlock::new(
        HostOptions {
            cache_dir: Some(cache.path().join("cache")),
            cache_key: Some(cache.path().join("cache.key")),
            ..options
        },
        caps,
        Arc::new(NullAudit),
    )
    .expect("the host starts");
    (host, cache)
}

/// Loads guest `name` into `host` under `grants` and `budget`.
pub fn load(host: &Airlock, name: &str, grants: Grants, budget: Budget) -> Tool {
    host.load_tool_file(name, &guest(name), grants, budget)
        .unwrap_or_else(|e| panic!("{name} loads: {e}"))
}

/// `/bin/true`, or `true` from PATH.
pub fn true_binary() -> &'static str {
    if Path::new("/bin/true").exists() {
        "/bin/true"
    } else {
        "true"
    }
}
