//! The FROM side of the view: a granted table named in FROM or JOIN becomes
//! a sub-select of its granted columns under the operator's row scope (masked
//! columns as their pseudonym); a `WITH` name stays; anything else is refused.

use airlock_core::VerbError;
use sqlparser::ast::{
    Expr, Ident, JoinConstraint, JoinOperator, ObjectName, ObjectNamePart, Query, TableAlias,
    TableFactor, TableWithJoins,
};
use sqlparser::parser::Parser;

use crate::grant::TableGrant;

use super::{
    Backend, PSEUDONYM_FN, ROW_COL, Rel, Viewer, denied, parse_row_scope, quote, refuse_if,
};

impl Viewer<'_> {
    pub(super) fn from(
        &mut self,
        twj: &mut TableWithJoins,
        rels: &mut Vec<Rel>,
        ons: &mut Vec<Expr>,
    ) -> Result<(), VerbError> {
        rels.push(self.factor(&mut twj.relation)?);
        for join in &mut twj.joins {
            let constraint = match &join.join_operator {
                JoinOperator::Join(c)
                | JoinOperator::Inner(c)
                | JoinOperator::Left(c)
                | JoinOperator::LeftOuter(c)
                | JoinOperator::CrossJoin(c) => c,
                other => {
                    let text = format!("{other:?}");
                    let kind = text.split(['(', ' ', '{']).next().unwrap_or("join");
                    return Err(denied(format!(
                        "{kind} joins are refused: use JOIN, LEFT JOIN or CROSS JOIN"
                    )));
                }
            };
            match constraint {
                JoinConstraint::On(e) => ons.push(e.clone()),
                JoinConstraint::None => {}
                JoinConstraint::Using(_) | JoinConstraint::Natural => {
                    return Err(denied(
                        "USING and NATURAL joins are refused: write JOIN ... ON a = b",
                    ));
                }
            }
            rels.push(self.factor(&mut join.relation)?);
        }
        Ok(())
    }

    /// Resolves one FROM item: a WITH result stays, a granted table becomes
    /// its view; anything else is refused.
    fn factor(&mut self, f: &mut TableFactor) -> Result<Rel, VerbError> {
        let TableFactor::Table {
            name,
            alias,
            args,
            with_hints,
            version,
            with_ordinality,
            partitions,
            json_path,
            sample,
            index_hints,
        } = f
        else {
            return Err(denied(
                "only granted tables and WITH names may follow FROM or JOIN \
                 (subqueries and table functions are refused; use WITH)",
            ));
        };
        refuse_if(args.is_some(), "a table-valued function")?;
        refuse_if(!with_hints.is_empty(), "a table hint")?;
        refuse_if(version.is_some(), "a table version")?;
        refuse_if(*with_ordinality, "WITH ORDINALITY")?;
        refuse_if(!partitions.is_empty(), "PARTITION")?;
        refuse_if(json_path.is_some(), "a JSON path")?;
        refuse_if(sample.is_some(), "TABLESAMPLE")?;
        refuse_if(!index_hints.is_empty(), "an index hint")?;
        let table = single_name(name)?;
        if let Some(a) = alias {
            refuse_if(!a.columns.is_empty(), "a table alias column list")?;
        }
        let alias_name = alias
            .as_ref()
            .map(|a| a.name.value.clone())
            .unwrap_or_else(|| table.clone());
        if alias_name.starts_with("__airlock") {
            return Err(denied("names starting with `__airlock` are the host's"));
        }
        if let Some((_, cols)) = self
            .ctes
            .iter()
            .rev()
            .find(|(n, _)| n.eq_ignore_ascii_case(&table))
        {
            return Ok(Rel {
                name: alias_name,
                cols: cols.clone(),
                agg_only: None,
                base: false,
            });
        }
        let Some((granted, tg)) = self.grant.table(&table) else {
            return Err(denied(format!(
                "table `{table}` is not granted to this tool"
            )));
        };
        self.tables.insert(granted.to_string());
        let sub = self.view_of(granted, tg)?;
        let rel = Rel::of(&alias_name, granted, tg);
        *f = TableFactor::Derived {
            lateral: false,
            subquery: Box::new(sub),
            alias: Some(TableAlias {
                name: Ident::with_quote('"', alias_name),
                columns: Vec::new(),
            }),
        };
        Ok(rel)
    }

    /// `SELECT granted columns FROM table WHERE row-scope`, parsed back.
    fn view_of(&mut self, table: &str, tg: &TableGrant) -> Result<Query, VerbError> {
        if self.backend == Backend::Postgres && !tg.masked.is_empty() {
            self.pads = true;
        }
        let mut cols: Vec<String> = tg
            .columns
            .iter()
            .map(|c| {
                if tg.is_masked(c) {
                    let value = match self.backend {
                        Backend::Sqlite => format!("{PSEUDONYM_FN}({})", quote(c)),
                        // HMAC-SHA256 from two sha256 calls and the padded
                        // keys (bound parameters), tagged as text: the same
                        // pseudonym as SQLite's for a text value.
                        Backend::Postgres => format!(
                            "encode(substr(sha256(${o} || sha256(${i} || decode('74', 'hex') || \
                             convert_to(CAST({c} AS TEXT), 'UTF8'))), 1, 16), 'hex')",
                            i = self.guest_params + 1,
                            o = self.guest_params + 2,
                            c = quote(c)
                        ),
                    };
                    format!("{value} AS {}", quote(c))
                } else {
                    quote(c)
                }
            })
            .collect();
        if tg.aggregate_only.is_some() {
            cols.push(format!("{} AS {}", self.backend.row_id(), quote(ROW_COL)));
        }
        let mut sql = format!("SELECT {} FROM {}", cols.join(", "), quote(table));
        if let Some(rows) = &tg.rows {
            let scope = parse_row_scope(rows, self.backend)
                .map_err(|e| VerbError::Trap(anyhow::anyhow!("a checked row scope failed: {e}")))?;
            sql.push_str(&format!(" WHERE ({scope})"));
        }
        let dialect = self.backend.dialect();
        let parsed = Parser::new(&*dialect)
            .try_with_sql(&sql)
            .and_then(|mut p| p.parse_query())
            .map_err(|e| VerbError::Trap(anyhow::anyhow!("view of `{table}`: {e}")))?;
        Ok(*parsed)
    }
}

/// A one-part table name; schema-qualified names are refused.
fn single_name(name: &ObjectName) -> Result<String, VerbError> {
    match name.0.as_slice() {
        [ObjectNamePart::Identifier(i)] => Ok(i.value.clone()),
        _ => Err(denied(format!(
            "schema-qualified name `{name}` is refused: name a granted table"
        ))),
    }
}
