//! Progress during a call: with a `progressToken`, each verb call of the job
//! (log lines included) arrives as `notifications/progress` with a message,
//! a long job sends a heartbeat at least once a second, and a tool that logs
//! 10,000 lines reaches the client as a handful of coalesced notifications.

use super::*;

use std::sync::{Arc, Mutex};

use rmcp::model::ProgressNotificationParam;
use rmcp::service::NotificationContext;

use super::cancel::{Env, tool_name};

/// A client that keeps every progress notification it gets.
#[derive(Clone, Default)]
struct Watcher(Arc<Mutex<Vec<(f64, String)>>>);

impl rmcp::ClientHandler for Watcher {
    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        let message = params.message.unwrap_or_default();
        self.0.lock().unwrap().push((params.progress, message));
    }
}

impl Watcher {
    /// What arrived, once nothing more has come for 200 ms. The server
    /// writes its last notification before the call's result, but rmcp's
    /// client runs notification handlers apart from answering calls, so the
    /// handler may still be running when the call returns (seen under load).
    async fn take(&self) -> Vec<(f64, String)> {
        let mut seen = usize::MAX;
        loop {
            let now = self.0.lock().unwrap().len();
            if now == seen {
                return std::mem::take(&mut *self.0.lock().unwrap());
            }
            seen = now;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Progress values increase with each notification, as MCP requires.
fn increasing(seen: &[(f64, String)]) {
    for pair in seen.windows(2) {
        assert!(pair[0].0 < pair[1].0, "{seen:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verb_calls_and_log_lines_arrive_as_progress() {
    let env = Env::new(9, 9);
    let watcher = Watcher::default();
    let (client, _child) = env.stdio_with(watcher.clone()).await;
    // rmcp's client puts a progress token on every request.
    let flood = tool_name(client.peer(), "flood", "burst").await;
    let r = call(client.peer(), &flood, json!({"n": 1, "size": 5})).await;
    assert_eq!(expect_ok(&r)["result"], 1);
    let seen = watcher.take().await;
    assert_eq!(seen, [(1.0, "log info: xxxxx".to_string())]);

    // A refused fetch is a verb call too, reported with its reason.
    let probe = tool_name(client.peer(), "probe", "send").await;
    let req = json!({"req": {
        "method": "GET", "url": "http://127.0.0.1:1/elsewhere", "headers": [], "body": null
    }});
    call(client.peer(), &probe, req).await;
    let seen = watcher.take().await;
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(
        seen[0]
            .1
            .starts_with("fetch send refused: denied: http://127.0.0.1:1/elsewhere is not in"),
        "{seen:?}"
    );
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_job_sends_a_heartbeat_every_second() {
    let env = Env::new(9, 9);
    let watcher = Watcher::default();
    let (client, _child) = env.stdio_with(watcher.clone()).await;
    let pacer = tool_name(client.peer(), "pacer", "run").await;
    let r = call(client.peer(), &pacer, json!({})).await;
    expect_error(&r, &["the deadline budget ran out"]);
    let seen = watcher.take().await;
    eprintln!("heartbeats during a 2.5 s spin: {seen:?}");
    assert!(seen.len() >= 2, "{seen:?}");
    assert!(
        seen.iter().all(|(_, m)| m.starts_with("running for ")),
        "{seen:?}"
    );
    increasing(&seen);
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_log_lines_are_coalesced() {
    let env = Env::new(9, 9);
    let watcher = Watcher::default();
    let (client, _child) = env.stdio_with(watcher.clone()).await;
    let flood = tool_name(client.peer(), "flood", "burst").await;
    let started = Instant::now();
    let r = call(client.peer(), &flood, json!({"n": 10_000, "size": 1})).await;
    let took = started.elapsed();
    assert_eq!(expect_ok(&r)["result"], 10_000);
    let seen = watcher.take().await;
    eprintln!(
        "10,000 log lines in {took:?}: {} notifications, first {:?}, last {:?}",
        seen.len(),
        seen.first(),
        seen.last()
    );
    // At most one per 100 ms, plus the first and the final flush.
    let bound = 2 + (took.as_millis() / 100) as usize;
    assert!(
        !seen.is_empty() && seen.len() <= bound,
        "{} > {bound}",
        seen.len()
    );
    assert!(seen.iter().any(|(_, m)| m.contains(" more)")), "{seen:?}");
    increasing(&seen);
    client.cancel().await.unwrap();
}
