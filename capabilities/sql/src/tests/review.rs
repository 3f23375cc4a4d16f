//! Adversarial review of the view: each test is an escape a hostile tool can
//! try today, written as the promise it breaks (real SQLite or PostgreSQL,
//! canary values), so it fails until the wall holds.

use super::*;

mod sql_scope {
    use super::*;

    /// The suppressed-group count is computed after the guest's HAVING: a
    /// HAVING over a small group's aggregate is a yes/no oracle on it, and a
    /// binary search reads a single row's value.
    #[tokio::test]
    async fn suppressed_groups_answer_having_over_a_small_group() {
        let db = db();
        let (mut st, audit) = state(&db, GRANT);
        let mut counts = Vec::new();
        for x in [111, 112] {
            let r = q(
                &mut st,
                &audit,
                &format!(
                    "SELECT customer_id, count(*) FROM invoices GROUP BY customer_id \
                     HAVING sum(amount) > {x} AND customer_id = 2"
                ),
            )
            .await;
            counts.push(r.map(|r| r.suppressed_groups).ok());
        }
        assert_eq!(
            counts[0], counts[1],
            "suppressed_groups says whether customer 2's single invoice is above 111 and 112"
        );
    }

    /// Small groups are dropped after ORDER BY and LIMIT ran over them: the
    /// ordering of a small group's aggregate against a big one's comes back.
    #[tokio::test]
    async fn small_groups_take_part_in_order_by_and_limit() {
        let db = db();
        let (mut st, audit) = state(&db, GRANT);
        let r = q(
            &mut st,
            &audit,
            "SELECT customer_id, sum(amount) FROM invoices GROUP BY customer_id \
             ORDER BY abs(sum(amount) - 112) LIMIT 1",
        )
        .await;
        if let Ok(r) = r {
            // The big group (customer 1) is the only one the tool may see;
            // an empty page says the hidden group is nearer to 112.
            assert_eq!(ints(&r, 0), [1], "{r:?}");
        }
    }

    /// A placeholder may name only a parameter the guest passed, in
    /// SQLite's own forms (`?`, `?N`): named and out-of-range forms are
    /// refused by the view, naming them.
    #[tokio::test]
    async fn placeholders_name_only_the_parameters_passed() {
        let db = db();
        let (mut st, audit) = state(&db, GRANT);
        for (sql, p) in [
            ("SELECT n FROM big WHERE n = ?2", "?2"),
            ("SELECT n FROM big WHERE n = ?0", "?0"),
            ("SELECT n FROM big WHERE n = :a", ":a"),
            ("SELECT n FROM big WHERE n = @a", "@a"),
            ("SELECT n FROM big WHERE n = $a", "$a"),
            ("SELECT n FROM big LIMIT ?9", "?9"),
        ] {
            let r = q_with(&mut st, &audit, sql, vec![Value::Integer(1)]).await;
            assert!(
                matches!(&r, Err(VerbError::Guest(WitError::Denied(w))) if w.contains(&format!("placeholder `{p}`"))),
                "{sql}: {r:?}"
            );
        }
        let r = q_with(
            &mut st,
            &audit,
            "SELECT n FROM big WHERE n = ?1 LIMIT ?",
            vec![Value::Integer(3), Value::Integer(5)],
        )
        .await
        .unwrap();
        assert_eq!(ints(&r, 0), [3]);
    }

    /// LIKE on a plain (unmasked) column is in the accepted subset: the
    /// authorizer lets SQLite's `like` function run it; on a masked column
    /// the view still refuses it.
    #[tokio::test]
    async fn like_on_a_plain_column_is_served() {
        let db = db();
        let (mut st, audit) = state(&db, GRANT);
        let all = q(&mut st, &audit, "SELECT id FROM customers")
            .await
            .unwrap();
        let r = q(
            &mut st,
            &audit,
            "SELECT id FROM customers WHERE plan LIKE '%'",
        )
        .await
        .unwrap();
        assert_eq!(ints(&r, 0), ints(&all, 0));
        let r = q(
            &mut st,
            &audit,
            "SELECT id FROM customers WHERE email LIKE 'c%'",
        )
        .await;
        assert!(
            matches!(&r, Err(VerbError::Guest(WitError::Denied(w))) if w.contains("LIKE")),
            "{r:?}"
        );
    }

    /// What the authorizer (the second wall) refuses reaches the tool as
    /// `denied`, like the view's refusals, not as a database failure.
    #[test]
    fn authorizer_refusals_are_denied() {
        let db = db();
        let Database::Sqlite { path } = db.cap.databases["crm"].clone() else {
            panic!("crm is a SQLite file")
        };
        let mut conn = sqlite::open(&path, &db.cap.key).unwrap();
        sqlite::authorize(&mut conn, &grant(GRANT), false).unwrap();
        for sql in [
            "SELECT hex(plan) FROM customers",
            "SELECT ssn FROM customers",
            "SELECT sql FROM sqlite_master",
        ] {
            let limits = sqlite::Limits {
                max_rows: 10,
                max_bytes: MAX_RESULT_BYTES,
                deadline: Instant::now() + Duration::from_secs(10),
            };
            let r = sqlite::run(&mut conn, sql, &[], limits, &airlock_core::Cancel::new());
            assert!(
                matches!(&r, Err(VerbError::Guest(WitError::Denied(w))) if w.contains("authorizer")),
                "{sql}: {:?}",
                r.map(|r| r.rows.len())
            );
        }
    }

    /// A long chain of operators parses (sqlparser bounds nesting, not
    /// chains) into a tree deep enough to overflow the host's stack while
    /// the view walks, renders or drops it: the whole host dies. Run in a
    /// child process so the crash is observed, not suffered.
    #[test]
    fn a_long_operator_chain_does_not_crash_the_host() {
        const CHILD: &str = "AIRLOCK_SQL_REVIEW_CHILD";
        if std::env::var_os(CHILD).is_some() {
            let db = db();
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            // A tokio worker's stack size (2 MiB), as in the host.
            let long = format!("SELECT n FROM big WHERE n = 1{}", " + 1".repeat(100_000));
            // Just under the statement cap, the deepest tree it allows
            // (8,000 levels): parsed, then refused by depth, without
            // overflowing a worker's stack while parsed or dropped.
            let under = format!("SELECT n FROM big WHERE n = 1{}", "+1".repeat(8_000));
            assert!(under.len() <= crate::guards::MAX_STATEMENT);
            let handle = std::thread::Builder::new()
                .stack_size(2 << 20)
                .spawn(move || {
                    rt.block_on(async {
                        let (mut st, audit) = state(&db, GRANT);
                        let r = q(&mut st, &audit, &long).await;
                        assert!(
                            matches!(&r, Err(VerbError::Guest(WitError::Invalid(w))) if w.contains("16384-byte cap")),
                            "a 100,000-term chain should be refused by the cap: {r:?}"
                        );
                        let r = q(&mut st, &audit, &under).await;
                        assert!(
                            matches!(&r, Err(VerbError::Guest(WitError::Denied(w))) if w.contains("deeper than 64")),
                            "an 8,000-term chain should be refused by depth: {r:?}"
                        );
                        let and = format!(
                            "SELECT customer_id, sum(amount) FROM invoices i JOIN customers c \
                             ON {} GROUP BY customer_id",
                            vec!["c.id = i.customer_id"; 500].join(" AND ")
                        );
                        let r = q(&mut st, &audit, &and).await;
                        assert!(
                            matches!(&r, Err(VerbError::Guest(WitError::Denied(w))) if w.contains("deeper than 64")),
                            "a 500-term join condition should be refused by depth: {r:?}"
                        );
                    })
                })
                .unwrap();
            handle.join().unwrap();
            return;
        }
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "tests::review::sql_scope::a_long_operator_chain_does_not_crash_the_host",
                "--nocapture",
            ])
            .env(CHILD, "1")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "the child running the query died: {:?}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .rev()
                .take(5)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }

    /// Nothing bounds the size of the values SQLite builds while it runs: a
    /// few nested `replace` calls make a 64 MB string inside one row (a
    /// gigabyte with one more level), far above the 16 MiB a result may carry.
    #[tokio::test]
    async fn intermediate_values_are_bounded_like_results() {
        let db = db();
        let (mut st, audit) = state(&db, GRANT);
        let a = "a".repeat(1000);
        let sql = format!(
            "SELECT length(replace(replace('{a}', 'a', '{a}'), 'a', '{b}')) AS n FROM big LIMIT 1",
            b = "a".repeat(64)
        );
        let r = q(&mut st, &audit, &sql).await;
        assert!(
            !matches!(&r, Ok(rows) if ints(rows, 0) == [64_000_000]),
            "a 64 MB intermediate string was built: {r:?}"
        );
    }

    /// The deadline is checked between SQLite's VM steps, not inside a
    /// function: one LIKE with many `%` over a long value (built by the
    /// query) runs far past the grant's timeout, holding a blocking thread.
    #[tokio::test]
    async fn one_slow_like_is_cancelled_at_the_grant_timeout() {
        let db = db();
        let (mut st, audit) = state(&db, GRANT);
        let a = "a".repeat(1000);
        let sql = format!(
            "SELECT count(*) AS n FROM big WHERE n = 1 AND replace('{a}', 'a', '{a}') LIKE '{}b'",
            "%a".repeat(2000)
        );
        let t0 = std::time::Instant::now();
        let r = q(&mut st, &audit, &sql).await;
        let took = t0.elapsed();
        assert!(
            took < std::time::Duration::from_secs(3),
            "a 300ms grant ran for {took:?}: {r:?}"
        );
    }
}

/// Limits of the walls that are documented, not prevented: each test shows
/// the behaviour the README states, so a change to it is noticed.
mod known_limits {
    use super::*;

    /// Thresholding is k-anonymity, not differential privacy: comparing two
    /// different groupings of an aggregate-only table (the whole table as
    /// one group, then every big group) isolates what the small groups hold.
    /// Here customer 2's single invoice is the total minus customer 1's
    /// group. The README says so; `max_calls` bounds the tries, nothing more.
    #[tokio::test]
    async fn aggregate_only_total_minus_big_groups_reveals_a_single_row() {
        let db = db();
        let (mut st, audit) = state(&db, GRANT);
        let total = q(&mut st, &audit, "SELECT sum(amount) FROM invoices")
            .await
            .unwrap();
        let groups = q(
            &mut st,
            &audit,
            "SELECT customer_id, sum(amount) FROM invoices GROUP BY customer_id",
        )
        .await
        .unwrap();
        let rest: i64 = ints(&groups, 1).iter().sum();
        // Customer 2's only invoice is 112 (the 13th invoice).
        assert_eq!(
            ints(&total, 0)[0] - rest,
            112,
            "differencing across groupings is documented as possible; if this \
             changed, update the README's aggregate-only paragraph"
        );
    }
}
