//! Shared test parts for distribution: a real `docker-registry` (CNCF
//! distribution 2.8) on a loopback port, killed on drop; a hostile registry
//! that serves whatever bytes a test hands it; and sample artifacts.
#![allow(dead_code)]

mod registry;
#[allow(unused_imports, reason = "the layout tests use neither")]
pub use registry::{Registry, http_get};

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use airlock_trust::oci::{Artifact, ToolRef};

/// A sample artifact: `seed` makes the bytes differ.
pub fn artifact(seed: &str) -> Artifact {
    let mut component = b"\0asm\x0d\0\x01\0".to_vec();
    component.extend_from_slice(format!("component {seed}").as_bytes());
    Artifact {
        component,
        statement: format!(
            r#"{{"payloadType":"application/vnd.in-toto+json","payload":"{seed}","signatures":[]}}"#
        )
        .into_bytes(),
        approvals: Vec::new(),
    }
}

/// An approval envelope (opaque bytes here).
pub fn approval(who: &str) -> Vec<u8> {
    format!(
        r#"{{"payloadType":"application/vnd.airlock.approval","payload":"{who}","signatures":[]}}"#
    )
    .into_bytes()
}

/// One answer of the hostile registry.
#[derive(Clone)]
pub struct Reply {
    /// The `Content-Type` header.
    pub content_type: String,
    /// The body.
    pub body: Vec<u8>,
}

/// A registry that answers `GET /v2/` and then exactly the paths in its
/// table (anything else is a 404), whatever the bytes: the attacker.
pub struct Hostile {
    /// Its address.
    pub addr: SocketAddr,
    /// Path → reply; tests fill and change it.
    pub routes: Arc<Mutex<HashMap<String, Reply>>>,
}

impl Hostile {
    /// Start one on a loopback port (a thread per connection).
    pub fn start() -> Hostile {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let addr = listener.local_addr().expect("its address");
        let routes: Arc<Mutex<HashMap<String, Reply>>> = Arc::default();
        let table = routes.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let table = table.clone();
                std::thread::spawn(move || serve(conn, &table));
            }
        });
        Hostile { addr, routes }
    }

    /// Serve `body` at `path`.
    pub fn route(&self, path: &str, content_type: &str, body: &[u8]) {
        self.routes.lock().unwrap().insert(
            path.to_string(),
            Reply {
                content_type: content_type.to_string(),
                body: body.to_vec(),
            },
        );
    }

    /// A reference into this registry.
    pub fn tool(&self, rest: &str) -> ToolRef {
        ToolRef::parse(&format!("{}/{rest}", self.addr)).expect("a valid reference")
    }
}

fn serve(mut conn: TcpStream, table: &Mutex<HashMap<String, Reply>>) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    loop {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match conn.read(&mut byte) {
                Ok(1) => head.push(byte[0]),
                _ => return,
            }
        }
        let head = String::from_utf8_lossy(&head).to_string();
        let mut words = head.split_whitespace();
        let method = words.next().unwrap_or("").to_string();
        let target = words.next().unwrap_or("");
        let path = target.split('?').next().unwrap_or("").to_string();
        let reply = if path == "/v2/" {
            Some(Reply {
                content_type: "application/json".into(),
                body: b"{}".to_vec(),
            })
        } else {
            table.lock().unwrap().get(&path).cloned()
        };
        let (status, reply) = match reply {
            Some(r) => ("200 OK", r),
            None => (
                "404 Not Found",
                Reply {
                    content_type: "application/json".into(),
                    body: br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"unknown"}]}"#
                        .to_vec(),
                },
            ),
        };
        let header = format!(
            "HTTP/1.1 {status}\r\nContent-Type: {}\r\nContent-Length: {}\r\n\r\n",
            reply.content_type,
            reply.body.len()
        );
        if conn.write_all(header.as_bytes()).is_err() {
            return;
        }
        if method != "HEAD" && conn.write_all(&reply.body).is_err() {
            return;
        }
    }
}

/// Asserts `result` is the component layer refused for hashing to `forged`'s
/// digest instead of `expected`.
pub fn assert_forged_component<T: std::fmt::Debug>(
    result: Result<T, airlock_trust::oci::DistError>,
    expected: &str,
    forged: &[u8],
) {
    match result {
        Err(airlock_trust::oci::DistError::DigestMismatch {
            what,
            expected: e,
            actual,
        }) => {
            assert_eq!(what, "the component layer");
            assert_eq!(
                (e.as_str(), actual),
                (expected, airlock_trust::oci::sha256_digest(forged))
            );
        }
        other => panic!("expected DigestMismatch, got {other:?}"),
    }
}

/// Serve every blob of the layout at `dir` from `h` under `repo`, as a
/// registry would: each blob at `blobs/<digest>`, each manifest or index at
/// `manifests/<digest>`, and each tag of `index.json` at `manifests/<tag>`.
pub fn serve_layout(h: &Hostile, repo: &str, dir: &Path) {
    let media_type = |bytes: &[u8]| {
        serde_json::from_slice::<serde_json::Value>(bytes)
            .ok()
            .and_then(|v| v["mediaType"].as_str().map(str::to_string))
    };
    for entry in std::fs::read_dir(dir.join("blobs/sha256")).expect("a layout") {
        let entry = entry.expect("a blob");
        let digest = format!("sha256:{}", entry.file_name().to_string_lossy());
        let bytes = std::fs::read(entry.path()).expect("read a blob");
        h.route(
            &format!("/v2/{repo}/blobs/{digest}"),
            "application/octet-stream",
            &bytes,
        );
        if let Some(mt) = media_type(&bytes) {
            h.route(&format!("/v2/{repo}/manifests/{digest}"), &mt, &bytes);
        }
    }
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).expect("index.json"))
            .expect("index.json parses");
    for m in index["manifests"].as_array().expect("manifests") {
        let tag = m["annotations"]["org.opencontainers.image.ref.name"].as_str();
        let hex = m["digest"]
            .as_str()
            .expect("a digest")
            .trim_start_matches("sha256:");
        let bytes = std::fs::read(dir.join("blobs/sha256").join(hex)).expect("a manifest");
        if let Some(tag) = tag {
            h.route(
                &format!("/v2/{repo}/manifests/{tag}"),
                m["mediaType"].as_str().expect("a media type"),
                &bytes,
            );
        }
    }
}
