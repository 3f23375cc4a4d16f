//! What the operator writes under `[serve]`: bearer tokens (as hashes) and an
//! OAuth issuer, and the errors that refuse a configuration at load, before
//! the server binds.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The algorithms accepted when `algorithms` is not written.
pub const DEFAULT_ALGORITHMS: [&str; 3] = ["RS256", "ES256", "EdDSA"];
/// The claim that lists the toolkits a JWT may use, when not written.
pub const DEFAULT_TOOLKITS_CLAIM: &str = "airlock_toolkits";
/// The clock skew allowed on `exp` and `nbf`, when not written.
pub const DEFAULT_LEEWAY: &str = "30s";
/// The toolkit pattern that grants every toolkit.
pub const ALL_TOOLKITS: &str = "*";

/// One bearer token (`[serve.tokens.NAME]`). The file holds only the
/// SHA-256 of the token's bytes; the token itself is shown once by
/// [`new_token`](crate::new_token) and never stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// 64 lowercase hex digits: the SHA-256 of the token's UTF-8 bytes.
    pub sha256: String,
    /// The toolkit names this token may call, or `"*"` for all of them.
    pub toolkits: Vec<String>,
}

/// Access tokens from an OAuth 2.0 authorization server (`[serve.oauth]`):
/// JWTs signed with a public key from a JWKS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthConfig {
    /// The `iss` every token must carry, exactly.
    pub issuer: String,
    /// A value the token's `aud` must contain.
    pub audience: String,
    /// A JWKS JSON file, relative to the directory of the host config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<PathBuf>,
    /// A JWKS URL, fetched at load and again (at most once a minute) when a
    /// token names an unknown key. `https`, or `http` to a loopback address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_url: Option<String>,
    /// The signature algorithms accepted; `none` and `HS*` are refused.
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
    /// The claim listing the toolkits a token may use (a list of names, or
    /// `"*"`). A `scope` claim with `toolkit:NAME` or `toolkit:*` also works.
    #[serde(default = "default_toolkits_claim")]
    pub toolkits_claim: String,
    /// Allowed clock skew on `exp` and `nbf`, like `"30s"`.
    #[serde(default = "default_leeway")]
    pub leeway: String,
    /// This server's public base URL, announced in the protected-resource
    /// metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// The authorization servers announced to clients; empty means
    /// `[issuer]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authorization_servers: Vec<String>,
}

impl OAuthConfig {
    /// `issuer` and `audience` with every other field at its default and no
    /// JWKS yet (set `jwks` or `jwks_url`).
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        OAuthConfig {
            issuer: issuer.into(),
            audience: audience.into(),
            jwks: None,
            jwks_url: None,
            algorithms: default_algorithms(),
            toolkits_claim: default_toolkits_claim(),
            leeway: default_leeway(),
            resource: None,
            authorization_servers: Vec::new(),
        }
    }
}

fn default_algorithms() -> Vec<String> {
    DEFAULT_ALGORITHMS.iter().map(|a| a.to_string()).collect()
}

fn default_toolkits_claim() -> String {
    DEFAULT_TOOLKITS_CLAIM.to_string()
}

fn default_leeway() -> String {
    DEFAULT_LEEWAY.to_string()
}

/// A `[serve]` authentication setting the host cannot use. No variant
/// carries a token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A token's `sha256` is not 64 lowercase hex digits.
    #[error(
        "token `{name}`: sha256 must be 64 lowercase hex digits (the SHA-256 of the token); \
         make one with `airlock token new`"
    )]
    TokenHash {
        /// The token's name.
        name: String,
    },
    /// A token lists no toolkits.
    #[error("token `{name}` lists no toolkits; name the toolkits it may call, or \"*\" for all")]
    TokenToolkits {
        /// The token's name.
        name: String,
    },
    /// A token's name is empty, or a toolkit entry in it is.
    #[error("token `{name}`: {reason}")]
    TokenName {
        /// The token's name.
        name: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// Two token names carry the same hash: one token would be two principals.
    #[error("tokens `{first}` and `{second}` have the same sha256; give each client its own token")]
    DuplicateToken {
        /// The first name.
        first: String,
        /// The second name.
        second: String,
    },
    /// Neither or both of `jwks` and `jwks_url` are set.
    #[error("[serve.oauth]: {0}")]
    JwksSource(&'static str),
    /// A field of `[serve.oauth]` is empty or unusable.
    #[error("[serve.oauth] {field}: {reason}")]
    Field {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// An algorithm in `algorithms` is unknown or refused.
    #[error("[serve.oauth] algorithms: `{name}` {reason}")]
    Algorithm {
        /// The algorithm as written.
        name: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// `leeway` is not a duration.
    #[error("[serve.oauth] leeway `{value}` is not a duration ({reason}); write it like \"30s\"")]
    Leeway {
        /// The value as written.
        value: String,
        /// The parser's reason.
        reason: String,
    },
    /// The JWKS file could not be read.
    #[error("[serve.oauth] jwks file {path}: {reason}")]
    JwksFile {
        /// The resolved path.
        path: PathBuf,
        /// Why it could not be read.
        reason: String,
    },
    /// The JWKS URL is not one the host will fetch.
    #[error("[serve.oauth] jwks_url `{url}` {reason}")]
    JwksUrl {
        /// The URL as written (refused outright when it carries a password).
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Fetching the JWKS URL failed.
    #[error(
        "[serve.oauth] fetching jwks_url `{url}` failed: {reason}; check the URL and that the \
         authorization server is reachable"
    )]
    JwksFetch {
        /// The URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The JWKS document is not usable.
    #[error("[serve.oauth] JWKS from {source_name}: {reason}")]
    Jwks {
        /// The file or URL it came from.
        source_name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The HTTP client for `jwks_url` could not be built.
    #[error("[serve.oauth] could not build the HTTP client for jwks_url: {0}")]
    Client(String),
}
