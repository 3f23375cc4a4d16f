//! Fuzz target `fetch_url`: a URL and grant patterns through the fetch canonicalizer and matcher.
//! The body and its invariants live in `airlock::fuzzing::fetch_url`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| airlock::fuzzing::fetch_url(data));
