//! How the host consumes the trust crate's verdicts: pinned tools in toolkits
//! (`tool = "REF"`, resolved through the toolkit's lockfile and local store),
//! includes that may only narrow, and the checks every load repeats.

mod toolkit;
mod verify;

use std::path::{Path, PathBuf};

use airlock_core::ScopeChange;
use airlock_trust::{LockedTool, Store, ToolPredicate, ToolRequest, TrustError};

pub use toolkit::{Include, included_tools, read_predicate};
pub(crate) use toolkit::{LockView, narrow};
pub use verify::{PinCheck, check_load, check_within_approved, verify_statement_as_signed};

use crate::verbs::{Grants, Verb, VerbSet};

/// The directory of the local store beside a toolkit: an OCI image-layout
/// directory holding pinned components, statements and approvals.
pub const STORE_DIR: &str = "airlock-store";

/// The local store of the toolkit at `toolkit`.
pub fn store_for(toolkit: &Path) -> Store {
    Store::new(toolkit.parent().unwrap_or(Path::new(".")).join(STORE_DIR))
}

/// What a toolkit's lockfile pins for one tool, read from the local store.
/// Nothing here is trusted until [`check_load`] verifies it under a policy.
#[derive(Debug)]
pub struct Pin {
    /// The reference the toolkit names.
    pub reference: String,
    /// The lockfile's entry.
    pub locked: LockedTool,
    /// The local store holding the blobs.
    pub store: Store,
    /// The publisher's signed statement (envelope bytes, digest checked).
    pub statement: Vec<u8>,
    /// The statement's claim as read (verified at every load).
    pub predicate: ToolPredicate,
    /// The grants the statement requests.
    pub requested: Grants,
    /// A signed approval (envelope bytes), when the lock records one.
    pub approval: Option<Vec<u8>>,
    /// For an approval of an earlier version this one stays within: that
    /// version's statement (envelope bytes).
    pub approved_statement: Option<Vec<u8>>,
}

impl Pin {
    /// The component's path in the local store.
    pub fn component_path(&self) -> PathBuf {
        self.store.path(&self.locked.component)
    }
}

/// A pin in plain words for `airlock explain`: who published which version,
/// the digest, and how it was approved.
pub fn pin_lines(pin: &Pin) -> Vec<String> {
    let l = &pin.locked;
    let approval = approval_words(&l.approval);
    vec![
        format!("pinned: {} ({})", pin.reference, l.tool),
        format!("version: {}", l.version),
        format!(
            "publisher: namespace {}, key {}",
            pin.predicate.namespace,
            l.publisher_key.short()
        ),
        format!("digest: {}", l.component),
        format!("approval: {approval}"),
    ]
}

/// How a pin was approved, in plain words.
pub fn approval_words(approval: &airlock_trust::Approval) -> String {
    match approval {
        airlock_trust::Approval::Local { .. } => {
            "approved on this machine (recorded in the lockfile)".to_string()
        }
        airlock_trust::Approval::Signed { approver, .. } => {
            format!("signed by approver key {}", approver.short())
        }
        airlock_trust::Approval::Within { approver, .. } => format!(
            "within the request approver key {} approved for an earlier version",
            approver.short()
        ),
    }
}

/// Why a pinned, included or unsigned tool is refused.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// A signature, digest, policy or approval check failed.
    #[error(transparent)]
    Trust(#[from] TrustError),
    /// Grants wider than what was approved (or than the included toolkit's).
    #[error("its grants go beyond {what}; narrow them or get the wider scope approved:\n{}", lines(.changes))]
    Widened {
        /// What the grants were compared with.
        what: &'static str,
        /// Each widening, in plain words.
        changes: Vec<ScopeChange>,
    },
    /// The component imports other verbs than its signed request names.
    #[error(
        "it imports verbs [{imported}] but its signed request asks for [{requested}]; a signed \
         tool's verbs must equal its request, so it was refused before it was compiled"
    )]
    VerbsDiffer {
        /// The verbs the request names.
        requested: String,
        /// The verbs the component imports.
        imported: String,
    },
    /// `require_signed` and a bare component.
    #[error(
        "the trust policy {} requires signed tools (require_signed = true) but this tool is a \
         bare component; publish it with `airlock tool pack` and pin it with `airlock tool add`",
        .policy.display()
    )]
    Unsigned {
        /// The policy file.
        policy: PathBuf,
    },
    /// A pinned tool without a trust policy to check it against.
    #[error(
        "it is a pinned, signed tool but the host config names no trust policy; add \
         [trust] policy = \"trust.toml\" to the host config"
    )]
    NoPolicy,
    /// A local approval where the policy wants an approver's signature.
    #[error(
        "the lockfile records a local approval but the trust policy has approvers; ask one of \
         them to run `airlock tool approve`, then run `airlock tool update`"
    )]
    NeedsSignedApproval,
    /// The lockfile does not match the toolkit or the statement.
    #[error("{0}")]
    Lock(String),
    /// What the agent reads was changed for a pinned tool.
    #[error(
        "it sets `{field}`, which for a pinned tool comes from its signed statement (what was \
         reviewed is what the agent reads); remove it from the toolkit"
    )]
    Docs {
        /// The field.
        field: &'static str,
    },
}

fn lines(changes: &[ScopeChange]) -> String {
    changes
        .iter()
        .map(|c| format!("  {}", c.line))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The verbs of a set, comma-separated.
pub fn verb_list(set: VerbSet) -> String {
    set.iter().map(Verb::name).collect::<Vec<_>>().join(", ")
}

/// A request's grants as the host's typed grants (unknown fields refused).
pub fn requested_grants(request: &ToolRequest) -> Result<Grants, TrustError> {
    serde_json::from_value(serde_json::Value::Object(request.grants.clone()))
        .map_err(|e| TrustError::Envelope(format!("the requested grants are not valid: {e}")))
}

/// The hosts (`name` or `*.suffix`) a grant's fetch patterns can reach.
pub fn hosts(grants: &Grants) -> Vec<String> {
    let Some(fetch) = &grants.fetch else {
        return Vec::new();
    };
    let mut out = Vec::new();
    // Credentials ride only on requests `allow` already lets through.
    for pattern in &fetch.allow {
        let rest = pattern
            .split_once("://")
            .map_or(pattern.as_str(), |(_, r)| r);
        let authority = rest.split('/').next().unwrap_or(rest);
        let host = match authority.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(v6),
            None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
        };
        out.push(host.to_ascii_lowercase());
    }
    out
}

/// Changes to what the agent reads (description, function docs): each needs
/// review like a widening, since it is text a model will follow.
pub fn docs_changes(before: &ToolRequest, after: &ToolRequest) -> Vec<ScopeChange> {
    let mut out = Vec::new();
    if before.description != after.description {
        out.push(ScopeChange {
            widens: true,
            line: format!(
                "~ description {:?} → {:?}",
                before.description.as_deref().unwrap_or(""),
                after.description.as_deref().unwrap_or("")
            ),
        });
    }
    let names: std::collections::BTreeSet<&String> = before
        .functions
        .keys()
        .chain(after.functions.keys())
        .collect();
    for name in names {
        if before.functions.get(name) != after.functions.get(name) {
            out.push(ScopeChange {
                widens: true,
                line: format!("~ functions.{name} (its description or hints changed)"),
            });
        }
    }
    if before.annotations != after.annotations {
        out.push(ScopeChange {
            widens: true,
            line: "~ annotations".into(),
        });
    }
    out
}

/// Every difference between two requests: grants (each marked widening or
/// not) and what the agent reads.
pub fn request_diff(
    before: &ToolRequest,
    after: &ToolRequest,
) -> Result<Vec<ScopeChange>, TrustError> {
    let mut changes = requested_grants(before)?.compare(&requested_grants(after)?);
    changes.extend(docs_changes(before, after));
    Ok(changes)
}
