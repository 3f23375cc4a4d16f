//! The guests that are not written in Rust: `guests/py-netcat` (Python, built
//! with componentize-py) and `guests/js-netcat` (JavaScript, built with
//! componentize-js). They prove that tools from those toolchains, which import
//! `wasi:sockets` and `wasi:http` whether they use them or not, run unmodified
//! and still reach no network (`tests/integration/no_network.rs`,
//! `host/tests/no_network.rs`).
//!
//! `cargo xtask build-guests` builds them beside the Rust guests
//! (`target/wasm32-wasip2/release/py_netcat.wasm`, `js_netcat.wasm`), so tests
//! find them the same way, through `AIRLOCK_GUESTS`. The toolchains come from
//! the registries and live in `target/polyglot/` (a Python venv with
//! componentize-py, an npm folder with componentize-js), installed once per
//! version. A guest is rebuilt only when its sources, the verbs WIT or the
//! tool version changed: a stamp beside its build directory holds a hash of
//! them. Each build takes 10 to 20 seconds.
//!
//! A guest is built in `target/polyglot/build/NAME/`, a copy of its source
//! directory with the repository's `wit/` as `wit/deps/airlock-verbs`, so the
//! source tree gets no generated files.
//!
//! When a toolchain cannot be installed (no Python, no npm, no registry), the
//! build fails with the reason if `CI` is set; otherwise it prints one warning
//! and skips these guests, and their tests say they skipped (or use an
//! earlier build left in the output directory).

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// The componentize-py version (PyPI) the Python guests are built with. The
/// Python tool template of `airlock new` pins the same version.
pub const COMPONENTIZE_PY: &str = "0.25.1";

/// The componentize-js version (npm `@bytecodealliance/componentize-js`) the
/// JavaScript guests are built with. The JavaScript tool template of
/// `airlock new` pins the same version.
pub const COMPONENTIZE_JS: &str = "0.23.0";

/// The npm package of componentize-js.
const COMPONENTIZE_JS_PACKAGE: &str = "@bytecodealliance/componentize-js";

/// Where the toolchains and build directories live, under the repo root.
const DIR: &str = "target/polyglot";

/// The language a guest is written in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Lang {
    Python,
    JavaScript,
}

/// One non-Rust guest.
struct Guest {
    /// Its directory under `guests/`, which is also its world's name.
    name: &'static str,
    lang: Lang,
    /// Its one source file, next to `wit/world.wit`.
    source: &'static str,
}

/// Every non-Rust guest.
const GUESTS: &[Guest] = &[
    Guest {
        name: "py-netcat",
        lang: Lang::Python,
        source: "app.py",
    },
    Guest {
        name: "js-netcat",
        lang: Lang::JavaScript,
        source: "app.js",
    },
];

/// Build every non-Rust guest into `out` (the Rust guests' output directory)
/// unless its stamp says it is up to date, and return "NAME SIZE" for each
/// one there. Skips them all (with a warning) when a toolchain cannot be
/// installed outside CI.
pub fn build(root: &Path, out: &Path) -> Result<Vec<String>> {
    let dir = root.join(DIR);
    let in_ci = std::env::var_os("CI").is_some();
    let mut built = Vec::new();
    for lang in [Lang::Python, Lang::JavaScript] {
        let tool = match toolchain(&dir, lang) {
            Ok(tool) => tool,
            Err(e) if in_ci => {
                return Err(e.context(format!("CI must build the {} guests", lang_name(lang))));
            }
            Err(e) => {
                let names: Vec<&str> = guests(lang).map(|g| g.name).collect();
                eprintln!(
                    "xtask: warning: not building {} ({e:#}); their tests skip unless an \
                     earlier build is there",
                    names.join(", ")
                );
                continue;
            }
        };
        for guest in guests(lang) {
            built.push(build_one(root, &dir, &tool, guest, out)?);
        }
    }
    Ok(built)
}

fn guests(lang: Lang) -> impl Iterator<Item = &'static Guest> {
    GUESTS.iter().filter(move |g| g.lang == lang)
}

fn lang_name(lang: Lang) -> &'static str {
    match lang {
        Lang::Python => "Python",
        Lang::JavaScript => "JavaScript",
    }
}

/// The pinned tool of `lang`, as "requirement" text (what the stamp records).
fn requirement(lang: Lang) -> String {
    match lang {
        Lang::Python => format!("componentize-py=={COMPONENTIZE_PY}"),
        Lang::JavaScript => format!("{COMPONENTIZE_JS_PACKAGE}@{COMPONENTIZE_JS}"),
    }
}

/// The componentize executable for `lang`, installed into `dir` first unless
/// the installed version is already the pinned one.
fn toolchain(dir: &Path, lang: Lang) -> Result<PathBuf> {
    let want = requirement(lang);
    let exe = match lang {
        Lang::Python => {
            let venv = dir.join("py-venv");
            crate::python_venv(&venv, &want, "componentize-py")?;
            venv.join("bin/componentize-py")
        }
        Lang::JavaScript => {
            let home = dir.join("js-tools");
            let exe = home.join("node_modules/.bin/componentize-js");
            let marker = home.join("airlock-requirement.txt");
            let installed = std::fs::read_to_string(&marker).unwrap_or_default();
            if !(exe.is_file() && installed.trim() == want) {
                install_componentize_js(&home)?;
                std::fs::write(&marker, &want)
                    .with_context(|| format!("could not write {}", marker.display()))?;
            }
            exe
        }
    };
    if !exe.is_file() {
        bail!("{want} installed but {} is missing", exe.display());
    }
    Ok(exe)
}

/// `npm install` of the pinned componentize-js into `home`.
fn install_componentize_js(home: &Path) -> Result<()> {
    eprintln!(
        "xtask: installing {} into {}",
        requirement(Lang::JavaScript),
        home.display()
    );
    std::fs::create_dir_all(home)
        .with_context(|| format!("could not create {}", home.display()))?;
    let package = serde_json::json!({
        "private": true,
        "description": "the componentize-js that `cargo xtask build-guests` uses",
        "dependencies": { COMPONENTIZE_JS_PACKAGE: COMPONENTIZE_JS },
    });
    let manifest = home.join("package.json");
    std::fs::write(&manifest, serde_json::to_string_pretty(&package)?)
        .with_context(|| format!("could not write {}", manifest.display()))?;
    let mut npm = Command::new("npm");
    npm.args(["install", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(home);
    crate::run(
        &mut npm,
        "npm could not install componentize-js (needs Node.js 20+ and the npm registry)",
    )
}

/// The files a guest's build reads, as (path in the build directory, bytes):
/// its source, its world and the verbs WIT under `wit/deps/airlock-verbs`.
fn inputs(root: &Path, guest: &Guest) -> Result<Vec<(PathBuf, Vec<u8>)>> {
    let src = root.join("guests").join(guest.name);
    let read = |path: &Path| {
        std::fs::read(path).with_context(|| format!("could not read {}", path.display()))
    };
    let mut files = vec![
        (PathBuf::from(guest.source), read(&src.join(guest.source))?),
        (
            PathBuf::from("wit/world.wit"),
            read(&src.join("wit/world.wit"))?,
        ),
    ];
    let wit = root.join("wit");
    let mut verbs: Vec<PathBuf> = std::fs::read_dir(&wit)
        .with_context(|| format!("could not list {}", wit.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    verbs.retain(|p| p.extension().is_some_and(|e| e == "wit"));
    verbs.sort();
    for path in verbs {
        let name = path.file_name().unwrap_or_default();
        files.push((Path::new("wit/deps/airlock-verbs").join(name), read(&path)?));
    }
    Ok(files)
}

/// The stamp of a build: a hash of the tool version and every input file,
/// names included.
fn stamp(lang: Lang, files: &[(PathBuf, Vec<u8>)]) -> String {
    let mut hash = Sha256::new();
    hash.update(requirement(lang).as_bytes());
    for (path, bytes) in files {
        let name = path.to_string_lossy();
        hash.update((name.len() as u64).to_le_bytes());
        hash.update(name.as_bytes());
        hash.update((bytes.len() as u64).to_le_bytes());
        hash.update(bytes);
    }
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Build `guest` with `tool` into `out` unless its stamp matches; return
/// "NAME SIZE".
fn build_one(root: &Path, dir: &Path, tool: &Path, guest: &Guest, out: &Path) -> Result<String> {
    let wasm = out.join(format!("{}.wasm", guest.name.replace('-', "_")));
    let files = inputs(root, guest)?;
    let want = stamp(guest.lang, &files);
    let stamp_file = dir.join("build").join(format!("{}.stamp", guest.name));
    let have = std::fs::read_to_string(&stamp_file).unwrap_or_default();
    if !(wasm.is_file() && have.trim() == want) {
        let work = dir.join("build").join(guest.name);
        if work.exists() {
            std::fs::remove_dir_all(&work)
                .with_context(|| format!("could not clear {}", work.display()))?;
        }
        for (path, bytes) in &files {
            let path = work.join(path);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("could not create {}", parent.display()))?;
            }
            std::fs::write(&path, bytes)
                .with_context(|| format!("could not write {}", path.display()))?;
        }
        let built = work.join("out.wasm");
        let mut cmd = Command::new(tool);
        match guest.lang {
            Lang::Python => cmd.args(["-d", "wit", "-w", guest.name, "componentize", "app", "-o"]),
            Lang::JavaScript => cmd.args(["--wit", "wit", "--world-name", guest.name, "-o"]),
        };
        cmd.arg(&built).current_dir(&work);
        if guest.lang == Lang::JavaScript {
            cmd.arg(guest.source);
        }
        let started = Instant::now();
        let hint = format!("fix guests/{} (see the errors above)", guest.name);
        crate::run(&mut cmd, &hint)?;
        std::fs::create_dir_all(out)
            .with_context(|| format!("could not create {}", out.display()))?;
        std::fs::copy(&built, &wasm)
            .with_context(|| format!("could not copy the build to {}", wasm.display()))?;
        std::fs::write(&stamp_file, &want)
            .with_context(|| format!("could not write {}", stamp_file.display()))?;
        eprintln!(
            "xtask: built {} in {:.1} s",
            guest.name,
            started.elapsed().as_secs_f64()
        );
    }
    let size = std::fs::metadata(&wasm)
        .with_context(|| format!("{} is missing", wasm.display()))?
        .len();
    Ok(format!("{} {:.1} KiB", guest.name, size as f64 / 1024.0))
}
