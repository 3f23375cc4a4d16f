//! The audit trail on disk: one JSON line per verb call, written to a file or
//! to stderr and sealed so that someone who can write the file, but holds
//! none of the host's audit keys, cannot rewrite it unnoticed. Lines hold
//! names, decisions and timings; never secret values and never payload bytes.
//!
//! # Format (version 2)
//!
//! Every line is one JSON object that this module serializes itself
//! (serde_json's compact form, fields in a fixed order) and ends with `\n`:
//!
//! - `seq`: the line's number in the file, from 1;
//! - `prev`: sha256 (hex) of the previous line's exact bytes without its
//!   `\n`, 64 zeros on line 1: a public chain over bytes, not parsed values;
//! - `mac`, the last field of a keyed trail: HMAC-SHA256 under the host's
//!   `[audit] key` of [`MAC_DOMAIN`] followed by the line's exact bytes up to
//!   the `,"mac":` before it.
//!
//! A line is an *anchor* (`anchor`: a fresh random run id, written when a sink
//! opens), a *record* (one verb call; `stream` names its run) or a
//! *checkpoint* (`checkpoint`: `every` after each `checkpoint_every` records
//! of a run, `close` when its sink closes). A checkpoint's `sig`, just before
//! its `mac`, is an Ed25519 signature under `[audit] signing_key` of
//! [`SIG_DOMAIN`] followed by the line's exact bytes up to the `,"sig":`
//! before it: its `seq` (the number of lines it proves, itself included), run,
//! kind, time and `prev` (the chain's head). With the public key alone a
//! checkpoint proves every byte of every line before it.
//!
//! Several processes may share one file: each append takes an exclusive lock
//! on the file, reads the last line to continue its one chain, writes, and
//! unlocks. [`verify`] checks a trail.

mod verify;

#[cfg(test)]
mod tests;

pub use verify::{ChainBreak, Checked, Verified, verify};

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

use airlock_core::{AuditRecord, AuditSink, Decision};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretSlice};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// What every line's MAC covers before the line's bytes.
pub const MAC_DOMAIN: &[u8] = b"airlock audit line v2\n";
/// What every checkpoint's signature covers before the line's bytes.
pub const SIG_DOMAIN: &[u8] = b"airlock audit checkpoint v2\n";
/// Records of one run between two `every` checkpoints, unless configured.
pub const DEFAULT_CHECKPOINT_EVERY: u64 = 100;
/// The longest last line a writer reads back to continue the chain.
const MAX_LINE: u64 = 1 << 20;

/// The keys that seal a trail: the HMAC key of every line and the Ed25519
/// key of checkpoints. Zeroized on drop; `Debug` shows only the public key.
pub struct AuditKeys {
    mac: SecretSlice<u8>,
    signing: SigningKey,
}

impl std::fmt::Debug for AuditKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditKeys")
            .field("mac", &"[redacted]")
            .field("public", &hex::encode(self.public().as_bytes()))
            .finish()
    }
}

impl AuditKeys {
    /// Keys from the HMAC secret (at least 16 bytes) and a 32-byte Ed25519
    /// seed given raw, as 64 hex digits or as base64.
    pub fn new(mac: SecretSlice<u8>, seed: &SecretSlice<u8>) -> Result<Self, String> {
        if mac.expose_secret().len() < 16 {
            return Err(
                "the audit key holds fewer than 16 bytes; put 32 random bytes in it".into(),
            );
        }
        match airlock_sign::SignKey::ed25519_from_seed(seed).map_err(|e| e.to_string())? {
            airlock_sign::SignKey::Ed25519(signing) => Ok(Self {
                mac,
                signing: *signing,
            }),
            airlock_sign::SignKey::Hmac(_) => Err("not an Ed25519 seed".into()),
        }
    }

    /// The public key that checks checkpoints (`airlock audit public-key`).
    pub fn public(&self) -> VerifyingKey {
        self.signing.verifying_key()
    }

    fn mac(&self, covered: &[u8]) -> [u8; 32] {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(self.mac.expose_secret())
            .expect("HMAC takes any key length");
        m.update(MAC_DOMAIN);
        m.update(covered);
        m.finalize().into_bytes().into()
    }

    /// Whether `mac` is this key's MAC of `covered` (in constant time).
    pub(crate) fn mac_ok(&self, covered: &[u8], mac: &[u8; 32]) -> bool {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(self.mac.expose_secret())
            .expect("HMAC takes any key length");
        m.update(MAC_DOMAIN);
        m.update(covered);
        m.verify_slice(mac).is_ok()
    }

    fn sign(&self, covered: &[u8]) -> [u8; 64] {
        let mut msg = Vec::with_capacity(SIG_DOMAIN.len() + covered.len());
        msg.extend_from_slice(SIG_DOMAIN);
        msg.extend_from_slice(covered);
        self.signing.sign(&msg).to_bytes()
    }
}

/// Parses a public key given as 64 hex digits or base64 (32 bytes).
pub fn parse_public_key(text: &str) -> Result<VerifyingKey, String> {
    use base64::Engine;
    let text = text.trim();
    let mut bytes = [0u8; 32];
    let decoded = if text.len() == 64 && hex::decode_to_slice(text, &mut bytes).is_ok() {
        true
    } else {
        [
            &base64::engine::general_purpose::STANDARD,
            &base64::engine::general_purpose::URL_SAFE,
            &base64::engine::general_purpose::STANDARD_NO_PAD,
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        ]
        .iter()
        .filter_map(|e| e.decode(text).ok())
        .find(|v| v.len() == 32)
        .map(|v| bytes.copy_from_slice(&v))
        .is_some()
    };
    if !decoded {
        return Err("not an Ed25519 public key: give 64 hex digits or 32 bytes in base64".into());
    }
    VerifyingKey::from_bytes(&bytes).map_err(|_| "not a valid Ed25519 public key".into())
}

/// Serializes `fields` after `seq` and before `prev`, then seals the line:
/// a signature for checkpoints and a MAC, when there are keys. Returns the
/// line's exact bytes, without `\n`.
fn seal(
    seq: u64,
    fields: Map<String, Value>,
    prev: &[u8; 32],
    keys: Option<&AuditKeys>,
) -> Vec<u8> {
    let checkpoint = fields.contains_key("checkpoint");
    let mut map = Map::new();
    map.insert("seq".into(), seq.into());
    map.extend(fields);
    map.insert("prev".into(), hex::encode(prev).into());
    let mut line = serde_json::to_vec(&Value::Object(map)).expect("a JSON map serializes");
    let Some(keys) = keys else { return line };
    line.pop(); // the closing `}`
    if checkpoint {
        let sig = keys.sign(&line);
        line.extend_from_slice(format!(",\"sig\":\"{}\"", hex::encode(sig)).as_bytes());
    }
    let mac = keys.mac(&line);
    line.extend_from_slice(format!(",\"mac\":\"{}\"}}", hex::encode(mac)).as_bytes());
    line
}

/// Where a chain stands: the last line's number and hash, and (for a file)
/// the file's length just after it.
#[derive(Clone, Copy)]
struct Head {
    seq: u64,
    hash: [u8; 32],
    /// The file's length after the last line.
    end: u64,
    /// That last line's length, its newline included.
    last_len: u64,
}

const START: Head = Head {
    seq: 0,
    hash: [0; 32],
    end: 0,
    last_len: 0,
};

enum Out {
    /// A shared file: locked around each append, its last line re-read when
    /// another writer moved it.
    File(std::fs::File),
    /// A stream of this writer's own (stderr, tests).
    Stream(Box<dyn Write + Send>),
}

struct Writer {
    out: Out,
    keys: Option<Arc<AuditKeys>>,
    stream: String,
    every: u64,
    since: u64,
    closed: bool,
    head: Head,
}

/// Writes each record as one sealed JSON line, continuing the file's chain.
/// Dropping it (or [`AuditSink::close`]) writes the run's closing checkpoint.
pub struct JsonLinesAudit {
    state: Mutex<Writer>,
}

impl JsonLinesAudit {
    /// Appends to `path` (created, mode 0600, if missing), continuing its
    /// chain. Without `keys` the trail is unkeyed: a hash chain that proves
    /// nothing against a writer of the file. Refuses a file whose last line
    /// this version did not write (an older format, or a torn write).
    pub fn to_file(
        path: &Path,
        keys: Option<Arc<AuditKeys>>,
        checkpoint_every: u64,
    ) -> std::io::Result<Self> {
        use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
        let mut options = std::fs::OpenOptions::new();
        // Never through a link: whoever can write the trail's directory could
        // otherwise aim the host at another of its user's files.
        options
            .create(true)
            .append(true)
            .read(true)
            .mode(0o600)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32);
        let file = options.open(path)?;
        let meta = file.metadata()?;
        if !meta.is_file() || meta.uid() != rustix::process::geteuid().as_raw() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "not a regular file of this user's; point [audit] file at one",
            ));
        }
        Self::start(Out::File(file), keys, checkpoint_every)
    }

    /// Writes to the process's stderr (a chain of its own).
    pub fn to_stderr(keys: Option<Arc<AuditKeys>>, checkpoint_every: u64) -> Self {
        Self::to_writer(Box::new(std::io::stderr()), keys, checkpoint_every)
    }

    /// Writes to any sink, starting a chain (tests).
    pub fn to_writer(
        out: Box<dyn Write + Send>,
        keys: Option<Arc<AuditKeys>>,
        checkpoint_every: u64,
    ) -> Self {
        Self::start(Out::Stream(out), keys, checkpoint_every)
            .expect("the anchor line of a stream is reported, not returned")
    }

    fn start(
        out: Out,
        keys: Option<Arc<AuditKeys>>,
        checkpoint_every: u64,
    ) -> std::io::Result<Self> {
        let mut writer = Writer {
            out,
            keys,
            stream: String::new(),
            every: checkpoint_every.max(1),
            since: 0,
            closed: true,
            head: START,
        };
        match writer.open_run() {
            Err(e) if matches!(writer.out, Out::File(_)) => return Err(e),
            Err(_) => eprintln!("airlock: could not write an audit record"),
            Ok(()) => {}
        }
        Ok(Self {
            state: Mutex::new(writer),
        })
    }

    fn writer(&self) -> std::sync::MutexGuard<'_, Writer> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Writer {
    /// Starts a run: a fresh id and its anchor line.
    fn open_run(&mut self) -> std::io::Result<()> {
        let mut id = [0u8; 16];
        if getrandom::fill(&mut id).is_err() {
            // Without OS randomness the id is still unique per run.
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos();
            id = (nanos ^ u128::from(std::process::id())).to_le_bytes();
        }
        self.stream = hex::encode(id);
        self.closed = false;
        self.since = 0;
        let anchor = json!({
            "anchor": self.stream,
            "time": now(),
            "host": format!("airlock {}", env!("CARGO_PKG_VERSION")),
            "pid": std::process::id(),
        });
        self.append(anchor)
    }

    fn checkpoint(&mut self, kind: &str) -> std::io::Result<()> {
        self.since = 0;
        let line = json!({ "checkpoint": kind, "stream": self.stream, "time": now() });
        self.append(line)
    }

    fn append(&mut self, fields: Value) -> std::io::Result<()> {
        let Value::Object(fields) = fields else {
            return Ok(());
        };
        let keys = self.keys.as_deref();
        match &mut self.out {
            Out::Stream(out) => {
                let seq = next_seq(&self.head)?;
                let mut line = seal(seq, fields, &self.head.hash, keys);
                self.head.seq = seq;
                self.head.hash = Sha256::digest(&line).into();
                line.push(b'\n');
                out.write_all(&line)?;
                out.flush()
            }
            Out::File(file) => {
                file.lock()?;
                let written = append_locked(file, &mut self.head, fields, keys);
                let unlocked = file.unlock();
                written.and(unlocked)
            }
        }
    }

    fn close(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        if self.keys.is_some() && self.checkpoint("close").is_err() {
            eprintln!("airlock: could not write the audit trail's closing checkpoint");
        }
    }
}

/// The `seq` of the line after `head`.
fn next_seq(head: &Head) -> std::io::Result<u64> {
    head.seq.checked_add(1).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the trail's last `seq` is the largest number there is; start a new file",
        )
    })
}

/// One append under the file lock: finds the chain's head (re-reading the
/// last line if another writer moved it), writes the sealed line in one
/// `write_all` on the append-mode file.
///
/// The chain is continued only from what this writer can vouch for: a file
/// that shrank (lines removed while it wrote) or whose line this writer wrote
/// last was changed is refused, and with keys so is a last line whose mac
/// does not verify (a line appended by someone without the key), so the next
/// checkpoint never signs over a forgery.
fn append_locked(
    file: &mut std::fs::File,
    head: &mut Head,
    fields: Map<String, Value>,
    keys: Option<&AuditKeys>,
) -> std::io::Result<()> {
    use std::io::{Error, ErrorKind};
    let len = file.metadata()?.len();
    if len < head.end {
        return Err(Error::new(
            ErrorKind::InvalidData,
            format!(
                "the trail shrank from {} to {len} bytes while this host was writing it (lines \
                 were removed); nothing more is written to it: check it with `airlock audit \
                 verify` and start a new file",
                head.end
            ),
        ));
    }
    if len != head.end || (len == 0 && head.seq != 0) {
        if head.end > 0 && !own_line_intact(file, head)? {
            return Err(Error::new(
                ErrorKind::InvalidData,
                "the line this host wrote last was changed; nothing more is written to the \
                 trail: check it with `airlock audit verify` and start a new file",
            ));
        }
        *head = read_head(file, len, keys)?;
    }
    let seq = next_seq(head)?;
    let mut line = seal(seq, fields, &head.hash, keys);
    let hash = Sha256::digest(&line).into();
    line.push(b'\n');
    file.write_all(&line)?;
    *head = Head {
        seq,
        hash,
        end: len + line.len() as u64,
        last_len: line.len() as u64,
    };
    Ok(())
}

/// Whether the line `head` describes is still where this writer left it.
fn own_line_intact(file: &mut std::fs::File, head: &Head) -> std::io::Result<bool> {
    let Some(from) = head.end.checked_sub(head.last_len) else {
        return Ok(false);
    };
    let mut line = vec![0u8; head.last_len as usize];
    file.seek(SeekFrom::Start(from))?;
    file.read_exact(&mut line)?;
    Ok(line.pop() == Some(b'\n') && <[u8; 32]>::from(Sha256::digest(&line)) == head.hash)
}

/// The head of the chain in a file of `len` bytes: its last line's `seq` and
/// hash. With `keys`, that line's mac must verify under them.
fn read_head(
    file: &mut std::fs::File,
    len: u64,
    keys: Option<&AuditKeys>,
) -> std::io::Result<Head> {
    use std::io::{Error, ErrorKind};
    if len == 0 {
        return Ok(START);
    }
    let mut tail = Vec::new();
    let mut pos = len;
    let start = loop {
        let from = pos.saturating_sub(8192);
        let mut chunk = vec![0u8; (pos - from) as usize];
        file.seek(SeekFrom::Start(from))?;
        file.read_exact(&mut chunk)?;
        chunk.extend_from_slice(&tail);
        tail = chunk;
        let search = &tail[..tail.len() - 1];
        if let Some(i) = search.iter().rposition(|&b| b == b'\n') {
            break i + 1;
        }
        if from == 0 {
            break 0;
        }
        if len - from > MAX_LINE {
            return Err(Error::new(
                ErrorKind::InvalidData,
                "its last line is over 1 MiB; airlock did not write it",
            ));
        }
        pos = from;
    };
    let Some(line) = tail[start..].strip_suffix(b"\n") else {
        return Err(Error::new(
            ErrorKind::InvalidData,
            "its last line is incomplete (a write cut short, or the file was cut); check it \
             with `airlock audit verify` and move it aside",
        ));
    };
    let seq = serde_json::from_slice::<Value>(line)
        .ok()
        .and_then(|v| v.get("seq").and_then(Value::as_u64));
    let Some(seq) = seq else {
        return Err(Error::new(
            ErrorKind::InvalidData,
            "its last line is not in the format this airlock writes (an older, unkeyed \
             trail?); move it aside (`airlock audit verify` still reads it) and start a new file",
        ));
    };
    if let Some(keys) = keys
        && !verify::line_mac_ok(line, keys)
    {
        return Err(Error::new(
            ErrorKind::InvalidData,
            "its last line has no mac that verifies under this host's audit key (a line added \
             by someone without the key, a trail written without keys, or with another key); \
             check it with `airlock audit verify --config` and start a new file",
        ));
    }
    Ok(Head {
        seq,
        hash: Sha256::digest(line).into(),
        end: len,
        last_len: line.len() as u64 + 1,
    })
}

fn now() -> String {
    humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string()
}

/// The JSON form of one record (without the chain fields).
pub fn to_json(r: &AuditRecord) -> Value {
    let (decision, reason) = match &r.decision {
        Decision::Allow => ("allow", None),
        Decision::Deny(why) => ("deny", Some(why.as_str())),
    };
    let mut body = json!({
        "time": humantime::format_rfc3339_micros(r.time).to_string(),
        "job": r.job,
        "tool": r.tool,
        "verb": r.verb,
        "op": r.op,
        "decision": decision,
        "reason": reason,
        "duration_us": r.duration.as_micros() as u64,
        "detail": r.detail,
    });
    if let Some(content) = &r.content {
        body["content"] = Value::String(content.clone());
    }
    body
}

impl AuditSink for JsonLinesAudit {
    fn record(&self, record: AuditRecord) {
        let mut w = self.writer();
        // The trail must not take the host down; a failed write is reported.
        let mut body = to_json(&record);
        let reopened = if w.closed { w.open_run() } else { Ok(()) };
        body["stream"] = Value::String(w.stream.clone());
        let written = reopened.and_then(|()| w.append(body));
        w.since += 1;
        let checkpoint = if w.keys.is_some() && w.since >= w.every {
            w.checkpoint("every")
        } else {
            Ok(())
        };
        if let Err(e) = written.and(checkpoint) {
            eprintln!("airlock: could not write an audit record: {e}");
        }
    }

    fn close(&self) {
        self.writer().close();
    }
}

impl Drop for JsonLinesAudit {
    fn drop(&mut self) {
        self.writer().close();
    }
}
