//! airlock: run AI-agent tools as WebAssembly components in per-job worlds
//! made of absence. A tool gets verbs (sign these bytes, write a log line),
//! never the secrets, sockets or files behind them.
#![deny(missing_docs)]

pub mod agent_text;
pub mod annotations;
pub mod audit;
pub mod cache;
pub mod cancel;
pub mod cli;
pub mod config;
pub mod describe;
pub mod engine;
pub mod executor;
pub mod files;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod host;
mod http_server;
pub mod job;
pub mod mcp;
pub mod mcp_http;
mod memo;
pub mod names;
pub mod no_network;
pub mod precheck;
#[cfg(feature = "guest-debug")]
pub mod probe;
pub mod progress;
pub mod schema;
pub mod serve;
pub mod supply;
pub mod term;
pub mod tool_wit;
pub mod type_size;
pub mod units;
pub mod values;
pub mod verbs;
pub mod wasi;
pub mod world;

pub use airlock_core::{AuditSink, Cancel, JobControl, JobEvents, MemoryAudit, NullAudit};
pub use config::{ConfigError, HostConfig, ToolSpec, Toolkit};
pub use host::{
    Airlock, Export, HostOptions, IdleInstance, Inspection, JobObserver, LoadError, Tool,
};
pub use job::{Budget, BudgetKind, JobError, JobOutput};
pub use verbs::{Capabilities, Grants, Verb, VerbSet};
