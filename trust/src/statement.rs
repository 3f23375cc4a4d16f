//! The in-toto Statement v1 documents airlock signs: a publisher's *tool
//! request* (these component bytes are tool NAME at VERSION and ask for these
//! grants and docs) and an approver's *approval* of one such request.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};

use crate::TrustError;

/// `_type` of every in-toto Statement v1.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// `predicateType` of a publisher's tool request.
pub const TOOL_REQUEST_PREDICATE: &str = "urn:airlock:predicate:tool-request:v1";
/// `predicateType` of an approval.
pub const APPROVAL_PREDICATE: &str = "urn:airlock:predicate:tool-approval:v1";

/// A sha256 digest written `sha256:<64 hex>`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Digest(String);

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(format!("sha256:{}", hex::encode(Sha256::digest(bytes))))
    }

    /// From 32 raw bytes.
    pub fn from_raw(raw: &[u8; 32]) -> Self {
        Self(format!("sha256:{}", hex::encode(raw)))
    }

    /// The 64 hex digits.
    pub fn hex(&self) -> &str {
        &self.0["sha256:".len()..]
    }

    /// `sha256:<hex>`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `sha256:` and the first 12 hex digits, for messages.
    pub fn short(&self) -> &str {
        &self.0[..19]
    }
}

impl TryFrom<String> for Digest {
    type Error = TrustError;
    fn try_from(s: String) -> Result<Self, TrustError> {
        let ok = s.strip_prefix("sha256:").is_some_and(|h| {
            h.len() == 64
                && h.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        });
        if ok {
            Ok(Self(s))
        } else {
            Err(TrustError::Digest(s.chars().take(80).collect()))
        }
    }
}

impl std::str::FromStr for Digest {
    type Err = TrustError;
    fn from_str(s: &str) -> Result<Self, TrustError> {
        Self::try_from(s.to_string())
    }
}

impl From<Digest> for String {
    fn from(d: Digest) -> String {
        d.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.short())
    }
}

/// An in-toto Statement v1 with predicate `P`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Statement<P> {
    /// Always [`STATEMENT_TYPE`].
    #[serde(rename = "_type")]
    pub type_: String,
    /// What the statement is about (here: exactly one component).
    pub subject: Vec<Subject>,
    /// What the predicate means.
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    /// The claim.
    pub predicate: P,
}

/// One subject of a statement.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Subject {
    /// The tool's full name (`namespace/name`).
    pub name: String,
    /// Its digests by algorithm.
    pub digest: BTreeMap<String, String>,
}

/// What a tool asks to be given: the same fields as a toolkit's tool entry
/// minus the component, so what the agent reads is reviewed too.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolRequest {
    /// The one-line description agents read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The grants asked for, by verb (the toolkit's `[grants.VERB]` fields).
    #[serde(default)]
    pub grants: Map<String, Value>,
    /// Per-function descriptions and hints (`[functions.FUNC]`).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub functions: Map<String, Value>,
    /// MCP hints made more cautious (`[annotations]`).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub annotations: Map<String, Value>,
}

impl ToolRequest {
    /// The verbs asked for.
    pub fn verbs(&self) -> impl Iterator<Item = &str> {
        self.grants.keys().map(String::as_str)
    }

    /// The digest of the request's canonical JSON (what an approval names).
    pub fn digest(&self) -> Digest {
        Digest::of(&serde_json::to_vec(self).expect("a request serializes"))
    }
}

/// The predicate of a publisher's statement.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ToolPredicate {
    /// The publisher namespace (`data`, `platform/ml`).
    pub namespace: String,
    /// The tool's name inside the namespace.
    pub name: String,
    /// An exact version (`1.4.2`).
    pub version: String,
    /// What it asks for.
    pub request: ToolRequest,
}

impl ToolPredicate {
    /// `namespace/name`.
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// The predicate of an approval: this request of this tool version is approved.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ApprovalPredicate {
    /// `namespace/name` of the tool.
    pub tool: String,
    /// Its version.
    pub version: String,
    /// The digest of the publisher's signed statement (envelope bytes).
    pub statement: Digest,
    /// The digest of the approved request.
    pub request: Digest,
}

/// Builds the statement for `predicate` about the component `component`.
pub fn statement<P: Serialize>(
    name: &str,
    component: &Digest,
    predicate_type: &str,
    predicate: P,
) -> Statement<P> {
    Statement {
        type_: STATEMENT_TYPE.to_string(),
        subject: vec![Subject {
            name: name.to_string(),
            digest: BTreeMap::from([("sha256".to_string(), component.hex().to_string())]),
        }],
        predicate_type: predicate_type.to_string(),
        predicate,
    }
}

impl<P: for<'de> Deserialize<'de>> Statement<P> {
    /// Parses a statement payload and checks its type and predicate type.
    pub fn parse(payload: &[u8], predicate_type: &str) -> Result<Self, TrustError> {
        let st: Self = serde_json::from_slice(payload)
            .map_err(|e| TrustError::Envelope(format!("not an airlock statement: {e}")))?;
        if st.type_ != STATEMENT_TYPE || st.predicate_type != predicate_type {
            return Err(TrustError::Envelope(format!(
                "a statement of type `{}` / `{}` where `{predicate_type}` was expected",
                st.type_, st.predicate_type
            )));
        }
        Ok(st)
    }

    /// The one component digest the statement is about.
    pub fn subject_digest(&self) -> Result<Digest, TrustError> {
        match self.subject.as_slice() {
            [one] => one
                .digest
                .get("sha256")
                .ok_or_else(|| TrustError::Envelope("the subject has no sha256 digest".into()))
                .and_then(|h| Digest::try_from(format!("sha256:{h}"))),
            _ => Err(TrustError::Envelope(
                "a tool statement names exactly one subject".into(),
            )),
        }
    }
}

/// Whether `version` is an exact version (`MAJOR.MINOR.PATCH[-pre]`).
pub fn is_exact_version(version: &str) -> bool {
    let core = version
        .split_once('-')
        .map_or(version, |(c, pre)| if pre.is_empty() { "" } else { c });
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 9 && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Orders two exact versions by their numeric core (pre-releases sort before
/// their release); `None` when either is not exact.
pub fn compare_versions(a: &str, b: &str) -> Option<std::cmp::Ordering> {
    fn key(v: &str) -> Option<([u64; 3], bool, &str)> {
        if !is_exact_version(v) {
            return None;
        }
        let (core, pre) = v.split_once('-').unwrap_or((v, ""));
        let mut n = [0u64; 3];
        for (slot, part) in n.iter_mut().zip(core.split('.')) {
            *slot = part.parse().ok()?;
        }
        Some((n, pre.is_empty(), pre))
    }
    Some(key(a)?.cmp(&key(b)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_exact_or_refused_and_ordered_numerically() {
        for ok in ["1.4.2", "0.0.1", "10.20.30-rc.1"] {
            assert!(is_exact_version(ok), "{ok}");
        }
        for bad in ["latest", "1", "1.4", "1.4.x", "1.4.2-", "v1.4.2", ""] {
            assert!(!is_exact_version(bad), "{bad}");
        }
        use std::cmp::Ordering::*;
        assert_eq!(compare_versions("1.10.0", "1.9.9"), Some(Greater));
        assert_eq!(compare_versions("1.0.0-rc.1", "1.0.0"), Some(Less));
        assert_eq!(compare_versions("1.0.0", "latest"), None);
    }

    #[test]
    fn digests_are_checked_when_read() {
        assert!("sha256:abc".parse::<Digest>().is_err());
        assert!(
            format!("sha256:{}", "A".repeat(64))
                .parse::<Digest>()
                .is_err()
        );
        let d = Digest::of(b"x");
        assert_eq!(d.as_str().parse::<Digest>().unwrap(), d);
    }
}
