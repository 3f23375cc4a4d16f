//! `airlock new` (a tool project from a template) and `airlock wit` (airlock's
//! WIT package, for a project's `wit/deps/`). The templates and the package
//! live in the `airlock-authoring` crate; this is only their command line.

use std::path::PathBuf;

use airlock_authoring::wit::Outcome;
use airlock_authoring::{Lang, Project, Verb};
use clap::Args;

use super::Failure;

/// `airlock new NAME --lang LANG [--verbs VERB,...]`.
#[derive(Debug, Args)]
pub struct NewArgs {
    /// The tool's name and the directory to create: lowercase words joined by `-`.
    name: String,
    /// The language: rust, python or js.
    #[arg(long)]
    lang: String,
    /// The verbs the tool imports (and its toolkit grants), comma-separated.
    #[arg(long, default_value = "log", value_delimiter = ',')]
    verbs: Vec<String>,
}

/// `airlock wit [--out DIR] [--force]`.
#[derive(Debug, Args)]
pub struct WitArgs {
    /// The project directory; the package goes to DIR/wit/deps/airlock-verbs/.
    #[arg(long, default_value = ".")]
    out: PathBuf,
    /// Replace files that differ from airlock's copy.
    #[arg(long)]
    force: bool,
}

fn usage(e: airlock_authoring::Error) -> Failure {
    Failure::usage(e.to_string())
}

/// Creates the project and says what to do next.
pub fn new(args: NewArgs) -> Result<(), Failure> {
    let lang: Lang = args.lang.parse().map_err(usage)?;
    let verbs = args
        .verbs
        .iter()
        .filter(|v| !v.trim().is_empty())
        .map(|v| v.parse::<Verb>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(usage)?;
    let project = Project::new(&args.name, lang, &verbs).map_err(usage)?;
    let dir = PathBuf::from(&args.name);
    let files = project.create(&dir).map_err(usage)?;
    outln!("created the {lang} tool {}:", dir.display());
    for file in files {
        outln!("  {}", dir.join(file).display());
    }
    outln!(
        "next: cd {} and follow README.md to build it, run it with `airlock run` and serve it \
         with `airlock mcp`",
        dir.display()
    );
    Ok(())
}

/// Writes the package and lists each file with what happened to it.
pub fn wit(args: WitArgs) -> Result<(), Failure> {
    let written = airlock_authoring::wit::write_verbs_wit(&args.out, args.force).map_err(usage)?;
    for (path, outcome) in written {
        let what = match outcome {
            Outcome::Created => "wrote",
            Outcome::Unchanged => "unchanged",
            Outcome::Replaced => "replaced",
        };
        outln!("{what} {}", path.display());
    }
    Ok(())
}
