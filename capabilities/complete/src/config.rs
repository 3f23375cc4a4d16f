//! How the operator describes providers: [`CompleteSpec`] and [`ProviderSpec`]
//! as written in the host config (API keys named, never written), and
//! [`ProviderConfig`], the resolved form holding the key bytes.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use secrecy::SecretSlice;
use serde::{Deserialize, Serialize};

/// Default wait for one provider request (the job's deadline usually binds first).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Which wire protocol a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// OpenAI-compatible `POST {base_url}/chat/completions` (OpenAI, Ollama,
    /// vLLM, llama.cpp, LiteLLM, ...), key sent as `Authorization: Bearer`.
    OpenAi,
    /// Anthropic Messages `POST {base_url}/v1/messages`, key sent as `x-api-key`.
    Anthropic,
}

impl ProviderKind {
    /// The provider's public endpoint, used when the config gives no `base_url`.
    pub fn default_base_url(self) -> &'static str {
        match self {
            Self::OpenAi => "https://api.openai.com/v1",
            Self::Anthropic => "https://api.anthropic.com",
        }
    }

    /// The name written in configs (`openai`, `anthropic`).
    pub fn name(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::Anthropic => "anthropic",
        }
    }
}

/// One provider, resolved: what [`crate::CompleteCapability::new`] takes.
pub struct ProviderConfig {
    /// The protocol.
    pub kind: ProviderKind,
    /// Where to send requests, e.g. `https://api.openai.com/v1`,
    /// `http://127.0.0.1:11434/v1` or `https://api.anthropic.com`.
    pub base_url: String,
    /// The API key; `None` sends no credentials (a local Ollama).
    pub api_key: Option<SecretSlice<u8>>,
    /// Extra non-secret headers sent with every request (`OpenAI-Organization`,
    /// or `anthropic-version` to replace the default).
    pub headers: Vec<(String, String)>,
    /// Longest wait for one request (the job's deadline also applies).
    pub request_timeout: Duration,
}

impl ProviderConfig {
    /// A provider of `kind` at `base_url`, with no key, no extra headers and
    /// the default request timeout.
    pub fn new(kind: ProviderKind, base_url: impl Into<String>) -> Self {
        Self {
            kind,
            base_url: base_url.into(),
            api_key: None,
            headers: Vec::new(),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }

    /// This provider, sending `key`.
    pub fn with_api_key(mut self, key: SecretSlice<u8>) -> Self {
        self.api_key = Some(key);
        self
    }
}

impl fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderConfig")
            .field("kind", &self.kind)
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .field(
                "headers",
                &self
                    .headers
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

/// The verb's section of the host config:
///
/// ```toml
/// [complete]
/// log_content = false            # operators only: audit prompts and answers
/// [providers.openai]
/// kind = "openai"                # or "anthropic"
/// base_url = "https://api.openai.com/v1"   # optional: the kind's public endpoint
/// api_key = "openai-key"         # the NAME of a secret, resolved by the host
/// request_timeout = "60s"        # optional: "500ms", "60s", "2m" or seconds
/// headers = { "OpenAI-Organization" = "org-123" }   # optional, non-secret
/// ```
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompleteSpec {
    /// The providers, by name (the name grants refer to).
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderSpec>,
    /// Whether audit records carry prompts and completions (default false).
    #[serde(default)]
    pub log_content: bool,
}

impl CompleteSpec {
    /// Every secret name the providers refer to, for the host to check that
    /// each one is configured before resolving.
    pub fn secret_names(&self) -> impl Iterator<Item = (&str, &str)> {
        self.providers
            .iter()
            .filter_map(|(name, p)| p.api_key.as_deref().map(|s| (name.as_str(), s)))
    }
}

/// One provider as written in the host config; `api_key` names a secret.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSpec {
    /// `openai` or `anthropic`.
    pub kind: ProviderKind,
    /// Where to send requests; absent: the kind's public endpoint.
    #[serde(default)]
    pub base_url: Option<String>,
    /// The name of the secret holding the API key; absent: no credentials.
    #[serde(default)]
    pub api_key: Option<String>,
    /// Extra non-secret headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Longest wait for one request; absent: two minutes.
    #[serde(default, deserialize_with = "de_timeout")]
    pub request_timeout: Option<Duration>,
}

impl ProviderSpec {
    /// The resolved provider: `resolve` turns the secret name into its bytes
    /// (the host's secret store); its error text is passed on.
    pub fn resolve<E: fmt::Display>(
        &self,
        provider: &str,
        resolve: impl FnOnce(&str) -> Result<SecretSlice<u8>, E>,
    ) -> Result<ProviderConfig, ConfigError> {
        let api_key = match &self.api_key {
            Some(secret) => Some(resolve(secret).map_err(|e| ConfigError::Secret {
                provider: provider.to_string(),
                secret: secret.clone(),
                message: e.to_string(),
            })?),
            None => None,
        };
        Ok(ProviderConfig {
            kind: self.kind,
            base_url: self
                .base_url
                .clone()
                .unwrap_or_else(|| self.kind.default_base_url().to_string()),
            api_key,
            headers: self.headers.clone().into_iter().collect(),
            request_timeout: self.request_timeout.unwrap_or(DEFAULT_REQUEST_TIMEOUT),
        })
    }
}

/// A provider configuration the capability cannot use. No variant carries
/// key material.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The host could not produce the named secret.
    #[error("provider `{provider}`: api key secret `{secret}`: {message}")]
    Secret {
        /// The provider.
        provider: String,
        /// The secret's name.
        secret: String,
        /// The host's reason.
        message: String,
    },
    /// The provider name is empty or reused.
    #[error("provider name `{provider}` {reason}")]
    Name {
        /// The name.
        provider: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The base URL is unusable.
    #[error(
        "provider `{provider}`: base_url `{url}` {reason}; \
         write it like https://api.openai.com/v1 or http://127.0.0.1:11434/v1"
    )]
    BaseUrl {
        /// The provider.
        provider: String,
        /// The URL as written.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The API key is empty or has bytes an HTTP header cannot carry.
    #[error("provider `{provider}`: the api key {reason}; check the secret's contents")]
    ApiKey {
        /// The provider.
        provider: String,
        /// What is wrong (never the key).
        reason: &'static str,
    },
    /// An extra header is malformed or would override a credential.
    #[error("provider `{provider}`: header `{header}` {reason}")]
    Header {
        /// The provider.
        provider: String,
        /// The header's name.
        header: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The request timeout is zero.
    #[error("provider `{provider}`: request_timeout must be more than zero")]
    Timeout {
        /// The provider.
        provider: String,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client for the complete verb: {0}")]
    Client(String),
}

fn de_timeout<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Written {
        Seconds(u64),
        Text(String),
    }
    match Written::deserialize(d)? {
        Written::Seconds(s) => Ok(Some(Duration::from_secs(s))),
        Written::Text(t) => parse_duration(&t)
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}

/// Parses `500ms`, `60s`, `2m` or a bare number of seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a duration; write it like \"60s\" or \"500ms\""))?;
    match unit.trim() {
        "ms" => Ok(Duration::from_millis(n)),
        "" | "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n.saturating_mul(60))),
        _ => Err(format!(
            "`{text}` has an unknown unit; use ms, s or m (\"60s\", \"500ms\")"
        )),
    }
}
