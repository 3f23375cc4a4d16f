//! What a guest -> host verb call costs through airlock, against a raw
//! wasmtime host function with the same WIT signature.
//!
//! Run with `cargo bench -p airlock --bench verb_call`. The `bench_log` guest
//! exports `burst(n, size)`, which calls `log.emit(info, message)` `n` times
//! with a `size`-byte message. One criterion iteration is one job of `n`
//! calls; the reported time is that job's time divided by `n` (so the job's
//! setup, ~10 µs, is spread over the calls: under 10 ns per call at 16 B):
//!
//! * `airlock_<size>`: `Airlock::run` of `burst` under a `log` grant large
//!   enough never to truncate or run out. Each call lifts the message, goes
//!   through the bindgen-generated async host trait, checks the grant's caps,
//!   keeps the line, and writes an audit record (to a `NullAudit`).
//! * `raw_<size>`: the same guest on plain wasmtime, instantiated from an
//!   `InstancePre` built from a `Linker` holding only
//!   `airlock:verbs/log@0.1.0#emit` as a plain (not async) `func_wrap`, as
//!   the verb is, with the same signature (`(level, string) ->
//!   result<_, error>`), which keeps the line
//!   in the store like the verb does, and nothing else (the WASI the
//!   guest's std imports but never calls is defined as traps).
//!
//! Sizes: 16 B (1,000 calls per job), 1 KiB (256), 64 KiB (16).

mod common;

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use airlock::engine::{PoolSize, build_engine};
use airlock::{Budget, Capabilities, Grants, HostOptions};
use airlock_core::WitError;
use airlock_core::bindings::airlock::verbs::log::Level;
use airlock_log::LogGrant;
use criterion::{Criterion, criterion_group, criterion_main};
use wasmtime::component::{Component, Linker, Val};
use wasmtime::{Engine, Store};

/// (label, message bytes, calls per job).
const CASES: [(&str, u32, u32); 3] = [("16B", 16, 1000), ("1KiB", 1024, 256), ("64KiB", 65536, 16)];

/// The raw host's store data: the lines it kept.
#[derive(Default)]
struct RawLog {
    lines: Vec<(Level, String)>,
}

fn raw_linker(engine: &Engine) -> wasmtime::Result<Linker<RawLog>> {
    let mut linker = Linker::new(engine);
    linker.instance("airlock:verbs/types@0.1.0")?;
    linker.instance("airlock:verbs/log@0.1.0")?.func_wrap(
        "emit",
        |mut store: wasmtime::StoreContextMut<'_, RawLog>, (level, message): (Level, String)| {
            store.data_mut().lines.push((level, message));
            Ok((Ok::<(), WitError>(()),))
        },
    )?;
    Ok(linker)
}

fn verb_call(c: &mut Criterion) {
    let rt = common::runtime();
    let (host, _cache) = common::host(Capabilities::default(), HostOptions::default());
    let grants = Grants {
        log: Some(Arc::new(LogGrant {
            max_message_bytes: Some(1 << 20),
            max_total_bytes: Some(64 << 20),
        })),
        ..Grants::default()
    };
    let tool = common::load(&host, "bench_log", grants, Budget::default());

    let engine = build_engine(PoolSize::default()).expect("the engine builds");
    let component =
        Component::from_file(&engine, common::guest("bench_log")).expect("bench_log compiles");
    let pre = raw_linker(&engine)
        .and_then(|mut l| {
            // The guest's std imports WASI (its panic path); it never calls
            // it, so traps stand in for it, as airlock's lazy null WASI
            // costs nothing until called.
            l.define_unknown_imports_as_traps(&component)?;
            l.instantiate_pre(&component)
        })
        .expect("bench_log links against the raw log");
    let burst = component
        .get_export_index(None, "burst")
        .expect("bench_log exports burst");
    let fuel = Budget::default().fuel;
    let raw_job = |n: u32, size: u32| {
        let (engine, pre) = (&engine, &pre);
        async move {
            let mut store = Store::new(engine, RawLog::default());
            store.set_fuel(fuel)?;
            store.set_epoch_deadline(1);
            let instance = pre.instantiate_async(&mut store).await?;
            let func = instance
                .get_func(&mut store, burst)
                .ok_or_else(|| wasmtime::format_err!("no export `burst`"))?;
            let mut results = [Val::Bool(false)];
            func.call_async(&mut store, &[Val::U32(n), Val::U32(size)], &mut results)
                .await?;
            wasmtime::Result::<Val>::Ok(results[0].clone())
        }
    };

    let mut group = c.benchmark_group("verb_call");
    for (label, size, n) in CASES {
        let args = serde_json::json!({ "n": n, "size": size });
        let out = rt
            .block_on(host.run(&tool, Some("burst"), &args))
            .expect("the job runs");
        assert_eq!(out.value, n, "every call must be accepted");
        let val = rt.block_on(raw_job(n, size)).expect("the raw job runs");
        assert_eq!(val, Val::U32(n));

        group.bench_function(format!("airlock_{label}"), |b| {
            b.iter_custom(|iters| {
                let started = Instant::now();
                for _ in 0..iters {
                    let out = rt.block_on(host.run(&tool, Some("burst"), black_box(&args)));
                    black_box(out.expect("the job runs"));
                }
                per_call(started.elapsed(), n)
            })
        });
        group.bench_function(format!("raw_{label}"), |b| {
            b.iter_custom(|iters| {
                let started = Instant::now();
                for _ in 0..iters {
                    black_box(rt.block_on(raw_job(n, size)).expect("the raw job runs"));
                }
                per_call(started.elapsed(), n)
            })
        });
    }
    group.finish();
}

/// The time of `iters` jobs as the time of `iters` calls.
fn per_call(jobs: Duration, calls_per_job: u32) -> Duration {
    jobs / calls_per_job
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = verb_call
}
criterion_main!(benches);
