//! Jobs per second on 1, 2 and all cores' worth of workers, against the same
//! loop on plain wasmtime with the same engine configuration, and against a
//! loop that spawns a process per job.
//!
//! Run with `cargo bench -p airlock --bench throughput`. Every case runs
//! `iters` trivial jobs split over N workers and reports the wall time per
//! job, so jobs/s = 1 s / the reported time. N is 1, 2 and
//! `std::thread::available_parallelism()` (its row only when that is more
//! than 2), so the airlock/raw ratio and the scaling from 1 to N workers are
//! read off one run:
//!
//! * `airlock_{N}w`: `Airlock::run` of `word_count.count` with a 16-byte
//!   text, N tasks on an N-worker multi-thread tokio runtime sharing one host
//!   and one loaded tool (as the MCP server's job executor runs calls).
//! * `raw_wasmtime_{N}w`: the same N tasks doing the raw job of `job.rs`
//!   (store, fuel, epoch deadline, instantiate from an `InstancePre`, call,
//!   drop) on an engine built by the same `build_engine`, so every pooling
//!   setting (keep-resident sizes, decommit batching) is the same on both
//!   sides.
//! * `process_spawn_2w`: two threads each spawning `/bin/true` and waiting.

mod common;

use std::hint::black_box;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use airlock::{Budget, Capabilities, Grants, HostOptions};
use common::{RawWordCount, TEXT};
use criterion::{Criterion, criterion_group, criterion_main};

/// The worker counts measured: 1, 2, and every core when there are more.
fn worker_counts() -> Vec<u64> {
    let all = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
    let mut counts = vec![1, 2];
    if all > 2 {
        counts.push(all);
    }
    counts
}

fn multi_thread(workers: u64) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers as usize)
        .enable_all()
        .build()
        .expect("a multi-thread tokio runtime")
}

/// Runs `per_worker(n)` on each of `workers` tasks, `iters` jobs in all.
fn split<F, Fut>(rt: &tokio::runtime::Runtime, workers: u64, iters: u64, per_worker: F) -> Duration
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let started = Instant::now();
    rt.block_on(async {
        let tasks: Vec<_> = (0..workers)
            .map(|w| {
                let n = iters / workers + u64::from(w < iters % workers);
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
    for workers in worker_counts() {
        let rt = multi_thread(workers);
        group.bench_function(format!("airlock_{workers}w"), |b| {
            b.iter_custom(|iters| {
                split(&rt, workers, iters, |n| {
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
        group.bench_function(format!("raw_wasmtime_{workers}w"), |b| {
            b.iter_custom(|iters| {
                split(&rt, workers, iters, |n| {
                    let raw = raw.clone();
                    async move {
                        for _ in 0..n {
                            black_box(raw.job().await.expect("the raw call runs"));
                        }
                    }
                })
            })
        });
    }
    let spawn = common::true_binary();
    group.bench_function("process_spawn_2w", |b| {
        b.iter_custom(|iters| {
            let started = Instant::now();
            std::thread::scope(|s| {
                for w in 0..2 {
                    let n = iters / 2 + u64::from(w < iters % 2);
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
