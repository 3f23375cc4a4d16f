//! The `sql` verb through real guests against a real SQLite file: the
//! example `churn-report` computes by plan and sees emails only as
//! pseudonyms; the adversarial `exfil-sql` tries every escape from its view,
//! and no protected value (canaries planted in ungranted columns, masked
//! columns, rows outside the scope, an ungranted table) reaches its result,
//! its logs or the audit trail.

use std::time::{Duration, Instant};

use airlock::{Budget, Capabilities, Grants, JobError, LoadError};
use airlock_sql::{Database, PseudonymKey, SqlCapability};
use airlock_tests::{TestHost, budget, grants, host, load_err, load_ok, tool_error, verb_error};
use serde_json::{Value, json};

/// Strings that live only where the grant does not reach.
const CANARIES: &[&str] = &["canary-mail", "CANARY-SSN", "CANARY-FR", "CANARY-SECRET"];

struct Crm {
    _dir: tempfile::TempDir,
    host: TestHost,
}

/// A CRM with 19 German customers in scope and one French one outside it,
/// invoices (customer 1: 12, customer 2: one), a secret table and a big one.
fn crm() -> Crm {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crm.db");
    let c = rusqlite::Connection::open(&path).unwrap();
    c.execute_batch(
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, country TEXT, plan TEXT, mrr INTEGER,
                                 churned INTEGER, email TEXT, ssn TEXT);
         CREATE TABLE invoices (id INTEGER PRIMARY KEY, customer_id INTEGER, amount INTEGER);
         CREATE TABLE secrets (v TEXT);
         INSERT INTO secrets VALUES ('CANARY-SECRET');
         CREATE TABLE big (n INTEGER);
         WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 2000)
         INSERT INTO big SELECT n FROM c;",
    )
    .unwrap();
    for id in 1..=20i64 {
        let (country, plan) = match id {
            20 => ("FR", "CANARY-FR"),
            _ if id % 2 == 0 => ("DE", "pro"),
            _ => ("DE", "free"),
        };
        c.execute(
            "INSERT INTO customers VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            rusqlite::params![
                id,
                country,
                plan,
                id * 10,
                i64::from(id % 5 == 0),
                format!("canary-mail-{id}@example.com"),
                format!("CANARY-SSN-{id}")
            ],
        )
        .unwrap();
    }
    for cust in std::iter::repeat_n(1, 12).chain([2]) {
        c.execute(
            "INSERT INTO invoices (customer_id, amount) VALUES (?1, 100)",
            [cust],
        )
        .unwrap();
    }
    drop(c);
    let caps = Capabilities {
        sql: SqlCapability::new(
            [("crm".to_string(), Database::Sqlite { path })],
            PseudonymKey::random(),
        ),
        ..Capabilities::default()
    };
    Crm {
        _dir: dir,
        host: host(caps),
    }
}

fn sql_grants() -> Grants {
    grants(json!({
        "log": {},
        "sql": {
            "database": "crm",
            "max_rows": 1000,
            "timeout": "300ms",
            "tables": {
                "customers": {
                    "columns": ["id", "country", "plan", "mrr", "churned", "email"],
                    "masked": { "email": "pseudonym" },
                    "rows": "country = 'DE'"
                },
                "invoices": {
                    "columns": ["customer_id", "amount"],
                    "aggregate_only": { "min_group": 10 }
                },
                "big": { "columns": ["n"] }
            }
        }
    }))
}

/// No canary in `what` nor in the host's audit trail so far.
fn clean(crm: &Crm, what: &str) {
    let trail = format!("{:?}", crm.host.audit.records());
    for c in CANARIES {
        assert!(!what.contains(c), "canary {c} reached the guest: {what}");
        assert!(!trail.contains(c), "canary {c} reached the audit: {trail}");
    }
}

async fn query(crm: &Crm, tool: &airlock::Tool, statement: &str, params: Value) -> Value {
    let args = json!({ "statement": statement, "params": params });
    let r = crm.host.run(tool, Some("query"), &args).await;
    let text = format!("{r:?}");
    clean(crm, &text);
    match r {
        Ok(out) => out.value,
        Err(JobError::ToolError(v)) => json!({ "err": v }),
        Err(other) => panic!("{statement}: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_report_computes_by_plan_and_sees_emails_only_as_pseudonyms() {
    let crm = crm();
    let tool = load_ok(&crm.host, "churn-report", sql_grants(), Budget::default());
    let out = crm
        .host
        .run(&tool, Some("churn-by-plan"), &json!({}))
        .await
        .expect("churn-by-plan runs");
    // Computed here from the fixture: DE customers 1..=19, mrr = id * 10,
    // churned when id % 5 == 0.
    let figures = |even: bool| {
        let ids: Vec<i64> = (1..=19).filter(|i| (i % 2 == 0) == even).collect();
        json!({
            "plan": if even { "pro" } else { "free" },
            "customers": ids.len(),
            "mrr": ids.iter().map(|i| i * 10).sum::<i64>(),
            "churned": ids.iter().filter(|i| *i % 5 == 0).count(),
        })
    };
    assert_eq!(out.value, json!([figures(false), figures(true)]));
    clean(&crm, &format!("{out:?}"));

    let out = crm
        .host
        .run(&tool, Some("emails"), &json!({}))
        .await
        .expect("emails runs");
    let mails = out.value.as_array().unwrap();
    assert_eq!(mails.len(), 19);
    for m in mails {
        let m = m.as_str().unwrap();
        assert!(
            m.len() == 32 && m.bytes().all(|b| b.is_ascii_hexdigit()),
            "{m}"
        );
    }
    clean(&crm, &format!("{out:?}"));
}

mod sql_scope {
    use super::*;

    /// The adversarial guest's own list of escapes: each is refused with its
    /// reason, or (widening the row scope, WITH over the base table) answers
    /// from the view alone; nothing protected reaches its result or its log.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_escape_the_exfil_guest_tries_is_refused_or_stays_in_the_view() {
        let crm = crm();
        let tool = load_ok(&crm.host, "exfil-sql", sql_grants(), Budget::default());
        let out = crm
            .host
            .run(&tool, Some("attack"), &json!({}))
            .await
            .expect("attack runs");
        clean(&crm, &format!("{out:?}"));
        let lines: Vec<&str> = out
            .value
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_str().unwrap())
            .collect();
        let expect = |prefix: &str, outcome: &str| {
            let line = lines
                .iter()
                .find(|l| l.starts_with(prefix))
                .unwrap_or_else(|| panic!("no line for {prefix}: {lines:#?}"));
            assert!(line.contains(outcome), "{line} should say {outcome}");
        };
        expect("SELECT ssn FROM", "denied: column `ssn` is not granted");
        expect("SELECT * FROM", "denied: SELECT * is refused");
        expect(
            "SELECT v FROM secrets",
            "denied: table `secrets` is not granted",
        );
        expect(
            "SELECT email FROM customers WHERE email LIKE",
            "denied: masked column",
        );
        expect("SELECT substr(email", "denied: masked column");
        expect("SELECT CAST(email", "denied: masked column");
        expect("SELECT min(email)", "denied: masked column");
        expect(
            "SELECT id FROM customers ORDER BY email",
            "denied: masked column",
        );
        expect(
            "SELECT id, plan FROM customers WHERE country = 'FR' OR 1=1",
            "ok 19 rows",
        );
        expect("SELECT plan FROM customers UNION", "denied: UNION");
        expect(
            "SELECT plan FROM customers WHERE id IN",
            "denied: subqueries",
        );
        expect("WITH c AS", "ok 19 rows");
        expect(
            "SELECT id FROM customers; DROP",
            "denied: one statement per call",
        );
        expect("SELECT id FROM customers -- ;", "ok 19 rows");
        expect("ATTACH", "denied: `ATTACH` is refused");
        expect("PRAGMA", "denied: `PRAGMA` is refused");
        expect(
            "SELECT load_extension",
            "denied: the function `load_extension`",
        );
        expect("SELECT pg_read_file", "denied: the function `pg_read_file`");
        expect("SELECT set_config", "denied: the function `set_config`");
        expect(
            "SELECT current_setting",
            "denied: the function `current_setting`",
        );
        expect(
            "SELECT name FROM sqlite_master",
            "denied: table `sqlite_master`",
        );
        expect("SELECT relname FROM pg_catalog", "denied: schema-qualified");
        expect(
            "SELECT table_name FROM information_schema",
            "denied: schema-qualified",
        );
        expect("INSERT INTO", "denied: `INSERT` is refused");
        expect("SELECT customer_id, sum(amount)", "ok 0 rows");
        expect(
            "SELECT sum(amount) FROM invoices WHERE",
            "denied: column `invoices.customer_id`",
        );
        expect("SELECT amount FROM invoices", "must be in GROUP BY");
        assert_eq!(lines.len(), 27, "{lines:#?}");
        // The tool logged every line: the log holds nothing protected either.
        assert_eq!(out.logs.len(), 27);
    }

    /// The verb's typed errors reach the guest unchanged.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn refusals_quotas_and_the_deadline_are_typed_errors_in_the_guest() {
        let crm = crm();
        let tool = load_ok(&crm.host, "exfil-sql", sql_grants(), Budget::default());
        let v = query(&crm, &tool, "SELECT ssn FROM customers", json!([])).await;
        assert_eq!(
            verb_error(&v["err"]),
            (
                "denied".into(),
                "column `ssn` is not granted to this tool".into()
            )
        );
        let v = query(&crm, &tool, "SELECT a.n FROM big a, big b", json!([])).await;
        assert_eq!(
            verb_error(&v["err"]),
            ("exhausted".into(), "sql-rows".into())
        );
        let t0 = Instant::now();
        let v = query(
            &crm,
            &tool,
            "SELECT count(*) FROM big a, big b, big c, big d",
            json!([]),
        )
        .await;
        assert_eq!(verb_error(&v["err"]).0, "timeout");
        assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
        let v = query(
            &crm,
            &tool,
            "SELECT n FROM big WHERE n = ?",
            json!([{ "integer": 7 }]),
        )
        .await;
        assert_eq!(v["rows"], json!([[{ "integer": 7 }]]));
        let args = json!({ "statement": "DELETE FROM customers", "params": [] });
        let r = crm.host.run(&tool, Some("execute"), &args).await;
        let err = tool_error(r, "execute");
        let (case, why) = verb_error(&err);
        assert_eq!(case, "denied");
        assert!(why.contains("read-only"), "{why}");
        // Every call was audited with its decision and the tables touched.
        let records = crm.host.audit.records();
        let sql: Vec<_> = records.iter().filter(|r| r.verb == "sql").collect();
        assert_eq!(sql.len(), 5);
        assert!(
            sql[3].detail.as_deref().unwrap().contains("tables=big"),
            "{:?}",
            sql[3]
        );
    }

    /// A tool importing `sql` without a sql grant is refused at load.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_tool_without_a_sql_grant_cannot_import_the_verb() {
        let crm = crm();
        let err = load_err(
            &crm.host,
            "exfil-sql",
            grants(json!({ "log": {} })),
            budget(|_| {}),
        );
        match err {
            LoadError::World { refusals, .. } => {
                assert!(
                    refusals
                        .iter()
                        .any(|r| r.reason.contains("the `sql` verb is not granted")),
                    "{refusals:?}"
                );
            }
            other => panic!("expected a world refusal, got {other:?}"),
        }
        // A grant naming a database the host does not have fails the load.
        let g = grants(json!({ "log": {}, "sql": { "database": "nope" } }));
        let err = load_err(&crm.host, "exfil-sql", g, Budget::default());
        assert!(err.to_string().contains("no such database"), "{err}");
    }
}
