//! The cancellation wall: a cancelled MCP call stops its job. A spinning
//! guest, a `fetch` to an origin that never answers and a `complete` call to
//! a model that never answers are cancelled over stdio and HTTP by
//! `notifications/cancelled`, a closed stdin, a dropped HTTP connection and a
//! deleted session; each time the audit trail records the job as `cancelled`
//! and the upstream server sees its connection closed. Timings are measured
//! against the audit record's own timestamp and printed (`--nocapture`).

use super::*;

use std::net::TcpListener;
use std::sync::mpsc::{Receiver, channel};
use std::time::SystemTime;

use airlock::{
    Airlock, Budget, Capabilities, Grants, HostOptions, JobControl, JobError, NullAudit,
};
use rmcp::model::{CallToolRequest, ClientRequest};
use rmcp::service::PeerRequestOptions;

/// A loopback server that accepts connections and never answers; it sends
/// the instant each connection was closed by its client.
fn silent_server() -> (u16, Receiver<Instant>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                // Reads the request and whatever follows until the client closes.
                while matches!(conn.read(&mut buf), Ok(n) if n > 0) {}
                let _ = tx.send(Instant::now());
            });
        }
    });
    (port, rx)
}

/// A toolkit whose fetch and model reach `origin` and `model` on loopback,
/// its host config, and the audit file a server writes.
pub(crate) struct Env {
    kit: String,
    config: String,
    audit: PathBuf,
    _dir: TempDir,
}

impl Env {
    pub(crate) fn new(origin: u16, model: u16) -> Self {
        let dir = tempfile::tempdir_in(scratch()).unwrap();
        let config = format!(
            "[providers.slow]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:{model}/v1\"\n"
        );
        let toolkit = format!(
            r#"
[tools.spinner]
component = '{spin}'
[tools.spinner.budget]
timeout = "20s"
fuel = 1_000_000_000_000

[tools.probe]
component = '{probe}'
[tools.probe.budget]
timeout = "20s"
[tools.probe.grants.fetch]
allow = ["http://127.0.0.1:{origin}/"]
private_networks = ["127.0.0.1"]
timeout = "20s"

[tools.chat]
component = '{chat}'
[tools.chat.budget]
timeout = "20s"
[tools.chat.grants.complete]
provider = "slow"
models = ["m"]

[tools.flood]
component = '{flood}'
[tools.flood.grants.log]

[tools.counter]
component = '{word_count}'

[tools.pacer]
component = '{spin}'
[tools.pacer.budget]
timeout = "2500ms"
fuel = 1_000_000_000_000
"#,
            spin = guest("spin"),
            probe = guest("http_probe"),
            chat = guest("chat_probe"),
            flood = guest("bench_log"),
            word_count = guest("word_count"),
        );
        let kit = dir.path().join("kit.toml");
        std::fs::write(&kit, toolkit).unwrap();
        let cfg = dir.path().join("airlock.toml");
        std::fs::write(&cfg, config).unwrap();
        Self {
            kit: kit.to_string_lossy().into_owned(),
            config: cfg.to_string_lossy().into_owned(),
            audit: dir.path().join("audit.jsonl"),
            _dir: dir,
        }
    }

    fn args(&self) -> Vec<&str> {
        vec![
            "mcp",
            &self.kit,
            "--config",
            &self.config,
            "--audit",
            self.audit.to_str().unwrap(),
        ]
    }

    async fn stdio_client(&self) -> (Client, tokio::process::Child) {
        self.stdio_with(()).await
    }

    /// A stdio server with `handler` as its client.
    pub(crate) async fn stdio_with<H: rmcp::ClientHandler>(
        &self,
        handler: H,
    ) -> (RunningService<RoleClient, H>, tokio::process::Child) {
        let mut cmd = tokio::process::Command::from(command(&self.args()));
        let (stderr, _) = stderr_file("cancel");
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("cannot start airlock mcp");
        let transport = (child.stdout.take().unwrap(), child.stdin.take().unwrap());
        let client = handler
            .serve(transport)
            .await
            .expect("the MCP session did not start");
        (client, child)
    }

    /// The `cancelled` job records of the audit trail so far.
    fn cancelled(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.audit)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|r| r["verb"] == "job")
            .collect()
    }

    /// Waits (up to 10 s) for `n` cancelled job records.
    fn wait_cancelled(&self, n: usize) -> Vec<Value> {
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            let found = self.cancelled();
            if found.len() >= n || Instant::now() > until {
                assert_eq!(found.len(), n, "cancelled records: {found:?}");
                return found;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// The listed MCP name of `tool`'s `function`, whatever the naming scheme.
pub(crate) async fn tool_name(
    client: &rmcp::Peer<RoleClient>,
    tool: &str,
    function: &str,
) -> String {
    let tools = client.list_all_tools().await.unwrap();
    tools
        .iter()
        .map(|t| t.name.to_string())
        .find(|n| n.starts_with(tool) && n.ends_with(function))
        .unwrap_or_else(|| panic!("no tool {tool}/{function} in {tools:?}"))
}

fn call_request(name: &str, arguments: Value) -> ClientRequest {
    let mut params = args(arguments);
    params.name = name.to_string().into();
    ClientRequest::CallToolRequest(CallToolRequest::new(params))
}

/// How long after `t0` the audit record `r` was written.
fn after(r: &Value, t0: SystemTime) -> Duration {
    let at = humantime::parse_rfc3339(r["time"].as_str().unwrap()).unwrap();
    at.duration_since(t0).unwrap_or_default()
}

/// Starts `name(arguments)`, waits `running`, cancels it with
/// `notifications/cancelled`; returns the wall-clock time of the cancel.
async fn start_and_cancel(
    client: &Client,
    name: &str,
    arguments: Value,
    running: Duration,
) -> (SystemTime, Instant) {
    let handle = client
        .peer()
        .send_cancellable_request(
            call_request(name, arguments),
            PeerRequestOptions::no_options(),
        )
        .await
        .unwrap();
    tokio::time::sleep(running).await;
    let t0 = (SystemTime::now(), Instant::now());
    handle
        .cancel(Some("the user pressed stop".into()))
        .await
        .unwrap();
    t0
}

/// Checks one cancelled record: its reason, and that it came soon after `t0`.
fn check_stopped(r: &Value, t0: SystemTime, reason: &str, what: &str) -> Duration {
    check_stopped_for_one_of(r, t0, &[reason], what)
}

/// [`check_stopped`] where the record may give any of `reasons`.
fn check_stopped_for_one_of(r: &Value, t0: SystemTime, reasons: &[&str], what: &str) -> Duration {
    assert_eq!(r["decision"], "deny", "{r}");
    assert!(
        reasons
            .iter()
            .any(|reason| r["reason"] == format!("cancelled: {reason}")),
        "{what}: expected one of {reasons:?}: {r}"
    );
    let took = after(r, t0);
    eprintln!(
        "{what}: stopped {took:?} after the cancel ({})",
        r["detail"]
    );
    assert!(took < Duration::from_millis(500), "{what}: {took:?}: {r}");
    took
}

/// The official Python SDK's cancellation (`the_python_sdk_drives_the_server_over_stdio`):
/// it got a heartbeat before giving up after 1.2 s, and the 2 s spin ended
/// as cancelled, not at its deadline.
pub(crate) fn python_cancelled_the_spin(report: &Value, audit: &Path) {
    assert_eq!(report["cancelled"], true, "{report}");
    let progress = report["progress"].as_array().unwrap();
    assert!(!progress.is_empty(), "no heartbeat in 1.2 s: {report}");
    assert!(
        progress[0]["message"]
            .as_str()
            .unwrap()
            .starts_with("running for "),
        "{report}"
    );
    let trail = std::fs::read_to_string(audit).unwrap();
    let jobs: Vec<Value> = trail
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| r["verb"] == "job")
        .collect();
    assert_eq!(jobs.len(), 1, "{trail}");
    let at = report["at"].as_f64().unwrap();
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs_f64(at);
    check_stopped(&jobs[0], t0, "the client cancelled the call", "python SDK");
}

fn spin_args() -> Value {
    json!({})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spinning_tool_cancelled_over_stdio_stops_at_once() {
    let env = Env::new(9, 9);
    let (client, _child) = env.stdio_client().await;
    let spin = tool_name(&client, "spinner", "run").await;
    let (t0, _) = start_and_cancel(&client, &spin, spin_args(), Duration::from_millis(300)).await;
    let records = env.wait_cancelled(1);
    check_stopped(
        &records[0],
        t0,
        "the client cancelled the call",
        "stdio spin",
    );
    assert!(
        records[0]["detail"]
            .as_str()
            .unwrap()
            .starts_with("after 0 verb calls; stopped "),
        "{}",
        records[0]
    );
    // The server goes on serving.
    let count = tool_name(&client, "counter", "count").await;
    let r = call(client.peer(), &count, json!({"text": "still here"})).await;
    assert_eq!(expect_ok(&r)["words"], 2);
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spinning_tool_cancelled_over_http_stops_at_once() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let env = Env::new(9, 9);
    let server = http_server_with(&env.args());
    let url = format!("http://{}/mcp", server.addr);
    let client = ().serve(StreamableHttpClientTransport::from_uri(url)).await.unwrap();
    let spin = tool_name(&client, "spinner", "run").await;
    let (t0, _) = start_and_cancel(&client, &spin, spin_args(), Duration::from_millis(300)).await;
    let records = env.wait_cancelled(1);
    // rmcp's HTTP client cancels in two ways at once: it POSTs
    // `notifications/cancelled` and drops the call's response stream, which
    // closes that connection. Either may reach the server first (seen about
    // once in ten runs); both say the client gave the call up.
    check_stopped_for_one_of(
        &records[0],
        t0,
        &[
            "the client cancelled the call",
            "the client went away: its HTTP connection closed",
        ],
        "http spin",
    );
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_stdin_cancels_the_running_job() {
    let env = Env::new(9, 9);
    let (client, mut child) = env.stdio_client().await;
    let spin = tool_name(&client, "spinner", "run").await;
    let peer = client.peer().clone();
    let pending = tokio::spawn(async move {
        peer.send_cancellable_request(
            call_request(&spin, spin_args()),
            PeerRequestOptions::no_options(),
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t0 = SystemTime::now();
    // Ends the client: its transport, hence the server's stdin, closes.
    client.cancel().await.unwrap();
    let records = env.wait_cancelled(1);
    check_stopped(
        &records[0],
        t0,
        "the client went away: stdin closed",
        "stdin EOF",
    );
    let exited = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
    assert!(
        exited.is_ok(),
        "the server keeps running after stdin closed"
    );
    drop(pending);
}

/// SIGTERM to a server with a call running: the call is cancelled (and
/// audited as such) before the process exits, cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_server_cancels_its_running_calls() {
    let env = Env::new(9, 9);
    let (client, mut child) = env.stdio_client().await;
    let spin = tool_name(&client, "spinner", "run").await;
    let peer = client.peer().clone();
    let pending = tokio::spawn(async move {
        peer.send_cancellable_request(
            call_request(&spin, spin_args()),
            PeerRequestOptions::no_options(),
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t0 = SystemTime::now();
    let pid = child.id().expect("the server is running").to_string();
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(sent.success());
    let exited = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
    let status = exited.expect("the server exits after SIGTERM").unwrap();
    assert!(status.success(), "{status}");
    let records = env.wait_cancelled(1);
    check_stopped(&records[0], t0, "the server is stopping", "SIGTERM");
    drop(pending);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_fetch_closes_its_upstream_connection() {
    let (origin, closed) = silent_server();
    let env = Env::new(origin, 9);
    let (client, _child) = env.stdio_client().await;
    let probe = tool_name(&client, "probe", "send").await;
    let req = json!({"req": {
        "method": "GET", "url": format!("http://127.0.0.1:{origin}/slow"),
        "headers": [], "body": null
    }});
    let (t0, cancelled_at) =
        start_and_cancel(&client, &probe, req, Duration::from_millis(500)).await;
    let records = env.wait_cancelled(1);
    check_stopped(&records[0], t0, "the client cancelled the call", "fetch");
    assert!(
        records[0]["detail"]
            .as_str()
            .unwrap()
            .starts_with("after 1 verb calls"),
        "{}",
        records[0]
    );
    let seen = closed
        .recv_timeout(Duration::from_secs(5))
        .expect("the origin's connection stayed open after the cancel");
    eprintln!(
        "fetch: the origin saw its connection closed {:?} after the cancel",
        seen.saturating_duration_since(cancelled_at)
    );
    // The verb call itself is audited as cancelled.
    let trail = std::fs::read_to_string(&env.audit).unwrap();
    let fetch: Vec<Value> = trail
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| r["verb"] == "fetch")
        .collect();
    assert_eq!(fetch.len(), 1, "{trail}");
    assert!(
        fetch[0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("cancelled"),
        "{}",
        fetch[0]
    );
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_completion_closes_its_model_connection() {
    let (model, closed) = silent_server();
    let env = Env::new(9, model);
    let (client, _child) = env.stdio_client().await;
    let chat = tool_name(&client, "chat", "chat").await;
    let req = json!({
        "messages": [{"role": "user", "content": "take your time"}],
        "options": {"stop": []},
    });
    let (t0, cancelled_at) =
        start_and_cancel(&client, &chat, req, Duration::from_millis(500)).await;
    let records = env.wait_cancelled(1);
    check_stopped(&records[0], t0, "the client cancelled the call", "complete");
    let seen = closed
        .recv_timeout(Duration::from_secs(5))
        .expect("the model server's connection stayed open after the cancel");
    eprintln!(
        "complete: the model server saw the disconnect {:?} after the cancel",
        seen.saturating_duration_since(cancelled_at)
    );
    let trail = std::fs::read_to_string(&env.audit).unwrap();
    assert!(
        trail.contains(r#""reason":"cancelled: the job's caller cancelled it"#),
        "{trail}"
    );
    client.cancel().await.unwrap();
}

/// One raw HTTP/1.1 request on a connection kept open; returns the
/// response head and the connection.
fn open_request(addr: &str, method: &str, headers: &str, body: &str) -> (String, TcpStream) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let request = format!(
        "{method} /mcp HTTP/1.1\r\nHost: {addr}\r\n{headers}Content-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(
            stream.read(&mut byte).unwrap(),
            1,
            "the server closed early"
        );
        head.push(byte[0]);
    }
    (String::from_utf8_lossy(&head).into_owned(), stream)
}

/// A session opened by hand; returns its id.
fn raw_session(addr: &str) -> String {
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}"#;
    let (head, _) = open_request(addr, "POST", "", init);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let id = head
        .lines()
        .find_map(|l| {
            l.split_once(':')
                .filter(|(k, _)| k.eq_ignore_ascii_case("mcp-session-id"))
                .map(|(_, v)| v.trim().to_string())
        })
        .expect("a session id");
    let headers = format!("Mcp-Session-Id: {id}\r\nMcp-Protocol-Version: 2025-06-18\r\n");
    let done = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
    let (head, _) = open_request(addr, "POST", &headers, done);
    assert!(head.starts_with("HTTP/1.1 202"), "{head}");
    id
}

/// Starts a spin on a raw session; returns the open connection.
fn raw_spin(addr: &str, session: &str, name: &str) -> TcpStream {
    let headers = format!("Mcp-Session-Id: {session}\r\nMcp-Protocol-Version: 2025-06-18\r\n");
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": name, "arguments": {}}})
    .to_string();
    let (head, stream) = open_request(addr, "POST", &headers, &call);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    stream
}

async fn listed_spin(addr: &str) -> String {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let url = format!("http://{addr}/mcp");
    let client = ().serve(StreamableHttpClientTransport::from_uri(url)).await.unwrap();
    let name = tool_name(&client, "spinner", "run").await;
    client.cancel().await.unwrap();
    name
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_client_that_hangs_up_cancels_its_job() {
    let env = Env::new(9, 9);
    let server = http_server_with(&env.args());
    let spin = listed_spin(&server.addr).await;
    let session = raw_session(&server.addr);
    let stream = raw_spin(&server.addr, &session, &spin);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t0 = SystemTime::now();
    drop(stream);
    let records = env.wait_cancelled(1);
    check_stopped(
        &records[0],
        t0,
        "the client went away: its HTTP connection closed",
        "http hang-up",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_session_cancels_its_jobs() {
    let env = Env::new(9, 9);
    let server = http_server_with(&env.args());
    let spin = listed_spin(&server.addr).await;
    let session = raw_session(&server.addr);
    let _first = raw_spin(&server.addr, &session, &spin);
    let _second = raw_spin(&server.addr, &session, &spin);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t0 = SystemTime::now();
    let headers = format!("Mcp-Session-Id: {session}\r\nMcp-Protocol-Version: 2025-06-18\r\n");
    let (head, _) = open_request(&server.addr, "DELETE", &headers, "");
    assert!(head.starts_with("HTTP/1.1 2"), "{head}");
    for r in env.wait_cancelled(2) {
        check_stopped(
            &r,
            t0,
            "the client deleted its MCP session",
            "session DELETE",
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_cancelled_spins_leave_every_slot_free() {
    let host = Airlock::new(
        HostOptions {
            pool: airlock::engine::PoolSize {
                max_jobs: 2,
                ..Default::default()
            },
            cache_dir: Some(scratch().join("cache")),
            ..Default::default()
        },
        Capabilities::default(),
        std::sync::Arc::new(NullAudit),
    )
    .unwrap();
    let budget = Budget {
        timeout: Duration::from_secs(20),
        fuel: u64::MAX / 2,
        ..Budget::default()
    };
    let spin = host
        .load_tool_file("spin", Path::new(&guest("spin")), Grants::default(), budget)
        .unwrap();
    // Two at a time on a two-slot host: a slot that stayed taken would make
    // the next round wait for a slot until its 20 s timeout.
    for round in 0..10 {
        let controls = [JobControl::new(), JobControl::new()];
        let none = spin_args();
        let cancel = async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            assert_eq!(host.jobs_running(), 2, "round {round}");
            for c in &controls {
                c.cancel.cancel("the test is done with it");
            }
        };
        let (a, b, ()) = tokio::join!(
            host.run_with(&spin, None, &none, &controls[0]),
            host.run_with(&spin, None, &none, &controls[1]),
            cancel
        );
        for outcome in [a, b] {
            match outcome {
                Err(JobError::Cancelled { reason, .. }) => {
                    assert_eq!(reason, "the test is done with it")
                }
                other => panic!("round {round}: {other:?}"),
            }
        }
    }
    assert_eq!(host.jobs_running(), 0);
}
