//! Wasm-free tests of the kv verb: every scenario of `scenarios.rs` calls
//! the `Host` methods on `KvState`s over a real SQLite file in a temp
//! directory and over a real PostgreSQL server (`tests/pg.rs`, the harness
//! the workspace's tests share).

use super::*;
use airlock_core::{MemoryAudit, WitError};
use kv::Host as _;
use std::time::Duration;

struct Fixture {
    _dir: tempfile::TempDir,
    cap: KvCapability,
    audit: Arc<MemoryAudit>,
}

use crate::pg;

mod scenarios;

/// No secret is configured in the SQLite fixture.
fn no_secret(name: &str) -> Result<SecretString, String> {
    Err(format!("no secret `{name}` in this test"))
}

/// Stores `main` and `other` in SQLite files of a fresh directory.
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let specs: BTreeMap<String, StoreSpec> = toml::from_str(
        r#"
        main = { kind = "sqlite", path = "kv.db" }
        other = { kind = "sqlite", path = "other.db" }
        "#,
    )
    .unwrap();
    let cap = KvCapability::open(&specs, dir.path(), no_secret).unwrap();
    Fixture {
        _dir: dir,
        cap,
        audit: Arc::new(MemoryAudit::default()),
    }
}

/// Store `main` in a fresh database `db` of the PostgreSQL server `pg`
/// (created here), its connection string read from a secret; `other` in
/// SQLite.
async fn pg_fixture(pg: &pg::Postgres, db: &str) -> Fixture {
    let (admin, conn) = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls)
        .await
        .expect("the test server accepts connections");
    let conn = tokio::spawn(conn);
    admin
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .await
        .unwrap();
    drop(admin);
    let _ = conn.await;
    let dir = tempfile::tempdir().unwrap();
    let specs: BTreeMap<String, StoreSpec> = toml::from_str(
        r#"
        main = { kind = "postgres", url = "pg-main" }
        other = { kind = "sqlite", path = "other.db" }
        "#,
    )
    .unwrap();
    let url = pg.url().replace("dbname=postgres", &format!("dbname={db}"));
    let cap = KvCapability::open(&specs, dir.path(), |name| {
        assert_eq!(name, "pg-main");
        Ok(SecretString::from(url.clone()))
    })
    .unwrap();
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

/// For each scenario, a test running it on SQLite, and `POSTGRES`: every
/// scenario's name and body, for the test that runs them on PostgreSQL.
macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::scenarios::$name(Arc::new(super::fixture())).await
            }
        )*
        /// Every scenario of this module, for PostgreSQL.
        pub(super) const POSTGRES: &[(&str, super::Scenario)] =
            &[$((stringify!($name), |f| Box::pin(super::scenarios::$name(f)))),*];
    };
}

type Scenario = fn(Arc<Fixture>) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

mod on_sqlite {
    use super::*;

    scenarios!(
        set_get_delete_round_trip_bytes,
        audit_names_op_namespace_and_key_hash_never_key_or_value,
        list_pages_through_every_key_once_in_order,
        fifty_concurrent_writers_lose_nothing,
    );
}

mod kv_scope {
    use super::*;

    scenarios!(
        no_key_prefix_or_cursor_reaches_another_namespace,
        nul_control_and_oversized_keys_are_invalid,
        a_read_only_grant_is_denied_every_write,
        an_ungranted_state_denies_everything,
        quotas_refuse_the_write_that_would_pass_them_and_write_nothing,
    );

    /// Every scenario, walls and plain, on a real PostgreSQL server: each on
    /// a fresh database, so namespaces and quotas start empty.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn every_scenario_holds_on_postgres() {
        let Some(pg) = pg::Postgres::start("kv_scope::every_scenario_holds_on_postgres") else {
            return;
        };
        let all = POSTGRES.iter().chain(super::on_sqlite::POSTGRES);
        for (i, (name, scenario)) in all.enumerate() {
            let f = Arc::new(super::pg_fixture(&pg, &format!("s{i}")).await);
            eprintln!("postgres: {name}");
            scenario(f.clone()).await;
            let trail = format!("{:?} {:?}", f.audit.records(), f.cap);
            assert!(
                !trail.contains("dbname"),
                "the connection string leaked: {trail}"
            );
        }
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
            "may read (get, list) keys of the kv store `main`, inside namespace \"crm\", never \
             write; no other namespace is reachable",
            "at most 10000 keys and 67108864 bytes in all in the namespace, 1048576 bytes per value",
            "at most 5 kv calls per job",
        ]
    );
    let w = KvCapability::describe(&grant(r#"store = "main""#));
    assert_eq!(
        w[0],
        "may read and write keys of the kv store `main`, inside the namespace named after \
         the tool; no other namespace is reachable"
    );
    assert_eq!(w[2], "no limit on kv calls per job");
}

#[test]
fn a_store_spec_is_sqlite_with_a_path_and_nothing_else() {
    let e =
        toml::from_str::<StoreSpec>("kind = \"sqlite\"\npath = \"a\"\nurl = \"x\"").unwrap_err();
    assert!(e.to_string().contains("unknown field"), "{e}");
    assert!(toml::from_str::<StoreSpec>("kind = \"redis\"\npath = \"a\"").is_err());
}
