//! The floor every airlock verb stands on: the one host `bindgen!` of the
//! `airlock:verbs` WIT package, the [`Capability`] shape each verb crate follows,
//! the shared [`VerbError`], the per-job [`Job`] handle (deadline, audit,
//! cancellation), and the decoded views both secret scrubbers search
//! ([`unescape`]).
#![deny(missing_docs)]

mod audit;
mod cancel;
mod error;
mod job;
mod scope;
pub mod unescape;

pub use audit::{AuditRecord, AuditSink, Decision, MemoryAudit, NullAudit};
pub use cancel::{Cancel, JobControl, JobEvents};
pub use error::VerbError;
pub use job::{InFlight, Job, JobOwner};
pub use scope::ScopeChange;

#[doc(hidden)]
pub use anyhow;

/// Host bindings generated once from `wit/`, the same files the guests use.
#[allow(missing_docs)]
pub mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "airlock:verbs/host",
        anyhow: true,
        // `log.emit` never waits: a plain host function, without the
        // fiber round trip of an async one (~8% of a 16-byte call).
        imports: {
            "airlock:verbs/log.emit": trappable,
            default: async | trappable,
        },
        trappable_error_type: {
            "airlock:verbs/types.error" => crate::VerbError,
        },
    });
}

pub use bindings::airlock::verbs::types::Error as WitError;

use wasmtime::component::Linker;

/// The shape of one verb. A verb crate provides a `<Verb>Capability` (host-wide:
/// clients, secrets) implementing this trait, a `<Verb>Grant` (what one tool
/// may do) and a `<Verb>State` (one job's view, living in the job's store).
pub trait Capability: Send + Sync + 'static {
    /// The verb's name as written in toolkits and on the command line (`sign`).
    const VERB: &'static str;
    /// The WIT interface this verb serves, without version (`airlock:verbs/sign`).
    const INTERFACE: &'static str;
    /// What one tool is allowed to do with this verb (deserialized from a toolkit).
    /// Serialized (with the toolkit's field names) into signed statements.
    type Grant: serde::de::DeserializeOwned
        + serde::Serialize
        + Clone
        + std::fmt::Debug
        + Send
        + Sync
        + 'static;
    /// One job's state: the grant, quotas used so far, the job handle.
    type State: Send + 'static;

    /// Checks a grant against what the host has (for example that every key it
    /// names is configured). Called when a toolkit loads, never on the job path.
    fn check_grant(&self, grant: &Self::Grant) -> Result<(), String>;

    /// Builds the per-job state for a tool holding `grant`. Runs on the job
    /// path: clone `Arc`s, allocate nothing large.
    fn state(&self, grant: std::sync::Arc<Self::Grant>, job: Job) -> Self::State;

    /// Describes the grant in plain words for `airlock explain`, one line each.
    fn describe(grant: &Self::Grant) -> Vec<String>;

    /// Every difference between two grants, each marked `widens` when `after`
    /// allows something `before` did not; empty when they allow the same.
    /// Compared by meaning, not text: a URL pattern inside an old one, or a
    /// limit spelled differently with the same value, widens nothing.
    fn compare(before: &Self::Grant, after: &Self::Grant) -> Vec<ScopeChange>;

    /// Links this verb's interface into `linker`, reaching the state with `get`.
    fn add_to_linker<T: Send + 'static>(
        linker: &mut Linker<T>,
        get: fn(&mut T) -> &mut Self::State,
    ) -> wasmtime::Result<()>;
}

/// Links the type-only `airlock:verbs/types` interface, which every verb uses.
pub fn add_types_to_linker<T: Send + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    linker.instance(&format!("airlock:verbs/types@{}", WIT_VERSION))?;
    Ok(())
}

/// The version of the `airlock:verbs` package this host serves.
pub const WIT_VERSION: &str = "0.1.0";
