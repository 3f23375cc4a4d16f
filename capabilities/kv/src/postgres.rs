//! The shared kv backend: PostgreSQL, for several hosts using one store. The
//! same two tables as SQLite; a write locks its namespace's usage row
//! (`FOR UPDATE`), so quota checks stay atomic across hosts. The connection
//! string is a secret: it never appears in errors, `Debug` or the audit.

use std::sync::{Arc, Mutex};

use secrecy::{ExposeSecret, SecretString};
use tokio::sync::{OnceCell, Semaphore};
use tokio_postgres::{Client, NoTls};

use crate::store::{Limits, StoreError};

/// Most connections one host opens to one store.
pub const MAX_CONNECTIONS: usize = 16;

const SCHEMA: &str = r#"
    CREATE TABLE IF NOT EXISTS airlock_kv (
        ns text NOT NULL,
        key text COLLATE "C" NOT NULL,
        value bytea NOT NULL,
        PRIMARY KEY (ns, key)
    );
    CREATE TABLE IF NOT EXISTS airlock_kv_usage (
        ns text NOT NULL PRIMARY KEY,
        keys bigint NOT NULL,
        bytes bigint NOT NULL
    );
"#;

/// One PostgreSQL store: a small pool of connections made on demand.
#[derive(Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

struct Inner {
    url: SecretString,
    idle: Mutex<Vec<Client>>,
    permits: Semaphore,
    schema: OnceCell<()>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").finish_non_exhaustive()
    }
}

/// The error without anything it may quote: the SQLSTATE and the server's
/// message (never the statement's parameters, never the connection string).
fn backend(e: tokio_postgres::Error) -> StoreError {
    StoreError::Backend(match e.as_db_error() {
        Some(db) => format!("postgres {}: {}", db.code().code(), db.message()),
        None if e.is_closed() => "postgres: the connection closed".to_string(),
        None => "postgres: the connection failed".to_string(),
    })
}

impl PgStore {
    /// A store reached at the connection string `url` (key=value or URL
    /// form). Nothing connects until the first call.
    pub fn new(url: SecretString) -> Result<Self, String> {
        url.expose_secret()
            .parse::<tokio_postgres::Config>()
            .map_err(|_| "the postgres connection string does not parse".to_string())?;
        Ok(Self {
            inner: Arc::new(Inner {
                url,
                idle: Mutex::new(Vec::new()),
                permits: Semaphore::new(MAX_CONNECTIONS),
                schema: OnceCell::new(),
            }),
        })
    }

    async fn connect(&self) -> Result<Client, StoreError> {
        let (client, conn) = tokio_postgres::connect(self.inner.url.expose_secret(), NoTls)
            .await
            .map_err(|e| match e.as_db_error() {
                Some(db) => StoreError::Backend(format!(
                    "cannot connect to postgres ({})",
                    db.code().code()
                )),
                None => StoreError::Backend("cannot connect to postgres".into()),
            })?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(client)
    }

    /// Runs `f` on a pooled connection (made, and the schema created, when
    /// needed). A connection whose call was abandoned is dropped, not reused.
    async fn with<R>(
        &self,
        f: impl AsyncFnOnce(&mut Client) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let _permit = self
            .inner
            .permits
            .acquire()
            .await
            .map_err(|_| StoreError::Backend("postgres pool closed".into()))?;
        let idle = {
            let mut idle = self.inner.idle.lock().unwrap_or_else(|p| p.into_inner());
            std::iter::from_fn(|| idle.pop()).find(|c| !c.is_closed())
        };
        let mut client = match idle {
            Some(c) => c,
            None => self.connect().await?,
        };
        self.inner
            .schema
            .get_or_try_init(|| async { client.batch_execute(SCHEMA).await.map_err(backend) })
            .await?;
        let out = f(&mut client).await;
        if !client.is_closed() {
            self.inner
                .idle
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(client);
        }
        out
    }

    pub(crate) async fn get(&self, ns: String, key: String) -> Result<Option<Vec<u8>>, StoreError> {
        self.with(async |c| {
            let row = c
                .query_opt(
                    "SELECT value FROM airlock_kv WHERE ns = $1 AND key = $2",
                    &[&ns, &key],
                )
                .await
                .map_err(backend)?;
            Ok(row.map(|r| r.get(0)))
        })
        .await
    }

    pub(crate) async fn set(
        &self,
        ns: String,
        key: String,
        value: Vec<u8>,
        limits: Limits,
    ) -> Result<(), StoreError> {
        self.with(async |c| {
            let tx = c.transaction().await.map_err(backend)?;
            let (keys, bytes) = lock_usage(&tx, &ns).await?;
            let old: Option<i32> = tx
                .query_opt(
                    "SELECT octet_length(value) FROM airlock_kv WHERE ns = $1 AND key = $2",
                    &[&ns, &key],
                )
                .await
                .map_err(backend)?
                .map(|r| r.get(0));
            let old = old.map(|v| v.max(0) as u64 + key.len() as u64);
            let (keys, bytes) = limits.after_set(keys, bytes, old, key.len(), value.len())?;
            tx.execute(
                "INSERT INTO airlock_kv (ns, key, value) VALUES ($1, $2, $3)
                 ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value",
                &[&ns, &key, &value],
            )
            .await
            .map_err(backend)?;
            set_usage(&tx, &ns, keys, bytes).await?;
            tx.commit().await.map_err(backend)
        })
        .await
    }

    pub(crate) async fn delete(&self, ns: String, key: String) -> Result<bool, StoreError> {
        self.with(async |c| {
            let tx = c.transaction().await.map_err(backend)?;
            let (keys, bytes) = lock_usage(&tx, &ns).await?;
            let old: Option<i32> = tx
                .query_opt(
                    "DELETE FROM airlock_kv WHERE ns = $1 AND key = $2
                     RETURNING octet_length(value)",
                    &[&ns, &key],
                )
                .await
                .map_err(backend)?
                .map(|r| r.get(0));
            let Some(old) = old else {
                return Ok(false);
            };
            let size = old.max(0) as u64 + key.len() as u64;
            set_usage(&tx, &ns, keys.saturating_sub(1), bytes.saturating_sub(size)).await?;
            tx.commit().await.map_err(backend)?;
            Ok(true)
        })
        .await
    }

    /// Keys of `ns` starting with `prefix` (`starts_with`, never a pattern),
    /// after `cursor`, in byte order (the key column collates as "C").
    pub(crate) async fn list(
        &self,
        ns: String,
        prefix: String,
        cursor: Option<String>,
        limit: u32,
    ) -> Result<Vec<String>, StoreError> {
        self.with(async |c| {
            let rows = c
                .query(
                    "SELECT key FROM airlock_kv
                     WHERE ns = $1 AND key >= $2 AND ($3::text IS NULL OR key > $3)
                       AND starts_with(key, $2)
                     ORDER BY key LIMIT $4",
                    &[&ns, &prefix, &cursor, &i64::from(limit)],
                )
                .await
                .map_err(backend)?;
            Ok(rows.into_iter().map(|r| r.get(0)).collect())
        })
        .await
    }
}

/// Locks the namespace's usage row (made when missing) for this transaction
/// and returns (keys, bytes).
async fn lock_usage(
    tx: &tokio_postgres::Transaction<'_>,
    ns: &str,
) -> Result<(u64, u64), StoreError> {
    tx.execute(
        "INSERT INTO airlock_kv_usage (ns, keys, bytes) VALUES ($1, 0, 0)
         ON CONFLICT (ns) DO NOTHING",
        &[&ns],
    )
    .await
    .map_err(backend)?;
    let row = tx
        .query_one(
            "SELECT keys, bytes FROM airlock_kv_usage WHERE ns = $1 FOR UPDATE",
            &[&ns],
        )
        .await
        .map_err(backend)?;
    let (k, b): (i64, i64) = (row.get(0), row.get(1));
    Ok((k.max(0) as u64, b.max(0) as u64))
}

async fn set_usage(
    tx: &tokio_postgres::Transaction<'_>,
    ns: &str,
    keys: u64,
    bytes: u64,
) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE airlock_kv_usage SET keys = $2, bytes = $3 WHERE ns = $1",
        &[&ns, &(keys as i64), &(bytes as i64)],
    )
    .await
    .map_err(backend)?;
    Ok(())
}
