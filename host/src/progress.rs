//! MCP progress for a running call: each verb call of the job (a `log.emit`,
//! a `fetch`, ...) becomes a line, and [`pump`] sends the lines as
//! `notifications/progress`, at most one per [`MIN_INTERVAL`] (lines that
//! arrive faster are coalesced into "(+N more)"), and at least one per
//! [`HEARTBEAT`] while the job runs, so clients that reset their timeout on
//! progress keep waiting.

use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use airlock_core::{AuditRecord, Decision, JobEvents};
use tokio::sync::Notify;

/// The shortest time between two notifications of one call.
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// The longest time without a notification while the job runs.
pub const HEARTBEAT: Duration = Duration::from_secs(1);

/// One job's lines waiting to be sent. The job pushes, [`pump`] takes.
#[derive(Default)]
pub struct ProgressSink {
    pending: Mutex<Pending>,
    wake: Notify,
    sent: AtomicU64,
}

/// The oldest line not yet sent, and how many came after it (they are only
/// counted: a notification carries one line).
#[derive(Default)]
struct Pending {
    first: Option<String>,
    more: u64,
}

impl ProgressSink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues the line `line` makes, made only when it will be sent.
    fn push(&self, line: impl FnOnce() -> String) {
        {
            let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            match p.first {
                None => p.first = Some(line()),
                Some(_) => p.more += 1,
            }
        }
        self.wake.notify_one();
    }

    /// The oldest waiting line, with the count of the others (which are
    /// dropped: the job's log and the audit trail keep every one).
    fn take(&self) -> Option<String> {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let first = p.first.take()?;
        let more = std::mem::take(&mut p.more);
        Some(if more == 0 {
            first
        } else {
            format!("{first} (+{more} more)")
        })
    }
}

impl JobEvents for ProgressSink {
    fn verb_call(&self, record: &AuditRecord) {
        self.push(|| line(record));
    }
}

/// One verb call in words: `log info: fetched 3 pages`, `fetch send: GET
/// https://example.com/ ... status=200`, `fetch send refused: denied: ...`.
/// The same names and reasons as the audit record, never secret values.
/// Guest text (a log line, a header name in a refusal) reaches the client
/// with its control characters shown as text and cut to [`MAX_LINE_CHARS`].
/// Watchers never get a record's operator-only `content`.
pub fn line(r: &AuditRecord) -> String {
    let detail = r.detail.as_deref().unwrap_or_default();
    let text = match &r.decision {
        Decision::Allow if r.verb == "log" => format!("log {detail}"),
        Decision::Allow if detail.is_empty() => format!("{} {}", r.verb, r.op),
        Decision::Allow => format!("{} {}: {detail}", r.verb, r.op),
        Decision::Deny(why) => format!("{} {} refused: {why}", r.verb, r.op),
    };
    crate::agent_text::cap(
        crate::term::escape_control(&text).into_owned(),
        MAX_LINE_CHARS,
    )
}

/// The longest progress message, in characters.
pub const MAX_LINE_CHARS: usize = 300;

/// Sends the sink's lines through `send(progress, message)` until dropped
/// (the caller races it against the job). `progress` counts notifications,
/// so it increases with each one as MCP requires. Returns early if `send`
/// says the client is gone.
pub async fn pump<F, Fut>(sink: &ProgressSink, started: Instant, mut send: F)
where
    F: FnMut(u64, String) -> Fut,
    Fut: Future<Output = bool>,
{
    // The first line goes out at once; later ones MIN_INTERVAL apart.
    let mut last = tokio::time::Instant::now() - MIN_INTERVAL;
    loop {
        tokio::select! {
            () = sink.wake.notified() => {}
            () = tokio::time::sleep_until(last + HEARTBEAT) => {}
        }
        tokio::time::sleep_until(last + MIN_INTERVAL).await;
        let message = sink
            .take()
            .unwrap_or_else(|| format!("running for {:.1} s", started.elapsed().as_secs_f64()));
        let n = sink.sent.fetch_add(1, Ordering::Relaxed) + 1;
        last = tokio::time::Instant::now();
        if !send(n, message).await {
            return;
        }
    }
}

/// Runs `job` with [`pump`] beside it until the job ends.
/// Lines still waiting when the job ends go out in one last notification,
/// before the caller sends the result.
pub async fn alongside<J, F, Fut>(job: J, sink: &ProgressSink, mut send: F) -> J::Output
where
    J: Future,
    F: FnMut(u64, String) -> Fut,
    Fut: Future<Output = bool>,
{
    let mut job = std::pin::pin!(job);
    let out = tokio::select! {
        biased;
        out = &mut job => out,
        // The client stopped taking notifications: the job goes on.
        () = pump(sink, Instant::now(), &mut send) => return job.await,
    };
    if let Some(message) = sink.take() {
        let n = sink.sent.fetch_add(1, Ordering::Relaxed) + 1;
        send(n, message).await;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn record(verb: &'static str, decision: Decision, detail: &str) -> AuditRecord {
        AuditRecord {
            time: std::time::SystemTime::now(),
            job: 1,
            tool: "t".into(),
            verb,
            op: if verb == "log" { "emit" } else { "send" },
            decision,
            duration: Duration::ZERO,
            detail: Some(detail.into()),
            content: None,
        }
    }

    #[test]
    fn guest_text_is_escaped_capped_and_prompts_stay_in_the_audit_trail() {
        let hostile = format!("info: \x1b]0;title\x07\n[info] forged {}", "x".repeat(5000));
        let shown = line(&record("log", Decision::Allow, &hostile));
        assert!(
            shown.starts_with("log info: \\x1b]0;title\\x07\\n[info] forged"),
            "{shown}"
        );
        assert!(!shown.contains(['\x1b', '\x07', '\n']), "{shown}");
        assert_eq!(shown.chars().count(), MAX_LINE_CHARS, "{shown}");
        assert!(shown.ends_with('…'), "{shown}");
        let mut complete = record("complete", Decision::Allow, "model=m tokens=3");
        complete.op = "chat";
        complete.content = Some("prompt=[[\"user\",\"secret plans\"]] completion=\"ok\"".into());
        assert_eq!(line(&complete), "complete chat: model=m tokens=3");
    }

    #[test]
    fn lines_name_the_verb_and_the_decision() {
        assert_eq!(
            line(&record("log", Decision::Allow, "info: hello")),
            "log info: hello"
        );
        assert_eq!(
            line(&record(
                "fetch",
                Decision::Allow,
                "GET https://x/ status=200"
            )),
            "fetch send: GET https://x/ status=200"
        );
        assert_eq!(
            line(&record(
                "fetch",
                Decision::Deny("denied: not granted".into()),
                ""
            )),
            "fetch send refused: denied: not granted"
        );
    }

    #[tokio::test]
    async fn a_flood_is_coalesced_and_silence_gets_a_heartbeat() {
        let sink = Arc::new(ProgressSink::new());
        let sent = Arc::new(Mutex::new(Vec::new()));
        let pump = {
            let (sink, sent) = (sink.clone(), sent.clone());
            tokio::spawn(async move {
                pump(&sink, Instant::now(), |n, m| {
                    sent.lock().unwrap().push((n, m));
                    async { true }
                })
                .await;
            })
        };
        // On this single-threaded runtime the pump cannot run until the
        // test awaits: all 10,000 lines are waiting when it first looks.
        for i in 0..10_000 {
            sink.verb_call(&record("log", Decision::Allow, &format!("info: line {i}")));
        }
        tokio::time::sleep(Duration::from_millis(350)).await;
        {
            let sent = sent.lock().unwrap();
            assert_eq!(sent.len(), 1, "{sent:?}");
            assert_eq!(sent[0], (1, "log info: line 0 (+9999 more)".to_string()));
        }
        // Then nothing happens: a heartbeat about once a second, never more
        // than one per MIN_INTERVAL.
        tokio::time::sleep(Duration::from_millis(2_200)).await;
        let sent = sent.lock().unwrap().clone();
        pump.abort();
        assert!((2..=4).contains(&sent.len()), "{sent:?}");
        for (i, (n, m)) in sent.iter().enumerate().skip(1) {
            assert_eq!(*n, i as u64 + 1, "{sent:?}");
            assert!(m.starts_with("running for "), "{sent:?}");
        }
    }
}
