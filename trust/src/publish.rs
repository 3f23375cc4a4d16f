//! Making the two signed documents: a publisher packs a component with its
//! request (`airlock tool pack`), an approver approves one verified request
//! (`airlock tool approve`).

use crate::TrustError;
use crate::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE};
use crate::key::PrivateKey;
use crate::policy::VerifiedStatement;
use crate::statement::{
    APPROVAL_PREDICATE, ApprovalPredicate, Digest, TOOL_REQUEST_PREDICATE, ToolPredicate,
    ToolRequest, is_exact_version, statement,
};

/// Signs the statement binding `component` (its bytes) to a tool name,
/// version and request. Names and versions are checked here so a publisher
/// learns at pack time, not at a consumer's load, that they are unusable.
pub fn pack(
    component: &[u8],
    namespace: &str,
    name: &str,
    version: &str,
    request: ToolRequest,
    key: &PrivateKey,
) -> Result<Envelope, TrustError> {
    let bad = |what: &str| TrustError::Envelope(what.to_string());
    if !crate::policy::valid_namespace(namespace) {
        return Err(bad(
            "the namespace may use only lowercase letters, digits, `-`, `_` and `/` between parts",
        ));
    }
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        return Err(bad(
            "the tool name may use only lowercase letters, digits, `-` and `_`",
        ));
    }
    if !is_exact_version(version) {
        return Err(bad(
            "the version must be exact: MAJOR.MINOR.PATCH, optionally with -PRERELEASE",
        ));
    }
    let predicate = ToolPredicate {
        namespace: namespace.to_string(),
        name: name.to_string(),
        version: version.to_string(),
        request,
    };
    let st = statement(
        &predicate.full_name(),
        &Digest::of(component),
        TOOL_REQUEST_PREDICATE,
        &predicate,
    );
    let payload = serde_json::to_vec(&st).expect("a statement serializes");
    Ok(Envelope::sign(IN_TOTO_PAYLOAD_TYPE, &payload, key))
}

/// Signs an approval of exactly `verified` (its component, statement and
/// request) with an approver's key.
pub fn approve(verified: &VerifiedStatement, key: &PrivateKey) -> Envelope {
    let p = &verified.predicate;
    let predicate = ApprovalPredicate {
        tool: p.full_name(),
        version: p.version.clone(),
        statement: verified.statement.clone(),
        request: p.request.digest(),
    };
    let st = statement(
        &p.full_name(),
        &verified.component,
        APPROVAL_PREDICATE,
        &predicate,
    );
    let payload = serde_json::to_vec(&st).expect("a statement serializes");
    Envelope::sign(IN_TOTO_PAYLOAD_TYPE, &payload, key)
}
