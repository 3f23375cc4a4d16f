//! How much memory a live, idle job holds, and how many can live at once.
//!
//! Run with `cargo bench -p airlock --bench density` (a plain harness, not
//! criterion: it measures memory, not time). A host whose pool is sized for
//! [`TARGET`] + 512 jobs (so its memory slots shrink from the default 4 GiB
//! reservation to the 64 MiB limit plus guard, see `engine::build_engine`)
//! loads `word_count`, then keeps instantiating it with `Airlock::idle` (a
//! job store with every limit armed and an instance in it, never called),
//! keeping every one alive, until [`TARGET`] instances live or the first one
//! fails, whose typed error is reported. Resident memory is read from
//! `/proc/self/statm` before and after; the difference divided by the count
//! is the memory one idle trivial job holds. It also counts memory mappings
//! (`/proc/self/maps`), which the kernel caps at `vm.max_map_count`. Results go to
//! `$CRITERION_HOME/density/results.json` for `cargo xtask bench`.

mod common;

use std::path::PathBuf;
use std::time::Instant;

use airlock::engine::PoolSize;
use airlock::{Budget, Capabilities, Grants, HostOptions, IdleInstance, JobError};
use anyhow::{Context, Result};

/// Live instances the issue asks for.
const TARGET: usize = 20_000;

/// Jobs of the bench's host that may run at once (fiber stacks).
const RUNNING: u32 = 256;

/// Memory mappings of this process (the kernel caps them at
/// `vm.max_map_count`), read into `buf`: at the cap, `malloc` can no longer
/// map a large buffer, so it is allocated before the instances.
fn maps(buf: &mut Vec<u8>) -> Result<usize> {
    use std::io::Read;
    buf.clear();
    std::fs::File::open("/proc/self/maps")
        .and_then(|mut f| f.read_to_end(buf))
        .context("reading /proc/self/maps")?;
    Ok(buf.iter().filter(|&&b| b == b'\n').count())
}

/// `vm.max_map_count`, if readable.
fn max_map_count() -> Option<u64> {
    std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Resident set size of this process, in KiB.
fn rss_kib() -> Result<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").context("reading /proc/self/statm")?;
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .context("/proc/self/statm has no resident field")?
        .parse()
        .context("/proc/self/statm's resident field is not a number")?;
    Ok(pages * PAGE_KIB)
}

/// `/proc/self/statm` counts base pages: 4 KiB on the x86-64 and aarch64
/// Linux machines this project runs on.
const PAGE_KIB: u64 = 4;

fn results_path() -> PathBuf {
    let home = std::env::var_os("CRITERION_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/criterion"));
    home.join("density/results.json")
}

fn main() -> Result<()> {
    let rt = common::runtime();
    let pool = PoolSize {
        max_jobs: u32::try_from(TARGET + 512).expect("fits"),
        // Idle instances hold no stack: size the stacks for running jobs,
        // so that their guard pages do not take the instances' mappings.
        max_running: Some(RUNNING),
        max_memory_bytes: 64 << 20,
        ..PoolSize::default()
    };
    let (host, _cache) = common::host(
        Capabilities::default(),
        HostOptions {
            pool,
            ..HostOptions::default()
        },
    );
    let tool = common::load(&host, "word_count", Grants::default(), Budget::default());
    // Touch the path once so lazily built state is not counted per instance.
    drop(
        rt.block_on(host.idle(&tool))
            .context("the first idle instance")?,
    );

    let before = rss_kib()?;
    let mut maps_buf = Vec::with_capacity(64 << 20);
    let maps_before = maps(&mut maps_buf)?;
    let started = Instant::now();
    let mut live: Vec<IdleInstance> = Vec::with_capacity(TARGET);
    let mut failure: Option<JobError> = None;
    while live.len() < TARGET {
        match rt.block_on(host.idle(&tool)) {
            Ok(instance) => live.push(instance),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    let elapsed = started.elapsed();
    let after = rss_kib()?;
    let maps_after = maps(&mut maps_buf)?;
    let count = live.len();
    let maps_per_instance = (maps_after.saturating_sub(maps_before)) as f64 / count.max(1) as f64;
    let per_instance = (after.saturating_sub(before)) as f64 / count.max(1) as f64;
    drop(live);

    let failure_text = failure.as_ref().map(|e| format!("{} ({e})", e.kind()));
    println!(
        "density: {count} live idle word_count instances (target {TARGET}) in {:.2} s; \
         RSS {before} KiB -> {after} KiB = {per_instance:.1} KiB per instance; \
         {maps_per_instance:.1} memory mappings per instance (vm.max_map_count {}){}",
        elapsed.as_secs_f64(),
        max_map_count().map_or("unknown".into(), |n| n.to_string()),
        failure_text
            .as_deref()
            .map(|f| format!("; stopped by: {f}"))
            .unwrap_or_default()
    );
    let results = serde_json::json!({
        "instances": count,
        "target": TARGET,
        "rss_before_kib": before,
        "rss_after_kib": after,
        "kib_per_instance": per_instance,
        "seconds": elapsed.as_secs_f64(),
        "maps_per_instance": maps_per_instance,
        "max_map_count": max_map_count(),
        "failure": failure_text,
    });
    let path = results_path();
    std::fs::create_dir_all(path.parent().context("results path has a parent")?)?;
    std::fs::write(&path, serde_json::to_string_pretty(&results)?)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
