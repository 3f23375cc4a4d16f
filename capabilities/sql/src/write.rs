//! Writes through the view: one `INSERT`, `UPDATE` or `DELETE` on one granted
//! table of a grant with `write = true`, checked like a query (granted,
//! unmasked columns only; no subquery, join or `RETURNING` of the tool's) and
//! rendered anew with the operator's row scope: `UPDATE` and `DELETE` reach
//! only rows inside it, and every row written must still be inside it, which
//! the host checks from a `RETURNING` of its own before it commits.

use std::collections::BTreeSet;

use airlock_core::VerbError;
use sqlparser::ast::{
    AssignmentTarget, Expr, FromTable, ObjectName, SetExpr, Statement, TableFactor, TableObject,
};
use sqlparser::parser::Parser;

use crate::bindings::Value;
use crate::expr::{Info, Place, Scope};
use crate::grant::{SqlGrant, TableGrant};
use crate::sqlite::Raw;
use crate::view::{Backend, Rel, denied, parse_row_scope, quote};

/// The hidden `RETURNING` column: 1 for a written row inside the row scope.
const IN_SCOPE: &str = "__airlock_in_scope";

/// A checked write, ready to run in a transaction the host commits only
/// after [`WritePlan::verify`] accepts what it returned.
#[derive(Debug, Clone)]
pub struct WritePlan {
    /// The statement to run, ending in the host's `RETURNING`.
    pub sql: String,
    /// The table written.
    pub table: String,
    /// The granted columns it reads or writes, as `table.column`.
    pub columns: BTreeSet<String>,
}

/// Checks `statement` as a write under `grant` and renders it (see the
/// module docs). `guest_params` is how many parameters the tool passed.
pub fn plan(
    grant: &SqlGrant,
    statement: &str,
    backend: Backend,
    guest_params: usize,
) -> Result<WritePlan, VerbError> {
    crate::guards::on_plan_stack(statement, || {
        plan_on_stack(grant, statement, backend, guest_params)
    })
}

fn plan_on_stack(
    grant: &SqlGrant,
    statement: &str,
    backend: Backend,
    guest_params: usize,
) -> Result<WritePlan, VerbError> {
    let dialect = backend.dialect();
    let statements = Parser::parse_sql(&*dialect, statement)
        .map_err(|e| VerbError::invalid(format!("the statement does not parse: {e}")))?;
    let [statement] = statements.as_slice() else {
        return Err(denied(format!(
            "one statement per call: {} were given (stacked statements are refused)",
            statements.len()
        )));
    };
    let w = Writer {
        grant,
        backend,
        guest_params,
    };
    match statement {
        Statement::Insert(i) => {
            refuse(
                i.or.is_some(),
                "INSERT OR ... (it can replace rows outside the view)",
            )?;
            refuse(i.ignore || i.replace_into, "INSERT IGNORE and REPLACE")?;
            refuse(i.on.is_some(), "ON CONFLICT")?;
            refuse(i.returning.is_some(), "RETURNING")?;
            refuse(i.table_alias.is_some(), "a table alias in INSERT")?;
            refuse(
                !i.assignments.is_empty() || i.partitioned.is_some() || !i.after_columns.is_empty(),
                "this INSERT form",
            )?;
            let TableObject::TableName(name) = &i.table else {
                return Err(denied("INSERT INTO a table function is refused"));
            };
            let (table, tg) = w.target(name)?;
            if i.columns.is_empty() {
                return Err(denied(
                    "INSERT must name its columns: INSERT INTO t (a, b) VALUES (?, ?)",
                ));
            }
            let mut columns = BTreeSet::new();
            let mut names = Vec::new();
            for c in &i.columns {
                names.push(quote(w.writable(table, tg, &c.value, &mut columns)?));
            }
            let Some(source) = &i.source else {
                return Err(denied(
                    "INSERT ... DEFAULT VALUES is refused: name the values",
                ));
            };
            refuse(
                source.with.is_some() || source.order_by.is_some() || source.limit_clause.is_some(),
                "WITH, ORDER BY or LIMIT around INSERT's VALUES",
            )?;
            let SetExpr::Values(values) = &*source.body else {
                return Err(denied(
                    "INSERT ... SELECT is refused: write INSERT ... VALUES (a write may not read)",
                ));
            };
            // Values are computed from literals and parameters alone.
            let scope = w.scope(Vec::new());
            let mut rows = Vec::new();
            for row in &values.rows {
                if row.len() != names.len() {
                    return Err(VerbError::invalid(format!(
                        "INSERT names {} columns but a row of VALUES has {} values",
                        names.len(),
                        row.len()
                    )));
                }
                for e in row {
                    w.check(e, &scope, tg, &mut columns)?;
                }
                let cells: Vec<String> = row.iter().map(ToString::to_string).collect();
                rows.push(format!("({})", cells.join(", ")));
            }
            let sql = format!(
                "INSERT INTO {} ({}) VALUES {}{}",
                quote(table),
                names.join(", "),
                rows.join(", "),
                w.returning(tg)?
            );
            Ok(WritePlan {
                sql,
                table: table.to_string(),
                columns,
            })
        }
        Statement::Update {
            table: target,
            assignments,
            from,
            selection,
            returning,
            or,
            limit,
        } => {
            refuse(or.is_some(), "UPDATE OR ...")?;
            refuse(
                from.is_some(),
                "UPDATE ... FROM (a write may not read other tables)",
            )?;
            refuse(returning.is_some(), "RETURNING")?;
            refuse(limit.is_some(), "UPDATE ... LIMIT")?;
            refuse(!target.joins.is_empty(), "a join in UPDATE")?;
            let TableFactor::Table { name, alias, .. } = &target.relation else {
                return Err(denied("UPDATE takes a granted table's name"));
            };
            refuse(alias.is_some(), "a table alias in UPDATE")?;
            let (table, tg) = w.target(name)?;
            let scope = w.scope(vec![Rel::of(table, table, tg)]);
            let mut columns = BTreeSet::new();
            let mut sets = Vec::new();
            for a in assignments {
                let AssignmentTarget::ColumnName(col) = &a.target else {
                    return Err(denied("a tuple assignment is refused: SET a = ?, b = ?"));
                };
                let col = single(col)?;
                let col = w.writable(table, tg, &col, &mut columns)?;
                w.check(&a.value, &scope, tg, &mut columns)?;
                sets.push(format!("{} = {}", quote(col), a.value));
            }
            let sql = format!(
                "UPDATE {} SET {}{}{}",
                quote(table),
                sets.join(", "),
                w.filter(selection.as_ref(), &scope, tg, &mut columns)?,
                w.returning(tg)?
            );
            Ok(WritePlan {
                sql,
                table: table.to_string(),
                columns,
            })
        }
        Statement::Delete(d) => {
            refuse(d.using.is_some(), "DELETE ... USING")?;
            refuse(d.returning.is_some(), "RETURNING")?;
            refuse(
                !d.order_by.is_empty() || d.limit.is_some(),
                "DELETE ... ORDER BY/LIMIT",
            )?;
            refuse(!d.tables.is_empty(), "multi-table DELETE")?;
            let (FromTable::WithFromKeyword(from) | FromTable::WithoutKeyword(from)) = &d.from;
            let [target] = from.as_slice() else {
                return Err(denied("DELETE takes one granted table"));
            };
            refuse(!target.joins.is_empty(), "a join in DELETE")?;
            let TableFactor::Table { name, alias, .. } = &target.relation else {
                return Err(denied("DELETE takes a granted table's name"));
            };
            refuse(alias.is_some(), "a table alias in DELETE")?;
            let (table, tg) = w.target(name)?;
            let scope = w.scope(vec![Rel::of(table, table, tg)]);
            let mut columns = BTreeSet::new();
            let sql = format!(
                "DELETE FROM {}{}{}",
                quote(table),
                w.filter(d.selection.as_ref(), &scope, tg, &mut columns)?,
                w.returning(tg)?
            );
            Ok(WritePlan {
                sql,
                table: table.to_string(),
                columns,
            })
        }
        Statement::Query(_) => Err(denied(
            "execute takes INSERT, UPDATE or DELETE; run a SELECT with query",
        )),
        other => Err(denied(format!(
            "`{}` is refused: execute takes one INSERT, UPDATE or DELETE",
            crate::view::keyword(other)
        ))),
    }
}

impl WritePlan {
    /// What the write returned, checked before the host commits: every row
    /// written is inside the row scope. Returns how many rows it wrote.
    pub(crate) fn verify(&self, raw: &Raw) -> Result<u64, VerbError> {
        if raw
            .rows
            .iter()
            .any(|r| !matches!(r.first(), Some(Value::Integer(1))))
        {
            return Err(denied(format!(
                "the write would leave a row of `{}` outside the grant's row scope; \
                 it was rolled back (write only rows the scope covers)",
                self.table
            )));
        }
        Ok(raw.rows.len() as u64)
    }
}

fn refuse(cond: bool, what: &str) -> Result<(), VerbError> {
    if cond {
        Err(denied(format!(
            "{what} is refused: execute accepts INSERT ... VALUES, UPDATE ... SET ... WHERE \
             and DELETE ... WHERE on one granted table"
        )))
    } else {
        Ok(())
    }
}

fn single(name: &ObjectName) -> Result<String, VerbError> {
    match name.0.as_slice() {
        [sqlparser::ast::ObjectNamePart::Identifier(i)] => Ok(i.value.clone()),
        _ => Err(denied(format!(
            "the qualified name `{name}` is refused: name a granted column or table"
        ))),
    }
}

struct Writer<'g> {
    grant: &'g SqlGrant,
    backend: Backend,
    guest_params: usize,
}

impl<'g> Writer<'g> {
    /// The granted table `name` names, if this grant may write it.
    fn target(&self, name: &ObjectName) -> Result<(&'g str, &'g TableGrant), VerbError> {
        let table = single(name)?;
        let Some((granted, tg)) = self.grant.table(&table) else {
            return Err(denied(format!(
                "table `{table}` is not granted to this tool"
            )));
        };
        if !self.grant.write {
            return Err(denied(format!(
                "writes are refused: the sql grant on `{}` is read-only",
                self.grant.database
            )));
        }
        if tg.aggregate_only.is_some() {
            return Err(denied(format!(
                "table `{granted}` is aggregate-only: it cannot be written (a count of \
                 rows changed would single out rows)"
            )));
        }
        Ok((granted, tg))
    }

    /// The granted, unmasked column `col` of `table`, as the grant spells it.
    fn writable(
        &self,
        table: &str,
        tg: &'g TableGrant,
        col: &str,
        columns: &mut BTreeSet<String>,
    ) -> Result<&'g str, VerbError> {
        let Some(granted) = tg.column(col) else {
            return Err(denied(format!(
                "column `{col}` is not granted to this tool"
            )));
        };
        if tg.is_masked(granted) {
            return Err(denied(format!(
                "masked column `{granted}` cannot be written (the tool only ever sees its pseudonym)"
            )));
        }
        columns.insert(format!("{table}.{granted}"));
        Ok(granted)
    }

    fn scope(&self, rels: Vec<Rel>) -> Scope {
        Scope {
            rels,
            aliases: Vec::new(),
            grouping: None,
            agg: false,
            backend: self.backend,
            params: self.guest_params,
        }
    }

    /// Checks one expression of a write: the query rules, and no masked
    /// column at all (a write runs on the table, not on the view, so a
    /// comparison there would test the hidden value).
    fn check(
        &self,
        e: &Expr,
        scope: &Scope,
        tg: &TableGrant,
        columns: &mut BTreeSet<String>,
    ) -> Result<Info, VerbError> {
        let info = crate::expr::check(e, scope, Place::Where)?;
        for (table, col) in &info.refs {
            if tg.is_masked(col) {
                return Err(denied(format!(
                    "masked column `{col}` may not be used in a write (it would compare the \
                     hidden value, not its pseudonym)"
                )));
            }
            columns.insert(format!("{table}.{col}"));
        }
        Ok(info)
    }

    /// ` WHERE (row scope) AND (the tool's condition)`, or as much of it as
    /// there is.
    fn filter(
        &self,
        selection: Option<&Expr>,
        scope: &Scope,
        tg: &TableGrant,
        columns: &mut BTreeSet<String>,
    ) -> Result<String, VerbError> {
        let mut parts = Vec::new();
        if let Some(rows) = &tg.rows {
            parts.push(format!("({})", self.row_scope(rows)?));
        }
        if let Some(w) = selection {
            self.check(w, scope, tg, columns)?;
            parts.push(format!("({w})"));
        }
        Ok(if parts.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", parts.join(" AND "))
        })
    }

    /// ` RETURNING 1 if the written row is inside the row scope, else 0`.
    fn returning(&self, tg: &TableGrant) -> Result<String, VerbError> {
        let test = match &tg.rows {
            Some(rows) => format!("CASE WHEN ({}) THEN 1 ELSE 0 END", self.row_scope(rows)?),
            None => "1".into(),
        };
        Ok(format!(" RETURNING {test} AS {}", quote(IN_SCOPE)))
    }

    fn row_scope(&self, rows: &str) -> Result<Expr, VerbError> {
        parse_row_scope(rows, self.backend)
            .map_err(|e| VerbError::Trap(anyhow::anyhow!("a checked row scope failed: {e}")))
    }
}
