//! A real registry for tests: Debian's `docker-registry` (CNCF distribution
//! 2.8) serving on a loopback port from a temporary directory, killed on drop.
//! Shared by the trust crate's tests and the host's README walkthrough test.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use airlock_trust::oci::ToolRef;

/// Where Debian's `docker-registry` package installs the server.
const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

/// A `docker-registry serve` child on 127.0.0.1, storing in a temp dir.
pub struct Registry {
    child: Child,
    /// Its address.
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Registry {
    /// Start one, or say why not: `None` (skip) outside CI, a panic under `CI`.
    pub fn start() -> Option<Registry> {
        if !Path::new(REGISTRY_BIN).exists() {
            let why = format!(
                "{REGISTRY_BIN} is missing: `cargo xtask test` installs Debian's docker-registry package"
            );
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must run the registry tests: {why}"
            );
            eprintln!("skipping: {why}");
            return None;
        }
        let dir = tempfile::tempdir().expect("a temp dir");
        for _ in 0..5 {
            // Pick a free port, release it, and let the registry bind it;
            // another process may take it in between, so retry.
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free loopback port")
                .port();
            let addr: SocketAddr = ([127, 0, 0, 1], port).into();
            let config = dir.path().join("config.yml");
            std::fs::write(
                &config,
                format!(
                    "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n\
                     storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
                     http:\n  addr: {addr}\n",
                    dir.path().join("data").display()
                ),
            )
            .expect("write the registry config");
            let log = std::fs::File::create(dir.path().join("registry.log")).expect("a log");
            let mut child = Command::new(REGISTRY_BIN)
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("a log handle"))
                .stderr(log)
                .spawn()
                .expect("start docker-registry");
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if child.try_wait().ok().flatten().is_some() {
                    break; // the port was taken, most likely: try another
                }
                if http_get(addr, "/v2/").0 == 200 {
                    return Some(Registry {
                        child,
                        addr,
                        _dir: dir,
                    });
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let log = std::fs::read_to_string(dir.path().join("registry.log")).unwrap_or_default();
        panic!("docker-registry did not answer on a loopback port after 5 tries; its log:\n{log}");
    }

    /// A reference into this registry.
    pub fn tool(&self, rest: &str) -> ToolRef {
        ToolRef::parse(&format!("{}/{rest}", self.addr)).expect("a valid reference")
    }
}

/// A plain HTTP/1.1 GET on loopback: (status, body); status 0 when nothing answers.
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, Vec<u8>) {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return (0, Vec::new());
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json\r\nConnection: close\r\n\r\n"
    );
    if s.write_all(req.as_bytes()).is_err() {
        return (0, Vec::new());
    }
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return (0, Vec::new());
    };
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, raw[split + 4..].to_vec())
}
