//! End-to-end tests of the `airlock` binary: each test runs the real
//! executable on the built guest components and checks its exit code and
//! what it printed (stdout for results and `--json`, stderr for the one-line
//! `airlock: KIND: message` errors).
//!
//! Exit codes: 0 ok, 1 the tool's own `err`, 2 usage or configuration,
//! 3 world refused, 4 budget, 5 trap, 6 internal.
//!
//! The guests are built by `cargo xtask build-guests` into
//! `<workspace>/target/wasm32-wasip2/release` (or `$AIRLOCK_GUESTS`). Every
//! invocation shares one compiled-component cache (`AIRLOCK_CACHE`) and runs
//! in an empty directory, so no `./airlock.toml` is picked up by accident.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::Value;
use tempfile::TempDir;

/// A host config with the HMAC key `webhook` made from the secret `w`.
const WEBHOOK_KEY: &str = r#"
[sign.keys.webhook]
kind = "hmac-sha256"
secret = "w"
"#;

/// The directory every invocation runs in; its `cache` subdirectory is the
/// compiled-component cache shared by the whole test process.
fn scratch() -> &'static Path {
    static DIR: OnceLock<TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        prune_old_scratch();
        tempfile::Builder::new()
            .prefix(SCRATCH_PREFIX)
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .expect("cannot create a scratch directory")
    })
    .path()
}

const SCRATCH_PREFIX: &str = "airlock-cli-";

/// Removes the scratch directories of runs over a day old: a static
/// `TempDir` is never dropped, so each run leaves its own behind.
fn prune_old_scratch() {
    let day = std::time::Duration::from_secs(24 * 60 * 60);
    let entries = std::fs::read_dir(env!("CARGO_TARGET_TMPDIR"));
    for dir in entries.into_iter().flatten().flatten() {
        let name = dir.file_name();
        let modified = dir.metadata().and_then(|m| m.modified());
        let stale = modified.is_ok_and(|t| t.elapsed().is_ok_and(|age| age > day));
        if stale && name.to_string_lossy().starts_with(SCRATCH_PREFIX) {
            let _ = std::fs::remove_dir_all(dir.path());
        }
    }
}

fn guests_dir() -> PathBuf {
    common::guests_dir()
}

/// The built component of guest `name` (e.g. `word_count`), as a path string.
fn guest(name: &str) -> String {
    common::guest_string(name)
}

fn example(file: &str) -> String {
    format!("{}/../examples/{file}", env!("CARGO_MANIFEST_DIR"))
}

/// Writes `text` to `dir/name` and returns the path as a string.
fn write(dir: &TempDir, name: &str, text: impl AsRef<[u8]>) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

/// The `airlock` command with `args`, the shared cache and the scratch cwd.
fn command(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_airlock"));
    cmd.args(args)
        .env("AIRLOCK_CACHE", scratch().join("cache"))
        .env("AIRLOCK_CACHE_KEY", scratch().join("cache.key"));
    cmd.current_dir(scratch());
    cmd
}

fn airlock(args: &[&str]) -> Output {
    command(args).output().expect("cannot start airlock")
}

/// `airlock run <guest> FLAGS... --args ARGS`, FLAGS split on whitespace.
fn run_guest(name: &str, flags: &str, args: &str) -> Output {
    let path = guest(name);
    let mut argv = vec!["run", &path];
    argv.extend(flags.split_whitespace());
    argv.extend(["--args", args]);
    airlock(&argv)
}

fn assert_has(haystack: &str, needle: &str) {
    assert!(haystack.contains(needle), "want {needle:?} in:\n{haystack}");
}

/// A JSON string's text, or "" for anything else.
fn text(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

/// Asserts the exit code and returns (stdout, stderr).
fn expect(out: &Output, code: i32) -> (String, String) {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let streams = format!("--- stdout:\n{stdout}\n--- stderr:\n{stderr}");
    assert_eq!(out.status.code(), Some(code), "wrong exit code\n{streams}");
    (stdout, stderr)
}

/// Asserts the exit code, an empty stdout and `airlock: ...needle...` on
/// stderr (the error's kind is checked through `--json`); returns stderr.
fn expect_error(out: &Output, code: i32, needle: &str) -> String {
    let (stdout, stderr) = expect(out, code);
    assert!(stdout.is_empty(), "nothing belongs on stdout: {stdout}");
    assert!(
        stderr.starts_with("airlock: "),
        "want `airlock: `: {stderr}"
    );
    assert_has(&stderr, needle);
    stderr
}

/// Asserts the exit code and parses the `--json` object on stdout.
fn expect_json(out: &Output, code: i32) -> Value {
    let (stdout, _) = expect(out, code);
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {stdout}"))
}

/// Asserts a `--json` failure of `kind` and returns its `error` object.
fn expect_json_error(out: &Output, code: i32, kind: &str) -> Value {
    let v = expect_json(out, code);
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["error"]["kind"], kind, "{v}");
    assert!(!text(&v["error"]["message"]).is_empty(), "{v}");
    v["error"].clone()
}

/// The refusals in a `not-granted` error's `detail`.
fn refusals(err: &Value) -> &Vec<Value> {
    err["detail"].as_array().expect("detail: refusals")
}

// ---- 0: success ----

#[test]
fn word_count_prints_its_record_in_field_order() {
    let out = run_guest("word_count", "", r#"{"text":"a b c"}"#);
    let (stdout, _) = expect(&out, 0);
    let v: Value = serde_json::from_str(&stdout).expect("stdout is JSON");
    assert_eq!(v["words"], 3, "{stdout}");
    let at = |k: &str| stdout.find(&format!("\"{k}\"")).expect(k);
    let order = [at("words"), at("lines"), at("chars"), at("bytes")];
    assert!(order.is_sorted(), "fields out of order: {stdout}");
}

#[test]
fn word_count_json_reports_ok_and_fuel() {
    let v = expect_json(&run_guest("word_count", "--json", r#"{"text":"a b c"}"#), 0);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["value"]["words"], 3, "{v}");
    assert!(v["fuel_used"].as_u64().is_some_and(|f| f > 0), "{v}");
}

// ---- 1: the tool's own error ----

#[test]
fn sign_webhook_verify_returns_its_own_err_for_bad_hex() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir, "key", "cli-test-hmac-key\n");
    let toml = format!("[secrets.w]\nfile = \"key\"\n{WEBHOOK_KEY}");
    let config = write(&dir, "airlock.toml", toml);
    let wasm = guest("sign_webhook");
    let bad = r#"{"body":"x","header":"sha256=zz"}"#;
    let mut argv = vec!["run", &wasm, "--config", &config];
    argv.extend(["--grant", "sign:webhook", "--grant", "log"]);
    argv.extend(["--call", "verify", "--args", bad]);
    expect_error(&airlock(&argv), 1, "not a hex signature");
    argv.push("--json");
    let err = expect_json_error(&airlock(&argv), 1, "tool-error");
    assert_has(text(&err["detail"]["err"]), "not a hex signature");
}

// ---- 2: usage, configuration, arguments ----

/// `airlock` arguments (split on whitespace; WC is word_count.wasm, KIT the
/// example toolkit) => what the one-line error must say.
const USAGE_ERRORS: &str = r#"
run WC --bogus                 => unexpected argument '--bogus'
run                            => nothing to run: give a COMPONENT path
run WC --args nope             => --args is not valid JSON
run WC --args {"text":3}       => argument `text`: expected string
run WC --args {}               => argument `text`: missing
run WC --call nope             => exports no function `nope`; it exports: count
run WC --grant nope            => unknown verb `nope`; this host serves: sign, log
run WC --grant sign:webhook    => names key `webhook` but the host config has no such key
run WC --memory lots           => --memory: `lots` is not a size
run --toolkit KIT --tool nope  => no tool `nope`; this toolkit has: sign-webhook, word-count
run does-not-exist.wasm        => cannot read component does-not-exist.wasm
"#;

#[test]
fn usage_errors_exit_2_and_say_what_is_wrong() {
    let (wc, kit) = (guest("word_count"), example("signing.toml"));
    for line in USAGE_ERRORS.lines().filter(|l| !l.is_empty()) {
        let (args, needle) = line.split_once(" => ").unwrap();
        let args: Vec<&str> = args
            .split_whitespace()
            .map(|a| match a {
                "WC" => &wc,
                "KIT" => &kit,
                a => a,
            })
            .collect();
        let (stdout, stderr) = expect(&airlock(&args), 2);
        let ok = stdout.is_empty() && stderr.contains(needle);
        assert!(ok, "airlock {args:?}: want {needle:?} in: {stderr}");
    }
}

#[test]
fn a_toolkit_with_an_unknown_field_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let toml = "[tools.a]\ncomponent = \"a.wasm\"\nfuel = 3\n";
    let kit = write(&dir, "kit.toml", toml);
    let out = airlock(&["run", "--toolkit", &kit, "--tool", "a"]);
    expect_error(
        &out,
        2,
        &format!("{kit}: line 3 in [tools.a]: unknown field `fuel`"),
    );
}

#[test]
fn an_unset_secret_variable_is_named() {
    const VAR: &str = "AIRLOCK_CLI_TEST_UNSET_SECRET_4C7";
    let dir = tempfile::tempdir().unwrap();
    let toml = format!("[secrets.w]\nenv = \"{VAR}\"\n{WEBHOOK_KEY}");
    let config = write(&dir, "host.toml", toml);
    let args = ["run", &guest("word_count"), "--config", &config];
    let out = command(&args).env_remove(VAR).output().unwrap();
    let needle = format!("the environment variable {VAR} is not set");
    expect_error(&out, 2, &needle);
}

#[test]
fn json_usage_errors_are_json_objects() {
    let out = airlock(&["run", "--json", "does-not-exist.wasm"]);
    let err = expect_json_error(&out, 2, "usage");
    assert_has(text(&err["message"]), "does-not-exist.wasm");

    let out = run_guest("word_count", "--json", "{}");
    let err = expect_json_error(&out, 2, "invalid-arguments");
    assert_has(text(&err["message"]), "argument `text`: missing");
}

#[test]
fn json_is_json_even_for_flag_errors() {
    let out = run_guest("word_count", "--json --fuel lots", "{}");
    expect_json_error(&out, 2, "usage");
}

// ---- 3: the world check refuses ----

mod imports {
    use super::*;

    #[test]
    fn a_file_that_is_not_a_component_is_refused_as_invalid() {
        let dir = tempfile::tempdir().unwrap();
        // Deterministic noise (xorshift), so a failure is reproducible.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut noise = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        };
        let bytes: Vec<u8> = (0..512).map(|_| noise()).collect();
        let out = airlock(&["run", &write(&dir, "junk.wasm", bytes)]);
        let needle = "is not a valid WebAssembly component";
        expect_error(&out, 2, needle);
    }

    #[test]
    fn an_import_that_is_not_granted_is_refused() {
        let out = run_guest("overreach", "--grant log", "{}");
        expect_error(&out, 3, "imports `airlock:verbs/sign@0.1.0`");

        let out = run_guest("overreach", "--json --grant log", "{}");
        let err = expect_json_error(&out, 3, "not-granted");
        assert_eq!(refusals(&err).len(), 1, "{err}");
        assert_eq!(refusals(&err)[0]["import"], "airlock:verbs/sign@0.1.0");
        assert_has(text(&refusals(&err)[0]["reason"]), "not granted");
    }
}

mod network {
    use super::*;

    #[test]
    fn socket_calls_fail_inside_the_tool_and_nothing_connects() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback listener");
        listener.set_nonblocking(true).expect("non-blocking");
        let addr = listener.local_addr().expect("its address");
        let args = format!(r#"{{"addr":"{addr}"}}"#);
        let out = run_guest("netcat", "--json", &args);
        let err = expect_json_error(&out, 1, "tool-error");
        let message = text(&err["message"]);
        assert_has(message, &format!("connect {addr}: "));
        assert_has(&message.to_lowercase(), "permission denied");
        match listener.accept() {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            other => panic!("nothing may connect to the listener: {other:?}"),
        }
    }
}

// ---- 4: budgets ----

/// Asserts a `--json` budget failure of `budget` whose message has `needle`.
fn expect_budget(out: &Output, budget: &str, needle: &str) {
    let err = expect_json_error(out, 4, "budget");
    assert_eq!(err["detail"]["budget"], budget, "{err}");
    assert_has(text(&err["message"]), needle);
}

mod cpu {
    use super::*;

    #[test]
    fn spin_runs_out_of_fuel() {
        let out = run_guest("spin", "--json --fuel 10000000", "{}");
        expect_budget(&out, "fuel", "used all 10000000 units of fuel");
        let out = run_guest("spin", "--fuel 10000000", "{}");
        expect_error(&out, 4, "the fuel budget ran out");
    }

    #[test]
    fn spin_runs_past_its_deadline() {
        let out = run_guest("spin", "--json --timeout 200ms --fuel 100000000000", "{}");
        expect_budget(&out, "deadline", "past its 200ms deadline");
    }
}

mod memory {
    use super::*;

    #[test]
    fn hog_hits_the_memory_limit() {
        let out = run_guest("hog", "--json --memory 16MiB", r#"{"chunk-kib":256}"#);
        expect_budget(&out, "memory", "grow its memory past 16MiB");
    }
}

mod output {
    use super::*;

    #[test]
    fn flood_hits_the_output_limit() {
        let flags = "--json --call print --output 1MiB";
        let out = run_guest("flood", flags, r#"{"bytes": 4000000}"#);
        expect_budget(&out, "output", "more than 1MiB to stdout or stderr");
    }
}

// ---- 5: traps ----

#[test]
fn a_guest_panic_is_an_unreachable_trap() {
    let out = run_guest("panic", "", r#"{"message":"boom"}"#);
    let stderr = expect_error(&out, 5, "the tool trapped (unreachable)");
    assert_has(&stderr, "panicked at");
}

#[test]
fn a_guest_panic_shows_its_message() {
    let out = run_guest("panic", "", r#"{"message":"boom"}"#);
    expect_error(&out, 5, "deliberate panic: boom");
}

mod stack {
    use super::*;

    #[test]
    fn unbounded_recursion_is_a_trap() {
        let err = expect_json_error(&run_guest("deep", "--json", r#"{"n":0}"#), 5, "trap");
        assert!(!text(&err["detail"]["trap"]).is_empty(), "{err}");
    }

    #[test]
    fn unbounded_recursion_is_reported_as_a_stack_overflow() {
        let err = expect_json_error(&run_guest("deep", "--json", r#"{"n":0}"#), 5, "trap");
        assert_eq!(err["detail"]["trap"], "stack overflow", "{err}");
    }
}

// ---- inspect, explain, demo ----

#[test]
fn inspect_lists_exports_and_needed_verbs() {
    let (stdout, _) = expect(&airlock(&["inspect", &guest("word_count")]), 0);
    assert_has(&stdout, "\n  count(text: string)");
    assert_has(&stdout, "verbs it needs granted:\n  none\n");
}

#[test]
fn inspect_json_shows_socket_stubs_and_schemas() {
    let v = expect_json(&airlock(&["inspect", "--json", &guest("netcat")]), 0);
    let refused = v["imports"]["refused"].as_array().expect("imports.refused");
    assert!(refused.is_empty(), "{v}");
    let null_wasi = v["imports"]["null_wasi"]
        .as_array()
        .expect("imports.null_wasi");
    let tcp = null_wasi
        .iter()
        .find(|i| text(&i["import"]).starts_with("wasi:sockets/tcp@"))
        .expect("the tcp import");
    assert_eq!(
        tcp["gets"], "socket imports are present but refuse every call; no network exists",
        "{v}"
    );
    // A component that passes the check is compiled: its schemas are shown.
    assert_eq!(v["compiled"], true, "{v}");
    let exports = v["exports"].as_array().expect("exports");
    let connect = exports.iter().find(|e| e["name"] == "connect").unwrap();
    let schema = &connect["input_schema"];
    assert_eq!(schema["type"], "object", "{schema}");
    assert_eq!(schema["properties"]["addr"]["type"], "string", "{schema}");
}

#[test]
fn explain_says_socket_imports_refuse_every_call() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let toolkit = dir.path().join("toolkit.toml");
    let component = guest("netcat");
    std::fs::write(
        &toolkit,
        format!("[tools.netcat]\ncomponent = {component:?}\n"),
    )
    .expect("the toolkit");
    let (stdout, _) = expect(&airlock(&["explain", toolkit.to_str().unwrap()]), 0);
    assert_has(&stdout, "the network: no sockets");
    assert_has(
        &stdout,
        "Its socket imports are present but refuse every call; no network exists.",
    );
}

#[test]
fn explain_describes_each_tools_world() {
    let (stdout, _) = expect(&airlock(&["explain", &example("signing.toml")]), 0);
    let (signer, counter) = stdout.split_once("tool `word-count`").unwrap();
    assert!(signer.starts_with("tool `sign-webhook`"), "{stdout}");
    assert_has(signer, "keys: webhook");
    assert_has(signer, "the network: no sockets");
    assert_has(counter, "the verbs it was not granted: sign, log");
}

#[test]
fn explain_says_what_mcp_clients_are_told_and_why() {
    let (stdout, _) = expect(&airlock(&["explain", &example("toolkit.toml")]), 0);
    let (facts, counter) = stdout.split_once("tool `word-count`").unwrap();
    assert_has(
        facts,
        "What MCP clients are told (computed from its grants):",
    );
    assert_has(
        facts,
        "- read-only: yes: fetch may only read (GET, HEAD); no other verb changes anything",
    );
    assert_has(
        facts,
        "- open world: yes: fetch reaches https://en.wikipedia.org/wiki/",
    );
    assert_has(
        facts,
        "Agents call its functions as: page_facts__facts (page-facts.facts)",
    );
    assert_has(counter, "- destructive: no: it changes nothing");
    assert_has(
        counter,
        "- open world: no: it reaches nothing outside the host",
    );
    assert_has(
        counter,
        "Agents call its functions as: word_count__count (word-count.count)",
    );
    // A fetch grant that may DELETE, and a toolkit that is more cautious still.
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "[tools.remover]\ncomponent = '{}'\n[tools.remover.grants.fetch]\n\
         allow = ['https://api.example.com/']\nmethods = ['GET', 'DELETE']\n\
         [tools.remover.functions.send]\nname = 'remove'\n\
         [tools.remover.annotations]\nidempotent = false\n",
        guest("http_probe")
    );
    let (stdout, _) = expect(&airlock(&["explain", &write(&dir, "kit.toml", toml)]), 0);
    assert_has(&stdout, "- read-only: no: fetch may send DELETE");
    assert_has(&stdout, "- destructive: yes: fetch may send DELETE");
    assert_has(
        &stdout,
        "Agents call its functions as: remove (remover.send)",
    );
}

#[test]
fn run_takes_the_name_an_agent_sees_as_the_tool() {
    let run = |tool: &str, extra: &[&str]| {
        let kit = example("toolkit.toml");
        let mut args = vec!["run", "--toolkit", &kit, "--tool", tool];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--args", r#"{"text": "a b c"}"#]);
        airlock(&args)
    };
    for (tool, extra) in [
        ("word-count", &[][..]),
        ("word_count__count", &[][..]),
        ("word_count__count", &["--call", "count"][..]),
    ] {
        let (stdout, _) = expect(&run(tool, extra), 0);
        assert_has(&stdout, "\"words\": 3");
    }
    let (_, stderr) = expect(&run("word_count__count", &["--call", "other"]), 2);
    assert_has(
        &stderr,
        "--tool word_count__count is function `count` of tool `word-count`",
    );
    let (_, stderr) = expect(&run("nope__count", &[]), 2);
    assert_has(
        &stderr,
        "no tool `nope__count`; this toolkit has: page-facts, word-count",
    );
}

#[test]
fn explain_shows_fetch_scopes_in_plain_words() {
    let (stdout, _) = expect(&airlock(&["explain", &example("toolkit.toml")]), 0);
    let (facts, counter) = stdout.split_once("tool `word-count`").unwrap();
    assert!(facts.starts_with("tool `page-facts`"), "{stdout}");
    assert_has(facts, "https://en.wikipedia.org/wiki/");
    assert_has(facts, "GET");
    assert_has(facts, "it imports the verbs: log, fetch");
    assert_has(
        counter,
        "the verbs it was not granted: sign, log, fetch, complete, kv",
    );
}

#[test]
fn the_example_toolkit_serves_over_mcp_without_a_host_config() {
    // stdin at end of file: every tool loads, the server starts serving,
    // then finds no client (the MCP tests drive real sessions).
    let out = command(&["mcp", &example("toolkit.toml")])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_has(&stderr, "serving 2 tools from");
    assert_has(&stderr, "page_facts__facts, word_count__count");
    assert!(!matches!(out.status.code(), Some(2) | Some(3)), "{stderr}");
}

#[test]
fn explain_flags_a_tool_that_would_be_refused() {
    let dir = tempfile::tempdir().unwrap();
    let component = guest("overreach");
    let toml = format!("[tools.over]\ncomponent = '{component}'\n[tools.over.grants.log]\n");
    let (stdout, stderr) = expect(&airlock(&["explain", &write(&dir, "kit.toml", toml)]), 3);
    assert_has(&stderr, "the world check would refuse: over");
    assert_has(&stdout, "Its component would be REFUSED before starting");
    assert_has(&stdout, "imports `airlock:verbs/sign@0.1.0`");
}

#[test]
fn demo_runs_the_tour() {
    let guests = guests_dir().to_string_lossy().into_owned();
    let (stdout, _) = expect(&airlock(&["demo", "--guests", &guests]), 0);
    assert_has(&stdout, "word-count again after all that -> {\"words\"");
    // The masked-data step: figures by plan, and emails only as pseudonyms.
    assert_has(&stdout, "churn-by-plan() -> team: 4 customers");
    assert_has(&stdout, "emails() -> 11 values like");
    assert!(!stdout.contains("@customer.example"), "{stdout}");
}

mod input {
    use super::*;

    #[test]
    fn arguments_nested_sixty_thousand_deep_are_a_clean_usage_error() {
        // 60,000 levels: as deep as one command-line argument (128 KiB) can carry.
        let deep = format!("{}{}", "[".repeat(60_000), "]".repeat(60_000));
        let args = format!("{{\"text\": {deep}}}");
        let out = airlock(&["run", &guest("word_count"), "--args", &args]);
        expect_error(
            &out,
            2,
            "--args is not valid JSON (recursion limit exceeded",
        );
    }
}

#[test]
fn a_closed_stdout_ends_the_command_quietly() {
    // The reading end closes before the command (which needs milliseconds to
    // start and load) writes anything, as when piped into `head -0`.
    let mut child = command(&["explain", &example("signing.toml")])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}

// ---- the audit trail ----

mod audit {
    use super::*;
    use sha2::Digest;

    /// A host config with the `webhook` key (and `other`, which the guest
    /// never asks for) and a sealed audit trail.
    fn sealed_config(dir: &TempDir) -> String {
        write(dir, "key", "cli-test-hmac-key\n");
        write(dir, "other", "cli-test-other-key\n");
        write(dir, "audit-mac", "cli-test-audit-mac-key-0123456789\n");
        write(dir, "audit-seed", hex_seed(3));
        let toml = format!(
            "[secrets.w]\nfile = \"key\"\n[secrets.o]\nfile = \"other\"\n\
             [secrets.am]\nfile = \"audit-mac\"\n[secrets.as]\nfile = \"audit-seed\"\n\
             {WEBHOOK_KEY}[sign.keys.other]\nkind = \"hmac-sha256\"\nsecret = \"o\"\n\
             [audit]\nkey = \"am\"\nsigning_key = \"as\"\ncheckpoint_every = 2\n"
        );
        write(dir, "airlock.toml", toml)
    }

    fn hex_seed(byte: u8) -> String {
        format!("{}\n", format!("{byte:02x}").repeat(32))
    }

    fn path_of(dir: &TempDir, name: &str) -> String {
        dir.path().join(name).to_string_lossy().into_owned()
    }

    /// One `airlock run` of the webhook signer writing to `trail`; with
    /// `sign:other` granted the guest's `webhook` key is denied.
    fn sign_run(config: &str, trail: &str, key: &str) -> Command {
        let wasm = guest("sign_webhook");
        let grant = format!("sign:{key}");
        let mut argv = vec!["run", &wasm, "--config", config, "--audit", trail];
        argv.extend(["--grant", &grant, "--grant", "log"]);
        argv.extend(["--call", "sign", "--args", r#"{"body":"hi"}"#]);
        command(&argv)
    }

    /// What a writer without the keys can do: renumber and re-chain.
    fn recompute(lines: &[&str]) -> String {
        let mut prev = [0u8; 32];
        let mut out = String::new();
        for (i, line) in lines.iter().enumerate() {
            let mut fixed = format!("{{\"seq\":{}{}", i + 1, &line[line.find(',').unwrap()..]);
            let at = fixed.find("\"prev\":\"").unwrap() + 8;
            fixed.replace_range(at..at + 64, &hex::encode(prev));
            prev = sha2::Sha256::digest(fixed.as_bytes()).into();
            out += &fixed;
            out.push('\n');
        }
        out
    }

    #[test]
    fn audit_verify_passes_an_intact_trail_and_names_the_first_broken_line() {
        let dir = tempfile::tempdir().unwrap();
        let config = sealed_config(&dir);
        let trail = path_of(&dir, "audit.jsonl");
        for _ in 0..2 {
            expect(&sign_run(&config, &trail, "webhook").output().unwrap(), 0);
        }
        let text = std::fs::read_to_string(&trail).unwrap();
        for secret in ["cli-test-hmac-key", "cli-test-audit-mac"] {
            assert!(!text.contains(secret), "a key is in the trail:\n{text}");
        }
        assert_has(&text, "hmac-sha256");

        let v = expect_json(&airlock(&["audit", "verify", &trail, "--json"]), 0);
        assert_eq!(
            (v["ok"].clone(), v["runs"].clone()),
            (true.into(), 2.into()),
            "{v}"
        );
        assert_eq!(v["records"], 4, "a sign and a log record per run: {v}");
        let (stdout, _) = expect(&airlock(&["audit", "verify", &trail]), 0);
        assert_has(
            &stdout,
            "intact: 4 verb-call records from 2 host runs; not authenticated",
        );
        let (stdout, _) = expect(
            &airlock(&["audit", "verify", &trail, "--config", &config]),
            0,
        );
        assert_has(
            &stdout,
            "intact and complete: 4 verb-call records from 2 host runs",
        );
        assert_has(&stdout, "every line's mac verified");

        // The public key, inline and in a file, proves it without the mac key.
        let (public, _) = expect(&airlock(&["audit", "public-key", "--config", &config]), 0);
        let public = public.trim().to_string();
        assert_eq!(public.len(), 64, "{public}");
        let key_file = write(&dir, "audit.pub", &public);
        for key in [&public, &key_file] {
            let v = expect_json(
                &airlock(&["audit", "verify", &trail, "--key", key, "--json"]),
                0,
            );
            assert_eq!(v["checked"], "signatures", "{v}");
            assert_eq!(v["unproven"], 0, "{v}");
        }
        expect_error(
            &airlock(&["audit", "verify", &trail, "--key", "abc"]),
            2,
            "--key: ",
        );

        // An edited decision: that line's mac no longer verifies.
        let lines: Vec<&str> = text.lines().collect();
        let signed = lines
            .iter()
            .position(|l| l.contains("hmac-sha256"))
            .unwrap();
        let mut edited = lines.clone();
        let forged = lines[signed].replace("\"allow\"", "\"deny\"");
        assert_ne!(forged, lines[signed], "the sign record holds a decision");
        edited[signed] = &forged;
        std::fs::write(&trail, edited.join("\n") + "\n").unwrap();
        let line = signed + 1;
        let verify_config = ["audit", "verify", &trail, "--config", &config];
        let err = expect_error(&airlock(&verify_config), 1, "the mac does not verify");
        assert_has(&err, &format!("line {line}: "));
        let err = expect_json_error(
            &airlock(&[&verify_config[..], &["--json"]].concat()),
            1,
            "audit-broken",
        );
        assert_eq!(err["detail"]["line"], line, "{err}");

        // A removed line: the next one no longer chains to the one before.
        let mut cut = lines.clone();
        cut.remove(signed);
        std::fs::write(&trail, cut.join("\n") + "\n").unwrap();
        let err = expect_error(
            &airlock(&["audit", "verify", &trail]),
            1,
            "removed, inserted or reordered",
        );
        assert_has(&err, &format!("line {line}: "));
    }

    #[test]
    fn a_recomputed_forgery_is_broken_and_a_cut_trail_is_unproven() {
        let dir = tempfile::tempdir().unwrap();
        let config = sealed_config(&dir);
        let trail = path_of(&dir, "audit.jsonl");
        expect(&sign_run(&config, &trail, "webhook").output().unwrap(), 0);
        expect(&sign_run(&config, &trail, "other").output().unwrap(), 1);
        let text = std::fs::read_to_string(&trail).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let denied = lines
            .iter()
            .position(|l| l.contains("\"decision\":\"deny\""))
            .unwrap();
        let (public, _) = expect(&airlock(&["audit", "public-key", "--config", &config]), 0);
        let public = public.trim().to_string();

        // Delete the first run's log record, turn the denial into an allow,
        // and recompute everything that needs no key.
        let log = lines
            .iter()
            .position(|l| l.contains("\"verb\":\"log\""))
            .unwrap();
        assert!(log < denied, "{text}");
        let mut forged: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        forged[denied] = forged[denied].replace("\"decision\":\"deny\"", "\"decision\":\"allow\"");
        forged.remove(log);
        let refs: Vec<&str> = forged.iter().map(String::as_str).collect();
        std::fs::write(&trail, recompute(&refs)).unwrap();
        let err = expect_error(
            &airlock(&["audit", "verify", &trail, "--config", &config]),
            1,
            &format!("line {}: the mac does not verify", log + 1),
        );
        assert_has(&err, "the chain is broken at");
        let checkpoint = forged[log..]
            .iter()
            .position(|l| l.contains("checkpoint"))
            .unwrap()
            + log;
        expect_error(
            &airlock(&["audit", "verify", &trail, "--key", &public]),
            1,
            &format!(
                "line {}: the checkpoint's signature does not verify with the given public key",
                checkpoint + 1
            ),
        );
        let (stdout, _) = expect(&airlock(&["audit", "verify", &trail]), 0);
        assert_has(&stdout, "not authenticated");

        // The genuine trail without its last closing checkpoint.
        let last_checkpoint = lines[..lines.len() - 1]
            .iter()
            .rposition(|l| l.contains("checkpoint"))
            .unwrap();
        let second_run = lines
            .iter()
            .rposition(|l| l.contains("\"anchor\""))
            .unwrap();
        let unproven = lines[last_checkpoint + 1..lines.len() - 1]
            .iter()
            .filter(|l| l.contains("\"verb\":"))
            .count();
        std::fs::write(&trail, lines[..lines.len() - 1].join("\n") + "\n").unwrap();
        let (s, are) = if unproven == 1 {
            ("", "is")
        } else {
            ("s", "are")
        };
        let message = format!(
            "airlock: {trail}: unproven: the chain is intact, but {unproven} verb-call \
             record{s} after the last signed checkpoint (line {}) {are} unproven; the run that \
             began at line {} has no closing checkpoint (a host still running or killed, or a \
             trail whose end was removed)\n",
            last_checkpoint + 1,
            second_run + 1
        );
        assert!(unproven > 0, "{text}");
        let err = expect_error(
            &airlock(&["audit", "verify", &trail, "--key", &public]),
            1,
            "",
        );
        assert_eq!(err, message);
        let err = expect_json_error(
            &airlock(&["audit", "verify", &trail, "--key", &public, "--json"]),
            1,
            "audit-unproven",
        );
        assert_eq!(err["detail"]["unproven"], unproven, "{err}");
        assert_eq!(err["detail"]["unclosed"][0], second_run + 1, "{err}");
    }

    #[test]
    fn concurrent_processes_and_threads_write_one_intact_chain() {
        let dir = tempfile::tempdir().unwrap();
        let config = sealed_config(&dir);
        let trail = path_of(&dir, "audit.jsonl");
        let keys = airlock::HostConfig::load_audit(Path::new(&config))
            .unwrap()
            .keys;
        let barrier = std::sync::Barrier::new(2);
        std::thread::scope(|s| {
            let procs: Vec<_> = (0..5)
                .map(|_| {
                    let mut cmd = sign_run(&config, &trail, "webhook");
                    cmd.stdout(std::process::Stdio::piped());
                    cmd.stderr(std::process::Stdio::piped());
                    cmd.spawn().unwrap()
                })
                .collect();
            for _ in 0..2 {
                s.spawn(|| {
                    let sink =
                        airlock::audit::JsonLinesAudit::to_file(Path::new(&trail), keys.clone(), 5)
                            .unwrap();
                    barrier.wait();
                    for job in 0..100 {
                        use airlock::AuditSink;
                        sink.record(airlock_core::AuditRecord {
                            time: std::time::SystemTime::now(),
                            job,
                            tool: "thread".into(),
                            verb: "log",
                            op: "emit",
                            decision: airlock_core::Decision::Allow,
                            duration: std::time::Duration::ZERO,
                            detail: None,
                            content: None,
                        });
                    }
                });
            }
            for p in procs {
                expect(&p.wait_with_output().unwrap(), 0);
            }
        });
        let v = expect_json(
            &airlock(&["audit", "verify", &trail, "--config", &config, "--json"]),
            0,
        );
        assert_eq!(v["records"], 200 + 5 * 2, "{v}");
        assert_eq!(v["runs"], 2 + 5, "{v}");
        assert_eq!(v["unclosed"], serde_json::json!([]), "{v}");
    }

    #[test]
    fn an_mcp_server_closes_its_run_when_its_client_leaves() {
        let dir = tempfile::tempdir().unwrap();
        let config = sealed_config(&dir);
        let kit = format!("[tools.wc]\ncomponent = \"{}\"\n", guest("word_count"));
        let kit = write(&dir, "kit.toml", kit);
        let trail = path_of(&dir, "audit.jsonl");
        let out = command(&["mcp", &kit, "--config", &config, "--audit", &trail])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert_has(&String::from_utf8_lossy(&out.stderr), "serving 1 tools");
        let (public, _) = expect(&airlock(&["audit", "public-key", "--config", &config]), 0);
        let v = expect_json(
            &airlock(&["audit", "verify", &trail, "--key", public.trim(), "--json"]),
            0,
        );
        assert_eq!(
            (v["runs"].clone(), v["checkpoints"].clone()),
            (1.into(), 1.into()),
            "{v}"
        );
    }

    #[test]
    #[cfg(unix)]
    fn an_http_mcp_server_stopped_by_sigterm_closes_its_run() {
        use std::io::BufRead;
        let dir = tempfile::tempdir().unwrap();
        let config = sealed_config(&dir);
        let kit = format!("[tools.wc]\ncomponent = \"{}\"\n", guest("word_count"));
        let kit = write(&dir, "kit.toml", kit);
        let trail = path_of(&dir, "audit.jsonl");
        let mut argv = vec!["mcp", &kit, "--config", &config, "--audit", &trail];
        argv.extend(["--http", "127.0.0.1:0"]);
        let mut child = command(&argv)
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        stderr.read_line(&mut line).unwrap();
        assert_has(&line, "serving 1 tools");
        let pid = child.id().to_string();
        let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(killed.success());
        assert_eq!(child.wait().unwrap().code(), Some(0));
        let (public, _) = expect(&airlock(&["audit", "public-key", "--config", &config]), 0);
        let v = expect_json(
            &airlock(&["audit", "verify", &trail, "--key", public.trim(), "--json"]),
            0,
        );
        assert_eq!(v["unclosed"], serde_json::json!([]), "{v}");
        assert_eq!(v["checkpoints"], 1, "{v}");
    }

    #[test]
    fn an_unkeyed_trail_is_written_with_a_warning_and_verified_as_unkeyed() {
        let dir = tempfile::tempdir().unwrap();
        write(&dir, "key", "cli-test-hmac-key\n");
        let config = write(
            &dir,
            "airlock.toml",
            format!("[secrets.w]\nfile = \"key\"\n{WEBHOOK_KEY}"),
        );
        let trail = path_of(&dir, "audit.jsonl");
        let (_, stderr) = expect(&sign_run(&config, &trail, "webhook").output().unwrap(), 0);
        assert_has(
            &stderr,
            "is unkeyed: anyone who can write it can rewrite it unnoticed",
        );
        let (stdout, _) = expect(&airlock(&["audit", "verify", &trail]), 0);
        assert_has(
            &stdout,
            "intact: 2 verb-call records from 1 host runs; unkeyed: ",
        );
        expect_error(
            &airlock(&["audit", "verify", &trail, "--config", &config]),
            2,
            "[audit] names no key and signing_key",
        );
    }
}

// ---- the host's own input files ----

/// `airlock ARGS` (with `env`), which must end within 20 s: a command
/// blocked on a FIFO or reading `/dev/zero` is killed and the test fails.
fn airlock_within(args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut cmd = command(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("cannot start airlock");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while child.try_wait().expect("wait").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("`airlock {}` did not end within 20 s", args.join(" "));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

fn mkfifo(path: &Path) -> String {
    let status = Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo runs");
    assert!(status.success(), "mkfifo {}", path.display());
    path.to_string_lossy().into_owned()
}

mod host_files {
    use super::*;

    #[test]
    fn a_fifo_or_dev_zero_as_the_component_is_refused_quickly() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = mkfifo(&dir.path().join("tool.wasm"));
        for (path, kind) in [
            (fifo.as_str(), "a FIFO"),
            ("/dev/zero", "a character device"),
        ] {
            let want = format!("cannot read component {path}: not a regular file (it is {kind})");
            for argv in [vec!["run", path, "--args", "{}"], vec!["inspect", path]] {
                expect_error(&airlock_within(&argv, &[]), 2, &want);
                let json = [argv.as_slice(), &["--json"]].concat();
                let err = expect_json_error(&airlock_within(&json, &[]), 2, "usage");
                assert_has(text(&err["message"]), &want);
            }
        }
    }

    #[test]
    fn a_fifo_as_a_toolkits_wit_is_refused_quickly() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = mkfifo(&dir.path().join("tool.wit"));
        let wit_dir = dir.path().join("wit");
        std::fs::create_dir(&wit_dir).unwrap();
        let in_dir = mkfifo(&wit_dir.join("world.wit"));
        let component = guest("word_count");
        for (wit, culprit) in [
            (&fifo, &fifo),
            (&wit_dir.to_string_lossy().into_owned(), &in_dir),
        ] {
            let want =
                format!("cannot read its WIT at {culprit}: not a regular file (it is a FIFO)");
            let kit = write(
                &dir,
                "kit.toml",
                format!("[tools.wc]\ncomponent = \"{component}\"\nwit = \"{wit}\"\n"),
            );
            expect_error(&airlock_within(&["schema", &kit], &[]), 2, &want);
            let inspect = ["inspect", component.as_str(), "--wit", wit.as_str()];
            expect_error(&airlock_within(&inspect, &[]), 2, &want);
        }
    }

    #[test]
    fn a_fifo_as_a_toolkit_host_config_or_audit_trail_is_refused_quickly() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = mkfifo(&dir.path().join("input.toml"));
        let want = format!("cannot read {fifo}: not a regular file (it is a FIFO)");
        let component = guest("word_count");
        for argv in [
            vec!["explain", fifo.as_str()],
            vec!["schema", fifo.as_str()],
            vec![
                "run",
                component.as_str(),
                "--config",
                fifo.as_str(),
                "--args",
                "{}",
            ],
            vec!["audit", "verify", fifo.as_str()],
        ] {
            expect_error(&airlock_within(&argv, &[]), 2, &want);
        }
    }
}

mod cache {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// A cache directory writable by its group is not used: the tools still
    /// load (compiled in memory) and one warning says why, however many
    /// tools are loaded.
    #[test]
    fn a_refused_cache_is_warned_about_once_and_the_tools_still_run() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("shared-cache");
        std::fs::create_dir(&cache).unwrap();
        std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o775)).unwrap();
        let env = [("AIRLOCK_CACHE", cache.as_path())];
        let warning = format!(
            "airlock: warning: not using the compiled-component cache {}: it is open to group or others (mode 775); compiling in memory instead",
            cache.display()
        );

        let wasm = guest("word_count");
        let out = airlock_within(&["run", &wasm, "--args", r#"{"text":"a b"}"#], &env);
        let (stdout, stderr) = expect(&out, 0);
        assert_has(&stdout, "\"words\": 2");
        assert_eq!(stderr.matches(&warning).count(), 1, "{stderr}");

        let kit = write(
            &dir,
            "kit.toml",
            format!("[tools.a]\ncomponent = \"{wasm}\"\n[tools.b]\ncomponent = \"{wasm}\"\n"),
        );
        let (stdout, stderr) = expect(&airlock_within(&["schema", &kit], &env), 0);
        assert_has(&stdout, "\"a.count\"");
        assert_eq!(stderr.matches("airlock: warning:").count(), 1, "{stderr}");
        assert_has(&stderr, &warning);
        let left: Vec<_> = std::fs::read_dir(&cache).unwrap().collect();
        assert!(left.is_empty(), "a refused cache was written: {left:?}");
    }
}

mod cancel {
    use super::*;

    #[test]
    fn ctrl_c_cancels_the_job_and_exits_130() {
        let spin = guest("spin");
        // Warm the component cache, so the job below is running within a second.
        run_guest("spin", "--timeout 10ms", "{}");
        let dir = tempfile::tempdir().unwrap();
        let audit = dir.path().join("audit.jsonl");
        let audit_flag = audit.to_str().unwrap();
        let flags = ["--json", "--timeout", "20s", "--fuel", "1000000000000"];
        let started = std::time::Instant::now();
        let child = command(&[&["run", &spin, "--audit", audit_flag][..], &flags].concat())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_secs(1));
        let sent = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let out = child.wait_with_output().unwrap();
        let err = expect_json_error(&out, 130, "cancelled");
        assert_has(text(&err["message"]), "interrupted (SIGINT, Ctrl-C)");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "the job ran on to its deadline: {:?}",
            started.elapsed()
        );
        let trail = std::fs::read_to_string(&audit).unwrap();
        assert_has(
            &trail,
            r#""verb":"job","op":"run","decision":"deny","reason":"cancelled: interrupted (SIGINT, Ctrl-C)""#,
        );
    }
}
