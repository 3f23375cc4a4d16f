//! The `kv` verb through a real guest (`kv-probe`) in the real host: values
//! round-trip, every call is audited without keys or values, 50 concurrent
//! jobs lose no write, and (`kv_scope`) no guest reaches another namespace,
//! writes under a read-only grant or writes past a quota.

use std::sync::Arc;

use airlock::{Budget, Capabilities, LoadError, Tool};
use airlock_kv::{KvCapability, StoreSpec};
use airlock_tests::pg::Postgres;
use airlock_tests::{TestHost, grants, guest, host, load_err, verb_error};
use secrecy::SecretString;
use serde_json::{Value, json};

/// A host with one SQLite kv store, `main`, in a fresh directory.
fn kv_host() -> (TestHost, tempfile::TempDir) {
    kv_host_on(None)
}

/// A host whose kv store `main` is the PostgreSQL server `pg`, or an
/// SQLite file in a fresh directory.
fn kv_host_on(pg: Option<&Postgres>) -> (TestHost, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let spec = match pg {
        Some(_) => StoreSpec::Postgres { url: "pg".into() },
        None => StoreSpec::Sqlite {
            path: "kv.db".into(),
        },
    };
    let specs = [("main".to_string(), spec)].into_iter().collect();
    let kv = KvCapability::open(&specs, dir.path(), |_| match pg {
        Some(pg) => Ok(SecretString::from(pg.url())),
        None => Err("no secrets here".into()),
    })
    .expect("the store opens");
    let caps = Capabilities {
        kv,
        ..Capabilities::default()
    };
    (host(caps), dir)
}

/// The probe loaded as tool `name` (its default namespace) with `kv`.
fn probe(host: &TestHost, name: &str, kv: Value) -> Tool {
    host.airlock
        .load_tool_file(
            name,
            &guest("kv-probe"),
            grants(json!({ "kv": kv, "log": {} })),
            Budget::default(),
        )
        .unwrap_or_else(|e| panic!("kv-probe should load as {name}: {e}"))
}

/// Runs `ops` in one job and returns each result.
async fn run(host: &TestHost, tool: &Tool, ops: Value) -> Vec<Value> {
    let out = host
        .airlock
        .run(tool, Some("run"), &json!({ "ops": ops }))
        .await
        .expect("the probe runs");
    out.value.as_array().expect("a list of results").clone()
}

fn set(key: &str, value: &str) -> Value {
    json!({ "set": { "key": key, "value": value } })
}

fn get(key: &str) -> Value {
    json!({ "get": key })
}

/// The verb error of one result: (case, text).
fn err(result: &Value) -> (String, String) {
    verb_error(
        result
            .get("err")
            .unwrap_or_else(|| panic!("{result} is not an error")),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_round_trip_and_every_call_is_audited_without_key_or_value() {
    let (host, _dir) = kv_host();
    let tool = probe(&host, "notes", json!({ "store": "main" }));
    let out = run(
        &host,
        &tool,
        json!([
            set("alice@example.com", "SECRET-VALUE-1"),
            get("alice@example.com"),
            { "scan": { "prefix": "alice", "cursor": null, "limit": 0 } },
            { "delete": "alice@example.com" },
            get("alice@example.com"),
        ]),
    )
    .await;
    assert_eq!(
        out,
        [
            json!({ "ok": "done" }),
            json!({ "ok": { "value": "SECRET-VALUE-1" } }),
            json!({ "ok": { "page": { "keys": ["alice@example.com"], "next": null } } }),
            json!({ "ok": { "deleted": true } }),
            json!({ "ok": { "value": null } }),
        ]
    );
    let records: Vec<_> = host
        .audit
        .records()
        .into_iter()
        .filter(|r| r.verb == "kv")
        .collect();
    let ops: Vec<&str> = records.iter().map(|r| r.op).collect();
    assert_eq!(ops, ["set", "get", "list", "delete", "get"]);
    assert!(records.iter().all(|r| r.tool == "notes"));
    let trail = format!("{records:?}");
    assert!(trail.contains("ns=notes"), "{trail}");
    assert!(!trail.contains("alice"), "{trail}");
    assert!(!trail.contains("SECRET-VALUE"), "{trail}");
}

/// 50 jobs at once, each writing its own ten keys through the guest: every
/// key is there afterwards with its value, and the namespace holds exactly
/// those 500 keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_jobs_lose_no_write() {
    fifty_jobs(kv_host()).await;
}

/// The same 50 jobs on a PostgreSQL store.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_jobs_lose_no_write_on_postgres() {
    let Some(pg) = Postgres::start("kv::fifty_concurrent_jobs_lose_no_write_on_postgres") else {
        return;
    };
    fifty_jobs(kv_host_on(Some(&pg))).await;
}

async fn fifty_jobs((host, _dir): (TestHost, tempfile::TempDir)) {
    let host = Arc::new(host);
    let tool = Arc::new(probe(&host, "counter", json!({ "store": "main" })));
    let mut jobs = Vec::new();
    for job in 0..50 {
        let (host, tool) = (host.clone(), tool.clone());
        jobs.push(tokio::spawn(async move {
            let ops: Vec<Value> = (0..10)
                .map(|i| set(&format!("job{job:02}/{i}"), &format!("{job}-{i}")))
                .collect();
            run(&host, &tool, json!(ops)).await
        }));
    }
    for j in jobs {
        let out = j.await.expect("the job task");
        assert!(out.iter().all(|r| *r == json!({ "ok": "done" })), "{out:?}");
    }
    let gets: Vec<Value> = (0..50)
        .flat_map(|job| (0..10).map(move |i| get(&format!("job{job:02}/{i}"))))
        .collect();
    let out = run(&host, &tool, json!(gets)).await;
    for (n, r) in out.iter().enumerate() {
        let (job, i) = (n / 10, n % 10);
        assert_eq!(*r, json!({ "ok": { "value": format!("{job}-{i}") } }));
    }
    let page = run(
        &host,
        &tool,
        json!([{ "scan": { "prefix": "", "cursor": null, "limit": 1000 } }]),
    )
    .await;
    let keys = page[0]["ok"]["page"]["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 500);
}

mod kv_scope {
    use super::*;

    /// The probe, as tool `attacker`, tries every escape it knows against the
    /// key `secret` of tool `victim` on the same store: it reads, lists and
    /// deletes nothing of it, and the victim still reads its value.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_probe_reaches_nothing_of_another_namespace() {
        escapes(kv_host()).await;
    }

    /// The same escapes against a PostgreSQL store.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_probe_reaches_nothing_of_another_namespace_on_postgres() {
        let test = "kv::kv_scope::the_probe_reaches_nothing_of_another_namespace_on_postgres";
        let Some(pg) = Postgres::start(test) else {
            return;
        };
        escapes(kv_host_on(Some(&pg))).await;
    }

    async fn escapes((host, _dir): (TestHost, tempfile::TempDir)) {
        let victim = probe(&host, "victim", json!({ "store": "main" }));
        let out = run(
            &host,
            &victim,
            json!([set("secret", "VICTIM-DATA"), set("x%y", "VICTIM-2")]),
        )
        .await;
        assert!(out.iter().all(|r| *r == json!({ "ok": "done" })), "{out:?}");

        let attacker = probe(&host, "attacker", json!({ "store": "main" }));
        // Its own keys, as a control: the probe's calls do reach the store.
        let out = run(
            &host,
            &attacker,
            json!([set("secret", "ATTACKER-OWN"), set("keep", "k")]),
        )
        .await;
        assert!(out.iter().all(|r| *r == json!({ "ok": "done" })), "{out:?}");
        let seen = host
            .airlock
            .run(
                &attacker,
                Some("escape"),
                &json!({ "target": "victim", "key": "secret" }),
            )
            .await
            .expect("the escape runs")
            .value;
        assert_eq!(
            seen,
            json!([
                "get \"secret\" = ATTACKER-OWN",
                "list \"\" -> keep",
                "list cursor \" \" -> keep",
            ]),
            "the attacker saw only its own namespace"
        );

        let out = run(&host, &victim, json!([get("secret"), get("x%y")])).await;
        assert_eq!(
            out,
            [
                json!({ "ok": { "value": "VICTIM-DATA" } }),
                json!({ "ok": { "value": "VICTIM-2" } }),
            ]
        );
        // NUL and oversized keys were refused as invalid, not looked up.
        let out = run(
            &host,
            &attacker,
            json!([get("victim\u{0}secret"), get(&"../".repeat(200))]),
        )
        .await;
        for r in &out {
            assert_eq!(err(r).0, "invalid", "{r}");
        }
        let trail = format!("{:?}", host.audit.records());
        assert!(!trail.contains("VICTIM"), "{trail}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_read_only_grant_is_denied_set_and_delete() {
        let (host, _dir) = kv_host();
        let writer = probe(&host, "shared", json!({ "store": "main" }));
        run(&host, &writer, json!([set("k", "v")])).await;
        let reader = probe(
            &host,
            "shared",
            json!({ "store": "main", "read_only": true }),
        );
        let out = run(
            &host,
            &reader,
            json!([get("k"), set("k", "changed"), { "delete": "k" }, get("k")]),
        )
        .await;
        assert_eq!(out[0], json!({ "ok": { "value": "v" } }));
        for r in &out[1..3] {
            let (case, text) = err(r);
            assert_eq!(case, "denied", "{r}");
            assert!(text.contains("read-only"), "{text}");
        }
        assert_eq!(out[3], json!({ "ok": { "value": "v" } }));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_past_a_quota_are_exhausted_and_write_nothing() {
        let (host, _dir) = kv_host();
        let tool = probe(
            &host,
            "small",
            json!({ "store": "main", "max_keys": 2, "max_value_bytes": 4, "max_calls": 5 }),
        );
        let out = run(
            &host,
            &tool,
            json!([
                // Refused before the store: not one of the 5 calls.
                set("a", "12345"),
                set("a", "1234"),
                set("b", "1"),
                set("c", "1"),
                get("c"),
                get("a"),
                get("a"),
            ]),
        )
        .await;
        assert_eq!(err(&out[0]), ("exhausted".into(), "kv-value-bytes".into()));
        assert_eq!(out[1], json!({ "ok": "done" }));
        assert_eq!(out[2], json!({ "ok": "done" }));
        assert_eq!(err(&out[3]), ("exhausted".into(), "kv-keys".into()));
        assert_eq!(out[4], json!({ "ok": { "value": null } }));
        assert_eq!(out[5], json!({ "ok": { "value": "1234" } }));
        assert_eq!(err(&out[6]), ("exhausted".into(), "kv-calls".into()));
    }

    /// Without a kv grant the probe does not load: the verb does not exist
    /// for the tool. A grant naming a store the host lacks is refused too.
    #[test]
    fn no_grant_no_verb_and_no_unknown_store() {
        let (host, _dir) = kv_host();
        let only_log = grants(json!({ "log": {} }));
        let e = load_err(&host.airlock, "kv-probe", only_log, Budget::default());
        assert!(matches!(e, LoadError::World { .. }), "{e:?}");
        assert!(e.to_string().contains("kv"), "{e}");
        let e = host
            .airlock
            .load_tool_file(
                "p",
                &guest("kv-probe"),
                grants(json!({ "kv": { "store": "elsewhere" }, "log": {} })),
                Budget::default(),
            )
            .map(|_| ())
            .unwrap_err();
        assert!(e.to_string().contains("[kv.elsewhere]"), "{e}");
    }
}
