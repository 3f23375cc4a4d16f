//! Shared helpers for airlock's integration tests: where the built guest
//! components are, one way to build a host with known test keys and an
//! audit trail the test can read back, and loading a guest as a tool.
//!
//! The guests are real `wasm32-wasip2` components built from `guests/`; run
//! `cargo xtask build-guests` (or `cargo xtask test`) before these tests.

pub mod canaries;
pub mod doubling;
pub mod mixed;
pub mod pg;

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use airlock::{
    Airlock, Budget, BudgetKind, Capabilities, Grants, HostOptions, JobError, LoadError, Tool,
};
use airlock_core::MemoryAudit;
use airlock_sign::{SignCapability, SignKey};
use hmac::{Hmac, Mac};
use secrecy::SecretSlice;
use serde_json::{Value, json};
use sha2::Sha256;

/// The variable that points the tests at a directory of built guests.
pub const GUESTS_ENV: &str = "AIRLOCK_GUESTS";

/// The secret bytes of the HMAC key named `webhook` in every test host.
pub const WEBHOOK_KEY: &[u8] = b"airlock-test-webhook-key-0123456789";

/// The secret bytes of the HMAC key named `other` (see [`caps_with_other`]).
pub const OTHER_KEY: &[u8] = b"airlock-test-other-key-9876543210!";

/// The workspace root (the parent of this crate's directory).
pub fn workspace_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent().unwrap_or(here).to_path_buf()
}

/// The built component of guest `name` (`word-count` or `word_count`):
/// `$AIRLOCK_GUESTS/<name>.wasm` when the variable is set, else
/// `<workspace>/target/wasm32-wasip2/release/<name>.wasm`, with `-` turned
/// into `_` as cargo names the artifact.
///
/// # Panics
///
/// When the file does not exist, with a message saying how to build it.
pub fn guest(name: &str) -> PathBuf {
    let path = guest_path(name);
    assert!(
        path.is_file(),
        "guest `{name}` not built: run `cargo xtask build-guests` (looked for {})",
        path.display()
    );
    path
}

/// Where [`guest`] looks for guest `name`, built or not.
pub fn guest_path(name: &str) -> PathBuf {
    let file = format!("{}.wasm", name.replace('-', "_"));
    let dir = match std::env::var_os(GUESTS_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => workspace_root().join("target/wasm32-wasip2/release"),
    };
    dir.join(file)
}

/// Guest `name` when it is built, for the guests built by toolchains a
/// developer may not have (Python, JavaScript: see `xtask/src/polyglot.rs`).
/// When it is missing, `None` after printing a skip line for `test`, or,
/// when `CI` is set, a panic saying how to build it.
pub fn optional_guest(name: &str, test: &str) -> Option<PathBuf> {
    let path = guest_path(name);
    if path.is_file() {
        return Some(path);
    }
    let how = format!(
        "guest `{name}` not built: run `cargo xtask build-guests`, which installs its \
         toolchain into target/polyglot (looked for {})",
        path.display()
    );
    assert!(std::env::var_os("CI").is_none(), "{how}");
    eprintln!("skipping {test}: {how}");
    None
}

/// The bytes of guest `name` (see [`guest`]).
pub fn guest_bytes(name: &str) -> Vec<u8> {
    let path = guest(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The compiled-component cache shared by every [`host`] of this test
/// process: `cache` in a fresh directory under `<workspace>/target/tmp`, so
/// runs do not see each other's entries and `cargo clean` removes it; its key
/// is `cache.key` beside it ([`cache_key`]). Directories left by runs more
/// than a day old are removed when it is first created.
pub fn cache_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| process_dir().join("cache"))
}

/// The key of the test process's compiled-component cache: outside the
/// cache directory, as the host requires.
pub fn cache_key() -> PathBuf {
    process_dir().join("cache.key")
}

fn process_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let parent = workspace_root().join("target/tmp");
        std::fs::create_dir_all(&parent)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", parent.display()));
        prune_old_cache_dirs(&parent);
        tempfile::Builder::new()
            .prefix("airlock-tests-")
            .tempdir_in(&parent)
            .unwrap_or_else(|e| panic!("cannot create a cache dir in {}: {e}", parent.display()))
            .keep()
    })
}

fn prune_old_cache_dirs(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    let day = Duration::from_secs(24 * 60 * 60);
    for entry in entries.flatten() {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_some_and(|age| age > day);
        if old
            && entry
                .file_name()
                .to_string_lossy()
                .starts_with("airlock-tests-")
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn hmac_key(secret: &[u8]) -> SignKey {
    SignKey::hmac(SecretSlice::from(secret.to_vec())).expect("test keys are not empty")
}

/// Capabilities with one HMAC key, `webhook` = [`WEBHOOK_KEY`].
pub fn caps() -> Capabilities {
    Capabilities {
        sign: SignCapability::new([("webhook".to_string(), hmac_key(WEBHOOK_KEY))]),
        ..Capabilities::default()
    }
}

/// Capabilities with two HMAC keys: `webhook` = [`WEBHOOK_KEY`] and
/// `other` = [`OTHER_KEY`].
pub fn caps_with_other() -> Capabilities {
    Capabilities {
        sign: SignCapability::new([
            ("webhook".to_string(), hmac_key(WEBHOOK_KEY)),
            ("other".to_string(), hmac_key(OTHER_KEY)),
        ]),
        ..Capabilities::default()
    }
}

/// A host under test and the audit trail it writes to.
pub struct TestHost {
    /// The host.
    pub airlock: Airlock,
    /// Every audit record of every job this host ran.
    pub audit: Arc<MemoryAudit>,
    word_count: OnceLock<Tool>,
}

impl TestHost {
    /// This host's `word-count` tool (no grants, default budget), loaded on
    /// first use and then shared, so a test that needs it several times
    /// loads it once.
    pub fn word_count(&self) -> &Tool {
        self.word_count
            .get_or_init(|| load_ok(&self.airlock, "word-count", no_grants(), Budget::default()))
    }
}

/// Every test that drops a host has its audit trail checked for secrets.
impl Drop for TestHost {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let trail = format!("{:?}", self.audit.records());
            canaries::assert_no_secret("the audit trail", &trail);
        }
    }
}

impl Deref for TestHost {
    type Target = Airlock;

    fn deref(&self) -> &Airlock {
        &self.airlock
    }
}

/// A host serving `caps` with the process-wide disk cache ([`cache_dir`])
/// and a [`MemoryAudit`].
pub fn host(caps: Capabilities) -> TestHost {
    host_with(
        HostOptions {
            no_cache: false,
            cache_dir: Some(cache_dir().to_path_buf()),
            ..HostOptions::default()
        },
        caps,
    )
}

/// A host with explicit `options` (a private cache directory, say). A cache
/// directory without a key file gets the test process's key ([`cache_key`]),
/// never the user's own.
pub fn host_with(mut options: HostOptions, caps: Capabilities) -> TestHost {
    if options.cache_dir.is_some() && options.cache_key.is_none() {
        options.cache_key = Some(cache_key());
    }
    let audit = Arc::new(MemoryAudit::default());
    let airlock = Airlock::new(options, caps, audit.clone()).expect("the host starts");
    TestHost {
        airlock,
        audit,
        word_count: OnceLock::new(),
    }
}

/// Loads guest `name` (see [`guest`]) into `host` as a tool called `name`.
pub fn load(host: &Airlock, name: &str, grants: Grants, budget: Budget) -> Result<Tool, LoadError> {
    host.load_tool_file(name, &guest(name), grants, budget)
}

/// Like [`load`] but the tool must load; panics with the error otherwise.
pub fn load_ok(host: &Airlock, name: &str, grants: Grants, budget: Budget) -> Tool {
    match load(host, name, grants, budget) {
        Ok(tool) => tool,
        Err(e) => panic!("guest `{name}` should load: {e}"),
    }
}

/// Like [`load`] but loading must fail; returns why.
pub fn load_err(host: &Airlock, name: &str, grants: Grants, budget: Budget) -> LoadError {
    match load(host, name, grants, budget) {
        Ok(_) => panic!("guest `{name}` loaded but should have been refused"),
        Err(e) => e,
    }
}

/// No verb at all.
pub fn no_grants() -> Grants {
    Grants::default()
}

/// Grants as a toolkit writes them (`[tools.NAME.grants]`), given as JSON:
/// `{"sign": {"keys": ["webhook"]}, "log": {}}`.
///
/// # Panics
///
/// When the host rejects the grants' shape.
pub fn grants(spec: Value) -> Grants {
    serde_json::from_value(spec.clone())
        .unwrap_or_else(|e| panic!("grants {spec} do not parse: {e}"))
}

/// `sign` (for `keys`, no quota) and `log` (default caps): what the signing
/// guests need.
pub fn signer_grants(keys: &[&str]) -> Grants {
    grants(json!({ "sign": { "keys": keys }, "log": {} }))
}

/// Only `log`.
pub fn log_only() -> Grants {
    grants(json!({ "log": {} }))
}

/// The default budget with `f` applied.
pub fn budget(f: impl FnOnce(&mut Budget)) -> Budget {
    let mut b = Budget::default();
    f(&mut b);
    b
}

/// The lowercase hex HMAC-SHA256 of `data` under `key`, computed here so the
/// tests do not trust the host's arithmetic.
pub fn hmac_hex(key: &[u8], data: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("hmac takes any key length");
    mac.update(data);
    hex::encode(mac.finalize().into_bytes())
}

/// What `word-count.count` must return for `text` (the `wc`-like semantics
/// the guest documents), as JSON.
pub fn expected_counts(text: &str) -> Value {
    json!({
        "words": text.split_whitespace().count(),
        "lines": text.lines().count(),
        "chars": text.chars().count(),
        "bytes": text.len(),
    })
}

/// Runs a good `word-count` job on `host` (its [`TestHost::word_count`]) and
/// checks its exact result: the host must still work after whatever the
/// test did to it.
pub async fn assert_host_still_works(host: &TestHost) {
    let text = "the host\nstill works after that ünïcode job\n";
    let out = host
        .run(host.word_count(), Some("count"), &json!({ "text": text }))
        .await
        .unwrap_or_else(|e| panic!("a good word-count job failed afterwards: {e}"));
    assert_eq!(
        out.value,
        json!({"words": 8, "lines": 2, "chars": 44, "bytes": 46}),
        "word-count after a failing job"
    );
    assert_eq!(out.value, expected_counts(text));
}

/// Asserts `err` is the resources budget of a job allowed `limit` handles.
///
/// # Panics
///
/// When it is any other error, or its detail does not name the limit.
pub fn assert_resources_budget(err: &JobError, limit: usize) {
    match err {
        JobError::Budget {
            which: BudgetKind::Resources,
            detail,
        } => assert!(
            detail.contains(&format!("more than {limit} resource handles")),
            "{detail}"
        ),
        other => panic!("expected the resources budget, got {other:?}"),
    }
}

/// `Err` of a job, panicking with the value when it succeeded.
pub fn job_err(result: Result<airlock::JobOutput, JobError>, what: &str) -> JobError {
    match result {
        Ok(out) => panic!("{what} should have failed but returned {}", out.value),
        Err(e) => e,
    }
}

/// `component` with a custom section appended: the same program under a
/// different digest, for tests that need two distinct components that behave
/// alike.
pub fn with_custom_section(component: &[u8], name: &str, data: &[u8]) -> Vec<u8> {
    fn leb(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let mut body = Vec::new();
    leb(name.len(), &mut body);
    body.extend_from_slice(name.as_bytes());
    body.extend_from_slice(data);
    let mut out = component.to_vec();
    out.push(0); // custom section id
    leb(body.len(), &mut out);
    out.extend_from_slice(&body);
    out
}

/// The `err` value of a job whose tool returned its own error (the tool's
/// `result` was `err`), panicking with what happened instead otherwise.
pub fn tool_error(result: Result<airlock::JobOutput, JobError>, what: &str) -> Value {
    match job_err(result, what) {
        JobError::ToolError(value) => value,
        other => panic!("{what} should have returned the tool's own error, got {other:?}"),
    }
}

/// A verb error as JSON (`{"denied": "why"}`, `"timeout"`) split into its
/// case and its text (empty for `timeout`).
///
/// # Panics
///
/// When `err` is not one case of the verbs' `error` variant.
pub fn verb_error(err: &Value) -> (String, String) {
    const CASES: [&str; 5] = ["denied", "exhausted", "invalid", "upstream", "timeout"];
    let (case, text) = match err {
        Value::String(case) => (case.clone(), String::new()),
        Value::Object(obj) if obj.len() == 1 => {
            let (case, text) = obj.iter().next().expect("one entry");
            let text = text
                .as_str()
                .unwrap_or_else(|| panic!("{err} carries no text"));
            (case.clone(), text.to_string())
        }
        other => panic!("{other} is not a verb error"),
    };
    assert!(CASES.contains(&case.as_str()), "{err} is not a verb error");
    (case, text)
}
