//! Unit tests of comparing two fetch grants: pattern coverage
//! (`UrlPattern::within`) at its edges, network containment, and the
//! plain-words lines and `widens` mark of `compare` for every field.

use super::*;
use crate::grant::UrlPattern;
use airlock_core::ScopeChange;

fn within(inner: &str, outer: &str) -> bool {
    let p = |raw: &str| UrlPattern::parse(raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
    p(inner).within(&p(outer))
}

fn same(a: &str, b: &str) -> bool {
    within(a, b) && within(b, a)
}

fn cidr_within(inner: &str, outer: &str) -> bool {
    Cidr::parse(inner)
        .unwrap()
        .within(&Cidr::parse(outer).unwrap())
}

fn lines(before: &FetchGrant, after: &FetchGrant) -> Vec<String> {
    FetchCapability::compare(before, after)
        .into_iter()
        .map(|c| format!("{}{}", if c.widens { "W " } else { "N " }, c.line))
        .collect()
}

fn widens(before: &FetchGrant, after: &FetchGrant) -> bool {
    FetchCapability::compare(before, after)
        .iter()
        .any(|c| c.widens)
}

#[test]
fn a_path_and_a_subdomain_lie_within_a_wider_host_rule() {
    assert!(within(
        "https://api.example.com/v1/*",
        "https://api.example.com/*"
    ));
    assert!(within(
        "https://api.example.com/v1/*",
        "https://*.example.com/*"
    ));
    assert!(within("https://a.b.example.com/", "https://*.example.com/"));
    assert!(within("https://*.a.example.com/", "https://*.example.com/"));
    assert!(!within(
        "https://*.example.com/",
        "https://*.a.example.com/"
    ));
    assert!(!within(
        "https://*.example.com/",
        "https://api.example.com/"
    ));
}

#[test]
fn star_dot_needs_one_more_label() {
    assert!(!within("https://example.com/*", "https://*.example.com/*"));
    assert!(!within("https://xexample.com/*", "https://*.example.com/*"));
    assert!(!within(
        "https://*.xexample.com/*",
        "https://*.example.com/*"
    ));
    assert!(!within("https://10.0.0.1/", "https://*.example.com/"));
}

#[test]
fn scheme_and_port_must_be_the_same() {
    assert!(!within(
        "http://api.example.com/*",
        "https://api.example.com/*"
    ));
    assert!(!within(
        "https://api.example.com/*",
        "http://api.example.com/*"
    ));
    assert!(!within(
        "https://api.example.com:8443/*",
        "https://api.example.com/*"
    ));
    assert!(same(
        "https://api.example.com:443/x",
        "https://api.example.com/x"
    ));
    assert!(!within(
        "http://api.example.com:443/",
        "https://api.example.com/"
    ));
}

#[test]
fn path_rules_follow_segments_and_character_prefixes() {
    let h = "https://h.example";
    let w = |i: &str, o: &str| within(&format!("{h}{i}"), &format!("{h}{o}"));
    assert!(w("/api", "/api*"), "segments inside the same prefix");
    assert!(!w("/api*", "/api"), "/apix escapes the segment rule");
    assert!(w("/api/", "/api"));
    assert!(w("/api/x*", "/api"));
    assert!(!w("/api", "/api/"), "/api itself escapes /api/");
    assert!(!w("/apix", "/api"));
    assert!(w("/apix", "/api*"));
    assert!(w("/anything/at/all", ""));
    assert!(w("/api/*", "/api/"), "the same paths");
    assert!(w("/api/", "/api/*"), "the same paths");
    assert!(!w("/", "/api*"));
}

#[test]
fn hosts_compare_in_their_canonical_spelling() {
    assert!(same(
        "HTTPS://API.Example.COM./v1",
        "https://api.example.com/v1"
    ));
    assert!(same(
        "https://bücher.example/*",
        "https://xn--bcher-kva.example/*"
    ));
    assert!(within(
        "https://shop.BÜCHER.example/*",
        "https://*.xn--bcher-kva.example/*"
    ));
    assert!(same("https://[::ffff:10.0.0.1]/", "https://10.0.0.1/"));
    assert!(same("https://h.example/a%2Fb", "https://h.example/a%2Fb"));
}

#[test]
fn networks_lie_within_larger_ones_but_metadata_needs_its_own_entry() {
    assert!(cidr_within("10.1.0.0/16", "10.0.0.0/8"));
    assert!(cidr_within("10.1.2.3", "10.0.0.0/8"));
    assert!(!cidr_within("10.0.0.0/8", "10.1.0.0/16"));
    assert!(!cidr_within("11.0.0.0/8", "10.0.0.0/8"));
    assert!(cidr_within("fd00:1::/32", "fd00::/8"));
    assert!(!cidr_within("10.0.0.0/8", "fd00::/8"));
    assert!(!cidr_within("169.254.169.254", "169.254.0.0/16"));
    assert!(cidr_within("169.254.169.254", "169.254.169.254/32"));
    assert!(!cidr_within("fd00:ec2::254", "fd00::/8"));
    assert!(cidr_within("169.254.169.0/24", "169.254.0.0/16"));
}

#[test]
fn equal_grants_and_respellings_compare_equal() {
    let g = FetchGrant {
        allow: vec!["https://api.example.com/v1/*".into()],
        methods: vec!["GET".into(), "POST".into()],
        private_networks: vec!["10.0.0.0/8".into()],
        credentials: vec![CredentialRef::named("token")],
        ..FetchGrant::default()
    };
    assert!(FetchCapability::compare(&g, &g).is_empty());
    let respelled = FetchGrant {
        allow: vec!["HTTPS://API.EXAMPLE.COM:443/v1/*".into()],
        methods: vec!["post".into(), "get".into()],
        timeout: "10000ms".into(),
        ..g.clone()
    };
    assert_eq!(lines(&g, &respelled), Vec::<String>::new());
    assert_eq!(lines(&respelled, &g), Vec::<String>::new());
}

#[test]
fn allow_patterns_widen_when_new_and_narrow_when_gone() {
    let before = grant(&["https://old.example/*", "https://*.example.com/*"]);
    let after = grant(&["https://api.new.example/*", "https://a.example.com/v1"]);
    assert_eq!(
        lines(&before, &after),
        [
            "N - fetch https://old.example/*",
            "N - fetch https://*.example.com/*",
            "W + fetch https://api.new.example/*",
            "N + fetch https://a.example.com/v1 (within https://*.example.com/*)",
        ]
    );
    assert_eq!(
        lines(&after, &before),
        [
            "N - fetch https://api.new.example/*",
            "N - fetch https://a.example.com/v1 (still allowed by https://*.example.com/*)",
            "W + fetch https://old.example/*",
            "W + fetch https://*.example.com/*",
        ]
    );
    assert!(!widens(&grant(&["https://x.example/*"]), &grant(&[])));
    assert!(widens(&grant(&[]), &grant(&["https://x.example/*"])));
}

#[test]
fn an_invalid_pattern_is_never_within_anything() {
    let wide = grant(&["https://*.example.com/*"]);
    let bad = grant(&["https://a.example.com/../x"]);
    assert!(widens(&wide, &bad), "{:?}", lines(&wide, &bad));
    assert!(widens(&bad, &grant(&["https://a.example.com/x"])));
    assert!(FetchCapability::compare(&bad, &bad).is_empty());
}

#[test]
fn methods_and_limits_widen_when_added_or_raised() {
    let before = grant(&[]);
    let more = FetchGrant {
        methods: vec!["GET".into(), "POST".into()],
        max_requests: 100,
        max_request_bytes: before.max_request_bytes * 2,
        max_response_bytes: before.max_response_bytes + 1,
        max_redirects: 6,
        timeout: "1m".into(),
        ..before.clone()
    };
    assert_eq!(
        lines(&before, &more),
        [
            "N - fetch method HEAD",
            "W + fetch method POST",
            "W ~ fetch max_requests 32 → 100",
            "W ~ fetch max_request_bytes 1048576 → 2097152",
            "W ~ fetch max_response_bytes 4194304 → 4194305",
            "W ~ fetch max_redirects 5 → 6",
            "W ~ fetch timeout 10s → 1m",
        ]
    );
    let back = lines(&more, &before);
    assert_eq!(back.len(), 7);
    assert_eq!(back[0], "N - fetch method POST");
    assert_eq!(back[1], "W + fetch method HEAD");
    assert!(
        back[2..].iter().all(|l| l.starts_with("N ~ fetch ")),
        "{back:?}"
    );
}

#[test]
fn a_timeout_that_does_not_parse_widens() {
    let before = grant(&[]);
    let after = FetchGrant {
        timeout: "soon".into(),
        ..grant(&[])
    };
    assert_eq!(lines(&before, &after), ["W ~ fetch timeout 10s → soon"]);
    assert_eq!(lines(&after, &before), ["W ~ fetch timeout soon → 10s"]);
}

#[test]
fn private_networks_widen_unless_inside_an_old_entry() {
    let nets = |n: &[&str]| FetchGrant {
        private_networks: n.iter().map(|s| s.to_string()).collect(),
        ..grant(&[])
    };
    assert_eq!(
        lines(&nets(&[]), &nets(&["10.0.0.0/8"])),
        ["W + fetch private_network 10.0.0.0/8"]
    );
    assert_eq!(
        lines(&nets(&["10.0.0.0/8"]), &nets(&["10.1.0.0/16"])),
        [
            "N - fetch private_network 10.0.0.0/8",
            "N + fetch private_network 10.1.0.0/16 (within 10.0.0.0/8)",
        ]
    );
    assert_eq!(
        lines(&nets(&["169.254.0.0/16"]), &nets(&["169.254.169.254"])),
        [
            "N - fetch private_network 169.254.0.0/16",
            "W + fetch private_network 169.254.169.254",
        ],
        "a metadata address is unlocked only by its own entry"
    );
    assert!(widens(&nets(&["10.0.0.0/8"]), &nets(&["10.0.0.0/7"])));
    assert!(widens(&nets(&["10.0.0.0/8"]), &nets(&["ten"])));
}

#[test]
fn credentials_widen_when_added_or_unnarrowed() {
    let creds = |c: Vec<CredentialRef>| FetchGrant {
        credentials: c,
        ..grant(&[])
    };
    let narrowed = |name: &str, urls: &[&str]| CredentialRef {
        name: name.into(),
        urls: urls.iter().map(|u| u.to_string()).collect(),
    };
    let none = creds(vec![]);
    let all = creds(vec![CredentialRef::named("github")]);
    let v1 = creds(vec![narrowed("github", &["https://api.github.com/v1/*"])]);
    let any = creds(vec![narrowed("github", &["https://api.github.com/*"])]);
    assert_eq!(lines(&none, &all), ["W + fetch credential github"]);
    assert_eq!(
        lines(&none, &v1),
        ["W + fetch credential github for https://api.github.com/v1/*"]
    );
    assert_eq!(lines(&all, &none), ["N - fetch credential github"]);
    assert_eq!(
        lines(&all, &v1),
        ["N ~ fetch credential github urls the host's URLs for it → https://api.github.com/v1/*"]
    );
    assert_eq!(
        lines(&v1, &all),
        ["W ~ fetch credential github urls https://api.github.com/v1/* → the host's URLs for it"]
    );
    assert_eq!(
        lines(&v1, &any),
        [
            "N - fetch credential github url https://api.github.com/v1/* (still allowed by https://api.github.com/*)",
            "W + fetch credential github url https://api.github.com/*",
        ]
    );
    assert!(!widens(&any, &v1));
    // Two references to one credential: their URLs together.
    let split = creds(vec![
        narrowed("github", &["https://api.github.com/v1/*"]),
        narrowed("github", &["https://api.github.com/v2/*"]),
    ]);
    assert!(!widens(&split, &v1));
    assert!(widens(&v1, &split));
    let with_all = creds(vec![
        narrowed("github", &["https://api.github.com/v1/*"]),
        CredentialRef::named("github"),
    ]);
    assert!(!widens(&with_all, &all) && !widens(&all, &with_all));
}

#[test]
fn compare_lines_print_as_the_change() {
    let c = FetchCapability::compare(&grant(&[]), &grant(&["https://api.new.example/*"]));
    assert_eq!(
        c,
        [ScopeChange::widening("+ fetch https://api.new.example/*")]
    );
    assert_eq!(c[0].to_string(), "+ fetch https://api.new.example/*");
}

#[test]
fn the_grant_round_trips_through_toml() {
    let g = FetchGrant {
        allow: vec!["https://api.example.com/*".into()],
        credentials: vec![
            CredentialRef::named("a"),
            CredentialRef {
                name: "b".into(),
                urls: vec!["https://api.example.com/v1/*".into()],
            },
        ],
        private_networks: vec!["10.0.0.0/8".into()],
        ..FetchGrant::default()
    };
    let toml_text = toml::to_string(&g).unwrap();
    assert!(toml_text.contains("max_requests = 32"), "{toml_text}");
    let back: FetchGrant = toml::from_str(&toml_text).unwrap();
    assert_eq!(back, g);
    let unknown = format!("secret = \"x\"\n{toml_text}");
    assert!(toml::from_str::<FetchGrant>(&unknown).is_err());
}
