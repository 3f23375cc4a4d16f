//! Opaque bearer tokens: made by [`new_token`], stored by the operator as
//! the SHA-256 of their bytes, and looked up by comparing that hash with
//! every configured one in constant time.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::SecretString;
use secrecy::zeroize::Zeroizing;
use sha2::{Digest, Sha256};
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

use crate::config::{ALL_TOOLKITS, ConfigError, TokenConfig};
use crate::{Access, AuthError, Via};

/// What every token [`new_token`] makes starts with, so a leaked one is easy
/// to recognise (and to search for in a repository).
pub const TOKEN_PREFIX: &str = "alk_";

/// A new bearer token and the SHA-256 hex to write into `[serve.tokens.NAME]
/// sha256`: 32 bytes from the operating system's generator, written as
/// [`TOKEN_PREFIX`] and unpadded base64url.
///
/// # Panics
///
/// When the operating system's random generator fails, which leaves nothing
/// safe to make a token from.
pub fn new_token() -> (SecretString, String) {
    let mut bytes = Zeroizing::new([0u8; 32]);
    getrandom::fill(bytes.as_mut())
        .expect("the operating system's random generator failed; no token can be made");
    let mut token = String::with_capacity(TOKEN_PREFIX.len() + 43);
    token.push_str(TOKEN_PREFIX);
    URL_SAFE_NO_PAD.encode_string(bytes.as_ref(), &mut token);
    let hash = hex::encode(Sha256::digest(token.as_bytes()));
    (SecretString::from(token), hash)
}

/// The toolkits a credential may call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Toolkits {
    /// `"*"`: every toolkit.
    All,
    /// These names.
    Named(BTreeSet<String>),
}

impl Toolkits {
    pub(crate) fn allows(&self, toolkit: &str) -> bool {
        match self {
            Toolkits::All => true,
            Toolkits::Named(names) => names.contains(toolkit),
        }
    }
}

/// One configured token: its name, hash and toolkits.
struct Entry {
    name: String,
    hash: [u8; 32],
    toolkits: Toolkits,
}

/// Every configured token, checked at load.
pub(crate) struct TokenTable {
    entries: Vec<Entry>,
}

impl TokenTable {
    /// Checks every entry: hash shape, a non-empty toolkit list, one hash per
    /// name.
    pub(crate) fn load(tokens: &BTreeMap<String, TokenConfig>) -> Result<Self, ConfigError> {
        let mut entries: Vec<Entry> = Vec::with_capacity(tokens.len());
        for (name, config) in tokens {
            if name.trim().is_empty() {
                return Err(ConfigError::TokenName {
                    name: name.clone(),
                    reason: "the name is empty; name the client the token is for",
                });
            }
            let hash = parse_hash(&config.sha256)
                .ok_or_else(|| ConfigError::TokenHash { name: name.clone() })?;
            if config.toolkits.is_empty() {
                return Err(ConfigError::TokenToolkits { name: name.clone() });
            }
            if config.toolkits.iter().any(|t| t.trim().is_empty()) {
                return Err(ConfigError::TokenName {
                    name: name.clone(),
                    reason: "a toolkit name is empty; list toolkit names, or \"*\" for all",
                });
            }
            if let Some(other) = entries.iter().find(|e| e.hash == hash) {
                return Err(ConfigError::DuplicateToken {
                    first: other.name.clone(),
                    second: name.clone(),
                });
            }
            let toolkits = if config.toolkits.iter().any(|t| t == ALL_TOOLKITS) {
                Toolkits::All
            } else {
                Toolkits::Named(config.toolkits.iter().cloned().collect())
            };
            entries.push(Entry {
                name: name.clone(),
                hash,
                toolkits,
            });
        }
        Ok(TokenTable { entries })
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| e.name.as_str())
    }

    /// Finds the token among the configured hashes (all of them compared,
    /// in constant time, whatever matches) and checks it may use `toolkit`.
    pub(crate) fn check(&self, token: &str, toolkit: &str) -> Result<Access, AuthError> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = Choice::from(0u8);
        let mut index = 0u32;
        for (i, entry) in self.entries.iter().enumerate() {
            let same = entry.hash.ct_eq(&digest);
            index = u32::conditional_select(&index, &(i as u32), same);
            found |= same;
        }
        if !bool::from(found) {
            return Err(AuthError::UnknownToken);
        }
        let entry = &self.entries[index as usize];
        if !entry.toolkits.allows(toolkit) {
            return Err(AuthError::Forbidden {
                toolkit: toolkit.to_string(),
            });
        }
        Ok(Access {
            principal: entry.name.clone(),
            via: Via::Token,
        })
    }
}

/// 64 lowercase hex digits as 32 bytes.
fn parse_hash(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}
