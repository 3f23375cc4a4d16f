//! Conversion between JSON and component-model values, so callers can pass tool arguments as JSON.
//! The mapping is fixed and type-directed: the export's WIT type decides how JSON is read,
//! and [`to_json`] writes values back the same way (see `schema` for the matching JSON Schema).
//! A `list<u8>` is also read from base64 text ([`bytes`]), and is always written as an array.

use std::cell::Cell;
use std::collections::HashSet;
use std::fmt::Write as _;

use serde_json::{Map as JsonMap, Number, Value};
use wasmtime::component::Val;
use wasmtime::component::types::Type;

/// Deepest JSON nesting [`from_json`] accepts before it gives up.
///
/// Component validation already caps WIT type nesting at 100 levels, so this only
/// guards the recursion itself; valid input never comes close.
pub const MAX_DEPTH: usize = 128;

pub mod bytes;

/// Why a JSON argument does not fit the export's WIT type. `path` names the spot: `text`, `opts.limit`, `items[3]`, `shape.circle`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", if path == "$" { message.clone() } else { format!("argument `{path}`: {message}") })]
pub struct ArgError {
    /// Where in the arguments the problem is (`$` for the arguments object itself).
    pub path: String,
    /// What is wrong there: lower-case, no trailing period.
    pub message: String,
}

/// Why a call's arguments cannot be converted: one does not fit its WIT type,
/// or together they carry more bytes than one call may pass.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgsError {
    /// An argument does not fit its type.
    #[error(transparent)]
    Invalid(#[from] ArgError),
    /// The `list<u8>` values of the arguments hold more bytes than allowed.
    #[error(transparent)]
    TooManyBytes(#[from] TooManyBytes),
}

/// The `list<u8>` values of one call's arguments (base64 text counted as the
/// bytes it decodes to, arrays as their length) reached past `limit`; found
/// before that argument was decoded or converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "argument `{path}` brings the call's byte lists to {bytes} bytes, more than the {limit} one call may pass to a tool; send less per call"
)]
pub struct TooManyBytes {
    /// The argument (or the spot inside one) that went past the limit.
    pub path: String,
    /// The bytes counted up to and including that argument.
    pub bytes: usize,
    /// The limit.
    pub limit: usize,
}

impl ArgsError {
    /// The [`ArgError`] naming the spot, for callers that have no budget to
    /// report a [`TooManyBytes`] against.
    fn into_arg_error(self) -> ArgError {
        match self {
            ArgsError::Invalid(e) => e,
            ArgsError::TooManyBytes(e) => ArgError {
                message: e.to_string(),
                path: e.path,
            },
        }
    }
}

/// Converts JSON `v` into a value of WIT type `ty`; `path` is used in errors.
///
/// Integers are range-checked (`5.0` counts as `5`), `option<T>` is the value or `null`,
/// `result` is `{"ok": v}` or `{"err": v}`, variants are `"case"` or `{"case": payload}`,
/// flags are an array of unique names and maps an array of `[key, value]` pairs.
/// A `list<u8>` is an array of numbers or a base64 string (RFC 4648, standard
/// alphabet, `=` padding; see [`bytes`]).
/// Input nested deeper than [`MAX_DEPTH`] levels is rejected.
pub fn from_json(ty: &Type, v: &Value, path: &str) -> Result<Val, ArgError> {
    let limits = Limits::new(MAX_DEPTH, usize::MAX);
    convert(ty, v, &Path::root(path, &limits)).map_err(ArgsError::into_arg_error)
}

/// Converts a value back to JSON (same mapping in reverse).
///
/// Non-finite floats become `null`; `f32` values are written in their shortest decimal
/// form (`0.1`, not `0.10000000149011612`). Host-only values (resources, futures,
/// streams, error contexts) become placeholder strings such as `"<resource>"`.
/// `some(none)` of an `option<option<T>>` prints as `null`, like `none`.
pub fn to_json(v: Val) -> Value {
    match v {
        Val::Bool(b) => Value::Bool(b),
        Val::S8(n) => Value::from(n),
        Val::U8(n) => Value::from(n),
        Val::S16(n) => Value::from(n),
        Val::U16(n) => Value::from(n),
        Val::S32(n) => Value::from(n),
        Val::U32(n) => Value::from(n),
        Val::S64(n) => Value::from(n),
        Val::U64(n) => Value::from(n),
        Val::Float32(f) => f32_to_json(f),
        Val::Float64(f) => Number::from_f64(f).map_or(Value::Null, Value::Number),
        Val::Char(c) => Value::String(c.to_string()),
        Val::String(s) => Value::String(s),
        Val::List(items) | Val::Tuple(items) | Val::FixedLengthList(items) => {
            Value::Array(items.into_iter().map(to_json).collect())
        }
        Val::Map(pairs) => Value::Array(
            pairs
                .into_iter()
                .map(|(k, v)| Value::Array(vec![to_json(k), to_json(v)]))
                .collect(),
        ),
        Val::Record(fields) => Value::Object(
            fields
                .into_iter()
                .map(|(name, v)| (name, to_json(v)))
                .collect(),
        ),
        Val::Variant(case, None) => Value::String(case),
        Val::Variant(case, Some(payload)) => tagged(&case, to_json(*payload)),
        Val::Enum(case) => Value::String(case),
        Val::Option(None) => Value::Null,
        Val::Option(Some(v)) => to_json(*v),
        Val::Result(Ok(v)) => tagged("ok", v.map_or(Value::Null, |v| to_json(*v))),
        Val::Result(Err(v)) => tagged("err", v.map_or(Value::Null, |v| to_json(*v))),
        Val::Flags(names) => Value::Array(names.into_iter().map(Value::String).collect()),
        Val::Resource(_) => Value::String("<resource>".into()),
        Val::Future(_) => Value::String("<future>".into()),
        Val::Stream(_) => Value::String("<stream>".into()),
        Val::ErrorContext(_) => Value::String("<error-context>".into()),
    }
}

/// Converts a JSON object of named arguments into the export's parameter list, in order.
/// `params` is `(name, type)` as given by `ComponentFunc::params()`. Missing `option<T>` params become `none`;
/// a missing required one -> ArgError{path: name, message: "missing (expected <type name>)"};
/// an unknown key -> ArgError naming it and listing the accepted names; a non-object `args` (except `null`/absent meaning `{}`) is an error.
///
/// Errors about `args` as a whole use the path `$`. Byte lists may be of any
/// size; [`args_from_json_within`] bounds them.
pub fn args_from_json(params: &[(String, Type)], args: &Value) -> Result<Vec<Val>, ArgError> {
    args_from_json_within(params, args, usize::MAX).map_err(ArgsError::into_arg_error)
}

/// [`args_from_json`], with the `list<u8>` values of all arguments together
/// holding at most `max_bytes` bytes (the job's hostcall-data budget). Each is
/// measured before it is converted, base64 by its length, so text that would
/// decode past the limit is refused before any of it is decoded.
pub fn args_from_json_within(
    params: &[(String, Type)],
    args: &Value,
    max_bytes: usize,
) -> Result<Vec<Val>, ArgsError> {
    let empty = JsonMap::new();
    let obj = match args {
        Value::Null => &empty,
        Value::Object(obj) => obj,
        other => {
            return Err(ArgError {
                path: "$".into(),
                message: format!(
                    "the arguments must be a JSON object keyed by parameter name, got {}",
                    describe(other)
                ),
            }
            .into());
        }
    };
    if let Some(key) = obj.keys().find(|k| !params.iter().any(|(n, _)| n == *k)) {
        let accepted = if params.is_empty() {
            "this function takes no arguments".to_string()
        } else {
            format!(
                "accepted: {}",
                join_names(params.iter().map(|(n, _)| n.as_str()))
            )
        };
        return Err(ArgError {
            path: shown(key),
            message: format!("unknown argument ({accepted})"),
        }
        .into());
    }
    let limits = Limits::new(MAX_DEPTH, max_bytes);
    params
        .iter()
        .map(|(name, ty)| {
            let path = Path::root(name, &limits);
            field_value(ty, obj.get(name), &path)
        })
        .collect()
}

/// A short WIT-like name of a type for messages and listings: `u32`, `string`, `list<string>`, `option<u32>`,
/// `result<counts, string>` style — records print as `record { a: u32, b: string }`, variants as `variant { a, b(u32) }`,
/// enums `enum { x, y }`, flags `flags { r, w }`, tuples `tuple<u8, string>`, resources `own<resource>`/`borrow<resource>`.
///
/// Runtime types carry no WIT type names, so records, variants, enums and flags are
/// always spelled out; fixed-length lists print as `list<u8, 4>`, maps as `map<k, v>`.
pub fn type_name(ty: &Type) -> String {
    let mut out = String::new();
    write_type_name(&mut out, ty, usize::MAX);
    out
}

/// Writes the name of `ty`, stopping soon after `out` reaches `max` bytes
/// (so a huge type costs no more than `max` to name).
fn write_type_name(out: &mut String, ty: &Type, max: usize) {
    if out.len() >= max {
        return;
    }
    match ty {
        Type::Bool => out.push_str("bool"),
        Type::S8 => out.push_str("s8"),
        Type::U8 => out.push_str("u8"),
        Type::S16 => out.push_str("s16"),
        Type::U16 => out.push_str("u16"),
        Type::S32 => out.push_str("s32"),
        Type::U32 => out.push_str("u32"),
        Type::S64 => out.push_str("s64"),
        Type::U64 => out.push_str("u64"),
        Type::Float32 => out.push_str("f32"),
        Type::Float64 => out.push_str("f64"),
        Type::Char => out.push_str("char"),
        Type::String => out.push_str("string"),
        Type::Own(_) => out.push_str("own<resource>"),
        Type::Borrow(_) => out.push_str("borrow<resource>"),
        Type::ErrorContext => out.push_str("error-context"),
        Type::List(l) => write_generic(out, "list", &[l.ty()], None, max),
        Type::FixedLengthList(l) => write_generic(out, "list", &[l.ty()], Some(l.len()), max),
        Type::Map(m) => write_generic(out, "map", &[m.key(), m.value()], None, max),
        Type::Option(o) => write_generic(out, "option", &[o.ty()], None, max),
        Type::Tuple(t) => write_generic(out, "tuple", &t.types().collect::<Vec<_>>(), None, max),
        Type::Future(f) => write_generic(out, "future", f.ty().as_slice(), None, max),
        Type::Stream(s) => write_generic(out, "stream", s.ty().as_slice(), None, max),
        Type::Result(r) => match (r.ok(), r.err()) {
            (ok, None) => write_generic(out, "result", ok.as_slice(), None, max),
            (Some(ok), Some(err)) => write_generic(out, "result", &[ok, err], None, max),
            (None, Some(err)) => {
                out.push_str("result<_, ");
                write_type_name(out, &err, max);
                out.push('>');
            }
        },
        Type::Record(r) => {
            out.push_str("record {");
            for (i, field) in r.fields().enumerate() {
                if out.len() >= max {
                    break;
                }
                out.push_str(if i > 0 { ", " } else { " " });
                out.push_str(field.name);
                out.push_str(": ");
                write_type_name(out, &field.ty, max);
            }
            out.push_str(" }");
        }
        Type::Variant(v) => {
            out.push_str("variant {");
            for (i, case) in v.cases().enumerate() {
                if out.len() >= max {
                    break;
                }
                out.push_str(if i > 0 { ", " } else { " " });
                out.push_str(case.name);
                if let Some(ty) = &case.ty {
                    out.push('(');
                    write_type_name(out, ty, max);
                    out.push(')');
                }
            }
            out.push_str(" }");
        }
        Type::Enum(e) => {
            let _ = write!(out, "enum {{ {} }}", join_names(e.names()));
        }
        Type::Flags(f) => {
            let _ = write!(out, "flags {{ {} }}", join_names(f.names()));
        }
    }
}

/// `name<a, b>` (or just `name` without arguments), with an optional trailing length.
fn write_generic(out: &mut String, name: &str, args: &[Type], len: Option<u32>, max: usize) {
    out.push_str(name);
    if args.is_empty() {
        return;
    }
    out.push('<');
    for (i, ty) in args.iter().enumerate() {
        if out.len() >= max {
            break;
        }
        if i > 0 {
            out.push_str(", ");
        }
        write_type_name(out, ty, max);
    }
    if let Some(len) = len {
        let _ = write!(out, ", {len}");
    }
    out.push('>');
}

/// What one conversion may use: `depth` levels of nesting, and `max_bytes`
/// of `list<u8>` across all arguments (`bytes` counts what is used so far).
struct Limits {
    depth: usize,
    max_bytes: usize,
    bytes: Cell<usize>,
}

impl Limits {
    fn new(depth: usize, max_bytes: usize) -> Self {
        Limits {
            depth,
            max_bytes,
            bytes: Cell::new(0),
        }
    }
}

/// A position in the argument tree, kept as a chain on the stack and only
/// rendered to a string when an error needs it. `depth` counts conversion
/// levels so recursion stays bounded by `limit` whatever the input.
struct Path<'a> {
    parent: Option<&'a Path<'a>>,
    seg: Seg<'a>,
    depth: usize,
    limit: usize,
    limits: &'a Limits,
}

enum Seg<'a> {
    Root(&'a str),
    Field(&'a str),
    Index(usize),
    /// Another level at the same spot (an `option` payload).
    Same,
}

impl<'a> Path<'a> {
    fn root(name: &'a str, limits: &'a Limits) -> Self {
        Path {
            parent: None,
            seg: Seg::Root(name),
            depth: 1,
            limit: limits.depth,
            limits,
        }
    }

    fn same(&'a self) -> Path<'a> {
        self.child(Seg::Same)
    }

    fn field(&'a self, name: &'a str) -> Path<'a> {
        self.child(Seg::Field(name))
    }

    fn index(&'a self, i: usize) -> Path<'a> {
        self.child(Seg::Index(i))
    }

    fn child(&'a self, seg: Seg<'a>) -> Path<'a> {
        Path {
            parent: Some(self),
            seg,
            depth: self.depth + 1,
            limit: self.limit,
            limits: self.limits,
        }
    }

    /// Counts `n` more bytes of `list<u8>` here, or says they are too many.
    fn take_bytes(&self, n: usize) -> Result<(), ArgsError> {
        let limits = self.limits;
        let total = limits.bytes.get().saturating_add(n);
        if total > limits.max_bytes {
            return Err(TooManyBytes {
                path: self.rendered(),
                bytes: total,
                limit: limits.max_bytes,
            }
            .into());
        }
        limits.bytes.set(total);
        Ok(())
    }

    fn rendered(&self) -> String {
        let mut path = String::new();
        self.render(&mut path);
        path
    }

    fn render(&self, out: &mut String) {
        if let Some(parent) = self.parent {
            parent.render(out);
        }
        match self.seg {
            Seg::Root(name) => out.push_str(name),
            Seg::Field(name) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(name);
            }
            Seg::Index(i) => {
                let _ = write!(out, "[{i}]");
            }
            Seg::Same => {}
        }
    }

    fn err(&self, message: impl Into<String>) -> ArgsError {
        ArgsError::Invalid(ArgError {
            path: self.rendered(),
            message: message.into(),
        })
    }
}

fn convert(ty: &Type, v: &Value, path: &Path<'_>) -> Result<Val, ArgsError> {
    if path.depth > path.limit {
        return Err(path.err(format!("nested deeper than {} levels", path.limit)));
    }
    let mismatch = || path.err(format!("expected {}, got {}", brief_name(ty), describe(v)));
    Ok(match ty {
        Type::Bool => Val::Bool(v.as_bool().ok_or_else(mismatch)?),
        Type::S8 => Val::S8(int(v, path, "s8", i8::MIN.into(), i8::MAX.into())? as i8),
        Type::U8 => Val::U8(int(v, path, "u8", 0, u8::MAX.into())? as u8),
        Type::S16 => Val::S16(int(v, path, "s16", i16::MIN.into(), i16::MAX.into())? as i16),
        Type::U16 => Val::U16(int(v, path, "u16", 0, u16::MAX.into())? as u16),
        Type::S32 => Val::S32(int(v, path, "s32", i32::MIN.into(), i32::MAX.into())? as i32),
        Type::U32 => Val::U32(int(v, path, "u32", 0, u32::MAX.into())? as u32),
        Type::S64 => Val::S64(int(v, path, "s64", i64::MIN.into(), i64::MAX.into())? as i64),
        Type::U64 => Val::U64(int(v, path, "u64", 0, u64::MAX.into())? as u64),
        Type::Float32 => {
            let f = v.as_f64().ok_or_else(mismatch)?;
            let g = f as f32;
            if g.is_infinite() {
                return Err(path.err(format!("expected f32, got {v} which is out of range")));
            }
            Val::Float32(g)
        }
        Type::Float64 => Val::Float64(v.as_f64().ok_or_else(mismatch)?),
        Type::Char => {
            let s = v.as_str().ok_or_else(mismatch)?;
            let mut chars = s.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => Val::Char(c),
                _ => {
                    return Err(path.err(format!(
                        "expected char (a one-character string), got a string of {} characters",
                        s.chars().count()
                    )));
                }
            }
        }
        Type::String => Val::String(v.as_str().ok_or_else(mismatch)?.to_string()),
        Type::List(l) => {
            let elem = l.ty();
            let is_bytes = matches!(elem, Type::U8);
            match v {
                Value::String(text) if is_bytes => {
                    let len = bytes::decoded_len(text).map_err(|e| path.err(e))?;
                    path.take_bytes(len)?;
                    Val::List(bytes::decode(text, len).map_err(|e| path.err(e))?)
                }
                Value::Array(items) => {
                    if is_bytes {
                        path.take_bytes(items.len())?;
                    }
                    Val::List(convert_items(&elem, items, path)?)
                }
                _ if is_bytes => {
                    return Err(path.err(format!(
                        "expected list<u8> (an array of numbers or a base64 string), got {}",
                        describe(v)
                    )));
                }
                _ => return Err(mismatch()),
            }
        }
        Type::FixedLengthList(l) => {
            let items = v.as_array().ok_or_else(mismatch)?;
            let want = l.len() as usize;
            if items.len() != want {
                return Err(path.err(format!(
                    "expected {} with exactly {want} items, got {}",
                    brief_name(ty),
                    items.len()
                )));
            }
            Val::FixedLengthList(convert_items(&l.ty(), items, path)?)
        }
        Type::Map(m) => {
            let items = v.as_array().ok_or_else(mismatch)?;
            let (kt, vt) = (m.key(), m.value());
            let mut pairs = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let p = path.index(i);
                if p.depth > p.limit {
                    return Err(p.err(format!("nested deeper than {} levels", p.limit)));
                }
                match item.as_array().map(Vec::as_slice) {
                    Some([k, val]) => {
                        let k = convert(&kt, k, &p.index(0))?;
                        let val = convert(&vt, val, &p.index(1))?;
                        pairs.push((k, val));
                    }
                    _ => {
                        return Err(p.err(format!(
                            "expected a [key, value] pair, got {}",
                            describe(item)
                        )));
                    }
                }
            }
            Val::Map(pairs)
        }
        Type::Tuple(t) => {
            let items = v.as_array().ok_or_else(mismatch)?;
            if items.len() != t.types().len() {
                return Err(path.err(format!(
                    "expected {} (an array of {} items), got {} items",
                    brief_name(ty),
                    t.types().len(),
                    items.len()
                )));
            }
            let vals = t
                .types()
                .zip(items)
                .enumerate()
                .map(|(i, (ty, item))| convert(&ty, item, &path.index(i)))
                .collect::<Result<_, _>>()?;
            Val::Tuple(vals)
        }
        Type::Record(r) => {
            let obj = v.as_object().ok_or_else(mismatch)?;
            if let Some(key) = obj
                .keys()
                .find(|k| !r.fields().any(|f| f.name == k.as_str()))
            {
                let key = shown(key);
                return Err(path.field(&key).err(format!(
                    "unknown field (expected one of: {})",
                    join_names(r.fields().map(|f| f.name))
                )));
            }
            let fields = r
                .fields()
                .map(|f| {
                    let val = field_value(&f.ty, obj.get(f.name), &path.field(f.name))?;
                    Ok((f.name.to_string(), val))
                })
                .collect::<Result<_, ArgsError>>()?;
            Val::Record(fields)
        }
        Type::Variant(var) => match v {
            Value::String(name) => match var.cases().find(|c| c.name == name.as_str()) {
                Some(c) if c.ty.is_none() => Val::Variant(name.clone(), None),
                Some(_) => {
                    return Err(path.err(format!(
                        "case `{name}` needs a payload: use {{\"{name}\": ...}}"
                    )));
                }
                None => {
                    return Err(path.err(format!(
                        "unknown case `{}` (expected one of: {})",
                        shown(name),
                        join_names(var.cases().map(|c| c.name))
                    )));
                }
            },
            Value::Object(obj) if obj.len() == 1 => {
                let (name, payload) = obj.iter().next().expect("one entry");
                let case = var.cases().find(|c| c.name == name.as_str());
                match case {
                    Some(c) => match &c.ty {
                        Some(pty) => {
                            let val = convert(pty, payload, &path.field(name))?;
                            Val::Variant(name.clone(), Some(Box::new(val)))
                        }
                        None => {
                            return Err(path.err(format!(
                                "case `{name}` has no payload: pass it as the string \"{name}\""
                            )));
                        }
                    },
                    None => {
                        return Err(path.err(format!(
                            "unknown case `{}` (expected one of: {})",
                            shown(name),
                            join_names(var.cases().map(|c| c.name))
                        )));
                    }
                }
            }
            _ => {
                return Err(path.err(format!(
                    "expected a case name or an object {{\"case\": payload}} with one key, got {}",
                    describe(v)
                )));
            }
        },
        Type::Enum(e) => {
            let name = v.as_str().ok_or_else(mismatch)?;
            if !e.names().any(|n| n == name) {
                return Err(path.err(format!(
                    "unknown case `{}` (expected one of: {})",
                    shown(name),
                    join_names(e.names())
                )));
            }
            Val::Enum(name.to_string())
        }
        Type::Option(o) => match v {
            Value::Null => Val::Option(None),
            other => Val::Option(Some(Box::new(convert(&o.ty(), other, &path.same())?))),
        },
        Type::Result(r) => {
            let entry = v.as_object().filter(|o| o.len() == 1).and_then(|o| {
                let (k, v) = o.iter().next().expect("one entry");
                matches!(k.as_str(), "ok" | "err").then_some((k.as_str(), v))
            });
            let Some((side, payload)) = entry else {
                return Err(path.err(format!(
                    "expected {{\"ok\": ...}} or {{\"err\": ...}}, got {}",
                    describe(v)
                )));
            };
            let pty = if side == "ok" { r.ok() } else { r.err() };
            let p = path.field(side);
            let val = match pty {
                Some(pty) => Some(Box::new(convert(&pty, payload, &p)?)),
                None if payload.is_null() => None,
                None => {
                    return Err(p.err(format!(
                        "this side has no payload, expected null, got {}",
                        describe(payload)
                    )));
                }
            };
            Val::Result(if side == "ok" { Ok(val) } else { Err(val) })
        }
        Type::Flags(f) => {
            let items = v.as_array().ok_or_else(mismatch)?;
            let mut seen = HashSet::with_capacity(items.len());
            let mut names = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let p = path.index(i);
                let Some(name) = item.as_str() else {
                    return Err(p.err(format!("expected a flag name, got {}", describe(item))));
                };
                if !f.names().any(|n| n == name) {
                    return Err(p.err(format!(
                        "unknown flag `{}` (expected some of: {})",
                        shown(name),
                        join_names(f.names())
                    )));
                }
                if !seen.insert(name) {
                    return Err(p.err(format!("duplicate flag `{name}`")));
                }
                names.push(name.to_string());
            }
            Val::Flags(names)
        }
        Type::Own(_) | Type::Borrow(_) | Type::Future(_) | Type::Stream(_) | Type::ErrorContext => {
            return Err(path.err("resources/streams cannot be passed as JSON"));
        }
    })
}

fn convert_items(elem: &Type, items: &[Value], path: &Path<'_>) -> Result<Vec<Val>, ArgsError> {
    items
        .iter()
        .enumerate()
        .map(|(i, item)| convert(elem, item, &path.index(i)))
        .collect()
}

/// A record field or named argument: absent `option<T>` is `none`, any other absence is an error.
fn field_value(ty: &Type, v: Option<&Value>, path: &Path<'_>) -> Result<Val, ArgsError> {
    match (v, ty) {
        (Some(v), _) => convert(ty, v, path),
        (None, Type::Option(_)) => Ok(Val::Option(None)),
        (None, _) => Err(path.err(format!("missing (expected {})", brief_name(ty)))),
    }
}

/// Reads an integer in `min..=max`; integral floats such as `5.0` or `1e3` count as integers.
fn int(v: &Value, path: &Path<'_>, name: &str, min: i128, max: i128) -> Result<i128, ArgsError> {
    let n = match v {
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                Some(i128::from(u))
            } else if let Some(i) = n.as_i64() {
                Some(i128::from(i))
            } else {
                // Only floats are left here; 2^100 bounds every value we can check.
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 2f64.powi(100))
                    .map(|f| f as i128)
            }
        }
        _ => None,
    };
    match n {
        Some(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(path.err(format!(
            "expected {name} ({min}..={max}), got {}",
            describe(v)
        ))),
    }
}

/// Float32 values print with their shortest decimal form, so `0.1` stays `0.1`.
fn f32_to_json(f: f32) -> Value {
    if !f.is_finite() {
        return Value::Null;
    }
    let wide = f.to_string().parse::<f64>().unwrap_or(f64::from(f));
    Number::from_f64(wide).map_or(Value::Null, Value::Number)
}

fn tagged(key: &str, v: Value) -> Value {
    let mut obj = JsonMap::new();
    obj.insert(key.to_string(), v);
    Value::Object(obj)
}

fn join_names<'a>(names: impl Iterator<Item = &'a str>) -> String {
    names.collect::<Vec<_>>().join(", ")
}

/// The type's name, shortened so one error message stays readable.
fn brief_name(ty: &Type) -> String {
    const LIMIT: usize = 120;
    let mut name = String::new();
    write_type_name(&mut name, ty, LIMIT + 1);
    if name.len() > LIMIT {
        let mut cut = LIMIT;
        while !name.is_char_boundary(cut) {
            cut -= 1;
        }
        name.truncate(cut);
        name.push_str("...");
    }
    name
}

/// A name taken from the input, made safe to print: control characters are
/// escaped, anything past 64 characters is cut, and the empty name is shown
/// as `""` (an error must never point at an empty spot).
fn shown(name: &str) -> String {
    const LIMIT: usize = 64;
    if name.is_empty() {
        return "\"\"".into();
    }
    let mut out: String = name
        .chars()
        .take(LIMIT)
        .flat_map(char::escape_debug)
        .collect();
    if name.chars().nth(LIMIT).is_some() {
        out.push_str("...");
    }
    out
}

/// A short description of a JSON value for "got ..." in messages.
fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) if s.chars().count() <= 32 => format!("the string {v}"),
        Value::String(_) => "a string".into(),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;
    use wasmtime::component::Component;
    use wasmtime::component::types::ComponentItem;
    use wasmtime::{Config, Engine};

    /// Every kind of WIT type, shared with the `json_to_wit` fuzz target.
    pub(crate) const WAT: &str = include_str!("values_types.wat");

    pub(crate) fn func_params(wat: &str, func: &str) -> Vec<(String, Type)> {
        let engine = Engine::new(&Config::new()).expect("engine");
        let component = Component::new(&engine, wat).expect("component compiles");
        let ty = component.component_type();
        let item = ty.get_import(&engine, func).expect("function is imported");
        let ComponentItem::ComponentFunc(f) = item.ty else {
            panic!("`{func}` is not a function");
        };
        f.params().map(|(n, t)| (n.to_string(), t)).collect()
    }

    pub(crate) fn all() -> Vec<(String, Type)> {
        func_params(WAT, "all")
    }

    pub(crate) fn param(params: &[(String, Type)], name: &str) -> Type {
        params
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no param `{name}`"))
            .1
            .clone()
    }

    pub(crate) fn full_args() -> Value {
        json!({
            "b": true,
            "s8": -128, "u8": 255, "s16": -32768, "u16": 65535,
            "s32": -2147483648i64, "u32": 4294967295u64,
            "s64": i64::MIN, "u64": u64::MAX,
            "f32": 0.1, "f64": -2.5e-300,
            "c": "é", "text": "hello\nworld",
            "items": [1, 2, 3], "bytes": [0, 127, 255],
            "pair": [7, "seven"],
            "opts": {"limit": 10, "query": "rust", "tags": ["a", "b"], "at": {"x": -1, "y": 2}},
            "shape": {"rect": [3, 4]},
            "color": "green",
            "perms": ["read", "exec"],
            "maybe": 42,
            "outcome": {"err": "nope"},
            "done": {"ok": null},
            "failed": {"err": "bad"},
            "shapes": ["empty", {"circle": 1.5}, {"rect": [0, 0]}],
            "nested": [null, {"limit": 0, "query": null, "tags": [], "at": {"x": 0, "y": 0}}],
        })
    }

    fn args_to_json(params: &[(String, Type)], vals: &[Val]) -> Value {
        Value::Object(
            params
                .iter()
                .zip(vals)
                .map(|((n, _), v)| (n.clone(), to_json(v.clone())))
                .collect(),
        )
    }

    fn err_of(ty: &Type, v: Value, path: &str) -> ArgError {
        from_json(ty, &v, path).expect_err("conversion should fail")
    }

    #[test]
    fn every_kind_round_trips() {
        let params = all();
        let args = full_args();
        let vals = args_from_json(&params, &args).expect("args convert");
        assert_eq!(vals.len(), params.len());
        assert_eq!(args_to_json(&params, &vals), args);
        // Spot-check the Val shapes wasmtime expects.
        let get = |name: &str| &vals[params.iter().position(|(n, _)| n == name).unwrap()];
        assert_eq!(get("u8"), &Val::U8(255));
        assert_eq!(get("c"), &Val::Char('é'));
        assert_eq!(get("color"), &Val::Enum("green".into()));
        assert_eq!(
            get("shape"),
            &Val::Variant(
                "rect".into(),
                Some(Box::new(Val::Tuple(vec![Val::U32(3), Val::U32(4)])))
            )
        );
        assert_eq!(get("done"), &Val::Result(Ok(None)));
        assert_eq!(get("maybe"), &Val::Option(Some(Box::new(Val::U32(42)))));
        let Val::Record(fields) = get("opts") else {
            panic!("opts is a record")
        };
        let names: Vec<_> = fields.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["limit", "query", "tags", "at"], "declaration order");
    }

    #[test]
    fn error_paths_name_the_spot() {
        let params = all();
        let cases = [
            (
                "/opts/limit",
                json!("ten"),
                "opts.limit",
                "expected u32 (0..=4294967295), got the string \"ten\"",
            ),
            (
                "/opts/at/y",
                json!(1.5),
                "opts.at.y",
                "expected s32 (-2147483648..=2147483647), got 1.5",
            ),
            (
                "/items/2",
                json!(-1),
                "items[2]",
                "expected u32 (0..=4294967295), got -1",
            ),
            (
                "/shape",
                json!({"circle": "big"}),
                "shape.circle",
                "expected f64, got the string \"big\"",
            ),
            (
                "/shapes/1",
                json!({"rect": [1]}),
                "shapes[1].rect",
                "expected tuple<u32, u32> (an array of 2 items), got 1 items",
            ),
            ("/pair/1", json!(5), "pair[1]", "expected string, got 5"),
            (
                "/outcome",
                json!({"err": 1}),
                "outcome.err",
                "expected string, got 1",
            ),
            (
                "/perms",
                json!(["read", "read"]),
                "perms[1]",
                "duplicate flag `read`",
            ),
            (
                "/perms",
                json!(["read", "all"]),
                "perms[1]",
                "unknown flag `all` (expected some of: read, write, exec)",
            ),
            (
                "/perms",
                json!([1]),
                "perms[0]",
                "expected a flag name, got 1",
            ),
            (
                "/color",
                json!("purple"),
                "color",
                "unknown case `purple` (expected one of: red, green, blue)",
            ),
            (
                "/c",
                json!("ab"),
                "c",
                "expected char (a one-character string), got a string of 2 characters",
            ),
            (
                "/c",
                json!(""),
                "c",
                "expected char (a one-character string), got a string of 0 characters",
            ),
            (
                "/b",
                json!("true"),
                "b",
                "expected bool, got the string \"true\"",
            ),
            (
                "/nested/1/limit",
                json!(null),
                "nested[1].limit",
                "expected u32 (0..=4294967295), got null",
            ),
            (
                "/done",
                json!({"ok": 1}),
                "done.ok",
                "this side has no payload, expected null, got 1",
            ),
            (
                "/outcome",
                json!({"ok": 1, "err": "x"}),
                "outcome",
                "expected {\"ok\": ...} or {\"err\": ...}, got an object",
            ),
            (
                "/outcome",
                json!({"value": 1}),
                "outcome",
                "expected {\"ok\": ...} or {\"err\": ...}, got an object",
            ),
            (
                "/bytes",
                json!(7),
                "bytes",
                "expected list<u8> (an array of numbers or a base64 string), got 7",
            ),
            (
                "/bytes",
                json!("aGk"),
                "bytes",
                "invalid base64 for list<u8>: its length 3 is not a multiple of 4; pad the end with `=` (standard base64 is always padded)",
            ),
            (
                "/bytes",
                json!([0, 256]),
                "bytes[1]",
                "expected u8 (0..=255), got 256",
            ),
            (
                "/text",
                json!(["a"]),
                "text",
                "expected string, got an array",
            ),
        ];
        for (pointer, bad, path, message) in cases {
            let mut args = full_args();
            *args.pointer_mut(pointer).expect(pointer) = bad;
            let err = args_from_json(&params, &args).expect_err(pointer);
            assert_eq!(
                err,
                ArgError {
                    path: path.into(),
                    message: message.into()
                },
                "{pointer}"
            );
        }
    }

    #[test]
    fn error_display_names_the_argument() {
        let err = ArgError {
            path: "opts.limit".into(),
            message: "missing (expected u32)".into(),
        };
        assert_eq!(
            err.to_string(),
            "argument `opts.limit`: missing (expected u32)"
        );
    }

    mod input {
        use super::*;

        #[test]
        fn integer_ranges_are_exact() {
            let params = all();
            let ok = [
                ("u8", json!(0), Val::U8(0)),
                ("u8", json!(255), Val::U8(255)),
                ("u8", json!(7.0), Val::U8(7)),
                ("s8", json!(-128), Val::S8(-128)),
                ("s8", json!(127), Val::S8(127)),
                ("u64", json!(u64::MAX), Val::U64(u64::MAX)),
                ("u64", json!(0), Val::U64(0)),
                ("s64", json!(i64::MIN), Val::S64(i64::MIN)),
                ("s64", json!(i64::MAX), Val::S64(i64::MAX)),
                ("s64", json!(-1e3), Val::S64(-1000)),
                ("u16", json!(65535), Val::U16(65535)),
                ("s32", json!(-2147483648i64), Val::S32(i32::MIN)),
            ];
            for (name, v, want) in ok {
                assert_eq!(
                    from_json(&param(&params, name), &v, name),
                    Ok(want),
                    "{name} {v}"
                );
            }
            let bad = [
                ("u8", json!(256), "expected u8 (0..=255), got 256"),
                ("u8", json!(300), "expected u8 (0..=255), got 300"),
                ("u8", json!(-1), "expected u8 (0..=255), got -1"),
                ("u8", json!(1.5), "expected u8 (0..=255), got 1.5"),
                (
                    "u8",
                    json!("5"),
                    "expected u8 (0..=255), got the string \"5\"",
                ),
                ("s8", json!(-129), "expected s8 (-128..=127), got -129"),
                ("s8", json!(128), "expected s8 (-128..=127), got 128"),
                (
                    "u64",
                    json!(-1),
                    "expected u64 (0..=18446744073709551615), got -1",
                ),
                (
                    "u64",
                    json!(18446744073709551616.0),
                    "expected u64 (0..=18446744073709551615), got 1.8446744073709552e+19",
                ),
                (
                    "s64",
                    json!(9223372036854775808u64),
                    "expected s64 (-9223372036854775808..=9223372036854775807), got 9223372036854775808",
                ),
                (
                    "s64",
                    json!(-9223372036854777856.0),
                    "expected s64 (-9223372036854775808..=9223372036854775807), got -9.223372036854778e+18",
                ),
                (
                    "u32",
                    json!(1e300),
                    "expected u32 (0..=4294967295), got 1e+300",
                ),
                (
                    "u32",
                    json!(null),
                    "expected u32 (0..=4294967295), got null",
                ),
            ];
            for (name, v, message) in bad {
                assert_eq!(
                    from_json(&param(&params, name), &v, name),
                    Err(ArgError {
                        path: name.into(),
                        message: message.into()
                    }),
                    "{name} {v}"
                );
            }
        }

        #[test]
        fn missing_unknown_and_non_object_arguments() {
            let params = all();
            let mut args = full_args();
            args.as_object_mut().unwrap().remove("text");
            assert_eq!(
                args_from_json(&params, &args),
                Err(ArgError {
                    path: "text".into(),
                    message: "missing (expected string)".into()
                })
            );

            let mut args = full_args();
            args["opts"].as_object_mut().unwrap().remove("at");
            assert_eq!(
                args_from_json(&params, &args),
                Err(ArgError {
                    path: "opts.at".into(),
                    message: "missing (expected record { x: s32, y: s32 })".into()
                })
            );

            let mut args = full_args();
            args["txt"] = json!("typo");
            let err = args_from_json(&params, &args).unwrap_err();
            assert_eq!(err.path, "txt");
            assert!(
                err.message
                    .starts_with("unknown argument (accepted: b, s8, u8, "),
                "{}",
                err.message
            );
            assert!(
                err.message.ends_with(", shapes, nested)"),
                "{}",
                err.message
            );

            let mut args = full_args();
            args[format!("{}\n", "k".repeat(100))] = json!(1);
            let err = args_from_json(&params, &args).unwrap_err();
            assert_eq!(
                err.path,
                format!("{}...", "k".repeat(64)),
                "long keys are cut"
            );
            let mut args = full_args();
            args["bad\nkey"] = json!(1);
            let err = args_from_json(&params, &args).unwrap_err();
            assert_eq!(err.path, "bad\\nkey", "control characters are escaped");

            let mut args = full_args();
            args["opts"]["limt"] = json!(1);
            assert_eq!(
                args_from_json(&params, &args),
                Err(ArgError {
                    path: "opts.limt".into(),
                    message: "unknown field (expected one of: limit, query, tags, at)".into()
                })
            );

            assert_eq!(
                args_from_json(&params, &json!([1, 2])),
                Err(ArgError {
                    path: "$".into(),
                    message:
                        "the arguments must be a JSON object keyed by parameter name, got an array"
                            .into()
                })
            );
            assert!(
                !args_from_json(&params, &json!([1]))
                    .unwrap_err()
                    .to_string()
                    .contains('$'),
                "the arguments object itself has no path to show"
            );

            let none = func_params(WAT, "none");
            assert!(none.is_empty());
            assert_eq!(args_from_json(&none, &Value::Null), Ok(vec![]));
            assert_eq!(args_from_json(&none, &json!({})), Ok(vec![]));
            assert_eq!(
                args_from_json(&none, &json!({"x": 1})),
                Err(ArgError {
                    path: "x".into(),
                    message: "unknown argument (this function takes no arguments)".into()
                })
            );
            // Found by fuzzing (json_to_wit): an empty key once gave an empty path.
            let e = args_from_json(&none, &json!({"": 1})).unwrap_err();
            assert_eq!(e.path, "\"\"");
            assert!(
                e.to_string()
                    .starts_with("argument `\"\"`: unknown argument"),
                "{e}"
            );
            // `null` means "no arguments", which still leaves required ones missing.
            assert_eq!(args_from_json(&params, &Value::Null).unwrap_err().path, "b");
        }

        #[test]
        fn resources_cannot_be_passed() {
            let handles = func_params(WAT, "handles");
            for (name, ty) in &handles {
                assert_eq!(
                    from_json(ty, &json!(1), name),
                    Err(ArgError {
                        path: name.clone(),
                        message: "resources/streams cannot be passed as JSON".into()
                    })
                );
            }
            let names: Vec<_> = handles.iter().map(|(_, t)| type_name(t)).collect();
            assert_eq!(names, ["own<resource>", "borrow<resource>"]);
        }

        #[test]
        fn deep_nesting_is_bounded() {
            // Component validation caps type nesting at 100 levels, so the deepest
            // legal type converts fine under the 128-level limit.
            let ty = nested_lists(99);
            let v = nested_json(99);
            let val = from_json(&ty, &v, "deep").expect("99 levels are fine");
            assert_eq!(to_json(val), v);

            // JSON deeper than its type fails on the type mismatch, without
            // following the JSON any further.
            let shallow = nested_lists(3);
            let err = from_json(&shallow, &nested_json(1_000), "deep").unwrap_err();
            assert_eq!(err.path, "deep[0][0][0]");
            assert_eq!(err.message, "expected u8 (0..=255), got an array");

            // The limit itself, exercised with a lower bound than MAX_DEPTH since
            // no valid type reaches 128 levels.
            let ty = nested_lists(20);
            let limits = Limits::new(10, usize::MAX);
            let limited = |depth| convert(&ty, &nested_json(depth), &Path::root("deep", &limits));
            let err = limited(20).unwrap_err().into_arg_error();
            assert_eq!(err.message, "nested deeper than 10 levels");
            assert_eq!(err.path, format!("deep{}", "[0]".repeat(10)));
            let ty9 = nested_lists(9);
            assert!(convert(&ty9, &nested_json(9), &Path::root("deep", &limits)).is_ok());
            assert_eq!(MAX_DEPTH, 128);
        }
    }

    mod byte_lists {
        use super::*;

        fn u8s(bytes: &[u8]) -> Val {
            Val::List(bytes.iter().map(|&b| Val::U8(b)).collect())
        }

        #[test]
        fn base64_text_is_the_same_bytes_as_the_array() {
            let params = all();
            let ty = param(&params, "bytes");
            let from_text = from_json(&ty, &json!("AH//"), "bytes").unwrap();
            assert_eq!(from_text, u8s(&[0, 127, 255]));
            assert_eq!(
                from_text,
                from_json(&ty, &json!([0, 127, 255]), "bytes").unwrap()
            );
            // Results are written as arrays whichever form came in.
            assert_eq!(to_json(from_text), json!([0, 127, 255]));
            assert_eq!(from_json(&ty, &json!(""), "bytes"), Ok(u8s(&[])));

            let mut args = full_args();
            args["bytes"] = json!("AH//");
            let vals = args_from_json(&params, &args).unwrap();
            assert_eq!(args_to_json(&params, &vals), full_args());
            // Only `list<u8>` reads text: a `list<u32>` or a `u8` does not.
            let e = err_of(&param(&params, "items"), json!("AH//"), "items");
            assert_eq!(e.message, "expected list<u32>, got the string \"AH//\"");
            let e = err_of(&param(&params, "u8"), json!("AA=="), "u8");
            assert_eq!(e.message, "expected u8 (0..=255), got the string \"AA==\"");
        }

        #[test]
        fn malformed_base64_names_the_argument_and_the_fix() {
            let params = all();
            for (text, says) in [
                ("AH/", "its length 3 is not a multiple of 4"),
                ("AH_-", "`_` at offset 2 is URL-safe base64"),
                ("AH//\n", "its length 5 is not a multiple of 4"),
                ("AH/ ", "a space at offset 3"),
                ("A===", "padding `=` at offset 1 is not at the end"),
            ] {
                let mut args = full_args();
                args["opts"]["tags"] = json!([]);
                args["bytes"] = json!(text);
                let e = args_from_json(&params, &args).expect_err(text);
                assert_eq!(e.path, "bytes", "{text:?}");
                assert!(
                    e.message.starts_with("invalid base64 for list<u8>: ")
                        && e.message.contains(says),
                    "{text:?}: {}",
                    e.message
                );
                assert!(
                    e.to_string()
                        .starts_with("argument `bytes`: invalid base64"),
                    "{e}"
                );
            }
        }

        fn bytes_fn() -> Vec<(String, Type)> {
            func_params(
                r#"(component
                    (type $r' (record (field "data" (list u8))))
                    (import "r" (type $r (eq $r')))
                    (type $f (func
                        (param "a" (list u8))
                        (param "b" (option (list u8)))
                        (param "rec" (list $r))
                        (param "words" (list string))))
                    (import "f" (func (type $f))))"#,
                "f",
            )
        }

        fn too_many(e: ArgsError) -> TooManyBytes {
            match e {
                ArgsError::TooManyBytes(t) => t,
                other => panic!("expected too many bytes, got {other:?}"),
            }
        }

        #[test]
        fn byte_lists_of_one_call_are_counted_together_against_the_limit() {
            let params = bytes_fn();
            // 3 + 2 + 1 + 2 = 8 bytes, in both forms and nested; strings do not count.
            let args = json!({
                "a": "AAEC",
                "b": [7, 8],
                "rec": [{"data": "CQ=="}, {"data": [10, 11]}],
                "words": ["long words are not bytes"],
            });
            assert!(args_from_json_within(&params, &args, 8).is_ok());
            let e = too_many(args_from_json_within(&params, &args, 7).unwrap_err());
            assert_eq!(
                e,
                TooManyBytes {
                    path: "rec[1].data".into(),
                    bytes: 8,
                    limit: 7
                }
            );
            let e = too_many(args_from_json_within(&params, &args, 2).unwrap_err());
            assert_eq!((e.path.as_str(), e.bytes), ("a", 3));
            // Without a limit, any size converts.
            assert!(args_from_json(&params, &args).is_ok());
        }

        #[test]
        fn text_past_the_limit_is_refused_by_its_length_before_decoding() {
            let params = bytes_fn();
            // 4 MiB + 3 bytes of text whose only flaw is deep inside: the
            // size is known from the length, so the flaw is never reached.
            let mut text = "A".repeat(4 << 20);
            text.replace_range(3 << 20..(3 << 20) + 1, "!");
            text.push_str("AAAA");
            let args = json!({ "a": text, "rec": [], "words": [] });
            let e = too_many(args_from_json_within(&params, &args, 3 << 20).unwrap_err());
            assert_eq!(
                e,
                TooManyBytes {
                    path: "a".into(),
                    bytes: 3 << 20 | 3,
                    limit: 3 << 20
                }
            );
            assert!(e.to_string().contains("send less per call"), "{e}");
            // Under a larger limit the flaw is what is wrong.
            let e = args_from_json_within(&params, &args, 4 << 20).unwrap_err();
            let ArgsError::Invalid(e) = e else {
                panic!("expected invalid base64, got {e:?}")
            };
            assert_eq!(e.path, "a");
            assert!(
                e.message.contains(&format!("`!` at offset {}", 3 << 20)),
                "{e}"
            );
            // A bad length is reported at once, whatever the limit.
            let args = json!({ "a": "A".repeat(4_000_001), "rec": [], "words": [] });
            assert!(matches!(
                args_from_json_within(&params, &args, 1),
                Err(ArgsError::Invalid(_))
            ));
        }
    }

    #[test]
    fn floats_and_chars() {
        let params = all();
        let (f32t, f64t, ct) = (
            param(&params, "f32"),
            param(&params, "f64"),
            param(&params, "c"),
        );
        assert_eq!(from_json(&f64t, &json!(3), "f"), Ok(Val::Float64(3.0)));
        assert_eq!(from_json(&f32t, &json!(-2), "f"), Ok(Val::Float32(-2.0)));
        assert_eq!(to_json(Val::Float32(0.1)), json!(0.1));
        assert_eq!(to_json(Val::Float64(f64::NAN)), Value::Null);
        assert_eq!(to_json(Val::Float64(f64::INFINITY)), Value::Null);
        assert_eq!(to_json(Val::Float32(f32::NEG_INFINITY)), Value::Null);
        assert_eq!(
            err_of(&f32t, json!(1e39), "f").message,
            "expected f32, got 1e+39 which is out of range"
        );
        assert_eq!(
            err_of(&f64t, json!("1"), "f").message,
            "expected f64, got the string \"1\""
        );
        assert_eq!(from_json(&ct, &json!("😀"), "c"), Ok(Val::Char('😀')));
        assert_eq!(err_of(&ct, json!(7), "c").message, "expected char, got 7");
    }

    #[test]
    fn options_may_be_missing_or_null() {
        let params = all();
        let mut args = full_args();
        let obj = args.as_object_mut().unwrap();
        obj.remove("maybe");
        obj.remove("nested");
        obj["opts"].as_object_mut().unwrap().remove("query");
        let vals = args_from_json(&params, &args).unwrap();
        let out = args_to_json(&params, &vals);
        assert_eq!(out["maybe"], Value::Null);
        assert_eq!(out["nested"], Value::Null);
        assert_eq!(out["opts"]["query"], Value::Null);

        let maybe = param(&params, "maybe");
        assert_eq!(
            from_json(&maybe, &Value::Null, "maybe"),
            Ok(Val::Option(None))
        );
        assert_eq!(
            from_json(&maybe, &json!(5), "maybe"),
            Ok(Val::Option(Some(Box::new(Val::U32(5)))))
        );
        assert_eq!(
            err_of(&maybe, json!(-5), "maybe"),
            ArgError {
                path: "maybe".into(),
                message: "expected u32 (0..=4294967295), got -5".into()
            }
        );
    }

    #[test]
    fn variants_with_and_without_payload() {
        let shape = param(&all(), "shape");
        let cases = [
            (json!("empty"), Val::Variant("empty".into(), None)),
            (
                json!({"circle": 2}),
                Val::Variant("circle".into(), Some(Box::new(Val::Float64(2.0)))),
            ),
        ];
        for (v, want) in cases {
            assert_eq!(from_json(&shape, &v, "shape").as_ref(), Ok(&want));
        }
        assert_eq!(to_json(Val::Variant("empty".into(), None)), json!("empty"));
        let bad = [
            (
                json!("circle"),
                "case `circle` needs a payload: use {\"circle\": ...}",
            ),
            (
                json!({"empty": null}),
                "case `empty` has no payload: pass it as the string \"empty\"",
            ),
            (
                json!("hexagon"),
                "unknown case `hexagon` (expected one of: circle, rect, empty)",
            ),
            (
                json!({"hexagon": 1}),
                "unknown case `hexagon` (expected one of: circle, rect, empty)",
            ),
            (
                json!({"circle": 1, "rect": [1, 2]}),
                "expected a case name or an object {\"case\": payload} with one key, got an object",
            ),
            (
                json!(3),
                "expected a case name or an object {\"case\": payload} with one key, got 3",
            ),
        ];
        for (v, message) in bad {
            assert_eq!(
                from_json(&shape, &v, "shape"),
                Err(ArgError {
                    path: "shape".into(),
                    message: message.into()
                }),
                "{v}"
            );
        }
    }

    #[test]
    fn flags_and_enums() {
        let params = all();
        let perms = param(&params, "perms");
        assert_eq!(from_json(&perms, &json!([]), "p"), Ok(Val::Flags(vec![])));
        assert_eq!(
            from_json(&perms, &json!(["write", "read"]), "p"),
            Ok(Val::Flags(vec!["write".into(), "read".into()]))
        );
        assert_eq!(
            err_of(&perms, json!("read"), "p").message,
            "expected flags { read, write, exec }, got the string \"read\""
        );
        let color = param(&params, "color");
        assert_eq!(
            err_of(&color, json!(0), "color").message,
            "expected enum { red, green, blue }, got 0"
        );
    }

    #[test]
    fn type_names() {
        let params = all();
        let want = [
            ("b", "bool"),
            ("s64", "s64"),
            ("f32", "f32"),
            ("c", "char"),
            ("bytes", "list<u8>"),
            ("pair", "tuple<u8, string>"),
            (
                "opts",
                "record { limit: u32, query: option<string>, tags: list<string>, at: record { x: s32, y: s32 } }",
            ),
            (
                "shape",
                "variant { circle(f64), rect(tuple<u32, u32>), empty }",
            ),
            ("color", "enum { red, green, blue }"),
            ("perms", "flags { read, write, exec }"),
            ("maybe", "option<u32>"),
            ("outcome", "result<u32, string>"),
            ("done", "result"),
            ("failed", "result<_, string>"),
        ];
        for (name, expected) in want {
            assert_eq!(type_name(&param(&params, name)), expected, "{name}");
        }
        let ok_only = func_params(
            "(component (type $f (func (param \"r\" (result u8)))) (import \"f\" (func (type $f))))",
            "f",
        );
        assert_eq!(type_name(&ok_only[0].1), "result<u8>");
    }

    /// Builds `list<list<...<u8>>>` nested `depth` times as one function parameter.
    fn nested_lists(depth: usize) -> Type {
        // One type definition per level: the text parser limits inline nesting.
        let mut wat = String::from("(component (type $t0 u8)");
        for i in 1..=depth {
            let _ = write!(wat, " (type $t{i} (list $t{}))", i - 1);
        }
        let _ = write!(
            wat,
            " (type $f (func (param \"deep\" $t{depth}))) (import \"f\" (func (type $f))))"
        );
        func_params(&wat, "f").remove(0).1
    }

    fn nested_json(depth: usize) -> Value {
        (0..depth).fold(json!(1), |v, _| json!([v]))
    }

    #[test]
    fn outputs_for_host_only_values() {
        assert_eq!(to_json(Val::Result(Ok(None))), json!({"ok": null}));
        assert_eq!(to_json(Val::Result(Err(None))), json!({"err": null}));
        assert_eq!(
            to_json(Val::Map(vec![(Val::String("a".into()), Val::U8(1))])),
            json!([["a", 1]])
        );
        assert_eq!(
            to_json(Val::FixedLengthList(vec![Val::U8(1), Val::U8(2)])),
            json!([1, 2])
        );
    }

    /// A tiny deterministic generator (xorshift64*) for property-style tests.
    pub(crate) struct Rng(pub(crate) u64);

    impl Rng {
        pub(crate) fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        pub(crate) fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }

        fn int(&mut self, min: i128, max: i128) -> i128 {
            // Favour the edges, where range bugs live.
            match self.below(4) {
                0 => min,
                1 => max,
                _ => min + i128::from(self.next()) % (max - min + 1),
            }
        }
    }

    pub(crate) fn gen_json(ty: &Type, rng: &mut Rng) -> Value {
        let int = |rng: &mut Rng, min: i128, max: i128| {
            let n = rng.int(min, max);
            if n < 0 {
                json!(n as i64)
            } else {
                json!(n as u64)
            }
        };
        match ty {
            Type::Bool => json!(rng.below(2) == 1),
            Type::S8 => int(rng, i8::MIN.into(), i8::MAX.into()),
            Type::U8 => int(rng, 0, u8::MAX.into()),
            Type::S16 => int(rng, i16::MIN.into(), i16::MAX.into()),
            Type::U16 => int(rng, 0, u16::MAX.into()),
            Type::S32 => int(rng, i32::MIN.into(), i32::MAX.into()),
            Type::U32 => int(rng, 0, u32::MAX.into()),
            Type::S64 => int(rng, i64::MIN.into(), i64::MAX.into()),
            Type::U64 => int(rng, 0, u64::MAX.into()),
            Type::Float32 => {
                let f = loop {
                    let f = f32::from_bits(rng.next() as u32);
                    if f.is_finite() {
                        break f;
                    }
                };
                // The shortest decimal form, as `to_json` writes it.
                Value::Number(Number::from_f64(f.to_string().parse().unwrap()).unwrap())
            }
            Type::Float64 => {
                let f = loop {
                    let f = f64::from_bits(rng.next());
                    if f.is_finite() {
                        break f;
                    }
                };
                Value::Number(Number::from_f64(f).unwrap())
            }
            Type::Char => {
                let pool = [
                    'a', 'Z', '0', ' ', '"', '\\', '\n', 'é', '中', '😀', '\u{0}',
                ];
                json!(pool[rng.below(pool.len() as u64) as usize].to_string())
            }
            Type::String => {
                let pool = [
                    "",
                    "a",
                    "hello world",
                    "quote\"d",
                    "multi\nline",
                    "ünïcødé 😀",
                ];
                json!(pool[rng.below(pool.len() as u64) as usize])
            }
            Type::List(l) => {
                let n = rng.below(4);
                Value::Array((0..n).map(|_| gen_json(&l.ty(), rng)).collect())
            }
            Type::Tuple(t) => Value::Array(t.types().map(|ty| gen_json(&ty, rng)).collect()),
            Type::Record(r) => Value::Object(
                r.fields()
                    .map(|f| (f.name.to_string(), gen_json(&f.ty, rng)))
                    .collect(),
            ),
            Type::Variant(v) => {
                let cases: Vec<_> = v.cases().collect();
                let case = &cases[rng.below(cases.len() as u64) as usize];
                match &case.ty {
                    None => json!(case.name),
                    Some(ty) => tagged(case.name, gen_json(ty, rng)),
                }
            }
            Type::Enum(e) => {
                let names: Vec<_> = e.names().collect();
                json!(names[rng.below(names.len() as u64) as usize])
            }
            Type::Option(o) => {
                if rng.below(3) == 0 {
                    Value::Null
                } else {
                    gen_json(&o.ty(), rng)
                }
            }
            Type::Result(r) => {
                let (side, ty) = if rng.below(2) == 0 {
                    ("ok", r.ok())
                } else {
                    ("err", r.err())
                };
                tagged(side, ty.map_or(Value::Null, |ty| gen_json(&ty, rng)))
            }
            Type::Flags(f) => {
                let mut names: Vec<_> = f.names().filter(|_| rng.below(2) == 0).collect();
                if names.len() > 1 && rng.below(2) == 0 {
                    names.reverse();
                }
                json!(names)
            }
            other => panic!("no generator for {}", type_name(other)),
        }
    }

    #[test]
    fn generated_values_round_trip() {
        let params = all();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut checked = 0;
        for round in 0..300 {
            // Every parameter once per round, plus the whole argument object.
            let mut args = JsonMap::new();
            for (name, ty) in &params {
                let v = gen_json(ty, &mut rng);
                let val = from_json(ty, &v, name)
                    .unwrap_or_else(|e| panic!("round {round}: {v} rejected: {e}"));
                assert_eq!(to_json(val), v, "round {round}, `{name}`");
                args.insert(name.clone(), v);
                checked += 1;
            }
            let args = Value::Object(args);
            let vals = args_from_json(&params, &args).expect("generated args convert");
            assert_eq!(args_to_json(&params, &vals), args, "round {round}");
        }
        assert_eq!(checked, 300 * params.len());
    }
}
