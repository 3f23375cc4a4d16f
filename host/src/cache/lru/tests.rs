//! Unit tests of LRU eviction (no component compiled): the order and the
//! cap, what counts as an entry of ours, and that a planted link, foreign
//! file or refused directory is never deleted.

use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime};

use super::*;

const ENGINE: &str = "00112233445566aa";

/// An entry's file name for component number `n`.
fn name(n: u8) -> String {
    format!("{}-{ENGINE}.cwasm", hex::encode([n; 32]))
}

/// A private cache directory.
fn cache_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    dir
}

fn hours_ago(h: u64) -> SystemTime {
    SystemTime::now() - Duration::from_secs(h * 3600)
}

/// Writes `dir/file` with `size` bytes, last used at `when`.
fn plant(dir: &Path, file: &str, size: usize, when: SystemTime) {
    let path = dir.join(file);
    std::fs::write(&path, vec![b'x'; size]).unwrap();
    File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(when)
        .unwrap();
}

fn names(entries: &[CacheEntry]) -> Vec<&str> {
    entries.iter().map(|e| e.file.as_str()).collect()
}

fn on_disk(dir: &Path) -> Vec<String> {
    let mut l: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    l.sort();
    l
}

fn entry(file: &str, size: u64, age_h: u64) -> CacheEntry {
    CacheEntry {
        file: file.into(),
        component: String::new(),
        engine: String::new(),
        size,
        last_use: hours_ago(age_h),
        id: (0, 0),
    }
}

#[test]
fn victims_are_the_least_recently_used_until_the_rest_fit() {
    // Oldest first, as `scan` sorts them.
    let entries = [entry("a", 10, 3), entry("b", 20, 2), entry("c", 30, 1)];
    assert_eq!(victims(&entries, 60, None), Vec::<usize>::new(), "fits");
    assert_eq!(victims(&entries, 59, None), [0], "one byte over");
    assert_eq!(victims(&entries, 35, None), [0, 1]);
    assert_eq!(victims(&entries, 0, None), [0, 1, 2], "0 empties it");
    assert_eq!(
        victims(&entries, 35, Some("a")),
        [1, 2],
        "the entry just stored is kept, however old"
    );
    assert_eq!(
        victims(&entries, 0, Some("c")),
        [0, 1],
        "a new entry larger than the cap stays alone"
    );
}

#[test]
fn a_scan_sorts_entries_by_last_use_and_tells_ours_from_the_rest() {
    let dir = cache_dir();
    let d = dir.path();
    plant(d, &name(1), 100, hours_ago(1));
    plant(d, &name(2), 200, hours_ago(5));
    plant(d, &name(3), 300, hours_ago(3));
    plant(d, "notes.txt", 10, hours_ago(9));
    plant(d, &name(4).replace(".cwasm", ".sha256"), 64, hours_ago(9));
    plant(d, ".tmp-123-0123456789abcdef", 50, hours_ago(9));
    std::fs::create_dir(d.join(name(5))).unwrap();
    std::os::unix::fs::symlink(d.join(name(1)), d.join(name(6))).unwrap();
    std::fs::hard_link(d.join(name(1)), d.join(name(7))).unwrap();
    plant(d, &name(8).to_uppercase(), 10, hours_ago(9));

    let fd = open_dir(d, false).unwrap().unwrap();
    let listing = scan(&fd).unwrap();
    assert_eq!(names(&listing.entries), [name(2), name(3)], "oldest first");
    assert_eq!(listing.entries[0].size, 200);
    assert_eq!(listing.entries[0].component, hex::encode([2u8; 32]));
    assert_eq!(listing.entries[0].engine, ENGINE);
    assert_eq!(listing.total(), 500);
    let mut leftovers = names(&listing.leftovers);
    leftovers.sort();
    assert_eq!(
        leftovers,
        [
            ".tmp-123-0123456789abcdef",
            &name(4).replace(".cwasm", ".sha256")
        ]
    );
    let mut others: Vec<(String, &str)> = listing
        .others
        .iter()
        .map(|o| (o.file.clone(), o.why))
        .collect();
    others.sort();
    let mut want = vec![
        (name(1), "a file with other links"),
        (name(5), "a directory"),
        (name(6), "a symbolic link"),
        (name(7), "a file with other links"),
        (name(8).to_uppercase(), "not a name this cache writes"),
        ("notes.txt".to_string(), "not a name this cache writes"),
    ];
    want.sort();
    assert_eq!(others, want);
}

#[test]
fn gc_evicts_the_oldest_down_to_the_cap_and_reports_it() {
    let dir = cache_dir();
    let d = dir.path();
    plant(d, &name(1), 100, hours_ago(1));
    plant(d, &name(2), 200, hours_ago(5));
    plant(d, &name(3), 300, hours_ago(3));
    let freed = gc(d, 450).unwrap();
    assert_eq!(names(&freed.removed), [name(2)]);
    assert_eq!(names(&freed.kept), [name(3), name(1)]);
    assert_eq!((freed.bytes(), freed.kept_bytes()), (200, 400));
    assert_eq!(on_disk(d), [name(1), name(3)]);

    let again = gc(d, 450).unwrap();
    assert!(again.removed.is_empty(), "already within the cap");
    let all = gc(d, 0).unwrap();
    assert_eq!(names(&all.removed), [name(3), name(1)]);
    assert!(on_disk(d).is_empty());
}

#[test]
fn eviction_removes_a_crashed_writers_temp_file_but_not_a_live_one() {
    let dir = cache_dir();
    let d = dir.path();
    let (old_tmp, new_tmp) = (".tmp-1-aaaaaaaaaaaaaaaa", ".tmp-2-bbbbbbbbbbbbbbbb");
    let checksum = name(4).replace(".cwasm", ".sha256");
    plant(d, old_tmp, 1000, hours_ago(2));
    plant(d, new_tmp, 1000, SystemTime::now());
    plant(d, &checksum, 64, SystemTime::now());
    plant(d, &name(1), 10, hours_ago(1));
    let freed = gc(d, u64::MAX).unwrap();
    assert!(freed.removed.is_empty());
    let mut gone = names(&freed.leftovers);
    gone.sort();
    assert_eq!(gone, [old_tmp, checksum.as_str()]);
    assert_eq!(freed.bytes(), 1064);
    assert_eq!(on_disk(d), [new_tmp.to_string(), name(1)]);
}

/// A writer of the directory plants a link named like an entry (to a file
/// outside it), a hard link to an outside file, a foreign file and a
/// directory: emptying the cache deletes none of them and no target.
#[test]
fn gc_never_deletes_or_follows_what_is_not_an_entry_of_ours() {
    let outside = tempfile::tempdir().unwrap();
    let precious = outside.path().join("precious");
    std::fs::write(&precious, b"keep me").unwrap();
    let linked = outside.path().join("linked");
    std::fs::write(&linked, b"keep me too").unwrap();
    let dir = cache_dir();
    let d = dir.path();
    std::os::unix::fs::symlink(&precious, d.join(name(1))).unwrap();
    std::os::unix::fs::symlink(outside.path(), d.join(name(2))).unwrap();
    let same_fs = std::fs::hard_link(&linked, d.join(name(3))).is_ok();
    plant(d, "their-file", 10, hours_ago(100));
    std::fs::create_dir(d.join(name(4))).unwrap();
    plant(&d.join(name(4)), &name(5), 10, hours_ago(100));
    plant(d, &name(6), 10, hours_ago(100));

    let freed = gc(d, 0).unwrap();
    assert_eq!(names(&freed.removed), [name(6)], "only the real entry");
    let mut want = vec![name(1), name(2), name(4), "their-file".to_string()];
    if same_fs {
        want.push(name(3));
    }
    want.sort();
    assert_eq!(on_disk(d), want);
    assert_eq!(std::fs::read(&precious).unwrap(), b"keep me");
    assert_eq!(std::fs::read(&linked).unwrap(), b"keep me too");
    assert_eq!(on_disk(&d.join(name(4))), [name(5)], "nothing inside a dir");
    assert!(on_disk(outside.path()).len() == 2, "nothing through a link");
}

#[test]
fn a_refused_directory_is_neither_listed_nor_cleaned() {
    let dir = cache_dir();
    let d = dir.path();
    plant(d, &name(1), 10, hours_ago(100));
    std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o770)).unwrap();
    let refused = |e: HousekeepingError| match e {
        HousekeepingError::Refused { path, problem } => (path, problem),
        other => panic!("want Refused, got {other:?}"),
    };
    let want = (d.to_path_buf(), Unsafe::OpenToOthers { mode: 0o770 });
    assert_eq!(refused(gc(d, 0).unwrap_err()), want);
    assert_eq!(refused(list(d).unwrap_err()), want);
    assert_eq!(on_disk(d), [name(1)], "nothing deleted");

    let root = tempfile::tempdir().unwrap();
    let link = root.path().join("link");
    std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::symlink(d, &link).unwrap();
    let (_, problem) = refused(gc(&link, 0).unwrap_err());
    assert_eq!(problem, Unsafe::Symlink);
    assert_eq!(on_disk(d), [name(1)], "nothing deleted through the link");
    let text = HousekeepingError::Refused {
        path: link,
        problem,
    }
    .to_string();
    assert!(
        text.contains("nothing in it was listed or deleted"),
        "{text}"
    );
}

#[test]
fn a_missing_directory_is_an_empty_cache_and_is_not_made() {
    let root = tempfile::tempdir().unwrap();
    let d = root.path().join("nope");
    assert_eq!(list(&d).unwrap(), Listing::default());
    assert_eq!(gc(&d, 0).unwrap(), Freed::default());
    assert!(!d.exists());
}

/// An entry used (touched) or re-stored by another host between the scan
/// and the removal is kept.
#[test]
fn an_entry_used_or_replaced_since_the_scan_is_kept() {
    let dir = cache_dir();
    let d = dir.path();
    plant(d, &name(1), 10, hours_ago(3));
    plant(d, &name(2), 10, hours_ago(2));
    plant(d, &name(3), 10, hours_ago(1));
    let fd = open_dir(d, false).unwrap().unwrap();
    let listing = scan(&fd).unwrap();
    // Another host hits entry 1 and re-stores entry 2 meanwhile.
    File::options()
        .write(true)
        .open(d.join(name(1)))
        .unwrap()
        .set_modified(SystemTime::now())
        .unwrap();
    std::fs::remove_file(d.join(name(2))).unwrap();
    plant(d, &name(2), 10, hours_ago(2));
    let freed = remove_over(&fd, listing, 0, None);
    assert_eq!(names(&freed.removed), [name(3)]);
    assert_eq!(on_disk(d), [name(1), name(2)]);
}

#[test]
fn evict_after_a_store_keeps_the_new_entry_and_the_cap() {
    let dir = cache_dir();
    let d = dir.path();
    plant(d, &name(1), 100, hours_ago(3));
    plant(d, &name(2), 100, hours_ago(2));
    plant(d, &name(3), 500, SystemTime::now());
    let fd = open_dir(d, false).unwrap().unwrap();
    evict(&fd, 200, &name(3));
    assert_eq!(on_disk(d), [name(3)], "the new entry alone is over the cap");
    plant(d, &name(4), 100, hours_ago(1));
    plant(d, &name(5), 100, SystemTime::now());
    evict(&fd, 600, &name(5));
    assert_eq!(on_disk(d), [name(3), name(5)]);
}

#[test]
fn the_cap_is_explicit_else_the_environment_else_one_gib() {
    assert_eq!(max_size_setting(Some(5)), Ok(5));
    assert_eq!(max_size_from(None), Ok(DEFAULT_MAX_SIZE));
    assert_eq!(DEFAULT_MAX_SIZE, 1 << 30);
    assert_eq!(max_size_from(Some("512MiB".into())), Ok(512 << 20));
    assert_eq!(max_size_from(Some("0".into())), Ok(0));
    let e = max_size_from(Some("lots".into())).unwrap_err();
    assert_eq!(e.value, "lots");
    let text = e.to_string();
    assert!(
        text.starts_with(
            "AIRLOCK_CACHE_MAX_SIZE=\"lots\" is not usable: `lots` is not a size; write e.g."
        ),
        "{text}"
    );
    assert!(text.ends_with(", or unset it for the default"), "{text}");
}
