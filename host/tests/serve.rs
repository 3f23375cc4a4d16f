//! End-to-end tests of `airlock serve`: the real binary on 127.0.0.1:0 with
//! a host config whose `[serve]` names several toolkits, called by the
//! official Rust SDK's MCP client (`rmcp`) and by raw HTTP: each toolkit at
//! its own path, statelessly; health, readiness and metrics; the audit trail
//! on stdout; and the drain on SIGTERM.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use serde_json::{Value, json};

/// `airlock serve` of `config` (written into a fresh directory with the
/// toolkits), killed on drop.
struct Served {
    child: Child,
    addr: String,
    dir: tempfile::TempDir,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Served {
    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default()
    }

    fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stdout")).unwrap_or_default()
    }

    fn url(&self, toolkit: &str) -> String {
        format!("http://{}/toolkits/{toolkit}/mcp", self.addr)
    }

    /// Sends SIGTERM.
    fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Waits up to `within` for the process to exit; its status.
    fn exited(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let until = Instant::now() + within;
        while Instant::now() < until {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

/// The tools the toolkits below use.
fn toolkits(dir: &Path) {
    let word = common::guest_string("word_count");
    let spin = common::guest_string("spin");
    let log = common::guest_string("bench_log");
    std::fs::write(
        dir.join("words.toml"),
        format!(
            "[tools.word-count]\ncomponent = '{word}'\n\
             [tools.logger]\ncomponent = '{log}'\n[tools.logger.grants.log]\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("spin.toml"),
        format!(
            "[tools.spin-short]\ncomponent = '{spin}'\n\
             [tools.spin-short.budget]\ntimeout = \"700ms\"\nfuel = 1_000_000_000_000\n\
             [tools.spin-long]\ncomponent = '{spin}'\n\
             [tools.spin-long.budget]\ntimeout = \"60s\"\nfuel = 1_000_000_000_000_000\n"
        ),
    )
    .unwrap();
}

fn serve(config: &str) -> Served {
    let dir = tempfile::Builder::new()
        .prefix("airlock-serve-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    toolkits(dir.path());
    std::fs::write(dir.path().join("airlock.toml"), config).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args([
            "serve",
            "airlock.toml",
            "--listen",
            "127.0.0.1:0",
            "--audit",
            "-",
        ])
        .env("AIRLOCK_CACHE", common::scratch().join("cache"))
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(dir.path().join("stdout")).unwrap())
        .stderr(std::fs::File::create(dir.path().join("stderr")).unwrap())
        .spawn()
        .unwrap();
    let mut served = Served {
        child,
        addr: String::new(),
        dir,
    };
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(120) {
        let seen = served.stderr();
        if let Some(addr) = seen
            .split_once("listening on http://")
            .and_then(|(_, rest)| rest.lines().next())
        {
            served.addr = addr.trim().to_string();
            return served;
        }
        if let Ok(Some(status)) = served.child.try_wait() {
            panic!("airlock serve exited ({status}): {seen}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("airlock serve did not start within 120 s");
}

const TWO_TOOLKITS: &str = "[serve]\ndrain = \"5s\"\n\
    [serve.toolkits.words]\npath = \"words.toml\"\n\
    [serve.toolkits.spin]\npath = \"spin.toml\"\n";

/// One plain HTTP/1.1 request on a fresh connection: (status, body).
fn http(addr: &str, method: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    Ok((status, body.to_string()))
}

async fn client(url: String) -> RunningService<RoleClient, ()> {
    // rustls (under reqwest) needs a process-wide crypto provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    ().serve(StreamableHttpClientTransport::from_uri(url))
        .await
        .expect("the MCP session starts")
}

async fn call(client: &RunningService<RoleClient, ()>, name: &str, args: Value) -> Value {
    let mut params = CallToolRequestParams::new(name.to_string());
    params.arguments = args.as_object().cloned();
    let result = client.call_tool(params).await.expect("tools/call answers");
    serde_json::to_value(result).unwrap()
}

/// The metric line `name{labels}` of `/metrics`, as a number.
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_toolkit_is_served_at_its_path_with_health_readiness_and_metrics() {
    let served = serve(TWO_TOOLKITS);
    let addr = served.addr.clone();
    assert_eq!(
        http(&addr, "GET", "/healthz").unwrap(),
        (200, "ok\n".into())
    );
    let (status, body) = http(&addr, "GET", "/readyz").unwrap();
    assert_eq!(status, 200);
    let ready: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        ready,
        json!({"ready": true, "toolkits": {"spin": 2, "words": 2}})
    );
    let (status, body) = http(&addr, "GET", "/toolkits/nope/mcp").unwrap();
    assert_eq!(status, 404);
    assert!(
        body.contains("/toolkits/spin/mcp, /toolkits/words/mcp"),
        "{body}"
    );

    // Each path serves its own toolkit, and only it.
    let words = client(served.url("words")).await;
    let names: Vec<String> = words
        .list_all_tools()
        .await
        .unwrap()
        .iter()
        .map(|t| t.name.to_string())
        .collect();
    assert_eq!(names, ["logger__burst", "word_count__count"]);
    let out = call(&words, "word_count__count", json!({"text": "a b c"})).await;
    assert_eq!(out["structuredContent"]["words"], 3, "{out}");
    let out = call(&words, "logger__burst", json!({"n": 2, "size": 3})).await;
    assert_eq!(out["structuredContent"]["result"], 2, "{out}");
    let spin = client(served.url("spin")).await;
    let out = call(&spin, "spin_short__run", json!({})).await;
    assert_eq!(out["isError"], true, "{out}");
    assert!(out.to_string().contains("deadline"), "{out}");
    let err = words
        .call_tool(CallToolRequestParams::new("spin_short__run"))
        .await;
    assert!(err.is_err(), "the words toolkit has no spin tool: {err:?}");

    let (status, text) = http(&addr, "GET", "/metrics").unwrap();
    assert_eq!(status, 200);
    for (series, value) in [
        (r#"airlock_jobs_total{tool="word-count",outcome="ok"}"#, 1.0),
        (r#"airlock_jobs_total{tool="logger",outcome="ok"}"#, 1.0),
        (
            r#"airlock_jobs_total{tool="spin-short",outcome="budget"}"#,
            1.0,
        ),
        (r#"airlock_budget_exhausted_total{kind="deadline"}"#, 1.0),
        (
            r#"airlock_verb_calls_total{verb="log",decision="allow"}"#,
            2.0,
        ),
        ("airlock_queue_wait_seconds_count", 3.0),
        ("airlock_job_slots_in_use", 0.0),
    ] {
        assert_eq!(metric(&text, series), Some(value), "{series} in:\n{text}");
    }
    assert!(metric(&text, "airlock_job_slots").is_some_and(|n| n >= 1.0));
    // The audit trail went to stdout as JSON lines: the two log calls.
    let audit: Vec<Value> = served
        .stdout()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|r: &Value| r["verb"] == "log")
        .collect();
    assert_eq!(audit.len(), 2, "{}", served.stdout());
    words.cancel().await.ok();
    spin.cancel().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_finishing_short_calls_and_cancelling_the_rest() {
    let mut served = serve(&TWO_TOOLKITS.replace("drain = \"5s\"", "drain = \"2s\""));
    let addr = served.addr.clone();
    let spin = client(served.url("spin")).await;
    let calls = tokio::spawn(async move {
        let (short, long) = tokio::join!(
            call(&spin, "spin_short__run", json!({})),
            call(&spin, "spin_long__run", json!({}))
        );
        (short, long, spin)
    });
    // Both jobs hold a slot before the signal.
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, text) = http(&addr, "GET", "/metrics").unwrap();
        if metric(&text, "airlock_job_slots_in_use") == Some(2.0) {
            break;
        }
        assert!(Instant::now() < until, "the jobs did not start: {text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let signalled = Instant::now();
    served.terminate();
    // No new connection is accepted once the drain starts.
    let until = Instant::now() + Duration::from_secs(1);
    while http(&addr, "GET", "/healthz").is_ok() {
        assert!(Instant::now() < until, "still accepting after SIGTERM");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (short, long, spin) = calls.await.unwrap();
    // The short call ended on its own (its deadline) during the drain; the
    // long one was cancelled when the drain time ran out.
    assert!(short.to_string().contains("deadline"), "{short}");
    assert!(long.to_string().contains("cancelled"), "{long}");
    let status = served
        .exited(Duration::from_secs(10))
        .expect("airlock serve exits after the drain");
    assert!(status.success(), "{status}: {}", served.stderr());
    let took = signalled.elapsed();
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(8),
        "the drain took {took:?}"
    );
    let stdout = served.stdout();
    assert!(
        stdout
            .lines()
            .any(|l| l.contains("\"verb\":\"job\"") && l.contains("cancelled")),
        "the cancelled job is in the audit trail: {stdout}"
    );
    let err = served.stderr();
    assert!(err.contains("draining: 2 calls in flight"), "{err}");
    assert!(err.contains("cancelling 1 calls"), "{err}");
    drop(spin);
}

#[test]
fn serve_refuses_a_config_without_toolkits_and_a_remote_address_without_auth() {
    let dir = tempfile::tempdir().unwrap();
    let config: PathBuf = dir.path().join("airlock.toml");
    std::fs::write(&config, "[serve]\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .arg("serve")
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("serves no toolkit"), "{err}");
    toolkits(dir.path());
    std::fs::write(&config, TWO_TOOLKITS).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .arg("serve")
        .arg(&config)
        .args(["--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("names no [serve.tokens.NAME] or [serve.oauth]"),
        "{err}"
    );
}
