//! `airlock serve [HOSTCONFIG]`: serve every toolkit of the host config's
//! `[serve]` over streamable HTTP, each at `/toolkits/NAME/mcp`, as one
//! stateless replica of a service (see [`crate::serve`]). Every toolkit is
//! loaded and checked before the port opens; log lines go to stderr, and
//! with `--audit -` the audit records go to stdout as JSON lines.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use super::Failure;
use crate::audit::JsonLinesAudit;
use crate::mcp::Toolbox;
use crate::serve::{self, Metrics, Server};
use crate::term::errln;
use crate::{Airlock, HostOptions, Toolkit};

#[derive(Debug, Args)]
pub(super) struct ServeArgs {
    /// The host config, with `[serve.toolkits.NAME] path = "..."` for each
    /// toolkit to serve; default ./airlock.toml.
    config: Option<PathBuf>,
    /// Listen on ADDR:PORT instead of `[serve] listen` (default
    /// 127.0.0.1:8080); port 0 picks a free port. An address other than
    /// loopback needs `[serve.tokens]` or `[serve.oauth]`.
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<SocketAddr>,
    /// Append audit records (JSON lines) to this file, or `-` for stdout
    /// (a cluster's log pipeline); default `[audit] file`.
    #[arg(long)]
    audit: Option<PathBuf>,
    /// Do not read or write the compiled-component cache.
    #[arg(long)]
    no_cache: bool,
}

pub(super) fn serve(args: ServeArgs) -> Result<(), Failure> {
    let path = args
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from("airlock.toml"));
    if !path.exists() {
        return Err(Failure::usage(format!(
            "no host config at {}: airlock serve needs one with [serve.toolkits.NAME] path = \
             \"toolkit.toml\" for each toolkit to serve",
            path.display()
        )));
    }
    let config = super::load_config(Some(&path))?;
    let spec = config.serve.clone();
    if spec.toolkits.is_empty() {
        return Err(Failure::usage(format!(
            "{} serves no toolkit: add [serve.toolkits.NAME] path = \"toolkit.toml\" (served at \
             {})",
            path.display(),
            serve::toolkit_path("NAME")
        )));
    }
    let listen = match args.listen.or(spec.listen) {
        Some(addr) => addr,
        None => serve::DEFAULT_LISTEN
            .parse()
            .map_err(|e| Failure::internal(format!("the default address: {e}")))?,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // Jobs run on the host's job executor; this runtime reads requests.
        .event_interval(1)
        .build()
        .map_err(|e| Failure::internal(format!("cannot start the async runtime: {e}")))?;
    let auth = rt
        .block_on(airlock_auth::Authenticator::load(
            &spec.tokens,
            spec.oauth.as_ref(),
            &spec.base,
        ))
        .map_err(|e| Failure::usage(format!("{}: [serve]: {e}", path.display())))?;
    if auth.is_empty() && !listen.ip().is_loopback() {
        return Err(Failure::usage(format!(
            "refusing to serve on {listen}: it is not a loopback address and {} names no \
             [serve.tokens.NAME] or [serve.oauth]; add one (`airlock token new`), or listen on \
             127.0.0.1",
            path.display()
        )));
    }
    let auth = (!auth.is_empty()).then_some(auth);
    let metrics = Arc::new(Metrics::default());
    let audit = match &args.audit {
        Some(p) if p.as_os_str() == "-" => Arc::new(JsonLinesAudit::to_writer(
            Box::new(std::io::stdout()),
            config.audit.keys.clone(),
            config.audit.checkpoint_every,
        )),
        flag => super::audit_sink(flag.as_ref(), &config)?,
    };
    let counted = Arc::new(serve::metrics::Counted {
        inner: audit.clone(),
        metrics: metrics.clone(),
    });
    let limits = config.mcp_http.clone();
    let host = Airlock::new(
        HostOptions {
            no_cache: args.no_cache,
            policy: config.trust.clone(),
            cache_max_size: (!args.no_cache).then(super::cache::max_size).transpose()?,
            observer: Some(metrics.clone()),
            ..HostOptions::default()
        },
        config.capabilities,
        counted,
    )
    .map_err(|e| Failure::internal(format!("{e:#}")))?;
    let host = Arc::new(host);
    let mut toolkits = BTreeMap::new();
    for (name, entry) in &spec.toolkits {
        let kit = Toolkit::load(&entry.path)?;
        let toolbox = super::warned(&host, Toolbox::load(host.clone(), &kit)).map_err(|e| {
            let mut f = Failure::from(e);
            f.message = format!("toolkit `{name}` ({}): {}", entry.path.display(), f.message);
            f
        })?;
        toolkits.insert(name.clone(), Arc::new(toolbox));
    }
    let served = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
        let bound = listener.local_addr()?;
        for (name, toolbox) in &toolkits {
            errln!(
                "airlock serve: toolkit {name}: {} tools at http://{bound}{}",
                toolbox.len(),
                serve::toolkit_path(name)
            );
        }
        errln!("airlock serve: listening on http://{bound}");
        serve::run(
            Server {
                host: host.clone(),
                toolkits,
                limits,
                allowed_hosts: spec.allowed_hosts.clone(),
                drain: spec.drain(),
                metrics,
                auth,
            },
            listener,
            tokio_util::sync::CancellationToken::new(),
        )
        .await
    });
    rt.shutdown_background();
    audit.close();
    served.map_err(|e| Failure::internal(format!("{e:#}")))
}

#[derive(Debug, Args)]
pub(super) struct TokenArgs {
    #[command(subcommand)]
    command: TokenCommand,
}

#[derive(Debug, clap::Subcommand)]
enum TokenCommand {
    /// Make a bearer token for `airlock serve`: the token goes to stdout
    /// (shown once, give it to the client), its `[serve.tokens.NAME]` entry
    /// (the hash only) to the host config or stderr.
    New {
        /// The token's name in the host config (in audit records, metrics).
        name: String,
        /// A toolkit it may call; repeat for more (default: all, `*`).
        #[arg(long = "toolkit", value_name = "NAME")]
        toolkits: Vec<String>,
        /// Append the entry to this host config instead of printing it.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

pub(super) fn token(args: TokenArgs) -> Result<(), Failure> {
    let TokenCommand::New {
        name,
        toolkits,
        config,
    } = args.command;
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !ok {
        return Err(Failure::usage(format!(
            "token name `{name}`: use letters, digits, `-` and `_`"
        )));
    }
    let toolkits = if toolkits.is_empty() {
        vec![airlock_auth::ALL_TOOLKITS.to_string()]
    } else {
        toolkits
    };
    let (token, sha256) = airlock_auth::new_token();
    let list: Vec<String> = toolkits.iter().map(|t| format!("{t:?}")).collect();
    let entry = format!(
        "\n[serve.tokens.{name}]\nsha256 = \"{sha256}\"\ntoolkits = [{}]\n",
        list.join(", ")
    );
    match &config {
        Some(path) => {
            use std::io::Write;
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .and_then(|mut f| f.write_all(entry.as_bytes()).map(|()| f))
                .map_err(|e| Failure::usage(format!("cannot append to {}: {e}", path.display())))?;
            let _ = file.flush();
            errln!(
                "airlock token: [serve.tokens.{name}] appended to {}; the token (shown once) is on stdout",
                path.display()
            );
        }
        None => errln!(
            "airlock token: add this to the host config; the token (shown once) is on stdout:{entry}"
        ),
    }
    use secrecy::ExposeSecret;
    println!("{}", token.expose_secret());
    Ok(())
}
