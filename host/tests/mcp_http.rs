//! End-to-end tests of `airlock mcp --http`'s listener: its limits under
//! slow clients and `initialize` floods (the `mcp` wall), its HTTP answers
//! (`DELETE` of a session, a malformed body) and its latency with a client
//! that does not set `TCP_NODELAY`. Every server is the real binary on
//! 127.0.0.1:0 with a host config whose `[mcp]` section sets small limits;
//! clients are raw sockets (one request at a time, as a minimal MCP client
//! does) and the official Rust SDK's client (`rmcp`).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use serde_json::{Value, json};
use tempfile::TempDir;

fn guest(name: &str) -> String {
    common::guest_string(name)
}

/// The directory shared by the whole test process: the toolkit, the configs,
/// the component cache and the servers' stderr.
fn scratch() -> &'static Path {
    static DIR: OnceLock<TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("airlock-mcp-http-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .expect("cannot create a scratch directory");
        let toolkit = format!(
            "[tools.word-count]\ncomponent = '{}'\n\
             [tools.spin]\ncomponent = '{}'\n\
             [tools.spin.budget]\ntimeout = \"2s\"\nfuel = 1_000_000_000_000\n",
            guest("word_count"),
            guest("spin")
        );
        std::fs::write(dir.path().join("kit.toml"), toolkit).unwrap();
        dir
    })
    .path()
}

/// `airlock mcp --http 127.0.0.1:0` with a host config of `[mcp]` `limits`;
/// killed on drop.
struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn server(label: &str, limits: &str) -> Server {
    let dir = scratch();
    let config = dir.join(format!("{label}.toml"));
    std::fs::write(&config, format!("[mcp]\n{limits}\n")).unwrap();
    let stderr = std::fs::File::create(dir.join(format!("{label}.stderr"))).unwrap();
    let log = dir.join(format!("{label}.stderr"));
    let child = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(["mcp", "kit.toml", "--http", "127.0.0.1:0", "--config"])
        .arg(&config)
        .env("AIRLOCK_CACHE", dir.join("cache"))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let mut server = Server {
        child,
        addr: String::new(),
    };
    server.addr = common::announced_address(&mut server.child, &log, " at http://");
    server
}

/// One HTTP response.
#[derive(Debug)]
struct Reply {
    status: u16,
    head: String,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    /// The JSON-RPC messages of the body: the body itself, or each SSE `data:`.
    fn messages(&self) -> Vec<Value> {
        if self.body.trim_start().starts_with('{') {
            return vec![serde_json::from_str(&self.body).unwrap()];
        }
        self.body
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(|d| serde_json::from_str(d).unwrap())
            .collect()
    }
}

/// A minimal MCP client: one keep-alive connection, one request at a time,
/// no `TCP_NODELAY` on its side.
struct Raw {
    reader: BufReader<TcpStream>,
    addr: String,
    session: Option<String>,
    next_id: u64,
    tools: Vec<String>,
}

impl Raw {
    fn connect(addr: &str) -> Self {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        assert!(!stream.nodelay().unwrap());
        Raw {
            reader: BufReader::new(stream),
            addr: addr.to_string(),
            session: None,
            next_id: 1,
            tools: Vec::new(),
        }
    }

    fn send(&mut self, method: &str, content_type: &str, body: &str) -> Reply {
        let mut request = format!(
            "{method} /mcp HTTP/1.1\r\nHost: {}\r\nContent-Type: {content_type}\r\n\
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
        request.push_str(body);
        // One write, so the request itself never waits on Nagle.
        self.reader.get_mut().write_all(request.as_bytes()).unwrap();
        self.read_reply()
    }

    fn post(&mut self, body: &Value) -> Reply {
        self.send("POST", "application/json", &body.to_string())
    }

    fn read_reply(&mut self) -> Reply {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            let n = self.reader.read_line(&mut line).unwrap();
            assert!(
                n > 0,
                "the server closed the connection; head so far: {head:?}"
            );
            if line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        let mut reply = Reply {
            status,
            head,
            body: String::new(),
        };
        let mut body = Vec::new();
        if let Some(len) = reply.header("content-length") {
            body.resize(len.parse().unwrap(), 0);
            self.reader.read_exact(&mut body).unwrap();
        } else if reply
            .header("transfer-encoding")
            .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
        {
            loop {
                let mut size = String::new();
                self.reader.read_line(&mut size).unwrap();
                let size = usize::from_str_radix(size.trim(), 16).unwrap();
                let mut chunk = vec![0; size + 2];
                self.reader.read_exact(&mut chunk).unwrap();
                if size == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..size]);
            }
        }
        reply.body = String::from_utf8(body).unwrap();
        reply
    }

    fn initialize(&mut self) -> Reply {
        self.session = None;
        let reply = self.post(&json!({
            "jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                       "clientInfo": {"name": "raw", "version": "1"}},
        }));
        if reply.status == 200 {
            self.session = reply.header("mcp-session-id").map(str::to_string);
            assert!(self.session.is_some(), "{reply:?}");
            let done = self.post(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
            assert_eq!(done.status, 202, "{done:?}");
        }
        reply
    }

    /// The MCP name of the tool whose name starts with `prefix` (`word`,
    /// `spin`), whatever the naming scheme.
    fn tool(&mut self, prefix: &str) -> String {
        if self.tools.is_empty() {
            let reply = self.post(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}));
            let list = reply.messages().into_iter().find(|m| m["id"] == 1);
            let list = list.unwrap_or_else(|| panic!("no tools/list answer: {reply:?}"));
            self.tools = list["result"]["tools"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["name"].as_str().unwrap().to_string())
                .collect();
        }
        let found = self.tools.iter().find(|t| t.starts_with(prefix));
        found.unwrap_or_else(|| panic!("no tool {prefix}*")).clone()
    }

    /// `tools/call` of the tool [`Raw::tool`] finds; returns the JSON-RPC result.
    fn call(&mut self, prefix: &str, arguments: Value) -> Value {
        let name = self.tool(prefix);
        self.next_id += 1;
        let id = self.next_id;
        let reply = self.post(&json!({
            "jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": name, "arguments": arguments},
        }));
        assert_eq!(reply.status, 200, "{reply:?}");
        reply
            .messages()
            .into_iter()
            .find(|m| m["id"] == id)
            .unwrap_or_else(|| panic!("no response to {id}: {reply:?}"))["result"]
            .clone()
    }
}

/// A connection that sends part of a request head and then nothing.
fn slow_socket(addr: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(format!("POST /mcp HTTP/1.1\r\nHost: {addr}\r\nX-Slow: ").as_bytes())
        .unwrap();
    s
}

/// A connection that sent a whole request head and then only part of its
/// body: still waiting, like one stuck in its head.
fn slow_body_socket(addr: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    let head = format!(
        "POST /mcp HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nContent-Length: 100\r\n\r\n{{\"jsonrpc\""
    );
    s.write_all(head.as_bytes()).unwrap();
    s
}

/// Whether the server has closed `s` (or answered on it) within `wait`.
fn closed_within(mut s: &TcpStream, wait: Duration) -> bool {
    s.set_read_timeout(Some(wait)).unwrap();
    let mut byte = [0u8; 1];
    match s.read(&mut byte) {
        // Closed, or answered (and about to close).
        Ok(0) | Ok(1..) => true,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

/// An rmcp client over HTTP.
async fn sdk_client(addr: &str) -> RunningService<RoleClient, ()> {
    // reqwest (built with `rustls-no-provider` in a workspace build) panics
    // without a process-wide crypto provider, even for plain http.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let url = format!("http://{addr}/mcp");
    ().serve(StreamableHttpClientTransport::from_uri(url))
        .await
        .expect("the MCP session did not start")
}

/// `tools/call` of the tool whose name starts with `prefix` (`word`, `spin`).
async fn sdk_call(client: &rmcp::Peer<RoleClient>, prefix: &str, text: &str) -> CallToolResult {
    let tools = client.list_all_tools().await.expect("tools/list");
    let name = tools
        .iter()
        .map(|t| t.name.to_string())
        .find(|n| n.starts_with(prefix))
        .unwrap_or_else(|| panic!("no tool {prefix}*"));
    let mut params = CallToolRequestParams::new(name.clone());
    if !text.is_empty() {
        params = params.with_arguments(json!({"text": text}).as_object().cloned().unwrap());
    }
    client
        .call_tool(params)
        .await
        .unwrap_or_else(|e| panic!("tools/call {name} failed at the protocol level: {e}"))
}

// ---- HTTP answers ----

#[test]
fn delete_of_a_session_answers_204_and_the_session_is_gone() {
    let server = server("delete", "");
    let mut client = Raw::connect(&server.addr);
    assert_eq!(client.initialize().status, 200);
    let result = client.call("word", json!({"text": "a b"}));
    assert_eq!(result["structuredContent"]["words"], 2, "{result}");
    let reply = client.send("DELETE", "application/json", "");
    assert_eq!(reply.status, 204, "{reply:?}");
    // The session is gone: its requests, and a second DELETE, are 404.
    let reply = client.post(&json!({"jsonrpc": "2.0", "id": 9, "method": "tools/list"}));
    assert_eq!(reply.status, 404, "{reply:?}");
    let reply = client.send("DELETE", "application/json", "");
    assert_eq!(reply.status, 404, "{reply:?}");
}

#[test]
fn sequential_calls_from_a_client_without_tcp_nodelay_do_not_wait_for_delayed_acks() {
    let server = server("nodelay", "");
    let mut client = Raw::connect(&server.addr);
    assert_eq!(client.initialize().status, 200);
    for _ in 0..5 {
        client.call("word", json!({"text": "warm up"}));
    }
    let mut times: Vec<Duration> = (0..50)
        .map(|_| {
            let start = Instant::now();
            let result = client.call("word", json!({"text": "hello wasm world"}));
            assert_eq!(result["structuredContent"]["words"], 3, "{result}");
            start.elapsed()
        })
        .collect();
    times.sort();
    // Without TCP_NODELAY on the server's socket each response waits for the
    // client's delayed ACK: ~40 ms on Linux. The bench measures the real p50.
    let p50 = times[times.len() / 2];
    assert!(
        p50 < Duration::from_millis(20),
        "p50 of 50 sequential tools/call is {p50:?}: the response waited for a delayed ACK"
    );
}

// ---- walls: hostile HTTP clients ----

mod mcp {
    use super::*;

    #[test]
    fn a_body_that_is_not_json_rpc_is_400_with_a_parse_error() {
        let server = server("malformed", "");
        let mut client = Raw::connect(&server.addr);
        for (body, code) in [
            (r#"{"jsonrpc":"2.0","id":1,"method":"#, -32700),
            ("not json at all", -32700),
            (r#"{"hello":"world"}"#, -32600),
            ("[1, 2, 3]", -32600),
        ] {
            let reply = client.send("POST", "application/json", body);
            assert_eq!(reply.status, 400, "{body}: {reply:?}");
            assert_eq!(reply.header("content-type"), Some("application/json"));
            let error = &reply.messages()[0];
            assert_eq!(error["jsonrpc"], "2.0", "{error}");
            assert_eq!(error["id"], Value::Null, "{error}");
            assert_eq!(error["error"]["code"], code, "{body}: {error}");
        }
        // The media type is still checked first.
        let reply = client.send("POST", "text/plain", "{}");
        assert_eq!(reply.status, 415, "{reply:?}");
        // The same connection still serves a real client.
        assert_eq!(client.initialize().status, 200);
        let result = client.call("word", json!({"text": "still here"}));
        assert_eq!(result["structuredContent"]["words"], 2, "{result}");
    }

    #[test]
    fn a_slow_head_a_slow_body_and_an_idle_connection_are_closed_after_header_timeout() {
        let server = server("slowloris", "header_timeout = \"1s\"");
        let start = Instant::now();
        // Part of a head, then nothing.
        let head = slow_socket(&server.addr);
        // A whole head announcing 100 bytes of body, then 10.
        let mut body = TcpStream::connect(&server.addr).unwrap();
        body.write_all(
            format!(
                "POST /mcp HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
                 Accept: application/json, text/event-stream\r\nContent-Length: 100\r\n\r\n{{\"jsonrpc\"",
                server.addr
            )
            .as_bytes(),
        )
        .unwrap();
        // A real request, then an idle keep-alive connection.
        let mut idle = Raw::connect(&server.addr);
        assert_eq!(idle.initialize().status, 200);

        // Not before the timeout (with a margin for the machine's load)...
        assert!(!closed_within(&head, Duration::from_millis(600)));
        assert!(!closed_within(&body, Duration::from_millis(10)));
        assert!(!closed_within(
            idle.reader.get_ref(),
            Duration::from_millis(10)
        ));
        // ...and soon after it.
        for (name, s) in [("slow head", &head), ("idle", idle.reader.get_ref())] {
            assert!(
                closed_within(s, Duration::from_secs(4)),
                "{name}: still open {:?} after connecting",
                start.elapsed()
            );
        }
        // The slow body is told why, then closed.
        body.set_read_timeout(Some(Duration::from_secs(4))).unwrap();
        let mut answer = String::new();
        body.read_to_string(&mut answer)
            .expect("the slow body's connection was not closed");
        assert!(answer.starts_with("HTTP/1.1 408 "), "{answer:?}");
        assert!(answer.contains("header_timeout"), "{answer:?}");
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn twice_max_connections_of_slow_clients_do_not_lock_out_real_clients() {
        // The timeout far beyond the bound below: only the connection cap's
        // choice of whom to close can let the real clients in.
        let server = server(
            "flood-connections",
            "max_connections = 6\nheader_timeout = \"60s\"",
        );
        // A call in progress when the slow clients arrive.
        let busy = sdk_client(&server.addr).await;
        let peer = busy.peer().clone();
        let spin = tokio::spawn(async move { sdk_call(&peer, "spin", "").await });
        tokio::time::sleep(Duration::from_millis(300)).await;
        // A session's standalone SSE stream, held open: waiting, not busy.
        let addr = server.addr.clone();
        let held = tokio::task::spawn_blocking(move || {
            let mut raw = Raw::connect(&addr);
            assert_eq!(raw.initialize().status, 200);
            let mut s = TcpStream::connect(&addr).unwrap();
            let get = format!(
                "GET /mcp HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\
                 Mcp-Session-Id: {}\r\nMcp-Protocol-Version: 2025-06-18\r\n\r\n",
                raw.session.unwrap()
            );
            s.write_all(get.as_bytes()).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut head = [0u8; 12];
            s.read_exact(&mut head).unwrap();
            assert_eq!(&head, b"HTTP/1.1 200");
            s
        })
        .await
        .unwrap();

        let addr = server.addr.clone();
        let slow: Vec<TcpStream> = tokio::task::spawn_blocking(move || {
            // Half stuck in their heads, half in their bodies.
            (0..12)
                .map(|i| match i % 2 {
                    0 => slow_socket(&addr),
                    _ => slow_body_socket(&addr),
                })
                .collect()
        })
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;

        let start = Instant::now();
        let real = sdk_client(&server.addr).await;
        let r = sdk_call(real.peer(), "word", "served anyway").await;
        let took = start.elapsed();
        assert_eq!(r.is_error, Some(false), "{r:?}");
        assert_eq!(r.structured_content.unwrap()["words"], 2);
        assert!(
            took < Duration::from_secs(10),
            "initialize + tools/call took {took:?} behind 12 slow connections"
        );
        // The call in progress was never the one closed.
        let r = spin.await.unwrap();
        assert_eq!(r.is_error, Some(true), "{r:?}");
        assert!(format!("{r:?}").contains("deadline"), "{r:?}");
        // Slow clients were closed to make room: with the spinning call
        // holding a slot, at most 5 of the 12 can still be open.
        let closed = tokio::task::spawn_blocking(move || {
            slow.iter()
                .filter(|s| closed_within(s, Duration::from_millis(50)))
                .count()
        })
        .await
        .unwrap();
        assert!(
            closed >= 7,
            "only {closed} of 12 slow connections were closed"
        );
        // The held SSE stream, older than them, was closed too.
        let ended = tokio::task::spawn_blocking(move || {
            held.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            (&held).read_to_end(&mut Vec::new())
        })
        .await
        .unwrap();
        assert!(
            ended.is_ok(),
            "the held SSE stream is still open: {ended:?}"
        );
        real.cancel().await.unwrap();
        busy.cancel().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_initialize_flood_is_capped_and_open_sessions_keep_working() {
        let server = server("flood-sessions", "max_sessions = 8\nsession_idle = \"4s\"");
        let real = sdk_client(&server.addr).await;
        // 40 initializes, each on its own session, beyond the 7 slots left
        // (in far less than session_idle, so none expires meanwhile).
        let addr = server.addr.clone();
        let (mut opened, refused) = tokio::task::spawn_blocking(move || {
            let mut client = Raw::connect(&addr);
            let (mut opened, mut refused) = (Vec::new(), Vec::new());
            for _ in 0..40 {
                let reply = client.initialize();
                match reply.status {
                    200 => opened.push(client.session.clone().unwrap()),
                    _ => refused.push(reply),
                }
            }
            // Full or not, a request for another host is still refused first.
            client.addr = "evil.example".into();
            assert_eq!(client.initialize().status, 403);
            (opened, refused)
        })
        .await
        .unwrap();
        assert_eq!(opened.len(), 7, "sessions opened beyond max_sessions");
        assert_eq!(refused.len(), 33);
        assert!(refused.iter().all(|r| r.status == 503), "{refused:?}");
        let reply = &refused[0];
        assert!(reply.header("retry-after").is_some(), "{reply:?}");
        let message = reply.messages()[0]["error"]["message"].clone();
        assert!(
            message.as_str().unwrap().contains("max_sessions"),
            "{message}"
        );
        // The session opened before the flood is still served.
        let r = sdk_call(real.peer(), "word", "still served").await;
        assert_eq!(r.is_error, Some(false), "{r:?}");

        // Ending one session frees exactly one slot.
        let addr = server.addr.clone();
        let statuses = tokio::task::spawn_blocking(move || {
            let mut client = Raw::connect(&addr);
            client.session = opened.pop();
            let deleted = client.send("DELETE", "application/json", "").status;
            let again = client.initialize().status;
            let over = client.initialize().status;
            (deleted, again, over)
        })
        .await
        .unwrap();
        assert_eq!(statuses, (204, 200, 503));

        // Idle sessions expire; one in use does not.
        for _ in 0..12 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let r = sdk_call(real.peer(), "word", "keep me").await;
            assert_eq!(r.is_error, Some(false), "{r:?}");
        }
        let addr = server.addr.clone();
        let reopened = tokio::task::spawn_blocking(move || {
            let mut client = Raw::connect(&addr);
            (0..8)
                .map(|_| client.initialize().status)
                .collect::<Vec<_>>()
        })
        .await
        .unwrap();
        assert_eq!(reopened, [200, 200, 200, 200, 200, 200, 200, 503]);
        real.cancel().await.unwrap();
    }
}
