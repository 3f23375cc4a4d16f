//! Who may call `airlock serve`: bearer tokens the operator stores as
//! SHA-256 hashes, and OAuth access tokens (JWTs) verified against the
//! authorization server's JWKS, each limited to named toolkits.
//!
//! The host embeds [`TokenConfig`] and [`OAuthConfig`] under `[serve]`,
//! builds one [`Authenticator`] at start, and calls
//! [`Authenticator::check`] on every request with the `Authorization` header
//! and the toolkit the path names. A refusal is an [`AuthError`] that knows
//! its HTTP status and its `WWW-Authenticate` challenge.
//!
//! ```toml
//! [serve.tokens.ci]
//! sha256 = "…64 hex digits from `airlock token new`…"
//! toolkits = ["research"]
//!
//! [serve.oauth]
//! issuer = "https://login.example.com/"
//! audience = "https://tools.example.com"
//! jwks_url = "https://login.example.com/.well-known/jwks.json"
//! ```
#![deny(missing_docs)]

mod config;
mod error;
mod jwks;
mod jwt;
mod token;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

pub use config::{
    ALL_TOOLKITS, ConfigError, DEFAULT_ALGORITHMS, DEFAULT_LEEWAY, DEFAULT_TOOLKITS_CLAIM,
    OAuthConfig, TokenConfig,
};
pub use error::AuthError;
pub use jwks::{FETCH_TIMEOUT, MAX_JWKS_BYTES, REFETCH_INTERVAL};
pub use jwt::SCOPE_PREFIX;
pub use token::{TOKEN_PREFIX, new_token};

/// The longest `Authorization` header read; longer ones are malformed.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Who a request comes from, once it is let in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// The token's name, or `oauth:` and the JWT's `sub`.
    pub principal: String,
    /// Which kind of credential it showed.
    pub via: Via,
}

/// The kind of credential a request showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// A bearer token from `[serve.tokens]`.
    Token,
    /// A JWT from the `[serve.oauth]` issuer.
    OAuth,
}

/// The checked credentials of one `airlock serve`: decides every request.
pub struct Authenticator {
    tokens: token::TokenTable,
    oauth: Option<jwt::OAuth>,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("tokens", &self.tokens.names().collect::<Vec<_>>())
            .field("oauth", &self.oauth.is_some())
            .finish()
    }
}

impl Authenticator {
    /// Checks the configuration and, with OAuth, reads the `jwks` file
    /// (relative to `base_dir`, the directory of the host config) or fetches
    /// `jwks_url`. Async only for that fetch; it needs a Tokio runtime.
    pub async fn load(
        tokens: &BTreeMap<String, TokenConfig>,
        oauth: Option<&OAuthConfig>,
        base_dir: &Path,
    ) -> Result<Authenticator, ConfigError> {
        let tokens = token::TokenTable::load(tokens)?;
        let oauth = match oauth {
            Some(config) => Some(jwt::OAuth::load(config, base_dir).await?),
            None => None,
        };
        Ok(Authenticator { tokens, oauth })
    }

    /// Whether nothing is configured: no token and no OAuth. The host then
    /// serves only on loopback.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty() && self.oauth.is_none()
    }

    /// Whether OAuth access tokens are accepted.
    pub fn has_oauth(&self) -> bool {
        self.oauth.is_some()
    }

    /// The configured `resource` (this server's public base URL), if any.
    pub fn resource(&self) -> Option<&str> {
        self.oauth.as_ref().and_then(|o| o.resource.as_deref())
    }

    /// Decides one request for `toolkit` from its `Authorization` header.
    /// A JWT (three base64url parts, with OAuth configured) is verified
    /// against the JWKS; anything else is looked up among the tokens. Async
    /// because a JWT naming an unknown key may refetch the `jwks_url` (at
    /// most once per [`REFETCH_INTERVAL`], bounded by [`FETCH_TIMEOUT`]).
    pub async fn check(
        &self,
        authorization: Option<&str>,
        toolkit: &str,
    ) -> Result<Access, AuthError> {
        let header = authorization
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .ok_or(AuthError::Missing)?;
        let token = bearer(header)?;
        match &self.oauth {
            Some(oauth) if jwt::looks_like_jwt(token) => oauth.check(token, toolkit).await,
            _ => self.tokens.check(token, toolkit),
        }
    }

    /// The OAuth 2.0 Protected Resource Metadata (RFC 9728) for `resource`
    /// (the URL the client calls), to serve at
    /// `/.well-known/oauth-protected-resource`; `None` without OAuth.
    pub fn resource_metadata(&self, resource: &str) -> Option<serde_json::Value> {
        let oauth = self.oauth.as_ref()?;
        Some(serde_json::json!({
            "resource": resource,
            "authorization_servers": oauth.authorization_servers,
            "bearer_methods_supported": ["header"],
            "scopes_supported": [format!("{SCOPE_PREFIX}{ALL_TOOLKITS}")],
        }))
    }
}

/// The token of a `Bearer` header (scheme case-insensitive, RFC 7235).
fn bearer(header: &str) -> Result<&str, AuthError> {
    if header.len() > MAX_HEADER_BYTES {
        return Err(AuthError::Malformed(format!(
            "the Authorization header is longer than {MAX_HEADER_BYTES} bytes"
        )));
    }
    let (scheme, rest) = header.split_once([' ', '\t']).unwrap_or((header, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::NotBearer);
    }
    let token = rest.trim();
    if token.is_empty() {
        return Err(AuthError::Malformed("the bearer token is empty".into()));
    }
    if token.contains(char::is_whitespace) {
        return Err(AuthError::Malformed(
            "the bearer token contains spaces; send one token".into(),
        ));
    }
    Ok(token)
}
