//! Tool descriptions for agents: every exported function of every tool of a
//! toolkit becomes one tool titled `TOOL.FUNCTION`, with a description, a JSON
//! Schema of its arguments and one of its result. One model,
//! [`ToolDescription`], serves the MCP server (`airlock mcp`), `airlock schema`
//! (MCP, OpenAI and Anthropic shapes) and `airlock inspect`.
//!
//! # Schemas
//!
//! The input schema is [`schema::params_schema`] of the export's parameters.
//! The output schema describes what a successful call returns: the `ok`
//! payload for an export returning `result<T, E>` (an `err` is a failed call,
//! not a result), the value itself otherwise. MCP requires structured results
//! to be JSON objects, so a result that is not a WIT record is wrapped as
//! `{"result": value}` ([`ToolDescription::wraps_output`]), and the output
//! schema says so.
//!
//! # Descriptions
//!
//! What a model reads decides what it does, so descriptions come only from
//! the operator: the toolkit and the WIT the toolkit points at.
//!
//! 1. The toolkit's `description` of the tool comes first, for every
//!    function of the tool; nothing replaces it.
//! 2. The tool's WIT sources, the toolkit's `wit = "path"` (a directory or a
//!    file), parsed with `wit-parser`, add each function's doc comment after
//!    it, and the docs of records and their fields, variants and their
//!    cases, enums and flags become `description`s inside the schemas. The
//!    host's own package `airlock:verbs@0.1.0` is built in, so a tool's WIT
//!    may `include airlock:verbs/signer@0.1.0;` without a `deps/` folder, or
//!    with the host's copy in `deps/` ([`crate::tool_wit`]). The
//!    world used is the one whose exported functions cover the component's
//!    exports; parameter names are checked against the component so stale
//!    WIT is an error rather than wrong docs. WIT has no doc comments on
//!    parameters.
//! 3. With neither, the signature, `TOOL.FUNCTION(params) -> result`.
//!
//! A component's own `package-docs` custom section (the format
//! `wit-component` writes into encoded WIT packages) is text its author
//! wrote and nobody reviewed: it never reaches an agent. [`Docs::load`]
//! reads it for `airlock inspect` alone, which labels it as such.
//!
//! Every description is cleaned by [`crate::agent_text`]: control and
//! invisible characters (bidi overrides, zero-width and tag characters, ...)
//! are removed and each text is capped at
//! [`agent_text::MAX_DESCRIPTION_CHARS`] characters. A described function
//! whose schemas and description together pass [`MAX_SCHEMA_BYTES`] as JSON
//! is an error ([`DescribeError::TooLarge`]); the types themselves were
//! already bounded when the component was loaded ([`crate::type_size`]).
//!
//! # Names
//!
//! A tool's `title` is `TOOL.FUNCTION`; its `name`, the same in MCP, OpenAI
//! and Anthropic shapes, is portable (`^[a-zA-Z0-9_]{1,64}$`): see
//! [`crate::names`]. Its MCP annotations come from its grants: see
//! [`crate::annotations`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Value, json};
use wasmtime::component::types::Type;
use wit_parser::{Resolve, TypeDefKind, TypeOwner, WorldId, WorldItem, WorldKey};

use crate::annotations::{self, Hints};
use crate::config::ToolSpec;
use crate::host::Export;
use crate::{agent_text, names, schema, values};

/// Most bytes one described function may take as JSON: its input and output
/// schemas and its description together.
pub const MAX_SCHEMA_BYTES: usize = 1 << 20;

/// One tool as an agent sees it: one exported function of one airlock tool.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolDescription {
    /// The portable name agents call it by, e.g. `word_count__count`
    /// (see [`crate::names`]).
    pub name: String,
    /// `TOOL.FUNCTION` as people write it, e.g. `word-count.count`.
    pub title: String,
    /// The airlock tool (the toolkit's `[tools.NAME]`).
    pub tool: String,
    /// The exported function.
    pub function: String,
    /// What it does: the toolkit's description, then the WIT docs, or the
    /// signature (see the module docs).
    pub description: String,
    /// JSON Schema of the arguments object.
    pub input_schema: Value,
    /// JSON Schema of the structured result (always an object).
    pub output_schema: Value,
    /// Whether the structured result is the value wrapped as `{"result": value}`.
    pub wraps_output: bool,
    /// MCP hints computed from the tool's grants; `None` when described
    /// without a toolkit (no grants known).
    pub annotations: Option<Hints>,
}

impl ToolDescription {
    /// The structured result of a call that returned `value`: the value
    /// itself when it is a record, `{"result": value}` otherwise.
    pub fn structured(&self, value: Value) -> Value {
        if self.wraps_output {
            json!({ "result": value })
        } else {
            value
        }
    }

    /// The MCP `Tool` object of `tools/list`.
    pub fn to_mcp(&self) -> Value {
        let mut tool = json!({
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "inputSchema": self.input_schema,
            "outputSchema": self.output_schema,
        });
        if let Some(h) = self.annotations {
            tool["annotations"] = json!({
                "title": self.title,
                "readOnlyHint": h.read_only,
                "destructiveHint": h.destructive,
                "idempotentHint": h.idempotent,
                "openWorldHint": h.open_world,
            });
        }
        tool
    }

    /// An OpenAI `tools` entry (`{"type": "function", "function": {...}}`).
    pub fn to_openai(&self) -> Value {
        json!({
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.input_schema,
            },
        })
    }

    /// An Anthropic Messages API `tools` entry.
    pub fn to_anthropic(&self) -> Value {
        json!({
            "name": self.name,
            "description": self.description,
            "input_schema": self.input_schema,
        })
    }
}

/// The shapes `airlock schema` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The result of MCP `tools/list`: `{"tools": [...]}`.
    Mcp,
    /// OpenAI function calling: `[{"type": "function", "function": {...}}]`.
    OpenAi,
    /// Anthropic tool use: `[{"name", "description", "input_schema"}]`.
    Anthropic,
}

/// Tool definitions in `format`. Errors if two tools share a name or a name
/// is not portable (see [`crate::names`]).
pub fn render(tools: &[ToolDescription], format: Format) -> Result<Value, DescribeError> {
    for t in tools {
        names::check(&t.name).map_err(|reason| DescribeError::Name {
            name: t.title.clone(),
            reason: format!("is offered as `{}`, which {reason}", t.name),
        })?;
    }
    names::check_unique(tools)?;
    Ok(match format {
        Format::Mcp => {
            json!({ "tools": tools.iter().map(ToolDescription::to_mcp).collect::<Vec<_>>() })
        }
        Format::OpenAi => tools.iter().map(ToolDescription::to_openai).collect(),
        Format::Anthropic => tools.iter().map(ToolDescription::to_anthropic).collect(),
    })
}

/// Why a tool could not be described.
#[derive(Debug, thiserror::Error)]
pub enum DescribeError {
    /// A name is not portable, or two functions share one.
    #[error("tool name `{name}` {reason}")]
    Name {
        /// The offending name.
        name: String,
        /// What is wrong and what to do.
        reason: String,
    },
    /// The docs the toolkit points at cannot be used.
    #[error("tool `{tool}`: {reason}")]
    Docs {
        /// The tool.
        tool: String,
        /// What is wrong and what to do.
        reason: String,
    },
    /// A function's schemas and description are too big to hand an agent.
    #[error(
        "tool `{name}` would be described in {bytes} bytes of JSON, over the {limit}-byte \
         limit per function; simplify its types or shorten its docs"
    )]
    TooLarge {
        /// `TOOL.FUNCTION`.
        name: String,
        /// Its size as JSON.
        bytes: usize,
        /// [`MAX_SCHEMA_BYTES`].
        limit: usize,
    },
}

/// What describing a function needs: its name and its WIT types.
#[derive(Debug, Clone, Copy)]
pub struct Signature<'a> {
    /// The function's name.
    pub name: &'a str,
    /// Its parameters, in order.
    pub params: &'a [(String, Type)],
    /// Its result type.
    pub result: Option<&'a Type>,
}

impl<'a> From<&'a Export> for Signature<'a> {
    fn from(e: &'a Export) -> Self {
        Signature {
            name: &e.name,
            params: &e.params,
            result: e.result.as_ref(),
        }
    }
}

/// Describes every export of the tool `spec`, with docs from the WIT the
/// toolkit points at, if any, and never from the component itself.
pub fn describe_tool(
    spec: &ToolSpec,
    exports: &[Export],
) -> Result<Vec<ToolDescription>, DescribeError> {
    let sigs: Vec<Signature<'_>> = exports.iter().map(Signature::from).collect();
    let docs = match spec.wit.as_deref() {
        Some(path) => Some(
            Docs::from_wit(path, &sigs).map_err(|reason| DescribeError::Docs {
                tool: spec.name.clone(),
                reason,
            })?,
        ),
        None => None,
    };
    let mut described = describe(
        &spec.name,
        &sigs,
        docs.as_ref(),
        spec.description.as_deref(),
    )?;
    names::assign(spec, &mut described)?;
    let hints = annotations::hints(&spec.grants, &spec.annotations);
    for d in &mut described {
        d.annotations = Some(hints);
    }
    Ok(described)
}

/// Describes the functions `sigs` of tool `tool`, with `operator` (the
/// toolkit's description) first and docs from `docs` after it.
pub fn describe(
    tool: &str,
    sigs: &[Signature<'_>],
    docs: Option<&Docs>,
    operator: Option<&str>,
) -> Result<Vec<ToolDescription>, DescribeError> {
    sigs.iter()
        .map(|s| describe_function(tool, s, docs, operator))
        .collect()
}

/// Describes one function; see [`describe`].
pub fn describe_function(
    tool: &str,
    sig: &Signature<'_>,
    docs: Option<&Docs>,
    operator: Option<&str>,
) -> Result<ToolDescription, DescribeError> {
    let title = format!("{tool}.{}", sig.name);
    let mut input_schema = schema::params_schema(sig.params);
    let (mut output_schema, wraps_output) = output_schema(sig.result);
    let wit = docs.and_then(|d| d.function(sig.name).map(|f| (d, f)));
    if let Some((d, f)) = wit {
        for p in &f.params {
            if let Some(s) = input_schema
                .get_mut("properties")
                .and_then(|props| props.get_mut(&p.name))
            {
                annotate(s, &p.ty, &d.resolve, 0);
            }
        }
        if let Some(ty) = f.result.as_ref().and_then(|t| ok_type(t, &d.resolve)) {
            let target = if wraps_output {
                output_schema
                    .get_mut("properties")
                    .and_then(|props| props.get_mut("result"))
            } else {
                Some(&mut output_schema)
            };
            if let Some(target) = target {
                annotate(target, &ty, &d.resolve, 0);
            }
        }
    }
    let texts: Vec<String> = [
        clean_docs(operator),
        wit.and_then(|(_, f)| clean_docs(f.docs.contents.as_deref())),
    ]
    .into_iter()
    .flatten()
    .collect();
    let description = if texts.is_empty() {
        agent_text::cap(
            agent_text::sanitize(&signature_text(&title, sig)),
            agent_text::MAX_DESCRIPTION_CHARS,
        )
    } else {
        agent_text::cap(texts.join("\n\n"), agent_text::MAX_DESCRIPTION_CHARS)
    };
    let bytes = crate::host::json_len(&input_schema)
        + crate::host::json_len(&output_schema)
        + description.len();
    if bytes > MAX_SCHEMA_BYTES {
        return Err(DescribeError::TooLarge {
            name: title,
            bytes,
            limit: MAX_SCHEMA_BYTES,
        });
    }
    Ok(ToolDescription {
        name: names::portable(tool, sig.name),
        title,
        tool: tool.to_string(),
        function: sig.name.to_string(),
        description,
        input_schema,
        output_schema,
        wraps_output,
        annotations: None,
    })
}

/// `TOOL.FUNCTION(a: string, b: u32) -> record { ... }`.
fn signature_text(name: &str, sig: &Signature<'_>) -> String {
    let params: Vec<String> = sig
        .params
        .iter()
        .map(|(n, t)| format!("{n}: {}", values::type_name(t)))
        .collect();
    match sig.result {
        Some(r) => format!("{name}({}) -> {}", params.join(", "), values::type_name(r)),
        None => format!("{name}({})", params.join(", ")),
    }
}

/// The output schema of a function returning `result` and whether the value
/// is wrapped as `{"result": value}`.
fn output_schema(result: Option<&Type>) -> (Value, bool) {
    let payload = match result {
        Some(Type::Result(r)) => r.ok(),
        Some(t) => Some(t.clone()),
        None => None,
    };
    match payload {
        Some(t @ Type::Record(_)) => (schema::result_schema_of(&t), false),
        other => {
            let inner =
                other.map_or_else(|| json!({"type": "null"}), |t| schema::result_schema_of(&t));
            (
                json!({
                    "type": "object",
                    "properties": { "result": inner },
                    "required": ["result"],
                    "additionalProperties": false,
                    "description": "The function's result is the value of `result` (structured results are JSON objects, so a value that is not a record is wrapped).",
                }),
                true,
            )
        }
    }
}

/// Doc comment text as one paragraph per blank-line-separated block, with
/// hidden characters removed and the length capped ([`agent_text`]).
fn clean_docs(docs: Option<&str>) -> Option<String> {
    let docs = agent_text::sanitize(docs?);
    let mut paragraphs: Vec<String> = Vec::new();
    let mut current = String::new();
    for line in docs.lines().map(str::trim) {
        if line.is_empty() {
            if !current.is_empty() {
                paragraphs.push(std::mem::take(&mut current));
            }
            continue;
        }
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(line);
    }
    if !current.is_empty() {
        paragraphs.push(current);
    }
    let text = paragraphs.join("\n\n");
    (!text.is_empty()).then(|| agent_text::cap(text, agent_text::MAX_DESCRIPTION_CHARS))
}

// ---- docs ----

/// The airlock host's own WIT package, `airlock:verbs@0.1.0`, built in so a
/// tool's WIT can include its worlds without a `deps/` folder: the same files
/// `airlock wit` writes.
pub(crate) use airlock_authoring::wit::VERBS_WIT;

/// Where a tool's docs came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocSource {
    /// WIT sources at this path.
    Wit(PathBuf),
    /// The component's `package-docs` custom section: text its author wrote
    /// and nobody reviewed, shown by `airlock inspect` and never to agents.
    PackageDocs,
}

impl std::fmt::Display for DocSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DocSource::Wit(p) => write!(f, "WIT at {}", p.display()),
            DocSource::PackageDocs => f.write_str(
                "the component's own package-docs section (unreviewed text from the component's \
                 author; never shown to agents)",
            ),
        }
    }
}

/// A tool's documented world: WIT types and doc comments for its exports.
#[derive(Debug)]
pub struct Docs {
    resolve: Resolve,
    world: WorldId,
    source: DocSource,
}

impl Docs {
    /// Docs for a component whose exports are `sigs`, for `airlock inspect`:
    /// from the WIT at `wit` if given (errors if it cannot be read or does
    /// not match), else from a `package-docs` section of `component` if there
    /// is one (unreviewed: see [`DocSource::PackageDocs`]), else none.
    pub fn load(
        wit: Option<&Path>,
        component: &[u8],
        sigs: &[Signature<'_>],
    ) -> Result<Option<Docs>, String> {
        match wit {
            Some(path) => Docs::from_wit(path, sigs).map(Some),
            None => Docs::from_package_docs(component, sigs),
        }
    }

    /// Reads the WIT at `path` (a directory, as `wit-bindgen` takes it, or one
    /// file), with the host's `airlock:verbs` package available, and picks the
    /// world that exports every function in `sigs`.
    pub fn from_wit(path: &Path, sigs: &[Signature<'_>]) -> Result<Docs, String> {
        if !path.exists() {
            return Err(format!(
                "its `wit` path {} does not exist; point it at the tool's WIT directory or file",
                path.display()
            ));
        }
        // wit-parser reads the files itself: each must be a regular file,
        // all of them under the cap, before it does.
        crate::files::check_wit_path(path)
            .map_err(|(file, e)| format!("cannot read its WIT at {}: {e}", file.display()))?;
        // With the built-in airlock:verbs; a copy of it in deps/ is checked,
        // never added twice (see `tool_wit`).
        let (resolve, pkg) = crate::tool_wit::read(path).map_err(|e| e.to_string())?;
        let candidates: Vec<WorldId> = resolve.packages[pkg]
            .worlds
            .values()
            .copied()
            .chain(resolve.worlds.iter().map(|(id, _)| id))
            .collect();
        let world = candidates
            .iter()
            .copied()
            .find(|w| sigs.iter().all(|s| world_function(&resolve, *w, s.name).is_some()))
            .ok_or_else(|| {
                let wanted: Vec<&str> = sigs.iter().map(|s| s.name).collect();
                let worlds: Vec<String> = resolve.packages[pkg]
                    .worlds
                    .keys()
                    .map(|w| format!("`{w}`"))
                    .collect();
                format!(
                    "no world in its WIT at {} exports all of the component's functions ({}); {}: point `wit` at the tool's own WIT",
                    path.display(),
                    wanted.join(", "),
                    if worlds.is_empty() {
                        "its package has no world".to_string()
                    } else {
                        format!("its package has {}", worlds.join(", "))
                    }
                )
            })?;
        let docs = Docs {
            resolve,
            world,
            source: DocSource::Wit(path.to_path_buf()),
        };
        docs.check_params(sigs)?;
        Ok(docs)
    }

    /// Docs from a `package-docs` custom section of the component, if it has
    /// one: the component's own types (decoded with `wit-parser`) with the
    /// section's doc comments put back on them by name.
    pub fn from_package_docs(
        component: &[u8],
        sigs: &[Signature<'_>],
    ) -> Result<Option<Docs>, String> {
        let Some(section) = find_custom_section(component, PACKAGE_DOCS) else {
            return Ok(None);
        };
        let meta = parse_package_docs(section.data)
            .map_err(|e| format!("its component's {PACKAGE_DOCS} section is not readable: {e}"))?;
        let mut stripped = component[..section.range.start].to_vec();
        stripped.extend_from_slice(&component[section.range.end..]);
        let (mut resolve, world) = match wit_parser::decoding::decode(&stripped) {
            Ok(wit_parser::decoding::DecodedWasm::Component(resolve, world)) => (resolve, world),
            Ok(_) => return Err("its component is a WIT package, not a component".into()),
            Err(e) => return Err(format!("cannot decode its component's WIT: {e:#}")),
        };
        let names: Vec<&str> = sigs.iter().map(|s| s.name).collect();
        let chosen = meta.worlds.values().find(|w| {
            names
                .iter()
                .all(|n| w.func_exports.contains_key(*n) || w.funcs.contains_key(*n))
        });
        let chosen = match chosen {
            Some(w) => w,
            None if meta.worlds.len() == 1 => meta.worlds.values().next().expect("one world"),
            None => return Ok(None),
        };
        inject(&mut resolve, world, chosen);
        Ok(Some(Docs {
            resolve,
            world,
            source: DocSource::PackageDocs,
        }))
    }

    /// Where these docs came from.
    pub fn source(&self) -> &DocSource {
        &self.source
    }

    /// The world's own doc comment (what the tool as a whole does).
    pub fn world_docs(&self) -> Option<String> {
        clean_docs(self.resolve.worlds[self.world].docs.contents.as_deref())
    }

    /// The doc comment of exported function `name`.
    pub fn function_docs(&self, name: &str) -> Option<String> {
        clean_docs(self.function(name)?.docs.contents.as_deref())
    }

    fn function(&self, name: &str) -> Option<&wit_parser::Function> {
        world_function(&self.resolve, self.world, name)
    }

    /// The WIT must declare the parameters the component takes, by name.
    fn check_params(&self, sigs: &[Signature<'_>]) -> Result<(), String> {
        for s in sigs {
            let Some(f) = self.function(s.name) else {
                continue;
            };
            let wit: Vec<&str> = f.params.iter().map(|p| p.name.as_str()).collect();
            let component: Vec<&str> = s.params.iter().map(|(n, _)| n.as_str()).collect();
            if wit != component {
                return Err(format!(
                    "its {} is out of date: it declares `{}({})` but the component exports `{}({})`; rebuild the component or update the WIT",
                    self.source,
                    s.name,
                    wit.join(", "),
                    s.name,
                    component.join(", ")
                ));
            }
        }
        Ok(())
    }
}

fn world_function<'r>(
    resolve: &'r Resolve,
    world: WorldId,
    name: &str,
) -> Option<&'r wit_parser::Function> {
    match resolve.worlds[world]
        .exports
        .get(&WorldKey::Name(name.to_string()))
    {
        Some(WorldItem::Function(f)) => Some(f),
        _ => None,
    }
}

/// The `ok` type of a `result<T, E>` (aliases followed), or the type itself.
fn ok_type(ty: &wit_parser::Type, resolve: &Resolve) -> Option<wit_parser::Type> {
    let mut ty = *ty;
    for _ in 0..32 {
        let wit_parser::Type::Id(id) = ty else {
            return Some(ty);
        };
        match &resolve.types[id].kind {
            TypeDefKind::Type(inner) => ty = *inner,
            TypeDefKind::Result(r) => return r.ok,
            _ => return Some(ty),
        }
    }
    Some(ty)
}

/// Adds `description`s from the WIT docs of `ty` to `schema` (made by
/// [`schema::schema_of`] for the same type). Parts of the schema whose shape
/// does not match are left alone.
fn annotate(schema: &mut Value, ty: &wit_parser::Type, resolve: &Resolve, depth: usize) {
    if depth > 64 {
        return;
    }
    let wit_parser::Type::Id(id) = ty else { return };
    let def = &resolve.types[*id];
    if let Some(d) = clean_docs(def.docs.contents.as_deref()) {
        set_description(schema, d, false);
    }
    let next = depth + 1;
    match &def.kind {
        TypeDefKind::Type(inner) => annotate(schema, inner, resolve, next),
        TypeDefKind::Record(r) => {
            for field in &r.fields {
                if let Some(s) = schema
                    .get_mut("properties")
                    .and_then(|p| p.get_mut(&field.name))
                {
                    annotate(s, &field.ty, resolve, next);
                    if let Some(d) = clean_docs(field.docs.contents.as_deref()) {
                        set_description(s, d, true);
                    }
                }
            }
        }
        TypeDefKind::Variant(v) => {
            let Some(cases) = schema.get_mut("oneOf").and_then(Value::as_array_mut) else {
                return;
            };
            for case in &v.cases {
                let Some(entry) = cases.iter_mut().find(|c| {
                    c.get("const").and_then(Value::as_str) == Some(case.name.as_str())
                        || c.get("properties")
                            .is_some_and(|p| p.get(&case.name).is_some())
                }) else {
                    continue;
                };
                if let (Some(pty), Some(payload)) = (
                    &case.ty,
                    entry
                        .get_mut("properties")
                        .and_then(|p| p.get_mut(&case.name)),
                ) {
                    annotate(payload, pty, resolve, next);
                }
                if let Some(d) = clean_docs(case.docs.contents.as_deref()) {
                    set_description(entry, d, true);
                }
            }
        }
        TypeDefKind::Enum(e) => {
            let items: Vec<(&str, Option<String>)> = e
                .cases
                .iter()
                .map(|c| (c.name.as_str(), clean_docs(c.docs.contents.as_deref())))
                .collect();
            append_item_docs(schema, &items);
        }
        TypeDefKind::Flags(f) => {
            let items: Vec<(&str, Option<String>)> = f
                .flags
                .iter()
                .map(|c| (c.name.as_str(), clean_docs(c.docs.contents.as_deref())))
                .collect();
            append_item_docs(schema, &items);
        }
        TypeDefKind::Option(inner) => {
            if let Some(s) = schema.pointer_mut("/anyOf/0") {
                annotate(s, inner, resolve, next);
            }
        }
        TypeDefKind::Result(r) => {
            for (i, (side, ty)) in [("ok", r.ok), ("err", r.err)].into_iter().enumerate() {
                if let (Some(ty), Some(s)) = (
                    ty,
                    schema.pointer_mut(&format!("/oneOf/{i}/properties/{side}")),
                ) {
                    annotate(s, &ty, resolve, next);
                }
            }
        }
        TypeDefKind::List(inner) | TypeDefKind::FixedLengthList(inner, _) => {
            if let Some(s) = schema.get_mut("items") {
                annotate(s, inner, resolve, next);
            }
        }
        TypeDefKind::Map(k, v) => {
            for (i, ty) in [k, v].into_iter().enumerate() {
                if let Some(s) = schema.pointer_mut(&format!("/items/prefixItems/{i}")) {
                    annotate(s, ty, resolve, next);
                }
            }
        }
        TypeDefKind::Tuple(t) => {
            for (i, ty) in t.types.iter().enumerate() {
                if let Some(s) = schema.pointer_mut(&format!("/prefixItems/{i}")) {
                    annotate(s, ty, resolve, next);
                }
            }
        }
        TypeDefKind::Resource
        | TypeDefKind::Handle(_)
        | TypeDefKind::Future(_)
        | TypeDefKind::Stream(_)
        | TypeDefKind::Unknown => {}
    }
}

/// Sets `description` on an object schema; an existing one is kept unless `replace`.
fn set_description(schema: &mut Value, text: String, replace: bool) {
    if let Some(obj) = schema.as_object_mut()
        && (replace || !obj.contains_key("description"))
    {
        obj.insert("description".into(), Value::String(text));
    }
}

/// Appends "`name`: docs" lines for enum cases or flags that have docs.
fn append_item_docs(schema: &mut Value, items: &[(&str, Option<String>)]) {
    let lines: Vec<String> = items
        .iter()
        .filter_map(|(name, d)| d.as_ref().map(|d| format!("- `{name}`: {d}")))
        .collect();
    if lines.is_empty() {
        return;
    }
    let Some(obj) = schema.as_object_mut() else {
        return;
    };
    let text = match obj.get("description").and_then(Value::as_str) {
        Some(existing) => format!("{existing}\n\n{}", lines.join("\n")),
        None => lines.join("\n"),
    };
    let text = agent_text::cap(text, agent_text::MAX_DESCRIPTION_CHARS);
    obj.insert("description".into(), Value::String(text));
}

// ---- the package-docs custom section ----

/// The name of the custom section `wit-component` stores WIT docs in.
pub const PACKAGE_DOCS: &str = "package-docs";

struct Section<'a> {
    /// The whole section, id and size included.
    range: std::ops::Range<usize>,
    /// Its data after the name.
    data: &'a [u8],
}

/// The first top-level custom section called `name` of a wasm binary.
fn find_custom_section<'a>(bytes: &'a [u8], name: &str) -> Option<Section<'a>> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return None;
    }
    let mut pos = 8;
    while pos < bytes.len() {
        let start = pos;
        let id = bytes[pos];
        pos += 1;
        let size = leb_u32(bytes, &mut pos)? as usize;
        let end = pos.checked_add(size).filter(|e| *e <= bytes.len())?;
        if id == 0 {
            let mut p = pos;
            let len = leb_u32(bytes, &mut p)? as usize;
            let name_end = p.checked_add(len).filter(|e| *e <= end)?;
            if &bytes[p..name_end] == name.as_bytes() {
                return Some(Section {
                    range: start..end,
                    data: &bytes[name_end..end],
                });
            }
        }
        pos = end;
    }
    None
}

fn leb_u32(bytes: &[u8], pos: &mut usize) -> Option<u32> {
    let mut result = 0u32;
    for shift in (0..35).step_by(7) {
        let b = *bytes.get(*pos)?;
        *pos += 1;
        result |= u32::from(b & 0x7f).checked_shl(shift)?;
        if b & 0x80 == 0 {
            return Some(result);
        }
    }
    None
}

/// The parts of `wit-parser`'s `PackageMetadata` JSON this module uses;
/// everything else is ignored.
#[derive(Debug, Default, Deserialize)]
struct PackageDocsJson {
    #[serde(default)]
    worlds: BTreeMap<String, WorldDocsJson>,
}

#[derive(Debug, Default, Deserialize)]
struct WorldDocsJson {
    #[serde(default)]
    docs: Option<String>,
    #[serde(default)]
    types: BTreeMap<String, TypeDocsJson>,
    #[serde(default)]
    funcs: BTreeMap<String, FuncDocsJson>,
    #[serde(default)]
    func_exports: BTreeMap<String, FuncDocsJson>,
}

#[derive(Debug, Default, Deserialize)]
struct TypeDocsJson {
    #[serde(default)]
    docs: Option<String>,
    #[serde(default)]
    items: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum FuncDocsJson {
    /// Version 0: just the text.
    Text(Option<String>),
    /// Version 1: an object with `docs` (and `stability`).
    Object {
        #[serde(default)]
        docs: Option<String>,
    },
}

impl FuncDocsJson {
    fn docs(&self) -> Option<&str> {
        match self {
            FuncDocsJson::Text(d) | FuncDocsJson::Object { docs: d } => d.as_deref(),
        }
    }
}

fn parse_package_docs(data: &[u8]) -> Result<PackageDocsJson, String> {
    match data.first() {
        Some(0 | 1) => serde_json::from_slice(&data[1..]).map_err(|e| e.to_string()),
        Some(v) => Err(format!("unknown version {v}")),
        None => Err("it is empty".into()),
    }
}

/// Puts the section's docs on the decoded world's functions and types, by name.
fn inject(resolve: &mut Resolve, world: WorldId, docs: &WorldDocsJson) {
    if let Some(d) = &docs.docs {
        resolve.worlds[world].docs.contents = Some(d.clone());
    }
    for (key, item) in resolve.worlds[world].exports.iter_mut() {
        let (WorldKey::Name(name), WorldItem::Function(f)) = (key, item) else {
            continue;
        };
        let found = docs.func_exports.get(name).or_else(|| docs.funcs.get(name));
        if let Some(d) = found.and_then(FuncDocsJson::docs) {
            f.docs.contents = Some(d.to_string());
        }
    }
    for (_, def) in resolve.types.iter_mut() {
        let Some(meta) = def.name.as_ref().and_then(|n| docs.types.get(n)) else {
            continue;
        };
        if def.owner != TypeOwner::World(world) {
            continue;
        }
        if let Some(d) = &meta.docs {
            def.docs.contents = Some(d.clone());
        }
        let item = |name: &str| meta.items.get(name).cloned();
        match &mut def.kind {
            TypeDefKind::Record(r) => r.fields.iter_mut().for_each(|f| {
                if let Some(d) = item(&f.name) {
                    f.docs.contents = Some(d);
                }
            }),
            TypeDefKind::Variant(v) => v.cases.iter_mut().for_each(|c| {
                if let Some(d) = item(&c.name) {
                    c.docs.contents = Some(d);
                }
            }),
            TypeDefKind::Enum(e) => e.cases.iter_mut().for_each(|c| {
                if let Some(d) = item(&c.name) {
                    c.docs.contents = Some(d);
                }
            }),
            TypeDefKind::Flags(f) => f.flags.iter_mut().for_each(|c| {
                if let Some(d) = item(&c.name) {
                    c.docs.contents = Some(d);
                }
            }),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::values::tests::func_params;

    /// A component importing (so no core module is needed) functions shaped
    /// like the exports of the WIT below.
    const WAT: &str = r#"
    (component
      (type $point' (record (field "x" s32) (field "y" s32)))
      (import "point" (type $point (eq $point')))
      (type $mode' (enum "fast" "exact"))
      (import "mode" (type $mode (eq $mode')))
      (type $opts' (record (field "limit" u32) (field "at" $point) (field "mode" $mode)))
      (import "opts" (type $opts (eq $opts')))
      (type $shape' (variant (case "circle" f64) (case "empty")))
      (import "shape" (type $shape (eq $shape')))
      (type $search (func (param "query" string) (param "opts" (option $opts)) (result (result $point (error string)))))
      (import "search" (func (type $search)))
      (type $area (func (param "s" $shape) (result f64)))
      (import "area" (func (type $area)))
      (type $ping (func))
      (import "ping" (func (type $ping)))
    )"#;

    const WIT: &str = r#"
package example:maps;

/// Finds places.
world maps {
    include airlock:verbs/pure@0.1.0;

    /// A spot on the grid.
    record point {
        /// Column.
        x: s32,
        /// Row.
        y: s32,
    }

    /// How hard to look.
    enum mode {
        /// Good enough.
        fast,
        exact,
    }

    /// Search settings.
    record opts {
        /// At most this many results.
        limit: u32,
        at: point,
        mode: mode,
    }

    /// A shape.
    variant shape {
        /// Radius.
        circle(f64),
        /// Nothing at all.
        empty,
    }

    /// Find the place called `query`
    /// near `opts.at`.
    ///
    /// Second paragraph.
    export search: func(query: string, opts: option<opts>) -> result<point, string>;

    /// The area of `s`.
    export area: func(s: shape) -> f64;

    export ping: func();
}
"#;

    /// A function's name, parameters and result.
    type Func = (String, Vec<(String, Type)>, Option<Type>);

    struct Fixture {
        funcs: Vec<Func>,
    }

    impl Fixture {
        fn new() -> Self {
            let funcs = ["search", "area", "ping"]
                .iter()
                .map(|name| {
                    let (params, result) = func_sig(WAT, name);
                    (name.to_string(), params, result)
                })
                .collect();
            Fixture { funcs }
        }

        fn sigs(&self) -> Vec<Signature<'_>> {
            self.funcs
                .iter()
                .map(|(name, params, result)| Signature {
                    name,
                    params,
                    result: result.as_ref(),
                })
                .collect()
        }
    }

    /// Params and result of imported function `name` of a WAT component.
    fn func_sig(wat: &str, name: &str) -> (Vec<(String, Type)>, Option<Type>) {
        use wasmtime::component::types::ComponentItem;
        let engine = wasmtime::Engine::default();
        let component = wasmtime::component::Component::new(&engine, wat).unwrap();
        let ty = component.component_type();
        let item = ty.imports(&engine).find(|(n, _)| *n == name).unwrap().1;
        let ComponentItem::ComponentFunc(f) = item.ty else {
            panic!("{name} is not a function")
        };
        let params = f.params().map(|(n, t)| (n.to_string(), t)).collect();
        (params, f.results().next())
    }

    fn wit_dir(text: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("world.wit"), text).unwrap();
        dir
    }

    fn described(dir: &Path) -> Vec<ToolDescription> {
        let f = Fixture::new();
        let docs = Docs::from_wit(dir, &f.sigs()).unwrap();
        describe("maps", &f.sigs(), Some(&docs), None).unwrap()
    }

    #[test]
    fn the_built_in_verbs_package_is_every_file_of_wit() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".wit"))
            .collect();
        on_disk.sort();
        let mut built_in: Vec<String> = VERBS_WIT.iter().map(|(n, _)| n.to_string()).collect();
        built_in.sort();
        assert_eq!(
            built_in, on_disk,
            "add the new wit/ file to VERBS_WIT in authoring/src/wit.rs"
        );
        for (name, text) in VERBS_WIT {
            assert_eq!(
                *text,
                std::fs::read_to_string(dir.join(name)).unwrap(),
                "{name}"
            );
        }
    }

    #[test]
    fn names_and_descriptions_come_from_wit_docs() {
        let dir = wit_dir(WIT);
        let tools = described(dir.path());
        let names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["maps__search", "maps__area", "maps__ping"]);
        let titles: Vec<&str> = tools.iter().map(|t| t.title.as_str()).collect();
        assert_eq!(titles, ["maps.search", "maps.area", "maps.ping"]);
        assert_eq!(
            tools[0].description,
            "Find the place called `query` near `opts.at`.\n\nSecond paragraph."
        );
        assert_eq!(tools[1].description, "The area of `s`.");
        // No doc comment and no toolkit description: the signature.
        assert_eq!(tools[2].description, "maps.ping()");
        assert_eq!(
            (tools[0].tool.as_str(), tools[0].function.as_str()),
            ("maps", "search")
        );
    }

    #[test]
    fn the_toolkits_description_comes_first_then_the_wit_docs() {
        let dir = wit_dir(WIT);
        let f = Fixture::new();
        let docs = Docs::from_wit(dir.path(), &f.sigs()).unwrap();
        let tools = describe("maps", &f.sigs(), Some(&docs), Some("The toolkit's words.")).unwrap();
        assert_eq!(
            tools[0].description,
            "The toolkit's words.\n\nFind the place called `query` near `opts.at`.\n\nSecond paragraph."
        );
        assert_eq!(
            tools[1].description,
            "The toolkit's words.\n\nThe area of `s`."
        );
        assert_eq!(tools[2].description, "The toolkit's words.");
    }

    #[test]
    fn schemas_carry_type_field_and_case_docs() {
        let dir = wit_dir(WIT);
        let tools = described(dir.path());
        let search = &tools[0];
        let opts = &search.input_schema["properties"]["opts"]["anyOf"][0];
        assert_eq!(opts["description"], "Search settings.", "{opts}");
        assert_eq!(
            opts["properties"]["limit"]["description"],
            "At most this many results."
        );
        // A field without docs gets its type's docs.
        assert_eq!(
            opts["properties"]["at"]["description"],
            "A spot on the grid."
        );
        assert_eq!(
            opts["properties"]["at"]["properties"]["x"]["description"],
            "Column."
        );
        assert_eq!(
            opts["properties"]["mode"]["description"],
            "How hard to look.\n\n- `fast`: Good enough."
        );
        assert_eq!(opts["properties"]["mode"]["enum"], json!(["fast", "exact"]));
        // The output is the ok payload, a record: not wrapped, documented.
        assert!(!search.wraps_output);
        assert_eq!(search.output_schema["description"], "A spot on the grid.");
        assert_eq!(
            search.output_schema["properties"]["y"]["description"],
            "Row."
        );
        assert_eq!(search.output_schema["required"], json!(["x", "y"]));

        let area = &tools[1];
        let shape = &area.input_schema["properties"]["s"];
        assert_eq!(shape["description"], "A shape.");
        assert_eq!(shape["oneOf"][0]["description"], "Radius.");
        assert_eq!(
            shape["oneOf"][1],
            json!({"const": "empty", "description": "Nothing at all."})
        );
        assert!(area.wraps_output);
        assert_eq!(
            area.output_schema["properties"]["result"],
            json!({"type": "number"})
        );
        assert_eq!(area.output_schema["required"], json!(["result"]));
        assert_eq!(area.structured(json!(2.5)), json!({"result": 2.5}));
        assert_eq!(
            search.structured(json!({"x": 1, "y": 2})),
            json!({"x": 1, "y": 2})
        );
    }

    #[test]
    fn without_docs_the_fallbacks_are_the_toolkit_then_the_signature() {
        let f = Fixture::new();
        let sigs = f.sigs();
        let with = describe("maps", &sigs, None, Some("  Maps  \n things. ")).unwrap();
        assert_eq!(with[0].description, "Maps things.");
        let without = describe("maps", &sigs, None, None).unwrap();
        assert_eq!(
            without[0].description,
            "maps.search(query: string, opts: option<record { limit: u32, at: record { x: s32, y: s32 }, mode: enum { fast, exact } }>) -> result<record { x: s32, y: s32 }, string>"
        );
        assert_eq!(without[2].description, "maps.ping()");
        let ping = &without[2];
        assert!(ping.wraps_output);
        assert_eq!(
            ping.output_schema["properties"]["result"],
            json!({"type": "null"})
        );
        // The same schemas, just without descriptions inside.
        assert_eq!(
            without[0].input_schema,
            schema::params_schema(sigs[0].params)
        );
    }

    #[test]
    fn stale_or_foreign_wit_is_an_error_naming_the_path() {
        let f = Fixture::new();
        let renamed = WIT.replace("func(s: shape)", "func(shape: shape)");
        let dir = wit_dir(&renamed);
        let e = Docs::from_wit(dir.path(), &f.sigs()).unwrap_err();
        assert!(
            e.contains("out of date") && e.contains("`area(shape)`") && e.contains("`area(s)`"),
            "{e}"
        );

        let dir = wit_dir("package a:b;\nworld other { export f: func(); }\n");
        let e = Docs::from_wit(dir.path(), &f.sigs()).unwrap_err();
        assert!(e.contains("no world") && e.contains("`other`"), "{e}");

        let dir = wit_dir("package a:b;\nworld w { export f: func(x: nope); }\n");
        let e = Docs::from_wit(dir.path(), &f.sigs()).unwrap_err();
        assert!(
            e.contains("cannot read its WIT") && e.contains("nope"),
            "{e}"
        );

        let e = Docs::from_wit(Path::new("/nonexistent/wit"), &f.sigs()).unwrap_err();
        assert!(
            e.contains("/nonexistent/wit") && e.contains("does not exist"),
            "{e}"
        );
    }

    #[test]
    fn a_single_wit_file_works_too() {
        let dir = wit_dir(WIT);
        let tools = described(&dir.path().join("world.wit"));
        assert_eq!(tools[1].description, "The area of `s`.");
    }

    #[test]
    fn the_guests_wit_resolves_with_the_built_in_verbs() {
        // The real example: guests/word-count/wit includes airlock:verbs/pure.
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../guests/word-count/wit");
        let params = vec![("text".to_string(), Type::String)];
        let sig = Signature {
            name: "count",
            params: &params,
            result: None,
        };
        let docs = Docs::from_wit(&dir, &[sig]).unwrap();
        assert_eq!(
            docs.function_docs("count").as_deref(),
            Some("Count the words, lines, characters and bytes of `text`.")
        );
        assert!(docs.world_docs().unwrap().starts_with("Counts words"));
        assert!(matches!(docs.source(), DocSource::Wit(_)));
    }

    #[test]
    fn formats_have_each_ecosystems_shape() {
        let dir = wit_dir(WIT);
        let tools = described(dir.path());
        let mcp = render(&tools, Format::Mcp).unwrap();
        assert_eq!(mcp["tools"][1]["name"], "maps__area");
        assert_eq!(mcp["tools"][1]["title"], "maps.area");
        // Described without a toolkit: no grants, so no annotations.
        assert!(mcp["tools"][1].get("annotations").is_none());
        let mut annotated = tools.clone();
        annotated[1].annotations = Some(crate::annotations::Hints::PURE);
        let mcp_annotated = render(&annotated, Format::Mcp).unwrap();
        assert_eq!(
            mcp_annotated["tools"][1]["annotations"],
            json!({
                "title": "maps.area",
                "readOnlyHint": true,
                "destructiveHint": false,
                "idempotentHint": true,
                "openWorldHint": false,
            })
        );
        assert_eq!(mcp["tools"][1]["inputSchema"], tools[1].input_schema);
        assert_eq!(mcp["tools"][1]["outputSchema"], tools[1].output_schema);
        assert_eq!(mcp["tools"][1]["description"], "The area of `s`.");

        let openai = render(&tools, Format::OpenAi).unwrap();
        assert_eq!(
            openai[1],
            json!({
                "type": "function",
                "function": {
                    "name": "maps__area",
                    "description": "The area of `s`.",
                    "parameters": tools[1].input_schema,
                }
            })
        );
        let anthropic = render(&tools, Format::Anthropic).unwrap();
        assert_eq!(
            anthropic[1],
            json!({
                "name": "maps__area",
                "description": "The area of `s`.",
                "input_schema": tools[1].input_schema,
            })
        );
        // A name over the limit, or not portable, is refused.
        let mut long = tools[0].clone();
        long.name = "m".repeat(65);
        let e = render(&[long], Format::OpenAi).unwrap_err().to_string();
        assert!(e.contains("at most 64"), "{e}");
        // Two functions under one name.
        let mut twin = tools[0].clone();
        twin.name = "maps__search".into();
        let e = render(&[tools[0].clone(), twin], Format::OpenAi)
            .unwrap_err()
            .to_string();
        assert!(e.contains("would both be offered as `maps__search`"), "{e}");
    }

    #[test]
    fn byte_lists_take_base64_in_and_give_arrays_out_in_every_format() {
        let (params, result) = func_sig(
            r#"(component
                (type $f (func (param "data" (list u8)) (param "n" u32)
                    (result (result (list u8) (error string)))))
                (import "digest" (func (type $f))))"#,
            "digest",
        );
        let sig = Signature {
            name: "digest",
            params: &params,
            result: result.as_ref(),
        };
        let tools = describe("hasher", &[sig], None, None).unwrap();
        let u8s = json!({"type": "integer", "minimum": 0, "maximum": 255});
        let array = json!({"type": "array", "items": u8s});
        let data = &tools[0].input_schema["properties"]["data"];
        assert_eq!(data["anyOf"][0], array);
        assert_eq!(data["anyOf"][1]["type"], "string");
        assert_eq!(data["anyOf"][1]["contentEncoding"], "base64");
        assert_eq!(
            data["anyOf"][1]["pattern"],
            crate::values::bytes::PATTERN,
            "an agent's validator checks the text, not just the type"
        );
        assert_eq!(tools[0].input_schema["required"], json!(["data", "n"]));
        // The result is the array only, as `to_json` writes it.
        assert_eq!(tools[0].output_schema["properties"]["result"], array);

        let mcp = render(&tools, Format::Mcp).unwrap();
        assert_eq!(mcp["tools"][0]["inputSchema"], tools[0].input_schema);
        assert_eq!(mcp["tools"][0]["outputSchema"], tools[0].output_schema);
        let openai = render(&tools, Format::OpenAi).unwrap();
        assert_eq!(openai[0]["function"]["parameters"], tools[0].input_schema);
        let anthropic = render(&tools, Format::Anthropic).unwrap();
        assert_eq!(anthropic[0]["input_schema"], tools[0].input_schema);
    }

    /// Appends a custom section to a wasm binary.
    fn with_custom_section(mut bytes: Vec<u8>, name: &str, data: &[u8]) -> Vec<u8> {
        fn leb(mut n: usize, out: &mut Vec<u8>) {
            loop {
                let b = (n & 0x7f) as u8;
                n >>= 7;
                if n == 0 {
                    out.push(b);
                    return;
                }
                out.push(b | 0x80);
            }
        }
        let mut payload = Vec::new();
        leb(name.len(), &mut payload);
        payload.extend_from_slice(name.as_bytes());
        payload.extend_from_slice(data);
        bytes.push(0);
        leb(payload.len(), &mut bytes);
        bytes.extend_from_slice(&payload);
        bytes
    }

    #[test]
    fn custom_sections_are_found_and_cut_out() {
        // The smallest component: the header alone.
        let wasm = b"\0asm\x0d\0\x01\0".to_vec();
        assert!(find_custom_section(&wasm, PACKAGE_DOCS).is_none());
        let with = with_custom_section(wasm.clone(), "other", b"x");
        let with = with_custom_section(with, PACKAGE_DOCS, b"\x01{}");
        let s = find_custom_section(&with, PACKAGE_DOCS).unwrap();
        assert_eq!(s.data, b"\x01{}");
        assert_eq!(s.range.end, with.len());
        assert!(find_custom_section(b"\0asm\x0d\0\x01\0\x00\xff", "x").is_none());
        assert!(
            parse_package_docs(b"\x07{}")
                .unwrap_err()
                .contains("version 7")
        );
    }

    #[test]
    fn package_docs_sections_document_a_real_component() {
        // The word-count guest with the docs `wit-component` would embed,
        // made from its WIT with wit-parser's own PackageMetadata.
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let wasm = root.join("target/wasm32-wasip2/release/word_count.wasm");
        let Ok(bytes) = std::fs::read(&wasm) else {
            eprintln!(
                "skipped: {} is not built (cargo xtask build-guests)",
                wasm.display()
            );
            return;
        };
        let (resolve, pkg) = crate::tool_wit::read(&root.join("guests/word-count/wit")).unwrap();
        let section = wit_parser::PackageMetadata::extract(&resolve, pkg)
            .encode()
            .unwrap();
        let documented = with_custom_section(bytes.clone(), PACKAGE_DOCS, &section);

        let params = vec![("text".to_string(), Type::String)];
        let sig = Signature {
            name: "count",
            params: &params,
            result: None,
        };
        assert!(Docs::from_package_docs(&bytes, &[sig]).unwrap().is_none());
        let docs = Docs::from_package_docs(&documented, &[sig])
            .unwrap()
            .unwrap();
        assert_eq!(docs.source(), &DocSource::PackageDocs);
        assert_eq!(
            docs.function_docs("count").as_deref(),
            Some("Count the words, lines, characters and bytes of `text`.")
        );
        let f = docs.function("count").unwrap();
        let ty = ok_type(f.result.as_ref().unwrap(), &docs.resolve).unwrap();
        let record = wasmtime_record();
        let mut schema = schema::schema_of(&record);
        annotate(&mut schema, &ty, &docs.resolve, 0);
        assert_eq!(
            schema["description"], "How big a text is, measured four ways.",
            "{schema}"
        );
        assert_eq!(schema["properties"]["bytes"]["description"], "UTF-8 bytes.");
    }

    /// The wasmtime type of word-count's `counts` record.
    fn wasmtime_record() -> Type {
        let wat = r#"(component
            (type $c' (record (field "words" u32) (field "lines" u32) (field "chars" u32) (field "bytes" u32)))
            (import "counts" (type $c (eq $c')))
            (type $f (func (param "c" $c)))
            (import "f" (func (type $f))))"#;
        func_params(wat, "f").remove(0).1
    }

    /// Tool poisoning: text a component or its docs carry must not steer
    /// the model past what the operator wrote and reviewed.
    mod descriptions {
        use super::*;

        /// A WIT world documented with hidden characters: zero-width and
        /// tag characters (WIT itself refuses bidi overrides and C0/C1
        /// controls), tabs and a bare carriage return.
        const HIDDEN_WIT: &str = "package example:maps;\n\
            world maps {\n\
            /// A spot\u{200B}\u{200D} on the\u{E0020}\u{E0049}\u{E0047}\u{E004E} grid.\n\
            record point { /// Col\u{FEFF}umn.\tLeft\rto right.\n x: s32, y: s32 }\n\
            enum mode { /// Good\u{2060} enough.\n fast, exact }\n\
            record opts { limit: u32, at: point, mode: mode }\n\
            variant shape { circle(f64), empty }\n\
            /// Find\u{200B} places.\u{E0001}\n\
            export search: func(query: string, opts: option<opts>) -> result<point, string>;\n\
            export area: func(s: shape) -> f64;\n\
            export ping: func();\n\
            }\n";

        #[test]
        fn hidden_characters_never_reach_a_schema() {
            let dir = wit_dir(HIDDEN_WIT);
            let f = Fixture::new();
            let docs = Docs::from_wit(dir.path(), &f.sigs()).unwrap();
            let operator = "Counts\u{1b}]0;owned\u{7} words\u{202E}exe.txt\u{202C}\u{9b}2J \
                            \u{2066}quietly\u{2069}\u{200F}.\u{E0041}";
            let tools = describe("maps", &f.sigs(), Some(&docs), Some(operator)).unwrap();
            assert_eq!(
                tools[0].description,
                "Counts]0;owned wordsexe.txt2J quietly.\n\nFind places."
            );
            let point = &tools[0].output_schema;
            assert_eq!(point["description"], "A spot on the grid.");
            assert_eq!(
                point["properties"]["x"]["description"],
                "Column. Left to right."
            );
            let mode =
                &tools[0].input_schema["properties"]["opts"]["anyOf"][0]["properties"]["mode"];
            assert_eq!(mode["description"], "- `fast`: Good enough.");
            // Nothing hidden anywhere in what an agent is given.
            // (serde_json writes control characters as `\u00XX` escapes.)
            let all = render(&tools, Format::Mcp).unwrap().to_string();
            assert!(!all.chars().any(agent_text::is_hidden), "{all}");
            assert!(!all.contains("\\u00"), "{all}");
        }

        #[test]
        fn descriptions_are_capped() {
            let f = Fixture::new();
            let long = "word ".repeat(10_000);
            let tools = describe("maps", &f.sigs(), None, Some(&long)).unwrap();
            let d = &tools[0].description;
            assert_eq!(d.chars().count(), agent_text::MAX_DESCRIPTION_CHARS);
            assert!(d.starts_with("word word ") && d.ends_with('…'), "{d}");
        }

        #[test]
        fn a_function_over_the_schema_limit_is_refused() {
            // Within the type caps, but every field documented at length.
            let docs: String = (0..600)
                .map(|i| format!("/// {}\nfield{i}: u8,\n", "x".repeat(2000)))
                .collect();
            let wat_fields: String = (0..600)
                .map(|i| format!("(field \"field{i}\" u8)"))
                .collect();
            let wat = format!(
                "(component (type $r' (record {wat_fields})) (import \"r\" (type $r (eq $r'))) \
                 (type $f (func (param \"r\" $r))) (import \"f\" (func (type $f))))"
            );
            let (params, _) = func_sig(&wat, "f");
            let sig = Signature {
                name: "f",
                params: &params,
                result: None,
            };
            let plain = describe_function("big", &sig, None, None).unwrap();
            assert!(crate::host::json_len(&plain.input_schema) < 100_000);
            let dir = wit_dir(&format!(
                "package a:b;\nworld w {{\nrecord r {{\n{docs}}}\nexport f: func(r: r);\n}}\n"
            ));
            let docs = Docs::from_wit(dir.path(), &[sig]).unwrap();
            match describe_function("big", &sig, Some(&docs), None) {
                Err(DescribeError::TooLarge { name, bytes, limit }) => {
                    assert_eq!(name, "big.f");
                    assert_eq!(limit, MAX_SCHEMA_BYTES);
                    assert!(bytes > MAX_SCHEMA_BYTES, "{bytes}");
                }
                other => panic!("expected TooLarge, got {other:?}"),
            }
        }
    }
}
