//! The compiled-component cache: components are compiled once with Cranelift
//! and kept on disk keyed by the component's sha256 and the engine's
//! compatibility hash; later loads read the compiled file instead of compiling.
//!
//! Deserializing compiled code runs it, so an entry is trusted only when
//! (1) the directory is the running user's own, not a symbolic link and not
//! writable by group or others (else the cache is not used at all: components
//! are compiled in memory and [`ComponentCache::take_warning`] says why once);
//! (2) the entry is a regular file of the same user, not group/other
//! writable, under [`entry_cap`], opened without following links or blocking;
//! (3) its tag, a keyed BLAKE3 hash under a per-user 32-byte key kept 0600
//! outside the cache directory, covers the component digest, the engine hash
//! and the compiled bytes (BLAKE3 is a MAC when keyed, and hashes the
//! compiled code about 4 times faster than HMAC-SHA256 here). The entry is
//! read once; the tag is checked on that in-memory copy, and those same
//! bytes are deserialized.
//!
//! The cache is kept under a size cap by least-recently-used eviction
//! ([`lru`]): a verified hit refreshes its entry's mtime, and storing an
//! entry evicts the oldest others until the cache fits.

mod key;
pub mod lru;

pub use lru::{
    CACHE_MAX_SIZE_ENV, CacheEntry, DEFAULT_MAX_SIZE, Freed, HousekeepingError, Listing,
    MaxSizeError, Other,
};

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use rustix::fs::{AtFlags, Mode, OFlags, Timespec, Timestamps};
use secrecy::{ExposeSecret, SecretBox};
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::files::{FileError, read_open};

/// A component's identity: the sha256 of its bytes.
pub type Digest32 = [u8; 32];

/// The environment variable naming the cache directory.
pub const CACHE_DIR_ENV: &str = "AIRLOCK_CACHE";
/// The environment variable naming the cache key file.
pub const CACHE_KEY_ENV: &str = "AIRLOCK_CACHE_KEY";
/// The first bytes of an entry; also the domain of its tag.
/// (v2 entries, tagged with HMAC-SHA256, are compiled again and replaced.)
pub const ENTRY_MAGIC: &[u8; 16] = b"airlock-cwasm-v3";
/// The length of an entry's tag (keyed BLAKE3), after [`ENTRY_MAGIC`].
pub const TAG_BYTES: usize = 32;
/// The length of the cache key.
pub const KEY_BYTES: usize = 32;

/// The largest entry read for a component of `component_len` bytes:
/// 64 MiB plus 16 times the component (compiled code is a few times larger
/// than the wasm it comes from).
pub fn entry_cap(component_len: usize) -> u64 {
    (64u64 << 20).saturating_add((component_len as u64).saturating_mul(16))
}

/// Where compiled components live.
#[derive(Debug)]
pub struct ComponentCache {
    dir: Option<PathBuf>,
    key_path: Option<PathBuf>,
    /// The engine's compatibility hash, computed on first use: a cache
    /// serves the one engine of its host.
    engine_hash: OnceLock<u64>,
    /// The size the entries may take together (see [`lru`]).
    max_size: u64,
    /// The opened directory and the key, or why the cache is not used.
    open: OnceLock<Result<Opened, CacheWarning>>,
    warned: AtomicBool,
}

struct Opened {
    dir: OwnedFd,
    key: SecretBox<[u8; KEY_BYTES]>,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened")
            .field("dir", &self.dir)
            .field("key", &"[redacted]")
            .finish()
    }
}

/// What a load did, for callers that report or measure it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// The compiled file was found, verified and loaded.
    Hit,
    /// Compiled now (and stored when the cache is writable).
    Compiled,
    /// An entry existed but was not trusted (wrong tag, not a private regular
    /// file, too large); it was recompiled and replaced.
    Replaced,
    /// The cache directory or key was refused (see [`CacheWarning`]):
    /// compiled in memory, nothing read from or written to the cache.
    Refused,
}

/// Why the cache is not used: the components are compiled in memory instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CacheWarning {
    /// The cache directory is not safe to load native code from.
    #[error(
        "not using the compiled-component cache {}: it is {problem}; compiling in memory instead (make it a directory of your own with mode 700, or set {CACHE_DIR_ENV} to one)",
        path.display()
    )]
    Dir {
        /// The directory.
        path: PathBuf,
        /// What is wrong with it.
        problem: Unsafe,
    },
    /// The key file is not private to this user.
    #[error(
        "not using the compiled-component cache: its key {} is {problem}; compiling in memory instead (remove it to have a new key made, or set {CACHE_KEY_ENV} to another path)",
        path.display()
    )]
    Key {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        problem: Unsafe,
    },
    /// The key file lies inside the cache directory, where a writer of the
    /// cache could replace it.
    #[error(
        "not using the compiled-component cache: its key {} is inside the cache directory; set {CACHE_KEY_ENV} to a path outside it",
        path.display()
    )]
    KeyInsideCache {
        /// The key file.
        path: PathBuf,
    },
    /// No place for the key is known (no home directory).
    #[error(
        "not using the compiled-component cache: there is no place for its key; set {CACHE_KEY_ENV} to a file path"
    )]
    NoKeyPath,
}

/// What makes a cache directory or key file unsafe.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unsafe {
    /// A symbolic link (its target could change under the host).
    #[error("a symbolic link")]
    Symlink,
    /// Owned by another user.
    #[error("owned by uid {owner}, not by this user (uid {user})")]
    NotOwned {
        /// The owner.
        owner: u32,
        /// The running (effective) user.
        user: u32,
    },
    /// Writable by group or others (a directory), or readable or writable
    /// by them (the key).
    #[error("open to group or others (mode {mode:03o})")]
    OpenToOthers {
        /// The permission bits.
        mode: u32,
    },
    /// Not a directory (the cache) or not a regular file (the key).
    #[error("{0}")]
    WrongKind(&'static str),
    /// A key file of the wrong length.
    #[error("{0} bytes long, not {KEY_BYTES}")]
    WrongLength(u64),
    /// It could not be created, opened or read.
    #[error("unusable ({0})")]
    Io(String),
}

impl From<rustix::io::Errno> for Unsafe {
    fn from(e: rustix::io::Errno) -> Self {
        if e == rustix::io::Errno::LOOP {
            Unsafe::Symlink
        } else {
            Unsafe::Io(std::io::Error::from(e).to_string())
        }
    }
}

impl ComponentCache {
    /// A cache in `dir`, or in `$AIRLOCK_CACHE`, or in the user's cache dir,
    /// with its key at `key`, or `$AIRLOCK_CACHE_KEY`, or `cache.key` in the
    /// user's local data dir. No directory anywhere means compile every time.
    pub fn new(dir: Option<PathBuf>, key: Option<PathBuf>) -> Self {
        let dirs = || directories::ProjectDirs::from("dev", "airlock", "airlock");
        let dir = dir
            .or_else(|| std::env::var_os(CACHE_DIR_ENV).map(PathBuf::from))
            .or_else(|| dirs().map(|d| d.cache_dir().join("components")));
        let key_path = key
            .or_else(|| std::env::var_os(CACHE_KEY_ENV).map(PathBuf::from))
            .or_else(|| dirs().map(|d| d.data_local_dir().join("cache.key")));
        Self {
            dir,
            key_path,
            engine_hash: OnceLock::new(),
            max_size: DEFAULT_MAX_SIZE,
            open: OnceLock::new(),
            warned: AtomicBool::new(false),
        }
    }

    /// The same cache with its entries capped at `bytes` together
    /// (default [`DEFAULT_MAX_SIZE`]; see [`lru::max_size_setting`]).
    pub fn with_max_size(mut self, bytes: u64) -> Self {
        self.max_size = bytes;
        self
    }

    /// The size cap of the cache's entries together.
    pub fn max_size(&self) -> u64 {
        self.max_size
    }

    /// A cache that never touches the disk.
    pub fn disabled() -> Self {
        Self {
            dir: None,
            key_path: None,
            engine_hash: OnceLock::new(),
            max_size: DEFAULT_MAX_SIZE,
            open: OnceLock::new(),
            warned: AtomicBool::new(false),
        }
    }

    /// The cache directory, if any.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The key file, if any.
    pub fn key_path(&self) -> Option<&Path> {
        self.key_path.as_deref()
    }

    /// Why the cache is not used, if it was refused (known after the first load).
    pub fn warning(&self) -> Option<&CacheWarning> {
        self.open.get().and_then(|o| o.as_ref().err())
    }

    /// [`Self::warning`], but only the first time it is asked for: what a
    /// command line prints once however many components it loads.
    pub fn take_warning(&self) -> Option<CacheWarning> {
        let w = self.warning()?;
        (!self.warned.swap(true, Ordering::Relaxed)).then(|| w.clone())
    }

    /// What a load served from the process's memory reports: a hit, unless
    /// the cache is refused (then the component was compiled in memory).
    pub fn remembered_outcome(&self) -> CacheOutcome {
        match self.open.get() {
            Some(Err(_)) => CacheOutcome::Refused,
            _ if self.dir.is_none() => CacheOutcome::Compiled,
            _ => CacheOutcome::Hit,
        }
    }

    /// Compiles `bytes` or loads its verified compiled form.
    pub fn load(
        &self,
        engine: &Engine,
        bytes: &[u8],
    ) -> wasmtime::Result<(Component, Digest32, CacheOutcome)> {
        let digest: Digest32 = Sha256::digest(bytes).into();
        let (component, outcome) = self.load_hashed(engine, bytes, digest)?;
        Ok((component, digest, outcome))
    }

    /// [`Self::load`] of bytes whose sha256 the caller already computed
    /// (the host hashes once, to check a pinned digest and key the cache).
    pub fn load_hashed(
        &self,
        engine: &Engine,
        bytes: &[u8],
        digest: Digest32,
    ) -> wasmtime::Result<(Component, CacheOutcome)> {
        let Some(dir) = &self.dir else {
            return Ok((Component::new(engine, bytes)?, CacheOutcome::Compiled));
        };
        let opened = match self
            .open
            .get_or_init(|| open(dir, self.key_path.as_deref()))
        {
            Ok(opened) => opened,
            Err(_) => {
                return Ok((Component::new(engine, bytes)?, CacheOutcome::Refused));
            }
        };
        let engine_hash = self.engine_hash(engine);
        let name = format!("{}-{engine_hash:016x}.cwasm", hex::encode(digest));
        let existed = match read_entry(&opened.dir, &name, entry_cap(bytes.len())) {
            Entry::Missing => false,
            Entry::Untrusted => true,
            Entry::Read(entry, stale) => {
                if let Some(compiled) = verified(&opened.key, &digest, engine_hash, &entry) {
                    if let Some(fd) = stale {
                        touch(&fd);
                    }
                    // SAFETY: `compiled` is part of the one in-memory copy of
                    // the entry whose tag was just checked under this user's
                    // private key: bytes this cache wrote for this component
                    // and this engine. wasmtime re-checks the header and the
                    // engine settings too.
                    #[allow(unsafe_code)]
                    if let Ok(component) = unsafe { Component::deserialize(engine, compiled) } {
                        return Ok((component, CacheOutcome::Hit));
                    }
                }
                true
            }
        };
        let compiled = engine.precompile_component(bytes)?;
        // SAFETY: `compiled` was produced just now by this engine.
        #[allow(unsafe_code)]
        let component = unsafe { Component::deserialize(engine, &compiled)? };
        // A cache that cannot be written is not an error: the job still runs.
        if store(opened, &digest, engine_hash, &name, &compiled).is_ok() {
            lru::evict(&opened.dir, self.max_size, &name);
        }
        let outcome = if existed {
            CacheOutcome::Replaced
        } else {
            CacheOutcome::Compiled
        };
        Ok((component, outcome))
    }

    fn engine_hash(&self, engine: &Engine) -> u64 {
        *self.engine_hash.get_or_init(|| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            engine.precompile_compatibility_hash().hash(&mut h);
            h.finish()
        })
    }
}

/// The tag that binds compiled bytes to this user's key, the component they
/// came from and the engine that made them.
fn tag(
    key: &SecretBox<[u8; KEY_BYTES]>,
    digest: &Digest32,
    engine_hash: u64,
    compiled: &[u8],
) -> blake3::Hash {
    let mut mac = blake3::Hasher::new_keyed(key.expose_secret());
    mac.update(ENTRY_MAGIC);
    mac.update(digest);
    mac.update(&engine_hash.to_le_bytes());
    mac.update(compiled);
    mac.finalize()
}

/// The compiled bytes of `entry` if its tag verifies.
fn verified<'e>(
    key: &SecretBox<[u8; KEY_BYTES]>,
    digest: &Digest32,
    engine_hash: u64,
    entry: &'e [u8],
) -> Option<&'e [u8]> {
    let rest = entry.strip_prefix(ENTRY_MAGIC.as_slice())?;
    if rest.len() < TAG_BYTES {
        return None;
    }
    let (tag_bytes, compiled) = rest.split_at(TAG_BYTES);
    let tag_bytes: [u8; TAG_BYTES] = tag_bytes.try_into().ok()?;
    // `blake3::Hash` compares in constant time.
    (tag(key, digest, engine_hash, compiled) == blake3::Hash::from_bytes(tag_bytes))
        .then_some(compiled)
}

enum Entry {
    Missing,
    /// There, but not a private regular file under the cap.
    Untrusted,
    /// Its bytes, and the file itself when its last use is older than
    /// [`TOUCH_AFTER`] (to be touched if the bytes verify).
    Read(Vec<u8>, Option<OwnedFd>),
}

/// How stale an entry's mtime (its last use) may get before a hit
/// refreshes it: LRU order needs no finer grain, and a host loading one
/// component over and over writes its inode once a minute at most.
const TOUCH_AFTER: Duration = Duration::from_secs(60);

/// Reads entry `name` once: no link followed, no blocking open, and only a
/// regular file of this user, not writable by group or others, under `cap`.
fn read_entry(dir: &OwnedFd, name: &str, cap: u64) -> Entry {
    let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOFOLLOW;
    let fd = match rustix::fs::openat(dir, name, flags | OFlags::NOCTTY, Mode::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Entry::Missing,
        Err(_) => return Entry::Untrusted,
    };
    let Ok(stat) = private(&fd, 0o022) else {
        return Entry::Untrusted;
    };
    let used = lru::mtime(&stat);
    let stale = SystemTime::now()
        .duration_since(used)
        .is_ok_and(|age| age >= TOUCH_AFTER);
    let keep = if stale { fd.try_clone().ok() } else { None };
    match read_open(fd, cap, "a compiled-cache entry") {
        Ok(bytes) => Entry::Read(bytes, keep),
        Err(FileError::NotRegular { .. } | FileError::TooLarge { .. } | FileError::Io(_)) => {
            Entry::Untrusted
        }
    }
}

/// Records a use of an entry: its mtime becomes now (its atime is left
/// alone). mtime, not atime, because `noatime` and `relatime` mounts do not
/// keep atime. A failure only makes the entry look older.
fn touch(fd: &OwnedFd) {
    let omit = Timespec {
        tv_sec: 0,
        tv_nsec: rustix::fs::UTIME_OMIT,
    };
    let now = Timespec {
        tv_sec: 0,
        tv_nsec: rustix::fs::UTIME_NOW,
    };
    let _ = rustix::fs::futimens(
        fd,
        &Timestamps {
            last_access: omit,
            last_modification: now,
        },
    );
}

/// Checks that `fd` belongs to the running user and has none of `forbidden`
/// permission bits.
fn private(fd: &OwnedFd, forbidden: u32) -> Result<rustix::fs::Stat, Unsafe> {
    let stat = rustix::fs::fstat(fd)?;
    let user = rustix::process::geteuid().as_raw();
    if stat.st_uid != user {
        return Err(Unsafe::NotOwned {
            owner: stat.st_uid,
            user,
        });
    }
    let mode = stat.st_mode & 0o7777;
    if mode & forbidden != 0 {
        return Err(Unsafe::OpenToOthers { mode });
    }
    Ok(stat)
}

/// Opens (creating if needed, mode 700) the cache directory and loads (or
/// makes) the key, refusing either if it is not private to this user.
fn open(dir: &Path, key_path: Option<&Path>) -> Result<Opened, CacheWarning> {
    let dir_warning = |problem| CacheWarning::Dir {
        path: dir.to_path_buf(),
        problem,
    };
    let key_path = key_path.ok_or(CacheWarning::NoKeyPath)?;
    let fd = open_dir(dir, true)
        .map_err(dir_warning)?
        .ok_or_else(|| dir_warning(Unsafe::Io("it vanished as it was made".into())))?;
    if inside(key_path, dir) {
        return Err(CacheWarning::KeyInsideCache {
            path: key_path.to_path_buf(),
        });
    }
    let key = key::load_key(key_path).map_err(|problem| CacheWarning::Key {
        path: key_path.to_path_buf(),
        problem,
    })?;
    Ok(Opened { dir: fd, key })
}

/// Opens the cache directory (made first, mode 700, when `create`), only if
/// it is a directory of this user's, not a link, not writable by group or
/// others. `None`: it does not exist (and `create` was false).
fn open_dir(dir: &Path, create: bool) -> Result<Option<OwnedFd>, Unsafe> {
    let is_link = || std::fs::symlink_metadata(dir).is_ok_and(|m| m.file_type().is_symlink());
    if is_link() {
        return Err(Unsafe::Symlink);
    }
    // Missing parents are made private too; an existing directory keeps its
    // mode and is checked below.
    if create {
        mkdir_private(dir).map_err(|e| Unsafe::Io(e.to_string()))?;
    }
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = match rustix::fs::open(dir, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) if !create => return Ok(None),
        // With O_DIRECTORY, Linux answers a link with ENOTDIR, not ELOOP.
        Err(_) if is_link() => return Err(Unsafe::Symlink),
        Err(rustix::io::Errno::NOTDIR) => return Err(Unsafe::WrongKind("not a directory")),
        Err(e) => return Err(e.into()),
    };
    private(&fd, 0o022)?;
    Ok(Some(fd))
}

fn mkdir_private(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Whether `path` lies inside `dir` (both resolved as far as they exist).
fn inside(path: &Path, dir: &Path) -> bool {
    let resolve = |p: &Path| -> PathBuf {
        match (p.parent(), p.file_name()) {
            (Some(parent), Some(name)) => parent
                .canonicalize()
                .map(|c| c.join(name))
                .unwrap_or_else(|_| p.to_path_buf()),
            _ => p.to_path_buf(),
        }
    };
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    resolve(path).starts_with(dir)
}

/// Writes an entry: a new private temporary file (never following a link,
/// never reusing a name) renamed over `name`.
fn store(
    opened: &Opened,
    digest: &Digest32,
    engine_hash: u64,
    name: &str,
    compiled: &[u8],
) -> std::io::Result<()> {
    let tmp = format!(".tmp-{}-{:016x}", std::process::id(), rand::random::<u64>());
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(&opened.dir, &tmp, flags, Mode::from_raw_mode(0o600))?;
    let tag = tag(&opened.key, digest, engine_hash, compiled);
    let mut file = std::fs::File::from(fd);
    let written = file
        .write_all(ENTRY_MAGIC)
        .and_then(|()| file.write_all(tag.as_bytes()))
        .and_then(|()| file.write_all(compiled));
    let renamed =
        written.and_then(|()| Ok(rustix::fs::renameat(&opened.dir, &tmp, &opened.dir, name)?));
    if renamed.is_err() {
        let _ = rustix::fs::unlinkat(&opened.dir, &tmp, AtFlags::empty());
    } else if let Some(stem) = name.strip_suffix(".cwasm") {
        // The unkeyed checksum file of the old layout means nothing now.
        let _ = rustix::fs::unlinkat(&opened.dir, format!("{stem}.sha256"), AtFlags::empty());
    }
    renamed
}

#[cfg(test)]
mod tests;
