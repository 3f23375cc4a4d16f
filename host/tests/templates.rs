//! The templates of `airlock new`, proved end to end: for each language, make
//! `hello` (verbs: log), run exactly the shell commands of its generated
//! README (build, `airlock run`, `airlock mcp`), and check the result and the
//! log line, with the official Rust MCP SDK as the agent. The commands are
//! parsed from the README's fenced `sh` blocks, so README and test cannot drift.
//!
//! Rust always runs. Python and JavaScript need python3/pip and node/npm and
//! their packages from PyPI and npm: when the README's install step fails the
//! test prints why and skips, unless the variable `CI` is set, where it fails.
//!
//! The Rust project's `target/` is a link to one directory under the
//! workspace's target dir, shared by every run, so wit-bindgen (the version
//! the guests use) compiles once. pip and npm keep their own caches.
//!
//! With `AIRLOCK_TEMPLATE_TIMINGS=1` each test also prints its numbers for
//! BENCHMARKS.md: the first `airlock run` (compiling, no cache) against a
//! cached one, and the median of 50 `tools/call`s inside one `airlock mcp`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, ContentBlock};
use rmcp::transport::TokioChildProcess;
use serde_json::{Value, json};

/// The workspace's target directory (the parent of `CARGO_TARGET_TMPDIR`).
fn target_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).to_path_buf()
}

/// A fresh directory for one language's project, inside the workspace's
/// target dir (so the repository's rust-toolchain.toml applies, and the
/// project's empty `[workspace]` table is what keeps it standalone).
fn scratch(lang: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("airlock-new-{lang}-"))
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("cannot create a scratch directory")
}

/// A directory holding only an `airlock` link to the binary under test, to
/// put first on PATH: the README says `airlock`.
fn bin_dir(scratch: &Path) -> PathBuf {
    let dir = scratch.join("bin");
    std::fs::create_dir_all(&dir).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_airlock"), dir.join("airlock")).unwrap();
    dir
}

/// `sh -c line` in `dir` as a user's shell would run it: PATH with the
/// `airlock` under test first, a private component cache, and none of the
/// variables cargo set for this test (CARGO_TARGET_DIR above all, which
/// would move the Rust build away from where the toolkit looks).
fn shell(line: &str, dir: &Path, bin: &Path, cache: &Path) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(line).current_dir(dir);
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("CARGO_") && name != "CARGO_HOME" {
            cmd.env_remove(&*name);
        }
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut paths = vec![bin.to_path_buf()];
    paths.extend(std::env::split_paths(&path));
    cmd.env("PATH", std::env::join_paths(paths).unwrap())
        .env("AIRLOCK_CACHE", cache);
    cmd
}

fn describe(line: &str, out: &Output) -> String {
    format!(
        "`{line}` exited with {}\n--- stdout:\n{}\n--- stderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The commands of each fenced `sh` block of `readme`, without comments
/// and blank lines.
fn sh_blocks(readme: &str) -> Vec<Vec<String>> {
    let mut blocks = Vec::new();
    let mut current: Option<Vec<String>> = None;
    for line in readme.lines() {
        match (&mut current, line.trim()) {
            (None, "```sh") => current = Some(Vec::new()),
            (Some(_), "```") => blocks.push(current.take().unwrap()),
            (Some(block), l) if !l.is_empty() && !l.starts_with('#') => block.push(l.to_string()),
            _ => {}
        }
    }
    assert!(current.is_none(), "an unclosed sh block in:\n{readme}");
    blocks
}

/// Whether a build command installs a toolchain or packages from a registry.
fn installs(line: &str) -> bool {
    ["rustup target add", "-m venv", "pip install", "npm install"]
        .iter()
        .any(|w| line.contains(w))
}

/// Makes `hello` in `lang`, runs its README and checks what `airlock run` and
/// `airlock mcp` return. Rust is required; the others are skipped, saying
/// why, when their install step fails outside CI.
async fn prove(lang: &str) {
    let scratch = scratch(lang);
    let root = scratch.path();
    let bin = bin_dir(root);
    let cache = root.join("cache");
    let out = shell(
        &format!("airlock new hello --lang {lang}"),
        root,
        &bin,
        &cache,
    )
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", describe("airlock new", &out));
    let project = root.join("hello");
    if lang == "rust" {
        let shared = target_dir().join("airlock-new-rust");
        std::fs::create_dir_all(&shared).unwrap();
        std::os::unix::fs::symlink(&shared, project.join("target")).unwrap();
    }
    let readme = std::fs::read_to_string(project.join("README.md")).unwrap();
    let blocks = sh_blocks(&readme);
    let [build, run, serve] = blocks.as_slice() else {
        panic!("want three sh blocks (build, run, serve) in:\n{readme}");
    };

    let started = Instant::now();
    for line in build {
        let out = shell(line, &project, &bin, &cache).output().unwrap();
        if out.status.success() {
            continue;
        }
        let why = describe(line, &out);
        if lang != "rust" && installs(line) && std::env::var_os("CI").is_none() {
            eprintln!("skipping the {lang} template: its toolchain did not install\n{why}");
            return;
        }
        panic!("the {lang} template does not build: {why}");
    }
    let build_time = started.elapsed();

    // `airlock run`, exactly as the README says; first with an empty cache.
    let [run] = run.as_slice() else {
        panic!("want one command in the run block: {run:?}")
    };
    assert!(run.starts_with("airlock run "), "{run}");
    let timed = |label: &str| {
        let started = Instant::now();
        let out = shell(run, &project, &bin, &cache).output().unwrap();
        let took = started.elapsed();
        assert!(out.status.success(), "{label}: {}", describe(run, &out));
        (out, took)
    };
    let (out, cold) = timed("cold");
    let (_, cached) = timed("cached");
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result, json!({"message": "hello, world"}));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("[info] greeting world"), "{stderr}");

    // `airlock mcp`, exactly as the README says, with an MCP client.
    let [serve] = serve.as_slice() else {
        panic!("want one command in the serve block: {serve:?}")
    };
    let words: Vec<&str> = serve.split_whitespace().collect();
    assert_eq!(words[..2], ["airlock", "mcp"], "{serve}");
    let mut server = tokio::process::Command::new(env!("CARGO_BIN_EXE_airlock"));
    server
        .args(&words[1..])
        .current_dir(&project)
        .env("AIRLOCK_CACHE", &cache);
    let log_path = root.join("mcp-stderr.txt");
    let log = std::fs::File::create(&log_path).unwrap();
    let (transport, _) = TokioChildProcess::builder(server)
        .stderr(log)
        .spawn()
        .expect("cannot start airlock mcp");
    let server_log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let client = ().serve(transport).await.unwrap_or_else(|e| {
        panic!(
            "the MCP session did not start: {e}\n--- server stderr:\n{}",
            server_log()
        )
    });
    let tools = client.list_all_tools().await.unwrap();
    let [tool] = tools.as_slice() else {
        panic!("want one tool, got {tools:?}")
    };
    assert_eq!(tool.name, "hello__greet");
    // The WIT doc comment of `greet` is the agent's description.
    assert_eq!(
        tool.description.as_deref(),
        Some("Greet `name`: returns the greeting. Logs one line per call."),
    );
    let call = |name: &str| {
        let params = CallToolRequestParams::new("hello__greet")
            .with_arguments(json!({ "name": name }).as_object().cloned().unwrap());
        client.call_tool(params)
    };
    let result = call("agent").await.unwrap();
    assert_eq!(result.is_error, Some(false), "{result:?}\n{}", server_log());
    assert_eq!(
        result.structured_content,
        Some(json!({"message": "hello, agent"}))
    );
    match result.content.as_slice() {
        [ContentBlock::Text(t)] => assert_eq!(t.text, r#"{"message":"hello, agent"}"#),
        other => panic!("want one text block, got {other:?}"),
    }

    let timings = std::env::var_os("AIRLOCK_TEMPLATE_TIMINGS").is_some();
    let mut calls = Vec::new();
    for i in 0..if timings { 50 } else { 0 } {
        let started = Instant::now();
        let r = call(&format!("agent {i}")).await.unwrap();
        calls.push(started.elapsed());
        assert_eq!(r.is_error, Some(false), "{r:?}");
    }
    client.cancel().await.unwrap();
    let log = server_log();
    assert!(
        log.contains("hello__greet job") && log.contains("[info] greeting agent"),
        "{log}"
    );

    if timings {
        calls.sort();
        let wasm = project.join(match lang {
            "rust" => "target/wasm32-wasip2/release/hello.wasm",
            _ => "hello.wasm",
        });
        let size = std::fs::metadata(&wasm).unwrap().len() as f64 / 1024.0;
        let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
        eprintln!(
            "| {lang} | {size:.0} KiB | {:.0} s | {} | {} | {} | {} |",
            build_time.as_secs_f64(),
            ms(cold),
            ms(cached),
            ms(calls[calls.len() / 2]),
            ms(calls[calls.len() * 99 / 100]),
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rust_template_builds_runs_and_serves() {
    prove("rust").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_template_builds_runs_and_serves() {
    prove("python").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_javascript_template_builds_runs_and_serves() {
    prove("js").await;
}

/// `airlock ARGS` in `dir`, with its output.
fn airlock(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn new_refuses_bad_names_unknown_verbs_and_existing_directories() {
    let dir = scratch("errors");
    let (code, _, err) = airlock(dir.path(), &["new", "My_Tool", "--lang", "rust"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("`My_Tool` cannot name a tool") && err.contains("page-summary"),
        "{err}"
    );
    let (code, _, err) = airlock(dir.path(), &["new", "t", "--lang", "go"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("choose rust, python or js"), "{err}");
    let (code, _, err) = airlock(
        dir.path(),
        &["new", "t", "--lang", "js", "--verbs", "log,shell"],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("`shell` is not a verb"), "{err}");
    assert!(!dir.path().join("t").exists());

    let (code, out, err) = airlock(
        dir.path(),
        &["new", "signer", "--lang", "python", "--verbs", "sign,fetch"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("signer/wit/world.wit") && out.contains("signer/signer.key"),
        "{out}"
    );
    let world = std::fs::read_to_string(dir.path().join("signer/wit/world.wit")).unwrap();
    assert!(
        world.contains("import airlock:verbs/sign@0.1.0;"),
        "{world}"
    );
    assert!(
        world.contains("import airlock:verbs/fetch@0.1.0;"),
        "{world}"
    );
    assert!(!world.contains("verbs/log"), "{world}");
    let (code, _, err) = airlock(
        dir.path(),
        &["new", "counter", "--lang", "rust", "--verbs", "kv"],
    );
    assert_eq!(code, 0, "{err}");
    let world = std::fs::read_to_string(dir.path().join("counter/wit/world.wit")).unwrap();
    assert!(world.contains("import airlock:verbs/kv@0.1.0;"), "{world}");
    let config = std::fs::read_to_string(dir.path().join("counter/airlock.toml")).unwrap();
    assert!(config.contains("[kv.counter]"), "{config}");
    let (code, _, err) = airlock(dir.path(), &["new", "signer", "--lang", "rust"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("already exists"), "{err}");
    assert!(!dir.path().join("signer/Cargo.toml").exists());
}

#[test]
fn wit_writes_the_package_once_and_refuses_a_changed_copy_without_force() {
    let dir = scratch("wit");
    // One file per verb, plus types.wit and worlds.wit: the repository's wit/.
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../wit"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "wit"))
        })
        .count();
    let (code, out, err) = airlock(dir.path(), &["wit", "--out", "tool"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.matches("wrote ").count(), files, "{out}");
    let log = dir.path().join("tool/wit/deps/airlock-verbs/log.wit");
    assert!(
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("interface log")
    );

    let (code, out, _) = airlock(dir.path(), &["wit", "--out", "tool"]);
    assert_eq!(code, 0);
    assert_eq!(out.matches("unchanged ").count(), files, "{out}");

    std::fs::write(&log, "// mine\n").unwrap();
    let (code, _, err) = airlock(dir.path(), &["wit", "--out", "tool"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("log.wit exists and differs") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "// mine\n");
    let (code, out, err) = airlock(dir.path(), &["wit", "--out", "tool", "--force"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("replaced ") && out.contains("log.wit"),
        "{out}"
    );
    assert!(
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("interface log")
    );
}
