//! End-to-end tests of `airlock mcp` and `airlock schema`: the real binary
//! serves a toolkit of real guests, driven by the official Rust SDK's client
//! (`rmcp`) over stdio and over streamable HTTP, and by the official Python
//! SDK (`mcp`, from a venv in `target/mcp-venv`) over stdio.
//!
//! The guests are built by `cargo xtask build-guests` into
//! `<workspace>/target/wasm32-wasip2/release` (or `$AIRLOCK_GUESTS`). Every
//! server shares one compiled-component cache, so components compile once.
//! Servers' stderr goes to a file per server (the log lines would otherwise
//! fill a pipe nobody reads).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ServiceExt, model::ContentBlock};
use serde_json::{Value, json};
use tempfile::TempDir;

type Client = RunningService<RoleClient, ()>;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The built component of guest `name` (e.g. `word_count`).
fn guest(name: &str) -> String {
    common::guest_string(name)
}

fn wit(guest_dir: &str) -> String {
    root()
        .join("guests")
        .join(guest_dir)
        .join("wit")
        .to_string_lossy()
        .into_owned()
}

/// The directory shared by the whole test process: toolkits, configs, the
/// component cache and the servers' stderr files.
fn scratch() -> &'static Path {
    common::scratch()
}

/// The toolkit every server test uses, and its host config.
fn kit() -> &'static (String, String) {
    static KIT: OnceLock<(String, String)> = OnceLock::new();
    KIT.get_or_init(|| {
        let dir = scratch();
        std::fs::write(dir.join("webhook.key"), "mcp-test-hmac-key\n").unwrap();
        let config = "[secrets.w]\nfile = \"webhook.key\"\n\
                      [sign.keys.webhook]\nkind = \"hmac-sha256\"\nsecret = \"w\"\n";
        std::fs::write(dir.join("airlock.toml"), config).unwrap();
        let toolkit = format!(
            r#"
[tools.word-count]
component = '{word_count}'
wit = '{word_count_wit}'

[tools.sign-webhook]
component = '{sign_webhook}'
wit = '{sign_webhook_wit}'
[tools.sign-webhook.grants.sign]
keys = ["webhook"]
[tools.sign-webhook.grants.log]

[tools.spin]
component = '{spin}'
description = "Loops until its 2 s deadline."
[tools.spin.budget]
timeout = "2s"
fuel = 1_000_000_000_000

[tools.spin-fuel]
component = '{spin}'
[tools.spin-fuel.budget]
timeout = "30s"
fuel = 1_000_000

[tools.panic]
component = '{panic}'
wit = '{panic_wit}'
"#,
            word_count = guest("word_count"),
            word_count_wit = wit("word-count"),
            sign_webhook = guest("sign_webhook"),
            sign_webhook_wit = wit("sign-webhook"),
            spin = guest("spin"),
            panic = guest("panic"),
            panic_wit = wit("panic"),
        );
        std::fs::write(dir.join("kit.toml"), toolkit).unwrap();
        (
            dir.join("kit.toml").to_string_lossy().into_owned(),
            dir.join("airlock.toml").to_string_lossy().into_owned(),
        )
    })
}

/// The `airlock` command with `args`, the shared cache and the scratch cwd.
fn command(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_airlock"));
    cmd.args(args)
        .env("AIRLOCK_CACHE", scratch().join("cache"))
        .current_dir(scratch());
    cmd
}

/// A stderr file for one server, named after `label`.
fn stderr_file(label: &str) -> (std::fs::File, PathBuf) {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = scratch().join(format!("stderr-{label}-{n}.txt"));
    (std::fs::File::create(&path).unwrap(), path)
}

/// An rmcp client connected to `airlock mcp KIT --config CONFIG` over stdio.
async fn stdio_client(label: &str) -> (Client, PathBuf) {
    let (kit, config) = kit();
    let cmd = command(&["mcp", kit, "--config", config]);
    let (stderr, path) = stderr_file(label);
    let (transport, _) = TokioChildProcess::builder(tokio::process::Command::from(cmd))
        .stderr(stderr)
        .spawn()
        .expect("cannot start airlock mcp");
    let client = ().serve(transport).await.unwrap_or_else(|e| {
        panic!(
            "the MCP session did not start: {e}\n--- server stderr:\n{}",
            std::fs::read_to_string(&path).unwrap_or_default()
        )
    });
    (client, path)
}

fn args(v: Value) -> CallToolRequestParams {
    CallToolRequestParams::new("").with_arguments(v.as_object().cloned().expect("an object"))
}

async fn call(client: &rmcp::Peer<RoleClient>, name: &str, arguments: Value) -> CallToolResult {
    let mut params = args(arguments);
    params.name = name.to_string().into();
    client
        .call_tool(params)
        .await
        .unwrap_or_else(|e| panic!("tools/call {name} failed at the protocol level: {e}"))
}

/// The text of a result's one text block.
fn text(result: &CallToolResult) -> String {
    match result.content.as_slice() {
        [ContentBlock::Text(t)] => t.text.clone(),
        other => panic!("want one text block, got {other:?}"),
    }
}

fn expect_ok(result: &CallToolResult) -> Value {
    assert_eq!(result.is_error, Some(false), "{result:?}");
    result
        .structured_content
        .clone()
        .expect("structuredContent")
}

/// Asserts an `isError` result whose text contains every needle; returns the text.
fn expect_error(result: &CallToolResult, needles: &[&str]) -> String {
    assert_eq!(result.is_error, Some(true), "{result:?}");
    assert!(result.structured_content.is_none(), "{result:?}");
    let t = text(result);
    for n in needles {
        assert!(t.contains(n), "want {n:?} in {t:?}");
    }
    t
}

/// The names `tools/list` offers for the shared kit, sorted: portable
/// (`^[a-zA-Z0-9_]{1,64}$`), each the title's tool and function joined by `__`.
const TOOL_NAMES: [&str; 7] = [
    "panic__run",
    "sign_webhook__sign",
    "sign_webhook__verify",
    "sign_webhook__world_view",
    "spin__run",
    "spin_fuel__run",
    "word_count__count",
];

/// The titles of [`TOOL_NAMES`], in the same order.
const TOOL_TITLES: [&str; 7] = [
    "panic.run",
    "sign-webhook.sign",
    "sign-webhook.verify",
    "sign-webhook.world-view",
    "spin.run",
    "spin-fuel.run",
    "word-count.count",
];

/// Whether `name` matches `^[a-zA-Z0-9_]{1,64}$`, the pattern every client accepts.
fn portable(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn counts_schema() -> Value {
    let u32s = |d: &str| json!({"type": "integer", "minimum": 0, "maximum": 4294967295u32, "description": d});
    json!({
        "type": "object",
        "properties": {
            "words": u32s("Runs of non-whitespace characters."),
            "lines": u32s("Lines, a final line without a newline included."),
            "chars": u32s("Unicode scalar values."),
            "bytes": u32s("UTF-8 bytes."),
        },
        "required": ["words", "lines", "chars", "bytes"],
        "additionalProperties": false,
        "description": "How big a text is, measured four ways.",
    })
}

// ---- stdio ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_lists_every_function_with_its_schemas() {
    let (client, _) = stdio_client("list").await;
    let info = client.peer_info().expect("server info");
    assert_eq!(
        info.server_info.as_ref().map(|i| i.name.as_str()),
        Some("airlock")
    );
    assert!(info.capabilities.tools.is_some());
    let tools = client.list_all_tools().await.unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert_eq!(names, TOOL_NAMES);
    assert!(names.iter().all(|n| portable(n)), "{names:?}");
    let titles: Vec<&str> = tools.iter().map(|t| t.title.as_deref().unwrap()).collect();
    assert_eq!(titles, TOOL_TITLES);
    let tool = |name: &str| tools.iter().find(|t| t.name == name).unwrap();
    // No verbs, sign and log: read-only, idempotent, closed-world.
    for t in &tools {
        let a = t.annotations.as_ref().expect("annotations");
        assert_eq!(a.title.as_deref(), t.title.as_deref());
        assert_eq!(
            (
                a.read_only_hint,
                a.destructive_hint,
                a.idempotent_hint,
                a.open_world_hint
            ),
            (Some(true), Some(false), Some(true), Some(false)),
            "{}",
            t.name
        );
    }

    let count = tool("word_count__count");
    assert_eq!(
        count.description.as_deref(),
        Some("Count the words, lines, characters and bytes of `text`.")
    );
    assert_eq!(
        Value::Object((*count.input_schema).clone()),
        json!({
            "type": "object",
            "properties": {"text": {"type": "string"}},
            "required": ["text"],
            "additionalProperties": false,
        })
    );
    assert_eq!(
        Value::Object((*count.output_schema.clone().unwrap()).clone()),
        counts_schema()
    );

    let sign = tool("sign_webhook__sign");
    assert_eq!(
        sign.description.as_deref(),
        Some("Sign `body` with the key `webhook` and log that it did.")
    );
    let out = Value::Object((*sign.output_schema.clone().unwrap()).clone());
    assert_eq!(out["required"], json!(["header", "key"]), "{out}");
    let verify = tool("sign_webhook__verify");
    let out = Value::Object((*verify.output_schema.clone().unwrap()).clone());
    assert_eq!(
        out["properties"]["result"],
        json!({"type": "boolean"}),
        "{out}"
    );
    // No WIT given: the toolkit's description, then the signature.
    assert_eq!(
        tool("spin__run").description.as_deref(),
        Some("Loops until its 2 s deadline.")
    );
    assert_eq!(
        tool("spin_fuel__run").description.as_deref(),
        Some("spin-fuel.run() -> u64")
    );
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_calls_succeed_with_text_and_structured_content() {
    let (client, stderr) = stdio_client("calls").await;
    let peer = client.peer();
    let r = call(
        peer,
        "word_count__count",
        json!({"text": "one two three\nfour"}),
    )
    .await;
    let counts = expect_ok(&r);
    assert_eq!(
        counts,
        json!({"words": 4, "lines": 2, "chars": 18, "bytes": 18})
    );
    // The title, as people type it, names the same tool.
    let by_title = call(
        peer,
        "word-count.count",
        json!({"text": "one two three\nfour"}),
    )
    .await;
    assert_eq!(expect_ok(&by_title), counts);
    let as_text: Value = serde_json::from_str(&text(&r)).unwrap();
    assert_eq!(as_text, counts);

    let signed = expect_ok(&call(peer, "sign_webhook__sign", json!({"body": "hello"})).await);
    let header = signed["header"].as_str().unwrap();
    assert!(
        header.starts_with("sha256=") && header.len() == 7 + 64,
        "{signed}"
    );
    assert_eq!(signed["key"], "webhook");
    // Not a record: wrapped as {"result": ...}, the text is the bare value.
    let r = call(
        peer,
        "sign_webhook__verify",
        json!({"body": "hello", "header": header}),
    )
    .await;
    assert_eq!(expect_ok(&r), json!({"result": true}));
    assert_eq!(text(&r), "true");
    let r = call(
        peer,
        "sign_webhook__verify",
        json!({"body": "other", "header": header}),
    )
    .await;
    assert_eq!(expect_ok(&r), json!({"result": false}));
    // The tool sees no environment, arguments or files, only its key's name.
    let seen = expect_ok(&call(peer, "sign_webhook__world_view", json!({})).await);
    assert!(seen["result"].is_array(), "{seen}");
    client.cancel().await.unwrap();
    // The tool's log line and a line per call went to stderr.
    let log = std::fs::read_to_string(stderr).unwrap();
    assert!(log.contains("sign_webhook__sign job"), "{log}");
    assert!(log.contains("word_count__count job"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_calls_all_succeed() {
    let (client, _) = stdio_client("concurrent").await;
    let mut set = tokio::task::JoinSet::new();
    for i in 0..50usize {
        let peer = client.peer().clone();
        set.spawn(async move {
            let text = "w ".repeat(i + 1);
            let r = call(&peer, "word_count__count", json!({ "text": text })).await;
            (i, expect_ok(&r))
        });
    }
    let mut seen = 0;
    while let Some(done) = set.join_next().await {
        let (i, counts) = done.unwrap();
        assert_eq!(counts["words"], i + 1, "{counts}");
        seen += 1;
    }
    assert_eq!(seen, 50);
    client.cancel().await.unwrap();
}

// ---- startup ----

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

/// `airlock mcp` on a toolkit of `toolkit` text, run in a directory of its
/// own (so no ./airlock.toml is picked up); returns stderr of the refusal.
fn refused_at_startup(toolkit: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let kit = dir.path().join("kit.toml");
    std::fs::write(&kit, toolkit).unwrap();
    let out = command(&["mcp", kit.to_str().unwrap()])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    expect_exit(&out, 2).1
}

#[test]
fn startup_errors_name_the_cause() {
    // A key the host config does not have.
    let stderr = refused_at_startup(&format!(
        "[tools.signer]\ncomponent = '{}'\n[tools.signer.grants.sign]\nkeys = ['webhook']\n",
        guest("sign_webhook")
    ));
    assert!(
        stderr.contains("tool `signer`") && stderr.contains("webhook"),
        "{stderr}"
    );
    // WIT that does not describe the component.
    let stderr = refused_at_startup(&format!(
        "[tools.wc]\ncomponent = '{}'\nwit = '{}'\n",
        guest("word_count"),
        wit("spin")
    ));
    assert!(
        stderr.contains("tool `wc`") && stderr.contains("no world"),
        "{stderr}"
    );
    // A tool name too long for clients once the function is appended.
    let long = "t".repeat(60);
    let stderr = refused_at_startup(&format!(
        "[tools.{long}]\ncomponent = '{}'\n",
        guest("word_count")
    ));
    assert!(
        stderr.contains(&format!(
            "`{long}.count` is offered as `{long}__count`, which is 67 characters long; \
             clients accept at most 64"
        )) && stderr.contains(&format!("[tools.{long}.functions.count] name = ")),
        "{stderr}"
    );
    // A non-loopback bind without --allow-remote, refused before binding.
    let (shared_kit, config) = self::kit();
    let out = command(&["mcp", shared_kit, "--config", config, "--http", "0.0.0.0:0"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let (_, stderr) = expect_exit(&out, 2);
    assert!(
        stderr.contains("not a loopback address") && stderr.contains("--allow-remote"),
        "{stderr}"
    );
}

// ---- HTTP ----

/// `airlock mcp --http 127.0.0.1:0`, killed on drop.
struct HttpServer {
    child: Child,
    addr: String,
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http_server() -> HttpServer {
    let (kit, config) = kit();
    http_server_with(&["mcp", kit, "--config", config])
}

/// `airlock ARGS --http 127.0.0.1:0`, killed on drop.
fn http_server_with(args: &[&str]) -> HttpServer {
    let mut child = command(&[args, &["--http", "127.0.0.1:0"]].concat())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        let mut seen = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            seen.push_str(&line);
            seen.push('\n');
            if let Some(rest) = line.split_once(" at http://").map(|(_, r)| r)
                && let Some(tx) = tx.take()
            {
                let addr = rest.split('/').next().unwrap_or_default().to_string();
                let _ = tx.send(Ok(addr));
            }
        }
        if let Some(tx) = tx.take() {
            let _ = tx.send(Err(seen));
        }
    });
    match rx.recv_timeout(Duration::from_secs(120)) {
        Ok(Ok(addr)) => HttpServer { child, addr },
        other => {
            let _ = child.kill();
            panic!("the HTTP server did not start: {other:?}");
        }
    }
}

/// One raw HTTP/1.1 request; returns the status line and the whole response.
/// `headers` is one or more `Name: value` lines joined by `\r\n`.
fn raw_http(addr: &str, method: &str, path: &str, headers: &str, body: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\n{headers}\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    // Read the head (and whatever came with it); an SSE body may stay open.
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 {
            break;
        }
        response.extend_from_slice(&buf[..n]);
        if response.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    let response = String::from_utf8_lossy(&response).into_owned();
    (
        response.lines().next().unwrap_or_default().to_string(),
        response,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_serves_the_same_tools_to_the_rust_sdk() {
    // reqwest (built with `rustls-no-provider` in a workspace build) panics
    // without a process-wide crypto provider, even for plain http.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let server = http_server();
    let url = format!("http://{}/mcp", server.addr);
    let client = ().serve(StreamableHttpClientTransport::from_uri(url)).await.unwrap();
    let tools = client.list_all_tools().await.unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert_eq!(names, TOOL_NAMES);
    let r = call(
        client.peer(),
        "word_count__count",
        json!({"text": "over http"}),
    )
    .await;
    assert_eq!(expect_ok(&r)["words"], 2);
    let r = call(client.peer(), "panic__run", json!({"message": "http"})).await;
    expect_error(&r, &["the tool trapped", "deliberate panic: http"]);
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let peer = client.peer().clone();
        set.spawn(async move { call(&peer, "word_count__count", json!({"text": "a b c"})).await });
    }
    while let Some(r) = set.join_next().await {
        assert_eq!(expect_ok(&r.unwrap())["words"], 3);
    }
    client.cancel().await.unwrap();
}

// ---- airlock schema ----

fn schema(format: &str) -> Value {
    let kit = root().join("examples/signing.toml");
    let out = command(&["schema", kit.to_str().unwrap(), "--format", format])
        .output()
        .unwrap();
    let (stdout, _) = expect_exit(&out, 0);
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

#[test]
fn schema_prints_each_ecosystems_shape() {
    let mcp = schema("mcp");
    let tools = mcp["tools"].as_array().unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "sign_webhook__sign",
            "sign_webhook__verify",
            "sign_webhook__world_view",
            "word_count__count"
        ]
    );
    let count = &tools[3];
    assert_eq!(count["title"], "word-count.count");
    assert_eq!(count["outputSchema"], counts_schema());
    assert_eq!(count["inputSchema"]["required"], json!(["text"]));
    assert_eq!(
        count["annotations"],
        json!({
            "title": "word-count.count",
            "readOnlyHint": true,
            "destructiveHint": false,
            "idempotentHint": true,
            "openWorldHint": false,
        })
    );

    let openai = schema("openai");
    assert_eq!(
        openai[3],
        json!({
            "type": "function",
            "function": {
                "name": "word_count__count",
                // The toolkit's description first, then the reviewed WIT's.
                "description": "Counts words, lines and characters of a text.\n\nCount the words, lines, characters and bytes of `text`.",
                "parameters": count["inputSchema"],
            }
        })
    );
    assert_eq!(openai[2]["function"]["name"], "sign_webhook__world_view");

    let anthropic = schema("anthropic");
    assert_eq!(
        anthropic[0],
        json!({
            "name": "sign_webhook__sign",
            "description": "Signs webhook bodies with the host's `webhook` HMAC key.\n\nSign `body` with the key `webhook` and log that it did.",
            "input_schema": tools[0]["inputSchema"],
        })
    );
    let out = command(&["schema", "nope.toml"]).output().unwrap();
    expect_exit(&out, 2);
}

/// MCP hints: (read-only, destructive, idempotent, open-world).
type Hints = (bool, bool, bool, bool);

/// The annotations every example tool must carry, from its grants.
const EXAMPLE_HINTS: [(&str, Hints); 5] = [
    ("page_facts__facts", (true, false, true, true)),
    ("sign_webhook__sign", (true, false, true, false)),
    ("sign_webhook__verify", (true, false, true, false)),
    ("sign_webhook__world_view", (true, false, true, false)),
    ("word_count__count", (true, false, true, false)),
];

fn hints_of(t: &rmcp::model::Tool) -> Hints {
    let a = t.annotations.as_ref().expect("annotations");
    (
        a.read_only_hint.unwrap(),
        a.destructive_hint.unwrap(),
        a.idempotent_hint.unwrap(),
        a.open_world_hint.unwrap(),
    )
}

/// An rmcp client of `airlock mcp TOOLKIT --config CONFIG` over stdio.
async fn stdio_client_of(toolkit: &str, config: &str, label: &str) -> (Client, PathBuf) {
    let cmd = command(&["mcp", toolkit, "--config", config]);
    let (stderr, path) = stderr_file(label);
    let (transport, _) = TokioChildProcess::builder(tokio::process::Command::from(cmd))
        .stderr(stderr)
        .spawn()
        .expect("cannot start airlock mcp");
    let client = ().serve(transport).await.unwrap_or_else(|e| {
        panic!(
            "the MCP session did not start: {e}\n--- server stderr:\n{}",
            std::fs::read_to_string(&path).unwrap_or_default()
        )
    });
    (client, path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_tool_is_listed_with_a_portable_name_and_its_grants_hints() {
    let (_, config) = kit();
    let mut seen = Vec::new();
    let mut examples: Vec<PathBuf> = std::fs::read_dir(root().join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        // A toolkit has a `[tools.…]` table (not just a comment naming one).
        .filter(|p| {
            let text = std::fs::read_to_string(p).unwrap();
            text.lines().any(|l| l.starts_with("[tools."))
        })
        .collect();
    examples.sort();
    assert!(examples.len() >= 2, "{examples:?}");
    for example in examples {
        let (client, _) = stdio_client_of(example.to_str().unwrap(), config, "example").await;
        for t in client.list_all_tools().await.unwrap() {
            assert!(portable(&t.name), "{}", t.name);
            // The name maps back to the title: split at `__`, `_` was `-`.
            let title = t.title.as_deref().unwrap();
            let (tool, function) = title.split_once('.').unwrap();
            let fold = |s: &str| s.replace('-', "_");
            assert_eq!(t.name, format!("{}__{}", fold(tool), fold(function)));
            let expected = EXAMPLE_HINTS
                .iter()
                .find(|(n, _)| *n == t.name)
                .unwrap_or_else(|| panic!("{}: add it to EXAMPLE_HINTS", t.name))
                .1;
            assert_eq!(
                hints_of(&t),
                expected,
                "{} in {}",
                t.name,
                example.display()
            );
            seen.push(t.name.to_string());
        }
        client.cancel().await.unwrap();
    }
    seen.sort();
    seen.dedup();
    let all: Vec<&str> = EXAMPLE_HINTS.iter().map(|(n, _)| *n).collect();
    assert_eq!(seen, all);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_toolkit_names_functions_and_makes_hints_more_cautious() {
    let (_, config) = kit();
    let dir = tempfile::tempdir().unwrap();
    let toolkit = dir.path().join("kit.toml");
    std::fs::write(
        &toolkit,
        format!(
            "[tools.word-count]\ncomponent = '{wc}'\n\
             [tools.word-count.functions.count]\nname = 'count_words'\n\
             [tools.word-count.annotations]\nread_only = false\ndestructive = true\n\
             [tools.poster]\ncomponent = '{probe}'\n\
             [tools.poster.grants.fetch]\nallow = ['https://api.example.com/']\n\
             methods = ['GET', 'POST']\n\
             [tools.remover]\ncomponent = '{probe}'\n\
             [tools.remover.grants.fetch]\nallow = ['https://api.example.com/']\n\
             methods = ['delete']\n",
            wc = guest("word_count"),
            probe = guest("http_probe"),
        ),
    )
    .unwrap();
    let (client, _) = stdio_client_of(toolkit.to_str().unwrap(), config, "named").await;
    let tools = client.list_all_tools().await.unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert_eq!(names, ["count_words", "poster__send", "remover__send"]);
    let hints: Vec<_> = tools.iter().map(hints_of).collect();
    assert_eq!(
        hints,
        [
            (false, true, true, false),
            (false, false, false, true),
            (false, true, false, true),
        ]
    );
    assert_eq!(tools[0].title.as_deref(), Some("word-count.count"));
    // Its chosen name and its title both call it; the default name does not.
    for name in ["count_words", "word-count.count"] {
        let r = call(client.peer(), name, json!({"text": "a b"})).await;
        assert_eq!(expect_ok(&r)["words"], 2, "{name}");
    }
    let mut params = args(json!({"text": "a"}));
    params.name = "word_count__count".into();
    let e = client
        .peer()
        .call_tool(params)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("no tool `word_count__count`"), "{e}");
    client.cancel().await.unwrap();
}

#[test]
fn inspect_shows_wit_docs() {
    let wasm = guest("sign_webhook");
    let sign_wit = wit("sign-webhook");
    let out = command(&["inspect", &wasm, "--wit", &sign_wit])
        .output()
        .unwrap();
    let (stdout, _) = expect_exit(&out, 0);
    assert!(
        stdout.contains(
            "  verify(body: string, header: string) -> result<bool, string>\n      Whether `header`"
        ),
        "{stdout}"
    );
    let out = command(&["inspect", "--json", &wasm, "--wit", &sign_wit])
        .output()
        .unwrap();
    let (stdout, _) = expect_exit(&out, 0);
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert!(
        v["docs"]["from"].as_str().unwrap().starts_with("WIT at "),
        "{v}"
    );
    let sign = v["exports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "sign")
        .unwrap();
    assert_eq!(
        sign["description"],
        "Sign `body` with the key `webhook` and log that it did."
    );
    // Without docs: null descriptions, the same schemas.
    let out = command(&["inspect", "--json", &wasm]).output().unwrap();
    let v: Value = serde_json::from_str(&expect_exit(&out, 0).0).unwrap();
    assert_eq!(v["docs"], Value::Null);
    assert_eq!(v["exports"][0]["description"], Value::Null);
    // WIT of another tool is refused with the reason.
    let out = command(&["inspect", &wasm, "--wit", &wit("word-count")])
        .output()
        .unwrap();
    let (_, stderr) = expect_exit(&out, 2);
    assert!(
        stderr.contains("no world") && stderr.contains("sign, verify, world-view"),
        "{stderr}"
    );
}

// ---- the official Python SDK ----

/// `target/mcp-venv` with the `mcp` package `mcp_client.py` asks for, made
/// here if `cargo xtask mcp-venv` did not already; `Err` says why it cannot be.
fn python_venv() -> Result<PathBuf, String> {
    let script = std::fs::read_to_string(root().join("host/tests/mcp_client.py")).unwrap();
    let requirement = script
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("# requires: "))
        .expect("mcp_client.py starts with `# requires: mcp==VERSION`")
        .trim()
        .to_string();
    let venv = root().join("target/mcp-venv");
    let python = venv.join("bin/python");
    let marker = venv.join("airlock-requirement.txt");
    if python.is_file()
        && std::fs::read_to_string(&marker).unwrap_or_default().trim() == requirement
    {
        return Ok(python);
    }
    let run = |cmd: &mut Command, what: &str| -> Result<(), String> {
        let out = cmd
            .output()
            .map_err(|e| format!("{what}: cannot start: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{what} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    };
    run(
        Command::new("python3")
            .args(["-m", "venv", "--clear"])
            .arg(&venv),
        "python3 -m venv",
    )?;
    run(
        Command::new(&python).args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            &requirement,
        ]),
        &format!("pip install {requirement}"),
    )?;
    std::fs::write(&marker, &requirement).map_err(|e| e.to_string())?;
    Ok(python)
}

#[test]
fn the_python_sdk_drives_the_server_over_stdio() {
    let python = match python_venv() {
        Ok(p) => p,
        Err(reason) if std::env::var_os("CI").is_none() => {
            eprintln!("skipped: the Python MCP SDK cannot be installed here: {reason}");
            return;
        }
        Err(reason) => panic!("CI must run the Python MCP interop test: {reason}"),
    };
    let (kit, config) = kit();
    let script = root().join("host/tests/mcp_client.py");
    let audit = scratch().join("python-audit.jsonl");
    let _ = std::fs::remove_file(&audit);
    let out = Command::new(python)
        .arg(script)
        .args([env!("CARGO_BIN_EXE_airlock"), kit, config])
        .arg(&audit)
        .env("AIRLOCK_CACHE", scratch().join("cache"))
        .current_dir(scratch())
        .output()
        .unwrap();
    let (stdout, stderr) = expect_exit(&out, 0);
    let report: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}\n--- stderr:\n{stderr}"));
    assert_eq!(report["server"], "airlock", "{report}");
    assert_eq!(report["tools"], json!(TOOL_NAMES), "{report}");
    for (name, title) in TOOL_NAMES.iter().zip(TOOL_TITLES) {
        assert_eq!(report["titles"][name], title, "{report}");
        assert_eq!(
            report["annotations"][name],
            json!({
                "title": title,
                "readOnlyHint": true,
                "destructiveHint": false,
                "idempotentHint": true,
                "openWorldHint": false,
            }),
            "{report}"
        );
    }
    assert_eq!(
        report["count_description"],
        "Count the words, lines, characters and bytes of `text`."
    );
    assert_eq!(report["count_input_schema"]["required"], json!(["text"]));
    assert_eq!(report["ok"]["is_error"], false, "{report}");
    assert_eq!(
        report["ok"]["structured"],
        json!({"words": 4, "lines": 2, "chars": 18, "bytes": 18})
    );
    assert_eq!(report["bad"]["is_error"], true, "{report}");
    assert!(
        report["bad"]["text"][0]
            .as_str()
            .unwrap()
            .contains("argument `text`: expected string, got 7"),
        "{report}"
    );
    cancel::python_cancelled_the_spin(&report["cancel"], &audit);
}

// ---- walls: hostile clients and tools ----

mod mcp {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_failure_class_is_an_is_error_result() {
        let (client, _) = stdio_client("errors").await;
        let peer = client.peer();
        // The tool's own `err`.
        let r = call(
            peer,
            "sign_webhook__verify",
            json!({"body": "x", "header": "sha256=zz"}),
        )
        .await;
        expect_error(&r, &["the tool returned an error: ", "not a hex signature"]);
        // A budget: a spin loop with a million units of fuel.
        let r = call(peer, "spin_fuel__run", json!({})).await;
        expect_error(&r, &["the fuel budget ran out", "1000000 units of fuel"]);
        // A trap: the guest panics.
        let r = call(peer, "panic__run", json!({"message": "boom"})).await;
        expect_error(&r, &["the tool trapped", "deliberate panic: boom"]);
        // Arguments, with the field named.
        let r = call(peer, "word_count__count", json!({})).await;
        expect_error(
            &r,
            &[
                "invalid arguments",
                "argument `text`",
                "missing (expected string)",
            ],
        );
        let r = call(peer, "word_count__count", json!({"text": 42})).await;
        expect_error(&r, &["argument `text`", "expected string, got 42"]);
        let r = call(peer, "word_count__count", json!({"text": "a", "extra": 1})).await;
        expect_error(
            &r,
            &["argument `extra`", "unknown argument (accepted: text)"],
        );
        // An unknown tool is a protocol error naming the tools there are.
        let mut params = args(json!({}));
        params.name = "nope.run".into();
        let e = peer.call_tool(params).await.unwrap_err().to_string();
        assert!(
            e.contains("no tool `nope.run`") && e.contains("word_count__count"),
            "{e}"
        );
        // The server is still fine.
        expect_ok(&call(peer, "word_count__count", json!({"text": "still here"})).await);
        client.cancel().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_tool_that_loops_forever_does_not_block_the_others() {
        let (client, _) = stdio_client("spin").await;
        let started = Instant::now();
        let peer = client.peer().clone();
        let spin = tokio::spawn(async move { call(&peer, "spin__run", json!({})).await });
        tokio::time::sleep(Duration::from_millis(200)).await;
        for i in 0..20 {
            let r = call(client.peer(), "word_count__count", json!({"text": "x y"})).await;
            assert_eq!(expect_ok(&r)["words"], 2, "call {i}");
        }
        assert!(
            !spin.is_finished(),
            "20 calls should finish well inside the spin's 2 s deadline ({:?} elapsed)",
            started.elapsed()
        );
        let r = spin.await.unwrap();
        expect_error(&r, &["the deadline budget ran out", "2s deadline"]);
        assert!(started.elapsed() >= Duration::from_secs(2));
        client.cancel().await.unwrap();
    }

    #[test]
    fn two_tools_offered_under_one_name_stop_startup() {
        // `word-count` and `word_count` both fold to `word_count__count`.
        let wc = guest("word_count");
        let stderr = refused_at_startup(&format!(
            "[tools.word-count]\ncomponent = '{wc}'\n[tools.word_count]\ncomponent = '{wc}'\n"
        ));
        assert!(
            stderr.contains(
                "`word-count.count` and `word_count.count` would both be offered as \
                 `word_count__count`"
            ) && stderr.contains("[tools.word_count.functions.count] name = "),
            "{stderr}"
        );
        // A name the toolkit chose that another function already has.
        let stderr = refused_at_startup(&format!(
            "[tools.a]\ncomponent = '{wc}'\n[tools.b]\ncomponent = '{wc}'\n\
             [tools.b.functions.count]\nname = 'a__count'\n"
        ));
        assert!(
            stderr.contains("`a.count` and `b.count` would both be offered as `a__count`"),
            "{stderr}"
        );
        // A chosen name that is not portable.
        let stderr = refused_at_startup(&format!(
            "[tools.a]\ncomponent = '{wc}'\n[tools.a.functions.count]\nname = 'a.count'\n"
        ));
        assert!(
            stderr.contains("[tools.a.functions.count] name = \"a.count\" contains '.'"),
            "{stderr}"
        );
    }

    #[test]
    fn a_toolkit_cannot_call_a_tool_safer_than_its_grants() {
        let probe = guest("http_probe");
        let poster = format!(
            "[tools.poster]\ncomponent = '{probe}'\n[tools.poster.grants.fetch]\n\
             allow = ['https://api.example.com/']\nmethods = ['GET', 'POST', 'PUT']\n\
             [tools.poster.annotations]\n"
        );
        for (line, why) in [
            ("read_only = true", "fetch may send POST, PUT"),
            ("destructive = false", "fetch may send PUT"),
            (
                "idempotent = true",
                "fetch may send POST, PUT, so a repeated call may act again",
            ),
            (
                "open_world = false",
                "fetch reaches https://api.example.com/",
            ),
        ] {
            let stderr = refused_at_startup(&format!("{poster}{line}\n"));
            assert!(
                stderr.contains(&format!(
                    "[tools.poster.annotations] {line} claims less than its grants allow ({why})"
                )),
                "{line}: {stderr}"
            );
        }
        // The schema command refuses it the same way.
        let dir = tempfile::tempdir().unwrap();
        let kit = dir.path().join("kit.toml");
        std::fs::write(&kit, format!("{poster}read_only = true\n")).unwrap();
        let out = command(&["schema", kit.to_str().unwrap()])
            .output()
            .unwrap();
        let (_, stderr) = expect_exit(&out, 2);
        assert!(stderr.contains("read_only = true claims less"), "{stderr}");
    }

    #[test]
    fn a_world_refusal_stops_startup() {
        let dir = tempfile::tempdir().unwrap();
        let kit = dir.path().join("kit.toml");
        let toolkit = format!(
            "[tools.word-count]\ncomponent = '{}'\n[tools.over]\ncomponent = '{}'\n[tools.over.grants.log]\n",
            guest("word_count"),
            guest("overreach")
        );
        std::fs::write(&kit, toolkit).unwrap();
        let out = command(&["mcp", kit.to_str().unwrap()])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let (stdout, stderr) = expect_exit(&out, 3);
        assert!(stdout.is_empty(), "stdout is the protocol: {stdout}");
        assert!(
            stderr.contains("tool `over` was refused before it could start"),
            "{stderr}"
        );
        assert!(stderr.contains("airlock:verbs/sign@0.1.0"), "{stderr}");
    }

    #[test]
    fn http_checks_the_host_header_and_the_path() {
        let server = http_server();
        let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}"#;
        let port = server.addr.rsplit(':').next().unwrap();
        let host = |h: &str| format!("Host: {h}");
        // DNS rebinding: a page on evil.example resolved to 127.0.0.1.
        let evil = host(&format!("evil.example:{port}"));
        let (status, all) = raw_http(&server.addr, "POST", "/mcp", &evil, init);
        assert!(status.contains(" 403 "), "{all}");
        // The right name on another port: refused too.
        let (status, _) = raw_http(&server.addr, "POST", "/mcp", &host("127.0.0.1:1"), init);
        assert!(status.contains(" 403 "), "{status}");
        // A page of another origin posting to the right host.
        let cross = format!("{}\r\nOrigin: http://evil.example", host(&server.addr));
        let (status, all) = raw_http(&server.addr, "POST", "/mcp", &cross, init);
        assert!(status.contains(" 403 "), "{all}");
        for h in [server.addr.clone(), format!("localhost:{port}")] {
            let (status, all) = raw_http(&server.addr, "POST", "/mcp", &host(&h), init);
            assert!(status.contains(" 200 "), "Host {h}: {all}");
        }
        let same = format!("{}\r\nOrigin: http://{}", host(&server.addr), server.addr);
        let (status, all) = raw_http(&server.addr, "POST", "/mcp", &same, init);
        assert!(status.contains(" 200 "), "{all}");
        let (status, all) = raw_http(&server.addr, "POST", "/other", &host(&server.addr), init);
        assert!(status.contains(" 404 "), "{all}");
    }

    #[test]
    fn http_turns_away_json_nested_a_hundred_thousand_deep_and_keeps_serving() {
        let server = http_server();
        let host = format!("Host: {}", server.addr);
        let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}"#;

        // JSON nested 100,000 deep in the params of an initialize request.
        let deep = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}{}}}"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        let (status, all) = raw_http(&server.addr, "POST", "/mcp", &host, &deep);
        // A body that cannot be parsed: 400 with the parser's reason.
        assert!(status.contains(" 400 "), "deep JSON: {all}");
        assert!(all.contains("recursion limit exceeded"), "{all}");

        let (status, all) = raw_http(&server.addr, "POST", "/mcp", &host, init);
        assert!(status.contains(" 200 "), "the next client is served: {all}");
    }
}

#[path = "mcp/cancel.rs"]
mod cancel;

#[path = "mcp/progress.rs"]
mod progress;
