//! What a trivial MCP call costs while guests spin on every core: with jobs
//! on the server's own runtime (as before the job executor) and on the
//! host's job executor (`airlock::executor`), in the same run.
//!
//! Run with `cargo bench -p airlock --bench busy`. Each case starts a server
//! process (this bench binary again, in its serving mode, its log lines to
//! /dev/null) that serves the same toolkit (`word_count` and the `spin`
//! guest under a deadline longer than the case) over streamable HTTP on
//! 127.0.0.1, on a runtime built as `airlock mcp` builds its own (one worker
//! per core, I/O checked after every poll). Before measuring, twice as many
//! `tools/call`s of `spin` as there are cores are started, each from its own
//! `rmcp` client (one session each); every iteration is then one
//! `tools/call` of `word_count` with a 16-byte text from another `rmcp`
//! client, waiting for the result. The server is killed after the case.
//!
//! - `mcp_busy/idle`: the trivial call with nothing spinning (executor on),
//!   for scale.
//! - `mcp_busy/jobs_on_server_runtime`: `HostOptions::job_workers`
//!   `Some(0)`: jobs run in the server's tasks, on its workers, as they did
//!   before the executor; a call waits behind the spinners' 10 ms slices.
//! - `mcp_busy/jobs_on_executor`: the default: jobs on the host's job
//!   executor (one worker per core), the server's workers free for I/O.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use airlock::cancel::CallWatch;
use airlock::mcp_http::HttpLimits;
use airlock::{Capabilities, HostOptions, NullAudit, mcp};
use criterion::SamplingMode;
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use serde_json::json;

type Client = RunningService<RoleClient, ()>;

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Writes the toolkit into `dir`: the trivial tool and a spinner whose
/// deadline outlasts any case (the spinners are cancelled after each).
fn toolkit(dir: &Path) -> std::path::PathBuf {
    let kit = dir.join("kit.toml");
    std::fs::write(
        &kit,
        format!(
            "[tools.word-count]\ncomponent = '{}'\n\
             [tools.spinner]\ncomponent = '{}'\n\
             [tools.spinner.budget]\ntimeout = \"10m\"\nfuel = 1_000_000_000_000_000\n",
            common::guest("word_count").display(),
            common::guest("spin").display(),
        ),
    )
    .unwrap();
    kit
}

/// Set in the server process: how it runs jobs (`inline` or `executor`).
const SERVE: &str = "AIRLOCK_BUSY_SERVE";

/// The server process's main: serves `kit` from a host with `job_workers`
/// on a runtime like the CLI's, prints its address, serves until killed.
fn serve(kit: &Path, job_workers: Option<usize>) -> ! {
    let dir = kit.parent().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .event_interval(1)
        .build()
        .unwrap();
    let host = airlock::Airlock::new(
        HostOptions {
            cache_dir: Some(dir.join("cache")),
            cache_key: Some(dir.join("cache.key")),
            job_workers,
            ..HostOptions::default()
        },
        Capabilities::default(),
        Arc::new(NullAudit),
    )
    .expect("the host starts");
    let toolbox = Arc::new(mcp::load_toolkit(Arc::new(host), kit).expect("the toolkit loads"));
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        println!("{addr}");
        let served = mcp::serve_http(
            toolbox,
            listener,
            mcp::allowed_hosts(addr, &[]),
            HttpLimits::default(),
            CallWatch::new(),
        );
        served.await.expect("the server runs");
    });
    unreachable!("the server returns only on a fatal error")
}

/// A server process, killed on drop.
struct Server {
    child: Child,
    addr: std::net::SocketAddr,
}

impl Server {
    fn start(kit: &Path, mode: &str) -> Self {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .env(SERVE, mode)
            .env("AIRLOCK_BUSY_KIT", kit)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the server process starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line.trim().parse().expect("the server prints its address");
        Self { child, addr }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn client(addr: std::net::SocketAddr) -> Client {
    ().serve(StreamableHttpClientTransport::from_uri(format!(
        "http://{addr}/mcp"
    )))
    .await
    .expect("the MCP session did not start")
}

async fn tool_name(client: &Client, prefix: &str) -> String {
    let tools = client.list_all_tools().await.expect("tools/list");
    let found = tools
        .iter()
        .map(|t| t.name.to_string())
        .find(|n| n.starts_with(prefix));
    found.unwrap_or_else(|| panic!("no tool {prefix}*"))
}

fn main() {
    if let Some(mode) = std::env::var_os(SERVE) {
        let kit = std::env::var_os("AIRLOCK_BUSY_KIT").expect("the toolkit's path");
        let job_workers = match mode.to_str() {
            Some("inline") => Some(0),
            _ => None,
        };
        serve(Path::new(&kit), job_workers);
    }
    // reqwest (built with `rustls-no-provider`) needs a process-wide crypto
    // provider, even for plain http.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut c = common::config().configure_from_args();
    let clients = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kit = toolkit(dir.path());

    let mut group = c.benchmark_group("mcp_busy");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    let cases = [
        ("idle", "executor", false),
        ("jobs_on_server_runtime", "inline", true),
        ("jobs_on_executor", "executor", true),
    ];
    for (case, mode, spinning) in cases {
        let server = Server::start(&kit, mode);
        let timed = clients.block_on(client(server.addr));
        let count = clients.block_on(tool_name(&timed, "word"));
        let request = CallToolRequestParams::new(count).with_arguments(
            json!({ "text": common::TEXT })
                .as_object()
                .cloned()
                .unwrap(),
        );
        let call = || {
            let r = clients
                .block_on(timed.call_tool(request.clone()))
                .expect("tools/call");
            assert_eq!(r.is_error, Some(false), "{r:?}");
        };
        (0..20).for_each(|_| call());
        let mut spinners = Vec::new();
        if spinning {
            let spin = clients.block_on(tool_name(&timed, "spinner"));
            for _ in 0..2 * cores() {
                let spinner = clients.block_on(client(server.addr));
                let peer = spinner.peer().clone();
                let params = CallToolRequestParams::new(spin.clone());
                clients.spawn(async move { peer.call_tool(params).await });
                spinners.push(spinner);
            }
            // Every spinner's request reaches its guest.
            std::thread::sleep(Duration::from_millis(500));
        }
        group.bench_function(case, |b| b.iter(call));
        // Killing the server ends the spinners' calls with it.
        drop(server);
        drop(spinners);
        drop(timed);
    }
    group.finish();
    c.final_summary();
}
