//! End-to-end tests of `airlock cache path | ls | gc` and of the size cap
//! through the real binary. Each test has its own cache directory, key and
//! cap in the environment; the entries `gc` is tested on are planted files
//! with entry names (it never reads them), the ones `ls` lists are real.
//! The tests in `mod cache` attack the cache wall: gc as a way to delete or
//! reach what is not ours.

mod common;

use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tempfile::TempDir;

/// A private cache directory and key path in a fresh temp dir.
struct Cache {
    root: TempDir,
}

impl Cache {
    fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        let cache = Self { root };
        std::fs::create_dir(cache.dir()).unwrap();
        std::fs::set_permissions(cache.dir(), std::fs::Permissions::from_mode(0o700)).unwrap();
        cache
    }

    fn dir(&self) -> PathBuf {
        self.root.path().join("cache")
    }

    fn key(&self) -> PathBuf {
        self.root.path().join("cache.key")
    }

    /// `airlock ARGS` on this cache, with `env` on top.
    fn airlock(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_airlock"));
        cmd.args(args)
            .env("AIRLOCK_CACHE", self.dir())
            .env("AIRLOCK_CACHE_KEY", self.key())
            .env_remove("AIRLOCK_CACHE_MAX_SIZE")
            .current_dir(self.root.path());
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("cannot start airlock")
    }

    fn files(&self) -> Vec<String> {
        let mut l: Vec<String> = std::fs::read_dir(self.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        l.sort();
        l
    }
}

const ENGINE: &str = "0123456789abcdef";

/// An entry's file name for component number `n`.
fn name(n: u8) -> String {
    format!("{}-{ENGINE}.cwasm", hex::encode([n; 32]))
}

/// Writes `dir/file`: `size` bytes, last used `hours` ago.
fn plant(dir: &Path, file: &str, size: usize, hours: u64) {
    let path = dir.join(file);
    std::fs::write(&path, vec![0u8; size]).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let when = SystemTime::now() - Duration::from_secs(hours * 3600);
    File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(when)
        .unwrap();
}

/// Asserts the exit code and returns (stdout, stderr).
fn expect(out: &Output, code: i32) -> (String, String) {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let streams = format!("--- stdout:\n{stdout}\n--- stderr:\n{stderr}");
    assert_eq!(out.status.code(), Some(code), "wrong exit code\n{streams}");
    (stdout, stderr)
}

fn json_of(out: &Output) -> Value {
    let (stdout, _) = expect(out, 0);
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

fn guest(name: &str) -> PathBuf {
    common::guest_path(name)
}

#[test]
fn cache_path_prints_the_directory_key_and_cap_every_command_uses() {
    let cache = Cache::new();
    let out = cache.airlock(&["cache", "path"], &[("AIRLOCK_CACHE_MAX_SIZE", "256MiB")]);
    let (stdout, _) = expect(&out, 0);
    assert_eq!(
        stdout,
        format!(
            "cache     {}  ($AIRLOCK_CACHE)\nkey       {}  ($AIRLOCK_CACHE_KEY)\nmax size  256 MiB  ($AIRLOCK_CACHE_MAX_SIZE)\n",
            cache.dir().display(),
            cache.key().display()
        )
    );
    let out = cache.airlock(&["cache", "path", "--json"], &[]);
    assert_eq!(
        json_of(&out),
        json!({"ok": true, "dir": cache.dir(), "key": cache.key(), "max_size": 1u64 << 30})
    );

    // Unset, both follow the XDG directories, as a host's cache does; and
    // asking makes nothing.
    let home = tempfile::tempdir().unwrap();
    let (xdg_cache, xdg_data) = (home.path().join("c"), home.path().join("d"));
    let out = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(["cache", "path", "--json"])
        .env_remove("AIRLOCK_CACHE")
        .env_remove("AIRLOCK_CACHE_KEY")
        .env_remove("AIRLOCK_CACHE_MAX_SIZE")
        .env("HOME", home.path())
        .env("XDG_CACHE_HOME", &xdg_cache)
        .env("XDG_DATA_HOME", &xdg_data)
        .output()
        .unwrap();
    assert_eq!(
        json_of(&out),
        json!({
            "ok": true,
            "dir": xdg_cache.join("airlock/components"),
            "key": xdg_data.join("airlock/cache.key"),
            "max_size": 1u64 << 30,
        })
    );
    assert!(
        !xdg_cache.exists() && !xdg_data.exists(),
        "path made nothing"
    );
}

#[test]
fn cache_ls_lists_the_entry_a_run_stored_with_its_component_digest() {
    let cache = Cache::new();
    let wasm = guest("word_count");
    let digest = hex::encode(Sha256::digest(std::fs::read(&wasm).unwrap()));
    let run = ["run", wasm.to_str().unwrap(), "--args", r#"{"text":"a b"}"#];
    expect(&cache.airlock(&run, &[]), 0);

    let listing = json_of(&cache.airlock(&["cache", "ls", "--json"], &[]));
    let entries = listing["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 1, "{listing}");
    let entry = &entries[0];
    assert_eq!(entry["component"], json!(digest));
    let file = cache.dir().join(entry["file"].as_str().unwrap());
    let size = std::fs::metadata(&file).unwrap().len();
    assert_eq!(entry["size"], json!(size));
    assert_eq!(listing["total"], json!(size));
    assert_eq!(listing["max_size"], json!(1u64 << 30));
    assert_eq!(listing["left_alone"], json!([]));
    let when = humantime::parse_rfc3339(entry["last_use"].as_str().unwrap()).unwrap();
    assert!(
        when.elapsed().unwrap() < Duration::from_secs(600),
        "{when:?}"
    );

    let (text, _) = expect(&cache.airlock(&["cache", "ls"], &[]), 0);
    assert!(text.contains(&digest), "{text}");
    assert!(text.contains("1 entry, "), "{text}");
    assert!(text.ends_with(" of a 1 GiB cap\n"), "{text}");
}

#[test]
fn cache_gc_evicts_the_least_recently_used_down_to_the_cap() {
    let cache = Cache::new();
    let d = cache.dir();
    plant(&d, &name(1), 1 << 20, 1);
    plant(&d, &name(2), 2 << 20, 5);
    plant(&d, &name(3), 3 << 20, 3);

    let (text, _) = expect(
        &cache.airlock(&["cache", "gc", "--max-size", "4MiB"], &[]),
        0,
    );
    assert_eq!(
        text,
        format!(
            "freed 2 MiB in {}: removed 1 entry; kept 2 (4 MiB)\n",
            d.display()
        )
    );
    assert_eq!(cache.files(), [name(1), name(3)]);

    // The cap, from the environment.
    let small = [("AIRLOCK_CACHE_MAX_SIZE", "1MiB")];
    let freed = json_of(&cache.airlock(&["cache", "gc", "--json"], &small));
    assert_eq!(freed["freed"], json!(3 << 20));
    assert_eq!(freed["removed"][0]["file"], json!(name(3)));
    assert_eq!(
        (&freed["kept"], &freed["kept_bytes"]),
        (&json!(1), &json!(1 << 20))
    );
    let (text, _) = expect(&cache.airlock(&["cache", "gc"], &small), 0);
    assert!(text.starts_with("nothing to free in "), "{text}");

    let freed = json_of(&cache.airlock(&["cache", "gc", "--all", "--json"], &[]));
    assert_eq!(freed["freed"], json!(1 << 20));
    assert!(cache.files().is_empty());

    let both = cache.airlock(&["cache", "gc", "--all", "--max-size", "1"], &[]);
    expect(&both, 2);
    let bad = cache.airlock(&["cache", "gc", "--max-size", "huge"], &[]);
    let (_, stderr) = expect(&bad, 2);
    assert!(
        stderr.starts_with("airlock: --max-size: `huge` is not a size"),
        "{stderr}"
    );
}

/// A run that stores an entry evicts the oldest other one when the cache
/// is over its cap: the cap works without anyone running `gc`.
#[test]
fn a_run_over_the_cap_evicts_the_oldest_entry() {
    let cache = Cache::new();
    plant(&cache.dir(), &name(1), 1 << 20, 2);
    plant(&cache.dir(), &name(2), 1 << 20, 1);
    let wasm = guest("word_count");
    let run = ["run", wasm.to_str().unwrap(), "--args", r#"{"text":"a"}"#];
    // Room for one planted entry and the new one.
    expect(
        &cache.airlock(&run, &[("AIRLOCK_CACHE_MAX_SIZE", "1536KiB")]),
        0,
    );
    let files = cache.files();
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(
        !files.contains(&name(1)),
        "the oldest went first: {files:?}"
    );
    assert!(files.contains(&name(2)), "{files:?}");
}

#[test]
fn a_max_size_that_is_not_a_size_is_a_usage_error() {
    let cache = Cache::new();
    let bad = [("AIRLOCK_CACHE_MAX_SIZE", "lots")];
    let want = "airlock: AIRLOCK_CACHE_MAX_SIZE=\"lots\" is not usable: `lots` is not a size";
    let (_, stderr) = expect(&cache.airlock(&["cache", "gc"], &bad), 2);
    assert!(stderr.starts_with(want), "{stderr}");
    let wasm = guest("word_count");
    let run = ["run", wasm.to_str().unwrap(), "--args", r#"{"text":"a"}"#];
    let (_, stderr) = expect(&cache.airlock(&run, &bad), 2);
    assert!(stderr.starts_with(want), "{stderr}");
    let no_cache = [&run[..], &["--no-cache"]].concat();
    expect(&cache.airlock(&no_cache, &bad), 0);
}

mod cache {
    use super::*;

    /// A writer of the cache directory plants a link named like an entry
    /// (to a file of the user's outside the cache), a link to a directory,
    /// a hard link and a foreign file: `gc --all` removes the one real
    /// entry, names the rest as left alone, and deletes no target.
    #[test]
    fn gc_deletes_no_planted_link_or_foreign_file_and_follows_none() {
        let cache = Cache::new();
        let d = cache.dir();
        let outside = tempfile::tempdir().unwrap();
        let precious = outside.path().join("precious");
        std::fs::write(&precious, b"keep me").unwrap();
        std::os::unix::fs::symlink(&precious, d.join(name(1))).unwrap();
        std::os::unix::fs::symlink(outside.path(), d.join(name(2))).unwrap();
        plant(outside.path(), "linked", 10, 100);
        std::fs::hard_link(outside.path().join("linked"), d.join(name(3))).unwrap();
        plant(&d, "notes.txt", 10, 100);
        plant(&d, &name(4), 10, 100);

        let out = cache.airlock(&["cache", "gc", "--all"], &[]);
        let (text, _) = expect(&out, 0);
        let first = text.lines().next().unwrap_or_default();
        assert_eq!(
            first,
            format!(
                "freed 10 bytes in {}: removed 1 entry; kept 0 (0 bytes)",
                d.display()
            )
        );
        // The left-alone lines come in the directory's order.
        let mut left_alone: Vec<&str> = text.lines().skip(1).collect();
        left_alone.sort();
        let mut want = vec![
            format!(
                "left alone (not an entry of airlock's): {} (a symbolic link)",
                name(1)
            ),
            format!(
                "left alone (not an entry of airlock's): {} (a symbolic link)",
                name(2)
            ),
            format!(
                "left alone (not an entry of airlock's): {} (a file with other links)",
                name(3)
            ),
            "left alone (not an entry of airlock's): notes.txt (not a name this cache writes)"
                .into(),
        ];
        want.sort();
        assert_eq!(left_alone, want);
        assert_eq!(
            cache.files(),
            [name(1), name(2), name(3), "notes.txt".into()]
        );
        assert_eq!(std::fs::read(&precious).unwrap(), b"keep me");
        assert_eq!(
            std::fs::read(outside.path().join("linked")).unwrap().len(),
            10
        );
    }

    /// A cache directory open to its group (someone else could have planted
    /// anything): gc and ls refuse it with the reason and delete nothing.
    #[test]
    fn gc_of_a_refused_directory_deletes_nothing_and_says_why() {
        let cache = Cache::new();
        let d = cache.dir();
        plant(&d, &name(1), 10, 100);
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o770)).unwrap();
        let out = cache.airlock(&["cache", "gc", "--all"], &[]);
        let (stdout, stderr) = expect(&out, 2);
        assert_eq!(stdout, "");
        assert_eq!(
            stderr,
            format!(
                "airlock: the compiled-component cache {} is open to group or others (mode 770), \
                 so nothing in it was listed or deleted; make it a directory of your own with \
                 mode 700, or set AIRLOCK_CACHE to one\n",
                d.display()
            )
        );
        let out = cache.airlock(&["cache", "ls", "--json"], &[]);
        let (stdout, _) = expect(&out, 2);
        let err: Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(err["ok"], json!(false));
        assert_eq!(err["error"]["kind"], json!("usage"));
        assert_eq!(cache.files(), [name(1)], "nothing deleted");

        // A link to a good directory: refused too, nothing deleted behind it.
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).unwrap();
        let link = cache.root.path().join("link");
        std::os::unix::fs::symlink(&d, &link).unwrap();
        let out = cache.airlock(
            &["cache", "gc", "--all"],
            &[("AIRLOCK_CACHE", link.to_str().unwrap())],
        );
        let (_, stderr) = expect(&out, 2);
        assert!(
            stderr.contains("is a symbolic link, so nothing"),
            "{stderr}"
        );
        assert_eq!(cache.files(), [name(1)], "nothing deleted through the link");
    }
}
