//! `airlock run`: one job of one tool, from a component file with `--grant`
//! flags or from a toolkit entry, printing the result as JSON on stdout.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use serde_json::{Value, json};

use super::{Failure, runtime};
use crate::term::errln;
use crate::units::{format_size, parse_duration, parse_size};
use crate::{Budget, Grants, JobControl, JobOutput, Toolkit, Verb};
use airlock_complete::CompleteGrant;
use airlock_fetch::FetchGrant;
use airlock_kv::KvGrant;
use airlock_log::LogGrant;
use airlock_sign::SignGrant;

#[derive(Debug, Args)]
pub(super) struct RunArgs {
    /// The component (.wasm) to run; omit it with --toolkit and --tool.
    component: Option<PathBuf>,
    /// A toolkit file naming the tool, its grants and budget.
    #[arg(long, requires = "tool")]
    toolkit: Option<PathBuf>,
    /// The tool's name in the toolkit (`word-count`), or the name agents
    /// call one of its functions by (`word_count__count`).
    #[arg(long, requires = "toolkit")]
    tool: Option<String>,
    /// The host config (secrets, keys); default ./airlock.toml if present.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Grant a verb: `log`, `log:16KiB` (job log budget), `sign:KEY[,KEY...]`,
    /// `fetch:URL-PATTERN[,...]` or `complete:PROVIDER/MODEL[,MODEL...]`.
    #[arg(long = "grant", value_name = "VERB[:SCOPE]")]
    grants: Vec<String>,
    /// The exported function to call (not needed when there is only one).
    #[arg(long)]
    call: Option<String>,
    /// Arguments as a JSON object keyed by the function's parameter names.
    #[arg(long, default_value = "{}")]
    args: String,
    /// Wall-clock limit of the job, e.g. 5s or 250ms. With --toolkit, these
    /// four flags may only narrow the toolkit's budget.
    #[arg(long)]
    timeout: Option<String>,
    /// Memory limit, e.g. 64MiB.
    #[arg(long)]
    memory: Option<String>,
    /// Fuel limit (about one unit per WebAssembly instruction).
    #[arg(long)]
    fuel: Option<u64>,
    /// Output limit for the result and for stdout/stderr, e.g. 1MiB.
    #[arg(long)]
    output: Option<String>,
    /// Print a machine-readable JSON object (result or error) on stdout.
    #[arg(long)]
    pub(super) json: bool,
    /// Append audit records (JSON lines) to this file, or `-` for stderr.
    #[arg(long)]
    audit: Option<PathBuf>,
    /// Do not read or write the compiled-component cache.
    #[arg(long)]
    no_cache: bool,
}

/// The comma-separated items of a `--grant` scope.
fn list(scope: Option<&str>) -> Vec<String> {
    scope
        .unwrap_or("")
        .split(',')
        .filter(|k| !k.is_empty())
        .map(str::to_string)
        .collect()
}

/// Turns `--grant` flags into grants.
pub(super) fn parse_grants(flags: &[String]) -> Result<Grants, Failure> {
    let mut grants = Grants::default();
    for flag in flags {
        let (verb, scope) = match flag.split_once(':') {
            Some((v, s)) => (v, Some(s)),
            None => (flag.as_str(), None),
        };
        match Verb::from_name(verb) {
            Some(Verb::Sign) => {
                let keys = list(scope);
                if keys.is_empty() {
                    return Err(Failure::usage(
                        "--grant sign needs key names: --grant sign:KEY[,KEY...]",
                    ));
                }
                grants.sign = Some(Arc::new(SignGrant {
                    keys,
                    ..SignGrant::default()
                }));
            }
            Some(Verb::Log) => {
                let max_total_bytes = scope
                    .map(parse_size)
                    .transpose()
                    .map_err(|e| Failure::usage(format!("--grant {flag}: {e}")))?;
                grants.log = Some(Arc::new(LogGrant {
                    max_total_bytes,
                    ..LogGrant::default()
                }));
            }
            Some(Verb::Fetch) => {
                let allow = list(scope);
                if allow.is_empty() {
                    return Err(Failure::usage(
                        "--grant fetch needs URL patterns: --grant fetch:https://api.example.com/*",
                    ));
                }
                grants.fetch = Some(Arc::new(FetchGrant {
                    allow,
                    ..FetchGrant::default()
                }));
            }
            Some(Verb::Complete) => {
                let (provider, models) = scope.and_then(|s| s.split_once('/')).ok_or_else(|| {
                    Failure::usage("--grant complete needs a provider and models: --grant complete:PROVIDER/MODEL[,MODEL]")
                })?;
                grants.complete = Some(Arc::new(CompleteGrant::new(provider, list(Some(models)))));
            }
            Some(Verb::Kv) => {
                let store = scope.filter(|s| !s.is_empty()).ok_or_else(|| {
                    Failure::usage("--grant kv needs a store: --grant kv:STORE (a [kv.STORE] of the host config)")
                })?;
                grants.kv = Some(Arc::new(KvGrant {
                    store: store.to_string(),
                    ..KvGrant::default()
                }));
            }
            Some(Verb::Sql) => {
                return Err(Failure::usage(
                    "--grant sql is not accepted: a sql grant is a view (tables, columns, row \
                     scopes); write it in a toolkit as [tools.NAME.grants.sql]",
                ));
            }
            None => {
                return Err(Failure::usage(format!(
                    "--grant {flag}: unknown verb `{verb}`; this host serves: {}",
                    Verb::ALL
                        .iter()
                        .map(|v| v.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
    }
    Ok(grants)
}

/// Applies `--timeout`, `--memory`, `--output` and `--fuel` to `budget`.
/// With a toolkit (`kit` names its file and the tool) a flag may only narrow
/// the toolkit's budget, as `--grant` may not widen its grants: a wider
/// value is a usage error naming the toolkit's value.
fn apply_flags(
    args: &RunArgs,
    mut budget: Budget,
    kit: Option<(&std::path::Path, &str)>,
) -> Result<Budget, Failure> {
    let check = |flag: &str, key: &str, given: String, allowed: String, wider: bool| {
        let Some((file, tool)) = kit.filter(|_| wider) else {
            return Ok(());
        };
        Err(Failure::usage(format!(
            "{flag} {given} would widen tool `{tool}`'s budget ({key} = {allowed} in {}); \
             flags can only narrow a toolkit's budget: raise `{key}` under \
             [tools.{tool}.budget] in the toolkit instead",
            file.display()
        )))
    };
    if let Some(t) = &args.timeout {
        let t = parse_duration(t).map_err(|e| Failure::usage(format!("--timeout: {e}")))?;
        let show = |d| humantime::format_duration(d).to_string();
        check(
            "--timeout",
            "timeout",
            show(t),
            show(budget.timeout),
            t > budget.timeout,
        )?;
        budget.timeout = t;
    }
    if let Some(m) = &args.memory {
        let m = parse_size(m).map_err(|e| Failure::usage(format!("--memory: {e}")))?;
        let (given, allowed) = (format_size(m), format_size(budget.memory));
        check("--memory", "memory", given, allowed, m > budget.memory)?;
        budget.memory = m;
    }
    if let Some(o) = &args.output {
        let o = parse_size(o).map_err(|e| Failure::usage(format!("--output: {e}")))?;
        let (given, allowed) = (format_size(o), format_size(budget.output));
        check("--output", "output", given, allowed, o > budget.output)?;
        budget.output = o;
    }
    if let Some(f) = args.fuel {
        let wider = f > budget.fuel;
        check(
            "--fuel",
            "fuel",
            f.to_string(),
            budget.fuel.to_string(),
            wider,
        )?;
        budget.fuel = f;
    }
    Ok(budget)
}

pub(super) fn run(args: RunArgs) -> Result<(), Failure> {
    let call_args: Value = serde_json::from_str(&args.args).map_err(|e| {
        Failure::usage(format!(
            "--args is not valid JSON ({e}); pass an object such as '{{\"text\": \"hi\"}}'"
        ))
    })?;
    let mut call = args.call.clone();
    let (name, component, grants, budget, spec) = match (&args.toolkit, &args.tool, &args.component)
    {
        (Some(kit), Some(tool), None) => {
            if !args.grants.is_empty() {
                return Err(Failure::usage(
                    "--grant cannot widen a toolkit's grants; edit the toolkit instead",
                ));
            }
            let kit = Toolkit::load(kit)?;
            let spec = match kit.tool(tool) {
                Ok(spec) => spec,
                // The name an agent sees (`word_count__count`) names the function too.
                Err(e) => {
                    let (spec, function) = crate::names::resolve(&kit, tool).ok_or(e)?;
                    if call.as_ref().is_some_and(|c| *c != function) {
                        return Err(Failure::usage(format!(
                            "--tool {tool} is function `{function}` of tool `{}`; drop --call",
                            spec.name
                        )));
                    }
                    call = Some(function);
                    spec
                }
            };
            (
                spec.name.clone(),
                spec.component.clone(),
                spec.grants.clone(),
                spec.budget,
                Some(spec.clone()),
            )
        }
        (None, None, Some(path)) => {
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "tool".into());
            (
                name,
                path.clone(),
                parse_grants(&args.grants)?,
                Budget::default(),
                None,
            )
        }
        (Some(_), _, Some(_)) => {
            return Err(Failure::usage(
                "give either a COMPONENT or --toolkit with --tool, not both",
            ));
        }
        _ => {
            return Err(Failure::usage(
                "nothing to run: give a COMPONENT path, or --toolkit FILE --tool NAME",
            ));
        }
    };
    let kit = args.toolkit.as_deref().map(|file| (file, name.as_str()));
    let budget = apply_flags(&args, budget, kit)?;
    let host = super::configured_host(args.config.as_ref(), args.audit.as_ref(), args.no_cache)?;
    let loaded = match spec {
        // Through the toolkit: its pins are checked at this load.
        Some(spec) => host.load_spec(&crate::ToolSpec { budget, ..spec }),
        None => host.load_tool_file(&name, &component, grants, budget),
    };
    let tool = loaded
        .inspect_err(|_| super::warn_cache(&host))
        .map_err(|e| {
            let no_config = args.config.is_none() && !std::path::Path::new("airlock.toml").exists();
            let mut f = Failure::from(e);
            if no_config && f.kind == "config" {
                f.message +=
                    " (no host config was given: pass --config FILE or create ./airlock.toml)";
            }
            f
        })?;
    super::warn_cache(&host);
    let rt = runtime()?;
    // Ctrl-C cancels the job: it stops at once and is audited as cancelled.
    let control = JobControl::new();
    let output = rt.block_on(async {
        let job = std::pin::pin!(host.run_with(&tool, call.as_deref(), &call_args, &control));
        interrupted(&control, job).await
    })?;
    print_output(&output, args.json);
    Ok(())
}

/// Runs `job` and cancels it on SIGINT or SIGTERM.
async fn interrupted<F: Future>(control: &JobControl, mut job: std::pin::Pin<&mut F>) -> F::Output {
    let signal = async {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut int), Ok(mut term)) = (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) else {
                return std::future::pending().await;
            };
            tokio::select! {
                _ = int.recv() => "interrupted (SIGINT, Ctrl-C)",
                _ = term.recv() => "terminated (SIGTERM)",
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            "interrupted (Ctrl-C)"
        }
    };
    tokio::select! {
        biased;
        out = job.as_mut() => return out,
        why = signal => control.cancel.cancel(why),
    }
    job.await
}

fn print_output(output: &JobOutput, as_json: bool) {
    if as_json {
        let logs: Vec<Value> = output
            .logs
            .iter()
            .map(|l| json!({ "level": airlock_log::level_name(l.level), "message": l.message }))
            .collect();
        outln!(
            "{}",
            json!({
                "ok": true,
                "value": output.value,
                "job": output.job,
                "fuel_used": output.fuel_used,
                "elapsed_us": output.elapsed.as_micros() as u64,
                "stdout": output.stdout,
                "stderr": output.stderr,
                "logs": logs,
            })
        );
        return;
    }
    // One `errln!` per log line: a message's own `\n` or `\r` is shown, so
    // it cannot start a line that looks like the host's.
    for line in &output.logs {
        errln!("[{}] {}", airlock_log::level_name(line.level), line.message);
    }
    for line in output.stdout.lines() {
        errln!("stdout | {line}");
    }
    for line in output.stderr.lines() {
        errln!("stderr | {line}");
    }
    outln!(
        "{}",
        serde_json::to_string_pretty(&output.value).unwrap_or_else(|_| "null".into())
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kv_grant_flag_names_a_store_and_nothing_else() {
        let g = parse_grants(&["kv:notes".to_string()]).unwrap_or_else(|_| panic!("parses"));
        let kv = g.kv.expect("a kv grant");
        assert_eq!(kv.store, "notes");
        assert_eq!(kv.namespace, None);
        assert!(!kv.read_only);
        for flag in ["kv", "kv:"] {
            let e = parse_grants(&[flag.to_string()]).map(|_| ()).unwrap_err();
            assert!(
                e.message.contains("--grant kv:STORE"),
                "{flag}: {}",
                e.message
            );
        }
    }
}
