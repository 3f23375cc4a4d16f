//! The checks every load of a tool repeats under the trust policy, before
//! its component is compiled: blocked verbs and hosts, signed-only hosts,
//! and for a pinned tool its signature, approval, lock and grants.

use airlock_trust::statement::{Statement, TOOL_REQUEST_PREDICATE, ToolPredicate};
use airlock_trust::{Approval, Policy, TrustError, VerifiedStatement};

use super::{Pin, Refusal, hosts, requested_grants};
use crate::config::ToolSpec;
use crate::verbs::{Verb, VerbSet};

/// What the load itself must still check of a pinned tool's bytes: their
/// sha256 (before anything is parsed) and the verbs they import.
#[derive(Debug, Clone, Copy)]
pub struct PinCheck {
    /// The pinned sha256 of the component.
    pub digest: [u8; 32],
    /// The verbs the signed request names; the imports must equal them.
    pub verbs: VerbSet,
}

/// Checks `spec` under `policy` before its component is read: blocked verbs
/// and hosts for every tool, `require_signed` for bare components, and for
/// a pinned tool everything its lockfile claims. Returns what the load must
/// check of the bytes.
pub fn check_load(policy: Option<&Policy>, spec: &ToolSpec) -> Result<Option<PinCheck>, Refusal> {
    let name = &spec.name;
    if let Some(p) = policy {
        p.check_blocked(
            name,
            spec.grants.set().iter().map(Verb::name),
            hosts(&spec.grants),
        )?;
    }
    let Some(pin) = &spec.pin else {
        if let Some(p) = policy.filter(|p| p.require_signed) {
            return Err(Refusal::Unsigned {
                policy: p.path.clone(),
            });
        }
        return Ok(None);
    };
    let policy = policy.ok_or(Refusal::NoPolicy)?;
    let verified = verify_pin(policy, pin)?;
    policy.check_blocked(
        name,
        verified.predicate.request.verbs(),
        hosts(&pin.requested),
    )?;
    spec.grants
        .within(&pin.requested)
        .map_err(|changes| Refusal::Widened {
            what: "the approved request",
            changes,
        })?;
    let mut digest = [0u8; 32];
    hex::decode_to_slice(pin.locked.component.hex(), &mut digest)
        .expect("a digest is 64 hex digits");
    Ok(Some(PinCheck {
        digest,
        verbs: pin.requested.set(),
    }))
}

/// The statement and approval of a pin, verified under `policy`, and the
/// lockfile's claims checked against them.
fn verify_pin(policy: &Policy, pin: &Pin) -> Result<VerifiedStatement, Refusal> {
    let locked = &pin.locked;
    let verified = policy.verify_statement(&pin.statement, &locked.component)?;
    let p = &verified.predicate;
    if locked.tool != p.full_name()
        || locked.version != p.version
        || locked.publisher_key != verified.key
    {
        return Err(Refusal::Lock(format!(
            "the lockfile says {} {} signed by {} but the statement is {} {} signed by {}; run \
             `airlock tool update` to pin it again",
            locked.tool,
            locked.version,
            locked.publisher_key.short(),
            p.full_name(),
            p.version,
            verified.key.short()
        )));
    }
    match &locked.approval {
        Approval::Local { request } => {
            if policy.team_mode() {
                return Err(Refusal::NeedsSignedApproval);
            }
            if *request != p.request.digest() {
                return Err(Refusal::Lock(
                    "the lockfile's local approval is for another request than the pinned \
                     statement's; run `airlock tool update --approve` after reviewing it"
                        .into(),
                ));
            }
        }
        Approval::Signed { approver, .. } => {
            let envelope = pin.approval.as_deref().unwrap_or_default();
            let (_, key) = policy.verify_approval(envelope, &verified)?;
            if key != *approver {
                return Err(Refusal::Lock(format!(
                    "the lockfile names approver {} but the approval is signed by {}",
                    approver.short(),
                    key.short()
                )));
            }
        }
        Approval::Within { approver, .. } => {
            let envelope = pin.approval.as_deref().unwrap_or_default();
            let earlier = pin.approved_statement.as_deref().unwrap_or_default();
            let old = verify_statement_as_signed(policy, earlier)?;
            let (_, key) = policy.verify_approval(envelope, &old)?;
            if key != *approver || old.predicate.full_name() != p.full_name() {
                return Err(Refusal::Lock(
                    "the lockfile's approval is not for an earlier version of this tool".into(),
                ));
            }
            check_within_approved(&old.predicate, p)?;
        }
    }
    Ok(verified)
}

/// Verifies a statement about whichever component it names (an earlier,
/// approved version whose bytes are not at hand).
pub fn verify_statement_as_signed(
    policy: &Policy,
    envelope: &[u8],
) -> Result<VerifiedStatement, TrustError> {
    let env = airlock_trust::dsse::Envelope::parse(envelope)?;
    let payload = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &env.payload)
        .map_err(|_| TrustError::Envelope("the payload is not base64".into()))?;
    let subject =
        Statement::<ToolPredicate>::parse(&payload, TOOL_REQUEST_PREDICATE)?.subject_digest()?;
    policy.verify_statement(envelope, &subject)
}

/// Checks that `newer` asks for nothing beyond the approved `older`: its
/// grants within, and what the agent reads unchanged.
pub fn check_within_approved(older: &ToolPredicate, newer: &ToolPredicate) -> Result<(), Refusal> {
    let old = requested_grants(&older.request)?;
    let new = requested_grants(&newer.request)?;
    let mut changes = match new.within(&old) {
        Ok(()) => Vec::new(),
        Err(changes) => changes,
    };
    changes.extend(super::docs_changes(&older.request, &newer.request));
    if changes.is_empty() {
        Ok(())
    } else {
        Err(Refusal::Widened {
            what: "the approved request",
            changes,
        })
    }
}
