//! The audit trail on disk: one JSON object per line per verb call, written to
//! a file or to stderr. Records hold names, decisions and timings; never
//! secret values and never payload bytes.

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use airlock_core::{AuditRecord, AuditSink, Decision};
use serde_json::json;

/// Writes each record as one JSON line.
pub struct JsonLinesAudit {
    out: Mutex<Box<dyn Write + Send>>,
}

impl JsonLinesAudit {
    /// Appends to `path` (created if missing).
    pub fn to_file(path: &Path) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(Self {
            out: Mutex::new(Box::new(std::io::LineWriter::new(file))),
        })
    }

    /// Writes to the process's stderr.
    pub fn to_stderr() -> Self {
        Self {
            out: Mutex::new(Box::new(std::io::stderr())),
        }
    }
}

/// The JSON form of one record.
pub fn to_json(r: &AuditRecord) -> serde_json::Value {
    let (decision, reason) = match &r.decision {
        Decision::Allow => ("allow", None),
        Decision::Deny(why) => ("deny", Some(why.as_str())),
    };
    json!({
        "time": humantime::format_rfc3339_micros(r.time).to_string(),
        "job": r.job,
        "tool": r.tool,
        "verb": r.verb,
        "op": r.op,
        "decision": decision,
        "reason": reason,
        "duration_us": r.duration.as_micros() as u64,
        "detail": r.detail,
    })
}

impl AuditSink for JsonLinesAudit {
    fn record(&self, record: AuditRecord) {
        let line = to_json(&record).to_string();
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        // The trail must not take the host down; a failed write is reported once per record.
        if writeln!(out, "{line}").is_err() {
            eprintln!("airlock: could not write an audit record");
        }
    }
}
