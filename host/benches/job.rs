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
//! * `airlock_5mb` / `raw_deserialize_file_5mb`: the same pair for
//!   `bench_bulky.wasm`, a 5 MB component (a 5 MiB data segment), the size
//!   the target names. Every load asserts it was a cache hit: compile
//!   never happens on these paths.
//! * `airlock_warm_process_5mb`: `Airlock::load_tool_file` of the 5 MB
//!   component by a host that loaded it before: its file's identity (device,
//!   inode, size, modification and change times) is unchanged, so neither the
//!   file, its hash nor the cache entry is read again (`host/src/memo.rs`).
//! * `sha256_input_5mb`: only the sha256 of the 5 MB component's bytes, the
//!   digest that names it in the cache (the floor of a content-keyed cache).

mod common;

use std::hint::black_box;
use std::path::Path;
use std::process::Command;

use airlock::cache::ComponentCache;
use airlock::engine::{PoolSize, build_engine};
use airlock::{Budget, Capabilities, Grants, HostOptions};
use common::{RawWordCount, TEXT, guest, runtime, true_binary};
use criterion::{Criterion, criterion_group, criterion_main};
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::{Component, Val};

fn job_cold(c: &mut Criterion) {
    assert_eq!(TEXT.len(), 16);
    let rt = runtime();

    // airlock: a host, a loaded tool, one job per iteration.
    let (host, _cache) = common::host(Capabilities::default(), HostOptions::default());
    let tool = common::load(&host, "word_count", Grants::default(), Budget::default());
    let args = serde_json::json!({ "text": TEXT });
    let out = rt
        .block_on(host.run(&tool, Some("count"), &args))
        .expect("the job runs");
    assert_eq!(out.value["bytes"], 16, "unexpected result: {}", out.value);

    // raw wasmtime: same engine configuration, nothing linked.
    let raw = RawWordCount::new();
    let raw_job = || raw.job();
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
    let dir = tempfile::tempdir().expect("a temporary cache directory");
    let mut group = c.benchmark_group("load_cached");
    for (name, suffix) in [("sign_webhook", ""), ("bench_bulky", "_5mb")] {
        let bytes = std::fs::read(guest(name)).expect("reading the guest");

        // Warm the airlock cache: the first load compiles and stores.
        let cache = ComponentCache::new(
            Some(dir.path().join("cache")),
            Some(dir.path().join("cache.key")),
        );
        cache.load(&engine, &bytes).expect("the guest compiles");
        let (_, _, outcome) = cache.load(&engine, &bytes).expect("the guest loads");
        assert_eq!(outcome, airlock::cache::CacheOutcome::Hit);

        // The same compiled bytes, as a plain file.
        let compiled = engine
            .precompile_component(&bytes)
            .expect("the guest compiles");
        let cwasm = dir.path().join(format!("{name}.cwasm"));
        std::fs::write(&cwasm, &compiled).expect("writing the compiled file");
        deserialize(&engine, &cwasm).expect("the compiled file loads");

        group.bench_function(format!("airlock{suffix}"), |b| {
            b.iter(|| {
                let (component, _, outcome) =
                    cache.load(&engine, black_box(&bytes)).expect("a cache hit");
                assert_eq!(
                    outcome,
                    airlock::cache::CacheOutcome::Hit,
                    "compiled on the job path"
                );
                black_box(component)
            })
        });
        group.bench_function(format!("raw_deserialize_file{suffix}"), |b| {
            b.iter(|| black_box(deserialize(&engine, &cwasm).expect("the compiled file loads")))
        });
        if !suffix.is_empty() {
            // A tool loaded again by the same process: its file's identity
            // unchanged, its component verified before (crate `memo`).
            let host = airlock::Airlock::new(
                HostOptions {
                    cache_dir: Some(dir.path().join("cache")),
                    cache_key: Some(dir.path().join("cache.key")),
                    ..HostOptions::default()
                },
                Capabilities::default(),
                std::sync::Arc::new(airlock::NullAudit),
            )
            .expect("the host starts");
            let path = guest(name);
            let load = || {
                host.load_tool_file(name, &path, Grants::default(), Budget::default())
                    .expect("the tool loads")
            };
            load();
            group.bench_function(format!("airlock_warm_process{suffix}"), |b| {
                b.iter(|| black_box(load()))
            });
            // What naming the component by its content costs by itself.
            group.bench_function(format!("sha256_input{suffix}"), |b| {
                b.iter(|| black_box(Sha256::digest(black_box(&bytes))))
            });
        }
    }
    group.finish();
}

/// wasmtime's unverified fast path: map a compiled file.
fn deserialize(engine: &Engine, path: &Path) -> wasmtime::Result<Component> {
    // SAFETY: the file holds what `precompile_component` of this very engine
    // produced a moment ago, and nothing else writes it.
    #[allow(unsafe_code)]
    unsafe {
        Component::deserialize_file(engine, path)
    }
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = job_cold, load_cached
}
criterion_main!(benches);
