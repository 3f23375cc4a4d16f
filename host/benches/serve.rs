//! `airlock serve` under load: MCP `tools/call`s per second and their p50 and
//! p99 with 1 and with 50 concurrent clients on loopback, straight to the
//! replica and through nginx in front of it (the baseline is the direct row
//! of the same run).
//!
//! Run with `cargo bench -p airlock --bench serve` (or `cargo xtask bench`).
//! The release binary serves a one-tool toolkit (`word_count`); each client
//! is one keep-alive HTTP/1.1 connection sending stateless `tools/call`s one
//! after the other for a fixed time. nginx is Debian's (`cargo xtask test`
//! installs it); without it the nginx rows are left out and say why.
//! Results go to `$CRITERION_HOME/serve/load.json` for `cargo xtask bench`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// A child process killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

fn get_ok(port: u16, path: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    );
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text.starts_with("HTTP/1.1 200")
}

fn wait_for(port: u16, path: &str) {
    let until = Instant::now() + Duration::from_secs(120);
    while !get_ok(port, path) {
        assert!(Instant::now() < until, "nothing answered {path} on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn replica(dir: &Path, port: u16) -> Proc {
    std::fs::write(
        dir.join("words.toml"),
        format!(
            "[tools.word-count]\ncomponent = '{}'\n",
            common::guest("word_count").display()
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("airlock.toml"),
        "[serve.toolkits.words]\npath = \"words.toml\"\n",
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args([
            "serve",
            "airlock.toml",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .current_dir(dir)
        .env("AIRLOCK_CACHE", dir.join("cache"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let p = Proc(child);
    wait_for(port, "/readyz");
    p
}

fn nginx(dir: &Path, port: u16, upstream: u16) -> Result<Proc, String> {
    let bin = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .ok_or("no nginx (cargo xtask test installs Debian's)")?;
    let root = std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
    });
    let d = dir.display();
    let conf = format!(
        "{user}daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
         events {{ worker_connections 1024; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
           fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
           upstream airlock {{ server 127.0.0.1:{upstream}; keepalive 64; }}\n\
           server {{\n    listen 127.0.0.1:{port};\n    keepalive_requests 1000000;\n    location / {{\n\
               proxy_pass http://airlock;\n      proxy_http_version 1.1;\n\
               proxy_set_header Connection \"\";\n      proxy_set_header Host $http_host;\n\
               proxy_buffering off;\n    }}\n  }}\n}}\n",
        user = if root { "user root;\n" } else { "" },
    );
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    let child = Command::new(bin)
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .arg("-p")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("nginx did not start: {e}"))?;
    let p = Proc(child);
    wait_for(port, "/healthz");
    Ok(p)
}

/// One keep-alive client: sends `tools/call`s until `until`, returning each
/// call's latency.
async fn client(port: u16, until: Instant) -> Vec<Duration> {
    let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let mut io = BufReader::new(stream);
    let body = json!({
        "jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "word_count__count", "arguments": {"text": common::TEXT}},
    })
    .to_string();
    let request = format!(
        "POST /toolkits/words/mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
         Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut times = Vec::new();
    let mut line = String::new();
    while Instant::now() < until {
        let start = Instant::now();
        io.get_mut().write_all(request.as_bytes()).await.unwrap();
        let mut length = None;
        loop {
            line.clear();
            let read = io.read_line(&mut line).await.unwrap();
            assert!(
                read > 0,
                "the server closed the connection after {} calls",
                times.len()
            );
            if line == "\r\n" {
                break;
            }
            if let Some((k, v)) = line.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse::<usize>().ok();
            }
        }
        let mut reply = vec![0; length.expect("a JSON answer with a Content-Length")];
        io.read_exact(&mut reply).await.unwrap();
        let ok = br#""isError":false"#;
        assert!(
            reply.windows(ok.len()).any(|w| w == ok),
            "{}",
            String::from_utf8_lossy(&reply)
        );
        times.push(start.elapsed());
    }
    times
}

/// `clients` clients on `port` for `run`: calls per second, p50, p99.
fn load(rt: &tokio::runtime::Runtime, port: u16, clients: usize, run: Duration) -> Value {
    // Warm up every connection path first.
    rt.block_on(client(port, Instant::now() + Duration::from_millis(200)));
    let until = Instant::now() + run;
    let start = Instant::now();
    let all: Vec<Duration> = rt.block_on(async {
        let tasks: Vec<_> = (0..clients)
            .map(|_| tokio::spawn(client(port, until)))
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        all
    });
    let elapsed = start.elapsed();
    let mut times = all;
    times.sort();
    let at = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize];
    let rate = times.len() as f64 / elapsed.as_secs_f64();
    json!({
        "calls": times.len(),
        "calls_per_s": rate,
        "p50_ns": at(0.50).as_nanos() as f64,
        "p99_ns": at(0.99).as_nanos() as f64,
    })
}

fn results_path() -> PathBuf {
    std::env::var_os("CRITERION_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/criterion"))
        .join("serve/load.json")
}

fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    let run = match (measuring, common::quick()) {
        (false, _) => Duration::from_millis(300),
        (true, true) => Duration::from_secs(2),
        (true, false) => Duration::from_secs(5),
    };
    let rt = Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    let direct = free_port();
    let _replica = replica(dir.path(), direct);
    let front = free_port();
    let proxy = nginx(dir.path(), front, direct);
    let mut results = serde_json::Map::new();
    for clients in [1, 50] {
        let row = load(&rt, direct, clients, run);
        println!("serve/direct/{clients}: {row}");
        results.insert(format!("direct_{clients}"), row);
        match &proxy {
            Ok(_) => {
                let row = load(&rt, front, clients, run);
                println!("serve/nginx/{clients}: {row}");
                results.insert(format!("nginx_{clients}"), row);
            }
            Err(why) => {
                println!("serve/nginx/{clients}: skipped: {why}");
                results.insert(format!("nginx_{clients}"), json!({ "skipped": why }));
            }
        }
    }
    let path = results_path();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, serde_json::to_string_pretty(&results).unwrap()).unwrap();
}
