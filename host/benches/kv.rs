//! What one `kv` call costs on the embedded SQLite store, against the host
//! doing the same read or write with rusqlite directly.
//!
//! Run with `cargo bench -p airlock --bench kv`. A store file in a temp dir,
//! a 16-byte value under a 12-byte key:
//!
//! * `kv_get/verb`, `kv_set/verb`: the verb's `Host` method on a `KvState`
//!   (key checks, the grant, the call quota, the job's deadline and
//!   cancellation, the store's connection taken in place for `get`, and for
//!   `set` the blocking-pool hop and one `IMMEDIATE` transaction reading and
//!   updating the namespace's usage row, and an audit record to a
//!   `NullAudit`). One quick run on the 2-core development machine: get
//!   2.16 µs against 1.31 µs direct (1.65×), set 17.5 µs against 2.19 µs
//!   (8.0×: the transaction, the quota reads and the thread hop). The guest's side of the call
//!   (lifting and lowering through wasmtime) is what `verb_call` measures.
//! * `kv_get/direct`, `kv_set/direct`: a second connection to the same file
//!   (WAL), `prepare_cached` and one `SELECT`, or one autocommit upsert, on
//!   the calling thread.
//!
//! Each iteration is one call; criterion's median of each pair gives the ratio.

mod common;

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use airlock_core::bindings::airlock::verbs::kv::Host as _;
use airlock_core::{Capability, Job, NullAudit};
use airlock_kv::{KvCapability, KvGrant, StoreSpec};
use criterion::{Criterion, criterion_group, criterion_main};

const KEY: &str = "bench/key-01";
const VALUE: &[u8; 16] = b"0123456789abcdef";

fn kv(c: &mut Criterion) {
    let rt = common::runtime();
    let dir = tempfile::tempdir().expect("a temp dir");
    let specs: BTreeMap<String, StoreSpec> = [(
        "bench".to_string(),
        StoreSpec::Sqlite {
            path: "kv.db".into(),
        },
    )]
    .into_iter()
    .collect();
    let cap = KvCapability::open(&specs, dir.path(), |_| Err("no secrets".into()))
        .expect("the store opens");
    let grant = Arc::new(KvGrant {
        store: "bench".into(),
        ..KvGrant::default()
    });
    let job = Job::new(
        1,
        "bench".into(),
        Instant::now() + Duration::from_secs(24 * 3600),
        Arc::new(NullAudit),
    );
    let mut state = cap.state(grant, job);
    rt.block_on(state.set(KEY.into(), VALUE.to_vec()))
        .expect("the first set");

    let direct = rusqlite::Connection::open(dir.path().join("kv.db")).expect("a direct connection");
    direct
        .busy_timeout(Duration::from_secs(5))
        .expect("busy timeout");

    let mut group = c.benchmark_group("kv_get");
    group.bench_function("verb", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let started = Instant::now();
                for _ in 0..iters {
                    black_box(state.get(KEY.into()).await.expect("get"));
                }
                started.elapsed()
            })
        })
    });
    group.bench_function("direct", |b| {
        b.iter(|| {
            let mut s = direct
                .prepare_cached("SELECT value FROM airlock_kv WHERE ns = ?1 AND key = ?2")
                .expect("prepare");
            let v: Vec<u8> = s.query_row(("bench", KEY), |r| r.get(0)).expect("the row");
            black_box(v)
        })
    });
    group.finish();

    let mut group = c.benchmark_group("kv_set");
    group.bench_function("verb", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let started = Instant::now();
                for _ in 0..iters {
                    state.set(KEY.into(), VALUE.to_vec()).await.expect("set");
                }
                started.elapsed()
            })
        })
    });
    group.bench_function("direct", |b| {
        b.iter(|| {
            let mut s = direct
                .prepare_cached(
                    "INSERT INTO airlock_kv (ns, key, value) VALUES (?1, ?2, ?3)
                     ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value",
                )
                .expect("prepare");
            black_box(s.execute(("bench", KEY, &VALUE[..])).expect("upsert"))
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = kv
}
criterion_main!(benches);
