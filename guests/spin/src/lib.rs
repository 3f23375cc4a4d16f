//! Spin: a misbehaving guest for tests.
//! Its only function loops forever, so the host's deadline must stop it.

wit_bindgen::generate!({
    world: "airlock-guest:spin/spin",
    path: ["../../wit", "wit"],
    generate_all,
});

use std::hint::black_box;

/// The tool: a busy loop.
struct Spin;

impl Guest for Spin {
    fn run() -> u64 {
        let mut counter = 0u64;
        loop {
            counter = black_box(counter.wrapping_add(1));
        }
    }
}

export!(Spin);
