//! Test-only window into guest memory (cargo feature `guest-debug`): a
//! [`MemoryProbe`] sees every linear memory of a job whenever the guest calls
//! the host, when the host returns to it, and when the job ends. The wall tests
//! use it to prove that no secret ever reaches a guest.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use wasmtime::{AsContextMut, CallHook, Store};

/// When a probe looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbePoint {
    /// The guest is calling the host (a verb, a WASI function or a libcall).
    CallingHost,
    /// The host has finished a call and written its results into the guest.
    ReturningFromHost,
    /// The job's call has ended, whatever its outcome; the store is still alive.
    JobEnd,
}

/// Looks at guest memory. `inspect` runs on the job's thread with the store
/// borrowed: keep it quick and never panic.
pub trait MemoryProbe: fmt::Debug + Send + Sync + 'static {
    /// One linear memory of the job at `point` (every memory, once each).
    fn inspect(&self, point: ProbePoint, memory: &[u8]);
}

/// Calls `probe` on every host call and return of `store`. The store's engine
/// must have guest debugging on ([`crate::engine::build_debug_engine`]),
/// otherwise the probe sees nothing.
pub fn watch<T: 'static>(store: &mut Store<T>, probe: Arc<dyn MemoryProbe>) {
    store.call_hook(move |mut ctx, hook| {
        let point = match hook {
            CallHook::CallingHost => ProbePoint::CallingHost,
            CallHook::ReturningFromHost => ProbePoint::ReturningFromHost,
            CallHook::CallingWasm | CallHook::ReturningFromWasm => return Ok(()),
        };
        inspect(&mut ctx, point, &*probe);
        Ok(())
    });
}

/// Shows `probe` every linear memory of every instance in `store`.
pub fn inspect(mut store: impl AsContextMut, point: ProbePoint, probe: &dyn MemoryProbe) {
    let instances = store.as_context_mut().debug_all_instances();
    // A memory imported by a second core instance is the same memory: show it once.
    let mut seen = HashSet::new();
    for instance in instances {
        for index in 0.. {
            let Some(memory) = instance.debug_memory(&mut store, index) else {
                break;
            };
            let data = memory.data(&store);
            if seen.insert(data.as_ptr() as usize) {
                probe.inspect(point, data);
            }
        }
    }
}
