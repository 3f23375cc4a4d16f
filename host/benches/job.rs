//! What one airlock job costs, against the cheapest honest alternatives.
//!
//! Run with `cargo bench -p airlock --bench job`. Guests are read from
//! `$AIRLOCK_GUESTS` (default: `target/wasm32-wasip2/release` of this
//! workspace); build them first (`cargo xtask` / `cargo build --target
//! wasm32-wasip2 --release` in `guests/`).
//!
//! Group `job_cold` — one trivial job, start to finish, with a fresh store:
//!
//! * `airlock`: `Airlock::run` on a loaded `word_count` tool (no verb, no
//!   WASI import) with a 16-byte text, driven by `rt.block_on` on a
//!   current-thread tokio runtime. It pays for everything a real job pays
//!   for: export lookup and JSON-to-`Val` conversion, the job slot, the audit
//!   handle, per-verb states, the null WASI context with capped stdout/stderr,
//!   the store with its limiter, fuel, hostcall fuel and epoch deadline armed,
//!   instantiation from the cached `InstancePre`, the call, the result back to
//!   JSON, and dropping the store.
//! * `raw_wasmtime`: the same component on plain wasmtime, with an engine
//!   built by the same `airlock::engine::build_engine(PoolSize::default())`
//!   (so pooling allocator, fuel, epochs, stack zeroing match), an empty
//!   `Linker<()>` pre-instantiated once, and per iteration only what wasmtime
//!   requires: `Store::new`, `set_fuel`, `set_epoch_deadline` (both are
//!   mandatory with this config), `instantiate_async`, look up `count` (by a
//!   pre-resolved export index, as airlock does), `call_async` with a
//!   `Val::String`, drop. Same runtime, same `block_on`. This is the floor:
//!   `airlock / raw_wasmtime` is the price of airlock's own per-job work.
//! * `process_spawn`: `Command::new("/bin/true").status()`, the cost of the
//!   isolation most agent tool runners use (a fresh process per call), before
//!   the spawned program has done anything useful. It flatters the process
//!   side: a real tool would also load an interpreter or a larger binary.
//!
//! Group `load_cached` — loading a tool that was compiled before:
//!
//! * `airlock`: `ComponentCache::load` on a warm cache directory for
//!   `sign_webhook.wasm` (the largest realistic guest). It hashes the input,
//!   reads the compiled file and its checksum, verifies the checksum and
//!   deserializes.
//! * `raw_deserialize_file`: `Component::deserialize_file` on the very same
//!   compiled bytes written to a file, with the same engine: wasmtime's
//!   unverified fast path (it maps the file), the floor for any cache.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use airlock::cache::ComponentCache;
use airlock::engine::{PoolSize, build_engine};
use airlock::{Airlock, Budget, Capabilities, Grants, HostOptions, NullAudit};
use criterion::{Criterion, criterion_group, criterion_main};
use wasmtime::component::{Component, ComponentExportIndex, InstancePre, Linker, Val};
use wasmtime::{Engine, Store};

/// The text every job counts: 16 bytes.
const TEXT: &str = "hello wasm world";

fn guests_dir() -> PathBuf {
    std::env::var_os("AIRLOCK_GUESTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/wasm32-wasip2/release")
        })
}

fn guest(name: &str) -> PathBuf {
    let path = guests_dir().join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "guest {} is missing; build the guests or set AIRLOCK_GUESTS",
        path.display()
    );
    path
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread tokio runtime")
}

fn true_binary() -> &'static str {
    if Path::new("/bin/true").exists() {
        "/bin/true"
    } else {
        "true"
    }
}

/// One job on plain wasmtime: exactly what the engine configuration requires.
async fn raw_job(
    engine: &Engine,
    pre: &InstancePre<()>,
    count: ComponentExportIndex,
    fuel: u64,
) -> wasmtime::Result<Val> {
    let mut store = Store::new(engine, ());
    store.set_fuel(fuel)?;
    store.set_epoch_deadline(1);
    let instance = pre.instantiate_async(&mut store).await?;
    let func = instance
        .get_func(&mut store, count)
        .ok_or_else(|| wasmtime::format_err!("no export `count`"))?;
    let mut results = [Val::Bool(false)];
    func.call_async(&mut store, &[Val::String(TEXT.into())], &mut results)
        .await?;
    let [result] = results;
    Ok(result)
}

fn job_cold(c: &mut Criterion) {
    assert_eq!(TEXT.len(), 16);
    let rt = runtime();
    let cache = tempfile::tempdir().expect("a temporary cache directory");
    let wasm = guest("word_count");

    // airlock: a host, a loaded tool, one job per iteration.
    let host = Airlock::new(
        HostOptions {
            cache_dir: Some(cache.path().to_path_buf()),
            ..HostOptions::default()
        },
        Capabilities::default(),
        Arc::new(NullAudit),
    )
    .expect("the host starts");
    let tool = host
        .load_tool_file("word_count", &wasm, Grants::default(), Budget::default())
        .expect("word_count loads");
    let args = serde_json::json!({ "text": TEXT });
    let out = rt
        .block_on(host.run(&tool, Some("count"), &args))
        .expect("the job runs");
    assert_eq!(out.value["bytes"], 16, "unexpected result: {}", out.value);

    // raw wasmtime: same engine configuration, nothing linked.
    let engine = build_engine(PoolSize::default()).expect("the engine builds");
    let budget = Budget::default();
    let component = Component::from_file(&engine, &wasm).expect("word_count compiles");
    let pre = Linker::<()>::new(&engine)
        .instantiate_pre(&component)
        .expect("word_count imports nothing");
    let count = component
        .get_export_index(None, "count")
        .expect("word_count exports count");
    let raw_job = || raw_job(&engine, &pre, count, budget.fuel);
    let val = rt.block_on(raw_job()).expect("the raw call runs");
    assert!(matches!(val, Val::Record(_)), "unexpected result: {val:?}");

    let spawn = true_binary();
    assert!(
        Command::new(spawn)
            .status()
            .expect("spawning true")
            .success(),
        "`{spawn}` failed"
    );

    let mut group = c.benchmark_group("job_cold");
    group.bench_function("airlock", |b| {
        b.iter(|| {
            black_box(
                rt.block_on(host.run(&tool, Some("count"), black_box(&args)))
                    .expect("the job runs"),
            )
        })
    });
    group.bench_function("raw_wasmtime", |b| {
        b.iter(|| black_box(rt.block_on(raw_job()).expect("the raw call runs")))
    });
    group.bench_function("process_spawn", |b| {
        b.iter(|| black_box(Command::new(spawn).status().expect("spawning true")))
    });
    group.finish();
}

fn load_cached(c: &mut Criterion) {
    let engine = build_engine(PoolSize::default()).expect("the engine builds");
    let bytes = std::fs::read(guest("sign_webhook")).expect("reading sign_webhook.wasm");
    let dir = tempfile::tempdir().expect("a temporary cache directory");

    // Warm the airlock cache: the first load compiles and stores.
    let cache = ComponentCache::new(Some(dir.path().join("cache")));
    cache.load(&engine, &bytes).expect("sign_webhook compiles");
    let (_, _, outcome) = cache.load(&engine, &bytes).expect("sign_webhook loads");
    assert_eq!(outcome, airlock::cache::CacheOutcome::Hit);

    // The same compiled bytes, as a plain file.
    let compiled = engine
        .precompile_component(&bytes)
        .expect("sign_webhook compiles");
    let cwasm = dir.path().join("sign_webhook.cwasm");
    std::fs::write(&cwasm, &compiled).expect("writing the compiled file");
    let deserialize = |engine: &Engine, path: &Path| {
        // SAFETY: the file holds what `precompile_component` of this very
        // engine produced a moment ago, and nothing else writes it.
        #[allow(unsafe_code)]
        unsafe {
            Component::deserialize_file(engine, path)
        }
    };
    deserialize(&engine, &cwasm).expect("the compiled file loads");

    let mut group = c.benchmark_group("load_cached");
    group.bench_function("airlock", |b| {
        b.iter(|| black_box(cache.load(&engine, black_box(&bytes)).expect("a cache hit")))
    });
    group.bench_function("raw_deserialize_file", |b| {
        b.iter(|| black_box(deserialize(&engine, &cwasm).expect("the compiled file loads")))
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(50)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = job_cold, load_cached
}
criterion_main!(benches);
