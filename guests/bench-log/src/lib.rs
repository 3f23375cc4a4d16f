//! Bench log: a guest for the host's `verb_call` benchmark (`host/benches`).
//! One export calls `log.emit` `n` times with a message of `size` bytes.

wit_bindgen::generate!({
    world: "airlock-guest:bench-log/bench-log",
    path: ["../../wit", "wit"],
    generate_all,
});

use airlock::verbs::log::{self, Level};

/// The tool: a burst of log calls.
struct BenchLog;

impl Guest for BenchLog {
    fn burst(n: u32, size: u32) -> u32 {
        let message = "x".repeat(size as usize);
        let mut accepted = 0;
        for _ in 0..n {
            if log::emit(Level::Info, &message).is_ok() {
                accepted += 1;
            }
        }
        accepted
    }
}

export!(BenchLog);
