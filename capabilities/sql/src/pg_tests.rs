//! The same view against a real PostgreSQL server, started by the workspace's
//! harness (`tests/pg.rs`: under `CI` a missing PostgreSQL fails the tests,
//! elsewhere they say why they skip). The verb connects as the superuser: the
//! strongest attacker's seat.

use std::sync::Arc;
use std::time::{Duration, Instant};

use airlock_core::bindings::airlock::verbs::sql::Host;
use airlock_core::{Capability, Job, MemoryAudit, WitError};
use rusqlite::types::ValueRef;
use secrecy::SecretString;

use super::*;
use crate::pg::Postgres;

const CANARIES: &[&str] = &["canary-mail", "CANARY-SSN", "CANARY-FR", "CANARY-SECRET"];

/// A superuser connection to `pg`'s database `postgres`, for building the
/// fixture and watching the server from outside the verb.
async fn admin(pg: &Postgres) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls)
        .await
        .expect("the test server accepts connections");
    tokio::spawn(conn);
    client
}

/// A started server holding the CRM, and a capability naming it `crm`.
async fn crm(test: &str) -> Option<(Postgres, SqlCapability, PseudonymKey)> {
    let pg = Postgres::start(test)?;
    let c = admin(&pg).await;
    c.batch_execute(
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, country TEXT, plan TEXT, mrr BIGINT,
                                 email TEXT, ssn TEXT);
         CREATE TABLE invoices (id SERIAL PRIMARY KEY, customer_id INTEGER, amount INTEGER);
         CREATE TABLE secrets (v TEXT);
         INSERT INTO secrets VALUES ('CANARY-SECRET');
         CREATE TABLE big (n INTEGER);
         INSERT INTO big SELECT generate_series(1, 2000);
         INSERT INTO customers
           SELECT i, CASE WHEN i = 20 THEN 'FR' ELSE 'DE' END,
                  CASE WHEN i = 20 THEN 'CANARY-FR' WHEN i % 2 = 0 THEN 'pro' ELSE 'free' END,
                  i * 10, 'canary-mail-' || i || '@example.com', 'CANARY-SSN-' || i
           FROM generate_series(1, 20) AS i;
         INSERT INTO invoices (customer_id, amount) SELECT 1, 100 FROM generate_series(1, 12);
         INSERT INTO invoices (customer_id, amount) VALUES (2, 100);",
    )
    .await
    .unwrap();
    let key = PseudonymKey::random();
    let cap = SqlCapability::new(
        [(
            "crm".to_string(),
            Database::postgres(SecretString::from(pg.url())),
        )],
        key.clone(),
    );
    Some((pg, cap, key))
}

const GRANT: &str = r#"
database = "crm"
timeout = "500ms"
[tables.customers]
columns = ["id", "country", "plan", "mrr", "email"]
masked = { email = "pseudonym" }
rows = "country = 'DE'"
[tables.invoices]
columns = ["customer_id", "amount"]
aggregate_only = { min_group = 10 }
[tables.big]
columns = ["n"]
"#;

fn state(cap: &SqlCapability) -> (SqlState, Arc<MemoryAudit>) {
    state_with(cap, GRANT)
}

/// A job's state under the grant `text`.
fn state_with(cap: &SqlCapability, text: &str) -> (SqlState, Arc<MemoryAudit>) {
    let g: SqlGrant = toml::from_str(text).unwrap();
    cap.check_grant(&g).unwrap();
    let audit = Arc::new(MemoryAudit::default());
    let job = Job::new(
        7,
        "t".into(),
        Instant::now() + Duration::from_secs(30),
        audit.clone(),
    );
    (cap.state(Arc::new(g), job), audit)
}

async fn q(
    st: &mut SqlState,
    audit: &MemoryAudit,
    sql: &str,
    params: Vec<Value>,
) -> Result<Rows, VerbError> {
    let r = st.query(sql.into(), params).await;
    let text = format!("{r:?}\n{:?}", audit.records());
    for c in CANARIES {
        assert!(!text.contains(c), "canary {c} leaked: {text}");
    }
    r
}

mod sql_scope {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_serves_the_same_view_and_refuses_the_same_attacks() {
        let test =
            "pg_tests::sql_scope::postgres_serves_the_same_view_and_refuses_the_same_attacks";
        let Some((_pg, cap, key)) = crm(test).await else {
            return;
        };
        let (mut st, audit) = state(&cap);
        let r = q(
            &mut st,
            &audit,
            "SELECT id, plan, email FROM customers ORDER BY id",
            vec![],
        )
        .await
        .unwrap();
        let ids: Vec<i64> = r
            .rows
            .iter()
            .map(|r| match r[0] {
                Value::Integer(n) => n,
                _ => panic!("{r:?}"),
            })
            .collect();
        assert_eq!(ids, (1..=19).collect::<Vec<_>>(), "only the row scope");
        // PostgreSQL's pseudonym is the host's HMAC, the same as SQLite's.
        let expected = key
            .of(ValueRef::Text(b"canary-mail-1@example.com"))
            .unwrap();
        assert!(
            matches!(&r.rows[0][2], Value::Text(p) if *p == expected),
            "{:?}",
            r.rows[0]
        );
        let r = q(
            &mut st,
            &audit,
            "SELECT id FROM customers WHERE email = $1",
            vec![Value::Text(expected)],
        )
        .await
        .unwrap();
        assert_eq!(
            format!("{:?}", r.rows),
            format!("{:?}", [[Value::Integer(1)]])
        );
        let r = q(
            &mut st,
            &audit,
            "SELECT customer_id, sum(amount) AS total FROM invoices GROUP BY customer_id",
            vec![],
        )
        .await
        .unwrap();
        assert_eq!(
            format!("{:?}", r.rows),
            format!("{:?}", [[Value::Integer(1), Value::Integer(1200)]])
        );
        // Dropped inside the query, counted by a second one in the same
        // transaction: customer 2's single invoice.
        assert_eq!(r.suppressed_groups, 1);
        // The count leaves out the HAVING and its `$2`; it is prepared with
        // the query's parameter types, so the unused one still binds.
        let r = q(
            &mut st,
            &audit,
            "SELECT customer_id, count(*) FROM invoices WHERE customer_id = $1 \
             GROUP BY customer_id HAVING sum(amount) > $2",
            vec![Value::Integer(2), Value::Integer(0)],
        )
        .await
        .unwrap();
        assert_eq!((r.rows.len(), r.suppressed_groups), (0, 1));
        for (sql, why) in [
            ("SELECT ssn FROM customers", "column `ssn` is not granted"),
            ("SELECT * FROM customers", "SELECT * is refused"),
            ("SELECT v FROM secrets", "table `secrets` is not granted"),
            ("SELECT id FROM customers WHERE email LIKE 'c%'", "LIKE"),
            ("SELECT id FROM customers ORDER BY email", "ORDER BY"),
            (
                "SELECT pg_read_file('/etc/passwd')",
                "the function `pg_read_file`",
            ),
            (
                "SELECT set_config('a', 'b', false)",
                "the function `set_config`",
            ),
            (
                "SELECT current_setting('data_directory')",
                "the function `current_setting`",
            ),
            (
                "SELECT relname FROM pg_catalog.pg_class",
                "schema-qualified",
            ),
            (
                "SELECT relname FROM pg_class",
                "table `pg_class` is not granted",
            ),
            (
                "SELECT table_name FROM information_schema.tables",
                "schema-qualified",
            ),
            ("COPY customers TO '/tmp/out'", "`COPY` is refused"),
            ("SELECT id FROM customers; DROP TABLE customers", "stacked"),
            (
                "SELECT id FROM customers UNION SELECT id FROM customers",
                "UNION",
            ),
            (
                "SELECT sum(amount) FROM invoices WHERE customer_id <> 2",
                "WHERE may filter only",
            ),
            (
                "SELECT customer_id, sum(amount) FROM invoices GROUP BY customer_id HAVING count(*) = 1",
                "",
            ),
        ] {
            match q(&mut st, &audit, sql, vec![]).await {
                Err(VerbError::Guest(WitError::Denied(w))) => {
                    assert!(w.contains(why), "{sql}: {w}")
                }
                Ok(rows) if why.is_empty() => {
                    assert!(
                        // The count ignores the tool's HAVING.
                        rows.rows.is_empty() && rows.suppressed_groups == 1,
                        "{rows:?}"
                    )
                }
                other => panic!("{sql}: {other:?}"),
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_cancels_at_the_deadline_caps_rows_and_stays_read_only() {
        let test =
            "pg_tests::sql_scope::postgres_cancels_at_the_deadline_caps_rows_and_stays_read_only";
        let Some((pg, cap, _)) = crm(test).await else {
            return;
        };
        let (mut st, audit) = state(&cap);
        let t0 = Instant::now();
        let r = q(
            &mut st,
            &audit,
            "SELECT count(*) FROM big a, big b, big c, big d",
            vec![],
        )
        .await;
        assert!(
            matches!(r, Err(VerbError::Guest(WitError::Timeout))),
            "{r:?}"
        );
        assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
        // The server is no longer running it.
        let admin = admin(&pg).await;
        let t1 = Instant::now();
        loop {
            let n: i64 = admin
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%big%' AND state = 'active' AND pid <> pg_backend_pid()",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            if n == 0 {
                break;
            }
            assert!(
                t1.elapsed() < Duration::from_secs(5),
                "the query still runs"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let r = q(&mut st, &audit, "SELECT a.n FROM big a, big b", vec![]).await;
        assert!(
            matches!(&r, Err(VerbError::Guest(WitError::Exhausted(w))) if w == "sql-rows"),
            "{r:?}"
        );
        let r = q(&mut st, &audit, "SELECT count(*) AS n FROM big", vec![])
            .await
            .unwrap();
        assert_eq!(
            format!("{:?}", r.rows),
            format!("{:?}", [[Value::Integer(2000)]])
        );
        // The read-only transaction is a second wall behind the parser.
        let Database::Postgres { pool } = cap.databases["crm"].clone() else {
            panic!("crm is PostgreSQL")
        };
        let call = postgres::Call {
            sql: "INSERT INTO secrets VALUES ('x')",
            count: None,
            params: vec![],
            extra: 0,
            limits: sqlite::Limits {
                max_rows: 10,
                max_bytes: MAX_RESULT_BYTES,
                deadline: Instant::now() + Duration::from_secs(5),
            },
            write: false,
        };
        let w = postgres::run(&pool, call, &airlock_core::Cancel::new(), |raw, _| Ok(raw)).await;
        assert!(
            matches!(&w, Err(VerbError::Guest(WitError::Denied(d))) if d.contains("read-only")),
            "{:?}",
            w.as_ref().err()
        );
        let n: i64 = admin
            .query_one("SELECT count(*) FROM secrets", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 1);
    }

    /// The connection URL is a secret: not in Debug, not in an error.
    #[tokio::test]
    async fn the_connection_url_appears_in_no_error_or_debug() {
        let url = "host=127.0.0.1 port=1 user=CANARY-PG-USER password=CANARY-PG-PASS dbname=x";
        let cap = SqlCapability::new(
            [(
                "crm".to_string(),
                Database::postgres(SecretString::from(url)),
            )],
            PseudonymKey::random(),
        );
        let (mut st, audit) = state(&cap);
        let r = st.query("SELECT n FROM big".into(), vec![]).await;
        assert!(
            matches!(&r, Err(VerbError::Guest(WitError::Upstream(_)))),
            "{r:?}"
        );
        let text = format!("{r:?} {cap:?} {:?}", audit.records());
        assert!(!text.contains("CANARY-PG"), "{text}");
    }
}

mod review;
mod writes;
