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

fn spec(header: &str, format: Option<&str>, urls: &[&str]) -> CredentialSpec {
    CredentialSpec {
        secret: "gh-token".into(),
        header: header.into(),
        format: format.map(Into::into),
        urls: urls.iter().map(|u| u.to_string()).collect(),
    }
}

fn bind(spec: &CredentialSpec) -> Result<HostCredential, String> {
    HostCredential::new("github", spec, SecretSlice::from(b"tok".to_vec()))
        .map_err(|e| e.to_string())
}

/// A grant using credential `github` narrowed to `urls`.
fn narrowed(urls: &[&str]) -> FetchGrant {
    FetchGrant {
        credentials: vec![CredentialRef {
            name: "github".into(),
            urls: urls.iter().map(|u| u.to_string()).collect(),
        }],
        ..grant(&["https://api.github.com/"])
    }
}

mod secrets {
    use super::*;

    #[test]
    fn a_grant_refers_to_host_credentials_by_name_only() {
        let cap = capability();
        let with = |name: &str| FetchGrant {
            credentials: vec![CredentialRef::named(name)],
            ..grant(&["https://api.example.com/"])
        };
        assert_eq!(cap.check_grant(&with("token")), Ok(()));
        assert_eq!(
            cap.check_grant(&with("gh-token")).unwrap_err(),
            "fetch credential `gh-token`: the host config has no [fetch.credentials.gh-token] \
             (it defines token); the operator must define it, or remove the reference"
        );
        assert_eq!(
            capability_with(vec![]).credential_names(),
            Vec::<&str>::new()
        );
        let e = capability_with(vec![])
            .check_grant(&with("token"))
            .unwrap_err();
        assert!(e.contains("(it defines none)"), "{e}");
    }

    #[test]
    fn a_toolkit_may_narrow_a_credential_but_never_widen_it() {
        let cap = capability_with(vec![
            bind(&spec(
                "Authorization",
                Some("Bearer {}"),
                &[
                    "https://api.github.com/repos/*",
                    "https://*.githubusercontent.com/",
                ],
            ))
            .unwrap(),
        ]);
        for inside in [
            "https://api.github.com/repos/*",
            "https://api.github.com/repos/me/*",
            "https://api.github.com/repos/me/x",
            "https://API.github.com:443/repos/me/",
            "https://raw.githubusercontent.com/me/",
            "https://*.raw.githubusercontent.com/",
            "https://*.githubusercontent.com/x/",
        ] {
            assert_eq!(cap.check_grant(&narrowed(&[inside])), Ok(()), "{inside}");
        }
        let hosts = "(https://api.github.com/repos/*, https://*.githubusercontent.com/)";
        for outside in [
            // The toolkit's own listener, another host, a parent.
            "http://127.0.0.1:8080/",
            "https://evil.example/repos/",
            "https://github.com/repos/",
            "https://*.github.com/repos/",
            "https://githubusercontent.com/",
            // Broader or sideways paths.
            "https://api.github.com/*",
            "https://api.github.com/repo*",
            "https://api.github.com/user",
            // Another port or scheme.
            "https://api.github.com:8443/repos/",
            "http://api.github.com/repos/",
        ] {
            assert_eq!(
                cap.check_grant(&narrowed(&[outside])).unwrap_err(),
                format!(
                    "fetch credential `github`: pattern `{outside}` is not within the host \
                     config's URLs for it {hosts}; a toolkit may only narrow a credential's URLs \
                     (same scheme, host and port, a path inside)"
                ),
            );
        }
        // One bad pattern among good ones refuses the grant.
        let e = cap
            .check_grant(&narrowed(&[
                "https://api.github.com/repos/me/",
                "https://evil.example/",
            ]))
            .unwrap_err();
        assert!(e.contains("pattern `https://evil.example/`"), "{e}");
    }

    #[test]
    fn credential_headers_go_through_the_guest_header_refusal_list() {
        let urls = ["https://api.github.com/"];
        for ok in [
            "Authorization",
            "authorization",
            "X-Api-Key",
            "Private-Token",
        ] {
            assert!(bind(&spec(ok, None, &urls)).is_ok(), "{ok}");
        }
        for refused in [
            "Cookie",
            "Content-Length",
            "Proxy-Authorization",
            "Host",
            "Transfer-Encoding",
            "Connection",
            "Keep-Alive",
            "TE",
            "Trailer",
            "Upgrade",
            "Accept-Encoding",
            "Proxy-Connection",
        ] {
            let lower = refused.to_ascii_lowercase();
            assert_eq!(
                bind(&spec(refused, None, &urls)).unwrap_err(),
                format!(
                    "fetch credential `github`: header `{lower}` is managed by the host's HTTP client \
                     (routing, framing, cookies or proxies) and cannot carry a credential; use \
                     `Authorization` or a custom header such as `X-Api-Key`"
                ),
            );
            // The same list refuses the header from a tool.
            assert!(crate::credential::managed(&lower).is_some(), "{lower}");
        }
        assert_eq!(
            crate::credential::managed("authorization"),
            Some(crate::credential::Managed::Credential)
        );
        let e = bind(&spec("x-key", Some("Bearer"), &urls)).unwrap_err();
        assert!(e.contains("exactly once"), "{e}");
        let e = bind(&spec("x key", None, &urls)).unwrap_err();
        assert!(e.contains("not a valid header name"), "{e}");
        let e = bind(&spec("x-key", None, &[])).unwrap_err();
        assert!(e.contains("`urls` is empty"), "{e}");
        let e = bind(&spec("x-key", None, &["api.github.com"])).unwrap_err();
        assert!(e.contains("no scheme"), "{e}");
        // A secret with a trailing newline cannot become a header value.
        let e = HostCredential::new(
            "nl",
            &spec("x-key", None, &urls),
            SecretSlice::from(b"abc\n".to_vec()),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("line break") && !e.contains("abc"), "{e}");
        // Nor one outside ASCII: its escaped spellings (`\u00e9`, `&#233;`)
        // decode to other bytes than the ones sent, so no needle would match.
        let e = HostCredential::new(
            "latin1",
            &spec("x-key", None, &urls),
            SecretSlice::from(b"t\xe9k".to_vec()),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("outside ASCII"), "{e}");
    }

    #[test]
    fn the_old_toolkit_credential_form_is_refused_with_directions() {
        let e = toml::from_str::<FetchGrant>(
            r#"
            allow = ["https://api.github.com/"]
            credentials = [{ url = "https://api.github.com/*", header = "Authorization", secret = "gh-token", format = "Bearer {}" }]
            "#,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains(
                "a toolkit no longer binds a secret to a header and URL: the host config does. \
                 Move this credential to the host config as [fetch.credentials.gh-token] with \
                 secret = \"gh-token\", header = \"Authorization\", format = \"Bearer {}\", \
                 urls = [\"https://api.github.com/*\"], and replace this entry by \
                 { name = \"gh-token\" } (optionally with urls = [...] inside the host's)"
            ),
            "{e}"
        );
        let e = toml::from_str::<FetchGrant>("allow = []\ncredentials = [{ urls = [] }]")
            .unwrap_err()
            .to_string();
        assert!(e.contains("a credential entry needs `name`"), "{e}");
        let e = toml::from_str::<FetchGrant>("allow = []\ncredentials = [{ name = \"a\", x = 1 }]")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `x`"), "{e}");
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
        credentials: vec![
            CredentialRef {
                name: "github".into(),
                urls: vec!["https://api.example.com/v1/".into()],
            },
            CredentialRef::named("other"),
        ],
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
        "requests to https://api.example.com/v1/ (within the host config's URLs for it) get credential github (header and secret set by the host config; the tool never sees it)"
    ), "{text}");
    assert!(
        text.contains("requests to the URLs the host config binds it to get credential other"),
        "{text}"
    );
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
        name = "token"
        urls = ["https://api.example.com/v1/"]
        "#,
    )
    .unwrap();
    assert_eq!(g.methods, ["GET", "HEAD"]);
    assert_eq!((g.max_requests, g.max_redirects), (32, 5));
    assert_eq!(
        (g.max_request_bytes, g.max_response_bytes),
        (1 << 20, 4 << 20)
    );
    let policy = g.compile(&capability().shared.credentials).unwrap();
    assert_eq!(policy.timeout, Duration::from_secs(3));
    assert_eq!(
        policy.credentials[0].narrow[0].raw,
        "https://api.example.com/v1/"
    );
    assert!(capability().check_grant(&g).is_ok());
    let e = toml::from_str::<FetchGrant>("allow = []\nproxy = \"x\"").unwrap_err();
    assert!(e.to_string().contains("unknown field"), "{e}");
}
