//! Expression checks of the view: which columns an expression reads, which
//! functions and operators it uses, what it does with masked columns, and the
//! rules a query over an aggregate-only table follows.

use airlock_core::VerbError;
use sqlparser::ast::{
    BinaryOperator, CastKind, DuplicateTreatment, Expr, FunctionArg, FunctionArgExpr,
    FunctionArguments, Ident, ObjectNamePart, UnaryOperator, Value,
};

use crate::guards::{MAX_DEPTH, cast_type, placeholder, too_deep};
use crate::view::{Backend, Rel, denied};

/// Aggregates the subset accepts.
pub const AGGREGATES: &[&str] = &["count", "sum", "avg", "min", "max", "total"];
/// Scalar functions the subset accepts; every other function is refused.
pub const FUNCTIONS: &[&str] = &[
    "abs",
    "round",
    "lower",
    "upper",
    "length",
    "substr",
    "trim",
    "ltrim",
    "rtrim",
    "coalesce",
    "ifnull",
    "nullif",
    "replace",
    "instr",
    "date",
    "time",
    "datetime",
    "strftime",
    "julianday",
];

/// Where an expression stands in its SELECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    Projection,
    Where,
    On,
    GroupBy,
    Having,
    OrderBy,
}

impl Place {
    fn aggregates(self) -> bool {
        matches!(self, Place::Projection | Place::Having | Place::OrderBy)
    }
    fn aliases(self) -> bool {
        matches!(self, Place::Having | Place::OrderBy)
    }
}

/// The relations and output names an expression may use.
#[derive(Debug, Clone)]
pub(crate) struct Scope {
    pub rels: Vec<Rel>,
    pub aliases: Vec<(String, Info)>,
    /// The GROUP BY columns (relation, column), lower-cased.
    pub grouping: Option<Vec<(String, String)>>,
    /// Whether the SELECT reads an aggregate-only table.
    pub agg: bool,
    /// The database's dialect (placeholders, cast types, functions).
    pub backend: Backend,
    /// How many parameters the guest passed: a placeholder may name no other.
    pub params: usize,
}

/// What an expression is, as far as the view cares.
#[derive(Debug, Clone, Default)]
pub(crate) struct Info {
    /// `Some(rel.column)` when the expression is exactly a masked column.
    pub masked: Option<String>,
    /// The granted base columns it reads, as (table, column).
    pub refs: Vec<(String, String)>,
}

/// Checks `e` in `scope` at `place` (see the module docs).
pub(crate) fn check(e: &Expr, scope: &Scope, place: Place) -> Result<Info, VerbError> {
    let mut w = Walk {
        scope,
        place,
        in_agg: false,
        refs: Vec::new(),
        depth: 0,
    };
    let masked = w.walk(e)?;
    Ok(Info {
        masked,
        refs: w.refs,
    })
}

struct Walk<'s> {
    scope: &'s Scope,
    place: Place,
    in_agg: bool,
    refs: Vec<(String, String)>,
    depth: usize,
}

fn masked_refused(m: &str, what: &str) -> VerbError {
    denied(format!(
        "masked column `{m}` may only be selected, compared with = or <>, tested for NULL, \
         grouped or counted; {what} is refused"
    ))
}

fn variant(e: &Expr) -> String {
    let text = format!("{e:?}");
    text.split(['(', ' ', '{'])
        .next()
        .unwrap_or("expression")
        .to_string()
}

impl Walk<'_> {
    /// Returns `Some(name)` when `e` is exactly a masked column.
    fn walk(&mut self, e: &Expr) -> Result<Option<String>, VerbError> {
        if self.depth >= MAX_DEPTH {
            return Err(too_deep());
        }
        self.depth += 1;
        let r = self.walk_inner(e);
        self.depth -= 1;
        r
    }

    fn walk_inner(&mut self, e: &Expr) -> Result<Option<String>, VerbError> {
        match e {
            Expr::Identifier(i) => self.column(None, i),
            Expr::CompoundIdentifier(parts) => match parts.as_slice() {
                [rel, col] => self.column(Some(rel), col),
                _ => Err(denied(format!(
                    "schema-qualified name `{e}` is refused: write table.column"
                ))),
            },
            Expr::Value(v) => match &v.value {
                Value::Number(..)
                | Value::SingleQuotedString(_)
                | Value::Boolean(_)
                | Value::Null => Ok(None),
                Value::Placeholder(p) => {
                    placeholder(p, self.scope.backend, self.scope.params)?;
                    Ok(None)
                }
                other => Err(denied(format!(
                    "the literal `{other}` is refused: use numbers, 'text', NULL or parameters"
                ))),
            },
            Expr::Nested(inner) => self.walk(inner),
            Expr::BinaryOp { left, op, right } => {
                use BinaryOperator as B;
                let allowed = matches!(
                    op,
                    B::Plus
                        | B::Minus
                        | B::Multiply
                        | B::Divide
                        | B::Modulo
                        | B::StringConcat
                        | B::Gt
                        | B::Lt
                        | B::GtEq
                        | B::LtEq
                        | B::Eq
                        | B::NotEq
                        | B::And
                        | B::Or
                );
                if !allowed {
                    return Err(denied(format!("the operator `{op}` is refused")));
                }
                let l = self.walk(left)?;
                let r = self.walk(right)?;
                if !matches!(op, B::Eq | B::NotEq)
                    && let Some(m) = l.or(r)
                {
                    return Err(masked_refused(&m, &format!("`{op}`")));
                }
                Ok(None)
            }
            Expr::UnaryOp { op, expr } => {
                if !matches!(
                    op,
                    UnaryOperator::Not | UnaryOperator::Minus | UnaryOperator::Plus
                ) {
                    return Err(denied(format!("the operator `{op}` is refused")));
                }
                self.plain(expr, &format!("`{op}`"))
            }
            Expr::IsNull(x) | Expr::IsNotNull(x) => {
                self.walk(x)?;
                Ok(None)
            }
            Expr::InList { expr, list, .. } => {
                self.walk(expr)?;
                for item in list {
                    self.walk(item)?;
                }
                Ok(None)
            }
            Expr::Between {
                expr, low, high, ..
            } => {
                self.plain(expr, "BETWEEN")?;
                self.plain(low, "BETWEEN")?;
                self.plain(high, "BETWEEN")
            }
            Expr::Like {
                any, expr, pattern, ..
            }
            | Expr::ILike {
                any, expr, pattern, ..
            } => {
                if *any {
                    return Err(denied("LIKE ANY is refused"));
                }
                self.plain(expr, "LIKE")?;
                self.plain(pattern, "LIKE")
            }
            Expr::Case {
                operand,
                conditions,
                else_result,
                ..
            } => {
                for x in operand.iter().chain(else_result.iter()) {
                    self.plain(x, "CASE")?;
                }
                for c in conditions {
                    self.plain(&c.condition, "CASE")?;
                    self.plain(&c.result, "CASE")?;
                }
                Ok(None)
            }
            Expr::Cast {
                kind,
                expr,
                format,
                data_type,
            } => {
                if !matches!(kind, CastKind::Cast | CastKind::DoubleColon) || format.is_some() {
                    return Err(denied("only CAST(x AS type) is accepted"));
                }
                cast_type(data_type, self.scope.backend)?;
                self.plain(expr, "CAST")
            }
            Expr::Function(f) => self.function(f),
            Expr::Substring {
                expr,
                substring_from,
                substring_for,
                ..
            } => {
                for x in substring_from.iter().chain(substring_for.iter()) {
                    self.plain(x, "the function `substr`")?;
                }
                self.plain(expr, "the function `substr`")
            }
            Expr::Subquery(_) | Expr::InSubquery { .. } | Expr::Exists { .. } => Err(denied(
                "subqueries in expressions are refused: use WITH and JOIN",
            )),
            other => Err(denied(format!(
                "{} is refused: it is not in the accepted SQL subset",
                variant(other)
            ))),
        }
    }

    /// Walks `e`, refusing it when it is exactly a masked column.
    fn plain(&mut self, e: &Expr, what: &str) -> Result<Option<String>, VerbError> {
        if let Some(m) = self.walk(e)? {
            return Err(masked_refused(&m, what));
        }
        Ok(None)
    }

    fn function(&mut self, f: &sqlparser::ast::Function) -> Result<Option<String>, VerbError> {
        let name = match f.name.0.as_slice() {
            [ObjectNamePart::Identifier(i)] => i.value.to_ascii_lowercase(),
            _ => {
                return Err(denied(format!(
                    "the function `{}` is refused: it is not on the allow-list",
                    f.name
                )));
            }
        };
        if name == "replace" && self.scope.backend == Backend::Postgres {
            // PostgreSQL has no cap on the values a query builds: nested
            // `replace` multiplies a value's length at every level.
            return Err(denied(
                "the function `replace` is refused on PostgreSQL: it can build values without bound",
            ));
        }
        let aggregate = AGGREGATES.contains(&name.as_str());
        if !aggregate && !FUNCTIONS.contains(&name.as_str()) {
            return Err(denied(format!(
                "the function `{name}` is refused: it is not on the allow-list"
            )));
        }
        if f.uses_odbc_syntax
            || !matches!(f.parameters, FunctionArguments::None)
            || f.filter.is_some()
            || f.null_treatment.is_some()
            || f.over.is_some()
            || !f.within_group.is_empty()
        {
            return Err(denied(format!(
                "`{name}` with FILTER, OVER or WITHIN GROUP is refused"
            )));
        }
        let FunctionArguments::List(list) = &f.args else {
            return Err(denied(format!("`{name}` needs an argument list")));
        };
        if !list.clauses.is_empty() {
            return Err(denied(format!(
                "`{name}` with ORDER BY or other clauses is refused"
            )));
        }
        let distinct = matches!(list.duplicate_treatment, Some(DuplicateTreatment::Distinct));
        if distinct && !aggregate {
            return Err(denied(format!("DISTINCT inside `{name}` is refused")));
        }
        let mut args = Vec::new();
        for a in &list.args {
            match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => args.push(Some(e)),
                FunctionArg::Unnamed(FunctionArgExpr::Wildcard) if name == "count" => {
                    args.push(None)
                }
                _ => {
                    return Err(denied(format!(
                        "`{name}` takes plain arguments (no named or * arguments)"
                    )));
                }
            }
        }
        if !aggregate {
            for e in args.into_iter().flatten() {
                self.plain(e, &format!("the function `{name}`"))?;
            }
            return Ok(None);
        }
        if !self.place.aggregates() {
            return Err(denied(format!(
                "the aggregate `{name}` may appear only in the select list, HAVING or ORDER BY"
            )));
        }
        if self.in_agg {
            return Err(denied("nested aggregates are refused"));
        }
        if args.len() != 1 {
            return Err(denied(format!("the aggregate `{name}` takes one argument")));
        }
        let Some(arg) = args[0] else {
            return Ok(None);
        };
        if self.scope.agg {
            let Some((rel, _)) = bare_column(arg, self.scope) else {
                return Err(denied(format!(
                    "in a query over an aggregate-only table `{name}` takes a bare column \
                     (an expression could single out rows)"
                )));
            };
            let over_agg_only = self
                .scope
                .rels
                .iter()
                .any(|r| r.agg_only.is_some() && r.name.eq_ignore_ascii_case(&rel));
            if over_agg_only && matches!(name.as_str(), "min" | "max") {
                return Err(denied(format!(
                    "`{name}` over an aggregate-only table is refused: it reveals one row's value"
                )));
            }
        }
        self.in_agg = true;
        let inner = self.walk(arg);
        self.in_agg = false;
        if let Some(m) = inner?
            && name != "count"
        {
            return Err(masked_refused(&m, &format!("the aggregate `{name}`")));
        }
        Ok(None)
    }

    /// Resolves a column reference; returns its name when it is masked.
    fn column(&mut self, rel: Option<&Ident>, col: &Ident) -> Result<Option<String>, VerbError> {
        let scope = self.scope;
        let found: Vec<(&Rel, &crate::view::Col)> = scope
            .rels
            .iter()
            .filter(|r| rel.is_none_or(|q| r.name.eq_ignore_ascii_case(&q.value)))
            .flat_map(|r| {
                r.cols
                    .iter()
                    .filter(|c| c.name.eq_ignore_ascii_case(&col.value))
                    .map(move |c| (r, c))
            })
            .collect();
        let (r, c) = match found.as_slice() {
            [one] => *one,
            [] => {
                if rel.is_none() && self.place.aliases() {
                    let alias = col.value.to_ascii_lowercase();
                    if let Some((_, info)) = scope.aliases.iter().find(|(a, _)| *a == alias) {
                        return Ok(info.masked.clone());
                    }
                }
                if let Some(q) = rel
                    && !scope
                        .rels
                        .iter()
                        .any(|r| r.name.eq_ignore_ascii_case(&q.value))
                {
                    return Err(denied(format!(
                        "table `{}` is not granted to this tool or not in FROM",
                        q.value
                    )));
                }
                return Err(denied(format!(
                    "column `{}` is not granted to this tool",
                    col.value
                )));
            }
            _ => {
                return Err(VerbError::invalid(format!(
                    "column `{}` is ambiguous; write table.column",
                    col.value
                )));
            }
        };
        if let Some(t) = &c.table {
            self.refs.push((t.clone(), c.name.clone()));
        }
        if scope.agg && !self.in_agg {
            let grouped = scope.grouping.as_ref().is_some_and(|g| {
                g.iter().any(|(gr, gc)| {
                    gr.eq_ignore_ascii_case(&r.name) && gc.eq_ignore_ascii_case(&c.name)
                })
            });
            if !grouped && !matches!(self.place, Place::GroupBy | Place::On) {
                let why = if matches!(self.place, Place::Where) {
                    "in a query over an aggregate-only table WHERE may filter only on GROUP BY \
                     columns (another filter could single out rows)"
                } else {
                    "in a query over an aggregate-only table a column outside count, sum, avg \
                     or total must be in GROUP BY"
                };
                return Err(denied(format!("column `{}.{}`: {why}", r.name, c.name)));
            }
        }
        Ok(c.masked.then(|| format!("{}.{}", r.name, c.name)))
    }
}

/// `Some((relation, column))` when `e` is exactly one column of `scope`.
pub(crate) fn bare_column(e: &Expr, scope: &Scope) -> Option<(String, String)> {
    let (rel, col) = match e {
        Expr::Identifier(c) => (None, c),
        Expr::CompoundIdentifier(p) if p.len() == 2 => (Some(&p[0]), &p[1]),
        Expr::Nested(inner) => return bare_column(inner, scope),
        _ => return None,
    };
    let mut hits = scope.rels.iter().filter_map(|r| {
        let rel_ok = rel.is_none_or(|q| r.name.eq_ignore_ascii_case(&q.value));
        let c = r
            .cols
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(&col.value));
        (rel_ok && c.is_some()).then(|| (r.name.clone(), col.value.clone()))
    });
    let first = hits.next()?;
    hits.next().is_none().then_some(first)
}

/// In a query over an aggregate-only table a join condition is `a = b`
/// between columns, or several joined by AND: never a filter.
pub(crate) fn equi_join(e: &Expr, scope: &Scope, depth: usize) -> Result<(), VerbError> {
    if depth >= MAX_DEPTH {
        return Err(too_deep());
    }
    match e {
        Expr::Nested(inner) => equi_join(inner, scope, depth + 1),
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            equi_join(left, scope, depth + 1)?;
            equi_join(right, scope, depth + 1)
        }
        Expr::BinaryOp {
            left,
            op: BinaryOperator::Eq,
            right,
        } if bare_column(left, scope).is_some() && bare_column(right, scope).is_some() => Ok(()),
        _ => Err(denied(
            "in a query over an aggregate-only table a join condition is column = column \
             (joined by AND): a filter there could single out rows",
        )),
    }
}

/// Whether `e` is a number or a parameter (what LIMIT and OFFSET take); a
/// parameter must be one the guest passed (see [`placeholder`]).
pub(crate) fn is_number_or_param(
    e: &Expr,
    backend: Backend,
    params: usize,
) -> Result<bool, VerbError> {
    Ok(match e {
        Expr::Value(v) => match &v.value {
            Value::Number(..) => true,
            Value::Placeholder(p) => {
                placeholder(p, backend, params)?;
                true
            }
            _ => false,
        },
        _ => false,
    })
}

/// Every identifier in `e` (the columns a row scope reads).
pub(crate) fn idents(e: &Expr, out: &mut Vec<String>) {
    use sqlparser::ast::Visit;
    struct V<'o>(&'o mut Vec<String>);
    impl sqlparser::ast::Visitor for V<'_> {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &Expr) -> std::ops::ControlFlow<()> {
            match e {
                Expr::Identifier(i) => self.0.push(i.value.clone()),
                Expr::CompoundIdentifier(p) => {
                    if let Some(i) = p.last() {
                        self.0.push(i.value.clone())
                    }
                }
                _ => {}
            }
            std::ops::ControlFlow::Continue(())
        }
    }
    let _ = e.visit(&mut V(out));
}
