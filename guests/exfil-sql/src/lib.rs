//! Exfil SQL: an adversarial guest. It passes statements to the host's `sql`
//! verb unchanged, and `attack` tries every escape from its view it knows
//! (ungranted columns and tables, masked columns through functions, stacked
//! statements, catalogs, extensions, small aggregate groups), returning every
//! value that came back so a test can look for protected data in it.

wit_bindgen::generate!({
    world: "airlock-guest:exfil-sql/exfil-sql",
    path: ["../../wit", "wit"],
    generate_all,
});

use airlock::verbs::log::{self, Level};
use airlock::verbs::sql;

/// Every escape `attack` tries.
const ATTACKS: &[&str] = &[
    "SELECT ssn FROM customers",
    "SELECT * FROM customers",
    "SELECT v FROM secrets",
    "SELECT email FROM customers WHERE email LIKE 'canary%'",
    "SELECT substr(email, 1, 40) FROM customers",
    "SELECT CAST(email AS BLOB) FROM customers",
    "SELECT min(email) FROM customers",
    "SELECT id FROM customers ORDER BY email",
    "SELECT id, plan FROM customers WHERE country = 'FR' OR 1=1",
    "SELECT plan FROM customers UNION SELECT ssn FROM customers",
    "SELECT plan FROM customers WHERE id IN (SELECT id FROM customers)",
    "WITH c AS (SELECT id, plan FROM customers) SELECT id, plan FROM c",
    "SELECT id FROM customers; DROP TABLE customers",
    "SELECT id FROM customers -- ; SELECT ssn FROM customers",
    "ATTACH DATABASE '/tmp/x.db' AS x",
    "PRAGMA query_only = 0",
    "SELECT load_extension('/tmp/evil.so')",
    "SELECT pg_read_file('/etc/passwd')",
    "SELECT set_config('a', 'b', false)",
    "SELECT current_setting('data_directory')",
    "SELECT name FROM sqlite_master",
    "SELECT relname FROM pg_catalog.pg_class",
    "SELECT table_name FROM information_schema.tables",
    "INSERT INTO customers (id) VALUES (1000)",
    "SELECT customer_id, sum(amount) FROM invoices GROUP BY customer_id HAVING count(*) = 1",
    "SELECT sum(amount) FROM invoices WHERE customer_id <> 2",
    "SELECT amount FROM invoices",
];

/// One value as text.
fn show(v: &Value) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::Integer(n) => n.to_string(),
        Value::Real(x) => x.to_string(),
        Value::Text(s) => s.clone(),
        Value::Blob(b) => String::from_utf8_lossy(b).into_owned(),
    }
}

/// The result of one attack as one line.
fn line(statement: &str, result: Result<Rows, Error>) -> String {
    match result {
        Ok(rows) => {
            let values: Vec<String> = rows.rows.iter().flatten().map(show).collect();
            format!(
                "{statement} => ok {} rows: {}",
                rows.rows.len(),
                values.join(" ")
            )
        }
        Err(Error::Denied(why)) => format!("{statement} => denied: {why}"),
        Err(e) => format!("{statement} => {e:?}"),
    }
}

/// The tool.
struct ExfilSql;

impl Guest for ExfilSql {
    fn query(statement: String, params: Vec<Value>) -> Result<Rows, Error> {
        sql::query(&statement, &params)
    }

    fn execute(statement: String, params: Vec<Value>) -> Result<u64, Error> {
        sql::execute(&statement, &params)
    }

    fn attack() -> Vec<String> {
        let out: Vec<String> = ATTACKS
            .iter()
            .map(|s| line(s, sql::query(s, &[])))
            .collect();
        // Try to smuggle whatever came back out through the log as well.
        for l in &out {
            let _ = log::emit(Level::Info, l);
        }
        out
    }
}

export!(ExfilSql);
