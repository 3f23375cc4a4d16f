//! Jobs per second on two workers, against the same loop on plain wasmtime
//! and against a loop that spawns a process per job.
//!
//! Run with `cargo bench -p airlock --bench throughput`. Every case runs
//! `iters` trivial jobs split over two workers and reports the wall time per
//! job, so jobs/s = 1 s / the reported time:
//!
//! * `airlock_2w`: `Airlock::run` of `word_count.count` with a 16-byte text,
//!   two tasks on a two-worker multi-thread tokio runtime sharing one host
//!   and one loaded tool (as the MCP server runs calls).
//! * `raw_wasmtime_2w`: the same two tasks doing the raw job of `job.rs`
//!   (store, fuel, epoch deadline, instantiate from an `InstancePre`, call,
//!   drop) on an engine with airlock's configuration.
//! * `process_spawn_2w`: two threads each spawning `/bin/true` and waiting.

mod common;

use std::hint::black_box;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use airlock::{Budget, Capabilities, Grants, HostOptions};
use common::{RawWordCount, TEXT};
use criterion::{Criterion, criterion_group, criterion_main};

/// The workers the target is stated for.
const WORKERS: u64 = 2;

fn multi_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS as usize)
        .enable_all()
        .build()
        .expect("a two-worker tokio runtime")
}

/// Runs `per_worker(n)` on each of the two tasks, `iters` jobs in all.
fn split<F, Fut>(rt: &tokio::runtime::Runtime, iters: u64, per_worker: F) -> Duration
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let started = Instant::now();
    rt.block_on(async {
        let tasks: Vec<_> = (0..WORKERS)
            .map(|w| {
                let n = iters / WORKERS + u64::from(w < iters % WORKERS);
                tokio::spawn(per_worker(n))
            })
            .collect();
        for t in tasks {
            t.await.expect("a worker task");
        }
    });
    started.elapsed()
}

fn job_throughput(c: &mut Criterion) {
    let rt = multi_thread();
    let (host, _cache) = common::host(Capabilities::default(), HostOptions::default());
    let host = Arc::new(host);
    let tool = Arc::new(common::load(
        &host,
        "word_count",
        Grants::default(),
        Budget::default(),
    ));
    let args = Arc::new(serde_json::json!({ "text": TEXT }));

    let raw = Arc::new(RawWordCount::new());

    let mut group = c.benchmark_group("job_throughput");
    group.bench_function("airlock_2w", |b| {
        b.iter_custom(|iters| {
            split(&rt, iters, |n| {
                let (host, tool, args) = (host.clone(), tool.clone(), args.clone());
                async move {
                    for _ in 0..n {
                        let out = host.run(&tool, Some("count"), &args).await;
                        black_box(out.expect("the job runs"));
                    }
                }
            })
        })
    });
    group.bench_function("raw_wasmtime_2w", |b| {
        b.iter_custom(|iters| {
            split(&rt, iters, |n| {
                let raw = raw.clone();
                async move {
                    for _ in 0..n {
                        black_box(raw.job().await.expect("the raw call runs"));
                    }
                }
            })
        })
    });
    let spawn = common::true_binary();
    group.bench_function("process_spawn_2w", |b| {
        b.iter_custom(|iters| {
            let started = Instant::now();
            std::thread::scope(|s| {
                for w in 0..WORKERS {
                    let n = iters / WORKERS + u64::from(w < iters % WORKERS);
                    s.spawn(move || {
                        for _ in 0..n {
                            black_box(Command::new(spawn).status().expect("spawning true"));
                        }
                    });
                }
            });
            started.elapsed()
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = job_throughput
}
criterion_main!(benches);
