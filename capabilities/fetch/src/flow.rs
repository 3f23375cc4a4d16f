//! The path of one `send`, in the order the checks run: method, URL, grant
//! match, headers, body size, quota, then per hop resolve-once, address
//! check, credentials, exchange, and a full re-check of every redirect.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use airlock_core::VerbError;
use airlock_core::bindings::airlock::verbs::fetch;
use bytes::Bytes;
use http::header::{ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE, HOST, LOCATION};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use http_body_util::Full;

use crate::FetchState;
use crate::canon::{CanonHost, Class, Origin, Target, canon_ip, classify};
use crate::client;
use crate::grant::{Policy, UrlPattern};
use crate::scrub::Scrubber;

/// Most headers a tool may send in one request.
const MAX_HEADERS: usize = 64;
/// Most bytes of header names and values a tool may send in one request.
const MAX_HEADER_BYTES: usize = 64 * 1024;

/// What the audit record says about one `send` (never header values or
/// query values).
#[derive(Debug, Default)]
pub struct Note {
    method: String,
    url: Option<String>,
    last_url: Option<String>,
    rule: Option<String>,
    status: Option<u16>,
    bytes: Option<usize>,
    redirects: u32,
    /// Host credentials attached, by name, on any hop.
    credentials: Vec<String>,
    /// Secret reflections removed from the response.
    pub scrubbed: usize,
}

impl Note {
    /// The audit detail line.
    pub fn detail(&self) -> String {
        let mut out = format!(
            "{} {}",
            self.method,
            self.url.as_deref().unwrap_or("(unparsable URL)")
        );
        if let Some(last) = &self.last_url {
            out.push_str(&format!(" -> {last}"));
        }
        if let Some(rule) = &self.rule {
            out.push_str(&format!(" rule={rule}"));
        }
        if let Some(status) = self.status {
            out.push_str(&format!(" status={status}"));
        }
        if let Some(bytes) = self.bytes {
            out.push_str(&format!(" bytes={bytes}"));
        }
        out.push_str(&format!(" redirects={}", self.redirects));
        if !self.credentials.is_empty() {
            out.push_str(&format!(" credentials={}", self.credentials.join(",")));
        }
        if self.scrubbed > 0 {
            out.push_str(&format!("; scrubbed {} reflections", self.scrubbed));
        }
        out
    }
}

fn guest_headers(list: &[fetch::Header]) -> Result<HeaderMap, VerbError> {
    if list.len() > MAX_HEADERS {
        return Err(VerbError::invalid(format!(
            "{} headers; a request carries at most {MAX_HEADERS}",
            list.len()
        )));
    }
    let mut total = 0usize;
    let mut map = HeaderMap::new();
    for h in list {
        if h.name.contains(['\r', '\n', '\0']) || h.value.contains(['\r', '\n', '\0']) {
            return Err(VerbError::invalid(format!(
                "header {:?} contains CR, LF or NUL; remove line breaks from names and values",
                h.name
            )));
        }
        let name = HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| VerbError::invalid(format!("{:?} is not a valid header name", h.name)))?;
        if crate::credential::managed(name.as_str()).is_some() {
            return Err(VerbError::denied(format!(
                "header `{name}` is set by the host, never by the tool"
            )));
        }
        let value = HeaderValue::from_str(&h.value).map_err(|_| {
            VerbError::invalid(format!(
                "the value of header `{name}` has characters HTTP does not allow"
            ))
        })?;
        total = total.saturating_add(h.name.len() + h.value.len());
        map.append(name, value);
    }
    if total > MAX_HEADER_BYTES {
        return Err(VerbError::invalid(format!(
            "headers total {total} bytes; a request carries at most {MAX_HEADER_BYTES}"
        )));
    }
    Ok(map)
}

fn parse_method(raw: &str) -> Result<Method, VerbError> {
    let upper = raw.to_ascii_uppercase();
    Method::from_bytes(upper.as_bytes())
        .map_err(|_| VerbError::invalid(format!("{raw:?} is not an HTTP method")))
}

fn check_method(policy: &Policy, method: &Method) -> Result<(), VerbError> {
    if policy.methods.contains(method) {
        return Ok(());
    }
    let allowed: Vec<&str> = policy.methods.iter().map(Method::as_str).collect();
    Err(VerbError::denied(format!(
        "method {method} is not granted; this tool may use {}",
        allowed.join(", ")
    )))
}

fn allowed_list(policy: &Policy) -> String {
    let shown: Vec<&str> = policy
        .allow
        .iter()
        .take(8)
        .map(|p| p.raw.as_str())
        .collect();
    match shown.len() {
        0 => "it allows no URL".to_string(),
        n if n < policy.allow.len() => format!("it allows {}, ...", shown.join(", ")),
        _ => format!("it allows {}", shown.join(", ")),
    }
}

fn rule_for<'p>(policy: &'p Policy, target: &Target) -> Result<&'p UrlPattern, VerbError> {
    policy.rule_for(target).ok_or_else(|| {
        VerbError::denied(format!(
            "{} is not in this tool's fetch grant ({})",
            target.redacted(),
            allowed_list(policy)
        ))
    })
}

impl FetchState {
    /// The whole `send`: checks, quota, then the hops under one deadline.
    pub(crate) async fn perform(
        &mut self,
        req: fetch::Request,
        note: &mut Note,
    ) -> Result<fetch::Response, VerbError> {
        note.method = req
            .method
            .chars()
            .filter(char::is_ascii_graphic)
            .take(16)
            .collect();
        let policy = self
            .policy
            .clone()
            .map_err(|e| VerbError::denied(format!("this tool's fetch grant is invalid: {e}")))?;
        let method = parse_method(&req.method)?;
        note.method = method.to_string();
        let target =
            Target::parse(None, &req.url).map_err(|e| VerbError::invalid(e.to_string()))?;
        note.url = Some(target.redacted());
        let rule = rule_for(&policy, &target)?;
        note.rule = Some(rule.raw.clone());
        check_method(&policy, &method)?;
        let headers = guest_headers(&req.headers)?;
        let body = req.body.unwrap_or_default();
        if body.len() > policy.max_request_bytes {
            return Err(VerbError::invalid(format!(
                "the request body is {} bytes; this grant sends at most {}",
                body.len(),
                policy.max_request_bytes
            )));
        }
        if self.requests >= policy.max_requests {
            return Err(VerbError::exhausted("fetch-requests"));
        }
        self.requests += 1;
        let limit = policy.timeout.min(self.job.remaining());
        if limit.is_zero() {
            return Err(VerbError::timeout());
        }
        let scrubber = self.scrubber();
        let hops = self.hops(
            &policy,
            &scrubber,
            method,
            target,
            headers,
            body.into(),
            note,
        );
        // A cancelled job drops the request at once: its connection closes.
        match self
            .job
            .cancel()
            .clone()
            .run(tokio::time::timeout(limit, hops))
            .await
        {
            None => Err(VerbError::Cancelled),
            Some(done) => done.unwrap_or_else(|_| Err(VerbError::timeout())),
        }
    }

    /// Follows redirects, re-checking each hop, and builds the response.
    #[allow(clippy::too_many_arguments)]
    async fn hops(
        &self,
        policy: &Policy,
        scrubber: &Scrubber,
        mut method: Method,
        first: Target,
        mut headers: HeaderMap,
        mut body: Bytes,
        note: &mut Note,
    ) -> Result<fetch::Response, VerbError> {
        let origin = first.origin();
        let mut current = first;
        loop {
            let addrs = self.addresses(policy, &current).await?;
            let (request, attached) =
                self.request(policy, &method, &current, &headers, &body, &origin)?;
            for name in attached {
                if !note.credentials.iter().any(|n| n == name) {
                    note.credentials.push(name.to_string());
                }
            }
            let exchange = client::send(&self.shared.tls, &current, &addrs, request).await?;
            let status = exchange.response.status();
            note.status = Some(status.as_u16());
            let location = exchange.response.headers().get(LOCATION).cloned();
            let Some(location) = location.filter(|_| is_redirect(status)) else {
                let (status, headers, body) =
                    client::read_body(exchange, policy.max_response_bytes).await?;
                note.bytes = Some(body.len());
                return Ok(respond(scrubber, status, &headers, &body, &current, note));
            };
            drop(exchange);
            note.redirects += 1;
            if note.redirects > policy.max_redirects {
                return Err(VerbError::exhausted("fetch-redirects"));
            }
            let from = current.redacted();
            let location = location.to_str().map_err(|_| {
                VerbError::upstream(format!("{from} redirected with an unreadable Location"))
            })?;
            let next = Target::parse(Some(&current.url), location)
                .map_err(|e| VerbError::denied(format!("redirect from {from} refused: {e}")))?;
            note.last_url = Some(next.redacted());
            if status == StatusCode::SEE_OTHER && method != Method::HEAD
                || matches!(status.as_u16(), 301 | 302) && method == Method::POST
            {
                method = Method::GET;
                body = Bytes::new();
                headers.remove(CONTENT_TYPE);
                headers.remove(CONTENT_ENCODING);
            }
            let rule = rule_for(policy, &next).map_err(|e| {
                VerbError::denied(format!("redirect from {from} refused: {}", e.reason()))
            })?;
            note.rule = Some(rule.raw.clone());
            check_method(policy, &method)?;
            current = next;
        }
    }

    /// Resolves the host once (IP literals and `localhost` need no DNS) and
    /// refuses the hop if any address is not public and not granted.
    async fn addresses(&self, policy: &Policy, target: &Target) -> Result<Vec<IpAddr>, VerbError> {
        let found = match &target.host {
            CanonHost::Ip(ip) => vec![*ip],
            CanonHost::Domain(d) if d == "localhost" || d.ends_with(".localhost") => {
                vec![
                    IpAddr::V4(Ipv4Addr::LOCALHOST),
                    IpAddr::V6(Ipv6Addr::LOCALHOST),
                ]
            }
            CanonHost::Domain(d) => self
                .shared
                .resolver
                .resolve(d, target.port)
                .await
                .map_err(|e| VerbError::upstream(format!("cannot resolve {d}: {e}")))?,
        };
        let mut addrs: Vec<IpAddr> = Vec::with_capacity(found.len());
        for ip in found.into_iter().map(canon_ip) {
            if !addrs.contains(&ip) {
                addrs.push(ip);
            }
        }
        if addrs.is_empty() {
            return Err(VerbError::upstream(format!(
                "{} has no addresses",
                target.host
            )));
        }
        for ip in &addrs {
            let Some(class) = classify(*ip) else { continue };
            let metadata = class == Class::Metadata;
            if !policy.reachable(*ip, metadata) {
                let advice = if metadata {
                    "only a private_networks entry naming exactly this address unlocks it"
                } else {
                    "a tool reaches it only if the fetch grant lists it in private_networks"
                };
                return Err(VerbError::denied(format!(
                    "address {ip} of {} is {}; {advice}",
                    target.host,
                    class.reason()
                )));
            }
        }
        Ok(addrs)
    }

    /// The request for one hop: the tool's headers, `Host` from the canonical
    /// URL, the encodings the host can decode, and each credential whose
    /// host-config URLs (and toolkit narrowing) match this hop, when the hop
    /// stays on the original origin; with the names of those credentials.
    fn request<'p>(
        &self,
        policy: &'p Policy,
        method: &Method,
        target: &Target,
        headers: &HeaderMap,
        body: &Bytes,
        origin: &Origin,
    ) -> Result<(http::Request<Full<Bytes>>, Vec<&'p str>), VerbError> {
        let mut request = http::Request::builder()
            .method(method.clone())
            .uri(target.path_and_query())
            .body(Full::new(body.clone()))
            .map_err(|e| VerbError::invalid(format!("the URL cannot be sent: {e}")))?;
        let map = request.headers_mut();
        map.extend(headers.clone());
        let host = HeaderValue::from_str(&target.host_header())
            .map_err(|_| VerbError::invalid("the URL's host cannot be sent"))?;
        map.insert(HOST, host);
        map.insert(ACCEPT_ENCODING, HeaderValue::from_static("gzip, deflate"));
        if target.origin() != *origin {
            return Ok((request, Vec::new()));
        }
        let mut set: Vec<&HeaderName> = Vec::new();
        let mut names = Vec::new();
        for rule in policy.credentials.iter().filter(|r| r.applies(target)) {
            let cred = &rule.cred;
            if set.contains(&&cred.header) {
                continue;
            }
            let mut value = HeaderValue::from_bytes(&cred.value()).map_err(|_| {
                VerbError::invalid(format!(
                    "credential `{}` cannot be sent in a header (its value has line breaks or \
                     control bytes)",
                    cred.name
                ))
            })?;
            value.set_sensitive(true);
            request.headers_mut().insert(cred.header.clone(), value);
            set.push(&cred.header);
            names.push(cred.name.as_str());
        }
        Ok((request, names))
    }

    /// The scrubber for this job's credentials (built once per grant).
    pub(crate) fn scrubber(&self) -> Arc<Scrubber> {
        match &self.policy {
            Ok(policy) => policy.scrubber.clone(),
            Err(_) => Arc::default(),
        }
    }
}

fn is_redirect(status: StatusCode) -> bool {
    matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
}

/// The guest-visible response, every header value, the body and the URL scrubbed.
fn respond(
    scrubber: &Scrubber,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    url: &Target,
    note: &mut Note,
) -> fetch::Response {
    let headers: Vec<fetch::Header> = headers
        .iter()
        .map(|(name, value)| {
            let (value, n) = scrubber.scrub(value.as_bytes());
            note.scrubbed += n;
            // A name can carry a secret too (`x-<hex of it>: 1`).
            let (scrubbed, m) = scrubber.scrub(name.as_str().as_bytes());
            note.scrubbed += m;
            let name = match m {
                0 => name.as_str().to_string(),
                _ => String::from_utf8_lossy(&scrubbed).into_owned(),
            };
            fetch::Header {
                name,
                value: String::from_utf8_lossy(&value).into_owned(),
            }
        })
        .collect();
    let (body, n) = scrubber.scrub(body);
    note.scrubbed += n;
    let mut headers = headers;
    if n > 0 {
        // The body changed length: keep the header truthful.
        for h in headers.iter_mut().filter(|h| h.name == "content-length") {
            h.value = body.len().to_string();
        }
    }
    let (url, n) = scrubber.scrub_str(url.url.as_str());
    note.scrubbed += n;
    fetch::Response {
        status: status.as_u16(),
        headers,
        body,
        url,
    }
}
