//! Properties of comparing fetch grants over generated pairs: a grant made
//! strictly narrower (patterns dropped or narrowed, methods dropped, limits
//! lowered, networks and credentials narrowed) never reads as widening and
//! the way back always does; and whenever `compare` reports no widening, no
//! URL the later patterns match escapes the earlier ones.

use super::props::{PatternSpec, UrlSpec, pattern_spec, url_spec};
use super::*;
use crate::canon::Target;
use crate::grant::UrlPattern;
use proptest::prelude::*;

/// A pattern one step narrower, by the `how`-th applicable way: a subdomain
/// of a wildcard, a deeper wildcard, a longer path, or a segment rule instead
/// of a character prefix.
fn narrower(p: &PatternSpec, how: u8) -> PatternSpec {
    for step in 0..4 {
        let mut q = p.clone();
        match (how + step) % 4 {
            0 if p.wildcard => {
                q.wildcard = false;
                q.base = format!("x.{}", p.base);
            }
            1 if p.wildcard => q.base = format!("x.{}", p.base),
            2 if p.star && !p.path.ends_with('/') => q.star = false,
            3 => {
                let sep = if p.path.ends_with('/') { "" } else { "/" };
                q.path = format!("{}{sep}x", p.path);
            }
            _ => continue,
        }
        return q;
    }
    unreachable!("a longer path always applies")
}

/// Choices drawn once, read in turn.
struct Dice(std::iter::Cycle<std::vec::IntoIter<u8>>);

impl Dice {
    fn new(bytes: Vec<u8>) -> Self {
        Self(bytes.into_iter().cycle())
    }
    fn roll(&mut self, sides: u8) -> u8 {
        self.0.next().unwrap_or(0) % sides
    }
}

/// Private networks and one of their subnets (a single address has none).
const NETS: [(&str, &str); 6] = [
    ("10.0.0.0/8", "10.1.0.0/16"),
    ("192.168.0.0/16", "192.168.1.0/24"),
    ("fd00::/8", "fd00:1::/32"),
    ("100.64.0.0/10", "100.64.1.1"),
    ("127.0.0.1", "127.0.0.1"),
    ("169.254.169.254", "169.254.169.254"),
];
const METHODS: [&str; 5] = ["GET", "HEAD", "POST", "PUT", "DELETE"];

#[derive(Debug, Clone)]
struct WideSpec {
    allow: Vec<PatternSpec>,
    methods: Vec<bool>,
    limits: [u32; 4],
    timeout_s: u32,
    nets: Vec<bool>,
    credentials: Vec<(String, Vec<PatternSpec>)>,
}

fn wide_spec() -> impl Strategy<Value = WideSpec> {
    let credential = (
        prop::sample::select(vec!["github", "slack"]),
        prop::collection::vec(pattern_spec(), 0..3),
    )
        .prop_map(|(n, urls)| (n.to_string(), urls));
    (
        prop::collection::vec(pattern_spec(), 0..4),
        prop::collection::vec(any::<bool>(), METHODS.len()),
        [1u32..1000, 1..1 << 24, 1..1 << 24, 1..10],
        1u32..300,
        prop::collection::vec(any::<bool>(), NETS.len()),
        prop::collection::vec(credential, 0..3),
    )
        .prop_map(
            |(allow, methods, limits, timeout_s, nets, credentials)| WideSpec {
                allow,
                methods,
                limits,
                timeout_s,
                nets,
                credentials,
            },
        )
}

fn texts(specs: &[PatternSpec]) -> Vec<String> {
    specs.iter().map(PatternSpec::text).collect()
}

fn build(w: &WideSpec) -> FetchGrant {
    FetchGrant {
        allow: texts(&w.allow),
        methods: METHODS
            .iter()
            .zip(&w.methods)
            .filter(|(_, on)| **on)
            .map(|(m, _)| m.to_string())
            .collect(),
        max_requests: w.limits[0],
        max_request_bytes: w.limits[1] as usize,
        max_response_bytes: w.limits[2] as usize,
        max_redirects: w.limits[3],
        timeout: format!("{}s", w.timeout_s),
        private_networks: NETS
            .iter()
            .zip(&w.nets)
            .filter(|(_, on)| **on)
            .map(|((net, _), _)| net.to_string())
            .collect(),
        credentials: w
            .credentials
            .iter()
            .map(|(name, urls)| CredentialRef {
                name: name.clone(),
                urls: texts(urls),
            })
            .collect(),
    }
}

/// A grant strictly narrower than `build(w)`: every part the same or
/// narrower, and one limit lowered for sure.
fn narrow(w: &WideSpec, dice: &mut Dice) -> FetchGrant {
    let mut g = build(w);
    g.allow = w
        .allow
        .iter()
        .filter_map(|p| match dice.roll(6) {
            0 => None,
            5 => Some(p.text()),
            how => Some(narrower(p, how).text()),
        })
        .collect();
    g.methods.retain(|_| dice.roll(3) != 0);
    for m in &mut g.methods {
        if dice.roll(2) == 0 {
            *m = m.to_ascii_lowercase();
        }
    }
    let forced = dice.roll(5);
    let mut lower = |v: u32, i: u8| {
        let cut = u32::from(dice.roll(255)) % (v + 1);
        v - if i == forced { cut.max(1) } else { cut }
    };
    g.max_requests = lower(g.max_requests, 0);
    g.max_request_bytes = lower(g.max_request_bytes as u32, 1) as usize;
    g.max_response_bytes = lower(g.max_response_bytes as u32, 2) as usize;
    g.max_redirects = lower(g.max_redirects, 3);
    g.timeout = format!("{}ms", lower(w.timeout_s * 1000, 4));
    g.private_networks = NETS
        .iter()
        .zip(&w.nets)
        .filter(|(_, on)| **on)
        .filter_map(|((net, sub), _)| match dice.roll(3) {
            0 => None,
            1 => Some(net.to_string()),
            _ => Some(sub.to_string()),
        })
        .collect();
    g.credentials = Vec::new();
    for (name, urls) in &w.credentials {
        if dice.roll(4) == 0 {
            continue;
        }
        let urls = if urls.is_empty() {
            // The host's URLs, narrowed to some pattern.
            vec![w.allow.first().map_or("https://a.ex/".into(), |p| p.text())]
        } else {
            let mut kept = Vec::new();
            for p in urls {
                match dice.roll(3) {
                    0 => {}
                    1 => kept.push(p.text()),
                    _ => kept.push(narrower(p, dice.roll(4)).text()),
                }
            }
            if kept.is_empty() {
                kept.push(urls[0].text());
            }
            kept
        };
        g.credentials.push(CredentialRef {
            name: name.clone(),
            urls,
        });
    }
    g
}

fn widening(before: &FetchGrant, after: &FetchGrant) -> Vec<String> {
    FetchCapability::compare(before, after)
        .into_iter()
        .filter(|c| c.widens)
        .map(|c| c.line)
        .collect()
}

mod compare {
    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn narrowing_never_widens_and_the_way_back_always_does(
            w in wide_spec(),
            dice in prop::collection::vec(any::<u8>(), 64),
        ) {
            let wide = build(&w);
            let narrow = narrow(&w, &mut Dice::new(dice));
            prop_assert!(FetchCapability::compare(&wide, &wide).is_empty());
            prop_assert!(FetchCapability::compare(&narrow, &narrow).is_empty());
            let w2n = widening(&wide, &narrow);
            prop_assert!(w2n.is_empty(), "narrowing read as widening: {:?}\n{:?}\n{:?}", w2n, wide, narrow);
            let n2w = widening(&narrow, &wide);
            prop_assert!(!n2w.is_empty(), "widening missed:\n{:?}\n{:?}", wide, narrow);
        }

        #[test]
        fn one_narrower_pattern_is_within_and_not_the_reverse(
            p in pattern_spec(),
            how in 0u8..4,
        ) {
            let q = narrower(&p, how);
            let (wide, narrow) = (grant(&[&p.text()]), grant(&[&q.text()]));
            prop_assert!(widening(&wide, &narrow).is_empty(), "{} vs {}", p.text(), q.text());
            prop_assert_eq!(
                widening(&narrow, &wide),
                vec![format!("+ fetch {}", p.text())]
            );
        }

        /// Whatever `compare` lets through without a widening line, the
        /// earlier patterns really match: no URL escapes.
        #[test]
        fn no_widening_means_no_url_escapes(
            before in prop::collection::vec(pattern_spec(), 0..4),
            after in prop::collection::vec(pattern_spec(), 0..4),
            urls in prop::collection::vec(url_spec(), 16),
        ) {
            let (b, a) = (grant_of(&before), grant_of(&after));
            let mut urls = urls;
            for p in &after {
                for tail in ["", "x", "/x"] {
                    urls.push(UrlSpec {
                        scheme: p.scheme,
                        host: if p.wildcard { format!("x.{}", p.base) } else { p.base.clone() },
                        port: p.port,
                        path: format!("{}{tail}", p.path),
                    });
                }
            }
            let parse = |g: &FetchGrant| -> Vec<UrlPattern> {
                g.allow.iter().map(|p| UrlPattern::parse(p).unwrap()).collect()
            };
            let (bp, ap) = (parse(&b), parse(&a));
            let escapes: Vec<String> = urls
                .iter()
                .map(|u| u.text())
                .filter(|u| {
                    let t = Target::parse(None, u).unwrap();
                    ap.iter().any(|p| p.matches(&t)) && !bp.iter().any(|p| p.matches(&t))
                })
                .collect();
            if widening(&b, &a).is_empty() {
                prop_assert!(escapes.is_empty(), "{:?} escape {:?} → {:?}", escapes, b.allow, a.allow);
            }
        }
    }

    fn grant_of(specs: &[PatternSpec]) -> FetchGrant {
        FetchGrant {
            allow: texts(specs),
            ..FetchGrant::default()
        }
    }
}
