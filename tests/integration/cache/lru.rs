//! The cache's size cap with real compiled entries: storing one evicts the
//! least recently used others, a verified hit counts as a use (its mtime is
//! refreshed, which `noatime` mounts would not do for atime), and hosts
//! storing and evicting at once never load a broken entry.

use std::time::{Duration, SystemTime};

use super::*;

/// A host on cache `dir` whose entries may take `max` bytes together.
fn capped_host(dir: &Path, max: u64) -> TestHost {
    host_with(
        HostOptions {
            no_cache: false,
            cache_dir: Some(dir.to_path_buf()),
            cache_max_size: Some(max),
            ..HostOptions::default()
        },
        caps(),
    )
}

/// Loads `name` in a new host on `dir` capped at `max`.
fn capped_load(dir: &Path, max: u64, name: &str) -> (TestHost, Tool) {
    let host = capped_host(dir, max);
    let tool = load_ok(&host, name, no_grants(), Budget::default());
    (host, tool)
}

fn size(path: &Path) -> u64 {
    std::fs::metadata(path).expect("entry").len()
}

fn set_last_use(path: &Path, when: SystemTime) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .expect("open the entry")
        .set_modified(when)
        .expect("set its mtime");
}

fn hours_ago(h: u64) -> SystemTime {
    SystemTime::now() - Duration::from_secs(h * 3600)
}

/// word-count (A) is older than spin (B) on disk, then hit: the hit makes
/// it the most recent, so storing deep (C) evicts spin, not word-count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_over_the_cap_evicts_the_least_recently_used_entry() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let (_, a) = capped_load(d, u64::MAX, "word-count");
    let (_, b) = capped_load(d, u64::MAX, "spin");
    let (entry_a, entry_b) = (entry(d, &a), entry(d, &b));
    // deep's compiled size, measured in a cache of its own.
    let elsewhere = tempfile::tempdir().expect("temp dir");
    let (_, c) = capped_load(elsewhere.path(), u64::MAX, "deep");
    let size_c = size(&entry(elsewhere.path(), &c));

    set_last_use(&entry_a, hours_ago(3));
    set_last_use(&entry_b, hours_ago(2));
    let (host, hit) = capped_load(d, u64::MAX, "word-count");
    assert_eq!(hit.cache_outcome(), CacheOutcome::Hit);
    assert_counts(&host, &hit).await;
    let used = std::fs::metadata(&entry_a).and_then(|m| m.modified());
    assert!(
        used.expect("mtime") > hours_ago(1),
        "a hit refreshes the entry's last use"
    );

    let cap = size(&entry_a) + size_c;
    let (_, c) = capped_load(d, cap, "deep");
    assert_eq!(c.cache_outcome(), CacheOutcome::Compiled);
    let mut left = listing(d);
    left.sort();
    let mut want = vec![entry_a.clone(), entry(d, &c)];
    want.sort();
    assert_eq!(left, want, "spin, the least recently used, was evicted");
    assert_loads_itself(d, CacheOutcome::Hit, "word-count was kept").await;
    let (_, b) = capped_load(d, u64::MAX, "spin");
    assert_eq!(
        b.cache_outcome(),
        CacheOutcome::Compiled,
        "an evicted entry is a plain miss"
    );
}

/// Three hosts load two components over and over with a cap so small that
/// every store evicts all other entries: every load is a verified hit or a
/// compile (never a broken entry replaced), and no
/// temporary file is left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_storing_and_evicting_at_once_never_load_a_broken_entry() {
    let dir = tempfile::tempdir().expect("temp dir");
    let workers: Vec<_> = (0..3)
        .map(|_| {
            let d = dir.path().to_path_buf();
            std::thread::spawn(move || {
                let host = capped_host(&d, 1);
                let mut seen = Vec::new();
                for _ in 0..2 {
                    for name in ["word-count", "deep"] {
                        let tool = load_ok(&host, name, no_grants(), Budget::default());
                        seen.push((name, tool.cache_outcome()));
                    }
                }
                seen
            })
        })
        .collect();
    for w in workers {
        for (name, outcome) in w.join().expect("a worker panicked") {
            assert!(
                matches!(outcome, CacheOutcome::Hit | CacheOutcome::Compiled),
                "{name}: {outcome:?}"
            );
        }
    }
    let left = listing(dir.path());
    assert!(
        left.iter()
            .all(|p| p.extension().is_some_and(|e| e == "cwasm")),
        "only entries left: {left:?}"
    );
    assert!(
        !left.is_empty() && left.len() <= 2,
        "the cap keeps each store's own entry: {left:?}"
    );
    for name in ["word-count", "deep"] {
        let digest = hex::encode(Sha256::digest(airlock_tests::guest_bytes(name)));
        let there = left.iter().any(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&digest))
        });
        let (_, tool) = capped_load(dir.path(), u64::MAX, name);
        let want = if there {
            CacheOutcome::Hit
        } else {
            CacheOutcome::Compiled
        };
        assert_eq!(tool.cache_outcome(), want, "{name}: what is left verifies");
    }
}
