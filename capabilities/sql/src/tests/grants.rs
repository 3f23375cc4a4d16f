//! Grants checked before any query: `check_grant` names what is wrong,
//! `describe` says the view in plain words, `compare` marks what widens.

use super::*;

#[test]
fn check_grant_names_what_is_wrong() {
    let db = db();
    let bad = |text: &str| db.cap.check_grant(&grant(text)).unwrap_err();
    assert!(bad("database = \"nope\"").contains("no such database"));
    assert!(bad("database = \"crm\"\nwrite = true").contains("write = true"));
    let e =
        bad("database = \"crm\"\n[tables.t]\ncolumns = [\"a\"]\nrows = \"a = 1; DROP TABLE t\"");
    assert!(e.contains("one predicate"), "{e}");
    let e = bad("database = \"crm\"\n[tables.t]\ncolumns = [\"a\"]\nrows = \"a IN (SELECT 1)\"");
    assert!(e.contains("subquery"), "{e}");
    let e =
        bad("database = \"crm\"\n[tables.t]\ncolumns = [\"a\"]\nmasked = { b = \"pseudonym\" }");
    assert!(e.contains("masks `t.b`"), "{e}");
    assert!(toml::from_str::<SqlGrant>("database = \"crm\"\nshell = true").is_err());
}

#[test]
fn describe_says_the_view_in_plain_words() {
    let lines = SqlCapability::describe(&grant(GRANT));
    let text = lines.join("\n");
    assert!(
        text.contains("sees customers.id, country, plan, mrr; email only as a pseudonym"),
        "{text}"
    );
    assert!(
        text.contains("customers: only rows where country = 'DE'"),
        "{text}"
    );
    assert!(
        text.contains("invoices only as aggregates over ≥ 10 rows"),
        "{text}"
    );
    assert!(text.contains("read-only"), "{text}");
}

#[test]
fn compare_marks_what_widens() {
    let before = grant(GRANT);
    assert!(SqlCapability::compare(&before, &before).is_empty());
    let mut after = before.clone();
    let c = after.tables.get_mut("customers").unwrap();
    c.masked.clear();
    c.rows = None;
    c.columns.push("ssn".into());
    after.tables.get_mut("invoices").unwrap().aggregate_only = Some(AggregateOnly { min_group: 5 });
    after.max_rows = 10;
    let lines: Vec<String> = SqlCapability::compare(&before, &after)
        .iter()
        .map(|c| format!("{}{}", if c.widens { "W " } else { "N " }, c.line))
        .collect();
    assert_eq!(
        lines,
        [
            "W + sql column customers.ssn",
            "W - sql masked customers.email",
            "W - sql rows customers \"country = 'DE'\"",
            "W ~ sql min_group invoices 10 → 5",
            "N ~ sql max_rows 1000 → 10",
        ]
    );
    let back: Vec<bool> = SqlCapability::compare(&after, &before)
        .iter()
        .map(|c| c.widens)
        .collect();
    assert_eq!(back, [false, false, false, false, true]);
}
