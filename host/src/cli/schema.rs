//! `airlock schema TOOLKIT --format mcp|openai|anthropic`: the tool
//! definitions an agent framework needs, one per exported function of each
//! tool, derived from the components' WIT types and the tools' WIT docs.
//! Every shape uses the same portable names (`word_count__count`, see
//! `crate::names`); the MCP shape adds titles and grant-derived annotations.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::Failure;
use crate::Toolkit;
use crate::describe::{self, Format};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum FormatArg {
    /// The result of MCP `tools/list`: {"tools": [{name, title, description, inputSchema, outputSchema, annotations}]}.
    Mcp,
    /// OpenAI function calling: [{"type": "function", "function": {name, description, parameters}}].
    Openai,
    /// Anthropic tool use: [{name, description, input_schema}].
    Anthropic,
}

#[derive(Debug, Args)]
pub(super) struct SchemaArgs {
    /// The toolkit file.
    toolkit: PathBuf,
    /// Which ecosystem's shape to print.
    #[arg(long, value_enum, default_value = "mcp")]
    format: FormatArg,
    /// Only this tool's functions.
    #[arg(long)]
    tool: Option<String>,
}

pub(super) fn schema(args: SchemaArgs) -> Result<(), Failure> {
    let kit = Toolkit::load(&args.toolkit)?;
    let specs = match &args.tool {
        Some(name) => vec![kit.tool(name)?],
        None => kit.tools.values().collect(),
    };
    let host = super::bare_host()?;
    let mut tools = Vec::new();
    for spec in specs {
        let bytes = crate::Airlock::read_component(&spec.component)
            .map_err(|e| Failure::usage(format!("tool `{}`: {e}", spec.name)))?;
        let what = spec.component.display().to_string();
        let found = super::warned(&host, host.inspect(&bytes, &what))?;
        // Not compiled: it imports what no grant allows, so no agent could
        // ever call it; say why instead of describing it.
        let Some(exports) = &found.exports else {
            let refusals = crate::world::check(&found.imports, spec.grants.set(), &spec.name)
                .err()
                .unwrap_or_default();
            return Err(crate::LoadError::World {
                tool: spec.name.clone(),
                refusals,
            }
            .into());
        };
        tools.extend(describe::describe_tool(spec, exports)?);
    }
    let format = match args.format {
        FormatArg::Mcp => Format::Mcp,
        FormatArg::Openai => Format::OpenAi,
        FormatArg::Anthropic => Format::Anthropic,
    };
    let out = describe::render(&tools, format).map_err(|e| Failure::usage(e.to_string()))?;
    outln!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    Ok(())
}
