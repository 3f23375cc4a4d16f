//! Deep: a misbehaving guest for tests.
//! Its only function recurses without bound until the stack overflows.

wit_bindgen::generate!({
    world: "airlock-guest:deep/deep",
    path: ["../../wit", "wit"],
    generate_all,
});

use std::hint::black_box;

/// The tool: unbounded recursion.
struct Deep;

impl Guest for Deep {
    fn run(n: u64) -> u64 {
        descend(n)
    }
}

/// One level deeper. Only scalars live across the (non-tail) call, so they
/// stay in wasm locals on the engine's native stack: the recursion hits
/// wasmtime's stack limit, not the guest's in-memory shadow stack.
#[inline(never)]
fn descend(n: u64) -> u64 {
    if black_box(n) == u64::MAX {
        0
    } else {
        descend(n + 1).wrapping_add(black_box(n))
    }
}

export!(Deep);
