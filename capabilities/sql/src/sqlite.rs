//! The SQLite backend: a read-only connection (`SQLITE_OPEN_READ_ONLY`,
//! `query_only`) whose authorizer is a second wall behind the view (only the
//! granted tables and columns, only allowed functions, nothing but SELECT),
//! whose progress handler cancels a query at its deadline, and which
//! computes pseudonyms with the host's key.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Instant;

use airlock_core::{Cancel, VerbError};
use rusqlite::functions::FunctionFlags;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};

use crate::bindings::Value;
use crate::expr::{AGGREGATES, FUNCTIONS};
use crate::grant::SqlGrant;
use crate::pseudonym::PseudonymKey;
use crate::view::{PSEUDONYM_FN, Plan, ROW_COL, scope_columns};
use crate::{Backend, MAX_RESULT_BYTES};

/// What one query returned, before group suppression.
pub(crate) struct Raw {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

/// The bounds of one call: rows, bytes of values, and when it must end.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Most rows returned (or written), then `exhausted("sql-rows")`.
    pub max_rows: u32,
    /// Most bytes of values returned, then `exhausted("sql-bytes")`: the
    /// smaller of [`MAX_RESULT_BYTES`] and the job's hostcall-data budget.
    pub max_bytes: usize,
    /// When the statement is cancelled.
    pub deadline: Instant,
}

/// Opens `path` read-only (`query_only` on) with the pseudonym function
/// registered.
pub(crate) fn open(path: &Path, key: &PseudonymKey) -> Result<Connection, VerbError> {
    let conn = connect(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    conn.pragma_update(None, "query_only", true)
        .map_err(|e| VerbError::upstream(format!("cannot open the database: {}", code(&e))))?;
    let key = key.clone();
    conn.create_scalar_function(
        PSEUDONYM_FN,
        1,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        move |ctx| Ok(key.of(ctx.get_raw(0))),
    )
    .map_err(|e| VerbError::Trap(anyhow::anyhow!("pseudonym function: {e}")))?;
    Ok(conn)
}

/// Opens `path` for a grant's writes: read-write, never created, and no
/// pseudonym function (a write may not name a masked column).
pub(crate) fn open_writer(path: &Path) -> Result<Connection, VerbError> {
    connect(path, OpenFlags::SQLITE_OPEN_READ_WRITE)
}

/// Opens an existing `path` with `mode` (no URI, no mutex: one job's worker
/// owns the connection), every value bounded.
fn connect(path: &Path, mode: OpenFlags) -> Result<Connection, VerbError> {
    let conn = Connection::open_with_flags(path, mode | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(|e| VerbError::upstream(format!("cannot open the database: {}", code(&e))))?;
    // No value the query builds (`replace`, `||` nested) may outgrow what a
    // result may carry: SQLite refuses it instead of allocating up to 1 GB.
    conn.set_limit(
        rusqlite::limits::Limit::SQLITE_LIMIT_LENGTH,
        i32::try_from(MAX_RESULT_BYTES).unwrap_or(i32::MAX),
    )
    .map_err(|e| VerbError::Trap(anyhow::anyhow!("length limit: {e}")))?;
    Ok(conn)
}

/// Installs the authorizer for `grant`: reads of granted columns (and the
/// columns a row scope or a row id needs), allowed functions, SELECT and
/// transactions. On a `writer`, reads of masked columns are refused too, and
/// `INSERT`, `UPDATE` of granted unmasked columns and `DELETE` are allowed on
/// the tables the grant may write.
pub(crate) fn authorize(
    conn: &mut Connection,
    grant: &SqlGrant,
    writer: bool,
) -> Result<(), VerbError> {
    let mut readable: HashMap<String, HashSet<String>> = HashMap::new();
    let mut writable: HashMap<String, HashSet<String>> = HashMap::new();
    for (table, tg) in &grant.tables {
        let plain = tg
            .columns
            .iter()
            .filter(|c| !writer || !tg.is_masked(c))
            .map(|c| c.to_ascii_lowercase());
        if writer && grant.write && tg.aggregate_only.is_none() {
            writable.insert(table.to_ascii_lowercase(), plain.clone().collect());
        }
        let cols = readable.entry(table.to_ascii_lowercase()).or_default();
        cols.extend(plain);
        cols.insert(String::new());
        if let Some(rows) = &tg.rows
            && let Ok(e) = crate::view::parse_row_scope(rows, Backend::Sqlite)
        {
            cols.extend(scope_columns(&e).iter().map(|c| c.to_ascii_lowercase()));
        }
        if tg.aggregate_only.is_some() {
            cols.insert("rowid".into());
            if let Some(pk) = rowid_alias(conn, table) {
                cols.insert(pk);
            }
        }
    }
    conn.authorizer(Some(move |ctx: AuthContext<'_>| {
        let main = matches!(ctx.database_name, None | Some("main"));
        let may_write = |table: &str, column: Option<&str>| {
            main && writable
                .get(&table.to_ascii_lowercase())
                .is_some_and(|cols| column.is_none_or(|c| cols.contains(&c.to_ascii_lowercase())))
        };
        let allow = |ok: bool| {
            if ok {
                Authorization::Allow
            } else {
                Authorization::Deny
            }
        };
        match ctx.action {
            AuthAction::Select | AuthAction::Transaction { .. } => Authorization::Allow,
            AuthAction::Insert { table_name } | AuthAction::Delete { table_name } => {
                allow(may_write(table_name, None))
            }
            AuthAction::Update {
                table_name,
                column_name,
            } => allow(may_write(table_name, Some(column_name))),
            AuthAction::Read {
                table_name,
                column_name,
            } => {
                // `None`: the read of no column (`count(*)`) of a table.
                allow(
                    main && readable
                        .get(&table_name.to_ascii_lowercase())
                        .is_some_and(|c| c.contains(&column_name.to_ascii_lowercase())),
                )
            }
            AuthAction::Function { function_name } => {
                let f = function_name.to_ascii_lowercase();
                // `like`: SQLite runs the LIKE operator (which the view
                // checks) as this function.
                allow(
                    f == PSEUDONYM_FN
                        || f == "like"
                        || AGGREGATES.contains(&f.as_str())
                        || FUNCTIONS.contains(&f.as_str()),
                )
            }
            _ => Authorization::Deny,
        }
    }))
    .map_err(|e| VerbError::Trap(anyhow::anyhow!("authorizer: {e}")))
}

/// The name of the column that aliases `table`'s rowid, if any (SQLite
/// reports reads of the rowid under that name).
fn rowid_alias(conn: &Connection, table: &str) -> Option<String> {
    let mut stmt = conn
        .prepare("SELECT name, type, pk FROM pragma_table_info(?1)")
        .ok()?;
    let pks: Vec<(String, String)> = stmt
        .query_map([table], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })
        .ok()?
        .filter_map(Result::ok)
        .filter(|(_, _, pk)| *pk > 0)
        .map(|(n, t, _)| (n, t))
        .collect();
    match pks.as_slice() {
        [(name, ty)] if ty.eq_ignore_ascii_case("integer") => Some(name.to_ascii_lowercase()),
        _ => None,
    }
}

/// Runs `sql` with `params`, cancelled at the deadline or when `cancel`
/// fires; at most `limits.max_rows` rows (then `sql-rows`) and
/// `limits.max_bytes` of values (then `sql-bytes`).
pub(crate) fn run(
    conn: &mut Connection,
    sql: &str,
    params: &[Value],
    limits: Limits,
    cancel: &Cancel,
) -> Result<Raw, VerbError> {
    let fail = |e: rusqlite::Error| interrupted(&e, cancel);
    let mut stmt = prepare(conn, sql, limits, cancel)?;
    if stmt.parameter_count() != params.len() {
        return Err(VerbError::invalid(format!(
            "the statement takes {} parameters; {} were given",
            stmt.parameter_count(),
            params.len()
        )));
    }
    bind(&mut stmt, params).map_err(fail)?;
    let columns: Vec<String> = stmt.column_names().map(|c| c.to_string()).collect();
    let width = columns.len();
    let mut out = Vec::new();
    let mut bytes = 0usize;
    let mut rows = stmt.raw_query();
    while let Some(row) = rows.next().map_err(fail)? {
        if out.len() >= limits.max_rows as usize {
            return Err(VerbError::exhausted("sql-rows"));
        }
        let mut values = Vec::with_capacity(width);
        for i in 0..width {
            let v = match row.get_ref(i).map_err(fail)? {
                ValueRef::Null => Value::Null,
                ValueRef::Integer(n) => Value::Integer(n),
                ValueRef::Real(x) => Value::Real(x),
                ValueRef::Text(t) => {
                    bytes += t.len();
                    Value::Text(String::from_utf8_lossy(t).into_owned())
                }
                ValueRef::Blob(b) => {
                    bytes += b.len();
                    Value::Blob(b.to_vec())
                }
            };
            bytes += 8;
            values.push(v);
        }
        if bytes > limits.max_bytes {
            return Err(VerbError::exhausted("sql-bytes"));
        }
        out.push(values);
    }
    debug_assert!(!columns.iter().any(|c| c == ROW_COL));
    Ok(Raw { columns, rows: out })
}

/// Runs a checked query and, over an aggregate-only table, its count of
/// suppressed groups, both in one read transaction (one snapshot).
pub(crate) fn read(
    conn: &mut Connection,
    plan: &Plan,
    params: &[Value],
    limits: Limits,
    cancel: &Cancel,
) -> Result<(Raw, Option<i64>), VerbError> {
    let Some(count_sql) = &plan.count else {
        return Ok((run(conn, &plan.sql, params, limits, cancel)?, None));
    };
    conn.execute_batch("BEGIN")
        .map_err(|e| interrupted(&e, cancel))?;
    let out = run(conn, &plan.sql, params, limits, cancel).and_then(|raw| {
        let n = count(conn, count_sql, params, limits, cancel)?;
        Ok((raw, Some(n)))
    });
    let _ = conn.execute_batch("COMMIT");
    out
}

/// Runs `sql`, a single `count(*)`, binding the first of `params` it takes
/// (it may leave out placeholders of the statement it was cut from).
fn count(
    conn: &mut Connection,
    sql: &str,
    params: &[Value],
    limits: Limits,
    cancel: &Cancel,
) -> Result<i64, VerbError> {
    let fail = |e: rusqlite::Error| interrupted(&e, cancel);
    let mut stmt = prepare(conn, sql, limits, cancel)?;
    let takes = stmt.parameter_count().min(params.len());
    bind(&mut stmt, &params[..takes]).map_err(fail)?;
    let mut rows = stmt.raw_query();
    match rows.next().map_err(fail)? {
        Some(row) => row.get::<_, i64>(0).map_err(fail),
        None => Ok(0),
    }
}

/// Runs [`run`] between `BEGIN IMMEDIATE` and `COMMIT`, committing only what
/// `accept` accepts; anything else is rolled back. A busy database is waited
/// for until the deadline.
pub(crate) fn write<R>(
    conn: &mut Connection,
    sql: &str,
    params: &[Value],
    limits: Limits,
    cancel: &Cancel,
    accept: impl FnOnce(&Raw) -> Result<R, VerbError>,
) -> Result<R, VerbError> {
    let fail = |e: rusqlite::Error| interrupted(&e, cancel);
    conn.busy_timeout(limits.deadline.saturating_duration_since(Instant::now()))
        .map_err(fail)?;
    conn.execute_batch("BEGIN IMMEDIATE").map_err(fail)?;
    let done = run(conn, sql, params, limits, cancel).and_then(|raw| accept(&raw));
    let end = if done.is_ok() { "COMMIT" } else { "ROLLBACK" };
    match conn.execute_batch(end) {
        Ok(()) => done,
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            done.and(Err(fail(e)))
        }
    }
}

/// Prepares `sql` with the progress handler armed for `limits.deadline`
/// and `cancel`.
fn prepare<'c>(
    conn: &'c mut Connection,
    sql: &str,
    limits: Limits,
    cancel: &Cancel,
) -> Result<rusqlite::Statement<'c>, VerbError> {
    let stop = cancel.clone();
    let deadline = limits.deadline;
    conn.progress_handler(
        1000,
        Some(move || Instant::now() >= deadline || stop.is_cancelled()),
    )
    .map_err(|e| VerbError::Trap(anyhow::anyhow!("progress handler: {e}")))?;
    let conn: &'c Connection = conn;
    conn.prepare(sql).map_err(|e| interrupted(&e, cancel))
}

fn bind(stmt: &mut rusqlite::Statement<'_>, params: &[Value]) -> rusqlite::Result<()> {
    for (i, p) in params.iter().enumerate() {
        match p {
            Value::Null => stmt.raw_bind_parameter(i + 1, rusqlite::types::Null),
            Value::Integer(n) => stmt.raw_bind_parameter(i + 1, n),
            Value::Real(x) => stmt.raw_bind_parameter(i + 1, x),
            Value::Text(s) => stmt.raw_bind_parameter(i + 1, s),
            Value::Blob(b) => stmt.raw_bind_parameter(i + 1, b),
        }?;
    }
    Ok(())
}

/// Maps a SQLite error to the guest's error: an interrupted query is a
/// timeout (or the job's cancellation), an authorizer refusal is `denied`,
/// anything else `upstream` with the error's kind only (SQLite messages can
/// quote schema, never row values, but the kind is enough).
fn interrupted(e: &rusqlite::Error, cancel: &Cancel) -> VerbError {
    if let rusqlite::Error::SqliteFailure(f, _) = e {
        match f.code {
            rusqlite::ErrorCode::OperationInterrupted => {
                if cancel.is_cancelled() {
                    return VerbError::Cancelled;
                }
                return VerbError::timeout();
            }
            rusqlite::ErrorCode::AuthorizationForStatementDenied
            | rusqlite::ErrorCode::PermissionDenied => {
                return VerbError::denied(
                    "the database's authorizer refused the statement (a table, column or \
                     function outside the grant)",
                );
            }
            _ => {}
        }
    }
    // SQLite reports the authorizer's refusal while preparing as a plain
    // error ("not authorized", "prohibited"), often with its input offset.
    let what = code(e);
    if what.contains("not authorized") || what.contains("prohibited") {
        return VerbError::denied(
            "the database's authorizer refused the statement (a table, column or \
             function outside the grant)",
        );
    }
    VerbError::upstream(format!("the database failed the query: {}", code(e)))
}

/// A short, value-free description of a SQLite error.
fn code(e: &rusqlite::Error) -> String {
    match e {
        rusqlite::Error::SqliteFailure(f, Some(msg)) if f.code == rusqlite::ErrorCode::Unknown => {
            // "no such column", "misuse of aggregate": messages about the
            // statement, which the guest wrote.
            msg.clone()
        }
        rusqlite::Error::SqliteFailure(f, _) => format!("{:?}", f.code),
        other => {
            let text = other.to_string();
            text.split(':').next().unwrap_or("error").to_string()
        }
    }
}
