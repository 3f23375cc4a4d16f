//! Unit tests of grant loading: pattern parsing and matching, field checks,
//! `check_grant` against the host's secrets, `describe`, and the toolkit form.

use super::*;
use crate::canon::{CanonHost, Target};
use crate::grant::{HostPattern, PathPattern, UrlPattern};

fn pattern(raw: &str) -> UrlPattern {
    UrlPattern::parse(raw).unwrap_or_else(|e| panic!("{raw}: {e}"))
}

fn refused(raw: &str, advice: &str) {
    match UrlPattern::parse(raw) {
        Ok(p) => panic!("{raw} parsed as {p:?}"),
        Err(e) => assert!(
            e.to_string().contains(advice),
            "{raw}: {e} lacks {advice:?}"
        ),
    }
}

fn covers(p: &str, url: &str) -> bool {
    pattern(p).matches(&Target::parse(None, url).expect(url))
}

#[test]
fn patterns_parse_to_canonical_parts() {
    let p = pattern("HTTPS://API.Example.COM./v1/");
    assert_eq!(p.scheme, "https");
    assert_eq!(
        p.host,
        HostPattern::Exact(CanonHost::Domain("api.example.com".into()))
    );
    assert_eq!(p.port, 443);
    assert_eq!(p.path, PathPattern::Segments("/v1/".into()));
    let p = pattern("http://*.example.com:8080/api*");
    assert_eq!(p.host, HostPattern::Subdomains("example.com".into()));
    assert_eq!((p.port, p.path), (8080, PathPattern::Prefix("/api".into())));
    assert_eq!(
        pattern("https://example.com").path,
        PathPattern::Segments("/".into())
    );
    assert_eq!(
        pattern("http://[::ffff:127.0.0.1]/").host,
        HostPattern::Exact(CanonHost::Ip(ip("127.0.0.1")))
    );
    assert_eq!(
        pattern("http://2130706433/").host,
        HostPattern::Exact(CanonHost::Ip(ip("127.0.0.1")))
    );
    assert_eq!(
        pattern("https://bücher.example/").host,
        pattern("https://xn--bcher-kva.example/").host
    );
}

#[test]
fn bad_patterns_say_what_to_write() {
    refused("example.com/api/", "write `https://example.com/api/`");
    refused("ftp://example.com/", "only http:// and https://");
    refused("https://user:pw@example.com/", "credentials");
    refused("https://*.127.0.0.1/", "list the address itself");
    refused("https://*.[::1]/", "list the address itself");
    refused("https://api.*.example.com/", "*.example.com");
    refused("https://a*.example.com/", "*.example.com");
    refused("https://*.*.example.com/", "*.example.com");
    refused("https://*/", "*.example.com");
    refused("https://*.com/", "top-level domain");
    refused("https://example.com/a*/b", "may only end the path");
    refused("https://example.com:0/", "1 to 65535");
    refused("https://example.com:99999/", "1 to 65535");
    refused("https://example.com:*/", "1 to 65535");
    refused("https://example.com/?q=1", "remove the query");
    refused("https://example.com/a/../b", "`..`");
    refused("https://exa mple.com/", "whitespace");
    refused("https://example.com\\@evil.com/", "backslashes");
    refused("https:///path", "host is missing");
}

mod fetch_scope {
    use super::*;

    #[test]
    fn wildcards_cover_subdomains_only() {
        let p = "https://*.example.com/";
        assert!(covers(p, "https://a.example.com/"));
        assert!(covers(p, "https://a.b.example.com/x"));
        assert!(covers(p, "https://A.EXAMPLE.COM./"));
        assert!(!covers(p, "https://example.com/"));
        assert!(!covers(p, "https://evil-example.com/"));
        assert!(!covers(p, "https://example.com.evil.com/"));
        assert!(!covers(p, "https://aexample.com/"));
        assert!(!covers(p, "http://a.example.com/"));
        assert!(!covers(p, "https://a.example.com:8443/"));
    }

    #[test]
    fn paths_match_by_segment_unless_starred() {
        assert!(covers("https://e.com/api/", "https://e.com/api/x"));
        assert!(!covers("https://e.com/api/", "https://e.com/apix"));
        assert!(!covers("https://e.com/api/", "https://e.com/api"));
        assert!(covers("https://e.com/api", "https://e.com/api"));
        assert!(covers("https://e.com/api", "https://e.com/api/x?y=1"));
        assert!(!covers("https://e.com/api", "https://e.com/apix"));
        assert!(covers("https://e.com/api*", "https://e.com/apix"));
        assert!(covers("https://e.com/api/*", "https://e.com/api/x/y"));
        assert!(!covers("https://e.com/api/", "https://e.com/API/x"));
        // Dot segments are resolved before matching: no escape from the prefix.
        assert!(!covers("https://e.com/api/", "https://e.com/api/../admin"));
        assert!(!covers(
            "https://e.com/api/",
            "https://e.com/api/%2e%2e/admin"
        ));
        assert!(covers("https://e.com/\u{fc}/", "https://e.com/%C3%BC/c"));
        assert!(covers("https://e.com/%C3%BC/", "https://e.com/\u{fc}/c"));
    }

    #[test]
    fn ports_default_per_scheme() {
        assert!(covers("https://e.com/", "https://e.com:443/"));
        assert!(covers("http://e.com/", "http://e.com:80/"));
        assert!(!covers("https://e.com/", "https://e.com:444/"));
        assert!(!covers("https://e.com/", "http://e.com:443/"));
        assert!(covers("http://e.com:8080/", "http://e.com:8080/"));
        assert!(!covers("http://e.com:8080/", "http://e.com/"));
    }
}

#[test]
fn fields_are_checked_with_advice() {
    let cap = capability();
    let check = |g: FetchGrant| cap.check_grant(&g);
    assert!(check(grant(&["https://api.example.com/v1/"])).is_ok());
    let e = check(FetchGrant {
        timeout: "soon".into(),
        ..grant(&[])
    })
    .unwrap_err();
    assert!(e.contains("10s"), "{e}");
    let e = check(FetchGrant {
        methods: vec!["CONNECT".into()],
        ..grant(&[])
    })
    .unwrap_err();
    assert!(e.contains("cannot be granted"), "{e}");
    let e = check(FetchGrant {
        methods: vec!["G T".into()],
        ..grant(&[])
    })
    .unwrap_err();
    assert!(e.contains("not an HTTP method"), "{e}");
    for (net, advice) in [
        ("10.0.0.1/8", "write `10.0.0.0/8`"),
        ("0.0.0.0/0", "every address"),
        ("localhost", "not an IP address"),
        ("::ffff:127.0.0.1", "IPv4 form"),
        ("10.0.0.0/33", "prefix length"),
    ] {
        let e = check(FetchGrant {
            private_networks: vec![net.into()],
            ..grant(&[])
        })
        .unwrap_err();
        assert!(e.contains(advice), "{net}: {e}");
    }
    let e = check(grant(&["https://*.127.0.0.1/"])).unwrap_err();
    assert!(e.contains("https://127.0.0.1/"), "{e}");
}

fn cred(url: &str, header: &str, secret: &str, format: Option<&str>) -> Credential {
    Credential {
        url: url.into(),
        header: header.into(),
        secret: secret.into(),
        format: format.map(Into::into),
    }
}

mod secrets {
    use super::*;

    #[test]
    fn credentials_must_name_configured_secrets_and_sane_headers() {
        let cap = capability();
        let with = |c: Credential| FetchGrant {
            credentials: vec![c],
            ..grant(&["https://api.example.com/"])
        };
        assert!(
            cap.check_grant(&with(cred(
                "https://api.example.com/",
                "authorization",
                "token",
                Some("Bearer {}")
            )))
            .is_ok()
        );
        let e = cap
            .check_grant(&with(cred(
                "https://api.example.com/",
                "authorization",
                "nope",
                None,
            )))
            .unwrap_err();
        assert!(e.contains("[secrets.nope]"), "{e}");
        let e = cap
            .check_grant(&with(cred(
                "https://api.example.com/",
                "connection",
                "token",
                None,
            )))
            .unwrap_err();
        assert!(e.contains("managed by the host"), "{e}");
        let e = cap
            .check_grant(&with(cred(
                "https://api.example.com/",
                "x-key",
                "token",
                Some("Bearer"),
            )))
            .unwrap_err();
        assert!(e.contains("exactly once"), "{e}");
        let e = cap
            .check_grant(&with(cred("api.example.com", "x-key", "token", None)))
            .unwrap_err();
        assert!(e.contains("no scheme"), "{e}");
        // A secret with a trailing newline cannot become a header value.
        let secrets = HashMap::from([("nl".to_string(), SecretSlice::from(b"abc\n".to_vec()))]);
        let cap = FetchCapability::new(secrets, Arc::new(resolver())).unwrap();
        let e = cap
            .check_grant(&with(cred("https://api.example.com/", "x-key", "nl", None)))
            .unwrap_err();
        assert!(e.contains("line break") && !e.contains("abc"), "{e}");
    }

    #[test]
    fn debug_never_shows_secret_values() {
        let cap = capability();
        let (s, _) = state(grant(&[]));
        let text = format!("{cap:?} {s:?}");
        assert!(!text.contains("s3cr3t"), "{text}");
        assert!(
            text.contains("token") && text.contains("REDACTED"),
            "{text}"
        );
    }
}

#[test]
fn describe_speaks_plainly_to_a_reviewer() {
    let g = FetchGrant {
        credentials: vec![cred(
            "https://api.example.com/v1/",
            "authorization",
            "gh-token",
            Some("Bearer {}"),
        )],
        private_networks: vec!["10.1.0.0/16".into()],
        ..grant(&["https://api.example.com/v1/", "https://*.example.org/*"])
    };
    let lines = FetchCapability::describe(&g);
    let text = lines.join("\n");
    assert!(text.contains("may fetch https://api.example.com/v1/ (https: host api.example.com exactly, port 443, paths under /v1/)"), "{text}");
    assert!(
        text.contains("any subdomain of example.org (not example.org itself)"),
        "{text}"
    );
    assert!(text.contains("methods: GET, HEAD"), "{text}");
    assert!(text.contains("at most 32 requests per job"), "{text}");
    assert!(
        text.contains("up to 1 MiB; responses up to 4 MiB"),
        "{text}"
    );
    assert!(
        text.contains("MAY reach these non-public networks: 10.1.0.0/16"),
        "{text}"
    );
    assert!(text.contains(
        "requests to https://api.example.com/v1/ get header authorization from secret gh-token (the tool never sees it)"
    ), "{text}");
    let lines = FetchCapability::describe(&grant(&["nope"]));
    assert!(lines[0].starts_with("INVALID"), "{lines:?}");
}

#[test]
fn toolkit_form_has_defaults_and_refuses_unknown_fields() {
    let g: FetchGrant = toml::from_str(
        r#"
        allow = ["https://api.example.com/"]
        timeout = "3s"
        [[credentials]]
        url = "https://api.example.com/"
        header = "authorization"
        secret = "token"
        format = "Bearer {}"
        "#,
    )
    .unwrap();
    assert_eq!(g.methods, ["GET", "HEAD"]);
    assert_eq!((g.max_requests, g.max_redirects), (32, 5));
    assert_eq!(
        (g.max_request_bytes, g.max_response_bytes),
        (1 << 20, 4 << 20)
    );
    assert_eq!(g.compile().unwrap().timeout, Duration::from_secs(3));
    assert!(capability().check_grant(&g).is_ok());
    let e = toml::from_str::<FetchGrant>("allow = []\nproxy = \"x\"").unwrap_err();
    assert!(e.to_string().contains("unknown field"), "{e}");
}
