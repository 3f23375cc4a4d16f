//! The view's bounds: how long a statement and how deep an expression may
//! be, which placeholders and cast types a tool may write, and the floor
//! that keeps an aggregate-only table's small groups out of a query.

use airlock_core::VerbError;
use sqlparser::ast::{BinaryOperator, Expr, Select, With};
use sqlparser::parser::Parser;

use crate::view::{Backend, GROUP_COL, ROW_COL, denied, quote};

/// The longest statement the view reads, in bytes: it bounds the tree the
/// parser builds (a chain of operators is as deep as it is long).
pub const MAX_STATEMENT: usize = 16 * 1024;
/// The stack the view parses, walks and drops a statement on: a tree within
/// [`MAX_STATEMENT`] fits it in a debug build, whatever the caller's stack.
pub(crate) const PLAN_STACK: usize = 32 << 20;

/// How deep an expression may nest (operators, functions, CASE): a long
/// chain such as `1 + 1 + ...` is a tree as deep as it is long, and every
/// walk of it recurses.
pub const MAX_DEPTH: usize = 64;

/// Runs `plan` (parsing, walking, rendering and dropping a statement's
/// tree, which all recurse) on a stack of [`PLAN_STACK`] bytes rather than
/// the caller's (a worker thread's), after refusing a statement longer than
/// [`MAX_STATEMENT`].
pub(crate) fn on_plan_stack<T>(
    statement: &str,
    plan: impl FnOnce() -> Result<T, VerbError>,
) -> Result<T, VerbError> {
    if statement.len() > MAX_STATEMENT {
        return Err(VerbError::invalid(format!(
            "the statement is {} bytes, over the {MAX_STATEMENT}-byte cap; send a shorter one",
            statement.len()
        )));
    }
    stacker::grow(PLAN_STACK, plan)
}

pub(crate) fn too_deep() -> VerbError {
    denied(format!(
        "the expression nests deeper than {MAX_DEPTH} levels; split it or use IN (...)"
    ))
}

/// Accepts only the backend's own placeholder form naming a parameter the
/// guest passed (`?` or `?N` on SQLite, `$N` on PostgreSQL, N at most the
/// number passed): the host binds its own parameters after the guest's
/// (PostgreSQL's pseudonym keys), which the guest must never name.
pub(crate) fn placeholder(p: &str, backend: Backend, params: usize) -> Result<(), VerbError> {
    let (sigil, bare_ok) = match backend {
        Backend::Sqlite => ('?', true),
        Backend::Postgres => ('$', false),
    };
    let ok = match p.strip_prefix(sigil) {
        Some("") => bare_ok && params > 0,
        Some(n) if n.bytes().all(|b| b.is_ascii_digit()) => {
            n.parse::<usize>().is_ok_and(|n| n >= 1 && n <= params)
        }
        _ => false,
    };
    if ok {
        return Ok(());
    }
    let form = match backend {
        Backend::Sqlite => "`?` or `?1`..",
        Backend::Postgres => "`$1`..",
    };
    Err(denied(format!(
        "the placeholder `{p}` is refused: {params} parameter(s) were passed; write {form} up to the number passed"
    )))
}

/// Accepts a cast only to a plain scalar type: other types (PostgreSQL's
/// `regclass`, `regrole`, ...) read the system catalogs.
pub(crate) fn cast_type(t: &sqlparser::ast::DataType, backend: Backend) -> Result<(), VerbError> {
    let text = t.to_string().to_ascii_lowercase();
    let base = text.split('(').next().unwrap_or("").trim();
    let allowed: &[&str] = match backend {
        Backend::Sqlite => &["integer", "int", "real", "text", "numeric", "blob"],
        Backend::Postgres => &[
            "integer",
            "int",
            "int2",
            "int4",
            "int8",
            "bigint",
            "smallint",
            "real",
            "float4",
            "float8",
            "double precision",
            "numeric",
            "decimal",
            "text",
            "varchar",
            "character varying",
            "char",
            "character",
            "boolean",
            "bool",
            "date",
            "timestamp",
            "bytea",
        ],
    };
    if allowed.contains(&base) {
        Ok(())
    } else {
        Err(denied(format!(
            "CAST to `{text}` is refused: cast to one of {}",
            allowed.join(", ")
        )))
    }
}

/// Drops an aggregate-only table's groups smaller than `min` inside the
/// query (`count(DISTINCT row) >= min` ANDed to HAVING, so the tool's HAVING,
/// ORDER BY and LIMIT never see them) and adds the hidden group size as the
/// last column, which the host checks again.
pub(crate) fn group_floor(
    select: &mut Select,
    alias: &str,
    min: Option<u32>,
    backend: Backend,
) -> Result<(), VerbError> {
    let dialect = backend.dialect();
    let rows = format!("count(DISTINCT {}.{})", quote(alias), quote(ROW_COL));
    if let Some(min) = min {
        let cond = Parser::new(&*dialect)
            .try_with_sql(&format!("{rows} >= {min}"))
            .and_then(|mut p| p.parse_expr())
            .map_err(|e| VerbError::Trap(anyhow::anyhow!("hidden group floor: {e}")))?;
        select.having = Some(match select.having.take() {
            Some(h) => Expr::BinaryOp {
                left: Box::new(Expr::Nested(Box::new(h))),
                op: BinaryOperator::And,
                right: Box::new(cond),
            },
            None => cond,
        });
    }
    // The hidden group size, counted over the aggregate-only table's
    // distinct rows so a join cannot inflate a group.
    let item = Parser::new(&*dialect)
        .try_with_sql(&format!("{rows} AS {}", quote(GROUP_COL)))
        .and_then(|mut p| p.parse_select_item())
        .map_err(|e| VerbError::Trap(anyhow::anyhow!("hidden count: {e}")))?;
    select.projection.push(item);
    Ok(())
}

/// The statement counting what [`group_floor`] drops: the same `WITH`,
/// select list, `FROM`, `WHERE` and `GROUP BY`, keeping only the groups
/// smaller than `min` (never the tool's `HAVING`, `ORDER BY` or `LIMIT`),
/// and counting them. Parameters keep their positions: only clauses after
/// `GROUP BY` are left out.
pub(crate) fn small_groups(
    with: Option<&With>,
    select: &Select,
    alias: &str,
    min: u32,
    backend: Backend,
) -> Result<String, VerbError> {
    let dialect = backend.dialect();
    let mut small = select.clone();
    let cond = Parser::new(&*dialect)
        .try_with_sql(&format!(
            "count(DISTINCT {}.{}) < {min}",
            quote(alias),
            quote(ROW_COL)
        ))
        .and_then(|mut p| p.parse_expr())
        .map_err(|e| VerbError::Trap(anyhow::anyhow!("suppressed groups: {e}")))?;
    small.having = Some(cond);
    let with = with.map(|w| format!("{w} ")).unwrap_or_default();
    Ok(format!(
        "SELECT count(*) FROM ({with}{small}) AS {}",
        quote("__airlock_small")
    ))
}
