//! The compiled-component cache: a second load maps the compiled file, and an
//! entry that fails verification (corrupt, truncated, with a garbage or
//! foreign checksum) is recompiled and replaced, never loaded.

use std::path::{Path, PathBuf};

use airlock::cache::CacheOutcome;
use airlock::{Budget, HostOptions, Tool};
use airlock_tests::{TestHost, budget, caps, expected_counts, host_with, load, load_ok, no_grants};
use serde_json::json;

fn private_host(dir: &Path) -> TestHost {
    host_with(
        HostOptions {
            no_cache: false,
            cache_dir: Some(dir.to_path_buf()),
            ..HostOptions::default()
        },
        caps(),
    )
}

/// Loads `name` in a new host on `dir` (a new engine, as a new process
/// would have): the cache is all the loads share.
fn outcome(dir: &Path, name: &str) -> (TestHost, Tool, CacheOutcome) {
    let host = private_host(dir);
    let tool = load_ok(&host, name, no_grants(), Budget::default());
    let outcome = tool.cache_outcome();
    (host, tool, outcome)
}

/// The entry's two files: `<digest>-<engine>.cwasm` and `.sha256`.
fn entry(dir: &Path, tool: &Tool) -> (PathBuf, PathBuf) {
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
    let cwasm = found.remove(0);
    let sum = cwasm.with_extension("sha256");
    assert!(
        sum.is_file(),
        "{} has no checksum beside it",
        cwasm.display()
    );
    (cwasm, sum)
}

/// The entry on disk is good again: a new host maps it without compiling.
fn assert_entry_repaired(dir: &Path, name: &str) {
    let (_, _, o) = outcome(dir, name);
    assert_eq!(
        o,
        CacheOutcome::Hit,
        "the replaced entry of {name} verifies"
    );
}

async fn assert_counts(host: &TestHost, tool: &Tool) {
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
async fn a_corrupt_compiled_file_is_replaced() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_, tool, _) = outcome(dir.path(), "word-count");
    let (cwasm, _) = entry(dir.path(), &tool);

    // Flip bytes through the file (header, code and metadata alike).
    let mut bytes = std::fs::read(&cwasm).expect("cwasm");
    let len = bytes.len();
    for at in [0, 7, len / 3, len / 2, len - 1] {
        bytes[at] ^= 0xff;
    }
    std::fs::write(&cwasm, &bytes).expect("corrupt it");
    let (host, tool, o) = outcome(dir.path(), "word-count");
    assert_eq!(o, CacheOutcome::Replaced);
    assert_counts(&host, &tool).await;
    assert_ne!(std::fs::read(&cwasm).expect("cwasm"), bytes, "rewritten");
    assert_entry_repaired(dir.path(), "word-count");

    // Truncated.
    std::fs::write(&cwasm, &bytes[..len / 2]).expect("truncate it");
    let (host, tool, o) = outcome(dir.path(), "word-count");
    assert_eq!(o, CacheOutcome::Replaced);
    assert_counts(&host, &tool).await;
    assert_entry_repaired(dir.path(), "word-count");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_garbage_foreign_or_missing_checksum_is_replaced() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_, tool, _) = outcome(dir.path(), "word-count");
    let (_, sum) = entry(dir.path(), &tool);
    let (_, spin, _) = outcome(dir.path(), "spin");
    let (_, spin_sum) = entry(dir.path(), &spin);

    let garbage: &[u8] = b"this is not a sha256 at all\n";
    let foreign = std::fs::read(&spin_sum).expect("spin's checksum");
    for (what, content) in [
        ("garbage", Some(garbage.to_vec())),
        ("foreign", Some(foreign)),
        ("missing", None),
    ] {
        match content {
            Some(c) => std::fs::write(&sum, c).expect("write the checksum"),
            None => std::fs::remove_file(&sum).expect("remove the checksum"),
        }
        let (host, tool, o) = outcome(dir.path(), "word-count");
        assert_eq!(o, CacheOutcome::Replaced, "{what} checksum");
        assert_counts(&host, &tool).await;
        assert!(sum.is_file(), "{what}: the checksum was written again");
        assert_entry_repaired(dir.path(), "word-count");
    }
}

/// Another component's compiled file, with its own valid checksum, copied
/// under this component's name: the module docs promise a foreign entry is
/// "recompiled, never loaded".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_components_entry_under_this_name_is_not_loaded() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_, tool, _) = outcome(dir.path(), "word-count");
    let (cwasm, sum) = entry(dir.path(), &tool);
    let (_, spin, _) = outcome(dir.path(), "spin");
    let (spin_cwasm, spin_sum) = entry(dir.path(), &spin);
    std::fs::copy(&spin_cwasm, &cwasm).expect("copy the compiled file");
    std::fs::copy(&spin_sum, &sum).expect("copy its checksum");

    let host = private_host(dir.path());
    let tool = match load(&host, "word-count", no_grants(), Budget::default()) {
        Ok(tool) => tool,
        Err(e) => panic!("word-count should load: {e}"),
    };
    let exports: Vec<&str> = tool.exports().iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        exports,
        ["count"],
        "word-count was loaded as another component"
    );
    assert_eq!(tool.cache_outcome(), CacheOutcome::Replaced);
    assert_counts(&host, &tool).await;
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
