//! Properties: the canonical view of generated URLs is what `url::Url`
//! reports, every numeric IPv4 spelling lands on one address, and the pattern
//! matcher agrees with a plain string reference implementation.

use super::*;
use crate::canon::{CanonHost, Target};
use crate::grant::UrlPattern;
use proptest::prelude::*;
use std::net::Ipv4Addr;

fn label() -> impl Strategy<Value = String> {
    "[a-zA-Z][a-zA-Z0-9-]{0,7}"
}

fn host() -> impl Strategy<Value = String> {
    (prop::collection::vec(label(), 1..4), any::<bool>()).prop_map(|(labels, dot)| {
        let mut h = labels.join(".");
        if dot {
            h.push('.');
        }
        h
    })
}

fn path() -> impl Strategy<Value = String> {
    prop::collection::vec("[a-zA-Z0-9._~-]{0,6}", 0..4)
        .prop_map(|segs| format!("/{}", segs.join("/")))
}

mod fetch_scope {
    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn canonical_view_equals_what_url_reports(
            scheme in prop::sample::select(vec!["http", "https", "HTTP", "Https"]),
            host in host(),
            port in prop::option::of(1u16..),
            path in path(),
            query in prop::option::of("[a-z0-9=&]{0,8}"),
        ) {
            let port_text = port.map(|p| format!(":{p}")).unwrap_or_default();
            let query_text = query.map(|q| format!("?{q}")).unwrap_or_default();
            let raw = format!("{scheme}://{host}{port_text}{path}{query_text}");
            let url = url::Url::parse(&raw).unwrap();
            let t = Target::parse(None, &raw).unwrap();
            prop_assert_eq!(t.scheme, url.scheme());
            let expected = url.host_str().unwrap();
            let expected = expected.strip_suffix('.').unwrap_or(expected);
            prop_assert_eq!(&t.host, &CanonHost::Domain(expected.to_string()));
            prop_assert_eq!(Some(t.port), url.port_or_known_default());
            prop_assert_eq!(t.path(), url.path());
            prop_assert_eq!(t.url.query(), url.query());
        }

        #[test]
        fn every_numeric_ipv4_spelling_is_one_address(n in any::<u32>(), form in 0..5usize) {
            let [a, b, c, d] = n.to_be_bytes();
            let text = match form {
                0 => n.to_string(),
                1 => format!("{n:#x}"),
                2 => format!("0{a:o}.0{b:o}.0{c:o}.0{d:o}"),
                3 => format!("{a}.{}", u32::from_be_bytes([0, b, c, d])),
                _ => format!("[::ffff:{:x}:{:x}]", n >> 16, n & 0xffff),
            };
            let t = Target::parse(None, &format!("http://{text}/")).unwrap();
            prop_assert_eq!(t.host, CanonHost::Ip(IpAddr::V4(Ipv4Addr::from(n))));
        }

        /// A toolkit's narrowing can never reach a URL the host's pattern
        /// does not: whatever `within` accepts, the outer pattern covers.
        #[test]
        fn within_never_admits_a_url_outside(
            outer in pattern_spec(),
            inner in pattern_spec(),
            urls in prop::collection::vec(url_spec(), 16),
        ) {
            let o = UrlPattern::parse(&outer.text()).unwrap();
            let i = UrlPattern::parse(&inner.text()).unwrap();
            prop_assert!(crate::within(&o, &o));
            // URLs the inner pattern surely matches, besides random ones.
            let mut urls = urls;
            for tail in ["", "x", "/x", "v1/"] {
                urls.push(UrlSpec {
                    scheme: inner.scheme,
                    host: if inner.wildcard { format!("x.{}", inner.base) } else { inner.base.clone() },
                    port: inner.port,
                    path: format!("{}{tail}", inner.path),
                });
            }
            if crate::within(&i, &o) {
                for u in &urls {
                    let t = Target::parse(None, &u.text()).unwrap();
                    prop_assert!(!i.matches(&t) || o.matches(&t), "{} within {} but {} escapes", i.raw, o.raw, u.text());
                }
            }
        }

        #[test]
        fn matcher_agrees_with_a_reference(p in pattern_spec(), u in url_spec()) {
            let pattern = UrlPattern::parse(&p.text()).unwrap();
            let target = Target::parse(None, &u.text()).unwrap();
            prop_assert_eq!(pattern.matches(&target), reference(&p, &u), "{} vs {}", p.text(), u.text());
        }
    }
}

#[derive(Debug, Clone)]
pub(super) struct PatternSpec {
    pub scheme: &'static str,
    pub wildcard: bool,
    pub base: String,
    pub port: Option<u16>,
    pub path: String,
    pub star: bool,
}

impl PatternSpec {
    pub fn text(&self) -> String {
        let port = self.port.map(|p| format!(":{p}")).unwrap_or_default();
        let wild = if self.wildcard { "*." } else { "" };
        let star = if self.star { "*" } else { "" };
        format!(
            "{}://{wild}{}{port}{}{star}",
            self.scheme, self.base, self.path
        )
    }
}

#[derive(Debug, Clone)]
pub(super) struct UrlSpec {
    pub scheme: &'static str,
    pub host: String,
    pub port: Option<u16>,
    pub path: String,
}

impl UrlSpec {
    pub fn text(&self) -> String {
        let port = self.port.map(|p| format!(":{p}")).unwrap_or_default();
        format!("{}://{}{port}{}", self.scheme, self.host, self.path)
    }
}

fn small_labels(range: std::ops::Range<usize>) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(vec!["a", "b", "ex"]), range)
        .prop_map(|l| l.join("."))
}

fn small_path(max: usize) -> impl Strategy<Value = String> {
    (
        prop::collection::vec(prop::sample::select(vec!["api", "apix", "v1", "x"]), 0..max),
        any::<bool>(),
    )
        .prop_map(|(segs, slash)| {
            let mut p = format!("/{}", segs.join("/"));
            if slash && !p.ends_with('/') {
                p.push('/');
            }
            p
        })
}

fn scheme() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["http", "https"])
}

fn port() -> impl Strategy<Value = Option<u16>> {
    prop::option::of(prop::sample::select(vec![80u16, 443, 8080]))
}

pub(super) fn pattern_spec() -> impl Strategy<Value = PatternSpec> {
    (
        scheme(),
        any::<bool>(),
        small_labels(2..4),
        port(),
        small_path(3),
        any::<bool>(),
    )
        .prop_map(|(scheme, wildcard, base, port, path, star)| PatternSpec {
            scheme,
            wildcard,
            base,
            port,
            path,
            star,
        })
}

pub(super) fn url_spec() -> impl Strategy<Value = UrlSpec> {
    (scheme(), small_labels(1..5), port(), small_path(4)).prop_map(|(scheme, host, port, path)| {
        UrlSpec {
            scheme,
            host,
            port,
            path,
        }
    })
}

fn default_port(scheme: &str) -> u16 {
    if scheme == "https" { 443 } else { 80 }
}

/// The rules in the plainest string terms.
fn reference(p: &PatternSpec, u: &UrlSpec) -> bool {
    let same_port =
        p.port.unwrap_or(default_port(p.scheme)) == u.port.unwrap_or(default_port(u.scheme));
    let host = if p.wildcard {
        u.host.ends_with(&format!(".{}", p.base))
    } else {
        u.host == p.base
    };
    let path = if p.star || p.path.ends_with('/') {
        u.path.starts_with(&p.path)
    } else {
        u.path == p.path || u.path.starts_with(&format!("{}/", p.path))
    };
    p.scheme == u.scheme && same_port && host && path
}
