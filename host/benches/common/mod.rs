//! Helpers shared by the benches: where the guests are, the criterion
//! settings (short, so `cargo xtask bench` stays under ~10 minutes on two
//! cores; `AIRLOCK_BENCH_QUICK=1` shortens them further), runtimes, and a
//! host with one loaded tool.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use airlock::{Airlock, Budget, Capabilities, Grants, HostOptions, NullAudit, Tool};
use criterion::Criterion;

/// Where the guest components are: `$AIRLOCK_GUESTS`, else this workspace's
/// `target/wasm32-wasip2/release`.
pub fn guests_dir() -> PathBuf {
    std::env::var_os("AIRLOCK_GUESTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/wasm32-wasip2/release")
        })
}

/// The guest `name` (`word_count`), which must have been built.
pub fn guest(name: &str) -> PathBuf {
    let path = guests_dir().join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "guest {} is missing; run `cargo xtask build-guests` or set AIRLOCK_GUESTS",
        path.display()
    );
    path
}

/// Whether `AIRLOCK_BENCH_QUICK` asks for the shortest runs.
pub fn quick() -> bool {
    std::env::var_os("AIRLOCK_BENCH_QUICK").is_some_and(|v| !v.is_empty() && v != "0")
}

/// The criterion settings every group starts from.
pub fn config() -> Criterion {
    let (warm, measure) = if quick() { (300, 1000) } else { (700, 2500) };
    Criterion::default()
        .sample_size(50)
        .warm_up_time(Duration::from_millis(warm))
        .measurement_time(Duration::from_millis(measure))
        .without_plots()
}

/// A current-thread tokio runtime (one job at a time, as the CLI runs).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread tokio runtime")
}

/// A host with default options, a fresh cache directory and `caps`.
pub fn host(caps: Capabilities, options: HostOptions) -> (Airlock, tempfile::TempDir) {
    let cache = tempfile::tempdir().expect("a temporary cache directory");
    let host = Airlock::new(
        HostOptions {
            cache_dir: Some(cache.path().to_path_buf()),
            ..options
        },
        caps,
        Arc::new(NullAudit),
    )
    .expect("the host starts");
    (host, cache)
}

/// Loads guest `name` into `host` under `grants` and `budget`.
pub fn load(host: &Airlock, name: &str, grants: Grants, budget: Budget) -> Tool {
    host.load_tool_file(name, &guest(name), grants, budget)
        .unwrap_or_else(|e| panic!("{name} loads: {e}"))
}

/// `/bin/true`, or `true` from PATH.
pub fn true_binary() -> &'static str {
    if Path::new("/bin/true").exists() {
        "/bin/true"
    } else {
        "true"
    }
}
