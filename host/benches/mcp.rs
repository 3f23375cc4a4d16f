//! What one MCP tool call costs end to end.
//!
//! Run with `cargo bench -p airlock --bench mcp` (or `cargo xtask bench`).
//! Guests are read from `$AIRLOCK_GUESTS` (default:
//! `target/wasm32-wasip2/release` of this workspace).
//!
//! `mcp_stdio/word-count.count`: the release `airlock mcp` binary serves a
//! one-tool toolkit (`word_count`) on stdio; an `rmcp` client in this process
//! sends `tools/call` for `word-count.count` with a 16-byte text and waits for
//! the result. One round trip is: JSON-RPC encode, a pipe write, the server's
//! read and decode, argument conversion, one fresh airlock job (store,
//! instantiate, call, drop), the result encoded twice (text and
//! `structuredContent`), a pipe write, the client's read and decode. Calls are
//! sequential, so this is latency, not throughput.
//!
//! Before criterion's own measurement the bench times 2000 sequential calls
//! one by one and prints their p50 and p99, which criterion does not report.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::Criterion;
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::TokioChildProcess;
use serde_json::json;

/// The text every call counts: 16 bytes.
const TEXT: &str = "hello wasm world";

fn guests_dir() -> PathBuf {
    std::env::var_os("AIRLOCK_GUESTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/wasm32-wasip2/release")
        })
}

/// Starts `airlock mcp` on a word-count toolkit in `dir` and connects to it.
async fn connect(dir: &Path) -> RunningService<RoleClient, ()> {
    let wasm = guests_dir().join("word_count.wasm");
    assert!(
        wasm.exists(),
        "guest {} is missing; build the guests or set AIRLOCK_GUESTS",
        wasm.display()
    );
    let kit = dir.join("kit.toml");
    std::fs::write(
        &kit,
        format!("[tools.word-count]\ncomponent = '{}'\n", wasm.display()),
    )
    .unwrap();
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_airlock"));
    cmd.arg("mcp")
        .arg(&kit)
        .current_dir(dir)
        .env("AIRLOCK_CACHE", dir.join("cache"));
    let (transport, _) = TokioChildProcess::builder(cmd)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("cannot start airlock mcp");
    ().serve(transport)
        .await
        .expect("the MCP session did not start")
}

fn request() -> CallToolRequestParams {
    CallToolRequestParams::new("word-count.count")
        .with_arguments(json!({ "text": TEXT }).as_object().cloned().unwrap())
}

async fn round_trip(client: &RunningService<RoleClient, ()>) {
    let r = client.call_tool(request()).await.expect("tools/call");
    assert_eq!(r.is_error, Some(false), "{r:?}");
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let measuring = std::env::args().any(|a| a == "--bench");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let client = rt.block_on(connect(dir.path()));
    // Warm up: the first call after startup pays for lazy initialisation.
    for _ in 0..50 {
        rt.block_on(round_trip(&client));
    }
    let samples = if measuring { 2000 } else { 20 };
    let mut times: Vec<Duration> = (0..samples)
        .map(|_| {
            let start = Instant::now();
            rt.block_on(round_trip(&client));
            start.elapsed()
        })
        .collect();
    times.sort();
    println!(
        "mcp_stdio/word-count.count: p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs ({samples} sequential calls)",
        percentile(&times, 0.50).as_secs_f64() * 1e6,
        percentile(&times, 0.99).as_secs_f64() * 1e6,
        times.last().unwrap().as_secs_f64() * 1e6,
    );
    c.bench_function("mcp_stdio/word-count.count", |b| {
        b.iter(|| rt.block_on(round_trip(&client)))
    });
    rt.block_on(client.cancel()).unwrap();
    c.final_summary();
}
