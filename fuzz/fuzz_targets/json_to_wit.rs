//! Fuzz target `json_to_wit`: a selector byte and JSON text converted to a WIT value and back.
//! The body and its invariants live in `airlock::fuzzing::json_to_wit`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| airlock::fuzzing::json_to_wit(data));
