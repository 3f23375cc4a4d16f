//! Fetch credentials through real guests. The host config binds each
//! credential to its secret, header, format and URLs; a toolkit can only name
//! one and narrow its URLs. Each test starts its loopback origins, then
//! attacks: a toolkit pointing a credential at its own listener or widening
//! it, credential headers the host's HTTP client manages, redirects out of
//! the pinned URLs, and a hostile upstream reflecting the token in spellings
//! a guest's JSON or HTML parser decodes back.

use std::path::Path;
use std::sync::Arc;

use airlock::{Budget, Capabilities, ConfigError, HostConfig, LoadError, Toolkit};
use airlock_fetch::{CredentialRef, CredentialSpec, FetchCapability, FetchGrant, HostCredential};
use airlock_tests::canaries::{FETCH_SECRET as SECRET, assert_no_secret, reflections};
use airlock_tests::{TestHost, caps, host, load};
use secrecy::SecretSlice;
use serde_json::{Map, Value};

use crate::fetch::{
    Server, allow, body, fetch_records, fetcher, header, local, ok, probe, redirect, request,
    resolver, respond, response, send, with_header,
};

/// A host whose one credential, `token` (`Authorization: Bearer` +
/// [`SECRET`]), the host config binds to `urls`.
fn credential_host(urls: &[String]) -> TestHost {
    let spec = CredentialSpec {
        secret: "token".into(),
        header: "Authorization".into(),
        format: Some("Bearer {}".into()),
        urls: urls.to_vec(),
    };
    let cred = HostCredential::new(
        "token",
        &spec,
        SecretSlice::from(SECRET.as_bytes().to_vec()),
    )
    .expect("a valid host credential");
    host(Capabilities {
        fetch: FetchCapability::new(vec![cred], Arc::new(resolver())).expect("TLS defaults"),
        ..caps()
    })
}

/// `grant` using credential `token`, narrowed to `urls` (none: the host's).
fn using(grant: FetchGrant, urls: &[String]) -> FetchGrant {
    FetchGrant {
        credentials: vec![CredentialRef {
            name: "token".into(),
            urls: urls.to_vec(),
        }],
        ..grant
    }
}

/// Why loading `http-probe` under `grant` was refused (it must be, as a grant).
fn grant_refusal(host: &TestHost, grant: FetchGrant) -> String {
    match load(host, "http-probe", fetcher(grant), Budget::default()) {
        Err(LoadError::Grant { tool, reason }) => {
            assert_eq!(tool, "http-probe");
            reason
        }
        Err(e) => panic!("expected a grant refusal, got {e}"),
        Ok(_) => panic!("the grant should have been refused"),
    }
}

/// What an origin saw: (host, path, authorization) per request.
fn authorizations(server: &Server) -> Vec<(String, String, Option<String>)> {
    server
        .seen()
        .into_iter()
        .map(|s| {
            let host = s.header("host").unwrap_or_default();
            let auth = s.header("authorization");
            (host, s.path, auth)
        })
        .collect()
}

/// The exact refusal of a narrowing pattern outside the host's `hosts`.
fn widening(outside: &str, hosts: &str) -> String {
    format!(
        "fetch credential `token`: pattern `{outside}` is not within the host config's URLs \
         for it ({hosts}); a toolkit may only narrow a credential's URLs (same scheme, host \
         and port, a path inside)"
    )
}

/// Host-config text holding a signing key (secret `k`), a provider (secret
/// `o`) and a spare secret `t`, plus `fetch`; parsed in a folder holding the
/// secret files. The error is the message after the file name.
fn fetch_config(fetch: &str) -> Result<HostConfig, String> {
    let dir = tempfile::tempdir().expect("a temporary folder");
    for (name, bytes) in [
        ("k", "hmac-key-bytes"),
        ("t", "api-token"),
        ("o", "sk-provider"),
    ] {
        std::fs::write(dir.path().join(name), bytes).expect("a secret file");
    }
    let base = "[secrets.k]\nfile = \"k\"\n[secrets.t]\nfile = \"t\"\n\
        [secrets.o]\nfile = \"o\"\n[sign.keys.hook]\nkind = \"hmac-sha256\"\nsecret = \"k\"\n\
        [providers.p]\nkind = \"openai\"\napi_key = \"o\"\n";
    HostConfig::parse(&format!("{base}{fetch}"), &dir.path().join("airlock.toml")).map_err(|e| {
        match e {
            ConfigError::Invalid { message, .. } => message,
            other => other.to_string(),
        }
    })
}

/// `[fetch.credentials.github]` using `secret` in `header`.
fn github(secret: &str, header: &str) -> String {
    format!(
        "[fetch.credentials.github]\nsecret = \"{secret}\"\nheader = \"{header}\"\n\
         format = \"Bearer {{}}\"\nurls = [\"https://api.github.com/*\"]\n"
    )
}

mod secrets {
    use super::*;

    #[test]
    fn a_fetch_credential_never_uses_a_signing_or_provider_secret() {
        let cfg = fetch_config(&github("t", "Authorization")).expect("a valid config");
        assert_eq!(cfg.capabilities.fetch.credential_names(), vec!["github"]);
        let none = fetch_config("").expect("a valid config");
        assert!(none.capabilities.fetch.credential_names().is_empty());
        for leaked in ["k", "o"] {
            assert_eq!(
                fetch_config(&github(leaked, "Authorization")).unwrap_err(),
                format!(
                    "[fetch.credentials.github] uses secret `{leaked}`, which a signing key or a \
                     provider uses; give fetch a secret of its own"
                )
            );
        }
        // Another name for the signing key's file is the signing key.
        let alias = format!(
            "[secrets.alias]\nfile = \"k\"\n{}",
            github("alias", "Authorization")
        );
        assert!(
            fetch_config(&alias)
                .unwrap_err()
                .contains("uses secret `alias`, which a signing key or a provider uses"),
        );
        let e = fetch_config(&github("nope", "Authorization")).unwrap_err();
        assert!(
            e.contains("uses secret `nope`: there is no [secrets.nope]"),
            "{e}"
        );
        let e = fetch_config(
            "[fetch.credentials.github]\nsecret = \"t\"\nheader = \"X-Api-Key\"\nurls = [\"api.github.com\"]\n",
        )
        .unwrap_err();
        assert!(
            e.starts_with("[fetch.credentials.github]: fetch pattern `api.github.com`: no scheme"),
            "{e}"
        );
        let e =
            fetch_config("[fetch.credentials.github]\nsecret = \"t\"\nheader = \"X-Api-Key\"\n")
                .unwrap_err();
        assert!(e.contains("missing field `urls`"), "{e}");
    }

    #[test]
    fn the_old_fetch_secrets_release_list_is_refused_with_directions() {
        assert_eq!(
            fetch_config("[fetch]\nsecrets = [\"t\"]\n").unwrap_err(),
            "[fetch] secrets is no longer accepted: each fetch credential is now bound to its \
             header and destinations here. Replace it by one table per credential, as in \
             [fetch.credentials.t] with secret = \"t\", header = \"Authorization\", \
             format = \"Bearer {}\", urls = [\"https://api.example.com/*\"]; toolkits then \
             write credentials = [{ name = \"t\" }] in their fetch grant"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_toolkit_cannot_point_a_credential_at_its_own_listener() {
        let origin = Server::start(|_, _| ok("api")).await;
        let own = Server::start(|_, _| ok("mine")).await;
        let pinned = format!("http://allowed.test:{}/api/", origin.port);
        let host = credential_host(std::slice::from_ref(&pinned));
        for listener in [
            format!("http://127.0.0.1:{}/", own.port),
            format!("http://allowed.test:{}/api/", own.port),
            format!("http://evil.test:{}/api/", own.port),
        ] {
            let grant = using(local(&[&listener]), std::slice::from_ref(&listener));
            assert_eq!(grant_refusal(&host, grant), widening(&listener, &pinned));
        }
        // Naming the credential without narrowing, then sending to its own
        // listener: the listener gets no credential.
        let theirs = format!("http://127.0.0.1:{}/", own.port);
        let tool = probe(&host, using(local(&[&theirs, &pinned]), &[]));
        let r = response(send(&host, &tool, request("GET", &theirs)).await, "own");
        assert_eq!(body(&r), b"mine");
        let r = response(
            send(&host, &tool, request("GET", &format!("{pinned}me"))).await,
            "pinned",
        );
        assert_eq!(body(&r), b"api");
        let bearer = format!("Bearer {SECRET}");
        assert_eq!(
            authorizations(&own),
            vec![(format!("127.0.0.1:{}", own.port), "/".into(), None)]
        );
        assert_eq!(authorizations(&origin)[0].2, Some(bearer));
        for seen in own.seen() {
            assert_no_secret("what the toolkit's listener saw", &format!("{seen:?}"));
        }
        // The old form, a toolkit binding a secret itself, does not load.
        let kit = format!(
            "[tools.probe]\ncomponent = \"p.wasm\"\n[tools.probe.grants.fetch]\n\
             allow = [\"{theirs}\"]\nprivate_networks = [\"127.0.0.1\"]\n\
             credentials = [{{ url = \"{theirs}\", header = \"Authorization\", secret = \"token\" }}]\n"
        );
        let e = Toolkit::parse(&kit, Path::new("kit.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("kit.toml: line 6 in [tools.probe.grants.fetch]: ")
                && e.contains(&format!(
                    "a toolkit no longer binds a secret to a header and URL: the host config \
                     does. Move this credential to the host config as [fetch.credentials.token] \
                     with secret = \"token\", header = \"Authorization\", urls = [\"{theirs}\"], \
                     and replace this entry by {{ name = \"token\" }}"
                )),
            "{e}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_credential_goes_only_to_the_pinned_urls_on_every_hop() {
        let server = Server::start(|_, seen| {
            if seen.path.ends_with("/hop") {
                redirect(302, &seen.header("x-to").unwrap_or_default())
            } else {
                ok("ok")
            }
        })
        .await;
        let p = server.port;
        let host = credential_host(&[format!("http://*.allowed.test:{p}/api/")]);
        let grant = local(&[
            &format!("http://*.allowed.test:{p}/"),
            &format!("http://allowed.test:{p}/"),
        ]);
        let broad = probe(&host, using(grant.clone(), &[]));
        let narrow = probe(
            &host,
            using(grant, &[format!("http://a.allowed.test:{p}/api/v1/")]),
        );
        let a = |path: &str| format!("http://a.allowed.test:{p}{path}");
        let hop = |from: String, to: String| with_header(request("GET", &from), "x-to", &to);
        let jobs = [
            (&broad, request("GET", &a("/api/x"))),
            (&broad, request("GET", &a("/public"))),
            (
                &broad,
                request("GET", &format!("http://allowed.test:{p}/api/x")),
            ),
            // Same origin, inside the pins: the credential follows.
            (&broad, hop(a("/api/hop"), a("/api/y"))),
            // Same origin, outside the pins: it does not.
            (&broad, hop(a("/api/hop"), a("/public"))),
            // Another origin the pins cover: it does not either.
            (
                &broad,
                hop(a("/api/hop"), format!("http://b.allowed.test:{p}/api/z")),
            ),
            // The toolkit's narrowing holds on redirects too.
            (&narrow, hop(a("/api/v1/hop"), a("/api/v2/x"))),
            (&narrow, request("GET", &a("/api/x"))),
        ];
        for (tool, req) in jobs {
            response(send(&host, tool, req).await, "an allowed request");
        }
        let bearer = Some(format!("Bearer {SECRET}"));
        let (at_a, at_b) = (format!("a.allowed.test:{p}"), format!("b.allowed.test:{p}"));
        let seen = |h: &str, path: &str, auth: &Option<String>| {
            (h.to_string(), path.to_string(), auth.clone())
        };
        assert_eq!(
            authorizations(&server),
            vec![
                seen(&at_a, "/api/x", &bearer),
                seen(&at_a, "/public", &None),
                seen(&format!("allowed.test:{p}"), "/api/x", &None),
                seen(&at_a, "/api/hop", &bearer),
                seen(&at_a, "/api/y", &bearer),
                seen(&at_a, "/api/hop", &bearer),
                seen(&at_a, "/public", &None),
                seen(&at_a, "/api/hop", &bearer),
                seen(&at_b, "/api/z", &None),
                seen(&at_a, "/api/v1/hop", &bearer),
                seen(&at_a, "/api/v2/x", &None),
                seen(&at_a, "/api/x", &None),
            ]
        );
        // The audit names the credential on exactly the sends that carried it.
        let named: Vec<bool> = fetch_records(&host)
            .iter()
            .map(|(_, detail)| detail.contains(" credentials=token"))
            .collect();
        assert_eq!(named, [true, false, false, true, true, true, true, false]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_hostile_upstream_reflecting_the_token_in_any_spelling_never_reaches_the_guest() {
        let server = Server::start(|_, seen| {
            let auth = seen.header("authorization").unwrap_or_default();
            let token = auth.strip_prefix("Bearer ").unwrap_or_default().to_string();
            let mut fields: Vec<String> = reflections(&token)
                .into_iter()
                .map(|(label, spelled)| format!("\"{label}\":\"{spelled}\""))
                .collect();
            // The whole header value, every character escaped.
            let whole: String = auth.bytes().map(|b| format!("\\u{b:04x}")).collect();
            fields.push(format!("\"header\":\"{whole}\""));
            let json = format!("{{{}}}", fields.join(","));
            let first = reflections(&token).remove(0).1;
            respond(
                200,
                &[
                    ("x-echo", first.as_str()),
                    ("content-type", "application/json"),
                ],
                json,
            )
        })
        .await;
        let p = server.port;
        let host = credential_host(&[format!("http://allowed.test:{p}/")]);
        let tool = probe(
            &host,
            using(local(&[&format!("http://allowed.test:{p}/")]), &[]),
        );
        let out = send(
            &host,
            &tool,
            request("GET", &format!("http://allowed.test:{p}/me")),
        )
        .await
        .expect("an allowed request");
        assert_eq!(
            server.seen()[0].header("authorization"),
            Some(format!("Bearer {SECRET}")),
            "the origin got the credential"
        );
        // What the guest got, parsed as the guest's JSON parser would: every
        // value was a spelling of the token, and every one is gone.
        let r = &out.value;
        let got: Map<String, Value> =
            serde_json::from_slice(&body(r)).expect("the scrubbed body is still JSON");
        let mut labels: Vec<&str> = reflections(SECRET).iter().map(|(l, _)| *l).collect();
        labels.push("header");
        assert_eq!(got.keys().map(String::as_str).collect::<Vec<_>>(), labels);
        for (label, value) in &got {
            assert_eq!(value, "[REDACTED]", "{label}");
        }
        assert_eq!(header(r, "x-echo").as_deref(), Some("[REDACTED]"));
        assert_no_secret("what the guest got", &format!("{got:?}\n{out:?}"));
        let records = fetch_records(&host);
        assert!(
            records[0]
                .1
                .ends_with(&format!("; scrubbed {} reflections", labels.len() + 1)),
            "{records:?}"
        );
    }
}

mod fetch_scope {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_toolkit_can_narrow_a_credential_but_never_widen_it() {
        let origin = Server::start(|_, _| ok("api")).await;
        let p = origin.port;
        let pinned = format!("http://a.allowed.test:{p}/api/v1/");
        let host = credential_host(std::slice::from_ref(&pinned));
        let grant = || local(&[&format!("http://*.allowed.test:{p}/")]);
        for outside in [
            format!("http://b.allowed.test:{p}/api/v1/"),
            format!("http://*.allowed.test:{p}/api/v1/"),
            format!("http://a.allowed.test:{p}/api/"),
            format!("http://a.allowed.test:{p}/api/v1*"),
            format!("http://a.allowed.test:{p}/"),
            format!("http://a.allowed.test:{}/api/v1/", p.wrapping_add(1).max(1)),
            format!("https://a.allowed.test:{p}/api/v1/"),
        ] {
            let why = grant_refusal(&host, using(grant(), std::slice::from_ref(&outside)));
            assert_eq!(why, widening(&outside, &pinned));
        }
        let inside = format!("http://a.allowed.test:{p}/api/v1/users/");
        let tool = probe(&host, using(grant(), std::slice::from_ref(&inside)));
        response(
            send(&host, &tool, request("GET", &format!("{inside}7"))).await,
            "inside",
        );
        assert_eq!(
            origin.seen()[0].header("authorization"),
            Some(format!("Bearer {SECRET}"))
        );
        // A toolkit naming a credential the host does not have is refused too.
        let why = grant_refusal(
            &host,
            FetchGrant {
                credentials: vec![CredentialRef::named("gh-token")],
                ..allow(&["https://api.example.test/"])
            },
        );
        assert_eq!(
            why,
            "fetch credential `gh-token`: the host config has no [fetch.credentials.gh-token] \
             (it defines token); the operator must define it, or remove the reference"
        );
    }

    #[test]
    fn credential_headers_the_host_manages_are_refused_in_either_file() {
        assert!(fetch_config(&github("t", "X-Api-Key")).is_ok());
        for header in [
            "Cookie",
            "Content-Length",
            "Proxy-Authorization",
            "Host",
            "Transfer-Encoding",
            "Connection",
        ] {
            assert_eq!(
                fetch_config(&github("t", header)).unwrap_err(),
                format!(
                    "[fetch.credentials.github]: header `{}` is managed by the host's HTTP \
                     client (routing, framing, cookies or proxies) and cannot carry a credential; \
                     use `Authorization` or a custom header such as `X-Api-Key`",
                    header.to_ascii_lowercase()
                )
            );
            // A toolkit cannot name a header at all any more.
            let kit = format!(
                "[tools.p]\ncomponent = \"p.wasm\"\n[tools.p.grants.fetch]\nallow = []\n\
                 credentials = [{{ url = \"https://api.example.test/\", header = \"{header}\", secret = \"t\" }}]\n"
            );
            let e = Toolkit::parse(&kit, Path::new("kit.toml"))
                .unwrap_err()
                .to_string();
            assert!(
                e.contains(&format!(
                    "a toolkit no longer binds a secret to a header and URL: the host config \
                     does. Move this credential to the host config as [fetch.credentials.t] with \
                     secret = \"t\", header = \"{header}\""
                )),
                "{e}"
            );
        }
    }
}
