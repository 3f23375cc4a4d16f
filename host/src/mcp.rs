//! The MCP server: a toolkit's tools offered to an agent over the Model
//! Context Protocol (the official Rust SDK, `rmcp`), on stdio or streamable
//! HTTP.
//!
//! [`Toolbox::load`] loads and checks the whole toolkit before anything is
//! served: every tool goes through [`Airlock::load_tool_file`] (so a tool the
//! world check refuses stops the server with the usual message) and is
//! described with [`describe`]. Each exported function is one MCP tool with a
//! portable name (`word_count__count`, see [`crate::names`]; two functions
//! under one name stop the server), the title `TOOL.FUNCTION`, and
//! annotations computed from the tool's grants ([`crate::annotations`]).
//! `tools/call` also accepts the title, for people who type it.
//!
//! Each `tools/call` is one fresh job ([`Airlock::spawn_with`]) under that
//! tool's grants and budget; the grants come from the toolkit and nothing an
//! MCP client sends can change them. Calls run concurrently, on the host's
//! job executor, never on the runtime that reads requests
//! ([`crate::executor`]): a client's call is read and answered while other
//! clients' guests spin on every core. Outcomes:
//!
//! - success: the result as JSON text, plus `structuredContent` (the value,
//!   or `{"result": value}` when it is not a record; see
//!   [`ToolDescription::structured`]);
//! - arguments that do not fit the WIT types, the tool's own `err`, a budget
//!   that ran out, a trap: a result with `isError: true` whose text is the
//!   [`JobError`] message (which names the argument, the budget or the trap),
//!   so the model can read it and correct itself;
//! - an unknown tool name: a JSON-RPC `invalid params` error.
//!
//! Nothing is written to stdout except the protocol: the server's own log
//! lines (startup, one per call, the tools' log lines) go to stderr.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use rmcp::handler::server::ServerHandler;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, PaginatedRequestParams, ProgressNotificationParam, ServerCapabilities,
    ServerConfig,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::{ErrorData, ServiceExt};
use serde_json::Value;

use crate::JobControl;
use crate::cancel::CallWatch;
use crate::config::Toolkit;
use crate::describe::{self, DescribeError, ToolDescription};
use crate::host::{Airlock, LoadError, Tool};
use crate::job::JobError;
use crate::progress::ProgressSink;
use crate::term::errln;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A tool could not be loaded (unreadable, refused by the world check, ...).
    #[error(transparent)]
    Load(#[from] LoadError),
    /// A tool could not be described (a bad name, unusable WIT docs).
    #[error(transparent)]
    Describe(#[from] DescribeError),
}

/// One MCP tool: an exported function of a loaded airlock tool.
struct Entry {
    description: ToolDescription,
    tool: Arc<Tool>,
    listed: rmcp::model::Tool,
}

/// A toolkit loaded, checked and described, ready to serve calls.
pub struct Toolbox {
    host: Arc<Airlock>,
    source: String,
    entries: Vec<Entry>,
    by_name: HashMap<String, usize>,
}

impl Toolbox {
    /// Loads every tool of `kit` (failing on the first that cannot be
    /// loaded or described) into `host`.
    pub fn load(host: Arc<Airlock>, kit: &Toolkit) -> Result<Self, StartError> {
        let mut entries = Vec::new();
        for spec in kit.tools.values() {
            let tool = host.load_spec(spec)?;
            let tool = Arc::new(tool);
            for description in describe::describe_tool(spec, tool.exports())? {
                entries.push(Entry {
                    listed: mcp_tool(&description),
                    description,
                    tool: tool.clone(),
                });
            }
        }
        crate::names::check_unique(entries.iter().map(|e| &e.description))?;
        Ok(Self::from_entries(
            host,
            kit.path.display().to_string(),
            entries,
        ))
    }

    fn from_entries(host: Arc<Airlock>, source: String, mut entries: Vec<Entry>) -> Self {
        entries.sort_by(|a, b| a.description.name.cmp(&b.description.name));
        let by_name = entries
            .iter()
            .enumerate()
            .flat_map(|(i, e)| {
                // The title too: it has a `.`, which no portable name has.
                [
                    (e.description.name.clone(), i),
                    (e.description.title.clone(), i),
                ]
            })
            .collect();
        Self {
            host,
            source,
            entries,
            by_name,
        }
    }

    /// How many MCP tools it serves.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it serves no tool.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The tools offered, sorted by name.
    pub fn descriptions(&self) -> impl Iterator<Item = &ToolDescription> {
        self.entries.iter().map(|e| &e.description)
    }

    /// Runs one call of the MCP tool `name` as a fresh job.
    pub async fn call(
        &self,
        name: &str,
        arguments: Option<serde_json::Map<String, Value>>,
    ) -> Result<CallToolResult, ErrorData> {
        self.call_with(name, arguments, &JobControl::default())
            .await
    }

    /// [`Toolbox::call`] under `control`: cancellable, with its verb calls
    /// reported as they happen.
    pub async fn call_with(
        &self,
        name: &str,
        arguments: Option<serde_json::Map<String, Value>>,
        control: &JobControl,
    ) -> Result<CallToolResult, ErrorData> {
        let Some(entry) = self.by_name.get(name).map(|i| &self.entries[*i]) else {
            let known: Vec<&str> = self
                .entries
                .iter()
                .map(|e| e.description.name.as_str())
                .collect();
            return Err(ErrorData::invalid_params(
                format!("no tool `{name}`; this server has: {}", known.join(", ")),
                None,
            ));
        };
        let d = &entry.description;
        let args = Value::Object(arguments.unwrap_or_default());
        let started = Instant::now();
        // On the host's job executor: a guest never holds up the runtime
        // that reads requests (see `crate::executor`).
        let outcome = self
            .host
            .spawn_with(&entry.tool, Some(&d.function), args, control)
            .await;
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        match outcome {
            Ok(out) => {
                for line in &out.logs {
                    errln!(
                        "airlock mcp: {} job {} [{}] {}",
                        d.name,
                        out.job,
                        airlock_log::level_name(line.level),
                        line.message
                    );
                }
                errln!("airlock mcp: {} job {}: ok in {ms:.1} ms", d.name, out.job);
                let text = serde_json::to_string(&out.value).unwrap_or_else(|_| "null".into());
                let mut result = CallToolResult::structured(d.structured(out.value));
                result.content = vec![ContentBlock::text(text)];
                Ok(result)
            }
            Err(e) => {
                errln!(
                    "airlock mcp: {}: {} in {ms:.1} ms: {}",
                    d.name,
                    e.kind(),
                    first_line(&e)
                );
                Ok(CallToolResult::error(vec![ContentBlock::text(error_text(
                    &e,
                ))]))
            }
        }
    }
}

/// The text of a failed call: the [`JobError`] message, with a tool's own
/// string `err` shown as text rather than as a JSON string.
pub fn error_text(e: &JobError) -> String {
    match e {
        JobError::ToolError(Value::String(s)) => format!("the tool returned an error: {s}"),
        other => other.to_string(),
    }
}

fn first_line(e: &JobError) -> String {
    error_text(e).lines().next().unwrap_or_default().to_string()
}

fn mcp_tool(d: &ToolDescription) -> rmcp::model::Tool {
    // The one MCP form (`airlock schema --format mcp` prints the same).
    serde_json::from_value(d.to_mcp()).expect("a description's MCP form is an MCP tool")
}

/// The MCP handler: a shared [`Toolbox`].
#[derive(Clone)]
pub struct AirlockMcp {
    toolbox: Arc<Toolbox>,
    watch: CallWatch,
}

impl AirlockMcp {
    /// A handler serving `toolbox`.
    pub fn new(toolbox: Arc<Toolbox>) -> Self {
        Self {
            toolbox,
            watch: CallWatch::new(),
        }
    }

    /// This handler, cancelling calls when `watch` says their client is gone.
    pub fn watching(mut self, watch: CallWatch) -> Self {
        self.watch = watch;
        self
    }
}

impl ServerHandler for AirlockMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("airlock", env!("CARGO_PKG_VERSION")))
            .with_instructions(format!(
                "Tools from the airlock toolkit {}. Each call runs as a fresh sandboxed job \
                 with its own budget; a failed call returns isError with the reason.",
                self.toolbox.source
            ))
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(
            self.toolbox
                .entries
                .iter()
                .map(|e| e.listed.clone())
                .collect(),
        ))
    }

    fn get_tool(&self, name: &str) -> Option<rmcp::model::Tool> {
        let i = self.toolbox.by_name.get(name)?;
        Some(self.toolbox.entries[*i].listed.clone())
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        // Cancelled by the client, its session's end or its going away
        // (see `cancel`); progress when it sent a token (see `progress`).
        let progress = context.meta.get_progress_token();
        let sink = progress.as_ref().map(|_| Arc::new(ProgressSink::new()));
        let mut control = JobControl::new();
        if let Some(sink) = &sink {
            control = control.with_events(sink.clone());
        }
        let call = self
            .toolbox
            .call_with(&request.name, request.arguments, &control);
        let call = self.watch.guard(&context, &control.cancel, call);
        let outcome = match (progress, &sink) {
            (Some(token), Some(sink)) => {
                let notify = |n: u64, message: String| {
                    let param = ProgressNotificationParam::new(token.clone(), n as f64)
                        .with_message(message);
                    let peer = context.peer.clone();
                    async move { peer.notify_progress(param).await.is_ok() }
                };
                crate::progress::alongside(call, sink, notify).await
            }
            _ => call.await,
        };
        outcome.map(CallToolResponse::from)
    }
}

/// Serves `toolbox` on stdin/stdout until the client closes stdin; `watch`
/// cancels the running calls when the caller stops the server.
pub async fn serve_stdio(toolbox: Arc<Toolbox>, watch: CallWatch) -> anyhow::Result<()> {
    let (input, output) = rmcp::transport::stdio();
    let running = AirlockMcp::new(toolbox)
        .watching(watch.clone())
        .serve((watch.stdin(input), output))
        .await
        .map_err(|e| anyhow::anyhow!("the MCP session did not start: {e}"))?;
    running.waiting().await?;
    Ok(())
}

/// The `Host` values a server bound to `addr` accepts: the address itself
/// and, for loopback, `localhost`, plus `extra` names.
pub fn allowed_hosts(addr: SocketAddr, extra: &[String]) -> Vec<String> {
    let port = addr.port();
    let mut hosts = vec![match addr {
        SocketAddr::V4(a) => format!("{}:{port}", a.ip()),
        SocketAddr::V6(a) => format!("[{}]:{port}", a.ip()),
    }];
    if addr.ip().is_loopback() {
        hosts.push(format!("localhost:{port}"));
    }
    for name in extra {
        hosts.push(if name.contains(':') && !name.starts_with('[') {
            name.clone()
        } else {
            format!("{name}:{port}")
        });
    }
    hosts
}

/// The path the streamable HTTP endpoint is served at.
pub const HTTP_PATH: &str = "/mcp";

/// Serves `toolbox` over streamable HTTP at [`HTTP_PATH`] on `listener`,
/// accepting only requests whose `Host` is one of `allowed_hosts` (DNS
/// rebinding protection) and whose `Origin`, if any, is `http://` one of them,
/// within `limits` (see [`crate::mcp_http`]); `watch` cancels the running
/// calls when the caller stops the server.
pub async fn serve_http(
    toolbox: Arc<Toolbox>,
    listener: tokio::net::TcpListener,
    allowed_hosts: Vec<String>,
    limits: crate::mcp_http::HttpLimits,
    watch: CallWatch,
) -> anyhow::Result<()> {
    let handlers = watch.clone();
    crate::mcp_http::serve(
        move || AirlockMcp::new(toolbox.clone()).watching(handlers.clone()),
        listener,
        HTTP_PATH,
        allowed_hosts,
        limits,
        watch,
    )
    .await
}

/// One toolkit's MCP endpoint as `airlock serve` routes to it.
pub(crate) type Endpoint = crate::mcp_http::App<AirlockMcp>;

/// `toolbox` served statelessly at `path` (see [`crate::serve`]).
pub(crate) fn endpoint(
    toolbox: Arc<Toolbox>,
    path: String,
    allowed_hosts: Vec<String>,
    limits: &crate::mcp_http::HttpLimits,
    watch: CallWatch,
) -> Endpoint {
    let handlers = watch.clone();
    crate::mcp_http::App::new(
        move || AirlockMcp::new(toolbox.clone()).watching(handlers.clone()),
        path,
        allowed_hosts,
        limits,
        watch,
        true,
    )
}

/// Loads the toolkit at `path` into `host` for serving; a convenience for
/// embedders and benches.
pub fn load_toolkit(host: Arc<Airlock>, path: &Path) -> anyhow::Result<Toolbox> {
    let kit = Toolkit::load(path)?;
    Ok(Toolbox::load(host, &kit)?)
}
