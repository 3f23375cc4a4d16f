//! Airlock's own WIT package, `airlock:verbs@0.1.0`, as the binary carries it,
//! and `airlock wit`: writing it to `DIR/wit/deps/airlock-verbs/`, where
//! `wit-bindgen`, componentize-py and componentize-js look for a dependency.

use std::path::{Path, PathBuf};

use crate::Error;

/// Where a tool project keeps airlock's WIT package, under its root.
pub const DEPS_DIR: &str = "wit/deps/airlock-verbs";

/// Every file of the `airlock:verbs@0.1.0` package: each verb, the shared
/// types, and the worlds. The repository's `wit/` directory, embedded.
pub const VERBS_WIT: &[(&str, &str)] = &[
    ("types.wit", include_str!("../../wit/types.wit")),
    ("sign.wit", include_str!("../../wit/sign.wit")),
    ("log.wit", include_str!("../../wit/log.wit")),
    ("fetch.wit", include_str!("../../wit/fetch.wit")),
    ("complete.wit", include_str!("../../wit/complete.wit")),
    ("kv.wit", include_str!("../../wit/kv.wit")),
    ("sql.wit", include_str!("../../wit/sql.wit")),
    ("worlds.wit", include_str!("../../wit/worlds.wit")),
];

/// What happened to one file of the package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The file did not exist and was written.
    Created,
    /// The file held the same bytes already; it was left alone.
    Unchanged,
    /// The file held other bytes and `force` replaced them.
    Replaced,
}

/// Writes [`VERBS_WIT`] into `root/wit/deps/airlock-verbs/`, creating the
/// directories. A file that exists with other contents is an error naming it,
/// unless `force`; identical files are left alone, so running it twice is
/// harmless. Nothing is written when any file would be refused.
pub fn write_verbs_wit(root: &Path, force: bool) -> Result<Vec<(PathBuf, Outcome)>, Error> {
    let dir = root.join(DEPS_DIR);
    let mut plan = Vec::new();
    for (file, text) in VERBS_WIT {
        let path = dir.join(file);
        let outcome = match std::fs::read(&path) {
            Ok(existing) if existing == text.as_bytes() => Outcome::Unchanged,
            Ok(_) if force => Outcome::Replaced,
            Ok(_) => return Err(Error::WitDiffers { path }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Outcome::Created,
            Err(source) => return Err(Error::Io { path, source }),
        };
        plan.push((path, *text, outcome));
    }
    std::fs::create_dir_all(&dir).map_err(|source| Error::Io {
        path: dir.clone(),
        source,
    })?;
    plan.into_iter()
        .map(|(path, text, outcome)| {
            if outcome != Outcome::Unchanged {
                std::fs::write(&path, text).map_err(|source| Error::Io {
                    path: path.clone(),
                    source,
                })?;
            }
            Ok((path, outcome))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_package_parses_and_has_every_verb_and_world() {
        let mut map = wit_parser::SourceMap::new();
        for (file, text) in VERBS_WIT {
            map.push_str(file, *text);
        }
        let mut resolve = wit_parser::Resolve::default();
        let pkg = resolve
            .push_group(map.parse().expect("the verbs WIT parses"))
            .expect("the verbs WIT resolves");
        let package = &resolve.packages[pkg];
        assert_eq!(package.name.to_string(), "airlock:verbs@0.1.0");
        for verb in crate::Verb::ALL {
            assert!(package.interfaces.contains_key(verb.name()), "{verb:?}");
        }
        assert!(package.interfaces.contains_key("sql"));
        for world in [
            "pure",
            "logger",
            "signer",
            "fetcher",
            "chatter",
            "researcher",
            "analyst",
        ] {
            assert!(package.worlds.contains_key(world), "{world}");
        }
    }

    #[test]
    fn writes_then_is_idempotent_then_refuses_a_changed_file() {
        let dir = tempfile::tempdir().unwrap();
        let first = write_verbs_wit(dir.path(), false).unwrap();
        assert_eq!(first.len(), VERBS_WIT.len());
        assert!(first.iter().all(|(_, o)| *o == Outcome::Created));
        let log = dir.path().join(DEPS_DIR).join("log.wit");
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            include_str!("../../wit/log.wit")
        );

        let again = write_verbs_wit(dir.path(), false).unwrap();
        assert!(again.iter().all(|(_, o)| *o == Outcome::Unchanged));

        std::fs::write(&log, "edited").unwrap();
        let sign = dir.path().join(DEPS_DIR).join("sign.wit");
        std::fs::remove_file(&sign).unwrap();
        let err = write_verbs_wit(dir.path(), false).unwrap_err();
        assert!(
            matches!(&err, Error::WitDiffers { path } if *path == log),
            "{err}"
        );
        assert!(err.to_string().contains("--force"), "{err}");
        // Refused as a whole: the missing file was not written either.
        assert!(!sign.exists());

        let forced = write_verbs_wit(dir.path(), true).unwrap();
        let outcome = |name: &str| {
            forced
                .iter()
                .find(|(p, _)| p.ends_with(name))
                .map(|(_, o)| o.clone())
        };
        assert_eq!(outcome("log.wit"), Some(Outcome::Replaced));
        assert_eq!(outcome("sign.wit"), Some(Outcome::Created));
        assert_eq!(outcome("types.wit"), Some(Outcome::Unchanged));
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            include_str!("../../wit/log.wit")
        );
    }
}
