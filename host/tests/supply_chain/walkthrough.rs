//! README's "Sharing tools in a company" walkthrough, run as written: every
//! shell block between the walkthrough markers, in one `bash -e`, in an empty
//! directory with the example component, against a real registry (Debian's
//! `docker-registry`) on 127.0.0.1 and the `airlock` just built on `PATH`.

use std::process::Command;

use crate::registry;

/// The shell blocks of README between `<!-- walkthrough -->` and
/// `<!-- /walkthrough -->`.
fn walkthrough() -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md is readable");
    let start = readme
        .find("<!-- walkthrough -->")
        .expect("README has a walkthrough");
    let end = readme
        .find("<!-- /walkthrough -->")
        .expect("README's walkthrough ends");
    let mut script = String::new();
    let mut inside = false;
    for line in readme[start..end].lines() {
        match (inside, line.trim_end()) {
            (false, "```sh") => inside = true,
            (true, "```") => inside = false,
            (true, l) => {
                script.push_str(l);
                script.push('\n');
            }
            _ => {}
        }
    }
    script
}

#[test]
fn the_readme_walkthrough_runs_as_written() {
    let script = walkthrough();
    assert!(
        script.contains("airlock tool add") && script.contains("airlock tool update"),
        "the walkthrough lost its steps:\n{script}"
    );
    let Some(registry) = registry::Registry::start() else {
        return;
    };
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    std::fs::copy(
        crate::common::guest_path("sign_webhook"),
        dir.path().join("sign_webhook.wasm"),
    )
    .unwrap();
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_airlock"))
        .parent()
        .unwrap()
        .to_path_buf();
    let path = std::env::join_paths(std::iter::once(bin).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .unwrap();
    let out = Command::new("bash")
        .args(["-e", "-u", "-o", "pipefail", "-c", &script])
        .current_dir(dir.path())
        .env("PATH", path)
        .env("REGISTRY", registry.addr.to_string())
        .env("AIRLOCK_CACHE", crate::common::scratch().join("cache"))
        .env(
            "AIRLOCK_CACHE_KEY",
            crate::common::scratch().join("cache.key"),
        )
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the walkthrough failed (exit {:?})\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status.code()
    );
    // What each step promised: the refused upgrade named its widened scope,
    // the approved one moved the pin, and both runs signed.
    assert!(stderr.contains("~ sign max_calls 10 → 100"), "{stderr}");
    assert!(
        stdout.contains("updated sign-webhook: data/sign-webhook 1.1.0"),
        "{stdout}"
    );
    assert_eq!(
        stdout.matches("\"header\": \"sha256=").count(),
        2,
        "{stdout}"
    );
    let lock = std::fs::read_to_string(dir.path().join("toolkit.lock")).unwrap();
    assert!(
        lock.contains("version = \"1.1.0\"") && lock.contains("kind = \"signed\""),
        "{lock}"
    );
}
