//! What a component's bytes say before it is compiled: its top-level imports
//! (for the world check), the names of its exported functions, and how many
//! core instances, memories and tables one job of it creates (for the
//! per-job pool limits). Read with `wasmparser` in one pass, in milliseconds
//! even for a large component, so a refused tool never costs a compile.
//!
//! The counts are a lower bound of what wasmtime counts when it compiles
//! (`validate_component` of its pooling allocator): each `instantiate` of a
//! core module adds one core instance and that module's defined memories and
//! tables, each `instantiate` of a nested component adds that component's
//! counts. What the bytes cannot tell (an imported module or component) counts
//! zero, and wasmtime may add adapter instances, so a component refused here
//! is certainly refused by wasmtime; one that passes is still checked there.

use wasmparser::{
    ComponentAlias, ComponentExternalKind, ComponentInstance, ComponentOuterAliasKind,
    ComponentTypeRef, Encoding, Instance, Parser, Payload,
};

use crate::engine::{MEMORIES_PER_JOB, TABLES_PER_JOB};

/// What one job of a component (or of a nested one) creates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Core module instances.
    pub core_instances: u64,
    /// Linear memories defined by those instances.
    pub memories: u64,
    /// Tables defined by those instances.
    pub tables: u64,
}

impl Counts {
    fn add(&mut self, other: Counts) {
        self.core_instances = self.core_instances.saturating_add(other.core_instances);
        self.memories = self.memories.saturating_add(other.memories);
        self.tables = self.tables.saturating_add(other.tables);
    }

    /// Why these counts are over the per-job limits of `engine.rs` (with
    /// `core_instances` from the host's pool), in the words wasmtime uses when
    /// it finds the same at compile time.
    pub fn over_limits(&self, core_instances: u32) -> Option<String> {
        let over = |n: u64, max: u32, what: &str| {
            (n > u64::from(max)).then(|| {
                format!(
                    "The component transitively contains {n} {what}, which exceeds the \
                     configured maximum of {max} in the pooling allocator"
                )
            })
        };
        over(self.core_instances, core_instances, "core module instances")
            .or_else(|| over(self.memories, MEMORIES_PER_JOB, "Wasm linear memories"))
            .or_else(|| over(self.tables, TABLES_PER_JOB, "tables"))
    }
}

/// A component as its bytes describe it, before compiling.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Shape {
    /// Top-level imports in order: the name, and whether it is an instance
    /// (an interface) rather than a function, type, module or component.
    pub imports: Vec<(String, bool)>,
    /// The names of its top-level exported functions, in order.
    pub functions: Vec<String>,
    /// What one job of it creates.
    pub counts: Counts,
}

/// One component or core module being read; nested ones stack up.
#[derive(Default)]
struct Frame {
    module: bool,
    /// The core module index space: what instantiating each one creates.
    modules: Vec<Counts>,
    /// The component index space: what instantiating each one creates.
    components: Vec<Counts>,
    /// What this component creates when instantiated (for a core module:
    /// its defined memories and tables; its instance is counted by whoever
    /// instantiates it).
    counts: Counts,
}

/// Why the bytes could not be read as a component.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// A core module, or no WebAssembly at all.
    #[error("not a WebAssembly component")]
    NotAComponent,
    /// Malformed bytes.
    #[error("{0}")]
    Malformed(#[from] wasmparser::BinaryReaderError),
}

/// Reads `bytes`; `Err` when they are not a component or are malformed (the
/// compiler then says why, as it always did).
pub fn read(bytes: &[u8]) -> Result<Shape, ReadError> {
    let mut shape = Shape::default();
    let mut stack: Vec<Frame> = Vec::new();
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload?;
        let depth = stack.len();
        match payload {
            Payload::Version { encoding, .. } => {
                if depth == 0 && encoding != Encoding::Component {
                    return Err(not_a_component());
                }
                stack.push(Frame {
                    module: encoding == Encoding::Module,
                    ..Frame::default()
                });
            }
            Payload::End(_) => {
                let done = stack.pop().ok_or_else(not_a_component)?;
                match stack.last_mut() {
                    Some(parent) if done.module => parent.modules.push(done.counts),
                    Some(parent) => parent.components.push(done.counts),
                    None => shape.counts = done.counts,
                }
            }
            Payload::MemorySection(s) => top(&mut stack)?.counts.memories += u64::from(s.count()),
            Payload::TableSection(s) => top(&mut stack)?.counts.tables += u64::from(s.count()),
            Payload::ComponentImportSection(s) => {
                for import in s {
                    let import = import?;
                    let frame = top(&mut stack)?;
                    add_entity(frame, import.ty);
                    // A type import bound to a type the component defines
                    // (`(import "counts" (type (eq 0)))`, how wit-component
                    // names exported types) asks nothing of the host, and
                    // wasmtime does not list it among the imports.
                    let named_type = matches!(
                        import.ty,
                        ComponentTypeRef::Type(wasmparser::TypeBounds::Eq(_))
                    );
                    if depth == 1 && !named_type {
                        let is_instance = matches!(import.ty, ComponentTypeRef::Instance(_));
                        shape
                            .imports
                            .push((import.name.name.to_string(), is_instance));
                    }
                }
            }
            Payload::ComponentExportSection(s) => {
                for export in s {
                    let export = export?;
                    let frame = top(&mut stack)?;
                    export_entity(frame, export.kind, export.index);
                    if depth == 1 && export.kind == ComponentExternalKind::Func {
                        shape.functions.push(export.name.name.to_string());
                    }
                }
            }
            Payload::ComponentAliasSection(s) => {
                for alias in s {
                    alias_entity(&mut stack, alias?)?;
                }
            }
            Payload::InstanceSection(s) => {
                for instance in s {
                    if let Instance::Instantiate { module_index, .. } = instance? {
                        let frame = top(&mut stack)?;
                        let module = get(&frame.modules, module_index);
                        frame.counts.add(module);
                        frame.counts.core_instances += 1;
                    }
                }
            }
            Payload::ComponentInstanceSection(s) => {
                for instance in s {
                    if let ComponentInstance::Instantiate {
                        component_index, ..
                    } = instance?
                    {
                        let frame = top(&mut stack)?;
                        let component = get(&frame.components, component_index);
                        frame.counts.add(component);
                    }
                }
            }
            _ => {}
        }
    }
    Ok(shape)
}

fn not_a_component() -> ReadError {
    ReadError::NotAComponent
}

fn top(stack: &mut [Frame]) -> Result<&mut Frame, ReadError> {
    stack.last_mut().ok_or_else(not_a_component)
}

/// The counts at `index`, or none when the index is unknown (malformed
/// bytes: the compiler will say so).
fn get(space: &[Counts], index: u32) -> Counts {
    usize::try_from(index)
        .ok()
        .and_then(|i| space.get(i))
        .copied()
        .unwrap_or_default()
}

/// An import adds an item to its index space; an imported module or
/// component counts nothing (its contents are not in these bytes).
fn add_entity(frame: &mut Frame, ty: ComponentTypeRef) {
    match ty {
        ComponentTypeRef::Module(_) => frame.modules.push(Counts::default()),
        ComponentTypeRef::Component(_) => frame.components.push(Counts::default()),
        _ => {}
    }
}

/// An export adds a new index for the item it exports.
fn export_entity(frame: &mut Frame, kind: ComponentExternalKind, index: u32) {
    match kind {
        ComponentExternalKind::Module => {
            let item = get(&frame.modules, index);
            frame.modules.push(item);
        }
        ComponentExternalKind::Component => {
            let item = get(&frame.components, index);
            frame.components.push(item);
        }
        _ => {}
    }
}

/// An alias adds an item: an outer module or component is the one it names;
/// one exported by an instance is unknown here.
fn alias_entity(stack: &mut [Frame], alias: ComponentAlias<'_>) -> Result<(), ReadError> {
    let outer = |stack: &[Frame], count: u32, pick: fn(&Frame) -> &[Counts], index: u32| {
        let up = usize::try_from(count).unwrap_or(usize::MAX);
        stack
            .len()
            .checked_sub(1 + up)
            .map(|i| get(pick(&stack[i]), index))
            .unwrap_or_default()
    };
    match alias {
        ComponentAlias::Outer {
            kind: ComponentOuterAliasKind::CoreModule,
            count,
            index,
        } => {
            let item = outer(stack, count, |f| &f.modules, index);
            top(stack)?.modules.push(item);
        }
        ComponentAlias::Outer {
            kind: ComponentOuterAliasKind::Component,
            count,
            index,
        } => {
            let item = outer(stack, count, |f| &f.components, index);
            top(stack)?.components.push(item);
        }
        ComponentAlias::InstanceExport {
            kind: ComponentExternalKind::Module,
            ..
        } => top(stack)?.modules.push(Counts::default()),
        ComponentAlias::InstanceExport {
            kind: ComponentExternalKind::Component,
            ..
        } => top(stack)?.components.push(Counts::default()),
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(wat: &str) -> Shape {
        read(&wat::parse_str(wat).unwrap()).unwrap()
    }

    #[test]
    fn imports_and_functions_are_read_in_order_with_their_kind() {
        let s = shape(
            r#"(component
                (import "evil:net/raw@1.0.0" (instance))
                (import "f" (func))
                (type $t (record (field "a" u32)))
                (import "t" (type (eq $t)))
                (import "wasi:cli/stdout@0.2.6" (instance))
                (core module $m (func (export "g") (result i32) i32.const 1))
                (core instance $i (instantiate $m))
                (func (export "run") (result u32) (canon lift (core func $i "g")))
                (export "again" (func 1))
            )"#,
        );
        let imports: Vec<(&str, bool)> = s.imports.iter().map(|(n, i)| (n.as_str(), *i)).collect();
        assert_eq!(
            imports,
            [
                ("evil:net/raw@1.0.0", true),
                ("f", false),
                ("wasi:cli/stdout@0.2.6", true)
            ]
        );
        let mut functions = s.functions.clone();
        functions.sort();
        assert_eq!(functions, ["again", "run"]);
    }

    #[test]
    fn each_instantiation_counts_its_modules_memories_and_tables() {
        let s = shape(
            r#"(component
                (core module $m (memory 1) (table 1 funcref) (table 1 funcref))
                (core module $unused (memory 1) (memory 1) (memory 1))
                (core instance (instantiate $m))
                (core instance (instantiate $m))
            )"#,
        );
        assert_eq!(
            s.counts,
            Counts {
                core_instances: 2,
                memories: 2,
                tables: 4
            }
        );
        assert_eq!(
            s.counts.over_limits(crate::engine::CORE_INSTANCES_PER_JOB),
            None
        );
    }

    #[test]
    fn a_nested_component_counts_once_per_instantiation_and_outer_aliases_resolve() {
        let s = shape(
            r#"(component
                (core module $m (memory 1))
                (component $c
                    (alias outer 1 $m (core module $outer))
                    (core instance (instantiate $outer))
                    (core module $n)
                    (core instance (instantiate $n))
                )
                (instance (instantiate $c))
                (instance (instantiate $c))
            )"#,
        );
        assert_eq!(s.counts.core_instances, 4);
        assert_eq!(s.counts.memories, 2);
        // Three instances of $c define three memories: over the 2 a job may have.
        let s = shape(
            r#"(component
                (core module $m (memory 1))
                (component $c (alias outer 1 $m (core module $o)) (core instance (instantiate $o)))
                (instance (instantiate $c))
                (instance (instantiate $c))
                (instance (instantiate $c))
            )"#,
        );
        let why = s
            .counts
            .over_limits(crate::engine::CORE_INSTANCES_PER_JOB)
            .unwrap();
        assert!(why.contains("3 Wasm linear memories"), "{why}");
        assert!(why.contains("maximum of 2"), "{why}");
    }

    #[test]
    fn exported_modules_keep_their_counts_and_imported_ones_count_nothing() {
        let s = shape(
            r#"(component
                (import "m" (core module $imported))
                (core module $m (memory 1))
                (export $again "m2" (core module $m))
                (core instance (instantiate $imported))
                (core instance (instantiate $again))
            )"#,
        );
        assert_eq!(s.counts.core_instances, 2);
        assert_eq!(s.counts.memories, 1);
    }

    #[test]
    fn a_core_module_or_garbage_is_not_a_component() {
        assert!(read(&wat::parse_str("(module)").unwrap()).is_err());
        assert!(read(b"not wasm at all").is_err());
    }
}
