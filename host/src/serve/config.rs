//! `[serve]` of the host config: where `airlock serve` listens, which
//! toolkits it serves at which paths, how long it drains, and who may call
//! it (bearer tokens, OAuth).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::units::Span;

/// `[serve]` as written; toolkit paths are relative to the host config.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeSpec {
    /// The address to listen on (`--listen` overrides it); default
    /// [`super::DEFAULT_LISTEN`]. Any address but loopback needs tokens or
    /// OAuth.
    pub listen: Option<SocketAddr>,
    /// `Host` header values accepted besides the listen address (the DNS
    /// names clients and the load balancer use).
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// On SIGTERM: how long calls in flight may go on before they are
    /// cancelled; default [`super::DEFAULT_DRAIN`].
    pub drain: Option<Span>,
    /// The toolkits served, each at `/toolkits/NAME/mcp`.
    #[serde(default)]
    pub toolkits: BTreeMap<String, ToolkitEntry>,
    /// `[serve.tokens.NAME]`: bearer tokens (their sha256, never the token)
    /// and the toolkits each may call.
    #[serde(default)]
    pub tokens: BTreeMap<String, airlock_auth::TokenConfig>,
    /// `[serve.oauth]`: JWT access tokens from an authorization server.
    pub oauth: Option<airlock_auth::OAuthConfig>,
    /// The host config's directory (a JWKS file is read relative to it).
    #[serde(skip)]
    pub base: PathBuf,
}

/// `[serve.toolkits.NAME]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolkitEntry {
    /// The toolkit file, relative to the host config.
    pub path: PathBuf,
}

impl ServeSpec {
    /// The drain time.
    pub fn drain(&self) -> Duration {
        self.drain.map_or(super::DEFAULT_DRAIN, |s| s.0)
    }

    /// Resolves toolkit paths against `base` (the host config's directory)
    /// and checks the names: a name is a path segment of letters, digits,
    /// `-` and `_`.
    pub(crate) fn resolve(mut self, base: &std::path::Path) -> Result<Self, String> {
        self.base = base.to_path_buf();
        for (name, entry) in &mut self.toolkits {
            let ok = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !ok {
                return Err(format!(
                    "[serve.toolkits.{name}]: a toolkit name is a URL path segment of letters, \
                     digits, `-` and `_`"
                ));
            }
            entry.path = base.join(&entry.path);
        }
        Ok(self)
    }
}
