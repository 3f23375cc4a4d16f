//! A tool's WIT in the layout wit-bindgen, componentize-py and jco expect,
//! `wit/world.wit` plus the host's WIT copied to `wit/deps/airlock-verbs/`,
//! works with every command that reads WIT (`schema`, `mcp`'s `tools/list`,
//! `inspect --wit`); a copy of another airlock:verbs version is a usage error
//! naming it, never a wit-parser panic (exit 101). `explain` reads no WIT.
//!
//! Built guests come from `cargo xtask build-guests` (or `$AIRLOCK_GUESTS`).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use rmcp::ServiceExt;
use rmcp::transport::TokioChildProcess;
use serde_json::Value;
use tempfile::TempDir;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The built component of guest `name` (e.g. `word_count`).
fn guest(name: &str) -> PathBuf {
    common::guest_path(name)
}

/// The compiled-component cache shared by this test process.
fn cache() -> &'static Path {
    common::scratch()
}

/// `airlock ARGS` run in `cwd` with the shared cache and no stdin.
fn command(cwd: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_airlock"));
    cmd.args(args)
        .env("AIRLOCK_CACHE", cache().join("cache"))
        .env("AIRLOCK_CACHE_KEY", cache().join("cache.key"))
        .current_dir(cwd)
        .stdin(Stdio::null());
    cmd
}

/// Asserts the exit code; returns (stdout, stderr).
fn expect_exit(out: &Output, code: i32) -> (String, String) {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(code),
        "--- stdout:\n{stdout}\n--- stderr:\n{stderr}"
    );
    (stdout, stderr)
}

/// The word-count tool as its author lays it out: `wit/world.wit` (the
/// guest's own WIT) and `wit/deps/airlock-verbs/` (the host's `wit/*.wit`,
/// each file's `from -> to` replaced), and `toolkit.toml` pointing at both.
struct ToolDir {
    dir: TempDir,
}

impl ToolDir {
    fn new(replace: Option<(&str, &str)>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let wit = dir.path().join("wit");
        let deps = wit.join("deps/airlock-verbs");
        std::fs::create_dir_all(&deps).unwrap();
        std::fs::copy(
            root().join("guests/word-count/wit/world.wit"),
            wit.join("world.wit"),
        )
        .unwrap();
        for entry in std::fs::read_dir(root().join("wit")).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "wit") {
                let mut text = std::fs::read_to_string(&path).unwrap();
                if let Some((from, to)) = replace {
                    text = text.replace(from, to);
                }
                std::fs::write(deps.join(path.file_name().unwrap()), text).unwrap();
            }
        }
        let toolkit = format!(
            "[tools.word-count]\ncomponent = {:?}\nwit = \"wit\"\n",
            guest("word_count").display().to_string()
        );
        std::fs::write(dir.path().join("toolkit.toml"), toolkit).unwrap();
        Self { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn run(&self, args: &[&str]) -> Output {
        command(self.path(), args).output().unwrap()
    }
}

/// The doc comment of the guest's `count`, from wit/world.wit.
const COUNT_DOCS: &str = "Count the words, lines, characters and bytes of `text`.";

/// The deps copy of another version: what every command must say.
fn assert_version_error(stderr: &str) {
    for needle in [
        "deps/airlock-verbs",
        "airlock:verbs@0.2.0",
        "this host serves airlock:verbs@0.1.0",
    ] {
        assert!(stderr.contains(needle), "want {needle:?} in:\n{stderr}");
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
}

const OTHER_VERSION: Option<(&str, &str)> = Some(("airlock:verbs@0.1.0", "airlock:verbs@0.2.0"));

#[test]
fn schema_reads_a_wit_with_the_verbs_in_deps() {
    let tool = ToolDir::new(None);
    let (stdout, _) = expect_exit(&tool.run(&["schema", "toolkit.toml"]), 0);
    let v: Value = serde_json::from_str(&stdout).unwrap();
    let description = v["tools"][0]["description"].as_str().unwrap();
    assert!(description.contains(COUNT_DOCS), "{description}");
    let words = &v["tools"][0]["outputSchema"]["properties"]["words"]["description"];
    assert_eq!(words, "Runs of non-whitespace characters.");
}

#[test]
fn schema_names_a_deps_copy_of_another_verbs_version() {
    let tool = ToolDir::new(OTHER_VERSION);
    let (_, stderr) = expect_exit(&tool.run(&["schema", "toolkit.toml"]), 2);
    assert_version_error(&stderr);
}

#[test]
fn inspect_wit_reads_a_wit_with_the_verbs_in_deps() {
    let tool = ToolDir::new(None);
    let wasm = guest("word_count");
    let args = ["inspect", "--json", wasm.to_str().unwrap(), "--wit", "wit"];
    let (stdout, _) = expect_exit(&tool.run(&args), 0);
    assert!(stdout.contains(COUNT_DOCS), "{stdout}");
}

#[test]
fn inspect_wit_names_a_deps_copy_of_another_verbs_version() {
    let tool = ToolDir::new(OTHER_VERSION);
    let wasm = guest("word_count");
    let args = ["inspect", wasm.to_str().unwrap(), "--wit", "wit"];
    let (_, stderr) = expect_exit(&tool.run(&args), 2);
    assert_version_error(&stderr);
}

#[test]
fn an_edited_deps_copy_at_our_version_is_named_not_a_panic() {
    let tool = ToolDir::new(Some(("interface log", "/// Ours now.\ninterface log")));
    let (_, stderr) = expect_exit(&tool.run(&["schema", "toolkit.toml"]), 2);
    assert!(stderr.contains("log.wit differ"), "{stderr}");
    assert!(stderr.contains("`airlock wit` writes it"), "{stderr}");
}

#[test]
fn mcp_refuses_to_start_on_a_deps_copy_of_another_verbs_version() {
    let tool = ToolDir::new(OTHER_VERSION);
    let (_, stderr) = expect_exit(&tool.run(&["mcp", "toolkit.toml"]), 2);
    assert_version_error(&stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_tools_list_reads_a_wit_with_the_verbs_in_deps() {
    let tool = ToolDir::new(None);
    let stderr_path = tool.path().join("mcp-stderr.txt");
    let stderr = std::fs::File::create(&stderr_path).unwrap();
    let cmd = command(tool.path(), &["mcp", "toolkit.toml"]);
    let (transport, _) = TokioChildProcess::builder(tokio::process::Command::from(cmd))
        .stderr(stderr)
        .spawn()
        .expect("cannot start airlock mcp");
    let client = ().serve(transport).await.unwrap_or_else(|e| {
        panic!(
            "the MCP session did not start: {e}\n--- server stderr:\n{}",
            std::fs::read_to_string(&stderr_path).unwrap_or_default()
        )
    });
    let tools = client.list_all_tools().await.unwrap();
    assert_eq!(tools.len(), 1, "{tools:?}");
    let description = tools[0].description.as_deref().unwrap_or_default();
    assert!(description.contains(COUNT_DOCS), "{description}");
    client.cancel().await.unwrap();
}
