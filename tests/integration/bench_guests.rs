//! The benchmark guests compute what the benches assume they compute, and
//! `Airlock::idle` (what the density bench holds) takes and frees job slots.

use airlock::engine::PoolSize;
use airlock::{Budget, HostOptions, JobError};
use airlock_tests::{caps, host, host_with, load_ok, log_only, no_grants};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_pure_takes_payloads_and_loops() {
    let host = host(caps());
    let tool = load_ok(&host, "bench-pure", no_grants(), Budget::default());
    let run = |f: &'static str, args: serde_json::Value| {
        let (host, tool) = (&host, &tool);
        async move { host.run(tool, Some(f), &args).await.expect(f).value }
    };
    assert_eq!(run("take-string", json!({ "s": "héllo" })).await, 6);
    assert_eq!(run("take-bytes", json!({ "b": [1, 2, 3] })).await, 3);
    // The same checksums as the guest's loops, computed here.
    let mut spin = 0u64;
    let mut chain = 0u64;
    for i in 0..10u64 {
        spin = spin.wrapping_mul(31).wrapping_add(i);
        chain = chain.rotate_left(5) ^ i;
    }
    assert_eq!(run("spin-for", json!({ "n": 10 })).await, spin);
    assert_eq!(run("call-chain", json!({ "n": 10 })).await, chain);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_log_emits_n_lines_of_size_bytes() {
    let host = host(caps());
    let tool = load_ok(&host, "bench-log", log_only(), Budget::default());
    let out = host
        .run(&tool, Some("burst"), &json!({ "n": 3, "size": 5 }))
        .await
        .expect("burst runs");
    assert_eq!(out.value, 3);
    let messages: Vec<&str> = out.logs.iter().map(|l| l.message.as_str()).collect();
    assert_eq!(messages, ["xxxxx"; 3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_bulky_is_five_megabytes_of_its_generated_data() {
    let bytes = airlock_tests::guest_bytes("bench-bulky");
    assert!(bytes.len() > 5 << 20, "{} bytes", bytes.len());
    let host = host(caps());
    let tool = load_ok(&host, "bench-bulky", no_grants(), Budget::default());
    // The first xorshift word of the guest's build.rs, little-endian.
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    for (i, expected) in state.to_le_bytes().into_iter().enumerate() {
        let out = host
            .run(&tool, Some("byte-at"), &json!({ "index": i }))
            .await
            .expect("byte-at runs");
        assert_eq!(out.value, expected, "byte {i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_instances_hold_a_slot_until_dropped() {
    let host = host_with(
        HostOptions {
            pool: PoolSize {
                max_jobs: 2,
                ..PoolSize::default()
            },
            cache_dir: Some(airlock_tests::cache_dir().to_path_buf()),
            ..HostOptions::default()
        },
        caps(),
    );
    let tool = host.word_count();
    let first = host.idle(tool).await.expect("a first idle instance");
    let second = host.idle(tool).await.expect("a second idle instance");
    match host.idle(tool).await {
        Err(JobError::Internal(m)) => assert!(m.contains("every job slot is taken"), "{m}"),
        Err(e) => panic!("a third instance must find no slot, got {e}"),
        Ok(_) => panic!("a third instance must find no slot"),
    }
    drop(first);
    let third = host.idle(tool).await.expect("a freed slot is reused");
    drop((second, third));
    let out = host
        .run(tool, Some("count"), &json!({ "text": "a b" }))
        .await
        .expect("jobs still run");
    assert_eq!(out.value["words"], 2);
}
