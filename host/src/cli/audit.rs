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
        /// Print the verdict as one JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
}

impl AuditArgs {
    /// Whether the verdict (and any error) is wanted as JSON.
    pub(super) fn json(&self) -> bool {
        let AuditCommand::Verify { json, .. } = self.command;
        json
    }
}

pub(super) fn audit(args: AuditArgs) -> Result<(), Failure> {
    let AuditCommand::Verify { file, json } = args.command;
    let text = std::fs::read_to_string(&file)
        .map_err(|e| Failure::usage(format!("cannot read {}: {e}", file.display())))?;
    match verify(&text) {
        Ok(v) if json => {
            let verdict = serde_json::json!({ "ok": true, "records": v.records, "runs": v.runs });
            outln!("{verdict}");
            Ok(())
        }
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
