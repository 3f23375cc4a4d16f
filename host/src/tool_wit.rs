//! Reads a tool's WIT sources (a directory with an optional `deps/`, or one
//! file) into a `wit-parser` `Resolve` that also holds the host's own
//! `airlock:verbs` package, so a tool may include the verbs' worlds with or
//! without its own copy of them in `deps/`.
//!
//! `wit-parser` panics when a package is added twice to one `Resolve`, so
//! the sources are parsed first and every package named `airlock:verbs` is
//! checked before anything is resolved: a copy identical to the host's (the
//! `wit/deps/airlock-verbs/` layout wit-bindgen, componentize-py and jco
//! expect) is dropped in favour of the built-in one; any other copy, another
//! version, or a tool package that calls itself `airlock:verbs` is a
//! [`WitError`]. Resolution itself runs under `catch_unwind`, so no panic of
//! `wit-parser` escapes as a crash, whatever the layout.

use std::path::{Path, PathBuf};

use wit_parser::{PackageId, PackageName, Resolve, SourceMap, UnresolvedPackageGroup};

/// The host's own package, as named in WIT.
const VERBS: (&str, &str) = ("airlock", "verbs");

/// Why a tool's WIT could not be read. Each message names the path and says
/// what to change.
#[derive(Debug, thiserror::Error)]
pub enum WitError {
    /// The WIT does not parse or does not resolve (wit-parser's message).
    #[error("cannot read its WIT at {}: {message}", path.display())]
    Invalid {
        /// The `wit` path.
        path: PathBuf,
        /// wit-parser's rendered error.
        message: String,
    },
    /// A package in the tool's WIT is `airlock:verbs` at a version the host
    /// does not serve.
    #[error(
        "its WIT at {} brings airlock:verbs@{found}, but this host serves \
         airlock:verbs@{served}; a tool built against it is refused at load: build it against \
         {served} and replace that copy with this host's (`airlock wit` writes it)",
        path.display()
    )]
    VerbsVersion {
        /// The file or directory holding the copy.
        path: PathBuf,
        /// The version found (`none` when it has no version).
        found: String,
        /// The version this host serves.
        served: &'static str,
    },
    /// A copy of `airlock:verbs` at the host's version whose text is not the
    /// host's, or a tool package named `airlock:verbs`.
    #[error(
        "its WIT at {} defines airlock:verbs@{served} differently from this host ({why}); \
         airlock:verbs is the host's own package: delete that copy or replace it with this \
         host's (`airlock wit` writes it)",
        path.display()
    )]
    VerbsDiffer {
        /// The file or directory holding the copy.
        path: PathBuf,
        /// What differs.
        why: String,
        /// The version this host serves.
        served: &'static str,
    },
    /// `wit-parser` panicked on these sources (a bug in it, contained).
    #[error(
        "cannot read its WIT at {}: the WIT parser failed ({message}); check the WIT with \
         `wasm-tools component wit {}`",
        path.display(), path.display()
    )]
    ParserFailed {
        /// The `wit` path.
        path: PathBuf,
        /// The panic's message.
        message: String,
    },
}

/// The host's `airlock:verbs` sources: (file name, text).
fn verbs_sources() -> &'static [(&'static str, &'static str)] {
    crate::describe::VERBS_WIT
}

/// Reads the WIT at `path` with the host's `airlock:verbs` available and
/// returns the resolve and the tool's own package. `path` must have passed
/// [`crate::files::check_wit_path`].
pub fn read(path: &Path) -> Result<(Resolve, PackageId), WitError> {
    let guarded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| read_unguarded(path)));
    guarded.unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("no message")
            .to_string();
        Err(WitError::ParserFailed {
            path: path.to_path_buf(),
            message,
        })
    })
}

fn read_unguarded(path: &Path) -> Result<(Resolve, PackageId), WitError> {
    let invalid = |message: String| WitError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    let (main, deps) = if path.is_dir() {
        (
            parse_dir(path).map_err(invalid)?,
            parse_deps(&path.join("deps"))?,
        )
    } else {
        (parse_file(path).map_err(invalid)?, Vec::new())
    };
    check_not_verbs(&main, path)?;
    let mut kept = Vec::new();
    for (dep_path, group) in deps {
        if is_host_copy(&group, &dep_path)? {
            continue;
        }
        kept.push(group);
    }
    let mut resolve = Resolve::default();
    let verbs = built_in_verbs();
    resolve
        .push_group(verbs)
        .map_err(|e| invalid(format!("the built-in airlock:verbs does not resolve: {e}")))?;
    let pkg = resolve
        .push_groups(main, kept)
        .map_err(|e| invalid(resolve.render_error(&anyhow::Error::from(e))))?;
    Ok((resolve, pkg))
}

/// The host's `airlock:verbs` package, parsed.
fn built_in_verbs() -> UnresolvedPackageGroup {
    let mut map = SourceMap::new();
    for (file, text) in verbs_sources() {
        map.push_str(&format!("<airlock>/wit/{file}"), *text);
    }
    map.parse()
        .unwrap_or_else(|(_, e)| panic!("the built-in airlock:verbs WIT does not parse: {e}"))
}

fn render(map: &SourceMap, e: &wit_parser::ParseError) -> String {
    e.render(map)
}

/// The `*.wit` files of `dir` as one package group.
fn parse_dir(dir: &Path) -> Result<UnresolvedPackageGroup, String> {
    let mut map = SourceMap::new();
    map.push_dir(dir).map_err(|e| format!("{e:#}"))?;
    map.parse().map_err(|(map, e)| render(&map, &e))
}

/// One `*.wit` file as a package group.
fn parse_file(file: &Path) -> Result<UnresolvedPackageGroup, String> {
    let mut map = SourceMap::new();
    map.push_file(file).map_err(|e| format!("{e:#}"))?;
    map.parse().map_err(|(map, e)| render(&map, &e))
}

/// Every package of `deps/` (a sub-directory or a `*.wit` file each), in
/// name order as `wit-parser` reads them, with the path it came from.
fn parse_deps(deps: &Path) -> Result<Vec<(PathBuf, UnresolvedPackageGroup)>, WitError> {
    if !deps.exists() {
        return Ok(Vec::new());
    }
    let invalid = |path: &Path, message: String| WitError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    let mut entries: Vec<PathBuf> = std::fs::read_dir(deps)
        .and_then(|i| i.map(|e| e.map(|e| e.path())).collect())
        .map_err(|e| invalid(deps, e.to_string()))?;
    entries.sort();
    let mut groups = Vec::new();
    for entry in entries {
        let group = if entry.is_dir() {
            parse_dir(&entry)
        } else {
            match entry.extension().and_then(|e| e.to_str()) {
                Some("wit") => parse_file(&entry),
                Some("wasm" | "wat") => Err(
                    "airlock reads WIT text only: put the package's *.wit files in a folder of \
                     deps/ instead of an encoded package"
                        .to_string(),
                ),
                _ => continue,
            }
        };
        groups.push((entry.clone(), group.map_err(|m| invalid(&entry, m))?));
    }
    Ok(groups)
}

fn is_verbs(name: &PackageName) -> bool {
    (name.namespace.as_str(), name.name.as_str()) == VERBS
}

fn served() -> &'static str {
    airlock_core::WIT_VERSION
}

/// The tool's own sources must not define `airlock:verbs` (not even nested).
fn check_not_verbs(group: &UnresolvedPackageGroup, path: &Path) -> Result<(), WitError> {
    let names = std::iter::once(&group.main).chain(&group.nested);
    for pkg in names {
        if is_verbs(&pkg.name) {
            return Err(WitError::VerbsDiffer {
                path: path.to_path_buf(),
                why: format!("the tool's own WIT declares package `{}`", pkg.name),
                served: served(),
            });
        }
    }
    Ok(())
}

/// Whether the dependency `group` read from `path` is a copy of the host's
/// `airlock:verbs` (then it is dropped), an error if it is another version
/// or another text of it, and `false` for any other package.
fn is_host_copy(group: &UnresolvedPackageGroup, path: &Path) -> Result<bool, WitError> {
    let mut verbs = std::iter::once(&group.main)
        .chain(&group.nested)
        .filter(|p| is_verbs(&p.name));
    let Some(pkg) = verbs.next() else {
        return Ok(false);
    };
    let version = pkg.name.version.as_ref().map(ToString::to_string);
    if version.as_deref() != Some(served()) {
        return Err(WitError::VerbsVersion {
            path: path.to_path_buf(),
            found: version.unwrap_or_else(|| "(no version)".into()),
            served: served(),
        });
    }
    let differ = |why: String| WitError::VerbsDiffer {
        path: path.to_path_buf(),
        why,
        served: served(),
    };
    if !is_verbs(&group.main.name) || !group.nested.is_empty() {
        return Err(differ("it is nested in another package's sources".into()));
    }
    if !path.is_dir() {
        return Err(differ(
            "it is one file; the host's copy is a folder of its *.wit files".into(),
        ));
    }
    let mut theirs = Vec::new();
    let files = std::fs::read_dir(path).map_err(|e| differ(e.to_string()))?;
    for file in files {
        let file = file.map_err(|e| differ(e.to_string()))?.path();
        let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if file.is_dir() || !name.ends_with(".wit") {
            continue;
        }
        let text = std::fs::read_to_string(&file).map_err(|e| differ(e.to_string()))?;
        theirs.push((name.to_string(), normalize(&text)));
    }
    theirs.sort();
    let mut ours: Vec<(String, String)> = verbs_sources()
        .iter()
        .map(|(name, text)| (name.to_string(), normalize(text)))
        .collect();
    ours.sort();
    if theirs == ours {
        return Ok(true);
    }
    let names = |v: &[(String, String)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    let why = match (names(&theirs), names(&ours)) {
        (t, o) if t != o => format!("it has {}; the host's has {}", t.join(", "), o.join(", ")),
        _ => {
            let changed: Vec<&str> = theirs
                .iter()
                .zip(&ours)
                .filter(|(t, o)| t.1 != o.1)
                .map(|(t, _)| t.0.as_str())
                .collect();
            format!("{} differ", changed.join(", "))
        }
    };
    Err(differ(why))
}

/// The text with line endings and trailing spaces made uniform, so a copy
/// checked out with CRLF endings still counts as the host's.
fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOOL: &str = "package my:hello;\n\
        /// Says hello.\n\
        world hello {\n  include airlock:verbs/logger@0.1.0;\n  \
        /// Greets `name`.\n  export greet: func(name: string) -> string;\n}\n";

    /// A tool directory: `wit/world.wit` and, if `verbs` is given, a
    /// `deps/airlock-verbs/` holding those files.
    fn tool_dir(verbs: Option<&[(&str, String)]>) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("world.wit"), TOOL).unwrap();
        if let Some(files) = verbs {
            let deps = dir.path().join("deps/airlock-verbs");
            std::fs::create_dir_all(&deps).unwrap();
            for (name, text) in files {
                std::fs::write(deps.join(name), text).unwrap();
            }
        }
        dir
    }

    fn host_copy() -> Vec<(&'static str, String)> {
        verbs_sources()
            .iter()
            .map(|(n, t)| (*n, t.to_string()))
            .collect()
    }

    fn world_docs(resolve: &Resolve, pkg: PackageId) -> Option<String> {
        let world = resolve.packages[pkg].worlds["hello"];
        resolve.worlds[world].docs.contents.clone()
    }

    #[test]
    fn a_tool_without_deps_gets_the_built_in_verbs() {
        let dir = tool_dir(None);
        let (resolve, pkg) = read(dir.path()).unwrap();
        assert_eq!(world_docs(&resolve, pkg).as_deref(), Some("Says hello."));
    }

    #[test]
    fn the_standard_deps_copy_of_the_host_verbs_just_works() {
        let dir = tool_dir(Some(&host_copy()));
        let (resolve, pkg) = read(dir.path()).unwrap();
        assert_eq!(world_docs(&resolve, pkg).as_deref(), Some("Says hello."));
        let verbs = resolve
            .packages
            .iter()
            .filter(|(_, p)| is_verbs(&p.name))
            .count();
        assert_eq!(verbs, 1, "one airlock:verbs in the resolve");
    }

    #[test]
    fn a_copy_with_crlf_line_endings_is_still_the_host_copy() {
        let crlf: Vec<(&str, String)> = host_copy()
            .into_iter()
            .map(|(n, t)| (n, t.replace('\n', "\r\n")))
            .collect();
        let dir = tool_dir(Some(&crlf));
        read(dir.path()).unwrap();
    }

    #[test]
    fn another_version_of_the_verbs_in_deps_is_a_version_error() {
        let other: Vec<(&str, String)> = host_copy()
            .into_iter()
            .map(|(n, t)| (n, t.replace("airlock:verbs@0.1.0", "airlock:verbs@0.2.0")))
            .collect();
        let dir = tool_dir(Some(&other));
        match read(dir.path()).unwrap_err() {
            WitError::VerbsVersion {
                path,
                found,
                served,
            } => {
                assert!(path.ends_with("deps/airlock-verbs"), "{}", path.display());
                assert_eq!(found, "0.2.0");
                assert_eq!(served, "0.1.0");
            }
            other => panic!("expected VerbsVersion, got {other:?}"),
        }
    }

    #[test]
    fn an_edited_copy_of_the_verbs_at_our_version_is_refused_naming_the_file() {
        let mut edited = host_copy();
        let log = edited.iter_mut().find(|(n, _)| *n == "log.wit").unwrap();
        log.1 = log.1.replace("interface log", "/// Edited.\ninterface log");
        let dir = tool_dir(Some(&edited));
        let e = read(dir.path()).unwrap_err();
        assert!(
            matches!(&e, WitError::VerbsDiffer { why, .. } if why == "log.wit differ"),
            "{e:?}"
        );
        assert!(e.to_string().contains("`airlock wit` writes it"), "{e}");
    }

    #[test]
    fn a_single_file_or_nested_copy_of_the_verbs_is_refused_not_a_panic() {
        let dir = tool_dir(None);
        let deps = dir.path().join("deps");
        std::fs::create_dir_all(&deps).unwrap();
        std::fs::write(
            deps.join("verbs.wit"),
            "package airlock:verbs@0.1.0;\ninterface types {}\n",
        )
        .unwrap();
        let e = read(dir.path()).unwrap_err();
        assert!(matches!(e, WitError::VerbsDiffer { .. }), "{e:?}");

        let dir = tool_dir(None);
        std::fs::write(
            dir.path().join("extra.wit"),
            "package my:hello;\npackage airlock:verbs@0.1.0 { interface types {} }\n",
        )
        .unwrap();
        let e = read(dir.path()).unwrap_err();
        assert!(matches!(e, WitError::VerbsDiffer { .. }), "{e:?}");
    }

    #[test]
    fn a_tool_package_named_airlock_verbs_is_refused_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tool.wit");
        std::fs::write(
            &file,
            "package airlock:verbs@0.1.0;\nworld w { export f: func(); }\n",
        )
        .unwrap();
        let e = read(&file).unwrap_err();
        assert!(
            matches!(&e, WitError::VerbsDiffer { why, .. } if why.contains("declares package")),
            "{e:?}"
        );
    }

    #[test]
    fn two_deps_with_one_package_name_are_an_error_not_a_panic() {
        let dir = tool_dir(None);
        for sub in ["a", "b"] {
            let d = dir.path().join("deps").join(sub);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("x.wit"), "package dup:x;\ninterface i {}\n").unwrap();
        }
        let e = read(dir.path()).unwrap_err();
        assert!(matches!(e, WitError::Invalid { .. }), "{e:?}");
        assert!(e.to_string().contains("dup:x"), "{e}");
    }

    #[test]
    fn an_encoded_package_in_deps_is_refused_with_what_to_do() {
        let dir = tool_dir(None);
        std::fs::create_dir_all(dir.path().join("deps")).unwrap();
        std::fs::write(dir.path().join("deps/pkg.wasm"), b"\0asm").unwrap();
        let e = read(dir.path()).unwrap_err();
        assert!(e.to_string().contains("WIT text only"), "{e}");
    }
}
