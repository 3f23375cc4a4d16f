//! The walls: each budget stops a misbehaving guest with its own typed error,
//! the world check refuses what no grant allows before anything runs, bad
//! components and bad arguments are typed errors, and after every failure the
//! same host still runs a good job correctly.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use airlock::{Budget, BudgetKind, HostOptions, JobError, LoadError};
use airlock_tests::{
    WEBHOOK_KEY, assert_host_still_works, assert_resources_budget, budget, cache_dir, caps,
    guest_bytes, hmac_hex, host, host_with, job_err, load, load_err, load_ok, log_only, no_grants,
    signer_grants,
};
use serde_json::{Value, json};

const MIB: usize = 1 << 20;

fn assert_budget(err: &JobError, expected: BudgetKind) {
    match err {
        JobError::Budget { which, detail } => {
            assert_eq!(*which, expected, "wrong budget kind; detail: {detail}");
            assert!(!detail.is_empty(), "a budget error explains itself");
        }
        other => panic!("expected a {expected} budget error, got {other:?}"),
    }
}

mod cpu {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn spin_runs_out_of_fuel() {
        let host = host(caps());
        let tool = load_ok(&host, "spin", no_grants(), budget(|b| b.fuel = 50_000_000));
        let err = job_err(host.run(&tool, None, &json!({})).await, "spin");
        assert_budget(&err, BudgetKind::Fuel);
        assert!(err.to_string().contains("50000000"), "{err}");
        assert_host_still_works(&host).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn spin_with_endless_fuel_hits_the_deadline_quickly() {
        let host = host(caps());
        let tool = load_ok(
            &host,
            "spin",
            no_grants(),
            budget(|b| {
                b.fuel = 1 << 60;
                b.timeout = Duration::from_millis(300);
            }),
        );
        let started = Instant::now();
        let err = job_err(host.run(&tool, None, &json!({})).await, "spin");
        let elapsed = started.elapsed();
        assert_budget(&err, BudgetKind::Deadline);
        assert!(
            elapsed >= Duration::from_millis(290),
            "stopped too early: {elapsed:?}"
        );
        assert!(
            elapsed < Duration::from_secs(2),
            "stopped too late: {elapsed:?}"
        );
        assert_host_still_works(&host).await;
    }

    /// A spin whose deadline falls between two ticks of a slow ticker ends
    /// at the deadline: the job asks the ticker to wake it there.
    async fn spin_ends_at_its_deadline_with_tick(tick: Duration, timeout: Duration) {
        let host = host_with(
            HostOptions {
                no_cache: false,
                cache_dir: Some(cache_dir().to_path_buf()),
                epoch_tick: Some(tick),
                ..HostOptions::default()
            },
            caps(),
        );
        let tool = load_ok(
            &host,
            "spin",
            no_grants(),
            budget(|b| {
                b.fuel = 1 << 60;
                b.timeout = timeout;
            }),
        );
        let started = Instant::now();
        let err = job_err(host.run(&tool, None, &json!({})).await, "spin");
        let elapsed = started.elapsed();
        assert_budget(&err, BudgetKind::Deadline);
        assert!(elapsed >= timeout, "stopped too early: {elapsed:?}");
        // The next tick after the deadline is a whole tick later.
        let next_tick = tick * (timeout.as_millis() / tick.as_millis() + 1) as u32;
        assert!(
            elapsed < next_tick - tick / 4,
            "waited for the tick at {next_tick:?}: {elapsed:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_deadline_shorter_than_a_tick_is_kept() {
        spin_ends_at_its_deadline_with_tick(Duration::from_secs(8), Duration::from_millis(300))
            .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_deadline_between_two_ticks_is_kept() {
        spin_ends_at_its_deadline_with_tick(Duration::from_secs(2), Duration::from_millis(2500))
            .await;
    }
}

mod memory {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hog_hits_the_memory_limit() {
        let host = host(caps());
        let tool = load_ok(&host, "hog", no_grants(), budget(|b| b.memory = 16 * MIB));
        let err = job_err(
            host.run(&tool, None, &json!({ "chunk-kib": 256 })).await,
            "hog",
        );
        assert_budget(&err, BudgetKind::Memory);
        assert!(err.to_string().contains("16MiB"), "{err}");
        assert_host_still_works(&host).await;
    }
}

mod stack {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn deep_recursion_is_a_stack_overflow_trap() {
        let host = host(caps());
        let tool = load_ok(&host, "deep", no_grants(), Budget::default());
        let err = job_err(host.run(&tool, None, &json!({ "n": 0 })).await, "deep");
        match &err {
            JobError::Trap { code, .. } => assert_eq!(code, "stack overflow", "{err}"),
            other => panic!("expected a stack overflow trap, got {other:?}"),
        }
        assert_host_still_works(&host).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_panic_is_an_unreachable_trap_with_the_panic_message() {
    let host = host(caps());
    let tool = load_ok(&host, "panic", no_grants(), Budget::default());
    let err = job_err(
        host.run(&tool, None, &json!({ "message": "boom" })).await,
        "panic",
    );
    match &err {
        JobError::Trap { code, message } => {
            assert_eq!(code, "unreachable", "{err}");
            assert!(message.contains("deliberate panic: boom"), "{message}");
        }
        other => panic!("expected an unreachable trap, got {other:?}"),
    }
    assert_host_still_works(&host).await;
}

mod output {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn printing_past_the_output_limit_is_an_output_budget_error() {
        let host = host(caps());
        let tool = load_ok(&host, "flood", no_grants(), budget(|b| b.output = MIB));
        let err = job_err(
            host.run(&tool, Some("print"), &json!({ "bytes": 4 * MIB }))
                .await,
            "flood.print 4MiB",
        );
        assert_budget(&err, BudgetKind::Output);
        assert_host_still_works(&host).await;

        // One byte over the limit is over.
        let err = job_err(
            host.run(&tool, Some("print"), &json!({ "bytes": MIB + 1 }))
                .await,
            "flood.print 1MiB+1",
        );
        assert_budget(&err, BudgetKind::Output);

        // Under the limit is fine, and the output is kept.
        let out = host
            .run(&tool, Some("print"), &json!({ "bytes": 1000 }))
            .await
            .expect("a small print fits");
        assert_eq!(out.value, json!(1000));
        assert_eq!(out.stdout, "x".repeat(1000));
        assert_host_still_works(&host).await;
    }

    /// `Budget::output` is "the largest stdout": writing exactly that many bytes
    /// is within budget, just as a result of exactly that size is.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn printing_exactly_the_output_limit_is_allowed() {
        let host = host(caps());
        let tool = load_ok(&host, "flood", no_grants(), budget(|b| b.output = 64 << 10));
        let out = host
            .run(&tool, Some("print"), &json!({ "bytes": 64 << 10 }))
            .await
            .expect("stdout of exactly `output` bytes is within budget");
        assert_eq!(out.stdout.len(), 64 << 10);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_result_past_the_output_limit_is_an_output_budget_error() {
        let host = host(caps());
        let tool = load_ok(&host, "flood", no_grants(), budget(|b| b.output = MIB));
        let err = job_err(
            host.run(&tool, Some("big"), &json!({ "bytes": 2 * MIB }))
                .await,
            "flood.big 2MiB",
        );
        assert_budget(&err, BudgetKind::Output);
        assert_host_still_works(&host).await;

        // The limit applies to the result as JSON: the string plus its two quotes.
        let out = host
            .run(&tool, Some("big"), &json!({ "bytes": MIB - 2 }))
            .await
            .expect("a result of exactly `output` bytes as JSON fits");
        assert_eq!(out.value.as_str().map(str::len), Some(MIB - 2));
        let err = job_err(
            host.run(&tool, Some("big"), &json!({ "bytes": MIB - 1 }))
                .await,
            "flood.big 1MiB-1",
        );
        assert_budget(&err, BudgetKind::Output);
        assert_host_still_works(&host).await;
    }
}

mod filesystem {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn snoop_sees_no_environment_arguments_stdin_or_files() {
        let host = host(caps());
        let tool = load_ok(&host, "snoop", no_grants(), Budget::default());
        let out = host.run(&tool, None, &json!({})).await.expect("snoop runs");
        let report = &out.value;
        let empty = json!([]);
        assert_eq!(report["env"], empty, "{report:#}");
        assert_eq!(report["args"], empty, "{report:#}");
        assert_eq!(report["stdin-bytes"], json!(0), "{report:#}");
        assert_eq!(report["readable"], empty, "{report:#}");
        assert_eq!(report["listable"], empty, "{report:#}");
        let attempts: Vec<&str> = report["attempts"]
            .as_array()
            .expect("attempts is a list")
            .iter()
            .map(|a| a.as_str().expect("attempts are strings"))
            .collect();
        // 8 paths read, 4 listed: see guests/snoop.
        assert_eq!(attempts.len(), 12, "{attempts:#?}");
        for line in &attempts {
            let (what, outcome) = line
                .split_once(": ")
                .unwrap_or_else(|| panic!("attempt line without outcome: {line}"));
            assert!(
                what.starts_with("read ") || what.starts_with("list "),
                "unexpected attempt line: {line}"
            );
            assert!(
                !outcome.starts_with("ok") && !outcome.trim().is_empty(),
                "an attempt succeeded or has no error: {line}"
            );
        }
        assert_eq!(out.stdout, "");
        assert_eq!(out.stderr, "");
        assert_host_still_works(&host).await;
    }
}

mod imports {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_verb_that_is_not_granted_is_refused_at_load() {
        let host = host(caps());
        let err = load_err(&host, "overreach", log_only(), Budget::default());
        match &err {
            LoadError::World { tool, refusals } => {
                assert_eq!(tool, "overreach");
                assert_eq!(refusals.len(), 1, "{err}");
                assert_eq!(refusals[0].import, "airlock:verbs/sign@0.1.0", "{err}");
                assert!(refusals[0].reason.contains("grants.sign"), "{err}");
            }
            other => panic!("expected a world refusal, got {other:?}"),
        }
        let text = err.to_string();
        assert!(
            text.contains("airlock:verbs/sign@0.1.0") && text.contains("grants.sign"),
            "{text}"
        );
        // Refused before it could start: it never logged "about to sign".
        assert!(
            host.audit.records().is_empty(),
            "{:?}",
            host.audit.records()
        );
        assert_host_still_works(&host).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn malformed_components_are_not_components() {
        let host = host(caps());
        // Deterministic noise (xorshift), and noise behind a valid wasm header.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let mut headed = b"\0asm\x0d\0\x01\0".to_vec();
        headed.extend_from_slice(&noise);
        let core_module = b"\0asm\x01\0\0\0".to_vec();
        for (what, bytes) in [
            ("noise", noise),
            ("headed", headed),
            ("core", core_module),
            ("empty", Vec::new()),
        ] {
            match host.load_tool(what, &bytes, no_grants(), Budget::default()) {
                Err(LoadError::NotAComponent { what: w, reason }) => {
                    assert_eq!(w, what);
                    assert!(!reason.is_empty(), "{what}: the reason is given");
                }
                Err(other) => panic!("{what}: expected NotAComponent, got {other:?}"),
                Ok(_) => panic!("{what}: loaded"),
            }
        }
        // An empty file, through the file path.
        let dir = tempfile::tempdir().expect("temp dir");
        let empty = dir.path().join("empty.wasm");
        std::fs::write(&empty, b"").expect("write");
        match host.load_tool_file("empty-file", &empty, no_grants(), Budget::default()) {
            Err(LoadError::NotAComponent { what, .. }) => {
                assert!(
                    what == "empty-file" || what == empty.display().to_string(),
                    "{what}"
                );
            }
            Err(other) => panic!("expected NotAComponent, got {other:?}"),
            Ok(_) => panic!("an empty file loaded"),
        }
        // A missing file is an I/O error naming it.
        let missing = dir.path().join("missing.wasm");
        match host.load_tool_file("missing", &missing, no_grants(), Budget::default()) {
            Err(LoadError::Io { path, .. }) => assert_eq!(path, missing),
            Err(other) => panic!("expected Io, got {other:?}"),
            Ok(_) => panic!("a missing file loaded"),
        }
        assert_host_still_works(&host).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_tool_with_the_verb_granted_runs() {
    let host = host(caps());
    let tool = load_ok(
        &host,
        "overreach",
        signer_grants(&["webhook"]),
        Budget::default(),
    );
    let out = host
        .run(&tool, None, &json!({}))
        .await
        .expect("overreach runs when granted");
    assert_eq!(out.value, json!(hmac_hex(WEBHOOK_KEY, b"x")));
    assert_eq!(out.logs.len(), 1);
    assert_eq!(out.logs[0].message, "about to sign");
}

fn socket_imports_of(host: &airlock::Airlock, name: &str) -> BTreeSet<String> {
    // Listed with wasmtime directly, not through the host's own classification.
    let component = wasmtime::component::Component::new(host.engine(), guest_bytes(name))
        .expect("the guest compiles");
    component
        .component_type()
        .imports(host.engine())
        .map(|(name, _)| name.to_string())
        .filter(|name| name.starts_with("wasi:sockets/"))
        .collect()
}

mod network {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn socket_imports_refuse_every_call_and_nothing_connects() {
        let host = host(caps());
        let sockets = socket_imports_of(&host, "netcat");
        assert!(
            sockets.iter().any(|i| i.starts_with("wasi:sockets/tcp@")),
            "netcat should import tcp: {sockets:?}"
        );
        assert!(
            sockets
                .iter()
                .any(|i| i.starts_with("wasi:sockets/ip-name-lookup@")),
            "netcat should import ip-name-lookup: {sockets:?}"
        );
        // A real listener the guest is told to reach, by address and by name.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback listener");
        listener.set_nonblocking(true).expect("non-blocking");
        let port = listener.local_addr().expect("its address").port();
        for grants in [no_grants(), signer_grants(&["webhook"])] {
            let tool = load(&host, "netcat", grants, Budget::default())
                .expect("socket imports are answered by refusing stubs");
            for addr in [format!("127.0.0.1:{port}"), format!("localhost:{port}")] {
                match host.run(&tool, None, &json!({ "addr": addr })).await {
                    Err(JobError::ToolError(Value::String(e))) => {
                        assert!(e.starts_with(&format!("connect {addr}: ")), "{e}");
                        assert!(e.to_lowercase().contains("permission denied"), "{e}");
                    }
                    other => panic!("connect {addr} must fail inside the tool: {other:?}"),
                }
            }
        }
        match listener.accept() {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            other => panic!("nothing may connect to the listener: {other:?}"),
        }
        assert_host_still_works(&host).await;
    }

    /// A component that asks the socket stubs for a network handle `count`
    /// times: `hold` keeps every handle, `churn` drops each one at once.
    fn network_handle_flood() -> Vec<u8> {
        wat::parse_str(
            r#"(component
  (import "wasi:sockets/network@0.2.6" (instance $net
    (export "network" (type (sub resource)))))
  (alias export $net "network" (type $network))
  (import "wasi:sockets/instance-network@0.2.6" (instance $inet
    (alias outer 1 $network (type $n))
    (export "network" (type $nt (eq $n)))
    (export "instance-network" (func (result (own $nt))))))
  (core func $get (canon lower (func $inet "instance-network")))
  (core func $drop (canon resource.drop $network))
  (core module $m
    (import "" "get" (func $get (result i32)))
    (import "" "drop" (func $drop (param i32)))
    (func $loop (param $n i32) (param $keep i32) (result i32)
      (local $i i32) (local $h i32)
      (block $done
        (loop $next
          (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
          (local.set $h (call $get))
          (if (i32.eqz (local.get $keep)) (then (call $drop (local.get $h))))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br $next)))
      (local.get $i))
    (func (export "hold") (param i32) (result i32) (call $loop (local.get 0) (i32.const 1)))
    (func (export "churn") (param i32) (result i32) (call $loop (local.get 0) (i32.const 0))))
  (core instance $i (instantiate $m
    (with "" (instance (export "get" (func $get)) (export "drop" (func $drop))))))
  (func (export "hold") (param "count" u32) (result u32) (canon lift (core func $i "hold")))
  (func (export "churn") (param "count" u32) (result u32) (canon lift (core func $i "churn"))))"#,
        )
        .expect("valid component text")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_guest_hoarding_stub_handles_hits_the_resources_budget() {
        let host = host(caps());
        let tool = host
            .load_tool(
                "flood",
                &network_handle_flood(),
                no_grants(),
                budget(|b| b.resources = 100),
            )
            .expect("socket imports are answered by stubs");
        // Dropped at once, a million handles are fine: nothing piles up.
        let out = host
            .run(&tool, Some("churn"), &json!({ "count": 1_000_000 }))
            .await
            .expect("churn runs");
        assert_eq!(out.value, json!(1_000_000));
        let out = host
            .run(&tool, Some("hold"), &json!({ "count": 50 }))
            .await
            .expect("50 handles fit in 100");
        assert_eq!(out.value, json!(50));
        let err = job_err(
            host.run(&tool, Some("hold"), &json!({ "count": 101 }))
                .await,
            "one handle over the budget",
        );
        assert_resources_budget(&err, 100);
        assert_host_still_works(&host).await;
    }

    #[test]
    fn network_interfaces_without_a_refusing_stub_are_refused() {
        let item = |name: &str| airlock::world::classify(name, true);
        for name in [
            "wasi:sockets/tcp@0.3.0",
            "wasi:http/incoming-handler@0.2.6",
            "wasi:sockets/raw@0.2.6",
        ] {
            match item(name) {
                airlock::world::ImportKind::Never(why) => {
                    assert!(why.contains("no network of its own"), "{name}: {why}")
                }
                other => panic!("{name} must be refused, got {other:?}"),
            }
        }
        assert_eq!(
            item("wasi:sockets/tcp@0.2.9"),
            airlock::world::ImportKind::NullWasi
        );
    }
}

fn assert_invalid_argument(err: &JobError, param: &str, says: &str) {
    match err {
        JobError::InvalidArguments(arg) => {
            assert_eq!(arg.path, param, "{err}");
            assert!(arg.message.contains(says), "{err}");
            if param != "$" {
                assert!(err.to_string().contains(&format!("`{param}`")), "{err}");
            }
        }
        other => panic!("expected invalid arguments about `{param}`, got {other:?}"),
    }
}

mod input {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bad_arguments_name_the_parameter() {
        let host = host(caps());
        let tool = host.word_count();
        let cases: [(Value, &str, &str); 5] = [
            (json!({}), "text", "missing"),
            (json!(null), "text", "missing"),
            (json!({ "text": 5 }), "text", "string"),
            (
                json!({ "text": "a", "txt": "b" }),
                "txt",
                "unknown argument",
            ),
            (json!(["a"]), "$", "object"),
        ];
        for (args, param, says) in cases {
            let err = job_err(
                host.run(tool, Some("count"), &args).await,
                &args.to_string(),
            );
            assert_invalid_argument(&err, param, says);
            assert_eq!(err.kind(), "invalid-arguments");
        }
        // The unknown-argument message lists what is accepted.
        let err = job_err(
            host.run(tool, Some("count"), &json!({ "text": "a", "txt": "b" }))
                .await,
            "unknown arg",
        );
        assert!(err.to_string().contains("text"), "{err}");
        assert_host_still_works(&host).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unknown_function_is_no_such_function() {
        let host = host(caps());
        let tool = host.word_count();
        let err = job_err(host.run(tool, Some("nope"), &json!({})).await, "nope");
        match &err {
            JobError::NoSuchFunction(msg) => {
                assert!(msg.contains("`nope`") && msg.contains("count"), "{msg}");
            }
            other => panic!("expected NoSuchFunction, got {other:?}"),
        }
        // With several exports, naming none is the same error.
        let flood = load_ok(&host, "flood", no_grants(), Budget::default());
        let err = job_err(
            host.run(&flood, None, &json!({})).await,
            "flood without a name",
        );
        match &err {
            JobError::NoSuchFunction(msg) => {
                assert!(msg.contains("print") && msg.contains("big"), "{msg}");
            }
            other => panic!("expected NoSuchFunction, got {other:?}"),
        }
        // The only export is used when none is named.
        let out = host
            .run(tool, None, &json!({ "text": "one two" }))
            .await
            .expect("the only export");
        assert_eq!(
            out.value,
            json!({"words": 2, "lines": 1, "chars": 7, "bytes": 7})
        );
        assert_host_still_works(&host).await;
    }
}

mod hostcall_data {
    use super::*;

    /// An 8 MiB result is more than the 4 MiB the guest may copy to the host in
    /// one call: wasmtime's hostcall fuel stops the lift before the output check.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_result_past_the_hostcall_limit_is_a_hostcall_data_error() {
        let host = host(caps());
        let tool = load_ok(&host, "flood", no_grants(), budget(|b| b.output = MIB));
        assert_eq!(tool.budget().hostcall_bytes, 4 * MIB);
        let err = job_err(
            host.run(&tool, Some("big"), &json!({ "bytes": 8 * MIB }))
                .await,
            "flood.big 8MiB",
        );
        assert_budget(&err, BudgetKind::HostcallData);
        assert_host_still_works(&host).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_giant_message_to_a_verb_is_a_clean_error_not_a_host_allocation() {
        let host = host(caps());
        let signer = load_ok(
            &host,
            "sign-webhook",
            signer_grants(&["webhook"]),
            Budget::default(),
        );

        // Over the grant's 1 MiB message cap but under the hostcall limit: the
        // verb refuses it as `invalid`, which the tool reports as its own error.
        let body = "m".repeat(3 * MIB);
        match host
            .run(&signer, Some("sign"), &json!({ "body": body }))
            .await
        {
            Err(JobError::ToolError(Value::String(e))) => {
                assert!(
                    e.starts_with("sign refused an invalid request: ")
                        && e.contains("at most 1048576"),
                    "{e}"
                )
            }
            other => panic!("expected the tool's own error, got {other:?}"),
        }

        // Over the 4 MiB the guest may copy to the host in one call: the copy is
        // refused before the host allocates it, and the job ends with that budget.
        let body = "m".repeat(8 * MIB);
        let err = job_err(
            host.run(&signer, Some("sign"), &json!({ "body": body }))
                .await,
            "an 8 MiB message to the sign verb",
        );
        assert_budget(&err, BudgetKind::HostcallData);
        assert_host_still_works(&host).await;
    }

    /// Bytes going in count against the same budget: a `list<u8>` argument,
    /// base64 text or an array, past it is refused before the job starts,
    /// and base64 by its length alone, before any of it is decoded.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn base64_bytes_past_the_hostcall_limit_are_refused_before_decoding() {
        use base64::Engine as _;
        use base64::engine::general_purpose::STANDARD;

        let host = host(caps());
        let tool = load_ok(
            &host,
            "bench_pure",
            no_grants(),
            budget(|b| b.hostcall_bytes = MIB),
        );
        let (host, tool) = (&host, &tool);
        let take = |b: Value| async move {
            let args = json!({ "b": b });
            host.run(tool, Some("take-bytes"), &args).await
        };

        // Exactly the budget goes through, in either form.
        let out = take(json!(STANDARD.encode(vec![7u8; MIB])))
            .await
            .expect("1 MiB of base64 is within the budget");
        assert_eq!(out.value, json!(MIB));

        // One byte more is the hostcall-data budget, naming the argument.
        let err = job_err(
            take(json!(STANDARD.encode(vec![7u8; MIB + 1]))).await,
            "1 MiB + 1 byte of base64",
        );
        assert_budget(&err, BudgetKind::HostcallData);
        let text = err.to_string();
        assert!(
            text.contains("argument `b`") && text.contains("1MiB"),
            "{text}"
        );
        let err = job_err(
            take(Value::Array(vec![json!(7); MIB + 1])).await,
            "an array of 1 MiB + 1 numbers",
        );
        assert_budget(&err, BudgetKind::HostcallData);

        // 64 MiB of text that is not base64 at all: its length says 48 MiB,
        // so it is refused as the budget. Had it been decoded, the `!` at
        // offset 0 would have made it invalid arguments instead.
        let err = job_err(take(json!("!".repeat(64 * MIB))).await, "64 MiB of `!`");
        assert_budget(&err, BudgetKind::HostcallData);
        assert!(err.to_string().contains("to 48MiB"), "{err}");

        // Malformed text within the budget is invalid arguments naming `b`.
        for bad in ["aGk", "aG-k", "aGk=\n", "aG k"] {
            match take(json!(bad)).await {
                Err(JobError::InvalidArguments(e)) => {
                    assert_eq!(e.path, "b", "{bad:?}");
                    assert!(e.message.starts_with("invalid base64"), "{bad:?}: {e}");
                }
                other => panic!("{bad:?}: expected invalid arguments, got {other:?}"),
            }
        }
        assert_host_still_works(host).await;
    }
}
