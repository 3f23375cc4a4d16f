//! Budgets and allowlists through the whole verb: tokens across calls, call
//! counts, model denial, the empty grant, grant checks and configuration.

use super::*;
use crate::{CompleteSpec, ConfigError};
use airlock_core::Decision;

mod complete_scope {
    use super::*;

    #[tokio::test]
    async fn the_token_budget_binds_across_calls() {
        let server = Server::start(|_| openai_ok("ok", 20, 10)).await;
        let cap = capability("openai", ProviderKind::OpenAi, server.url("/v1"));
        let mut grant = CompleteGrant::new("openai", ["m"]);
        grant.max_total_tokens = 50;
        let (mut s, audit) = state(&cap, grant, Duration::from_secs(5));
        chat(&mut s, ask("one"), opts()).await.unwrap();
        chat(&mut s, ask("two"), opts()).await.unwrap();
        for _ in 0..2 {
            let e = guest_err(chat(&mut s, ask("three"), opts()).await);
            assert_eq!(e, "exhausted: complete-tokens");
        }
        let seen = server.seen();
        assert_eq!(seen.len(), 2, "exhausted calls never reach the provider");
        assert_eq!(
            seen[0].json()["max_tokens"],
            50,
            "capped by the budget left"
        );
        assert_eq!(seen[1].json()["max_tokens"], 20);
        let records = audit.records();
        assert_eq!(records.len(), 4);
        assert_eq!(
            records[3].decision,
            Decision::Deny("exhausted: complete-tokens".into())
        );
    }

    #[tokio::test]
    async fn calls_run_out_and_failed_calls_count() {
        let server = Server::start(|n| {
            if n == 0 {
                Reply::Json(400, serde_json::json!({}))
            } else {
                openai_ok("ok", 1, 1)
            }
        })
        .await;
        let cap = capability("openai", ProviderKind::OpenAi, server.url("/v1"));
        let mut grant = CompleteGrant::new("openai", ["m"]);
        grant.max_calls = 2;
        let (mut s, _) = state(&cap, grant, Duration::from_secs(5));
        let e = guest_err(chat(&mut s, ask("a"), opts()).await);
        assert_eq!(e, "upstream: request rejected (status 400)");
        chat(&mut s, ask("b"), opts()).await.unwrap();
        let e = guest_err(chat(&mut s, ask("c"), opts()).await);
        assert_eq!(e, "exhausted: complete-calls");
        assert_eq!(server.seen().len(), 2);
    }

    #[tokio::test]
    async fn models_outside_the_grant_are_denied_before_any_request() {
        let server = Server::start(|_| openai_ok("ok", 1, 1)).await;
        let (mut s, audit) = openai_state(&server, &["small", "large"]);
        let mut o = opts();
        o.model = Some("gpt-expensive".into());
        let e = guest_err(chat(&mut s, ask("hi"), o).await);
        assert!(
            e.starts_with("denied: ") && e.contains("`gpt-expensive`"),
            "{e}"
        );
        assert!(server.seen().is_empty());
        let records = audit.records();
        assert!(matches!(&records[0].decision, Decision::Deny(r) if r.starts_with("denied")));
        assert_eq!(
            records[0].detail.as_deref(),
            Some(r#"provider=openai model="gpt-expensive""#)
        );

        let mut o = opts();
        o.model = Some("large".into());
        chat(&mut s, ask("hi"), o).await.unwrap();
        chat(&mut s, ask("hi"), opts()).await.unwrap();
        let models: Vec<_> = server
            .seen()
            .iter()
            .map(|r| r.json()["model"].clone())
            .collect();
        assert_eq!(models, ["large", "small"]);
    }

    #[tokio::test]
    async fn the_empty_grant_refuses_and_a_passed_deadline_times_out() {
        let server = Server::start(|_| openai_ok("ok", 1, 1)).await;
        let cap = capability("openai", ProviderKind::OpenAi, server.url("/v1"));
        let (mut s, _) = state(&cap, CompleteGrant::default(), Duration::from_secs(5));
        assert!(guest_err(chat(&mut s, ask("hi"), opts()).await).starts_with("denied: "));
        let (mut s, _) = state(&cap, CompleteGrant::new("openai", ["m"]), Duration::ZERO);
        assert_eq!(
            guest_err(chat(&mut s, ask("hi"), opts()).await),
            "timeout: deadline passed"
        );
        assert!(server.seen().is_empty());
    }

    #[test]
    fn check_grant_wants_a_configured_provider_and_a_sound_grant() {
        let cap = capability(
            "openai",
            ProviderKind::OpenAi,
            "http://127.0.0.1:9/v1".into(),
        );
        assert!(
            cap.check_grant(&CompleteGrant::new("openai", ["m"]))
                .is_ok()
        );
        let e = cap
            .check_grant(&CompleteGrant::new("claude", ["m"]))
            .unwrap_err();
        assert!(
            e.contains("provider `claude`") && e.contains("configured: openai"),
            "{e}"
        );
        assert!(
            cap.check_grant(&CompleteGrant::new("openai", Vec::<String>::new()))
                .is_err()
        );
        assert!(
            CompleteCapability::default()
                .check_grant(&CompleteGrant::new("openai", ["m"]))
                .is_err()
        );
        assert_eq!(
            CompleteCapability::describe(&CompleteGrant::new("openai", ["m"])).len(),
            5
        );
    }
}

#[test]
fn the_host_config_section_resolves_secret_names() {
    let spec: CompleteSpec = serde_json::from_value(serde_json::json!({
        "providers": {
            "openai": {"kind": "openai", "api_key": "openai-key", "request_timeout": "30s",
                       "headers": {"OpenAI-Organization": "org-1"}},
            "claude": {"kind": "anthropic", "api_key": "claude-key", "request_timeout": 45},
            "local": {"kind": "openai", "base_url": "http://127.0.0.1:11434/v1"}
        },
        "log_content": true
    }))
    .unwrap();
    let mut names: Vec<_> = spec.secret_names().collect();
    names.sort_unstable();
    assert_eq!(names, [("claude", "claude-key"), ("openai", "openai-key")]);
    let p = spec.providers["openai"]
        .resolve("openai", |_| {
            Ok::<_, String>(SecretSlice::from(KEY.as_bytes().to_vec()))
        })
        .unwrap();
    assert_eq!(p.base_url, "https://api.openai.com/v1");
    assert_eq!(p.request_timeout, Duration::from_secs(30));
    let debug = format!("{p:?}");
    assert!(
        debug.contains("[redacted]") && debug.contains("OpenAI-Organization"),
        "{debug}"
    );
    assert_no_key_fragment(&debug);

    let cap = CompleteCapability::from_spec(&spec, |name: &str| {
        Ok::<_, String>(SecretSlice::from(format!("{KEY}-{name}").into_bytes()))
    })
    .unwrap();
    assert_eq!(cap.provider_names(), ["claude", "local", "openai"]);
    let debug = format!("{cap:?}");
    assert!(
        debug.contains("log_content: true") && debug.contains("https://api.anthropic.com"),
        "{debug}"
    );
    assert_no_key_fragment(&debug);

    let e = CompleteCapability::from_spec(&spec, |name: &str| Err(format!("no [secrets.{name}]")))
        .unwrap_err();
    assert!(matches!(e, ConfigError::Secret { .. }));
    assert!(
        e.to_string()
            .contains("api key secret `claude-key`: no [secrets.claude-key]"),
        "{e}"
    );

    for bad in [
        serde_json::json!({"providers": {"x": {"kind": "gemini"}}}),
        serde_json::json!({"providers": {"x": {"kind": "openai", "key": "k"}}}),
        serde_json::json!({"providers": {"x": {"kind": "openai", "request_timeout": "soon"}}}),
    ] {
        assert!(serde_json::from_value::<CompleteSpec>(bad).is_err());
    }
}

mod secrets {
    use super::*;

    #[test]
    fn bad_provider_configs_are_refused_without_showing_keys() {
        let make = |name: &str, url: &str, key: &[u8], headers: Vec<(String, String)>| {
            let mut c = ProviderConfig::new(ProviderKind::OpenAi, url)
                .with_api_key(SecretSlice::from(key.to_vec()));
            c.headers = headers;
            CompleteCapability::new(vec![(name.into(), c)]).map(|_| ())
        };
        let ok = "http://127.0.0.1:1/v1";
        assert!(make("p", ok, KEY.as_bytes(), vec![]).is_ok());
        assert!(matches!(
            make("p", "https://user:pw@x/v1", b"k", vec![]),
            Err(ConfigError::BaseUrl { .. })
        ));
        assert!(matches!(
            make("a b", ok, b"k", vec![]),
            Err(ConfigError::Name { .. })
        ));
        assert!(matches!(
            make("p", ok, b"", vec![]),
            Err(ConfigError::ApiKey { .. })
        ));
        let e = make("p", ok, format!("{KEY}\x07").as_bytes(), vec![]).unwrap_err();
        assert_no_key_fragment(&format!("{e} {e:?}"));
        let e = make(
            "p",
            ok,
            b"k",
            vec![("Authorization".into(), "Bearer other".into())],
        )
        .unwrap_err();
        assert!(matches!(e, ConfigError::Header { .. }), "{e}");
        let mut zero = ProviderConfig::new(ProviderKind::OpenAi, ok);
        zero.request_timeout = Duration::ZERO;
        assert!(CompleteCapability::new(vec![("p".into(), zero)]).is_err());
        let twice = vec![
            (
                "p".to_string(),
                ProviderConfig::new(ProviderKind::OpenAi, ok),
            ),
            (
                "p".to_string(),
                ProviderConfig::new(ProviderKind::OpenAi, ok),
            ),
        ];
        assert!(matches!(
            CompleteCapability::new(twice),
            Err(ConfigError::Name { .. })
        ));
    }
}
