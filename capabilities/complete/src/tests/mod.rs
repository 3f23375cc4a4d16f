//! Wasm-free tests of the complete verb: call `Host::chat` on a
//! `CompleteState` against real HTTP servers on 127.0.0.1 speaking each
//! protocol, and check the wire, the answers, the budgets and the scrubbing.

mod anthropic;
mod budget;
mod compare;
mod failures;
mod openai;
mod scrub;
mod server;

use std::sync::Arc;
use std::time::{Duration, Instant};

use airlock_core::bindings::airlock::verbs::complete::{
    Completion, FinishReason, Host, Message, Options, Role,
};
use airlock_core::{AuditRecord, Capability, Job, MemoryAudit, VerbError};
use secrecy::SecretSlice;

use crate::{CompleteCapability, CompleteGrant, CompleteState, ProviderConfig, ProviderKind};

pub(crate) use server::{Reply, Server};

/// The key the tests configure; error bodies echo parts of it.
pub(crate) const KEY: &str = "sk-test-abcdef1234567890XYZ";

/// A capability with one provider `name` of `kind` at `base_url`, keyed with [`KEY`].
pub(crate) fn capability(name: &str, kind: ProviderKind, base_url: String) -> CompleteCapability {
    let config = ProviderConfig::new(kind, base_url)
        .with_api_key(SecretSlice::from(KEY.as_bytes().to_vec()));
    CompleteCapability::new(vec![(name.to_string(), config)]).unwrap()
}

/// A job state for `grant` with `deadline` left, and its audit trail.
pub(crate) fn state(
    cap: &CompleteCapability,
    grant: CompleteGrant,
    deadline: Duration,
) -> (CompleteState, Arc<MemoryAudit>) {
    let audit = Arc::new(MemoryAudit::default());
    let job = Job::new(1, "tool".into(), Instant::now() + deadline, audit.clone());
    (cap.state(Arc::new(grant), job), audit)
}

/// An OpenAI provider at `server` and a state granting `models` on it.
pub(crate) fn openai_state(server: &Server, models: &[&str]) -> (CompleteState, Arc<MemoryAudit>) {
    let cap = capability("openai", ProviderKind::OpenAi, server.url("/v1"));
    state(
        &cap,
        CompleteGrant::new("openai", models.iter().copied()),
        Duration::from_secs(5),
    )
}

pub(crate) fn msg(role: Role, content: &str) -> Message {
    Message {
        role,
        content: content.into(),
    }
}

pub(crate) fn ask(text: &str) -> Vec<Message> {
    vec![msg(Role::User, text)]
}

pub(crate) fn opts() -> Options {
    Options {
        model: None,
        max_tokens: None,
        temperature: None,
        stop: vec![],
    }
}

pub(crate) async fn chat(
    s: &mut CompleteState,
    messages: Vec<Message>,
    options: Options,
) -> Result<Completion, VerbError> {
    Host::chat(s, messages, options).await
}

/// The guest error of `r` as `kind: reason` (`WitError` has no `PartialEq`).
pub(crate) fn guest_err<T: std::fmt::Debug>(r: Result<T, VerbError>) -> String {
    match r {
        Err(e @ VerbError::Guest(_)) => format!("{}: {}", e.kind(), e.reason()),
        other => panic!("expected a guest error, got {other:?}"),
    }
}

/// An OpenAI success body.
pub(crate) fn openai_ok(text: &str, prompt: u64, completion: u64) -> Reply {
    Reply::Json(
        200,
        serde_json::json!({
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "model": "gpt-test-2024",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
        }),
    )
}

/// Panics if `text` holds any fragment of [`KEY`] of 8 bytes or more.
pub(crate) fn assert_no_key_fragment(text: &str) {
    for w in KEY.as_bytes().windows(crate::MIN_FRAGMENT) {
        let w = std::str::from_utf8(w).unwrap();
        assert!(!text.contains(w), "found key fragment {w:?} in {text}");
    }
}

/// The one audit record of a job that made one call.
pub(crate) fn only_record(audit: &MemoryAudit) -> AuditRecord {
    let records = audit.records();
    assert_eq!(records.len(), 1, "{records:?}");
    records.into_iter().next().unwrap()
}
