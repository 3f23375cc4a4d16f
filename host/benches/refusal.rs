//! A large component refused at the world check: airlock reads its imports
//! from the bytes (`airlock::precheck`) and refuses it without compiling,
//! against compiling the same bytes (what the refusal used to cost) measured
//! in the same run. The component (about 16 MB: a core module with 2,000
//! small functions and a 16 MiB data segment, importing `evil:net/raw`) is
//! generated here, not committed.

mod common;

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use airlock::{Airlock, Budget, Capabilities, Grants, HostOptions, LoadError, NullAudit};
use criterion::{Criterion, criterion_group, criterion_main};

/// Bytes of the data segment: the bulk of a Python or JavaScript component.
const DATA_BYTES: usize = 16 << 20;
/// Small functions: something for the compiler to do.
const FUNCTIONS: usize = 2_000;

/// The refused component, built from WAT text.
fn large_refused_component() -> Vec<u8> {
    let mut wat = String::with_capacity(DATA_BYTES + FUNCTIONS * 120 + 1_000);
    wat.push_str("(component\n  (import \"evil:net/raw@1.0.0\" (instance))\n  (core module $m\n");
    wat.push_str(&format!("    (memory {})\n", DATA_BYTES / 65_536 + 1));
    for i in 0..FUNCTIONS {
        wat.push_str(&format!(
            "    (func (export \"f{i}\") (param i32) (result i32) local.get 0 i32.const {i} i32.add i32.const 3 i32.mul)\n"
        ));
    }
    wat.push_str("    (data (i32.const 0) \"");
    wat.extend(std::iter::repeat_n('a', DATA_BYTES));
    wat.push_str("\"))\n  (core instance $i (instantiate $m))\n)\n");
    wat::parse_str(&wat).expect("valid component text")
}

fn refuse_large(c: &mut Criterion) {
    let bytes = large_refused_component();
    assert!(bytes.len() >= 15 << 20, "{} bytes", bytes.len());
    let host = Airlock::new(
        HostOptions {
            no_cache: true,
            ..HostOptions::default()
        },
        Capabilities::default(),
        Arc::new(NullAudit),
    )
    .expect("the host starts");
    let refuse = || {
        let err = host
            .load_tool("large", &bytes, Grants::default(), Budget::default())
            .err();
        assert!(matches!(err, Some(LoadError::World { .. })), "{err:?}");
    };
    refuse();
    let mut group = c.benchmark_group("refuse_large");
    group.bench_function("airlock_refusal", |b| b.iter(refuse));
    // Compiling takes seconds: a few samples are enough.
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(if common::quick() { 5 } else { 15 }));
    group.bench_function("compile", |b| {
        b.iter(|| {
            black_box(
                host.engine()
                    .precompile_component(black_box(&bytes))
                    .expect("it compiles"),
            )
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = refuse_large
}
criterion_main!(benches);
