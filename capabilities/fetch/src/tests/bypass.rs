//! One test per way around the grant that does not need a live upstream:
//! alternative spellings of loopback and unspecified addresses, names that
//! resolve to private or metadata addresses, userinfo and backslash tricks,
//! homographs, wrong schemes and ports, encoded traversal, forbidden headers.

use super::*;
use crate::canon::{CanonHost, Class, Target};

/// Every spelling of 127.0.0.1 that `url` accepts, IPv4-in-IPv6 included.
const LOOPBACK_ALIASES: [&str; 8] = [
    "http://2130706433/",
    "http://0x7f000001/",
    "http://0177.0.0.1/",
    "http://127.1/",
    "http://127.0.0.1./",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/",
    "http://[::7f00:1]/",
];

mod fetch_scope {
    use super::*;

    #[test]
    fn numeric_spellings_canonicalize_to_one_address() {
        for url in LOOPBACK_ALIASES {
            let t = Target::parse(None, url).expect(url);
            assert_eq!(t.host, CanonHost::Ip(ip("127.0.0.1")), "{url}");
            assert_eq!(t.url.as_str(), "http://127.0.0.1/", "{url}");
            assert_eq!(t.host_header(), "127.0.0.1", "{url}");
        }
        let t = Target::parse(None, "http://[::]:8080/").unwrap();
        assert_eq!(
            (t.host.clone(), t.host_header()),
            (CanonHost::Ip(ip("::")), "[::]:8080".to_string())
        );
    }

    #[tokio::test]
    async fn every_loopback_alias_is_denied_as_loopback() {
        // The grant names the address, so only the address check stands in the way.
        let (mut s, audit) = state(grant(&["http://127.0.0.1/", "http://localhost/"]));
        for url in LOOPBACK_ALIASES.into_iter().chain([
            "http://LOCALHOST/",
            "http://localhost./",
            "http://LocalHost./x",
        ]) {
            let r = get(&mut s, url).await;
            denied_with(r, "is loopback");
        }
        let r = get(&mut s, "http://127.0.0.1/").await;
        denied_with(
            r,
            "address 127.0.0.1 of 127.0.0.1 is loopback; a tool reaches it only if the fetch grant lists it in private_networks",
        );
        let records = audit.records();
        assert_eq!(records.len(), LOOPBACK_ALIASES.len() + 4);
        assert!(
            records.iter().all(
                |r| matches!(&r.decision, Decision::Deny(d) if d.starts_with("denied: address"))
            )
        );
    }

    #[tokio::test]
    async fn unspecified_addresses_are_denied() {
        let (mut s, _) = state(grant(&[
            "http://0.0.0.0/",
            "http://[::]/",
            "http://0.0.0.1/",
        ]));
        denied_with(
            get(&mut s, "http://0.0.0.0/").await,
            "address 0.0.0.0 of 0.0.0.0 is unspecified",
        );
        denied_with(get(&mut s, "http://0/").await, "is unspecified");
        denied_with(
            get(&mut s, "http://[::]/").await,
            "address :: of [::] is unspecified",
        );
        denied_with(get(&mut s, "http://[0:0::0]/").await, "is unspecified");
        denied_with(get(&mut s, "http://0.0.0.1/").await, "this network");
    }

    #[tokio::test]
    async fn allowed_names_resolving_to_private_addresses_are_denied() {
        let (mut s, _) = state(grant(&[
            "http://allowed.test/",
            "http://ten.test/",
            "http://meta.test/",
            "http://mixed.test/",
            "http://mapped.test/",
        ]));
        denied_with(
            get(&mut s, "http://allowed.test/").await,
            "address 127.0.0.1 of allowed.test is loopback",
        );
        denied_with(
            get(&mut s, "http://ten.test/").await,
            "address 10.0.0.1 of ten.test is private",
        );
        denied_with(
            get(&mut s, "http://meta.test/").await,
            "169.254.169.254 of meta.test is a cloud metadata endpoint",
        );
        // One bad address among good ones is enough: the host never picks.
        denied_with(
            get(&mut s, "http://mixed.test/").await,
            "192.168.1.1 of mixed.test is private",
        );
        // A DNS answer in IPv4-mapped form is unwrapped before the check.
        denied_with(
            get(&mut s, "http://mapped.test/").await,
            "127.0.0.1 of mapped.test is loopback",
        );
    }

    #[tokio::test]
    async fn metadata_needs_an_entry_naming_it_exactly() {
        let g = FetchGrant {
            private_networks: vec!["169.254.0.0/16".into(), "10.0.0.0/8".into()],
            ..grant(&[
                "http://meta.test/",
                "http://169.254.169.254/",
                "http://100.100.100.200/",
            ])
        };
        let (mut s, _) = state(g);
        denied_with(
            get(&mut s, "http://169.254.169.254/latest/meta-data/").await,
            "naming exactly this address",
        );
        denied_with(get(&mut s, "http://meta.test/").await, "cloud metadata");
        denied_with(
            get(&mut s, "http://100.100.100.200/").await,
            "cloud metadata",
        );
    }

    #[test]
    fn address_classes_cover_the_special_ranges() {
        let cases = [
            ("127.5.6.7", Some(Class::Loopback)),
            ("::1", Some(Class::Loopback)),
            ("10.1.2.3", Some(Class::Private)),
            ("172.16.0.1", Some(Class::Private)),
            ("172.31.255.255", Some(Class::Private)),
            ("172.32.0.1", None),
            ("192.168.0.1", Some(Class::Private)),
            ("169.254.1.1", Some(Class::LinkLocal)),
            ("fe80::1", Some(Class::LinkLocal)),
            ("100.64.0.1", Some(Class::SharedCgnat)),
            ("100.128.0.1", None),
            ("fc00::1", Some(Class::UniqueLocal)),
            ("fd12::1", Some(Class::UniqueLocal)),
            ("0.0.0.0", Some(Class::Unspecified)),
            ("::", Some(Class::Unspecified)),
            ("255.255.255.255", Some(Class::Broadcast)),
            ("224.0.0.1", Some(Class::Multicast)),
            ("ff02::1", Some(Class::Multicast)),
            ("192.0.2.1", Some(Class::Documentation)),
            ("198.51.100.1", Some(Class::Documentation)),
            ("203.0.113.1", Some(Class::Documentation)),
            ("2001:db8::1", Some(Class::Documentation)),
            ("169.254.169.254", Some(Class::Metadata)),
            ("fd00:ec2::254", Some(Class::Metadata)),
            ("100.100.100.200", Some(Class::Metadata)),
            ("240.0.0.1", Some(Class::Reserved)),
            ("198.18.0.1", Some(Class::Benchmarking)),
            ("::ffff:10.0.0.1", Some(Class::Private)),
            ("64:ff9b::7f00:1", Some(Class::Loopback)),
            ("64:ff9b::a9fe:a9fe", Some(Class::Metadata)),
            ("2002:7f00:1::", Some(Class::Loopback)),
            ("2001::1", Some(Class::Reserved)),
            ("93.184.216.34", None),
            ("8.8.8.8", None),
            ("2606:4700::1111", None),
            ("64:ff9b::808:808", None),
        ];
        for (addr, class) in cases {
            assert_eq!(classify(ip(addr)), class, "{addr}");
        }
    }

    #[tokio::test]
    async fn userinfo_and_backslash_tricks_are_invalid() {
        let (mut s, audit) = state(grant(&[
            "https://allowed.example/",
            "https://evil.example/",
        ]));
        invalid_with(
            get(&mut s, "https://allowed.example@evil.example/").await,
            "user information",
        );
        invalid_with(
            get(&mut s, "https://user:pw@allowed.example/").await,
            "user information",
        );
        invalid_with(
            get(&mut s, "https://@allowed.example/").await,
            "user information",
        );
        invalid_with(
            get(&mut s, "https://evil.example\\@allowed.example/").await,
            "backslash",
        );
        invalid_with(
            get(&mut s, "https://allowed.example\\.evil.example/").await,
            "backslash",
        );
        invalid_with(
            get(&mut s, "https://allowed.example/\t").await,
            "control character",
        );
        invalid_with(get(&mut s, " https://allowed.example/").await, "whitespace");
        invalid_with(
            get(&mut s, "//allowed.example/").await,
            "not an absolute URL",
        );
        // The audit never holds what the tool tried to smuggle.
        for r in audit.records() {
            let detail = r.detail.unwrap_or_default();
            assert!(detail.contains("(unparsable URL)"), "{detail}");
        }
    }

    #[tokio::test]
    async fn punycode_homographs_match_only_their_exact_form() {
        let (mut s, _) = state(grant(&[
            "https://apple.test/",
            "https://xn--bcher-kva.test/",
        ]));
        // Cyrillic 'а' (U+0430): a different name, which the grant does not list.
        denied_with(
            get(&mut s, "https://\u{430}pple.test/").await,
            "https://xn--pple-43d.test/ is not in this tool's fetch grant",
        );
        denied_with(
            get(&mut s, "https://xn--pple-43d.test/").await,
            "not in this tool's fetch grant",
        );
        // The unicode spelling of a granted punycode name is the same name (it then fails at DNS).
        let e = guest_err(get(&mut s, "https://b\u{fc}cher.test/").await);
        assert!(
            matches!(&e, WitError::Upstream(r) if r.contains("cannot resolve xn--bcher-kva.test")),
            "{e:?}"
        );
        denied_with(
            get(&mut s, "https://bucher.test/").await,
            "not in this tool's fetch grant",
        );
    }

    #[tokio::test]
    async fn wrong_scheme_or_port_is_refused() {
        let (mut s, _) = state(grant(&["https://allowed.test/"]));
        denied_with(
            get(&mut s, "http://allowed.test/").await,
            "not in this tool's fetch grant",
        );
        denied_with(
            get(&mut s, "https://allowed.test:8443/").await,
            "https://allowed.test:8443/ is not in",
        );
        denied_with(
            get(&mut s, "http://allowed.test:443/").await,
            "not in this tool's fetch grant",
        );
        invalid_with(
            get(&mut s, "ftp://allowed.test/").await,
            "scheme `ftp` cannot be fetched",
        );
        invalid_with(get(&mut s, "file:///etc/passwd").await, "scheme `file`");
        invalid_with(
            get(&mut s, "gopher://allowed.test:70/").await,
            "scheme `gopher`",
        );
    }

    #[tokio::test]
    async fn wildcard_edges_hold_at_send() {
        let (mut s, _) = state(grant(&["https://*.allowed.test/"]));
        for url in [
            "https://allowed.test/",
            "https://evil-allowed.test/",
            "https://allowed.test.evil.test/",
            "https://xallowed.test/",
            "https://127.0.0.1/",
        ] {
            denied_with(get(&mut s, url).await, "not in this tool's fetch grant");
        }
        // Sub-domains match; this one then fails the address check.
        denied_with(
            get(&mut s, "https://meta.allowed.test/").await,
            "cloud metadata",
        );
    }

    #[tokio::test]
    async fn methods_and_paths_stay_in_scope() {
        let (mut s, _) = state(grant(&["https://allowed.test/api/"]));
        let r = fetch::Host::send(&mut s, request("POST", "https://allowed.test/api/x")).await;
        denied_with(r, "method POST is not granted; this tool may use GET, HEAD");
        denied_with(
            get(&mut s, "https://allowed.test/apix").await,
            "not in this tool's fetch grant",
        );
        denied_with(
            get(&mut s, "https://allowed.test/api/../admin").await,
            "https://allowed.test/admin is not in",
        );
        invalid_with(
            get(&mut s, "https://allowed.test/api/..%2fadmin").await,
            "encoded",
        );
        invalid_with(
            get(&mut s, "https://allowed.test/api/%2e%2e%5cadmin").await,
            "encoded",
        );
        invalid_with(
            get(&mut s, "https://allowed.test/api/..;/admin").await,
            "encoded",
        );
        invalid_with(
            get(&mut s, "https://allowed.test/api/x%00.json").await,
            "%00",
        );
        // An encoded slash that hides no dot segment is an ordinary path.
        denied_with(
            get(&mut s, "https://allowed.test/api/group%2Fproject").await,
            "is loopback",
        );
        let r = fetch::Host::send(&mut s, request("G\rT", "https://allowed.test/api/x")).await;
        invalid_with(r, "not an HTTP method");
    }

    #[tokio::test]
    async fn header_injection_and_host_only_headers_are_refused() {
        let (mut s, _) = state(grant(&["https://allowed.test/"]));
        let with = |name: &str, value: &str| fetch::Request {
            headers: vec![fetch::Header {
                name: name.into(),
                value: value.into(),
            }],
            ..request("GET", "https://allowed.test/")
        };
        for (name, value) in [
            ("x-a", "1\r\nHost: evil.test"),
            ("x-a", "1\nx: y"),
            ("x-a\r\nhost", "v"),
            ("x-a", "nul\0"),
        ] {
            invalid_with(
                fetch::Host::send(&mut s, with(name, value)).await,
                "CR, LF or NUL",
            );
        }
        invalid_with(
            fetch::Host::send(&mut s, with("bad name", "v")).await,
            "not a valid header name",
        );
        for name in [
            "Host",
            "authorization",
            "Cookie",
            "proxy-authorization",
            "Proxy-Connection",
            "connection",
            "keep-alive",
            "te",
            "trailer",
            "transfer-encoding",
            "upgrade",
            "content-length",
            "accept-encoding",
            // Pieces of a reflecting upstream's answer, and method overrides.
            "Range",
            "if-range",
            "X-HTTP-Method-Override",
            "x-http-method",
            "x-method-override",
        ] {
            denied_with(
                fetch::Host::send(&mut s, with(name, "x")).await,
                "is set by the host",
            );
        }
    }

    #[tokio::test]
    async fn an_oversized_request_body_never_leaves() {
        let g = FetchGrant {
            methods: vec!["POST".into()],
            max_request_bytes: 16,
            ..grant(&["https://allowed.test/"])
        };
        let (mut s, _) = state(g);
        let r = fetch::Host::send(
            &mut s,
            fetch::Request {
                body: Some(vec![b'x'; 17]),
                ..request("post", "https://allowed.test/")
            },
        )
        .await;
        invalid_with(
            r,
            "the request body is 17 bytes; this grant sends at most 16",
        );
    }

    #[tokio::test]
    async fn the_request_quota_counts_checked_requests() {
        let g = FetchGrant {
            max_requests: 2,
            ..grant(&["http://ten.test/"])
        };
        let (mut s, _) = state(g);
        denied_with(get(&mut s, "http://ten.test/").await, "private");
        denied_with(get(&mut s, "http://ten.test/").await, "private");
        exhausted_with(get(&mut s, "http://ten.test/").await, "fetch-requests");
        // Requests the grant refuses outright do not use the quota, and still fail.
        denied_with(
            get(&mut s, "http://evil.test/").await,
            "not in this tool's fetch grant",
        );
    }

    #[tokio::test]
    async fn an_invalid_grant_denies_everything() {
        let (mut s, _) = state(grant(&["https://*.127.0.0.1/"]));
        denied_with(
            get(&mut s, "https://127.0.0.1/").await,
            "fetch grant is invalid",
        );
    }
}
