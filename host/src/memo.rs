//! What this process has already verified, so loading the same tool again
//! costs a `stat` instead of a read, a hash, a checksum and a deserialize.
//! Every entry was hashed, prechecked and (compiled form) checked against the
//! cache's key when first seen; a file whose identity changed is read again.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustix::fs::{FileType, Stat};
use wasmtime::component::Component;

use crate::cache::Digest32;
use crate::precheck::Shape;

/// Most entries of each map; past it the map starts over (a process loading
/// thousands of distinct components gains little from remembering them).
const MAX_ENTRIES: usize = 1024;

/// A file's identity: if any of it changes, the file may hold other bytes.
/// The change time cannot be set by a file's owner, so a rewrite in place
/// changes it even when size and modification time are forged back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileId {
    dev: u64,
    ino: u64,
    size: i64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl FileId {
    /// The identity in `stat`, when it is a regular file.
    pub(crate) fn of(stat: &Stat) -> Option<Self> {
        (FileType::from_raw_mode(stat.st_mode) == FileType::RegularFile).then_some(Self {
            dev: stat.st_dev,
            ino: stat.st_ino,
            size: stat.st_size,
            mtime: (stat.st_mtime, stat.st_mtime_nsec as i64),
            ctime: (stat.st_ctime, stat.st_ctime_nsec as i64),
        })
    }

    /// The identity of the file at `path` now.
    pub(crate) fn at(path: &Path) -> Option<Self> {
        Self::of(&rustix::fs::stat(path).ok()?)
    }
}

/// A component verified in this process: its shape and its compiled form.
#[derive(Clone)]
pub(crate) struct Verified {
    pub shape: Arc<Shape>,
    pub component: Component,
}

/// The process's memory of verified files and components.
#[derive(Default)]
pub(crate) struct Memo {
    files: Mutex<HashMap<PathBuf, (FileId, Digest32)>>,
    verified: Mutex<HashMap<Digest32, Verified>>,
}

impl Memo {
    /// The digest of the file at `path` when its identity is the one it had
    /// when it was read and hashed, and its component is verified.
    pub(crate) fn digest_of(&self, path: &Path) -> Option<(Digest32, Verified)> {
        let (id, digest) = *self.files.lock().ok()?.get(path)?;
        if FileId::at(path)? != id {
            return None;
        }
        Some((digest, self.verified(&digest)?))
    }

    /// What was verified of the component whose sha256 is `digest`.
    pub(crate) fn verified(&self, digest: &Digest32) -> Option<Verified> {
        self.verified.lock().ok()?.get(digest).cloned()
    }

    /// Remembers a verified component.
    pub(crate) fn remember(&self, digest: Digest32, verified: Verified) {
        if let Ok(mut map) = self.verified.lock() {
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
            map.insert(digest, verified);
        }
    }

    /// Remembers that the file at `path`, with identity `id` (taken before
    /// it was read), held the bytes whose sha256 is `digest`.
    pub(crate) fn remember_file(&self, path: &Path, id: FileId, digest: Digest32) {
        if let Ok(mut map) = self.files.lock() {
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
            map.insert(path.to_path_buf(), (id, digest));
        }
    }
}
