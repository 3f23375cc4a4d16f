//! Hog: a misbehaving guest for tests.
//! Its only function allocates and touches memory until the host's limit stops it.

wit_bindgen::generate!({
    world: "airlock-guest:hog/hog",
    path: ["../../wit", "wit"],
    generate_all,
});

use std::hint::black_box;

/// The tool: an allocator that never frees.
struct Hog;

impl Guest for Hog {
    fn run(chunk_kib: u32) -> u64 {
        let chunk = (chunk_kib.max(1) as usize).saturating_mul(1024);
        let mut held: Vec<Vec<u8>> = Vec::new();
        loop {
            held.push(black_box(vec![1u8; chunk]));
            black_box(&mut held);
        }
    }
}

export!(Hog);
