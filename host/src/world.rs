//! The world check: before anything is instantiated, every import of a
//! component is sorted into a granted verb, null WASI, or a refusal that
//! names the interface and the grant that would allow it (or says none can).

use crate::verbs::{Verb, VerbSet};
use crate::wasi::NULL_WASI;

/// How airlock treats one import of a component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportKind {
    /// One of airlock's verbs.
    Verb(Verb),
    /// `airlock:verbs/types`: always present.
    Types,
    /// A WASI interface airlock links empty.
    NullWasi,
    /// Something airlock never links; the text says why.
    Never(String),
}

/// One import and how airlock treats it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Import {
    /// The import's full name, e.g. `airlock:verbs/sign@0.1.0`.
    pub name: String,
    /// Its classification.
    pub kind: ImportKind,
}

/// Why a component cannot run under a set of grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The import's full name.
    pub import: String,
    /// What would allow it, or why nothing can.
    pub reason: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "imports `{}`: {}", self.import, self.reason)
    }
}

/// Splits `ns:pkg/iface@ver` into (`ns:pkg/iface`, `ver`).
fn split_version(name: &str) -> (&str, Option<&str>) {
    match name.split_once('@') {
        Some((base, v)) => (base, Some(v)),
        None => (name, None),
    }
}

/// Classifies one import name; `is_instance` says whether it imports an
/// instance (an interface) rather than a function, type, module or component.
pub fn classify(name: &str, is_instance: bool) -> ImportKind {
    if !is_instance {
        return ImportKind::Never(
            "only interfaces can be imported; airlock links no bare functions, types or modules"
                .into(),
        );
    }
    let (base, version) = split_version(name);
    if let Some(iface) = base.strip_prefix("airlock:verbs/") {
        let ours = airlock_core::WIT_VERSION;
        if !version.is_some_and(|v| same_minor(v, ours)) {
            return ImportKind::Never(format!(
                "this host serves airlock:verbs@{ours}; rebuild the tool against that version"
            ));
        }
        if iface == "types" {
            return ImportKind::Types;
        }
        return match Verb::from_interface(iface) {
            Some(v) => ImportKind::Verb(v),
            None => ImportKind::Never(format!(
                "airlock:verbs has no `{iface}` verb in this host (it serves: {})",
                Verb::ALL
                    .iter()
                    .map(|v| v.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        };
    }
    if NULL_WASI.contains(&base) || crate::no_network::answers(name) {
        return ImportKind::NullWasi;
    }
    if base.starts_with("wasi:sockets/") || base.starts_with("wasi:http/") {
        return ImportKind::Never(
            "airlock answers only the 0.2 socket and HTTP interfaces, with stubs that refuse \
             every call: a tool has no network of its own"
                .into(),
        );
    }
    if base.starts_with("wasi:") {
        return ImportKind::Never("airlock never links this WASI interface".into());
    }
    ImportKind::Never(format!(
        "airlock does not serve the package `{}`",
        base.split('/').next().unwrap_or(base)
    ))
}

/// `0.1.3` is served by `0.1.0`; `0.2.0` and `1.0.0` are not.
fn same_minor(asked: &str, served: &str) -> bool {
    let key = |v: &str| -> Option<(u64, u64)> {
        let mut p = v.split(['.', '-', '+']);
        let major = p.next()?.parse().ok()?;
        let minor = p.next()?.parse().ok()?;
        Some((major, minor))
    };
    match (key(asked), key(served)) {
        (Some((0, a)), Some((0, s))) => a == s,
        (Some((a, _)), Some((s, _))) => a == s && a != 0,
        _ => false,
    }
}

/// Every import of a component, classified, in the component's order: read
/// from its bytes ([`crate::precheck`]), so nothing is compiled to check them.
pub fn imports(shape: &crate::precheck::Shape) -> Vec<Import> {
    shape
        .imports
        .iter()
        .map(|(name, is_instance)| Import {
            name: name.clone(),
            kind: classify(name, *is_instance),
        })
        .collect()
}

/// The verbs among `imports`.
pub fn imported_verbs(imports: &[Import]) -> VerbSet {
    imports.iter().fold(VerbSet::EMPTY, |set, i| match i.kind {
        ImportKind::Verb(v) => set.with(v),
        _ => set,
    })
}

/// Checks `imports` against `granted`; lists *every* refusal, not the first.
pub fn check(imports: &[Import], granted: VerbSet, tool: &str) -> Result<VerbSet, Vec<Refusal>> {
    let mut used = VerbSet::EMPTY;
    let mut refusals = Vec::new();
    for import in imports {
        match &import.kind {
            ImportKind::Verb(v) if granted.contains(*v) => used = used.with(*v),
            ImportKind::Verb(v) => refusals.push(Refusal {
                import: import.name.clone(),
                reason: format!(
                    "the `{verb}` verb is not granted to this tool; add [tools.{tool}.grants.{verb}] \
                     to the toolkit (or `--grant {example}` when running a component directly)",
                    verb = v.name(),
                    example = v.cli_example(),
                ),
            }),
            ImportKind::Types | ImportKind::NullWasi => {}
            ImportKind::Never(why) => refusals.push(Refusal {
                import: import.name.clone(),
                reason: format!("{why}; no grant can allow it"),
            }),
        }
    }
    if refusals.is_empty() {
        Ok(used)
    } else {
        Err(refusals)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_match_by_minor_for_zero_major() {
        assert!(same_minor("0.1.0", "0.1.0"));
        assert!(same_minor("0.1.7", "0.1.0"));
        assert!(!same_minor("0.2.0", "0.1.0"));
        assert!(!same_minor("1.0.0", "0.1.0"));
        assert!(!same_minor("x", "0.1.0"));
    }

    mod imports {
        use super::*;

        #[test]
        fn refusals_list_every_import_and_say_what_to_do() {
            let imports = vec![
                Import {
                    name: "airlock:verbs/sign@0.1.0".into(),
                    kind: ImportKind::Verb(Verb::Sign),
                },
                Import {
                    name: "wasi:sockets/tcp@0.2.6".into(),
                    kind: ImportKind::Never("airlock never links sockets".into()),
                },
                Import {
                    name: "wasi:cli/stdout@0.2.6".into(),
                    kind: ImportKind::NullWasi,
                },
            ];
            let refusals = check(&imports, VerbSet::EMPTY.with(Verb::Log), "t").unwrap_err();
            assert_eq!(refusals.len(), 2);
            assert!(refusals[0].to_string().contains("[tools.t.grants.sign]"));
            assert!(refusals[0].to_string().contains("--grant sign:KEY"));
            assert!(refusals[1].to_string().contains("no grant can allow it"));
            let used = check(&imports[..1], VerbSet::EMPTY.with(Verb::Sign), "t").unwrap();
            assert!(used.contains(Verb::Sign));
        }
    }
}
