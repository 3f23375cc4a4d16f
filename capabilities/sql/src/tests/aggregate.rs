//! Aggregate-only tables: only groups of at least `min_group` distinct rows
//! come back, and the routes to differencing are refused.

mod sql_scope {
    use super::super::*;

    #[tokio::test]
    async fn aggregate_only_tables_return_big_groups_and_refuse_differencing() {
        let db = db();
        let (mut st, audit) = state(&db, GRANT);
        let r = q(
            &mut st,
            &audit,
            "SELECT customer_id, count(*) AS n, sum(amount) AS total FROM invoices GROUP BY customer_id",
        )
        .await
        .unwrap();
        assert_eq!(r.columns, ["customer_id", "n", "total"]);
        assert_eq!(
            ints(&r, 0),
            [1],
            "customer 2's single invoice is suppressed"
        );
        // Small groups are dropped inside the query (so the guest's HAVING,
        // ORDER BY and LIMIT never see them) and counted by a second query.
        assert_eq!(r.suppressed_groups, 1);
        // Small groups by construction come back empty: all 13 are counted.
        let r = q(
            &mut st,
            &audit,
            "SELECT paid_at, sum(amount) FROM invoices GROUP BY paid_at",
        )
        .await
        .unwrap();
        assert!(r.rows.is_empty());
        assert_eq!(r.suppressed_groups, 13);
        // The count follows FROM, WHERE and GROUP BY, never the tool's HAVING,
        // ORDER BY or LIMIT: those cannot ask questions about a small group.
        for (sql, rows, suppressed) in [
            (
                "SELECT customer_id, sum(amount) FROM invoices GROUP BY customer_id HAVING count(*) = 1",
                0,
                1,
            ),
            (
                "SELECT customer_id, sum(amount) FROM invoices GROUP BY customer_id \
                 HAVING sum(amount) > 1000000",
                0,
                1,
            ),
            (
                "SELECT customer_id, sum(amount) FROM invoices GROUP BY customer_id \
                 ORDER BY customer_id LIMIT 0",
                0,
                1,
            ),
            (
                "SELECT customer_id, sum(amount) FROM invoices WHERE customer_id = 1 \
                 GROUP BY customer_id",
                1,
                0,
            ),
        ] {
            let r = q(&mut st, &audit, sql).await.unwrap();
            assert_eq!(
                (r.rows.len(), r.suppressed_groups),
                (rows, suppressed),
                "{sql}"
            );
        }
        // Bare `?` placeholders keep their positions in the count, which
        // leaves out the HAVING's: here WHERE binds 2, the small group.
        let r = q_with(
            &mut st,
            &audit,
            "SELECT customer_id, count(*) + ? AS n FROM invoices WHERE customer_id = ? \
             GROUP BY customer_id HAVING sum(amount) > ?",
            vec![Value::Integer(0), Value::Integer(2), Value::Integer(0)],
        )
        .await
        .unwrap();
        assert_eq!((r.rows.len(), r.suppressed_groups), (0, 1));
        let detail = audit.records().last().and_then(|r| r.detail.clone());
        assert!(
            detail
                .as_deref()
                .is_some_and(|d| d.contains("suppressed=1")),
            "the audit records the count: {detail:?}"
        );
        // A join that repeats one invoice many times does not make its group big.
        let r = q(
            &mut st,
            &audit,
            "SELECT i.customer_id, sum(i.amount) FROM invoices i JOIN customers c ON c.plan = c.plan \
             GROUP BY i.customer_id",
        )
        .await
        .unwrap();
        assert_eq!(ints(&r, 0), [1]);
        for (sql, why) in [
            ("SELECT amount FROM invoices", "must be in GROUP BY"),
            (
                "SELECT customer_id, amount FROM invoices GROUP BY customer_id",
                "must be in GROUP BY",
            ),
            (
                "SELECT sum(amount) FROM invoices GROUP BY id",
                "column `id` is not granted",
            ),
            // Differencing: total minus "everyone but 2" reveals customer 2.
            (
                "SELECT sum(amount) FROM invoices WHERE customer_id <> 2",
                "WHERE may filter only",
            ),
            (
                "SELECT sum(amount) FROM invoices GROUP BY customer_id = 2",
                "bare columns",
            ),
            (
                "SELECT sum(CASE WHEN customer_id = 2 THEN amount END) FROM invoices",
                "bare column",
            ),
            ("SELECT min(amount) FROM invoices", "reveals one row"),
            (
                "SELECT max(amount) FROM invoices GROUP BY customer_id",
                "reveals one row",
            ),
            (
                "SELECT c.plan, sum(i.amount) FROM invoices i JOIN customers c \
                 ON i.customer_id = c.id AND c.id <> 2 GROUP BY c.plan",
                "join condition",
            ),
            (
                "WITH c AS (SELECT id FROM customers WHERE id <> 2) \
                 SELECT sum(i.amount) FROM invoices i JOIN c ON i.customer_id = c.id",
                "may join only granted tables",
            ),
            (
                "WITH x AS (SELECT sum(amount) AS s FROM invoices) SELECT s FROM x",
                "outermost",
            ),
            ("SELECT DISTINCT customer_id FROM invoices", "DISTINCT"),
            (
                "SELECT a.customer_id, count(*) FROM invoices a JOIN invoices b \
                 ON a.customer_id = b.customer_id GROUP BY a.customer_id",
                "at most one aggregate-only table",
            ),
        ] {
            denied(q(&mut st, &audit, sql).await, why);
        }
        // The whole table is one group of 13: allowed.
        let r = q(
            &mut st,
            &audit,
            "SELECT count(*), sum(amount) FROM invoices",
        )
        .await
        .unwrap();
        assert_eq!(ints(&r, 0), [13]);
    }
}
