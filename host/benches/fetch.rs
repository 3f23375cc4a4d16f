//! What the `fetch` verb's walls cost, next to the same request made directly.
//!
//! Run with `cargo bench -p airlock --bench fetch`. Both sides talk to one
//! hyper server on 127.0.0.1 started in this process, returning 1 KiB, and
//! both open a fresh connection per request (the verb never reuses one):
//!
//! * `direct`: the host itself connects with `tokio::net::TcpStream`, does a
//!   hyper HTTP/1 handshake, sends `GET` and reads the body. The floor.
//! * `verb`: `fetch::Host::send` on a fresh `FetchState` (as each job gets):
//!   URL parsing and canonicalization, the grant match, one resolution (a
//!   static resolver, as a warm DNS cache would be), the address check, the
//!   same connect and exchange, response decoding under the cap, the
//!   credential scrubber and the audit record.
//! * `guest_job`: for scale, a whole job of the `http-probe` guest doing the
//!   same request through the verb (store, instantiate, call, drop included).

use std::convert::Infallible;
use std::hint::black_box;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use airlock::{Airlock, Budget, Capabilities, Grants, HostOptions, NullAudit};
use airlock_core::bindings::airlock::verbs::fetch::{Host as _, Request};
use airlock_core::{Capability, Job};
use airlock_fetch::{FetchCapability, FetchGrant, StaticResolver};
use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::rt::TokioIo;
use serde_json::json;

const BODY: [u8; 1024] = [b'x'; 1024];

async fn server() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service = hyper::service::service_fn(|_req| async {
                Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from_static(&BODY))))
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    addr
}

async fn direct(addr: SocketAddr) -> usize {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = hyper::Request::get("/page")
        .header("host", format!("bench.test:{}", addr.port()))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    resp.into_body().collect().await.unwrap().to_bytes().len()
}

fn grant(port: u16) -> FetchGrant {
    FetchGrant {
        allow: vec![format!("http://bench.test:{port}/")],
        private_networks: vec!["127.0.0.1".into()],
        max_requests: u32::MAX,
        ..FetchGrant::default()
    }
}

fn guests_dir() -> PathBuf {
    std::env::var_os("AIRLOCK_GUESTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/wasm32-wasip2/release")
        })
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let addr = rt.block_on(server());
    let url = format!("http://bench.test:{}/page", addr.port());
    let resolver = StaticResolver::new().with("bench.test", [addr.ip()]);
    let cap = FetchCapability::new(Default::default(), Arc::new(resolver.clone())).unwrap();
    let the_grant = Arc::new(grant(addr.port()));
    let request = || Request {
        method: "GET".into(),
        url: url.clone(),
        headers: vec![],
        body: None,
    };

    let mut group = c.benchmark_group("fetch");
    group
        .sample_size(50)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    group.bench_function("direct", |b| {
        b.iter(|| black_box(rt.block_on(direct(addr))))
    });
    group.bench_function("verb", |b| {
        b.iter(|| {
            let job = Job::new(
                1,
                "bench".into(),
                Instant::now() + Duration::from_secs(10),
                Arc::new(NullAudit),
            );
            let mut state = cap.state(the_grant.clone(), job);
            let resp = rt.block_on(state.send(request())).unwrap();
            black_box(resp.body.len())
        })
    });

    let probe = guests_dir().join("http_probe.wasm");
    if probe.exists() {
        let caps = Capabilities {
            fetch: FetchCapability::new(Default::default(), Arc::new(resolver)).unwrap(),
            ..Capabilities::default()
        };
        let host = Airlock::new(HostOptions::default(), caps, Arc::new(NullAudit)).unwrap();
        let grants = Grants {
            fetch: Some(the_grant.clone()),
            ..Grants::default()
        };
        let tool = host
            .load_tool_file("http-probe", &probe, grants, Budget::default())
            .unwrap();
        let args = json!({ "req": { "method": "GET", "url": url, "headers": [], "body": null } });
        group.bench_function("guest_job", |b| {
            b.iter(|| black_box(rt.block_on(host.run(&tool, None, &args)).unwrap()))
        });
    } else {
        eprintln!(
            "fetch/guest_job skipped: {} is not built (cargo xtask build-guests)",
            probe.display()
        );
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
