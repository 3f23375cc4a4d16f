//! How an MCP call's job learns that nobody wants its result any more: a
//! `notifications/cancelled` (rmcp's per-request token), a stdio client that
//! closed stdin, an HTTP client whose connection closed mid-call, or an HTTP
//! `DELETE` of its session. Each one cancels the job's [`Cancel`] handle at
//! once, rather than when rmcp gets round to it (after a drain of up to 5 s)
//! or never (a dropped HTTP response stream cancels nothing in rmcp).

use std::collections::HashMap;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use airlock_core::Cancel;
use hyper::body::{Body, Frame, SizeHint};
use rmcp::service::{RequestContext, RoleServer};
use tokio::io::{AsyncRead, ReadBuf};
use tokio_util::sync::CancellationToken;

/// The reasons recorded in the audit trail and in the job's error.
pub mod reason {
    /// `notifications/cancelled` for the request (or rmcp ending the session).
    pub const CLIENT_CANCELLED: &str = "the client cancelled the call";
    /// stdin reached its end or failed.
    pub const STDIN_CLOSED: &str = "the client went away: stdin closed";
    /// The HTTP connection carrying the call's response closed early.
    pub const CONNECTION_CLOSED: &str = "the client went away: its HTTP connection closed";
    /// `DELETE` of the call's MCP session.
    pub const SESSION_DELETED: &str = "the client deleted its MCP session";
    /// The server was asked to stop (Ctrl-C, SIGTERM).
    pub const SERVER_STOPPING: &str = "the server is stopping";
}

/// What one server (stdio or HTTP) watches for its calls, shared by every
/// session's handler.
#[derive(Clone, Default)]
pub struct CallWatch {
    client_gone: CancellationToken,
    stopping: CancellationToken,
    sessions: Arc<Sessions>,
}

impl CallWatch {
    /// A watch that nothing has fired yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Wraps the stdio server's input so that its end cancels every call.
    pub fn stdin<R>(&self, input: R) -> EofWatch<R> {
        EofWatch {
            inner: input,
            gone: self.client_gone.clone(),
        }
    }

    /// Cancels every running call: the server is stopping.
    pub fn stop(&self) {
        self.stopping.cancel();
    }

    /// Cancels the running calls of HTTP session `id` (after its `DELETE`).
    pub fn session_deleted(&self, id: &str) {
        self.sessions.cancel(id, reason::SESSION_DELETED);
    }

    /// Runs `job` (which runs under `cancel`) and cancels `cancel` as soon as
    /// anything says the call is no longer wanted; the job then ends quickly
    /// with its `cancelled` error, which this returns like any outcome.
    pub async fn guard<F: Future>(
        &self,
        context: &RequestContext<RoleServer>,
        cancel: &Cancel,
        job: F,
    ) -> F::Output {
        let parts = context.extensions.get::<hyper::http::request::Parts>();
        let session = parts
            .and_then(|p| p.headers.get("mcp-session-id"))
            .and_then(|v| v.to_str().ok());
        let _registered = session.map(|id| self.sessions.register(id, cancel.clone()));
        let connection = parts
            .and_then(|p| p.extensions.get::<ConnectionGone>())
            .map(|c| c.0.clone());
        let mut job = pin!(job);
        let why = tokio::select! {
            biased;
            out = &mut job => return out,
            // First: stopping the server also ends its sessions (`ct`).
            () = self.stopping.cancelled() => reason::SERVER_STOPPING,
            () = context.ct.cancelled() => reason::CLIENT_CANCELLED,
            () = self.client_gone.cancelled() => reason::STDIN_CLOSED,
            () = async {
                match &connection {
                    Some(token) => token.cancelled().await,
                    None => std::future::pending().await,
                }
            } => reason::CONNECTION_CLOSED,
        };
        cancel.cancel(why);
        job.await
    }
}

/// An input stream that fires a token when it ends or fails.
pub struct EofWatch<R> {
    inner: R,
    gone: CancellationToken,
}

impl<R: AsyncRead + Unpin> AsyncRead for EofWatch<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        match &polled {
            Poll::Ready(Ok(())) if buf.filled().len() == before && buf.remaining() > 0 => {
                self.gone.cancel();
            }
            Poll::Ready(Err(_)) => self.gone.cancel(),
            _ => {}
        }
        polled
    }
}

/// The running calls of each HTTP session, so that a `DELETE` can cancel
/// them. Only sessions with a call in progress have an entry.
#[derive(Default)]
struct Sessions {
    next: AtomicU64,
    running: Mutex<HashMap<String, HashMap<u64, Cancel>>>,
}

impl Sessions {
    fn register(self: &Arc<Self>, session: &str, cancel: Cancel) -> Registered {
        let key = self.next.fetch_add(1, Ordering::Relaxed);
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(session.to_string())
            .or_default()
            .insert(key, cancel);
        Registered {
            sessions: self.clone(),
            session: session.to_string(),
            key,
        }
    }

    fn cancel(&self, session: &str, why: &str) {
        let calls = self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(session);
        for cancel in calls.into_iter().flat_map(HashMap::into_values) {
            cancel.cancel(why);
        }
    }
}

/// A call's entry in [`Sessions`], removed when the call ends.
struct Registered {
    sessions: Arc<Sessions>,
    session: String,
    key: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        let mut running = self
            .sessions
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(calls) = running.get_mut(&self.session) {
            calls.remove(&self.key);
            if calls.is_empty() {
                running.remove(&self.session);
            }
        }
    }
}

/// Put into an HTTP request's extensions: fires when the response to that
/// request is dropped before its end (the client closed the connection).
#[derive(Clone)]
pub struct ConnectionGone(CancellationToken);

impl ConnectionGone {
    /// A token for one request.
    pub fn new() -> Self {
        Self(CancellationToken::new())
    }

    /// Wraps the response body: dropped before its end, it fires the token.
    pub fn watch<B>(&self, body: B) -> WatchedBody<B> {
        WatchedBody {
            inner: body,
            gone: Some(self.0.clone()),
        }
    }
}

impl Default for ConnectionGone {
    fn default() -> Self {
        Self::new()
    }
}

/// A response body that says when it was dropped unfinished.
pub struct WatchedBody<B> {
    inner: B,
    gone: Option<CancellationToken>,
}

impl<B: Body + Unpin> Body for WatchedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(None) = polled {
            // Sent to the end: nothing was cut short.
            self.gone = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Drop for WatchedBody<B> {
    fn drop(&mut self) {
        if let Some(gone) = self.gone.take() {
            gone.cancel();
        }
    }
}
