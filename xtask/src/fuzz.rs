//! `cargo xtask fuzz [--seconds N] [TARGET...]`: builds the cargo-fuzz
//! targets in `fuzz/` once (nightly, libFuzzer, no sanitizer: the code under
//! test is safe Rust), runs each for N seconds, and prints what each did
//! (executions, exec/s, coverage). A crash fails the command and names the
//! input libFuzzer saved.
//!
//! New inputs go to `target/fuzz/corpus/<target>/`, never into the checked-in
//! seeds (`fuzz/corpus/<target>/`); `world_check` also reads the built guests,
//! copied to `target/fuzz/guests/` (no `.wasm` is committed).

use anyhow::{Context, Result, bail};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// The fuzz targets, in the order they run.
pub const TARGETS: [&str; 4] = ["toolkit_config", "json_to_wit", "fetch_url", "world_check"];

/// The cargo-fuzz installed when none is found (builds with Rust 1.95).
const CARGO_FUZZ_VERSION: &str = "0.13.1";

/// Seconds per target when `--seconds` is not given.
const DEFAULT_SECONDS: u64 = 60;

/// Build flags shared by `cargo fuzz build` and `cargo fuzz run` (the same
/// flags, or `run` would rebuild).
const BUILD_FLAGS: [&str; 4] = ["--fuzz-dir", "fuzz", "--sanitizer", "none"];

/// What `cargo xtask fuzz --help` prints.
pub const USAGE: &str = "usage: cargo xtask fuzz [--seconds N] [TARGET...]

Runs each fuzz target (default: all of toolkit_config, json_to_wit, fetch_url,
world_check) for N seconds (default 60) with `cargo +nightly fuzz`, installing
cargo-fuzz if it is missing, and prints executions and coverage per target.";

/// What one target's run reported.
#[derive(Debug, Default)]
struct Outcome {
    executions: Option<u64>,
    exec_per_sec: Option<u64>,
    cov: Option<u64>,
    features: Option<u64>,
    corpus: Option<String>,
    peak_rss_mb: Option<u64>,
    artifact: Option<String>,
    success: bool,
}

/// Parses the arguments, then builds and runs the targets.
pub fn fuzz(root: &Path, args: &[String]) -> Result<()> {
    let mut seconds = DEFAULT_SECONDS;
    let mut targets = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let value = match arg.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            "--seconds" => Some(args.next().context("--seconds needs a number")?.as_str()),
            other => other.strip_prefix("--seconds="),
        };
        if let Some(value) = value {
            seconds = value.parse().ok().filter(|s| *s > 0).with_context(|| {
                format!("--seconds takes a whole number above 0, got `{value}`")
            })?;
        } else if TARGETS.contains(&arg.as_str()) {
            targets.push(arg.as_str());
        } else {
            bail!(
                "unknown fuzz target or option `{arg}`; the targets are {}\n\n{USAGE}",
                TARGETS.join(", ")
            );
        }
    }
    if targets.is_empty() {
        targets = TARGETS.to_vec();
    }

    ensure_nightly(root)?;
    ensure_cargo_fuzz(root)?;
    let guests = if targets.contains(&"world_check") {
        Some(copy_guests(root)?)
    } else {
        None
    };

    let started = Instant::now();
    let mut build = nightly_cargo(root);
    build.args(["fuzz", "build"]).args(BUILD_FLAGS);
    crate::run(
        &mut build,
        "fix the build errors of the fuzz crate (fuzz/) above",
    )?;
    eprintln!(
        "xtask: the fuzz targets built in {:.0}s",
        started.elapsed().as_secs_f64()
    );

    let mut results = Vec::new();
    for target in &targets {
        let extra = if *target == "world_check" {
            guests.clone()
        } else {
            None
        };
        results.push((*target, run_target(root, target, seconds, extra)?));
    }
    report(&results, seconds)
}

/// `cargo +nightly` in `root`, with the variables the outer `cargo run` set
/// for xtask removed: the nightly toolchain is used throughout, and build
/// scripts that watch `CARGO_PKG_*` (ring does) do not rebuild everything
/// whenever the targets were last built from a plain shell.
fn nightly_cargo(root: &Path) -> Command {
    let mut cmd = Command::new("cargo");
    cmd.arg("+nightly").current_dir(root);
    for var in [
        "RUSTUP_TOOLCHAIN",
        "CARGO",
        "RUSTC",
        "RUSTDOC",
        "CARGO_TARGET_DIR",
    ] {
        cmd.env_remove(var);
    }
    for (var, _) in std::env::vars_os() {
        let name = var.to_string_lossy();
        let set_by_cargo_run = name.starts_with("CARGO_PKG_")
            || name.starts_with("CARGO_MANIFEST_")
            || matches!(
                name.as_ref(),
                "CARGO_CRATE_NAME" | "CARGO_BIN_NAME" | "CARGO_PRIMARY_PACKAGE"
            );
        if set_by_cargo_run {
            cmd.env_remove(&var);
        }
    }
    cmd
}

/// cargo-fuzz needs a nightly toolchain (libFuzzer's instrumentation flags).
fn ensure_nightly(root: &Path) -> Result<()> {
    let out = nightly_cargo(root).arg("--version").output();
    match out {
        Ok(out) if out.status.success() => Ok(()),
        _ => bail!(
            "fuzzing needs a nightly Rust toolchain (`cargo +nightly` failed); install one \
             with `rustup toolchain install nightly`"
        ),
    }
}

/// Installs cargo-fuzz [`CARGO_FUZZ_VERSION`] unless some version is present.
fn ensure_cargo_fuzz(root: &Path) -> Result<()> {
    let out = nightly_cargo(root).args(["fuzz", "--version"]).output();
    if let Ok(out) = out
        && out.status.success()
    {
        let version = String::from_utf8_lossy(&out.stdout);
        if !version.contains(CARGO_FUZZ_VERSION) {
            eprintln!(
                "xtask: warning: using {} (this project tests cargo-fuzz {CARGO_FUZZ_VERSION})",
                version.lines().next().unwrap_or_default()
            );
        }
        return Ok(());
    }
    let mut install = crate::cargo(root);
    install.args([
        "install",
        "--locked",
        &format!("cargo-fuzz@{CARGO_FUZZ_VERSION}"),
    ]);
    crate::run(
        &mut install,
        "install cargo-fuzz by hand: cargo install --locked cargo-fuzz",
    )
}

/// Builds the guests and copies them to `target/fuzz/guests/` as seeds.
fn copy_guests(root: &Path) -> Result<PathBuf> {
    let built = crate::build_guests(root)?;
    let dir = root.join("target/fuzz/guests");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for entry in
        std::fs::read_dir(&built).with_context(|| format!("cannot list {}", built.display()))?
    {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "wasm") {
            let to = dir.join(path.file_name().unwrap_or_default());
            std::fs::copy(&path, &to)
                .with_context(|| format!("cannot copy {} to {}", path.display(), to.display()))?;
        }
    }
    Ok(dir)
}

/// Runs one target for `seconds`, echoing libFuzzer's output and reading
/// its final statistics from it.
fn run_target(root: &Path, target: &str, seconds: u64, extra: Option<PathBuf>) -> Result<Outcome> {
    let work = root.join("target/fuzz/corpus").join(target);
    std::fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
    let mut cmd = nightly_cargo(root);
    cmd.args(["fuzz", "run"]).args(BUILD_FLAGS).arg(target);
    // libFuzzer writes new inputs to the first directory and reads them all.
    cmd.arg(&work).arg(root.join("fuzz/corpus").join(target));
    let regressions = root.join("fuzz/regressions").join(target);
    if regressions.is_dir() {
        cmd.arg(regressions);
    }
    if let Some(dir) = extra {
        cmd.arg(dir);
    }
    cmd.args([
        "--".to_string(),
        format!("-max_total_time={seconds}"),
        "-print_final_stats=1".to_string(),
        "-timeout=60".to_string(),
    ]);
    cmd.stderr(Stdio::piped());
    eprintln!("xtask: fuzzing `{target}` for {seconds}s");
    let mut child = cmd
        .spawn()
        .context("could not start `cargo +nightly fuzz run`")?;
    let mut outcome = Outcome::default();
    let stderr = child.stderr.take().context("no stderr from cargo fuzz")?;
    for line in BufReader::new(stderr).lines() {
        let line = line.context("cannot read cargo fuzz's output")?;
        eprintln!("{line}");
        parse_line(&line, &mut outcome);
    }
    outcome.success = child.wait().context("cargo fuzz did not finish")?.success();
    Ok(outcome)
}

/// Reads the numbers libFuzzer prints: status lines (`#N ... cov: C ft: F
/// corp: K/S ...`), `stat::...: N` final stats and the saved crash input.
fn parse_line(line: &str, out: &mut Outcome) {
    if let Some((key, value)) = line.strip_prefix("stat::").and_then(|l| l.split_once(':')) {
        let n = value.trim().parse().ok();
        match key {
            "number_of_executed_units" => out.executions = n,
            "average_exec_per_sec" => out.exec_per_sec = n,
            "peak_rss_mb" => out.peak_rss_mb = n,
            _ => {}
        }
    } else if line.starts_with('#') && line.contains(" cov: ") {
        let mut words = line.split_whitespace();
        while let Some(word) = words.next() {
            match word {
                "cov:" => out.cov = words.next().and_then(|w| w.parse().ok()),
                "ft:" => out.features = words.next().and_then(|w| w.parse().ok()),
                "corp:" => out.corpus = words.next().map(str::to_string),
                _ => {}
            }
        }
    } else if let Some((_, path)) = line.split_once("Test unit written to ") {
        out.artifact = Some(path.trim().to_string());
    }
}

/// Prints one line per target and fails if any target failed.
fn report(results: &[(&str, Outcome)], seconds: u64) -> Result<()> {
    let show = |n: Option<u64>| n.map_or("?".to_string(), |n| n.to_string());
    println!("\nfuzzing results ({seconds}s per target):");
    println!(
        "{:<15} {:>12} {:>8} {:>7} {:>8} {:>12} {:>8}  result",
        "target", "executions", "exec/s", "cov", "ft", "corpus", "rss MB"
    );
    let mut failed = Vec::new();
    for (target, o) in results {
        let result = if o.success { "ok" } else { "FAILED" };
        println!(
            "{:<15} {:>12} {:>8} {:>7} {:>8} {:>12} {:>8}  {result}",
            target,
            show(o.executions),
            show(o.exec_per_sec),
            show(o.cov),
            show(o.features),
            o.corpus.as_deref().unwrap_or("?"),
            show(o.peak_rss_mb),
        );
        if !o.success {
            failed.push(match &o.artifact {
                Some(path) => format!(
                    "`{target}` crashed on {path}: reproduce with `cargo +nightly fuzz run \
                     --fuzz-dir fuzz -s none {target} {path}`, minimize with `cargo +nightly \
                     fuzz tmin --fuzz-dir fuzz -s none {target} {path}`, fix it and keep the \
                     input in fuzz/regressions/{target}/"
                ),
                None => format!("`{target}` failed without saving an input; see its output above"),
            });
        }
    }
    if !failed.is_empty() {
        bail!("{}", failed.join("\n"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libfuzzer_lines_are_read() {
        let mut o = Outcome::default();
        for line in [
            "#4096\tpulse  cov: 812 ft: 2301 corp: 97/5120b lim: 43 exec/s: 2048 rss: 80Mb",
            "#25000\tDONE   cov: 900 ft: 2500 corp: 120/9Kb lim: 100 exec/s: 833 rss: 90Mb",
            "stat::number_of_executed_units: 25000",
            "stat::average_exec_per_sec:     833",
            "stat::peak_rss_mb:              91",
            "artifact_prefix='/r/fuzz/artifacts/x/'; Test unit written to /r/fuzz/artifacts/x/crash-ab",
        ] {
            parse_line(line, &mut o);
        }
        assert_eq!(o.executions, Some(25000));
        assert_eq!(o.exec_per_sec, Some(833));
        assert_eq!((o.cov, o.features), (Some(900), Some(2500)));
        assert_eq!(o.corpus.as_deref(), Some("120/9Kb"));
        assert_eq!(o.peak_rss_mb, Some(91));
        assert_eq!(o.artifact.as_deref(), Some("/r/fuzz/artifacts/x/crash-ab"));
    }
}
