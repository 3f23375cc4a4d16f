//! A real HTTP/1 server on 127.0.0.1:0 for the tests: it records every
//! request it receives and answers with whatever the test's script says for
//! the n-th request (0-based).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::header::HeaderMap;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// How the server answers one request.
pub(crate) enum Reply {
    /// A status and a JSON body.
    Json(u16, serde_json::Value),
    /// A status, extra headers and a raw body.
    Raw {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: Vec<u8>,
    },
    /// Never answers.
    Hang,
    /// A 200 whose chunked body never ends.
    Endless,
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub method: String,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Seen {
    /// The body as JSON.
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("request body is JSON")
    }

    /// A header's value.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

/// The running server; stops when dropped.
pub(crate) struct Server {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: JoinHandle<()>,
}

type Script = Arc<dyn Fn(usize) -> Reply + Send + Sync>;

impl Server {
    /// Starts a server answering request `n` with `script(n)`.
    pub(crate) async fn start(script: impl Fn(usize) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let script: Script = Arc::new(script);
        let task = tokio::spawn({
            let seen = seen.clone();
            async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let (seen, script) = (seen.clone(), script.clone());
                    tokio::spawn(async move {
                        let svc = service_fn(move |req| answer(req, seen.clone(), script.clone()));
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), svc)
                            .await;
                    });
                }
            }
        });
        Self { addr, seen, task }
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Every request so far.
    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(
    req: Request<Incoming>,
    seen: Arc<Mutex<Vec<Seen>>>,
    script: Script,
) -> Result<Response<BoxBody<Bytes, Infallible>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let index = {
        let mut seen = seen.lock().unwrap();
        seen.push(Seen {
            method: parts.method.to_string(),
            path: parts.uri.path().to_string(),
            headers: parts.headers,
            body,
        });
        seen.len() - 1
    };
    let full = |status: u16, headers: Vec<(&'static str, String)>, body: Vec<u8>| {
        let mut r = Response::builder().status(status);
        for (n, v) in headers {
            r = r.header(n, v);
        }
        r.body(Full::new(Bytes::from(body)).boxed()).unwrap()
    };
    Ok(match script(index) {
        Reply::Json(status, v) => full(
            status,
            vec![("content-type", "application/json".into())],
            v.to_string().into_bytes(),
        ),
        Reply::Raw {
            status,
            headers,
            body,
        } => full(status, headers, body),
        Reply::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            full(200, vec![], b"{}".to_vec())
        }
        Reply::Endless => Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .body(Endless.boxed())
            .unwrap(),
    })
}

/// A body that never ends: 64 KiB chunks of spaces, forever.
struct Endless;

static CHUNK: [u8; 64 * 1024] = [b' '; 64 * 1024];

impl Body for Endless {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&CHUNK)))))
    }
}
