//! Project automation for airlock, run as `cargo xtask <command> [args...]`.
//! It builds the guest components, then tests, demos, benchmarks or checks the host,
//! and generates WALLS.md from the test names (`cargo xtask walls`, see [`walls`]).

mod bench;

use anyhow::{Context, Result, bail};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

mod fuzz;
mod polyglot;
mod walls;

/// The target the guests are built for.
const TARGET: &str = "wasm32-wasip2";

/// The variable that tells the host, its tests and benches where the guests are.
const GUESTS_ENV: &str = "AIRLOCK_GUESTS";

/// What `cargo xtask help` prints.
const USAGE: &str = "usage: cargo xtask <command> [args...]

commands:
  build-guests   build every guest in guests/ for wasm32-wasip2 into target/: the
                 Rust ones with cargo, py-netcat and js-netcat with componentize-py
                 and componentize-js (installed into target/polyglot)
  test           build-guests, mcp-venv, strace, docker-registry, postgresql
                 and nginx, then
                 `cargo test --workspace [args...]`
  demo           build-guests, then `cargo run --release -p airlock -- demo [args...]`
  bench          build-guests, run the benchmark suite and write BENCHMARKS.md
                 (--quick: shorter runs); `cargo bench -p airlock` runs every bench
  lint           fmt check and clippy -D warnings, for the host and the guests;
                 fmt check for fuzz/
  ci             lint, then test [args...]
  walls          test, then write WALLS.md: each wall, its promise and the tests
                 attacking it with their status (--no-run: last run's statuses)
  fuzz           [--seconds N] [TARGET...]: run the cargo-fuzz targets in fuzz/
                 for N seconds each (nightly; see fuzz/README.md)
  mcp-venv       a Python venv in target/mcp-venv with the official `mcp` SDK,
                 for the interop test in host/tests/mcp.rs";

fn main() -> ExitCode {
    match xtask() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Parse the command line and run the command it names.
fn xtask() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let command = args.next();
    let rest: Vec<String> = args.collect();
    let root = repo_root();
    match command.as_deref() {
        Some("build-guests") => {
            if !rest.is_empty() {
                bail!("build-guests takes no arguments, got {rest:?}");
            }
            build_guests(&root).map(drop)
        }
        Some("test") => test(&root, &rest),
        Some("demo") => {
            let guests = build_guests(&root)?;
            let mut cmd = cargo(&root);
            cmd.args(["run", "--release", "-p", "airlock", "--", "demo"]);
            run(cmd.args(&rest).env(GUESTS_ENV, guests), "the demo failed")
        }
        Some("bench") => {
            let guests = build_guests(&root)?;
            bench::bench(&root, &guests, &rest)
        }
        Some("ci") => ci(&root, &rest),
        Some("mcp-venv") => {
            if !rest.is_empty() {
                bail!("mcp-venv takes no arguments, got {rest:?}");
            }
            let python = mcp_venv(&root)?;
            println!("the MCP interop venv is ready: {}", python.display());
            Ok(())
        }
        Some("lint") => lint(&root),
        Some("walls") => walls::walls(&root, &rest),
        Some("fuzz") => fuzz::fuzz(&root, &rest),
        None | Some("help" | "-h" | "--help") => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => bail!("unknown command `{other}`\n\n{USAGE}"),
    }
}

/// The repository root: the parent of this crate's directory, as `cargo
/// run` names it now. The directory compiled in is only the fallback: two
/// checkouts sharing one target directory share one xtask binary, and the
/// one built in the other checkout would work on that checkout.
fn repo_root() -> PathBuf {
    let xtask = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    xtask.parent().unwrap_or(&xtask).to_path_buf()
}

/// A `cargo` command (the same cargo that runs xtask) started in `root`.
fn cargo(root: &Path) -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(root);
    // `cargo run` gave xtask its own package variables; a build script that
    // reads them (ring's does) would see a change and rebuild everything
    // above it whenever `cargo xtask` and plain cargo alternate.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("CARGO_PKG_")
            || matches!(
                &*name,
                "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_BIN_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
            )
        {
            cmd.env_remove(&*name);
        }
    }
    cmd
}

/// Run `cmd` to completion; on failure say which command failed and `hint`.
fn run(cmd: &mut Command, hint: &str) -> Result<()> {
    let shown = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(OsStr::to_string_lossy)
        .collect::<Vec<_>>()
        .join(" ");
    eprintln!("xtask: running `{shown}`");
    let status = cmd
        .status()
        .with_context(|| format!("could not start `{shown}`: is it installed and on PATH?"))?;
    if !status.success() {
        bail!("`{shown}` failed ({status}): {hint}");
    }
    Ok(())
}

/// Make sure the standard library for [`TARGET`] is installed for the toolchain in use.
fn ensure_target(root: &Path) -> Result<()> {
    let listed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .current_dir(root)
        .output();
    match listed {
        Ok(out) if out.status.success() => {
            let installed = String::from_utf8_lossy(&out.stdout);
            if installed.lines().any(|line| line.trim() == TARGET) {
                return Ok(());
            }
            let mut add = Command::new("rustup");
            add.args(["target", "add", TARGET]).current_dir(root);
            let hint = "install it by hand with `rustup target add wasm32-wasip2`";
            run(&mut add, hint)
        }
        Ok(out) => bail!(
            "`rustup target list --installed` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => {
            // No rustup: accept a toolchain that already ships the target.
            let sysroot = Command::new("rustc").args(["--print", "sysroot"]).output();
            if let Ok(out) = sysroot {
                let lib = Path::new(String::from_utf8_lossy(&out.stdout).trim())
                    .join("lib/rustlib")
                    .join(TARGET);
                if lib.is_dir() {
                    return Ok(());
                }
            }
            bail!(
                "rustup could not be run ({e}) and the toolchain has no {TARGET} standard \
                 library: install rustup (https://rustup.rs) or add the {TARGET} target to \
                 your Rust toolchain some other way"
            )
        }
    }
}

/// Build every guest into `<root>/target/wasm32-wasip2/release` and return
/// that directory: the Rust guests with cargo, then the Python and JavaScript
/// ones (see [`polyglot`]).
fn build_guests(root: &Path) -> Result<PathBuf> {
    ensure_target(root)?;
    let target_dir = root.join("target");
    let mut cmd = cargo(root);
    cmd.args(["build", "--release", "--target", TARGET, "--manifest-path"])
        .arg(root.join("guests/Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target_dir);
    run(&mut cmd, "fix the guest build errors above (in guests/)")?;

    let out = target_dir.join(TARGET).join("release");
    let mut built = Vec::new();
    for entry in std::fs::read_dir(root.join("guests")).context("could not list guests/")? {
        let dir = entry?.path();
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap_or_default();
        // Only components; a helper library (airlock-guest) builds no .wasm.
        if !manifest.contains("cdylib") {
            continue;
        }
        let name = dir.file_name().unwrap_or_default().to_string_lossy();
        let wasm = out.join(format!("{}.wasm", name.replace('-', "_")));
        let size = std::fs::metadata(&wasm)
            .with_context(|| format!("guest `{name}` built but {} is missing", wasm.display()))?
            .len();
        built.push(format!("{name} {:.1} KiB", size as f64 / 1024.0));
    }
    built.extend(polyglot::build(root, &out)?);
    built.sort();
    println!(
        "built {} guests in {}: {}",
        built.len(),
        out.display(),
        built.join(", ")
    );
    Ok(out)
}

/// Build the guests, then run every test in the workspace against them.
fn test(root: &Path, rest: &[String]) -> Result<()> {
    let mut cmd = test_command(root, rest)?;
    run(&mut cmd, "fix the failing tests above")
}

/// Build the guests and the MCP venv, and return the `cargo test` command
/// that runs every test in the workspace against them.
fn test_command(root: &Path, rest: &[String]) -> Result<Command> {
    let guests = build_guests(root)?;
    // The MCP interop test needs it; if it cannot be made here, that test
    // tries once more and says why it skipped.
    if let Err(e) = mcp_venv(root) {
        if std::env::var_os("CI").is_some() {
            return Err(e.context("CI must run the Python MCP interop test"));
        }
        eprintln!("xtask: warning: no MCP interop venv ({e:#}); the Python interop test will skip");
    }
    // The syscall-level no-network test traces the CLI with strace; the
    // distribution tests push to and pull from a real loopback registry; the
    // kv and sql PostgreSQL tests run a real server (its binaries are not on
    // PATH: the probe looks where Debian puts them).
    for (probe, package, tests) in [
        (
            &["strace", "-V"][..],
            "strace",
            "the strace no-network test",
        ),
        (
            &["docker-registry", "--version"][..],
            "docker-registry",
            "the OCI registry tests (trust/tests/registry.rs)",
        ),
        (
            &["sh", "-c", "ls /usr/lib/postgresql/*/bin/initdb"][..],
            "postgresql",
            "the kv and sql PostgreSQL tests",
        ),
        (
            &["sh", "-c", "test -x /usr/sbin/nginx"][..],
            "nginx",
            "the replicas-behind-nginx test (host/tests/replicas.rs)",
        ),
    ] {
        if let Err(e) = ensure_debian_package(probe, package) {
            if std::env::var_os("CI").is_some() {
                return Err(e.context(format!("CI must run {tests}")));
            }
            eprintln!("xtask: warning: no {package} ({e:#}); {tests} will skip");
        }
    }
    let mut cmd = cargo(root);
    cmd.args(["test", "--workspace", "--no-fail-fast"])
        .args(rest)
        .env(GUESTS_ENV, guests);
    Ok(cmd)
}

/// What CI runs: formatting and lints for the host and the guests, then the tests.
fn ci(root: &Path, rest: &[String]) -> Result<()> {
    lint(root)?;
    test(root, rest)
}

/// Formatting and clippy (warnings denied) for the host workspace and the
/// guests, and formatting for the fuzz crate.
fn lint(root: &Path) -> Result<()> {
    const CHECK: [&str; 4] = ["fmt", "--all", "--", "--check"];
    const DENY: [&str; 3] = ["--", "-D", "warnings"];
    let guests = root.join("guests");
    let fix_fmt = "run `cargo fmt --all` (here, in guests/ and in fuzz/) to fix the formatting";
    run(cargo(root).args(CHECK), fix_fmt)?;
    run(cargo(&guests).args(CHECK), fix_fmt)?;
    // The fuzz crate is its own workspace; its code is thin wrappers around
    // `airlock::fuzzing`, which clippy checks with the host's tests.
    run(cargo(&root.join("fuzz")).args(CHECK), fix_fmt)?;

    let mut clippy = cargo(root);
    clippy
        .args(["clippy", "--workspace", "--all-targets"])
        .args(DENY);
    run(&mut clippy, "fix the clippy warnings above")?;
    ensure_target(root)?;
    let mut clippy = cargo(&guests);
    clippy
        .args(["clippy", "--release", "--target", TARGET])
        .args(DENY);
    clippy.env("CARGO_TARGET_DIR", root.join("target"));
    run(&mut clippy, "fix the clippy warnings above (in guests/)")
}

/// Make sure `probe` (a command and its arguments) runs, installing Debian's
/// `package` with apt-get (Debian, Ubuntu) when it does not: `strace` for
/// `host/tests/no_network.rs`, `docker-registry` for `trust/tests/registry.rs`,
/// `postgresql` for the kv tests (`tests/pg.rs`), `nginx` for
/// `host/tests/replicas.rs`.
fn ensure_debian_package(probe: &[&str], package: &str) -> Result<()> {
    let works = || {
        Command::new(probe[0])
            .args(&probe[1..])
            .output()
            .is_ok_and(|out| out.status.success())
    };
    if works() {
        return Ok(());
    }
    let hint =
        format!("install {package} by hand (Debian: `apt-get install {package}`; needs root)");
    run(Command::new("apt-get").arg("update"), &hint)?;
    run(
        Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends", package])
            .env("DEBIAN_FRONTEND", "noninteractive")
            // No service is started (nginx, PostgreSQL): tests start their own.
            .env("RUNLEVEL", "1"),
        &hint,
    )?;
    if !works() {
        bail!(
            "apt-get installed {package} but `{}` still fails",
            probe.join(" ")
        );
    }
    Ok(())
}

/// The script the interop test runs; its first line names the PyPI requirement.
const MCP_CLIENT_SCRIPT: &str = "host/tests/mcp_client.py";

/// Make `target/mcp-venv` (a Python venv with the official `mcp` SDK at the
/// version `host/tests/mcp_client.py` asks for) unless it is already there,
/// and return its python. The interop test in `host/tests/mcp.rs` uses it.
fn mcp_venv(root: &Path) -> Result<PathBuf> {
    let script = root.join(MCP_CLIENT_SCRIPT);
    let text = std::fs::read_to_string(&script)
        .with_context(|| format!("could not read {}", script.display()))?;
    let requirement = text
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("# requires: "))
        .map(str::trim)
        .with_context(|| {
            format!(
                "{} must start with `# requires: mcp==VERSION`",
                script.display()
            )
        })?;
    python_venv(&root.join("target/mcp-venv"), requirement, "the MCP SDK")
}

/// A Python venv at `venv` holding `requirement` (one pip requirement),
/// made unless a marker file says it already holds exactly that; returns
/// its python. `what` names the package in the error when pip fails.
fn python_venv(venv: &Path, requirement: &str, what: &str) -> Result<PathBuf> {
    let python = venv.join("bin/python");
    let marker = venv.join("airlock-requirement.txt");
    let installed = std::fs::read_to_string(&marker).unwrap_or_default();
    if python.is_file() && installed.trim() == requirement {
        return Ok(python);
    }
    eprintln!("xtask: installing {requirement} into {}", venv.display());
    let python3 = std::env::var_os("PYTHON").unwrap_or_else(|| "python3".into());
    let mut create = Command::new(&python3);
    create.arg("-m").arg("venv").arg("--clear").arg(venv);
    run(
        &mut create,
        "install Python 3.10+ with its venv module (Debian: python3-venv)",
    )?;
    let mut pip = Command::new(&python);
    pip.args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        requirement,
    ]);
    run(&mut pip, &format!("pip could not install {what} from PyPI"))?;
    std::fs::write(&marker, requirement)
        .with_context(|| format!("could not write {}", marker.display()))?;
    Ok(python)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_repository_root_is_the_checkout_cargo_runs_in() {
        let root = repo_root();
        assert!(
            root.join("xtask/Cargo.toml").is_file(),
            "{}",
            root.display()
        );
        let manifest = std::fs::read_to_string(root.join("Cargo.toml")).expect("the root manifest");
        assert!(manifest.contains("[workspace]"), "{}", root.display());
        let here =
            std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo names the crate's directory");
        assert_eq!(root, Path::new(&here).parent().expect("xtask has a parent"));
    }
}
