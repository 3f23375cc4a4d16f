//! Wasm-free tests of the fetch verb: `Host::send` on a `FetchState`, against
//! real hyper servers bound to 127.0.0.1:0 inside each test, with a
//! `StaticResolver` standing in for DNS.

mod bypass;
mod compare;
mod compare_props;
mod grants;
mod live;
mod props;
mod scrub;

use super::*;
use airlock_core::MemoryAudit;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use secrecy::SecretSlice;
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Mutex;
use std::time::Duration;
use tokio::net::TcpListener;

/// The secret the test host holds; full of characters that encode visibly.
pub const SECRET: &str = "s3cr3t/T0KEN+with=chars&more";

pub fn ip(text: &str) -> IpAddr {
    text.parse().expect("test address")
}

/// Names the tests use: `*.test` to loopback, plus a few private ones.
pub fn resolver() -> StaticResolver {
    let lo = [ip("127.0.0.1")];
    StaticResolver::new()
        .with("allowed.test", lo)
        .with("a.allowed.test", lo)
        .with("b.allowed.test", lo)
        .with("evil.test", lo)
        .with("other.test", lo)
        .with("ten.test", [ip("10.0.0.1")])
        .with("meta.test", [ip("169.254.169.254")])
        .with("meta.allowed.test", [ip("169.254.169.254")])
        .with("mixed.test", [ip("93.184.216.34"), ip("192.168.1.1")])
        .with("mapped.test", [ip("::ffff:127.0.0.1")])
}

/// Host credential `name`: `Authorization: Bearer` + [`SECRET`] to `urls`.
pub fn host_credential(name: &str, urls: &[&str]) -> HostCredential {
    let spec = CredentialSpec {
        secret: "token".into(),
        header: "Authorization".into(),
        format: Some("Bearer {}".into()),
        urls: urls.iter().map(|u| u.to_string()).collect(),
    };
    HostCredential::new(name, &spec, SecretSlice::from(SECRET.as_bytes().to_vec()))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

pub fn capability_with(credentials: Vec<HostCredential>) -> FetchCapability {
    FetchCapability::new(credentials, Arc::new(resolver())).expect("tls config")
}

/// The test host: credential `token` bound to `https://api.example.com/`.
pub fn capability() -> FetchCapability {
    capability_with(vec![host_credential(
        "token",
        &["https://api.example.com/"],
    )])
}

pub fn grant(allow: &[&str]) -> FetchGrant {
    FetchGrant {
        allow: allow.iter().map(|s| s.to_string()).collect(),
        ..FetchGrant::default()
    }
}

/// A grant that may reach the loopback test servers.
pub fn local(allow: &[&str]) -> FetchGrant {
    FetchGrant {
        private_networks: vec!["127.0.0.1".into()],
        ..grant(allow)
    }
}

pub fn state_in(
    cap: &FetchCapability,
    g: FetchGrant,
    deadline: Duration,
) -> (FetchState, Arc<MemoryAudit>) {
    let audit = Arc::new(MemoryAudit::default());
    let job = Job::new(3, "t".into(), Instant::now() + deadline, audit.clone());
    (cap.state(Arc::new(g), job), audit)
}

pub fn state(g: FetchGrant) -> (FetchState, Arc<MemoryAudit>) {
    state_in(&capability(), g, Duration::from_secs(10))
}

pub fn request(method: &str, url: &str) -> fetch::Request {
    fetch::Request {
        method: method.into(),
        url: url.into(),
        headers: vec![],
        body: None,
    }
}

pub async fn get(s: &mut FetchState, url: &str) -> Result<fetch::Response, VerbError> {
    fetch::Host::send(s, request("GET", url)).await
}

pub fn guest_err<T: std::fmt::Debug>(r: Result<T, VerbError>) -> WitError {
    match r {
        Err(VerbError::Guest(e)) => e,
        other => panic!("expected a guest error, got {other:?}"),
    }
}

pub fn denied_with<T: std::fmt::Debug>(r: Result<T, VerbError>, words: &str) {
    match guest_err(r) {
        WitError::Denied(reason) => assert!(reason.contains(words), "{reason:?} lacks {words:?}"),
        other => panic!("expected denied({words}), got {other:?}"),
    }
}

pub fn invalid_with<T: std::fmt::Debug>(r: Result<T, VerbError>, words: &str) {
    match guest_err(r) {
        WitError::Invalid(reason) => assert!(reason.contains(words), "{reason:?} lacks {words:?}"),
        other => panic!("expected invalid({words}), got {other:?}"),
    }
}

pub fn exhausted_with<T: std::fmt::Debug>(r: Result<T, VerbError>, which: &str) {
    match guest_err(r) {
        WitError::Exhausted(w) => assert_eq!(w, which),
        other => panic!("expected exhausted({which}), got {other:?}"),
    }
}

/// What a test server saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: ::http::HeaderMap,
    pub body: Vec<u8>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }
}

type Handler = Arc<dyn Fn(&Seen) -> ::http::Response<Full<Bytes>> + Send + Sync>;

/// A real HTTP/1.1 server on 127.0.0.1:0, stopped when dropped.
pub struct Server {
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
    pub async fn start(
        handler: impl Fn(&Seen) -> ::http::Response<Full<Bytes>> + Send + Sync + 'static,
    ) -> Self {
        Self::start_with(handler, None).await
    }

    /// Serves TLS with the test leaf certificate for `allowed.test`.
    pub async fn start_tls(
        handler: impl Fn(&Seen) -> ::http::Response<Full<Bytes>> + Send + Sync + 'static,
    ) -> Self {
        let cert = CertificateDer::from(include_bytes!("certs/leaf.der").to_vec());
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(
            include_bytes!("certs/leaf.key.der").to_vec().into(),
        );
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .expect("test cert");
        Self::start_with(
            handler,
            Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))),
        )
        .await
    }

    async fn start_with(
        handler: impl Fn(&Seen) -> ::http::Response<Full<Bytes>> + Send + Sync + 'static,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let handler: Handler = Arc::new(handler);
        let (log, tls) = (seen.clone(), tls);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (log, handler, tls) = (log.clone(), handler.clone(), tls.clone());
                tokio::spawn(async move {
                    let service =
                        hyper::service::service_fn(move |req: ::http::Request<Incoming>| {
                            let (log, handler) = (log.clone(), handler.clone());
                            async move {
                                let (parts, body) = req.into_parts();
                                let body = body
                                    .collect()
                                    .await
                                    .map(|b| b.to_bytes().to_vec())
                                    .unwrap_or_default();
                                let seen = Seen {
                                    method: parts.method.to_string(),
                                    path: parts.uri.to_string(),
                                    headers: parts.headers,
                                    body,
                                };
                                let response = handler(&seen);
                                log.lock().expect("log").push(seen);
                                Ok::<_, Infallible>(response)
                            }
                        });
                    let builder = hyper::server::conn::http1::Builder::new();
                    match tls {
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(stream).await {
                                let _ = builder
                                    .serve_connection(TokioIo::new(stream), service)
                                    .await;
                            }
                        }
                        None => {
                            let _ = builder
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        }
                    }
                });
            }
        });
        Self { port, seen, task }
    }

    /// A server that accepts connections and never answers.
    pub async fn silent() -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
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

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("log").clone()
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }
}

pub fn ok(body: impl Into<Bytes>) -> ::http::Response<Full<Bytes>> {
    ::http::Response::new(Full::new(body.into()))
}

pub fn redirect(status: u16, location: &str) -> ::http::Response<Full<Bytes>> {
    ::http::Response::builder()
        .status(status)
        .header("location", location)
        .body(Full::new(Bytes::new()))
        .expect("response")
}
