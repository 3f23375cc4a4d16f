//! The body of the `fetch_url` fuzz target, here because it needs the crate's
//! private canonical view ([`Target`]) and pattern matcher ([`UrlPattern`]).
//! Compiled only with the `fuzzing` feature; the fuzz crate and the stable
//! corpus replay test (`host/tests/fuzz_corpus.rs`) both call it.
//!
//! Input: UTF-8 text (lossily decoded), split into lines. The first line is a
//! URL as a tool would send it; the next lines (up to eight) are grant
//! patterns, and the first of them is also tried as a redirect `Location`
//! relative to the URL. A broken invariant panics, which is what the fuzzer
//! reports as a crash.

use std::collections::HashMap;
use std::sync::Arc;

use secrecy::SecretSlice;

use crate::canon::{CanonHost, Target, hides_traversal};
use crate::credential::{CredentialRef, CredentialSpec, HostCredential, within};
use crate::grant::{FetchGrant, HostPattern, PathPattern, UrlPattern, describe};

/// Most pattern lines read from one input.
const MAX_PATTERNS: usize = 8;

/// Canonicalizes and matches one input; panics when an invariant breaks.
pub fn fetch_url(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let raw = lines.next().unwrap_or_default();
    let others: Vec<&str> = lines.take(MAX_PATTERNS).collect();

    let mut patterns = Vec::new();
    for line in &others {
        match UrlPattern::parse(line) {
            Ok(p) => {
                pattern_matches_its_own_url(&p);
                patterns.push(p);
            }
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }
    grant_compiles_like_its_patterns(&others, &patterns);

    let parsed = Target::parse(None, raw);
    if authority_has_at(raw) {
        assert!(
            parsed.is_err(),
            "a URL with `@` in its authority was accepted: {raw:?}"
        );
    }
    let target = match parsed {
        Ok(t) => t,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    check_target(&target, &patterns);
    if let Some(location) = others.first()
        && let Ok(next) = Target::parse(Some(&target.url), location)
    {
        check_target(&next, &patterns);
    }
}

/// Invariants of one accepted target, and of the same target parsed again
/// from its canonical form.
fn check_target(t: &Target, patterns: &[UrlPattern]) {
    let url = &t.url;
    assert!(url.username().is_empty() && url.password().is_none());
    assert_eq!(url.scheme(), t.scheme);
    assert!(matches!(t.scheme, "http" | "https"));
    assert_eq!(
        url.host_str().map(str::to_string),
        Some(t.host.to_string()),
        "the URL sent differs from the host the grant was checked against"
    );
    assert_eq!(url.port_or_known_default(), Some(t.port));
    assert!(url.fragment().is_none());
    assert!(t.path().starts_with('/'));
    assert!(!hides_traversal(t.path()));
    // The helpers the request path uses never panic.
    let _ = (t.origin(), t.path_and_query(), t.redacted());
    assert!(t.host_header().starts_with(&t.host.to_string()));

    // The canonical form is a fixed point: parsing it again changes nothing,
    // so a grant decision cannot flip between the check and a re-check.
    let again = Target::parse(None, url.as_str())
        .unwrap_or_else(|e| panic!("the canonical URL {:?} no longer parses: {e}", url.as_str()));
    assert_eq!(again.url, t.url);
    assert_eq!(again.host, t.host);
    assert_eq!(again.port, t.port);
    assert_eq!(again.scheme, t.scheme);

    // `within` is sound: a URL the inner pattern matches, the outer does too.
    for inner in patterns.iter().filter(|p| p.matches(t)) {
        for outer in patterns.iter().filter(|o| within(inner, o)) {
            assert!(
                outer.matches(t),
                "{} within {} but {} escapes",
                inner.raw,
                outer.raw,
                url.as_str()
            );
        }
    }
    for p in patterns {
        let matched = p.matches(t);
        assert_eq!(matched, p.matches(&again), "{} vs {}", p.raw, url.as_str());
        if matched {
            pattern_names_target(p, t);
        }
    }
}

/// A pattern matches only URLs whose scheme, port, host and path it names:
/// no userinfo, IP spelling or other host ever slips through.
fn pattern_names_target(p: &UrlPattern, t: &Target) {
    let url = &t.url;
    let shown = url.as_str();
    assert_eq!(url.scheme(), p.scheme, "{} matched {shown}", p.raw);
    assert_eq!(url.port_or_known_default(), Some(p.port), "{shown}");
    let host = url.host_str().unwrap_or_default();
    match &p.host {
        HostPattern::Exact(h) => {
            assert_eq!(&t.host, h, "{} matched {shown}", p.raw);
            assert_eq!(host, h.to_string(), "{} matched {shown}", p.raw);
        }
        HostPattern::Subdomains(base) => {
            assert!(matches!(t.host, CanonHost::Domain(_)), "{shown}");
            let front = host.strip_suffix(base.as_str());
            assert!(
                front.is_some_and(|f| f.len() > 1 && f.ends_with('.')),
                "{} matched {shown}",
                p.raw
            );
        }
    }
    let path = t.path();
    match &p.path {
        PathPattern::Prefix(prefix) => assert!(path.starts_with(prefix.as_str()), "{shown}"),
        PathPattern::Segments(prefix) => {
            let dir = format!("{}/", prefix.trim_end_matches('/'));
            assert!(
                path == prefix || path.starts_with(&dir),
                "{} matched {shown}",
                p.raw
            );
        }
    }
}

/// A pattern matches the URL it is written as (`*.` read as `x.`, the final
/// `*` dropped), whenever that URL is one the host accepts at all.
fn pattern_matches_its_own_url(p: &UrlPattern) {
    let mut url = p.raw.replacen("://*.", "://x.", 1);
    if matches!(p.path, PathPattern::Prefix(_)) {
        url.pop();
    }
    if let Ok(t) = Target::parse(None, &url) {
        assert!(p.matches(&t), "pattern {:?} does not match {url:?}", p.raw);
    }
}

/// A grant built from the lines compiles to exactly the patterns parsed one
/// by one, and describing it never panics.
fn grant_compiles_like_its_patterns(lines: &[&str], parsed: &[UrlPattern]) {
    let mut grant = FetchGrant {
        allow: lines.iter().map(|l| l.to_string()).collect(),
        ..FetchGrant::default()
    };
    let mut host = HashMap::new();
    if let Some(first) = parsed.first() {
        // A host credential bound to the first valid pattern, which the
        // grant narrows to that same pattern: a pattern is within itself.
        let spec = CredentialSpec {
            secret: "token".into(),
            header: "authorization".into(),
            format: Some("Bearer {}".into()),
            urls: vec![first.raw.clone()],
        };
        let cred = HostCredential::new("c", &spec, SecretSlice::from(b"tok".to_vec()))
            .expect("a pattern that parsed binds a credential");
        host.insert("c".to_string(), Arc::new(cred));
        grant.credentials.push(CredentialRef {
            name: "c".into(),
            urls: vec![first.raw.clone()],
        });
    }
    for p in parsed {
        assert!(within(p, p), "{} is not within itself", p.raw);
    }
    assert!(!describe(&grant).is_empty());
    match grant.compile(&host) {
        Ok(policy) => {
            assert_eq!(policy.allow, parsed);
            assert_eq!(policy.credentials.len(), usize::from(!parsed.is_empty()));
        }
        Err(e) => {
            assert!(parsed.len() < lines.len(), "{e}");
        }
    }
}

/// Whether the authority of an http(s) URL as written (after `scheme:` and
/// any slashes, up to the first `/`, `?` or `#`) holds an `@`. Such a URL is
/// always refused, even where a parser would drop an empty userinfo.
fn authority_has_at(raw: &str) -> bool {
    let lower = raw.get(..6).unwrap_or(raw).to_ascii_lowercase();
    let rest = if lower.starts_with("https:") {
        &raw[6..]
    } else if lower.starts_with("http:") {
        &raw[5..]
    } else {
        return false;
    };
    let rest = rest.trim_start_matches('/');
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    rest[..end].contains('@')
}
