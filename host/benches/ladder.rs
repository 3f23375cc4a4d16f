//! The cold-start ladder's outside rungs: starting a Node.js process and a
//! container, next to which an airlock job (group `job_cold` in `job.rs`:
//! airlock, raw wasmtime, `/bin/true`) is measured.
//!
//! Run with `cargo bench -p airlock --bench ladder`.
//!
//! * `node_e0`: `node -e 0` to completion, when `node` is on PATH.
//! * `docker_run`: `docker run --rm <image> true` to completion, when
//!   `docker info` answers (a daemon runs) and a small image (`busybox`,
//!   `alpine`) is already present locally; nothing is pulled.
//!
//! A rung that cannot run is skipped with its reason written to
//! `$CRITERION_HOME/ladder/absent.json`, which `cargo xtask bench` reports
//! as "absent".

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};

/// Whether `program args` runs and exits 0.
fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A small local image for `docker run`, or why there is none.
fn docker_image() -> Result<String, String> {
    if !runs("docker", &["info"]) {
        return Err("no docker daemon answers `docker info`".into());
    }
    for image in ["busybox:latest", "alpine:latest"] {
        if runs("docker", &["image", "inspect", image]) {
            return Ok(image.to_string());
        }
    }
    Err("no busybox or alpine image present locally (nothing is pulled)".into())
}

fn absent_path() -> PathBuf {
    let home = std::env::var_os("CRITERION_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/criterion"));
    home.join("ladder/absent.json")
}

fn ladder(c: &mut Criterion) {
    let mut absent = BTreeMap::new();
    let mut group = c.benchmark_group("ladder");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_secs(2));
    if runs("node", &["-e", "0"]) {
        group.bench_function("node_e0", |b| {
            b.iter(|| assert!(runs("node", &["-e", "0"]), "node -e 0 failed"))
        });
    } else {
        absent.insert(
            "node_e0",
            "`node -e 0` does not run (node not on PATH)".to_string(),
        );
    }
    match docker_image() {
        Ok(image) => {
            group.bench_function("docker_run", |b| {
                b.iter(|| {
                    assert!(
                        runs("docker", &["run", "--rm", &image, "true"]),
                        "docker run failed"
                    )
                })
            });
        }
        Err(why) => {
            absent.insert("docker_run", why);
        }
    }
    group.finish();
    let path = absent_path();
    let written = path
        .parent()
        .map(std::fs::create_dir_all)
        .transpose()
        .and_then(|_| {
            std::fs::write(
                &path,
                serde_json::to_string_pretty(&absent).expect("a map of strings serializes"),
            )
        });
    if let Err(e) = written {
        eprintln!("ladder: cannot write {}: {e}", path.display());
    }
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = ladder
}
criterion_main!(benches);
