//! `airlock inspect`: what a component offers (exports with types and JSON
//! Schema) and what it asks for (imports sorted into verbs, null WASI and
//! imports airlock will refuse). With `--wit` (or a `package-docs` section in
//! the component) each export also shows its WIT doc comment; docs from the
//! component itself are labelled unreviewed, since agents never see them.
//! A component importing something no grant can allow is not compiled: it
//! shows its functions by name only (`"compiled": false` in `--json`).

use std::path::PathBuf;

use clap::Args;
use serde_json::{Value, json};

use super::Failure;
use crate::Inspection;
use crate::describe::{self, DocSource, Docs, Signature};
use crate::world::{Import, ImportKind};
use crate::{schema, values, wasi};

#[derive(Debug, Args)]
pub(super) struct InspectArgs {
    /// The component (.wasm) to inspect.
    component: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub(super) json: bool,
    /// The component's WIT sources (a directory or a file), for doc comments.
    #[arg(long, value_name = "PATH")]
    wit: Option<PathBuf>,
}

pub(super) fn inspect(args: InspectArgs) -> Result<(), Failure> {
    let bytes = crate::Airlock::read_component(&args.component)?;
    let host = super::bare_host()?;
    let what = args.component.display().to_string();
    let found = super::warned(&host, host.inspect(&bytes, &what))?;
    let imports = &found.imports;
    // A component no grant can allow is not compiled: its functions are
    // listed by name, without types, schemas or docs.
    let Some(exports) = &found.exports else {
        return print_uncompiled(&what, &found, args.json);
    };
    let sigs: Vec<Signature<'_>> = exports.iter().map(Signature::from).collect();
    let docs = Docs::load(args.wit.as_deref(), &bytes, &sigs)
        .map_err(|e| Failure::usage(format!("{what}: {e}")))?;
    let doc_of = |name: &str| docs.as_ref().and_then(|d| d.function_docs(name));

    let exports_json: Vec<Value> = sigs
        .iter()
        .map(|sig| {
            // The input schema with the WIT docs inside, when there are docs.
            let input_schema = describe::describe_function("tool", sig, docs.as_ref(), None)
                .map(|d| d.input_schema)
                .unwrap_or_else(|_| schema::params_schema(sig.params));
            json!({
                "name": sig.name,
                "description": doc_of(sig.name),
                "params": sig.params.iter().map(|(n, t)| json!({"name": n, "type": values::type_name(t)})).collect::<Vec<_>>(),
                "result": sig.result.map(values::type_name),
                "input_schema": input_schema,
                "output_schema": sig.result.map(schema::result_schema_of),
            })
        })
        .collect();
    let (verbs, null_wasi, refused) = sorted_imports(imports);
    if args.json {
        outln!(
            "{}",
            json!({
                "component": what,
                "docs": docs.as_ref().map(|d| json!({
                    "from": d.source().to_string(),
                    "reviewed": !matches!(d.source(), DocSource::PackageDocs),
                    "world": d.world_docs(),
                })),
                "compiled": true,
                "exports": exports_json,
                "imports": { "verbs": verbs, "null_wasi": null_wasi, "refused": refused },
            })
        );
        return Ok(());
    }
    outln!("{what}");
    if let Some(d) = &docs {
        if let Some(world) = d.world_docs() {
            for line in world.lines() {
                outln!("  {line}");
            }
        }
        outln!("  (docs from {})", d.source());
    }
    outln!("\nexports:");
    for e in exports {
        let params: Vec<String> = e
            .params
            .iter()
            .map(|(n, t)| format!("{n}: {}", values::type_name(t)))
            .collect();
        match &e.result {
            Some(r) => outln!(
                "  {}({}) -> {}",
                e.name,
                params.join(", "),
                values::type_name(r)
            ),
            None => outln!("  {}({})", e.name, params.join(", ")),
        }
        if let Some(doc) = doc_of(&e.name) {
            for line in doc.lines() {
                outln!("      {line}");
            }
        }
    }
    print_imports(&verbs, &null_wasi, &refused);
    outln!("\n(run `airlock inspect --json` for each export's JSON Schema)");
    Ok(())
}

/// The imports as JSON lists: verbs to grant, null WASI, refused.
fn sorted_imports(imports: &[Import]) -> (Vec<Value>, Vec<Value>, Vec<Value>) {
    let mut verbs = Vec::new();
    let mut null_wasi = Vec::new();
    let mut refused = Vec::new();
    for i in imports {
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
    (verbs, null_wasi, refused)
}

/// A component refused whatever its grants, shown without compiling it: its
/// functions by name, and its imports.
fn print_uncompiled(what: &str, found: &Inspection, json: bool) -> Result<(), Failure> {
    let (verbs, null_wasi, refused) = sorted_imports(&found.imports);
    if json {
        let exports: Vec<Value> = found.functions.iter().map(|n| json!({"name": n})).collect();
        outln!(
            "{}",
            json!({
                "component": what,
                "docs": null,
                "compiled": false,
                "exports": exports,
                "imports": { "verbs": verbs, "null_wasi": null_wasi, "refused": refused },
            })
        );
        return Ok(());
    }
    outln!("{what}");
    outln!("\nexports (names only: no grant can make this component run, so it was not compiled):");
    for name in &found.functions {
        outln!("  {name}");
    }
    print_imports(&verbs, &null_wasi, &refused);
    Ok(())
}

fn print_imports(verbs: &[Value], null_wasi: &[Value], refused: &[Value]) {
    outln!("\nverbs it needs granted:");
    if verbs.is_empty() {
        outln!("  none");
    }
    for v in verbs {
        outln!(
            "  {} ({})",
            v["verb"].as_str().unwrap_or(""),
            v["import"].as_str().unwrap_or("")
        );
    }
    outln!("\nWASI it gets, empty:");
    if null_wasi.is_empty() {
        outln!("  none");
    }
    for w in null_wasi {
        outln!(
            "  {}: {}",
            w["import"].as_str().unwrap_or(""),
            w["gets"].as_str().unwrap_or("")
        );
    }
    outln!("\nimports airlock will refuse:");
    if refused.is_empty() {
        outln!("  none");
    }
    for r in refused {
        outln!(
            "  {}: {}",
            r["import"].as_str().unwrap_or(""),
            r["reason"].as_str().unwrap_or("")
        );
    }
}
