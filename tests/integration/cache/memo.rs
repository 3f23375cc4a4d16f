//! The process's memory of verified components: a second load of an
//! unchanged file reads nothing, and a file or cache entry changed after the
//! first verification is never used unverified.

use std::path::Path;

use airlock::Budget;
use airlock::cache::CacheOutcome;
use airlock_tests::{guest, no_grants};
use sha2::{Digest, Sha256};

use super::{assert_counts, listing, private_host};

fn load_file(host: &airlock::Airlock, path: &Path) -> airlock::Tool {
    host.load_tool_file("t", path, no_grants(), Budget::default())
        .expect("the tool loads")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_entry_swapped_after_verification_is_never_read_in_this_process() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tool.wasm");
    std::fs::copy(guest("word_count"), &file).unwrap();
    let host = private_host(&dir.path().join("cache"));
    let first = load_file(&host, &file);
    assert_eq!(first.cache_outcome(), CacheOutcome::Compiled);
    // The attacker swaps the compiled entry for another component's.
    let entries = listing(&dir.path().join("cache"));
    assert_eq!(entries.len(), 1);
    std::fs::write(&entries[0], b"forged compiled code").unwrap();
    let again = load_file(&host, &file);
    assert_eq!(again.cache_outcome(), CacheOutcome::Hit);
    assert_eq!(again.digest(), first.digest());
    assert_counts(&host, &again).await;
    // A new process does not have the memory: it refuses the entry and
    // compiles again.
    let fresh = private_host(&dir.path().join("cache"));
    assert_eq!(
        load_file(&fresh, &file).cache_outcome(),
        CacheOutcome::Replaced
    );
}

#[test]
fn a_component_file_replaced_or_rewritten_is_read_and_hashed_again() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tool.wasm");
    let host = private_host(&dir.path().join("cache"));
    let digest_of = |name: &str| hex::encode(Sha256::digest(std::fs::read(guest(name)).unwrap()));

    std::fs::copy(guest("word_count"), &file).unwrap();
    assert_eq!(load_file(&host, &file).digest(), digest_of("word_count"));

    // Replaced by a rename (a new inode).
    let other = dir.path().join("other.wasm");
    std::fs::copy(guest("spin"), &other).unwrap();
    std::fs::rename(&other, &file).unwrap();
    assert_eq!(load_file(&host, &file).digest(), digest_of("spin"));

    // Rewritten in place, with the modification time set back: the change
    // time still moves, so the file is read again.
    let mtime = std::fs::metadata(&file).unwrap().modified().unwrap();
    std::fs::write(&file, std::fs::read(guest("word_count")).unwrap()).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    assert_eq!(load_file(&host, &file).digest(), digest_of("word_count"));
}
