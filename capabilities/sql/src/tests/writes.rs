//! Writes through the view on a real SQLite file: a read-only grant writes
//! nothing, a writing grant reaches only its granted, unmasked columns and
//! the rows inside its scope, and what it writes must stay inside it.

use super::*;

const WRITER: &str = r#"
database = "crm"
max_rows = 25
write = true
[tables.customers]
columns = ["id", "country", "plan", "mrr", "email"]
masked = { email = "pseudonym" }
rows = "country = 'DE'"
[tables.invoices]
columns = ["customer_id", "amount", "paid_at"]
aggregate_only = { min_group = 10 }
"#;

async fn x(
    st: &mut SqlState,
    audit: &MemoryAudit,
    sql: &str,
    params: Vec<Value>,
) -> Result<u64, VerbError> {
    let r = st.execute(sql.into(), params).await;
    clean(&r, audit);
    r
}

fn refused(r: Result<u64, VerbError>, needle: &str) {
    match r {
        Err(VerbError::Guest(WitError::Denied(why))) => {
            assert!(why.contains(needle), "`{why}` should say `{needle}`")
        }
        other => panic!("expected denied({needle}), got {other:?}"),
    }
}

/// What the file holds, read behind the verb's back: (id, country, plan, email).
fn table(db: &Db) -> Vec<(i64, Option<String>, String, Option<String>)> {
    let Database::Sqlite { path } = db.cap.databases["crm"].clone() else {
        panic!("crm is a SQLite file")
    };
    let c = rusqlite::Connection::open(path).unwrap();
    let mut s = c
        .prepare("SELECT id, country, plan, email FROM customers ORDER BY id")
        .unwrap();
    s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

mod sql_scope {
    use super::*;

    #[tokio::test]
    async fn a_read_only_grant_writes_nothing() {
        let db = db();
        let before = table(&db);
        let (mut st, audit) = state(&db, GRANT);
        for sql in [
            "INSERT INTO customers (id, country, plan) VALUES (99, 'DE', 'x')",
            "UPDATE customers SET plan = 'x'",
            "DELETE FROM customers",
        ] {
            refused(x(&mut st, &audit, sql, vec![]).await, "read-only");
        }
        denied(
            q(&mut st, &audit, "DELETE FROM customers").await,
            "query accepts one read-only SELECT",
        );
        assert_eq!(table(&db), before);
        let last = audit.records().pop().unwrap();
        assert!(matches!(last.decision, Decision::Deny(_)), "{last:?}");
    }

    #[tokio::test]
    async fn writes_reach_only_granted_columns_and_rows_inside_the_scope() {
        let db = db();
        let (mut st, audit) = state(&db, WRITER);
        // Insert inside the scope, with parameters.
        let n = x(
            &mut st,
            &audit,
            "INSERT INTO customers (id, country, plan, mrr) VALUES (?1, 'DE', ?2, 5), (101, 'DE', 'pro', 6)",
            vec![Value::Integer(100), Value::Text("team".into())],
        )
        .await
        .unwrap();
        assert_eq!(n, 2);
        // UPDATE and DELETE without WHERE reach only the scope's rows: the
        // French customer (id 20) keeps its plan.
        let n = x(
            &mut st,
            &audit,
            "UPDATE customers SET plan = 'gold'",
            vec![],
        )
        .await
        .unwrap();
        assert_eq!(n, 21, "19 German customers and the 2 new ones");
        let rows = table(&db);
        assert!(rows.iter().any(|r| r.0 == 20 && r.2 == "CANARY-FR-PLAN"));
        assert_eq!(rows.iter().filter(|r| r.2 == "gold").count(), 21);
        let n = x(
            &mut st,
            &audit,
            "DELETE FROM customers WHERE id >= ?",
            vec![Value::Integer(19)],
        )
        .await
        .unwrap();
        assert_eq!(n, 3, "19, 100 and 101; never 20");
        assert!(table(&db).iter().any(|r| r.0 == 20));
        // The audit names the table and columns, and the rows written.
        let last = audit.records().pop().unwrap();
        assert_eq!(last.op, "execute");
        let detail = last.detail.unwrap();
        assert!(
            detail.contains("tables=customers") && detail.contains("rows=3"),
            "{detail}"
        );
    }

    #[tokio::test]
    async fn a_write_that_would_leave_the_scope_is_rolled_back() {
        let db = db();
        let before = table(&db);
        let (mut st, audit) = state(&db, WRITER);
        for sql in [
            "INSERT INTO customers (id, country, plan) VALUES (102, 'DE', 'a'), (103, 'FR', 'b')",
            "INSERT INTO customers (id, plan) VALUES (104, 'no country: NULL is outside')",
            "UPDATE customers SET country = 'FR' WHERE id = 1",
            "UPDATE customers SET country = NULL",
        ] {
            refused(
                x(&mut st, &audit, sql, vec![]).await,
                "outside the grant's row scope",
            );
        }
        assert_eq!(table(&db), before, "nothing of any of them stayed");
    }

    #[tokio::test]
    async fn every_escape_through_a_write_is_refused_with_its_reason() {
        let db = db();
        let before = table(&db);
        let (mut st, audit) = state(&db, WRITER);
        for (sql, why) in [
            // Masked and ungranted columns: not written, not compared (a
            // count of rows changed would test the hidden value).
            (
                "UPDATE customers SET email = 'x@y' WHERE id = 1",
                "masked column `email` cannot be written",
            ),
            (
                "INSERT INTO customers (id, country, email) VALUES (105, 'DE', 'x@y')",
                "masked column `email` cannot be written",
            ),
            (
                "DELETE FROM customers WHERE email = 'canary-mail-1@example.com'",
                "masked column `email` may not be used in a write",
            ),
            (
                "UPDATE customers SET plan = 'x' WHERE email IS NULL",
                "masked column `email` may not be used in a write",
            ),
            (
                "UPDATE customers SET ssn = 'x'",
                "column `ssn` is not granted",
            ),
            (
                "DELETE FROM customers WHERE ssn LIKE 'CANARY%'",
                "column `ssn` is not granted",
            ),
            (
                "INSERT INTO secrets (v) VALUES ('x')",
                "table `secrets` is not granted",
            ),
            (
                "INSERT INTO invoices (customer_id, amount) VALUES (1, 1)",
                "aggregate-only",
            ),
            // A write may not read.
            (
                "UPDATE customers SET plan = (SELECT v FROM secrets)",
                "subqueries",
            ),
            (
                "INSERT INTO customers (id, country, plan) SELECT 106, 'DE', v FROM secrets",
                "INSERT ... SELECT is refused",
            ),
            (
                "UPDATE customers SET plan = 'x' FROM secrets",
                "UPDATE ... FROM",
            ),
            (
                "DELETE FROM customers WHERE id IN (SELECT rowid FROM secrets)",
                "subqueries",
            ),
            (
                "UPDATE customers SET plan = 'x' RETURNING plan",
                "RETURNING",
            ),
            (
                "INSERT OR REPLACE INTO customers (id, country, plan) VALUES (20, 'DE', 'x')",
                "INSERT OR",
            ),
            // SQLite reads REPLACE as INSERT OR REPLACE.
            (
                "REPLACE INTO customers (id, country, plan) VALUES (20, 'DE', 'x')",
                "INSERT OR",
            ),
            (
                "INSERT INTO customers (id, country, plan) VALUES (20, 'DE', 'x') \
                 ON CONFLICT (id) DO UPDATE SET plan = 'x'",
                "ON CONFLICT",
            ),
            (
                "INSERT INTO customers DEFAULT VALUES",
                "must name its columns",
            ),
            (
                "DELETE FROM customers; DROP TABLE secrets",
                "one statement per call",
            ),
            ("DROP TABLE customers", "`DROP` is refused"),
            ("PRAGMA writable_schema = 1", "`PRAGMA` is refused"),
            ("ATTACH DATABASE 'x.db' AS x", "`ATTACH` is refused"),
            ("SELECT id FROM customers", "run a SELECT with query"),
            (
                "UPDATE customers SET plan = load_extension('x')",
                "the function `load_extension`",
            ),
            (
                "UPDATE customers AS c SET plan = 'x'",
                "a table alias in UPDATE",
            ),
        ] {
            refused(x(&mut st, &audit, sql, vec![]).await, why);
        }
        assert_eq!(table(&db), before);
        // A write through query is pointed at execute.
        denied(
            q(&mut st, &audit, "UPDATE customers SET plan = 'x'").await,
            "writes go through execute",
        );
    }

    #[tokio::test]
    async fn a_write_past_max_rows_or_max_calls_is_rolled_back() {
        let db = db();
        let before = table(&db);
        let grant = WRITER.replace("max_rows = 25", "max_rows = 5\nmax_calls = 2");
        let (mut st, audit) = state(&db, &grant);
        let r = x(&mut st, &audit, "UPDATE customers SET plan = 'x'", vec![]).await;
        assert!(
            matches!(&r, Err(VerbError::Guest(WitError::Exhausted(w))) if w == "sql-rows"),
            "{r:?}"
        );
        assert_eq!(table(&db), before, "the update of 19 rows was rolled back");
        assert_eq!(
            x(
                &mut st,
                &audit,
                "UPDATE customers SET plan = 'x' WHERE id <= 5",
                vec![]
            )
            .await
            .unwrap(),
            5
        );
        let r = x(
            &mut st,
            &audit,
            "DELETE FROM customers WHERE id = 1",
            vec![],
        )
        .await;
        assert!(
            matches!(&r, Err(VerbError::Guest(WitError::Exhausted(w))) if w == "sql-calls"),
            "{r:?}"
        );
    }

    /// The writer's authorizer alone (no view in front): writes only to the
    /// tables and unmasked columns the grant may write, reads only of what
    /// it may read.
    #[test]
    fn the_writers_authorizer_refuses_what_the_grant_does_not_allow() {
        let db = db();
        let before = table(&db);
        let Database::Sqlite { path } = db.cap.databases["crm"].clone() else {
            panic!("crm is a SQLite file")
        };
        let mut conn = sqlite::open_writer(&path).unwrap();
        sqlite::authorize(&mut conn, &grant(WRITER), true).unwrap();
        let limits = sqlite::Limits {
            max_rows: 100,
            max_bytes: MAX_RESULT_BYTES,
            deadline: Instant::now() + Duration::from_secs(10),
        };
        let cancel = airlock_core::Cancel::new();
        for sql in [
            "DELETE FROM secrets",
            "UPDATE customers SET email = 'x'",
            "UPDATE customers SET ssn = 'x'",
            "UPDATE customers SET plan = ssn",
            "INSERT INTO invoices (customer_id, amount) VALUES (1, 1)",
            "DROP TABLE customers",
            "CREATE TABLE t (x)",
            "PRAGMA writable_schema = 1",
        ] {
            let r = sqlite::write(&mut conn, sql, &[], limits, &cancel, |raw| {
                Ok(raw.rows.len())
            });
            assert!(
                matches!(&r, Err(VerbError::Guest(WitError::Denied(w))) if w.contains("authorizer")),
                "{sql}: {r:?}"
            );
        }
        assert_eq!(table(&db), before);
        let ok = sqlite::write(
            &mut conn,
            "UPDATE customers SET plan = 'x' WHERE id = 1",
            &[],
            limits,
            &cancel,
            |_| Ok(()),
        );
        assert!(ok.is_ok(), "{ok:?}");
    }

    /// What comes back is bounded by the job's hostcall-data budget too.
    #[tokio::test]
    async fn a_result_over_the_jobs_hostcall_data_budget_is_exhausted() {
        let db = db();
        let (mut st, audit) = state(&db, GRANT);
        st.job.set_hostcall_bytes(1000);
        let r = q(&mut st, &audit, "SELECT n FROM big").await;
        assert!(
            matches!(&r, Err(VerbError::Guest(WitError::Exhausted(w))) if w == "sql-bytes"),
            "{:?}",
            r.map(|r| r.rows.len())
        );
        let r = q(&mut st, &audit, "SELECT n FROM big LIMIT 10")
            .await
            .unwrap();
        assert_eq!(r.rows.len(), 10);
    }
}
