//! Many jobs at once on one host: good ones get exactly their own results,
//! bad ones exactly their own typed errors, and the host keeps working.

use std::sync::Arc;
use std::time::{Duration, Instant};

use airlock::{Budget, BudgetKind, JobError, Tool};
use airlock_tests::{
    TestHost, assert_host_still_works, budget, caps, expected_counts, guest_bytes, host, load_ok,
    no_grants, with_custom_section,
};
use serde_json::json;
use tokio::task::JoinSet;

const JOBS: usize = 200;

/// What one job runs and what it must end with.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Count,
    SpinFuel,
    SpinDeadline,
    Hog,
    Panic,
}

impl Kind {
    fn of(i: usize) -> Kind {
        match i % 8 {
            0..=3 => Kind::Count,
            4 => Kind::SpinFuel,
            5 => Kind::SpinDeadline,
            6 => Kind::Hog,
            _ => Kind::Panic,
        }
    }
}

struct Tools {
    spin_fuel: Tool,
    spin_deadline: Tool,
    hog: Tool,
    panic: Tool,
}

/// A text no other job counts, with counts that differ from job to job.
fn text_for(i: usize) -> String {
    let mut t = format!("job {i} says");
    for w in 0..(i % 13) {
        t.push_str(if w % 3 == 0 { "\n" } else { " " });
        t.push_str(&"wörd".repeat(1 + w % 4));
    }
    if i.is_multiple_of(2) {
        t.push('\n');
    }
    t
}

async fn one(host: &TestHost, tools: &Tools, i: usize) -> Result<(), String> {
    let kind = Kind::of(i);
    let result = match kind {
        Kind::Count => {
            let text = text_for(i);
            let out = host
                .run(host.word_count(), None, &json!({ "text": text }))
                .await
                .map_err(|e| format!("job {i} ({kind:?}) failed: {e}"))?;
            let expected = expected_counts(&text);
            return if out.value == expected {
                Ok(())
            } else {
                Err(format!(
                    "job {i}: counted {} for {text:?}, expected {expected}",
                    out.value
                ))
            };
        }
        Kind::SpinFuel | Kind::SpinDeadline => {
            let tool = match kind {
                Kind::SpinFuel => &tools.spin_fuel,
                _ => &tools.spin_deadline,
            };
            host.run(tool, None, &json!({})).await
        }
        Kind::Hog => {
            host.run(&tools.hog, None, &json!({ "chunk-kib": 512 }))
                .await
        }
        Kind::Panic => {
            host.run(
                &tools.panic,
                None,
                &json!({ "message": format!("job {i}.") }),
            )
            .await
        }
    };
    let err = match result {
        Ok(out) => return Err(format!("job {i} ({kind:?}) succeeded with {}", out.value)),
        Err(e) => e,
    };
    let ok = match (kind, &err) {
        (Kind::SpinFuel, JobError::Budget { which, .. }) => *which == BudgetKind::Fuel,
        (Kind::SpinDeadline, JobError::Budget { which, .. }) => *which == BudgetKind::Deadline,
        (Kind::Hog, JobError::Budget { which, .. }) => *which == BudgetKind::Memory,
        (Kind::Panic, JobError::Trap { code, message }) => {
            // Its own panic message, not a neighbour's.
            code == "unreachable" && message.contains(&format!("deliberate panic: job {i}."))
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "job {i} ({kind:?}) ended with the wrong error: {err:?}"
        ))
    }
}

mod pool {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_hundred_mixed_jobs_each_get_their_own_outcome() {
        let host = Arc::new(host(caps()));
        let tools = Arc::new(Tools {
            spin_fuel: load_ok(&host, "spin", no_grants(), budget(|b| b.fuel = 20_000_000)),
            // A byte-different copy of spin: one component loaded twice in one
            // host trips a host bug (see `cache::one_component_loaded_twice_in_one_host_runs_both_times`).
            spin_deadline: host
                .load_tool(
                    "spin-deadline",
                    &with_custom_section(&guest_bytes("spin"), "airlock-test", b"deadline"),
                    no_grants(),
                    budget(|b| {
                        b.fuel = 1 << 60;
                        b.timeout = Duration::from_millis(200);
                    }),
                )
                .unwrap_or_else(|e| panic!("spin with a custom section loads: {e}")),
            hog: load_ok(&host, "hog", no_grants(), budget(|b| b.memory = 16 << 20)),
            panic: load_ok(&host, "panic", no_grants(), Budget::default()),
        });

        host.word_count(); // loaded before the jobs share it
        let started = Instant::now();
        let mut jobs = JoinSet::new();
        for i in 0..JOBS {
            let host = host.clone();
            let tools = tools.clone();
            jobs.spawn(async move { one(&host, &tools, i).await });
        }
        let mut failures = Vec::new();
        let mut done = 0;
        while let Some(joined) = jobs.join_next().await {
            done += 1;
            match joined {
                Ok(Ok(())) => {}
                Ok(Err(failure)) => failures.push(failure),
                Err(e) => failures.push(format!("a job task panicked: {e}")),
            }
        }
        let elapsed = started.elapsed();
        eprintln!("{JOBS} mixed jobs took {elapsed:?}");
        assert_eq!(done, JOBS);
        assert!(
            failures.is_empty(),
            "{} of {JOBS} jobs went wrong:\n{}",
            failures.len(),
            failures.join("\n")
        );

        // The host still serves, and keeps numbering jobs.
        assert_host_still_works(&host).await;
        let again = host
            .run(host.word_count(), None, &json!({ "text": text_for(7) }))
            .await
            .expect("a good job after the storm");
        assert_eq!(again.value, expected_counts(&text_for(7)));
        assert!(
            again.job > JOBS as u64,
            "job numbers keep counting: {}",
            again.job
        );
    }
}
