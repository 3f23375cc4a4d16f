//! The `sql` grant as written in a toolkit (`[tools.T.grants.sql]`): which
//! database, which tables, columns and rows the tool sees, and its limits;
//! its plain-words description and its comparison for permission diffs.

use std::collections::BTreeMap;
use std::time::Duration;

use airlock_core::ScopeChange;
use serde::{Deserialize, Serialize};

/// Rows per query when the grant does not say.
pub const DEFAULT_MAX_ROWS: u32 = 1000;
/// Per-query timeout when the grant does not say.
pub const DEFAULT_TIMEOUT: &str = "5s";

/// What one tool may see of one database.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SqlGrant {
    /// The database's name in the host config (`[databases.NAME]`).
    pub database: String,
    /// Most rows one query may return (then `exhausted("sql-rows")`).
    #[serde(default = "default_max_rows")]
    pub max_rows: u32,
    /// Most calls in one job (unlimited when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_calls: Option<u32>,
    /// Per-query timeout as people write it (`5s`); the job's deadline
    /// applies too, whichever comes first.
    #[serde(default = "default_timeout")]
    pub timeout: String,
    /// Whether `execute` may insert, update and delete rows of the granted
    /// tables that are not aggregate-only, through the same view.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub write: bool,
    /// The granted tables, by name.
    #[serde(default)]
    pub tables: BTreeMap<String, TableGrant>,
}

/// What one tool sees of one table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TableGrant {
    /// The columns the tool sees; every other column does not exist for it.
    pub columns: Vec<String>,
    /// Granted columns the tool sees only transformed (`pseudonym`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub masked: BTreeMap<String, Mask>,
    /// The operator's row scope: an SQL predicate over the table's columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<String>,
    /// Only grouped aggregates over at least `min_group` rows come back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregate_only: Option<AggregateOnly>,
}

/// How a masked column is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mask {
    /// A keyed, stable pseudonym (HMAC-SHA256 under a host-held key).
    Pseudonym,
}

/// `aggregate_only = { min_group = N }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AggregateOnly {
    /// The fewest rows a group may hold to be returned.
    pub min_group: u32,
}

fn default_max_rows() -> u32 {
    DEFAULT_MAX_ROWS
}

fn default_timeout() -> String {
    DEFAULT_TIMEOUT.into()
}

impl SqlGrant {
    /// A read-only grant on `database` with no table yet.
    pub fn new(database: impl Into<String>) -> Self {
        Self {
            database: database.into(),
            max_rows: DEFAULT_MAX_ROWS,
            max_calls: None,
            timeout: default_timeout(),
            write: false,
            tables: BTreeMap::new(),
        }
    }

    /// The per-query timeout, or why it cannot be read.
    pub fn timeout(&self) -> Result<Duration, String> {
        let t = humantime::parse_duration(&self.timeout)
            .map_err(|e| format!("timeout `{}`: {e}; write e.g. \"5s\"", self.timeout))?;
        if t.is_zero() {
            return Err("timeout must be above zero; write e.g. \"5s\"".into());
        }
        Ok(t)
    }

    /// The table grant for `name`, compared case-insensitively (SQL names are).
    pub fn table(&self, name: &str) -> Option<(&str, &TableGrant)> {
        self.tables
            .iter()
            .find(|(t, _)| t.eq_ignore_ascii_case(name))
            .map(|(t, g)| (t.as_str(), g))
    }
}

impl TableGrant {
    /// Whether `column` is masked (case-insensitive).
    pub fn is_masked(&self, column: &str) -> bool {
        self.masked.keys().any(|c| c.eq_ignore_ascii_case(column))
    }

    /// The granted column named `column` (case-insensitive), as the grant spells it.
    pub fn column(&self, column: &str) -> Option<&str> {
        self.columns
            .iter()
            .find(|c| c.eq_ignore_ascii_case(column))
            .map(String::as_str)
    }
}

/// The plain-words lines `airlock explain` prints for a grant.
pub fn describe(grant: &SqlGrant) -> Vec<String> {
    let mut lines = vec![format!(
        "may query the database `{}` through a view (it never sees the connection)",
        grant.database
    )];
    for (name, t) in &grant.tables {
        if let Some(agg) = t.aggregate_only {
            lines.push(format!(
                "{name} only as aggregates over ≥ {} rows (count, sum, avg, total of {})",
                agg.min_group,
                t.columns.join(", ")
            ));
        } else {
            let plain: Vec<&str> = t
                .columns
                .iter()
                .filter(|c| !t.is_masked(c))
                .map(String::as_str)
                .collect();
            let mut line = format!("sees {name}.{}", plain.join(", "));
            if plain.is_empty() {
                line = format!("sees {name} with no plain column");
            }
            let masked: Vec<&str> = t.masked.keys().map(String::as_str).collect();
            if !masked.is_empty() {
                line.push_str(&format!("; {} only as a pseudonym", masked.join(", ")));
            }
            lines.push(line);
        }
        if let Some(rows) = &t.rows {
            lines.push(format!("{name}: only rows where {rows}"));
        }
    }
    lines.push(format!(
        "at most {} rows per query, {} per query{}",
        grant.max_rows,
        grant.timeout,
        match grant.max_calls {
            Some(n) => format!(", {n} queries per job"),
            None => String::new(),
        }
    ));
    let writable: Vec<&str> = grant
        .tables
        .iter()
        .filter(|(_, t)| t.aggregate_only.is_none())
        .map(|(name, _)| name.as_str())
        .collect();
    lines.push(if grant.write {
        format!(
            "may insert, update and delete rows of {} through execute: only granted, \
             unmasked columns, only rows inside the row scope, and what it writes must stay inside it",
            writable.join(", ")
        )
    } else {
        "read-only".into()
    });
    lines
}

/// Calls per job, unlimited being the largest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Calls {
    At(u32),
    Unlimited,
}

impl std::fmt::Display for Calls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Calls::At(n) => write!(f, "{n}"),
            Calls::Unlimited => f.write_str("unlimited"),
        }
    }
}

/// Every difference between two grants. Widening: another database, a new
/// table or column, a mask removed, a row scope removed or changed (the
/// host cannot prove one predicate narrower than another), `aggregate_only`
/// removed or its `min_group` lowered, more rows, calls or time, writes.
pub fn compare(before: &SqlGrant, after: &SqlGrant) -> Vec<ScopeChange> {
    const V: &str = "sql";
    let mut out = Vec::new();
    if before.database != after.database {
        out.push(ScopeChange::widening(format!(
            "~ {V} database {} → {}",
            before.database, after.database
        )));
    }
    for name in before.tables.keys() {
        if !after.tables.contains_key(name) {
            out.push(ScopeChange::narrowing(format!("- {V} table {name}")));
        }
    }
    for (name, a) in &after.tables {
        let Some(b) = before.tables.get(name) else {
            out.push(ScopeChange::widening(format!("+ {V} table {name}")));
            continue;
        };
        let qualified = |t: &TableGrant| -> Vec<String> {
            t.columns.iter().map(|c| format!("{name}.{c}")).collect()
        };
        out.extend(ScopeChange::items(
            V,
            "column",
            &qualified(b),
            &qualified(a),
        ));
        for col in b.masked.keys().filter(|c| !a.masked.contains_key(*c)) {
            out.push(ScopeChange::widening(format!("- {V} masked {name}.{col}")));
        }
        for col in a.masked.keys().filter(|c| !b.masked.contains_key(*c)) {
            out.push(ScopeChange::narrowing(format!("+ {V} masked {name}.{col}")));
        }
        match (&b.rows, &a.rows) {
            (Some(x), Some(y)) if x != y => out.push(ScopeChange::widening(format!(
                "~ {V} rows {name} {x:?} → {y:?}"
            ))),
            (Some(x), None) => out.push(ScopeChange::widening(format!("- {V} rows {name} {x:?}"))),
            (None, Some(y)) => out.push(ScopeChange::narrowing(format!("+ {V} rows {name} {y:?}"))),
            _ => {}
        }
        match (b.aggregate_only, a.aggregate_only) {
            (Some(x), Some(y)) if x.min_group != y.min_group => out.push(ScopeChange {
                widens: y.min_group < x.min_group,
                line: format!("~ {V} min_group {name} {} → {}", x.min_group, y.min_group),
            }),
            (Some(x), None) => out.push(ScopeChange::widening(format!(
                "- {V} aggregate_only {name} (min_group {})",
                x.min_group
            ))),
            (None, Some(y)) => out.push(ScopeChange::narrowing(format!(
                "+ {V} aggregate_only {name} (min_group {})",
                y.min_group
            ))),
            _ => {}
        }
    }
    out.extend(ScopeChange::limit(
        V,
        "max_rows",
        before.max_rows,
        after.max_rows,
    ));
    let calls = |g: &SqlGrant| g.max_calls.map_or(Calls::Unlimited, Calls::At);
    out.extend(ScopeChange::limit(
        V,
        "max_calls",
        calls(before),
        calls(after),
    ));
    let (tb, ta) = (before.timeout(), after.timeout());
    if let (Ok(tb), Ok(ta)) = (tb, ta)
        && tb != ta
    {
        out.push(ScopeChange {
            widens: ta > tb,
            line: format!("~ {V} timeout {} → {}", before.timeout, after.timeout),
        });
    }
    out.extend(ScopeChange::limit(V, "write", before.write, after.write));
    out
}
