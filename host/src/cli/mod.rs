//! The `airlock` command line: `run`, `inspect`, `explain`, `demo`, `mcp`,
//! `schema`, `cache`, and `new` and `wit` for writing tools. Every failure maps
//! to one exit code and a one-line message naming cause and fix.

/// `println!` for command output: every control character but the newline is
/// shown as text (`crate::term::escape_text`, which keeps JSON exact), and when
/// stdout is closed (piped into `head`, say) the process ends quietly instead
/// of panicking on the broken pipe.
macro_rules! outln {
    () => {
        $crate::term::write_stdout(format_args!(""), true)
    };
    ($($arg:tt)*) => {
        $crate::term::write_stdout(format_args!($($arg)*), true)
    };
}

/// `print!` with the same escaping and broken-pipe handling as `outln!`.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::term::write_stdout(format_args!($($arg)*), false)
    };
}

mod audit;
mod authoring;
mod cache;
mod demo;
mod demo_servers;
mod explain;
mod inspect;
mod mcp;
mod run;
mod schema;
mod serve;
mod tool;
mod tool_pin;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use serde_json::json;

use crate::audit::JsonLinesAudit;
use crate::term::errln;
use crate::{
    Airlock, AuditSink, ConfigError, HostConfig, HostOptions, JobError, LoadError, NullAudit,
};

/// Exit codes, one per outcome class.
pub mod exit {
    /// The job succeeded.
    pub const OK: u8 = 0;
    /// The tool returned its own `err`.
    pub const TOOL_ERROR: u8 = 1;
    /// Usage, configuration or argument error.
    pub const USAGE: u8 = 2;
    /// The world check refused the tool.
    pub const REFUSED: u8 = 3;
    /// A budget ran out.
    pub const BUDGET: u8 = 4;
    /// The guest trapped.
    pub const TRAP: u8 = 5;
    /// A host failure.
    pub const INTERNAL: u8 = 6;
    /// No job slot freed within the job's timeout; nothing ran.
    pub const BUSY: u8 = 7;
    /// The job was cancelled (Ctrl-C); 128 + SIGINT, as shells report it.
    pub const CANCELLED: u8 = 130;
}

#[derive(Debug, Parser)]
#[command(
    name = "airlock",
    version,
    about = "Run AI-agent tools as WebAssembly components that get verbs, never secrets"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per process
enum Command {
    /// Run one function of a tool as a job and print its result as JSON.
    Run(run::RunArgs),
    /// Show a component's exports (with JSON Schema) and how airlock treats its imports.
    Inspect(inspect::InspectArgs),
    /// Describe, in plain words, the whole world of each tool in a toolkit.
    Explain(explain::ExplainArgs),
    /// The offline tour: no keys, nothing to configure.
    Demo(demo::DemoArgs),
    /// Check the audit trail's hash chain.
    Audit(audit::AuditArgs),
    /// Serve a toolkit's tools to an agent over MCP (stdio, or --http).
    Mcp(mcp::McpArgs),
    /// Serve several toolkits over HTTP as one stateless replica of a service.
    Serve(serve::ServeArgs),
    /// Make bearer tokens for `airlock serve` (new).
    Token(serve::TokenArgs),
    /// Print a toolkit's tool definitions for MCP, OpenAI or Anthropic.
    Schema(schema::SchemaArgs),
    /// Show or clean the compiled-component cache (path, ls, gc).
    Cache(cache::CacheArgs),
    /// Create a tool project (Rust, Python or JavaScript) that imports the verbs you choose.
    New(authoring::NewArgs),
    /// Write airlock's WIT package to DIR/wit/deps/airlock-verbs/ for building a tool.
    Wit(authoring::WitArgs),
    /// Make an Ed25519 key pair for signing tools or approvals.
    Key(tool::KeyArgs),
    /// Publish, verify, approve, pin and update signed tools (pack, verify, push, pull, approve, diff, add, update).
    Tool(tool::ToolArgs),
}

/// A failure of a CLI command, carrying its exit code.
#[derive(Debug)]
pub struct Failure {
    code: u8,
    kind: &'static str,
    message: String,
    detail: serde_json::Value,
}

impl Failure {
    fn usage(message: impl Into<String>) -> Self {
        Self {
            code: exit::USAGE,
            kind: "usage",
            message: message.into(),
            detail: json!(null),
        }
    }

    fn internal(message: impl Into<String>) -> Self {
        Self {
            code: exit::INTERNAL,
            kind: "internal",
            message: message.into(),
            detail: json!(null),
        }
    }

    /// Prints the message on stderr as `airlock: MESSAGE`, one line with
    /// every control character escaped. A refusal (`not-granted`) keeps its
    /// line breaks: its lines list imports, whose names the component model
    /// limits to plain identifiers.
    fn print(&self) {
        if matches!(self.kind, "not-granted" | "untrusted") {
            for (i, line) in self.message.split('\n').enumerate() {
                let prefix = if i == 0 { "airlock: " } else { "" };
                errln!("{prefix}{line}");
            }
        } else {
            errln!("airlock: {}", self.message);
        }
    }

    fn to_json(&self) -> serde_json::Value {
        json!({ "ok": false, "error": { "kind": self.kind, "message": self.message, "detail": self.detail } })
    }
}

impl From<ConfigError> for Failure {
    fn from(e: ConfigError) -> Self {
        match &e {
            ConfigError::Untrusted { tool, refusal, .. } => untrusted(tool, refusal, e.to_string()),
            _ => Self {
                code: exit::USAGE,
                kind: "config",
                message: e.to_string(),
                detail: json!(null),
            },
        }
    }
}

/// A supply-chain refusal: exit 3, kind `untrusted`, the widened scopes (if
/// any) listed in the detail.
fn untrusted(tool: &str, refusal: &crate::supply::Refusal, message: String) -> Failure {
    let changes = match refusal {
        crate::supply::Refusal::Widened { changes, .. } => {
            changes.iter().map(|c| c.line.clone()).collect()
        }
        _ => Vec::new(),
    };
    Failure {
        code: exit::REFUSED,
        kind: "untrusted",
        message,
        detail: json!({"tool": tool, "widened": changes}),
    }
}

impl From<LoadError> for Failure {
    fn from(e: LoadError) -> Self {
        let (code, kind, detail) = match &e {
            LoadError::World { refusals, .. } => (
                exit::REFUSED,
                "not-granted",
                json!(
                    refusals
                        .iter()
                        .map(|r| json!({"import": r.import, "reason": r.reason}))
                        .collect::<Vec<_>>()
                ),
            ),
            LoadError::Link { .. } => (exit::REFUSED, "not-granted", json!(null)),
            LoadError::Untrusted { tool, refusal } => {
                return untrusted(tool, refusal, e.to_string());
            }
            LoadError::Io { .. } => (exit::USAGE, "usage", json!(null)),
            LoadError::NotAComponent { .. } => (exit::USAGE, "invalid-component", json!(null)),
            LoadError::OverLimits { .. } => (exit::REFUSED, "over-limits", json!(null)),
            LoadError::TypeTooLarge {
                function,
                part,
                cap,
                ..
            } => (
                exit::REFUSED,
                "over-limits",
                json!({"function": function, "part": part, "limit": cap.limit()}),
            ),
            LoadError::Grant { .. } => (exit::USAGE, "config", json!(null)),
        };
        Self {
            code,
            kind,
            message: e.to_string(),
            detail,
        }
    }
}

impl From<crate::describe::DescribeError> for Failure {
    fn from(e: crate::describe::DescribeError) -> Self {
        use crate::describe::DescribeError;
        match &e {
            DescribeError::TooLarge { name, limit, .. } => Self {
                code: exit::REFUSED,
                kind: "over-limits",
                message: e.to_string(),
                detail: json!({"tool": name, "limit": limit}),
            },
            DescribeError::Name { .. } | DescribeError::Docs { .. } => {
                Failure::usage(e.to_string())
            }
        }
    }
}

impl From<JobError> for Failure {
    fn from(e: JobError) -> Self {
        if let JobError::ToolError(serde_json::Value::String(text)) = &e {
            return Self {
                code: exit::TOOL_ERROR,
                kind: e.kind(),
                message: format!("the tool returned an error: {text}"),
                detail: json!({ "err": text }),
            };
        }
        let (code, detail) = match &e {
            JobError::NoSuchFunction(_) | JobError::InvalidArguments(_) => {
                (exit::USAGE, json!(null))
            }
            JobError::Budget { which, .. } => (exit::BUDGET, json!({ "budget": which.name() })),
            JobError::Trap { code, .. } => (exit::TRAP, json!({ "trap": code })),
            JobError::ToolError(v) => (exit::TOOL_ERROR, json!({ "err": v })),
            JobError::Busy { slots, .. } => (exit::BUSY, json!({ "slots": slots })),
            JobError::Cancelled { verb_calls, .. } => {
                (exit::CANCELLED, json!({ "verb_calls": verb_calls }))
            }
            JobError::Internal(_) => (exit::INTERNAL, json!(null)),
        };
        Self {
            code,
            kind: e.kind(),
            message: e.to_string(),
            detail,
        }
    }
}

/// Builds the audit sink the flags and config ask for.
fn audit_sink(flag: Option<&PathBuf>, config: &HostConfig) -> Result<Arc<dyn AuditSink>, Failure> {
    let settings = &config.audit;
    let path = flag.cloned().or_else(|| settings.file.clone());
    let (keys, every) = (settings.keys.clone(), settings.checkpoint_every);
    if let Some(p) = &path
        && keys.is_none()
    {
        errln!(
            "airlock: warning: the audit trail {} is unkeyed: anyone who can write it can \
             rewrite it unnoticed; name an HMAC key and an Ed25519 signing key in the host \
             config's [audit] key and signing_key",
            p.display()
        );
    }
    match path {
        None => Ok(Arc::new(NullAudit)),
        Some(p) if p.as_os_str() == "-" => Ok(Arc::new(JsonLinesAudit::to_stderr(keys, every))),
        Some(p) => JsonLinesAudit::to_file(&p, keys, every)
            .map(|a| Arc::new(a) as Arc<dyn AuditSink>)
            .map_err(|e| {
                Failure::usage(format!(
                    "cannot open audit file {}: {e}; check the path",
                    p.display()
                ))
            }),
    }
}

/// Prints, once per process, why the compiled-component cache was not used
/// (its components were compiled in memory instead).
fn warn_cache(host: &Airlock) {
    if let Some(w) = host.take_cache_warning() {
        errln!("airlock: warning: {w}");
    }
}

/// `result`, after [`warn_cache`]: for a load whose outcome the caller
/// handles next.
fn warned<T>(host: &Airlock, result: T) -> T {
    warn_cache(host);
    result
}

/// A host with no secrets and no audit, for commands that only look at
/// components (inspect, explain, schema).
fn bare_host() -> Result<Airlock, Failure> {
    host_with_policy(None)
}

/// A host with no verbs' secrets, checking tools against `policy`.
fn host_with_policy(policy: Option<Arc<airlock_trust::Policy>>) -> Result<Airlock, Failure> {
    Airlock::new(
        HostOptions {
            cache_max_size: Some(cache::max_size()?),
            policy,
            ..HostOptions::default()
        },
        crate::Capabilities::default(),
        Arc::new(NullAudit),
    )
    .map_err(|e| Failure::internal(format!("{e:#}")))
}

/// A host with the operator's config (`--config` or `./airlock.toml`) and
/// audit trail, for commands that run jobs (run, mcp).
fn configured_host(
    config: Option<&PathBuf>,
    audit: Option<&PathBuf>,
    no_cache: bool,
) -> Result<Airlock, Failure> {
    host_from(load_config(config)?, audit, no_cache)
}

/// [`configured_host`] from a config already loaded.
fn host_from(
    config: HostConfig,
    audit: Option<&PathBuf>,
    no_cache: bool,
) -> Result<Airlock, Failure> {
    let audit = audit_sink(audit, &config)?;
    Airlock::new(
        HostOptions {
            no_cache,
            policy: config.trust.clone(),
            cache_max_size: (!no_cache).then(cache::max_size).transpose()?,
            ..HostOptions::default()
        },
        config.capabilities,
        audit,
    )
    .map_err(|e| Failure::internal(format!("{e:#}")))
}

fn load_config(path: Option<&PathBuf>) -> Result<HostConfig, Failure> {
    match path {
        Some(p) => Ok(HostConfig::load(p)?),
        None => {
            let default = PathBuf::from("airlock.toml");
            if default.exists() {
                Ok(HostConfig::load(&default)?)
            } else {
                Ok(HostConfig::default())
            }
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::internal(format!("cannot start the async runtime: {e}")))
}

/// Clap's error without its `error: ` prefix and usage footer.
fn first_clap_line(e: &clap::Error) -> String {
    let text = e.to_string();
    let first = text.lines().next().unwrap_or_default();
    first.strip_prefix("error: ").unwrap_or(first).to_string()
}

/// Runs the CLI with the process's arguments.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if e.use_stderr() && std::env::args().any(|a| a == "--json") => {
            let f = Failure::usage(first_clap_line(&e));
            outln!("{}", f.to_json());
            return ExitCode::from(exit::USAGE);
        }
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            });
        }
    };
    let json_errors = match &cli.command {
        Command::Run(a) => a.json,
        Command::Inspect(a) => a.json,
        Command::Audit(a) => a.json(),
        Command::Cache(a) => a.json(),
        _ => false,
    };
    let result = match cli.command {
        Command::Run(args) => run::run(args),
        Command::Inspect(args) => inspect::inspect(args),
        Command::Explain(args) => explain::explain(args),
        Command::Demo(args) => demo::demo(args),
        Command::Audit(args) => audit::audit(args),
        Command::Mcp(args) => mcp::mcp(args),
        Command::Serve(args) => serve::serve(args),
        Command::Token(args) => serve::token(args),
        Command::Schema(args) => schema::schema(args),
        Command::Cache(args) => cache::cache(args),
        Command::New(args) => authoring::new(args),
        Command::Wit(args) => authoring::wit(args),
        Command::Key(args) => tool::key(args),
        Command::Tool(args) => tool::tool(args),
    };
    match result {
        Ok(()) => ExitCode::from(exit::OK),
        Err(f) => {
            if json_errors {
                outln!("{}", f.to_json());
            } else {
                f.print();
            }
            ExitCode::from(f.code)
        }
    }
}
