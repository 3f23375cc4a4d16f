//! A named kv store as the host config declares it (`[kv.NAME]`), opened into
//! one of the backends, and the quota arithmetic both backends share.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use secrecy::SecretString;

use crate::postgres::PgStore;
use crate::sqlite::SqliteStore;

/// `[kv.NAME]` of the host config: where one store lives. The path or the
/// connection string is the operator's; a toolkit only names the store.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum StoreSpec {
    /// An SQLite file on this host (created when missing), relative to the
    /// host config's directory.
    Sqlite {
        /// The database file.
        path: PathBuf,
    },
    /// A PostgreSQL database several hosts may share.
    Postgres {
        /// The name of the `[secrets.NAME]` holding the connection string
        /// (`host=… user=… password=… dbname=…` or `postgres://…`).
        url: String,
    },
}

/// Why a store operation did not complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StoreError {
    /// A quota of the grant would be passed: its `exhausted` name.
    Quota(&'static str),
    /// The database failed; the text holds no key, value or secret.
    Backend(String),
}

/// One opened store, cheap to clone.
#[derive(Clone, Debug)]
pub enum Store {
    /// An SQLite file.
    Sqlite(SqliteStore),
    /// A PostgreSQL database.
    Postgres(PgStore),
}

impl Store {
    /// Opens the store `spec` describes; relative paths are resolved
    /// against `base`, secrets named by the spec come from `secret`.
    pub fn open(
        spec: &StoreSpec,
        base: &Path,
        secret: impl Fn(&str) -> Result<SecretString, String>,
    ) -> Result<Self, String> {
        match spec {
            StoreSpec::Sqlite { path } => Ok(Store::Sqlite(SqliteStore::open(&base.join(path))?)),
            StoreSpec::Postgres { url } => {
                let url = secret(url).map_err(|e| format!("url names secret `{url}`: {e}"))?;
                Ok(Store::Postgres(PgStore::new(url)?))
            }
        }
    }

    pub(crate) async fn get(&self, ns: String, key: String) -> Result<Option<Vec<u8>>, StoreError> {
        match self {
            Store::Sqlite(s) => s.get(ns, key).await,
            Store::Postgres(s) => s.get(ns, key).await,
        }
    }

    pub(crate) async fn set(
        &self,
        ns: String,
        key: String,
        value: Vec<u8>,
        limits: Limits,
    ) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.set(ns, key, value, limits).await,
            Store::Postgres(s) => s.set(ns, key, value, limits).await,
        }
    }

    pub(crate) async fn delete(&self, ns: String, key: String) -> Result<bool, StoreError> {
        match self {
            Store::Sqlite(s) => s.delete(ns, key).await,
            Store::Postgres(s) => s.delete(ns, key).await,
        }
    }

    pub(crate) async fn list(
        &self,
        ns: String,
        prefix: String,
        cursor: Option<String>,
        limit: u32,
    ) -> Result<Vec<String>, StoreError> {
        match self {
            Store::Sqlite(s) => s.list(ns, prefix, cursor, limit).await,
            Store::Postgres(s) => s.list(ns, prefix, cursor, limit).await,
        }
    }
}

/// The quotas a write is checked against, over the whole namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    pub max_keys: u64,
    pub max_total_bytes: u64,
}

impl Limits {
    /// The namespace's (keys, bytes) after setting a key of `key_len` bytes
    /// to `value_len` bytes, when the key held `old` bytes (key and value)
    /// before; refused when a quota would be passed. A write that does not
    /// grow the namespace is always allowed (so an operator who lowers a
    /// quota leaves existing data usable).
    pub fn after_set(
        self,
        keys: u64,
        bytes: u64,
        old: Option<u64>,
        key_len: usize,
        value_len: usize,
    ) -> Result<(u64, u64), StoreError> {
        let size = key_len as u64 + value_len as u64;
        let new_keys = keys + u64::from(old.is_none());
        let new_bytes = bytes.saturating_sub(old.unwrap_or(0)) + size;
        if old.is_none() && new_keys > self.max_keys {
            return Err(StoreError::Quota("kv-keys"));
        }
        if new_bytes > self.max_total_bytes && new_bytes > bytes {
            return Err(StoreError::Quota("kv-total-bytes"));
        }
        Ok((new_keys, new_bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_count_keys_and_bytes_and_let_shrinking_writes_through() {
        let l = Limits {
            max_keys: 2,
            max_total_bytes: 10,
        };
        assert_eq!(l.after_set(0, 0, None, 1, 3), Ok((1, 4)));
        assert_eq!(l.after_set(1, 4, Some(4), 1, 9), Ok((1, 10)));
        assert_eq!(
            l.after_set(1, 4, Some(4), 1, 10),
            Err(StoreError::Quota("kv-total-bytes"))
        );
        assert_eq!(
            l.after_set(2, 4, None, 1, 0),
            Err(StoreError::Quota("kv-keys"))
        );
        // Over a lowered quota already: a smaller value still goes through.
        assert_eq!(l.after_set(2, 40, Some(30), 1, 1), Ok((2, 12)));
    }
}
