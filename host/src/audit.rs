//! The audit trail on disk: one JSON object per line per verb call, written to
//! a file or to stderr. Records hold names, decisions and timings; never
//! secret values and never payload bytes.
//!
//! The trail is a hash chain: every line carries `prev` (the hash of the line
//! before it) and `hash` (sha256 of the line without its `hash` field). Each
//! run of the host starts with an `anchor` line holding a fresh random value
//! and chained to the file's last line, so an edited, inserted, reordered or
//! deleted line breaks the chain at a place [`verify`] reports.

use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::Mutex;

use airlock_core::{AuditRecord, AuditSink, Decision};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// Writes each record as one chained JSON line.
pub struct JsonLinesAudit {
    state: Mutex<Chain>,
}

struct Chain {
    out: Box<dyn Write + Send>,
    prev: String,
}

impl JsonLinesAudit {
    /// Appends to `path` (created if missing), continuing its chain.
    pub fn to_file(path: &Path) -> std::io::Result<Self> {
        let prev = last_hash(path)?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(Self::start(Box::new(std::io::LineWriter::new(file)), prev))
    }

    /// Writes to the process's stderr (a chain of its own).
    pub fn to_stderr() -> Self {
        Self::start(Box::new(std::io::stderr()), None)
    }

    /// Writes to any sink (tests).
    pub fn to_writer(out: Box<dyn Write + Send>) -> Self {
        Self::start(out, None)
    }

    fn start(out: Box<dyn Write + Send>, prev: Option<String>) -> Self {
        let mut nonce = [0u8; 32];
        getrandom::fill(&mut nonce).unwrap_or_else(|_| {
            // Without OS randomness the anchor is still unique per run.
            nonce[..16].copy_from_slice(
                &std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_nanos()
                    .to_le_bytes(),
            );
        });
        let mut chain = Chain {
            out,
            prev: prev.unwrap_or_else(|| hex::encode([0u8; 32])),
        };
        chain.append(json!({
            "anchor": hex::encode(nonce),
            "time": now(),
            "host": format!("airlock {}", env!("CARGO_PKG_VERSION")),
        }));
        Self {
            state: Mutex::new(chain),
        }
    }
}

impl Chain {
    fn append(&mut self, body: Value) {
        let Value::Object(mut map) = body else { return };
        map.insert("prev".into(), Value::String(self.prev.clone()));
        let hash = line_hash(&map);
        map.insert("hash".into(), Value::String(hash.clone()));
        // The trail must not take the host down; a failed write is reported.
        if writeln!(self.out, "{}", Value::Object(map)).is_err() {
            eprintln!("airlock: could not write an audit record");
        }
        self.prev = hash;
    }
}

fn line_hash(without_hash: &Map<String, Value>) -> String {
    let text = Value::Object(without_hash.clone()).to_string();
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn now() -> String {
    humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string()
}

/// The `hash` of the last line of an existing trail, if any.
fn last_hash(path: &Path) -> std::io::Result<Option<String>> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut last = None;
    for line in std::io::BufReader::new(file).lines() {
        let line = line?;
        if let Ok(Value::Object(m)) = serde_json::from_str::<Value>(&line)
            && let Some(Value::String(h)) = m.get("hash")
        {
            last = Some(h.clone());
        }
    }
    Ok(last)
}

/// The JSON form of one record (without the chain fields).
pub fn to_json(r: &AuditRecord) -> Value {
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
        let body = to_json(&record);
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .append(body);
    }
}

/// What [`verify`] found in an intact trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Verb-call records.
    pub records: usize,
    /// Host runs (anchor lines).
    pub runs: usize,
}

/// The first place an audit trail is broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct ChainBreak {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong there.
    pub reason: String,
}

/// Checks a trail's hash chain from its first line to its last.
pub fn verify(text: &str) -> Result<Verified, ChainBreak> {
    let mut prev = hex::encode([0u8; 32]);
    let mut found = Verified {
        records: 0,
        runs: 0,
    };
    for (i, line) in text.lines().enumerate() {
        let at = |reason: String| ChainBreak {
            line: i + 1,
            reason,
        };
        let Ok(Value::Object(mut map)) = serde_json::from_str::<Value>(line) else {
            return Err(at("not a JSON object".into()));
        };
        let Some(Value::String(hash)) = map.shift_remove("hash") else {
            return Err(at("no `hash` field".into()));
        };
        match map.get("prev") {
            Some(Value::String(p)) if *p == prev => {}
            Some(_) => {
                return Err(at(
                    "`prev` does not match the line before: a line was removed, inserted or reordered".into(),
                ));
            }
            None => return Err(at("no `prev` field".into())),
        }
        if line_hash(&map) != hash {
            return Err(at("the line was modified after it was written".into()));
        }
        if map.contains_key("anchor") {
            found.runs += 1;
        } else {
            found.records += 1;
        }
        prev = hash;
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::{Duration, SystemTime};

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn record(job: u64, decision: Decision) -> AuditRecord {
        AuditRecord {
            time: SystemTime::now(),
            job,
            tool: "t".into(),
            verb: "sign",
            op: "hmac-sha256",
            decision,
            duration: Duration::from_micros(5),
            detail: Some("key=webhook".into()),
        }
    }

    fn trail(n: u64) -> String {
        let buf = Shared::default();
        let sink = JsonLinesAudit::to_writer(Box::new(buf.clone()));
        for j in 0..n {
            sink.record(record(j, Decision::Allow));
        }
        sink.record(record(n, Decision::Deny("denied: key".into())));
        String::from_utf8(buf.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn an_intact_trail_verifies() {
        let t = trail(3);
        assert_eq!(
            verify(&t),
            Ok(Verified {
                records: 4,
                runs: 1
            })
        );
        let first: Value = serde_json::from_str(t.lines().nth(1).unwrap()).unwrap();
        assert_eq!(first["decision"], "allow");
        assert_eq!(first["verb"], "sign");
    }

    #[test]
    fn an_edited_line_is_found() {
        let t = trail(3).replacen("\"job\":1", "\"job\":9", 1);
        assert_eq!(verify(&t).unwrap_err().line, 3);
        assert!(verify(&t).unwrap_err().reason.contains("modified"));
    }

    #[test]
    fn a_removed_or_reordered_line_is_found() {
        let t = trail(3);
        let lines: Vec<&str> = t.lines().collect();
        let removed = [lines[0], lines[1], lines[3], lines[4]].join("\n");
        let e = verify(&removed).unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.reason.contains("removed, inserted or reordered"), "{e}");
        let swapped = [lines[0], lines[2], lines[1], lines[3]].join("\n");
        assert_eq!(verify(&swapped).unwrap_err().line, 2);
    }

    #[test]
    fn runs_appended_to_one_file_form_one_chain() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        for _ in 0..2 {
            let sink = JsonLinesAudit::to_file(&path).unwrap();
            sink.record(record(1, Decision::Allow));
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            verify(&text),
            Ok(Verified {
                records: 2,
                runs: 2
            })
        );
        let first_run_dropped: Vec<&str> = text.lines().skip(2).collect();
        assert!(verify(&first_run_dropped.join("\n")).is_err());
    }
}
