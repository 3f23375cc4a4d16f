//! The `fetch` verb: HTTP requests a tool asks for and the host performs.
//! The tool never holds a socket or a credential. [`FetchCapability`] holds
//! the host's credentials ([`HostCredential`]: secret, header and the URLs the
//! host config pins it to), resolver and TLS configuration; a [`FetchGrant`]
//! says which URLs, methods and sizes one tool may use and which credentials
//! it may name (narrowing, never widening, their URLs); a [`FetchState`] applies it
//! to one job: every URL is canonicalized and matched, every name resolved
//! once and every address checked (no loopback, private, link-local or
//! metadata address unless granted), every redirect hop re-checked, response
//! bodies decoded under a cap, and injected secrets scrubbed, in every
//! spelling and escape, from what comes back.
#![deny(missing_docs)]

mod canon;
mod client;
mod compare;
mod credential;
mod flow;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod grant;
mod resolve;
mod scrub;

pub use canon::{Cidr, Class, UrlError, classify};
pub use credential::{CredentialRef, CredentialSpec, HostCredential, within};
pub use grant::{
    DEFAULT_MAX_REDIRECTS, DEFAULT_MAX_REQUEST_BYTES, DEFAULT_MAX_REQUESTS,
    DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_METHODS, DEFAULT_TIMEOUT, FetchGrant, GrantError,
};
pub use resolve::{Resolve, ResolveFuture, StaticResolver, SystemResolver};
pub use rustls::pki_types::CertificateDer;
pub use scrub::spellings;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use airlock_core::bindings::airlock::verbs::fetch;
use airlock_core::{Capability, Decision, Job, ScopeChange, VerbError, WitError};
use rustls::{ClientConfig, RootCertStore};
use wasmtime::component::{HasSelf, Linker};

use crate::grant::Policy;
use crate::scrub::Scrubber;

/// Why a [`FetchCapability`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// rustls refused the configuration.
    #[error("cannot build the TLS client configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// A root certificate was unusable, or added too late.
    #[error("cannot add the root certificate: {0}")]
    RootCertificate(String),
}

/// What every job of this host shares.
pub(crate) struct Shared {
    credentials: HashMap<String, Arc<HostCredential>>,
    resolver: Arc<dyn Resolve>,
    roots: RootCertStore,
    tls: Arc<ClientConfig>,
}

/// Host-wide: the credentials the host config binds (each with its secret,
/// header and URLs), the resolver and the TLS client configuration (built
/// once).
pub struct FetchCapability {
    shared: Arc<Shared>,
    /// Grants compiled once per grant (by `Arc` identity), not once per job.
    compiled: std::sync::Mutex<Vec<(std::sync::Weak<FetchGrant>, CompiledGrant)>>,
}

type CompiledGrant = Result<Arc<Policy>, String>;

impl FetchCapability {
    /// A capability whose grants may use `credentials` (as bound by the host
    /// config; names are unique, a later one replaces an earlier), resolving
    /// names with `resolver` and trusting the Mozilla roots of `webpki-roots`.
    pub fn new(
        credentials: Vec<HostCredential>,
        resolver: Arc<dyn Resolve>,
    ) -> Result<Self, FetchError> {
        let credentials = credentials
            .into_iter()
            .map(|c| (c.name.clone(), Arc::new(c)))
            .collect();
        let roots = client::webpki_roots();
        let tls = client::tls_config(roots.clone())?;
        Ok(Self {
            shared: Arc::new(Shared {
                credentials,
                resolver,
                roots,
                tls,
            }),
            compiled: Default::default(),
        })
    }

    /// Also trusts `cert` (DER) as a root, for private CAs and tests. Call it
    /// before the capability hands out any state.
    pub fn with_root_certificate(
        mut self,
        cert: CertificateDer<'static>,
    ) -> Result<Self, FetchError> {
        let shared = Arc::get_mut(&mut self.shared).ok_or_else(|| {
            FetchError::RootCertificate("add roots before the capability is in use".into())
        })?;
        shared
            .roots
            .add(cert)
            .map_err(|e| FetchError::RootCertificate(e.to_string()))?;
        shared.tls = client::tls_config(shared.roots.clone())?;
        Ok(self)
    }

    /// The host's credential names, sorted (never the secrets).
    pub fn credential_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.shared.credentials.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }
}

impl FetchCapability {
    /// `grant` compiled for the job path, once per grant.
    fn policy(&self, grant: &Arc<FetchGrant>) -> CompiledGrant {
        let mut memo = self.compiled.lock().unwrap_or_else(|p| p.into_inner());
        let found = memo
            .iter()
            .find(|(g, _)| g.upgrade().is_some_and(|g| Arc::ptr_eq(&g, grant)));
        if let Some((_, policy)) = found {
            return policy.clone();
        }
        let policy = grant
            .compile(&self.shared.credentials)
            .map(Arc::new)
            .map_err(|e| e.to_string());
        memo.retain(|(g, _)| g.strong_count() > 0);
        memo.push((Arc::downgrade(grant), policy.clone()));
        policy
    }
}

impl Default for FetchCapability {
    /// No credentials, the system resolver, the Mozilla roots.
    fn default() -> Self {
        Self::new(Vec::new(), Arc::new(SystemResolver))
            .expect("the ring-backed rustls defaults are always a valid configuration")
    }
}

impl std::fmt::Debug for FetchCapability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchCapability")
            .field("credentials", &self.credential_names())
            .field("values", &"[REDACTED]")
            .field("roots", &self.shared.roots.len())
            .finish_non_exhaustive()
    }
}

/// One job's view of the verb: the compiled grant, requests used so far.
pub struct FetchState {
    shared: Arc<Shared>,
    policy: Result<Arc<Policy>, String>,
    job: Job,
    requests: u32,
}

impl std::fmt::Debug for FetchState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchState")
            .field("job", &self.job)
            .field("requests", &self.requests)
            .finish_non_exhaustive()
    }
}

impl Capability for FetchCapability {
    const VERB: &'static str = "fetch";
    const INTERFACE: &'static str = "airlock:verbs/fetch";
    type Grant = FetchGrant;
    type State = FetchState;

    fn check_grant(&self, grant: &FetchGrant) -> Result<(), String> {
        grant
            .compile(&self.shared.credentials)
            .map(drop)
            .map_err(|e| e.to_string())
    }

    fn state(&self, grant: Arc<FetchGrant>, job: Job) -> FetchState {
        FetchState {
            shared: self.shared.clone(),
            policy: self.policy(&grant),
            job,
            requests: 0,
        }
    }

    fn describe(grant: &FetchGrant) -> Vec<String> {
        grant::describe(grant)
    }

    fn compare(before: &FetchGrant, after: &FetchGrant) -> Vec<ScopeChange> {
        compare::compare(before, after)
    }

    fn add_to_linker<T: Send + 'static>(
        linker: &mut Linker<T>,
        get: fn(&mut T) -> &mut FetchState,
    ) -> wasmtime::Result<()> {
        fetch::add_to_linker::<T, HasSelf<FetchState>>(linker, get)
    }
}

airlock_core::impl_types_host!(FetchState);

/// The same error with its text scrubbed of every secret spelling.
fn scrub_error(e: VerbError, scrubber: &Scrubber) -> VerbError {
    let clean = |text: String| scrubber.scrub_str(&text).0;
    match e {
        VerbError::Guest(WitError::Denied(r)) => VerbError::denied(clean(r)),
        VerbError::Guest(WitError::Exhausted(r)) => VerbError::exhausted(clean(r)),
        VerbError::Guest(WitError::Invalid(r)) => VerbError::invalid(clean(r)),
        VerbError::Guest(WitError::Upstream(r)) => VerbError::upstream(clean(r)),
        other => other,
    }
}

impl fetch::Host for FetchState {
    async fn send(&mut self, req: fetch::Request) -> Result<fetch::Response, VerbError> {
        let started = Instant::now();
        let mut note = flow::Note::default();
        let in_flight = self.job.in_flight(
            "fetch",
            "send",
            started,
            "request abandoned, connection closed".into(),
        );
        let result = self.perform(req, &mut note).await;
        in_flight.disarm();
        let scrubber = self.scrubber();
        let result = result.map_err(|e| scrub_error(e, &scrubber));
        let decision = match &result {
            Ok(_) => Decision::Allow,
            Err(e) => Decision::Deny(format!("{}: {}", e.kind(), e.reason())),
        };
        // Formatted and scrubbed only when someone reads it.
        let detail = self
            .job
            .audits()
            .then(|| scrubber.scrub_str(&note.detail()).0);
        self.job.audit("fetch", "send", decision, started, detail);
        result
    }
}

#[cfg(test)]
mod tests;
