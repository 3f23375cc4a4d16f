//! The cache key: 32 random bytes in a file private to the user, kept
//! outside the cache directory, made on first use. A key file that is a
//! link, another user's, open to others or of the wrong length is refused.

use std::io::Write;
use std::path::Path;

use rustix::fs::{FileType, OFlags};
use secrecy::SecretBox;

use super::{KEY_BYTES, Unsafe, mkdir_private, private};
use crate::files::{FileError, read_open};

/// Reads the key, making it first (32 random bytes, mode 600) if it does
/// not exist.
pub(super) fn load_key(path: &Path) -> Result<SecretBox<[u8; KEY_BYTES]>, Unsafe> {
    match read_key(path) {
        Err(Unsafe::Io(_)) if !exists_no_follow(path) => {
            make_key(path).map_err(|e| Unsafe::Io(e.to_string()))?;
            read_key(path)
        }
        other => other,
    }
}

fn exists_no_follow(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

fn read_key(path: &Path) -> Result<SecretBox<[u8; KEY_BYTES]>, Unsafe> {
    let fd = crate::files::open_nonblocking(path, OFlags::NOFOLLOW).map_err(|e| {
        if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
            Unsafe::Symlink
        } else {
            Unsafe::Io(e.to_string())
        }
    })?;
    let stat = private(&fd, 0o077)?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
        return Err(Unsafe::WrongKind("not a regular file"));
    }
    if stat.st_size != KEY_BYTES as i64 {
        return Err(Unsafe::WrongLength(
            u64::try_from(stat.st_size).unwrap_or(0),
        ));
    }
    let mut bytes = read_open(fd, KEY_BYTES as u64, "the cache key").map_err(|e| match e {
        FileError::NotRegular { .. } => Unsafe::WrongKind("not a regular file"),
        FileError::TooLarge { .. } => Unsafe::WrongLength(KEY_BYTES as u64 + 1),
        FileError::Io(e) => Unsafe::Io(e.to_string()),
    })?;
    let key = SecretBox::init_with_mut(|k: &mut [u8; KEY_BYTES]| {
        let n = bytes.len().min(KEY_BYTES);
        k[..n].copy_from_slice(&bytes[..n]);
    });
    let len = bytes.len();
    zeroize::Zeroize::zeroize(&mut bytes);
    if len != KEY_BYTES {
        return Err(Unsafe::WrongLength(len as u64));
    }
    Ok(key)
}

/// Writes a new key to a private temporary file and links it into place,
/// so a concurrent process either finds no key or a whole one.
fn make_key(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let parent = path.parent().unwrap_or(Path::new("."));
    mkdir_private(parent)?;
    let tmp = parent.join(format!(
        ".cache.key-{}-{:016x}",
        std::process::id(),
        rand::random::<u64>()
    ));
    let mut key = zeroize::Zeroizing::new([0u8; KEY_BYTES]);
    getrandom::fill(key.as_mut_slice()).map_err(|e| std::io::Error::other(e.to_string()))?;
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(OFlags::NOFOLLOW.bits() as i32)
        .open(&tmp)
        .and_then(|mut f| f.write_all(key.as_slice()));
    let linked = written.and_then(|()| match std::fs::hard_link(&tmp, path) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        other => other,
    });
    let _ = std::fs::remove_file(&tmp);
    linked
}
