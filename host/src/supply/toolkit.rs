//! The toolkit side of trust: `include` of another toolkit whose tools may
//! only be narrowed, and `tool = "REF"` entries resolved through the lockfile
//! and local store beside the toolkit (no registry is contacted at load).

use std::cell::OnceCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use airlock_trust::statement::{Statement, TOOL_REQUEST_PREDICATE};
use airlock_trust::{Approval, Lockfile, ToolPredicate, TrustError};
use serde::Deserialize;

use super::{Pin, Refusal, requested_grants, store_for};
use crate::annotations::HintOverrides;
use crate::config::{ConfigError, ToolEntry, ToolSpec, Toolkit, invalid};
use crate::job::Budget;

/// Most nested includes.
const MAX_INCLUDE_DEPTH: usize = 8;

/// Largest statement or approval read from the local store.
const MAX_ENVELOPE: u64 = airlock_trust::dsse::MAX_ENVELOPE_BYTES as u64;

/// `include = ["catalog.toml"]` or `include = [{ path = "catalog.toml",
/// tools = ["summarize"] }]`: the included toolkit's tools (all, or those
/// named), each of which the including toolkit may only narrow.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Include {
    /// Every tool of the toolkit at this path.
    All(PathBuf),
    /// Some tools of it.
    Some {
        /// The toolkit.
        path: PathBuf,
        /// The tools taken.
        tools: Vec<String>,
    },
}

fn untrusted(path: &Path, tool: &str, refusal: Refusal) -> ConfigError {
    ConfigError::Untrusted {
        path: path.to_path_buf(),
        tool: tool.to_string(),
        refusal: Box::new(refusal),
    }
}

/// The tools of every included toolkit, paths resolved against each one's
/// own directory (and pins against its own lockfile).
pub fn included_tools(
    includes: &[Include],
    path: &Path,
    including: &mut Vec<PathBuf>,
) -> Result<BTreeMap<String, ToolSpec>, ConfigError> {
    let base = path.parent().unwrap_or(Path::new("."));
    let mut tools = BTreeMap::new();
    for include in includes {
        let (file, only) = match include {
            Include::All(p) => (base.join(p), None),
            Include::Some { path, tools } => (base.join(path), Some(tools)),
        };
        let key = std::fs::canonicalize(&file).unwrap_or_else(|_| file.clone());
        if including.contains(&key) || including.len() >= MAX_INCLUDE_DEPTH {
            return Err(invalid(
                path,
                format!(
                    "include of {} makes a cycle or nests more than {MAX_INCLUDE_DEPTH} deep",
                    file.display()
                ),
            ));
        }
        including.push(key);
        let kit = Toolkit::parse_nested(&crate::config::read(&file)?, &file, including)?;
        including.pop();
        let mut kit_tools = kit.tools;
        let taken: Vec<String> = match only {
            Some(names) => names.clone(),
            None => kit_tools.keys().cloned().collect(),
        };
        for name in taken {
            let spec = kit_tools.remove(&name).ok_or_else(|| {
                invalid(
                    path,
                    format!("{} has no tool `{name}` to include", file.display()),
                )
            })?;
            if tools.insert(name.clone(), spec).is_some() {
                return Err(invalid(
                    path,
                    format!("tool `{name}` is included twice; include it from one toolkit only"),
                ));
            }
        }
    }
    Ok(tools)
}

/// Applies an including toolkit's `[tools.NAME]` (no component, no tool) to
/// the included tool: grants and budget may only narrow, hints only become
/// more cautious, and nothing else may change.
pub(crate) fn narrow(
    path: &Path,
    mut spec: ToolSpec,
    entry: ToolEntry,
) -> Result<ToolSpec, ConfigError> {
    let name = spec.name.clone();
    if entry.description.is_some() || entry.wit.is_some() || !entry.functions.is_empty() {
        return Err(invalid(
            path,
            format!(
                "[tools.{name}] narrows an included tool: it may set grants, budget and \
                 annotations only (description, wit and functions come from the included toolkit)"
            ),
        ));
    }
    if let Some(grants) = entry.grants {
        grants.within(&spec.grants).map_err(|changes| {
            untrusted(
                path,
                &name,
                Refusal::Widened {
                    what: "the included toolkit's grants",
                    changes,
                },
            )
        })?;
        spec.grants = grants;
    }
    let narrowed = entry.budget.apply(spec.budget);
    let wider = budget_widenings(&spec.budget, &narrowed);
    if !wider.is_empty() {
        return Err(untrusted(
            path,
            &name,
            Refusal::Widened {
                what: "the included toolkit's budget",
                changes: wider,
            },
        ));
    }
    spec.budget = narrowed;
    spec.annotations = cautious(spec.annotations, entry.annotations);
    crate::annotations::check(&spec.grants, &spec.annotations)
        .map_err(|why| invalid(path, format!("[tools.{name}.annotations] {why}")))?;
    Ok(spec)
}

/// The included hints with the including toolkit's where it sets one (each
/// is checked to be the cautious direction afterwards).
fn cautious(base: HintOverrides, over: HintOverrides) -> HintOverrides {
    HintOverrides {
        read_only: over.read_only.or(base.read_only),
        destructive: over.destructive.or(base.destructive),
        idempotent: over.idempotent.or(base.idempotent),
        open_world: over.open_world.or(base.open_world),
    }
}

/// Each budget limit of `after` above the same limit of `before`.
fn budget_widenings(before: &Budget, after: &Budget) -> Vec<airlock_core::ScopeChange> {
    let mut out = Vec::new();
    let mut cmp = |field: &str, a: u128, b: u128, show: &dyn Fn(u128) -> String| {
        if b > a {
            out.push(airlock_core::ScopeChange {
                widens: true,
                line: format!("~ budget {field} {} → {}", show(a), show(b)),
            });
        }
    };
    let num = |n: u128| n.to_string();
    let ms = |n: u128| format!("{n}ms");
    cmp(
        "timeout",
        before.timeout.as_millis(),
        after.timeout.as_millis(),
        &ms,
    );
    cmp("fuel", before.fuel.into(), after.fuel.into(), &num);
    cmp("memory", before.memory as u128, after.memory as u128, &num);
    cmp("output", before.output as u128, after.output as u128, &num);
    cmp(
        "resources",
        before.resources as u128,
        after.resources as u128,
        &num,
    );
    out
}

/// A toolkit's lockfile, read when its first pinned tool is met.
pub(crate) struct LockView {
    toolkit: PathBuf,
    lock: OnceCell<Result<Lockfile, String>>,
}

impl LockView {
    /// The lockfile beside `toolkit` (not read yet).
    pub fn new(toolkit: &Path) -> Self {
        Self {
            toolkit: toolkit.to_path_buf(),
            lock: OnceCell::new(),
        }
    }

    /// The spec of `[tools.NAME] tool = "REF"` from the lockfile and store:
    /// digests checked, statement parsed, description and docs from the
    /// signed request. Signatures and policy are checked at load.
    pub(crate) fn pinned(
        &self,
        name: &str,
        reference: &str,
        entry: ToolEntry,
    ) -> Result<ToolSpec, ConfigError> {
        let path = &self.toolkit;
        let refuse = |r: Refusal| untrusted(path, name, r);
        let lock_path = Lockfile::path_for(path);
        let lock = self
            .lock
            .get_or_init(|| Lockfile::load(&lock_path).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| invalid(path, e.clone()))?;
        let Some(locked) = lock.tools.get(name) else {
            return Err(invalid(
                path,
                format!(
                    "tool `{name}` is pinned to {reference} but {} has no entry for it; run \
                     `airlock tool add {} {name} {reference}`",
                    lock_path.display(),
                    path.display()
                ),
            ));
        };
        if locked.source != reference {
            return Err(refuse(Refusal::Lock(format!(
                "the toolkit names {reference} but the lockfile pins {}; run `airlock tool \
                 update {} {name} {reference}` to move the pin",
                locked.source,
                path.display()
            ))));
        }
        for (field, set) in [
            ("description", entry.description.is_some()),
            ("wit", entry.wit.is_some()),
            ("functions", !entry.functions.is_empty()),
        ] {
            if set {
                return Err(refuse(Refusal::Docs { field }));
            }
        }
        let store = store_for(path);
        let trust = |e: TrustError| refuse(Refusal::Trust(e));
        let statement = store.get(&locked.statement, MAX_ENVELOPE).map_err(trust)?;
        let predicate = read_predicate(&statement).map_err(trust)?;
        let requested = requested_grants(&predicate.request).map_err(trust)?;
        let (approval, approved_statement) = match &locked.approval {
            Approval::Local { .. } => (None, None),
            Approval::Signed { envelope, .. } => (
                Some(store.get(envelope, MAX_ENVELOPE).map_err(trust)?),
                None,
            ),
            Approval::Within {
                envelope,
                statement,
                ..
            } => (
                Some(store.get(envelope, MAX_ENVELOPE).map_err(trust)?),
                Some(store.get(statement, MAX_ENVELOPE).map_err(trust)?),
            ),
        };
        let functions = serde_json::from_value(serde_json::Value::Object(
            predicate.request.functions.clone(),
        ))
        .map_err(|e| {
            trust(TrustError::Envelope(format!(
                "the requested functions: {e}"
            )))
        })?;
        let annotations = match entry.annotations == HintOverrides::default() {
            false => entry.annotations,
            true => serde_json::from_value(serde_json::Value::Object(
                predicate.request.annotations.clone(),
            ))
            .map_err(|e| {
                trust(TrustError::Envelope(format!(
                    "the requested annotations: {e}"
                )))
            })?,
        };
        let pin = Pin {
            reference: reference.to_string(),
            locked: locked.clone(),
            store,
            statement,
            predicate: predicate.clone(),
            requested: requested.clone(),
            approval,
            approved_statement,
        };
        let spec = ToolSpec {
            name: name.to_string(),
            component: pin.component_path(),
            description: predicate.request.description.clone(),
            wit: None,
            budget: entry.budget.apply(Budget::default()),
            grants: entry.grants.unwrap_or(requested),
            functions,
            annotations,
            pin: Some(Arc::new(pin)),
        };
        let check = ToolEntry {
            functions: spec.functions.clone(),
            grants: Some(spec.grants.clone()),
            annotations: spec.annotations,
            ..ToolEntry::default()
        };
        crate::config::check_names_and_hints(name, &check).map_err(|m| invalid(path, m))?;
        Ok(spec)
    }
}

/// The claim of a statement's payload, unverified (for docs and display;
/// [`super::check_load`] verifies it before anything runs).
pub fn read_predicate(envelope: &[u8]) -> Result<ToolPredicate, TrustError> {
    let env = airlock_trust::dsse::Envelope::parse(envelope)?;
    let payload = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &env.payload)
        .map_err(|_| TrustError::Envelope("the payload is not base64".into()))?;
    Ok(Statement::<ToolPredicate>::parse(&payload, TOOL_REQUEST_PREDICATE)?.predicate)
}
