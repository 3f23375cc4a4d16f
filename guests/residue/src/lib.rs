//! Residue: a wall guest for tests.
//! `fill` leaves a canary in linear memory; `scan` reads all of linear memory
//! (every page, not just the heap it knows about) and counts canary matches.

wit_bindgen::generate!({
    world: "airlock-guest:residue/residue",
    path: ["../../wit", "wit"],
    generate_all,
});

/// The tool.
struct Residue;

impl Guest for Residue {
    fn fill(canary: Vec<u8>, mib: u32) -> u64 {
        fill(&canary, mib)
    }

    fn scan(masked: Vec<u8>, mask: u8, grow_mib: u32) -> u64 {
        // Pages never written by this job: whatever they hold came from before.
        core::arch::wasm32::memory_grow(0, grow_mib as usize * 16);
        scan(&masked, mask)
    }

    fn fill_then_scan(canary: Vec<u8>, masked: Vec<u8>, mask: u8) -> u64 {
        fill(&canary, 1);
        scan(&masked, mask)
    }
}

fn fill(canary: &[u8], mib: u32) -> u64 {
    if canary.is_empty() {
        return 0;
    }
    let len = mib as usize * 1024 * 1024;
    let buf: Vec<u8> = canary.iter().copied().cycle().take(len).collect();
    let written = buf.len() as u64;
    // Left in memory on purpose: this is what a later job must never see.
    std::mem::forget(buf);
    written
}

/// Counts offsets `i` where `memory[i + k] ^ mask == masked[k]` for every `k`.
fn scan(masked: &[u8], mask: u8) -> u64 {
    if masked.is_empty() {
        return 0;
    }
    let end = core::arch::wasm32::memory_size(0) * 65536;
    let mut hits = 0;
    // Address 0 is skipped: Rust treats it as null. One byte is never a canary.
    let mut i = 1;
    while i + masked.len() <= end {
        let matched = masked.iter().enumerate().all(|(k, m)| {
            // SAFETY: `i + k < end`, inside the instance's own linear memory.
            let byte = unsafe { core::ptr::read_volatile((i + k) as *const u8) };
            byte ^ mask == *m
        });
        if matched {
            hits += 1;
            i += masked.len();
        } else {
            i += 1;
        }
    }
    hits
}

export!(Residue);
