//! A mixed workload for the concurrency and soak tests: good `word-count`
//! jobs, each with a text of its own, and adversarial jobs (fuel, deadline,
//! memory, panic), each of which must end with exactly its own typed error.

use std::time::Duration;

use airlock::{Budget, BudgetKind, JobError, Tool};
use serde_json::json;

use crate::{
    TestHost, budget, expected_counts, guest_bytes, load_ok, no_grants, with_custom_section,
};

/// What one job runs and what it must end with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `word-count` on [`text_for`]: must return the exact counts.
    Count,
    /// `spin` on little fuel: the fuel budget.
    SpinFuel,
    /// `spin` on endless fuel and a short timeout: the deadline budget.
    SpinDeadline,
    /// `hog`: the memory budget.
    Hog,
    /// `panic`: an `unreachable` trap carrying its own message.
    Panic,
}

impl Kind {
    /// Job `i` of a mix where every `bad_every`-th job is adversarial (the
    /// adversaries take turns).
    pub fn of(i: usize, bad_every: usize) -> Kind {
        if !i.is_multiple_of(bad_every) {
            return Kind::Count;
        }
        match (i / bad_every) % 4 {
            0 => Kind::SpinFuel,
            1 => Kind::SpinDeadline,
            2 => Kind::Hog,
            _ => Kind::Panic,
        }
    }
}

/// The adversarial tools, loaded once per host.
pub struct Tools {
    spin_fuel: Tool,
    spin_deadline: Tool,
    hog: Tool,
    panic: Tool,
}

impl Tools {
    /// Loads the adversaries (and the host's `word-count`) into `host`.
    pub fn load(host: &TestHost) -> Tools {
        host.word_count();
        Tools {
            spin_fuel: load_ok(host, "spin", no_grants(), budget(|b| b.fuel = 20_000_000)),
            // A byte-different copy of spin: one component loaded twice in
            // one host trips a host bug (see `cache::one_component_loaded_twice_in_one_host_runs_both_times`).
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
            hog: load_ok(host, "hog", no_grants(), budget(|b| b.memory = 16 << 20)),
            panic: load_ok(host, "panic", no_grants(), Budget::default()),
        }
    }
}

/// A text no other job counts, with counts that differ from job to job.
pub fn text_for(i: usize) -> String {
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

/// Runs job `i` of kind `kind`; `Err` says how it went wrong.
pub async fn one(host: &TestHost, tools: &Tools, i: usize, kind: Kind) -> Result<(), String> {
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
        Kind::SpinFuel => host.run(&tools.spin_fuel, None, &json!({})).await,
        Kind::SpinDeadline => host.run(&tools.spin_deadline, None, &json!({})).await,
        Kind::Hog => {
            host.run(&tools.hog, None, &json!({ "chunk-kib": 512 }))
                .await
        }
        Kind::Panic => {
            let message = format!("job {i}.");
            host.run(&tools.panic, None, &json!({ "message": message }))
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
