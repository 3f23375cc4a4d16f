//! The OpenAI-compatible protocol on the wire: request shape, headers,
//! response mapping, keyless providers (Ollama) and what the audit keeps.

use super::*;
use crate::DEFAULT_MAX_TOKENS;
use airlock_core::Decision;

#[tokio::test]
async fn the_request_carries_the_key_model_messages_and_limits() {
    let server = Server::start(|_| {
        Reply::Json(
            200,
            serde_json::json!({
                "model": "gpt-test-2024",
                "choices": [{"message": {"role": "assistant", "content": "Four."}, "finish_reason": "length"}],
                "usage": {"prompt_tokens": 11, "completion_tokens": 7}
            }),
        )
    })
    .await;
    let cap = capability("openai", ProviderKind::OpenAi, server.url("/v1/"));
    let mut grant = CompleteGrant::new("openai", ["gpt-test", "gpt-big"]);
    grant.max_tokens = 64;
    let (mut s, audit) = state(&cap, grant, Duration::from_secs(5));
    let options = Options {
        model: None,
        max_tokens: Some(5000),
        temperature: Some(0.25),
        stop: vec!["\n\n".into()],
    };
    let messages = vec![
        msg(Role::System, "Answer tersely."),
        msg(Role::User, "What is 2+2?"),
        msg(Role::Assistant, "Let me think."),
        msg(Role::User, "Well?"),
    ];
    let c = chat(&mut s, messages, options).await.unwrap();
    assert_eq!(c.text, "Four.");
    assert_eq!(c.model, "gpt-test-2024");
    assert_eq!(c.finish_reason, FinishReason::Length);
    assert_eq!((c.prompt_tokens, c.completion_tokens), (11, 7));

    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    let req = &seen[0];
    assert_eq!(
        (req.method.as_str(), req.path.as_str()),
        ("POST", "/v1/chat/completions")
    );
    assert_eq!(
        req.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(req.header("x-api-key"), None);
    assert_eq!(
        req.json(),
        serde_json::json!({
            "model": "gpt-test",
            "messages": [
                {"role": "system", "content": "Answer tersely."},
                {"role": "user", "content": "What is 2+2?"},
                {"role": "assistant", "content": "Let me think."},
                {"role": "user", "content": "Well?"}
            ],
            "max_tokens": 64,
            "temperature": 0.25,
            "stop": ["\n\n"]
        })
    );

    let r = only_record(&audit);
    assert_eq!(
        (r.verb, r.op, &r.decision),
        ("complete", "chat", &Decision::Allow)
    );
    let detail = r.detail.unwrap();
    for part in [
        "provider=openai",
        "model=gpt-test",
        "max_tokens=64",
        "prompt_tokens=11",
        "completion_tokens=7",
        "attempts=1",
        "calls=1/8",
        "tokens=18/20000",
        "latency_ms=",
    ] {
        assert!(detail.contains(part), "{part} missing from {detail}");
    }
    for content in ["tersely", "2+2", "Four."] {
        assert!(
            !detail.contains(content),
            "content {content} leaked into {detail}"
        );
    }
}

#[tokio::test]
async fn a_keyless_provider_sends_no_credentials_but_the_extra_headers() {
    let server = Server::start(|_| openai_ok("hi", 1, 1)).await;
    let mut config = ProviderConfig::new(ProviderKind::OpenAi, server.url("/v1"));
    config.headers = vec![("OpenAI-Organization".into(), "org-7".into())];
    let cap = CompleteCapability::new(vec![("ollama".into(), config)]).unwrap();
    let (mut s, _) = state(
        &cap,
        CompleteGrant::new("ollama", ["llama3.2"]),
        Duration::from_secs(5),
    );
    let c = chat(&mut s, ask("hello"), opts()).await.unwrap();
    assert_eq!(c.text, "hi");
    let req = &server.seen()[0];
    assert_eq!(req.header("authorization"), None);
    assert_eq!(req.header("openai-organization"), Some("org-7"));
    assert_eq!(req.json()["model"], "llama3.2");
    assert_eq!(req.json()["max_tokens"], DEFAULT_MAX_TOKENS);
    assert!(req.json().get("temperature").is_none() && req.json().get("stop").is_none());
}

mod complete_scope {
    use super::*;

    #[tokio::test]
    async fn missing_usage_is_charged_as_an_upper_bound() {
        let server = Server::start(|_| {
        Reply::Json(200, serde_json::json!({"choices": [{"message": {"content": "abc"}, "finish_reason": "stop"}]}))
    })
    .await;
        let (mut s, audit) = openai_state(&server, &["m"]);
        let c = chat(&mut s, ask("12345"), opts()).await.unwrap();
        assert_eq!((c.prompt_tokens, c.completion_tokens), (5, 3));
        assert_eq!(
            c.model, "m",
            "the requested model stands in when the provider names none"
        );
        assert!(
            only_record(&audit)
                .detail
                .unwrap()
                .contains("usage=estimated")
        );
    }
}

#[tokio::test]
async fn log_content_puts_prompt_and_answer_in_the_audit_for_operators() {
    let server = Server::start(|_| openai_ok("the answer", 1, 1)).await;
    let cap = capability("openai", ProviderKind::OpenAi, server.url("/v1")).with_log_content(true);
    let (mut s, audit) = state(
        &cap,
        CompleteGrant::new("openai", ["m"]),
        Duration::from_secs(5),
    );
    chat(&mut s, ask("the question\nline two"), opts())
        .await
        .unwrap();
    let detail = only_record(&audit).content.unwrap();
    assert!(
        detail.contains(r#"prompt=[["user","the question\nline two"]]"#),
        "{detail}"
    );
    assert!(detail.contains(r#"completion="the answer""#), "{detail}");
}

mod secrets {
    use super::*;

    #[tokio::test]
    async fn a_key_echoed_in_a_completion_is_redacted_before_the_guest_sees_it() {
        let server = Server::start(|_| openai_ok(&format!("your key is {KEY}"), 1, 1)).await;
        let (mut s, _) = openai_state(&server, &["m"]);
        let c = chat(&mut s, ask("what is your key?"), opts())
            .await
            .unwrap();
        assert_eq!(c.text, "your key is [redacted]");
    }
}
