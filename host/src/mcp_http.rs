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

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, RETRY_AFTER};
use hyper::{Method, Request, Response, StatusCode};
use rmcp::handler::server::ServerHandler;
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::streamable_http_server::session::local::{
    LocalSessionManager, LocalSessionManagerError,
};
use rmcp::transport::streamable_http_server::session::{
    RestoreOutcome, ServerSseMessage, SessionId, SessionManager,
};
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

use crate::cancel::{CallWatch, ConnectionGone};
use crate::http_server::{BoxedBody, Handler, Throttle, close, text};

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
    let app = App::new(factory, path.into(), allowed_hosts, &limits, watch, false);
    crate::http_server::accept(listener, &limits, Arc::new(app), CancellationToken::new()).await
}

/// One MCP endpoint: rmcp's service at `path`, its answers mended (see the
/// module docs) and its sessions capped.
pub(crate) struct App<S: ServerHandler + Send + 'static> {
    mcp: StreamableHttpService<S, CappedSessions>,
    sessions: Arc<CappedSessions>,
    path: String,
    limits: HttpLimits,
    refused: Throttle,
    /// Cancels the jobs of a deleted session ([`crate::cancel`]).
    watch: CallWatch,
}

impl<S: ServerHandler + Send + 'static> App<S> {
    /// The endpoint at `path` serving the handlers `factory` makes, for
    /// requests whose `Host` is one of `allowed_hosts` (and `Origin`, if
    /// any, `http://` one of them). `stateless`: no session is kept between
    /// requests (any replica answers any request; see `airlock serve`).
    pub(crate) fn new<F>(
        factory: F,
        path: String,
        allowed_hosts: Vec<String>,
        limits: &HttpLimits,
        watch: CallWatch,
        stateless: bool,
    ) -> Self
    where
        F: Fn() -> S + Send + Sync + 'static,
    {
        let origins: Vec<String> = allowed_hosts
            .iter()
            .map(|h| format!("http://{h}"))
            .collect();
        let config = StreamableHttpServerConfig::default()
            .with_allowed_hosts(allowed_hosts)
            .with_allowed_origins(origins)
            .with_max_request_body_bytes(MAX_BODY_BYTES)
            .with_legacy_session_mode(!stateless)
            .with_json_response(stateless);
        let sessions = Arc::new(CappedSessions::new(limits));
        Self {
            mcp: StreamableHttpService::new(move || Ok(factory()), sessions.clone(), config),
            sessions,
            path,
            limits: limits.clone(),
            refused: Throttle::default(),
            watch,
        }
    }
}

impl<S: ServerHandler + Send + 'static> Handler for App<S> {
    async fn handle(
        &self,
        req: Request<Incoming>,
        arrived: impl FnOnce() + Send,
    ) -> Response<BoxedBody> {
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
