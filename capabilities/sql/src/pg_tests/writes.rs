//! Writes through the view on a real PostgreSQL server: the same rules as on
//! SQLite (scope, columns, masks, rollback), in a `READ WRITE` transaction
//! the host commits only after checking what the write returned.

use super::*;

const WRITER: &str = r#"
database = "crm"
timeout = "2s"
max_rows = 10
write = true
[tables.customers]
columns = ["id", "country", "plan", "mrr", "email"]
masked = { email = "pseudonym" }
rows = "country = 'DE'"
[tables.invoices]
columns = ["customer_id", "amount"]
aggregate_only = { min_group = 10 }
"#;

async fn x(
    st: &mut SqlState,
    audit: &MemoryAudit,
    sql: &str,
    params: Vec<Value>,
) -> Result<u64, VerbError> {
    let r = st.execute(sql.into(), params).await;
    let text = format!("{r:?}\n{:?}", audit.records());
    for c in CANARIES {
        assert!(!text.contains(c), "canary {c} leaked: {text}");
    }
    r
}

/// (id, country, plan) of every customer, read as the superuser.
async fn table(admin: &tokio_postgres::Client) -> Vec<(i32, Option<String>, Option<String>)> {
    admin
        .query("SELECT id, country, plan FROM customers ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

mod sql_scope {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_writes_stay_inside_the_view_and_roll_back_otherwise() {
        let Some((pg, cap, _key)) =
            crm("postgres_writes_stay_inside_the_view_and_roll_back_otherwise").await
        else {
            return;
        };
        let admin = admin(&pg).await;
        let before = table(&admin).await;

        // A read-only grant writes nothing.
        let (mut ro, audit) = state(&cap);
        let r = x(&mut ro, &audit, "UPDATE customers SET plan = 'x'", vec![]).await;
        assert!(
            matches!(&r, Err(VerbError::Guest(WitError::Denied(w))) if w.contains("read-only")),
            "{r:?}"
        );

        let (mut st, audit) = state_with(&cap, WRITER);
        // Refused before anything runs, each with its reason.
        for (sql, why) in [
            ("UPDATE customers SET email = 'x'", "masked column `email`"),
            (
                "DELETE FROM customers WHERE email = 'canary-mail-1@example.com'",
                "masked column `email` may not be used in a write",
            ),
            (
                "UPDATE customers SET ssn = 'x'",
                "column `ssn` is not granted",
            ),
            ("INSERT INTO secrets (v) VALUES ('x')", "table `secrets`"),
            (
                "INSERT INTO invoices (customer_id, amount) VALUES (1, 1)",
                "aggregate-only",
            ),
            (
                "UPDATE customers SET plan = (SELECT v FROM secrets)",
                "subqueries",
            ),
            (
                "UPDATE customers SET plan = 'x' RETURNING plan",
                "RETURNING",
            ),
            (
                "INSERT INTO customers (id, country) VALUES (20, 'DE') ON CONFLICT (id) DO NOTHING",
                "ON CONFLICT",
            ),
            (
                "UPDATE customers SET plan = current_setting('is_superuser')",
                "current_setting",
            ),
            (
                "DELETE FROM customers; DROP TABLE secrets",
                "one statement per call",
            ),
            ("TRUNCATE customers", "`TRUNCATE` is refused"),
            ("COPY customers TO STDOUT", "`COPY` is refused"),
        ] {
            let r = x(&mut st, &audit, sql, vec![]).await;
            assert!(
                matches!(&r, Err(VerbError::Guest(WitError::Denied(w))) if w.contains(why)),
                "{sql}: {r:?}"
            );
        }
        // Leaving the scope, or past max_rows: rolled back.
        for (sql, outcome) in [
            (
                "INSERT INTO customers (id, country, plan) VALUES (102, 'DE', 'a'), (103, 'FR', 'b')",
                "outside the grant's row scope",
            ),
            (
                "UPDATE customers SET country = 'FR' WHERE id = 1",
                "outside the grant's row scope",
            ),
            (
                "UPDATE customers SET plan = 'x' WHERE id < 100 OR true",
                "sql-rows",
            ),
        ] {
            let r = x(&mut st, &audit, sql, vec![]).await;
            let text = format!("{r:?}");
            assert!(r.is_err() && text.contains(outcome), "{sql}: {text}");
        }
        assert_eq!(table(&admin).await, before, "nothing was written so far");

        // Inside the scope: inserted, updated and deleted, never the French row.
        let n = x(
            &mut st,
            &audit,
            "INSERT INTO customers (id, country, plan, mrr) VALUES ($1, 'DE', $2, 5)",
            vec![Value::Integer(100), Value::Text("team".into())],
        )
        .await
        .unwrap();
        assert_eq!(n, 1);
        let n = x(
            &mut st,
            &audit,
            "UPDATE customers SET plan = 'gold' WHERE id > 15",
            vec![],
        )
        .await
        .unwrap();
        assert_eq!(n, 5, "16..19 and 100; never 20");
        let n = x(
            &mut st,
            &audit,
            "DELETE FROM customers WHERE plan = 'gold'",
            vec![],
        )
        .await
        .unwrap();
        assert_eq!(n, 5);
        let after = table(&admin).await;
        assert_eq!(after.len(), 16);
        assert!(
            after
                .iter()
                .any(|r| r.0 == 20 && r.2.as_deref() == Some("CANARY-FR"))
        );
    }
}
