//! End-to-end tests of `airlock serve`: the real binary on 127.0.0.1:0 with
//! a host config whose `[serve]` names several toolkits, called by the
//! official Rust SDK's MCP client (`rmcp`) and by raw HTTP: each toolkit at
//! its own path, statelessly; health, readiness and metrics; the audit trail
//! on stdout; and the drain on SIGTERM.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use serde_json::{Value, json};

/// `airlock serve` of `config` (written into a fresh directory with the
/// toolkits), killed on drop.
struct Served {
    child: Child,
    addr: String,
    dir: tempfile::TempDir,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Served {
    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default()
    }

    fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stdout")).unwrap_or_default()
    }

    fn url(&self, toolkit: &str) -> String {
        format!("http://{}/toolkits/{toolkit}/mcp", self.addr)
    }

    /// Sends SIGTERM.
    fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Waits up to `within` for the process to exit; its status.
    fn exited(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let until = Instant::now() + within;
        while Instant::now() < until {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

/// The tools the toolkits below use.
fn toolkits(dir: &Path) {
    let word = common::guest_string("word_count");
    let spin = common::guest_string("spin");
    let log = common::guest_string("bench_log");
    std::fs::write(
        dir.join("words.toml"),
        format!(
            "[tools.word-count]\ncomponent = '{word}'\n\
             [tools.logger]\ncomponent = '{log}'\n[tools.logger.grants.log]\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("spin.toml"),
        format!(
            "[tools.spin-short]\ncomponent = '{spin}'\n\
             [tools.spin-short.budget]\ntimeout = \"700ms\"\nfuel = 1_000_000_000_000\n\
             [tools.spin-long]\ncomponent = '{spin}'\n\
             [tools.spin-long.budget]\ntimeout = \"60s\"\nfuel = 1_000_000_000_000_000\n"
        ),
    )
    .unwrap();
}

fn serve(config: &str) -> Served {
    serve_with(config, &[])
}

/// [`serve`] with more `files` (name, content) beside the host config.
fn serve_with(config: &str, files: &[(&str, String)]) -> Served {
    let dir = tempfile::Builder::new()
        .prefix("airlock-serve-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    toolkits(dir.path());
    std::fs::write(dir.path().join("airlock.toml"), config).unwrap();
    for (name, content) in files {
        std::fs::write(dir.path().join(name), content).unwrap();
    }
    let child = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args([
            "serve",
            "airlock.toml",
            "--listen",
            "127.0.0.1:0",
            "--audit",
            "-",
        ])
        .env("AIRLOCK_CACHE", common::scratch().join("cache"))
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(dir.path().join("stdout")).unwrap())
        .stderr(std::fs::File::create(dir.path().join("stderr")).unwrap())
        .spawn()
        .unwrap();
    let mut child = child;
    let addr = common::serve_address(&mut child, &dir.path().join("stderr"));
    Served { child, addr, dir }
}

const TWO_TOOLKITS: &str = "[serve]\ndrain = \"5s\"\n\
    [serve.toolkits.words]\npath = \"words.toml\"\n\
    [serve.toolkits.spin]\npath = \"spin.toml\"\n";

/// One plain HTTP/1.1 request on a fresh connection: (status, body).
fn http(addr: &str, method: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    Ok((status, body.to_string()))
}

async fn client(url: String) -> RunningService<RoleClient, ()> {
    // rustls (under reqwest) needs a process-wide crypto provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    ().serve(StreamableHttpClientTransport::from_uri(url))
        .await
        .expect("the MCP session starts")
}

async fn call(client: &RunningService<RoleClient, ()>, name: &str, args: Value) -> Value {
    let mut params = CallToolRequestParams::new(name.to_string());
    params.arguments = args.as_object().cloned();
    let result = client.call_tool(params).await.expect("tools/call answers");
    serde_json::to_value(result).unwrap()
}

/// The metric line `name{labels}` of `/metrics`, as a number.
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_toolkit_is_served_at_its_path_with_health_readiness_and_metrics() {
    let served = serve(TWO_TOOLKITS);
    let addr = served.addr.clone();
    assert_eq!(
        http(&addr, "GET", "/healthz").unwrap(),
        (200, "ok\n".into())
    );
    let (status, body) = http(&addr, "GET", "/readyz").unwrap();
    assert_eq!(status, 200);
    let ready: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        ready,
        json!({"ready": true, "toolkits": {"spin": 2, "words": 2}})
    );
    let (status, body) = http(&addr, "GET", "/toolkits/nope/mcp").unwrap();
    assert_eq!(status, 404);
    assert!(
        body.contains("/toolkits/spin/mcp, /toolkits/words/mcp"),
        "{body}"
    );

    // Each path serves its own toolkit, and only it.
    let words = client(served.url("words")).await;
    let names: Vec<String> = words
        .list_all_tools()
        .await
        .unwrap()
        .iter()
        .map(|t| t.name.to_string())
        .collect();
    assert_eq!(names, ["logger__burst", "word_count__count"]);
    let out = call(&words, "word_count__count", json!({"text": "a b c"})).await;
    assert_eq!(out["structuredContent"]["words"], 3, "{out}");
    let out = call(&words, "logger__burst", json!({"n": 2, "size": 3})).await;
    assert_eq!(out["structuredContent"]["result"], 2, "{out}");
    let spin = client(served.url("spin")).await;
    let out = call(&spin, "spin_short__run", json!({})).await;
    assert_eq!(out["isError"], true, "{out}");
    assert!(out.to_string().contains("deadline"), "{out}");
    let err = words
        .call_tool(CallToolRequestParams::new("spin_short__run"))
        .await;
    assert!(err.is_err(), "the words toolkit has no spin tool: {err:?}");

    let (status, text) = http(&addr, "GET", "/metrics").unwrap();
    assert_eq!(status, 200);
    for (series, value) in [
        (r#"airlock_jobs_total{tool="word-count",outcome="ok"}"#, 1.0),
        (r#"airlock_jobs_total{tool="logger",outcome="ok"}"#, 1.0),
        (
            r#"airlock_jobs_total{tool="spin-short",outcome="budget"}"#,
            1.0,
        ),
        (r#"airlock_budget_exhausted_total{kind="deadline"}"#, 1.0),
        (
            r#"airlock_verb_calls_total{verb="log",decision="allow"}"#,
            2.0,
        ),
        ("airlock_queue_wait_seconds_count", 3.0),
        ("airlock_job_slots_in_use", 0.0),
    ] {
        assert_eq!(metric(&text, series), Some(value), "{series} in:\n{text}");
    }
    assert!(metric(&text, "airlock_job_slots").is_some_and(|n| n >= 1.0));
    // The audit trail went to stdout as JSON lines: the two log calls.
    let audit: Vec<Value> = served
        .stdout()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|r: &Value| r["verb"] == "log")
        .collect();
    assert_eq!(audit.len(), 2, "{}", served.stdout());
    words.cancel().await.ok();
    spin.cancel().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_finishing_short_calls_and_cancelling_the_rest() {
    let mut served = serve(&TWO_TOOLKITS.replace("drain = \"5s\"", "drain = \"2s\""));
    let addr = served.addr.clone();
    let spin = client(served.url("spin")).await;
    let calls = tokio::spawn(async move {
        let (short, long) = tokio::join!(
            call(&spin, "spin_short__run", json!({})),
            call(&spin, "spin_long__run", json!({}))
        );
        (short, long, spin)
    });
    // Both jobs hold a slot before the signal.
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, text) = http(&addr, "GET", "/metrics").unwrap();
        if metric(&text, "airlock_job_slots_in_use") == Some(2.0) {
            break;
        }
        assert!(Instant::now() < until, "the jobs did not start: {text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let signalled = Instant::now();
    served.terminate();
    // No new connection is accepted once the drain starts.
    let until = Instant::now() + Duration::from_secs(1);
    while http(&addr, "GET", "/healthz").is_ok() {
        assert!(Instant::now() < until, "still accepting after SIGTERM");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (short, long, spin) = calls.await.unwrap();
    // The short call ended on its own (its deadline) during the drain; the
    // long one was cancelled when the drain time ran out.
    assert!(short.to_string().contains("deadline"), "{short}");
    assert!(long.to_string().contains("cancelled"), "{long}");
    let status = served
        .exited(Duration::from_secs(10))
        .expect("airlock serve exits after the drain");
    assert!(status.success(), "{status}: {}", served.stderr());
    let took = signalled.elapsed();
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(8),
        "the drain took {took:?}"
    );
    let stdout = served.stdout();
    assert!(
        stdout
            .lines()
            .any(|l| l.contains("\"verb\":\"job\"") && l.contains("cancelled")),
        "the cancelled job is in the audit trail: {stdout}"
    );
    let err = served.stderr();
    assert!(err.contains("draining: 2 calls in flight"), "{err}");
    assert!(err.contains("cancelling 1 calls"), "{err}");
    drop(spin);
}

#[test]
fn serve_refuses_a_config_without_toolkits_and_a_remote_address_without_auth() {
    let dir = tempfile::tempdir().unwrap();
    let config: PathBuf = dir.path().join("airlock.toml");
    std::fs::write(&config, "[serve]\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .arg("serve")
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("serves no toolkit"), "{err}");
    toolkits(dir.path());
    std::fs::write(&config, TWO_TOOLKITS).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .arg("serve")
        .arg(&config)
        .args(["--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("names no [serve.tokens.NAME] or [serve.oauth]"),
        "{err}"
    );
}

mod serve_auth {
    use super::*;
    use base64::Engine as _;
    use ed25519_dalek::Signer;
    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;

    const ISSUER: &str = "https://login.example.test/";
    const AUDIENCE: &str = "https://airlock.example.test/";

    fn b64(bytes: impl AsRef<[u8]>) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    /// A compact JWS over `header` and `claims`, signed by `key`.
    fn jwt(key: &ed25519_dalek::SigningKey, header: Value, claims: Value) -> String {
        let signed = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
        let signature = key.sign(signed.as_bytes());
        format!("{signed}.{}", b64(signature.to_bytes()))
    }

    fn claims(aud: &str, exp_in: i64, toolkits: &[&str]) -> Value {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        json!({
            "iss": ISSUER, "aud": aud, "sub": "agent-7", "iat": now, "exp": now + exp_in,
            "airlock_toolkits": toolkits,
        })
    }

    /// (status, `WWW-Authenticate`) of a POST to `path` with `authorization`.
    fn post(addr: &str, path: &str, authorization: Option<&str>) -> (u16, String) {
        let mut s = TcpStream::connect(addr).unwrap();
        let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
        let auth = authorization
            .map(|a| format!("Authorization: {a}\r\n"))
            .unwrap_or_default();
        write!(
            s,
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
             Accept: application/json, text/event-stream\r\n{auth}Content-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        let status = text.split_whitespace().nth(1).unwrap().parse().unwrap();
        let challenge = text
            .lines()
            .find_map(|l| l.strip_prefix("www-authenticate: "))
            .unwrap_or_default()
            .to_string();
        (status, challenge)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_request_is_checked_for_a_token_or_a_jwt_for_its_toolkit() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
        let jwk = json!({"keys": [{
            "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": "k1",
            "x": b64(key.verifying_key().as_bytes()),
        }]});
        let (words_token, words_hash) = airlock_auth::new_token();
        let words_token = secrecy::ExposeSecret::expose_secret(&words_token).to_string();
        let config = format!(
            "{TWO_TOOLKITS}[serve.tokens.ci]\nsha256 = \"{words_hash}\"\ntoolkits = [\"words\"]\n\
             [serve.oauth]\nissuer = \"{ISSUER}\"\naudience = \"{AUDIENCE}\"\njwks = \"jwks.json\"\n\
             resource = \"{AUDIENCE}\"\n"
        );
        // The JWKS sits beside the host config; `serve` writes the config.
        let served = serve_with(&config, &[("jwks.json", jwk.to_string())]);
        let addr = served.addr.clone();
        let words = "/toolkits/words/mcp";
        let header = json!({"alg": "EdDSA", "typ": "JWT", "kid": "k1"});
        let good = jwt(&key, header.clone(), claims(AUDIENCE, 300, &["words"]));
        let mut tampered = good.clone();
        tampered.replace_range(
            good.find('.').unwrap() + 2..good.find('.').unwrap() + 3,
            "Z",
        );
        let none = format!(
            "{}.{}.",
            b64(json!({"alg": "none", "typ": "JWT"}).to_string()),
            b64(claims(AUDIENCE, 300, &["words"]).to_string())
        );
        let cases: Vec<(String, Option<String>, u16, &str)> = vec![
            ("missing header".into(), None, 401, "resource_metadata="),
            ("basic".into(), Some("Basic YTpi".into()), 401, "Bearer"),
            (
                "wrong token".into(),
                Some("Bearer alk_wrong".into()),
                401,
                "invalid_token",
            ),
            (
                "expired".into(),
                Some(format!(
                    "Bearer {}",
                    jwt(&key, header.clone(), claims(AUDIENCE, -3600, &["words"]))
                )),
                401,
                "invalid_token",
            ),
            (
                "other audience".into(),
                Some(format!(
                    "Bearer {}",
                    jwt(
                        &key,
                        header.clone(),
                        claims("https://else/", 300, &["words"])
                    )
                )),
                401,
                "invalid_token",
            ),
            (
                "alg none".into(),
                Some(format!("Bearer {none}")),
                401,
                "invalid_token",
            ),
            (
                "tampered".into(),
                Some(format!("Bearer {tampered}")),
                401,
                "invalid_token",
            ),
            (
                "jwt for another toolkit".into(),
                Some(format!(
                    "Bearer {}",
                    jwt(&key, header.clone(), claims(AUDIENCE, 300, &["spin"]))
                )),
                403,
                "insufficient_scope",
            ),
            (
                "token good".into(),
                Some(format!("Bearer {words_token}")),
                200,
                "",
            ),
            ("jwt good".into(), Some(format!("Bearer {good}")), 200, ""),
        ];
        for (what, authorization, status, challenge) in &cases {
            let (got, www) = post(&addr, words, authorization.as_deref());
            assert_eq!(got, *status, "{what}: {www}");
            assert!(www.contains(challenge), "{what}: {www}");
        }
        // The token is for `words` only.
        let (got, www) = post(
            &addr,
            "/toolkits/spin/mcp",
            Some(&format!("Bearer {words_token}")),
        );
        assert_eq!(
            (got, www.contains("insufficient_scope")),
            (403, true),
            "{www}"
        );
        // An OAuth client finds the metadata the challenge points at.
        let (status, body) = http(
            &addr,
            "GET",
            "/.well-known/oauth-protected-resource/toolkits/words/mcp",
        )
        .unwrap();
        assert_eq!(status, 200);
        let doc: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(doc["resource"], format!("{}toolkits/words/mcp", AUDIENCE));
        assert_eq!(doc["authorization_servers"], json!([ISSUER]));
        // The SDK client with the token works end to end.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let config = StreamableHttpClientTransportConfig::with_uri(served.url("words"))
            .auth_header(words_token.clone());
        let client = ().serve(StreamableHttpClientTransport::from_config(config)).await.unwrap();
        let out = call(&client, "word_count__count", json!({"text": "x y"})).await;
        assert_eq!(out["structuredContent"]["words"], 2, "{out}");
        // Every refusal is audited and counted; no credential is in either.
        let (_, text) = http(&addr, "GET", "/metrics").unwrap();
        let refused: f64 = text
            .lines()
            .filter(|l| l.starts_with("airlock_auth_refused_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        assert_eq!(refused, 9.0, "{text}");
        let stdout = served.stdout();
        let audited = stdout
            .lines()
            .filter(|l| l.contains("\"verb\":\"serve\""))
            .count();
        assert_eq!(audited, 9, "{stdout}");
        for secret in [&words_token, &good] {
            assert!(
                !stdout.contains(secret.as_str()),
                "a credential reached the audit"
            );
            assert!(!served.stderr().contains(secret.as_str()));
        }
        client.cancel().await.ok();
    }
}

/// `airlock token new --config` appends the hash and prints the token once;
/// that token then opens its toolkit and only it.
#[test]
fn a_token_from_token_new_opens_its_toolkit_and_only_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("airlock.toml");
    std::fs::write(&config, TWO_TOOLKITS).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(["token", "new", "ci", "--toolkit", "words", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(token.starts_with("alk_"), "{token}");
    let written = std::fs::read_to_string(&config).unwrap();
    assert!(written.contains("[serve.tokens.ci]") && !written.contains(&token));
    let served = serve(&written);
    let post = |path: &str, auth: &str| {
        let mut s = TcpStream::connect(&served.addr).unwrap();
        let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
        write!(
            s,
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Accept: application/json, text/event-stream\r\nAuthorization: Bearer {auth}\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            served.addr,
            body.len()
        )
        .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        text.split_whitespace()
            .nth(1)
            .unwrap()
            .parse::<u16>()
            .unwrap()
    };
    assert_eq!(post("/toolkits/words/mcp", &token), 200);
    assert_eq!(post("/toolkits/spin/mcp", &token), 403);
    assert!(!served.stderr().contains(&token));
}
