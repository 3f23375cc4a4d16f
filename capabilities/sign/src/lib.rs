//! The `sign` verb: HMAC-SHA256 and Ed25519 signatures with keys the host
//! holds. A tool names a key; the grant says which names it may use; the key
//! bytes stay in [`SignCapability`] and never cross into the guest.
#![deny(missing_docs)]

mod keys;

pub use keys::{KeyError, SignKey};

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use airlock_core::bindings::airlock::verbs::sign;
use airlock_core::{Capability, Decision, Job, ScopeChange, VerbError};
use ed25519_dalek::{Signature, Signer, Verifier};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use wasmtime::component::{HasSelf, Linker};

/// Largest message the verb signs or verifies in one call.
pub const DEFAULT_MAX_DATA_BYTES: usize = 1 << 20;

/// Host-wide: the named keys configured by the operator.
#[derive(Default)]
pub struct SignCapability {
    keys: Arc<HashMap<String, SignKey>>,
}

impl SignCapability {
    /// A capability serving exactly `keys`.
    pub fn new(keys: impl IntoIterator<Item = (String, SignKey)>) -> Self {
        Self {
            keys: Arc::new(keys.into_iter().collect()),
        }
    }

    /// The configured key names, sorted (never the key bytes).
    pub fn key_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.keys.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }
}

impl std::fmt::Debug for SignCapability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignCapability")
            .field("keys", &self.key_names())
            .finish()
    }
}

/// What one tool may sign with (`[tools.NAME.grants.sign]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SignGrant {
    /// Key names the tool may use.
    pub keys: Vec<String>,
    /// Per key: an Ed25519 domain-separation prefix (`domain || 0x00 || data`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub domains: BTreeMap<String, String>,
    /// Most sign/verify calls in one job (unlimited when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_calls: Option<u32>,
    /// Largest `data` accepted per call, in bytes (default 1 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_data_bytes: Option<usize>,
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

impl SignGrant {
    /// Every difference from `before` to `after` (see `Capability::compare`):
    /// a new key widens; for a key in both, a domain removed or changed widens
    /// (the tool may sign messages outside the old domain) and one added
    /// narrows; more calls (absent: unlimited) or larger messages (absent:
    /// [`DEFAULT_MAX_DATA_BYTES`]) widen.
    pub fn compare(before: &SignGrant, after: &SignGrant) -> Vec<ScopeChange> {
        const VERB: &str = "sign";
        let mut out = ScopeChange::items(VERB, "key", &before.keys, &after.keys);
        let mut keys: Vec<&String> = Vec::new();
        for key in &after.keys {
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        for key in keys.iter().copied().filter(|k| before.keys.contains(k)) {
            match (before.domains.get(key), after.domains.get(key)) {
                (Some(b), Some(a)) if a != b => out.push(ScopeChange::widening(format!(
                    "~ {VERB} domain {key} {b:?} → {a:?}"
                ))),
                (Some(b), None) => out.push(ScopeChange::widening(format!(
                    "- {VERB} domain {key} {b:?}"
                ))),
                (None, Some(a)) => out.push(ScopeChange::narrowing(format!(
                    "+ {VERB} domain {key} {a:?}"
                ))),
                _ => {}
            }
        }
        for key in keys.iter().copied().filter(|k| !before.keys.contains(k)) {
            if let Some(a) = after.domains.get(key) {
                out.push(ScopeChange::narrowing(format!(
                    "+ {VERB} domain {key} {a:?}"
                )));
            }
        }
        let calls = |g: &SignGrant| g.max_calls.map_or(Calls::Unlimited, Calls::At);
        out.extend(ScopeChange::limit(
            VERB,
            "max_calls",
            calls(before),
            calls(after),
        ));
        let data = |g: &SignGrant| g.max_data_bytes.unwrap_or(DEFAULT_MAX_DATA_BYTES);
        out.extend(ScopeChange::limit(
            VERB,
            "max_data_bytes",
            data(before),
            data(after),
        ));
        out
    }
}

/// One job's view of the verb.
pub struct SignState {
    keys: Arc<HashMap<String, SignKey>>,
    grant: Arc<SignGrant>,
    job: Job,
    calls: u32,
}

impl Capability for SignCapability {
    const VERB: &'static str = "sign";
    const INTERFACE: &'static str = "airlock:verbs/sign";
    type Grant = SignGrant;
    type State = SignState;

    fn check_grant(&self, grant: &SignGrant) -> Result<(), String> {
        for name in &grant.keys {
            if !self.keys.contains_key(name) {
                return Err(format!(
                    "the sign grant names key `{name}` but the host config has no such key; \
                     add [sign.keys.{name}] to the host config or remove it from the grant"
                ));
            }
        }
        for name in grant.domains.keys() {
            if !grant.keys.contains(name) {
                return Err(format!(
                    "the sign grant sets a domain for key `{name}` which it does not grant"
                ));
            }
        }
        Ok(())
    }

    fn state(&self, grant: Arc<SignGrant>, job: Job) -> SignState {
        SignState {
            keys: self.keys.clone(),
            grant,
            job,
            calls: 0,
        }
    }

    fn describe(grant: &SignGrant) -> Vec<String> {
        let mut lines = vec![format!(
            "may sign and verify with keys: {} (it sees signatures and public keys, never key bytes)",
            grant.keys.join(", ")
        )];
        for (key, domain) in &grant.domains {
            lines.push(format!(
                "Ed25519 signatures with `{key}` are bound to the domain \"{domain}\""
            ));
        }
        match grant.max_calls {
            Some(n) => lines.push(format!("at most {n} sign calls per job")),
            None => lines.push("no limit on sign calls per job".into()),
        }
        lines.push(format!(
            "at most {} bytes per message",
            grant.max_data_bytes.unwrap_or(DEFAULT_MAX_DATA_BYTES)
        ));
        lines
    }

    fn compare(before: &SignGrant, after: &SignGrant) -> Vec<ScopeChange> {
        SignGrant::compare(before, after)
    }

    fn add_to_linker<T: Send + 'static>(
        linker: &mut Linker<T>,
        get: fn(&mut T) -> &mut SignState,
    ) -> wasmtime::Result<()> {
        sign::add_to_linker::<T, HasSelf<SignState>>(linker, get)
    }
}

airlock_core::impl_types_host!(SignState);

impl SignState {
    /// Applies the grant to one call and returns the key, auditing refusals.
    fn authorize(
        &mut self,
        op: &'static str,
        key_name: &str,
        data_len: usize,
    ) -> Result<&SignKey, VerbError> {
        let started = self.job.call_started();
        let checked = self.check(key_name, data_len);
        if let Err(e) = &checked {
            self.job.audit(
                "sign",
                op,
                Decision::Deny(format!("{}: {}", e.kind(), e.reason())),
                started,
                Some(format!("key={key_name}")),
            );
        }
        checked?;
        self.keys
            .get(key_name)
            .ok_or_else(|| VerbError::invalid(format!("key `{key_name}` vanished")))
    }

    fn check(&mut self, key_name: &str, data_len: usize) -> Result<(), VerbError> {
        if !self.grant.keys.iter().any(|k| k == key_name) {
            return Err(VerbError::denied(format!(
                "key `{key_name}` is not granted to this tool"
            )));
        }
        if !self.keys.contains_key(key_name) {
            return Err(VerbError::invalid(format!(
                "key `{key_name}` is not configured on this host"
            )));
        }
        let max = self.grant.max_data_bytes.unwrap_or(DEFAULT_MAX_DATA_BYTES);
        if data_len > max {
            return Err(VerbError::invalid(format!(
                "data is {data_len} bytes; this grant signs at most {max}"
            )));
        }
        if let Some(max) = self.grant.max_calls
            && self.calls >= max
        {
            return Err(VerbError::exhausted("sign-calls"));
        }
        self.calls += 1;
        Ok(())
    }

    fn finish<R>(
        &self,
        op: &'static str,
        key_name: &str,
        started: Instant,
        result: Result<R, VerbError>,
    ) -> Result<R, VerbError> {
        let decision = match &result {
            Ok(_) => Decision::Allow,
            Err(e) => Decision::Deny(format!("{}: {}", e.kind(), e.reason())),
        };
        self.job.audit(
            "sign",
            op,
            decision,
            started,
            Some(format!("key={key_name}")),
        );
        result
    }

    fn domain_separated(&self, key_name: &str, data: Vec<u8>) -> Vec<u8> {
        match self.grant.domains.get(key_name) {
            Some(domain) => {
                let mut msg = Vec::with_capacity(domain.len() + 1 + data.len());
                msg.extend_from_slice(domain.as_bytes());
                msg.push(0);
                msg.extend_from_slice(&data);
                msg
            }
            None => data,
        }
    }
}

fn hmac(key: &SignKey, key_name: &str, data: &[u8]) -> Result<Hmac<Sha256>, VerbError> {
    let secret = key.hmac_secret().ok_or_else(|| {
        VerbError::invalid(format!(
            "key `{key_name}` is an Ed25519 key, not an HMAC key"
        ))
    })?;
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
        .map_err(|_| VerbError::invalid("hmac key of unusable length"))?;
    mac.update(data);
    Ok(mac)
}

fn ed25519<'k>(
    key: &'k SignKey,
    key_name: &str,
) -> Result<&'k ed25519_dalek::SigningKey, VerbError> {
    key.ed25519().ok_or_else(|| {
        VerbError::invalid(format!(
            "key `{key_name}` is an HMAC key, not an Ed25519 key"
        ))
    })
}

impl sign::Host for SignState {
    async fn hmac_sha256(&mut self, key_name: String, data: Vec<u8>) -> Result<Vec<u8>, VerbError> {
        let started = self.job.call_started();
        let key = self.authorize("hmac-sha256", &key_name, data.len())?;
        let result = hmac(key, &key_name, &data).map(|m| m.finalize().into_bytes().to_vec());
        self.finish("hmac-sha256", &key_name, started, result)
    }

    async fn hmac_sha256_verify(
        &mut self,
        key_name: String,
        data: Vec<u8>,
        mac: Vec<u8>,
    ) -> Result<bool, VerbError> {
        let started = self.job.call_started();
        let key = self.authorize("hmac-sha256-verify", &key_name, data.len())?;
        let result = hmac(key, &key_name, &data).map(|m| m.verify_slice(&mac).is_ok());
        self.finish("hmac-sha256-verify", &key_name, started, result)
    }

    async fn ed25519_sign(
        &mut self,
        key_name: String,
        data: Vec<u8>,
    ) -> Result<Vec<u8>, VerbError> {
        let started = self.job.call_started();
        let data_len = data.len();
        let msg = self.domain_separated(&key_name, data);
        let key = self.authorize("ed25519-sign", &key_name, data_len)?;
        let result = ed25519(key, &key_name).map(|k| k.sign(&msg).to_bytes().to_vec());
        self.finish("ed25519-sign", &key_name, started, result)
    }

    async fn ed25519_verify(
        &mut self,
        key_name: String,
        data: Vec<u8>,
        signature: Vec<u8>,
    ) -> Result<bool, VerbError> {
        let started = self.job.call_started();
        let data_len = data.len();
        let msg = self.domain_separated(&key_name, data);
        let key = self.authorize("ed25519-verify", &key_name, data_len)?;
        let result = ed25519(key, &key_name).map(|k| {
            Signature::from_slice(&signature)
                .map(|sig| k.verifying_key().verify(&msg, &sig).is_ok())
                .unwrap_or(false)
        });
        self.finish("ed25519-verify", &key_name, started, result)
    }

    async fn ed25519_public_key(&mut self, key_name: String) -> Result<Vec<u8>, VerbError> {
        let started = self.job.call_started();
        let key = self.authorize("ed25519-public-key", &key_name, 0)?;
        let result = ed25519(key, &key_name).map(|k| k.verifying_key().to_bytes().to_vec());
        self.finish("ed25519-public-key", &key_name, started, result)
    }
}

#[cfg(test)]
mod tests;
