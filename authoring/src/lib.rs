//! What `airlock new` and `airlock wit` write.
//!
//! - [`wit`]: airlock's WIT package `airlock:verbs@0.1.0`, embedded, and the
//!   writer that puts it where tool projects expect it (`wit/deps/airlock-verbs/`).
//! - [`project`]: a working tool project in Rust, Python or JavaScript whose
//!   world imports exactly the chosen verbs, with a toolkit granting them and a
//!   README whose shell blocks build, run and serve it (the templates' test
//!   runs those blocks, so README and templates cannot drift).
//!
//! The templates are files under `templates/`, rendered by [`render`].

#![deny(missing_docs)]

pub mod project;
mod render;
pub mod wit;

use std::path::PathBuf;

pub use project::{Lang, Project, Verb};

/// Why a project or the WIT package could not be written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The project name cannot name a WIT package, world, crate and directory.
    #[error(
        "`{name}` cannot name a tool: {why}; use lowercase words of letters and digits joined \
         by `-`, each starting with a letter (for example `page-summary`)"
    )]
    InvalidName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        why: String,
    },
    /// A verb name that airlock does not have.
    #[error("`{0}` is not a verb airlock serves; choose from log, sign, fetch, complete, kv, sql")]
    UnknownVerb(String),
    /// An empty list of verbs.
    #[error(
        "choose at least one verb: --verbs takes log, sign, fetch, complete, kv, sql, comma-separated"
    )]
    NoVerbs,
    /// A language that has no template.
    #[error("`{0}` is not a language with a template; choose rust, python or js")]
    UnknownLang(String),
    /// `new` would write into a directory that exists.
    #[error(
        "{} already exists; choose another name, or move it away first (airlock new never \
         writes into an existing directory)",
        path.display()
    )]
    Exists {
        /// The directory.
        path: PathBuf,
    },
    /// `wit` found one of its files with other contents.
    #[error(
        "{} exists and differs from airlock's copy; pass --force to replace it (your copy may \
         be from another airlock version)",
        path.display()
    )]
    WitDiffers {
        /// The file.
        path: PathBuf,
    },
    /// Reading or writing a file failed.
    #[error("cannot write {}: {source}; check that the directory is writable", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The system's random source failed (for a `sign` project's key).
    #[error("cannot generate the signing key: {0}; try again")]
    Random(String),
}
