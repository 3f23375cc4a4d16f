//! What making guest code interruptible costs, and how fast a deadline kills.
//!
//! Run with `cargo bench -p airlock --bench interrupt`.
//!
//! Group `interrupt` — the same guest code on four engines that differ only
//! in instrumentation (plain wasmtime, synchronous calls, default allocator),
//! each calling one instance of `bench_pure` again and again:
//!
//! * `spin_<mode>`: `spin-for(1_000_000)`, a tight loop with no calls.
//! * `calls_<mode>`: `call-chain(1_000_000)`, a loop calling a function that
//!   is never inlined (checks sit in loop headers and function entries).
//!
//! `<mode>` is `none` (the baseline), `epoch` (epoch interruption, the
//! deadline never reached), `fuel` (fuel metering, never exhausted) or
//! `fuel_epoch` (both, as airlock's engine runs).
//!
//! * `deadline_kill`: the time from a job's deadline to the moment
//!   `Airlock::run` returns the deadline error, for the `spin` guest (which
//!   never returns) with a 20 ms timeout, started at a random phase of the
//!   epoch tick. Each sample is one job. The epoch ticker advances every
//!   10 ms, and a job less than a tick from its deadline asks the ticker to
//!   advance it at the deadline too, so the kill does not wait for the next
//!   tick; the target is one tick + 2 ms at p99.

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use airlock::{Budget, BudgetKind, Capabilities, Grants, HostOptions, JobError};
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, SamplingMode, criterion_group, criterion_main};
use wasmtime::component::{Component, Linker, TypedFunc};
use wasmtime::{Config, Engine, Store};

/// Loop iterations per call.
const N: u64 = 1_000_000;

/// The deadline of each `deadline_kill` job.
const TIMEOUT: Duration = Duration::from_millis(20);

/// One instrumented engine with a live `bench_pure` instance.
struct Loops {
    store: Store<()>,
    spin: TypedFunc<(u64,), (u64,)>,
    calls: TypedFunc<(u64,), (u64,)>,
    fuel: bool,
}

fn loops(fuel: bool, epoch: bool) -> wasmtime::Result<Loops> {
    let mut config = Config::new();
    config.consume_fuel(fuel).epoch_interruption(epoch);
    let engine = Engine::new(&config)?;
    let component = Component::from_file(&engine, common::guest("bench_pure"))?;
    let mut store = Store::new(&engine, ());
    if fuel {
        store.set_fuel(u64::MAX)?;
    }
    if epoch {
        store.set_epoch_deadline(u64::MAX / 2);
    }
    let instance = Linker::new(&engine).instantiate(&mut store, &component)?;
    let spin = instance.get_typed_func(&mut store, "spin-for")?;
    let calls = instance.get_typed_func(&mut store, "call-chain")?;
    Ok(Loops {
        store,
        spin,
        calls,
        fuel,
    })
}

impl Loops {
    fn call(&mut self, f: TypedFunc<(u64,), (u64,)>) -> u64 {
        if self.fuel {
            self.store.set_fuel(u64::MAX).expect("fuel is on");
        }
        f.call(&mut self.store, (black_box(N),))
            .expect("the loop runs")
            .0
    }
}

fn instrumentation(c: &mut Criterion) {
    let mut group = c.benchmark_group("interrupt");
    for (mode, fuel, epoch) in [
        ("none", false, false),
        ("epoch", false, true),
        ("fuel", true, false),
        ("fuel_epoch", true, true),
    ] {
        let mut l = loops(fuel, epoch).expect("bench_pure instantiates");
        let (spin, calls) = (l.spin, l.calls);
        group.bench_function(format!("spin_{mode}"), |b| {
            b.iter(|| black_box(l.call(spin)))
        });
        group.bench_function(format!("calls_{mode}"), |b| {
            b.iter(|| black_box(l.call(calls)))
        });
    }
    deadline_kill(&mut group);
    group.finish();
}

fn deadline_kill(group: &mut BenchmarkGroup<'_, WallTime>) {
    let rt = common::runtime();
    let (host, _cache) = common::host(Capabilities::default(), HostOptions::default());
    let budget = Budget {
        timeout: TIMEOUT,
        ..Budget::default()
    };
    let tool = common::load(&host, "spin", Grants::default(), budget);
    let args = serde_json::json!({});
    let kill = || {
        // Start at a random phase of the epoch tick, as real jobs do.
        std::thread::sleep(Duration::from_micros(rand::random::<u64>() % 10_000));
        let started = Instant::now();
        let out = rt.block_on(host.run(&tool, Some("run"), &args));
        let late = started.elapsed().saturating_sub(TIMEOUT);
        match out {
            Err(JobError::Budget {
                which: BudgetKind::Deadline,
                ..
            }) => late,
            other => panic!("spin must end at its deadline, got {other:?}"),
        }
    };
    kill();

    // One job per sample: criterion sizes samples by the returned latency,
    // so a short measurement time keeps it at one job (~30 ms) each.
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(if common::quick() { 20 } else { 50 })
        .warm_up_time(Duration::from_millis(10))
        .measurement_time(Duration::from_millis(50));
    group.bench_function("deadline_kill", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| kill()).sum())
    });
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = instrumentation
}
criterion_main!(benches);
