//! What trust costs: pinning a signed tool and loading it, against loading
//! the same bytes bare. Run with `cargo bench -p airlock --bench supply`.
//!
//! Group `load_pinned` — loading `bench_bulky.wasm` (a 5 MB component) from a
//! warm compiled-component cache, in one process:
//!
//! * `bare_5mb`: `Airlock::load_tool_file` of the component path, under the
//!   same trust policy (`require_signed = false`): read, hash, precheck, load
//!   the verified compiled form, link. The baseline.
//! * `pinned_5mb`: `Airlock::load_spec` of the pinned tool of a loaded
//!   toolkit: everything above, plus the statement's and approval's Ed25519
//!   signatures, policy, lockfile claims and grants checked, and the pinned
//!   digest compared with the one hash the cache needs anyway.
//! * `check_only`: `airlock::supply::check_load` alone (signatures, policy,
//!   lockfile claims, grants), the part of `pinned_5mb` that `bare_5mb` lacks
//!   apart from one digest comparison.
//! * `toolkit_and_pinned_5mb`: also reading the toolkit, its lockfile and the
//!   statement and approval from the local store (what `airlock run` does).
//!
//! Group `tool_add` — `airlock tool add` of the 5 MB tool from a real registry
//! on 127.0.0.1 (Debian's `docker-registry`; skipped when missing) into a fresh
//! toolkit, then its first load (`airlock explain --config`, which verifies
//! and compiles it into an empty cache), as two processes of the release
//! binary; `push_5mb` (publishing it) is the baseline of moving the bytes.

mod common;

#[path = "../../trust/tests/common/registry.rs"]
mod registry;

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use airlock::{Airlock, Budget, Capabilities, Grants, HostOptions, NullAudit, Toolkit};
use airlock_trust::oci::{self, Artifact};
use airlock_trust::{
    Approval, Digest, LockedTool, Lockfile, Policy, PrivateKey, Store, ToolRequest,
};
use criterion::{Criterion, criterion_group, criterion_main};

struct Catalog {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    component: PathBuf,
    artifact: Artifact,
    policy: Policy,
}

/// Keys, a team-mode policy, and the 5 MB tool signed and approved.
fn catalog() -> Catalog {
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let dir = tmp.path().to_path_buf();
    let component = common::guest("bench_bulky");
    let bytes = std::fs::read(&component).expect("reading the guest");
    let publisher = PrivateKey::generate();
    let approver = PrivateKey::generate();
    publisher.write_pair(&dir.join("publisher.key")).unwrap();
    approver.write_pair(&dir.join("approver.key")).unwrap();
    std::fs::write(
        dir.join("trust.toml"),
        format!(
            "registries = [\"127.0.0.1\"]\n[publishers.bench]\nkey = \"{}\"\nnamespaces = [\"bench\"]\n\
             [approvers.security]\nkey = \"{}\"\n",
            publisher.public(),
            approver.public()
        ),
    )
    .unwrap();
    let policy = Policy::load(&dir.join("trust.toml")).unwrap();
    let request = ToolRequest {
        description: Some("Reads its own 5 MiB of data.".into()),
        ..ToolRequest::default()
    };
    let statement =
        airlock_trust::publish::pack(&bytes, "bench", "bulky", "1.0.0", request, &publisher)
            .unwrap()
            .to_bytes();
    let verified = policy
        .verify_statement(&statement, &Digest::of(&bytes))
        .unwrap();
    let approval = airlock_trust::publish::approve(&verified, &approver).to_bytes();
    Catalog {
        _dir: tmp,
        dir,
        component,
        artifact: Artifact {
            component: bytes,
            statement,
            approvals: vec![approval],
        },
        policy,
    }
}

/// A toolkit pinning the tool, its lockfile and store, as `tool add` writes them.
fn pinned_toolkit(cat: &Catalog) -> PathBuf {
    let a = &cat.artifact;
    let store = Store::new(cat.dir.join(airlock::supply::STORE_DIR));
    for blob in [&a.component, &a.statement, &a.approvals[0]] {
        store.put(blob).unwrap();
    }
    let verified = cat
        .policy
        .verify_statement(&a.statement, &Digest::of(&a.component))
        .unwrap();
    let (_, approver) = cat
        .policy
        .verify_approval(&a.approvals[0], &verified)
        .unwrap();
    let toolkit = cat.dir.join("toolkit.toml");
    std::fs::write(&toolkit, "[tools.bulky]\ntool = \"oci:catalog:1.0.0\"\n").unwrap();
    let mut lock = Lockfile {
        version: airlock_trust::lock::LOCK_VERSION,
        ..Lockfile::default()
    };
    lock.tools.insert(
        "bulky".into(),
        LockedTool {
            source: "oci:catalog:1.0.0".into(),
            tool: "bench/bulky".into(),
            version: "1.0.0".into(),
            component: verified.component.clone(),
            statement: verified.statement.clone(),
            publisher_key: verified.key.clone(),
            approval: Approval::Signed {
                envelope: Digest::of(&a.approvals[0]),
                approver,
            },
        },
    );
    lock.save(&Lockfile::path_for(&toolkit)).unwrap();
    toolkit
}

fn load_pinned(c: &mut Criterion) {
    let cat = catalog();
    let toolkit = pinned_toolkit(&cat);
    let host = Airlock::new(
        HostOptions {
            cache_dir: Some(cat.dir.join("cache")),
            cache_key: Some(cat.dir.join("cache.key")),
            policy: Some(Arc::new(cat.policy.clone())),
            ..HostOptions::default()
        },
        Capabilities::default(),
        Arc::new(NullAudit),
    )
    .expect("the host starts");
    let kit = Toolkit::load(&toolkit).expect("the pinned toolkit loads");
    let spec = kit.tool("bulky").unwrap().clone();
    host.load_spec(&spec)
        .expect("the pinned tool loads (and warms the cache)");
    let mut group = c.benchmark_group("load_pinned");
    group.bench_function("bare_5mb", |b| {
        b.iter(|| {
            black_box(
                host.load_tool_file(
                    "bulky",
                    &cat.component,
                    Grants::default(),
                    Budget::default(),
                )
                .expect("the bare tool loads"),
            )
        })
    });
    group.bench_function("pinned_5mb", |b| {
        b.iter(|| {
            black_box(
                host.load_spec(black_box(&spec))
                    .expect("the pinned tool loads"),
            )
        })
    });
    let policy = cat.policy.clone();
    group.bench_function("check_only", |b| {
        b.iter(|| black_box(airlock::supply::check_load(Some(&policy), black_box(&spec)).is_ok()))
    });
    group.bench_function("toolkit_and_pinned_5mb", |b| {
        b.iter(|| {
            let kit = Toolkit::load(&toolkit).expect("the toolkit loads");
            black_box(
                host.load_spec(kit.tool("bulky").unwrap())
                    .expect("the pinned tool loads"),
            )
        })
    });
    group.finish();
}

fn airlock(dir: &Path, args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(args)
        .current_dir(dir)
        .env("AIRLOCK_CACHE", dir.join("cache"))
        .env("AIRLOCK_CACHE_KEY", dir.join("cache.key"))
        .output()
        .expect("the airlock binary runs");
    assert!(
        out.status.success(),
        "airlock {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn tool_add(c: &mut Criterion) {
    let Some(registry) = registry::Registry::start() else {
        return;
    };
    let cat = catalog();
    let reference = registry.tool("bench/bulky:1.0.0");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let pushed = rt
        .block_on(oci::push(&reference, &cat.artifact, &oci::Auth::Anonymous))
        .expect("the tool is pushed");
    rt.block_on(oci::push_approval(
        &reference.with_digest(&pushed).unwrap(),
        &cat.artifact.approvals[0],
        &oci::Auth::Anonymous,
    ))
    .expect("the approval is pushed");
    let trust = cat.dir.join("trust.toml");
    let text = std::fs::read_to_string(&trust)
        .unwrap()
        .replace("\"127.0.0.1\"", &format!("\"{}\"", registry.addr));
    std::fs::write(&trust, text).unwrap();
    std::fs::write(
        cat.dir.join("airlock.toml"),
        "[trust]\npolicy = \"trust.toml\"\n",
    )
    .unwrap();
    let reference = reference.to_string();
    let mut group = c.benchmark_group("tool_add");
    group.sample_size(10);
    group.bench_function("push_5mb", |b| {
        b.iter(|| {
            rt.block_on(oci::push(
                &registry.tool("bench/bulky:1.0.1"),
                &cat.artifact,
                &oci::Auth::Anonymous,
            ))
        })
    });
    group.bench_function("add_and_first_load_5mb", |b| {
        b.iter(|| {
            let run = tempfile::tempdir_in(&cat.dir).unwrap();
            for file in ["trust.toml", "airlock.toml"] {
                std::fs::copy(cat.dir.join(file), run.path().join(file)).unwrap();
            }
            std::fs::write(run.path().join("toolkit.toml"), "").unwrap();
            airlock(
                run.path(),
                &["tool", "add", "toolkit.toml", "bulky", &reference],
            );
            airlock(
                run.path(),
                &["explain", "toolkit.toml", "--config", "airlock.toml"],
            );
        })
    });
    group.finish();
}

criterion_group!(benches, load_pinned, tool_add);
criterion_main!(benches);
