//! Distribution and trust for tools shared inside a company: publisher keys,
//! the signed statement that binds a component's bytes to the grants it
//! requests, the operator's trust policy, toolkit lockfiles and OCI transport.
//! The host consumes the verdicts; nothing here runs a component.

pub mod dsse;
pub mod key;
pub mod lock;
pub mod oci;
pub mod policy;
pub mod publish;
pub mod statement;
pub mod store;

use std::path::PathBuf;

pub use key::{KeyId, PrivateKey, PublicKey};
pub use lock::{Approval, LockedTool, Lockfile};
pub use policy::{Policy, VerifiedStatement};
pub use statement::{Digest, ToolPredicate, ToolRequest};
pub use store::Store;

/// Why a tool is not trusted, or a trust file cannot be used. Every message
/// says what happened and what to do next.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// A key file cannot be read or written.
    #[error("key file {path}: {reason}")]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A public key as text is malformed.
    #[error("public key `{text}`: {reason}")]
    KeyText {
        /// The text (truncated).
        text: String,
        /// What is wrong.
        reason: String,
    },
    /// A digest is not `sha256:<64 lowercase hex>`.
    #[error("`{0}` is not a digest; write sha256:<64 lowercase hex digits>")]
    Digest(String),
    /// A signed statement or approval is malformed.
    #[error("signed statement: {0}")]
    Envelope(String),
    /// No signature is by a key the policy knows.
    #[error(
        "the statement is signed by no publisher key of {policy} (it claims key {claimed:?}); \
         add the publisher's key under [publishers.NAME] if you trust it"
    )]
    UnknownSigner {
        /// Key ids the envelope claims.
        claimed: Vec<String>,
        /// The policy file.
        policy: PathBuf,
    },
    /// The only valid signatures are by revoked keys.
    #[error(
        "the statement is signed by revoked key {key}; ask the publisher for a release signed with a current key"
    )]
    RevokedKey {
        /// The revoked key.
        key: KeyId,
    },
    /// The component or statement digest is revoked.
    #[error("{digest} is revoked by the trust policy; pin another version")]
    RevokedDigest {
        /// The revoked digest.
        digest: Digest,
    },
    /// The signer may not publish under the statement's namespace.
    #[error(
        "key {key} may publish under {allowed:?} only, not under `{namespace}`; \
         the statement is refused"
    )]
    OutsideNamespace {
        /// The signer.
        key: KeyId,
        /// The namespace the statement claims.
        namespace: String,
        /// The namespaces the key may publish under.
        allowed: Vec<String>,
    },
    /// The statement is about other bytes than these (swapped or replayed).
    #[error(
        "the signed statement is about component {signed} but the component is {actual}: \
         the bytes were swapped or the statement belongs to another component"
    )]
    SubjectMismatch {
        /// The digest the statement signs.
        signed: Digest,
        /// The digest of the bytes at hand.
        actual: Digest,
    },
    /// Bytes do not hash to the digest that names them.
    #[error("{what}: expected {expected}, got {actual}; the bytes changed after they were pinned")]
    DigestMismatch {
        /// What was read.
        what: String,
        /// The pinned digest.
        expected: Digest,
        /// The digest of the bytes read.
        actual: Digest,
    },
    /// An approval is not signed by an approver key of the policy.
    #[error(
        "the approval is signed by no approver key of {policy} (it claims key {claimed:?}); \
         ask an approver listed under [approvers] to run `airlock tool approve`"
    )]
    NotAnApprover {
        /// Key ids the envelope claims.
        claimed: Vec<String>,
        /// The policy file.
        policy: PathBuf,
    },
    /// An approval is about another tool, version, statement or request.
    #[error(
        "the approval is not for {tool} {version} as signed; approve this version with `airlock tool approve`"
    )]
    ApprovalMismatch {
        /// The tool.
        tool: String,
        /// Its version.
        version: String,
    },
    /// A verb the policy blocks.
    #[error("tool `{tool}` asks for verb `{verb}`, which the trust policy blocks")]
    BlockedVerb {
        /// The tool.
        tool: String,
        /// The verb.
        verb: String,
    },
    /// A host the policy blocks.
    #[error("tool `{tool}` may reach `{host}`, which the trust policy blocks (`{blocked}`)")]
    BlockedHost {
        /// The tool.
        tool: String,
        /// The host pattern granted or requested.
        host: String,
        /// The blocked pattern it overlaps.
        blocked: String,
    },
    /// A registry the policy does not allow.
    #[error(
        "registry `{registry}` is not allowed by {policy}; add it to `registries` if you trust it"
    )]
    RegistryNotAllowed {
        /// The registry.
        registry: String,
        /// The policy file.
        policy: PathBuf,
    },
    /// The trust policy file is unusable.
    #[error("{path}: {message}")]
    Policy {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The lockfile is unusable.
    #[error("{path}: {message}")]
    Lock {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A blob of the local store is unusable.
    #[error("{path}: {reason}")]
    Store {
        /// The blob.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}
