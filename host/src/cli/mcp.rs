//! `airlock mcp TOOLKIT`: serve a toolkit's tools to an agent over MCP, on
//! stdio (the default) or streamable HTTP (`--http 127.0.0.1:PORT`). The whole
//! toolkit is loaded and checked before anything is served; stdout carries
//! only the protocol, every log line goes to stderr.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use super::Failure;
use crate::Toolkit;
use crate::cancel::CallWatch;
use crate::mcp::{self, StartError, Toolbox};
use crate::term::errln;

#[derive(Debug, Args)]
pub(super) struct McpArgs {
    /// The toolkit file: its tools, grants and budgets are all an MCP client gets.
    toolkit: PathBuf,
    /// The host config (secrets, keys); default ./airlock.toml if present.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Serve streamable HTTP at ADDR:PORT (endpoint /mcp) instead of stdio.
    /// Loopback only unless --allow-remote; port 0 picks a free port.
    #[arg(long, value_name = "ADDR:PORT")]
    http: Option<SocketAddr>,
    /// Allow --http to bind a non-loopback address. There is no
    /// authentication: anyone who can reach the port can call the tools.
    #[arg(long, requires = "http")]
    allow_remote: bool,
    /// Another `Host` header value to accept with --http (e.g. a DNS name
    /// clients use); the bind address (and localhost, for loopback) always is.
    #[arg(long = "allowed-host", value_name = "NAME[:PORT]", requires = "http")]
    allowed_hosts: Vec<String>,
    /// Append audit records (JSON lines) to this file, or `-` for stderr.
    #[arg(long)]
    audit: Option<PathBuf>,
    /// Do not read or write the compiled-component cache.
    #[arg(long)]
    no_cache: bool,
}

impl From<StartError> for Failure {
    fn from(e: StartError) -> Self {
        match e {
            StartError::Load(e) => e.into(),
            StartError::Describe(e) => e.into(),
        }
    }
}

pub(super) fn mcp(args: McpArgs) -> Result<(), Failure> {
    if let Some(addr) = args.http
        && !addr.ip().is_loopback()
        && !args.allow_remote
    {
        return Err(Failure::usage(format!(
            "refusing to serve MCP on {addr}: it is not a loopback address and the server has no \
             authentication; use 127.0.0.1, or pass --allow-remote if every machine that can reach \
             it may call these tools"
        )));
    }
    let kit = Toolkit::load(&args.toolkit)?;
    let config = super::load_config(args.config.as_ref())?;
    let limits = config.mcp_http.clone();
    let host = super::host_from(config, args.audit.as_ref(), args.no_cache)?;
    let audit = host.audit().clone();
    let host = Arc::new(host);
    let toolbox = Arc::new(super::warned(&host, Toolbox::load(host.clone(), &kit))?);
    let names: Vec<String> = toolbox.descriptions().map(|d| d.name.clone()).collect();
    // The runtime that reads and answers requests. Guests do not run on it
    // but on the host's job executor (`crate::executor`), so a call is read
    // while every core spins. It still checks for new requests after every
    // poll rather than every 61: a large request's decode or a long response
    // never delays the next read by more than one poll.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .event_interval(1)
        .build()
        .map_err(|e| Failure::internal(format!("cannot start the async runtime: {e}")))?;
    let watch = CallWatch::new();
    let served = match args.http {
        None => {
            errln!(
                "airlock mcp: serving {} tools from {} on stdio: {}",
                names.len(),
                args.toolkit.display(),
                names.join(", ")
            );
            rt.block_on(until_stopped(
                mcp::serve_stdio(toolbox, watch.clone()),
                &watch,
            ))
        }
        Some(addr) => rt.block_on(async {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
            let bound = listener.local_addr()?;
            errln!(
                "airlock mcp: serving {} tools from {} at http://{bound}{}: {}",
                names.len(),
                args.toolkit.display(),
                mcp::HTTP_PATH,
                names.join(", ")
            );
            until_stopped(
                mcp::serve_http(
                    toolbox,
                    listener,
                    mcp::allowed_hosts(bound, &args.allowed_hosts),
                    limits,
                    watch.clone(),
                ),
                &watch,
            )
            .await
        }),
    };
    // The jobs of a client that left, or of a server asked to stop, were
    // cancelled and end within a tick, writing their `cancelled` audit lines:
    // give them that moment before the runtime goes.
    rt.block_on(async {
        let until = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while host.jobs_running() > 0 && std::time::Instant::now() < until {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    });
    rt.shutdown_background();
    // The run's closing checkpoint, whoever still holds the host.
    audit.close();
    served.map_err(|e| Failure::internal(format!("{e:#}")))
}

/// Serves until `serve` ends or the process is asked to stop (Ctrl-C,
/// SIGTERM); then `watch` cancels the running calls, so they and the audit
/// trail's closing checkpoint are still written.
async fn until_stopped(
    serve: impl std::future::Future<Output = anyhow::Result<()>>,
    watch: &CallWatch,
) -> anyhow::Result<()> {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    #[cfg(unix)]
    let terminated = term.recv();
    #[cfg(not(unix))]
    let terminated = std::future::pending::<Option<()>>();
    // `serve` outlives the select: dropping it ends the sessions, which
    // cancels their calls as if the client had, so the calls must first
    // learn that the server is stopping.
    let mut serve = std::pin::pin!(serve);
    tokio::select! {
        served = &mut serve => return served,
        _ = tokio::signal::ctrl_c() => {}
        _ = terminated => {}
    }
    watch.stop();
    Ok(())
}
