//! The `complete` verb through real guests: `chat-probe` hands a
//! conversation to the verb once (`chat`) or several times in one job
//! (`chat-n`) and returns its exact answers; `summarize` fetches a page and
//! asks the model about it. Each test starts its own OpenAI-compatible or
//! Anthropic-style server on 127.0.0.1:0 and checks what the server saw
//! (key, model, messages, `max_tokens`), what the tool got back, the per-job
//! budgets, and that the API key appears nowhere a job can put it.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use airlock::{Budget, BudgetKind, Capabilities, Grants, JobError, JobOutput, Tool};
use airlock_complete::{CompleteCapability, CompleteGrant, ProviderConfig, ProviderKind};
use airlock_core::{AuditRecord, Decision};
use airlock_fetch::FetchGrant;
use airlock_tests::{
    TestHost, assert_host_still_works, budget, caps, grants, host, load_ok, tool_error, verb_error,
};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::Response;
use hyper::body::Frame;
use secrecy::SecretSlice;
use serde_json::{Value, json};

use crate::fetch::{Body, Server, respond};

use airlock_tests::canaries::LLM_KEY as KEY;

/// A provider of `kind` on the loopback server at `port`, keyed with [`KEY`].
fn provider(kind: ProviderKind, port: u16) -> ProviderConfig {
    let base = match kind {
        ProviderKind::OpenAi => format!("http://127.0.0.1:{port}/v1"),
        ProviderKind::Anthropic => format!("http://127.0.0.1:{port}"),
    };
    ProviderConfig::new(kind, base).with_api_key(SecretSlice::from(KEY.as_bytes().to_vec()))
}

/// A host serving `providers` (name, config) besides the usual test keys.
fn chat_host(providers: Vec<(&str, ProviderConfig)>) -> TestHost {
    let providers = providers
        .into_iter()
        .map(|(name, config)| (name.to_string(), config))
        .collect();
    host(Capabilities {
        complete: CompleteCapability::new(providers).expect("the providers are valid"),
        ..caps()
    })
}

/// A host whose provider `local` speaks OpenAI's protocol on `port`.
fn openai_host(port: u16) -> TestHost {
    chat_host(vec![("local", provider(ProviderKind::OpenAi, port))])
}

/// `complete` as given and `log` with its defaults: what a `chatter` needs.
fn chatter(grant: CompleteGrant) -> Grants {
    let mut g = grants(json!({ "log": {} }));
    g.complete = Some(Arc::new(grant));
    g
}

/// The grant of `models` on provider `local` with the default limits.
fn local_models(models: &[&str]) -> CompleteGrant {
    CompleteGrant::new("local", models.iter().copied())
}

/// `chat-probe` under `grant` with the default budget.
fn chat_probe(host: &TestHost, grant: CompleteGrant) -> Tool {
    load_ok(host, "chat-probe", chatter(grant), Budget::default())
}

/// A system message and a user message, as the WIT `message` list.
fn conversation() -> Value {
    json!([
        { "role": "system", "content": "Be brief." },
        { "role": "user", "content": "Say hi to the otters." },
    ])
}

/// Options with nothing set: the grant's first model and token cap.
fn no_options() -> Value {
    json!({ "stop": [] })
}

/// One `chat` job.
async fn chat(
    host: &TestHost,
    tool: &Tool,
    messages: Value,
    options: Value,
) -> Result<JobOutput, JobError> {
    host.run(
        tool,
        Some("chat"),
        &json!({ "messages": messages, "options": options }),
    )
    .await
}

/// One `chat-n` job asking `times` times.
async fn chat_n(host: &TestHost, tool: &Tool, times: u32) -> Vec<Value> {
    let out = host
        .run(
            tool,
            Some("chat-n"),
            &json!({ "messages": conversation(), "options": no_options(), "times": times }),
        )
        .await
        .expect("chat-n runs");
    out.value.as_array().expect("a list of results").clone()
}

/// A JSON answer.
fn json_reply(status: u16, body: Value) -> Response<Body> {
    respond(
        status,
        &[("content-type", "application/json")],
        body.to_string(),
    )
}

/// An OpenAI chat-completions success body.
pub(crate) fn openai_ok(text: &str, prompt: u64, completion: u64) -> Response<Body> {
    json_reply(
        200,
        json!({
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "model": "gpt-test-2024",
            "choices": [{
                "index": 0,
                "message": { "role": "assistant", "content": text },
                "finish_reason": "stop"
            }],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion
            }
        }),
    )
}

/// The completion `chat-probe` returns for [`openai_ok`].
fn completion(text: &str, prompt: u64, completion: u64) -> Value {
    json!({
        "text": text,
        "model": "gpt-test-2024",
        "finish-reason": "stop",
        "prompt-tokens": prompt,
        "completion-tokens": completion,
    })
}

/// Asserts that `result` is the verb error `case` whose text contains `fragment`.
#[track_caller]
fn refused(result: Result<JobOutput, JobError>, case: &str, fragment: &str) {
    let err = tool_error(result, &format!("a call that should be {case}"));
    assert_verb_error(&err, case, fragment);
}

#[track_caller]
fn assert_verb_error(err: &Value, case: &str, fragment: &str) {
    let (got, text) = verb_error(err);
    assert_eq!(got, case, "{err}");
    assert!(text.contains(fragment), "{text:?} lacks {fragment:?}");
}

/// The `complete` audit records so far.
fn complete_records(host: &TestHost) -> Vec<AuditRecord> {
    host.audit
        .records()
        .into_iter()
        .filter(|r| r.verb == "complete")
        .collect()
}

/// Panics if `text` holds [`KEY`] or any 8-byte piece of it.
#[track_caller]
fn assert_no_key(what: &str, text: &str) {
    for piece in KEY.as_bytes().windows(8) {
        let piece = std::str::from_utf8(piece).expect("the key is ASCII");
        assert!(
            !text.contains(piece),
            "{what} holds key piece {piece:?}: {text}"
        );
    }
}

/// A body that never ends: 64 KiB of spaces, forever.
struct Endless;

static SPACES: [u8; 64 * 1024] = [b' '; 64 * 1024];

impl hyper::body::Body for Endless {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&SPACES)))))
    }
}

// ---------------------------------------------------------------------------
// The wire, both protocols.
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_openai_call_has_the_protocol_shape_and_its_answer_maps_back() {
    let server = Server::start(|_, _| openai_ok("Hi, otters.", 12, 5)).await;
    let host = openai_host(server.port);
    let tool = chat_probe(
        &host,
        CompleteGrant {
            max_tokens: 100,
            ..local_models(&["gpt-small", "gpt-large"])
        },
    );
    let out = chat(
        &host,
        &tool,
        conversation(),
        json!({ "max-tokens": 50, "temperature": 0.5, "stop": ["END"] }),
    )
    .await
    .expect("a granted call");
    assert_eq!(out.value, completion("Hi, otters.", 12, 5));

    // A larger max-tokens is capped by the grant; a granted model is used.
    let out = chat(
        &host,
        &tool,
        json!([{ "role": "user", "content": "again" }]),
        json!({ "model": "gpt-large", "max-tokens": 5000, "stop": [] }),
    )
    .await
    .expect("a second granted call");
    assert_eq!(out.value["text"], "Hi, otters.");

    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    for s in &seen {
        assert_eq!(s.method, "POST");
        assert_eq!(s.path, "/v1/chat/completions");
        assert_eq!(s.header("authorization"), Some(format!("Bearer {KEY}")));
        assert_eq!(
            s.header("content-type").as_deref(),
            Some("application/json")
        );
        assert_eq!(s.header("x-api-key"), None);
    }
    assert_eq!(
        seen[0].json(),
        json!({
            "model": "gpt-small",
            "messages": [
                { "role": "system", "content": "Be brief." },
                { "role": "user", "content": "Say hi to the otters." },
            ],
            "max_tokens": 50,
            "temperature": 0.5,
            "stop": ["END"],
        })
    );
    assert_eq!(
        seen[1].json(),
        json!({
            "model": "gpt-large",
            "messages": [{ "role": "user", "content": "again" }],
            "max_tokens": 100,
        })
    );

    // Audited by provider, model and tokens; the prompt is not recorded.
    let records = complete_records(&host);
    assert_eq!(records.len(), 2);
    let detail = records[0].detail.clone().unwrap_or_default();
    assert_eq!(records[0].decision, Decision::Allow);
    assert!(
        detail.starts_with("provider=local model=gpt-small max_tokens=50 latency_ms=")
            && detail.contains(
                " attempts=1 prompt_tokens=12 completion_tokens=5 calls=1/8 tokens=17/20000"
            ),
        "{detail}"
    );
    assert!(!detail.contains("otters"), "{detail}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anthropic_call_has_the_protocol_shape_and_its_answer_maps_back() {
    let server = Server::start(|_, _| {
        json_reply(
            200,
            json!({
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": "claude-test-1",
                "content": [
                    { "type": "text", "text": "Part one. " },
                    { "type": "text", "text": "Part two." }
                ],
                "stop_reason": "max_tokens",
                "usage": { "input_tokens": 20, "output_tokens": 7 }
            }),
        )
    })
    .await;
    let host = chat_host(vec![(
        "claude",
        provider(ProviderKind::Anthropic, server.port),
    )]);
    let tool = chat_probe(
        &host,
        CompleteGrant {
            max_tokens: 64,
            ..CompleteGrant::new("claude", ["claude-small"])
        },
    );
    let out = chat(&host, &tool, conversation(), no_options())
        .await
        .expect("a granted call");
    assert_eq!(
        out.value,
        json!({
            "text": "Part one. Part two.",
            "model": "claude-test-1",
            "finish-reason": "length",
            "prompt-tokens": 20,
            "completion-tokens": 7,
        })
    );
    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/v1/messages");
    assert_eq!(seen[0].header("x-api-key").as_deref(), Some(KEY));
    assert_eq!(
        seen[0].header("anthropic-version").as_deref(),
        Some("2023-06-01")
    );
    assert_eq!(seen[0].header("authorization"), None);
    assert_eq!(
        seen[0].json(),
        json!({
            "model": "claude-small",
            "max_tokens": 64,
            "system": "Be brief.",
            "messages": [{ "role": "user", "content": "Say hi to the otters." }],
        })
    );
}

// ---------------------------------------------------------------------------
// The grant: models and per-job budgets.
// ---------------------------------------------------------------------------

mod complete_scope {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_model_outside_the_grant_is_denied_and_never_asked() {
        let server = Server::start(|_, _| openai_ok("never", 1, 1)).await;
        let host = openai_host(server.port);
        let tool = chat_probe(&host, local_models(&["gpt-small", "gpt-large"]));
        refused(
            chat(
                &host,
                &tool,
                conversation(),
                json!({ "model": "gpt-huge", "stop": [] }),
            )
            .await,
            "denied",
            "model `gpt-huge` is not granted to this tool; granted: gpt-small, gpt-large",
        );
        assert!(server.seen().is_empty());
        let records = complete_records(&host);
        assert_eq!(records.len(), 1);
        assert!(
            matches!(&records[0].decision, Decision::Deny(d) if d.starts_with("denied: model `gpt-huge`")),
            "{records:?}"
        );
        // An empty conversation is the tool's mistake, not a denial.
        refused(
            chat(&host, &tool, json!([]), no_options()).await,
            "invalid",
            "the conversation is empty",
        );
        assert!(server.seen().is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_grant_the_host_cannot_honour_is_refused_at_load() {
        let server = Server::start(|_, _| openai_ok("never", 1, 1)).await;
        let host = openai_host(server.port);
        let why = |grant: CompleteGrant| match airlock_tests::load(
            &host,
            "chat-probe",
            chatter(grant),
            Budget::default(),
        ) {
            Err(airlock::LoadError::Grant { tool, reason }) => {
                assert_eq!(tool, "chat-probe");
                reason
            }
            Err(e) => panic!("expected a grant refusal, got {e}"),
            Ok(_) => panic!("the grant should have been refused"),
        };
        let reason = why(CompleteGrant::new("elsewhere", ["gpt-small"]));
        assert!(
            reason.contains(
                "the complete grant names provider `elsewhere` but the host config has no such \
             provider (configured: local)"
            ),
            "{reason}"
        );
        let reason = why(local_models(&[]));
        assert!(reason.contains("names no model"), "{reason}");
        let reason = why(CompleteGrant {
            max_calls: 0,
            ..local_models(&["gpt-small"])
        });
        assert!(reason.contains("max_calls = 0"), "{reason}");
        assert!(server.seen().is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_call_budget_runs_out_within_one_job_and_not_across_jobs() {
        let server = Server::start(|_, _| openai_ok("yes", 1, 1)).await;
        let host = openai_host(server.port);
        let tool = chat_probe(
            &host,
            CompleteGrant {
                max_calls: 2,
                ..local_models(&["gpt-small"])
            },
        );
        let answers = chat_n(&host, &tool, 3).await;
        assert_eq!(
            answers,
            vec![
                json!({ "ok": completion("yes", 1, 1) }),
                json!({ "ok": completion("yes", 1, 1) }),
                json!({ "err": { "exhausted": "complete-calls" } }),
            ]
        );
        assert_eq!(server.seen().len(), 2);
        // The next job starts with a fresh budget.
        let out = chat(&host, &tool, conversation(), no_options())
            .await
            .expect("a new job");
        assert_eq!(out.value, completion("yes", 1, 1));
        assert_eq!(server.seen().len(), 3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_token_budget_runs_out_within_one_job() {
        let server = Server::start(|_, _| openai_ok("ten tokens", 10, 10)).await;
        let host = openai_host(server.port);
        let tool = chat_probe(
            &host,
            CompleteGrant {
                max_total_tokens: 30,
                ..local_models(&["gpt-small"])
            },
        );
        let answers = chat_n(&host, &tool, 3).await;
        assert_eq!(
            answers[0],
            json!({ "ok": completion("ten tokens", 10, 10) })
        );
        assert_eq!(
            answers[1],
            json!({ "ok": completion("ten tokens", 10, 10) })
        );
        assert_eq!(
            answers[2],
            json!({ "err": { "exhausted": "complete-tokens" } })
        );
        // Each call may generate no more than the job has left.
        let max_tokens: Vec<Value> = server
            .seen()
            .iter()
            .map(|s| s.json()["max_tokens"].clone())
            .collect();
        assert_eq!(max_tokens, [json!(30), json!(10)]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_malformed_answer_is_a_malformed_response() {
        let server = Server::start(|n, _| match n {
            0 => respond(
                200,
                &[("content-type", "application/json")],
                "{\"choices\": [ oops",
            ),
            1 => json_reply(200, json!({ "choices": [] })),
            _ => respond(
                200,
                &[("content-type", "text/html")],
                "<html>gateway</html>",
            ),
        })
        .await;
        let host = openai_host(server.port);
        let tool = chat_probe(&host, local_models(&["gpt-small"]));
        let answers = chat_n(&host, &tool, 3).await;
        for answer in &answers {
            assert_eq!(
                answer,
                &json!({ "err": { "upstream": "malformed response" } })
            );
        }
        let records = complete_records(&host);
        assert_eq!(records.len(), 3);
        assert!(
            records[1]
                .detail
                .as_deref()
                .unwrap_or_default()
                .contains("no choices"),
            "{records:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_huge_answer_is_cut_off() {
        let big = Bytes::from(vec![b' '; airlock_complete::MAX_RESPONSE_BYTES + 1]);
        let server = Server::start(move |n, _| match n {
            0 => Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .body(Endless.boxed())
                .expect("a valid response"),
            _ => respond(200, &[("content-type", "application/json")], big.clone()),
        })
        .await;
        let host = openai_host(server.port);
        let tool = chat_probe(&host, local_models(&["gpt-small"]));
        let started = Instant::now();
        let answers = chat_n(&host, &tool, 2).await;
        for answer in &answers {
            assert_eq!(
                answer,
                &json!({ "err": { "upstream": "response too large" } })
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }
}

// ---------------------------------------------------------------------------
// Provider failures.
// ---------------------------------------------------------------------------

mod secrets {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_401_echoing_the_key_is_an_authentication_failure_and_the_key_goes_nowhere() {
        let server = Server::start(|n, _| match n {
        0 => json_reply(
            401,
            json!({ "error": {
                "message": format!("Incorrect API key provided: {KEY}. Fragment: {}", &KEY[3..15]),
                "type": "invalid_request_error",
                "code": "invalid_api_key"
            }}),
        ),
        // A model that repeats the key back in its answer and its name.
        _ => json_reply(
            200,
            json!({
                "model": format!("echo-{KEY}"),
                "choices": [{ "message": { "content": format!("your key is {KEY}") }, "finish_reason": "stop" }],
                "usage": { "prompt_tokens": 1, "completion_tokens": 1 }
            }),
        ),
    })
    .await;
        let host = openai_host(server.port);
        let tool = chat_probe(&host, local_models(&["gpt-small"]));

        let result = chat(&host, &tool, conversation(), no_options()).await;
        let debug = format!("{result:?}");
        let err = tool_error(result, "a call the provider refuses");
        assert_eq!(err, json!({ "upstream": "authentication failed" }));
        assert_no_key("the job error", &debug);
        // The provider did get the key, so it was there to leak.
        assert_eq!(
            server.seen()[0].header("authorization"),
            Some(format!("Bearer {KEY}"))
        );
        assert_eq!(
            server.seen().len(),
            1,
            "authentication failures are not retried"
        );

        let out = chat(&host, &tool, conversation(), no_options())
            .await
            .expect("the echoing model answers");
        assert_eq!(out.value["text"], "your key is [redacted]");
        assert_no_key("the job output", &format!("{out:?}"));

        let records = complete_records(&host);
        assert_eq!(records.len(), 2);
        assert_eq!(
            records[0].decision,
            Decision::Deny("upstream: authentication failed".into())
        );
        let detail = records[0].detail.clone().unwrap_or_default();
        assert!(
            detail.contains("status 401")
                && detail.contains("Incorrect API key provided: [redacted]"),
            "{detail}"
        );
        for r in host.audit.records() {
            assert_no_key("an audit record", &format!("{r:?}"));
        }
        assert_no_key("the capabilities", &format!("{:?}", host.capabilities()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_is_waited_out_and_the_retry_answers() {
    let server = Server::start(|n, _| match n {
        0 => json_reply(429, json!({ "error": { "message": "slow down" } })),
        _ => openai_ok("after the wait", 3, 4),
    })
    .await;
    let host = openai_host(server.port);
    let tool = chat_probe(&host, local_models(&["gpt-small"]));
    let started = Instant::now();
    let out = chat(&host, &tool, conversation(), no_options())
        .await
        .expect("the retry answers");
    assert_eq!(out.value, completion("after the wait", 3, 4));
    assert!(
        started.elapsed() >= airlock_complete::FIRST_BACKOFF,
        "{:?}",
        started.elapsed()
    );
    assert_eq!(server.seen().len(), 2);
    let records = complete_records(&host);
    assert_eq!(records.len(), 1, "one call, however many attempts");
    let detail = records[0].detail.clone().unwrap_or_default();
    assert!(detail.contains(" attempts=2 "), "{detail}");
}

mod hostcall_time {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_provider_that_never_answers_is_cut_off_within_the_deadline() {
        let silent = Server::silent().await;

        // The job's deadline is the limit: the job ends at it, on the deadline
        // budget, and the call is audited as timed out.
        let host = openai_host(silent.port);
        let tool = load_ok(
            &host,
            "chat-probe",
            chatter(local_models(&["gpt-small"])),
            budget(|b| b.timeout = Duration::from_millis(500)),
        );
        let started = Instant::now();
        let result = chat(&host, &tool, conversation(), no_options()).await;
        let took = started.elapsed();
        assert!(
            matches!(
                &result,
                Err(JobError::Budget {
                    which: BudgetKind::Deadline,
                    ..
                })
            ),
            "{result:?}"
        );
        assert!(
            took >= Duration::from_millis(500) && took < Duration::from_secs(3),
            "{took:?}"
        );
        let records = complete_records(&host);
        assert_eq!(records.len(), 1);
        assert!(
            matches!(&records[0].decision, Decision::Deny(d) if d.starts_with("timeout")),
            "{records:?}"
        );

        // The provider's own request timeout is the limit: an upstream failure
        // the tool sees, well within the job's deadline.
        let mut config = provider(ProviderKind::OpenAi, silent.port);
        config.request_timeout = Duration::from_millis(200);
        let host = chat_host(vec![("local", config)]);
        let tool = chat_probe(&host, local_models(&["gpt-small"]));
        let started = Instant::now();
        refused(
            chat(&host, &tool, conversation(), no_options()).await,
            "upstream",
            "provider timed out",
        );
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        assert_host_still_works(&host).await;
    }
}

// ---------------------------------------------------------------------------
// summarize: fetch and complete in one tool.
// ---------------------------------------------------------------------------

const ARTICLE: &str = "<html><head><title>Otters</title></head>
<body><p>Otters hold hands while sleeping.</p>
<p>They use rocks as tools.</p></body></html>";

/// What `summarize` makes of [`ARTICLE`]: the text outside tags, collapsed.
const ARTICLE_TEXT: &str = "Otters Otters hold hands while sleeping. They use rocks as tools.";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn summarize_reads_a_granted_page_and_returns_the_models_text() {
    let page = Server::start(|_, _| respond(200, &[("content-type", "text/html")], ARTICLE)).await;
    let model =
        Server::start(|_, _| openai_ok("Otters sleep holding hands and use tools.", 30, 9)).await;
    let host = openai_host(model.port);
    let pp = page.port;
    let mut g = chatter(local_models(&["gpt-small", "gpt-large"]));
    g.fetch = Some(Arc::new(FetchGrant {
        allow: vec![format!("http://127.0.0.1:{pp}/articles/")],
        private_networks: vec!["127.0.0.1".into()],
        ..FetchGrant::default()
    }));
    let tool = load_ok(&host, "summarize", g, Budget::default());

    let url = format!("http://127.0.0.1:{pp}/articles/otters?ref=feed");
    let out = host
        .run(
            &tool,
            Some("summarize"),
            &json!({ "url": url, "sentences": 2 }),
        )
        .await
        .expect("summarize runs");
    assert_eq!(
        out.value,
        json!("Otters sleep holding hands and use tools.")
    );
    assert_eq!(page.paths(), ["/articles/otters?ref=feed"]);
    let seen = model.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].json(),
        json!({
            "model": "gpt-small",
            "messages": [
                { "role": "system", "content": "Summarize in 2 sentences." },
                { "role": "user", "content": ARTICLE_TEXT },
            ],
            "max_tokens": 1024,
        })
    );
    let logs: Vec<&str> = out.logs.iter().map(|l| l.message.as_str()).collect();
    assert_eq!(
        logs,
        [
            format!("fetched {} bytes from {url}", ARTICLE.len()),
            format!(
                "gpt-test-2024 summarized {} bytes in 9 tokens",
                ARTICLE_TEXT.len()
            ),
        ]
    );
    let verbs: Vec<&str> = host.audit.records().iter().map(|r| r.verb).collect();
    assert_eq!(verbs, ["fetch", "log", "complete", "log"]);

    // Text given directly goes to the model as it is.
    let out = host
        .run(
            &tool,
            Some("summarize"),
            &json!({ "text": "A long story.", "sentences": 1 }),
        )
        .await
        .expect("summarize runs");
    assert_eq!(
        out.value,
        json!("Otters sleep holding hands and use tools.")
    );
    assert_eq!(
        model.seen()[1].json()["messages"],
        json!([
            { "role": "system", "content": "Summarize in 1 sentence." },
            { "role": "user", "content": "A long story." },
        ])
    );

    // A page outside the grant is never fetched, and the model never asked.
    let err = tool_error(
        host.run(
            &tool,
            Some("summarize"),
            &json!({ "url": format!("http://127.0.0.1:{pp}/admin"), "sentences": 2 }),
        )
        .await,
        "summarize of a page outside the grant",
    );
    let err = err.as_str().expect("a string error");
    assert!(
        err.starts_with("fetch denied: ") && err.contains("is not in this tool's fetch grant"),
        "{err}"
    );
    assert_eq!(page.seen().len(), 1);
    assert_eq!(model.seen().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn summarize_passes_the_models_refusal_on_as_its_error() {
    let model = Server::start(|_, _| json_reply(401, json!({ "error": KEY }))).await;
    let host = openai_host(model.port);
    let tool = load_ok(
        &host,
        "summarize",
        {
            let mut g = chatter(local_models(&["gpt-small"]));
            g.fetch = Some(Arc::new(FetchGrant::default()));
            g
        },
        Budget::default(),
    );
    let result = host
        .run(
            &tool,
            Some("summarize"),
            &json!({ "text": "anything", "sentences": 3 }),
        )
        .await;
    assert_no_key("the job error", &format!("{result:?}"));
    let err = tool_error(result, "summarize against a refusing provider");
    assert_eq!(
        err,
        json!("complete failed upstream: authentication failed")
    );
}
