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
