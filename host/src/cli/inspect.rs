//! `airlock inspect`: what a component offers (exports with types and JSON
//! Schema) and what it asks for (imports sorted into verbs, null WASI and
//! imports airlock will refuse).

use std::path::PathBuf;

use clap::Args;
use serde_json::{Value, json};

use super::Failure;
use crate::world::ImportKind;
use crate::{Airlock, Capabilities, HostOptions, NullAudit, schema, values, wasi};

#[derive(Debug, Args)]
pub(super) struct InspectArgs {
    /// The component (.wasm) to inspect.
    component: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub(super) json: bool,
}

pub(super) fn inspect(args: InspectArgs) -> Result<(), Failure> {
    let bytes = std::fs::read(&args.component).map_err(|e| {
        Failure::usage(format!("cannot read {}: {e}", args.component.display()))
    })?;
    let host = Airlock::new(
        HostOptions::default(),
        Capabilities::default(),
        std::sync::Arc::new(NullAudit),
    )
    .map_err(|e| Failure::internal(format!("{e:#}")))?;
    let what = args.component.display().to_string();
    let (imports, exports) = host.inspect(&bytes, &what)?;

    let exports_json: Vec<Value> = exports
        .iter()
        .map(|e| {
            json!({
                "name": e.name,
                "params": e.params.iter().map(|(n, t)| json!({"name": n, "type": values::type_name(t)})).collect::<Vec<_>>(),
                "result": e.result.as_ref().map(values::type_name),
                "input_schema": schema::params_schema(&e.params),
                "output_schema": e.result.as_ref().map(schema::schema_of),
            })
        })
        .collect();
    let mut verbs = Vec::new();
    let mut null_wasi = Vec::new();
    let mut refused = Vec::new();
    for i in &imports {
        match &i.kind {
            ImportKind::Verb(v) => verbs.push(json!({"import": i.name, "verb": v.name()})),
            ImportKind::Types => {}
            ImportKind::NullWasi => {
                let base = i.name.split('@').next().unwrap_or(&i.name);
                null_wasi.push(json!({"import": i.name, "gets": wasi::null_wasi_meaning(base)}))
            }
            ImportKind::Never(why) => refused.push(json!({"import": i.name, "reason": why})),
        }
    }
    if args.json {
        println!(
            "{}",
            json!({
                "component": what,
                "exports": exports_json,
                "imports": { "verbs": verbs, "null_wasi": null_wasi, "refused": refused },
            })
        );
        return Ok(());
    }
    println!("{what}");
    println!("\nexports:");
    for e in &exports {
        let params: Vec<String> = e
            .params
            .iter()
            .map(|(n, t)| format!("{n}: {}", values::type_name(t)))
            .collect();
        match &e.result {
            Some(r) => println!("  {}({}) -> {}", e.name, params.join(", "), values::type_name(r)),
            None => println!("  {}({})", e.name, params.join(", ")),
        }
    }
    println!("\nverbs it needs granted:");
    if verbs.is_empty() {
        println!("  none");
    }
    for v in &verbs {
        println!("  {} ({})", v["verb"].as_str().unwrap_or(""), v["import"].as_str().unwrap_or(""));
    }
    println!("\nWASI it gets, empty:");
    if null_wasi.is_empty() {
        println!("  none");
    }
    for w in &null_wasi {
        println!("  {}: {}", w["import"].as_str().unwrap_or(""), w["gets"].as_str().unwrap_or(""));
    }
    println!("\nimports airlock will refuse:");
    if refused.is_empty() {
        println!("  none");
    }
    for r in &refused {
        println!("  {}: {}", r["import"].as_str().unwrap_or(""), r["reason"].as_str().unwrap_or(""));
    }
    println!("\n(run `airlock inspect --json` for each export's JSON Schema)");
    Ok(())
}
