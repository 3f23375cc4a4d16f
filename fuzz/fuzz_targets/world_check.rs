//! Fuzz target `world_check`: arbitrary bytes loaded as a component and put through the world check.
//! The body and its invariants live in `airlock::fuzzing::world_check`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| airlock::fuzzing::world_check(data));
