//! Distribution: moving a signed tool between places byte-exact, re-verified on
//! every read. A tool is the CNCF Wasm OCI artifact (component first, the DSSE
//! statement second, approvals as referrers), in a registry or an OCI image-layout
//! directory; every manifest and blob is re-hashed against its digest when read.

mod layout;
mod manifest;
mod reference;
mod registry;

use std::path::PathBuf;

pub use layout::{add_approval_to_layout, read_layout, write_layout};
pub use manifest::{
    APPROVAL_ARTIFACT_TYPE, DSSE_MEDIA_TYPE, EMPTY_MEDIA_TYPE, MAX_APPROVALS, MAX_COMPONENT_BYTES,
    MAX_CONFIG_BYTES, MAX_ENVELOPE_BYTES, MAX_MANIFEST_BYTES, OCI_INDEX_MEDIA_TYPE,
    OCI_MANIFEST_MEDIA_TYPE, REF_NAME_ANNOTATION, WASM_CONFIG_MEDIA_TYPE, WASM_LAYER_MEDIA_TYPE,
    referrers_tag, sha256_digest,
};
pub use reference::{ToolRef, is_exact_version};
pub use registry::{Auth, PASSWORD_ENV, USERNAME_ENV, pull, pull_to_layout, push, push_approval};

/// A published tool: the bytes that travel together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    /// The component's `.wasm` bytes (the first layer, `application/wasm`).
    pub component: Vec<u8>,
    /// The signed statement: a DSSE envelope, JSON bytes, opaque here.
    pub statement: Vec<u8>,
    /// Approvals: DSSE envelopes (opaque), each stored as a referrer of the tool.
    pub approvals: Vec<Vec<u8>>,
}

/// A tool fetched from a registry or a layout, every byte re-hashed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pulled {
    /// The bytes.
    pub artifact: Artifact,
    /// `sha256:…` of the tool's manifest (what a reference pins with `@`).
    pub manifest_digest: String,
    /// `sha256:…` of the component bytes.
    pub component_digest: String,
    /// `sha256:…` of the statement bytes.
    pub statement_digest: String,
}

/// Where a tool comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// An OCI registry (plain HTTP only on loopback, TLS otherwise).
    Registry(ToolRef),
    /// An OCI image-layout directory: `reference` is an exact version tag,
    /// `sha256:…`, or `TAG@sha256:…` (the tag must resolve to that digest).
    Layout {
        /// The layout directory (holds `oci-layout`, `index.json`, `blobs/`).
        dir: PathBuf,
        /// The tag or digest to read.
        reference: String,
    },
}

impl Source {
    /// Fetch and verify the tool; registry credentials come from
    /// [`Auth::from_env`] (anonymous when unset).
    pub async fn fetch(&self) -> Result<Pulled, DistError> {
        match self {
            Source::Registry(r) => pull(r, &Auth::from_env()?).await,
            Source::Layout { dir, reference } => {
                let dir = dir.clone();
                let reference = reference.clone();
                tokio::task::spawn_blocking(move || read_layout(&dir, &reference))
                    .await
                    .map_err(|e| DistError::Registry {
                        registry: "local".into(),
                        message: format!("the layout reader stopped: {e}"),
                    })?
            }
        }
    }
}

/// Why a tool could not be moved or was refused.
#[derive(Debug, thiserror::Error)]
pub enum DistError {
    /// A tag that can move to other content (`:latest`, `:1`, `:1.4`, none).
    #[error(
        "`{reference}` names a floating tag: name an exact version (e.g. `:1.4.2`) or a digest (`@sha256:…`)"
    )]
    FloatingTag {
        /// The reference as given.
        reference: String,
    },
    /// A reference that does not parse.
    #[error("`{reference}` is not a tool reference: {reason}")]
    InvalidReference {
        /// The reference as given.
        reference: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A digest that is not `sha256:` and 64 lower-case hex digits.
    #[error("`{digest}` is not a sha256 digest: write `sha256:` and 64 lower-case hex digits")]
    InvalidDigest {
        /// The digest as found.
        digest: String,
    },
    /// Bytes that do not hash to the digest that names them.
    #[error(
        "{what} does not match its digest (expected {expected}, got {actual}): the source serves other bytes than were published; do not use it and tell its operator"
    )]
    DigestMismatch {
        /// Which bytes (e.g. "component layer", "manifest").
        what: String,
        /// The digest they should have.
        expected: String,
        /// The digest they have.
        actual: String,
    },
    /// A manifest, blob or count over its cap, or a blob longer than its descriptor.
    #[error(
        "{what} is too large ({size} bytes, at most {limit}): refused so a hostile source cannot make us buffer without end"
    )]
    TooLarge {
        /// Which bytes.
        what: String,
        /// The size claimed or seen (at least).
        size: u64,
        /// The cap.
        limit: u64,
    },
    /// A manifest or index that is not the shape of an airlock tool.
    #[error(
        "{what} is not an airlock tool artifact: {reason}; publish it with `airlock tool push`"
    )]
    UnexpectedManifest {
        /// Which document.
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// A tag, digest or blob that the source does not have.
    #[error("{what} was not found: check the reference, or push the tool first")]
    NotFound {
        /// What was looked for.
        what: String,
    },
    /// The registry could not be reached or refused a request.
    #[error("registry {registry}: {message}")]
    Registry {
        /// The registry host.
        registry: String,
        /// What went wrong (never credentials).
        message: String,
    },
    /// A layout file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A layout path that is a symlink, not a regular file, or escapes `blobs/`.
    #[error("{path} is refused: {reason}; rebuild the layout with `airlock tool pull`")]
    UnsafePath {
        /// The path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Registry credentials half-given in the environment.
    #[error("{0}")]
    Credentials(String),
}
