//! The HTTP/1.1 server under `airlock mcp --http` and `airlock serve`: it
//! sets `TCP_NODELAY` on every socket, gives a request's head a timeout, caps
//! the connections open at once (closing the one that waited longest for a
//! request to make room, never one with a request in progress) and hands
//! each request to a [`Handler`]: the MCP endpoint, or `serve`'s router.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{CONNECTION, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::mcp_http::HttpLimits;

/// The body of every response this server writes.
pub(crate) type BoxedBody = BoxBody<Bytes, Infallible>;

/// What answers the requests of every connection.
pub(crate) trait Handler: Send + Sync + 'static {
    /// Answers `req`; `arrived` is called once its whole body is in (from
    /// then on the connection is busy and is not closed to make room).
    fn handle(
        &self,
        req: Request<Incoming>,
        arrived: impl FnOnce() + Send,
    ) -> impl Future<Output = Response<BoxedBody>> + Send;
}

/// Accepts connections on `listener` and serves `handler` on each, within
/// `limits`, until `stop` is cancelled (connections already accepted carry
/// on). Returns only then, or on a fatal error.
pub(crate) async fn accept<H: Handler>(
    listener: tokio::net::TcpListener,
    limits: &HttpLimits,
    handler: Arc<H>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
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
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stop.cancelled() => return Ok(()),
        };
        let (stream, peer) = match accepted {
            Ok(conn) => conn,
            Err(e) => {
                eprintln!("airlock: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Without it, a response written in pieces waits for the client's
        // delayed ACK: ~40 ms a request for clients that do not set it either.
        if let Err(e) = stream.set_nodelay(true) {
            eprintln!("airlock: cannot set TCP_NODELAY for {peer}: {e}");
        }
        let permit = match slots.permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if slots.evict_longest_waiting() {
                    evicted.note(|n| {
                        format!(
                            "airlock: {} connections open (max_connections): closed {n} that \
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
        let handler = handler.clone();
        let http = http.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let service = {
                let conn = conn.clone();
                hyper::service::service_fn(move |req: Request<Incoming>| {
                    let app = handler.clone();
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
                eprintln!("airlock: connection from {peer}: {e}");
            }
        });
    }
}

/// A plain-text response.
pub(crate) fn text(status: StatusCode, body: String) -> Response<BoxedBody> {
    let mut response = Response::new(Full::new(Bytes::from(body)).boxed());
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// `response`, after which the connection is closed.
pub(crate) fn close(mut response: Response<BoxedBody>) -> Response<BoxedBody> {
    response
        .headers_mut()
        .insert(CONNECTION, hyper::header::HeaderValue::from_static("close"));
    response
}

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

/// A response body holding `G` (a guard: its connection busy, a request
/// in flight) until it is sent or dropped.
pub(crate) struct Tracked<G> {
    pub(crate) inner: BoxedBody,
    pub(crate) _guard: G,
}

impl<G: Unpin> Body for Tracked<G> {
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
pub(crate) struct Throttle {
    state: Mutex<(Option<Instant>, u64)>,
}

impl Throttle {
    pub(crate) fn note(&self, line: impl FnOnce(u64) -> String) {
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
