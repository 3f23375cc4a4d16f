//! What converting a `list<u8>` argument given as base64 allocates, measured
//! by a counting global allocator (alone in this binary, so nothing else
//! allocates while a conversion is measured): text past the byte limit is
//! refused without setting aside its decoded size, and text within it is
//! decoded straight into the `Val` list, with no second buffer of the bytes.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use airlock::values::{ArgsError, args_from_json_within};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;
use wasmtime::component::types::{ComponentItem, Type};
use wasmtime::component::{Component, Val};
use wasmtime::{Config, Engine};

/// The system allocator, keeping the largest single request and the sum of
/// all requests since [`Counting::reset`].
struct Counting {
    largest: AtomicUsize,
    total: AtomicUsize,
}

impl Counting {
    fn reset(&self) {
        self.largest.store(0, Ordering::SeqCst);
        self.total.store(0, Ordering::SeqCst);
    }

    fn note(&self, size: usize) {
        self.largest.fetch_max(size, Ordering::SeqCst);
        self.total.fetch_add(size, Ordering::SeqCst);
    }
}

// Implementing an allocator is unsafe by definition; this one only counts.
// SAFETY: every call is forwarded to `System` unchanged; only counters are added.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.note(layout.size());
        // SAFETY: the caller's contract is `System`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is `System`'s.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        self.note(new_size);
        // SAFETY: the caller's contract is `System`'s.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting {
    largest: AtomicUsize::new(0),
    total: AtomicUsize::new(0),
};

const MIB: usize = 1 << 20;

/// The parameters of `f(b: list<u8>)`.
fn params() -> Vec<(String, Type)> {
    let engine = Engine::new(&Config::new()).expect("an engine");
    let wat = r#"(component
        (type $f (func (param "b" (list u8))))
        (import "f" (func (type $f))))"#;
    let component = Component::new(&engine, wat).expect("the component compiles");
    let ty = component.component_type();
    let item = ty.get_import(&engine, "f").expect("f is imported");
    let ComponentItem::ComponentFunc(f) = item.ty else {
        panic!("f is a function")
    };
    f.params().map(|(n, t)| (n.to_string(), t)).collect()
}

#[test]
fn base64_allocates_nothing_past_the_limit_and_one_list_within_it() {
    let params = params();

    // 64 MiB of text (48 MiB decoded) against a 4 MiB limit.
    let args = json!({ "b": "A".repeat(64 * MIB) });
    ALLOC.reset();
    let err = args_from_json_within(&params, &args, 4 * MIB).unwrap_err();
    let largest = ALLOC.largest.load(Ordering::SeqCst);
    assert!(
        matches!(&err, ArgsError::TooManyBytes(t) if t.bytes == 48 * MIB),
        "{err:?}"
    );
    assert!(
        largest < 64 * 1024,
        "refusing 48 MiB of bytes allocated {largest} bytes at once"
    );

    // 1 MiB within the limit: the `Val` list and nothing of the same order
    // beside it (no decoded copy of the bytes first).
    let args = json!({ "b": STANDARD.encode(vec![0x5a; MIB]) });
    ALLOC.reset();
    let vals = args_from_json_within(&params, &args, 4 * MIB).expect("1 MiB converts");
    let (largest, total) = (
        ALLOC.largest.load(Ordering::SeqCst),
        ALLOC.total.load(Ordering::SeqCst),
    );
    let list = MIB * size_of::<Val>();
    assert_eq!(largest, list, "one allocation holds the list");
    assert!(
        total < list + 64 * 1024,
        "{total} bytes allocated in all for a {list}-byte list"
    );
    match vals.as_slice() {
        [Val::List(items)] => {
            assert_eq!(items.len(), MIB);
            assert!(items.iter().all(|v| *v == Val::U8(0x5a)));
        }
        other => panic!("expected one list, got {} values", other.len()),
    }
}
