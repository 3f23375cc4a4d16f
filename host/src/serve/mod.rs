//! `airlock serve`: one process serving several toolkits over streamable
//! HTTP, each at `/toolkits/NAME/mcp`, statelessly (no session is kept, so
//! any replica answers any request), behind bearer tokens or OAuth, with
//! `/healthz`, `/readyz` and Prometheus `/metrics`, and a drain on SIGTERM.

pub mod config;
pub mod metrics;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use airlock_core::{AuditRecord, AuditSink, Decision};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub use config::{ServeSpec, ToolkitEntry};
pub use metrics::Metrics;

use crate::cancel::CallWatch;
use crate::http_server::{BoxedBody, Handler, Tracked, close, text};
use crate::mcp::{Endpoint, Toolbox};
use crate::mcp_http::HttpLimits;
use crate::{Airlock, mcp};

/// Liveness: answers 200 while the process serves HTTP at all.
pub const HEALTH_PATH: &str = "/healthz";
/// Readiness: 200 once every toolkit is loaded, compiled and world-checked
/// (before the port is even opened), 503 from the start of a drain.
pub const READY_PATH: &str = "/readyz";
/// Prometheus metrics, in the text format.
pub const METRICS_PATH: &str = "/metrics";
/// Where OAuth protected-resource metadata is published (RFC 9728), for
/// the server and, below it, for each toolkit's path.
pub const METADATA_PATH: &str = "/.well-known/oauth-protected-resource";
/// Where `airlock serve` listens when neither `[serve] listen` nor
/// `--listen` says.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// How long a drain lets calls in flight go on when `[serve] drain` does
/// not say.
pub const DEFAULT_DRAIN: Duration = Duration::from_secs(20);

/// The path toolkit `name` is served at.
pub fn toolkit_path(name: &str) -> String {
    format!("/toolkits/{name}/mcp")
}

/// What one `airlock serve` process serves.
pub struct Server {
    /// The host every toolkit's jobs run in.
    pub host: Arc<Airlock>,
    /// The toolkits by name, loaded and checked.
    pub toolkits: BTreeMap<String, Arc<Toolbox>>,
    /// Connection and request limits (`[mcp]`).
    pub limits: HttpLimits,
    /// `Host` values accepted besides loopback names and the listen address.
    pub allowed_hosts: Vec<String>,
    /// How long a drain waits for calls in flight.
    pub drain: Duration,
    /// Where jobs are counted.
    pub metrics: Arc<Metrics>,
    /// Who may call which toolkit; `None` on loopback without credentials
    /// configured (anyone who reaches the port may call).
    pub auth: Option<airlock_auth::Authenticator>,
}

/// Serves `server` on `listener` until the process is asked to stop
/// (SIGTERM, Ctrl-C) or `stop` is cancelled; then drains: `/readyz` says 503,
/// no new connection is accepted, requests still arriving on open ones are
/// answered 503, calls in flight get up to the drain time, and whatever
/// still runs is cancelled (and audited as such).
pub async fn run(
    server: Server,
    listener: tokio::net::TcpListener,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let bound = listener.local_addr()?;
    let watch = CallWatch::new();
    let mut hosts = vec![
        bound.ip().to_string(),
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "[::1]".to_string(),
    ];
    hosts.extend(server.allowed_hosts.iter().cloned());
    let toolkits = server
        .toolkits
        .iter()
        .map(|(name, toolbox)| {
            let path = toolkit_path(name);
            let endpoint = mcp::endpoint(
                toolbox.clone(),
                path.clone(),
                hosts.clone(),
                &server.limits,
                watch.clone(),
            );
            (path, (name.clone(), toolbox.clone(), endpoint))
        })
        .collect();
    let router = Arc::new(Router {
        toolkits,
        host: server.host.clone(),
        audit: server.host.audit().clone(),
        auth: server.auth,
        metrics: server.metrics.clone(),
        draining: AtomicBool::new(false),
        in_flight: Arc::new(InFlight::default()),
    });
    let accepting = crate::http_server::accept(
        listener,
        &server.limits,
        router.clone(),
        CancellationToken::new(),
    );
    tokio::select! {
        accepted = accepting => return accepted,
        () = stopped(stop) => {}
    }
    // The listener is closed with the accept loop: a load balancer sends
    // new connections elsewhere.
    router.draining.store(true, Ordering::SeqCst);
    let until = Instant::now() + server.drain;
    crate::term::errln!(
        "airlock serve: draining: {} calls in flight get up to {}",
        router.in_flight.count(),
        humantime::format_duration(server.drain)
    );
    while router.in_flight.count() > 0 && Instant::now() < until {
        let _ = tokio::time::timeout(
            until.saturating_duration_since(Instant::now()),
            router.in_flight.idle.notified(),
        )
        .await;
    }
    let left = router.in_flight.count();
    if left > 0 {
        crate::term::errln!("airlock serve: drain time over: cancelling {left} calls");
    }
    watch.stop();
    // The cancelled jobs end within a tick; their answers (`cancelled`) are
    // written before the process goes.
    let until = Instant::now() + Duration::from_secs(2);
    while (router.in_flight.count() > 0 || server.host.jobs_running() > 0) && Instant::now() < until
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

/// Until SIGTERM, Ctrl-C or `stop`.
async fn stopped(stop: CancellationToken) {
    #[cfg(unix)]
    let terminated = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminated = std::future::pending::<()>();
    tokio::select! {
        () = stop.cancelled() => {}
        _ = tokio::signal::ctrl_c() => {}
        () = terminated => {}
    }
}

/// Requests being answered, for the drain.
#[derive(Default)]
struct InFlight {
    count: AtomicUsize,
    idle: Notify,
}

impl InFlight {
    fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    fn enter(self: &Arc<Self>) -> InFlightGuard {
        self.count.fetch_add(1, Ordering::SeqCst);
        InFlightGuard(self.clone())
    }
}

/// One request in flight until its response is sent or dropped.
struct InFlightGuard(Arc<InFlight>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// Routes a request to an operational endpoint or a toolkit's MCP endpoint.
struct Router {
    /// By path: the toolkit's name, its tools and its endpoint.
    toolkits: BTreeMap<String, (String, Arc<Toolbox>, Endpoint)>,
    host: Arc<Airlock>,
    audit: Arc<dyn AuditSink>,
    auth: Option<airlock_auth::Authenticator>,
    metrics: Arc<Metrics>,
    draining: AtomicBool,
    in_flight: Arc<InFlight>,
}

impl Handler for Router {
    async fn handle(
        &self,
        req: Request<Incoming>,
        arrived: impl FnOnce() + Send,
    ) -> Response<BoxedBody> {
        let path = req.uri().path().to_string();
        let get = req.method() == Method::GET;
        match path.as_str() {
            HEALTH_PATH if get => text(StatusCode::OK, "ok\n".into()),
            READY_PATH if get => self.ready(),
            METRICS_PATH if get => {
                let body = self
                    .metrics
                    .render(self.host.jobs_running(), self.host.max_jobs());
                let mut response = Response::new(Full::new(Bytes::from(body)).boxed());
                response.headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static(
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    ),
                );
                response
            }
            _ if get && path.starts_with(METADATA_PATH) => self.metadata(&path),
            _ => {
                let Some((name, _tools, endpoint)) = self.toolkits.get(&path) else {
                    let known: Vec<&str> = self.toolkits.keys().map(String::as_str).collect();
                    return text(
                        StatusCode::NOT_FOUND,
                        format!(
                            "not found: the toolkits are at {}; {HEALTH_PATH}, {READY_PATH} and \
                             {METRICS_PATH} are the operator's\n",
                            known.join(", ")
                        ),
                    );
                };
                if self.draining.load(Ordering::SeqCst) {
                    return close(text(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "this replica is draining: retry on another\n".into(),
                    ));
                }
                if let Some(auth) = &self.auth {
                    let header = req
                        .headers()
                        .get(hyper::header::AUTHORIZATION)
                        .and_then(|v| v.to_str().ok());
                    if let Err(e) = auth.check(header, name).await {
                        refused(&*self.audit, &self.metrics, name, &e.to_string());
                        return self.challenge(&e, &path);
                    }
                }
                let guard = self.in_flight.enter();
                let response = endpoint.handle(req, arrived).await;
                response.map(|inner| {
                    Tracked {
                        inner,
                        _guard: guard,
                    }
                    .boxed()
                })
            }
        }
    }
}

impl Router {
    /// 401 or 403 with the `WWW-Authenticate` challenge for `e`, pointing
    /// an OAuth client at the protected-resource metadata of `path`.
    fn challenge(&self, e: &airlock_auth::AuthError, path: &str) -> Response<BoxedBody> {
        let metadata = self
            .auth
            .as_ref()
            .and_then(|a| a.resource())
            .map(|base| format!("{}{METADATA_PATH}{path}", base.trim_end_matches('/')));
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::UNAUTHORIZED);
        let mut response = text(status, format!("{e}\n"));
        if let Ok(v) = HeaderValue::from_str(&e.www_authenticate(metadata.as_deref())) {
            response
                .headers_mut()
                .insert(hyper::header::WWW_AUTHENTICATE, v);
        }
        response
    }

    /// The OAuth protected-resource metadata (RFC 9728) of the resource
    /// whose path follows [`METADATA_PATH`]: a toolkit, or the server.
    fn metadata(&self, path: &str) -> Response<BoxedBody> {
        let resource_path = &path[METADATA_PATH.len()..];
        let known = resource_path.is_empty() || self.toolkits.contains_key(resource_path);
        let document = self.auth.as_ref().filter(|_| known).and_then(|a| {
            let base = a.resource()?.trim_end_matches('/');
            a.resource_metadata(&format!("{base}{resource_path}"))
        });
        match document {
            Some(doc) => {
                let mut response = Response::new(Full::new(Bytes::from(doc.to_string())).boxed());
                response
                    .headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                response
            }
            None => text(
                StatusCode::NOT_FOUND,
                "no protected-resource metadata here: [serve.oauth] with `resource` \
                 publishes it for each toolkit\n"
                    .into(),
            ),
        }
    }

    /// 200 with each toolkit's tool count, or 503 while draining.
    fn ready(&self) -> Response<BoxedBody> {
        if self.draining.load(Ordering::SeqCst) {
            return text(StatusCode::SERVICE_UNAVAILABLE, "draining\n".into());
        }
        let toolkits: serde_json::Map<String, serde_json::Value> = self
            .toolkits
            .values()
            .map(|(name, tools, _)| (name.clone(), tools.len().into()))
            .collect();
        let body = serde_json::json!({ "ready": true, "toolkits": toolkits });
        let mut response = Response::new(Full::new(Bytes::from(body.to_string())).boxed());
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        response
    }
}

/// An audit record for a request refused before any job: `reason` is the
/// refusal's, never a credential.
pub fn refusal_record(toolkit: &str, reason: String) -> AuditRecord {
    AuditRecord {
        time: SystemTime::now(),
        job: 0,
        tool: toolkit.to_string(),
        verb: "serve",
        op: "auth",
        decision: Decision::Deny(reason),
        duration: Duration::ZERO,
        detail: None,
        content: None,
    }
}

/// Records a refusal in `audit` and `metrics`.
pub fn refused(audit: &dyn AuditSink, metrics: &Metrics, toolkit: &str, reason: &str) {
    metrics.auth_refused(toolkit, reason);
    audit.record(refusal_record(toolkit, reason.to_string()));
}
