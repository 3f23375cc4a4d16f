//! The embedded kv backend: one SQLite file (WAL, busy timeout), every key in
//! a row keyed by (namespace, key) and a usage row per namespace, each write
//! one `IMMEDIATE` transaction (on the blocking pool) so its quota check and
//! its write are atomic; an uncontended read runs in place.

use std::path::Path;
use std::sync::{Arc, Mutex, TryLockError};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};

use crate::store::{Limits, StoreError};

/// How long a writer waits for another process holding the file's lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS airlock_kv (
        ns TEXT NOT NULL,
        key TEXT NOT NULL,
        value BLOB NOT NULL,
        PRIMARY KEY (ns, key)
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS airlock_kv_usage (
        ns TEXT NOT NULL PRIMARY KEY,
        keys INTEGER NOT NULL,
        bytes INTEGER NOT NULL
    ) WITHOUT ROWID;
";

/// One SQLite store, shared by every job that uses it. Calls run on the
/// blocking pool, one at a time per store (SQLite has one writer anyway).
#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

fn backend(e: rusqlite::Error) -> StoreError {
    // SQLite's messages name tables and constraints, never bound values.
    StoreError::Backend(format!("sqlite: {e}"))
}

impl SqliteStore {
    /// Opens (creating when missing) the store at `path`.
    pub fn open(path: &Path) -> Result<Self, String> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .and_then(|()| conn.pragma_update(None, "journal_mode", "WAL"))
            .and_then(|()| conn.pragma_update(None, "synchronous", "NORMAL"))
            .and_then(|()| conn.execute_batch(SCHEMA))
            .map_err(|e| format!("cannot prepare {}: {e}", path.display()))?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    async fn with<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(|e| StoreError::Backend(format!("sqlite worker failed: {e}")))?
    }

    /// Runs a read on the calling thread when the connection is free (a
    /// read in WAL mode does not wait for writers, so it takes microseconds),
    /// else on the blocking pool like a write.
    async fn read<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        let f = match self.conn.try_lock() {
            Ok(mut guard) => return f(&mut guard),
            Err(TryLockError::Poisoned(p)) => return f(&mut p.into_inner()),
            Err(TryLockError::WouldBlock) => f,
        };
        self.with(f).await
    }

    pub(crate) async fn get(&self, ns: String, key: String) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(move |c| {
            c.prepare_cached("SELECT value FROM airlock_kv WHERE ns = ?1 AND key = ?2")
                .and_then(|mut s| s.query_row(params![ns, key], |r| r.get(0)).optional())
                .map_err(backend)
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
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            let old: Option<i64> = tx
                .prepare_cached("SELECT length(value) FROM airlock_kv WHERE ns = ?1 AND key = ?2")
                .and_then(|mut s| s.query_row(params![ns, key], |r| r.get(0)).optional())
                .map_err(backend)?;
            let (keys, bytes) = usage(&tx, &ns)?;
            let old = old.map(|v| v as u64 + key.len() as u64);
            let (keys, bytes) = limits.after_set(keys, bytes, old, key.len(), value.len())?;
            tx.prepare_cached(
                "INSERT INTO airlock_kv (ns, key, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value",
            )
            .and_then(|mut s| s.execute(params![ns, key, value]))
            .map_err(backend)?;
            set_usage(&tx, &ns, keys, bytes)?;
            tx.commit().map_err(backend)
        })
        .await
    }

    pub(crate) async fn delete(&self, ns: String, key: String) -> Result<bool, StoreError> {
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            let old: Option<i64> = tx
                .prepare_cached("SELECT length(value) FROM airlock_kv WHERE ns = ?1 AND key = ?2")
                .and_then(|mut s| s.query_row(params![ns, key], |r| r.get(0)).optional())
                .map_err(backend)?;
            let Some(old) = old else {
                return Ok(false);
            };
            tx.prepare_cached("DELETE FROM airlock_kv WHERE ns = ?1 AND key = ?2")
                .and_then(|mut s| s.execute(params![ns, key]))
                .map_err(backend)?;
            let (keys, bytes) = usage(&tx, &ns)?;
            let size = old as u64 + key.len() as u64;
            set_usage(&tx, &ns, keys.saturating_sub(1), bytes.saturating_sub(size))?;
            tx.commit().map_err(backend)?;
            Ok(true)
        })
        .await
    }

    /// Up to `limit` keys of `ns` starting with `prefix`, after `cursor`, in
    /// byte order. The prefix is compared as text, never as a pattern.
    pub(crate) async fn list(
        &self,
        ns: String,
        prefix: String,
        cursor: Option<String>,
        limit: u32,
    ) -> Result<Vec<String>, StoreError> {
        self.read(move |c| {
            let mut s = c
                .prepare_cached(
                    "SELECT key FROM airlock_kv
                     WHERE ns = ?1 AND key >= ?2 AND (?3 IS NULL OR key > ?3)
                       AND substr(key, 1, length(?2)) = ?2
                     ORDER BY key LIMIT ?4",
                )
                .map_err(backend)?;
            let rows = s
                .query_map(params![ns, prefix, cursor, limit], |r| r.get(0))
                .map_err(backend)?;
            rows.collect::<Result<Vec<String>, _>>().map_err(backend)
        })
        .await
    }
}

fn usage(tx: &rusqlite::Transaction<'_>, ns: &str) -> Result<(u64, u64), StoreError> {
    let row: Option<(i64, i64)> = tx
        .prepare_cached("SELECT keys, bytes FROM airlock_kv_usage WHERE ns = ?1")
        .and_then(|mut s| {
            s.query_row(params![ns], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
        .map_err(backend)?;
    Ok(row.map_or((0, 0), |(k, b)| (k.max(0) as u64, b.max(0) as u64)))
}

fn set_usage(
    tx: &rusqlite::Transaction<'_>,
    ns: &str,
    keys: u64,
    bytes: u64,
) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO airlock_kv_usage (ns, keys, bytes) VALUES (?1, ?2, ?3)
         ON CONFLICT (ns) DO UPDATE SET keys = excluded.keys, bytes = excluded.bytes",
    )
    .and_then(|mut s| s.execute(params![ns, keys as i64, bytes as i64]))
    .map_err(backend)?;
    Ok(())
}
