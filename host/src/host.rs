//! The host: one engine, the component and linker caches, the verbs'
//! capabilities, and the two operations everything else uses — load a tool
//! (check its world and limits from its bytes, compile or fetch from cache,
//! pre-link it) and run a job.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use airlock_core::{AuditRecord, AuditSink, Decision, Job, JobControl};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use wasmtime::Engine;
use wasmtime::component::types::{ComponentItem, Type};
use wasmtime::component::{Component, ComponentExportIndex, InstancePre, Linker, Val};

use crate::cache::{CacheOutcome, CacheWarning, ComponentCache, Digest32};
use crate::engine::{EPOCH_TICK, EpochTicker, PoolSize, build_engine};
use crate::executor::JobExecutor;
use crate::job::{self, Budget, JobError, JobOutput, JobParts, JobState, ToolContext, Watched};
use crate::type_size::TypeCap;
use crate::verbs::{Capabilities, Grants, VerbSet};
use crate::world::{self, Import, Refusal};
use crate::{precheck, values, wasi};

/// Why a tool could not be loaded. Every message says what to do next.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The component file could not be read, or is not a regular file
    /// under [`crate::files::MAX_COMPONENT_BYTES`].
    #[error("cannot read component {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: crate::files::FileError,
    },
    /// The bytes are not a valid WebAssembly component.
    #[error(
        "{what} is not a valid WebAssembly component ({reason}); build tools for \
         wasm32-wasip2 (cargo build --target wasm32-wasip2) or wrap a core module with \
         `wasm-tools component new`"
    )]
    NotAComponent {
        /// What was loaded (a path or a tool name).
        what: String,
        /// The parser's or compiler's first line.
        reason: String,
    },
    /// The component is valid but needs more than one job may have (core
    /// instances, memories or tables); it could never run on this host.
    #[error(
        "{what} needs more than a job may have: {reason}; split the tool or build it with \
         fewer modules"
    )]
    OverLimits {
        /// What was loaded (a path or a tool name).
        what: String,
        /// wasmtime's count and limit.
        reason: String,
    },
    /// An export's types are too big to describe or convert in bounded
    /// time (a type that doubles at every level, say); see [`crate::type_size`].
    #[error(
        "{what}: {part} of function `{function}` has a type of more than {cap}; airlock \
         refuses types it cannot describe to an agent in bounded time: simplify the type or \
         split the function"
    )]
    TypeTooLarge {
        /// What was loaded (a path or a tool name).
        what: String,
        /// The exported function.
        function: String,
        /// `parameter `NAME``, `the result` or `its signature`.
        part: String,
        /// The cap it went over.
        cap: TypeCap,
    },
    /// A grant names something the host does not have.
    #[error("tool `{tool}`: {reason}")]
    Grant {
        /// The tool.
        tool: String,
        /// What is missing.
        reason: String,
    },
    /// The component imports something its grants do not allow.
    #[error("tool `{tool}` was refused before it could start:\n{}", list(.refusals))]
    World {
        /// The tool.
        tool: String,
        /// Every refused import.
        refusals: Vec<Refusal>,
    },
    /// Linking failed for another reason (an incompatible WASI version).
    #[error("tool `{tool}` cannot be linked: {reason}")]
    Link {
        /// The tool.
        tool: String,
        /// The linker's explanation.
        reason: String,
    },
    /// The trust policy refuses the tool: an unsigned tool where signed
    /// ones are required, or a pinned tool whose signature, approval, lock,
    /// digest or grants do not hold.
    #[error("tool `{tool}` was refused: {refusal}")]
    Untrusted {
        /// The tool.
        tool: String,
        /// Why.
        refusal: Box<crate::supply::Refusal>,
    },
}

impl LoadError {
    /// The trust policy's refusal of tool `tool`.
    pub fn untrusted(tool: &str, refusal: crate::supply::Refusal) -> Self {
        Self::Untrusted {
            tool: tool.to_string(),
            refusal: Box::new(refusal),
        }
    }
}

/// One line per distinct reason, naming every import refused for it.
fn list(refusals: &[Refusal]) -> String {
    let mut groups: Vec<(&str, Vec<&str>)> = Vec::new();
    for r in refusals {
        match groups.iter_mut().find(|(reason, _)| *reason == r.reason) {
            Some((_, imports)) => imports.push(&r.import),
            None => groups.push((&r.reason, vec![&r.import])),
        }
    }
    groups
        .iter()
        .map(|(reason, imports)| {
            let names: Vec<String> = imports.iter().map(|i| format!("`{i}`")).collect();
            format!("  - imports {}: {reason}", names.join(", "))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// One exported function of a tool.
#[derive(Debug, Clone)]
pub struct Export {
    /// The function's name (`count`).
    pub name: String,
    /// Parameters in order, with their WIT types.
    pub params: Vec<(String, Type)>,
    /// The result type, if the function returns something.
    pub result: Option<Type>,
    index: ComponentExportIndex,
}

/// What [`Airlock::inspect`] learned of a component.
#[derive(Debug, Clone)]
pub struct Inspection {
    /// Its imports, classified, in order.
    pub imports: Vec<Import>,
    /// The names of its exported functions, read without compiling.
    pub functions: Vec<String>,
    /// Its exported functions with their types; `None` when an import is one
    /// no grant can allow: such a component can never run, so it was not
    /// compiled to find its types.
    pub exports: Option<Vec<Export>>,
}

/// A loaded tool: checked, pre-linked, ready for jobs.
pub struct Tool {
    name: Arc<str>,
    digest: Digest32,
    /// Its name, grants and host, shared by every job of it.
    context: Arc<ToolContext>,
    budget: Budget,
    pre: InstancePre<JobState>,
    exports: Vec<Export>,
    imports: Vec<Import>,
    cache: CacheOutcome,
    /// Whether instantiating it runs guest start-up code on a fiber, whose
    /// stack the store then keeps ([`Airlock::idle`] finds out once).
    keeps_stack: OnceLock<bool>,
}

impl Tool {
    /// The tool's name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The sha256 of the component, hex.
    pub fn digest(&self) -> String {
        hex::encode(self.digest)
    }
    /// Its grants.
    pub fn grants(&self) -> &Grants {
        &self.context.grants
    }
    /// Its budget per job.
    pub fn budget(&self) -> &Budget {
        &self.budget
    }
    /// Its exported functions.
    pub fn exports(&self) -> &[Export] {
        &self.exports
    }
    /// Its imports, classified.
    pub fn imports(&self) -> &[Import] {
        &self.imports
    }
    /// Whether loading it compiled or hit the cache.
    pub fn cache_outcome(&self) -> CacheOutcome {
        self.cache
    }

    /// The export called `name`, or the only one when `name` is `None`.
    pub fn export(&self, name: Option<&str>) -> Result<&Export, JobError> {
        let names = || {
            self.exports
                .iter()
                .map(|e| e.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        match name {
            Some(n) => self.exports.iter().find(|e| e.name == n).ok_or_else(|| {
                JobError::NoSuchFunction(format!(
                    "tool `{}` exports no function `{n}`; it exports: {}",
                    self.name,
                    names()
                ))
            }),
            None if self.exports.len() == 1 => Ok(&self.exports[0]),
            None => Err(JobError::NoSuchFunction(format!(
                "tool `{}` exports {} functions ({}); name one with --call",
                self.name,
                self.exports.len(),
                names()
            ))),
        }
    }
}

/// The component a load starts from: bytes and their sha256, or what this
/// process verified of them before ([`crate::memo`]).
enum Input<'a> {
    Bytes(&'a [u8], Digest32),
    Verified(Digest32, crate::memo::Verified),
}

/// Settings of a host.
#[derive(Debug, Clone, Default)]
pub struct HostOptions {
    /// Pool sizing.
    pub pool: PoolSize,
    /// Where compiled components are cached (`None`: `$AIRLOCK_CACHE` or the user cache dir).
    pub cache_dir: Option<PathBuf>,
    /// The cache's key file, outside the cache directory (`None`:
    /// `$AIRLOCK_CACHE_KEY` or `cache.key` in the user's local data dir).
    pub cache_key: Option<PathBuf>,
    /// The cap on the compiled-component cache's total size, kept by
    /// evicting the least recently used entries (`None`:
    /// `$AIRLOCK_CACHE_MAX_SIZE`, else [`crate::cache::DEFAULT_MAX_SIZE`]).
    pub cache_max_size: Option<u64>,
    /// Never touch the disk cache.
    pub no_cache: bool,
    /// The trust policy every tool is checked against at load.
    pub policy: Option<Arc<airlock_trust::Policy>>,
    /// How often running jobs check for cancellation (`None`:
    /// [`crate::engine::EPOCH_TICK`], 10 ms). Deadlines are kept to the
    /// instant whatever the tick: the ticker also wakes at a near deadline.
    pub epoch_tick: Option<Duration>,
    /// Told of every job's end: how long it waited for a slot, how it ended
    /// and how long it ran (`airlock serve`'s metrics).
    pub observer: Option<Arc<dyn JobObserver>>,
    /// Worker threads of the job executor [`Airlock::spawn_with`] runs jobs
    /// on (`None`: the job slots, at most one per core; see
    /// [`crate::executor`]). `Some(0)` runs them in the caller's task instead,
    /// as [`Airlock::run_with`] does: for an embedder that schedules jobs
    /// itself, and for the benchmark of what that costs a server's latency.
    pub job_workers: Option<usize>,
    /// Test-only: shows every job's guest memories to this probe (and builds
    /// the engine with guest debugging on). See [`crate::probe`].
    #[cfg(feature = "guest-debug")]
    pub memory_probe: Option<Arc<dyn crate::probe::MemoryProbe>>,
}

/// Told of every job a host runs, when it ends (see [`HostOptions::observer`]).
/// It runs on the job path: it must not block.
pub trait JobObserver: Send + Sync + std::fmt::Debug + 'static {
    /// Job of `tool` ended with `outcome` after `waited` for a job slot and
    /// `ran` from then on.
    fn job_done(&self, tool: &str, outcome: Result<(), &JobError>, waited: Duration, ran: Duration);
}

/// The airlock host.
pub struct Airlock {
    engine: Engine,
    ticker: EpochTicker,
    cache: ComponentCache,
    caps: Arc<Capabilities>,
    policy: Option<Arc<airlock_trust::Policy>>,
    memo: crate::memo::Memo,
    audit: Arc<dyn AuditSink>,
    linkers: Mutex<HashMap<VerbSet, Arc<Linker<JobState>>>>,
    pres: Mutex<HashMap<(Digest32, VerbSet), InstancePre<JobState>>>,
    slots: Arc<tokio::sync::Semaphore>,
    max_jobs: u32,
    /// Fiber stacks for running jobs, when fewer than `max_jobs`
    /// ([`crate::engine::PoolSize::max_running`]): a running job holds a
    /// permit of both, an idle instance only a slot.
    running: Option<Arc<tokio::sync::Semaphore>>,
    max_running: u32,
    core_instances: u32,
    next_job: AtomicU64,
    observer: Option<Arc<dyn JobObserver>>,
    job_workers: usize,
    /// Started at the first [`Airlock::spawn_with`]: a host that only runs
    /// jobs in its callers' tasks starts no threads for it.
    executor: OnceLock<Result<JobExecutor, String>>,
    #[cfg(feature = "guest-debug")]
    probe: Option<Arc<dyn crate::probe::MemoryProbe>>,
}

/// The permits of an admitted job: its running permit (where the host has
/// one) and its slot.
type Admitted<'a> = (
    Option<tokio::sync::SemaphorePermit<'a>>,
    tokio::sync::SemaphorePermit<'a>,
);

/// A tool instantiated in its own job store and not called. Dropping it
/// ends that job (the store is dropped and its slot freed). It holds a slot
/// of `max_jobs` but no fiber stack, so it does not count against
/// `max_running`. Benchmarks use it to measure memory per live instance.
pub struct IdleInstance {
    _store: wasmtime::Store<JobState>,
    _slot: tokio::sync::OwnedSemaphorePermit,
    _running: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Airlock {
    /// A host serving `caps`, auditing to `audit`.
    pub fn new(
        options: HostOptions,
        caps: Capabilities,
        audit: Arc<dyn AuditSink>,
    ) -> anyhow::Result<Self> {
        #[cfg(feature = "guest-debug")]
        let engine = match options.memory_probe {
            Some(_) => crate::engine::build_debug_engine(options.pool)?,
            None => build_engine(options.pool)?,
        };
        #[cfg(not(feature = "guest-debug"))]
        let engine = build_engine(options.pool)?;
        let ticker = EpochTicker::with_tick(&engine, options.epoch_tick.unwrap_or(EPOCH_TICK));
        let cache = if options.no_cache {
            ComponentCache::disabled()
        } else {
            let max_size = crate::cache::lru::max_size_setting(options.cache_max_size)?;
            ComponentCache::new(options.cache_dir, options.cache_key).with_max_size(max_size)
        };
        Ok(Self {
            engine,
            ticker,
            cache,
            caps: Arc::new(caps),
            policy: options.policy,
            memo: crate::memo::Memo::default(),
            audit,
            linkers: Mutex::default(),
            pres: Mutex::default(),
            slots: Arc::new(tokio::sync::Semaphore::new(options.pool.max_jobs as usize)),
            max_jobs: options.pool.max_jobs,
            running: (options.pool.running() < options.pool.max_jobs)
                .then(|| Arc::new(tokio::sync::Semaphore::new(options.pool.running() as usize))),
            max_running: options.pool.running(),
            core_instances: options.pool.core_instances_per_job,
            next_job: AtomicU64::new(1),
            observer: options.observer,
            job_workers: options
                .job_workers
                .unwrap_or_else(|| default_job_workers(options.pool.running())),
            executor: OnceLock::new(),
            #[cfg(feature = "guest-debug")]
            probe: options.memory_probe,
        })
    }

    /// The engine (one per process).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The audit sink every job writes to (the CLI closes it on exit).
    pub fn audit(&self) -> &Arc<dyn AuditSink> {
        &self.audit
    }

    /// The host's job slots (`max_jobs`).
    pub fn max_jobs(&self) -> u32 {
        self.max_jobs
    }

    /// Jobs holding a slot right now (running, or instantiated and idle).
    pub fn jobs_running(&self) -> u32 {
        self.max_jobs - self.slots.available_permits() as u32
    }

    /// The verbs' host-wide capabilities.
    pub fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    /// Lists a component's imports, classified, and its exports, without
    /// checking any grant. Imports and limits are read from the bytes first:
    /// a component over the per-job limits is an error, and one importing
    /// something no grant can allow is not compiled at all (its
    /// [`Inspection::exports`] is `None`; the names are still listed).
    /// Otherwise it is compiled (or loaded from cache) for its export types.
    pub fn inspect(&self, bytes: &[u8], what: &str) -> Result<Inspection, LoadError> {
        let shape = self.precheck(bytes, what)?;
        let imports = world::imports(&shape);
        let functions = shape.functions;
        if imports
            .iter()
            .any(|i| matches!(i.kind, world::ImportKind::Never(_)))
        {
            return Ok(Inspection {
                imports,
                functions,
                exports: None,
            });
        }
        let (component, _) = self.compile(bytes, Sha256::digest(bytes).into(), what)?;
        let exports = exports(&self.engine, &component);
        check_type_sizes(&exports, what)?;
        Ok(Inspection {
            imports,
            functions,
            exports: Some(exports),
        })
    }

    /// Reads what the bytes say before compiling ([`crate::precheck`]) and
    /// refuses a component over the per-job limits. Bytes it cannot read are
    /// handed to the compiler, whose error (as before) says what is wrong.
    fn precheck(&self, bytes: &[u8], what: &str) -> Result<precheck::Shape, LoadError> {
        let shape = match precheck::read(bytes) {
            Ok(shape) => shape,
            Err(e) => {
                self.compile(bytes, Sha256::digest(bytes).into(), what)?;
                return Err(LoadError::NotAComponent {
                    what: what.to_string(),
                    reason: e.to_string(),
                });
            }
        };
        if let Some(reason) = shape.counts.over_limits(self.core_instances) {
            return Err(LoadError::OverLimits {
                what: what.to_string(),
                reason,
            });
        }
        Ok(shape)
    }

    /// Why the compiled-component cache is not used, the first time it is
    /// asked after a load refused it (then `None`): printed once by the CLI.
    pub fn take_cache_warning(&self) -> Option<CacheWarning> {
        self.cache.take_warning()
    }

    /// Reads a component file: a regular file of at most
    /// [`crate::files::MAX_COMPONENT_BYTES`] (never a FIFO or a device).
    pub fn read_component(path: &Path) -> Result<Vec<u8>, LoadError> {
        crate::files::read_regular_file(path, crate::files::MAX_COMPONENT_BYTES, "a component")
            .map_err(|source| LoadError::Io {
                path: path.to_path_buf(),
                source,
            })
    }

    /// The trust policy tools are checked against, if any.
    pub fn policy(&self) -> Option<&Arc<airlock_trust::Policy>> {
        self.policy.as_ref()
    }

    /// Loads a toolkit's tool: checks it under the trust policy (for a
    /// pinned tool: signature, approval, lockfile and grants within the
    /// approved request), then loads its component, refusing bytes whose
    /// sha256 is not the pinned one and imports other than the requested
    /// verbs before anything is compiled.
    pub fn load_spec(&self, spec: &crate::config::ToolSpec) -> Result<Tool, LoadError> {
        let pin = crate::supply::check_load(self.policy.as_deref(), spec)
            .map_err(|refusal| LoadError::untrusted(&spec.name, refusal))?;
        self.load_path(
            &spec.name,
            &spec.component,
            spec.grants.clone(),
            spec.budget,
            pin,
        )
    }

    /// Loads a tool from a file.
    pub fn load_tool_file(
        &self,
        name: &str,
        path: &Path,
        grants: Grants,
        budget: Budget,
    ) -> Result<Tool, LoadError> {
        self.check_bare(name, &grants, budget)?;
        self.load_path(name, path, grants, budget, None)
    }

    /// Loads a tool: checks its grants against the host, its imports and
    /// per-job limits (read from the bytes, before any compile), compiles or
    /// loads the component, and pre-links it with exactly the verbs it both
    /// imports and was granted.
    pub fn load_tool(
        &self,
        name: &str,
        bytes: &[u8],
        grants: Grants,
        budget: Budget,
    ) -> Result<Tool, LoadError> {
        self.check_bare(name, &grants, budget)?;
        let digest: Digest32 = Sha256::digest(bytes).into();
        self.load_checked(
            name,
            name,
            Input::Bytes(bytes, digest),
            grants,
            budget,
            None,
        )
    }

    /// A tool loaded without a toolkit is a bare component: under a trust
    /// policy it must pass `require_signed` and the blocked verbs and hosts.
    fn check_bare(&self, name: &str, grants: &Grants, budget: Budget) -> Result<(), LoadError> {
        if let Some(policy) = &self.policy {
            let spec = crate::config::ToolSpec::bare(name, grants.clone(), budget);
            crate::supply::check_load(Some(policy), &spec)
                .map_err(|refusal| LoadError::untrusted(name, refusal))?;
        }
        Ok(())
    }

    /// Loads the component at `path`: from this process's memory when the
    /// file's identity is the one it had when it was read and verified,
    /// otherwise read (its identity taken first) and hashed.
    fn load_path(
        &self,
        name: &str,
        path: &Path,
        grants: Grants,
        budget: Budget,
        pin: Option<crate::supply::PinCheck>,
    ) -> Result<Tool, LoadError> {
        let what = path.display().to_string();
        if let Some((digest, verified)) = self.memo.digest_of(path) {
            let input = Input::Verified(digest, verified);
            return self.load_checked(name, &what, input, grants, budget, pin);
        }
        // The identity before the read: bytes changed after it make the next
        // load read again, never remember other bytes under it.
        let id = crate::memo::FileId::at(path);
        let bytes = Self::read_component(path)?;
        let digest: Digest32 = Sha256::digest(&bytes).into();
        let tool = self.load_checked(
            name,
            &what,
            Input::Bytes(&bytes, digest),
            grants,
            budget,
            pin,
        )?;
        if let Some(id) = id {
            self.memo.remember_file(path, id, digest);
        }
        Ok(tool)
    }

    fn load_checked(
        &self,
        name: &str,
        what: &str,
        input: Input<'_>,
        grants: Grants,
        budget: Budget,
        pin: Option<crate::supply::PinCheck>,
    ) -> Result<Tool, LoadError> {
        // Hashed once: the pin is checked before the bytes are parsed, and
        // the same digest keys the compiled-component cache.
        let digest = match &input {
            Input::Bytes(_, d) | Input::Verified(d, _) => *d,
        };
        if let Some(pin) = &pin
            && pin.digest != digest
        {
            let mismatch = airlock_trust::TrustError::DigestMismatch {
                what: format!("component {what}"),
                expected: airlock_trust::Digest::from_raw(&pin.digest),
                actual: airlock_trust::Digest::from_raw(&digest),
            };
            return Err(LoadError::untrusted(name, mismatch.into()));
        }
        self.caps
            .check(&grants)
            .map_err(|reason| LoadError::Grant {
                tool: name.to_string(),
                reason,
            })?;
        // Verified earlier in this process (its shape read, its compiled form
        // checked), or read now: imports and limits first, from the bytes, so
        // a refused component costs no compile.
        let known = match &input {
            Input::Verified(_, v) => Some(v.clone()),
            Input::Bytes(..) => self.memo.verified(&digest),
        };
        let shape = match (&known, &input) {
            (Some(v), _) => v.shape.clone(),
            (None, Input::Bytes(bytes, _)) => Arc::new(self.precheck(bytes, what)?),
            (None, Input::Verified(..)) => unreachable!("a verified input is known"),
        };
        let imports = world::imports(&shape);
        if let Some(pin) = &pin {
            let imported = world::imported_verbs(&imports);
            if imported != pin.verbs {
                let differ = crate::supply::Refusal::VerbsDiffer {
                    requested: crate::supply::verb_list(pin.verbs),
                    imported: crate::supply::verb_list(imported),
                };
                return Err(LoadError::untrusted(name, differ));
            }
        }
        let used =
            world::check(&imports, grants.set(), name).map_err(|refusals| LoadError::World {
                tool: name.to_string(),
                refusals,
            })?;
        let (component, cache) = match (known, &input) {
            (Some(v), _) => (v.component, self.cache.remembered_outcome()),
            (None, Input::Bytes(bytes, _)) => {
                let (component, cache) = self.compile(bytes, digest, what)?;
                check_type_sizes(&exports(&self.engine, &component), what)?;
                self.memo.remember(
                    digest,
                    crate::memo::Verified {
                        shape,
                        component: component.clone(),
                    },
                );
                (component, cache)
            }
            (None, Input::Verified(..)) => unreachable!("a verified input is known"),
        };
        let pre = self
            .instance_pre(&component, digest, used)
            .map_err(|e| LoadError::Link {
                tool: name.to_string(),
                reason: format!("{e:#}"),
            })?;
        let name: Arc<str> = name.into();
        Ok(Tool {
            context: Arc::new(ToolContext {
                name: name.clone(),
                grants,
                caps: self.caps.clone(),
                audit: self.audit.clone(),
                deadlines: self.ticker.deadlines().clone(),
            }),
            name,
            digest,
            // The export indices must come from the component `pre` was built
            // from, which may be an earlier load of the same bytes.
            exports: exports(&self.engine, pre.component()),
            budget,
            pre,
            imports,
            cache,
            keeps_stack: OnceLock::new(),
        })
    }

    fn compile(
        &self,
        bytes: &[u8],
        digest: Digest32,
        what: &str,
    ) -> Result<(Component, CacheOutcome), LoadError> {
        self.cache
            .load_hashed(&self.engine, bytes, digest)
            .map_err(|e| {
                let what = what.to_string();
                let reason = format!("{e}")
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_string();
                // The pooling allocator checks a component against the per-job
                // limits when it compiles (engine.rs sets them).
                if reason.contains("in the pooling allocator") {
                    LoadError::OverLimits { what, reason }
                } else {
                    LoadError::NotAComponent { what, reason }
                }
            })
    }

    fn instance_pre(
        &self,
        component: &Component,
        digest: Digest32,
        set: VerbSet,
    ) -> wasmtime::Result<InstancePre<JobState>> {
        let mut pres = self.pres.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(pre) = pres.get(&(digest, set)) {
            return Ok(pre.clone());
        }
        let linker = self.linker(set)?;
        let pre = match crate::no_network::linker_for(&linker, &self.engine, component)? {
            Some(stubbed) => stubbed.instantiate_pre(component)?,
            None => linker.instantiate_pre(component)?,
        };
        pres.insert((digest, set), pre.clone());
        Ok(pre)
    }

    fn linker(&self, set: VerbSet) -> wasmtime::Result<Arc<Linker<JobState>>> {
        let mut linkers = self.linkers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(l) = linkers.get(&set) {
            return Ok(l.clone());
        }
        let mut linker = Linker::new(&self.engine);
        wasi::add_to_linker(&mut linker)?;
        crate::verbs::add_to_linker(&mut linker, set)?;
        let linker = Arc::new(linker);
        linkers.insert(set, linker.clone());
        Ok(linker)
    }

    /// Waits at most `patience` (the job's own timeout) for a job slot (and
    /// a running permit, where the host has fewer stacks than slots), when
    /// [`Airlock::try_admit`] found none. The pool is sized so that an
    /// admitted job always finds room (engine.rs).
    async fn admit(&self, patience: std::time::Duration) -> Result<Admitted<'_>, JobError> {
        let acquire = async {
            let running = match &self.running {
                Some(running) => Some(running.acquire().await?),
                None => None,
            };
            Ok::<_, tokio::sync::AcquireError>((running, self.slots.acquire().await?))
        };
        match tokio::time::timeout(patience, acquire).await {
            Ok(permits) => permits.map_err(|e| JobError::Internal(e.to_string())),
            Err(_) => Err(JobError::Busy {
                slots: self.max_running,
                waited: patience,
            }),
        }
    }

    /// A job slot (and running permit) if one is free now: the common case,
    /// which arms no timer and registers no cancellation future.
    fn try_admit(&self) -> Option<Admitted<'_>> {
        let running = match &self.running {
            Some(running) => Some(running.try_acquire().ok()?),
            None => None,
        };
        Some((running, self.slots.try_acquire().ok()?))
    }

    /// A fresh store for one job of `tool` starting at `started`, with every
    /// limit armed: the job's handle and its store.
    fn job_store(
        &self,
        tool: &Tool,
        started: Instant,
        control: &JobControl,
    ) -> Result<(Job, wasmtime::Store<JobState>), JobError> {
        let budget = tool.budget;
        let id = self.next_job.fetch_add(1, Ordering::Relaxed);
        let handle = Job::owned(id, tool.context.clone(), started + budget.timeout, control);
        handle.set_hostcall_bytes(budget.hostcall_bytes);
        let store = self.store_for(tool, &handle, started)?;
        Ok((handle, store))
    }

    /// A fresh store for `job`, a job of `tool` started at `started`.
    fn store_for(
        &self,
        tool: &Tool,
        job: &Job,
        started: Instant,
    ) -> Result<wasmtime::Store<JobState>, JobError> {
        #[allow(unused_mut, reason = "mutated only with the guest-debug probe")]
        let mut store = job::new_store(
            &self.engine,
            &tool.budget,
            started,
            JobParts {
                context: tool.context.clone(),
                job: job.clone(),
                core_instances: self.core_instances,
            },
        )
        .map_err(|e| JobError::Internal(format!("{e:#}")))?;
        #[cfg(feature = "guest-debug")]
        if let Some(probe) = &self.probe {
            crate::probe::watch(&mut store, probe.clone());
        }
        Ok(store)
    }

    /// Whether `job`, which failed with `err`, should start again: then,
    /// after a moment, `store` is a fresh one for it. Slots another job just
    /// freed may be, for a moment, neither in the pool nor in its decommit
    /// queue: wasmtime flushes a batch of them (`engine::DECOMMIT_BATCH`)
    /// with the queue's lock dropped, and a job on another thread that needs
    /// a slot then (an instance, a memory, the fiber stack of its call) is
    /// refused with `PoolConcurrencyLimitError`, though admitted. It starts
    /// again as long as none of its guest code has run (its fuel is whole
    /// and it made no verb call: a start function may run before the last
    /// instance is allocated) and its deadline has not passed.
    async fn refreshed_after_flush(
        &self,
        err: &wasmtime::Error,
        tool: &Tool,
        job: &Job,
        started: Instant,
        store: &mut wasmtime::Store<JobState>,
    ) -> Result<bool, JobError> {
        let again = err.is::<wasmtime::PoolConcurrencyLimitError>()
            && store.get_fuel().ok() == Some(tool.budget.fuel)
            && job.verb_calls() == 0
            && Instant::now() < job.deadline();
        if again {
            tokio::task::yield_now().await;
            *store = self.store_for(tool, job, started)?;
        }
        Ok(again)
    }

    /// Instantiates `tool` in a new job store without calling it, taking a
    /// job slot (or failing at once when every slot is taken). The instance
    /// lives until the returned value is dropped.
    ///
    /// Where the host has fewer stacks than slots
    /// ([`crate::engine::PoolSize::max_running`]), an instance holds no
    /// stack, unless instantiating its tool runs guest start-up code (a
    /// start function) on a fiber, whose stack the store keeps: such an
    /// instance takes a running permit too, so that it never takes a
    /// running job's stack. Which tools do is found out at the first call
    /// for each: it instantiates while holding every running permit, so no
    /// job runs meanwhile, and counts the pool's stacks before and after.
    pub async fn idle(&self, tool: &Tool) -> Result<IdleInstance, JobError> {
        let slot = self.slots.clone().try_acquire_owned().map_err(|_| {
            JobError::Internal(format!(
                "every job slot is taken ({}); raise the pool's max_jobs",
                self.max_jobs
            ))
        })?;
        let started = Instant::now();
        let (handle, mut store) = self.job_store(tool, started, &JobControl::default())?;
        let instantiate = async |store: &mut wasmtime::Store<JobState>| loop {
            match tool.pre.instantiate_async(&mut *store).await {
                Ok(_) => return Ok(()),
                Err(e)
                    if self
                        .refreshed_after_flush(&e, tool, &handle, started, store)
                        .await? => {}
                Err(e) => return Err(JobError::Internal(format!("{e:#}"))),
            }
        };
        let Some(running) = &self.running else {
            instantiate(&mut store).await?;
            return Ok(IdleInstance {
                _store: store,
                _slot: slot,
                _running: None,
            });
        };
        let internal = |e: tokio::sync::AcquireError| JobError::Internal(e.to_string());
        let keeps_stack = match tool.keeps_stack.get() {
            Some(&keeps) => {
                let permit = match keeps {
                    true => Some(running.clone().try_acquire_owned().map_err(|_| {
                        JobError::Internal(format!(
                            "every running slot is taken ({}) and `{}` keeps a stack when \
                             instantiated; raise the pool's max_running",
                            self.max_running, tool.name
                        ))
                    })?),
                    false => None,
                };
                instantiate(&mut store).await?;
                permit
            }
            None => {
                let patience = tool.budget.timeout;
                let all = running.clone().acquire_many_owned(self.max_running);
                let mut all = tokio::time::timeout(patience, all)
                    .await
                    .map_err(|_| JobError::Busy {
                        slots: self.max_running,
                        waited: patience,
                    })?
                    .map_err(internal)?;
                let stacks = || {
                    self.engine
                        .pooling_allocator_metrics()
                        .map_or(0, |m| m.stacks())
                };
                let before = stacks();
                instantiate(&mut store).await?;
                let keeps = stacks() > before;
                let _ = tool.keeps_stack.set(keeps);
                keeps.then(|| all.split(1)).flatten()
            }
        };
        Ok(IdleInstance {
            _store: store,
            _slot: slot,
            _running: keeps_stack,
        })
    }

    /// Runs one job: `function` of `tool` (the only export when `None`) with
    /// `args`, a JSON object keyed by parameter names.
    pub async fn run(
        &self,
        tool: &Tool,
        function: Option<&str>,
        args: &Value,
    ) -> Result<JobOutput, JobError> {
        self.run_with(tool, function, args, &JobControl::default())
            .await
    }

    /// [`Airlock::run`] under a caller's `control`: cancelling
    /// `control.cancel` stops the job within one epoch tick (the guest is
    /// interrupted, a verb waiting upstream abandons its request, the store
    /// is dropped and the slot freed) and ends it with
    /// [`JobError::Cancelled`], recorded in the audit trail; each verb call
    /// is reported to `control.events` as it happens.
    pub async fn run_with(
        &self,
        tool: &Tool,
        function: Option<&str>,
        args: &Value,
        control: &JobControl,
    ) -> Result<JobOutput, JobError> {
        let Some(observer) = &self.observer else {
            return self.run_job(tool, function, args, control, &mut None).await;
        };
        let entered = Instant::now();
        let mut admitted = None;
        let outcome = self
            .run_job(tool, function, args, control, &mut admitted)
            .await;
        let admitted = admitted.unwrap_or_else(Instant::now);
        observer.job_done(
            &tool.name,
            outcome.as_ref().map(|_| ()),
            admitted.saturating_duration_since(entered),
            admitted.elapsed(),
        );
        outcome
    }

    /// [`Airlock::run_with`]'s job; `admitted` is set when it got a slot.
    async fn run_job(
        &self,
        tool: &Tool,
        function: Option<&str>,
        args: &Value,
        control: &JobControl,
        admitted: &mut Option<Instant>,
    ) -> Result<JobOutput, JobError> {
        let export = tool.export(function)?;
        let params =
            values::args_from_json_within(&export.params, args, tool.budget.hostcall_bytes)?;
        let cancel = &control.cancel;
        if cancel.is_cancelled() {
            return Err(cancelled(control, Duration::ZERO, 0));
        }
        let _slot = match self.try_admit() {
            Some(slot) => slot,
            None => tokio::select! {
                biased;
                () = cancel.cancelled() => return Err(cancelled(control, Duration::ZERO, 0)),
                slot = self.admit(tool.budget.timeout) => slot?,
            },
        };
        let started = Instant::now();
        *admitted = Some(started);
        let budget = tool.budget;
        let (handle, mut store) = self.job_store(tool, started, control)?;
        let id = handle.id();

        let call = async {
            loop {
                let attempt = async {
                    let instance = tool.pre.instantiate_async(&mut store).await?;
                    let func = instance.get_func(&mut store, export.index).ok_or_else(|| {
                        wasmtime::format_err!("export `{}` vanished", export.name)
                    })?;
                    let mut results = [Val::Bool(false)];
                    let results = &mut results[..usize::from(export.result.is_some())];
                    func.call_async(&mut store, &params, results).await?;
                    wasmtime::Result::<Option<Val>>::Ok(
                        results
                            .first_mut()
                            .map(|v| std::mem::replace(v, Val::Bool(false))),
                    )
                };
                match attempt.await {
                    Err(e)
                        if self
                            .refreshed_after_flush(&e, tool, &handle, started, &mut store)
                            .await
                            .map_err(wasmtime::Error::new)? => {}
                    done => break done,
                }
            }
        };
        let outcome = job::watch(call, cancel, handle.deadline()).await;
        #[cfg(feature = "guest-debug")]
        if let Some(probe) = &self.probe {
            crate::probe::inspect(&mut store, crate::probe::ProbePoint::JobEnd, &**probe);
        }
        // Cancelled, or failed because it was (an epoch interrupt, a verb
        // that abandoned its request): the job ends as cancelled, after its
        // store is dropped and its slot freed.
        let result = match outcome {
            Watched::Done(Ok(result)) => result,
            _ if cancel.is_cancelled() => {
                drop(store);
                drop(_slot);
                let e = cancelled(control, started.elapsed(), handle.verb_calls());
                self.audit_cancelled(&handle, started, control);
                return Err(e);
            }
            Watched::Done(Err(e)) => return Err(job::classify_failure(e, &store, &budget)),
            // `Cancelled` comes only with the flag set, which the arm above took.
            Watched::PastDeadline | Watched::Cancelled => return Err(job::deadline_error(&budget)),
        };
        let captured = store.data().captured();
        if captured.is_some_and(wasi::Captured::overflowed) {
            return Err(job::stdio_overflow(&budget));
        }
        let (stdout, stderr) = captured.map_or_else(Default::default, wasi::Captured::text);
        let returns_result = matches!(export.result, Some(Type::Result(_)));
        let value = job::unwrap_result(result, returns_result)?;
        let size = json_len(&value);
        if size > budget.output {
            return Err(JobError::Budget {
                which: job::BudgetKind::Output,
                detail: format!(
                    "the result is {size} bytes as JSON, over the {} output limit",
                    crate::units::format_size(budget.output)
                ),
            });
        }
        let fuel_used = budget.fuel - store.get_fuel().unwrap_or(0);
        let logs = job::take_logs(&mut store);
        Ok(JobOutput {
            job: id,
            value,
            stdout,
            stderr,
            logs,
            fuel_used,
            elapsed: started.elapsed(),
        })
    }
}

impl Airlock {
    /// [`Airlock::run_with`] on the host's job executor, a runtime that runs
    /// jobs and nothing else ([`crate::executor`]): what a server calls so
    /// that guests never hold up the runtime reading its requests. The job
    /// starts at once; the returned future is its outcome. Dropping that
    /// future before the job ends cancels the job (reason
    /// [`crate::executor::CALLER_GONE`]): it stops within one epoch tick and
    /// is audited as cancelled, as when `control.cancel` fires. With
    /// [`HostOptions::job_workers`] `Some(0)` the job runs in the awaiting
    /// task instead, exactly as [`Airlock::run_with`].
    pub fn spawn_with(
        self: &Arc<Self>,
        tool: &Arc<Tool>,
        function: Option<&str>,
        args: Value,
        control: &JobControl,
    ) -> impl Future<Output = Result<JobOutput, JobError>> + Send + 'static {
        let host = self.clone();
        let tool = tool.clone();
        let function = function.map(str::to_string);
        let cancel = control.cancel.clone();
        let control = control.clone();
        let job = async move {
            host.run_with(&tool, function.as_deref(), &args, &control)
                .await
        };
        let spawned = match self.executor() {
            None => Spawn::Inline(job),
            Some(Ok(executor)) => Spawn::Spawned(executor.spawn(cancel, job)),
            Some(Err(e)) => Spawn::Failed(e),
        };
        async move {
            match spawned {
                Spawn::Inline(job) => job.await,
                Spawn::Spawned(job) => job
                    .await
                    .unwrap_or_else(|e| Err(JobError::Internal(e.to_string()))),
                Spawn::Failed(e) => Err(JobError::Internal(e)),
            }
        }
    }

    /// Worker threads of the job executor; 0 when jobs run in their
    /// callers' tasks ([`HostOptions::job_workers`]).
    pub fn job_workers(&self) -> usize {
        self.job_workers
    }

    /// The job executor, started on first use; `None` when jobs run in
    /// their callers' tasks.
    fn executor(&self) -> Option<Result<&JobExecutor, String>> {
        if self.job_workers == 0 {
            return None;
        }
        let started = self.executor.get_or_init(|| {
            JobExecutor::new(
                self.job_workers,
                &self.engine,
                self.ticker.deadlines().clone(),
            )
            .map_err(|e| format!("cannot start the job executor: {e}"))
        });
        Some(started.as_ref().map_err(Clone::clone))
    }

    /// Records a cancelled job in the audit trail: why, how far it got, and
    /// how long after the cancel it stopped.
    fn audit_cancelled(&self, job: &Job, started: Instant, control: &JobControl) {
        if !self.audit.enabled() {
            return;
        }
        let cancel = &control.cancel;
        let mut detail = format!("after {} verb calls", job.verb_calls());
        if let Some(at) = cancel.cancelled_at() {
            detail += &format!("; stopped {} µs after the cancel", at.elapsed().as_micros());
        }
        self.audit.record(AuditRecord {
            time: std::time::SystemTime::now(),
            job: job.id(),
            tool: job.tool().to_string(),
            verb: "job",
            op: "run",
            decision: Decision::Deny(format!(
                "cancelled: {}",
                cancel.reason().unwrap_or("cancelled by its caller")
            )),
            duration: started.elapsed(),
            detail: Some(detail),
            content: None,
        });
    }
}

/// Where [`Airlock::spawn_with`] runs a job.
enum Spawn<F, T> {
    /// In the awaiting task ([`HostOptions::job_workers`] `Some(0)`).
    Inline(F),
    /// On the job executor.
    Spawned(crate::executor::SpawnedJob<T>),
    /// Nowhere: the executor could not start.
    Failed(String),
}

/// The job executor's threads when the options do not say: one per job slot,
/// at most one per core. More would only take turns on the cores (and each
/// worker's slices delay the jobs queued behind them); fewer would leave a
/// core idle while jobs wait.
fn default_job_workers(max_jobs: u32) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    cores.min(max_jobs as usize).max(1)
}

/// The error of a job cancelled `elapsed` into its run, after `verb_calls`.
fn cancelled(control: &JobControl, elapsed: Duration, verb_calls: u32) -> JobError {
    JobError::Cancelled {
        reason: control
            .cancel
            .reason()
            .unwrap_or("cancelled by its caller")
            .to_string(),
        elapsed,
        verb_calls,
    }
}

/// The root-level exported functions of a component, in order.
fn exports(engine: &Engine, component: &Component) -> Vec<Export> {
    component
        .component_type()
        .exports(engine)
        .filter_map(|(name, ext)| match ext.ty {
            ComponentItem::ComponentFunc(f) => Some(Export {
                name: name.to_string(),
                params: f.params().map(|(n, t)| (n.to_string(), t)).collect(),
                result: f.results().next(),
                index: component.get_export_index(None, name)?,
            }),
            _ => None,
        })
        .collect()
}

/// Refuses a component whose exports' types are too big to write out
/// (schemas, type names): the count stops at the first cap reached.
fn check_type_sizes(exports: &[Export], what: &str) -> Result<(), LoadError> {
    crate::type_size::check(
        exports
            .iter()
            .map(|e| (e.name.as_str(), e.params.as_slice(), e.result.as_ref())),
    )
    .map_err(|o| LoadError::TypeTooLarge {
        what: what.to_string(),
        function: o.function,
        part: o.part,
        cap: o.cap,
    })
}

/// The length of `value` as compact JSON, counted without building the text.
pub(crate) fn json_len(value: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 += b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    match serde_json::to_writer(&mut count, value) {
        Ok(()) => count.0,
        Err(_) => usize::MAX,
    }
}
