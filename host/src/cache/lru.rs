//! Housekeeping of the compiled-component cache: what it holds, and
//! least-recently-used eviction down to a size cap, automatic after every
//! store and on demand (`airlock cache gc`).
//!
//! The cache directory is a wall, so eviction deletes only what is
//! provably an entry of ours, in a directory that passed the same checks a
//! load makes ([`super::open_dir`]): a name this cache writes, a regular
//! file (never a link, never followed), of this user, with one link. Every
//! removal is an `unlinkat` of a plain name relative to the opened
//! directory, so nothing outside it can be reached, and an entry changed
//! since it was listed (re-stored, or used by another host) is kept.
//! Another host reading an entry while it is evicted keeps its open file;
//! one opening it afterwards gets a miss and compiles.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rustix::fs::{AtFlags, FileType, Stat};

use super::{CACHE_DIR_ENV, Unsafe, open_dir};

/// The default cap on the entries' total size: 1 GiB holds some 25 entries
/// of Python or JavaScript tools (about 40 MiB compiled each) or thousands
/// of Rust ones (tens to hundreds of KiB), so a toolkit and its recent
/// rebuilds stay cached, and it is small next to the disk of any machine
/// that compiles them.
pub const DEFAULT_MAX_SIZE: u64 = 1 << 30;

/// The environment variable setting the cap (`512MiB`, `2GiB`, bytes).
pub const CACHE_MAX_SIZE_ENV: &str = "AIRLOCK_CACHE_MAX_SIZE";

/// How old an unfinished temporary file must be before it is taken for a
/// crashed writer's and removed: writing an entry takes well under a second.
const STALE_TEMP: Duration = Duration::from_secs(60 * 60);

/// The cap: `explicit` if given, else `$AIRLOCK_CACHE_MAX_SIZE`, else
/// [`DEFAULT_MAX_SIZE`].
pub fn max_size_setting(explicit: Option<u64>) -> Result<u64, MaxSizeError> {
    match explicit {
        Some(bytes) => Ok(bytes),
        None => max_size_from(std::env::var_os(CACHE_MAX_SIZE_ENV)),
    }
}

/// The cap `$AIRLOCK_CACHE_MAX_SIZE` = `value` sets (unset: the default).
fn max_size_from(value: Option<std::ffi::OsString>) -> Result<u64, MaxSizeError> {
    let Some(value) = value else {
        return Ok(DEFAULT_MAX_SIZE);
    };
    let text = value.to_string_lossy().into_owned();
    crate::units::parse_size(&text)
        .map(|n| n as u64)
        .map_err(|reason| MaxSizeError {
            value: text,
            reason,
        })
}

/// `$AIRLOCK_CACHE_MAX_SIZE` is not a size.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{CACHE_MAX_SIZE_ENV}={value:?} is not usable: {reason}, or unset it for the default")]
pub struct MaxSizeError {
    /// The variable's value.
    pub value: String,
    /// Why it is not a size (says how to write one).
    pub reason: String,
}

/// Why the cache could not be listed or cleaned.
#[derive(Debug, thiserror::Error)]
pub enum HousekeepingError {
    /// The directory failed the checks a load makes: nothing in it is
    /// trusted, so nothing in it is deleted.
    #[error(
        "the compiled-component cache {} is {problem}, so nothing in it was listed or deleted; make it a directory of your own with mode 700, or set {CACHE_DIR_ENV} to one",
        path.display()
    )]
    Refused {
        /// The directory.
        path: PathBuf,
        /// What is wrong with it.
        problem: Unsafe,
    },
    /// The directory could not be read.
    #[error("cannot list the compiled-component cache {}: {source}; check that it is readable", path.display())]
    Io {
        /// The directory.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
}

/// One compiled component in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    /// Its file name in the cache directory.
    pub file: String,
    /// The sha256 of the component it was compiled from (hex).
    pub component: String,
    /// The compatibility hash of the engine that compiled it (hex).
    pub engine: String,
    /// Its size in bytes.
    pub size: u64,
    /// When it was last stored or loaded (its mtime).
    pub last_use: SystemTime,
    /// Device and inode, to tell it from a file put in its place since.
    id: (u64, u64),
}

/// A file in the cache directory that eviction leaves alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Other {
    /// Its name (lossy UTF-8).
    pub file: String,
    /// Why it is not taken for an entry of ours.
    pub why: &'static str,
}

/// What a cache directory holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// The entries, least recently used first.
    pub entries: Vec<CacheEntry>,
    /// Files this cache wrote and no longer needs: a crashed writer's
    /// temporary file, an old layout's checksum file. Every eviction
    /// removes them.
    pub leftovers: Vec<CacheEntry>,
    /// Everything else, which is never deleted.
    pub others: Vec<Other>,
}

impl Listing {
    /// The entries' total size.
    pub fn total(&self) -> u64 {
        self.entries.iter().map(|e| e.size).sum()
    }
}

/// What an eviction removed and kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Freed {
    /// The entries removed, least recently used first.
    pub removed: Vec<CacheEntry>,
    /// Leftover files removed (see [`Listing::leftovers`]).
    pub leftovers: Vec<CacheEntry>,
    /// The entries kept, least recently used first.
    pub kept: Vec<CacheEntry>,
    /// Files left alone, not being ours.
    pub others: Vec<Other>,
}

impl Freed {
    /// The bytes freed, leftovers included.
    pub fn bytes(&self) -> u64 {
        self.removed
            .iter()
            .chain(&self.leftovers)
            .map(|e| e.size)
            .sum()
    }

    /// The size of what is kept.
    pub fn kept_bytes(&self) -> u64 {
        self.kept.iter().map(|e| e.size).sum()
    }
}

/// Lists the cache in `dir` without changing anything (a directory that
/// does not exist is an empty cache).
pub fn list(dir: &Path) -> Result<Listing, HousekeepingError> {
    match opened(dir)? {
        Some(fd) => scan(&fd).map_err(|source| io(dir, source)),
        None => Ok(Listing::default()),
    }
}

/// Evicts the least recently used entries of the cache in `dir` until the
/// rest take at most `max_size` bytes (`0`: all of them), and removes
/// leftovers. A refused directory is left as it is.
pub fn gc(dir: &Path, max_size: u64) -> Result<Freed, HousekeepingError> {
    match opened(dir)? {
        Some(fd) => {
            let listing = scan(&fd).map_err(|source| io(dir, source))?;
            Ok(remove_over(&fd, listing, max_size, None))
        }
        None => Ok(Freed::default()),
    }
}

/// After storing entry `keep`: evicts others, least recently used first,
/// until the cache fits in `max_size` (the new entry is kept even if it
/// alone is larger). Failures are ignored: the cache only stays larger.
pub(super) fn evict(dir: &OwnedFd, max_size: u64, keep: &str) {
    if let Ok(listing) = scan(dir) {
        remove_over(dir, listing, max_size, Some(keep));
    }
}

fn opened(dir: &Path) -> Result<Option<OwnedFd>, HousekeepingError> {
    open_dir(dir, false).map_err(|problem| HousekeepingError::Refused {
        path: dir.to_path_buf(),
        problem,
    })
}

fn io(dir: &Path, source: impl Into<std::io::Error>) -> HousekeepingError {
    HousekeepingError::Io {
        path: dir.to_path_buf(),
        source: source.into(),
    }
}

/// Which of `entries` (least recently used first) to remove so that the
/// rest fit in `max_size`, never `keep`: indexes, oldest first.
fn victims(entries: &[CacheEntry], max_size: u64, keep: Option<&str>) -> Vec<usize> {
    let mut total: u64 = entries.iter().map(|e| e.size).sum();
    let mut out = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        if total <= max_size {
            break;
        }
        if Some(e.file.as_str()) != keep {
            total -= e.size;
            out.push(i);
        }
    }
    out
}

fn remove_over(dir: &OwnedFd, listing: Listing, max_size: u64, keep: Option<&str>) -> Freed {
    let doomed = victims(&listing.entries, max_size, keep);
    let mut freed = Freed {
        others: listing.others,
        ..Freed::default()
    };
    for (i, entry) in listing.entries.into_iter().enumerate() {
        if doomed.contains(&i) && remove(dir, &entry) {
            freed.removed.push(entry);
        } else {
            freed.kept.push(entry);
        }
    }
    let now = SystemTime::now();
    for leftover in listing.leftovers {
        let old = now
            .duration_since(leftover.last_use)
            .is_ok_and(|age| age >= STALE_TEMP);
        let temp = leftover.file.starts_with(".tmp-");
        if (!temp || old) && remove(dir, &leftover) {
            freed.leftovers.push(leftover);
        }
    }
    freed
}

/// Unlinks `entry` if its name still holds the very file listed, unused
/// since; `false` if it was changed, already gone, or not removed.
fn remove(dir: &OwnedFd, entry: &CacheEntry) -> bool {
    let same = classify(dir, &entry.file).is_ok_and(|now| {
        now.id == entry.id && now.last_use == entry.last_use && now.size == entry.size
    });
    same && rustix::fs::unlinkat(dir, entry.file.as_str(), AtFlags::empty()).is_ok()
}

/// Reads the directory: every name is sorted into entries, leftovers and
/// others (see [`Listing`]).
fn scan(dir: &OwnedFd) -> rustix::io::Result<Listing> {
    let mut listing = Listing::default();
    for item in rustix::fs::Dir::read_from(dir)? {
        let item = item?;
        let name = item.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        let Ok(name) = std::str::from_utf8(name) else {
            listing.others.push(Other {
                file: String::from_utf8_lossy(name).into_owned(),
                why: "not a name this cache writes",
            });
            continue;
        };
        match (kind(name), classify(dir, name)) {
            (_, Err(why)) | (Kind::Foreign(why), _) => listing.others.push(Other {
                file: name.to_string(),
                why,
            }),
            (Kind::Entry, Ok(entry)) => listing.entries.push(entry),
            (Kind::Leftover, Ok(entry)) => listing.leftovers.push(entry),
        }
    }
    listing
        .entries
        .sort_by(|a, b| (a.last_use, &a.file).cmp(&(b.last_use, &b.file)));
    Ok(listing)
}

enum Kind {
    /// `<component sha256>-<engine hash>.cwasm`.
    Entry,
    /// `.tmp-<pid>-<random>` or `<component sha256>-<engine hash>.sha256`.
    Leftover,
    Foreign(&'static str),
}

/// What a name is, by the names this cache writes.
fn kind(name: &str) -> Kind {
    let hex = |s: &str, len: usize| {
        s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    let keyed = |stem: &str| {
        stem.split_once('-')
            .is_some_and(|(digest, engine)| hex(digest, 64) && hex(engine, 16))
    };
    let temp = |rest: &str| {
        rest.split_once('-').is_some_and(|(pid, random)| {
            !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()) && hex(random, 16)
        })
    };
    if name.strip_suffix(".cwasm").is_some_and(keyed) {
        Kind::Entry
    } else if name.strip_suffix(".sha256").is_some_and(keyed)
        || name.strip_prefix(".tmp-").is_some_and(temp)
    {
        Kind::Leftover
    } else {
        Kind::Foreign("not a name this cache writes")
    }
}

/// `name` as an entry if it is a file this cache could have written: a
/// regular file (not followed if a link) of this user with one link.
fn classify(dir: &OwnedFd, name: &str) -> Result<CacheEntry, &'static str> {
    let stat = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|_| "cannot be examined")?;
    match FileType::from_raw_mode(stat.st_mode) {
        FileType::RegularFile => {}
        FileType::Symlink => return Err("a symbolic link"),
        FileType::Directory => return Err("a directory"),
        _ => return Err("not a regular file"),
    }
    if stat.st_uid != rustix::process::geteuid().as_raw() {
        return Err("another user's");
    }
    if stat.st_nlink != 1 {
        return Err("a file with other links");
    }
    let (component, engine) = name
        .split_once('.')
        .and_then(|(stem, _)| stem.split_once('-'))
        .map(|(c, e)| (c.to_string(), e.to_string()))
        .unwrap_or_default();
    Ok(CacheEntry {
        file: name.to_string(),
        component,
        engine,
        size: u64::try_from(stat.st_size).unwrap_or(0),
        last_use: mtime(&stat),
        id: (stat.st_dev, stat.st_ino),
    })
}

/// A file's mtime, which the cache uses as its last use.
pub(super) fn mtime(stat: &Stat) -> SystemTime {
    let since = Duration::new(
        u64::try_from(stat.st_mtime).unwrap_or(0),
        u32::try_from(stat.st_mtime_nsec).unwrap_or(0),
    );
    SystemTime::UNIX_EPOCH + since
}

#[cfg(test)]
mod tests;
