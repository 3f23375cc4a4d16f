//! The Anthropic Messages protocol on the wire: `x-api-key` and
//! `anthropic-version`, system messages in the top-level `system` field,
//! content blocks joined, stop reasons and usage mapped.

use super::*;

fn anthropic_ok(stop_reason: &str) -> Reply {
    Reply::Json(
        200,
        serde_json::json!({
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-test-20250101",
            "content": [{"type": "text", "text": "Hello"}, {"type": "text", "text": ", world"}],
            "stop_reason": stop_reason,
            "usage": {"input_tokens": 21, "output_tokens": 4}
        }),
    )
}

#[tokio::test]
async fn the_request_has_key_version_system_and_messages() {
    let server = Server::start(|_| anthropic_ok("end_turn")).await;
    let cap = capability("claude", ProviderKind::Anthropic, server.url(""));
    let (mut s, audit) = state(
        &cap,
        CompleteGrant::new("claude", ["claude-test"]),
        Duration::from_secs(5),
    );
    let messages = vec![
        msg(Role::System, "You are terse."),
        msg(Role::User, "Greet the world."),
        msg(Role::System, "Use English."),
    ];
    let options = Options {
        model: Some("claude-test".into()),
        max_tokens: Some(100),
        temperature: Some(0.5),
        stop: vec!["END".into()],
    };
    let c = chat(&mut s, messages, options).await.unwrap();
    assert_eq!(c.text, "Hello, world");
    assert_eq!(c.model, "claude-test-20250101");
    assert_eq!(c.finish_reason, FinishReason::Stop);
    assert_eq!((c.prompt_tokens, c.completion_tokens), (21, 4));

    let req = &server.seen()[0];
    assert_eq!(
        (req.method.as_str(), req.path.as_str()),
        ("POST", "/v1/messages")
    );
    assert_eq!(req.header("x-api-key"), Some(KEY));
    assert_eq!(req.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(req.header("authorization"), None);
    assert_eq!(
        req.json(),
        serde_json::json!({
            "model": "claude-test",
            "max_tokens": 100,
            "system": "You are terse.\n\nUse English.",
            "messages": [{"role": "user", "content": "Greet the world."}],
            "temperature": 0.5,
            "stop_sequences": ["END"]
        })
    );
    let detail = only_record(&audit).detail.unwrap();
    assert!(
        detail.contains("provider=claude model=claude-test"),
        "{detail}"
    );
    assert!(
        detail.contains("prompt_tokens=21 completion_tokens=4"),
        "{detail}"
    );
}

#[tokio::test]
async fn stop_reasons_map_and_the_version_header_can_be_replaced() {
    let server =
        Server::start(|n| anthropic_ok(["max_tokens", "stop_sequence", "tool_use"][n])).await;
    let mut config = ProviderConfig::new(ProviderKind::Anthropic, server.url("/"))
        .with_api_key(SecretSlice::from(KEY.as_bytes().to_vec()));
    config.headers = vec![("anthropic-version".into(), "2099-01-01".into())];
    let cap = CompleteCapability::new(vec![("claude".into(), config)]).unwrap();
    let (mut s, _) = state(
        &cap,
        CompleteGrant::new("claude", ["c"]),
        Duration::from_secs(5),
    );
    let mut reasons = vec![];
    for _ in 0..3 {
        reasons.push(chat(&mut s, ask("hi"), opts()).await.unwrap().finish_reason);
    }
    assert_eq!(
        reasons,
        [
            FinishReason::Length,
            FinishReason::Stop,
            FinishReason::Other
        ]
    );
    let seen = server.seen();
    assert_eq!(seen[0].path, "/v1/messages");
    assert_eq!(seen[0].header("anthropic-version"), Some("2099-01-01"));
    assert_eq!(
        seen[0].headers.get_all("anthropic-version").iter().count(),
        1
    );
    assert!(seen[0].json().get("system").is_none());
}

#[tokio::test]
async fn a_conversation_of_only_system_messages_is_invalid_and_not_sent() {
    let server = Server::start(|_| anthropic_ok("end_turn")).await;
    let cap = capability("claude", ProviderKind::Anthropic, server.url(""));
    let mut grant = CompleteGrant::new("claude", ["c"]);
    grant.max_calls = 1;
    let (mut s, audit) = state(&cap, grant, Duration::from_secs(5));
    let e = guest_err(chat(&mut s, vec![msg(Role::System, "rules")], opts()).await);
    assert!(
        e.starts_with("invalid: ") && e.contains("user or assistant"),
        "{e}"
    );
    assert!(server.seen().is_empty());
    assert!(
        matches!(&only_record(&audit).decision, airlock_core::Decision::Deny(r) if r.starts_with("invalid"))
    );
    chat(&mut s, ask("hi"), opts())
        .await
        .expect("the refused call was not counted");
}
