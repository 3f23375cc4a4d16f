//! The PostgreSQL backend: a few pooled connections whose URL is an operator
//! secret (never in an error, a `Debug` or the audit); every query runs in
//! `BEGIN READ ONLY` with a `statement_timeout`, and is cancelled with a
//! cancel request at its deadline or when the job is cancelled.

use std::error::Error as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use airlock_core::{Cancel, VerbError, WitError};
use bytes::BytesMut;
use futures_util::{StreamExt, pin_mut};
use secrecy::{ExposeSecret, SecretString};
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};
use tokio_postgres::{Client, NoTls};

use crate::bindings::Value;
use crate::sqlite::{Limits, Raw};

/// Idle connections kept per database.
const MAX_IDLE: usize = 4;

/// A PostgreSQL database: its secret URL and idle connections.
pub struct PgPool {
    url: SecretString,
    idle: Mutex<Vec<Client>>,
}

impl std::fmt::Debug for PgPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PgPool(..)")
    }
}

impl PgPool {
    /// A pool connecting to `url` (a libpq-style string or URL) on demand.
    pub fn new(url: SecretString) -> Self {
        Self {
            url,
            idle: Mutex::new(Vec::new()),
        }
    }

    async fn get(&self) -> Result<Client, VerbError> {
        loop {
            let next = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
            match next {
                Some(c) if !c.is_closed() => return Ok(c),
                Some(_) => continue,
                None => break,
            }
        }
        // The error text can name the server or the user: never shown.
        let (client, conn) = tokio_postgres::connect(self.url.expose_secret(), NoTls)
            .await
            .map_err(|_| VerbError::upstream("cannot connect to the database"))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(client)
    }

    fn put(&self, client: Client) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE && !client.is_closed() {
            idle.push(client);
        }
    }
}

/// What one call runs on PostgreSQL.
pub(crate) struct Call<'a> {
    /// The checked statement.
    pub sql: &'a str,
    /// A `count(*)` of suppressed groups, run in the same transaction with
    /// the same parameters (typed as the server inferred them for `sql`).
    pub count: Option<&'a str>,
    /// The guest's parameters, then the host's.
    pub params: Vec<Value>,
    /// How many of `params` are the host's.
    pub extra: usize,
    /// Rows, bytes and deadline.
    pub limits: Limits,
    /// Whether it writes: `BEGIN READ WRITE`, committed only when the
    /// caller's `accept` takes what it returned; else `BEGIN READ ONLY`.
    pub write: bool,
}

/// Runs `call` on a pooled connection (see the module docs) and hands what
/// it returned (rows, and the count when asked) to `accept`; a write is
/// committed only when `accept` succeeds, everything else is rolled back.
pub(crate) async fn run<R>(
    pool: &PgPool,
    call: Call<'_>,
    cancel: &Cancel,
    accept: impl FnOnce(Raw, Option<i64>) -> Result<R, VerbError>,
) -> Result<R, VerbError> {
    let client = pool.get().await?;
    let token = client.cancel_token();
    let deadline = call.limits.deadline;
    // A cancel request lands whenever the server reads it, maybe on a later
    // statement: a connection one was sent for is never used again.
    let cancelled = AtomicBool::new(false);
    let cancel_query = || async {
        cancelled.store(true, Ordering::Relaxed);
        let _ = token.cancel_query(NoTls).await;
    };
    let work = async {
        let ms = deadline
            .saturating_duration_since(Instant::now())
            .as_millis()
            .max(1);
        let mode = if call.write {
            "READ WRITE"
        } else {
            "READ ONLY"
        };
        client
            .batch_execute(&format!("BEGIN {mode}; SET LOCAL statement_timeout = {ms}"))
            .await
            .map_err(db_error)?;
        let out = async {
            let stmt = client.prepare(call.sql).await.map_err(db_error)?;
            let raw = query(&client, &stmt, &call).await?;
            let counted = match call.count {
                Some(sql) => {
                    let count = client
                        .prepare_typed(sql, stmt.params())
                        .await
                        .map_err(db_error)?;
                    let binds: Vec<Param<'_>> = call.params.iter().map(Param).collect();
                    let refs: Vec<&(dyn ToSql + Sync)> =
                        binds.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
                    let row = client.query_one(&count, &refs).await.map_err(db_error)?;
                    Some(row.try_get::<_, i64>(0).map_err(db_error)?)
                }
                None => None,
            };
            accept(raw, counted)
        }
        .await;
        if matches!(&out, Err(VerbError::Guest(WitError::Exhausted(_)))) {
            // Rows the server is still sending (past max_rows) are cut
            // short; the transaction ends with the connection.
            cancel_query().await;
            return out;
        }
        let end = if call.write && out.is_ok() {
            "COMMIT"
        } else {
            "ROLLBACK"
        };
        let ended = client.batch_execute(end).await.map_err(db_error);
        out.and_then(|r| ended.map(|()| r))
    };
    let result = tokio::select! {
        r = work => r,
        _ = tokio::time::sleep_until(deadline.into()) => {
            cancel_query().await;
            Err(VerbError::timeout())
        }
        _ = cancel.cancelled() => {
            cancel_query().await;
            Err(VerbError::Cancelled)
        }
    };
    if cancelled.load(Ordering::Relaxed) {
        // Dropped: the server rolls back what it had of the transaction.
        return result;
    }
    match &result {
        Ok(_) => pool.put(client),
        // A statement_timeout inside the transaction: the connection is
        // rolled back before it is reused.
        Err(_) => {
            if client.batch_execute("ROLLBACK").await.is_ok() {
                pool.put(client);
            }
        }
    }
    result
}

async fn query(
    client: &Client,
    stmt: &tokio_postgres::Statement,
    call: &Call<'_>,
) -> Result<Raw, VerbError> {
    let (params, extra, limits) = (&call.params, call.extra, call.limits);
    if stmt.params().len() != params.len() {
        return Err(VerbError::invalid(format!(
            "the statement takes {} parameters; {} were given",
            stmt.params().len().saturating_sub(extra),
            params.len().saturating_sub(extra)
        )));
    }
    let columns: Vec<String> = stmt
        .columns()
        .iter()
        .map(|c| c.name().to_string())
        .collect();
    let binds: Vec<Param<'_>> = params.iter().map(Param).collect();
    let rows = client
        .query_raw(stmt, binds.iter().map(|p| p as &dyn ToSql))
        .await
        .map_err(db_error)?;
    pin_mut!(rows);
    let mut out = Vec::new();
    let mut bytes = 0usize;
    while let Some(row) = rows.next().await {
        let row = row.map_err(db_error)?;
        if out.len() >= limits.max_rows as usize {
            return Err(VerbError::exhausted("sql-rows"));
        }
        let mut values = Vec::with_capacity(columns.len());
        for (i, name) in columns.iter().enumerate() {
            let Cell(v) = row.try_get::<_, Cell>(i).map_err(|e| {
                VerbError::upstream(format!(
                    "column {name}: {}; CAST it to text or a number",
                    e.source().map(|s| s.to_string()).unwrap_or_default()
                ))
            })?;
            bytes += 8 + match &v {
                Value::Text(t) => t.len(),
                Value::Blob(b) => b.len(),
                _ => 0,
            };
            values.push(v);
        }
        if bytes > limits.max_bytes {
            return Err(VerbError::exhausted("sql-bytes"));
        }
        out.push(values);
    }
    Ok(Raw { columns, rows: out })
}

/// The server's error as SQLSTATE and message (about the statement the
/// guest wrote; the connection URL never appears in one).
fn db_error(e: tokio_postgres::Error) -> VerbError {
    match e.as_db_error() {
        Some(db) if db.code().code() == "57014" => VerbError::timeout(),
        Some(db) if db.code().code() == "25006" => {
            VerbError::denied("the database refused a write in a read-only transaction")
        }
        Some(db) => VerbError::upstream(format!(
            "the database failed the query: {} ({})",
            db.message(),
            db.code().code()
        )),
        None => VerbError::upstream("the database connection failed"),
    }
}

/// A guest parameter, converted to the type the server inferred for it.
#[derive(Debug)]
struct Param<'v>(&'v Value);

impl ToSql for Param<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        let bad = || format!("a {:?} parameter cannot be bound as {ty}", self.0).into();
        match (self.0, ty) {
            (Value::Null, _) => Ok(IsNull::Yes),
            (Value::Integer(n), &Type::INT8) => n.to_sql(ty, out),
            (Value::Integer(n), &Type::INT4) => i32::try_from(*n)?.to_sql(ty, out),
            (Value::Integer(n), &Type::INT2) => i16::try_from(*n)?.to_sql(ty, out),
            (Value::Integer(n), &Type::FLOAT8) => (*n as f64).to_sql(ty, out),
            (Value::Integer(n), &Type::BOOL) => (*n != 0).to_sql(ty, out),
            (Value::Integer(n), &Type::TEXT | &Type::VARCHAR) => n.to_string().to_sql(ty, out),
            (Value::Real(x), &Type::FLOAT8) => x.to_sql(ty, out),
            (Value::Real(x), &Type::FLOAT4) => (*x as f32).to_sql(ty, out),
            (Value::Text(s), &Type::TEXT | &Type::VARCHAR | &Type::BPCHAR | &Type::NAME) => {
                s.as_str().to_sql(ty, out)
            }
            (Value::Blob(b), &Type::BYTEA) => b.as_slice().to_sql(ty, out),
            _ => Err(bad()),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// One result value of any supported type.
struct Cell(Value);

impl<'a> FromSql<'a> for Cell {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Cell(match *ty {
            Type::INT8 => Value::Integer(i64::from_sql(ty, raw)?),
            Type::INT4 => Value::Integer(i32::from_sql(ty, raw)?.into()),
            Type::INT2 => Value::Integer(i16::from_sql(ty, raw)?.into()),
            Type::BOOL => Value::Integer(bool::from_sql(ty, raw)?.into()),
            Type::FLOAT8 => Value::Real(f64::from_sql(ty, raw)?),
            Type::FLOAT4 => Value::Real(f32::from_sql(ty, raw)?.into()),
            Type::NUMERIC => numeric(raw)?,
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => {
                Value::Text(String::from_sql(ty, raw)?)
            }
            Type::BYTEA => Value::Blob(raw.to_vec()),
            _ => return Err(format!("the type {ty} is not supported").into()),
        }))
    }

    fn from_sql_null(_: &Type) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Cell(Value::Null))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// A NUMERIC in binary form: an integer when it has no fraction and fits,
/// else a float.
fn numeric(raw: &[u8]) -> Result<Value, Box<dyn std::error::Error + Sync + Send>> {
    let word = |i: usize| -> Result<u16, Box<dyn std::error::Error + Sync + Send>> {
        raw.get(i..i + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .ok_or_else(|| "a truncated numeric".into())
    };
    let (ndigits, weight, sign, dscale) = (word(0)?, word(2)? as i16, word(4)?, word(6)?);
    if sign == 0xC000 {
        return Ok(Value::Real(f64::NAN));
    }
    let mut x = 0f64;
    for i in 0..ndigits as usize {
        let d = f64::from(word(8 + 2 * i)?);
        x += d * 10000f64.powi(i32::from(weight) - i as i32);
    }
    if sign == 0x4000 {
        x = -x;
    }
    if dscale == 0 && x.abs() < 9.0e15 {
        return Ok(Value::Integer(x as i64));
    }
    Ok(Value::Real(x))
}
