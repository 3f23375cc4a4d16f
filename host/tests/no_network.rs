//! No network at the system-call level: the `airlock` binary runs the Python
//! and JavaScript guests (`guests/py-netcat`, `guests/js-netcat`, built by
//! `cargo xtask build-guests`) under `strace`, each trying TCP, UDP, a name
//! lookup or HTTP against real loopback servers, and the trace must show that
//! the host process opened no IP socket and connected or sent nothing. The
//! guests' socket and HTTP imports are answered by refusing stubs that hold
//! no OS capability (`host/src/no_network.rs`); this checks it from outside.
//!
//! `strace` and the guests need tools a developer may not have
//! (`cargo xtask test` installs them): without them the test prints a skip
//! line, unless `CI` is set, where it fails.

mod common;

use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The system calls that would mean the process touched the network. The one
/// call the trace does show, `socketpair(AF_UNIX, ...)` from the async
/// runtime, is a pair of connected local sockets inside the process, not one
/// of them.
const FORBIDDEN: &[&str] = &[
    "socket(AF_INET",
    "connect(",
    "sendto(",
    "sendmsg(",
    "sendmmsg(",
    "bind(",
    "listen(",
    "accept",
];

fn guests_dir() -> PathBuf {
    common::guests_dir()
}

/// `why` this test cannot run here: a panic in CI, a skip line elsewhere.
fn cannot_run(why: &str) {
    assert!(std::env::var_os("CI").is_none(), "{why}");
    eprintln!("skipping the strace no-network test: {why}");
}

/// The built guest `name` (`py_netcat`), or `None` after [`cannot_run`].
fn guest(name: &str) -> Option<String> {
    let path = guests_dir().join(format!("{name}.wasm"));
    if path.is_file() {
        return Some(path.to_string_lossy().into_owned());
    }
    cannot_run(&format!(
        "guest `{name}` not built: run `cargo xtask build-guests`, which installs its \
         toolchain into target/polyglot (looked for {})",
        path.display()
    ));
    None
}

fn strace_works() -> bool {
    Command::new("strace")
        .arg("-V")
        .output()
        .is_ok_and(|out| out.status.success())
}

/// `airlock ARGS...` in a scratch directory with its own component cache.
fn airlock(scratch: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_airlock"));
    cmd.args(args)
        .env("AIRLOCK_CACHE", scratch.join("cache"))
        .env("AIRLOCK_CACHE_KEY", scratch.join("cache.key"))
        .current_dir(scratch);
    cmd
}

/// The imports `airlock inspect --json` says `component` gets as stubs.
fn stubbed_imports(scratch: &Path, component: &str) -> Vec<String> {
    let out = airlock(scratch, &["inspect", "--json", component])
        .output()
        .expect("airlock inspect runs");
    assert!(out.status.success(), "inspect {component}: {out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).expect("inspect prints JSON");
    v["imports"]["null_wasi"]
        .as_array()
        .expect("imports.null_wasi")
        .iter()
        .filter_map(|i| i["import"].as_str().map(str::to_string))
        .collect()
}

mod network {
    use super::*;

    #[test]
    fn python_and_javascript_guests_make_no_network_system_calls() {
        if !strace_works() {
            cannot_run("strace is not installed (`cargo xtask test` installs it with apt-get)");
            return;
        }
        let (Some(python), Some(js)) = (guest("py_netcat"), guest("js_netcat")) else {
            return;
        };
        let scratch = tempfile::Builder::new()
            .prefix("airlock-strace-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .expect("a scratch directory");
        let scratch = scratch.path();

        // The guests do import the network, so each attempt below reaches a stub.
        let py_imports = stubbed_imports(scratch, &python);
        for wanted in ["wasi:sockets/tcp@", "wasi:sockets/ip-name-lookup@"] {
            assert!(
                py_imports.iter().any(|i| i.starts_with(wanted)),
                "py-netcat should import {wanted}: {py_imports:?}"
            );
        }
        let js_imports = stubbed_imports(scratch, &js);
        assert!(
            js_imports
                .iter()
                .any(|i| i.starts_with("wasi:http/outgoing-handler@")),
            "js-netcat should import wasi:http/outgoing-handler: {js_imports:?}"
        );

        let tcp = TcpListener::bind("127.0.0.1:0").expect("a loopback listener");
        tcp.set_nonblocking(true).expect("non-blocking");
        let tcp_addr = tcp.local_addr().expect("its address");
        let udp = UdpSocket::bind("127.0.0.1:0").expect("a loopback UDP socket");
        udp.set_nonblocking(true).expect("non-blocking");
        let udp_addr = udp.local_addr().expect("its address");
        let url = format!("http://{tcp_addr}/");

        let runs = [
            (
                &python,
                format!(r#"{{"kind":"tcp","target":"{tcp_addr}"}}"#),
            ),
            (
                &python,
                format!(r#"{{"kind":"udp","target":"{udp_addr}"}}"#),
            ),
            (
                &python,
                r#"{"kind":"dns","target":"localhost"}"#.to_string(),
            ),
            (&python, format!(r#"{{"kind":"http","target":"{url}"}}"#)),
            (&js, format!(r#"{{"url":"{url}"}}"#)),
            (&js, format!(r#"{{"url":"post:{url}"}}"#)),
        ];
        for (i, (component, args)) in runs.iter().enumerate() {
            // A second try only when the host itself failed (a trap of kind
            // `error`: an OS call of the host's own, seen once in CI as
            // EBUSY), never when the guest got through; both traces are
            // checked for network calls.
            let mut tries = Vec::new();
            for attempt in 0..2 {
                let trace = scratch.join(format!("trace-{i}-{attempt}.txt"));
                let out = Command::new("strace")
                    .args(["-f", "-qq", "-e", "trace=%network", "-o"])
                    .arg(&trace)
                    .arg(env!("CARGO_BIN_EXE_airlock"))
                    .args(["run", component.as_str(), "--args", args])
                    .env("AIRLOCK_CACHE", scratch.join("cache"))
                    .env("AIRLOCK_CACHE_KEY", scratch.join("cache.key"))
                    .current_dir(scratch)
                    .output()
                    .expect("strace runs airlock");
                let trace = std::fs::read_to_string(&trace).expect("strace wrote its trace");
                let host_failed = !out.status.success()
                    && String::from_utf8_lossy(&out.stderr).contains("the tool trapped (error)");
                tries.push((out, trace));
                if !host_failed {
                    break;
                }
                eprintln!("{args}: the host failed, not the guest; trying once more: {tries:?}");
            }
            let (out, _) = tries.last().expect("one try at least");
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success() && stdout.contains("refused: "),
                "{args}: the attempt must fail inside the guest: {tries:?}"
            );
            let trace: String = tries.iter().map(|(_, t)| t.as_str()).collect();
            for line in trace.lines() {
                for forbidden in FORBIDDEN {
                    assert!(
                        !line.contains(forbidden),
                        "{args}: airlock made a network system call: {line}\nwhole trace:\n{trace}"
                    );
                }
            }
            eprintln!(
                "{args}: {} network-class calls, none to the network",
                trace.lines().count()
            );
        }

        match tcp.accept() {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            other => panic!("nothing may connect to the listener: {other:?}"),
        }
        match udp.recv_from(&mut [0u8; 64]) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            other => panic!("no datagram may arrive: {other:?}"),
        }
    }
}
