//! What passing a large argument into a tool export costs, against the floor
//! any host pays to take the same bytes in.
//!
//! Run with `cargo bench -p airlock --bench payload`. The `bench_pure` guest
//! exports `take-string(s: string) -> u32` and `take-bytes(b: list<u8>) ->
//! u32` (they return the length):
//!
//! * `airlock_string_<size>` / `airlock_bytes_<size>`: a whole job,
//!   `Airlock::run` with the payload already in a JSON argument (a JSON
//!   string; for bytes, a JSON array of numbers, the only JSON form of
//!   `list<u8>`): JSON -> WIT value, store, instantiate, lower into guest
//!   memory (UTF-8 checked for strings), call, drop.
//! * `floor_string_<size>` / `floor_bytes_<size>`: in the same harness,
//!   allocate a buffer, copy the payload into it and (for strings) check it
//!   is UTF-8. This is the least any host can do to take the bytes in.
//!
//! Strings: 1 KiB, 64 KiB, 1 MiB, 16 MiB. Bytes: 1 KiB, 64 KiB, 1 MiB (a
//! 16 MiB JSON array of numbers is half a GiB of `serde_json::Value`s).
//! The tool's budget allows 64 MiB of memory and of hostcall data.

mod common;

use std::hint::black_box;

use airlock::{Budget, Capabilities, Grants, HostOptions};
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};

const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;

fn label(size: usize) -> String {
    if size >= MIB {
        format!("{}MiB", size / MIB)
    } else {
        format!("{}KiB", size / KIB)
    }
}

fn payload(c: &mut Criterion) {
    let rt = common::runtime();
    let (host, _cache) = common::host(Capabilities::default(), HostOptions::default());
    let budget = Budget {
        memory: 64 * MIB,
        hostcall_bytes: 64 * MIB,
        ..Budget::default()
    };
    let tool = common::load(&host, "bench_pure", Grants::default(), budget);

    let mut group = c.benchmark_group("payload");
    let cases = [
        ("string", KIB),
        ("string", 64 * KIB),
        ("string", MIB),
        ("string", 16 * MIB),
        ("bytes", KIB),
        ("bytes", 64 * KIB),
        ("bytes", MIB),
    ];
    for (kind, size) in cases {
        let text = "a".repeat(size);
        let (function, args) = match kind {
            "string" => ("take-string", json!({ "s": text })),
            _ => (
                "take-bytes",
                json!({ "b": Value::Array(vec![json!(97); size]) }),
            ),
        };
        let out = rt
            .block_on(host.run(&tool, Some(function), &args))
            .expect("the job runs");
        assert_eq!(out.value, size, "the guest must see every byte");

        let name = format!("{kind}_{}", label(size));
        if size >= 16 * MIB {
            group.sample_size(10);
        } else {
            group.sample_size(50);
        }
        group.bench_function(format!("airlock_{name}"), |b| {
            b.iter(|| {
                black_box(
                    rt.block_on(host.run(&tool, Some(function), black_box(&args)))
                        .expect("the job runs"),
                )
            })
        });
        let src = text.as_bytes();
        group.bench_function(format!("floor_{name}"), |b| {
            b.iter(|| {
                let mut buf = Vec::with_capacity(src.len());
                buf.extend_from_slice(black_box(src));
                if kind == "string" {
                    black_box(std::str::from_utf8(&buf).expect("ASCII is UTF-8"));
                }
                black_box(buf)
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = payload
}
criterion_main!(benches);
