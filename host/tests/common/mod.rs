//! What the CLI-level test binaries share: where `cargo xtask build-guests`
//! put the guest components (`$AIRLOCK_GUESTS`, else the workspace target).
//! Each test file has `mod common;` and uses the part it needs.

#![allow(dead_code, reason = "each test binary uses its own part")]

use std::path::{Path, PathBuf};

/// The directory of the built guest components.
pub fn guests_dir() -> PathBuf {
    match std::env::var_os("AIRLOCK_GUESTS") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/wasm32-wasip2/release"),
    }
}

/// The built component of guest `name` (e.g. `word_count`).
///
/// # Panics
///
/// When it is not built, saying how to build it.
pub fn guest_path(name: &str) -> PathBuf {
    let path = guests_dir().join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "guest `{name}` not built: run `cargo xtask build-guests` (looked for {})",
        path.display()
    );
    path
}

/// [`guest_path`] as a string, for command lines and toolkit files.
pub fn guest_string(name: &str) -> String {
    guest_path(name).to_string_lossy().into_owned()
}

/// A directory for the whole test process (toolkits, the compiled-component
/// cache, servers' stderr), removed when the process ends.
pub fn scratch() -> &'static Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        tempfile::Builder::new()
            .prefix(concat!("airlock-", env!("CARGO_CRATE_NAME"), "-"))
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .expect("cannot create a scratch directory")
    })
    .path()
}

/// The address `airlock serve` (`child`, writing its stderr to `log`) says
/// it listens on ([`announced_address`]).
pub fn serve_address(child: &mut std::process::Child, log: &Path) -> String {
    announced_address(child, log, "listening on http://")
}

/// The address a starting `airlock` server (`child`, writing its stderr to
/// `log`) announces right after `marker` (`" at http://"` for `airlock mcp
/// --http`), once it does; panics with its stderr if it exits first or says
/// nothing within 120 s.
pub fn announced_address(child: &mut std::process::Child, log: &Path, marker: &str) -> String {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let seen = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(addr) = seen
            .split_once(marker)
            .and_then(|(_, rest)| rest.split(['/', ' ', '\n']).next())
            .filter(|addr| !addr.is_empty())
        {
            return addr.trim().to_string();
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the server exited ({status}): {seen}");
        }
        assert!(
            std::time::Instant::now() < until,
            "the server did not start within 120 s: {seen}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
