//! The streamable-HTTP listener of `airlock mcp --http`: rmcp's MCP service
//! behind a hyper HTTP/1.1 server that sets `TCP_NODELAY` on every socket and
//! bounds what one client can hold: a request's head and body must arrive
//! within a timeout, connections and sessions are capped, idle sessions expire.
//!
//! Over [`HttpLimits::max_connections`], a new connection closes the one that
//! has waited longest for a request (a slow or idle client, or one holding a
//! session's standalone SSE stream, on which airlock sends nothing), never
//! one with a request in progress; when every connection is busy it waits in
//! the kernel's backlog. Over [`HttpLimits::max_sessions`], a new `initialize` is
//! answered `503` and existing sessions are untouched; sessions idle for
//! [`HttpLimits::session_idle`] are closed, which frees their slots.
//!
//! The HTTP answers are fixed here where rmcp's differ from what clients
//! expect: a body that is not JSON-RPC is `400` with a JSON-RPC parse error
//! (rmcp says `415`), a `DELETE` of a session is `204` (rmcp says `202`) and
//! of an unknown session `404`.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full, Limited};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{CONNECTION, CONTENT_TYPE, RETRY_AFTER};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use rmcp::handler::server::ServerHandler;
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::streamable_http_server::session::local::{
    LocalSessionManager, LocalSessionManagerError,
};
use rmcp::transport::streamable_http_server::session::{
    RestoreOutcome, ServerSseMessage, SessionId, SessionManager,
};
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio::sync::{Notify, Semaphore};

use crate::cancel::{CallWatch, ConnectionGone};

/// The most bytes one request body may have (rmcp's own limit too).
pub const MAX_BODY_BYTES: usize = 4 << 20;

/// What one client may hold of an HTTP MCP server; the host config's `[mcp]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpLimits {
    /// A request's head, and then its body, must each arrive within this; an
    /// idle keep-alive connection is closed after it too.
    pub header_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
    /// MCP sessions open at once.
    pub max_sessions: usize,
    /// A session with no message for this long is closed.
    pub session_idle: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(5),
            max_connections: 256,
            max_sessions: 1024,
            session_idle: Duration::from_secs(600),
        }
    }
}

type BoxedBody = BoxBody<Bytes, Infallible>;

/// Serves the handlers `factory` makes over streamable HTTP at `path` on
/// `listener`, accepting only `allowed_hosts` (and `http://` origins of
/// them), within `limits`. Returns only on a fatal error.
pub async fn serve<S, F>(
    factory: F,
    listener: tokio::net::TcpListener,
    path: &'static str,
    allowed_hosts: Vec<String>,
    limits: HttpLimits,
    watch: CallWatch,
) -> anyhow::Result<()>
where
    S: ServerHandler + Send + 'static,
    F: Fn() -> S + Send + Sync + 'static,
{
    let origins: Vec<String> = allowed_hosts
        .iter()
        .map(|h| format!("http://{h}"))
        .collect();
    let config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(allowed_hosts)
        .with_allowed_origins(origins)
        .with_max_request_body_bytes(MAX_BODY_BYTES);
    let sessions = Arc::new(CappedSessions::new(&limits));
    let app = Arc::new(App {
        mcp: StreamableHttpService::new(move || Ok(factory()), sessions.clone(), config),
        sessions,
        path,
        limits: limits.clone(),
        refused: Throttle::default(),
        watch,
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let slots = Arc::new(Slots {
        permits: Arc::new(Semaphore::new(
            limits.max_connections.min(Semaphore::MAX_PERMITS),
        )),
        idle: Mutex::new(Idle::default()),
    });
    let evicted = Throttle::default();
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                eprintln!("airlock mcp: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Without it, a response written in pieces waits for the client's
        // delayed ACK: ~40 ms a request for clients that do not set it either.
        if let Err(e) = stream.set_nodelay(true) {
            eprintln!("airlock mcp: cannot set TCP_NODELAY for {peer}: {e}");
        }
        let permit = match slots.permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if slots.evict_longest_waiting() {
                    evicted.note(|n| {
                        format!(
                            "airlock mcp: {} connections open (max_connections): closed {n} that \
                             waited longest for a request, to accept new ones",
                            limits.max_connections
                        )
                    });
                }
                // Every connection busy: wait for one to end.
                slots.permits.clone().acquire_owned().await?
            }
        };
        let conn = Arc::new(Conn {
            slots: slots.clone(),
            kill: Notify::new(),
            key: AtomicU64::new(0),
            closed: AtomicBool::new(false),
        });
        conn.idle();
        let app = app.clone();
        let http = http.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let service = {
                let conn = conn.clone();
                hyper::service::service_fn(move |req: Request<Incoming>| {
                    let app = app.clone();
                    let conn = conn.clone();
                    async move {
                        // A GET is the session's standalone SSE stream, on
                        // which airlock sends nothing: holding one open is
                        // waiting, and closing it loses nothing. Any other
                        // request is busy once its whole body is in: one
                        // sending its body slowly is still waiting.
                        let get = req.method() == Method::GET;
                        let working = conn.clone();
                        let guard = IdleOnDrop(conn);
                        let busy = move || {
                            if !get {
                                working.busy();
                            }
                        };
                        let response = app.handle(req, busy).await;
                        Ok::<_, Infallible>(response.map(|inner| Tracked {
                            inner,
                            _guard: guard,
                        }))
                    }
                })
            };
            let served = http.serve_connection(TokioIo::new(stream), service);
            let outcome = tokio::select! {
                outcome = served => Some(outcome),
                () = conn.kill.notified() => None,
            };
            conn.close();
            if let Some(Err(e)) = outcome
                && !e.is_incomplete_message()
                && !e.is_timeout()
            {
                eprintln!("airlock mcp: connection from {peer}: {e}");
            }
        });
    }
}

/// The request handler shared by every connection.
struct App<S: ServerHandler + Send + 'static> {
    mcp: StreamableHttpService<S, CappedSessions>,
    sessions: Arc<CappedSessions>,
    path: &'static str,
    limits: HttpLimits,
    refused: Throttle,
    /// Cancels the jobs of a deleted session ([`crate::cancel`]).
    watch: CallWatch,
}

impl<S: ServerHandler + Send + 'static> App<S> {
    /// Serves `req`; `arrived` is called once its body is in.
    async fn handle(&self, req: Request<Incoming>, arrived: impl FnOnce()) -> Response<BoxedBody> {
        if req.uri().path() != self.path {
            return text(
                StatusCode::NOT_FOUND,
                format!("not found: the MCP endpoint is {}\n", self.path),
            );
        }
        let (mut parts, body) = req.into_parts();
        // The whole body within the same time as the head, so a slow body
        // cannot hold a connection either.
        let collected = tokio::time::timeout(
            self.limits.header_timeout,
            Limited::new(body, MAX_BODY_BYTES).collect(),
        )
        .await;
        let bytes = match collected {
            Ok(Ok(body)) => body.to_bytes(),
            Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
                return close(text(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("request body over {MAX_BODY_BYTES} bytes\n"),
                ));
            }
            Ok(Err(e)) => {
                return close(text(
                    StatusCode::BAD_REQUEST,
                    format!("cannot read the request body: {e}\n"),
                ));
            }
            Err(_) => {
                return close(text(
                    StatusCode::REQUEST_TIMEOUT,
                    format!(
                        "the request body did not arrive within {:?} (header_timeout)\n",
                        self.limits.header_timeout
                    ),
                ));
            }
        };
        arrived();
        let method = parts.method.clone();
        let json = parts
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .eq_ignore_ascii_case("application/json")
            });
        let session = parts
            .headers
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(|s| SessionId::from(s.to_string()));
        let existed = match &session {
            Some(id) if method == Method::DELETE => {
                self.sessions.inner.sessions.read().await.contains_key(id)
            }
            _ => false,
        };
        // The session's running calls are cancelled before rmcp closes it: its
        // close waits for them, and the client wants them stopped now. The
        // session id, which only its client learnt, is what authorizes this,
        // as it authorizes the DELETE itself.
        if existed && let Some(id) = &session {
            self.watch.session_deleted(id);
        }
        // A call whose response is dropped unfinished (the client went away)
        // has its job cancelled: the handler finds this in the request's parts.
        let gone = ConnectionGone::new();
        parts.extensions.insert(gone.clone());
        // rmcp checks the Host and Origin first; only then are its answers
        // mended below.
        let response = self
            .mcp
            .handle(Request::from_parts(parts, Full::new(bytes.clone())))
            .await;
        match (method, response.status()) {
            (Method::DELETE, StatusCode::ACCEPTED) if existed => {
                let mut done = Response::new(Empty::new().boxed());
                *done.status_mut() = StatusCode::NO_CONTENT;
                done
            }
            (Method::DELETE, StatusCode::ACCEPTED) => {
                text(StatusCode::NOT_FOUND, "no such session\n".into())
            }
            // rmcp answers a body it cannot parse with 415, as if the media
            // type were wrong; the media type was checked, so it is the body.
            (Method::POST, StatusCode::UNSUPPORTED_MEDIA_TYPE) if json => {
                parse_error(&bytes, &body_text(response).await)
            }
            // rmcp reports a session manager's error as its own 500.
            (Method::POST, StatusCode::INTERNAL_SERVER_ERROR) if session.is_none() => {
                let reason = body_text(response).await;
                if !reason.contains(SessionsError::FULL) {
                    return text(StatusCode::INTERNAL_SERVER_ERROR, reason);
                }
                let max = self.limits.max_sessions;
                self.refused.note(|n| {
                    format!("airlock mcp: refused {n} new sessions: {max} are open (max_sessions)")
                });
                busy(max, self.limits.session_idle)
            }
            _ => response.map(|body| gone.watch(body).boxed()),
        }
    }
}

async fn body_text(response: Response<BoxedBody>) -> String {
    let body = response
        .into_body()
        .collect()
        .await
        .map_or_else(|never| match never {}, |b| b.to_bytes());
    String::from_utf8_lossy(&body).into_owned()
}

/// A plain-text response.
fn text(status: StatusCode, body: String) -> Response<BoxedBody> {
    let mut response = Response::new(Full::new(Bytes::from(body)).boxed());
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// `response`, after which the connection is closed.
fn close(mut response: Response<BoxedBody>) -> Response<BoxedBody> {
    response
        .headers_mut()
        .insert(CONNECTION, hyper::header::HeaderValue::from_static("close"));
    response
}

/// `503` for an `initialize` over the session cap.
fn busy(max: usize, idle: Duration) -> Response<BoxedBody> {
    let mut response = jsonrpc_error(
        StatusCode::SERVICE_UNAVAILABLE,
        -32000,
        format!(
            "too many MCP sessions: {max} are open (max_sessions); retry after a session ends \
             (DELETE, or {} without messages), or raise [mcp] max_sessions in the host config",
            humantime::format_duration(idle)
        ),
    );
    response
        .headers_mut()
        .insert(RETRY_AFTER, hyper::header::HeaderValue::from_static("5"));
    response
}

/// `400` with a JSON-RPC parse error (`-32700`: not JSON) or invalid
/// request (`-32600`: JSON, but not a JSON-RPC message); `reason` is rmcp's.
fn parse_error(body: &[u8], reason: &str) -> Response<BoxedBody> {
    let reason = reason
        .trim()
        .trim_start_matches("fail to deserialize request body")
        .trim();
    let (code, what) = match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
        Ok(_) => (-32600, "the body is not a JSON-RPC message"),
        Err(_) => (-32700, "the body is not valid JSON"),
    };
    jsonrpc_error(StatusCode::BAD_REQUEST, code, format!("{what}: {reason}"))
}

fn jsonrpc_error(status: StatusCode, code: i32, message: String) -> Response<BoxedBody> {
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": {"code": code, "message": message},
    });
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())).boxed());
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

// ---- sessions ----

/// rmcp's in-memory sessions with a cap on how many exist at once; idle
/// expiry is rmcp's own (`keep_alive`), which removes the session when its
/// worker stops.
struct CappedSessions {
    inner: LocalSessionManager,
    max: usize,
    /// Held from the count to the insert, so racing `initialize`s cannot
    /// pass the cap together.
    creating: tokio::sync::Mutex<()>,
}

impl CappedSessions {
    fn new(limits: &HttpLimits) -> Self {
        let mut inner = LocalSessionManager::default();
        inner.session_config.keep_alive = Some(limits.session_idle);
        Self {
            inner,
            max: limits.max_sessions,
            creating: tokio::sync::Mutex::new(()),
        }
    }

    async fn is_full(&self) -> bool {
        self.inner.sessions.read().await.len() >= self.max
    }
}

/// Why a session operation failed.
#[derive(Debug, thiserror::Error)]
enum SessionsError {
    /// The cap is reached.
    #[error("too many MCP sessions: {0} are open (max_sessions)")]
    Full(usize),
    /// rmcp's own error.
    #[error(transparent)]
    Local(#[from] LocalSessionManagerError),
}

impl SessionsError {
    /// The start of [`SessionsError::Full`]'s message, found in rmcp's 500.
    const FULL: &str = "too many MCP sessions";
}

impl SessionManager for CappedSessions {
    type Error = SessionsError;
    type Transport = <LocalSessionManager as SessionManager>::Transport;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), Self::Error> {
        let _one = self.creating.lock().await;
        if self.is_full().await {
            return Err(SessionsError::Full(self.max));
        }
        Ok(self.inner.create_session().await?)
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, Self::Error> {
        Ok(self.inner.initialize_session(id, message).await?)
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Self::Error> {
        Ok(self.inner.has_session(id).await?)
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        Ok(self.inner.close_session(id).await?)
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<
        impl futures_core::Stream<Item = ServerSseMessage> + Send + Sync + 'static,
        Self::Error,
    > {
        Ok(self.inner.create_stream(id, message).await?)
    }

    async fn accept_message(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<(), Self::Error> {
        Ok(self.inner.accept_message(id, message).await?)
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<
        impl futures_core::Stream<Item = ServerSseMessage> + Send + Sync + 'static,
        Self::Error,
    > {
        Ok(self.inner.create_standalone_stream(id).await?)
    }

    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<
        impl futures_core::Stream<Item = ServerSseMessage> + Send + Sync + 'static,
        Self::Error,
    > {
        Ok(self.inner.resume(id, last_event_id).await?)
    }

    async fn restore_session(
        &self,
        _id: SessionId,
    ) -> Result<RestoreOutcome<Self::Transport>, Self::Error> {
        // No external store: a session unknown here is gone (404).
        Ok(RestoreOutcome::NotSupported)
    }
}

// ---- connections ----

/// The connection slots and, oldest first, the connections waiting for a
/// request (before their first, or idle between two).
struct Slots {
    permits: Arc<Semaphore>,
    idle: Mutex<Idle>,
}

#[derive(Default)]
struct Idle {
    next: u64,
    waiting: BTreeMap<u64, Arc<Conn>>,
}

impl Slots {
    /// Closes the connection that has waited longest for a request; false
    /// when every connection has a request in progress.
    fn evict_longest_waiting(&self) -> bool {
        let victim = lock(&self.idle).waiting.pop_first();
        match victim {
            Some((_, conn)) => {
                conn.kill.notify_one();
                true
            }
            None => false,
        }
    }
}

/// One accepted connection.
struct Conn {
    slots: Arc<Slots>,
    kill: Notify,
    /// Its key in [`Idle::waiting`] while it waits for a request, else 0.
    key: AtomicU64,
    closed: AtomicBool,
}

impl Conn {
    /// Waiting for a request: it may be closed to make room.
    fn idle(self: &Arc<Self>) {
        let mut idle = lock(&self.slots.idle);
        if self.closed.load(Ordering::Relaxed) {
            return;
        }
        idle.next += 1;
        let key = idle.next;
        idle.waiting.insert(key, self.clone());
        let old = self.key.swap(key, Ordering::Relaxed);
        idle.waiting.remove(&old);
    }

    /// A request arrived: it is not closed to make room until it is answered.
    fn busy(&self) {
        let mut idle = lock(&self.slots.idle);
        let key = self.key.swap(0, Ordering::Relaxed);
        idle.waiting.remove(&key);
    }

    /// The connection ended.
    fn close(&self) {
        let mut idle = lock(&self.slots.idle);
        self.closed.store(true, Ordering::Relaxed);
        let key = self.key.swap(0, Ordering::Relaxed);
        idle.waiting.remove(&key);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Marks its connection idle again when the response has been sent (or
/// dropped).
struct IdleOnDrop(Arc<Conn>);

impl Drop for IdleOnDrop {
    fn drop(&mut self) {
        self.0.idle();
    }
}

/// A response body that keeps its connection busy until it is done.
struct Tracked {
    inner: BoxedBody,
    _guard: IdleOnDrop,
}

impl Body for Tracked {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A log line for an event that may repeat thousands of times a second: at
/// most one line every 10 s, with the count since the last.
#[derive(Default)]
struct Throttle {
    state: Mutex<(Option<Instant>, u64)>,
}

impl Throttle {
    fn note(&self, line: impl FnOnce(u64) -> String) {
        let mut state = lock(&self.state);
        state.1 += 1;
        let due = state
            .0
            .is_none_or(|last| last.elapsed() >= Duration::from_secs(10));
        if due {
            let n = std::mem::take(&mut state.1);
            state.0 = Some(Instant::now());
            drop(state);
            eprintln!("{}", line(n));
        }
    }
}
