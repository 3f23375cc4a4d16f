//! `airlock demo`: the offline tour. An ephemeral key is made in memory; the
//! example and adversarial guests run one job each; every outcome is checked
//! and explained in one line. Nothing to configure, no network, no keys.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::{Value, json};

use super::{Failure, runtime};
use crate::{
    Airlock, Budget, BudgetKind, Capabilities, Grants, HostOptions, JobError, LoadError,
    MemoryAudit,
};
use airlock_log::LogGrant;
use airlock_sign::{SignCapability, SignGrant, SignKey};

#[derive(Debug, Args)]
pub(super) struct DemoArgs {
    /// Where the guest components are (default: $AIRLOCK_GUESTS, or the
    /// wasm32-wasip2 build folder next to this binary's).
    #[arg(long)]
    guests: Option<PathBuf>,
}

fn guests_dir(flag: Option<PathBuf>) -> Result<PathBuf, Failure> {
    let candidates = flag
        .into_iter()
        .chain(std::env::var_os("AIRLOCK_GUESTS").map(PathBuf::from))
        .chain(std::env::current_exe().ok().and_then(|exe| {
            exe.parent()
                .and_then(Path::parent)
                .map(|target| target.join("wasm32-wasip2").join("release"))
        }))
        .chain(Some(PathBuf::from("target/wasm32-wasip2/release")));
    for dir in candidates {
        if dir.join("word_count.wasm").exists() {
            return Ok(dir);
        }
    }
    Err(Failure::usage(
        "the demo's guest components are not built; run `cargo xtask demo` (or `cargo xtask build-guests` and pass --guests DIR)",
    ))
}

struct Tour {
    host: Airlock,
    dir: PathBuf,
    rt: tokio::runtime::Runtime,
}

impl Tour {
    fn load(&self, guest: &str, grants: Grants, budget: Budget) -> Result<crate::Tool, LoadError> {
        self.host
            .load_tool_file(guest, &self.dir.join(format!("{}.wasm", guest.replace('-', "_"))), grants, budget)
    }

    fn run(&self, tool: &crate::Tool, func: Option<&str>, args: Value) -> Result<crate::JobOutput, JobError> {
        self.rt.block_on(self.host.run(tool, func, &args))
    }
}

fn unexpected(step: &str, what: impl std::fmt::Display) -> Failure {
    Failure::internal(format!("demo step `{step}` did not behave as expected: {what}"))
}

pub(super) fn demo(args: DemoArgs) -> Result<(), Failure> {
    let dir = guests_dir(args.guests)?;
    let audit = Arc::new(MemoryAudit::default());
    let caps = Capabilities {
        sign: SignCapability::new([("webhook".to_string(), SignKey::generate_hmac())]),
        ..Capabilities::default()
    };
    let host = Airlock::new(HostOptions::default(), caps, audit.clone())
        .map_err(|e| Failure::internal(format!("{e:#}")))?;
    let tour = Tour { host, dir, rt: runtime()? };

    println!("airlock demo: an offline tour. Each call below is one job in a fresh sandbox.\n");

    // 1. A pure tool.
    let wc = tour.load("word-count", Grants::default(), Budget::default())?;
    let text = "the quick brown fox jumps over the lazy dog";
    let out = tour
        .run(&wc, None, json!({ "text": text }))
        .map_err(|e| unexpected("word-count", e))?;
    println!("1. word-count, granted nothing");
    println!("   count({text:?}) -> {}", out.value);
    println!(
        "   {:.2} ms, {} fuel. It computed on its arguments; there was nothing else in its world.\n",
        ms(out.elapsed),
        out.fuel_used
    );
    if out.value["words"] != json!(9) {
        return Err(unexpected("word-count", &out.value));
    }

    // 2. Signing with a key the tool never sees.
    let grants = Grants {
        sign: Some(Arc::new(SignGrant {
            keys: vec!["webhook".into()],
            ..SignGrant::default()
        })),
        log: Some(Arc::new(LogGrant::default())),
        ..Grants::default()
    };
    let signer = tour.load("sign-webhook", grants, Budget::default())?;
    let body = r#"{"event":"deploy","id":42}"#;
    let out = tour
        .run(&signer, Some("sign"), json!({ "body": body }))
        .map_err(|e| unexpected("sign-webhook", e))?;
    let header = out.value["header"].as_str().unwrap_or_default().to_string();
    println!("2. sign-webhook, granted: sign (key `webhook` only), log");
    println!("   The host made a random HMAC key in memory a moment ago; the tool knows only its name.");
    println!("   sign({body}) -> {header}");
    for l in &out.logs {
        println!("   tool log: {}", l.message);
    }
    let verified = tour
        .run(&signer, Some("verify"), json!({ "body": body, "header": header }))
        .map_err(|e| unexpected("sign-webhook verify", e))?;
    println!("   verify(same body, that header) -> {}", verified.value);
    let view = tour
        .run(&signer, Some("world-view"), json!({}))
        .map_err(|e| unexpected("sign-webhook world-view", e))?;
    println!("   What the tool can see of its world:");
    for line in view.value.as_array().into_iter().flatten() {
        println!("     {}", line.as_str().unwrap_or_default());
    }
    println!("   It signed with a key whose bytes never entered its memory.\n");
    if verified.value != json!(true) || !header.starts_with("sha256=") {
        return Err(unexpected("sign-webhook", "signature did not verify"));
    }

    // 3. Over-reach: refused before instantiation.
    let only_log = Grants {
        log: Some(Arc::new(LogGrant::default())),
        ..Grants::default()
    };
    println!("3. overreach imports the sign verb but is granted only log");
    match tour.load("overreach", only_log, Budget::default()) {
        Err(e @ LoadError::World { .. }) => {
            for l in e.to_string().lines() {
                println!("   {l}");
            }
            println!("   A verb that was not granted does not exist: the tool could not even start.\n");
        }
        Err(e) => return Err(unexpected("overreach", e)),
        Ok(_) => return Err(unexpected("overreach", "it was not refused")),
    }

    // 4. A runaway loop.
    let budget = Budget {
        timeout: Duration::from_millis(300),
        fuel: u64::MAX / 2,
        ..Budget::default()
    };
    let spin = tour.load("spin", Grants::default(), budget)?;
    let started = Instant::now();
    println!("4. spin loops forever; its budget allows 300 ms");
    match tour.run(&spin, None, json!({})) {
        Err(e @ JobError::Budget { which: BudgetKind::Deadline, .. }) => {
            println!("   {e}");
            println!(
                "   Stopped after {:.0} ms; the host and every other job kept running.\n",
                ms(started.elapsed())
            );
        }
        other => return Err(unexpected("spin", format!("{other:?}"))),
    }

    // 5. A memory hog.
    let budget = Budget {
        memory: 16 << 20,
        ..Budget::default()
    };
    let hog = tour.load("hog", Grants::default(), budget)?;
    println!("5. hog allocates without end; its budget allows 16 MiB");
    match tour.run(&hog, None, json!({ "chunk-kib": 256 })) {
        Err(e @ JobError::Budget { which: BudgetKind::Memory, .. }) => {
            println!("   {e}");
            println!("   Its memory stopped growing at the limit; the sandbox was dropped.\n");
        }
        other => return Err(unexpected("hog", format!("{other:?}"))),
    }

    // 6. The host is unharmed.
    let out = tour
        .run(&wc, None, json!({ "text": "still here" }))
        .map_err(|e| unexpected("word-count after", e))?;
    println!("6. word-count again after all that -> {}", out.value);
    let records = audit.records();
    println!(
        "\nThe audit trail recorded {} verb calls ({} allowed); none holds a key byte.",
        records.len(),
        records
            .iter()
            .filter(|r| r.decision == airlock_core::Decision::Allow)
            .count()
    );
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
