//! Bench pure: a guest for the host's benchmarks (`host/benches`).
//! Payload sinks for `payload`, a tight loop and a call-heavy loop for `interrupt`.

wit_bindgen::generate!({
    world: "airlock-guest:bench-pure/bench-pure",
    path: ["../../wit", "wit"],
    generate_all,
});

use std::hint::black_box;

/// The tool: four small functions with no verb.
struct BenchPure;

/// One step of the call-heavy loop; never inlined so each iteration is a call.
#[inline(never)]
fn step(acc: u64, i: u64) -> u64 {
    black_box(acc.rotate_left(5) ^ i)
}

impl Guest for BenchPure {
    fn take_string(s: String) -> u32 {
        u32::try_from(s.len()).unwrap_or(u32::MAX)
    }

    fn take_bytes(b: Vec<u8>) -> u32 {
        u32::try_from(b.len()).unwrap_or(u32::MAX)
    }

    fn spin_for(n: u64) -> u64 {
        let mut acc = 0u64;
        for i in 0..n {
            acc = black_box(acc.wrapping_mul(31).wrapping_add(i));
        }
        acc
    }

    fn call_chain(n: u64) -> u64 {
        let mut acc = 0u64;
        for i in 0..n {
            acc = step(acc, i);
        }
        acc
    }
}

export!(BenchPure);
