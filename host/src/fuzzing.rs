//! The bodies of the fuzz targets in `fuzz/`, in one place: the fuzz crate
//! calls them under libFuzzer (nightly), and `host/tests/fuzz_corpus.rs`
//! replays the checked-in corpus through them on the stable toolchain, so CI
//! runs the same code without nightly. Compiled only with the `fuzzing`
//! feature, which also lets wasmtime read WAT text (for the `json_to_wit`
//! type source and text seeds of `world_check`).
//!
//! Every function takes arbitrary bytes, must never panic on them, and
//! panics only when an invariant written here breaks: that is what the
//! fuzzer reports as a crash. See `fuzz/README.md` for the invariants.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use serde_json::Value;
use wasmtime::component::types::{ComponentItem, Type};
use wasmtime::component::{Component, Val};
use wasmtime::{Config, Engine};

use crate::config::{ConfigError, HostConfig, Toolkit};
use crate::engine::PoolSize;
use crate::host::{Airlock, HostOptions, LoadError};
use crate::job::Budget;
use crate::values::{ArgError, args_from_json, from_json, to_json};
use crate::verbs::{Capabilities, Grants, Verb, VerbSet};
use crate::world::{self, Import, ImportKind};

pub use airlock_fetch::fuzzing::fetch_url;

/// Toolkit or host-config text: the parsers return a value or a
/// [`ConfigError`] naming the file, never panic, and agree with themselves.
pub fn toolkit_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let kit_path = Path::new("fuzz/toolkit.toml");
    match Toolkit::parse(text, kit_path) {
        Ok(kit) => check_toolkit(&kit, text),
        Err(e) => check_config_error(&e, kit_path),
    }
    let host_path = Path::new("fuzz/airlock.toml");
    match HostConfig::parse(text, host_path) {
        Ok(cfg) => {
            // The host's half accepts what it was configured with.
            let names = cfg.capabilities.fetch.credential_names();
            assert!(names.windows(2).all(|w| w[0] < w[1]), "{names:?}");
        }
        Err(e) => check_config_error(&e, host_path),
    }
}

fn check_toolkit(kit: &Toolkit, text: &str) {
    assert!(!kit.tools.is_empty(), "a toolkit without tools parsed");
    let caps = default_capabilities();
    for (name, spec) in &kit.tools {
        assert_eq!(&spec.name, name);
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "tool name {name:?} was accepted"
        );
        assert_eq!(kit.tool(name).map(|t| &t.name).ok(), Some(name));
        // What `explain` prints lists exactly the granted verbs.
        let described: Vec<Verb> = spec.grants.describe().into_iter().map(|(v, _)| v).collect();
        assert_eq!(described, spec.grants.set().iter().collect::<Vec<_>>());
        // Checking a grant against the host is a pure function of both.
        let first = caps.check(&spec.grants);
        assert_eq!(first, caps.check(&spec.grants));
        if let Err(reason) = first {
            assert!(!reason.is_empty());
        }
    }
    let again = Toolkit::parse(text, &kit.path).expect("the same text parses twice");
    assert_eq!(format!("{again:?}"), format!("{kit:?}"));
}

fn check_config_error(e: &ConfigError, path: &Path) {
    let shown = e.to_string();
    assert!(
        shown.starts_with(&format!("{}: ", path.display())),
        "the error does not name the file: {shown}"
    );
    assert!(shown.len() > path.as_os_str().len() + 2, "empty message");
}

/// Capabilities with nothing configured, built once.
fn default_capabilities() -> &'static Capabilities {
    static CAPS: OnceLock<Capabilities> = OnceLock::new();
    CAPS.get_or_init(Capabilities::default)
}

/// The types `json_to_wit` draws from: every kind of WIT type, in the shapes
/// tools use; the same file the `values` and `schema` unit tests read.
const TYPES_WAT: &str = include_str!("values_types.wat");

/// The functions of [`TYPES_WAT`], as `(name, params)`, read once.
fn signatures() -> &'static [Vec<(String, Type)>] {
    static SIGS: OnceLock<Vec<Vec<(String, Type)>>> = OnceLock::new();
    SIGS.get_or_init(|| {
        let engine = Engine::new(&Config::new()).expect("a default engine");
        let component = Component::new(&engine, TYPES_WAT).expect("the type source compiles");
        let ty = component.component_type();
        ["all", "count", "sign", "odd", "none"]
            .iter()
            .map(|name| {
                let item = ty
                    .get_import(&engine, name)
                    .expect("the function is imported");
                let ComponentItem::ComponentFunc(f) = item.ty else {
                    panic!("`{name}` is not a function");
                };
                f.params().map(|(n, t)| (n.to_string(), t)).collect()
            })
            .collect()
    })
}

/// One selector byte, then JSON text. A selector with the high bit set
/// converts a whole argument object for one function (`args_from_json`);
/// otherwise one parameter's type is chosen (`from_json`). Conversion returns
/// a value or an [`ArgError`], and a value survives a JSON round trip.
pub fn json_to_wit(data: &[u8]) {
    let Some((&selector, json)) = data.split_first() else {
        return;
    };
    let Ok(value) = serde_json::from_slice::<Value>(json) else {
        return;
    };
    let sigs = signatures();
    if selector & 0x80 != 0 {
        let params = &sigs[usize::from(selector & 0x7f) % sigs.len()];
        match args_from_json(params, &value) {
            Ok(vals) => {
                assert_eq!(vals.len(), params.len());
                let json = args_json(params, &vals);
                let back = args_from_json(params, &json)
                    .unwrap_or_else(|e| panic!("{json} does not convert back: {e}"));
                assert_eq!(args_json(params, &back), json);
            }
            Err(e) => check_arg_error(&e),
        }
    } else {
        let all: Vec<&Type> = sigs.iter().flatten().map(|(_, t)| t).collect();
        let ty = all[usize::from(selector) % all.len()];
        match from_json(ty, &value, "arg") {
            Ok(val) => {
                let json = to_json(val);
                let back = from_json(ty, &json, "arg")
                    .unwrap_or_else(|e| panic!("{json} does not convert back: {e}"));
                assert_eq!(to_json(back), json, "the round trip changed the value");
            }
            Err(e) => {
                check_arg_error(&e);
                assert!(e.path.starts_with("arg"), "{e:?}");
            }
        }
    }
}

fn args_json(params: &[(String, Type)], vals: &[Val]) -> Value {
    Value::Object(
        params
            .iter()
            .zip(vals)
            .map(|((n, _), v)| (n.clone(), to_json(v.clone())))
            .collect(),
    )
}

fn check_arg_error(e: &ArgError) {
    assert!(!e.path.is_empty() && !e.message.is_empty(), "{e:?}");
    assert!(!e.to_string().is_empty());
}

/// The host the world check runs in: no cache, a small pool.
fn options() -> HostOptions {
    HostOptions {
        pool: PoolSize {
            max_jobs: 2,
            max_memory_bytes: 1 << 20,
            ..PoolSize::default()
        },
        no_cache: true,
        ..HostOptions::default()
    }
}

fn new_host() -> Airlock {
    Airlock::new(
        options(),
        Capabilities::default(),
        Arc::new(crate::NullAudit),
    )
    .expect("a host with nothing configured starts")
}

/// Arbitrary bytes as a component: loading classifies its imports or fails
/// with [`LoadError::NotAComponent`] (or [`LoadError::TypeTooLarge`], [`LoadError::OverLimits`]); the world check's decision agrees with
/// the classification under every set of grants; a full load fails only as
/// the check said it would.
pub fn world_check(data: &[u8]) {
    static HOST: OnceLock<Airlock> = OnceLock::new();
    let host = HOST.get_or_init(new_host);
    let imports = match host.inspect(data, "fuzz input") {
        Ok(found) => found.imports,
        Err(LoadError::NotAComponent { reason, .. }) => {
            assert!(!reason.is_empty());
            return;
        }
        // Counted from the bytes before compiling, valid or not.
        Err(LoadError::OverLimits { reason, .. }) => {
            assert!(reason.contains("in the pooling allocator"), "{reason}");
            return;
        }
        // Types too big to describe are refused by inspect and load alike.
        Err(LoadError::TypeTooLarge { .. }) => return,
        Err(other) => panic!("inspect failed other than as a non-component: {other}"),
    };
    for import in &imports {
        check_import(import);
    }
    for bits in 0..(1u8 << Verb::ALL.len()) {
        check_decision(&imports, verb_set(bits));
    }
    // The real load path, with the one verb grantable without a host config.
    // A fresh host: a loaded tool stays in its host's pre-link cache.
    let grants = Grants {
        log: Some(Default::default()),
        ..Grants::default()
    };
    let expected = world::check(&imports, grants.set(), "fuzz");
    match new_host().load_tool("fuzz", data, grants, Budget::default()) {
        Ok(tool) => {
            assert!(expected.is_ok(), "loaded although refused: {expected:?}");
            assert_eq!(tool.imports(), imports.as_slice());
        }
        Err(LoadError::World { refusals, .. }) => {
            assert_eq!(Err::<VerbSet, _>(refusals), expected);
        }
        Err(LoadError::Link { reason, .. }) => {
            assert!(expected.is_ok(), "link error after a refusal: {reason}");
        }
        Err(other) => panic!("a checked component failed to load: {other}"),
    }
}

fn verb_set(bits: u8) -> VerbSet {
    Verb::ALL
        .iter()
        .enumerate()
        .filter(|(i, _)| bits & (1 << i) != 0)
        .fold(VerbSet::EMPTY, |s, (_, v)| s.with(*v))
}

/// A classification agrees with the import's name.
fn check_import(import: &Import) {
    let name = import.name.as_str();
    match &import.kind {
        ImportKind::Verb(v) => {
            let iface = name
                .strip_prefix("airlock:verbs/")
                .and_then(|rest| rest.split('@').next());
            assert_eq!(iface.and_then(Verb::from_interface), Some(*v), "{name}");
        }
        ImportKind::Types => assert!(name.starts_with("airlock:verbs/types@"), "{name}"),
        ImportKind::NullWasi => assert!(name.starts_with("wasi:"), "{name}"),
        ImportKind::Never(why) => assert!(!why.is_empty(), "{name}"),
    }
}

/// Under `granted`, the check refuses exactly the never-linkable imports and
/// the verbs not granted, and otherwise uses exactly the imported verbs.
fn check_decision(imports: &[Import], granted: VerbSet) {
    let refused: Vec<&str> = imports
        .iter()
        .filter(|i| match &i.kind {
            ImportKind::Verb(v) => !granted.contains(*v),
            ImportKind::Never(_) => true,
            ImportKind::Types | ImportKind::NullWasi => false,
        })
        .map(|i| i.name.as_str())
        .collect();
    match world::check(imports, granted, "fuzz") {
        Ok(used) => {
            assert!(refused.is_empty(), "{refused:?} passed under {granted:?}");
            let imported = imports.iter().fold(VerbSet::EMPTY, |s, i| match i.kind {
                ImportKind::Verb(v) => s.with(v),
                _ => s,
            });
            assert_eq!(used, imported);
            assert!(used.iter().all(|v| granted.contains(v)));
        }
        Err(refusals) => {
            let names: Vec<&str> = refusals.iter().map(|r| r.import.as_str()).collect();
            assert_eq!(names, refused);
            assert!(refusals.iter().all(|r| !r.reason.is_empty()));
        }
    }
}
