//! One configured provider and the HTTP exchange with it: build the request
//! for its protocol, send it with the host's key, read at most a capped body,
//! retry rate limits and server errors while the job's deadline allows, and
//! classify every failure (see [`crate::scrub`]).

use std::time::{Duration, Instant};

use airlock_core::bindings::airlock::verbs::complete::{FinishReason, Message};
use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretSlice};
use zeroize::Zeroizing;

use crate::config::{ConfigError, ProviderConfig, ProviderKind};
use crate::scrub::{Failure, Redactor, error_chain};
use crate::{anthropic, openai};

/// Largest success body read from a provider.
pub const MAX_RESPONSE_BYTES: usize = 4 << 20;
/// Largest error body read (only an excerpt is logged anyway).
const MAX_ERROR_BYTES: usize = 64 << 10;
/// Tries per call, the first included.
pub const MAX_ATTEMPTS: u32 = 4;
/// The wait before the first retry; it doubles after each.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// A retry is only worth starting with at least this long left after its wait.
const MIN_ATTEMPT_TIME: Duration = Duration::from_millis(50);

/// Headers the operator may not set: credentials and framing are the verb's.
const RESERVED_HEADERS: &[&str] = &[
    "authorization",
    "x-api-key",
    "proxy-authorization",
    "cookie",
    "content-type",
    "content-length",
    "transfer-encoding",
    "connection",
    "host",
];

/// What to ask one provider, in protocol-neutral terms.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChatRequest<'a> {
    /// The granted model.
    pub model: &'a str,
    /// The conversation.
    pub messages: &'a [Message],
    /// Most tokens to generate (already capped).
    pub max_tokens: u32,
    /// Sampling temperature.
    pub temperature: Option<f32>,
    /// Stop sequences.
    pub stop: &'a [String],
}

/// A provider's answer, in protocol-neutral terms.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ChatReply {
    /// The generated text.
    pub text: String,
    /// The model the provider says answered.
    pub model: Option<String>,
    /// Why it stopped.
    pub finish_reason: FinishReason,
    /// (prompt, completion) tokens, when the provider reported both.
    pub usage: Option<(u64, u64)>,
}

/// One configured provider, ready to call.
pub(crate) struct Provider {
    pub(crate) kind: ProviderKind,
    pub(crate) base_url: String,
    endpoint: reqwest::Url,
    api_key: Option<SecretSlice<u8>>,
    headers: HeaderMap,
    request_timeout: Duration,
    client: reqwest::Client,
}

impl Provider {
    /// Validates `config` and binds it to the shared `client`.
    pub(crate) fn new(
        name: &str,
        config: ProviderConfig,
        client: reqwest::Client,
    ) -> Result<Self, ConfigError> {
        let endpoint = endpoint(name, config.kind, &config.base_url)?;
        if config.request_timeout.is_zero() {
            return Err(ConfigError::Timeout {
                provider: name.into(),
            });
        }
        let api_key = match config.api_key {
            Some(key) => Some(check_key(name, key)?),
            None => None,
        };
        let mut headers = HeaderMap::new();
        if config.kind == ProviderKind::Anthropic {
            headers.insert(
                "anthropic-version",
                HeaderValue::from_static(anthropic::VERSION),
            );
        }
        for (n, v) in &config.headers {
            let bad = |reason| ConfigError::Header {
                provider: name.into(),
                header: n.clone(),
                reason,
            };
            let hn = HeaderName::from_bytes(n.as_bytes())
                .map_err(|_| bad("is not a valid header name"))?;
            if RESERVED_HEADERS.contains(&hn.as_str()) {
                return Err(bad(
                    "is set by the verb itself; remove it (keys go in api_key)",
                ));
            }
            let hv = HeaderValue::from_str(v)
                .map_err(|_| bad("has a value an HTTP header cannot carry"))?;
            headers.insert(hn, hv);
        }
        Ok(Self {
            kind: config.kind,
            base_url: config.base_url,
            endpoint,
            api_key,
            headers,
            request_timeout: config.request_timeout,
            client,
        })
    }

    /// The key's bytes, for the redactor.
    pub(crate) fn key_bytes(&self) -> Option<&[u8]> {
        self.api_key.as_ref().map(|k| k.expose_secret())
    }

    /// The request body for `req` in this provider's protocol; an error
    /// means the conversation cannot be expressed in it.
    pub(crate) fn body(&self, req: &ChatRequest<'_>) -> Result<Vec<u8>, String> {
        match self.kind {
            ProviderKind::OpenAi => openai::request_body(req),
            ProviderKind::Anthropic => anthropic::request_body(req),
        }
    }

    /// Sends `body`, retrying rate limits and server errors while `deadline`
    /// allows. Returns the outcome and the number of attempts made.
    pub(crate) async fn chat(
        &self,
        body: Vec<u8>,
        deadline: Instant,
        redactor: &Redactor,
    ) -> (Result<ChatReply, Failure>, u32) {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return (Err(Failure::Deadline), attempts);
            }
            let (limit, expiry) = if self.request_timeout < remaining {
                (
                    self.request_timeout,
                    Failure::ProviderTimeout(self.request_timeout),
                )
            } else {
                (remaining, Failure::Deadline)
            };
            let result = tokio::time::timeout(limit, self.attempt(body.clone(), redactor))
                .await
                .unwrap_or(Err(expiry));
            let failure = match result {
                Ok(reply) => return (Ok(reply), attempts),
                Err(f) => f,
            };
            if !failure.retryable() || attempts >= MAX_ATTEMPTS {
                return (Err(failure), attempts);
            }
            let wait = failure
                .retry_after()
                .unwrap_or(FIRST_BACKOFF * 2u32.pow(attempts - 1));
            let remaining = deadline.saturating_duration_since(Instant::now());
            if wait.saturating_add(MIN_ATTEMPT_TIME) > remaining {
                // No time to wait and try again: report what the provider said.
                return (Err(failure), attempts);
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// One HTTP exchange.
    async fn attempt(&self, body: Vec<u8>, redactor: &Redactor) -> Result<ChatReply, Failure> {
        let mut request = self
            .client
            .post(self.endpoint.clone())
            .headers(self.headers.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json")
            .body(body);
        if let Some(key) = &self.api_key {
            request = request.header(self.auth_name(), self.auth_value(key));
        }
        let transport =
            |e: reqwest::Error| Failure::Unreachable(redactor.redact(error_chain(&e).as_bytes()));
        let mut response = request.send().await.map_err(transport)?;
        let status = response.status();
        if !status.is_success() {
            let retry_after = retry_after(response.headers());
            // A failure to read the error body still leaves the status to report.
            let said = match read_capped(&mut response, MAX_ERROR_BYTES).await {
                Ok((bytes, _)) => redactor.excerpt(&bytes),
                Err(e) => format!(
                    "(body unreadable: {})",
                    redactor.redact(error_chain(&e).as_bytes())
                ),
            };
            return Err(Failure::Status {
                status: status.as_u16(),
                retry_after,
                said,
            });
        }
        if response
            .content_length()
            .is_some_and(|n| n > MAX_RESPONSE_BYTES as u64)
        {
            return Err(Failure::TooLarge(MAX_RESPONSE_BYTES));
        }
        let (bytes, complete) = read_capped(&mut response, MAX_RESPONSE_BYTES)
            .await
            .map_err(transport)?;
        if !complete {
            return Err(Failure::TooLarge(MAX_RESPONSE_BYTES));
        }
        let parsed = match self.kind {
            ProviderKind::OpenAi => openai::parse_response(&bytes),
            ProviderKind::Anthropic => anthropic::parse_response(&bytes),
        };
        parsed.map_err(|why| Failure::Malformed {
            why: redactor.redact(why.as_bytes()),
            said: redactor.excerpt(&bytes[..bytes.len().min(256)]),
        })
    }

    fn auth_name(&self) -> HeaderName {
        match self.kind {
            ProviderKind::OpenAi => header::AUTHORIZATION,
            ProviderKind::Anthropic => HeaderName::from_static("x-api-key"),
        }
    }

    fn auth_value(&self, key: &SecretSlice<u8>) -> HeaderValue {
        let mut raw = Zeroizing::new(Vec::with_capacity(key.expose_secret().len() + 7));
        if self.kind == ProviderKind::OpenAi {
            raw.extend_from_slice(b"Bearer ");
        }
        raw.extend_from_slice(key.expose_secret());
        // Checked in `check_key`, so this cannot fail.
        let mut value =
            HeaderValue::from_bytes(&raw).unwrap_or_else(|_| HeaderValue::from_static(""));
        value.set_sensitive(true);
        value
    }
}

/// The one HTTP client every provider shares: rustls with the ring provider
/// and the webpki roots, no proxies (environment variables are ignored), no
/// redirects (a redirect is reported, never followed with the key).
pub(crate) fn client() -> Result<reqwest::Client, ConfigError> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let mut tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| ConfigError::Client(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    // The client speaks HTTP/1.1 only; say so rather than leave ALPN empty.
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("airlock-complete/", env!("CARGO_PKG_VERSION")))
        .pool_idle_timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| ConfigError::Client(error_chain(&e)))
}

/// `{base_url}/chat/completions` or `{base_url}/v1/messages`, checked.
fn endpoint(name: &str, kind: ProviderKind, base_url: &str) -> Result<reqwest::Url, ConfigError> {
    let bad = |reason: &str| ConfigError::BaseUrl {
        provider: name.into(),
        url: base_url.into(),
        reason: reason.into(),
    };
    let url = reqwest::Url::parse(base_url).map_err(|e| bad(&format!("is not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("must start with http:// or https://"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("must not carry credentials; put the key in api_key"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("must not have a query or fragment"));
    }
    if url.host().is_none() {
        return Err(bad("has no host"));
    }
    let path = match kind {
        ProviderKind::OpenAi => "/chat/completions",
        ProviderKind::Anthropic => "/v1/messages",
    };
    let full = format!("{}{path}", url.as_str().trim_end_matches('/'));
    reqwest::Url::parse(&full).map_err(|e| bad(&format!("does not extend to an endpoint ({e})")))
}

/// Trims whitespace around a key and checks it can travel in a header.
fn check_key(name: &str, key: SecretSlice<u8>) -> Result<SecretSlice<u8>, ConfigError> {
    let bad = |reason| ConfigError::ApiKey {
        provider: name.into(),
        reason,
    };
    let bytes = key.expose_secret().trim_ascii();
    if bytes.is_empty() {
        return Err(bad("is empty"));
    }
    if !bytes.iter().all(|b| b.is_ascii_graphic()) {
        return Err(bad("has bytes other than printable ASCII"));
    }
    if bytes.len() == key.expose_secret().len() {
        return Ok(key);
    }
    Ok(SecretSlice::from(bytes.to_vec()))
}

/// The wait a 429/503 asks for: `retry-after-ms`, else `retry-after` in
/// (possibly fractional) seconds. HTTP dates are ignored (backoff applies).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = |name: &str| headers.get(name)?.to_str().ok().map(str::trim);
    if let Some(ms) = text("retry-after-ms").and_then(|t| t.parse::<f64>().ok()) {
        return Duration::try_from_secs_f64(ms / 1000.0).ok();
    }
    text("retry-after")
        .and_then(|t| t.parse::<f64>().ok())
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
}

/// Reads at most `max` bytes of the body; `false` when there was more.
async fn read_capped(
    response: &mut reqwest::Response,
    max: usize,
) -> Result<(Vec<u8>, bool), reqwest::Error> {
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if bytes.len() + chunk.len() > max {
            let room = max - bytes.len();
            bytes.extend_from_slice(&chunk[..room]);
            return Ok((bytes, false));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok((bytes, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_extend_the_base_url() {
        let e = endpoint("p", ProviderKind::OpenAi, "http://127.0.0.1:8080/v1/").unwrap();
        assert_eq!(e.as_str(), "http://127.0.0.1:8080/v1/chat/completions");
        let e = endpoint("p", ProviderKind::Anthropic, "https://api.anthropic.com").unwrap();
        assert_eq!(e.as_str(), "https://api.anthropic.com/v1/messages");
        for bad in [
            "ftp://x/v1",
            "https://u:p@x/v1",
            "https://x/v1?k=1",
            "not a url",
        ] {
            assert!(endpoint("p", ProviderKind::OpenAi, bad).is_err(), "{bad}");
        }
    }

    mod secrets {
        use super::*;

        #[test]
        fn keys_are_trimmed_and_checked_without_being_shown() {
            let k = check_key("p", SecretSlice::from(b"  sk-abc\n".to_vec())).unwrap();
            assert_eq!(k.expose_secret(), b"sk-abc");
            let e = check_key("p", SecretSlice::from(b"sk-\x01zqxv".to_vec())).unwrap_err();
            assert!(!e.to_string().contains("zqxv"), "{e}");
            assert!(check_key("p", SecretSlice::from(b" \n".to_vec())).is_err());
        }
    }

    #[test]
    fn retry_after_reads_seconds_and_milliseconds() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert("retry-after", HeaderValue::from_static("2"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert("retry-after-ms", HeaderValue::from_static("150"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(150)));
        h.remove("retry-after-ms");
        h.insert(
            "retry-after",
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), None);
        h.insert("retry-after", HeaderValue::from_static("-1"));
        assert_eq!(retry_after(&h), None);
    }
}
