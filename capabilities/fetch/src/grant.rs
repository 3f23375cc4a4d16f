//! The fetch grant as written in a toolkit (`[tools.NAME.grants.fetch]`), its
//! URL patterns (`scheme://host[:port]/path-prefix*`), and the compiled
//! [`Policy`] the job path consults.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::Url;

use crate::canon::{CanonHost, Cidr, Target};
use crate::credential::{CredentialRef, CredentialRule, HostCredential};
use crate::scrub::Scrubber;

/// Default methods when a grant names none.
pub const DEFAULT_METHODS: [&str; 2] = ["GET", "HEAD"];
/// Default requests per job.
pub const DEFAULT_MAX_REQUESTS: u32 = 32;
/// Default request body cap, in bytes.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 1 << 20;
/// Default decoded response body cap, in bytes.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 4 << 20;
/// Default per-request timeout.
pub const DEFAULT_TIMEOUT: &str = "10s";
/// Default redirects followed per request.
pub const DEFAULT_MAX_REDIRECTS: u32 = 5;

/// What one tool may fetch (`[tools.NAME.grants.fetch]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FetchGrant {
    /// URL patterns `scheme://host[:port]/path-prefix`, `*.` only as a leading
    /// label, a trailing `*` for a plain (not segment-safe) prefix.
    pub allow: Vec<String>,
    /// Allowed methods (default `GET`, `HEAD`).
    #[serde(default = "default_methods")]
    pub methods: Vec<String>,
    /// Most `send` calls per job (default 32).
    #[serde(default = "default_max_requests")]
    pub max_requests: u32,
    /// Largest request body, in bytes (default 1 MiB).
    #[serde(default = "default_max_request_bytes")]
    pub max_request_bytes: usize,
    /// Largest decoded response body, in bytes (default 4 MiB).
    #[serde(default = "default_max_response_bytes")]
    pub max_response_bytes: usize,
    /// Per-request timeout as people write it (`10s`, `1m 30s`); the job's
    /// deadline still wins when it is sooner.
    #[serde(default = "default_timeout")]
    pub timeout: String,
    /// Redirects followed per request, each re-checked (default 5).
    #[serde(default = "default_max_redirects")]
    pub max_redirects: u32,
    /// Addresses or CIDRs the tool may reach although they are private,
    /// loopback, link-local... (default none). A metadata address needs its
    /// own single-address entry.
    #[serde(default)]
    pub private_networks: Vec<String>,
    /// Host credentials (`[fetch.credentials.NAME]` of the host config) this
    /// tool's requests may carry, each optionally narrowed to fewer URLs.
    #[serde(default)]
    pub credentials: Vec<CredentialRef>,
}

fn default_methods() -> Vec<String> {
    DEFAULT_METHODS.iter().map(|m| m.to_string()).collect()
}
fn default_max_requests() -> u32 {
    DEFAULT_MAX_REQUESTS
}
fn default_max_request_bytes() -> usize {
    DEFAULT_MAX_REQUEST_BYTES
}
fn default_max_response_bytes() -> usize {
    DEFAULT_MAX_RESPONSE_BYTES
}
fn default_timeout() -> String {
    DEFAULT_TIMEOUT.to_string()
}
fn default_max_redirects() -> u32 {
    DEFAULT_MAX_REDIRECTS
}

impl Default for FetchGrant {
    fn default() -> Self {
        Self {
            allow: Vec::new(),
            methods: default_methods(),
            max_requests: DEFAULT_MAX_REQUESTS,
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            timeout: default_timeout(),
            max_redirects: DEFAULT_MAX_REDIRECTS,
            private_networks: Vec::new(),
            credentials: Vec::new(),
        }
    }
}

/// Why a grant does not load; every message says what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    /// A malformed `allow` or credential pattern.
    #[error("fetch pattern `{pattern}`: {reason}")]
    Pattern {
        /// The pattern as written.
        pattern: String,
        /// What is wrong and what to write instead.
        reason: String,
    },
    /// Any other field.
    #[error("fetch grant: {0}")]
    Field(String),
    /// A credential the grant refers to: unknown, or widened.
    #[error("fetch credential `{name}`: {reason}")]
    Credential {
        /// The credential's name.
        name: String,
        /// What is wrong and what to write instead.
        reason: String,
    },
}

fn pattern_err(pattern: &str, reason: impl Into<String>) -> GrantError {
    GrantError::Pattern {
        pattern: pattern.to_string(),
        reason: reason.into(),
    }
}

/// Which hosts a pattern covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// Exactly this host.
    Exact(CanonHost),
    /// Any name with at least one more label in front of this one.
    Subdomains(String),
}

/// Which paths a pattern covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathPattern {
    /// Written with a trailing `*`: any path starting with these characters.
    Prefix(String),
    /// The path itself and everything below it, segment-wise (`/api` covers
    /// `/api` and `/api/x`, not `/apix`; `/api/` covers `/api/x` only).
    Segments(String),
}

/// One parsed `scheme://host[:port]/path` pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlPattern {
    /// The pattern as written, for audits and denials.
    pub raw: String,
    /// `http` or `https`.
    pub scheme: &'static str,
    /// Host rule.
    pub host: HostPattern,
    /// Port, explicit or the scheme's default.
    pub port: u16,
    /// Path rule.
    pub path: PathPattern,
}

impl UrlPattern {
    /// Parses one pattern, explaining what to write instead when it is wrong.
    pub fn parse(raw: &str) -> Result<Self, GrantError> {
        let err = |reason: &str| pattern_err(raw, reason);
        if raw
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '\\')
        {
            return Err(err("remove whitespace, control characters and backslashes"));
        }
        let Some((scheme, rest)) = raw.split_once("://") else {
            return Err(err(&format!(
                "no scheme; write `https://{}`",
                raw.trim_start_matches(['/', ':'])
            )));
        };
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => "http",
            "https" => "https",
            _ => return Err(err("only http:// and https:// URLs can be fetched")),
        };
        if rest.contains(['?', '#']) {
            return Err(err(
                "patterns match scheme, host, port and path; remove the query or fragment",
            ));
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, "/"),
        };
        if authority.contains('@') {
            return Err(err(
                "user information is not allowed; attach secrets with a `credentials` entry",
            ));
        }
        let (host, port) = split_port(authority).ok_or_else(|| {
            err("the port must be a number from 1 to 65535 (omit it for the scheme's default)")
        })?;
        let host = parse_host_pattern(raw, scheme, host)?;
        let port = match port {
            Some(p) => p,
            None if scheme == "https" => 443,
            None => 80,
        };
        Ok(Self {
            raw: raw.to_string(),
            scheme,
            host,
            port,
            path: parse_path_pattern(raw, path)?,
        })
    }

    /// Whether this pattern covers `target` (method aside).
    pub fn matches(&self, target: &Target) -> bool {
        self.scheme == target.scheme
            && self.port == target.port
            && self.matches_host(&target.host)
            && self.matches_path(target.path())
    }

    pub(crate) fn matches_host(&self, host: &CanonHost) -> bool {
        match (&self.host, host) {
            (HostPattern::Exact(h), host) => h == host,
            (HostPattern::Subdomains(base), CanonHost::Domain(d)) => d
                .strip_suffix(base.as_str())
                .and_then(|front| front.strip_suffix('.'))
                .is_some_and(|front| !front.is_empty()),
            (HostPattern::Subdomains(_), CanonHost::Ip(_)) => false,
        }
    }

    fn matches_path(&self, path: &str) -> bool {
        match &self.path {
            PathPattern::Prefix(p) => path.starts_with(p.as_str()),
            PathPattern::Segments(p) if p.ends_with('/') => path.starts_with(p.as_str()),
            PathPattern::Segments(p) => path
                .strip_prefix(p.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/')),
        }
    }

    /// Whether every URL this pattern matches, `outer` matches too: the same
    /// scheme and port; the same exact host, or an exact host or subdomain
    /// wildcard under an outer subdomain wildcard (`*.` stands for at least
    /// one more label, so `*.a.example.com` and `x.example.com` lie within
    /// `*.example.com`, `example.com` does not); and a path rule whose every
    /// path the outer rule covers (a character prefix that starts with the
    /// outer prefix, or for an outer segment rule `/api`, `/api` itself or
    /// anything starting `/api/`). `true` only when no URL can escape.
    pub fn within(&self, outer: &UrlPattern) -> bool {
        let host = match (&outer.host, &self.host) {
            (HostPattern::Exact(o), HostPattern::Exact(i)) => o == i,
            (HostPattern::Exact(_), HostPattern::Subdomains(_)) => false,
            (HostPattern::Subdomains(_), HostPattern::Exact(i)) => outer.matches_host(i),
            (HostPattern::Subdomains(base), HostPattern::Subdomains(inner_base)) => {
                inner_base == base
                    || inner_base
                        .strip_suffix(base.as_str())
                        .is_some_and(|front| front.len() > 1 && front.ends_with('.'))
            }
        };
        let inner_text = match &self.path {
            PathPattern::Prefix(p) | PathPattern::Segments(p) => p.as_str(),
        };
        let path = match &outer.path {
            PathPattern::Prefix(o) => inner_text.starts_with(o.as_str()),
            PathPattern::Segments(o) if o.ends_with('/') => inner_text.starts_with(o.as_str()),
            PathPattern::Segments(o) => {
                let dir = format!("{o}/");
                match &self.path {
                    PathPattern::Segments(i) if !i.ends_with('/') => i == o || i.starts_with(&dir),
                    _ => inner_text.starts_with(&dir),
                }
            }
        };
        outer.scheme == self.scheme && outer.port == self.port && host && path
    }

    /// The pattern in plain words, for `describe`.
    pub fn plain(&self) -> String {
        let host = match &self.host {
            HostPattern::Exact(h) => format!("host {h} exactly"),
            HostPattern::Subdomains(base) => {
                format!("any subdomain of {base} (not {base} itself)")
            }
        };
        let path = match &self.path {
            PathPattern::Prefix(p) if p == "/" => "any path".to_string(),
            PathPattern::Prefix(p) => format!("paths starting with the characters {p}"),
            PathPattern::Segments(p) if p == "/" => "any path".to_string(),
            PathPattern::Segments(p) if p.ends_with('/') => format!("paths under {p}"),
            PathPattern::Segments(p) => format!("{p} and paths under {p}/"),
        };
        format!("{}: {host}, port {}, {path}", self.scheme, self.port)
    }
}

/// Splits `host[:port]` / `[v6][:port]`; `None` for a bad port.
fn split_port(authority: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if let Some(end) = authority.rfind(']') {
        let (host, after) = authority.split_at(end + 1);
        match after.strip_prefix(':') {
            Some(p) => (host, Some(p)),
            None if after.is_empty() => (host, None),
            None => return None,
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    match port {
        None => Some((host, None)),
        Some(p) => {
            let n: u16 = p.parse().ok().filter(|n| *n != 0)?;
            Some((host, Some(n)))
        }
    }
}

fn parse_host_pattern(raw: &str, scheme: &str, host: &str) -> Result<HostPattern, GrantError> {
    let (wildcard, base) = match host.strip_prefix("*.") {
        Some(base) => (true, base),
        None => (false, host),
    };
    if base.contains('*') {
        return Err(pattern_err(
            raw,
            "`*` may only stand for whole leading labels, as in `*.example.com`",
        ));
    }
    if base.is_empty() {
        return Err(pattern_err(
            raw,
            "the host is missing; write `https://api.example.com/`",
        ));
    }
    let canonical = Url::parse(&format!("{scheme}://{base}/"))
        .ok()
        .and_then(|u| u.host().and_then(CanonHost::from_url_host))
        .ok_or_else(|| pattern_err(raw, format!("`{base}` is not a valid host name")))?;
    match (wildcard, canonical) {
        (false, host) => Ok(HostPattern::Exact(host)),
        (true, CanonHost::Ip(ip)) => Err(pattern_err(
            raw,
            format!(
                "`*.` cannot precede an IP address; list the address itself, as in `{scheme}://{}/`",
                CanonHost::Ip(ip)
            ),
        )),
        (true, CanonHost::Domain(d)) if !d.contains('.') => Err(pattern_err(
            raw,
            format!(
                "`*.{d}` would cover a whole top-level domain; name a domain such as `*.example.{d}`"
            ),
        )),
        (true, CanonHost::Domain(d)) => Ok(HostPattern::Subdomains(d)),
    }
}

fn parse_path_pattern(raw: &str, path: &str) -> Result<PathPattern, GrantError> {
    let (star, prefix) = match path.strip_suffix('*') {
        Some(p) => (true, p),
        None => (false, path),
    };
    if prefix.contains('*') {
        return Err(pattern_err(
            raw,
            "`*` may only end the path, as in `https://example.com/api/*`",
        ));
    }
    if prefix.split('/').any(|s| s == "." || s == "..") {
        return Err(pattern_err(
            raw,
            "remove `.` and `..` segments from the path",
        ));
    }
    let canonical = Url::parse(&format!("http://h{prefix}"))
        .map_err(|e| pattern_err(raw, format!("the path is not valid: {e}")))?
        .path()
        .to_string();
    Ok(if star {
        PathPattern::Prefix(canonical)
    } else {
        PathPattern::Segments(canonical)
    })
}

/// A grant compiled for the job path.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Parsed `allow` patterns, in grant order.
    pub allow: Vec<UrlPattern>,
    /// Allowed methods.
    pub methods: Vec<http::Method>,
    /// Requests per job.
    pub max_requests: u32,
    /// Request body cap.
    pub max_request_bytes: usize,
    /// Decoded response body cap.
    pub max_response_bytes: usize,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Redirects per request.
    pub max_redirects: u32,
    /// Reachable non-public networks.
    pub private: Vec<Cidr>,
    /// Credentials in grant order (the first match wins per header).
    pub credentials: Vec<CredentialRule>,
    /// Removes every spelling of those credentials from what comes back.
    pub scrubber: Arc<Scrubber>,
}

/// Methods a grant may not list.
const REFUSED_METHODS: [&str; 2] = ["CONNECT", "TRACE"];

impl FetchGrant {
    /// Parses every pattern and field and resolves the credentials against
    /// the host's; the error says what to write instead.
    pub(crate) fn compile(
        &self,
        host: &HashMap<String, Arc<HostCredential>>,
    ) -> Result<Policy, GrantError> {
        let allow = self
            .allow
            .iter()
            .map(|p| UrlPattern::parse(p))
            .collect::<Result<Vec<_>, _>>()?;
        let mut methods = Vec::new();
        for m in &self.methods {
            let upper = m.to_ascii_uppercase();
            if REFUSED_METHODS.contains(&upper.as_str()) {
                return Err(GrantError::Field(format!(
                    "method {upper} cannot be granted (it tunnels or reflects headers)"
                )));
            }
            let method = http::Method::from_bytes(upper.as_bytes()).map_err(|_| {
                GrantError::Field(format!(
                    "`{m}` is not an HTTP method; write e.g. GET or POST"
                ))
            })?;
            methods.push(method);
        }
        let timeout = humantime::parse_duration(&self.timeout).map_err(|e| {
            GrantError::Field(format!(
                "timeout `{}`: {e}; write e.g. \"10s\"",
                self.timeout
            ))
        })?;
        if timeout.is_zero() {
            return Err(GrantError::Field(
                "timeout must be above zero; write e.g. \"10s\"".into(),
            ));
        }
        let private = self
            .private_networks
            .iter()
            .map(|n| {
                Cidr::parse(n).map_err(|e| GrantError::Field(format!("private_networks: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let credentials = crate::credential::resolve(&self.credentials, host)?;
        let scrubber = Arc::new(crate::scrub::for_credentials(&credentials));
        Ok(Policy {
            allow,
            methods,
            max_requests: self.max_requests,
            max_request_bytes: self.max_request_bytes,
            max_response_bytes: self.max_response_bytes,
            timeout,
            max_redirects: self.max_redirects,
            private,
            credentials,
            scrubber,
        })
    }
}

impl Policy {
    /// The first `allow` pattern covering `target`.
    pub fn rule_for(&self, target: &Target) -> Option<&UrlPattern> {
        self.allow.iter().find(|p| p.matches(target))
    }

    /// The `private_networks` entry that lets the tool reach `ip`, if any
    /// (metadata addresses need an entry naming exactly them).
    pub fn reachable(&self, ip: IpAddr, metadata: bool) -> bool {
        self.private
            .iter()
            .any(|c| c.contains(ip) && (!metadata || c.is_single()))
    }
}

/// Bytes in the plainest unit (`1 MiB`, `1500 bytes`).
pub fn bytes_plain(n: usize) -> String {
    match n {
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{} MiB", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{} KiB", n >> 10),
        n => format!("{n} bytes"),
    }
}

/// The grant in plain words for a security reviewer, one line each.
pub fn describe(grant: &FetchGrant) -> Vec<String> {
    let mut lines = Vec::new();
    if grant.allow.is_empty() {
        lines.push("may not fetch any URL (the allow list is empty)".to_string());
    }
    for raw in &grant.allow {
        match UrlPattern::parse(raw) {
            Ok(p) => lines.push(format!("may fetch {raw} ({})", p.plain())),
            Err(e) => lines.push(format!("INVALID, refused at load: {e}")),
        }
    }
    lines.push(format!("methods: {}", grant.methods.join(", ")));
    lines.push(format!(
        "at most {} requests per job; each follows at most {} redirects, every hop re-checked against these rules",
        grant.max_requests, grant.max_redirects
    ));
    lines.push(format!(
        "request bodies up to {}; responses up to {} after decompression",
        bytes_plain(grant.max_request_bytes),
        bytes_plain(grant.max_response_bytes)
    ));
    lines.push(format!(
        "each request times out after {} (sooner if the job's deadline is nearer)",
        grant.timeout
    ));
    if grant.private_networks.is_empty() {
        lines.push(
            "may not reach loopback, private, link-local, CGNAT or cloud-metadata addresses"
                .to_string(),
        );
    } else {
        lines.push(format!(
            "MAY reach these non-public networks: {}",
            grant.private_networks.join(", ")
        ));
    }
    for c in &grant.credentials {
        let urls = if c.urls.is_empty() {
            "the URLs the host config binds it to".to_string()
        } else {
            format!(
                "{} (within the host config's URLs for it)",
                c.urls.join(", ")
            )
        };
        lines.push(format!(
            "requests to {urls} get credential {} (header and secret set by the host config; the tool never sees it)",
            c.name
        ));
    }
    lines
}
