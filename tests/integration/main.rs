//! Integration tests: the real guest components (built for `wasm32-wasip2`)
//! run in the real host. Each module tests one promise of airlock:
//!
//! - `walls`: every budget and every refusal ends a job with its exact typed
//!   error, and the host keeps serving good jobs afterwards;
//! - `sign`: the `sign` verb signs with host-held keys named by the grant;
//! - `log`: the `log` verb's lines reach the job output, key bytes never do;
//! - `concurrency`: many good and bad jobs at once do not disturb each other;
//! - `source_scan`: the host's source never hands a guest ambient authority;
//! - `cache`: the compiled-component cache is used, and never trusted blindly;
//! - `fetch`, `complete`: the network and model verbs, through real guests;
//! - `kv`: the key-value verb, its namespaces, quotas and concurrent writers;
//! - `credentials`: fetch credentials go only where the host config pins
//!   them, and no reflection of one reaches a guest;
//! - `residue`: a reused pool slot holds nothing from the job before;
//! - `canary`: no secret reaches guest memory, job output or the audit;
//! - `pressure`: more jobs than slots, instance-heavy tools, handle floods
//!   and giant messages to every verb;
//! - `bench_guests`: the benchmark guests do what the benches assume;
//! - `describe`: export types too big to describe are refused at load;
//! - `precheck`: refused imports and over-limits components cost no compile.
//! - `sql`: the sql verb's view of a real SQLite file, attacked by a guest;
//! - `no_network`: Python and JavaScript components, unmodified, reach no
//!   network through their socket and HTTP imports.
//!
//! Inside them, a test that attacks one of the walls sits in a module named
//! after it (`walls::cpu::spin_runs_out_of_fuel`): WALLS.md is generated from
//! those names by `cargo xtask walls`.

mod bench_guests;
mod cache;
mod canary;
mod complete;
mod concurrency;
mod credentials;
mod describe;
mod fetch;
mod kv;
mod log;
mod no_network;
mod precheck;
mod pressure;
mod residue;
mod sign;
mod source_scan;
mod sql;
mod walls;
