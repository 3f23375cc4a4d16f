//! Python and JavaScript tools have no network either. componentize-py and
//! componentize-js components import `wasi:sockets` and `wasi:http` whether
//! they use them or not; the host answers those imports with refusing stubs
//! (`host/src/no_network.rs`). These tests run the unmodified language
//! runtimes (`guests/py-netcat`, `guests/js-netcat`, built by
//! `cargo xtask build-guests`) against real servers on loopback: every
//! attempt fails inside the guest with the runtime's own error, and the
//! servers receive nothing.
//!
//! The guests need toolchains a developer may not have: without them the
//! tests print a skip line, unless `CI` is set, where they fail.

use std::io::ErrorKind;
use std::net::{TcpListener, UdpSocket};

use airlock::Budget;
use airlock_tests::{assert_host_still_works, caps, host, load, no_grants, optional_guest};
use serde_json::{Value, json};

/// A loopback TCP listener that never accepts by itself, and its port.
fn tcp_listener() -> (TcpListener, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback listener");
    listener.set_nonblocking(true).expect("non-blocking");
    let port = listener.local_addr().expect("its address").port();
    (listener, port)
}

/// Panics unless no connection is waiting on `listener`.
fn assert_no_connection(listener: &TcpListener, what: &str) {
    match listener.accept() {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        other => panic!("nothing may connect to the {what} listener: {other:?}"),
    }
}

/// The string a job returned, panicking with what it returned instead.
fn answer(result: Result<airlock::JobOutput, airlock::JobError>, what: &str) -> String {
    match result {
        Ok(out) => match out.value {
            Value::String(s) => s,
            other => panic!("{what}: expected a string, got {other}"),
        },
        Err(e) => panic!("{what}: the tool must answer, not fail: {e}"),
    }
}

mod network {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn python_tcp_udp_dns_and_http_are_refused_and_nothing_arrives() {
        let test = "python_tcp_udp_dns_and_http_are_refused_and_nothing_arrives";
        if optional_guest("py-netcat", test).is_none() {
            return;
        }
        let (tcp, tcp_port) = tcp_listener();
        let (http, http_port) = tcp_listener();
        let udp = UdpSocket::bind("127.0.0.1:0").expect("a loopback UDP socket");
        udp.set_nonblocking(true).expect("non-blocking");
        let udp_port = udp.local_addr().expect("its address").port();

        let host = host(caps());
        let tool = load(&host, "py-netcat", no_grants(), Budget::default())
            .expect("a componentize-py component loads: its socket imports are stubs");
        let attempts = [
            ("tcp", format!("127.0.0.1:{tcp_port}")),
            ("udp", format!("127.0.0.1:{udp_port}")),
            ("dns", "localhost".to_string()),
            ("http", format!("http://127.0.0.1:{http_port}/")),
        ];
        for (kind, target) in attempts {
            let what = format!("python {kind} {target}");
            let args = json!({ "kind": kind, "target": target });
            let said = answer(host.run(&tool, None, &args).await, &what);
            assert!(said.starts_with("refused:"), "{what}: {said}");
            assert!(said.contains("Permission denied"), "{what}: {said}");
        }

        assert_no_connection(&tcp, "TCP");
        assert_no_connection(&http, "HTTP");
        let mut buf = [0u8; 64];
        match udp.recv_from(&mut buf) {
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            other => panic!("no datagram may arrive: {other:?}"),
        }
        assert_host_still_works(&host).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn javascript_fetch_get_and_post_are_refused_and_nothing_connects() {
        let test = "javascript_fetch_get_and_post_are_refused_and_nothing_connects";
        if optional_guest("js-netcat", test).is_none() {
            return;
        }
        let (http, port) = tcp_listener();
        let host = host(caps());
        let tool = load(&host, "js-netcat", no_grants(), Budget::default())
            .expect("a componentize-js component loads: its HTTP imports are stubs");
        for url in [
            format!("http://127.0.0.1:{port}/"),
            format!("post:http://127.0.0.1:{port}/upload"),
        ] {
            let what = format!("javascript fetch {url}");
            let said = answer(host.run(&tool, None, &json!({ "url": url })).await, &what);
            assert!(said.starts_with("refused: "), "{what}: {said}");
            assert!(!said.contains("REACHED"), "{what}: {said}");
        }
        assert_no_connection(&http, "HTTP");
        assert_host_still_works(&host).await;
    }
}
