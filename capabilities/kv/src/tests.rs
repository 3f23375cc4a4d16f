//! Wasm-free tests of the kv verb: call the `Host` methods on a `KvState`
//! over a real SQLite file in a temp directory.

use super::*;
use airlock_core::{MemoryAudit, WitError};
use kv::Host as _;
use std::time::Duration;

struct Fixture {
    _dir: tempfile::TempDir,
    cap: KvCapability,
    audit: Arc<MemoryAudit>,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let specs: BTreeMap<String, StoreSpec> = toml::from_str(
        r#"
        main = { kind = "sqlite", path = "kv.db" }
        other = { kind = "sqlite", path = "other.db" }
        "#,
    )
    .unwrap();
    let cap = KvCapability::open(&specs, dir.path()).unwrap();
    Fixture {
        _dir: dir,
        cap,
        audit: Arc::new(MemoryAudit::default()),
    }
}

impl Fixture {
    fn state(&self, tool: &str, grant: KvGrant) -> KvState {
        self.cap.check_grant(&grant).unwrap();
        let job = Job::new(
            7,
            tool.into(),
            Instant::now() + Duration::from_secs(10),
            self.audit.clone(),
        );
        self.cap.state(Arc::new(grant), job)
    }
}

fn grant(toml_text: &str) -> KvGrant {
    toml::from_str(toml_text).unwrap_or_else(|e| panic!("{toml_text}: {e}"))
}

fn assert_exhausted(e: WitError, which: &str) {
    assert!(matches!(&e, WitError::Exhausted(w) if w == which), "{e:?}");
}

fn guest_err<T: std::fmt::Debug>(r: Result<T, VerbError>) -> WitError {
    match r {
        Err(VerbError::Guest(e)) => e,
        other => panic!("expected a guest error, got {other:?}"),
    }
}

#[tokio::test]
async fn set_get_delete_round_trip_bytes() {
    let f = fixture();
    let mut s = f.state("t", grant(r#"store = "main""#));
    assert_eq!(
        s.namespace(),
        "t",
        "the namespace defaults to the tool's name"
    );
    assert_eq!(s.get("a".into()).await.unwrap(), None);
    s.set("a".into(), vec![0, 1, 255]).await.unwrap();
    assert_eq!(s.get("a".into()).await.unwrap(), Some(vec![0, 1, 255]));
    s.set("a".into(), b"second".to_vec()).await.unwrap();
    assert_eq!(s.get("a".into()).await.unwrap(), Some(b"second".to_vec()));
    assert!(s.delete("a".into()).await.unwrap());
    assert!(!s.delete("a".into()).await.unwrap());
    assert_eq!(s.get("a".into()).await.unwrap(), None);
    // Survives the state: a later job of the same tool reads it back.
    s.set("kept".into(), b"v".to_vec()).await.unwrap();
    let mut later = f.state("t", grant(r#"store = "main""#));
    assert_eq!(later.get("kept".into()).await.unwrap(), Some(b"v".to_vec()));
}

#[tokio::test]
async fn audit_names_op_namespace_and_key_hash_never_key_or_value() {
    let f = fixture();
    let mut s = f.state("t", grant(r#"store = "main""#));
    s.set("alice@example.com".into(), b"SECRET-VALUE".to_vec())
        .await
        .unwrap();
    let _ = s.get("alice@example.com".into()).await.unwrap();
    let records = f.audit.records();
    assert_eq!(records.len(), 2);
    assert_eq!((records[0].verb, records[0].op), ("kv", "set"));
    assert_eq!(records[1].op, "get");
    let detail = records[0].detail.clone().unwrap();
    assert!(
        detail.starts_with("store=main ns=t key_len=17 key_sha256="),
        "{detail}"
    );
    assert!(detail.ends_with("value_len=12"), "{detail}");
    let all = format!("{records:?}");
    assert!(!all.contains("alice"), "{all}");
    assert!(!all.contains("SECRET-VALUE"), "{all}");
}

mod kv_scope {
    use super::*;

    /// Two tools on one store: whatever key, prefix or cursor one names,
    /// it never reads, lists, overwrites or deletes the other's keys.
    #[tokio::test]
    async fn no_key_prefix_or_cursor_reaches_another_namespace() {
        let f = fixture();
        let mut victim = f.state("victim", grant(r#"store = "main""#));
        victim
            .set("secret".into(), b"v-data".to_vec())
            .await
            .unwrap();
        victim.set("x%y".into(), b"v2".to_vec()).await.unwrap();
        let mut attacker = f.state("attacker", grant(r#"store = "main""#));
        for key in [
            "../victim/secret",
            "victim/secret",
            "victim:secret",
            "/victim/secret",
            "%",
            "_ecret",
            "secret' OR '1'='1",
            "secret\"; --",
        ] {
            assert_eq!(attacker.get(key.into()).await.unwrap(), None, "{key}");
            assert!(!attacker.delete(key.into()).await.unwrap(), "{key}");
        }
        // Same key name, own namespace: a separate value.
        assert_eq!(attacker.get("secret".into()).await.unwrap(), None);
        attacker
            .set("secret".into(), b"mine".to_vec())
            .await
            .unwrap();
        assert_eq!(
            victim.get("secret".into()).await.unwrap(),
            Some(b"v-data".to_vec())
        );
        // LIKE wildcards in a prefix are text, not patterns.
        for prefix in ["%", "_", "%%", "x_", "\\", "*", ""] {
            let page = attacker.list(prefix.into(), None, 0).await.unwrap();
            assert!(
                page.keys.iter().all(|k| k == "secret"),
                "{prefix:?} -> {:?}",
                page.keys
            );
        }
        assert_eq!(
            attacker.list("%".into(), None, 0).await.unwrap().keys,
            Vec::<String>::new()
        );
        assert_eq!(
            victim.list("x%".into(), None, 0).await.unwrap().keys,
            ["x%y"]
        );
        assert_eq!(
            victim.list("x_".into(), None, 0).await.unwrap().keys,
            Vec::<String>::new()
        );
        // A cursor below everything lists only its own namespace.
        let page = attacker
            .list(String::new(), Some(" ".into()), 0)
            .await
            .unwrap();
        assert_eq!(page.keys, ["secret"]);
        // A grant naming the victim's namespace is the only way in: the
        // operator's choice, visible in the toolkit.
        let mut shared = f.state(
            "attacker",
            grant("store = \"main\"\nnamespace = \"victim\""),
        );
        assert_eq!(
            shared.get("secret".into()).await.unwrap(),
            Some(b"v-data".to_vec())
        );
    }

    #[tokio::test]
    async fn nul_control_and_oversized_keys_are_invalid() {
        let f = fixture();
        let mut s = f.state("t", grant(r#"store = "main""#));
        let long = "k".repeat(MAX_KEY_BYTES + 1);
        for key in [
            "",
            "a\0b",
            "\0",
            "line\nbreak",
            "tab\t",
            "\u{7f}",
            "\u{85}",
            long.as_str(),
        ] {
            let e = guest_err(s.set(key.into(), b"v".to_vec()).await);
            assert!(matches!(e, WitError::Invalid(_)), "{key:?}: {e:?}");
            let e = guest_err(s.get(key.into()).await);
            assert!(matches!(e, WitError::Invalid(_)), "{key:?}: {e:?}");
        }
        let e = guest_err(s.list("a\0".into(), None, 1).await);
        assert!(matches!(e, WitError::Invalid(_)), "{e:?}");
        let e = guest_err(s.list(String::new(), Some("\0".into()), 1).await);
        assert!(matches!(e, WitError::Invalid(_)), "{e:?}");
        // The longest allowed key works, and nothing was written before.
        let max = "k".repeat(MAX_KEY_BYTES);
        s.set(max.clone(), b"v".to_vec()).await.unwrap();
        assert_eq!(s.list(String::new(), None, 0).await.unwrap().keys, [max]);
    }

    #[tokio::test]
    async fn a_read_only_grant_is_denied_every_write() {
        let f = fixture();
        let mut w = f.state("t", grant(r#"store = "main""#));
        w.set("a".into(), b"1".to_vec()).await.unwrap();
        let mut r = f.state("t", grant("store = \"main\"\nread_only = true"));
        assert_eq!(r.get("a".into()).await.unwrap(), Some(b"1".to_vec()));
        let e = guest_err(r.set("a".into(), b"2".to_vec()).await);
        assert!(
            matches!(&e, WitError::Denied(m) if m.contains("read-only")),
            "{e:?}"
        );
        let e = guest_err(r.delete("a".into()).await);
        assert!(
            matches!(&e, WitError::Denied(m) if m.contains("read-only")),
            "{e:?}"
        );
        assert_eq!(r.get("a".into()).await.unwrap(), Some(b"1".to_vec()));
        let last = f.audit.records().pop().unwrap();
        assert!(matches!(&last.decision, Decision::Allow));
        let denied = &f.audit.records()[3];
        assert!(matches!(&denied.decision, Decision::Deny(m) if m.starts_with("denied:")));
    }

    #[tokio::test]
    async fn an_ungranted_state_denies_everything() {
        let f = fixture();
        let job = Job::new(
            1,
            "t".into(),
            Instant::now() + Duration::from_secs(5),
            f.audit.clone(),
        );
        let mut s = f.cap.state(Arc::new(KvGrant::default()), job);
        let e = guest_err(s.get("a".into()).await);
        assert!(matches!(e, WitError::Denied(_)), "{e:?}");
        let e = guest_err(s.list(String::new(), None, 0).await);
        assert!(matches!(e, WitError::Denied(_)), "{e:?}");
    }

    #[tokio::test]
    async fn quotas_refuse_the_write_that_would_pass_them_and_write_nothing() {
        let f = fixture();
        let g = grant(
            "store = \"main\"\nmax_keys = 2\nmax_value_bytes = 8\nmax_total_bytes = 20\nmax_calls = 8",
        );
        let mut s = f.state("t", g.clone());
        let e = guest_err(s.set("big".into(), vec![0; 9]).await);
        assert_exhausted(e, "kv-value-bytes");
        s.set("a".into(), vec![1; 8]).await.unwrap(); // 9 bytes
        s.set("b".into(), vec![2; 8]).await.unwrap(); // 18 bytes
        let e = guest_err(s.set("c".into(), vec![3]).await);
        assert_exhausted(e, "kv-keys");
        assert_eq!(s.get("c".into()).await.unwrap(), None);
        s.delete("b".into()).await.unwrap(); // 9 bytes, 1 key
        let e = guest_err(s.set("long-key".into(), vec![3; 8]).await); // 9 + 16 > 20
        assert_exhausted(e, "kv-total-bytes");
        s.set("c".into(), vec![3; 8]).await.unwrap(); // 18
        // Overwriting with a value of the same size stays within the total.
        s.set("c".into(), vec![4; 8]).await.unwrap();
        // Eight calls reached the store (the oversized value never did): the ninth is refused.
        let e = guest_err(s.get("a".into()).await);
        assert_exhausted(e, "kv-calls");
        // The quotas are the namespace's: a new job sees the same usage.
        let mut next = f.state("t", g);
        let e = guest_err(next.set("d".into(), vec![0]).await);
        assert_exhausted(e, "kv-keys");
    }

    #[tokio::test]
    async fn list_pages_through_every_key_once_in_order() {
        let f = fixture();
        let mut s = f.state("t", grant(r#"store = "main""#));
        let mut want = Vec::new();
        for i in 0..25 {
            let key = format!("item/{i:02}");
            s.set(key.clone(), vec![i]).await.unwrap();
            want.push(key);
        }
        s.set("other".into(), vec![]).await.unwrap();
        s.set("item".into(), vec![]).await.unwrap();
        let mut got = Vec::new();
        let mut cursor = None;
        let mut pages = 0;
        loop {
            let page = s.list("item/".into(), cursor, 10).await.unwrap();
            pages += 1;
            assert!(page.keys.len() <= 10);
            got.extend(page.keys);
            match page.next {
                Some(n) => cursor = Some(n),
                None => break,
            }
        }
        assert_eq!(pages, 3);
        assert_eq!(got, want);
        let all = s.list(String::new(), None, MAX_LIST + 5).await.unwrap();
        assert_eq!(all.keys.len(), 27);
        assert_eq!(all.next, None);
    }

    /// 50 jobs on 50 tasks write their own keys at once: every key is there
    /// with its value, and the namespace's usage counts every one.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn fifty_concurrent_writers_lose_nothing() {
        let f = Arc::new(fixture());
        let mut tasks = Vec::new();
        for job in 0..50u32 {
            let f = f.clone();
            tasks.push(tokio::spawn(async move {
                let mut s = f.state("t", grant("store = \"main\"\nmax_keys = 500"));
                for i in 0..10u32 {
                    s.set(format!("{job}/{i}"), format!("{job}-{i}").into_bytes())
                        .await
                        .unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let mut s = f.state("t", grant("store = \"main\"\nmax_keys = 500"));
        for job in 0..50u32 {
            for i in 0..10u32 {
                let v = s.get(format!("{job}/{i}")).await.unwrap();
                assert_eq!(v, Some(format!("{job}-{i}").into_bytes()));
            }
        }
        assert_eq!(
            s.list(String::new(), None, MAX_LIST)
                .await
                .unwrap()
                .keys
                .len(),
            500
        );
        let e = guest_err(s.set("one-more".into(), vec![]).await);
        assert_exhausted(e, "kv-keys");
    }
}

#[test]
fn a_grant_naming_an_unknown_store_or_a_bad_namespace_is_refused_at_load() {
    let f = fixture();
    let e = f.cap.check_grant(&grant(r#"store = "nope""#)).unwrap_err();
    assert!(e.contains("[kv.nope]") && e.contains("main, other"), "{e}");
    let e = f
        .cap
        .check_grant(&grant("store = \"main\"\nnamespace = \"a\\u0000b\""))
        .unwrap_err();
    assert!(e.contains("control characters"), "{e}");
    assert!(
        f.cap
            .check_grant(&grant("store = \"main\"\nnamespace = \"\""))
            .is_err()
    );
    let e = toml::from_str::<KvGrant>("store = \"main\"\nprefix = \"x\"").unwrap_err();
    assert!(e.to_string().contains("unknown field `prefix`"), "{e}");
}

#[test]
fn compare_widens_on_other_data_writes_and_larger_quotas() {
    let lines = |a: &str, b: &str| {
        KvGrant::compare(&grant(a), &grant(b))
            .into_iter()
            .map(|c| format!("{}{}", if c.widens { "W " } else { "N " }, c.line))
            .collect::<Vec<_>>()
    };
    let base = "store = \"main\"\nread_only = true\nmax_keys = 10";
    assert!(lines(base, base).is_empty());
    // Spelled out defaults are the same grant.
    assert!(lines("store = \"main\"", "store = \"main\"\nmax_keys = 10000").is_empty());
    assert_eq!(
        lines(
            base,
            "store = \"other\"\nnamespace = \"n\"\nmax_keys = 11\nmax_calls = 3"
        ),
        [
            "W ~ kv store \"main\" → \"other\"",
            "W ~ kv namespace (the tool's name) → \"n\"",
            "W ~ kv read_only true → false",
            "W ~ kv max_keys 10 → 11",
            "N ~ kv max_calls unlimited → 3",
        ]
    );
    assert_eq!(
        lines(
            "store = \"main\"",
            "store = \"main\"\nread_only = true\nmax_value_bytes = 1\nmax_total_bytes = 99999999999"
        ),
        [
            "N ~ kv read_only false → true",
            "N ~ kv max_value_bytes 1048576 → 1",
            "W ~ kv max_total_bytes 67108864 → 99999999999",
        ]
    );
}

#[test]
fn grants_round_trip_and_describe_in_plain_words() {
    let g = grant("store = \"main\"\nnamespace = \"crm\"\nread_only = true\nmax_calls = 5");
    let json = serde_json::to_string(&g).unwrap();
    assert_eq!(
        json,
        r#"{"store":"main","namespace":"crm","read_only":true,"max_calls":5}"#
    );
    assert_eq!(serde_json::from_str::<KvGrant>(&json).unwrap(), g);
    assert_eq!(
        KvCapability::describe(&g),
        [
            "may read (get, list) keys in namespace \"crm\" of the kv store `main`, never write; \
             no other namespace is reachable",
            "at most 10000 keys and 67108864 bytes in all in the namespace, 1048576 bytes per value",
            "at most 5 kv calls per job",
        ]
    );
    let w = KvCapability::describe(&grant(r#"store = "main""#));
    assert!(w[0].starts_with("may read and write keys in the namespace named after the tool"));
    assert_eq!(w[2], "no limit on kv calls per job");
}

#[test]
fn a_store_spec_is_sqlite_with_a_path_and_nothing_else() {
    let e =
        toml::from_str::<StoreSpec>("kind = \"sqlite\"\npath = \"a\"\nurl = \"x\"").unwrap_err();
    assert!(e.to_string().contains("unknown field"), "{e}");
    assert!(toml::from_str::<StoreSpec>("kind = \"redis\"\npath = \"a\"").is_err());
}
