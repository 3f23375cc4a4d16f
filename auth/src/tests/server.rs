//! A real HTTP/1 server on 127.0.0.1:0 serving a JWKS document the test can
//! replace at any time (key rotation), counting the requests it answers.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// What the server answers: a status and a body.
struct Answer {
    status: u16,
    body: String,
}

/// The running server; stops when dropped.
pub(crate) struct JwksServer {
    addr: std::net::SocketAddr,
    answer: Arc<Mutex<Answer>>,
    hits: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl JwksServer {
    /// Starts a server answering every GET with `200` and `body`.
    pub(crate) async fn start(body: serde_json::Value) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let answer = Arc::new(Mutex::new(Answer {
            status: 200,
            body: body.to_string(),
        }));
        let hits = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn({
            let (answer, hits) = (answer.clone(), hits.clone());
            async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let (answer, hits) = (answer.clone(), hits.clone());
                    tokio::spawn(async move {
                        let svc = service_fn(move |_req: Request<hyper::body::Incoming>| {
                            hits.fetch_add(1, Ordering::SeqCst);
                            let a = answer.lock().unwrap();
                            let response = Response::builder()
                                .status(a.status)
                                .header("content-type", "application/json")
                                .body(Full::new(Bytes::from(a.body.clone())))
                                .unwrap();
                            async move { Ok::<_, Infallible>(response) }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), svc)
                            .await;
                    });
                }
            }
        });
        JwksServer {
            addr,
            answer,
            hits,
            task,
        }
    }

    /// `http://127.0.0.1:PORT/jwks.json`.
    pub(crate) fn url(&self) -> String {
        format!("http://{}/jwks.json", self.addr)
    }

    /// Serves `status` and `body` from now on.
    pub(crate) fn serve(&self, status: u16, body: serde_json::Value) {
        *self.answer.lock().unwrap() = Answer {
            status,
            body: body.to_string(),
        };
    }

    /// How many requests it has answered.
    pub(crate) fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
