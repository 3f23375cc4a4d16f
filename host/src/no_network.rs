//! Refusing stubs for `wasi:sockets` and `wasi:http`: Python and JavaScript
//! toolchains import them even when a tool never touches the network. Every
//! function is answered here, in the host, by code that holds no OS capability:
//! a socket call that can fail fails (`access-denied`), building an HTTP request
//! succeeds in memory and keeps nothing, sending it fails (`HTTP-request-denied`),
//! and a constructor hands back an inert handle (wasmtime caps a store's handles).
//! wasmtime-wasi's socket and HTTP implementations are never linked.

use wasmtime::component::types::{ComponentFunc, ComponentItem, ResultType, Type};
use wasmtime::component::{
    Component, Linker, LinkerInstance, Resource, ResourceAny, ResourceType, Val,
};
use wasmtime::{AsContextMut, Engine, StoreContextMut, bail, format_err};
use wasmtime_wasi::WasiView;
use wasmtime_wasi::p2::pipe::SinkOutputStream;
use wasmtime_wasi_io::streams::DynOutputStream;

/// The interfaces answered by refusing stubs (package/interface, no version).
/// Only their 0.2 releases: 0.3 is a different, asynchronous API.
pub const STUBBED: &[&str] = &[
    "wasi:sockets/network",
    "wasi:sockets/instance-network",
    "wasi:sockets/tcp",
    "wasi:sockets/tcp-create-socket",
    "wasi:sockets/udp",
    "wasi:sockets/udp-create-socket",
    "wasi:sockets/ip-name-lookup",
    "wasi:http/types",
    "wasi:http/outgoing-handler",
];

/// What a guest gets from a stubbed interface, in plain words.
pub const MEANING: &str = "socket imports are present but refuse every call; no network exists";

/// Whether the import named `name` (`wasi:sockets/tcp@0.2.9`) is answered
/// by a refusing stub.
pub fn answers(name: &str) -> bool {
    name.split_once('@')
        .is_some_and(|(base, version)| STUBBED.contains(&base) && version.starts_with("0.2."))
}

/// The error cases a refusal picks, first match wins: the case that says
/// "not allowed" in `wasi:sockets` and in `wasi:http`.
const DENIALS: &[&str] = &["access-denied", "HTTP-request-denied"];

/// The one host type behind every stubbed resource (a network, a socket, a
/// header map, a request): a handle with nothing behind it.
struct Inert;

/// A copy of `base` with a refusing stub for every function and resource of
/// `component`'s stubbed imports, or `None` when it imports none.
pub fn linker_for<T: WasiView + Send + 'static>(
    base: &Linker<T>,
    engine: &Engine,
    component: &Component,
) -> wasmtime::Result<Option<Linker<T>>> {
    let imports: Vec<(String, ComponentItem)> = component
        .component_type()
        .imports(engine)
        .map(|(name, item)| (name.to_string(), item.ty))
        .collect();
    if !imports.iter().any(|(name, _)| answers(name)) {
        return Ok(None);
    }
    let mut linker = base.clone();
    // A resource that an interface `use`s from an earlier import is the same
    // type there, already bound; only resources seen first are defined.
    let mut seen: Vec<ResourceType> = Vec::new();
    for (name, item) in &imports {
        let ComponentItem::ComponentInstance(instance) = item else {
            continue;
        };
        let mut target = answers(name).then(|| linker.instance(name)).transpose()?;
        for (export, ty) in instance.exports(engine) {
            match ty.ty {
                ComponentItem::Resource(r) => {
                    if seen.contains(&r) {
                        continue;
                    }
                    seen.push(r);
                    if let Some(target) = target.as_mut() {
                        target.resource(export, ResourceType::host::<Inert>(), |_, _| Ok(()))?;
                    }
                }
                ComponentItem::ComponentFunc(_) => {
                    if let Some(target) = target.as_mut() {
                        define_refusal(target, name, export)?;
                    }
                }
                _ => {}
            }
        }
    }
    Ok(Some(linker))
}

/// Defines `function` of `interface` as a refusal: the handles it is given
/// are let go, and each result is the refusal for its type.
fn define_refusal<T: WasiView + Send + 'static>(
    target: &mut LinkerInstance<'_, T>,
    interface: &str,
    function: &str,
) -> wasmtime::Result<()> {
    let qualified: std::sync::Arc<str> = format!("{interface}#{function}").into();
    // Building a request is bookkeeping in memory: it succeeds (and keeps
    // nothing), so that the refusal comes where a request would leave.
    let building = interface.starts_with("wasi:http/types@");
    target.func_new_async(
        function,
        move |mut store, ty: ComponentFunc, params, results| {
            let qualified = qualified.clone();
            Box::new(async move {
                // An owned handle is destroyed; a borrowed one is given back, as
                // wasmtime requires of a host function before it returns.
                let mut handles = Vec::new();
                params.iter().for_each(|p| handles_in(p, &mut handles));
                for h in handles {
                    h.resource_drop_async(&mut store)
                        .await
                        .map_err(|e| format_err!("{qualified}: dropping a handle: {e}"))?;
                }
                for (slot, ty) in results.iter_mut().zip(ty.results()) {
                    *slot = answer(&mut store, &ty, building)
                        .map_err(|e| format_err!("{qualified}: {e}; no network exists"))?;
                }
                Ok(())
            })
        },
    )?;
    Ok(())
}

/// Every handle inside `value`: a guest giving a stub a header map or a
/// request leaves nothing behind in the host.
fn handles_in(value: &Val, out: &mut Vec<ResourceAny>) {
    match value {
        Val::Resource(r) => out.push(*r),
        Val::List(vs) | Val::Tuple(vs) | Val::FixedLengthList(vs) => {
            vs.iter().for_each(|v| handles_in(v, out))
        }
        Val::Record(fields) => fields.iter().for_each(|(_, v)| handles_in(v, out)),
        Val::Variant(_, Some(v)) | Val::Option(Some(v)) => handles_in(v, out),
        Val::Result(Ok(Some(v)) | Err(Some(v))) => handles_in(v, out),
        Val::Map(pairs) => pairs.iter().for_each(|(k, v)| {
            handles_in(k, out);
            handles_in(v, out)
        }),
        _ => {}
    }
}

/// What a stub answers for a result of type `ty`: the error case of a
/// `result` (its success when `building` and the success can be made: a unit
/// or an inert handle), an inert handle for a stubbed resource, else an empty
/// value.
fn answer<T: WasiView>(
    store: &mut StoreContextMut<'_, T>,
    ty: &Type,
    building: bool,
) -> wasmtime::Result<Val> {
    match ty {
        Type::Result(r) if building && r.ok().is_none_or(|ok| makeable(&ok)) => {
            Ok(Val::Result(Ok(match r.ok() {
                Some(ok) => Some(Box::new(empty(store, &ok)?)),
                None => None,
            })))
        }
        Type::Result(r) => refusal(store, r),
        other => empty(store, other),
    }
}

/// Whether `ty` is a handle this module makes: an inert one, or an output
/// stream that swallows what is written to it (a request body going nowhere).
fn makeable(ty: &Type) -> bool {
    matches!(ty, Type::Own(r) if *r == ResourceType::host::<Inert>() || *r == ResourceType::host::<DynOutputStream>())
}

/// The error case of a `result`.
fn refusal<T: WasiView>(
    store: &mut StoreContextMut<'_, T>,
    r: &ResultType,
) -> wasmtime::Result<Val> {
    Ok(Val::Result(Err(match r.err() {
        Some(e) => Some(Box::new(denial(store, &e)?)),
        None => None,
    })))
}

/// The error value that says "not allowed": the first [`DENIALS`] case of an
/// enum or variant, else its first case.
fn denial<T: WasiView>(store: &mut StoreContextMut<'_, T>, ty: &Type) -> wasmtime::Result<Val> {
    match ty {
        Type::Enum(e) => {
            let names: Vec<&str> = e.names().collect();
            let pick = DENIALS
                .iter()
                .find(|d| names.contains(d))
                .copied()
                .or(names.first().copied())
                .ok_or_else(|| format_err!("an enum without cases"))?;
            Ok(Val::Enum(pick.to_string()))
        }
        Type::Variant(v) => {
            let cases: Vec<_> = v.cases().collect();
            let case = DENIALS
                .iter()
                .find_map(|d| cases.iter().find(|c| c.name == *d && c.ty.is_none()))
                .or(cases.first())
                .ok_or_else(|| format_err!("a variant without cases"))?;
            let payload = match &case.ty {
                Some(t) => Some(Box::new(empty(store, t)?)),
                None => None,
            };
            Ok(Val::Variant(case.name.to_string(), payload))
        }
        other => empty(store, other),
    }
}

/// The plainest value of `ty`: zero, empty, false, `none`, the first case, an
/// inert handle, a sink. A handle of another type (an input stream, a
/// pollable) cannot be made: the call traps, which only a handle nobody can
/// obtain would reach.
fn empty<T: WasiView>(store: &mut StoreContextMut<'_, T>, ty: &Type) -> wasmtime::Result<Val> {
    Ok(match ty {
        Type::Bool => Val::Bool(false),
        Type::S8 => Val::S8(0),
        Type::U8 => Val::U8(0),
        Type::S16 => Val::S16(0),
        Type::U16 => Val::U16(0),
        Type::S32 => Val::S32(0),
        Type::U32 => Val::U32(0),
        Type::S64 => Val::S64(0),
        Type::U64 => Val::U64(0),
        Type::Float32 => Val::Float32(0.0),
        Type::Float64 => Val::Float64(0.0),
        Type::Char => Val::Char('\0'),
        Type::String => Val::String(String::new()),
        Type::List(_) => Val::List(Vec::new()),
        Type::Map(_) => Val::Map(Vec::new()),
        Type::Flags(_) => Val::Flags(Vec::new()),
        Type::Option(_) => Val::Option(None),
        Type::Record(r) => Val::Record(
            r.fields()
                .map(|f| Ok((f.name.to_string(), empty(store, &f.ty)?)))
                .collect::<wasmtime::Result<_>>()?,
        ),
        Type::Tuple(t) => Val::Tuple(
            t.types()
                .map(|t| empty(store, &t))
                .collect::<wasmtime::Result<_>>()?,
        ),
        Type::FixedLengthList(l) => Val::FixedLengthList(
            (0..l.len())
                .map(|_| empty(store, &l.ty()))
                .collect::<wasmtime::Result<_>>()?,
        ),
        Type::Enum(_) | Type::Variant(_) => denial(store, ty)?,
        Type::Result(r) => refusal(store, r)?,
        Type::Own(r) if *r == ResourceType::host::<Inert>() => Val::Resource(
            ResourceAny::try_from_resource(Resource::<Inert>::new_own(0), store.as_context_mut())?,
        ),
        Type::Own(r) if *r == ResourceType::host::<DynOutputStream>() => {
            let sink: DynOutputStream = Box::new(SinkOutputStream);
            let sink = store.data_mut().ctx().table.push(sink)?;
            Val::Resource(ResourceAny::try_from_resource(
                sink,
                store.as_context_mut(),
            )?)
        }
        other => bail!("cannot answer a {other:?}"),
    })
}
