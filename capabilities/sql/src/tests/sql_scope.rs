//! The view on a real SQLite file: granted columns, scoped rows and
//! pseudonyms come back; ungranted reads, masked-column tricks, widened
//! scopes and statements outside the subset are denied; quotas, caps and
//! the grant timeout hold.

use super::*;

#[tokio::test]
async fn the_view_shows_granted_columns_scoped_rows_and_pseudonyms() {
    let db = db();
    let (mut st, audit) = state(&db, GRANT);
    let r = q(
        &mut st,
        &audit,
        "SELECT id, plan, email FROM customers ORDER BY id",
    )
    .await
    .unwrap();
    assert_eq!(r.columns, ["id", "plan", "email"]);
    assert_eq!(ints(&r, 0), (1..=19).collect::<Vec<_>>(), "only DE rows");
    let mails = texts(&r, 2);
    assert!(
        mails
            .iter()
            .all(|m| m.len() == 32 && m.bytes().all(|b| b.is_ascii_hexdigit()))
    );
    let first = mails[0].clone();
    // Equality with a pseudonym finds the row; counts and joins work.
    let r = q_with(
        &mut st,
        &audit,
        "SELECT id FROM customers WHERE email = ?",
        vec![Value::Text(first.clone())],
    )
    .await
    .unwrap();
    assert_eq!(ints(&r, 0), [1]);
    let r = q(
        &mut st,
        &audit,
        "SELECT count(DISTINCT a.email) AS n FROM customers a JOIN customers b ON a.email = b.email",
    )
    .await
    .unwrap();
    assert_eq!(ints(&r, 0), [19]);
    // The audit names tables, columns and counts; never a value.
    let rec = audit.records();
    let detail = rec[0].detail.clone().unwrap();
    assert!(detail.contains("db=crm tables=customers"), "{detail}");
    assert!(
        detail.contains("customers.email") && detail.contains("rows=19"),
        "{detail}"
    );
    assert!(
        !format!("{rec:?}").contains(&first),
        "no pseudonym in the audit"
    );
}

#[tokio::test]
async fn ungranted_columns_tables_star_and_catalogs_are_denied() {
    let db = db();
    let (mut st, audit) = state(&db, GRANT);
    for (sql, why) in [
        ("SELECT ssn FROM customers", "column `ssn` is not granted"),
        (
            "SELECT c.ssn FROM customers c",
            "column `ssn` is not granted",
        ),
        ("SELECT v FROM secrets", "table `secrets` is not granted"),
        ("SELECT * FROM customers", "SELECT * is refused"),
        ("SELECT customers.* FROM customers", "SELECT * is refused"),
        (
            "SELECT name FROM sqlite_master",
            "table `sqlite_master` is not granted",
        ),
        (
            "SELECT sql FROM sqlite_schema",
            "table `sqlite_schema` is not granted",
        ),
        ("SELECT id FROM main.customers", "schema-qualified"),
        ("SELECT usename FROM pg_catalog.pg_user", "schema-qualified"),
        (
            "SELECT table_name FROM information_schema.tables",
            "schema-qualified",
        ),
        (
            "SELECT name FROM pragma_table_info('customers')",
            "table-valued function",
        ),
        (
            "SELECT id FROM (SELECT id, ssn FROM customers)",
            "subqueries",
        ),
    ] {
        denied(q(&mut st, &audit, sql).await, why);
    }
}

#[tokio::test]
async fn masked_columns_never_meet_functions_ranges_or_order() {
    let db = db();
    let (mut st, audit) = state(&db, GRANT);
    for (sql, why) in [
        (
            "SELECT id FROM customers WHERE email LIKE 'a%'",
            "LIKE is refused",
        ),
        (
            "SELECT id FROM customers WHERE email > 'm'",
            "`>` is refused",
        ),
        (
            "SELECT id FROM customers WHERE email BETWEEN 'a' AND 'b'",
            "BETWEEN",
        ),
        ("SELECT id FROM customers ORDER BY email", "ORDER BY"),
        (
            "SELECT length(email) FROM customers",
            "the function `length`",
        ),
        (
            "SELECT substr(email, 1, 3) FROM customers",
            "the function `substr`",
        ),
        ("SELECT lower(email) FROM customers", "the function `lower`"),
        ("SELECT CAST(email AS BLOB) FROM customers", "CAST"),
        ("SELECT min(email) FROM customers", "the aggregate `min`"),
        ("SELECT max(email) FROM customers", "the aggregate `max`"),
        ("SELECT id FROM customers WHERE email", "whole WHERE"),
        (
            "SELECT CASE WHEN id = 1 THEN email END FROM customers",
            "CASE",
        ),
        ("SELECT email || 'x' FROM customers", "`||` is refused"),
    ] {
        denied(q(&mut st, &audit, sql).await, why);
    }
    // Grouping by a pseudonym is grouping by equality: allowed.
    let r = q(
        &mut st,
        &audit,
        "SELECT email, count(*) FROM customers GROUP BY email",
    )
    .await
    .unwrap();
    assert_eq!(r.rows.len(), 19);
}

#[tokio::test]
async fn the_row_scope_cannot_be_widened() {
    let db = db();
    let (mut st, audit) = state(&db, GRANT);
    // Widening in the guest's own WHERE only filters the view.
    let r = q(
        &mut st,
        &audit,
        "SELECT id, plan FROM customers WHERE country = 'FR' OR 1=1",
    )
    .await
    .unwrap();
    assert_eq!(r.rows.len(), 19);
    // A WITH naming the base table reads the view, not the table.
    let r = q(
        &mut st,
        &audit,
        "WITH c AS (SELECT id, plan, email FROM customers) SELECT id, plan, email FROM c",
    )
    .await
    .unwrap();
    assert_eq!(r.rows.len(), 19);
    // Comments are gone (the statement runs as rendered from its tree).
    let r = q(
        &mut st,
        &audit,
        "SELECT id /* x */ FROM customers -- WHERE 0\n",
    )
    .await
    .unwrap();
    assert_eq!(r.rows.len(), 19);
    for (sql, why) in [
        (
            "SELECT id FROM customers UNION SELECT id FROM customers",
            "UNION",
        ),
        (
            "SELECT plan FROM customers WHERE id IN (SELECT id FROM customers)",
            "subqueries",
        ),
        (
            "SELECT id FROM customers WHERE EXISTS (SELECT 1)",
            "subqueries",
        ),
        (
            "WITH customers AS (SELECT 1 AS id) SELECT id FROM customers",
            "would hide",
        ),
        (
            "WITH RECURSIVE r(n) AS (SELECT 1) SELECT n FROM r",
            "WITH RECURSIVE",
        ),
        ("SELECT id FROM customers; DROP TABLE customers", "stacked"),
        (
            "SELECT id FROM customers; SELECT ssn FROM customers",
            "stacked",
        ),
    ] {
        denied(q(&mut st, &audit, sql).await, why);
    }
}

#[tokio::test]
async fn statements_and_functions_outside_the_subset_are_denied() {
    let db = db();
    let (mut st, audit) = state(&db, GRANT);
    for (sql, why) in [
        ("ATTACH DATABASE '/tmp/x.db' AS x", "`ATTACH` is refused"),
        ("PRAGMA query_only = 0", "`PRAGMA` is refused"),
        (
            "SELECT load_extension('/tmp/evil')",
            "the function `load_extension`",
        ),
        (
            "SELECT pg_read_file('/etc/passwd')",
            "the function `pg_read_file`",
        ),
        (
            "SELECT set_config('a', 'b', false)",
            "the function `set_config`",
        ),
        (
            "SELECT current_setting('a')",
            "the function `current_setting`",
        ),
        ("SELECT readfile('/etc/passwd')", "the function `readfile`"),
        (
            "INSERT INTO customers (id) VALUES (99)",
            "`INSERT` is refused",
        ),
        ("UPDATE customers SET plan = 'x'", "`UPDATE` is refused"),
        ("DELETE FROM customers", "`DELETE` is refused"),
        ("DROP TABLE customers", "`DROP` is refused"),
        ("CREATE TABLE x (a)", "`CREATE` is refused"),
    ] {
        denied(q(&mut st, &audit, sql).await, why);
    }
    // COPY does not parse as SQLite: refused before anything runs.
    let r = q(&mut st, &audit, "COPY customers TO '/tmp/out'").await;
    assert!(
        matches!(
            r,
            Err(VerbError::Guest(WitError::Denied(_) | WitError::Invalid(_)))
        ),
        "{r:?}"
    );
    // Writes through `execute` are refused under a read-only grant.
    let w = st.execute("DELETE FROM customers".into(), vec![]).await;
    assert!(
        matches!(&w, Err(VerbError::Guest(WitError::Denied(r))) if r.contains("read-only")),
        "{w:?}"
    );
}

#[tokio::test]
async fn a_query_that_runs_forever_is_cancelled_at_the_grant_timeout() {
    let db = db();
    let (mut st, audit) = state(&db, GRANT);
    let t0 = Instant::now();
    let r = q(
        &mut st,
        &audit,
        "SELECT count(*) FROM big a, big b, big c, big d",
    )
    .await;
    assert!(
        matches!(r, Err(VerbError::Guest(WitError::Timeout))),
        "{r:?}"
    );
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    let rec = audit.records();
    assert!(matches!(&rec[0].decision, Decision::Deny(d) if d.starts_with("timeout")));
    // The connection is usable again after the cancel.
    let r = q(&mut st, &audit, "SELECT count(*) FROM big")
        .await
        .unwrap();
    assert_eq!(ints(&r, 0), [2000]);
}

#[tokio::test]
async fn a_value_grown_past_the_result_cap_is_refused_not_allocated() {
    let db = db();
    let (mut st, audit) = state(&db, GRANT);
    // Each replace multiplies the length by 1000: 10^12 bytes if allowed.
    let blow = "replace(replace(replace(replace(plan, 'f', plan || \
                substr(plan, 1, 0) || '0123456789'), 'r', '01234567890123456789'), \
                '0', '0123456789012345678901234567890123456789'), '1', \
                '0123456789012345678901234567890123456789')";
    let bigger = format!("replace(replace({blow}, '2', {blow}), '3', {blow})");
    let r = q(&mut st, &audit, &format!("SELECT {bigger} FROM customers")).await;
    assert!(
        matches!(&r, Err(VerbError::Guest(WitError::Upstream(w))) if w.contains("TooBig")),
        "{:?}",
        r.as_ref().map(|r| r.rows.len())
    );
}

#[tokio::test]
async fn a_result_past_the_byte_cap_exhausts_sql_bytes() {
    let db = db();
    let rw = rusqlite::Connection::open(db._dir.path().join("crm.db")).unwrap();
    rw.execute_batch("CREATE TABLE wide (v TEXT)").unwrap();
    let mib = "x".repeat(1 << 20);
    for _ in 0..20 {
        rw.execute("INSERT INTO wide VALUES (?1)", [&mib]).unwrap();
    }
    drop(rw);
    let (mut st, audit) = state(&db, &format!("{GRANT}[tables.wide]\ncolumns = [\"v\"]\n"));
    let r = q(&mut st, &audit, "SELECT v FROM wide LIMIT 15")
        .await
        .unwrap();
    assert_eq!(r.rows.len(), 15, "15 MiB is under the cap");
    let r = q(&mut st, &audit, "SELECT v FROM wide").await;
    assert!(
        matches!(&r, Err(VerbError::Guest(WitError::Exhausted(w))) if w == "sql-bytes"),
        "{:?}",
        r.as_ref().map(|r| r.rows.len())
    );
}

#[tokio::test]
async fn a_million_rows_exhaust_sql_rows() {
    let db = db();
    let (mut st, audit) = state(&db, GRANT);
    let r = q(&mut st, &audit, "SELECT a.n FROM big a, big b").await;
    assert!(
        matches!(&r, Err(VerbError::Guest(WitError::Exhausted(w))) if w == "sql-rows"),
        "{r:?}"
    );
    let r = q(&mut st, &audit, "SELECT n FROM big LIMIT 1000")
        .await
        .unwrap();
    assert_eq!(r.rows.len(), 1000);
}

#[tokio::test]
async fn max_calls_and_parameter_counts_are_enforced() {
    let db = db();
    let (mut st, audit) = state(&db, &format!("max_calls = 2\n{GRANT}"));
    // A placeholder naming a parameter that was not passed is refused
    // by the view (it could name the host's own), naming it.
    let r = q(&mut st, &audit, "SELECT n FROM big WHERE n = ?").await;
    assert!(
        matches!(&r, Err(VerbError::Guest(WitError::Denied(w))) if w.contains("placeholder `?`")),
        "{r:?}"
    );
    q_with(
        &mut st,
        &audit,
        "SELECT n FROM big WHERE n = ?",
        vec![Value::Integer(7)],
    )
    .await
    .unwrap();
    let r = q(&mut st, &audit, "SELECT 1").await;
    assert!(
        matches!(&r, Err(VerbError::Guest(WitError::Exhausted(w))) if w == "sql-calls"),
        "{r:?}"
    );
}

/// The authorizer alone (no view in front) refuses what the grant does
/// not name: the second wall.
#[test]
fn the_authorizer_refuses_ungranted_reads_functions_and_statements() {
    let db = db();
    let Database::Sqlite { path } = db.cap.databases["crm"].clone() else {
        panic!("crm is a SQLite file")
    };
    let mut conn = sqlite::open(&path, &db.cap.key).unwrap();
    sqlite::authorize(&mut conn, &grant(GRANT), false).unwrap();
    conn.prepare("SELECT id, plan FROM customers").unwrap();
    for sql in [
        "SELECT ssn FROM customers",
        "SELECT v FROM secrets",
        "SELECT sql FROM sqlite_master",
        "SELECT load_extension('x')",
        "SELECT hex(plan) FROM customers",
        "ATTACH DATABASE ':memory:' AS x",
        "PRAGMA query_only = 0",
        "DELETE FROM customers",
    ] {
        let e = conn
            .prepare(sql)
            .err()
            .unwrap_or_else(|| panic!("{sql} prepared"));
        let text = e.to_string();
        assert!(
            text.contains("not authorized") || text.contains("prohibited"),
            "{sql}: {text}"
        );
    }
}
