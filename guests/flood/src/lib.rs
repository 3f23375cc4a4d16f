//! Flood: a misbehaving guest for tests.
//! It writes huge amounts to stdout, returns a huge string, or holds host
//! resource handles without end.

wit_bindgen::generate!({
    world: "airlock-guest:flood/flood",
    path: ["../../wit", "wit"],
    generate_all,
});

use std::io::Write;

/// Size of each write to stdout.
const CHUNK: usize = 64 * 1024;

/// The tool: output without limit.
struct Flood;

impl Guest for Flood {
    fn print(bytes: u64) -> u64 {
        let chunk = vec![b'x'; CHUNK];
        let mut stdout = std::io::stdout();
        let mut left = bytes;
        while left > 0 {
            let n = left.min(CHUNK as u64) as usize;
            stdout.write_all(&chunk[..n]).unwrap();
            left -= n as u64;
        }
        stdout.flush().unwrap();
        bytes
    }

    fn big(bytes: u64) -> String {
        "y".repeat(usize::try_from(bytes).expect("size must fit in memory"))
    }

    fn handles(count: u32) -> u32 {
        let mut held = Vec::new();
        for _ in 0..count {
            held.push(wasip2::clocks::monotonic_clock::subscribe_duration(
                1_000_000_000,
            ));
        }
        held.len() as u32
    }
}

export!(Flood);
