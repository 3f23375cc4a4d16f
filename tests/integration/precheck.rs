//! A component is checked from its bytes before it is compiled: one that
//! imports what airlock never links, or that is over the per-job pool
//! limits, is refused with the same typed error as when the check ran after
//! compiling, and nothing is compiled (the cache directory stays empty,
//! while a component that passes fills it).

use std::path::Path;

use airlock::{Budget, HostOptions, LoadError};
use airlock_tests::{caps, host_with, no_grants};

/// Files under `dir`, recursively (the cache's entries).
fn files_under(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            let path = e.path();
            if path.is_dir() { files_under(&path) } else { 1 }
        })
        .sum()
}

/// A host whose compiled-component cache is `dir`.
fn host_on(dir: &Path) -> airlock_tests::TestHost {
    host_with(
        HostOptions {
            no_cache: false,
            cache_dir: Some(dir.to_path_buf()),
            ..HostOptions::default()
        },
        caps(),
    )
}

/// A component with a real core module behind it, importing `import`.
fn importing(import: &str) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(component
            (import "{import}" (instance))
            (core module $m (func (export "f") (result i32) i32.const 7))
            (core instance $i (instantiate $m))
            (func (export "run") (result u32) (canon lift (core func $i "f")))
        )"#
    ))
    .expect("valid component text")
}

mod imports {
    use super::*;

    #[test]
    fn an_import_never_linked_is_refused_before_any_compile() {
        let dir = tempfile::tempdir().unwrap();
        let host = host_on(dir.path());
        let err = host
            .load_tool(
                "raw",
                &importing("evil:net/raw@1.0.0"),
                no_grants(),
                Budget::default(),
            )
            .err()
            .expect("an unknown package is refused");
        match &err {
            LoadError::World { tool, refusals } => {
                assert_eq!(tool, "raw");
                assert_eq!(refusals.len(), 1, "{refusals:?}");
                assert_eq!(refusals[0].import, "evil:net/raw@1.0.0");
                assert_eq!(
                    refusals[0].reason,
                    "airlock does not serve the package `evil:net`; no grant can allow it"
                );
            }
            other => panic!("expected a world refusal, got {other:?}"),
        }
        assert_eq!(
            files_under(dir.path()),
            0,
            "a refused component was compiled"
        );

        // The control: a component that passes is compiled into the cache.
        let ok = importing("airlock:verbs/types@0.1.0");
        host.load_tool("fine", &ok, no_grants(), Budget::default())
            .expect("a component importing only types loads");
        assert!(files_under(dir.path()) > 0, "the cache was not written");
    }

    #[test]
    fn inspect_lists_a_refused_components_imports_without_compiling() {
        let dir = tempfile::tempdir().unwrap();
        let host = host_on(dir.path());
        let found = host
            .inspect(&importing("evil:net/raw@1.0.0"), "raw.wasm")
            .expect("inspect describes a refused component");
        assert!(found.exports.is_none(), "a refused component was compiled");
        assert_eq!(found.functions, ["run"]);
        assert_eq!(found.imports.len(), 1);
        assert_eq!(found.imports[0].name, "evil:net/raw@1.0.0");
        assert_eq!(
            files_under(dir.path()),
            0,
            "a refused component was compiled"
        );
    }
}

mod pool {
    use super::*;

    #[test]
    fn a_component_over_the_memory_limit_is_refused_before_any_compile() {
        let dir = tempfile::tempdir().unwrap();
        let host = host_on(dir.path());
        // Three instances of a module defining a memory: a job may have two.
        let bytes = wat::parse_str(
            r#"(component
                (core module $m (memory 1))
                (core instance (instantiate $m))
                (core instance (instantiate $m))
                (core instance (instantiate $m))
            )"#,
        )
        .unwrap();
        let err = host
            .load_tool("greedy", &bytes, no_grants(), Budget::default())
            .err()
            .expect("three memories are refused");
        match &err {
            LoadError::OverLimits { what, reason } => {
                assert_eq!(what, "greedy");
                assert_eq!(
                    reason,
                    "The component transitively contains 3 Wasm linear memories, which exceeds \
                     the configured maximum of 2 in the pooling allocator"
                );
            }
            other => panic!("expected over-limits, got {other:?}"),
        }
        let err = host.inspect(&bytes, "greedy.wasm").err();
        assert!(matches!(err, Some(LoadError::OverLimits { .. })), "{err:?}");
        assert_eq!(
            files_under(dir.path()),
            0,
            "an over-limits component was compiled"
        );
    }
}
