//! The kv verb's scenarios, each run on a fresh store of every backend
//! (see `tests.rs`): the `Host` methods called on `KvState`s.

use super::*;

pub(super) async fn set_get_delete_round_trip_bytes(f: Arc<Fixture>) {
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

pub(super) async fn audit_names_op_namespace_and_key_hash_never_key_or_value(f: Arc<Fixture>) {
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

/// Two tools on one store: whatever key, prefix or cursor one names,
/// it never reads, lists, overwrites or deletes the other's keys.
pub(super) async fn no_key_prefix_or_cursor_reaches_another_namespace(f: Arc<Fixture>) {
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

pub(super) async fn nul_control_and_oversized_keys_are_invalid(f: Arc<Fixture>) {
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

pub(super) async fn a_read_only_grant_is_denied_every_write(f: Arc<Fixture>) {
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

pub(super) async fn an_ungranted_state_denies_everything(f: Arc<Fixture>) {
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
    // Denied before anything else is checked: an oversized value or a NUL key.
    let e = guest_err(s.set("a".into(), vec![0; 2 << 20]).await);
    assert!(matches!(e, WitError::Denied(_)), "{e:?}");
    let e = guest_err(s.delete("\0".into()).await);
    assert!(matches!(e, WitError::Denied(_)), "{e:?}");
}

pub(super) async fn quotas_refuse_the_write_that_would_pass_them_and_write_nothing(
    f: Arc<Fixture>,
) {
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

pub(super) async fn list_pages_through_every_key_once_in_order(f: Arc<Fixture>) {
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
pub(super) async fn fifty_concurrent_writers_lose_nothing(f: Arc<Fixture>) {
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
