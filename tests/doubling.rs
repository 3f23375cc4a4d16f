//! The doubling-type component the type-size wall is attacked with, shared by
//! the integration tests (`airlock_tests::doubling`) and the CLI tests in
//! `host/tests` (which include this file by path).

/// A component exporting `f(x: tLEVELS)`, where `t0` is `tuple<u8, u8>` and
/// every level is a tuple of two of the level below: 2^(LEVELS+1) bytes of
/// arguments (passed through memory, so the core function takes a pointer)
/// in a few hundred bytes of component.
pub fn doubling_component(levels: usize) -> Vec<u8> {
    let mut wat = String::from(
        r#"(component
  (core module $m
    (memory (export "memory") 1)
    (func (export "realloc") (param i32 i32 i32 i32) (result i32) i32.const 8)
    (func (export "f") (param i32)))
  (core instance $i (instantiate $m))
  (type $t0 (tuple u8 u8))
"#,
    );
    for i in 1..=levels {
        wat.push_str(&format!("  (type $t{i} (tuple $t{} $t{}))\n", i - 1, i - 1));
    }
    wat.push_str(&format!(
        r#"  (func $f (param "x" $t{levels})
    (canon lift (core func $i "f") (memory (core memory $i "memory"))
      (realloc (core func $i "realloc"))))
  (export "f" (func $f)))"#
    ));
    wat::parse_str(&wat).expect("the doubling component assembles")
}
