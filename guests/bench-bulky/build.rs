//! Writes the 5 MiB of pseudo-random bytes the guest embeds into `OUT_DIR`
//! (generated, never committed). An xorshift stream: incompressible enough
//! that the component stays about 5 MB whatever tool packs it.

use std::io::Write;

fn main() {
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut data = Vec::with_capacity(5 << 20);
    while data.len() < 5 << 20 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        data.extend_from_slice(&state.to_le_bytes());
    }
    let mut file = std::fs::File::create(out.join("bulk.bin")).expect("creating bulk.bin");
    file.write_all(&data).expect("writing bulk.bin");
    println!("cargo::rerun-if-changed=build.rs");
}
