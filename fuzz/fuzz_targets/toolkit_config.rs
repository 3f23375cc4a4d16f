//! Fuzz target `toolkit_config`: toolkit and host-config text through both parsers.
//! The body and its invariants live in `airlock::fuzzing::toolkit_config`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| airlock::fuzzing::toolkit_config(data));
