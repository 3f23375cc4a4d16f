//! JSON Schema (2020-12 style) for WIT types, describing exactly the JSON that
//! [`crate::values::from_json`] accepts, so agents can be told how to call an export,
//! and exactly the JSON [`crate::values::to_json`] writes for a result. The two differ
//! only for `list<u8>`: an argument may be an array of numbers or base64 text, a
//! result is always the array.
//! Types have no names at runtime, so every schema is written out inline (no `$ref`s).

use serde_json::{Map, Value, json};
use wasmtime::component::types::Type;

use crate::values::type_name;

/// Which way a value crosses: into a tool as an argument, or out as a result.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Argument,
    Result,
}

/// JSON Schema for argument values of `ty`, matching exactly what values::from_json accepts.
pub fn schema_of(ty: &Type) -> Value {
    schema(ty, Side::Argument)
}

/// JSON Schema for result values of `ty`, matching exactly what values::to_json
/// writes: [`schema_of`] except that a `list<u8>` is only an array of numbers.
pub fn result_schema_of(ty: &Type) -> Value {
    schema(ty, Side::Result)
}

/// The schema of `list<u8>` text: what `values::bytes` decodes.
fn base64_schema() -> Value {
    json!({
        "type": "string",
        "contentEncoding": "base64",
        "pattern": crate::values::bytes::PATTERN,
        "description": "The bytes as base64: standard alphabet (A-Z, a-z, 0-9, +, /), padded with =, no line breaks.",
    })
}

fn schema(ty: &Type, side: Side) -> Value {
    let sub = |ty: &Type| schema(ty, side);
    match ty {
        Type::Bool => json!({"type": "boolean"}),
        Type::S8 => int(i8::MIN.into(), i8::MAX.into()),
        Type::U8 => uint(u8::MAX.into()),
        Type::S16 => int(i16::MIN.into(), i16::MAX.into()),
        Type::U16 => uint(u16::MAX.into()),
        Type::S32 => int(i32::MIN.into(), i32::MAX.into()),
        Type::U32 => uint(u32::MAX.into()),
        Type::S64 => int(i64::MIN, i64::MAX),
        Type::U64 => uint(u64::MAX),
        Type::Float32 | Type::Float64 => json!({"type": "number"}),
        Type::Char => json!({"type": "string", "minLength": 1, "maxLength": 1}),
        Type::String => json!({"type": "string"}),
        Type::List(l) => {
            let array = json!({"type": "array", "items": sub(&l.ty())});
            if side == Side::Argument && matches!(l.ty(), Type::U8) {
                json!({"anyOf": [array, base64_schema()]})
            } else {
                array
            }
        }
        Type::FixedLengthList(l) => json!({
            "type": "array",
            "items": sub(&l.ty()),
            "minItems": l.len(),
            "maxItems": l.len(),
        }),
        Type::Map(m) => json!({
            "type": "array",
            "items": {
                "type": "array",
                "prefixItems": [sub(&m.key()), sub(&m.value())],
                "minItems": 2,
                "maxItems": 2,
            },
        }),
        Type::Tuple(t) => {
            let items: Vec<Value> = t.types().map(|ty| sub(&ty)).collect();
            let n = items.len();
            json!({"type": "array", "prefixItems": items, "minItems": n, "maxItems": n})
        }
        Type::Record(r) => object(r.fields().map(|f| (f.name.to_string(), f.ty)), side),
        Type::Variant(v) => {
            let cases: Vec<Value> = v
                .cases()
                .map(|c| match &c.ty {
                    None => json!({"const": c.name}),
                    Some(ty) => single_key(c.name, sub(ty)),
                })
                .collect();
            json!({"oneOf": cases})
        }
        Type::Enum(e) => json!({"type": "string", "enum": e.names().collect::<Vec<_>>()}),
        Type::Option(o) => json!({"anyOf": [sub(&o.ty()), {"type": "null"}]}),
        Type::Result(r) => {
            let payload =
                |ty: Option<Type>| ty.map_or_else(|| json!({"type": "null"}), |t| sub(&t));
            json!({"oneOf": [
                single_key("ok", payload(r.ok())),
                single_key("err", payload(r.err())),
            ]})
        }
        Type::Flags(f) => json!({
            "type": "array",
            "items": {"type": "string", "enum": f.names().collect::<Vec<_>>()},
            "uniqueItems": true,
        }),
        Type::Own(_) | Type::Borrow(_) | Type::Future(_) | Type::Stream(_) | Type::ErrorContext => {
            // Nothing is accepted: `{"not": {}}` is the schema that matches no value.
            json!({
                "not": {},
                "description": format!("{} cannot be passed as JSON", type_name(ty)),
            })
        }
    }
}

/// JSON Schema of an export's arguments object: {"type":"object","properties":{...},"required":[non-option params],"additionalProperties":false}.
pub fn params_schema(params: &[(String, Type)]) -> Value {
    object(
        params.iter().map(|(name, ty)| (name.clone(), ty.clone())),
        Side::Argument,
    )
}

/// An object with exactly these properties; all but `option<T>` ones are required.
fn object(fields: impl Iterator<Item = (String, Type)>, side: Side) -> Value {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for (name, ty) in fields {
        if !matches!(ty, Type::Option(_)) {
            required.push(Value::String(name.clone()));
        }
        properties.insert(name, schema(&ty, side));
    }
    json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    })
}

/// `{"key": <schema>}` and nothing else.
fn single_key(key: &str, schema: Value) -> Value {
    let mut properties = Map::new();
    properties.insert(key.to_string(), schema);
    json!({
        "type": "object",
        "properties": properties,
        "required": [key],
        "additionalProperties": false,
    })
}

fn int(min: i64, max: i64) -> Value {
    json!({"type": "integer", "minimum": min, "maximum": max})
}

fn uint(max: u64) -> Value {
    json!({"type": "integer", "minimum": 0, "maximum": max})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::values::tests::{Rng, WAT, all, full_args, func_params, gen_json, param};
    use crate::values::{args_from_json, from_json, to_json};

    fn schema(name: &str) -> Value {
        schema_of(&param(&all(), name))
    }

    #[test]
    fn scalar_schemas() {
        let cases = [
            ("b", json!({"type": "boolean"})),
            (
                "u8",
                json!({"type": "integer", "minimum": 0, "maximum": 255}),
            ),
            (
                "s8",
                json!({"type": "integer", "minimum": -128, "maximum": 127}),
            ),
            (
                "u64",
                json!({"type": "integer", "minimum": 0, "maximum": 18446744073709551615u64}),
            ),
            (
                "s64",
                json!({"type": "integer", "minimum": i64::MIN, "maximum": i64::MAX}),
            ),
            ("f32", json!({"type": "number"})),
            ("f64", json!({"type": "number"})),
            (
                "c",
                json!({"type": "string", "minLength": 1, "maxLength": 1}),
            ),
            ("text", json!({"type": "string"})),
        ];
        for (name, want) in cases {
            assert_eq!(schema(name), want, "{name}");
        }
    }

    #[test]
    fn compound_schemas() {
        let u32s = json!({"type": "integer", "minimum": 0, "maximum": 4294967295u32});
        let s32s = json!({"type": "integer", "minimum": -2147483648i32, "maximum": 2147483647});
        assert_eq!(schema("items"), json!({"type": "array", "items": u32s}));
        assert_eq!(
            schema("pair"),
            json!({
                "type": "array",
                "prefixItems": [
                    {"type": "integer", "minimum": 0, "maximum": 255},
                    {"type": "string"}
                ],
                "minItems": 2,
                "maxItems": 2
            })
        );
        assert_eq!(
            schema("opts"),
            json!({
                "type": "object",
                "properties": {
                    "limit": u32s,
                    "query": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                    "tags": {"type": "array", "items": {"type": "string"}},
                    "at": {
                        "type": "object",
                        "properties": {"x": s32s, "y": s32s},
                        "required": ["x", "y"],
                        "additionalProperties": false
                    }
                },
                "required": ["limit", "tags", "at"],
                "additionalProperties": false
            })
        );
        assert_eq!(
            schema("shape"),
            json!({"oneOf": [
                {
                    "type": "object",
                    "properties": {"circle": {"type": "number"}},
                    "required": ["circle"],
                    "additionalProperties": false
                },
                {
                    "type": "object",
                    "properties": {"rect": {
                        "type": "array",
                        "prefixItems": [u32s, u32s],
                        "minItems": 2,
                        "maxItems": 2
                    }},
                    "required": ["rect"],
                    "additionalProperties": false
                },
                {"const": "empty"}
            ]})
        );
        assert_eq!(
            schema("color"),
            json!({"type": "string", "enum": ["red", "green", "blue"]})
        );
        assert_eq!(
            schema("perms"),
            json!({
                "type": "array",
                "items": {"type": "string", "enum": ["read", "write", "exec"]},
                "uniqueItems": true
            })
        );
        assert_eq!(schema("maybe"), json!({"anyOf": [u32s, {"type": "null"}]}));
        assert_eq!(
            schema("outcome"),
            json!({"oneOf": [
                {
                    "type": "object",
                    "properties": {"ok": u32s},
                    "required": ["ok"],
                    "additionalProperties": false
                },
                {
                    "type": "object",
                    "properties": {"err": {"type": "string"}},
                    "required": ["err"],
                    "additionalProperties": false
                }
            ]})
        );
        assert_eq!(
            schema("done"),
            json!({"oneOf": [
                {
                    "type": "object",
                    "properties": {"ok": {"type": "null"}},
                    "required": ["ok"],
                    "additionalProperties": false
                },
                {
                    "type": "object",
                    "properties": {"err": {"type": "null"}},
                    "required": ["err"],
                    "additionalProperties": false
                }
            ]})
        );
    }

    #[test]
    fn bytes_are_an_array_or_base64_in_and_an_array_out() {
        let u8s = json!({"type": "integer", "minimum": 0, "maximum": 255});
        let array = json!({"type": "array", "items": u8s});
        let bytes = param(&all(), "bytes");
        assert_eq!(
            schema_of(&bytes),
            json!({"anyOf": [
                array,
                {
                    "type": "string",
                    "contentEncoding": "base64",
                    "pattern": "^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/][AQgw]==|[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=)?$",
                    "description": "The bytes as base64: standard alphabet (A-Z, a-z, 0-9, +, /), padded with =, no line breaks."
                }
            ]})
        );
        assert_eq!(result_schema_of(&bytes), array, "results are always arrays");
        // Only `list<u8>`: other lists, and a `u8` alone, have one form.
        assert_eq!(result_schema_of(&param(&all(), "items")), schema("items"));
        assert_eq!(schema("pair")["prefixItems"][0], u8s);

        // Inside other types too, by side: a record field, an option, a result.
        let params = func_params(
            r#"(component
                (type $r' (record (field "data" (list u8)) (field "n" u32)))
                (import "r" (type $r (eq $r')))
                (type $f (func
                    (param "rec" $r)
                    (param "maybe" (option (list u8)))
                    (param "out" (result (list u8) (error string)))))
                (import "f" (func (type $f))))"#,
            "f",
        );
        let [rec, maybe, out] = [0, 1, 2].map(|i| params[i].1.clone());
        let arg = schema_of(&rec);
        assert_eq!(arg["properties"]["data"]["anyOf"][0], array);
        assert_eq!(arg["properties"]["data"]["anyOf"][1]["type"], "string");
        assert_eq!(result_schema_of(&rec)["properties"]["data"], array);
        assert_eq!(schema_of(&maybe)["anyOf"][0]["anyOf"][0], array);
        assert_eq!(result_schema_of(&maybe)["anyOf"][0], array);
        assert_eq!(
            result_schema_of(&out)["oneOf"][0]["properties"]["ok"],
            array
        );
        assert_eq!(
            schema_of(&out)["oneOf"][0]["properties"]["ok"]["anyOf"][1]["contentEncoding"],
            "base64"
        );
    }

    #[test]
    fn resources_match_nothing() {
        let handles = func_params(WAT, "handles");
        assert_eq!(
            schema_of(&handles[0].1),
            json!({"not": {}, "description": "own<resource> cannot be passed as JSON"})
        );
        assert_eq!(
            schema_of(&handles[1].1),
            json!({"not": {}, "description": "borrow<resource> cannot be passed as JSON"})
        );
    }

    #[test]
    fn params_schema_lists_required_params() {
        let params = func_params(
            r#"(component
                (type $f (func (param "text" string) (param "limit" (option u32))))
                (import "f" (func (type $f))))"#,
            "f",
        );
        assert_eq!(
            params_schema(&params),
            json!({
                "type": "object",
                "properties": {
                    "text": {"type": "string"},
                    "limit": {"anyOf": [
                        {"type": "integer", "minimum": 0, "maximum": 4294967295u32},
                        {"type": "null"}
                    ]}
                },
                "required": ["text"],
                "additionalProperties": false
            })
        );
        assert_eq!(
            params_schema(&func_params(WAT, "none")),
            json!({
                "type": "object",
                "properties": {},
                "required": [],
                "additionalProperties": false
            })
        );
    }

    /// A validator for the keywords `schema_of` emits, enough to check that
    /// the schemas agree with `from_json`.
    fn valid(schema: &Value, v: &Value) -> bool {
        let Some(s) = schema.as_object() else {
            return schema.as_bool().expect("schema is an object or a boolean");
        };
        s.iter().all(|(key, arg)| match key.as_str() {
            "type" => match arg.as_str().unwrap() {
                "boolean" => v.is_boolean(),
                "integer" => as_int(v).is_some(),
                "number" => v.is_number(),
                "string" => v.is_string(),
                "array" => v.is_array(),
                "object" => v.is_object(),
                "null" => v.is_null(),
                other => panic!("unknown type {other}"),
            },
            "minimum" => compare(v, arg).is_none_or(|o| o.is_ge()),
            "maximum" => compare(v, arg).is_none_or(|o| o.is_le()),
            "minLength" => v
                .as_str()
                .is_none_or(|t| t.chars().count() as u64 >= arg.as_u64().unwrap()),
            "maxLength" => v
                .as_str()
                .is_none_or(|t| t.chars().count() as u64 <= arg.as_u64().unwrap()),
            "enum" => arg.as_array().unwrap().contains(v),
            "const" => arg == v,
            "prefixItems" => v.as_array().is_none_or(|items| {
                items
                    .iter()
                    .zip(arg.as_array().unwrap())
                    .all(|(item, s)| valid(s, item))
            }),
            "items" => v.as_array().is_none_or(|items| {
                let skip = s
                    .get("prefixItems")
                    .map_or(0, |p| p.as_array().unwrap().len());
                items.iter().skip(skip).all(|item| valid(arg, item))
            }),
            "minItems" => v
                .as_array()
                .is_none_or(|a| a.len() as u64 >= arg.as_u64().unwrap()),
            "maxItems" => v
                .as_array()
                .is_none_or(|a| a.len() as u64 <= arg.as_u64().unwrap()),
            "uniqueItems" => v
                .as_array()
                .is_none_or(|a| a.iter().enumerate().all(|(i, x)| !a[..i].contains(x))),
            "properties" => v.as_object().is_none_or(|o| {
                arg.as_object()
                    .unwrap()
                    .iter()
                    .all(|(k, s)| o.get(k).is_none_or(|x| valid(s, x)))
            }),
            "required" => v.as_object().is_none_or(|o| {
                arg.as_array()
                    .unwrap()
                    .iter()
                    .all(|k| o.contains_key(k.as_str().unwrap()))
            }),
            "additionalProperties" => {
                assert_eq!(arg, &json!(false));
                let props = s["properties"].as_object().unwrap();
                v.as_object()
                    .is_none_or(|o| o.keys().all(|k| props.contains_key(k)))
            }
            "oneOf" => {
                arg.as_array()
                    .unwrap()
                    .iter()
                    .filter(|s| valid(s, v))
                    .count()
                    == 1
            }
            "anyOf" => arg.as_array().unwrap().iter().any(|s| valid(s, v)),
            "not" => !valid(arg, v),
            "pattern" => v.as_str().is_none_or(|t| {
                regex::Regex::new(arg.as_str().unwrap())
                    .expect("the pattern compiles")
                    .is_match(t)
            }),
            // An annotation in 2020-12: the `pattern` beside it does the checking.
            "contentEncoding" => {
                assert_eq!(arg, "base64");
                assert!(s.contains_key("pattern"), "base64 text has a pattern");
                true
            }
            "description" => true,
            other => panic!("unknown keyword {other}"),
        })
    }

    /// The value as an exact integer if it is one (`7.0` counts, as in JSON Schema).
    fn as_int(v: &Value) -> Option<i128> {
        let n = v.as_number()?;
        n.as_u64()
            .map(i128::from)
            .or_else(|| n.as_i64().map(i128::from))
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 2f64.powi(100))
                    .map(|f| f as i128)
            })
    }

    fn compare(v: &Value, bound: &Value) -> Option<std::cmp::Ordering> {
        let bound = as_int(bound).expect("integer bounds");
        match as_int(v) {
            Some(n) => Some(n.cmp(&bound)),
            None => v.as_f64().and_then(|f| f.partial_cmp(&(bound as f64))),
        }
    }

    /// Every JSON pointer inside `v`, including the root `""`.
    fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
        match v {
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    pointers(item, format!("{at}/{i}"), out);
                }
            }
            Value::Object(obj) => {
                for (k, item) in obj {
                    pointers(item, format!("{at}/{k}"), out);
                }
            }
            _ => {}
        }
        out.push(at);
    }

    /// Damages one spot of `v`: replaces a node, or adds or drops an object key.
    fn mutate(v: &mut Value, rng: &mut Rng) {
        let junk = [
            json!(null),
            json!(true),
            json!(0),
            json!(-1),
            json!(256),
            json!(1.5),
            json!(7.0),
            json!(4294967296u64),
            json!("x"),
            json!(""),
            json!("xy"),
            json!("aGk="),
            json!("aGk"),
            json!("aGl="),
            json!("a-_/"),
            json!("aGV5\naGk="),
            json!("read"),
            json!("empty"),
            json!("circle"),
            json!([]),
            json!([1]),
            json!(["read", "read"]),
            json!({}),
            json!({"ok": 1}),
            json!({"err": "e"}),
            json!({"circle": 1}),
            json!({"x": 1, "y": 2}),
        ];
        let mut all = Vec::new();
        pointers(v, String::new(), &mut all);
        let at = &all[rng.below(all.len() as u64) as usize];
        let node = v.pointer_mut(at).unwrap();
        match (rng.below(4), node) {
            (0, Value::Object(obj)) if !obj.is_empty() => {
                let key = obj
                    .keys()
                    .nth(rng.below(obj.len() as u64) as usize)
                    .unwrap()
                    .clone();
                obj.remove(&key);
            }
            (1, Value::Object(obj)) => {
                obj.insert("extra".into(), json!(1));
            }
            (_, node) => *node = junk[rng.below(junk.len() as u64) as usize].clone(),
        }
    }

    #[test]
    fn schemas_agree_with_from_json() {
        let params = all();
        let whole = params_schema(&params);
        assert!(valid(&whole, &full_args()));
        let mut rng = Rng(0x0123_4567_89ab_cdef);
        let (mut accepted, mut rejected) = (0, 0);
        for round in 0..400 {
            for (name, ty) in &params {
                let schema = schema_of(ty);
                let mut v = gen_json(ty, &mut rng);
                assert!(
                    valid(&schema, &v),
                    "round {round}: `{name}` = {v} fails its schema"
                );
                let val = from_json(ty, &v, name).expect("generated values are valid");
                assert!(
                    valid(&result_schema_of(ty), &to_json(val)),
                    "round {round}: `{name}` = {v} written back fails its result schema"
                );
                mutate(&mut v, &mut rng);
                let ok = from_json(ty, &v, name).is_ok();
                assert_eq!(
                    ok,
                    valid(&schema, &v),
                    "round {round}: `{name}` = {v}: from_json and schema disagree"
                );
                if ok { accepted += 1 } else { rejected += 1 }
            }
            // The arguments object as a whole.
            let mut args = full_args();
            mutate(&mut args, &mut rng);
            assert_eq!(
                args_from_json(&params, &args).is_ok(),
                valid(&whole, &args),
                "round {round}: {args}"
            );
        }
        // Both outcomes must actually be exercised.
        assert!(accepted > 100 && rejected > 1000, "{accepted} / {rejected}");
    }
}
