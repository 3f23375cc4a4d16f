//! The compiled-component cache, attacked by a local writer of the cache
//! directory who cannot read the cache key: a second load reads the compiled
//! file; an entry that fails verification (corrupt, truncated, another
//! component's, forged with a recomputed checksum, a patched `.text`) is
//! recompiled and replaced, never loaded; a directory that is a link, another
//! user's or open to others is not used at all (one warning, compiled in
//! memory); a FIFO in place of an entry does not hang the host.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use airlock::cache::{CacheOutcome, CacheWarning, ENTRY_MAGIC, TAG_BYTES, Unsafe};
use airlock::{Budget, HostOptions, Tool};
use airlock_tests::{TestHost, budget, caps, expected_counts, host_with, load, load_ok, no_grants};
use serde_json::json;
use sha2::{Digest, Sha256};

/// A host on cache `dir` with the key file `key` (`None`: the test
/// process's key, outside `dir`).
fn keyed_host(dir: &Path, key: Option<&Path>) -> TestHost {
    host_with(
        HostOptions {
            no_cache: false,
            cache_dir: Some(dir.to_path_buf()),
            cache_key: key.map(Path::to_path_buf),
            ..HostOptions::default()
        },
        caps(),
    )
}

fn private_host(dir: &Path) -> TestHost {
    keyed_host(dir, None)
}

/// Loads `name` in a new host on `dir` (a new engine, as a new process
/// would have): the cache is all the loads share.
fn outcome(dir: &Path, name: &str) -> (TestHost, Tool, CacheOutcome) {
    let host = private_host(dir);
    let tool = load_ok(&host, name, no_grants(), Budget::default());
    let outcome = tool.cache_outcome();
    (host, tool, outcome)
}

/// The entry's file: `<digest>-<engine>.cwasm`.
fn entry(dir: &Path, tool: &Tool) -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("the cache dir exists")
        .map(|e| e.expect("an entry").path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "cwasm")
                && p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(&tool.digest()))
        })
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one compiled file for {}: {found:?}",
        tool.name()
    );
    found.remove(0)
}

/// The engine hash an entry's name carries (`<digest>-<engine>.cwasm`).
fn engine_hash(cwasm: &Path) -> u64 {
    let stem = cwasm.file_stem().expect("a stem").to_string_lossy();
    let hex = stem.rsplit('-').next().expect("an engine hash");
    u64::from_str_radix(hex, 16).expect("a hex engine hash")
}

/// The compiled code inside an entry (after the magic and the tag).
fn compiled_code(cwasm: &Path) -> Vec<u8> {
    let bytes = std::fs::read(cwasm).expect("cwasm");
    assert!(
        bytes.starts_with(ENTRY_MAGIC),
        "an entry starts with the magic"
    );
    bytes[ENTRY_MAGIC.len() + TAG_BYTES..].to_vec()
}

/// An entry as the attacker writes it: the magic, `tag`, the code.
fn forged(tag: &[u8], code: &[u8]) -> Vec<u8> {
    [ENTRY_MAGIC.as_slice(), tag, code].concat()
}

/// The checksum as the cache computed it before it was keyed:
/// sha256(component digest || compiled bytes).
fn unkeyed_checksum(digest_hex: &str, code: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(hex::decode(digest_hex).expect("hex digest"));
    h.update(code);
    h.finalize().into()
}

/// The keyed tag over exactly what the cache covers, under a key the
/// attacker chose (the real one is unreadable to them).
fn attacker_tag(digest_hex: &str, engine_hash: u64, code: &[u8]) -> Vec<u8> {
    let mut mac = blake3::Hasher::new_keyed(&[0x41; 32]);
    mac.update(ENTRY_MAGIC);
    mac.update(&hex::decode(digest_hex).expect("hex digest"));
    mac.update(&engine_hash.to_le_bytes());
    mac.update(code);
    mac.finalize().as_bytes().to_vec()
}

/// The entry on disk is good again: a new host loads it without compiling.
fn assert_entry_repaired(dir: &Path, name: &str) {
    let (_, _, o) = outcome(dir, name);
    assert_eq!(
        o,
        CacheOutcome::Hit,
        "the replaced entry of {name} verifies"
    );
}

/// The tool is word-count itself: its one export, and its own counts.
async fn assert_counts(host: &TestHost, tool: &Tool) {
    let exports: Vec<&str> = tool.exports().iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        exports,
        ["count"],
        "word-count was loaded as another component"
    );
    let text = "cached code\nstill counts right";
    let out = host
        .run(tool, None, &json!({ "text": text }))
        .await
        .expect("the cached tool runs");
    assert_eq!(out.value, expected_counts(text));
    assert_eq!(
        out.value,
        json!({"words": 5, "lines": 2, "chars": 30, "bytes": 30})
    );
}

/// Loads word-count from `dir` as a new process would, expecting `want`
/// and the real word-count.
async fn assert_loads_itself(dir: &Path, want: CacheOutcome, what: &str) {
    let host = private_host(dir);
    let tool = match load(&host, "word-count", no_grants(), Budget::default()) {
        Ok(tool) => tool,
        Err(e) => panic!("{what}: word-count should load: {e}"),
    };
    assert_eq!(tool.cache_outcome(), want, "{what}");
    assert_counts(&host, &tool).await;
}

/// The file range of section `name` in an ELF64 little-endian file.
fn elf_section(elf: &[u8], name: &str) -> std::ops::Range<usize> {
    assert_eq!(&elf[..4], b"\x7fELF", "compiled code is an ELF file");
    let u16_at = |at: usize| u16::from_le_bytes(elf[at..at + 2].try_into().unwrap()) as usize;
    let u32_at = |at: usize| u32::from_le_bytes(elf[at..at + 4].try_into().unwrap()) as usize;
    let u64_at = |at: usize| u64::from_le_bytes(elf[at..at + 8].try_into().unwrap()) as usize;
    let (shoff, shentsize, shnum, shstrndx) =
        (u64_at(0x28), u16_at(0x3a), u16_at(0x3c), u16_at(0x3e));
    let header = |i: usize| shoff + i * shentsize;
    let strtab = u64_at(header(shstrndx) + 0x18);
    (0..shnum)
        .find_map(|i| {
            let at = strtab + u32_at(header(i));
            let end = at + elf[at..].iter().position(|b| *b == 0)?;
            (&elf[at..end] == name.as_bytes()).then(|| {
                let offset = u64_at(header(i) + 0x18);
                offset..offset + u64_at(header(i) + 0x20)
            })
        })
        .unwrap_or_else(|| panic!("no {name} section"))
}

fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo runs");
    assert!(status.success(), "mkfifo {}", path.display());
}

fn running_as_root() -> bool {
    let probe = tempfile::tempfile().expect("a temp file");
    probe.metadata().expect("metadata").uid() == 0
}

/// Loads word-count on `dir` in a host whose cache key is `key`, expects
/// the cache refused with `warning` (once), and that nothing was written.
async fn assert_refused(dir: &Path, key: Option<&Path>, warning: CacheWarning) {
    let before = listing(dir);
    let host = keyed_host(dir, key);
    let tool = load_ok(&host, "word-count", no_grants(), Budget::default());
    assert_eq!(tool.cache_outcome(), CacheOutcome::Refused);
    assert_counts(&host, &tool).await;
    assert_eq!(host.take_cache_warning(), Some(warning));
    let again = load_ok(&host, "word-count", no_grants(), Budget::default());
    assert_eq!(again.cache_outcome(), CacheOutcome::Refused);
    assert_eq!(host.take_cache_warning(), None, "one warning per host");
    assert_eq!(listing(dir), before, "a refused cache is not written");
}

fn listing(dir: &Path) -> Vec<PathBuf> {
    let mut l: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.map(|e| e.expect("an entry").path()).collect())
        .unwrap_or_default();
    l.sort();
    l
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_second_load_hits_the_cache() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (host, first, o1) = outcome(dir.path(), "word-count");
    assert_eq!(o1, CacheOutcome::Compiled);
    assert_counts(&host, &first).await;
    entry(dir.path(), &first);
    let (host, second, o2) = outcome(dir.path(), "word-count");
    assert_eq!(o2, CacheOutcome::Hit);
    assert_eq!(first.digest(), second.digest());
    assert_counts(&host, &second).await;
}

/// Loading a component that one host already loaded (another budget, the
/// same tool twice in a toolkit, a reload) must give a tool that runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_component_loaded_twice_in_one_host_runs_both_times() {
    let dir = tempfile::tempdir().expect("temp dir");
    let host = private_host(dir.path());
    let first = load_ok(&host, "word-count", no_grants(), Budget::default());
    let second = load_ok(
        &host,
        "word-count",
        no_grants(),
        budget(|b| b.fuel = 1 << 30),
    );
    assert_eq!(first.cache_outcome(), CacheOutcome::Compiled);
    assert_eq!(second.cache_outcome(), CacheOutcome::Hit);
    assert_counts(&host, &first).await;
    assert_counts(&host, &second).await;

    // Without a disk cache too.
    let host = host_with(
        HostOptions {
            no_cache: true,
            ..HostOptions::default()
        },
        caps(),
    );
    let first = load_ok(&host, "word-count", no_grants(), Budget::default());
    let second = load_ok(&host, "word-count", no_grants(), Budget::default());
    assert_counts(&host, &first).await;
    assert_counts(&host, &second).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_cache_never_touches_the_directory() {
    let dir = tempfile::tempdir().expect("temp dir");
    for _ in 0..2 {
        let host = host_with(
            HostOptions {
                no_cache: true,
                cache_dir: Some(dir.path().to_path_buf()),
                ..HostOptions::default()
            },
            caps(),
        );
        let tool = load_ok(&host, "word-count", no_grants(), Budget::default());
        assert_eq!(tool.cache_outcome(), CacheOutcome::Compiled);
        assert_counts(&host, &tool).await;
    }
    let left: Vec<_> = std::fs::read_dir(dir.path()).expect("dir").collect();
    assert!(left.is_empty(), "no_cache wrote {left:?}");
}

/// A new cache directory is 700, its entries 600, and a missing key file is
/// made: 32 bytes, mode 600, outside the cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_cache_and_its_key_are_private_to_the_user() {
    let root = tempfile::tempdir().expect("temp dir");
    let dir = root.path().join("made/cache");
    let key = root.path().join("keys/cache.key");
    let host = keyed_host(&dir, Some(&key));
    let tool = load_ok(&host, "word-count", no_grants(), Budget::default());
    assert_eq!(tool.cache_outcome(), CacheOutcome::Compiled);
    assert_eq!(host.take_cache_warning(), None);
    let mode = |p: &Path| std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700, "the cache directory");
    assert_eq!(mode(&entry(&dir, &tool)), 0o600, "an entry");
    assert_eq!(mode(&key), 0o600, "the key");
    assert_eq!(std::fs::metadata(&key).expect("key").len(), 32);
    let listed = listing(&dir);
    assert_eq!(listed.len(), 1, "only the entry, no temp files: {listed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_or_truncated_compiled_file_is_replaced() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_, tool, _) = outcome(dir.path(), "word-count");
    let cwasm = entry(dir.path(), &tool);

    // Flip bytes through the file (magic, tag, code and metadata alike).
    let mut bytes = std::fs::read(&cwasm).expect("cwasm");
    let len = bytes.len();
    for at in [0, 20, len / 3, len / 2, len - 1] {
        bytes[at] ^= 0xff;
    }
    std::fs::write(&cwasm, &bytes).expect("corrupt it");
    assert_loads_itself(dir.path(), CacheOutcome::Replaced, "corrupt").await;
    assert_ne!(std::fs::read(&cwasm).expect("cwasm"), bytes, "rewritten");
    assert_entry_repaired(dir.path(), "word-count");

    std::fs::write(&cwasm, &bytes[..len / 2]).expect("truncate it");
    assert_loads_itself(dir.path(), CacheOutcome::Replaced, "truncated").await;
    assert_entry_repaired(dir.path(), "word-count");
}

/// Another component's genuine entry (its tag made under the real key)
/// copied under this component's name: the tag binds the component.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_components_genuine_entry_under_this_name_is_not_loaded() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_, tool, _) = outcome(dir.path(), "word-count");
    let cwasm = entry(dir.path(), &tool);
    let (_, spin, _) = outcome(dir.path(), "spin");
    std::fs::copy(entry(dir.path(), &spin), &cwasm).expect("copy the entry");
    assert_loads_itself(dir.path(), CacheOutcome::Replaced, "spin's entry").await;
    assert_entry_repaired(dir.path(), "word-count");
}

/// The attack the unkeyed checksum allowed: another component's
/// compiled code under this component's name with a checksum
/// recomputed by the attacker — with the old formula (in the old
/// layout and in the new one) and as a keyed tag under a key of their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_artifact_with_a_recomputed_checksum_is_not_loaded() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_, tool, _) = outcome(dir.path(), "word-count");
    let cwasm = entry(dir.path(), &tool);
    let digest = tool.digest();
    let engine = engine_hash(&cwasm);
    let (_, spin, _) = outcome(dir.path(), "spin");
    let foreign = compiled_code(&entry(dir.path(), &spin));
    let old_sum = unkeyed_checksum(&digest, &foreign);

    let forgeries = [
        ("old layout, unkeyed sha256 beside it", foreign.clone()),
        ("unkeyed sha256 as the tag", forged(&old_sum, &foreign)),
        (
            "keyed BLAKE3 under the attacker's key",
            forged(&attacker_tag(&digest, engine, &foreign), &foreign),
        ),
    ];
    for (what, bytes) in forgeries {
        std::fs::write(&cwasm, &bytes).expect("plant the forgery");
        std::fs::write(cwasm.with_extension("sha256"), hex::encode(old_sum))
            .expect("and the old checksum file");
        assert_loads_itself(dir.path(), CacheOutcome::Replaced, what).await;
        assert_ne!(
            std::fs::read(&cwasm).expect("cwasm"),
            bytes,
            "{what}: replaced"
        );
        assert_entry_repaired(dir.path(), "word-count");
    }
}

/// The entry's own code with one byte of `.text` patched and the tag
/// recomputed by the attacker (old formula, or their own key).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patched_text_with_a_recomputed_checksum_is_not_loaded() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_, tool, _) = outcome(dir.path(), "word-count");
    let cwasm = entry(dir.path(), &tool);
    let digest = tool.digest();
    let engine = engine_hash(&cwasm);
    let mut code = compiled_code(&cwasm);
    let text = elf_section(&code, ".text");
    assert!(!text.is_empty(), "word-count has code");
    // int3 at the first instruction of the first function.
    code[text.start] = 0xcc;

    for (what, tag) in [
        ("unkeyed sha256", unkeyed_checksum(&digest, &code).to_vec()),
        ("attacker's keyed tag", attacker_tag(&digest, engine, &code)),
    ] {
        let bytes = forged(&tag, &code);
        std::fs::write(&cwasm, &bytes).expect("plant the patched code");
        assert_loads_itself(dir.path(), CacheOutcome::Replaced, what).await;
        assert_ne!(
            std::fs::read(&cwasm).expect("cwasm"),
            bytes,
            "{what}: replaced"
        );
        assert_entry_repaired(dir.path(), "word-count");
    }
}

/// A genuine entry made writable by group: not trusted, replaced by a
/// private one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_writable_entry_is_replaced() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_, tool, _) = outcome(dir.path(), "word-count");
    let cwasm = entry(dir.path(), &tool);
    std::fs::set_permissions(&cwasm, std::fs::Permissions::from_mode(0o620)).expect("chmod");
    assert_loads_itself(dir.path(), CacheOutcome::Replaced, "group-writable entry").await;
    let mode = std::fs::metadata(&cwasm)
        .expect("cwasm")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
}

/// A cache directory writable by its group: nothing in it is read (not
/// even a genuine entry), nothing is written, one warning.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_writable_directory_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_, tool, _) = outcome(dir.path(), "word-count");
    entry(dir.path(), &tool);
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o770)).expect("chmod");
    let warning = CacheWarning::Dir {
        path: dir.path().to_path_buf(),
        problem: Unsafe::OpenToOthers { mode: 0o770 },
    };
    assert_refused(dir.path(), None, warning.clone()).await;
    let text = warning.to_string();
    assert!(
        text.contains("open to group or others (mode 770)"),
        "{text}"
    );
    assert!(text.contains("compiling in memory instead"), "{text}");
}

/// A directory owned by another user. As root (CI) the directory is
/// given to `nobody`; as anyone else, `/` is root's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_users_directory_is_refused() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let user = tmp.path().metadata().expect("metadata").uid();
    let (dir, owner) = if running_as_root() {
        let dir = tmp.path().join("theirs");
        std::fs::create_dir(&dir).expect("mkdir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).expect("chown to nobody");
        (dir, 65534)
    } else {
        (PathBuf::from("/"), 0)
    };
    let warning = CacheWarning::Dir {
        path: dir.clone(),
        problem: Unsafe::NotOwned { owner, user },
    };
    assert_refused(&dir, None, warning).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symlinked_directory_is_refused() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let real = tmp.path().join("real");
    std::fs::create_dir(&real).expect("mkdir");
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(&real, &link).expect("symlink");
    let warning = CacheWarning::Dir {
        path: link.clone(),
        problem: Unsafe::Symlink,
    };
    assert_refused(&link, None, warning).await;
    assert!(
        listing(&real).is_empty(),
        "nothing written through the link"
    );
}

/// The key must be the user's own, private, a regular file (not a link)
/// and outside the cache directory; otherwise the cache is not used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_open_to_others_linked_or_inside_the_cache_is_refused() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("cache");
    let key = tmp.path().join("cache.key");
    std::fs::write(&key, [7u8; 32]).expect("a key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    std::fs::create_dir(&dir).expect("mkdir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let problem = Unsafe::OpenToOthers { mode: 0o640 };
    let warning = CacheWarning::Key {
        path: key.clone(),
        problem,
    };
    assert_refused(&dir, Some(&key), warning).await;

    let link = tmp.path().join("link.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    std::os::unix::fs::symlink(&key, &link).expect("symlink");
    let warning = CacheWarning::Key {
        path: link.clone(),
        problem: Unsafe::Symlink,
    };
    assert_refused(&dir, Some(&link), warning).await;

    let inside = dir.join("cache.key");
    let warning = CacheWarning::KeyInsideCache {
        path: inside.clone(),
    };
    assert_refused(&dir, Some(&inside), warning).await;
}

/// An entry over its cap (a sparse file: no disk or memory taken) is not
/// read, and is replaced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_over_its_cap_is_not_read() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_, tool, _) = outcome(dir.path(), "word-count");
    let cwasm = entry(dir.path(), &tool);
    let component = airlock_tests::guest_bytes("word_count");
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&cwasm)
        .expect("open the entry");
    file.set_len(airlock::cache::entry_cap(component.len()) + 1)
        .expect("grow it");
    assert_loads_itself(dir.path(), CacheOutcome::Replaced, "an oversize entry").await;
    assert_entry_repaired(dir.path(), "word-count");
}

/// A FIFO where the entry should be: the load neither blocks on opening
/// it nor reads it; the FIFO is replaced by a real entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_entry_does_not_hang_and_is_not_trusted() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_, tool, _) = outcome(dir.path(), "word-count");
    let cwasm = entry(dir.path(), &tool);
    std::fs::remove_file(&cwasm).expect("remove the entry");
    mkfifo(&cwasm);

    let (tx, rx) = mpsc::channel();
    let path = dir.path().to_path_buf();
    std::thread::spawn(move || {
        let (_, _, o) = outcome(&path, "word-count");
        let _ = tx.send(o);
    });
    let o = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("a FIFO entry hung the load");
    assert_eq!(o, CacheOutcome::Replaced);
    assert!(
        std::fs::symlink_metadata(&cwasm).expect("entry").is_file(),
        "replaced"
    );
    assert_loads_itself(dir.path(), CacheOutcome::Hit, "after the FIFO").await;
}

/// LRU eviction to the size cap, with real compiled entries.
mod lru;
mod memo;
