//! Unit tests: the verb's `Host` methods on a real SQLite file, every attack
//! checked for its exact refusal and for canaries (unique strings in the
//! protected data) appearing nowhere: not in the result, not in the audit.
//! This file holds the fixture and helpers; the tests are its child modules.

use std::sync::Arc;
use std::time::{Duration, Instant};

use airlock_core::bindings::airlock::verbs::sql::Host;
use airlock_core::{Capability, Job, MemoryAudit, WitError};

use super::*;

/// Strings that live only in protected places: ungranted columns, masked
/// columns, rows outside the row scope, an ungranted table.
const CANARIES: &[&str] = &[
    "canary-mail",
    "CANARY-SSN",
    "CANARY-FR-PLAN",
    "CANARY-SECRET",
];

struct Db {
    _dir: tempfile::TempDir,
    cap: SqlCapability,
}

fn db() -> Db {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crm.db");
    let c = rusqlite::Connection::open(&path).unwrap();
    c.execute_batch(
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, country TEXT, plan TEXT, mrr INTEGER,
                                 email TEXT, ssn TEXT);
         CREATE TABLE invoices (id INTEGER PRIMARY KEY, customer_id INTEGER, amount INTEGER,
                                paid_at TEXT);
         CREATE TABLE secrets (v TEXT);
         INSERT INTO secrets VALUES ('CANARY-SECRET');
         CREATE TABLE big (n INTEGER);
         WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 2000)
         INSERT INTO big SELECT n FROM c;",
    )
    .unwrap();
    for id in 1..=20 {
        let (country, plan) = if id == 20 {
            ("FR", "CANARY-FR-PLAN")
        } else {
            ("DE", if id % 2 == 0 { "pro" } else { "free" })
        };
        c.execute(
            "INSERT INTO customers VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            rusqlite::params![
                id,
                country,
                plan,
                id * 10,
                format!("canary-mail-{id}@example.com"),
                format!("CANARY-SSN-{id}")
            ],
        )
        .unwrap();
    }
    // Customer 1 has 12 invoices, customer 2 has one (a small group).
    for (i, cust) in (1..=12).map(|_| 1).chain([2]).enumerate() {
        c.execute(
            "INSERT INTO invoices (customer_id, amount, paid_at) VALUES (?1, ?2, ?3)",
            rusqlite::params![cust, 100 + i as i64, format!("2026-01-{:02}", i + 1)],
        )
        .unwrap();
    }
    drop(c);
    let cap = SqlCapability::new(
        [("crm".to_string(), Database::Sqlite { path })],
        PseudonymKey::new(b"test pseudonym key".to_vec().into()),
    );
    Db { _dir: dir, cap }
}

const GRANT: &str = r#"
database = "crm"
max_rows = 1000
timeout = "300ms"
[tables.customers]
columns = ["id", "country", "plan", "mrr", "email"]
masked = { email = "pseudonym" }
rows = "country = 'DE'"
[tables.invoices]
columns = ["customer_id", "amount", "paid_at"]
aggregate_only = { min_group = 10 }
[tables.big]
columns = ["n"]
"#;

fn grant(text: &str) -> SqlGrant {
    toml::from_str(text).unwrap()
}

fn state(db: &Db, text: &str) -> (SqlState, Arc<MemoryAudit>) {
    let g = grant(text);
    db.cap.check_grant(&g).unwrap();
    let audit = Arc::new(MemoryAudit::default());
    let job = Job::new(
        1,
        "t".into(),
        Instant::now() + Duration::from_secs(30),
        audit.clone(),
    );
    (db.cap.state(Arc::new(g), job), audit)
}

/// No canary anywhere in what the call returned or the audit kept.
fn clean<T: std::fmt::Debug>(result: &T, audit: &MemoryAudit) {
    let text = format!("{result:?}\n{:?}", audit.records());
    for c in CANARIES {
        assert!(!text.contains(c), "canary {c} leaked: {text}");
    }
}

async fn q(st: &mut SqlState, audit: &MemoryAudit, sql: &str) -> Result<Rows, VerbError> {
    q_with(st, audit, sql, vec![]).await
}

async fn q_with(
    st: &mut SqlState,
    audit: &MemoryAudit,
    sql: &str,
    params: Vec<Value>,
) -> Result<Rows, VerbError> {
    let r = st.query(sql.into(), params).await;
    clean(&r, audit);
    r
}

fn denied(r: Result<Rows, VerbError>, needle: &str) {
    match r {
        Err(VerbError::Guest(WitError::Denied(why))) => {
            assert!(why.contains(needle), "`{why}` should say `{needle}`")
        }
        other => panic!("expected denied({needle}), got {other:?}"),
    }
}

fn ints(rows: &Rows, col: usize) -> Vec<i64> {
    rows.rows
        .iter()
        .map(|r| match &r[col] {
            Value::Integer(n) => *n,
            other => panic!("not an integer: {other:?}"),
        })
        .collect()
}

fn texts(rows: &Rows, col: usize) -> Vec<String> {
    rows.rows
        .iter()
        .map(|r| match &r[col] {
            Value::Text(s) => s.clone(),
            other => panic!("not text: {other:?}"),
        })
        .collect()
}

mod aggregate;
mod grants;
mod review;
mod sql_scope;
mod writes;
