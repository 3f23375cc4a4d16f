//! Tests against real HTTP servers on 127.0.0.1: what arrives upstream, what
//! comes back, redirects, caps, decoding, deadlines, credentials, reflection
//! scrubbing and TLS.

use super::*;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use flate2::Compression;
use flate2::write::{GzEncoder, ZlibEncoder};
use std::io::Write;

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn encoded(coding: &str, body: Vec<u8>) -> ::http::Response<Full<Bytes>> {
    ::http::Response::builder()
        .header("content-encoding", coding)
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

#[tokio::test]
async fn an_allowed_get_reaches_the_server_with_host_set_by_the_host() {
    let server = Server::start(|seen| ok(format!("hello {}", seen.path))).await;
    let p = server.port;
    let (mut s, audit) = state(local(&[&format!("http://allowed.test:{p}/api/")]));
    let url = format!("http://allowed.test:{p}/api/x?q=private-words&page=2#frag");
    let mut req = request("GET", &url);
    req.headers = vec![fetch::Header {
        name: "X-Trace".into(),
        value: "header-value-1".into(),
    }];
    let r = fetch::Host::send(&mut s, req).await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"hello /api/x?q=private-words&page=2");
    assert_eq!(
        r.url,
        format!("http://allowed.test:{p}/api/x?q=private-words&page=2")
    );
    let seen = &server.seen()[0];
    assert_eq!(
        seen.header("host").as_deref(),
        Some(format!("allowed.test:{p}").as_str())
    );
    assert_eq!(seen.header("x-trace").as_deref(), Some("header-value-1"));
    assert_eq!(
        seen.header("accept-encoding").as_deref(),
        Some("gzip, deflate")
    );
    assert!(seen.header("authorization").is_none());
    let records = audit.records();
    assert_eq!(records[0].decision, Decision::Allow);
    let detail = records[0].detail.clone().unwrap();
    assert_eq!(
        detail,
        format!(
            "GET http://allowed.test:{p}/api/x?q=&page= rule=http://allowed.test:{p}/api/ status=200 bytes=35 redirects=0"
        )
    );
    assert!(!detail.contains("private-words") && !detail.contains("header-value-1"));
}

mod fetch_scope {
    use super::*;

    #[tokio::test]
    async fn case_and_one_trailing_dot_of_an_allowed_host_are_the_same_host() {
        let server = Server::start(|_| ok("ok")).await;
        let p = server.port;
        let (mut s, _) = state(local(&[&format!("http://allowed.test:{p}/")]));
        for url in [
            format!("http://ALLOWED.Test:{p}/"),
            format!("http://allowed.test.:{p}/"),
        ] {
            let r = get(&mut s, &url).await.unwrap();
            assert_eq!(r.url, format!("http://allowed.test:{p}/"));
        }
        assert!(
            server
                .seen()
                .iter()
                .all(|s| s.header("host") == Some(format!("allowed.test:{p}")))
        );
        invalid_with(
            get(&mut s, &format!("http://allowed.test..:{p}/")).await,
            "empty label",
        );
    }

    #[tokio::test]
    async fn redirects_are_followed_only_through_the_grant() {
        let server = Server::start(|seen| match seen.path.as_str() {
            "/a" => redirect(302, "/b"),
            "/evil" => redirect(301, &format!("http://evil.test:{}/x", 0)),
            "/loop" => redirect(307, "/loop"),
            "/meta" => redirect(302, "http://169.254.169.254/latest/meta-data/"),
            "/meta-name" => redirect(308, "http://meta.allowed.test/"),
            "/back" => redirect(303, "https://allowed.test\\@evil.test/"),
            _ => ok("final"),
        })
        .await;
        let p = server.port;
        let g = FetchGrant {
            private_networks: vec!["127.0.0.1".into(), "169.254.0.0/16".into()],
            ..grant(&[
                &format!("http://allowed.test:{p}/"),
                "http://169.254.169.254/",
                "http://*.allowed.test/",
            ])
        };
        let (mut s, audit) = state(g);
        let r = get(&mut s, &format!("http://allowed.test:{p}/a"))
            .await
            .unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, b"final".as_slice()));
        assert_eq!(r.url, format!("http://allowed.test:{p}/b"));
        let detail = audit.records()[0].detail.clone().unwrap();
        assert!(
            detail.contains(&format!("-> http://allowed.test:{p}/b"))
                && detail.ends_with("redirects=1"),
            "{detail}"
        );
        denied_with(
            get(&mut s, &format!("http://allowed.test:{p}/evil")).await,
            "redirect from",
        );
        denied_with(
            get(&mut s, &format!("http://allowed.test:{p}/meta")).await,
            "169.254.169.254 of 169.254.169.254 is a cloud metadata endpoint",
        );
        denied_with(
            get(&mut s, &format!("http://allowed.test:{p}/meta-name")).await,
            "of meta.allowed.test is a cloud metadata endpoint",
        );
        denied_with(
            get(&mut s, &format!("http://allowed.test:{p}/back")).await,
            "backslash",
        );
        exhausted_with(
            get(&mut s, &format!("http://allowed.test:{p}/loop")).await,
            "fetch-redirects",
        );
        // Only the allowed hops ever reached the server: /a, /b, and six /loop.
        let paths: Vec<String> = server.seen().into_iter().map(|s| s.path).collect();
        assert_eq!(
            paths.iter().filter(|p| *p == "/loop").count(),
            6,
            "{paths:?}"
        );
        assert!(!paths.iter().any(|p| p == "/x"), "{paths:?}");
    }

    #[tokio::test]
    async fn a_redirect_to_a_disallowed_host_is_denied_even_on_the_same_address() {
        let server = Server::start(move |seen| {
            match seen
                .header("host")
                .unwrap_or_default()
                .starts_with("allowed")
            {
                true => redirect(302, &seen.header("x-to").unwrap_or_default()),
                false => ok("evil content"),
            }
        })
        .await;
        let p = server.port;
        let (mut s, _) = state(local(&[&format!("http://allowed.test:{p}/")]));
        let mut req = request("GET", &format!("http://allowed.test:{p}/"));
        req.headers = vec![fetch::Header {
            name: "x-to".into(),
            value: format!("http://evil.test:{p}/steal"),
        }];
        let r = fetch::Host::send(&mut s, req).await;
        denied_with(
            r,
            &format!(
                "redirect from http://allowed.test:{p}/ refused: http://evil.test:{p}/steal is not in this tool's fetch grant"
            ),
        );
        assert_eq!(server.seen().len(), 1);
    }

    #[tokio::test]
    async fn responses_are_capped_after_decoding() {
        let zeros = vec![0u8; 10 << 20];
        let bomb = gzip(&zeros);
        assert!(
            bomb.len() < 64 << 10,
            "a 10 MiB bomb compresses to {} bytes",
            bomb.len()
        );
        let small = gzip(b"small and fine");
        let mut z = ZlibEncoder::new(Vec::new(), Compression::default());
        z.write_all(b"deflated too").unwrap();
        let deflated = z.finish().unwrap();
        let server = Server::start(move |seen| match seen.path.as_str() {
            "/bomb" => encoded("gzip", bomb.clone()),
            "/big" => ok(vec![b'a'; (1 << 20) + 1]),
            "/exact" => ok(vec![b'a'; 1 << 20]),
            "/gzip" => encoded("gzip", small.clone()),
            "/deflate" => encoded("deflate", deflated.clone()),
            "/br" => encoded("br", vec![1, 2, 3]),
            "/double" => encoded("gzip, gzip", gzip(&gzip(b"x"))),
            _ => encoded("gzip", b"not gzip at all".to_vec()),
        })
        .await;
        let p = server.port;
        let g = FetchGrant {
            max_response_bytes: 1 << 20,
            ..local(&[&format!("http://allowed.test:{p}/")])
        };
        let (mut s, _) = state(g);
        let url = |path: &str| format!("http://allowed.test:{p}{path}");
        exhausted_with(get(&mut s, &url("/bomb")).await, "fetch-response-bytes");
        exhausted_with(get(&mut s, &url("/big")).await, "fetch-response-bytes");
        assert_eq!(
            get(&mut s, &url("/exact")).await.unwrap().body.len(),
            1 << 20
        );
        let r = get(&mut s, &url("/gzip")).await.unwrap();
        assert_eq!(r.body, b"small and fine");
        assert!(
            !r.headers
                .iter()
                .any(|h| h.name == "content-encoding" || h.name == "content-length"),
            "{:?}",
            r.headers
        );
        assert_eq!(
            get(&mut s, &url("/deflate")).await.unwrap().body,
            b"deflated too"
        );
        let e = guest_err(get(&mut s, &url("/br")).await);
        assert!(
            matches!(&e, WitError::Upstream(r) if r.contains("`br`")),
            "{e:?}"
        );
        let e = guest_err(get(&mut s, &url("/double")).await);
        assert!(
            matches!(&e, WitError::Upstream(r) if r.contains("`gzip, gzip`")),
            "{e:?}"
        );
        let e = guest_err(get(&mut s, &url("/corrupt")).await);
        assert!(
            matches!(&e, WitError::Upstream(r) if r.contains("could not be decoded")),
            "{e:?}"
        );
    }

    #[tokio::test]
    async fn private_networks_unlock_only_what_they_name() {
        let server = Server::start(|_| ok("ok")).await;
        let p = server.port;
        let url = format!("http://allowed.test:{p}/");
        for (nets, reachable) in [
            (vec!["127.0.0.1"], true),
            (vec!["127.0.0.0/8"], true),
            (vec!["127.0.0.2"], false),
            (vec!["10.0.0.0/8", "::1"], false),
        ] {
            let g = FetchGrant {
                private_networks: nets.iter().map(|n| n.to_string()).collect(),
                ..grant(&[&url])
            };
            let (mut s, _) = state(g);
            assert_eq!(get(&mut s, &url).await.is_ok(), reachable, "{nets:?}");
        }
        let _ = server.addr();
    }
}

#[tokio::test]
async fn post_becomes_get_on_303_and_keeps_its_body_on_307() {
    let server = Server::start(|seen| match seen.path.as_str() {
        "/see" => redirect(303, "/done"),
        "/temp" => redirect(307, "/done"),
        _ => ok(format!("{} {}", seen.method, seen.body.len())),
    })
    .await;
    let p = server.port;
    let g = FetchGrant {
        methods: vec!["GET".into(), "POST".into()],
        ..local(&[&format!("http://allowed.test:{p}/")])
    };
    let (mut s, _) = state(g);
    let post = |path: &str| fetch::Request {
        body: Some(b"12345".to_vec()),
        ..request("POST", &format!("http://allowed.test:{p}{path}"))
    };
    assert_eq!(
        fetch::Host::send(&mut s, post("/see")).await.unwrap().body,
        b"GET 0"
    );
    assert_eq!(
        fetch::Host::send(&mut s, post("/temp")).await.unwrap().body,
        b"POST 5"
    );
}

mod hostcall_time {
    use super::*;

    #[tokio::test]
    async fn a_silent_upstream_times_out_within_the_job_deadline() {
        let server = Server::silent().await;
        let p = server.port;
        let cap = capability();
        let (mut s, audit) = state_in(
            &cap,
            local(&[&format!("http://allowed.test:{p}/")]),
            Duration::from_millis(300),
        );
        let started = Instant::now();
        let e = guest_err(get(&mut s, &format!("http://allowed.test:{p}/")).await);
        assert!(matches!(e, WitError::Timeout), "{e:?}");
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(250) && took < Duration::from_secs(2),
            "{took:?}"
        );
        assert!(
            matches!(&audit.records()[0].decision, Decision::Deny(d) if d.starts_with("timeout"))
        );
        // The grant's own timeout applies when it is the sooner one.
        let g = FetchGrant {
            timeout: "150ms".into(),
            ..local(&[&format!("http://allowed.test:{p}/")])
        };
        let (mut s, _) = state_in(&cap, g, Duration::from_secs(30));
        let started = Instant::now();
        assert!(matches!(
            guest_err(get(&mut s, &format!("http://allowed.test:{p}/")).await),
            WitError::Timeout
        ));
        assert!(started.elapsed() < Duration::from_secs(2));
        // A job already past its deadline sends nothing.
        let (mut s, _) = state_in(
            &cap,
            local(&[&format!("http://allowed.test:{p}/")]),
            Duration::ZERO,
        );
        assert!(matches!(
            guest_err(get(&mut s, &format!("http://allowed.test:{p}/")).await),
            WitError::Timeout
        ));
    }
}

#[tokio::test]
async fn a_closed_port_is_an_upstream_error() {
    let port = {
        let l = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        l.local_addr().unwrap().port()
    };
    let (mut s, _) = state(local(&[&format!("http://allowed.test:{port}/")]));
    let e = guest_err(get(&mut s, &format!("http://allowed.test:{port}/")).await);
    assert!(
        matches!(&e, WitError::Upstream(r) if r.starts_with(&format!("connection to allowed.test:{port} failed"))),
        "{e:?}"
    );
}

/// A job whose grant uses credential `token`, which the host binds to
/// `http://*.allowed.test:{p}/api/`.
fn credential_state(p: u16) -> (FetchState, Arc<MemoryAudit>) {
    let cap = capability_with(vec![host_credential(
        "token",
        &[&format!("http://*.allowed.test:{p}/api/")],
    )]);
    let g = FetchGrant {
        credentials: vec![CredentialRef::named("token")],
        ..local(&[
            &format!("http://*.allowed.test:{p}/"),
            &format!("http://allowed.test:{p}/"),
        ])
    };
    state_in(&cap, g, Duration::from_secs(10))
}

mod secrets {
    use super::*;

    #[tokio::test]
    async fn credentials_go_only_where_bound_and_never_across_origins() {
        let server = Server::start(|seen| match seen.path.as_str() {
            "/api/hop" => redirect(302, &seen.header("x-to").unwrap_or_default()),
            _ => ok("ok"),
        })
        .await;
        let p = server.port;
        let (mut s, _) = credential_state(p);
        let send_to = |url: String, to: Option<String>| fetch::Request {
            headers: to
                .map(|v| {
                    vec![fetch::Header {
                        name: "x-to".into(),
                        value: v,
                    }]
                })
                .unwrap_or_default(),
            ..request("GET", &url)
        };
        let sends = [
            send_to(format!("http://a.allowed.test:{p}/api/x"), None),
            send_to(format!("http://a.allowed.test:{p}/public"), None),
            send_to(format!("http://allowed.test:{p}/api/x"), None),
            // Same origin after the redirect: the credential follows.
            send_to(
                format!("http://a.allowed.test:{p}/api/hop"),
                Some(format!("http://a.allowed.test:{p}/api/y")),
            ),
            // Another origin that the credential's own pattern covers: it does not.
            send_to(
                format!("http://a.allowed.test:{p}/api/hop"),
                Some(format!("http://b.allowed.test:{p}/api/z")),
            ),
        ];
        for req in sends {
            fetch::Host::send(&mut s, req).await.unwrap();
        }
        let bearer = format!("Bearer {SECRET}");
        let got: Vec<(String, String, Option<String>)> = server
            .seen()
            .into_iter()
            .map(|s| {
                (
                    s.header("host").unwrap_or_default(),
                    s.path.clone(),
                    s.header("authorization"),
                )
            })
            .collect();
        let host = |h: &str| format!("{h}:{p}");
        assert_eq!(
            got,
            vec![
                (
                    host("a.allowed.test"),
                    "/api/x".into(),
                    Some(bearer.clone())
                ),
                (host("a.allowed.test"), "/public".into(), None),
                (host("allowed.test"), "/api/x".into(), None),
                (
                    host("a.allowed.test"),
                    "/api/hop".into(),
                    Some(bearer.clone())
                ),
                (
                    host("a.allowed.test"),
                    "/api/y".into(),
                    Some(bearer.clone())
                ),
                (
                    host("a.allowed.test"),
                    "/api/hop".into(),
                    Some(bearer.clone())
                ),
                (host("b.allowed.test"), "/api/z".into(), None),
            ]
        );
    }

    /// Lower-case hex, the only spelling of arbitrary bytes a header name allows.
    fn hex_of(s: &str) -> String {
        s.bytes().map(|b| format!("{b:02x}")).collect()
    }

    #[tokio::test]
    async fn reflected_secrets_are_scrubbed_in_every_spelling() {
        let server = Server::start(|seen| {
        let auth = seen.header("authorization").unwrap_or_default();
        let pct = percent_encoding::utf8_percent_encode(&auth, percent_encoding::NON_ALPHANUMERIC).to_string();
        let body = format!(
            "raw={auth}\nsecret={SECRET}\nb64={}\nb64-embedded={}\npct={pct}\njson={{\"a\":\"{}\"}}\n",
            STANDARD.encode(&auth),
            STANDARD.encode(format!("Authorization: {auth}\r\n")),
            auth.replace('/', "\\/"),
        );
        ::http::Response::builder()
            .header("x-echo", auth.clone())
            .header("x-echo-b64", STANDARD.encode(&auth))
            .header("location-ish", format!("/cb?token={pct}"))
            // A header *name* can carry it too.
            .header(format!("x-{}", hex_of(SECRET)).as_str(), "1")
            .body(Full::new(Bytes::from(body)))
            .unwrap()
    })
    .await;
        let p = server.port;
        let (mut s, audit) = credential_state(p);
        let r = get(&mut s, &format!("http://a.allowed.test:{p}/api/echo"))
            .await
            .unwrap();
        let text = format!("{:?}\n{}", r.headers, String::from_utf8_lossy(&r.body));
        let auth = format!("Bearer {SECRET}");
        for leak in [
            SECRET.to_string(),
            STANDARD.encode(&auth),
            STANDARD.encode(SECRET),
            percent_encoding::utf8_percent_encode(SECRET, percent_encoding::NON_ALPHANUMERIC)
                .to_string(),
            "T0KEN".to_string(),
            hex_of(SECRET),
        ] {
            assert!(!text.contains(&leak), "{leak} leaked in {text}");
        }
        // base64 of a longer text: the characters that depend on the value alone are cut.
        let embedded = STANDARD.encode(format!("Authorization: {auth}\r\n"));
        assert!(!text.contains(&embedded[24..60]), "{text}");
        assert!(
            text.contains("raw=[REDACTED]") && text.contains("x-echo"),
            "{text}"
        );
        let length = r
            .headers
            .iter()
            .find(|h| h.name == "content-length")
            .map(|h| h.value.clone());
        assert_eq!(length, Some(r.body.len().to_string()));
        let detail = audit.records()[0].detail.clone().unwrap();
        assert!(
            detail.contains("; scrubbed ") && detail.ends_with(" reflections"),
            "{detail}"
        );
    }

    #[tokio::test]
    async fn a_secret_echoed_into_a_redirect_or_error_is_scrubbed_too() {
        let server = Server::start(|seen| match seen.path.as_str() {
            "/api/go" => redirect(302, &format!("/landing/{SECRET}")),
            "/api/away" => redirect(302, &format!("http://evil.test:1/{SECRET}")),
            _ => ok("x"),
        })
        .await;
        let p = server.port;
        let (mut s, audit) = credential_state(p);
        let r = get(&mut s, &format!("http://a.allowed.test:{p}/api/go"))
            .await
            .unwrap();
        assert_eq!(
            r.url,
            format!("http://a.allowed.test:{p}/landing/[REDACTED]")
        );
        let e = guest_err(get(&mut s, &format!("http://a.allowed.test:{p}/api/away")).await);
        assert!(
            matches!(&e, WitError::Denied(r) if r.contains("http://evil.test:1/[REDACTED] is not in")),
            "{e:?}"
        );
        let text = format!("{e:?} {:?}", audit.records());
        assert!(
            !text.contains("T0KEN") && text.contains("scrubbed 1 reflections"),
            "{text}"
        );
    }
}

#[tokio::test]
async fn tls_uses_sni_and_the_configured_roots() {
    let server = Server::start_tls(|seen| ok(format!("tls {}", seen.path))).await;
    let p = server.port;
    let ca = CertificateDer::from(include_bytes!("certs/ca.der").to_vec());
    let cap = capability().with_root_certificate(ca).unwrap();
    let g = local(&[
        &format!("https://allowed.test:{p}/"),
        &format!("https://other.test:{p}/"),
    ]);
    let (mut s, _) = state_in(&cap, g.clone(), Duration::from_secs(10));
    let r = get(&mut s, &format!("https://allowed.test:{p}/secure"))
        .await
        .unwrap();
    assert_eq!(r.body, b"tls /secure");
    // The certificate names allowed.test: the same address under another name fails.
    let e = guest_err(get(&mut s, &format!("https://other.test:{p}/")).await);
    assert!(
        matches!(&e, WitError::Upstream(r) if r.contains("TLS")),
        "{e:?}"
    );
    // Without the test CA the Mozilla roots do not trust it.
    let (mut s, _) = state(g);
    let e = guest_err(get(&mut s, &format!("https://allowed.test:{p}/")).await);
    assert!(
        matches!(&e, WitError::Upstream(r) if r.contains("TLS")),
        "{e:?}"
    );
    assert_eq!(server.seen().len(), 1);
}

#[tokio::test]
async fn a_state_cannot_be_built_before_roots_are_added() {
    let cap = capability();
    let _state = state_in(&cap, grant(&[]), Duration::from_secs(1));
    let ca = CertificateDer::from(include_bytes!("certs/ca.der").to_vec());
    assert!(matches!(
        cap.with_root_certificate(ca),
        Err(FetchError::RootCertificate(_))
    ));
}
