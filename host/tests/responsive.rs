//! The scheduler: guests spinning on every core do not stop a server from
//! reading and answering trivial calls, over stdio or HTTP; a new job does
//! not wait for a spinning guest's tick; and a job whose caller stops waiting
//! for it is still cancelled at once.
//!
//! The servers are the real `airlock mcp` binary driven by the official Rust
//! SDK's client (`rmcp`). Eight spinning calls per core run for 8 s while
//! bursts of four trivial calls are timed. With jobs on the server's own
//! workers (before `airlock::executor`), the same test measured, on two
//! cores: HTTP median 279–285 ms (all 214–322 ms); stdio median 45–948 ms
//! (up to 2.7 s); with the executor: HTTP median 7–12 ms, stdio 3 ms.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use airlock::{
    Airlock, Budget, Capabilities, Grants, HostOptions, JobControl, JobError, MemoryAudit,
};
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

type Client = RunningService<RoleClient, ()>;

/// How long each spinning call spins: far longer than the timed calls take
/// even on the old scheduler, so every timed call runs while all of them spin.
const SPIN: Duration = Duration::from_secs(8);
/// The bound on three timed calls in four while the spinners run: five
/// epoch ticks. Three in four took longer than 170 ms in every run before
/// the executor, and under 16 ms since.
const BOUND: Duration = Duration::from_millis(50);
/// Rounds of timed calls per test.
const ROUNDS: usize = 5;
/// Trivial calls sent at once in each round.
const BURST: usize = 4;
/// Spinning calls per core.
const SPINNERS_PER_CORE: usize = 8;

/// Held by each test that runs a spinning guest: two at once would each
/// measure the other's load too.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The toolkit: `word-count` (the trivial call) and `spinner` (loops until
/// its [`SPIN`] deadline).
fn kit() -> &'static Path {
    static KIT: OnceLock<PathBuf> = OnceLock::new();
    KIT.get_or_init(|| {
        let kit = common::scratch().join("kit.toml");
        let toolkit = format!(
            "[tools.word-count]\ncomponent = '{}'\n\
             [tools.spinner]\ncomponent = '{}'\n\
             [tools.spinner.budget]\ntimeout = \"{}s\"\nfuel = 1_000_000_000_000\n",
            common::guest_string("word_count"),
            common::guest_string("spin"),
            SPIN.as_secs(),
        );
        std::fs::write(&kit, toolkit).unwrap();
        kit
    })
}

/// `airlock mcp KIT` with `args`, the shared cache and stderr to `label`'s file.
fn airlock_mcp(label: &str, args: &[&str]) -> (Command, PathBuf) {
    let dir = common::scratch();
    let log = dir.join(format!("{label}.stderr"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_airlock"));
    cmd.arg("mcp")
        .arg(kit())
        .args(args)
        .env("AIRLOCK_CACHE", dir.join("cache"))
        .current_dir(dir)
        .stderr(std::fs::File::create(&log).unwrap());
    (cmd, log)
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

fn http_server() -> HttpServer {
    let (mut cmd, log) = airlock_mcp("http", &["--http", "127.0.0.1:0"]);
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut server = HttpServer {
        child,
        addr: String::new(),
    };
    server.addr = common::announced_address(&mut server.child, &log, " at http://");
    server
}

async fn http_client(addr: &str) -> Client {
    // reqwest (built with `rustls-no-provider`) needs a process-wide crypto
    // provider, even for plain http.
    let _ = rustls::crypto::ring::default_provider().install_default();
    ().serve(StreamableHttpClientTransport::from_uri(format!(
        "http://{addr}/mcp"
    )))
    .await
    .expect("the MCP session did not start")
}

/// The listed name of the tool whose name starts with `prefix`.
async fn tool(client: &rmcp::Peer<RoleClient>, prefix: &str) -> String {
    let tools = client.list_all_tools().await.expect("tools/list");
    tools
        .iter()
        .map(|t| t.name.to_string())
        .find(|n| n.starts_with(prefix))
        .unwrap_or_else(|| panic!("no tool {prefix}* in {tools:?}"))
}

async fn call(client: &rmcp::Peer<RoleClient>, name: &str, arguments: Value) -> CallToolResult {
    let params = CallToolRequestParams::new(name.to_string())
        .with_arguments(arguments.as_object().cloned().expect("an object"));
    client
        .call_tool(params)
        .await
        .unwrap_or_else(|e| panic!("tools/call {name} failed at the protocol level: {e}"))
}

/// Starts one spinning call on each of `peers`.
fn spin_on(peers: Vec<rmcp::Peer<RoleClient>>, name: &str) -> Vec<JoinHandle<CallToolResult>> {
    peers
        .into_iter()
        .map(|peer| {
            let name = name.to_string();
            tokio::spawn(async move { call(&peer, &name, json!({})).await })
        })
        .collect()
}

/// Times [`ROUNDS`] bursts of trivial calls, one on each of `peers` at once,
/// while `spinners` run; checks they all ran while every spinner was still
/// spinning, and returns the times sorted.
async fn timed_calls(
    peers: &[rmcp::Peer<RoleClient>],
    count: &str,
    spinners: &[JoinHandle<CallToolResult>],
    spinning_since: Instant,
) -> Vec<Duration> {
    let mut times = Vec::new();
    for round in 0..ROUNDS {
        let burst: Vec<_> = peers
            .iter()
            .map(|peer| {
                let (peer, count) = (peer.clone(), count.to_string());
                tokio::spawn(async move {
                    let start = Instant::now();
                    let r = call(&peer, &count, json!({"text": "while they spin"})).await;
                    (start.elapsed(), r)
                })
            })
            .collect();
        for call in burst {
            let (took, r) = call.await.unwrap();
            assert_eq!(r.is_error, Some(false), "round {round}: {r:?}");
            assert_eq!(r.structured_content.unwrap()["words"], 3, "round {round}");
            times.push(took);
        }
    }
    let finished = spinners.iter().filter(|s| s.is_finished()).count();
    assert_eq!(
        finished,
        0,
        "{finished} spinners ended before the timed calls did ({:?} after they started, \
         times {times:?})",
        spinning_since.elapsed()
    );
    times.sort();
    times
}

/// Checks the third quartile of `times` against [`BOUND`], and that the
/// spinners end at their deadline, not before.
async fn check(what: &str, times: &[Duration], spinners: Vec<JoinHandle<CallToolResult>>) {
    let p75 = times[times.len() * 3 / 4];
    eprintln!(
        "{what}: {} spinners on {} cores; trivial calls took {times:?}",
        spinners.len(),
        cores()
    );
    assert!(
        p75 < BOUND,
        "{what}: a quarter of the trivial calls took {p75:?} or more while {} guests spun on {} \
         cores (all: {times:?})",
        spinners.len(),
        cores()
    );
    for s in spinners {
        let r = s.await.unwrap();
        assert_eq!(r.is_error, Some(true), "{r:?}");
        assert!(format!("{r:?}").contains("deadline"), "{r:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trivial_http_call_is_answered_while_every_core_spins() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let server = http_server();
    let mut timed = Vec::new();
    for _ in 0..BURST {
        timed.push(http_client(&server.addr).await);
    }
    let first = timed[0].peer();
    let count = tool(first, "word").await;
    let spin = tool(first, "spinner").await;
    // Warm: the first calls pay for lazy initialisation on both sides.
    for client in &timed {
        call(client.peer(), &count, json!({"text": "warm up"})).await;
    }
    // One client (one session, one connection) per spinner.
    let mut spinning = Vec::new();
    for _ in 0..SPINNERS_PER_CORE * cores() {
        spinning.push(http_client(&server.addr).await);
    }
    let since = Instant::now();
    let spinners = spin_on(spinning.iter().map(|c| c.peer().clone()).collect(), &spin);
    // Time for every spinner's request to reach its guest.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let peers: Vec<_> = timed.iter().map(|c| c.peer().clone()).collect();
    let times = timed_calls(&peers, &count, &spinners, since).await;
    check("http", &times, spinners).await;
    assert!(
        since.elapsed() >= SPIN,
        "the spinners did not spin {SPIN:?}"
    );
    for c in timed.into_iter().chain(spinning) {
        c.cancel().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trivial_stdio_call_is_answered_while_every_core_spins() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let (cmd, log) = airlock_mcp("stdio", &[]);
    let (transport, _) = TokioChildProcess::builder(tokio::process::Command::from(cmd))
        .spawn()
        .expect("cannot start airlock mcp");
    let client = ().serve(transport).await.unwrap_or_else(|e| {
        panic!(
            "the MCP session did not start: {e}\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        )
    });
    let peer = client.peer().clone();
    let count = tool(&peer, "word").await;
    let spin = tool(&peer, "spinner").await;
    for _ in 0..3 {
        call(&peer, &count, json!({"text": "warm up"})).await;
    }
    // stdio has one client: its calls run concurrently on one session.
    let since = Instant::now();
    let spinners = spin_on(vec![peer.clone(); SPINNERS_PER_CORE * cores()], &spin);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let times = timed_calls(&vec![peer.clone(); BURST], &count, &spinners, since).await;
    check("stdio", &times, spinners).await;
    client.cancel().await.unwrap();
}

/// A host whose jobs run on its job executor, auditing to memory, with the
/// spin guest loaded under a 20 s deadline.
fn spin_host() -> (Arc<Airlock>, Arc<airlock::Tool>, Arc<MemoryAudit>) {
    let audit = Arc::new(MemoryAudit::default());
    let host = Airlock::new(
        HostOptions {
            cache_dir: Some(common::scratch().join("cache")),
            ..HostOptions::default()
        },
        Capabilities::default(),
        audit.clone(),
    )
    .unwrap();
    let budget = Budget {
        timeout: Duration::from_secs(20),
        fuel: u64::MAX / 2,
        ..Budget::default()
    };
    let spin = host
        .load_tool_file(
            "spin",
            &common::guest_path("spin"),
            Grants::default(),
            budget,
        )
        .unwrap();
    (Arc::new(host), Arc::new(spin), audit)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spawned_job_whose_caller_stops_waiting_is_cancelled_at_once() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let (host, spin, audit) = spin_host();
    assert!(host.job_workers() >= 1);
    let job = host.spawn_with(&spin, None, json!({}), &JobControl::new());
    // The job runs without being awaited: it was spawned.
    let until = Instant::now() + Duration::from_secs(10);
    while host.jobs_running() == 0 {
        assert!(Instant::now() < until, "the spawned job never started");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(host.jobs_running(), 1);
    let dropped = Instant::now();
    drop(job);
    while host.jobs_running() > 0 {
        assert!(
            dropped.elapsed() < Duration::from_secs(2),
            "the job still holds its slot {:?} after its caller dropped it",
            dropped.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let freed = dropped.elapsed();
    eprintln!("dropped spawned job: slot freed {freed:?} after the drop");
    assert!(freed < Duration::from_millis(500), "{freed:?}");
    // Audited as cancelled, with the reason (written just after the slot is
    // freed).
    let until = Instant::now() + Duration::from_secs(5);
    let record = loop {
        if let Some(r) = audit.records().into_iter().find(|r| r.verb == "job") {
            break r;
        }
        assert!(Instant::now() < until, "no job record in the audit trail");
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    let expected = format!("cancelled: {}", airlock::executor::CALLER_GONE);
    assert!(
        matches!(&record.decision, airlock_core::Decision::Deny(why) if *why == expected),
        "{:?}",
        record.decision
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spawned_job_cancelled_by_its_control_ends_as_cancelled() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let (host, spin, _audit) = spin_host();
    let control = JobControl::new();
    let job = host.spawn_with(&spin, None, json!({}), &control);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t0 = Instant::now();
    control.cancel.cancel("the test is done with it");
    match job.await {
        Err(JobError::Cancelled { reason, .. }) => assert_eq!(reason, "the test is done with it"),
        other => panic!("{other:?}"),
    }
    assert!(
        t0.elapsed() < Duration::from_millis(500),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(host.jobs_running(), 0);
}

#[tokio::test(flavor = "current_thread")]
async fn a_host_with_no_job_workers_runs_spawned_jobs_in_the_awaiting_task() {
    let host = Airlock::new(
        HostOptions {
            cache_dir: Some(common::scratch().join("cache")),
            job_workers: Some(0),
            ..HostOptions::default()
        },
        Capabilities::default(),
        Arc::new(airlock::NullAudit),
    )
    .unwrap();
    let host = Arc::new(host);
    assert_eq!(host.job_workers(), 0);
    let count = host
        .load_tool_file(
            "word_count",
            &common::guest_path("word_count"),
            Grants::default(),
            Budget::default(),
        )
        .unwrap();
    let count = Arc::new(count);
    let job = host.spawn_with(&count, None, json!({"text": "a b c"}), &JobControl::new());
    // Not spawned: nothing runs until it is awaited.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(host.jobs_running(), 0);
    let out = job.await.unwrap();
    assert_eq!(out.value["words"], 3, "{:?}", out.value);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_job_does_not_wait_for_the_tick_of_a_spinning_guest() {
    let _alone = ONE_AT_A_TIME.lock().await;
    // One job worker, and a tick of 1 s: without the executor's nudge (an
    // epoch advance when every worker is taken) a new job would wait for the
    // spinner's next tick, half a second on average.
    let tick = Duration::from_secs(1);
    let host = Airlock::new(
        HostOptions {
            cache_dir: Some(common::scratch().join("cache")),
            job_workers: Some(1),
            epoch_tick: Some(tick),
            ..HostOptions::default()
        },
        Capabilities::default(),
        Arc::new(airlock::NullAudit),
    )
    .unwrap();
    let host = Arc::new(host);
    let load = |name: &str, budget: Budget| {
        let path = common::guest_path(name);
        Arc::new(
            host.load_tool_file(name, &path, Grants::default(), budget)
                .unwrap(),
        )
    };
    let spin_for = Duration::from_secs(30);
    let spin = load(
        "spin",
        Budget {
            timeout: spin_for,
            fuel: u64::MAX / 2,
            ..Budget::default()
        },
    );
    let count = load("word_count", Budget::default());
    let spinning = JobControl::new();
    let spinner = host.spawn_with(&spin, None, json!({}), &spinning);
    let started = Instant::now();
    while host.jobs_running() == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the spin never started"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    // Apart, so the spinner is back on the worker each time (a job spawned
    // the moment the last one ends is picked up before the spinner resumes).
    let mut times = Vec::new();
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let t0 = Instant::now();
        let out = host
            .spawn_with(&count, None, json!({"text": "a b"}), &JobControl::new())
            .await
            .unwrap();
        times.push(t0.elapsed());
        assert_eq!(out.value["words"], 2);
    }
    assert_eq!(host.jobs_running(), 1, "the spinner stopped early");
    times.sort();
    eprintln!("jobs behind a spinning guest on one worker, {tick:?} tick: {times:?}");
    let median = times[times.len() / 2];
    assert!(
        median < tick / 10,
        "new jobs waited {median:?} (median) behind the spinning guest: {times:?}"
    );
    spinning.cancel.cancel("the test is done with it");
    assert!(matches!(spinner.await, Err(JobError::Cancelled { .. })));
}
