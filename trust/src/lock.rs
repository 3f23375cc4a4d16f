//! `toolkit.lock`: what `airlock tool add` resolved for each pinned tool of a
//! toolkit (component and statement digests, publisher key, approval), so that
//! loading never contacts a registry and refuses bytes that changed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::TrustError;
use crate::key::KeyId;
use crate::statement::Digest;

/// The lockfile format version this crate writes and reads.
pub const LOCK_VERSION: u32 = 1;

const HEADER: &str = "# Written by `airlock tool add` / `airlock tool update`: do not edit.\n\
# Every load checks the component, the signed statement and the approval against it.\n";

/// A toolkit's lockfile.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lockfile {
    /// The format version ([`LOCK_VERSION`]).
    pub version: u32,
    /// The pinned tools, by their name in the toolkit.
    #[serde(default)]
    pub tools: BTreeMap<String, LockedTool>,
}

/// One pinned tool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedTool {
    /// The reference it was resolved from, as the toolkit wrote it.
    pub source: String,
    /// `namespace/name` from the signed statement.
    pub tool: String,
    /// Its exact version.
    pub version: String,
    /// The sha256 of the component bytes.
    pub component: Digest,
    /// The sha256 of the signed statement (DSSE envelope bytes).
    pub statement: Digest,
    /// The publisher key that signed it.
    pub publisher_key: KeyId,
    /// How its request was approved.
    pub approval: Approval,
}

/// How a pinned tool's request was approved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Approval {
    /// Approved on this machine by its user (single-user mode): the lockfile
    /// itself records which request was accepted.
    Local {
        /// The digest of the approved request.
        request: Digest,
    },
    /// Approved by an approver key of the trust policy (team mode).
    Signed {
        /// The digest of the approval envelope in the local store.
        envelope: Digest,
        /// The approver's key.
        approver: KeyId,
    },
    /// An approver approved an earlier version, and this version's request
    /// stays within that one (checked at every load): a narrowing update.
    Within {
        /// The digest of the earlier version's approval envelope.
        envelope: Digest,
        /// The approver's key.
        approver: KeyId,
        /// The digest of the earlier version's statement it approved.
        statement: Digest,
    },
}

impl Lockfile {
    /// The lockfile of the toolkit at `toolkit` (`tools.toml` → `tools.lock`).
    pub fn path_for(toolkit: &Path) -> PathBuf {
        toolkit.with_extension("lock")
    }

    /// Reads a lockfile; a missing file is an empty lock.
    pub fn load(path: &Path) -> Result<Self, TrustError> {
        let err = |message: String| TrustError::Lock {
            path: path.to_path_buf(),
            message,
        };
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Self {
                    version: LOCK_VERSION,
                    tools: BTreeMap::new(),
                });
            }
            Err(e) => return Err(err(e.to_string())),
        };
        let lock: Self = toml::from_str(&text).map_err(|e| err(e.to_string()))?;
        if lock.version != LOCK_VERSION {
            return Err(err(format!(
                "lockfile version {} is not {LOCK_VERSION}; run `airlock tool add` again",
                lock.version
            )));
        }
        Ok(lock)
    }

    /// Writes the lockfile atomically (a temporary file renamed into place).
    pub fn save(&self, path: &Path) -> Result<(), TrustError> {
        let err = |message: String| TrustError::Lock {
            path: path.to_path_buf(),
            message,
        };
        let body = toml::to_string_pretty(self).map_err(|e| err(e.to_string()))?;
        let tmp = path.with_extension("lock.tmp");
        std::fs::write(&tmp, format!("{HEADER}\n{body}")).map_err(|e| err(e.to_string()))?;
        std::fs::rename(&tmp, path).map_err(|e| err(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lockfile_round_trips_through_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tools.lock");
        let mut lock = Lockfile::load(&path).unwrap();
        assert!(lock.tools.is_empty());
        for (name, approval) in [
            (
                "a",
                Approval::Local {
                    request: Digest::of(b"r"),
                },
            ),
            (
                "b",
                Approval::Signed {
                    envelope: Digest::of(b"e"),
                    approver: KeyId("ab".repeat(32)),
                },
            ),
        ] {
            lock.tools.insert(
                name.into(),
                LockedTool {
                    source: "127.0.0.1:5000/data/x:1.0.0".into(),
                    tool: "data/x".into(),
                    version: "1.0.0".into(),
                    component: Digest::of(b"c"),
                    statement: Digest::of(b"s"),
                    publisher_key: KeyId("cd".repeat(32)),
                    approval,
                },
            );
        }
        lock.save(&path).unwrap();
        assert_eq!(Lockfile::load(&path).unwrap(), lock);
        assert_eq!(
            Lockfile::path_for(Path::new("t/tools.toml")),
            Path::new("t/tools.lock")
        );
    }

    #[test]
    fn a_malformed_digest_in_a_lockfile_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tools.lock");
        std::fs::write(
            &path,
            "version = 1\n[tools.a]\nsource = \"s\"\ntool = \"d/a\"\nversion = \"1.0.0\"\n\
             component = \"sha256:zz\"\nstatement = \"sha256:zz\"\npublisher_key = \"k\"\n\
             [tools.a.approval]\nkind = \"local\"\nrequest = \"sha256:zz\"\n",
        )
        .unwrap();
        assert!(matches!(
            Lockfile::load(&path),
            Err(TrustError::Lock { .. })
        ));
    }
}
