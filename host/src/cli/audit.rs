//! `airlock audit verify FILE`: checks an audit trail's hash chain and reports
//! the first line where it breaks.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::Failure;
use crate::audit::verify;

#[derive(Debug, Args)]
pub(super) struct AuditArgs {
    #[command(subcommand)]
    command: AuditCommand,
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Check that no line was edited, removed, inserted or reordered.
    Verify {
        /// The audit trail (JSON lines).
        file: PathBuf,
    },
}

pub(super) fn audit(args: AuditArgs) -> Result<(), Failure> {
    let AuditCommand::Verify { file } = args.command;
    let text = std::fs::read_to_string(&file)
        .map_err(|e| Failure::usage(format!("cannot read {}: {e}", file.display())))?;
    match verify(&text) {
        Ok(v) => {
            outln!(
                "{}: intact: {} verb-call records from {} host runs",
                file.display(),
                v.records,
                v.runs
            );
            Ok(())
        }
        Err(b) => Err(Failure {
            code: super::exit::TOOL_ERROR,
            kind: "audit-broken",
            message: format!("{}: the chain is broken at {b}", file.display()),
            detail: serde_json::json!({ "line": b.line, "reason": b.reason }),
        }),
    }
}
