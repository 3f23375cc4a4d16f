//! The job pool, the handle table and the hostcall limit under pressure: more
//! jobs than slots, tools that use every core instance a job may have, a tool
//! past that limit, a guest that grabs host resource handles without end, and
//! a 1 GiB message to a verb. Each ends with an
//! exact typed error or every job done, and the host serves the next job.

use std::sync::Arc;
use std::time::{Duration, Instant};

use airlock::engine::{CORE_INSTANCES_PER_JOB, PoolSize};
use airlock::{Budget, BudgetKind, HostOptions, JobError, LoadError};
use airlock_tests::{
    TestHost, assert_host_still_works, assert_resources_budget, budget, cache_dir, caps,
    expected_counts, host, host_with, job_err, load_ok, no_grants,
};
use serde_json::json;

/// A host with only `max_jobs` job slots.
fn small_host(max_jobs: u32) -> TestHost {
    host_with(
        HostOptions {
            pool: PoolSize {
                max_jobs,
                ..PoolSize::default()
            },
            cache_dir: Some(cache_dir().to_path_buf()),
            ..HostOptions::default()
        },
        caps(),
    )
}

/// A component of `instances` core instances (one module instantiated that
/// many times), exporting `run: func() -> u32` from the last one.
fn instance_heavy(instances: u32) -> Vec<u8> {
    let mut wat = String::from(
        "(component\n  (core module $m (func (export \"f\") (result i32) i32.const 7))\n",
    );
    for i in 0..instances {
        wat.push_str(&format!("  (core instance $i{i} (instantiate $m))\n"));
    }
    let last = instances - 1;
    wat.push_str(&format!(
        "  (func (export \"run\") (result u32) (canon lift (core func $i{last} \"f\")))\n)"
    ));
    wat::parse_str(&wat).expect("valid component text")
}

mod pool {
    use super::*;

    /// A host with `max_jobs` slots of which `max_running` may run.
    fn dense_host(max_jobs: u32, max_running: u32) -> TestHost {
        host_with(
            HostOptions {
                pool: PoolSize {
                    max_jobs,
                    max_running: Some(max_running),
                    ..PoolSize::default()
                },
                cache_dir: Some(cache_dir().to_path_buf()),
                ..HostOptions::default()
            },
            caps(),
        )
    }

    /// Fiber stacks the host's pool has handed out right now.
    fn stacks(host: &TestHost) -> usize {
        host.engine()
            .pooling_allocator_metrics()
            .expect("the pooling allocator")
            .stacks()
    }

    /// A component whose core module has a start function: instantiating it
    /// runs guest code on a fiber, whose stack the store keeps.
    fn with_start_function() -> Vec<u8> {
        wat::parse_str(
            r#"(component
  (core module $m
    (global $g (mut i32) (i32.const 0))
    (func $start (global.set $g (i32.const 7)))
    (start $start)
    (func (export "f") (result i32) global.get $g))
  (core instance $i (instantiate $m))
  (func (export "run") (result u32) (canon lift (core func $i "f"))))"#,
        )
        .expect("valid component text")
    }

    // An attacker here is a tool author whose instances must not take the
    // stacks that running jobs were promised: a pool with one running slot
    // keeps seven idle instances of a plain tool alive (they hold no stack),
    // still runs a job, and refuses a second running job as busy; a tool
    // whose instantiation keeps a stack takes that running slot itself.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn idle_instances_take_no_running_job_s_stack() {
        let host = Arc::new(dense_host(8, 1));
        let quick = load_ok(
            &host,
            "word-count",
            no_grants(),
            budget(|b| b.timeout = Duration::from_millis(200)),
        );
        let mut idle = Vec::new();
        for _ in 0..6 {
            idle.push(host.idle(&quick).await.expect("an idle instance"));
        }
        assert_eq!(
            stacks(&host),
            0,
            "an idle word_count instance holds a stack"
        );
        let out = host
            .run(&quick, None, &json!({ "text": "a b" }))
            .await
            .expect("a job runs beside six idle instances");
        assert_eq!(out.value, expected_counts("a b"));

        // One running job holds the one running slot: the next is busy.
        let spin = Arc::new(load_ok(
            &host,
            "spin",
            no_grants(),
            budget(|b| {
                b.fuel = 1 << 60;
                b.timeout = Duration::from_millis(800);
            }),
        ));
        let spinner = {
            let (host, spin) = (host.clone(), spin.clone());
            tokio::spawn(async move { host.run(&spin, None, &json!({})).await })
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
        let err = job_err(
            host.run(&quick, None, &json!({ "text": "a b" })).await,
            "a second running job",
        );
        assert!(matches!(err, JobError::Busy { slots: 1, .. }), "{err:?}");
        let err = job_err(spinner.await.expect("the task ends"), "spin");
        assert_eq!(err.kind(), "budget", "{err:?}");

        // A tool that keeps a stack when instantiated takes the running slot.
        let started = host
            .load_tool(
                "started",
                &with_start_function(),
                no_grants(),
                Budget::default(),
            )
            .expect("a component with a start function loads");
        let holder = host
            .idle(&started)
            .await
            .expect("an idle instance that keeps a stack");
        assert_eq!(stacks(&host), 1);
        let err = match host.idle(&started).await {
            Ok(_) => panic!("a second stack-keeping instance took a stack past max_running"),
            Err(e) => e,
        };
        assert!(
            err.to_string().contains("raise the pool's max_running"),
            "{err}"
        );
        let err = job_err(
            host.run(&quick, None, &json!({ "text": "a b" })).await,
            "a job while an idle instance holds the running slot",
        );
        assert!(matches!(err, JobError::Busy { .. }), "{err:?}");
        drop(holder);
        let out = host
            .run(&started, None, &json!({}))
            .await
            .expect("the start function ran and the job runs");
        assert_eq!(out.value, json!(7));
        drop(idle);
        assert_eq!(host.jobs_running(), 0);
    }

    // Three workers: two run the spinning guests, the third keeps tokio's
    // timers turning (a worker busy with guests checks timers only now and
    // then, so a waiting job may hear "busy" late, never early).
    #[tokio::test(flavor = "multi_thread", worker_threads = 3)]
    async fn a_job_that_finds_every_slot_taken_is_busy_and_the_next_job_runs() {
        let host = Arc::new(small_host(2));
        let spin = Arc::new(load_ok(
            &host,
            "spin",
            no_grants(),
            budget(|b| {
                b.fuel = 1 << 60;
                b.timeout = Duration::from_millis(1500);
            }),
        ));
        let spinners: Vec<_> = (0..2)
            .map(|_| {
                let (host, spin) = (host.clone(), spin.clone());
                tokio::spawn(async move { host.run(&spin, None, &json!({})).await })
            })
            .collect();
        // Let both spinners take their slots.
        tokio::time::sleep(Duration::from_millis(300)).await;

        let quick = load_ok(
            &host,
            "word-count",
            no_grants(),
            budget(|b| b.timeout = Duration::from_millis(200)),
        );
        let started = Instant::now();
        let err = job_err(
            host.run(&quick, None, &json!({ "text": "a b" })).await,
            "a job with no free slot",
        );
        let waited = started.elapsed();
        match &err {
            JobError::Busy { slots, waited } => {
                assert_eq!(*slots, 2);
                assert_eq!(*waited, Duration::from_millis(200));
            }
            other => panic!("expected busy, got {other:?}"),
        }
        assert_eq!(err.kind(), "busy");
        assert!(
            err.to_string().contains("raise the host's `max_jobs`"),
            "{err}"
        );
        assert!(waited < Duration::from_millis(1000), "it waited {waited:?}");

        for spinner in spinners {
            let err = job_err(spinner.await.expect("the task ends"), "spin");
            assert!(
                matches!(
                    err,
                    JobError::Budget {
                        which: BudgetKind::Deadline,
                        ..
                    }
                ),
                "{err:?}"
            );
        }
        let out = host
            .run(&quick, None, &json!({ "text": "a b" }))
            .await
            .expect("the next job runs once slots are free");
        assert_eq!(out.value, expected_counts("a b"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tools_using_every_core_instance_a_job_may_have_never_exhaust_the_pool() {
        let host = Arc::new(small_host(2));
        let heavy = Arc::new(
            host.load_tool(
                "heavy",
                &instance_heavy(CORE_INSTANCES_PER_JOB),
                no_grants(),
                Budget::default(),
            )
            .expect("a component at the per-job limit loads"),
        );
        // Four times the slots, all at once: every admitted job must find its
        // core instances in the pool.
        let jobs: Vec<_> = (0..8)
            .map(|_| {
                let (host, heavy) = (host.clone(), heavy.clone());
                tokio::spawn(async move { host.run(&heavy, None, &json!({})).await })
            })
            .collect();
        for job in jobs {
            let out = job.await.expect("the task ends").expect("the job runs");
            assert_eq!(out.value, json!(7));
        }
    }

    // The same for idle instances that keep a stack (their start function
    // ran on it): made and dropped over and over on two threads at once,
    // each finds a stack although the other thread may be flushing the
    // stacks it just gave back.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn idle_instances_made_on_every_core_at_once_never_exhaust_the_pool() {
        let host = Arc::new(small_host(2));
        let started = Arc::new(
            host.load_tool(
                "started",
                &with_start_function(),
                no_grants(),
                Budget::default(),
            )
            .expect("a component with a start function loads"),
        );
        let makers: Vec<_> = (0..2)
            .map(|_| {
                let (host, started) = (host.clone(), started.clone());
                tokio::spawn(async move {
                    for round in 0..500 {
                        if let Err(e) = host.idle(&started).await {
                            panic!("idle instance {round} was refused: {e}");
                        }
                    }
                })
            })
            .collect();
        for maker in makers {
            maker.await.expect("every idle instance is made");
        }
        assert_eq!(host.jobs_running(), 0);
    }

    #[tokio::test]
    async fn a_tool_over_the_per_job_instance_limit_is_refused_at_load() {
        let host = host(caps());
        let err = host
            .load_tool(
                "greedy",
                &instance_heavy(CORE_INSTANCES_PER_JOB + 1),
                no_grants(),
                Budget::default(),
            )
            .err()
            .expect("one core instance over the limit is refused");
        match &err {
            LoadError::OverLimits { what, reason } => {
                assert_eq!(what, "greedy");
                let over = CORE_INSTANCES_PER_JOB + 1;
                assert!(
                    reason.contains(&format!("{over} core module instances"))
                        && reason.contains(&format!("maximum of {CORE_INSTANCES_PER_JOB}")),
                    "{reason}"
                );
            }
            other => panic!("expected over-limits, got {other:?}"),
        }
        assert!(err.to_string().contains("split the tool"), "{err}");
        assert_host_still_works(&host).await;
    }

    #[tokio::test]
    async fn the_per_job_instance_limit_is_a_host_setting() {
        let host = host_with(
            HostOptions {
                pool: PoolSize {
                    max_jobs: 2,
                    core_instances_per_job: 6,
                    ..PoolSize::default()
                },
                cache_dir: Some(cache_dir().to_path_buf()),
                ..HostOptions::default()
            },
            caps(),
        );
        let at = host
            .load_tool("at", &instance_heavy(6), no_grants(), Budget::default())
            .expect("a component at the host's limit loads");
        assert_eq!(
            host.run(&at, None, &json!({}))
                .await
                .expect("it runs")
                .value,
            json!(7)
        );
        match host.load_tool("over", &instance_heavy(7), no_grants(), Budget::default()) {
            Err(LoadError::OverLimits { reason, .. }) => {
                assert!(reason.contains("maximum of 6"), "{reason}")
            }
            other => panic!("expected over-limits, got {:?}", other.err()),
        }
    }
}

mod tables {
    use super::*;

    #[tokio::test]
    async fn a_guest_holding_handles_without_end_hits_the_resources_budget() {
        let host = host(caps());
        let flood = load_ok(&host, "flood", no_grants(), budget(|b| b.resources = 100));
        let out = host
            .run(&flood, Some("handles"), &json!({ "count": 50 }))
            .await
            .expect("50 handles fit in 100");
        assert_eq!(out.value, json!(50));

        let err = job_err(
            host.run(&flood, Some("handles"), &json!({ "count": 1_000_000 }))
                .await,
            "a million handles",
        );
        assert_resources_budget(&err, 100);
        assert_host_still_works(&host).await;
    }
}

mod hostcall_data {
    use super::*;
    use airlock::{Capabilities, Grants};
    use airlock_complete::{CompleteCapability, CompleteGrant, ProviderConfig, ProviderKind};
    use airlock_fetch::FetchGrant;
    use serde_json::Value;

    #[tokio::test]
    async fn a_one_gib_message_to_a_verb_ends_at_the_hostcall_limit_before_any_copy() {
        // Room for a 1 GiB guest buffer: a pool slot and a budget of 1.5 GiB.
        let host = host_with(
            HostOptions {
                pool: PoolSize {
                    max_jobs: 2,
                    max_memory_bytes: 3 << 29,
                    ..PoolSize::default()
                },
                cache_dir: Some(cache_dir().to_path_buf()),
                ..HostOptions::default()
            },
            caps(),
        );
        let tool = load_ok(
            &host,
            "key-user",
            airlock_tests::signer_grants(&["webhook"]),
            budget(|b| b.memory = 3 << 29),
        );
        let out = host
            .run(
                &tool,
                Some("hmac-zeros"),
                &json!({ "key": "webhook", "mib": 1 }),
            )
            .await
            .expect("one MiB is signed");
        let mac: Vec<u8> = serde_json::from_value(out.value).expect("a list of bytes");
        assert_eq!(
            hex::encode(mac),
            airlock_tests::hmac_hex(airlock_tests::WEBHOOK_KEY, &vec![0u8; 1 << 20])
        );

        let err = job_err(
            host.run(
                &tool,
                Some("hmac-zeros"),
                &json!({ "key": "webhook", "mib": 1024 }),
            )
            .await,
            "a 1 GiB message to the sign verb",
        );
        match &err {
            JobError::Budget {
                which: BudgetKind::HostcallData,
                detail,
            } => assert!(detail.contains("more than 4MiB"), "{detail}"),
            other => panic!("expected the hostcall-data budget, got {other:?}"),
        }
        assert_host_still_works(&host).await;
    }

    /// 8 MiB: twice what a job may hand the host in one call.
    const GIANT: usize = 8 << 20;

    /// `grants` as given plus `log`.
    fn with_log(mut grants: Grants) -> Grants {
        grants.log = airlock_tests::grants(json!({ "log": {} })).log;
        grants
    }

    #[tokio::test]
    async fn a_giant_string_to_each_verb_ends_at_the_hostcall_limit() {
        let provider = ProviderConfig::new(ProviderKind::OpenAi, "http://127.0.0.1:9/v1");
        let host = host(Capabilities {
            complete: CompleteCapability::new(vec![("local".into(), provider)])
                .expect("a valid provider"),
            ..caps()
        });
        let giant = "g".repeat(GIANT);
        let mut fetch = no_grants();
        fetch.fetch = Some(Arc::new(FetchGrant {
            allow: vec!["http://allowed.test/".into()],
            ..FetchGrant::default()
        }));
        let mut complete = no_grants();
        complete.complete = Some(Arc::new(CompleteGrant::new("local", ["m"])));
        let cases: [(&str, &str, Grants, &str, Value); 4] = [
            (
                "sign",
                "key-user",
                airlock_tests::signer_grants(&["webhook"]),
                "exercise",
                json!({ "hmac-key": giant, "ed-key": "e", "data": [] }),
            ),
            (
                "log",
                "key-user",
                airlock_tests::signer_grants(&["webhook"]),
                "note",
                json!({ "message": giant }),
            ),
            (
                "fetch",
                "http-probe",
                with_log(fetch),
                "send",
                json!({ "req": { "method": "GET", "url": format!("http://allowed.test/{giant}"),
                                 "headers": [], "body": null } }),
            ),
            (
                "complete",
                "chat-probe",
                with_log(complete),
                "chat",
                json!({ "messages": [{ "role": "user", "content": giant }],
                        "options": { "stop": [] } }),
            ),
        ];
        for (verb, guest, grants, function, args) in cases {
            let tool = load_ok(&host, guest, grants, Budget::default());
            let err = job_err(
                host.run(&tool, Some(function), &args).await,
                &format!("an 8 MiB string to {verb}"),
            );
            match &err {
                JobError::Budget {
                    which: BudgetKind::HostcallData,
                    ..
                } => {}
                other => panic!("{verb}: expected the hostcall-data budget, got {other:?}"),
            }
        }
        assert_host_still_works(&host).await;
    }
}
