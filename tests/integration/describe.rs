//! Bounded descriptions: a component cannot make the host write out, or
//! convert arguments against, types too big to describe. A type that doubles
//! at every level is refused when the tool is loaded, in bounded time, with
//! the function, the parameter and the cap named; the real guests fit the
//! caps with room to spare.

use std::time::{Duration, Instant};

use airlock::type_size::{self, MAX_FUNCTION_PARTS, TypeCap};
use airlock::{Budget, JobError, LoadError};
use airlock_tests::doubling::doubling_component;
use airlock_tests::{caps, guest, host, no_grants, workspace_root};
use serde_json::{Value, json};

/// A JSON value of `t{levels}`: nested pairs down to `u8` leaves.
fn doubling_value(levels: usize) -> Value {
    let mut v = json!([1, 2]);
    for _ in 0..levels {
        v = Value::Array(vec![v.clone(), v]);
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_type_just_under_the_cap_loads_and_its_arguments_convert() {
    // Eleven levels: 8,191 type parts, 4,096 bytes of arguments.
    let bytes = doubling_component(11);
    let host = host(caps());
    let tool = host
        .load_tool("pairs", &bytes, no_grants(), Budget::default())
        .expect("a type under the cap loads");
    let export = tool.export(Some("f")).unwrap();
    let parts = type_size::parts(&export.params, export.result.as_ref()).unwrap();
    assert_eq!(parts, 1 + 1 + 8_191);
    assert!(parts <= MAX_FUNCTION_PARTS);
    let started = Instant::now();
    let out = host
        .run(&tool, None, &json!({ "x": doubling_value(11) }))
        .await
        .expect("the job runs");
    assert_eq!(out.value, Value::Null);
    // A wrong argument is a short error, whatever the size of the type.
    let err = host
        .run(&tool, None, &json!({ "x": 5 }))
        .await
        .expect_err("5 is not a tuple");
    let JobError::InvalidArguments(e) = &err else {
        panic!("expected invalid arguments, got {err:?}");
    };
    assert_eq!(e.path, "x");
    assert!(
        e.message.starts_with("expected tuple<tuple<") && e.message.len() < 200,
        "{}",
        e.message
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn every_guest_fits_the_type_caps_with_room() {
    // The measurement behind MAX_FUNCTION_PARTS: the real guests need at
    // most a few dozen parts per function.
    let manifest = std::fs::read_to_string(workspace_root().join("guests/Cargo.toml")).unwrap();
    let members: Vec<&str> = manifest
        .split("members = [")
        .nth(1)
        .and_then(|rest| rest.split(']').next())
        .expect("guests/Cargo.toml lists members")
        .split(',')
        .map(|m| m.trim().trim_matches('"'))
        .filter(|m| !m.is_empty())
        // Only component crates (`cdylib`), as `cargo xtask build-guests` builds;
        // `airlock-guest` is a library for guests, not a guest.
        .filter(|m| {
            let path = workspace_root().join("guests").join(m).join("Cargo.toml");
            std::fs::read_to_string(path).is_ok_and(|t| t.contains("cdylib"))
        })
        .collect();
    assert!(members.len() > 10, "{members:?}");
    let host = host(caps());
    let mut largest = (0, String::new());
    for member in members {
        let bytes = std::fs::read(guest(member)).unwrap();
        let found = host.inspect(&bytes, member).expect("a guest inspects");
        // A guest no grant can allow (netcat) is not compiled: no types.
        let exports = found.exports.unwrap_or_default();
        for e in &exports {
            let parts = type_size::parts(&e.params, e.result.as_ref()).unwrap();
            if parts > largest.0 {
                largest = (parts, format!("{member}.{}", e.name));
            }
        }
    }
    eprintln!(
        "largest guest function: {} ({} parts)",
        largest.1, largest.0
    );
    assert!(
        largest.0 * 100 <= MAX_FUNCTION_PARTS,
        "{} has {} parts",
        largest.1,
        largest.0
    );
}

mod descriptions {
    use super::*;

    fn assert_refused(err: LoadError, what: &str) {
        match &err {
            LoadError::TypeTooLarge {
                what: w,
                function,
                part,
                cap,
            } => {
                assert_eq!(w, what);
                assert_eq!(function, "f");
                assert_eq!(part, "parameter `x`");
                assert_eq!(*cap, TypeCap::FunctionParts);
            }
            other => panic!("expected TypeTooLarge, got {other:?}"),
        }
        let text = err.to_string();
        assert!(
            text.contains("parameter `x` of function `f`")
                && text.contains("more than 10000 type parts per function"),
            "{text}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_doubling_type_is_refused_at_load_in_bounded_time() {
        let host = host(caps());
        // Just over the cap, and the largest such type wasmparser accepts
        // (eighteen levels: half a million parts, 512 KiB of arguments, in
        // well under a kilobyte).
        for levels in [12, 17] {
            let bytes = doubling_component(levels);
            assert!(bytes.len() < 1024, "{} bytes", bytes.len());
            let started = Instant::now();
            let err = host
                .load_tool("pairs", &bytes, no_grants(), Budget::default())
                .err()
                .expect("a type over the cap is refused");
            let took = started.elapsed();
            eprintln!("{levels} levels: refused at load after {took:?}");
            assert!(
                took < Duration::from_secs(2),
                "{levels} levels took {took:?}"
            );
            assert_refused(err, "pairs");
            // `inspect` (behind `airlock inspect` and `airlock schema`)
            // refuses it the same way.
            let started = Instant::now();
            let err = host.inspect(&bytes, "pairs.wasm").expect_err("refused");
            assert!(started.elapsed() < Duration::from_secs(2));
            assert_refused(err, "pairs.wasm");
        }
        // Past wasmparser's own limit the bytes are not a valid component.
        let err = host
            .load_tool(
                "pairs",
                &doubling_component(30),
                no_grants(),
                Budget::default(),
            )
            .err()
            .expect("refused");
        assert!(matches!(&err, LoadError::NotAComponent { .. }), "{err:?}");
        airlock_tests::assert_host_still_works(&host).await;
    }
}
