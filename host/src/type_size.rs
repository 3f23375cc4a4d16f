//! How big an export's WIT types are when written out, as JSON Schemas,
//! type names and argument conversion write them. Types are shared by
//! reference inside a component, so a few hundred bytes can hold a type that
//! doubles at every level; the walk here counts with a budget and stops as
//! soon as it is spent, so such a component is refused at load in bounded
//! time and memory (see `LoadError::TypeTooLarge`).

use wasmtime::component::types::Type;

/// Most parts the parameters and result of one exported function may have
/// together, every use of a shared type counted: a part is a type, a record
/// field, a variant case, an enum case or a flag (the largest example guest,
/// `chat-probe.chat-n`, needs 54).
pub const MAX_FUNCTION_PARTS: usize = 10_000;

/// Most bytes of field, case and flag names one function's types may spell
/// out, every use counted.
pub const MAX_FUNCTION_NAME_BYTES: usize = 64 * 1024;

/// Most parts all exported functions of one component may have together.
pub const MAX_COMPONENT_PARTS: usize = 50_000;

/// Which size cap a type went over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypeCap {
    /// [`MAX_FUNCTION_PARTS`].
    FunctionParts,
    /// [`MAX_FUNCTION_NAME_BYTES`].
    FunctionNameBytes,
    /// [`MAX_COMPONENT_PARTS`].
    ComponentParts,
}

impl TypeCap {
    /// The cap's value.
    pub fn limit(self) -> usize {
        match self {
            TypeCap::FunctionParts => MAX_FUNCTION_PARTS,
            TypeCap::FunctionNameBytes => MAX_FUNCTION_NAME_BYTES,
            TypeCap::ComponentParts => MAX_COMPONENT_PARTS,
        }
    }
}

impl std::fmt::Display for TypeCap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let limit = self.limit();
        match self {
            TypeCap::FunctionParts => write!(f, "{limit} type parts per function"),
            TypeCap::FunctionNameBytes => write!(f, "{limit} bytes of names per function"),
            TypeCap::ComponentParts => {
                write!(f, "{limit} type parts for all exported functions together")
            }
        }
    }
}

/// Where the budget ran out: the function, the part of it (`parameter `x``
/// or `the result`) and the cap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Oversized {
    /// The exported function.
    pub function: String,
    /// `parameter `NAME`` or `the result`.
    pub part: String,
    /// The cap it went over.
    pub cap: TypeCap,
}

/// What has been counted so far, for one function and for the component.
#[derive(Debug, Default)]
pub struct Meter {
    function_parts: usize,
    function_names: usize,
    component_parts: usize,
}

impl Meter {
    /// Measures one function's parameters and result, adding them to the
    /// component's total; stops at the first cap reached.
    pub fn function(
        &mut self,
        name: &str,
        params: &[(String, Type)],
        result: Option<&Type>,
    ) -> Result<(), Oversized> {
        self.function_parts = 0;
        self.function_names = 0;
        let over = |part: String, cap| Oversized {
            function: name.to_string(),
            part,
            cap,
        };
        self.part()
            .map_err(|cap| over("its signature".into(), cap))?;
        for (param, ty) in params {
            self.name(param)
                .and_then(|()| self.walk(ty))
                .map_err(|cap| over(format!("parameter `{param}`"), cap))?;
        }
        if let Some(ty) = result {
            self.walk(ty)
                .map_err(|cap| over("the result".into(), cap))?;
        }
        Ok(())
    }

    fn part(&mut self) -> Result<(), TypeCap> {
        self.function_parts += 1;
        self.component_parts += 1;
        if self.function_parts > MAX_FUNCTION_PARTS {
            return Err(TypeCap::FunctionParts);
        }
        if self.component_parts > MAX_COMPONENT_PARTS {
            return Err(TypeCap::ComponentParts);
        }
        Ok(())
    }

    fn name(&mut self, name: &str) -> Result<(), TypeCap> {
        self.part()?;
        self.function_names += name.len();
        if self.function_names > MAX_FUNCTION_NAME_BYTES {
            return Err(TypeCap::FunctionNameBytes);
        }
        Ok(())
    }

    /// Counts `ty`, depth first; returns at once when a cap is reached.
    /// Component validation caps type nesting at 100 levels, which bounds
    /// the recursion.
    fn walk(&mut self, ty: &Type) -> Result<(), TypeCap> {
        self.part()?;
        match ty {
            Type::List(l) => self.walk(&l.ty()),
            Type::FixedLengthList(l) => self.walk(&l.ty()),
            Type::Map(m) => {
                self.walk(&m.key())?;
                self.walk(&m.value())
            }
            Type::Tuple(t) => t.types().try_for_each(|t| self.walk(&t)),
            Type::Record(r) => r.fields().try_for_each(|f| {
                self.name(f.name)?;
                self.walk(&f.ty)
            }),
            Type::Variant(v) => v.cases().try_for_each(|c| {
                self.name(c.name)?;
                c.ty.as_ref().map_or(Ok(()), |t| self.walk(t))
            }),
            Type::Enum(e) => e.names().try_for_each(|n| self.name(n)),
            Type::Flags(f) => f.names().try_for_each(|n| self.name(n)),
            Type::Option(o) => self.walk(&o.ty()),
            Type::Result(r) => {
                if let Some(t) = r.ok() {
                    self.walk(&t)?;
                }
                r.err().map_or(Ok(()), |t| self.walk(&t))
            }
            _ => Ok(()),
        }
    }
}

/// Measures every function of a component: `(name, params, result)` each.
pub fn check<'a>(
    functions: impl IntoIterator<Item = (&'a str, &'a [(String, Type)], Option<&'a Type>)>,
) -> Result<(), Oversized> {
    let mut meter = Meter::default();
    functions
        .into_iter()
        .try_for_each(|(name, params, result)| meter.function(name, params, result))
}

/// How many parts `params` and `result` have, up to the caps (for tests
/// and measurements).
pub fn parts(params: &[(String, Type)], result: Option<&Type>) -> Result<usize, Oversized> {
    let mut meter = Meter::default();
    meter.function("f", params, result)?;
    Ok(meter.function_parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::values::tests::{all, func_params};

    /// A component importing `f`, whose parameter `x` is a tuple that
    /// doubles `levels` times over two `u8`s.
    fn doubling(levels: usize) -> String {
        let mut wat = String::from("(component\n  (type $t0 (tuple u8 u8))\n");
        for i in 1..=levels {
            wat.push_str(&format!("  (type $t{i} (tuple $t{} $t{}))\n", i - 1, i - 1));
        }
        wat.push_str(&format!(
            "  (type $f (func (param \"x\" $t{levels})))\n  (import \"f\" (func (type $f)))\n)"
        ));
        wat
    }

    #[test]
    fn the_every_kind_fixture_is_small() {
        let params = all();
        // A type and its name for each parameter, plus the signature.
        let n = parts(&params, None).unwrap();
        assert!(n > 2 * params.len() && n < 200, "{n}");
    }

    #[test]
    fn a_doubling_type_is_stopped_at_the_cap() {
        // 2^(levels+1) u8 leaves: 2^12 = 4,096 leaves and 8,191 nodes fit ...
        let params = func_params(&doubling(11), "f");
        assert_eq!(parts(&params, None).unwrap(), 1 + 1 + 8_191);
        // ... 2^13 leaves do not.
        let params = func_params(&doubling(12), "f");
        let e = parts(&params, None).unwrap_err();
        assert_eq!(
            e,
            Oversized {
                function: "f".into(),
                part: "parameter `x`".into(),
                cap: TypeCap::FunctionParts,
            }
        );
        // Eighteen levels (half a million parts, the most wasmparser's own
        // type-size limit of a million lets through) stop just as soon.
        let params = func_params(&doubling(17), "f");
        let started = std::time::Instant::now();
        assert_eq!(
            parts(&params, None).unwrap_err().cap,
            TypeCap::FunctionParts
        );
        let took = started.elapsed();
        eprintln!("counting 18 doubling levels stopped after {took:?}");
        assert!(took < std::time::Duration::from_millis(500));
    }

    #[test]
    fn many_functions_share_the_component_budget() {
        let params = func_params(&doubling(10), "f");
        let fns: Vec<(String, Vec<(String, Type)>)> =
            (0..20).map(|i| (format!("f{i}"), params.clone())).collect();
        let e = check(fns.iter().map(|(n, p)| (n.as_str(), p.as_slice(), None))).unwrap_err();
        assert_eq!(e.cap, TypeCap::ComponentParts);
        // 4,095 + 2 parts each: the 13th function crosses 50,000.
        assert_eq!(e.function, "f12");
        assert!(
            check(
                fns[..12]
                    .iter()
                    .map(|(n, p)| (n.as_str(), p.as_slice(), None))
            )
            .is_ok()
        );
    }

    #[test]
    fn long_names_count_at_every_use() {
        let field = "a".repeat(1000);
        let wat = format!(
            "(component
              (type $r' (record (field \"{field}\" u8)))
              (import \"r\" (type $r (eq $r')))
              (type $t0 (tuple $r $r))
              (type $t1 (tuple $t0 $t0))
              (type $t2 (tuple $t1 $t1))
              (type $t3 (tuple $t2 $t2))
              (type $t4 (tuple $t3 $t3))
              (type $t5 (tuple $t4 $t4))
              (type $t6 (tuple $t5 $t5))
              (type $f (func (param \"x\" $t6)))
              (import \"f\" (func (type $f))))"
        );
        // 128 uses of a 1,000-byte name: under the part cap, over the bytes cap.
        let params = func_params(&wat, "f");
        assert_eq!(
            parts(&params, None).unwrap_err().cap,
            TypeCap::FunctionNameBytes
        );
    }
}
