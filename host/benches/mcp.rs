//! What one MCP tool call costs end to end, over stdio and over HTTP.
//!
//! Run with `cargo bench -p airlock --bench mcp` (or `cargo xtask bench`).
//! Guests are read from `$AIRLOCK_GUESTS` (default:
//! `target/wasm32-wasip2/release` of this workspace).
//!
//! The release `airlock mcp` binary serves a one-tool toolkit (`word_count`);
//! each iteration is one `tools/call` of its one function with a 16-byte
//! text, waiting for the result. Calls are sequential, so this is latency,
//! not throughput.
//!
//! - `mcp/stdio`: an `rmcp` client in this process, over the server's
//!   stdin/stdout. One round trip is: JSON-RPC encode, a pipe write, the
//!   server's read and decode, argument conversion, one fresh airlock job
//!   (store, instantiate, call, drop), the result encoded twice (text and
//!   `structuredContent`), a pipe write, the client's read and decode.
//! - `mcp/http`: the same call over streamable HTTP on 127.0.0.1 from a raw
//!   HTTP/1.1 client on one keep-alive socket that does **not** set
//!   `TCP_NODELAY` (as Node's HTTP client does not): one request write, then
//!   the SSE response read to its end. Without `TCP_NODELAY` on the server's
//!   side this costs a delayed ACK, ~40 ms, per call.
//!
//! Before criterion's own measurement the bench times single calls one by
//! one and prints their p50 and p99, which criterion does not report; they go
//! to `$CRITERION_HOME/mcp/latency.json` for `cargo xtask bench`.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::TokioChildProcess;
use serde_json::{Value, json};

/// Writes the one-tool toolkit into `dir`.
fn toolkit(dir: &Path) -> PathBuf {
    let kit = dir.join("kit.toml");
    let wasm = common::guest("word_count");
    std::fs::write(
        &kit,
        format!("[tools.word-count]\ncomponent = '{}'\n", wasm.display()),
    )
    .unwrap();
    kit
}

/// `airlock mcp KIT` with the cache in `dir`, `args` appended.
fn airlock_mcp(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_airlock"));
    cmd.arg("mcp")
        .arg(toolkit(dir))
        .args(args)
        .current_dir(dir)
        .env("AIRLOCK_CACHE", dir.join("cache"));
    cmd
}

async fn stdio_client(dir: &Path) -> RunningService<RoleClient, ()> {
    let cmd = tokio::process::Command::from(airlock_mcp(dir, &[]));
    let (transport, _) = TokioChildProcess::builder(cmd)
        .stderr(Stdio::null())
        .spawn()
        .expect("cannot start airlock mcp");
    ().serve(transport)
        .await
        .expect("the MCP session did not start")
}

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

fn http_server(dir: &Path) -> HttpServer {
    let log = dir.join("http.stderr");
    let child = airlock_mcp(dir, &["--http", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("cannot start airlock mcp --http");
    let mut server = HttpServer {
        child,
        addr: String::new(),
    };
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(120) {
        let seen = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some((addr, _)) = seen
            .split_once(" at http://")
            .and_then(|(_, rest)| rest.split_once("/mcp"))
        {
            server.addr = addr.to_string();
            return server;
        }
        assert!(
            server.child.try_wait().unwrap().is_none(),
            "airlock mcp --http exited: {seen}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("airlock mcp --http did not start within 120 s");
}

/// A minimal MCP client over HTTP/1.1: one keep-alive socket without
/// `TCP_NODELAY`, one request at a time.
struct Raw {
    reader: BufReader<TcpStream>,
    addr: String,
    session: Option<String>,
    next_id: u64,
}

impl Raw {
    fn connect(addr: &str) -> Self {
        let stream = TcpStream::connect(addr).unwrap();
        assert!(
            !stream.nodelay().unwrap(),
            "the client must not set TCP_NODELAY"
        );
        let mut raw = Raw {
            reader: BufReader::new(stream),
            addr: addr.to_string(),
            session: None,
            next_id: 0,
        };
        let (head, _) = raw.post(&json!({
            "jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                       "clientInfo": {"name": "bench", "version": "1"}},
        }));
        raw.session = head.lines().find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("mcp-session-id")
                .then(|| value.trim().to_string())
        });
        assert!(raw.session.is_some(), "no session: {head}");
        raw.post(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        raw
    }

    /// Sends `body` in one write; returns the response head and body.
    fn post(&mut self, body: &Value) -> (String, Vec<u8>) {
        let body = body.to_string();
        let mut request = format!(
            "POST /mcp HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Accept: application/json, text/event-stream\r\nContent-Length: {}\r\n",
            self.addr,
            body.len()
        );
        if let Some(id) = &self.session {
            request.push_str(&format!(
                "Mcp-Session-Id: {id}\r\nMcp-Protocol-Version: 2025-06-18\r\n"
            ));
        }
        request.push_str("\r\n");
        request.push_str(&body);
        self.reader.get_mut().write_all(request.as_bytes()).unwrap();
        let mut head = String::new();
        loop {
            let mut line = String::new();
            assert!(self.reader.read_line(&mut line).unwrap() > 0, "closed");
            if line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        assert!(head.starts_with("HTTP/1.1 20"), "{head}");
        let lower = head.to_ascii_lowercase();
        let mut out = Vec::new();
        if let Some(len) = lower
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
        {
            out.resize(len.trim().parse().unwrap(), 0);
            self.reader.read_exact(&mut out).unwrap();
        } else if lower.contains("transfer-encoding: chunked") {
            loop {
                let mut size = String::new();
                self.reader.read_line(&mut size).unwrap();
                let size = usize::from_str_radix(size.trim(), 16).unwrap();
                let mut chunk = vec![0; size + 2];
                self.reader.read_exact(&mut chunk).unwrap();
                if size == 0 {
                    break;
                }
                out.extend_from_slice(&chunk[..size]);
            }
        }
        (head, out)
    }

    fn call(&mut self, name: &str) {
        self.next_id += 1;
        let (_, body) = self.post(&json!({
            "jsonrpc": "2.0", "id": self.next_id, "method": "tools/call",
            "params": {"name": name, "arguments": {"text": common::TEXT}},
        }));
        let body = String::from_utf8(body).unwrap();
        assert!(body.contains(r#""isError":false"#), "{body}");
    }
}

/// Times `samples` single calls; prints and returns their p50 and p99.
fn single_calls(label: &str, samples: usize, mut call: impl FnMut()) -> Value {
    let mut times: Vec<Duration> = (0..samples)
        .map(|_| {
            let start = Instant::now();
            call();
            start.elapsed()
        })
        .collect();
    times.sort();
    let at = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize];
    let (p50, p99) = (at(0.50), at(0.99));
    println!(
        "{label}: p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs ({samples} sequential calls)",
        p50.as_secs_f64() * 1e6,
        p99.as_secs_f64() * 1e6,
        times.last().unwrap().as_secs_f64() * 1e6,
    );
    json!({"p50_ns": p50.as_nanos() as f64, "p99_ns": p99.as_nanos() as f64, "calls": samples})
}

fn results_path() -> PathBuf {
    std::env::var_os("CRITERION_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/criterion"))
        .join("mcp/latency.json")
}

fn main() {
    let mut c = common::config().configure_from_args();
    let measuring = std::env::args().any(|a| a == "--bench");
    let samples = match (measuring, common::quick()) {
        (false, _) => 20,
        (true, true) => 500,
        (true, false) => 2000,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();

    let client = rt.block_on(stdio_client(dir.path()));
    let tools = rt.block_on(client.list_all_tools()).expect("tools/list");
    let name = tools.first().expect("one tool").name.to_string();
    let request = CallToolRequestParams::new(name.clone()).with_arguments(
        json!({ "text": common::TEXT })
            .as_object()
            .cloned()
            .unwrap(),
    );
    let stdio_call = || {
        let r = rt
            .block_on(client.call_tool(request.clone()))
            .expect("tools/call");
        assert_eq!(r.is_error, Some(false), "{r:?}");
    };
    // Warm up: the first calls after startup pay for lazy initialisation.
    (0..50).for_each(|_| stdio_call());
    let stdio = single_calls("mcp/stdio", samples, stdio_call);
    let mut group = c.benchmark_group("mcp");
    group.bench_function("stdio", |b| b.iter(stdio_call));
    rt.block_on(client.cancel()).unwrap();

    let server = http_server(dir.path());
    let mut raw = Raw::connect(&server.addr);
    (0..50).for_each(|_| raw.call(&name));
    let http = single_calls("mcp/http (client without TCP_NODELAY)", samples, || {
        raw.call(&name)
    });
    group.bench_function("http", |b| b.iter(|| raw.call(&name)));
    group.finish();
    drop(server);

    let path = results_path();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&json!({"stdio": stdio, "http": http})).unwrap(),
    )
    .unwrap();
    c.final_summary();
}
