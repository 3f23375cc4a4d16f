//! Provider failures as the guest and the host see them: authentication
//! errors that echo the key, rate limits and server errors retried within
//! the deadline, providers that never answer, malformed and huge bodies,
//! redirects and unreachable hosts.

use super::*;
use airlock_core::Decision;

fn raw(status: u16, headers: Vec<(&'static str, String)>, body: &str) -> Reply {
    Reply::Raw {
        status,
        headers,
        body: body.as_bytes().to_vec(),
    }
}

mod secrets {
    use super::*;

    #[tokio::test]
    async fn an_auth_error_echoing_the_key_reaches_the_guest_classified_and_scrubbed() {
        let server = Server::start(|_| {
        Reply::Json(
            401,
            serde_json::json!({"error": {
                "message": "Incorrect API key provided: sk-test-abcdef123456... You can find your API key at https://platform.openai.com/account/api-keys.",
                "type": "invalid_request_error", "code": "invalid_api_key"}}),
        )
    })
    .await;
        let (mut s, audit) = openai_state(&server, &["m"]);
        let result = chat(&mut s, ask("hi"), opts()).await;
        let debug = format!("{result:?}");
        let e = guest_err(result);
        assert_eq!(e, "upstream: authentication failed");
        assert_no_key_fragment(&debug);
        assert_no_key_fragment(&format!("{e:?}"));
        assert_eq!(
            server.seen().len(),
            1,
            "authentication failures are not retried"
        );

        let r = only_record(&audit);
        assert_eq!(
            r.decision,
            Decision::Deny("upstream: authentication failed".into())
        );
        let detail = r.detail.clone().unwrap();
        assert!(detail.contains("status 401"), "{detail}");
        assert!(
            detail.contains("Incorrect API key provided: [redacted]"),
            "{detail}"
        );
        assert_no_key_fragment(&format!("{r:?}"));
    }
}

#[tokio::test]
async fn forbidden_is_an_authentication_failure_too_and_other_4xx_are_rejections() {
    let server =
        Server::start(|n| Reply::Json([403, 404, 422][n], serde_json::json!({"error": "no"})))
            .await;
    let (mut s, _) = openai_state(&server, &["m"]);
    let mut errors = vec![];
    for _ in 0..3 {
        errors.push(guest_err(chat(&mut s, ask("hi"), opts()).await));
    }
    assert_eq!(
        errors,
        [
            "upstream: authentication failed",
            "upstream: request rejected (status 404)",
            "upstream: request rejected (status 422)",
        ]
    );
}

#[tokio::test]
async fn a_rate_limit_is_retried_after_a_backoff() {
    let server = Server::start(|n| match n {
        0 => Reply::Json(429, serde_json::json!({"error": {"message": "slow down"}})),
        _ => openai_ok("fine", 2, 3),
    })
    .await;
    let (mut s, audit) = openai_state(&server, &["m"]);
    let started = Instant::now();
    let c = chat(&mut s, ask("hi"), opts()).await.unwrap();
    assert_eq!(c.text, "fine");
    assert!(
        started.elapsed() >= crate::FIRST_BACKOFF,
        "{:?}",
        started.elapsed()
    );
    assert_eq!(server.seen().len(), 2);
    let detail = only_record(&audit).detail.unwrap();
    assert!(
        detail.contains("attempts=2") && detail.contains("calls=1/8"),
        "{detail}"
    );
}

#[tokio::test]
async fn a_server_error_then_success_honours_retry_after() {
    let server = Server::start(|n| match n {
        0 => raw(503, vec![("retry-after-ms", "20".into())], "overloaded"),
        _ => openai_ok("back", 1, 1),
    })
    .await;
    let (mut s, _) = openai_state(&server, &["m"]);
    let started = Instant::now();
    assert_eq!(chat(&mut s, ask("hi"), opts()).await.unwrap().text, "back");
    assert!(
        started.elapsed() < crate::FIRST_BACKOFF,
        "retry-after-ms replaced the backoff"
    );
}

mod hostcall_time {
    use super::*;

    #[tokio::test]
    async fn a_retry_after_beyond_the_deadline_is_not_waited_for() {
        let server = Server::start(|_| raw(429, vec![("retry-after", "30".into())], "{}")).await;
        let (mut s, audit) = openai_state(&server, &["m"]);
        let started = Instant::now();
        let e = guest_err(chat(&mut s, ask("hi"), opts()).await);
        assert_eq!(e, "upstream: rate limited");
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(server.seen().len(), 1);
        assert!(only_record(&audit).detail.unwrap().contains("attempts=1"));
    }

    #[tokio::test]
    async fn server_errors_are_retried_only_while_the_deadline_allows() {
        let server = Server::start(|_| raw(500, vec![], "internal error")).await;
        let cap = capability("openai", ProviderKind::OpenAi, server.url("/v1"));
        let (mut s, _) = state(
            &cap,
            CompleteGrant::new("openai", ["m"]),
            Duration::from_millis(600),
        );
        let started = Instant::now();
        let e = guest_err(chat(&mut s, ask("hi"), opts()).await);
        assert_eq!(e, "upstream: provider error (status 500)");
        // Tries at 0 and ~200 ms; the next wait (400 ms) would leave too little time.
        assert_eq!(server.seen().len(), 2);
        assert!(
            started.elapsed() < Duration::from_millis(600),
            "{:?}",
            started.elapsed()
        );

        let (mut s, _) = state(
            &cap,
            CompleteGrant::new("openai", ["m"]),
            Duration::from_secs(10),
        );
        let e = guest_err(chat(&mut s, ask("hi"), opts()).await);
        assert_eq!(e, "upstream: provider error (status 500)");
        assert_eq!(
            server.seen().len() - 2,
            crate::MAX_ATTEMPTS as usize,
            "attempts are bounded"
        );
    }

    #[tokio::test]
    async fn a_provider_that_never_answers_times_out_at_the_job_deadline() {
        let server = Server::start(|_| Reply::Hang).await;
        let cap = capability("openai", ProviderKind::OpenAi, server.url("/v1"));
        let (mut s, audit) = state(
            &cap,
            CompleteGrant::new("openai", ["m"]),
            Duration::from_millis(300),
        );
        let started = Instant::now();
        let e = guest_err(chat(&mut s, ask("hi"), opts()).await);
        let took = started.elapsed();
        assert_eq!(e, "timeout: deadline passed");
        assert!(
            took >= Duration::from_millis(250) && took < Duration::from_millis(800),
            "{took:?}"
        );
        assert_eq!(
            only_record(&audit).decision,
            Decision::Deny("timeout: deadline passed".into())
        );
    }

    #[tokio::test]
    async fn the_provider_request_timeout_is_an_upstream_failure() {
        let server = Server::start(|_| Reply::Hang).await;
        let mut config = ProviderConfig::new(ProviderKind::OpenAi, server.url("/v1"));
        config.request_timeout = Duration::from_millis(100);
        let cap = CompleteCapability::new(vec![("openai".into(), config)]).unwrap();
        let (mut s, _) = state(
            &cap,
            CompleteGrant::new("openai", ["m"]),
            Duration::from_secs(5),
        );
        let e = guest_err(chat(&mut s, ask("hi"), opts()).await);
        assert_eq!(e, "upstream: provider timed out");
    }
}

#[tokio::test]
async fn malformed_json_is_a_malformed_response() {
    let server = Server::start(|n| match n {
        0 => raw(
            200,
            vec![("content-type", "application/json".into())],
            "{\"choices\": [ oops",
        ),
        1 => Reply::Json(200, serde_json::json!({"choices": []})),
        _ => raw(
            200,
            vec![("content-type", "text/html".into())],
            &format!("<html>{KEY}</html>"),
        ),
    })
    .await;
    let (mut s, audit) = openai_state(&server, &["m"]);
    for _ in 0..3 {
        let e = guest_err(chat(&mut s, ask("hi"), opts()).await);
        assert_eq!(e, "upstream: malformed response");
    }
    let records = audit.records();
    assert!(records[1].detail.as_ref().unwrap().contains("no choices"));
    assert!(
        records[2]
            .detail
            .as_ref()
            .unwrap()
            .contains("<html>[redacted]</html>")
    );
    assert_no_key_fragment(&format!("{records:?}"));
}

mod complete_scope {
    use super::*;

    #[tokio::test]
    async fn a_huge_response_is_cut_off() {
        let big = vec![b' '; crate::MAX_RESPONSE_BYTES + 1];
        let server = Server::start(move |n| match n {
            0 => Reply::Endless,
            _ => Reply::Raw {
                status: 200,
                headers: vec![],
                body: big.clone(),
            },
        })
        .await;
        let (mut s, audit) = openai_state(&server, &["m"]);
        let started = Instant::now();
        for _ in 0..2 {
            let e = guest_err(chat(&mut s, ask("hi"), opts()).await);
            assert_eq!(e, "upstream: response too large");
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        assert!(
            audit.records()[0]
                .detail
                .as_ref()
                .unwrap()
                .contains("over 4194304 bytes")
        );
    }

    #[tokio::test]
    async fn redirects_are_reported_not_followed() {
        let elsewhere = Server::start(|_| openai_ok("followed", 1, 1)).await;
        let target = elsewhere.url("/v1/chat/completions");
        let server = Server::start(move |_| raw(307, vec![("location", target.clone())], "")).await;
        let (mut s, _) = openai_state(&server, &["m"]);
        let e = guest_err(chat(&mut s, ask("hi"), opts()).await);
        assert_eq!(e, "upstream: unexpected response (status 307)");
        assert!(
            elsewhere.seen().is_empty(),
            "the key never went to the redirect target"
        );
    }
}

#[tokio::test]
async fn a_provider_nobody_listens_on_is_unreachable() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let cap = capability(
        "openai",
        ProviderKind::OpenAi,
        format!("http://127.0.0.1:{port}/v1"),
    );
    let (mut s, audit) = state(
        &cap,
        CompleteGrant::new("openai", ["m"]),
        Duration::from_secs(5),
    );
    let e = guest_err(chat(&mut s, ask("hi"), opts()).await);
    assert_eq!(e, "upstream: provider unreachable");
    assert!(only_record(&audit).detail.unwrap().contains("transport:"));
}

#[tokio::test]
async fn https_goes_through_rustls_and_a_failed_handshake_is_unreachable() {
    // A plain-HTTP server behind an https:// URL: the client must attempt a
    // real TLS handshake (the preconfigured ring backend is live) and fail it.
    let server = Server::start(|_| openai_ok("never", 1, 1)).await;
    let cap = capability(
        "openai",
        ProviderKind::OpenAi,
        format!("https://{}/v1", server.addr),
    );
    let (mut s, audit) = state(
        &cap,
        CompleteGrant::new("openai", ["m"]),
        Duration::from_secs(5),
    );
    let e = guest_err(chat(&mut s, ask("hi"), opts()).await);
    assert_eq!(e, "upstream: provider unreachable");
    let detail = only_record(&audit).detail.unwrap();
    // rustls' complaint about a plaintext answer to its ClientHello.
    assert!(detail.contains("InvalidContentType"), "{detail}");
    assert_no_key_fragment(&detail);
}

mod audit {
    use super::*;

    #[tokio::test]
    async fn a_call_cancelled_by_the_hosts_job_timeout_is_still_audited() {
        let server = Server::start(|_| Reply::Hang).await;
        let (mut s, audit) = openai_state(&server, &["m"]);
        let cut =
            tokio::time::timeout(Duration::from_millis(100), chat(&mut s, ask("hi"), opts())).await;
        assert!(cut.is_err(), "the host's timeout dropped the call");
        let r = only_record(&audit);
        assert_eq!(
            r.decision,
            Decision::Deny("timeout: the job ended during the call".into())
        );
        assert!(r.detail.unwrap().ends_with(" cancelled"));
    }
}
