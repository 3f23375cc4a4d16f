//! Residue between jobs: with the pooling allocator a job's memory slot is
//! reused by later jobs. One job fills 8 MiB with a canary; later jobs grow
//! their memory past that size (so they map the same pages again) and scan
//! every page for it: they must find nothing. A positive control in one job
//! proves the scan finds the canary when it is there. Decommits are batched
//! (`engine::DECOMMIT_BATCH`): a slot goes back to the pool only when its
//! batch is flushed. On a one-job pool (one fiber stack) the next job cannot
//! start until the filler's batch is flushed, so the filler's slots come back
//! at once and are the ones reused.

use airlock::engine::PoolSize;
use airlock::{Budget, HostOptions};
use airlock_tests::{caps, host, host_with, load_ok, no_grants};
use serde_json::{Value, json};

/// 24 bytes no program writes by accident, and their XOR-masked form (the
/// scanning guest receives only the masked form, so it cannot find its own argument).
fn canary() -> (Vec<u8>, Vec<u8>, u8) {
    let canary: Vec<u8> = b"airlock-residue-canary-7".to_vec();
    let mask = 0xA5;
    let masked = canary.iter().map(|b| b ^ mask).collect();
    (canary, masked, mask)
}

fn count(v: &Value) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("expected a count, got {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_pool_slot_holds_nothing_from_the_job_before() {
    let host = host(caps());
    let tool = load_ok(&host, "residue", no_grants(), Budget::default());
    let (canary, masked, mask) = canary();

    let control = host
        .run(
            &tool,
            Some("fill-then-scan"),
            &json!({ "canary": canary, "masked": masked, "mask": mask }),
        )
        .await
        .expect("positive control");
    let found = count(&control.value);
    assert!(
        found >= (1 << 20) / canary.len() as u64,
        "the scan must find the canary it just wrote (found {found})"
    );

    for round in 0..3 {
        let filled = host
            .run(&tool, Some("fill"), &json!({ "canary": canary, "mib": 8 }))
            .await
            .expect("fill");
        assert_eq!(count(&filled.value), 8 << 20);
        for _ in 0..2 {
            let scanned = host
                .run(
                    &tool,
                    Some("scan"),
                    &json!({ "masked": masked, "mask": mask, "grow-mib": 12 }),
                )
                .await
                .expect("scan");
            assert_eq!(
                count(&scanned.value),
                0,
                "round {round}: a later job saw the canary an earlier job left in its memory"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_job_pool_reuses_the_same_slot_and_it_holds_nothing() {
    let host = host_with(
        HostOptions {
            pool: PoolSize {
                max_jobs: 1,
                ..PoolSize::default()
            },
            cache_dir: Some(airlock_tests::cache_dir().to_path_buf()),
            ..HostOptions::default()
        },
        caps(),
    );
    let tool = load_ok(&host, "residue", no_grants(), Budget::default());
    let (canary, masked, mask) = canary();
    for round in 0..3 {
        let filled = host
            .run(&tool, Some("fill"), &json!({ "canary": canary, "mib": 8 }))
            .await
            .expect("fill");
        assert_eq!(count(&filled.value), 8 << 20);
        let scanned = host
            .run(
                &tool,
                Some("scan"),
                &json!({ "masked": masked, "mask": mask, "grow-mib": 12 }),
            )
            .await
            .expect("scan");
        assert_eq!(
            count(&scanned.value),
            0,
            "round {round}: the job after the filler, in its slot, saw the canary"
        );
    }
}
