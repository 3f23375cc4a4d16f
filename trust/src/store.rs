//! The local store a toolkit loads pinned tools from: content-addressed blobs
//! under `blobs/sha256/<hex>` (the blob layout of an OCI image-layout
//! directory), each re-hashed when read, never followed through a link.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use crate::TrustError;
use crate::statement::Digest;

/// A blob store rooted at a directory.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// The store at `dir` (created on first [`Store::put`]).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// Its directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the blob `digest` lives.
    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.dir.join("blobs").join("sha256").join(digest.hex())
    }

    /// Stores `bytes` (atomically: a temporary file renamed into place) and
    /// returns their digest.
    pub fn put(&self, bytes: &[u8]) -> Result<Digest, TrustError> {
        let digest = Digest::of(bytes);
        let path = self.path(&digest);
        let parent = path.parent().expect("a blob path has a parent");
        let io = |e: std::io::Error| TrustError::Store {
            path: path.clone(),
            reason: e.to_string(),
        };
        std::fs::create_dir_all(parent).map_err(io)?;
        let layout = self.dir.join("oci-layout");
        if !layout.exists() {
            std::fs::write(&layout, "{\"imageLayoutVersion\":\"1.0.0\"}\n").map_err(io)?;
        }
        let tmp = parent.join(format!(".{}.tmp{}", digest.hex(), std::process::id()));
        std::fs::write(&tmp, bytes).map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)?;
        Ok(digest)
    }

    /// Reads the blob `digest` (at most `max` bytes), refusing a link, a
    /// non-regular file or bytes that do not hash to `digest`.
    pub fn get(&self, digest: &Digest, max: u64) -> Result<Vec<u8>, TrustError> {
        let path = self.path(digest);
        let err = |reason: String| TrustError::Store {
            path: path.clone(),
            reason,
        };
        let meta = std::fs::symlink_metadata(&path).map_err(|e| {
            err(if e.kind() == std::io::ErrorKind::NotFound {
                "missing; run `airlock tool add` (or `airlock tool update`) to fetch it again"
                    .to_string()
            } else {
                e.to_string()
            })
        })?;
        if !meta.is_file() {
            return Err(err("not a regular file (a link or a directory)".into()));
        }
        if meta.len() > max {
            return Err(err(format!(
                "{} bytes is over the {max}-byte limit",
                meta.len()
            )));
        }
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        std::fs::File::open(&path)
            .and_then(|f| f.take(max + 1).read_to_end(&mut bytes))
            .map_err(|e| err(e.to_string()))?;
        let actual = Digest::of(&bytes);
        if &actual != digest {
            return Err(TrustError::DigestMismatch {
                what: format!("blob {}", path.display()),
                expected: digest.clone(),
                actual,
            });
        }
        Ok(bytes)
    }
}
