//! The `kv` verb: a small key-value store the host keeps for a tool. The
//! grant names the store and the namespace; the guest only names keys inside
//! it, and every write is checked against the grant's quotas atomically.
#![deny(missing_docs)]

mod grant;
mod postgres;
mod sqlite;
mod store;

pub use grant::{
    DEFAULT_MAX_KEYS, DEFAULT_MAX_TOTAL_BYTES, DEFAULT_MAX_VALUE_BYTES, KvGrant,
    MAX_NAMESPACE_BYTES, check_namespace,
};
pub use postgres::{MAX_CONNECTIONS, PgStore};
pub use sqlite::SqliteStore;
pub use store::{Store, StoreSpec};

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use airlock_core::bindings::airlock::verbs::kv;
use airlock_core::{Capability, Decision, Job, ScopeChange, VerbError};
use secrecy::SecretString;
use sha2::{Digest, Sha256};
use wasmtime::component::{HasSelf, Linker};

use store::{Limits, StoreError};

/// Longest key, prefix or cursor, in bytes.
pub const MAX_KEY_BYTES: usize = 512;
/// Most keys one `list` call returns.
pub const MAX_LIST: u32 = 1000;
/// Keys a `list` call returns when it asks for 0.
pub const DEFAULT_LIST: u32 = 100;

/// Host-wide: the named stores of the host config (`[kv.NAME]`).
#[derive(Default)]
pub struct KvCapability {
    stores: Arc<HashMap<String, Store>>,
}

impl KvCapability {
    /// A capability serving exactly `stores`.
    pub fn new(stores: impl IntoIterator<Item = (String, Store)>) -> Self {
        Self {
            stores: Arc::new(stores.into_iter().collect()),
        }
    }

    /// Opens every store of `specs` (paths relative to `base`, connection
    /// strings from the secrets `secret` resolves); the error names the
    /// store that failed and never holds a secret.
    pub fn open(
        specs: &BTreeMap<String, StoreSpec>,
        base: &Path,
        secret: impl Fn(&str) -> Result<SecretString, String>,
    ) -> Result<Self, String> {
        let mut stores = Vec::new();
        for (name, spec) in specs {
            let store =
                Store::open(spec, base, &secret).map_err(|e| format!("[kv.{name}]: {e}"))?;
            stores.push((name.clone(), store));
        }
        Ok(Self::new(stores))
    }

    /// The configured store names, sorted.
    pub fn store_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.stores.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }
}

impl std::fmt::Debug for KvCapability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvCapability")
            .field("stores", &self.store_names())
            .finish()
    }
}

/// One job's view of the verb: its store (none when the verb is not
/// granted: every call is denied), its namespace and its call count.
pub struct KvState {
    store: Option<Store>,
    grant: Arc<KvGrant>,
    namespace: String,
    job: Job,
    calls: u32,
}

impl Capability for KvCapability {
    const VERB: &'static str = "kv";
    const INTERFACE: &'static str = "airlock:verbs/kv";
    type Grant = KvGrant;
    type State = KvState;

    fn check_grant(&self, grant: &KvGrant) -> Result<(), String> {
        if !self.stores.contains_key(&grant.store) {
            return Err(format!(
                "the kv grant names store `{}` but the host config has no such store; \
                 add [kv.{}] to the host config or name one of: {}",
                grant.store,
                grant.store,
                self.store_names().join(", ")
            ));
        }
        if let Some(ns) = &grant.namespace {
            check_namespace(ns).map_err(|e| format!("the kv grant's namespace: {e}"))?;
        }
        Ok(())
    }

    fn state(&self, grant: Arc<KvGrant>, job: Job) -> KvState {
        KvState {
            store: self.stores.get(&grant.store).cloned(),
            namespace: grant.namespace_for(job.tool()).to_string(),
            grant,
            job,
            calls: 0,
        }
    }

    fn describe(grant: &KvGrant) -> Vec<String> {
        grant.describe()
    }

    fn compare(before: &KvGrant, after: &KvGrant) -> Vec<ScopeChange> {
        KvGrant::compare(before, after)
    }

    fn add_to_linker<T: Send + 'static>(
        linker: &mut Linker<T>,
        get: fn(&mut T) -> &mut KvState,
    ) -> wasmtime::Result<()> {
        kv::add_to_linker::<T, HasSelf<KvState>>(linker, get)
    }
}

airlock_core::impl_types_host!(KvState);

/// Whether `key` can be a key (or, with `allow_empty`, a list prefix):
/// at most [`MAX_KEY_BYTES`] bytes, no control characters (NUL included).
pub fn check_key(what: &str, key: &str, allow_empty: bool) -> Result<(), VerbError> {
    if key.is_empty() && !allow_empty {
        return Err(VerbError::invalid(format!("the {what} is empty")));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(VerbError::invalid(format!(
            "the {what} is {} bytes; keys are at most {MAX_KEY_BYTES}",
            key.len()
        )));
    }
    if key.chars().any(char::is_control) {
        return Err(VerbError::invalid(format!(
            "the {what} contains a control character; keys are printable text"
        )));
    }
    Ok(())
}

/// What the audit keeps of a key: its length and the first 8 bytes of its
/// SHA-256, enough to tell calls on one key apart from calls on another.
/// Key names can carry personal data (an address as a key), so the text is
/// never recorded; a short key can still be guessed from its hash.
fn key_digest(key: &str) -> String {
    let hash = Sha256::digest(key.as_bytes());
    format!(
        "key_len={} key_sha256={}",
        key.len(),
        hex::encode(&hash[..8])
    )
}

impl KvState {
    /// The namespace this job's calls reach.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Applies the grant to one call: granted store, namespace, writes,
    /// call quota. Returns the store.
    fn authorize(&mut self, write: bool) -> Result<Store, VerbError> {
        let Some(store) = self.store.clone() else {
            return Err(VerbError::denied("the kv verb is not granted to this tool"));
        };
        check_namespace(&self.namespace).map_err(VerbError::denied)?;
        if write && self.grant.read_only {
            return Err(VerbError::denied(format!(
                "the kv grant of store `{}` is read-only",
                self.grant.store
            )));
        }
        if let Some(max) = self.grant.max_calls
            && self.calls >= max
        {
            return Err(VerbError::exhausted("kv-calls"));
        }
        self.calls += 1;
        Ok(store)
    }

    /// Runs `op` against the store, bounded by the job's deadline and
    /// cancellation, and audits the outcome with `detail`.
    async fn call<R>(
        &mut self,
        op: &'static str,
        write: bool,
        detail: String,
        check: Result<(), VerbError>,
        run: impl AsyncFnOnce(Store, String) -> Result<R, StoreError>,
    ) -> Result<R, VerbError> {
        let started = Instant::now();
        let detail = format!("store={} ns={} {detail}", self.grant.store, self.namespace);
        // Not granted at all: denied, whatever else is wrong with the call.
        let granted = match self.store {
            Some(_) => check,
            None => Err(VerbError::denied("the kv verb is not granted to this tool")),
        };
        let result = match granted.and_then(|()| self.authorize(write)) {
            Err(e) => Err(e),
            Ok(store) => {
                let guard = self.job.in_flight("kv", op, started, detail.clone());
                let remaining = self.job.remaining();
                let fut = tokio::time::timeout(remaining, run(store, self.namespace.clone()));
                let out = match self.job.cancel().run(fut).await {
                    None => Err(VerbError::Cancelled),
                    Some(Err(_elapsed)) => Err(VerbError::timeout()),
                    Some(Ok(Ok(v))) => Ok(v),
                    Some(Ok(Err(StoreError::Quota(which)))) => Err(VerbError::exhausted(which)),
                    Some(Ok(Err(StoreError::Backend(why)))) => Err(VerbError::upstream(format!(
                        "the kv store `{}` failed: {why}",
                        self.grant.store
                    ))),
                };
                guard.disarm();
                out
            }
        };
        let decision = match &result {
            Ok(_) => Decision::Allow,
            Err(e) => Decision::Deny(format!("{}: {}", e.kind(), e.reason())),
        };
        self.job.audit("kv", op, decision, started, Some(detail));
        result
    }
}

impl kv::Host for KvState {
    async fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, VerbError> {
        let check = check_key("key", &key, false);
        let detail = key_digest(&key);
        self.call("get", false, detail, check, async move |s, ns| {
            s.get(ns, key).await
        })
        .await
    }

    async fn set(&mut self, key: String, value: Vec<u8>) -> Result<(), VerbError> {
        let max = self.grant.max_value_bytes();
        let check = check_key("key", &key, false).and_then(|()| {
            if value.len() as u64 > max {
                Err(VerbError::exhausted("kv-value-bytes"))
            } else {
                Ok(())
            }
        });
        let detail = format!("{} value_len={}", key_digest(&key), value.len());
        let limits = Limits {
            max_keys: self.grant.max_keys(),
            max_total_bytes: self.grant.max_total_bytes(),
        };
        self.call("set", true, detail, check, async move |s, ns| {
            s.set(ns, key, value, limits).await
        })
        .await
    }

    async fn delete(&mut self, key: String) -> Result<bool, VerbError> {
        let check = check_key("key", &key, false);
        let detail = key_digest(&key);
        self.call("delete", true, detail, check, async move |s, ns| {
            s.delete(ns, key).await
        })
        .await
    }

    async fn list(
        &mut self,
        prefix: String,
        cursor: Option<String>,
        limit: u32,
    ) -> Result<kv::Page, VerbError> {
        let check = check_key("prefix", &prefix, true).and_then(|()| match &cursor {
            Some(c) => check_key("cursor", c, false),
            None => Ok(()),
        });
        let limit = match limit {
            0 => DEFAULT_LIST,
            n => n.min(MAX_LIST),
        };
        let detail = format!("prefix_len={} limit={limit}", prefix.len());
        self.call("list", false, detail, check, async move |s, ns| {
            // One more than asked: whether there is a next page.
            let mut keys = s.list(ns, prefix, cursor, limit + 1).await?;
            let next = if keys.len() > limit as usize {
                keys.truncate(limit as usize);
                keys.last().cloned()
            } else {
                None
            };
            Ok(kv::Page { keys, next })
        })
        .await
    }
}

/// The workspace's PostgreSQL test harness.
#[cfg(test)]
#[path = "../../../tests/pg.rs"]
mod pg;
#[cfg(test)]
mod tests;
