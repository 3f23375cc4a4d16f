//! The compiled-component cache: components are compiled once with Cranelift
//! and kept on disk keyed by the component's sha256 and the engine's
//! compatibility hash; later loads map the compiled file instead of compiling.
//!
//! A cache entry is trusted only after its checksum (stored beside it) matches
//! sha256(component digest || compiled bytes): a truncated, corrupt or
//! foreign entry — even another component's, renamed — is recompiled, never loaded.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// A component's identity: the sha256 of its bytes.
pub type Digest32 = [u8; 32];

/// Where compiled components live.
#[derive(Debug, Clone)]
pub struct ComponentCache {
    dir: Option<PathBuf>,
    /// The engine's compatibility hash, computed on first use: a cache
    /// serves the one engine of its host.
    engine_hash: std::sync::OnceLock<u64>,
}

/// What a load did, for callers that report or measure it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// The compiled file was found, verified and mapped.
    Hit,
    /// Compiled now (and stored when the cache is writable).
    Compiled,
    /// An entry existed but failed verification; it was recompiled and replaced.
    Replaced,
}

impl ComponentCache {
    /// A cache in `dir`, or in `$AIRLOCK_CACHE`, or in the user's cache dir.
    /// `None` everywhere means compile every time.
    pub fn new(dir: Option<PathBuf>) -> Self {
        let dir = dir
            .or_else(|| std::env::var_os("AIRLOCK_CACHE").map(PathBuf::from))
            .or_else(|| {
                directories::ProjectDirs::from("dev", "airlock", "airlock")
                    .map(|d| d.cache_dir().join("components"))
            });
        Self {
            dir,
            engine_hash: Default::default(),
        }
    }

    /// A cache that never touches the disk.
    pub fn disabled() -> Self {
        Self {
            dir: None,
            engine_hash: Default::default(),
        }
    }

    /// The cache directory, if any.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// Compiles `bytes` or loads its verified compiled form.
    pub fn load(
        &self,
        engine: &Engine,
        bytes: &[u8],
    ) -> wasmtime::Result<(Component, Digest32, CacheOutcome)> {
        let digest: Digest32 = Sha256::digest(bytes).into();
        let Some(dir) = &self.dir else {
            return Ok((
                Component::new(engine, bytes)?,
                digest,
                CacheOutcome::Compiled,
            ));
        };
        let stem = format!("{}-{:016x}", hex::encode(digest), self.engine_hash(engine));
        let path = dir.join(format!("{stem}.cwasm"));
        let sum_path = dir.join(format!("{stem}.sha256"));
        let existed = path.exists();
        if existed && let Some(component) = load_verified(engine, &digest, &path, &sum_path) {
            return Ok((component, digest, CacheOutcome::Hit));
        }
        let compiled = engine.precompile_component(bytes)?;
        // SAFETY: `compiled` was produced just now by this engine.
        #[allow(unsafe_code)]
        let component = unsafe { Component::deserialize(engine, &compiled)? };
        // A cache that cannot be written is not an error: the job still runs.
        let _ = store(dir, &digest, &path, &sum_path, &compiled);
        let outcome = if existed {
            CacheOutcome::Replaced
        } else {
            CacheOutcome::Compiled
        };
        Ok((component, digest, outcome))
    }
}

/// The checksum that binds a compiled file to the component it came from.
fn checksum(digest: &Digest32, compiled: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(digest);
    h.update(compiled);
    hex::encode(h.finalize())
}

impl ComponentCache {
    fn engine_hash(&self, engine: &Engine) -> u64 {
        *self.engine_hash.get_or_init(|| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            engine.precompile_compatibility_hash().hash(&mut h);
            h.finish()
        })
    }
}

fn load_verified(
    engine: &Engine,
    digest: &Digest32,
    path: &Path,
    sum_path: &Path,
) -> Option<Component> {
    let expected = std::fs::read_to_string(sum_path).ok()?;
    let bytes = std::fs::read(path).ok()?;
    if checksum(digest, &bytes) != expected.trim() {
        return None;
    }
    // SAFETY: the bytes are exactly what this cache wrote after compiling with
    // an engine of the same compatibility hash (checked by their sha256), and
    // wasmtime re-checks the header and engine settings on deserialize.
    #[allow(unsafe_code)]
    unsafe {
        Component::deserialize(engine, &bytes).ok()
    }
}

fn store(
    dir: &Path,
    digest: &Digest32,
    path: &Path,
    sum_path: &Path,
    compiled: &[u8],
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = tempfile_in(dir)?;
    std::fs::write(&tmp, compiled)?;
    std::fs::rename(&tmp, path)?;
    let tmp = tempfile_in(dir)?;
    std::fs::write(&tmp, checksum(digest, compiled))?;
    std::fs::rename(&tmp, sum_path)
}

fn tempfile_in(dir: &Path) -> std::io::Result<PathBuf> {
    let n: u64 = rand::random();
    Ok(dir.join(format!(".tmp-{}-{n:016x}", std::process::id())))
}
