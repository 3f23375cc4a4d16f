//! `airlock run --toolkit FILE --tool NAME` with `--timeout`, `--memory`,
//! `--fuel` and `--output`: a flag may narrow the toolkit's budget (and the
//! narrower limit is the one that stops the job) but never widen it (a usage
//! error, exit 2, naming the toolkit's value and where to change it). A bare
//! component has no toolkit budget: there the flags set the budget.
//!
//! Built guests come from `cargo xtask build-guests` (or `$AIRLOCK_GUESTS`).

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use serde_json::Value;
use tempfile::TempDir;

/// The built component of guest `name` (e.g. `spin`).
fn guest(name: &str) -> String {
    common::guest_string(name)
}

/// The scratch directory: `toolkit.toml` and the compiled-component cache.
fn scratch() -> &'static Path {
    static DIR: OnceLock<TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("airlock-budget-flags-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .unwrap();
        let kit = format!(
            r#"
[tools.spin]
component = {spin:?}
[tools.spin.budget]
timeout = "1s"
fuel = 100000000000

[tools.hog]
component = {hog:?}
[tools.hog.budget]
memory = "32MiB"

[tools.flood]
component = {flood:?}
[tools.flood.budget]
output = "2MiB"
"#,
            spin = guest("spin"),
            hog = guest("hog"),
            flood = guest("flood"),
        );
        std::fs::write(dir.path().join("toolkit.toml"), kit).unwrap();
        dir
    })
    .path()
}

/// `airlock run --toolkit toolkit.toml --tool TOOL FLAGS... --args ARGS`.
fn run_tool(tool: &str, flags: &str, args: &str) -> Output {
    let mut argv = vec!["run", "--toolkit", "toolkit.toml", "--tool", tool];
    argv.extend(flags.split_whitespace());
    argv.extend(["--args", args]);
    Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(&argv)
        .env("AIRLOCK_CACHE", scratch().join("cache"))
        .env("AIRLOCK_CACHE_KEY", scratch().join("cache.key"))
        .current_dir(scratch())
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Asserts exit 2 and exactly `message` after `airlock: ` on stderr.
fn expect_usage(out: &Output, message: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(stderr.trim_end(), format!("airlock: {message}"));
}

/// The toolkit's budget error for `flag` asking for `given`.
fn widen_message(flag: &str, given: &str, tool: &str, key: &str, allowed: &str) -> String {
    format!(
        "{flag} {given} would widen tool `{tool}`'s budget ({key} = {allowed} in toolkit.toml); \
         flags can only narrow a toolkit's budget: raise `{key}` under [tools.{tool}.budget] \
         in the toolkit instead"
    )
}

/// Asserts a `--json` budget failure of kind `budget` with `needle`.
fn expect_budget(out: &Output, budget: &str, needle: &str) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(4), "{stdout}");
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["error"]["detail"]["budget"], budget, "{v}");
    let message = v["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(needle), "want {needle:?} in {message}");
}

#[test]
fn timeout_cannot_widen_a_toolkits_budget() {
    let out = run_tool("spin", "--timeout 4s", "{}");
    expect_usage(
        &out,
        &widen_message("--timeout", "4s", "spin", "timeout", "1s"),
    );
}

#[test]
fn timeout_narrows_a_toolkits_budget() {
    let out = run_tool("spin", "--json --timeout 200ms", "{}");
    expect_budget(&out, "deadline", "past its 200ms deadline");
}

#[test]
fn fuel_cannot_widen_a_toolkits_budget() {
    let out = run_tool("spin", "--fuel 100000000001", "{}");
    let message = widen_message("--fuel", "100000000001", "spin", "fuel", "100000000000");
    expect_usage(&out, &message);
}

#[test]
fn fuel_narrows_a_toolkits_budget() {
    let out = run_tool("spin", "--json --fuel 10000000", "{}");
    expect_budget(&out, "fuel", "used all 10000000 units of fuel");
}

#[test]
fn memory_cannot_widen_a_toolkits_budget() {
    let out = run_tool("hog", "--memory 64MiB", r#"{"chunk-kib":256}"#);
    expect_usage(
        &out,
        &widen_message("--memory", "64MiB", "hog", "memory", "32MiB"),
    );
}

#[test]
fn memory_narrows_a_toolkits_budget() {
    let out = run_tool("hog", "--json --memory 16MiB", r#"{"chunk-kib":256}"#);
    expect_budget(&out, "memory", "grow its memory past 16MiB");
}

#[test]
fn output_cannot_widen_a_toolkits_budget() {
    let out = run_tool("flood", "--call print --output 4MiB", r#"{"bytes": 10}"#);
    expect_usage(
        &out,
        &widen_message("--output", "4MiB", "flood", "output", "2MiB"),
    );
}

#[test]
fn output_narrows_a_toolkits_budget() {
    // 1.5 MB fits the toolkit's 2MiB but not the flag's 1MiB.
    let out = run_tool("flood", "--json --call print", r#"{"bytes": 1500000}"#);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let flags = "--json --call print --output 1MiB";
    let out = run_tool("flood", flags, r#"{"bytes": 1500000}"#);
    expect_budget(&out, "output", "more than 1MiB to stdout or stderr");
}

#[test]
fn a_flag_equal_to_the_toolkits_value_is_not_a_widening() {
    let out = run_tool("spin", "--json --timeout 1s --fuel 10000000", "{}");
    expect_budget(&out, "fuel", "used all 10000000 units of fuel");
}

#[test]
fn a_bare_component_takes_any_budget_from_its_flags() {
    // The default budget is 10s and 2e9 fuel; a bare component may go higher.
    let out = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(["run", &guest("spin"), "--json", "--timeout", "300ms"])
        .args(["--fuel", "100000000000", "--memory", "128MiB"])
        .env("AIRLOCK_CACHE", scratch().join("cache"))
        .env("AIRLOCK_CACHE_KEY", scratch().join("cache.key"))
        .current_dir(scratch())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    expect_budget(&out, "deadline", "past its 300ms deadline");
}
