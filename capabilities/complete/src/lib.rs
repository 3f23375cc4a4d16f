//! The `complete` verb: a tool holds a conversation with a language model
//! through the host. The host calls the provider the grant names, with the
//! host's API key; the tool sees answers and short classified errors, never
//! the key or the provider's own error text.
//!
//! - [`CompleteCapability`] (host-wide): the providers, one shared HTTP
//!   client (rustls/ring, no proxies, no redirects), the keys.
//! - [`CompleteGrant`] (per tool): provider, model allowlist, token and call
//!   budgets, prompt size.
//! - [`CompleteState`] (per job): the grant, what the job has used, the job.
//!
//! Every call is audited with provider, model, token counts, latency and the
//! decision; prompts and completions only when the operator turns on
//! [`CompleteCapability::with_log_content`].
#![deny(missing_docs)]

mod anthropic;
mod config;
mod grant;
mod openai;
mod provider;
mod scrub;

pub use config::{
    CompleteSpec, ConfigError, DEFAULT_REQUEST_TIMEOUT, ProviderConfig, ProviderKind, ProviderSpec,
};
pub use grant::{
    CompleteGrant, DEFAULT_MAX_CALLS, DEFAULT_MAX_PROMPT_BYTES, DEFAULT_MAX_TOKENS,
    DEFAULT_MAX_TOTAL_TOKENS,
};
pub use provider::{FIRST_BACKOFF, MAX_ATTEMPTS, MAX_RESPONSE_BYTES};
pub use scrub::MIN_FRAGMENT;

use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::sync::Arc;
use std::time::Instant;

use airlock_core::bindings::airlock::verbs::complete::{self, Completion, Message, Options, Role};
use airlock_core::{Capability, Decision, Job, ScopeChange, VerbError};
use secrecy::SecretSlice;
use wasmtime::component::{HasSelf, Linker};

use grant::{Admitted, Usage, clip};
use provider::{ChatRequest, Provider};
use scrub::Redactor;

/// Longest model name, as a provider reports it, passed on to the guest.
const MAX_MODEL_CHARS: usize = 256;

/// Host-wide: the configured providers and the one HTTP client they share.
pub struct CompleteCapability {
    providers: Arc<HashMap<String, Arc<Provider>>>,
    redactor: Arc<Redactor>,
    log_content: bool,
}

impl Default for CompleteCapability {
    /// No providers: every grant fails [`Capability::check_grant`].
    fn default() -> Self {
        Self {
            providers: Arc::default(),
            redactor: Arc::default(),
            log_content: false,
        }
    }
}

impl CompleteCapability {
    /// A capability serving `providers` (name, resolved config). Builds the
    /// shared HTTP client and checks every URL, key and header.
    pub fn new(providers: Vec<(String, ProviderConfig)>) -> Result<Self, ConfigError> {
        if providers.is_empty() {
            return Ok(Self::default());
        }
        let client = provider::client()?;
        let mut map = HashMap::with_capacity(providers.len());
        for (name, config) in providers {
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            {
                return Err(ConfigError::Name {
                    provider: name,
                    reason: "may use only letters, digits, `-`, `_` and `.`",
                });
            }
            if map.contains_key(&name) {
                return Err(ConfigError::Name {
                    provider: name,
                    reason: "is configured twice",
                });
            }
            let p = Provider::new(&name, config, client.clone())?;
            map.insert(name, Arc::new(p));
        }
        let redactor = Redactor::new(map.values().filter_map(|p| p.key_bytes()));
        Ok(Self {
            providers: Arc::new(map),
            redactor: Arc::new(redactor),
            log_content: false,
        })
    }

    /// A capability from the host config's `[complete]` section; `resolve`
    /// turns a secret name into its bytes (its error text is passed on).
    pub fn from_spec<E: fmt::Display>(
        spec: &CompleteSpec,
        mut resolve: impl FnMut(&str) -> Result<SecretSlice<u8>, E>,
    ) -> Result<Self, ConfigError> {
        let providers = spec
            .providers
            .iter()
            .map(|(name, p)| Ok((name.clone(), p.resolve(name, &mut resolve)?)))
            .collect::<Result<Vec<_>, ConfigError>>()?;
        Ok(Self::new(providers)?.with_log_content(spec.log_content))
    }

    /// Whether audit records carry prompts and completions (operators only;
    /// off by default).
    pub fn with_log_content(mut self, on: bool) -> Self {
        self.log_content = on;
        self
    }

    /// The configured provider names, sorted (never the keys).
    pub fn provider_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.providers.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }
}

impl fmt::Debug for CompleteCapability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut providers: Vec<(&str, &str, &str)> = self
            .providers
            .iter()
            .map(|(n, p)| (n.as_str(), p.kind.name(), p.base_url.as_str()))
            .collect();
        providers.sort_unstable();
        f.debug_struct("CompleteCapability")
            .field("providers", &providers)
            .field("log_content", &self.log_content)
            .finish_non_exhaustive()
    }
}

/// One job's view of the verb: the grant, what the job has used, the job.
pub struct CompleteState {
    provider: Option<Arc<Provider>>,
    redactor: Arc<Redactor>,
    log_content: bool,
    grant: Arc<CompleteGrant>,
    job: Job,
    usage: Usage,
}

impl fmt::Debug for CompleteState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompleteState")
            .field("grant", &self.grant)
            .field("job", &self.job)
            .field("usage", &self.usage)
            .finish_non_exhaustive()
    }
}

impl Capability for CompleteCapability {
    const VERB: &'static str = "complete";
    const INTERFACE: &'static str = "airlock:verbs/complete";
    type Grant = CompleteGrant;
    type State = CompleteState;

    fn check_grant(&self, grant: &CompleteGrant) -> Result<(), String> {
        grant.validate()?;
        if !self.providers.contains_key(&grant.provider) {
            let known = self.provider_names();
            return Err(format!(
                "the complete grant names provider `{}` but the host config has no such provider \
                 (configured: {}); add [providers.{}] to the host config or change the grant",
                grant.provider,
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                },
                grant.provider
            ));
        }
        Ok(())
    }

    fn state(&self, grant: Arc<CompleteGrant>, job: Job) -> CompleteState {
        CompleteState {
            provider: self.providers.get(&grant.provider).cloned(),
            redactor: self.redactor.clone(),
            log_content: self.log_content,
            grant,
            job,
            usage: Usage::default(),
        }
    }

    fn describe(grant: &CompleteGrant) -> Vec<String> {
        grant.describe()
    }

    fn compare(before: &CompleteGrant, after: &CompleteGrant) -> Vec<ScopeChange> {
        CompleteGrant::compare(before, after)
    }

    fn add_to_linker<T: Send + 'static>(
        linker: &mut Linker<T>,
        get: fn(&mut T) -> &mut CompleteState,
    ) -> wasmtime::Result<()> {
        complete::add_to_linker::<T, HasSelf<CompleteState>>(linker, get)
    }
}

airlock_core::impl_types_host!(CompleteState);

impl CompleteState {
    /// Applies the grant and the deadline; nothing is counted on refusal.
    fn admit(
        &self,
        messages: &[Message],
        options: &Options,
    ) -> Result<(Arc<Provider>, Admitted), VerbError> {
        let Some(provider) = self.provider.clone() else {
            return Err(if self.grant.provider.is_empty() {
                VerbError::denied("this tool is granted no provider")
            } else {
                VerbError::invalid(format!(
                    "provider `{}` is not configured on this host",
                    self.grant.provider
                ))
            });
        };
        let admitted = self.usage.admit(&self.grant, messages, options)?;
        if self.job.remaining().is_zero() {
            return Err(VerbError::timeout());
        }
        Ok((provider, admitted))
    }

    /// Audits one call. `detail` never holds prompt or completion text
    /// unless the operator turned on `log_content`.
    fn audit(
        &self,
        started: Instant,
        result: Result<(), &VerbError>,
        detail: String,
        content: Option<String>,
    ) {
        let decision = match result {
            Ok(()) => Decision::Allow,
            Err(e) => Decision::Deny(format!("{}: {}", e.kind(), e.reason())),
        };
        self.job
            .audit_with_content("complete", "chat", decision, started, Some(detail), content);
    }

    /// The prompt and completion for the audit trail, when the operator asked
    /// for them and the trail keeps records.
    fn content(&self, messages: &[Message], completion: Option<&str>) -> Option<String> {
        if !self.log_content || !self.job.keeps_records() {
            return None;
        }
        let prompt: Vec<(&str, &str)> = messages
            .iter()
            .map(|m| {
                let role = match m.role {
                    Role::System => "system",
                    Role::User => "user",
                    Role::Assistant => "assistant",
                };
                (role, m.content.as_str())
            })
            .collect();
        let mut out = format!(
            "prompt={}",
            serde_json::to_string(&prompt).unwrap_or_default()
        );
        if let Some(text) = completion {
            let _ = write!(out, " completion={}", serde_json::Value::from(text));
        }
        Some(out)
    }
}

impl complete::Host for CompleteState {
    async fn chat(
        &mut self,
        messages: Vec<Message>,
        options: Options,
    ) -> Result<Completion, VerbError> {
        let started = Instant::now();
        let (provider, admitted) = match self.admit(&messages, &options) {
            Ok(ok) => ok,
            Err(e) => {
                let requested = options
                    .model
                    .as_deref()
                    .or(self.grant.models.first().map(String::as_str))
                    .unwrap_or("");
                // The model name may be the guest's: quoted, so it cannot
                // pose as another field of the record.
                let detail = format!(
                    "provider={} model={:?}",
                    self.grant.provider,
                    clip(requested, 64)
                );
                self.audit(started, Err(&e), detail, None);
                return Err(e);
            }
        };
        let request = ChatRequest {
            model: &admitted.model,
            messages: &messages,
            max_tokens: admitted.max_tokens,
            temperature: options.temperature,
            stop: &options.stop,
        };
        let mut detail = format!(
            "provider={} model={} max_tokens={}",
            self.grant.provider, admitted.model, admitted.max_tokens
        );
        let body = match provider.body(&request) {
            Ok(body) => body,
            Err(why) => {
                let e = VerbError::invalid(why);
                self.audit(started, Err(&e), detail, None);
                return Err(e);
            }
        };
        self.usage.begin();
        let sent = Instant::now();
        let in_flight =
            self.job
                .in_flight("complete", "chat", started, format!("{detail} cancelled"));
        // A cancelled job abandons the request at once (its connection
        // closes); the guard audits it as cancelled.
        let cancel = self.job.cancel().clone();
        let Some((outcome, attempts)) = cancel
            .run(provider.chat(body, self.job.deadline(), &self.redactor))
            .await
        else {
            drop(in_flight);
            return Err(VerbError::Cancelled);
        };
        in_flight.disarm();
        let _ = write!(
            detail,
            " latency_ms={} attempts={attempts}",
            sent.elapsed().as_millis()
        );
        let reply = match outcome {
            Ok(reply) => reply,
            Err(failure) => {
                let e = failure.to_guest();
                let _ = write!(
                    detail,
                    " calls={}/{} error={:?}",
                    self.usage.calls,
                    self.grant.max_calls,
                    failure.to_string()
                );
                let content = self.content(&messages, None);
                self.audit(started, Err(&e), detail, content);
                return Err(e);
            }
        };
        // Providers that omit usage are charged an upper bound (a token is
        // at least one byte), so the budget still binds.
        let (prompt, completion, estimated) = match reply.usage {
            Some((p, c)) => (p, c, false),
            None => (
                admitted.prompt_bytes as u64,
                (reply.text.len() as u64).min(u64::from(admitted.max_tokens)),
                true,
            ),
        };
        let prompt_tokens = u32::try_from(prompt).unwrap_or(u32::MAX);
        let completion_tokens = u32::try_from(completion).unwrap_or(u32::MAX);
        self.usage.charge(prompt_tokens, completion_tokens);
        let text = self.redactor.redact_string(reply.text);
        let model = self.redactor.redact_string(clip(
            reply.model.as_deref().unwrap_or(&admitted.model),
            MAX_MODEL_CHARS,
        ));
        let _ = write!(
            detail,
            " prompt_tokens={prompt_tokens} completion_tokens={completion_tokens}{} \
             calls={}/{} tokens={}/{} answered_by={model:?}",
            if estimated { " usage=estimated" } else { "" },
            self.usage.calls,
            self.grant.max_calls,
            self.usage.tokens,
            self.grant.max_total_tokens,
        );
        let content = self.content(&messages, Some(&text));
        self.audit(started, Ok(()), detail, content);
        Ok(Completion {
            text,
            model,
            finish_reason: reply.finish_reason,
            prompt_tokens,
            completion_tokens,
        })
    }
}

#[cfg(test)]
mod tests;
