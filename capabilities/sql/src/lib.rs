//! The `sql` verb: a database reached through a view the grant defines and
//! the host enforces. The operator names databases (the path or connection
//! string never reaches a toolkit or a guest); the grant says which tables,
//! columns and rows a tool sees; every statement is parsed, checked and
//! rewritten below the guest's text ([`view`]) and run read-only; a grant
//! with `write = true` may also write through the same view ([`write`]).
#![deny(missing_docs)]

mod expr;
mod grant;
mod guards;
mod postgres;
mod pseudonym;
mod sqlite;
pub mod view;
pub mod write;

pub use expr::{AGGREGATES, FUNCTIONS};
pub use grant::{AggregateOnly, DEFAULT_MAX_ROWS, Mask, SqlGrant, TableGrant};
pub use guards::MAX_STATEMENT;
pub use postgres::PgPool;
pub use pseudonym::PseudonymKey;
pub use view::{Backend, Plan};
pub use write::WritePlan;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use airlock_core::bindings::airlock::verbs::sql;
use airlock_core::{Capability, Decision, Job, ScopeChange, VerbError};
use sqlite::Limits;
use wasmtime::component::{HasSelf, Linker};

/// The generated WIT types of the verb.
pub mod bindings {
    pub use airlock_core::bindings::airlock::verbs::sql::{Rows, Value};
}
use bindings::{Rows, Value};

/// Most bytes of values one query may return (then `exhausted("sql-bytes")`),
/// or the job's hostcall-data budget when that is smaller.
pub const MAX_RESULT_BYTES: usize = 16 << 20;

/// One database the host config names (`[databases.NAME]`).
#[derive(Clone)]
pub enum Database {
    /// A SQLite file, opened read-only (and read-write for a grant's writes).
    Sqlite {
        /// Where the file is (the operator's; never shown to a tool).
        path: PathBuf,
    },
    /// A PostgreSQL server, reached through a small pool.
    Postgres {
        /// The pool, holding the secret connection URL.
        pool: Arc<PgPool>,
    },
}

impl Database {
    /// A PostgreSQL database at the secret `url`.
    pub fn postgres(url: secrecy::SecretString) -> Self {
        Database::Postgres {
            pool: Arc::new(PgPool::new(url)),
        }
    }

    fn backend(&self) -> Backend {
        match self {
            Database::Sqlite { .. } => Backend::Sqlite,
            Database::Postgres { .. } => Backend::Postgres,
        }
    }
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Database::Sqlite { .. } => f.write_str("Database::Sqlite(..)"),
            Database::Postgres { .. } => f.write_str("Database::Postgres(..)"),
        }
    }
}

/// Host-wide: the named databases and the pseudonym key.
#[derive(Clone)]
pub struct SqlCapability {
    databases: Arc<HashMap<String, Database>>,
    key: PseudonymKey,
}

impl Default for SqlCapability {
    fn default() -> Self {
        Self::new(Vec::new(), PseudonymKey::random())
    }
}

impl SqlCapability {
    /// A capability serving `databases`, masking with `key`.
    pub fn new(databases: impl IntoIterator<Item = (String, Database)>, key: PseudonymKey) -> Self {
        Self {
            databases: Arc::new(databases.into_iter().collect()),
            key,
        }
    }

    /// The configured database names, sorted.
    pub fn database_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.databases.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }
}

impl std::fmt::Debug for SqlCapability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlCapability")
            .field("databases", &self.database_names())
            .finish_non_exhaustive()
    }
}

/// One job's view of the verb.
pub struct SqlState {
    cap: SqlCapability,
    grant: Arc<SqlGrant>,
    job: Job,
    calls: u32,
    conn: Option<rusqlite::Connection>,
    writer: Option<rusqlite::Connection>,
}

impl Capability for SqlCapability {
    const VERB: &'static str = "sql";
    const INTERFACE: &'static str = "airlock:verbs/sql";
    type Grant = SqlGrant;
    type State = SqlState;

    fn check_grant(&self, grant: &SqlGrant) -> Result<(), String> {
        let Some(db) = self.databases.get(&grant.database) else {
            return Err(format!(
                "the sql grant names database `{}` but the host config has no such database; \
                 add [databases.{}] to the host config or change the grant",
                grant.database, grant.database
            ));
        };
        let backend = db.backend();
        if grant.write && grant.tables.values().all(|t| t.aggregate_only.is_some()) {
            return Err(
                "the sql grant sets write = true but every table it grants is aggregate-only, \
                 which is never written; remove write or grant a table to write"
                    .into(),
            );
        }
        grant.timeout()?;
        for (name, t) in &grant.tables {
            if t.columns.is_empty() {
                return Err(format!("the sql grant of table `{name}` lists no columns"));
            }
            for col in t.masked.keys() {
                if t.column(col).is_none() {
                    return Err(format!(
                        "the sql grant masks `{name}.{col}`, which its columns do not list"
                    ));
                }
            }
            if let Some(rows) = &t.rows {
                view::parse_row_scope(rows, backend)
                    .map_err(|e| format!("the sql grant of table `{name}`: {e}"))?;
            }
            if t.aggregate_only.is_some_and(|a| a.min_group < 2) {
                return Err(format!(
                    "the sql grant of table `{name}`: aggregate_only min_group must be at least 2"
                ));
            }
            if name.starts_with("__airlock") || t.columns.iter().any(|c| c.starts_with("__airlock"))
            {
                return Err(format!(
                    "the sql grant of table `{name}` uses a reserved name"
                ));
            }
        }
        Ok(())
    }

    fn state(&self, grant: Arc<SqlGrant>, job: Job) -> SqlState {
        SqlState {
            cap: self.clone(),
            grant,
            job,
            calls: 0,
            conn: None,
            writer: None,
        }
    }

    fn describe(grant: &SqlGrant) -> Vec<String> {
        grant::describe(grant)
    }

    fn compare(before: &SqlGrant, after: &SqlGrant) -> Vec<ScopeChange> {
        grant::compare(before, after)
    }

    fn add_to_linker<T: Send + 'static>(
        linker: &mut Linker<T>,
        get: fn(&mut T) -> &mut SqlState,
    ) -> wasmtime::Result<()> {
        sql::add_to_linker::<T, HasSelf<SqlState>>(linker, get)
    }
}

airlock_core::impl_types_host!(SqlState);

/// What the audit records of one call: names and counts, never values.
#[derive(Default)]
struct Facts {
    tables: Vec<String>,
    columns: Vec<String>,
    rows: usize,
    suppressed: u32,
}

impl SqlState {
    /// Audits one call: names and counts, never values.
    fn record<T>(
        &self,
        op: &'static str,
        result: &Result<T, VerbError>,
        started: Instant,
        facts: &Facts,
    ) {
        let decision = match result {
            Ok(_) => Decision::Allow,
            Err(e) => Decision::Deny(format!("{}: {}", e.kind(), e.reason())),
        };
        self.job
            .audit("sql", op, decision, started, Some(self.detail(facts)));
    }

    fn detail(&self, facts: &Facts) -> String {
        format!(
            "db={} tables={} columns={} rows={} suppressed={}",
            self.grant.database,
            facts.tables.join(","),
            facts.columns.join(","),
            facts.rows,
            facts.suppressed
        )
    }

    /// Counts the call against `max_calls` and finds the grant's database.
    fn begin(&mut self) -> Result<Database, VerbError> {
        if let Some(max) = self.grant.max_calls
            && self.calls >= max
        {
            return Err(VerbError::exhausted("sql-calls"));
        }
        self.calls += 1;
        self.cap
            .databases
            .get(&self.grant.database)
            .cloned()
            .ok_or_else(|| {
                VerbError::invalid(format!(
                    "database `{}` is not configured on this host",
                    self.grant.database
                ))
            })
    }

    /// The bounds of one call: the grant's rows and timeout, the job's
    /// deadline and hostcall-data budget.
    fn limits(&self) -> Result<Limits, VerbError> {
        let timeout = self.grant.timeout().map_err(VerbError::invalid)?;
        Ok(Limits {
            max_rows: self.grant.max_rows,
            max_bytes: MAX_RESULT_BYTES.min(self.job.hostcall_bytes()),
            deadline: (Instant::now() + timeout).min(self.job.deadline()),
        })
    }

    async fn query_inner(
        &mut self,
        statement: String,
        params: Vec<Value>,
        facts: &mut Facts,
    ) -> Result<Rows, VerbError> {
        let db = self.begin()?;
        let plan = view::plan(&self.grant, &statement, db.backend(), params.len())?;
        facts.tables = plan.tables.iter().cloned().collect();
        facts.columns = plan.columns.iter().cloned().collect();
        let limits = self.limits()?;
        let (mut raw, counted) = match db {
            Database::Sqlite { path } => {
                let conn = self.conn.take();
                let grant = self.grant.clone();
                let key = self.cap.key.clone();
                let cancel = self.job.cancel().clone();
                let plan = plan.clone();
                let (conn, out) = tokio::task::spawn_blocking(move || {
                    let mut conn = match conn {
                        Some(c) => c,
                        None => {
                            let mut c = sqlite::open(&path, &key)?;
                            sqlite::authorize(&mut c, &grant, false)?;
                            c
                        }
                    };
                    let out = sqlite::read(&mut conn, &plan, &params, limits, &cancel);
                    Ok::<_, VerbError>((conn, out))
                })
                .await
                .map_err(|e| VerbError::Trap(anyhow::anyhow!("the sql worker failed: {e}")))??;
                self.conn = Some(conn);
                out?
            }
            Database::Postgres { pool } => {
                let mut params = params;
                if plan.pads {
                    let (inner, outer) = self.cap.key.pads();
                    params.push(Value::Blob(inner));
                    params.push(Value::Blob(outer));
                }
                let call = postgres::Call {
                    sql: &plan.sql,
                    count: plan.count.as_deref(),
                    params,
                    extra: if plan.pads { 2 } else { 0 },
                    limits,
                    write: false,
                };
                postgres::run(&pool, call, self.job.cancel(), |raw, n| Ok((raw, n))).await?
            }
        };
        if plan.min_group.is_some() {
            // The hidden group size: the floor is in the query's HAVING;
            // this is the host's second look at every group.
            raw.columns.pop();
            let min = i64::from(plan.min_group.unwrap_or(u32::MAX));
            raw.rows
                .retain_mut(|row| matches!(row.pop(), Some(Value::Integer(n)) if n >= min));
        }
        let suppressed = u32::try_from(counted.unwrap_or(0)).unwrap_or(u32::MAX);
        facts.rows = raw.rows.len();
        facts.suppressed = suppressed;
        Ok(Rows {
            columns: raw.columns,
            rows: raw.rows,
            suppressed_groups: suppressed,
        })
    }

    async fn execute_inner(
        &mut self,
        statement: String,
        params: Vec<Value>,
        facts: &mut Facts,
    ) -> Result<u64, VerbError> {
        let db = self.begin()?;
        let plan = write::plan(&self.grant, &statement, db.backend(), params.len())?;
        facts.tables = vec![plan.table.clone()];
        facts.columns = plan.columns.iter().cloned().collect();
        let limits = self.limits()?;
        let written = match db {
            Database::Sqlite { path } => {
                let conn = self.writer.take();
                let grant = self.grant.clone();
                let cancel = self.job.cancel().clone();
                let (conn, out) = tokio::task::spawn_blocking(move || {
                    let mut conn = match conn {
                        Some(c) => c,
                        None => {
                            let mut c = sqlite::open_writer(&path)?;
                            sqlite::authorize(&mut c, &grant, true)?;
                            c
                        }
                    };
                    let out =
                        sqlite::write(&mut conn, &plan.sql, &params, limits, &cancel, |raw| {
                            plan.verify(raw)
                        });
                    Ok::<_, VerbError>((conn, out))
                })
                .await
                .map_err(|e| VerbError::Trap(anyhow::anyhow!("the sql worker failed: {e}")))??;
                self.writer = Some(conn);
                out?
            }
            Database::Postgres { pool } => {
                let call = postgres::Call {
                    sql: &plan.sql,
                    count: None,
                    params,
                    extra: 0,
                    limits,
                    write: true,
                };
                postgres::run(&pool, call, self.job.cancel(), |raw, _| plan.verify(&raw)).await?
            }
        };
        facts.rows = usize::try_from(written).unwrap_or(usize::MAX);
        Ok(written)
    }
}

impl sql::Host for SqlState {
    async fn query(&mut self, statement: String, params: Vec<Value>) -> Result<Rows, VerbError> {
        let started = Instant::now();
        let guard = self.job.in_flight(
            "sql",
            "query",
            started,
            format!("db={}", self.grant.database),
        );
        let mut facts = Facts::default();
        let result = self.query_inner(statement, params, &mut facts).await;
        guard.disarm();
        self.record("query", &result, started, &facts);
        result
    }

    async fn execute(&mut self, statement: String, params: Vec<Value>) -> Result<u64, VerbError> {
        let started = Instant::now();
        let guard = self.job.in_flight(
            "sql",
            "execute",
            started,
            format!("db={}", self.grant.database),
        );
        let mut facts = Facts::default();
        let result = self.execute_inner(statement, params, &mut facts).await;
        guard.disarm();
        self.record("execute", &result, started, &facts);
        result
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod pg_tests;

/// The workspace's PostgreSQL test harness.
#[cfg(test)]
#[path = "../../../tests/pg.rs"]
mod pg;
