//! `airlock explain`: each tool's whole world in plain words — what it can
//! do, within which budget, and the list of what does not exist for it —
//! written for a security reviewer who does not read Rust.

use std::path::PathBuf;

use clap::Args;

use super::Failure;
use crate::term::escape_control;
use crate::units::format_size;
use crate::{Airlock, ToolSpec, Toolkit, Verb, world};

#[derive(Debug, Args)]
pub(super) struct ExplainArgs {
    /// The toolkit file.
    toolkit: PathBuf,
    /// Explain only this tool.
    #[arg(long)]
    tool: Option<String>,
    /// The host config whose trust policy pinned tools are checked against.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

pub(super) fn explain(args: ExplainArgs) -> Result<(), Failure> {
    let kit = Toolkit::load(&args.toolkit)?;
    let specs: Vec<&ToolSpec> = match &args.tool {
        Some(name) => vec![kit.tool(name)?],
        None => kit.tools.values().collect(),
    };
    let policy = match &args.config {
        Some(path) => crate::HostConfig::load_trust(path)?,
        None => None,
    };
    let host = super::host_with_policy(policy)?;
    let mut refused = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        if i > 0 {
            outln!();
        }
        let (text, ok) = describe(&host, spec);
        super::warn_cache(&host);
        out!("{text}");
        if !ok {
            refused.push(spec.name.as_str());
        }
    }
    if refused.is_empty() {
        return Ok(());
    }
    Err(Failure {
        code: super::exit::REFUSED,
        kind: "not-granted",
        message: format!(
            "the world check would refuse: {} (see above)",
            refused.join(", ")
        ),
        detail: serde_json::json!(refused),
    })
}

/// The plain-words description of one tool's world, and whether its
/// component would pass the world check.
pub(super) fn describe(host: &Airlock, spec: &ToolSpec) -> (String, bool) {
    let mut passes = true;
    let mut out = String::new();
    // Each line is one item: the toolkit's names, description, paths and
    // scopes cannot add lines or reach the terminal as controls.
    let mut line = |s: String| {
        out.push_str(&escape_control(&s));
        out.push('\n');
    };
    line(format!("tool `{}`", spec.name));
    if let Some(d) = &spec.description {
        line(format!("  {d}"));
    }
    line(format!("  component: {}", spec.component.display()));
    if let Some(pin) = &spec.pin {
        for l in crate::supply::pin_lines(pin) {
            line(format!("  {l}"));
        }
        match host.policy() {
            None => line("  trust: no trust policy is configured, so a load refuses it".into()),
            Some(policy) => match crate::supply::check_load(Some(policy), spec) {
                Ok(_) => line(format!(
                    "  trust: its signature, approval and grants pass {} (checked again at every load)",
                    policy.path.display()
                )),
                Err(refusal) => {
                    passes = false;
                    line(format!("  trust: REFUSED: {refusal}"));
                }
            },
        }
    }

    line("  It can:".into());
    let granted = spec.grants.describe();
    if granted.is_empty() {
        line("    - compute on its arguments and return a result; nothing else".into());
    }
    for (verb, lines) in &granted {
        for l in lines {
            line(format!("    - {}: {l}", verb.name()));
        }
    }

    line("  What MCP clients are told (computed from its grants):".into());
    for l in crate::annotations::explain(&spec.grants, &spec.annotations) {
        line(format!("    - {l}"));
    }

    let b = &spec.budget;
    line("  Each call is a fresh sandbox, destroyed afterwards, limited to:".into());
    line(format!(
        "    - {} of wall time, host calls included",
        humantime::format_duration(b.timeout)
    ));
    line(format!(
        "    - {} units of fuel (about one per instruction)",
        b.fuel
    ));
    line(format!("    - {} of memory", format_size(b.memory)));
    line(format!(
        "    - {} of result, and as much for stdout and for stderr",
        format_size(b.output)
    ));

    line("  Does not exist for it:".into());
    line("    - the network: no sockets, no HTTP, no name lookups".into());
    line("    - files: no directory is open, so no file can be named".into());
    line("    - environment variables, arguments, stdin: all empty".into());
    line("    - secrets: key bytes stay in the host; the tool can only name a granted key".into());
    let missing: Vec<&str> = Verb::ALL
        .iter()
        .filter(|v| !spec.grants.set().contains(**v))
        .map(|v| v.name())
        .collect();
    if !missing.is_empty() {
        line(format!(
            "    - the verbs it was not granted: {}",
            missing.join(", ")
        ));
    }

    match crate::Airlock::read_component(&spec.component) {
        Err(e) => line(format!(
            "  Its component could not be read ({e}); build it to check its imports."
        )),
        Ok(bytes) => match host.inspect(&bytes, &spec.name) {
            Err(e) => line(format!("  Its component is unusable: {e}")),
            Ok(found) => match world::check(&found.imports, spec.grants.set(), &spec.name) {
                Ok(used) => {
                    let offered: Vec<String> = found
                        .functions
                        .iter()
                        .map(|function| {
                            let name = crate::names::offered(spec, function);
                            format!("{name} ({}.{function})", spec.name)
                        })
                        .collect();
                    line(format!(
                        "  Agents call its functions as: {}",
                        offered.join(", ")
                    ));
                    if found
                        .imports
                        .iter()
                        .any(|i| crate::no_network::answers(&i.name))
                    {
                        line(format!("  Its {}.", crate::no_network::MEANING));
                    }
                    let used: Vec<&str> = used.iter().map(|v| v.name()).collect();
                    line(format!(
                        "  Its component passes the world check; it imports the verbs: {}",
                        if used.is_empty() {
                            "none".into()
                        } else {
                            used.join(", ")
                        }
                    ));
                }
                Err(refusals) => {
                    passes = false;
                    line("  Its component would be REFUSED before starting:".into());
                    for r in refusals {
                        line(format!("    - {r}"));
                    }
                }
            },
        },
    }
    (out, passes)
}
