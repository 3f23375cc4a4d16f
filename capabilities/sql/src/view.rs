//! The view: reads one guest statement with `sqlparser`, refuses whatever the
//! grant or the accepted subset does not allow (naming the table, column or
//! construct), and rewrites every granted table into a sub-select of its
//! granted columns under the operator's row scope, masked columns replaced by
//! their pseudonym. The statement that runs is rendered from the checked
//! tree, never from the guest's text, so comments and stacking are gone.

use std::collections::BTreeSet;

use airlock_core::VerbError;
use sqlparser::ast::{
    Distinct, Expr, GroupByExpr, LimitClause, OrderByKind, Query, Select, SelectFlavor, SelectItem,
    SetExpr, Statement,
};
use sqlparser::dialect::{Dialect, PostgreSqlDialect, SQLiteDialect};
use sqlparser::parser::Parser;

use crate::expr::{Info, Place, Scope};
use crate::grant::{SqlGrant, TableGrant};

mod from;

/// The SQL function the host registers to compute pseudonyms; the guest
/// cannot call it (it is not on the allow-list).
pub const PSEUDONYM_FN: &str = "airlock_pseudonym";
/// The hidden column of an aggregate-only table's sub-select: its row id.
pub(crate) const ROW_COL: &str = "__airlock_row";
/// The hidden column counting an aggregate-only group's distinct rows.
pub(crate) const GROUP_COL: &str = "__airlock_group_rows";

/// Which SQL the database speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite (embedded).
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

impl Backend {
    pub(crate) fn dialect(self) -> Box<dyn Dialect> {
        match self {
            Backend::Sqlite => Box::new(SQLiteDialect {}),
            Backend::Postgres => Box::new(PostgreSqlDialect {}),
        }
    }

    fn row_id(self) -> &'static str {
        match self {
            Backend::Sqlite => "rowid",
            Backend::Postgres => "ctid",
        }
    }
}

/// A checked, rewritten statement ready to run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The statement to run (rendered from the rewritten tree).
    pub sql: String,
    /// The granted tables the statement reads.
    pub tables: BTreeSet<String>,
    /// The granted columns it reads, as `table.column`.
    pub columns: BTreeSet<String>,
    /// For a query over an aggregate-only table: the smallest group it may
    /// return; the last result column is then the hidden group size.
    pub min_group: Option<u32>,
    /// Whether the statement takes the pseudonym's padded keys as its two
    /// last parameters (PostgreSQL, when a masked column is in view).
    pub pads: bool,
    /// For a query over an aggregate-only table: the statement counting the
    /// groups the floor drops, run with the same parameters.
    pub count: Option<String>,
}

/// One column visible in a scope.
#[derive(Debug, Clone)]
pub(crate) struct Col {
    pub name: String,
    pub masked: bool,
    /// The base table it comes from, for audit (`None` for a computed one).
    pub table: Option<String>,
}

/// One relation in a FROM clause.
#[derive(Debug, Clone)]
pub(crate) struct Rel {
    pub name: String,
    pub cols: Vec<Col>,
    /// `Some(min_group)` for an aggregate-only table.
    pub agg_only: Option<u32>,
    /// Whether it is a granted base table (not a WITH result).
    pub base: bool,
}

impl Rel {
    /// Granted table `table` (its grant `tg`) under the name `name`.
    pub(crate) fn of(name: &str, table: &str, tg: &TableGrant) -> Self {
        Rel {
            name: name.to_string(),
            cols: tg
                .columns
                .iter()
                .map(|c| Col {
                    name: c.clone(),
                    masked: tg.is_masked(c),
                    table: Some(table.to_string()),
                })
                .collect(),
            agg_only: tg.aggregate_only.map(|a| a.min_group),
            base: true,
        }
    }
}

pub(crate) fn denied(why: impl Into<String>) -> VerbError {
    VerbError::denied(why)
}

/// Checks `statement` against `grant` and rewrites it (see the module docs).
/// `guest_params` is how many parameters the guest passes: on PostgreSQL the
/// pseudonym's padded keys are bound after them (`$N+1`, `$N+2`), and no
/// placeholder may name a parameter past `guest_params`.
pub fn plan(
    grant: &SqlGrant,
    statement: &str,
    backend: Backend,
    guest_params: usize,
) -> Result<Plan, VerbError> {
    crate::guards::on_plan_stack(statement, || {
        plan_on_stack(grant, statement, backend, guest_params)
    })
}

fn plan_on_stack(
    grant: &SqlGrant,
    statement: &str,
    backend: Backend,
    guest_params: usize,
) -> Result<Plan, VerbError> {
    let dialect = backend.dialect();
    let mut statements = Parser::parse_sql(&*dialect, statement)
        .map_err(|e| VerbError::invalid(format!("the statement does not parse: {e}")))?;
    if statements.len() != 1 {
        return Err(denied(format!(
            "one statement per call: {} were given (stacked statements are refused)",
            statements.len()
        )));
    }
    let Statement::Query(query) = &mut statements[0] else {
        let hint = match &statements[0] {
            Statement::Insert(_) | Statement::Update { .. } | Statement::Delete(_)
                if grant.write =>
            {
                " (writes go through execute)"
            }
            _ => "",
        };
        return Err(denied(format!(
            "`{}` is refused: query accepts one read-only SELECT{hint}",
            keyword(&statements[0])
        )));
    };
    let mut v = Viewer {
        grant,
        backend,
        ctes: Vec::new(),
        tables: BTreeSet::new(),
        columns: BTreeSet::new(),
        min_group: None,
        guest_params,
        pads: false,
        count: None,
    };
    v.query(query, true)?;
    Ok(Plan {
        sql: statements[0].to_string(),
        tables: v.tables,
        columns: v.columns,
        min_group: v.min_group,
        pads: v.pads,
        count: v.count,
    })
}

/// The statement's leading keyword, for a refusal (`INSERT`, `PRAGMA`).
pub(crate) fn keyword(s: &Statement) -> String {
    let text = s.to_string();
    text.split_whitespace()
        .next()
        .unwrap_or("statement")
        .to_ascii_uppercase()
}

/// Parses the operator's row scope (`rows = "..."`), refusing a predicate
/// that reaches outside its table (subqueries, other statements).
pub fn parse_row_scope(rows: &str, backend: Backend) -> Result<Expr, String> {
    let dialect = backend.dialect();
    let mut parser = Parser::new(&*dialect)
        .try_with_sql(rows)
        .map_err(|e| format!("row scope `{rows}` does not parse: {e}"))?;
    let expr = parser
        .parse_expr()
        .map_err(|e| format!("row scope `{rows}` does not parse: {e}"))?;
    if parser.peek_token().token != sqlparser::tokenizer::Token::EOF {
        return Err(format!(
            "row scope `{rows}` must be one predicate over the table's columns"
        ));
    }
    let rendered = expr.to_string();
    let lower = rendered.to_ascii_lowercase();
    if lower.contains("select") {
        return Err(format!(
            "row scope `{rows}` may not hold a subquery; write a predicate over the table's columns"
        ));
    }
    Ok(expr)
}

/// The identifiers a row scope mentions (the columns it reads).
pub(crate) fn scope_columns(expr: &Expr) -> Vec<String> {
    let mut out = Vec::new();
    crate::expr::idents(expr, &mut out);
    out
}

struct Viewer<'g> {
    grant: &'g SqlGrant,
    backend: Backend,
    ctes: Vec<(String, Vec<Col>)>,
    tables: BTreeSet<String>,
    columns: BTreeSet<String>,
    min_group: Option<u32>,
    guest_params: usize,
    pads: bool,
    count: Option<String>,
}

fn refuse_if(cond: bool, what: &str) -> Result<(), VerbError> {
    if cond {
        Err(denied(format!(
            "{what} is refused: it is not in the accepted SQL subset"
        )))
    } else {
        Ok(())
    }
}

impl Viewer<'_> {
    fn query(&mut self, q: &mut Query, outer: bool) -> Result<Vec<Col>, VerbError> {
        refuse_if(q.fetch.is_some(), "FETCH")?;
        refuse_if(!q.locks.is_empty(), "FOR UPDATE/SHARE")?;
        refuse_if(q.for_clause.is_some(), "FOR")?;
        refuse_if(q.settings.is_some(), "SETTINGS")?;
        refuse_if(q.format_clause.is_some(), "FORMAT")?;
        refuse_if(!q.pipe_operators.is_empty(), "a pipe operator")?;
        let ctes_before = self.ctes.len();
        if let Some(with) = &mut q.with {
            refuse_if(with.recursive, "WITH RECURSIVE")?;
            for cte in &mut with.cte_tables {
                let name = cte.alias.name.value.clone();
                refuse_if(!cte.alias.columns.is_empty(), "a WITH column list")?;
                refuse_if(cte.from.is_some(), "WITH ... FROM")?;
                refuse_if(cte.materialized.is_some(), "WITH ... MATERIALIZED")?;
                if self.grant.table(&name).is_some() {
                    return Err(denied(format!(
                        "WITH `{name}` would hide the granted table of that name; choose another name"
                    )));
                }
                let cols = self.query(&mut cte.query, false)?;
                self.ctes.push((name.to_ascii_lowercase(), cols));
            }
        }
        let SetExpr::Select(select) = &mut *q.body else {
            let what = match &*q.body {
                SetExpr::SetOperation { op, .. } => format!("{op}"),
                SetExpr::Values(_) => "VALUES".into(),
                SetExpr::Query(_) => "a parenthesized query".into(),
                SetExpr::Table(_) => "TABLE".into(),
                _ => "a writing statement".into(),
            };
            return Err(denied(format!(
                "{what} is refused: it is not in the accepted SQL subset (one SELECT, with WITH for more)"
            )));
        };
        let (cols, scope, agg_alias) = self.select(select, outer)?;
        if let Some(order) = &q.order_by {
            refuse_if(order.interpolate.is_some(), "INTERPOLATE")?;
            let OrderByKind::Expressions(items) = &order.kind else {
                return Err(denied("ORDER BY ALL is refused"));
            };
            for item in items {
                refuse_if(item.with_fill.is_some(), "WITH FILL")?;
                let info = self.expr(&item.expr, &scope, Place::OrderBy)?;
                if let Some(m) = &info.masked {
                    return Err(denied(format!(
                        "masked column `{m}` may not be used in ORDER BY (an order reveals the hidden value)"
                    )));
                }
            }
        }
        if let Some(limit) = &q.limit_clause {
            let (limit, offset) = match limit {
                LimitClause::LimitOffset {
                    limit,
                    offset,
                    limit_by,
                } => {
                    refuse_if(!limit_by.is_empty(), "LIMIT BY")?;
                    (limit.as_ref(), offset.as_ref().map(|o| &o.value))
                }
                LimitClause::OffsetCommaLimit { offset, limit } => (Some(limit), Some(offset)),
            };
            for e in limit.into_iter().chain(offset) {
                if !crate::expr::is_number_or_param(e, self.backend, self.guest_params)? {
                    return Err(denied(
                        "LIMIT and OFFSET take a number or a parameter, not an expression",
                    ));
                }
            }
        }
        self.ctes.truncate(ctes_before);
        if let Some(alias) = &agg_alias {
            if let Some(min) = self.min_group {
                self.count = Some(crate::guards::small_groups(
                    q.with.as_ref(),
                    select,
                    alias,
                    min,
                    self.backend,
                )?);
            }
            crate::guards::group_floor(select, alias, self.min_group, self.backend)?;
        }
        Ok(cols)
    }

    /// Checks and rewrites one SELECT; returns its output columns, its scope
    /// (for ORDER BY) and, over an aggregate-only table, that table's alias.
    fn select(
        &mut self,
        s: &mut Select,
        outer: bool,
    ) -> Result<(Vec<Col>, Scope, Option<String>), VerbError> {
        refuse_if(s.top.is_some(), "TOP")?;
        refuse_if(s.exclude.is_some(), "EXCLUDE")?;
        refuse_if(s.into.is_some(), "SELECT INTO")?;
        refuse_if(!s.lateral_views.is_empty(), "LATERAL VIEW")?;
        refuse_if(s.prewhere.is_some(), "PREWHERE")?;
        refuse_if(!s.cluster_by.is_empty(), "CLUSTER BY")?;
        refuse_if(!s.distribute_by.is_empty(), "DISTRIBUTE BY")?;
        refuse_if(!s.sort_by.is_empty(), "SORT BY")?;
        refuse_if(!s.named_window.is_empty(), "WINDOW")?;
        refuse_if(s.qualify.is_some(), "QUALIFY")?;
        refuse_if(s.value_table_mode.is_some(), "SELECT AS VALUE")?;
        refuse_if(s.connect_by.is_some(), "CONNECT BY")?;
        refuse_if(s.flavor != SelectFlavor::Standard, "FROM-first SELECT")?;
        refuse_if(matches!(s.distinct, Some(Distinct::On(_))), "DISTINCT ON")?;

        let mut rels = Vec::new();
        let mut ons = Vec::new();
        for twj in &mut s.from {
            self.from(twj, &mut rels, &mut ons)?;
        }
        let agg: Vec<&Rel> = rels.iter().filter(|r| r.agg_only.is_some()).collect();
        let agg_alias = match agg.as_slice() {
            [] => None,
            [one] => {
                if !outer {
                    return Err(denied(format!(
                        "aggregate-only table `{}` may be queried only in the outermost SELECT, \
                         not inside WITH",
                        one.name
                    )));
                }
                if let Some(other) = rels.iter().find(|r| !r.base) {
                    return Err(denied(format!(
                        "a query over aggregate-only table `{}` may join only granted tables, \
                         not the WITH result `{}`",
                        one.name, other.name
                    )));
                }
                refuse_if(
                    s.distinct.is_some(),
                    "DISTINCT in a query over an aggregate-only table",
                )?;
                self.min_group = one.agg_only;
                Some(one.name.clone())
            }
            _ => {
                return Err(denied(
                    "a query may name at most one aggregate-only table, once",
                ));
            }
        };
        let mut scope = Scope {
            rels,
            aliases: Vec::new(),
            grouping: None,
            agg: agg_alias.is_some(),
            backend: self.backend,
            params: self.guest_params,
        };
        // GROUP BY first: in a query over an aggregate-only table every
        // other clause is checked against it.
        if let GroupByExpr::Expressions(exprs, modifiers) = &s.group_by {
            refuse_if(!modifiers.is_empty(), "GROUP BY modifiers (ROLLUP, CUBE)")?;
            let mut grouping = Vec::new();
            for e in exprs {
                self.expr(e, &scope, Place::GroupBy)?;
                if scope.agg {
                    let col = crate::expr::bare_column(e, &scope).ok_or_else(|| {
                        denied(
                            "in a query over an aggregate-only table GROUP BY takes bare columns \
                             (an expression could single out rows)",
                        )
                    })?;
                    grouping.push(col);
                }
            }
            scope.grouping = Some(grouping);
        } else {
            return Err(denied("GROUP BY ALL is refused"));
        }
        if scope.agg && scope.grouping.is_none() {
            scope.grouping = Some(Vec::new());
        }
        for on in &ons {
            if scope.agg {
                crate::expr::equi_join(on, &scope, 0)?;
            }
            let info = self.expr(on, &scope, Place::On)?;
            no_bare_mask(&info, "as a join condition")?;
        }
        if let Some(w) = &s.selection {
            let info = self.expr(w, &scope, Place::Where)?;
            no_bare_mask(&info, "as a whole WHERE condition")?;
        }
        let mut out = Vec::new();
        for item in &s.projection {
            let (e, alias) = match item {
                SelectItem::UnnamedExpr(e) => (e, None),
                SelectItem::ExprWithAlias { expr, alias } => (expr, Some(alias)),
                SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..) => {
                    return Err(denied(
                        "SELECT * is refused: name the granted columns you need",
                    ));
                }
            };
            let info = self.expr(e, &scope, Place::Projection)?;
            let name = match (alias, e) {
                (Some(a), _) => a.value.clone(),
                (None, Expr::Identifier(i)) => i.value.clone(),
                (None, Expr::CompoundIdentifier(p)) => {
                    p.last().map(|i| i.value.clone()).unwrap_or_default()
                }
                (None, e) => e.to_string(),
            };
            if name.starts_with("__airlock") {
                return Err(denied("names starting with `__airlock` are the host's"));
            }
            scope
                .aliases
                .push((name.to_ascii_lowercase(), info.clone()));
            out.push(Col {
                name,
                masked: info.masked.is_some(),
                table: None,
            });
        }
        if let Some(h) = &s.having {
            let info = self.expr(h, &scope, Place::Having)?;
            no_bare_mask(&info, "as a whole HAVING condition")?;
        }
        Ok((out, scope, agg_alias))
    }

    fn expr(&mut self, e: &Expr, scope: &Scope, place: Place) -> Result<Info, VerbError> {
        let info = crate::expr::check(e, scope, place)?;
        for (table, col) in &info.refs {
            self.columns.insert(format!("{table}.{col}"));
        }
        Ok(info)
    }
}

fn no_bare_mask(info: &Info, what: &str) -> Result<(), VerbError> {
    match &info.masked {
        Some(m) => Err(denied(format!(
            "masked column `{m}` may not be used {what}"
        ))),
        None => Ok(()),
    }
}

/// `"name"`, with inner quotes doubled.
pub(crate) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
