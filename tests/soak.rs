//! The soak: 2,000 jobs on two workers, one in ten adversarial (fuel,
//! deadline, memory, panic), after a warm-up. Every good job must return its
//! exact result, every bad one its exact typed error, and the process's
//! resident memory must come back within 10% of where it stood after the
//! warm-up. A test binary of its own, so no other test shares the process
//! whose memory it measures.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use airlock_tests::mixed::{Kind, Tools, one};
use airlock_tests::{TestHost, caps, host};

/// Jobs in the measured run.
const JOBS: usize = 2_000;
/// Jobs before the baseline is taken: every kind of job has run by then.
const WARM_UP: usize = 200;
/// Concurrent job loops.
const WORKERS: usize = 2;
/// One job in this many is adversarial.
const BAD_EVERY: usize = 10;

/// The process's resident set, in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmRSS line");
    kib * 1024
}

/// Runs jobs `first..first + count` on [`WORKERS`] loops; returns the failures.
async fn run(host: &Arc<TestHost>, tools: &Arc<Tools>, first: usize, count: usize) -> Vec<String> {
    let next = Arc::new(AtomicUsize::new(first));
    let end = first + count;
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let (host, tools, next) = (host.clone(), tools.clone(), next.clone());
            tokio::spawn(async move {
                let mut failures = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= end {
                        return failures;
                    }
                    if let Err(f) = one(&host, &tools, i, Kind::of(i, BAD_EVERY)).await {
                        failures.push(f);
                    }
                }
            })
        })
        .collect();
    let mut failures = Vec::new();
    for worker in workers {
        failures.extend(worker.await.expect("a worker panicked"));
    }
    failures
}

mod pool {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_thousand_jobs_one_in_ten_adversarial_all_right_and_memory_returns() {
        let host = Arc::new(host(caps()));
        let tools = Arc::new(Tools::load(&host));

        let failures = run(&host, &tools, 0, WARM_UP).await;
        assert!(failures.is_empty(), "warm-up:\n{}", failures.join("\n"));
        let baseline = rss();

        let started = Instant::now();
        let failures = run(&host, &tools, WARM_UP, JOBS).await;
        let elapsed = started.elapsed();
        let after = rss();
        let bad = (WARM_UP..WARM_UP + JOBS)
            .filter(|&i| Kind::of(i, BAD_EVERY) != Kind::Count)
            .count();
        eprintln!(
            "soak: {JOBS} jobs ({bad} adversarial) on {WORKERS} workers in {elapsed:?} \
             ({:.0} jobs/s); RSS {:.1} MiB after warm-up, {:.1} MiB after the soak ({:+.1}%)",
            JOBS as f64 / elapsed.as_secs_f64(),
            baseline as f64 / 1048576.0,
            after as f64 / 1048576.0,
            (after as f64 / baseline as f64 - 1.0) * 100.0
        );
        assert_eq!(bad, JOBS / BAD_EVERY);
        assert!(
            failures.is_empty(),
            "{} of {JOBS} jobs went wrong:\n{}",
            failures.len(),
            failures.join("\n")
        );
        assert!(
            after * 10 <= baseline * 11,
            "resident memory grew from {baseline} to {after} bytes over the soak"
        );
    }
}
