//! Churn report: an example `sql` tool. It asks its granted view of a CRM
//! for customers, revenue and churn by plan, and can list the customers'
//! email column, which the host returns only as pseudonyms.

wit_bindgen::generate!({
    world: "airlock-guest:churn-report/churn-report",
    path: ["../../wit", "wit"],
    generate_all,
});
airlock_guest::verb_error!(airlock::verbs::types::Error);

use airlock::verbs::log::{self, Level};
use airlock::verbs::sql::{self, Value};

/// The tool.
struct ChurnReport;

fn int(v: &Value) -> i64 {
    match v {
        Value::Integer(n) => *n,
        Value::Real(x) => *x as i64,
        _ => 0,
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::Text(s) => s.clone(),
        Value::Null => String::new(),
        other => format!("{other:?}"),
    }
}

impl Guest for ChurnReport {
    fn churn_by_plan() -> Result<Vec<PlanFigures>, String> {
        let rows = sql::query(
            "SELECT plan, count(*) AS customers, sum(mrr) AS mrr, \
             sum(CASE WHEN churned = 1 THEN 1 ELSE 0 END) AS churned \
             FROM customers GROUP BY plan ORDER BY mrr DESC",
            &[],
        )
        .map_err(|e| airlock_guest::describe("sql", &e))?;
        let _ = log::emit(
            Level::Info,
            &format!("churn by plan over {} plans", rows.rows.len()),
        );
        Ok(rows
            .rows
            .iter()
            .map(|r| PlanFigures {
                plan: text(&r[0]),
                customers: int(&r[1]),
                mrr: int(&r[2]),
                churned: int(&r[3]),
            })
            .collect())
    }

    fn emails() -> Result<Vec<String>, String> {
        let rows = sql::query("SELECT email FROM customers ORDER BY id", &[])
            .map_err(|e| airlock_guest::describe("sql", &e))?;
        Ok(rows.rows.iter().map(|r| text(&r[0])).collect())
    }
}

export!(ChurnReport);
