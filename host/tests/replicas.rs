//! Three `airlock serve` replicas behind a real nginx (Debian's package,
//! installed by `cargo xtask test`), all on loopback: 50 MCP clients call
//! through nginx for a bounded time while one replica is killed with SIGKILL
//! and restarted. Requests to live replicas all succeed, the only failures
//! are calls that were in flight on the killed one, and the restarted
//! replica serves again. No session is kept, so no request is tied to a
//! replica.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use serde_json::json;

/// How long the clients call.
const RUN: Duration = Duration::from_secs(6);
/// Concurrent clients.
const CLIENTS: usize = 50;

/// nginx's binary, or `None` after saying why (a failure under `CI`).
fn nginx() -> Option<PathBuf> {
    let found = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file());
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "nginx is required under CI: `cargo xtask test` installs Debian's nginx"
        );
        eprintln!("skipped: no nginx (run `cargo xtask test`, which installs Debian's nginx)");
    }
    found
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// One `airlock serve` on `port`.
fn replica(dir: &Path, port: u16, label: &str) -> Child {
    let log = std::fs::File::create(dir.join(format!("{label}.stderr"))).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args([
            "serve",
            "airlock.toml",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .env("AIRLOCK_CACHE", common::scratch().join("cache"))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    wait_ready(&mut child, port, &dir.join(format!("{label}.stderr")));
    child
}

/// Until `GET /readyz` answers 200 on `port`.
fn wait_ready(child: &mut Child, port: u16, log: &Path) {
    let until = Instant::now() + Duration::from_secs(120);
    while Instant::now() < until {
        if get(port, "/readyz").is_some_and(|(status, _)| status == 200) {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "the replica on {port} exited ({status}): {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("the replica on {port} did not get ready");
}

fn get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, text.split_once("\r\n\r\n")?.1.to_string()))
}

/// Jobs a replica ran, from its `/metrics`.
fn jobs(port: u16) -> u64 {
    let (_, text) = get(port, "/metrics").expect("metrics answer");
    text.lines()
        .filter(|l| l.starts_with("airlock_jobs_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// nginx on `port` in front of `upstreams`, killed on drop.
struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_nginx(bin: &Path, dir: &Path, port: u16, upstreams: &[u16]) -> Nginx {
    let servers: String = upstreams
        .iter()
        .map(|p| format!("    server 127.0.0.1:{p} max_fails=1 fail_timeout=1s;\n"))
        .collect();
    let root = std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
    });
    let conf = format!(
        "{user}daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
         events {{ worker_connections 1024; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
           fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
           upstream airlock {{\n{servers}    keepalive 64;\n  }}\n\
           server {{\n    listen 127.0.0.1:{port};\n    location / {{\n\
               proxy_pass http://airlock;\n      proxy_http_version 1.1;\n\
               proxy_set_header Connection \"\";\n      proxy_set_header Host $http_host;\n\
               proxy_buffering off;\n      proxy_read_timeout 30s;\n    }}\n  }}\n}}\n",
        user = if root { "user root;\n" } else { "" },
        d = dir.display(),
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf).unwrap();
    let child = Command::new(bin)
        .arg("-c")
        .arg(&path)
        .arg("-p")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("nginx.stderr")).unwrap())
        .spawn()
        .expect("nginx starts");
    let until = Instant::now() + Duration::from_secs(10);
    while get(port, "/healthz").is_none() {
        assert!(
            Instant::now() < until,
            "nginx did not start: {}",
            std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Nginx(child)
}

async fn client(port: u16) -> Option<RunningService<RoleClient, ()>> {
    let url = format!("http://127.0.0.1:{port}/toolkits/words/mcp");
    ().serve(StreamableHttpClientTransport::from_uri(url))
        .await
        .ok()
}

#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    failed: AtomicU64,
    failed_after_restart: AtomicU64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_behind_nginx_survive_a_killed_replica() {
    let Some(bin) = nginx() else {
        return;
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::Builder::new()
        .prefix("airlock-replicas-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("words.toml"),
        format!(
            "[tools.word-count]\ncomponent = '{}'\n",
            common::guest_string("word_count")
        ),
    )
    .unwrap();
    std::fs::write(
        d.join("airlock.toml"),
        "[serve]\ndrain = \"1s\"\n[serve.toolkits.words]\npath = \"words.toml\"\n",
    )
    .unwrap();
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let mut replicas: Vec<Child> = ports
        .iter()
        .enumerate()
        .map(|(i, p)| replica(d, *p, &format!("replica{i}")))
        .collect();
    let front = free_port();
    let _nginx = start_nginx(&bin, d, front, &ports);

    let tally = Arc::new(Tally::default());
    let restarted = Arc::new(AtomicBool::new(false));
    let until = Instant::now() + RUN;
    let workers: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let tally = tally.clone();
            let restarted = restarted.clone();
            tokio::spawn(async move {
                let mut session = None;
                let mut n = 0u64;
                while Instant::now() < until {
                    if session.is_none() {
                        session = client(front).await;
                        if session.is_none() {
                            tally.failed.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                    }
                    let Some(c) = &session else { continue };
                    n += 1;
                    let mut params = CallToolRequestParams::new("word_count__count");
                    params.arguments = json!({ "text": format!("client {i} call {n}") })
                        .as_object()
                        .cloned();
                    match c.call_tool(params).await {
                        Ok(r) if r.is_error != Some(true) => {
                            tally.ok.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {
                            tally.failed.fetch_add(1, Ordering::Relaxed);
                            if restarted.load(Ordering::Relaxed) {
                                tally.failed_after_restart.fetch_add(1, Ordering::Relaxed);
                            }
                            session = None;
                        }
                    }
                }
            })
        })
        .collect();

    // Mid-run: SIGKILL one replica, and restart it on the same port.
    tokio::time::sleep(RUN / 3).await;
    let victim = ports[1];
    replicas[1].kill().unwrap();
    replicas[1].wait().unwrap();
    let ok_at_kill = tally.ok.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let failed_while_down = tally.failed.load(Ordering::Relaxed);
    let restart = std::thread::spawn({
        let d = d.to_path_buf();
        move || replica(&d, victim, "replica1-again")
    });
    replicas[1] = tokio::task::spawn_blocking(move || restart.join().unwrap())
        .await
        .unwrap();
    restarted.store(true, Ordering::Relaxed);
    let jobs_at_restart = jobs(victim);
    for w in workers {
        w.await.unwrap();
    }
    let ok = tally.ok.load(Ordering::Relaxed);
    let failed = tally.failed.load(Ordering::Relaxed);
    eprintln!(
        "{CLIENTS} clients for {RUN:?} through nginx: {ok} calls succeeded, {failed} failed \
         ({failed_while_down} by 0.5 s after the kill, {} after the restart); {ok_at_kill} \
         before the kill",
        tally.failed_after_restart.load(Ordering::Relaxed)
    );
    assert!(ok_at_kill > 0, "calls went through before the kill");
    assert!(
        ok > ok_at_kill * 2,
        "calls went on through the kill and restart"
    );
    // Each client has one call in flight at a time: at most one per client
    // can have been on the killed replica.
    assert!(
        failed <= CLIENTS as u64,
        "{failed} failures: more than the calls that could be in flight on the killed replica"
    );
    assert_eq!(
        tally.failed_after_restart.load(Ordering::Relaxed),
        0,
        "no failure once the replica was back"
    );
    let served_after = jobs(victim) - jobs_at_restart;
    assert!(
        served_after > 0,
        "the restarted replica rejoined: it served {served_after} jobs"
    );
    for mut r in replicas {
        let _ = r.kill();
        let _ = r.wait();
    }
}
