//! `airlock cache path | ls | gc`: where the compiled-component cache is,
//! what it holds, and evicting its least recently used entries down to the
//! cap (or `--max-size`, or `--all`). Only entries of ours are ever deleted.

use std::path::Path;
use std::time::SystemTime;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::Failure;
use crate::cache::{
    CACHE_DIR_ENV, CACHE_KEY_ENV, CACHE_MAX_SIZE_ENV, CacheEntry, ComponentCache, Freed,
    HousekeepingError, Other, lru,
};

#[derive(Debug, Args)]
pub(super) struct CacheArgs {
    #[command(subcommand)]
    command: CacheCommand,
}

#[derive(Debug, Subcommand)]
enum CacheCommand {
    /// Print the cache directory, its key file and its size cap.
    Path {
        /// Print them as one JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
    /// List the cached compiled components, least recently used first.
    Ls {
        /// Print the listing as one JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Evict the least recently used entries until the cache fits its cap.
    Gc {
        /// Evict down to SIZE (e.g. 200MiB) instead of the cap.
        #[arg(long, value_name = "SIZE", conflicts_with = "all")]
        max_size: Option<String>,
        /// Evict every entry.
        #[arg(long)]
        all: bool,
        /// Print what was freed as one JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
}

impl CacheArgs {
    /// Whether the output (and any error) is wanted as JSON.
    pub(super) fn json(&self) -> bool {
        match self.command {
            CacheCommand::Path { json }
            | CacheCommand::Ls { json }
            | CacheCommand::Gc { json, .. } => json,
        }
    }
}

/// The cap of every host this process makes: `$AIRLOCK_CACHE_MAX_SIZE` or
/// the default, a usage error when the variable is not a size.
pub(super) fn max_size() -> Result<u64, Failure> {
    lru::max_size_setting(None).map_err(|e| Failure::usage(e.to_string()))
}

pub(super) fn cache(args: CacheArgs) -> Result<(), Failure> {
    // The cache every other command uses: HostOptions::default(), which
    // honours $AIRLOCK_CACHE and $AIRLOCK_CACHE_KEY.
    let cache = ComponentCache::new(None, None);
    let cap = max_size()?;
    let dir = || {
        cache.dir().map(Path::to_path_buf).ok_or_else(|| {
            Failure::usage(format!(
                "there is no compiled-component cache directory (no home directory); set {CACHE_DIR_ENV}"
            ))
        })
    };
    match args.command {
        CacheCommand::Path { json } => path(&cache, cap, json),
        CacheCommand::Ls { json } => ls(&dir()?, cap, json),
        CacheCommand::Gc {
            max_size,
            all,
            json,
        } => {
            let target = match (all, max_size) {
                (true, _) => 0,
                (false, Some(text)) => crate::units::parse_size(&text)
                    .map(|n| n as u64)
                    .map_err(|e| Failure::usage(format!("--max-size: {e}")))?,
                (false, None) => cap,
            };
            gc(&dir()?, target, json)
        }
    }
}

fn path(cache: &ComponentCache, cap: u64, json: bool) -> Result<(), Failure> {
    let from = |var: &str| {
        if std::env::var_os(var).is_some() {
            format!("${var}")
        } else {
            "default".to_string()
        }
    };
    let shown = |p: Option<&Path>| p.map(|p| p.display().to_string());
    let (dir, key) = (shown(cache.dir()), shown(cache.key_path()));
    if json {
        outln!(
            "{}",
            json!({ "ok": true, "dir": dir, "key": key, "max_size": cap })
        );
        return Ok(());
    }
    let none = "(none: no home directory)".to_string();
    outln!(
        "cache     {}  ({})",
        dir.unwrap_or_else(|| none.clone()),
        from(CACHE_DIR_ENV)
    );
    outln!(
        "key       {}  ({})",
        key.unwrap_or(none),
        from(CACHE_KEY_ENV)
    );
    outln!("max size  {}  ({})", size(cap), from(CACHE_MAX_SIZE_ENV));
    Ok(())
}

fn ls(dir: &Path, cap: u64, json: bool) -> Result<(), Failure> {
    let listing = lru::list(dir).map_err(refused)?;
    let total = listing.total();
    if json {
        let entries: Vec<Value> = listing.entries.iter().map(entry_json).collect();
        outln!(
            "{}",
            json!({
                "ok": true,
                "dir": dir.display().to_string(),
                "entries": entries,
                "total": total,
                "max_size": cap,
                "left_alone": others_json(&listing.others),
            })
        );
        return Ok(());
    }
    outln!("{}", dir.display());
    if !listing.entries.is_empty() {
        outln!(
            "{:<22} {:>10}  COMPONENT (sha256)",
            "LAST USE (UTC)",
            "SIZE"
        );
    }
    for e in &listing.entries {
        outln!(
            "{:<22} {:>10}  {}",
            when(e.last_use),
            size(e.size),
            e.component
        );
    }
    outln!(
        "{} {}, {} of a {} cap",
        listing.entries.len(),
        plural(listing.entries.len(), "entry", "entries"),
        size(total),
        size(cap)
    );
    print_others(&listing.others);
    Ok(())
}

fn gc(dir: &Path, target: u64, json: bool) -> Result<(), Failure> {
    let freed = lru::gc(dir, target).map_err(refused)?;
    if json {
        outln!("{}", gc_json(dir, target, &freed));
        return Ok(());
    }
    let removed = freed.removed.len() + freed.leftovers.len();
    if removed == 0 {
        outln!(
            "nothing to free in {}: {} {}, {}, within {}",
            dir.display(),
            freed.kept.len(),
            plural(freed.kept.len(), "entry", "entries"),
            size(freed.kept_bytes()),
            size(target)
        );
    } else {
        outln!(
            "freed {} in {}: removed {} {}{}; kept {} ({})",
            size(freed.bytes()),
            dir.display(),
            freed.removed.len(),
            plural(freed.removed.len(), "entry", "entries"),
            match freed.leftovers.len() {
                0 => String::new(),
                n => format!(" and {n} leftover {}", plural(n, "file", "files")),
            },
            freed.kept.len(),
            size(freed.kept_bytes())
        );
    }
    print_others(&freed.others);
    Ok(())
}

fn gc_json(dir: &Path, target: u64, freed: &Freed) -> Value {
    json!({
        "ok": true,
        "dir": dir.display().to_string(),
        "max_size": target,
        "freed": freed.bytes(),
        "removed": freed.removed.iter().map(entry_json).collect::<Vec<_>>(),
        "leftovers_removed": freed.leftovers.iter().map(|e| e.file.clone()).collect::<Vec<_>>(),
        "kept": freed.kept.len(),
        "kept_bytes": freed.kept_bytes(),
        "left_alone": others_json(&freed.others),
    })
}

fn refused(e: HousekeepingError) -> Failure {
    match e {
        HousekeepingError::Refused { .. } => Failure::usage(e.to_string()),
        HousekeepingError::Io { .. } => Failure::internal(e.to_string()),
    }
}

fn entry_json(e: &CacheEntry) -> Value {
    json!({
        "file": e.file,
        "component": e.component,
        "engine": e.engine,
        "size": e.size,
        "last_use": humantime::format_rfc3339_seconds(e.last_use).to_string(),
    })
}

fn others_json(others: &[Other]) -> Value {
    json!(
        others
            .iter()
            .map(|o| json!({ "file": o.file, "why": o.why }))
            .collect::<Vec<_>>()
    )
}

/// Files the cache never deletes, one line each.
fn print_others(others: &[Other]) {
    for o in others {
        outln!(
            "left alone (not an entry of airlock's): {} ({})",
            o.file,
            o.why
        );
    }
}

/// `2025-06-01 10:11:12`, UTC.
fn when(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t)
        .to_string()
        .trim_end_matches('Z')
        .replacen('T', " ", 1)
}

/// `38.2 MiB`, `512 bytes`: sizes for people (exact bytes are in `--json`).
fn size(bytes: u64) -> String {
    const UNITS: [(&str, u32); 3] = [("GiB", 30), ("MiB", 20), ("KiB", 10)];
    for (unit, shift) in UNITS {
        if bytes >= 1 << shift {
            let value = bytes as f64 / (1u64 << shift) as f64;
            return if bytes.is_multiple_of(1 << shift) {
                format!("{} {unit}", bytes >> shift)
            } else {
                format!("{value:.1} {unit}")
            };
        }
    }
    format!("{bytes} {}", plural(bytes as usize, "byte", "bytes"))
}

fn plural(n: usize, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 { one } else { many }
}
