//! Two fetch grants compared by meaning, for permission diffs: URL patterns
//! by coverage ([`UrlPattern::within`]), private networks by containment
//! ([`Cidr::within`]), credentials by name and narrowed URLs, limits by value.
//! Anything that does not parse is never taken to be within anything.

use airlock_core::ScopeChange;

use crate::canon::Cidr;
use crate::credential::CredentialRef;
use crate::grant::{FetchGrant, UrlPattern};

const VERB: &str = "fetch";

/// Every difference between `before` and `after`; see `Capability::compare`.
pub fn compare(before: &FetchGrant, after: &FetchGrant) -> Vec<ScopeChange> {
    let mut out = coverage(
        VERB,
        &parsed(&before.allow, |p| UrlPattern::parse(p).ok()),
        &parsed(&after.allow, |p| UrlPattern::parse(p).ok()),
        UrlPattern::within,
    );
    out.extend(ScopeChange::items(
        VERB,
        "method",
        &methods(before),
        &methods(after),
    ));
    let limits: [(&str, Limit); 4] = [
        ("max_requests", |g| g.max_requests.into()),
        ("max_request_bytes", |g| g.max_request_bytes as u64),
        ("max_response_bytes", |g| g.max_response_bytes as u64),
        ("max_redirects", |g| g.max_redirects.into()),
    ];
    for (field, get) in limits {
        out.extend(ScopeChange::limit(VERB, field, get(before), get(after)));
    }
    out.extend(timeout(&before.timeout, &after.timeout));
    out.extend(coverage(
        &format!("{VERB} private_network"),
        &parsed(&before.private_networks, |n| Cidr::parse(n).ok()),
        &parsed(&after.private_networks, |n| Cidr::parse(n).ok()),
        Cidr::within,
    ));
    out.extend(credentials(&before.credentials, &after.credentials));
    out
}

/// Reads one limit of a grant.
type Limit = fn(&FetchGrant) -> u64;

/// Each entry as written, with its parse (`None`: invalid).
fn parsed<T>(raw: &[String], parse: impl Fn(&str) -> Option<T>) -> Vec<(&str, Option<T>)> {
    raw.iter().map(|r| (r.as_str(), parse(r))).collect()
}

fn methods(g: &FetchGrant) -> Vec<String> {
    g.methods.iter().map(|m| m.to_ascii_uppercase()).collect()
}

/// `~ fetch timeout 10s → 1m`; a longer timeout widens, and so does any
/// change involving a timeout that does not parse.
fn timeout(before: &str, after: &str) -> Option<ScopeChange> {
    let parse = |t: &str| humantime::parse_duration(t).ok();
    let widens = match (parse(before), parse(after)) {
        (Some(b), Some(a)) if a == b => return None,
        (Some(b), Some(a)) => a > b,
        _ if before == after => return None,
        _ => true,
    };
    Some(ScopeChange {
        widens,
        line: format!("~ {VERB} timeout {before} → {after}"),
    })
}

/// Lists where each entry allows a set of things (URL patterns, networks):
/// `+ PREFIX new` widens unless one old entry covers it (then it says which);
/// `- PREFIX old` narrows (saying which new entry still covers it, if one
/// does). Entries of the same meaning on both sides are no change.
fn coverage<T>(
    prefix: &str,
    before: &[(&str, Option<T>)],
    after: &[(&str, Option<T>)],
    within: impl Fn(&T, &T) -> bool,
) -> Vec<ScopeChange> {
    let inside = |x: &(&str, Option<T>), y: &(&str, Option<T>)| {
        x.0 == y.0
            || match (&x.1, &y.1) {
                (Some(x), Some(y)) => within(x, y),
                _ => false,
            }
    };
    let same = |x: &(&str, Option<T>), y: &(&str, Option<T>)| inside(x, y) && inside(y, x);
    let mut out: Vec<ScopeChange> = Vec::new();
    let mut push = |c: ScopeChange| {
        if !out.contains(&c) {
            out.push(c);
        }
    };
    for old in before {
        if after.iter().any(|new| same(old, new)) {
            continue;
        }
        let line = match after.iter().find(|new| inside(old, new)) {
            Some(new) => format!("- {prefix} {} (still allowed by {})", old.0, new.0),
            None => format!("- {prefix} {}", old.0),
        };
        push(ScopeChange::narrowing(line));
    }
    for new in after {
        if before.iter().any(|old| same(old, new)) {
            continue;
        }
        push(match before.iter().find(|old| inside(new, old)) {
            Some(old) => ScopeChange::narrowing(format!("+ {prefix} {} (within {})", new.0, old.0)),
            None => ScopeChange::widening(format!("+ {prefix} {}", new.0)),
        });
    }
    out
}

/// A credential's URLs as granted: `None` for all the host's URLs for it (a
/// reference without `urls`), else the union of the references' patterns.
type CredentialUrls<'a> = Option<Vec<(&'a str, Option<UrlPattern>)>>;

fn by_name(refs: &[CredentialRef]) -> Vec<(&str, CredentialUrls<'_>)> {
    let mut out: Vec<(&str, CredentialUrls<'_>)> = Vec::new();
    for r in refs {
        let urls = (!r.urls.is_empty()).then(|| parsed(&r.urls, |u| UrlPattern::parse(u).ok()));
        match out.iter_mut().find(|(name, _)| *name == r.name) {
            None => out.push((&r.name, urls)),
            Some((_, merged)) => match (merged.as_mut(), urls) {
                (Some(m), Some(u)) => m.extend(u),
                _ => *merged = None,
            },
        }
    }
    out
}

fn credentials(before: &[CredentialRef], after: &[CredentialRef]) -> Vec<ScopeChange> {
    let (before, after) = (by_name(before), by_name(after));
    let urls_text = |urls: &CredentialUrls<'_>| match urls {
        None => "the host's URLs for it".to_string(),
        Some(u) => u.iter().map(|(raw, _)| *raw).collect::<Vec<_>>().join(", "),
    };
    let mut out = Vec::new();
    for (name, _) in before
        .iter()
        .filter(|(n, _)| !after.iter().any(|(a, _)| a == n))
    {
        out.push(ScopeChange::narrowing(format!(
            "- {VERB} credential {name}"
        )));
    }
    for (name, new) in &after {
        let Some((_, old)) = before.iter().find(|(b, _)| b == name) else {
            let line = match new {
                None => format!("+ {VERB} credential {name}"),
                Some(_) => format!("+ {VERB} credential {name} for {}", urls_text(new)),
            };
            out.push(ScopeChange::widening(line));
            continue;
        };
        let line = format!(
            "~ {VERB} credential {name} urls {} → {}",
            urls_text(old),
            urls_text(new)
        );
        match (old, new) {
            (None, None) => {}
            (None, Some(_)) => out.push(ScopeChange::narrowing(line)),
            (Some(_), None) => out.push(ScopeChange::widening(line)),
            (Some(o), Some(n)) => out.extend(coverage(
                &format!("{VERB} credential {name} url"),
                o,
                n,
                UrlPattern::within,
            )),
        }
    }
    out
}
