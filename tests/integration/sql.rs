//! The `sql` verb through real guests against a real SQLite file and a real
//! PostgreSQL server: the example `churn-report` computes by plan and sees
//! emails only as pseudonyms; the adversarial `exfil-sql` tries every escape
//! from its view on both, and no protected value (canaries planted in
//! ungranted columns, masked columns, rows outside the scope, an ungranted
//! table; the server's URL) reaches its result, its logs or the audit trail.

use std::time::{Duration, Instant};

use airlock::{Budget, Capabilities, Grants, HostConfig, JobError, LoadError};
use airlock_sql::{Database, PseudonymKey, SqlCapability};
use airlock_tests::pg::Postgres;
use airlock_tests::{TestHost, budget, grants, host, load_err, load_ok, tool_error, verb_error};
use serde_json::{Value, json};

/// Strings that live only where the grant does not reach.
const CANARIES: &[&str] = &["canary-mail", "CANARY-SSN", "CANARY-FR", "CANARY-SECRET"];

struct Crm {
    _dir: tempfile::TempDir,
    host: TestHost,
    /// What must never reach the guest or the audit: [`CANARIES`], and on
    /// PostgreSQL the connection string the host holds as a secret.
    protected: Vec<String>,
    /// The server, kept running while the host uses it.
    _pg: Option<Postgres>,
}

/// A CRM with 19 German customers in scope and one French one outside it,
/// invoices (customer 1: 12, customer 2: one), a secret table and a big
/// one, as one script SQLite and PostgreSQL both run, so the two backends
/// hold the same rows and the same canaries.
fn crm_script() -> String {
    let mut script = String::from(
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, country TEXT, plan TEXT, mrr INTEGER,
                                 churned INTEGER, email TEXT, ssn TEXT);
         CREATE TABLE invoices (id INTEGER PRIMARY KEY, customer_id INTEGER, amount INTEGER);
         CREATE TABLE secrets (v TEXT);
         INSERT INTO secrets VALUES ('CANARY-SECRET');
         CREATE TABLE big (n INTEGER);
         WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 2000)
         INSERT INTO big SELECT n FROM c;\n",
    );
    for id in 1..=20i64 {
        let (country, plan) = match id {
            20 => ("FR", "CANARY-FR"),
            _ if id % 2 == 0 => ("DE", "pro"),
            _ => ("DE", "free"),
        };
        script.push_str(&format!(
            "INSERT INTO customers VALUES ({id}, '{country}', '{plan}', {mrr}, {churned}, \
             'canary-mail-{id}@example.com', 'CANARY-SSN-{id}');\n",
            mrr = id * 10,
            churned = i64::from(id % 5 == 0),
        ));
    }
    for (id, customer) in (1..).zip(std::iter::repeat_n(1, 12).chain([2])) {
        script.push_str(&format!(
            "INSERT INTO invoices VALUES ({id}, {customer}, 100);\n"
        ));
    }
    script
}

/// The CRM in a SQLite file.
fn crm() -> Crm {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crm.db");
    let c = rusqlite::Connection::open(&path).unwrap();
    c.execute_batch(&crm_script()).unwrap();
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
        protected: CANARIES.iter().map(|c| c.to_string()).collect(),
        _pg: None,
    }
}

/// The CRM in a fresh database `crm` of a real PostgreSQL server, named in
/// the host config as `[databases.crm] kind = "postgres"` whose URL is a
/// `[secrets.crm-url]` file. The URL names the superuser: the strongest
/// seat an attacker could have. `None` when the test skips (see
/// [`Postgres::start`]).
async fn crm_on_postgres(test: &str) -> Option<Crm> {
    let pg = Postgres::start(test)?;
    batch(&pg.url(), "CREATE DATABASE crm").await;
    let url = pg.url_for("crm");
    batch(&url, &crm_script()).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("crm.url"), &url).unwrap();
    let config = HostConfig::parse(
        "[secrets.crm-url]\nfile = \"crm.url\"\n\
         [databases.crm]\nkind = \"postgres\"\nurl = \"crm-url\"\n",
        &dir.path().join("airlock.toml"),
    )
    .expect("the host config names the database");
    let caps = Capabilities {
        sql: config.capabilities.sql,
        ..Capabilities::default()
    };
    let mut protected: Vec<String> = CANARIES.iter().map(|c| c.to_string()).collect();
    protected.extend([url, format!("port={}", pg.port())]);
    Some(Crm {
        _dir: dir,
        host: host(caps),
        protected,
        _pg: Some(pg),
    })
}

/// Runs `script` on the PostgreSQL database at `url`.
async fn batch(url: &str, script: &str) {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("the test server accepts connections");
    let conn = tokio::spawn(conn);
    client
        .batch_execute(script)
        .await
        .unwrap_or_else(|e| panic!("{script}: {e}"));
    drop(client);
    let _ = conn.await;
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

/// Nothing protected in `what` nor in the host's audit trail so far.
fn clean(crm: &Crm, what: &str) {
    let trail = format!("{:?}", crm.host.audit.records());
    for c in &crm.protected {
        assert!(!what.contains(c), "`{c}` reached the guest: {what}");
        assert!(!trail.contains(c), "`{c}` reached the audit: {trail}");
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

    /// How one attack of `exfil-sql` must come out.
    enum Outcome {
        /// The same on both backends.
        Same(&'static str),
        /// Different on PostgreSQL, for a reason said where it is listed.
        Differs {
            sqlite: &'static str,
            postgres: &'static str,
        },
    }
    use Outcome::{Differs, Same};

    /// Every attack `exfil-sql` tries, in its order, by the start of its
    /// statement, and what its line must say.
    const ATTACKS: &[(&str, Outcome)] = &[
        (
            "SELECT ssn FROM",
            Same("denied: column `ssn` is not granted"),
        ),
        ("SELECT * FROM", Same("denied: SELECT * is refused")),
        (
            "SELECT v FROM secrets",
            Same("denied: table `secrets` is not granted"),
        ),
        (
            "SELECT email FROM customers WHERE email LIKE",
            Same("denied: masked column"),
        ),
        ("SELECT substr(email", Same("denied: masked column")),
        // PostgreSQL has no type `BLOB`, and the view checks a cast's target
        // against PostgreSQL's types before it looks at what is cast, so the
        // refusal names the type instead of the mask. The mask is checked
        // with PostgreSQL's own spelling, `bytea`, in the PostgreSQL test.
        (
            "SELECT CAST(email",
            Differs {
                sqlite: "denied: masked column",
                postgres: "denied: CAST to `blob` is refused",
            },
        ),
        ("SELECT min(email)", Same("denied: masked column")),
        (
            "SELECT id FROM customers ORDER BY email",
            Same("denied: masked column"),
        ),
        (
            "SELECT id, plan FROM customers WHERE country = 'FR' OR 1=1",
            Same("ok 19 rows"),
        ),
        ("SELECT plan FROM customers UNION", Same("denied: UNION")),
        (
            "SELECT plan FROM customers WHERE id IN",
            Same("denied: subqueries"),
        ),
        ("WITH c AS", Same("ok 19 rows")),
        (
            "SELECT id FROM customers; DROP",
            Same("denied: one statement per call"),
        ),
        ("SELECT id FROM customers -- ;", Same("ok 19 rows")),
        // SQLite's own statements and catalog parse in PostgreSQL's dialect
        // too and are refused the same way: by kind, or as an ungranted table.
        ("ATTACH", Same("denied: `ATTACH` is refused")),
        ("PRAGMA", Same("denied: `PRAGMA` is refused")),
        (
            "SELECT load_extension",
            Same("denied: the function `load_extension`"),
        ),
        (
            "SELECT pg_read_file",
            Same("denied: the function `pg_read_file`"),
        ),
        (
            "SELECT set_config",
            Same("denied: the function `set_config`"),
        ),
        (
            "SELECT current_setting",
            Same("denied: the function `current_setting`"),
        ),
        (
            "SELECT name FROM sqlite_master",
            Same("denied: table `sqlite_master`"),
        ),
        (
            "SELECT relname FROM pg_catalog",
            Same("denied: schema-qualified"),
        ),
        (
            "SELECT table_name FROM information_schema",
            Same("denied: schema-qualified"),
        ),
        ("INSERT INTO", Same("denied: `INSERT` is refused")),
        ("SELECT customer_id, sum(amount)", Same("ok 0 rows")),
        (
            "SELECT sum(amount) FROM invoices WHERE",
            Same("denied: column `invoices.customer_id`"),
        ),
        ("SELECT amount FROM invoices", Same("must be in GROUP BY")),
    ];

    /// Runs `exfil-sql`'s `attack` against `crm` and checks each line, in
    /// order, against [`ATTACKS`]: each escape is refused with its reason,
    /// or (widening the row scope, WITH over the base table) answers from
    /// the view alone; nothing protected reaches its result or its log.
    async fn attack(crm: &Crm, postgres: bool) {
        let tool = load_ok(&crm.host, "exfil-sql", sql_grants(), Budget::default());
        let out = crm
            .host
            .run(&tool, Some("attack"), &json!({}))
            .await
            .expect("attack runs");
        clean(crm, &format!("{out:?}"));
        let lines: Vec<&str> = out
            .value
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_str().unwrap())
            .collect();
        assert_eq!(lines.len(), ATTACKS.len(), "{lines:#?}");
        for (line, (prefix, outcome)) in lines.iter().zip(ATTACKS) {
            let outcome = match outcome {
                Same(both) => both,
                Differs { sqlite, .. } if !postgres => sqlite,
                Differs { postgres, .. } => postgres,
            };
            assert!(line.starts_with(prefix), "{line} should be {prefix}…");
            assert!(line.contains(outcome), "{line} should say {outcome}");
        }
        // The tool logged every line: the log holds nothing protected either.
        assert_eq!(out.logs.len(), ATTACKS.len());
    }

    /// The adversarial guest's own list of escapes against SQLite.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_escape_the_exfil_guest_tries_is_refused_or_stays_in_the_view() {
        attack(&crm(), false).await;
    }

    /// The same list against a real PostgreSQL server, the verb connected
    /// as the superuser through the host config's secret URL.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_escape_the_exfil_guest_tries_is_refused_or_stays_in_the_view_on_postgres() {
        let test = "sql::sql_scope::every_escape_the_exfil_guest_tries_is_refused_or_stays_in_the_view_on_postgres";
        let Some(crm) = crm_on_postgres(test).await else {
            return;
        };
        attack(&crm, true).await;
        // The guest's `CAST(email AS BLOB)` names no PostgreSQL type; the
        // same escape in PostgreSQL's spelling meets the mask.
        let tool = load_ok(&crm.host, "exfil-sql", sql_grants(), Budget::default());
        let v = query(
            &crm,
            &tool,
            "SELECT CAST(email AS bytea) FROM customers",
            json!([]),
        )
        .await;
        let (case, why) = verb_error(&v["err"]);
        assert_eq!(case, "denied", "{why}");
        assert!(
            why.contains("masked column `customers.email`") && why.contains("CAST is refused"),
            "{why}"
        );
    }

    /// A writing grant through the real guest: a write inside the view
    /// lands and is counted, one that would leave the row scope is rolled
    /// back and refused, and what comes back is bounded by the job's
    /// hostcall-data budget.
    async fn writes(crm: &Crm, placeholder: &str) {
        let mut g = sql_grants();
        std::sync::Arc::make_mut(g.sql.as_mut().expect("a sql grant")).write = true;
        let tool = load_ok(&crm.host, "exfil-sql", g, Budget::default());
        let execute = |statement: String, params: Value| {
            let tool = &tool;
            async move {
                let args = json!({ "statement": statement, "params": params });
                let r = crm.host.run(tool, Some("execute"), &args).await;
                clean(crm, &format!("{r:?}"));
                r
            }
        };
        let r = execute(
            format!(
                "INSERT INTO customers (id, country, plan) VALUES ({placeholder}, 'DE', 'team')"
            ),
            json!([{ "integer": 100 }]),
        )
        .await
        .expect("an insert inside the scope");
        assert_eq!(r.value, json!(1));
        let r = execute(
            "UPDATE customers SET plan = 'gold' WHERE id >= 19".into(),
            json!([]),
        )
        .await
        .expect("an update inside the scope");
        assert_eq!(r.value, json!(2), "19 and 100; never the French 20");
        let err = tool_error(
            execute(
                "UPDATE customers SET country = 'FR' WHERE id = 100".into(),
                json!([]),
            )
            .await,
            "execute",
        );
        let (case, why) = verb_error(&err);
        assert_eq!(case, "denied");
        assert!(why.contains("outside the grant's row scope"), "{why}");
        let v = query(
            crm,
            &tool,
            "SELECT id, plan FROM customers WHERE plan = 'gold' ORDER BY id",
            json!([]),
        )
        .await;
        assert_eq!(
            v["rows"],
            json!([[{ "integer": 19 }, { "text": "gold" }], [{ "integer": 100 }, { "text": "gold" }]]),
            "the refused update left row 100 in the scope"
        );
        let audit = crm.host.audit.records();
        let last = audit.iter().rev().find(|r| r.op == "execute").unwrap();
        assert!(
            matches!(last.decision, airlock_core::Decision::Deny(_)),
            "{last:?}"
        );

        let small = budget(|b| b.hostcall_bytes = 4096);
        let tool = load_ok(&crm.host, "exfil-sql", sql_grants(), small);
        let v = query(crm, &tool, "SELECT n FROM big", json!([])).await;
        assert_eq!(
            verb_error(&v["err"]),
            ("exhausted".into(), "sql-bytes".into())
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_writing_grant_writes_through_the_guest_only_inside_the_view() {
        writes(&crm(), "?").await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_writing_grant_writes_through_the_guest_only_inside_the_view_on_postgres() {
        let test = "sql::sql_scope::a_writing_grant_writes_through_the_guest_only_inside_the_view_on_postgres";
        let Some(crm) = crm_on_postgres(test).await else {
            return;
        };
        writes(&crm, "$1").await;
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
