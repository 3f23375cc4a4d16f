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

/// One level deeper, keeping a stack array alive across the (non-tail) call.
fn descend(n: u64) -> u64 {
    let frame = black_box([n; 16]);
    if black_box(true) {
        descend(n + 1).wrapping_add(frame[3])
    } else {
        0
    }
}

export!(Deep);
