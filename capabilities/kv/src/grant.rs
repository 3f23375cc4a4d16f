//! `[tools.NAME.grants.kv]`: which store and namespace a tool reaches, whether
//! it may write, its quotas; the permission diff between two such grants and
//! the plain words `airlock explain` prints.

use airlock_core::ScopeChange;
use serde::{Deserialize, Serialize};

/// Most keys in a namespace when the grant does not say.
pub const DEFAULT_MAX_KEYS: u64 = 10_000;
/// Largest value when the grant does not say: 1 MiB.
pub const DEFAULT_MAX_VALUE_BYTES: u64 = 1 << 20;
/// Most bytes (keys and values) in a namespace when the grant does not say: 64 MiB.
pub const DEFAULT_MAX_TOTAL_BYTES: u64 = 64 << 20;
/// Longest namespace name.
pub const MAX_NAMESPACE_BYTES: usize = 128;

/// What one tool may do with the kv verb (`[tools.NAME.grants.kv]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KvGrant {
    /// The store, a `[kv.NAME]` of the host config.
    pub store: String,
    /// The namespace inside the store; absent: the tool's name. The guest
    /// never chooses it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Only `get` and `list`; `set` and `delete` are denied.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
    /// Most keys in the namespace (default [`DEFAULT_MAX_KEYS`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_keys: Option<u64>,
    /// Largest value in bytes (default [`DEFAULT_MAX_VALUE_BYTES`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_value_bytes: Option<u64>,
    /// Most bytes of keys and values in the namespace (default
    /// [`DEFAULT_MAX_TOTAL_BYTES`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_total_bytes: Option<u64>,
    /// Most kv calls in one job (unlimited when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_calls: Option<u32>,
}

/// A call limit where absent means unlimited, ordered so that unlimited is
/// the largest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Calls {
    At(u32),
    Unlimited,
}

impl std::fmt::Display for Calls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Calls::At(n) => write!(f, "{n}"),
            Calls::Unlimited => f.write_str("unlimited"),
        }
    }
}

impl KvGrant {
    /// The namespace a job of `tool` uses.
    pub fn namespace_for<'a>(&'a self, tool: &'a str) -> &'a str {
        self.namespace.as_deref().unwrap_or(tool)
    }

    /// The key quota in force.
    pub fn max_keys(&self) -> u64 {
        self.max_keys.unwrap_or(DEFAULT_MAX_KEYS)
    }

    /// The value-size quota in force.
    pub fn max_value_bytes(&self) -> u64 {
        self.max_value_bytes.unwrap_or(DEFAULT_MAX_VALUE_BYTES)
    }

    /// The namespace-size quota in force.
    pub fn max_total_bytes(&self) -> u64 {
        self.max_total_bytes.unwrap_or(DEFAULT_MAX_TOTAL_BYTES)
    }

    /// Every difference from `before` to `after`: another store or namespace
    /// widens (other data; an absent namespace is the tool's name, so setting
    /// one where there was none widens too), dropping `read_only` widens,
    /// larger quotas or more calls (absent: unlimited) widen.
    pub fn compare(before: &KvGrant, after: &KvGrant) -> Vec<ScopeChange> {
        const VERB: &str = "kv";
        let mut out = Vec::new();
        if before.store != after.store {
            out.push(ScopeChange::widening(format!(
                "~ {VERB} store {:?} → {:?}",
                before.store, after.store
            )));
        }
        if before.namespace != after.namespace {
            let show = |n: &Option<String>| match n {
                Some(n) => format!("{n:?}"),
                None => "(the tool's name)".to_string(),
            };
            out.push(ScopeChange::widening(format!(
                "~ {VERB} namespace {} → {}",
                show(&before.namespace),
                show(&after.namespace)
            )));
        }
        if before.read_only != after.read_only {
            let line = format!(
                "~ {VERB} read_only {} → {}",
                before.read_only, after.read_only
            );
            out.push(if after.read_only {
                ScopeChange::narrowing(line)
            } else {
                ScopeChange::widening(line)
            });
        }
        out.extend(ScopeChange::limit(
            VERB,
            "max_keys",
            before.max_keys(),
            after.max_keys(),
        ));
        out.extend(ScopeChange::limit(
            VERB,
            "max_value_bytes",
            before.max_value_bytes(),
            after.max_value_bytes(),
        ));
        out.extend(ScopeChange::limit(
            VERB,
            "max_total_bytes",
            before.max_total_bytes(),
            after.max_total_bytes(),
        ));
        let calls = |g: &KvGrant| g.max_calls.map_or(Calls::Unlimited, Calls::At);
        out.extend(ScopeChange::limit(
            VERB,
            "max_calls",
            calls(before),
            calls(after),
        ));
        out
    }

    /// The grant in plain words, one line each.
    pub fn describe(&self) -> Vec<String> {
        let ns = match &self.namespace {
            Some(ns) => format!("namespace \"{ns}\""),
            None => "the namespace named after the tool".to_string(),
        };
        let store = &self.store;
        let mut lines = vec![if self.read_only {
            format!(
                "may read (get, list) keys of the kv store `{store}`, inside {ns}, never \
                 write; no other namespace is reachable"
            )
        } else {
            format!(
                "may read and write keys of the kv store `{store}`, inside {ns}; \
                 no other namespace is reachable"
            )
        }];
        lines.push(format!(
            "at most {} keys and {} bytes in all in the namespace, {} bytes per value",
            self.max_keys(),
            self.max_total_bytes(),
            self.max_value_bytes()
        ));
        match self.max_calls {
            Some(n) => lines.push(format!("at most {n} kv calls per job")),
            None => lines.push("no limit on kv calls per job".into()),
        }
        lines
    }
}

/// Whether `ns` can name a namespace: 1 to [`MAX_NAMESPACE_BYTES`] bytes, no
/// control characters.
pub fn check_namespace(ns: &str) -> Result<(), String> {
    if ns.is_empty() || ns.len() > MAX_NAMESPACE_BYTES {
        return Err(format!(
            "a kv namespace is 1 to {MAX_NAMESPACE_BYTES} bytes; this one is {}",
            ns.len()
        ));
    }
    if ns.chars().any(char::is_control) {
        return Err("a kv namespace may not contain control characters".into());
    }
    Ok(())
}
