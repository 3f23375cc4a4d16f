//! Fetch credentials. The host config binds each one to a secret, a header,
//! a value format and the URLs it may be sent to (`[fetch.credentials.NAME]`,
//! a [`CredentialSpec`]); a toolkit may only refer to one by name and narrow
//! its URLs ([`CredentialRef`]). Also the one list of request headers that
//! neither a tool nor a credential may set.

use std::collections::HashMap;
use std::sync::Arc;

use http::HeaderName;
use secrecy::{ExposeSecret, SecretSlice};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::grant::{GrantError, UrlPattern};

/// Who a managed request header belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Managed {
    /// Only a host credential may set it (`authorization`).
    Credential,
    /// Only the host's HTTP client sets it: routing, framing, encoding,
    /// connection management, cookies and proxies.
    Transport,
}

/// Headers the host's HTTP client owns; with every `proxy-*` header. `range`
/// and `if-range` are here too: a tool choosing byte ranges of a reflecting
/// upstream's answer could get a secret back in pieces shorter than the
/// scrubber's needles; and the method overrides, which would turn a GET the
/// grant allows into another method at servers that honour them.
const TRANSPORT: [&str; 15] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "upgrade",
    "accept-encoding",
    "cookie",
    "range",
    "if-range",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// The one refusal list, for tool headers and credential headers alike
/// (`name` as `http::HeaderName` spells it: lower case). A tool may set no
/// managed header; a credential may set only [`Managed::Credential`] ones and
/// unmanaged custom headers such as `x-api-key`.
pub(crate) fn managed(name: &str) -> Option<Managed> {
    if name == "authorization" {
        Some(Managed::Credential)
    } else if TRANSPORT.contains(&name) || name.starts_with("proxy-") {
        Some(Managed::Transport)
    } else {
        None
    }
}

/// `[fetch.credentials.NAME]` as the operator writes it in the host config.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialSpec {
    /// The `[secrets.NAME]` whose bytes are sent.
    pub secret: String,
    /// The header that carries them, e.g. `Authorization` or `X-Api-Key`.
    pub header: String,
    /// How the value is written, `{}` standing for the secret (`Bearer {}`);
    /// the secret alone when absent.
    #[serde(default)]
    pub format: Option<String>,
    /// The only URLs the credential is ever sent to (same syntax as a fetch
    /// grant's `allow`).
    pub urls: Vec<String>,
}

/// A credential of the host, checked and holding its secret.
pub struct HostCredential {
    pub(crate) name: String,
    pub(crate) secret_name: String,
    pub(crate) secret: SecretSlice<u8>,
    pub(crate) header: HeaderName,
    pub(crate) format: String,
    pub(crate) urls: Vec<UrlPattern>,
}

impl std::fmt::Debug for HostCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostCredential")
            .field("name", &self.name)
            .field("secret", &self.secret_name)
            .field("header", &self.header)
            .field(
                "urls",
                &self.urls.iter().map(|u| &u.raw).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl HostCredential {
    /// Checks `spec` (URL patterns, a header a credential may set, a format
    /// with one `{}`, a secret that fits in a header) and binds `secret`;
    /// the error is [`GrantError::Credential`], naming the credential.
    pub fn new(
        name: &str,
        spec: &CredentialSpec,
        secret: SecretSlice<u8>,
    ) -> Result<Self, GrantError> {
        let field = |reason: String| GrantError::Credential {
            name: name.to_string(),
            reason,
        };
        if spec.urls.is_empty() {
            return Err(field(
                "`urls` is empty; list where the credential may be sent, as in \
                 urls = [\"https://api.example.com/*\"]"
                    .into(),
            ));
        }
        let urls = spec
            .urls
            .iter()
            .map(|u| UrlPattern::parse(u).map_err(|e| field(e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        let header = HeaderName::from_bytes(spec.header.as_bytes()).map_err(|_| {
            field(format!(
                "header `{}` is not a valid header name; write e.g. `Authorization`",
                spec.header
            ))
        })?;
        if managed(header.as_str()) == Some(Managed::Transport) {
            return Err(field(format!(
                "header `{header}` is managed by the host's HTTP client (routing, framing, \
                 cookies or proxies) and cannot carry a credential; use `Authorization` or a \
                 custom header such as `X-Api-Key`"
            )));
        }
        let format = spec.format.clone().unwrap_or_else(|| "{}".to_string());
        if format.matches("{}").count() != 1 || format.contains(['\r', '\n', '\0']) {
            return Err(field(format!(
                "format `{format}` must contain `{{}}` exactly once and no line breaks, \
                 as in \"Bearer {{}}\""
            )));
        }
        let bad = secret
            .expose_secret()
            .iter()
            .any(|b| !(*b == b'\t' || (0x20..0x7f).contains(b)));
        if bad || secret.expose_secret().is_empty() {
            return Err(field(format!(
                "secret `{}` cannot be sent in a header: it is empty or contains a line break, \
                 a control byte or a byte outside ASCII (check for a trailing newline in its \
                 source)",
                spec.secret
            )));
        }
        Ok(Self {
            name: name.to_string(),
            secret_name: spec.secret.clone(),
            secret,
            header,
            format,
            urls,
        })
    }

    /// The credential's name (`NAME` in `[fetch.credentials.NAME]`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The name of the secret it sends (never the value).
    pub fn secret_name(&self) -> &str {
        &self.secret_name
    }

    /// The header value: the format with `{}` replaced by the secret.
    pub(crate) fn value(&self) -> Zeroizing<Vec<u8>> {
        let secret = self.secret.expose_secret();
        let (before, after) = self.format.split_once("{}").unwrap_or((&self.format, ""));
        let mut out = Zeroizing::new(Vec::with_capacity(self.format.len() + secret.len()));
        out.extend_from_slice(before.as_bytes());
        out.extend_from_slice(secret);
        out.extend_from_slice(after.as_bytes());
        out
    }
}

/// A toolkit's use of a host credential (`credentials = [{ name = "github" }]`
/// in a fetch grant), optionally narrowed to `urls` that each lie within one
/// of the host's URLs for it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "CredentialEntry")]
pub struct CredentialRef {
    /// The `NAME` of a `[fetch.credentials.NAME]` in the host config.
    pub name: String,
    /// Narrower URL patterns; empty: the host's URLs for it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
}

impl CredentialRef {
    /// A reference to host credential `name`, unnarrowed.
    pub fn named(name: &str) -> Self {
        Self {
            name: name.to_string(),
            urls: Vec::new(),
        }
    }
}

/// A credential entry as written: the current form, or the form from before
/// the host config bound credentials, which is refused with directions.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialEntry {
    name: Option<String>,
    urls: Option<Vec<String>>,
    url: Option<String>,
    header: Option<String>,
    secret: Option<String>,
    format: Option<String>,
}

impl TryFrom<CredentialEntry> for CredentialRef {
    type Error = String;

    fn try_from(e: CredentialEntry) -> Result<Self, String> {
        if e.url.is_some() || e.header.is_some() || e.secret.is_some() || e.format.is_some() {
            let q = |v: &Option<String>, dflt: &str| v.clone().unwrap_or_else(|| dflt.into());
            let secret = q(&e.secret, "SECRET");
            let format = e
                .format
                .as_ref()
                .map(|f| format!(", format = {f:?}"))
                .unwrap_or_default();
            return Err(format!(
                "a toolkit no longer binds a secret to a header and URL: the host config does. \
                 Move this credential to the host config as [fetch.credentials.{secret}] with \
                 secret = {:?}, header = {:?}{format}, urls = [{:?}], and replace this entry by \
                 {{ name = {:?} }} (optionally with urls = [...] inside the host's)",
                secret,
                q(&e.header, "Authorization"),
                q(&e.url, "https://api.example.com/*"),
                secret,
            ));
        }
        let name = e.name.ok_or_else(|| {
            "a credential entry needs `name`, the NAME of a [fetch.credentials.NAME] in the host \
             config, as in { name = \"github\" }"
                .to_string()
        })?;
        Ok(Self {
            name,
            urls: e.urls.unwrap_or_default(),
        })
    }
}

/// Whether every URL `inner` matches, `outer` matches too (see
/// [`UrlPattern::within`]).
pub fn within(inner: &UrlPattern, outer: &UrlPattern) -> bool {
    inner.within(outer)
}

/// A credential a grant uses: the host's, narrowed by the toolkit.
#[derive(Debug, Clone)]
pub struct CredentialRule {
    /// The host credential.
    pub cred: Arc<HostCredential>,
    /// The toolkit's narrower patterns (empty: none).
    pub narrow: Vec<UrlPattern>,
}

impl CredentialRule {
    /// Whether a request to `target` gets this credential: it must match one
    /// of the host's URLs and, when the toolkit narrowed them, one of its.
    pub fn applies(&self, target: &crate::canon::Target) -> bool {
        self.cred.urls.iter().any(|p| p.matches(target))
            && (self.narrow.is_empty() || self.narrow.iter().any(|p| p.matches(target)))
    }
}

/// Resolves a grant's references against the host's credentials; the error
/// names the credential and the offending pattern.
pub(crate) fn resolve(
    refs: &[CredentialRef],
    host: &HashMap<String, Arc<HostCredential>>,
) -> Result<Vec<CredentialRule>, GrantError> {
    let mut rules = Vec::with_capacity(refs.len());
    for r in refs {
        let err = |reason: String| GrantError::Credential {
            name: r.name.clone(),
            reason,
        };
        let Some(cred) = host.get(&r.name) else {
            let mut known: Vec<&str> = host.keys().map(String::as_str).collect();
            known.sort_unstable();
            let known = if known.is_empty() {
                "it defines none".to_string()
            } else {
                format!("it defines {}", known.join(", "))
            };
            return Err(err(format!(
                "the host config has no [fetch.credentials.{}] ({known}); the operator must \
                 define it, or remove the reference",
                r.name
            )));
        };
        let mut narrow = Vec::with_capacity(r.urls.len());
        for raw in &r.urls {
            let pattern = UrlPattern::parse(raw)?;
            if !cred.urls.iter().any(|outer| within(&pattern, outer)) {
                let hosts: Vec<&str> = cred.urls.iter().map(|u| u.raw.as_str()).collect();
                return Err(err(format!(
                    "pattern `{raw}` is not within the host config's URLs for it ({}); a \
                     toolkit may only narrow a credential's URLs (same scheme, host and port, \
                     a path inside)",
                    hosts.join(", ")
                )));
            }
            narrow.push(pattern);
        }
        rules.push(CredentialRule {
            cred: cred.clone(),
            narrow,
        });
    }
    Ok(rules)
}
