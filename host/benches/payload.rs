//! What passing a large argument into a tool export costs, against the floor
//! any host pays to take the same bytes in.
//!
//! Run with `cargo bench -p airlock --bench payload`. The `bench_pure` guest
//! exports `take-string(s: string) -> u32` and `take-bytes(b: list<u8>) ->
//! u32` (they return the length):
//!
//! * `airlock_string_<size>` / `airlock_bytes_<size>` /
//!   `airlock_bytes_b64_<size>`: a whole job, `Airlock::run` with the payload
//!   already in a JSON argument (a JSON string; for bytes, a JSON array of
//!   numbers, or base64 text): JSON -> WIT value, store, instantiate, lower
//!   into guest memory (UTF-8 checked for strings), call, drop.
//! * `floor_string_<size>` / `floor_bytes_<size>`: in the same harness,
//!   allocate a buffer, copy the payload into it and (for strings) check it
//!   is UTF-8. This is the least any host can do to take the bytes in; the
//!   target rows compare against it.
//!
//! Where the time goes, for 64 KiB and 1 MiB (read against the same floor):
//!
//! * `decode_b64_<size>`: base64 text decoded into a fresh buffer, the least a
//!   host taking base64 can do (1 KiB too).
//! * `convert_<kind>_<size>`: the JSON -> WIT value step of the job alone
//!   (`values::args_from_json`), its values dropped.
//! * `raw_val_<kind>_<size>`: plain wasmtime on the engine `build_engine`
//!   makes, calling the export through the dynamic `Val` API as airlock does,
//!   with the `Val` argument built before timing (store, instantiate, lower,
//!   call, drop): the best a host using `Func::call_async` can reach.
//! * `raw_typed_<kind>_<size>`: the same job through a typed function
//!   (`TypedFunc<(&[u8],), (u32,)>`, `(&str,)` for strings), which lowers the
//!   payload with one copy: what a typed call path could reach.
//!
//! Strings: 1 KiB, 64 KiB, 1 MiB, 16 MiB. Bytes: 1 KiB, 64 KiB, 1 MiB (a
//! 16 MiB JSON array of numbers is half a GiB of `serde_json::Value`s).
//! The tool's budget allows 64 MiB of memory and of hostcall data.

mod common;

use std::hint::black_box;

use airlock::engine::{PoolSize, build_engine};
use airlock::{Budget, Capabilities, Grants, HostOptions};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use criterion::{
    BenchmarkGroup, Criterion, criterion_group, criterion_main, measurement::WallTime,
};
use serde_json::{Value, json};
use tokio::runtime::Runtime;
use wasmtime::component::{Component, ComponentExportIndex, InstancePre, Linker, Val};
use wasmtime::{Engine, Store};

const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;

fn label(size: usize) -> String {
    if size >= MIB {
        format!("{}MiB", size / MIB)
    } else {
        format!("{}KiB", size / KIB)
    }
}

/// `bench_pure` on plain wasmtime: the engine airlock builds, an empty linker
/// (the guest imports nothing), pre-instantiated once.
struct RawPure {
    engine: Engine,
    pre: InstancePre<()>,
    take_string: ComponentExportIndex,
    take_bytes: ComponentExportIndex,
}

impl RawPure {
    fn new() -> Self {
        let engine = build_engine(PoolSize::default()).expect("the engine builds");
        let component = Component::from_file(&engine, common::guest("bench_pure"))
            .expect("bench_pure compiles");
        let pre = Linker::<()>::new(&engine)
            .instantiate_pre(&component)
            .expect("bench_pure imports nothing");
        let export = |name| {
            component
                .get_export_index(None, name)
                .unwrap_or_else(|| panic!("bench_pure exports {name}"))
        };
        Self {
            take_string: export("take-string"),
            take_bytes: export("take-bytes"),
            engine,
            pre,
        }
    }

    fn store(&self) -> Store<()> {
        let mut store = Store::new(&self.engine, ());
        store.set_fuel(Budget::default().fuel).expect("fuel is on");
        store.set_epoch_deadline(1);
        store
    }

    /// One job calling `export` through the `Val` API with `arg`.
    async fn call_val(&self, export: ComponentExportIndex, arg: &Val) -> u32 {
        let mut store = self.store();
        let instance = self
            .pre
            .instantiate_async(&mut store)
            .await
            .expect("instance");
        let func = instance.get_func(&mut store, export).expect("the export");
        let mut results = [Val::Bool(false)];
        func.call_async(&mut store, std::slice::from_ref(arg), &mut results)
            .await
            .expect("the call");
        match results {
            [Val::U32(n)] => n,
            other => panic!("unexpected result {other:?}"),
        }
    }

    /// One job calling `take-bytes` through a typed function.
    async fn call_typed_bytes(&self, bytes: &[u8]) -> u32 {
        let mut store = self.store();
        let instance = self
            .pre
            .instantiate_async(&mut store)
            .await
            .expect("instance");
        let func = instance
            .get_typed_func::<(&[u8],), (u32,)>(&mut store, self.take_bytes)
            .expect("take-bytes(list<u8>) -> u32");
        func.call_async(&mut store, (bytes,))
            .await
            .expect("the call")
            .0
    }

    /// One job calling `take-string` through a typed function.
    async fn call_typed_string(&self, text: &str) -> u32 {
        let mut store = self.store();
        let instance = self
            .pre
            .instantiate_async(&mut store)
            .await
            .expect("instance");
        let func = instance
            .get_typed_func::<(&str,), (u32,)>(&mut store, self.take_string)
            .expect("take-string(string) -> u32");
        func.call_async(&mut store, (text,))
            .await
            .expect("the call")
            .0
    }
}

/// The raw rows for one payload: the `Val` API and a typed call.
fn raw_rows(
    group: &mut BenchmarkGroup<'_, WallTime>,
    rt: &Runtime,
    raw: &RawPure,
    kind: &str,
    size: usize,
    payload: &[u8],
) {
    let name = format!("{kind}_{}", label(size));
    let (export, arg) = if kind == "string" {
        let text = std::str::from_utf8(payload).expect("ASCII");
        (raw.take_string, Val::String(text.to_string()))
    } else {
        let items = payload.iter().map(|&b| Val::U8(b)).collect();
        (raw.take_bytes, Val::List(items))
    };
    assert_eq!(rt.block_on(raw.call_val(export, &arg)) as usize, size);
    group.bench_function(format!("raw_val_{name}"), |b| {
        b.iter(|| black_box(rt.block_on(raw.call_val(export, black_box(&arg)))))
    });
    if kind == "string" {
        let text = std::str::from_utf8(payload).expect("ASCII");
        assert_eq!(rt.block_on(raw.call_typed_string(text)) as usize, size);
        group.bench_function(format!("raw_typed_{name}"), |b| {
            b.iter(|| black_box(rt.block_on(raw.call_typed_string(black_box(text)))))
        });
    } else {
        assert_eq!(rt.block_on(raw.call_typed_bytes(payload)) as usize, size);
        group.bench_function(format!("raw_typed_{name}"), |b| {
            b.iter(|| black_box(rt.block_on(raw.call_typed_bytes(black_box(payload)))))
        });
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
    let raw = RawPure::new();

    let mut group = c.benchmark_group("payload");
    let cases = [
        ("string", KIB),
        ("string", 64 * KIB),
        ("string", MIB),
        ("string", 16 * MIB),
        ("bytes", KIB),
        ("bytes", 64 * KIB),
        ("bytes", MIB),
        ("bytes_b64", KIB),
        ("bytes_b64", 64 * KIB),
        ("bytes_b64", MIB),
    ];
    for (kind, size) in cases {
        let text = "a".repeat(size);
        let (function, args) = match kind {
            "string" => ("take-string", json!({ "s": text })),
            "bytes" => (
                "take-bytes",
                json!({ "b": Value::Array(vec![json!(97); size]) }),
            ),
            _ => ("take-bytes", json!({ "b": STANDARD.encode(&text) })),
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
        if matches!(size, s if s == 64 * KIB || s == MIB) {
            let params = &tool
                .exports()
                .iter()
                .find(|e| e.name == function)
                .expect("the export")
                .params;
            group.bench_function(format!("convert_{name}"), |b| {
                b.iter(|| black_box(airlock::values::args_from_json(params, black_box(&args))))
            });
        }
        let src = text.as_bytes();
        if kind == "bytes_b64" {
            // The floor is `floor_bytes_<size>`; this is what decoding adds to it.
            let encoded = args["b"].as_str().expect("base64 text");
            group.bench_function(format!("decode_b64_{}", label(size)), |b| {
                b.iter(|| black_box(STANDARD.decode(black_box(encoded)).expect("base64")))
            });
            continue;
        }
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
        if matches!(size, s if s == 64 * KIB || s == MIB) {
            raw_rows(&mut group, &rt, &raw, kind, size, src);
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = payload
}
criterion_main!(benches);
