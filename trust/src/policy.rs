//! The operator's trust policy (`trust.toml`): which publisher keys may sign
//! tools under which namespaces, who approves, what is revoked or blocked, and
//! whether unsigned tools may run at all. It turns signed bytes into verdicts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::TrustError;
use crate::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE};
use crate::key::{KeyId, PublicKey};
use crate::statement::{
    APPROVAL_PREDICATE, ApprovalPredicate, Digest, Statement, TOOL_REQUEST_PREDICATE,
    ToolPredicate, is_exact_version,
};

/// Largest policy file read.
const MAX_POLICY_BYTES: u64 = 1 << 20;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    require_signed: bool,
    #[serde(default)]
    registries: Vec<String>,
    #[serde(default)]
    blocked_verbs: Vec<String>,
    #[serde(default)]
    blocked_hosts: Vec<String>,
    #[serde(default)]
    publishers: BTreeMap<String, PublisherEntry>,
    #[serde(default)]
    approvers: BTreeMap<String, ApproverEntry>,
    #[serde(default)]
    revoked: Revoked,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PublisherEntry {
    key: String,
    namespaces: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApproverEntry {
    key: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Revoked {
    #[serde(default)]
    keys: Vec<String>,
    #[serde(default)]
    digests: Vec<Digest>,
}

/// A publisher the policy trusts.
#[derive(Debug, Clone)]
pub struct Publisher {
    /// Its name in the policy (`[publishers.NAME]`).
    pub name: String,
    /// Its key.
    pub key: PublicKey,
    /// The namespaces it may publish under (and below).
    pub namespaces: Vec<String>,
}

/// A trust policy, loaded and checked.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Where it was read from.
    pub path: PathBuf,
    /// Whether every tool must be a signed, pinned tool.
    pub require_signed: bool,
    /// Registries tools may come from (`host[:port]`).
    pub registries: Vec<String>,
    /// Verbs no tool may request.
    pub blocked_verbs: Vec<String>,
    /// Hosts (`name` or `*.suffix`) no tool may reach.
    pub blocked_hosts: Vec<String>,
    publishers: Vec<Publisher>,
    approvers: Vec<(String, PublicKey)>,
    revoked_keys: Vec<KeyId>,
    revoked_digests: Vec<Digest>,
}

/// A publisher's statement that verified under the policy.
#[derive(Debug, Clone)]
pub struct VerifiedStatement {
    /// What it says.
    pub predicate: ToolPredicate,
    /// The component it is about.
    pub component: Digest,
    /// The digest of the envelope bytes.
    pub statement: Digest,
    /// The policy's name for the publisher who signed it.
    pub publisher: String,
    /// The key that signed it.
    pub key: KeyId,
}

pub(crate) fn valid_namespace(ns: &str) -> bool {
    !ns.is_empty()
        && ns.split('/').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        })
}

/// Whether two host patterns (`name` or `*.suffix`) can name a common host.
pub fn hosts_overlap(a: &str, b: &str) -> bool {
    let (a, b) = (a.to_ascii_lowercase(), b.to_ascii_lowercase());
    match (a.strip_prefix("*."), b.strip_prefix("*.")) {
        (None, None) => a == b,
        (Some(sa), None) => b.ends_with(&format!(".{sa}")),
        (None, Some(sb)) => a.ends_with(&format!(".{sb}")),
        (Some(sa), Some(sb)) => {
            sa == sb || sa.ends_with(&format!(".{sb}")) || sb.ends_with(&format!(".{sa}"))
        }
    }
}

impl Policy {
    /// Reads a policy file.
    pub fn load(path: &Path) -> Result<Self, TrustError> {
        let err = |message: String| TrustError::Policy {
            path: path.to_path_buf(),
            message,
        };
        let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
        if !meta.is_file() || meta.len() > MAX_POLICY_BYTES {
            return Err(err("not a regular file under 1 MiB".into()));
        }
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        Self::parse(&text, path)
    }

    /// Parses policy text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, TrustError> {
        let err = |message: String| TrustError::Policy {
            path: path.to_path_buf(),
            message,
        };
        let file: PolicyFile = toml::from_str(text).map_err(|e| err(e.to_string()))?;
        let mut publishers = Vec::new();
        for (name, entry) in file.publishers {
            let key = PublicKey::parse(&entry.key)
                .map_err(|e| err(format!("publishers.{name}.key: {e}")))?;
            if entry.namespaces.is_empty() {
                return Err(err(format!(
                    "publishers.{name}.namespaces is empty; list the namespaces it may publish under"
                )));
            }
            if let Some(bad) = entry.namespaces.iter().find(|n| !valid_namespace(n)) {
                return Err(err(format!(
                    "publishers.{name}: namespace `{bad}` may use only lowercase letters, digits, `-`, `_` and `/` between parts"
                )));
            }
            publishers.push(Publisher {
                name,
                key,
                namespaces: entry.namespaces,
            });
        }
        let mut approvers = Vec::new();
        for (name, entry) in file.approvers {
            let key = PublicKey::parse(&entry.key)
                .map_err(|e| err(format!("approvers.{name}.key: {e}")))?;
            approvers.push((name, key));
        }
        let mut revoked_keys = Vec::new();
        for k in file.revoked.keys {
            revoked_keys.push(match PublicKey::parse(&k) {
                Ok(key) => key.id(),
                Err(_) if k.len() == 64 && k.bytes().all(|b| b.is_ascii_hexdigit()) => {
                    KeyId(k.to_ascii_lowercase())
                }
                Err(_) => {
                    return Err(err(format!(
                        "revoked.keys: `{k}` is neither `ed25519:BASE64` nor a 64-digit key id"
                    )));
                }
            });
        }
        Ok(Self {
            path: path.to_path_buf(),
            require_signed: file.require_signed,
            registries: file.registries,
            blocked_verbs: file.blocked_verbs,
            blocked_hosts: file.blocked_hosts,
            publishers,
            approvers,
            revoked_keys,
            revoked_digests: file.revoked.digests,
        })
    }

    /// Whether approvals must be signed by an approver key (team mode);
    /// otherwise an approval recorded in the lockfile is enough.
    pub fn team_mode(&self) -> bool {
        !self.approvers.is_empty()
    }

    /// The policy's publishers.
    pub fn publishers(&self) -> &[Publisher] {
        &self.publishers
    }

    fn revoked_digest(&self, d: &Digest) -> Result<(), TrustError> {
        if self.revoked_digests.contains(d) {
            return Err(TrustError::RevokedDigest { digest: d.clone() });
        }
        Ok(())
    }

    /// Checks a registry (`host[:port]`) is one tools may come from.
    pub fn check_registry(&self, registry: &str) -> Result<(), TrustError> {
        if self
            .registries
            .iter()
            .any(|r| r.eq_ignore_ascii_case(registry))
        {
            return Ok(());
        }
        Err(TrustError::RegistryNotAllowed {
            registry: registry.to_string(),
            policy: self.path.clone(),
        })
    }

    /// Checks verbs and hosts a tool asks for (or is granted) against the
    /// policy's blocked lists.
    pub fn check_blocked(
        &self,
        tool: &str,
        verbs: impl IntoIterator<Item = impl AsRef<str>>,
        hosts: impl IntoIterator<Item = impl AsRef<str>>,
    ) -> Result<(), TrustError> {
        for verb in verbs {
            let verb = verb.as_ref();
            if self.blocked_verbs.iter().any(|b| b == verb) {
                return Err(TrustError::BlockedVerb {
                    tool: tool.to_string(),
                    verb: verb.to_string(),
                });
            }
        }
        for host in hosts {
            let host = host.as_ref();
            if let Some(blocked) = self.blocked_hosts.iter().find(|b| hosts_overlap(b, host)) {
                return Err(TrustError::BlockedHost {
                    tool: tool.to_string(),
                    host: host.to_string(),
                    blocked: blocked.clone(),
                });
            }
        }
        Ok(())
    }

    /// Verifies a publisher's signed statement about the component whose
    /// sha256 is `component`: a valid signature by a trusted, unrevoked
    /// publisher key allowed the statement's namespace, about exactly these
    /// bytes, neither digest revoked, an exact version.
    pub fn verify_statement(
        &self,
        envelope: &[u8],
        component: &Digest,
    ) -> Result<VerifiedStatement, TrustError> {
        let statement_digest = Digest::of(envelope);
        self.revoked_digest(&statement_digest)?;
        self.revoked_digest(component)?;
        let env = Envelope::parse(envelope)?;
        let keys: Vec<PublicKey> = self.publishers.iter().map(|p| p.key).collect();
        let (payload, signers) = env.verified_by(IN_TOTO_PAYLOAD_TYPE, &keys)?;
        if signers.is_empty() {
            return Err(TrustError::UnknownSigner {
                claimed: env.claimed_keys(),
                policy: self.path.clone(),
            });
        }
        let live: Vec<&KeyId> = signers
            .iter()
            .filter(|k| !self.revoked_keys.contains(k))
            .collect();
        if live.is_empty() {
            return Err(TrustError::RevokedKey {
                key: signers[0].clone(),
            });
        }
        let st: Statement<ToolPredicate> = Statement::parse(&payload, TOOL_REQUEST_PREDICATE)?;
        let subject = st.subject_digest()?;
        if &subject != component {
            return Err(TrustError::SubjectMismatch {
                signed: subject,
                actual: component.clone(),
            });
        }
        let p = &st.predicate;
        if st.subject[0].name != p.full_name() {
            return Err(TrustError::Envelope(format!(
                "the subject is named `{}` but the predicate names `{}`",
                st.subject[0].name,
                p.full_name()
            )));
        }
        if !is_exact_version(&p.version) {
            return Err(TrustError::Envelope(format!(
                "version `{}` is not an exact MAJOR.MINOR.PATCH version",
                p.version
            )));
        }
        let allowed = self.publishers.iter().find(|publ| {
            live.contains(&&publ.key.id())
                && publ
                    .namespaces
                    .iter()
                    .any(|ns| p.namespace == *ns || p.namespace.starts_with(&format!("{ns}/")))
        });
        let Some(publ) = allowed else {
            let key = live[0].clone();
            let allowed = self
                .publishers
                .iter()
                .filter(|publ| publ.key.id() == key)
                .flat_map(|publ| publ.namespaces.clone())
                .collect();
            return Err(TrustError::OutsideNamespace {
                key,
                namespace: p.namespace.clone(),
                allowed,
            });
        };
        Ok(VerifiedStatement {
            predicate: st.predicate.clone(),
            component: component.clone(),
            statement: statement_digest,
            publisher: publ.name.clone(),
            key: publ.key.id(),
        })
    }

    /// Verifies an approval envelope of `verified`: signed by an approver key
    /// of this policy (not revoked), about the same component, statement and
    /// request. Returns the approver's name and key.
    pub fn verify_approval(
        &self,
        envelope: &[u8],
        verified: &VerifiedStatement,
    ) -> Result<(String, KeyId), TrustError> {
        let env = Envelope::parse(envelope)?;
        let keys: Vec<PublicKey> = self.approvers.iter().map(|(_, k)| *k).collect();
        let (payload, signers) = env.verified_by(IN_TOTO_PAYLOAD_TYPE, &keys)?;
        let live: Vec<&KeyId> = signers
            .iter()
            .filter(|k| !self.revoked_keys.contains(k))
            .collect();
        let Some(key) = live.first() else {
            return Err(TrustError::NotAnApprover {
                claimed: env.claimed_keys(),
                policy: self.path.clone(),
            });
        };
        let st: Statement<ApprovalPredicate> = Statement::parse(&payload, APPROVAL_PREDICATE)?;
        let p = &st.predicate;
        let about_this = st.subject_digest()? == verified.component
            && p.statement == verified.statement
            && p.request == verified.predicate.request.digest()
            && p.tool == verified.predicate.full_name()
            && p.version == verified.predicate.version;
        if !about_this {
            return Err(TrustError::ApprovalMismatch {
                tool: verified.predicate.full_name(),
                version: verified.predicate.version.clone(),
            });
        }
        let name = self
            .approvers
            .iter()
            .find(|(_, k)| k.id() == **key)
            .map(|(n, _)| n.clone())
            .unwrap_or_default();
        Ok((name, (*key).clone()))
    }
}

#[cfg(test)]
mod tests;
