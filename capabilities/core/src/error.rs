//! The error every verb returns: either a guest-visible WIT `error` (a denial,
//! an exhausted quota, ...) or a trap reserved for host bugs.

use crate::bindings::airlock::verbs::types::Error as WitError;

/// What a verb implementation returns on failure. `Guest` becomes the WIT
/// `error` the tool sees; `Trap` aborts the job and is for host bugs only.
#[derive(Debug, thiserror::Error)]
pub enum VerbError {
    /// A policy decision or bad request the guest can handle.
    #[error("{0:?}")]
    Guest(WitError),
    /// A host failure: the job traps with this message.
    #[error("host failure in verb: {0}")]
    Trap(anyhow::Error),
    /// The job's caller cancelled it while the verb was waiting; the
    /// verb's work was abandoned and the job ends (the host reports it as
    /// cancelled, the guest never sees this).
    #[error("the job was cancelled")]
    Cancelled,
}

impl VerbError {
    /// The grant does not allow the call.
    pub fn denied(reason: impl Into<String>) -> Self {
        Self::Guest(WitError::Denied(reason.into()))
    }
    /// A per-job quota named `which` is used up.
    pub fn exhausted(which: impl Into<String>) -> Self {
        Self::Guest(WitError::Exhausted(which.into()))
    }
    /// The request is malformed or names something the host lacks.
    pub fn invalid(reason: impl Into<String>) -> Self {
        Self::Guest(WitError::Invalid(reason.into()))
    }
    /// The service behind the verb failed (text must be scrubbed of secrets).
    pub fn upstream(reason: impl Into<String>) -> Self {
        Self::Guest(WitError::Upstream(reason.into()))
    }
    /// The job's deadline passed.
    pub fn timeout() -> Self {
        Self::Guest(WitError::Timeout)
    }

    /// Converts into what the generated bindings hand to the guest (or a trap).
    pub fn into_wit(self) -> anyhow::Result<WitError> {
        match self {
            Self::Guest(e) => Ok(e),
            Self::Trap(e) => Err(e),
            Self::Cancelled => Err(anyhow::anyhow!("the job was cancelled")),
        }
    }

    /// A short label for audit records: `denied`, `exhausted`, ...
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Guest(WitError::Denied(_)) => "denied",
            Self::Guest(WitError::Exhausted(_)) => "exhausted",
            Self::Guest(WitError::Invalid(_)) => "invalid",
            Self::Guest(WitError::Upstream(_)) => "upstream",
            Self::Guest(WitError::Timeout) => "timeout",
            Self::Trap(_) => "trap",
            Self::Cancelled => "cancelled",
        }
    }

    /// The guest-visible reason text, if any.
    pub fn reason(&self) -> String {
        match self {
            Self::Guest(WitError::Denied(r))
            | Self::Guest(WitError::Exhausted(r))
            | Self::Guest(WitError::Invalid(r))
            | Self::Guest(WitError::Upstream(r)) => r.clone(),
            Self::Guest(WitError::Timeout) => "deadline passed".into(),
            Self::Trap(e) => e.to_string(),
            Self::Cancelled => "the job's caller cancelled it".into(),
        }
    }
}

impl From<WitError> for VerbError {
    fn from(e: WitError) -> Self {
        Self::Guest(e)
    }
}

impl From<anyhow::Error> for VerbError {
    fn from(e: anyhow::Error) -> Self {
        Self::Trap(e)
    }
}

/// Every verb's state implements `types::Host` through this one conversion.
#[macro_export]
macro_rules! impl_types_host {
    ($state:ty) => {
        impl $crate::bindings::airlock::verbs::types::Host for $state {
            fn convert_error(
                &mut self,
                err: $crate::VerbError,
            ) -> $crate::anyhow::Result<$crate::WitError> {
                err.into_wit()
            }
        }
    };
}
