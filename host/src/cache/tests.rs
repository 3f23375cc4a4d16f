//! Unit tests of the cache's key file and tags (no component compiled):
//! what makes a key unusable, and what a tag binds.

use std::os::unix::fs::PermissionsExt;

use super::key::load_key;
use super::*;

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn a_missing_key_is_made_private_and_then_reused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new/dir/cache.key");
    let first = load_key(&path).expect("a key is made");
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(meta.len(), KEY_BYTES as u64);
    let parent = std::fs::metadata(path.parent().unwrap()).unwrap();
    assert_eq!(parent.permissions().mode() & 0o777, 0o700);
    let again = load_key(&path).expect("the key is read back");
    assert_eq!(first.expose_secret(), again.expose_secret());
    assert_ne!(first.expose_secret(), &[0u8; KEY_BYTES], "random bytes");
    let left: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
    assert_eq!(left.len(), 1, "no temporary file left: {left:?}");
}

#[test]
fn a_key_that_is_not_a_private_32_byte_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("cache.key");
    std::fs::write(&key, [1u8; KEY_BYTES]).unwrap();
    for (mode, problem) in [
        (0o640, Unsafe::OpenToOthers { mode: 0o640 }),
        (0o604, Unsafe::OpenToOthers { mode: 0o604 }),
        (0o620, Unsafe::OpenToOthers { mode: 0o620 }),
    ] {
        chmod(&key, mode);
        assert_eq!(load_key(&key).err(), Some(problem));
    }
    chmod(&key, 0o600);
    std::fs::write(&key, [1u8; 31]).unwrap();
    assert_eq!(load_key(&key).err(), Some(Unsafe::WrongLength(31)));

    let fifo = dir.path().join("fifo.key");
    crate::files::mkfifo(&fifo);
    chmod(&fifo, 0o600);
    assert_eq!(
        load_key(&fifo).err(),
        Some(Unsafe::WrongKind("not a regular file")),
        "a FIFO key neither blocks nor is read"
    );

    let link = dir.path().join("link.key");
    std::os::unix::fs::symlink(&key, &link).unwrap();
    assert_eq!(load_key(&link).err(), Some(Unsafe::Symlink));
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink(),
        "a linked key is not replaced by a new one"
    );
}

#[test]
fn a_tag_binds_the_key_the_component_and_the_engine() {
    let key = SecretBox::init_with_mut(|k: &mut [u8; KEY_BYTES]| k.fill(7));
    let other_key = SecretBox::init_with_mut(|k: &mut [u8; KEY_BYTES]| k.fill(8));
    let (digest, engine, code) = ([1u8; 32], 42u64, b"compiled code".as_slice());
    let entry = |key: &SecretBox<[u8; KEY_BYTES]>, digest: &Digest32, engine: u64| {
        let t = tag(key, digest, engine, code);
        [ENTRY_MAGIC.as_slice(), t.as_bytes(), code].concat()
    };
    let good = entry(&key, &digest, engine);
    assert_eq!(verified(&key, &digest, engine, &good), Some(code));
    for (what, bytes) in [
        ("another key", entry(&other_key, &digest, engine)),
        ("another component", entry(&key, &[2u8; 32], engine)),
        ("another engine", entry(&key, &digest, engine + 1)),
        ("no magic", good[ENTRY_MAGIC.len()..].to_vec()),
        ("cut in the tag", good[..ENTRY_MAGIC.len() + 8].to_vec()),
        ("one more byte", [good.as_slice(), b"x"].concat()),
    ] {
        assert_eq!(verified(&key, &digest, engine, &bytes), None, "{what}");
    }
}

#[test]
fn the_entry_cap_grows_with_the_component() {
    assert_eq!(entry_cap(0), 64 << 20);
    assert_eq!(entry_cap(1 << 20), (64 << 20) + (16 << 20));
    assert_eq!(entry_cap(usize::MAX), u64::MAX);
}

/// A hit records its use in the entry's mtime (atime is not kept on
/// `noatime`/`relatime` mounts), at most once a minute.
#[test]
fn a_hit_on_a_stale_entry_touches_its_mtime_and_a_fresh_one_is_left() {
    use std::time::{Duration, SystemTime};
    let dir = tempfile::tempdir().unwrap();
    chmod(dir.path(), 0o700);
    let fd = open_dir(dir.path(), false).unwrap().unwrap();
    let path = dir.path().join("entry");
    std::fs::write(&path, b"bytes").unwrap();
    chmod(&path, 0o600);
    let hour_ago = SystemTime::now() - Duration::from_secs(3600);
    let set = |t| {
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(t)
            .unwrap()
    };
    let mtime = || std::fs::metadata(&path).unwrap().modified().unwrap();
    set(hour_ago);
    let Entry::Read(bytes, Some(file)) = read_entry(&fd, "entry", 100) else {
        panic!("a stale entry is read with its file kept to touch");
    };
    assert_eq!(bytes, b"bytes");
    assert_eq!(mtime(), hour_ago, "reading alone does not touch");
    touch(&file);
    let touched = mtime();
    assert!(
        touched > hour_ago + Duration::from_secs(3000),
        "{touched:?}"
    );

    let Entry::Read(_, fresh) = read_entry(&fd, "entry", 100) else {
        panic!("read again");
    };
    assert!(fresh.is_none(), "used a moment ago: no second write");
}
