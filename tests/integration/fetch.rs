//! The `fetch` verb through real guests: `http-probe` hands one request to
//! the verb and returns its exact answer, `page-facts` fetches and parses a
//! page. Every test starts its own HTTP servers on 127.0.0.1:0 and a host
//! whose resolver is a fixed table, then tries one way around the grant and
//! checks the exact error case (`denied`, `invalid`, `exhausted`, `timeout`,
//! `upstream`), a reason fragment, and what the server did (not) see.
//!
//! The server here is shared with the `complete` tests.

use std::convert::Infallible;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use airlock::{Budget, Capabilities, Grants, JobError, JobOutput, Tool};
use airlock_core::Decision;
use airlock_fetch::{CredentialRef, FetchCapability, FetchGrant, StaticResolver};
use airlock_tests::{
    TestHost, assert_host_still_works, budget, caps, grants, host, load_ok, tool_error, verb_error,
};
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{HeaderMap, Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;

// ---------------------------------------------------------------------------
// A real HTTP/1.1 server on 127.0.0.1:0 (also used by the `complete` tests).
// ---------------------------------------------------------------------------

/// The body every test server answers with.
pub(crate) type Body = BoxBody<Bytes, Infallible>;

/// One request as a test server saw it.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    /// `GET`, `POST`...
    pub method: String,
    /// Path and query, as sent.
    pub path: String,
    /// Every header.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

impl Seen {
    /// A header's value, if it was sent.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }

    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("the request body is JSON")
    }
}

type Handler = Arc<dyn Fn(usize, &Seen) -> Response<Body> + Send + Sync>;

/// A real HTTP/1.1 server on 127.0.0.1 that records every request; stopped
/// when dropped.
pub(crate) struct Server {
    /// The port it listens on.
    pub port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    /// Answers the `n`-th request (0-based, over all connections) with
    /// `handler(n, request)`.
    pub async fn start(
        handler: impl Fn(usize, &Seen) -> Response<Body> + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind a loopback port");
        let port = listener.local_addr().expect("local address").port();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let handler: Handler = Arc::new(handler);
        let log = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (log, handler) = (log.clone(), handler.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let (log, handler) = (log.clone(), handler.clone());
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let seen = Seen {
                                method: parts.method.to_string(),
                                path: parts
                                    .uri
                                    .path_and_query()
                                    .map(|p| p.to_string())
                                    .unwrap_or_default(),
                                headers: parts.headers,
                                body,
                            };
                            let n = {
                                let mut log = log.lock().expect("server log");
                                log.push(seen.clone());
                                log.len() - 1
                            };
                            Ok::<_, Infallible>(handler(n, &seen))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { port, seen, task }
    }

    /// A server that accepts connections, reads nothing and never answers.
    pub async fn silent() -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind a loopback port");
        let port = listener.local_addr().expect("local address").port();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        });
        Self {
            port,
            seen: Arc::default(),
            task,
        }
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("server log").clone()
    }

    /// The paths (with queries) of every request so far.
    pub fn paths(&self) -> Vec<String> {
        self.seen().into_iter().map(|s| s.path).collect()
    }
}

/// A response with `status`, `headers` and `body`.
pub(crate) fn respond(
    status: u16,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Response<Body> {
    let mut r = Response::builder().status(status);
    for (name, value) in headers {
        r = r.header(*name, *value);
    }
    r.body(Full::new(body.into()).boxed())
        .expect("a valid test response")
}

/// `200 OK` with `body`.
pub(crate) fn ok(body: impl Into<Bytes>) -> Response<Body> {
    respond(200, &[], body)
}

/// A redirect to `location`.
pub(crate) fn redirect(status: u16, location: &str) -> Response<Body> {
    respond(status, &[("location", location)], Bytes::new())
}

// ---------------------------------------------------------------------------
// The host, the grants and the probe.
// ---------------------------------------------------------------------------

/// The resolver every fetch test host uses: the names of the tests and the
/// addresses they stand for. Nothing resolves through real DNS.
pub(crate) fn resolver() -> StaticResolver {
    let ip = |s: &str| -> IpAddr { s.parse().expect("test address") };
    let lo = [ip("127.0.0.1")];
    StaticResolver::new()
        .with("allowed.test", lo)
        .with("a.allowed.test", lo)
        .with("b.allowed.test", lo)
        .with("evil.test", lo)
        .with("evil-allowed.test", lo)
        .with("xallowed.test", lo)
        .with("allowed.test.evil.test", lo)
        .with("ten.test", [ip("10.0.0.1")])
        .with("meta.test", [ip("169.254.169.254")])
        .with("mixed.test", [ip("93.184.216.34"), ip("192.168.1.1")])
}

/// The fetch capability of the test hosts: no credentials (see
/// `credentials.rs` for those) and the fixed [`resolver`].
fn fetch_capability() -> FetchCapability {
    FetchCapability::new(Vec::new(), Arc::new(resolver())).expect("the TLS defaults build")
}

/// A host with the usual test keys and [`fetch_capability`].
fn fetch_host() -> TestHost {
    host(Capabilities {
        fetch: fetch_capability(),
        ..caps()
    })
}

/// A fetch grant of `allow` with the defaults otherwise.
pub(crate) fn allow(patterns: &[&str]) -> FetchGrant {
    FetchGrant {
        allow: patterns.iter().map(|p| p.to_string()).collect(),
        ..FetchGrant::default()
    }
}

/// [`allow`], plus 127.0.0.1 (where the test servers are) in `private_networks`.
pub(crate) fn local(patterns: &[&str]) -> FetchGrant {
    FetchGrant {
        private_networks: vec!["127.0.0.1".into()],
        ..allow(patterns)
    }
}

/// `fetch` as given and `log` with its defaults: what a `fetcher` tool needs.
pub(crate) fn fetcher(grant: FetchGrant) -> Grants {
    let mut g = grants(json!({ "log": {} }));
    g.fetch = Some(Arc::new(grant));
    g
}

/// `http-probe` under `grant` with the default budget.
pub(crate) fn probe(host: &TestHost, grant: FetchGrant) -> Tool {
    load_ok(host, "http-probe", fetcher(grant), Budget::default())
}

/// The `request` record of the WIT interface, as JSON.
pub(crate) fn request(method: &str, url: &str) -> Value {
    json!({ "method": method, "url": url, "headers": [], "body": null })
}

/// [`request`] with one extra header.
pub(crate) fn with_header(mut req: Value, name: &str, value: &str) -> Value {
    req["headers"]
        .as_array_mut()
        .expect("headers")
        .push(json!({ "name": name, "value": value }));
    req
}

/// [`request`] with a body.
fn with_body(mut req: Value, body: &[u8]) -> Value {
    req["body"] = json!(body);
    req
}

/// One `http-probe` job sending `req`.
pub(crate) async fn send(host: &TestHost, tool: &Tool, req: Value) -> Result<JobOutput, JobError> {
    host.run(tool, Some("send"), &json!({ "req": req })).await
}

/// One `http-probe` job GETting `url`.
pub(crate) async fn get(host: &TestHost, tool: &Tool, url: &str) -> Result<JobOutput, JobError> {
    send(host, tool, request("GET", url)).await
}

/// The response of a job that succeeded.
pub(crate) fn response(result: Result<JobOutput, JobError>, what: &str) -> Value {
    match result {
        Ok(out) => out.value,
        Err(e) => panic!("{what} should have succeeded: {e:?}"),
    }
}

/// The body bytes of a `response` record.
pub(crate) fn body(response: &Value) -> Vec<u8> {
    response["body"]
        .as_array()
        .expect("a body")
        .iter()
        .map(|b| u8::try_from(b.as_u64().expect("a byte")).expect("a byte"))
        .collect()
}

/// The value of header `name` in a `response` record.
pub(crate) fn header(response: &Value, name: &str) -> Option<String> {
    response["headers"]
        .as_array()
        .expect("headers")
        .iter()
        .find(|h| h["name"] == name)
        .map(|h| h["value"].as_str().expect("a header value").to_string())
}

/// Asserts that the job ended with the tool's error being the verb error
/// `case` whose text contains `fragment`.
#[track_caller]
fn refused(result: Result<JobOutput, JobError>, case: &str, fragment: &str) {
    let err = tool_error(result, &format!("a request that should be {case}"));
    let (got, text) = verb_error(&err);
    assert_eq!(got, case, "{err}");
    assert!(text.contains(fragment), "{text:?} lacks {fragment:?}");
}

/// The details of the `fetch` audit records so far, in order.
pub(crate) fn fetch_records(host: &TestHost) -> Vec<(Decision, String)> {
    host.audit
        .records()
        .into_iter()
        .filter(|r| r.verb == "fetch")
        .map(|r| (r.decision, r.detail.unwrap_or_default()))
        .collect()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).expect("gzip in memory");
    e.finish().expect("gzip in memory")
}

// ---------------------------------------------------------------------------
// Allowed requests.
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowed_get_reaches_the_server_and_its_answer_comes_back() {
    let server = Server::start(|_, seen| {
        respond(
            201,
            &[("x-served-by", "test")],
            format!("hello {}", seen.path),
        )
    })
    .await;
    let p = server.port;
    let host = fetch_host();
    let tool = probe(&host, local(&[&format!("http://allowed.test:{p}/api/")]));
    let url = format!("http://allowed.test:{p}/api/x?q=private-words&page=2#frag");
    let req = with_header(request("GET", &url), "X-Trace", "trace-value-1");
    let r = response(send(&host, &tool, req).await, "an allowed GET");
    assert_eq!(r["status"], 201);
    assert_eq!(body(&r), b"hello /api/x?q=private-words&page=2");
    assert_eq!(header(&r, "x-served-by").as_deref(), Some("test"));
    // The fragment never travels; the URL is the canonical one.
    assert_eq!(
        r["url"],
        format!("http://allowed.test:{p}/api/x?q=private-words&page=2")
    );

    let seen = server.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].method, "GET");
    assert_eq!(seen[0].header("host"), Some(format!("allowed.test:{p}")));
    assert_eq!(seen[0].header("x-trace").as_deref(), Some("trace-value-1"));
    assert!(seen[0].header("authorization").is_none());

    // One audit record, query values and header values left out.
    let records = fetch_records(&host);
    assert_eq!(
        records,
        vec![(
            Decision::Allow,
            format!(
                "GET http://allowed.test:{p}/api/x?q=&page= rule=http://allowed.test:{p}/api/ \
                 status=201 bytes=35 redirects=0"
            )
        )]
    );
}

// ---------------------------------------------------------------------------
// The grant's scope: hosts, addresses, redirects, URL tricks, schemes,
// ports, wildcards, methods, paths, sizes and headers.
// ---------------------------------------------------------------------------

/// Redirects by path: `/to` to the request's `x-to` header, `/meta` to the
/// metadata address, `/loop` to itself, `/a` to `/b`; anything else is final.
async fn redirecting_server() -> Server {
    Server::start(|_, seen| match seen.path.as_str() {
        "/to" => redirect(302, &seen.header("x-to").unwrap_or_default()),
        "/meta" => redirect(302, "http://169.254.169.254/latest/meta-data/iam"),
        "/loop" => redirect(307, "/loop"),
        "/a" => redirect(301, "/b"),
        _ => ok(format!("final {}", seen.path)),
    })
    .await
}

mod fetch_scope {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn case_and_one_trailing_dot_are_the_same_host_and_two_dots_are_not() {
        let server = Server::start(|_, _| ok("same host")).await;
        let p = server.port;
        let host = fetch_host();
        let tool = probe(&host, local(&[&format!("http://allowed.test:{p}/")]));
        for url in [
            format!("http://ALLOWED.Test:{p}/"),
            format!("http://allowed.test.:{p}/"),
            format!("HTTP://Allowed.TEST.:{p}/"),
        ] {
            let r = response(get(&host, &tool, &url).await, &url);
            assert_eq!(r["url"], format!("http://allowed.test:{p}/"), "{url}");
            assert_eq!(body(&r), b"same host");
        }
        assert!(
            server
                .seen()
                .iter()
                .all(|s| s.header("host") == Some(format!("allowed.test:{p}"))),
            "{:?}",
            server.seen()
        );
        refused(
            get(&host, &tool, &format!("http://allowed.test..:{p}/")).await,
            "invalid",
            "empty label",
        );
        assert_eq!(server.seen().len(), 3);
    }

    // Addresses.

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_spelling_of_loopback_and_unspecified_is_denied() {
        // A live server on the port, so a request that got through would be seen.
        let server = Server::start(|_, _| ok("reached")).await;
        let p = server.port;
        let host = fetch_host();
        // The grant names each canonical host: only the address check stands in the way.
        let tool = probe(
            &host,
            allow(&[
                &format!("http://127.0.0.1:{p}/"),
                &format!("http://0.0.0.0:{p}/"),
                &format!("http://[::]:{p}/"),
                &format!("http://localhost:{p}/"),
            ]),
        );
        let loopback = "address 127.0.0.1 of 127.0.0.1 is loopback; a tool reaches it only if \
                    the fetch grant lists it in private_networks";
        let table = [
            ("2130706433", loopback),
            ("0x7f000001", loopback),
            ("0177.0.0.1", loopback),
            ("127.1", loopback),
            ("[::ffff:127.0.0.1]", loopback),
            ("[::ffff:7f00:1]", loopback),
            ("[::7f00:1]", loopback),
            ("0.0.0.0", "address 0.0.0.0 of 0.0.0.0 is unspecified"),
            ("[::]", "address :: of [::] is unspecified"),
            ("LOCALHOST", "address 127.0.0.1 of localhost is loopback"),
            ("localhost.", "address 127.0.0.1 of localhost is loopback"),
        ];
        for (spelling, reason) in table {
            let url = format!("http://{spelling}:{p}/");
            refused(get(&host, &tool, &url).await, "denied", reason);
        }
        assert!(server.seen().is_empty(), "{:?}", server.seen());
        let records = fetch_records(&host);
        assert_eq!(records.len(), table.len());
        assert!(
            records
                .iter()
                .all(|(d, _)| matches!(d, Decision::Deny(r) if r.starts_with("denied: address "))),
            "{records:?}"
        );

        // With loopback granted, a numeric spelling reaches the server under its
        // canonical name.
        let tool = probe(&host, local(&[&format!("http://127.0.0.1:{p}/")]));
        for spelling in ["2130706433", "0x7f000001", "[::ffff:7f00:1]"] {
            let r = response(
                get(&host, &tool, &format!("http://{spelling}:{p}/")).await,
                spelling,
            );
            assert_eq!(r["url"], format!("http://127.0.0.1:{p}/"), "{spelling}");
        }
        assert!(
            server
                .seen()
                .iter()
                .all(|s| s.header("host") == Some(format!("127.0.0.1:{p}"))),
            "{:?}",
            server.seen()
        );
        assert_eq!(server.seen().len(), 3);

        // `localhost` stands for both loopback addresses: granting one is not enough.
        let url = format!("http://localhost:{p}/");
        let tool = probe(&host, local(&[&url]));
        refused(
            get(&host, &tool, &url).await,
            "denied",
            "address ::1 of localhost is loopback",
        );
        let tool = probe(
            &host,
            FetchGrant {
                private_networks: vec!["127.0.0.1".into(), "::1".into()],
                ..allow(&[&url])
            },
        );
        let r = response(get(&host, &tool, &url).await, "localhost, both granted");
        assert_eq!(body(&r), b"reached");
        assert_eq!(
            server.seen()[3].header("host"),
            Some(format!("localhost:{p}"))
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_grant_the_host_cannot_honour_is_refused_at_load() {
        let host = fetch_host();
        let why = |grant: FetchGrant| match airlock_tests::load(
            &host,
            "http-probe",
            fetcher(grant),
            Budget::default(),
        ) {
            Err(airlock::LoadError::Grant { tool, reason }) => {
                assert_eq!(tool, "http-probe");
                reason
            }
            Err(e) => panic!("expected a grant refusal, got {e}"),
            Ok(_) => panic!("the grant should have been refused"),
        };
        let reason = why(FetchGrant {
            credentials: vec![CredentialRef::named("missing")],
            ..allow(&["https://api.example.test/"])
        });
        assert_eq!(
            reason,
            "fetch credential `missing`: the host config has no [fetch.credentials.missing] (it \
             defines none); the operator must define it, or remove the reference"
        );
        let reason = why(allow(&["https://*.127.0.0.1/"]));
        assert!(
            reason.contains("`*.` cannot precede an IP address"),
            "{reason}"
        );
        let reason = why(allow(&["api.example.test/"]));
        assert!(
            reason.contains("no scheme; write `https://api.example.test/`"),
            "{reason}"
        );
        let reason = why(FetchGrant {
            private_networks: vec!["0.0.0.0/0".into()],
            ..allow(&["https://api.example.test/"])
        });
        assert!(reason.contains("would allow every address"), "{reason}");
        let reason = why(FetchGrant {
            methods: vec!["CONNECT".into()],
            ..allow(&["https://api.example.test/"])
        });
        assert!(
            reason.contains("method CONNECT cannot be granted"),
            "{reason}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn allowed_names_resolving_to_private_or_metadata_addresses_are_denied() {
        let host = fetch_host();
        let tool = probe(
            &host,
            allow(&[
                "http://allowed.test/",
                "http://ten.test/",
                "http://meta.test/",
                "http://mixed.test/",
            ]),
        );
        let table = [
            (
                "allowed.test",
                "address 127.0.0.1 of allowed.test is loopback",
            ),
            ("ten.test", "address 10.0.0.1 of ten.test is private"),
            (
                "meta.test",
                "address 169.254.169.254 of meta.test is a cloud metadata endpoint",
            ),
            // One private address among public ones is enough.
            ("mixed.test", "address 192.168.1.1 of mixed.test is private"),
        ];
        for (name, reason) in table {
            refused(
                get(&host, &tool, &format!("http://{name}/latest/")).await,
                "denied",
                reason,
            );
        }
        // Granting a network unlocks it, but never the metadata address inside it.
        let tool = probe(
            &host,
            FetchGrant {
                private_networks: vec!["169.254.0.0/16".into()],
                ..allow(&["http://meta.test/"])
            },
        );
        refused(
            get(&host, &tool, "http://meta.test/").await,
            "denied",
            "only a private_networks entry naming exactly this address unlocks it",
        );
    }

    // Redirects.

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redirects_are_followed_only_through_the_grant() {
        let server = redirecting_server().await;
        let p = server.port;
        let host = fetch_host();
        let tool = probe(
            &host,
            local(&[
                &format!("http://allowed.test:{p}/"),
                "http://169.254.169.254/",
            ]),
        );
        let r = response(
            get(&host, &tool, &format!("http://allowed.test:{p}/a")).await,
            "a redirect inside the grant",
        );
        assert_eq!(body(&r), b"final /b");
        assert_eq!(r["url"], format!("http://allowed.test:{p}/b"));

        // Another host on the very same address: not in the grant.
        let req = with_header(
            request("GET", &format!("http://allowed.test:{p}/to")),
            "x-to",
            &format!("http://evil.test:{p}/steal"),
        );
        refused(
            send(&host, &tool, req).await,
            "denied",
            &format!(
                "redirect from http://allowed.test:{p}/to refused: http://evil.test:{p}/steal \
             is not in this tool's fetch grant"
            ),
        );
        // The metadata address: in the grant's URLs, refused by the address check.
        refused(
            get(&host, &tool, &format!("http://allowed.test:{p}/meta")).await,
            "denied",
            "address 169.254.169.254 of 169.254.169.254 is a cloud metadata endpoint",
        );
        // A redirect written with a backslash trick is refused too.
        let req = with_header(
            request("GET", &format!("http://allowed.test:{p}/to")),
            "x-to",
            &format!("http://allowed.test:{p}\\@evil.test/"),
        );
        refused(send(&host, &tool, req).await, "denied", "backslash");
        // Endless redirects use up the per-request redirect budget.
        refused(
            get(&host, &tool, &format!("http://allowed.test:{p}/loop")).await,
            "exhausted",
            "fetch-redirects",
        );

        let paths = server.paths();
        assert!(!paths.iter().any(|p| p.contains("steal")), "{paths:?}");
        // /a, /b, /to, /meta, /to, then the first and five followed /loop hops.
        assert_eq!(
            paths.iter().filter(|p| *p == "/loop").count(),
            6,
            "{paths:?}"
        );
        assert_eq!(paths.len(), 11, "{paths:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_redirect_to_the_metadata_address_outside_the_grant_is_denied() {
        let server = redirecting_server().await;
        let p = server.port;
        let host = fetch_host();
        let tool = probe(&host, local(&[&format!("http://allowed.test:{p}/")]));
        refused(
            get(&host, &tool, &format!("http://allowed.test:{p}/meta")).await,
            "denied",
            &format!(
                "redirect from http://allowed.test:{p}/meta refused: \
             http://169.254.169.254/latest/meta-data/iam is not in this tool's fetch grant"
            ),
        );
        assert_eq!(server.paths(), ["/meta"]);
    }

    // URL tricks, schemes, ports, wildcards, methods and paths.

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn userinfo_and_backslash_tricks_are_invalid() {
        let server = Server::start(|_, _| ok("reached")).await;
        let p = server.port;
        let host = fetch_host();
        let tool = probe(
            &host,
            local(&[
                &format!("http://allowed.test:{p}/"),
                &format!("http://evil.test:{p}/"),
            ]),
        );
        for (url, reason) in [
            (
                format!("http://allowed.test:{p}@evil.test:{p}/"),
                "user information",
            ),
            (
                format!("http://user:pw@allowed.test:{p}/"),
                "user information",
            ),
            (format!("http://@allowed.test:{p}/"), "user information"),
            (
                format!("http://evil.test:{p}\\@allowed.test:{p}/"),
                "backslash",
            ),
            (format!("http://allowed.test:{p}\\.evil.test/"), "backslash"),
            (format!("http://allowed.test:{p}/\t"), "control character"),
            (format!("//allowed.test:{p}/"), "not an absolute URL"),
        ] {
            refused(get(&host, &tool, &url).await, "invalid", reason);
        }
        assert!(server.seen().is_empty(), "{:?}", server.seen());
        // The audit never holds what the tool tried to smuggle.
        for (_, detail) in fetch_records(&host) {
            assert_eq!(detail, "GET (unparsable URL) redirects=0");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_punycode_homograph_is_another_host() {
        let host = fetch_host();
        let tool = probe(&host, allow(&["https://apple.test/"]));
        // A Cyrillic `а` (U+0430) in place of the Latin `a`.
        refused(
            get(&host, &tool, "https://\u{430}pple.test/").await,
            "denied",
            "https://xn--pple-43d.test/ is not in this tool's fetch grant (it allows https://apple.test/)",
        );
        refused(
            get(&host, &tool, "https://xn--pple-43d.test/").await,
            "denied",
            "is not in this tool's fetch grant",
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_wrong_scheme_or_port_is_refused() {
        let server = Server::start(|_, _| ok("reached")).await;
        let p = server.port;
        let host = fetch_host();
        let tool = probe(&host, local(&[&format!("http://allowed.test:{p}/")]));
        for url in [
            format!("https://allowed.test:{p}/"),
            format!("http://allowed.test:{}/", p.wrapping_add(1).max(1)),
            "http://allowed.test/".to_string(),
        ] {
            refused(
                get(&host, &tool, &url).await,
                "denied",
                &format!("is not in this tool's fetch grant (it allows http://allowed.test:{p}/)"),
            );
        }
        for (url, scheme) in [
            (format!("ftp://allowed.test:{p}/"), "ftp"),
            ("file:///etc/passwd".to_string(), "file"),
            (format!("gopher://allowed.test:{p}/"), "gopher"),
            ("data:text/plain,hi".to_string(), "data"),
        ] {
            refused(
                get(&host, &tool, &url).await,
                "invalid",
                &format!("scheme `{scheme}` cannot be fetched; only http and https URLs can"),
            );
        }
        assert!(server.seen().is_empty(), "{:?}", server.seen());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_wildcard_covers_subdomains_only() {
        let server = Server::start(|_, seen| ok(seen.header("host").unwrap_or_default())).await;
        let p = server.port;
        let host = fetch_host();
        let tool = probe(&host, local(&[&format!("http://*.allowed.test:{p}/")]));
        let r = response(
            get(&host, &tool, &format!("http://a.allowed.test:{p}/")).await,
            "a subdomain",
        );
        assert_eq!(body(&r), format!("a.allowed.test:{p}").as_bytes());
        for name in [
            "allowed.test",
            "evil-allowed.test",
            "xallowed.test",
            "allowed.test.evil.test",
            "127.0.0.1",
        ] {
            refused(
                get(&host, &tool, &format!("http://{name}:{p}/")).await,
                "denied",
                "is not in this tool's fetch grant",
            );
        }
        assert_eq!(server.seen().len(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn methods_and_paths_stay_in_the_grants_scope() {
        let server = Server::start(|_, seen| ok(format!("{} {}", seen.method, seen.path))).await;
        let p = server.port;
        let host = fetch_host();
        let tool = probe(&host, local(&[&format!("http://allowed.test:{p}/api/")]));
        let url = |path: &str| format!("http://allowed.test:{p}{path}");
        let r = response(get(&host, &tool, &url("/api/x")).await, "GET in scope");
        assert_eq!(body(&r), b"GET /api/x");
        let r = response(
            send(&host, &tool, request("head", &url("/api/x"))).await,
            "HEAD in scope",
        );
        assert_eq!(r["status"], 200);
        refused(
            send(&host, &tool, request("POST", &url("/api/x"))).await,
            "denied",
            "method POST is not granted; this tool may use GET, HEAD",
        );
        refused(
            send(&host, &tool, request("DELETE", &url("/api/x"))).await,
            "denied",
            "method DELETE is not granted",
        );
        refused(
            get(&host, &tool, &url("/apix")).await,
            "denied",
            "is not in this tool's fetch grant",
        );
        refused(
            get(&host, &tool, &url("/api/../admin")).await,
            "denied",
            &format!("http://allowed.test:{p}/admin is not in this tool's fetch grant"),
        );
        for path in ["/api/..%2fadmin", "/api/%2e%2e%5cadmin", "/api/..;/admin"] {
            refused(get(&host, &tool, &url(path)).await, "invalid", "encoded");
        }
        refused(
            send(&host, &tool, request("G\rT", &url("/api/x"))).await,
            "invalid",
            "is not an HTTP method",
        );
        assert_eq!(server.paths(), ["/api/x", "/api/x"]);
    }

    // Sizes.

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_oversized_request_body_never_leaves_the_host() {
        let server = Server::start(|_, seen| ok(format!("got {}", seen.body.len()))).await;
        let p = server.port;
        let host = fetch_host();
        let tool = probe(
            &host,
            FetchGrant {
                methods: vec!["POST".into()],
                max_request_bytes: 16,
                ..local(&[&format!("http://allowed.test:{p}/")])
            },
        );
        let url = format!("http://allowed.test:{p}/upload");
        refused(
            send(&host, &tool, with_body(request("POST", &url), &[b'x'; 17])).await,
            "invalid",
            "the request body is 17 bytes; this grant sends at most 16",
        );
        assert!(server.seen().is_empty());
        let r = response(
            send(&host, &tool, with_body(request("POST", &url), &[b'x'; 16])).await,
            "a body at the cap",
        );
        assert_eq!(body(&r), b"got 16");
        assert_eq!(server.seen()[0].body.as_ref(), [b'x'; 16].as_slice());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn oversized_responses_and_gzip_bombs_are_cut_off() {
        const CAP: usize = 64 << 10;
        let bomb = gzip(&vec![0u8; 10 << 20]);
        assert!(bomb.len() < 64 << 10, "the bomb is {} bytes", bomb.len());
        let small = gzip(b"small and fine");
        let server = Server::start(move |_, seen| match seen.path.as_str() {
            "/big" => ok(vec![b'a'; CAP + 1]),
            "/exact" => ok(vec![b'a'; CAP]),
            "/bomb" => respond(200, &[("content-encoding", "gzip")], bomb.clone()),
            "/gzip" => respond(200, &[("content-encoding", "gzip")], small.clone()),
            _ => respond(200, &[("content-encoding", "br")], vec![1, 2, 3]),
        })
        .await;
        let p = server.port;
        let host = fetch_host();
        let tool = probe(
            &host,
            FetchGrant {
                max_response_bytes: CAP,
                ..local(&[&format!("http://allowed.test:{p}/")])
            },
        );
        let url = |path: &str| format!("http://allowed.test:{p}{path}");
        refused(
            get(&host, &tool, &url("/big")).await,
            "exhausted",
            "fetch-response-bytes",
        );
        refused(
            get(&host, &tool, &url("/bomb")).await,
            "exhausted",
            "fetch-response-bytes",
        );
        let r = response(get(&host, &tool, &url("/exact")).await, "a body at the cap");
        assert_eq!(body(&r).len(), CAP);
        let r = response(get(&host, &tool, &url("/gzip")).await, "a small gzip body");
        assert_eq!(body(&r), b"small and fine");
        assert_eq!(header(&r, "content-encoding"), None);
        refused(
            get(&host, &tool, &url("/br")).await,
            "upstream",
            "the response uses content-encoding `br`, which the host did not ask for",
        );
        assert_host_still_works(&host).await;
    }

    // Headers.

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn header_injection_and_host_only_headers_are_refused() {
        let server = Server::start(|_, _| ok("reached")).await;
        let p = server.port;
        let host = fetch_host();
        let url = format!("http://allowed.test:{p}/");
        let tool = probe(&host, local(&[&url]));
        for (name, value) in [
            ("x-a", "1\r\nHost: evil.test"),
            ("x-a", "1\nx-injected: yes"),
            ("x-a\r\nhost", "v"),
            ("x-a", "nul\0byte"),
        ] {
            refused(
                send(&host, &tool, with_header(request("GET", &url), name, value)).await,
                "invalid",
                "contains CR, LF or NUL",
            );
        }
        for name in [
            "Host",
            "authorization",
            "Cookie",
            "proxy-authorization",
            "transfer-encoding",
            "content-length",
            "connection",
        ] {
            refused(
                send(&host, &tool, with_header(request("GET", &url), name, "x")).await,
                "denied",
                "is set by the host, never by the tool",
            );
        }
        refused(
            send(
                &host,
                &tool,
                with_header(request("GET", &url), "bad name", "v"),
            )
            .await,
            "invalid",
            "is not a valid header name",
        );
        assert!(server.seen().is_empty(), "{:?}", server.seen());
    }
}

// ---------------------------------------------------------------------------
// Upstreams that fail.
// ---------------------------------------------------------------------------

mod hostcall_time {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_upstream_that_never_answers_times_out_and_the_host_goes_on() {
        let silent = Server::silent().await;
        let s = silent.port;
        let host = fetch_host();
        let url = format!("http://allowed.test:{s}/");

        // The grant's timeout is the sooner: the verb answers `timeout` and the
        // tool returns it as its own error.
        let tool = probe(
            &host,
            FetchGrant {
                timeout: "300ms".into(),
                ..local(&[&url])
            },
        );
        let started = Instant::now();
        let err = tool_error(
            get(&host, &tool, &url).await,
            "a request to a silent server",
        );
        let took = started.elapsed();
        assert_eq!(err, json!("timeout"));
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_secs(3),
            "{took:?}"
        );
        assert!(matches!(
            &fetch_records(&host)[0].0,
            Decision::Deny(d) if d == "timeout: deadline passed"
        ));

        // The job's deadline is the sooner: the verb's wait ends at the deadline
        // and the job ends with the deadline budget, not the tool's answer.
        let tool = load_ok(
            &host,
            "http-probe",
            fetcher(local(&[&url])),
            budget(|b| b.timeout = Duration::from_millis(400)),
        );
        let started = Instant::now();
        let err = get(&host, &tool, &url).await;
        let took = started.elapsed();
        assert!(
            matches!(
                &err,
                Err(JobError::Budget {
                    which: airlock::BudgetKind::Deadline,
                    ..
                })
            ),
            "{err:?}"
        );
        assert!(
            took >= Duration::from_millis(400) && took < Duration::from_secs(3),
            "{took:?}"
        );
        // The call the deadline cut short is audited all the same.
        let records = fetch_records(&host);
        assert_eq!(records.len(), 2, "{records:?}");
        assert_eq!(
            records[1].0,
            Decision::Deny("timeout: deadline passed".into())
        );

        // The host keeps working: a fetch to a live server and a pure tool.
        let live = Server::start(|_, _| ok("still here")).await;
        let tool = probe(
            &host,
            local(&[&format!("http://allowed.test:{}/", live.port)]),
        );
        let r = response(
            get(&host, &tool, &format!("http://allowed.test:{}/", live.port)).await,
            "a fetch after the timeouts",
        );
        assert_eq!(body(&r), b"still here");
        assert_host_still_works(&host).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_port_or_an_unknown_name_is_an_upstream_error() {
    let closed = {
        let l = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        l.local_addr().expect("address").port()
    };
    let host = fetch_host();
    let tool = probe(
        &host,
        local(&[
            &format!("http://allowed.test:{closed}/"),
            "http://nowhere.test/",
        ]),
    );
    refused(
        get(&host, &tool, &format!("http://allowed.test:{closed}/")).await,
        "upstream",
        &format!("connection to allowed.test:{closed} failed"),
    );
    refused(
        get(&host, &tool, "http://nowhere.test/").await,
        "upstream",
        "cannot resolve nowhere.test",
    );
}

// ---------------------------------------------------------------------------
// page-facts: a tool that does something with what it fetched.
// ---------------------------------------------------------------------------

const PAGE: &str = "<!doctype html>
<html><head><TITLE>  Airlock
   facts </TITLE></head>
<body><h1>Hello, world</h1>
<p>Read <a class=\"x\" href=\"/docs/intro\">the intro</a> or
<A HREF='https://example.test/x?y=1'>this</A> page.</p>
<link rel=\"stylesheet\" href=\"/style.css\">
</body></html>
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_facts_reports_title_links_and_words_of_an_allowed_page() {
    let server = Server::start(|_, _| respond(200, &[("content-type", "text/html")], PAGE)).await;
    let p = server.port;
    let host = fetch_host();
    let tool = load_ok(
        &host,
        "page-facts",
        fetcher(local(&[&format!("http://allowed.test:{p}/")])),
        Budget::default(),
    );
    let url = format!("http://allowed.test:{p}/page?session=abc123&lang=en");
    let out = host
        .run(&tool, Some("facts"), &json!({ "url": url }))
        .await
        .expect("page-facts runs");
    assert_eq!(
        out.value,
        json!({
            "title": "Airlock facts",
            "links": ["/docs/intro", "https://example.test/x?y=1", "/style.css"],
            // Airlock facts Hello, world Read the intro or this page.
            "words": 10,
            "status": 200,
        })
    );
    assert_eq!(out.logs.len(), 1, "{:?}", out.logs);
    assert_eq!(
        out.logs[0].message,
        format!("fetched {} bytes from {url}", PAGE.len())
    );
    assert_eq!(server.paths(), ["/page?session=abc123&lang=en"]);

    // A refused fetch is the tool's error, naming the verb's reason.
    let err = tool_error(
        host.run(
            &tool,
            Some("facts"),
            &json!({ "url": "http://evil.test/?token=zzz999" }),
        )
        .await,
        "page-facts of a page outside the grant",
    );
    let err = err.as_str().expect("a string error");
    assert!(
        err.starts_with("fetch denied: ") && err.contains("evil.test"),
        "{err}"
    );

    // One fetch record per request, query values removed.
    let records = fetch_records(&host);
    assert_eq!(records.len(), 2, "{records:?}");
    assert_eq!(
        records[0],
        (
            Decision::Allow,
            format!(
                "GET http://allowed.test:{p}/page?session=&lang= rule=http://allowed.test:{p}/ \
                 status=200 bytes={} redirects=0",
                PAGE.len()
            )
        )
    );
    assert!(
        matches!(&records[1].0, Decision::Deny(d) if d.starts_with("denied: http://evil.test/?token= is not in")),
        "{records:?}"
    );
    for (_, detail) in &records {
        assert!(
            !detail.contains("abc123") && !detail.contains("zzz999"),
            "{detail}"
        );
    }
}
