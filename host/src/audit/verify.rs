//! Checking an audit trail: the chain over each line's exact bytes, the form
//! of every line, and (given keys) every line's MAC and every checkpoint's
//! signature. Nothing is ever re-serialized to be hashed or checked: MACs,
//! signatures and `prev` are computed over the bytes as they are in the file.

use std::collections::HashMap;

use ed25519_dalek::{Signature, VerifyingKey};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::{AuditKeys, SIG_DOMAIN};

/// What a verification checks beyond the chain and the form of each line.
#[derive(Debug, Clone, Copy)]
pub enum Checked<'a> {
    /// Nothing more: this proves nothing against a writer of the file, who
    /// can recompute every `prev`.
    Chain,
    /// Every checkpoint's signature, with this public key: proves the lines
    /// before the last checkpoint, byte for byte.
    Signatures(VerifyingKey),
    /// Every line's MAC and every checkpoint's signature, with the host's keys.
    Keys(&'a AuditKeys),
}

/// What [`verify`] found in a trail whose chain is intact.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verified {
    /// Lines in the file.
    pub lines: usize,
    /// Verb-call records.
    pub records: usize,
    /// Host runs (anchor lines).
    pub runs: usize,
    /// Checkpoints (their signatures were checked unless [`Checked::Chain`]).
    pub checkpoints: usize,
    /// Every line carries a MAC (the trail was written with keys).
    pub keyed: bool,
    /// Written by an older airlock: hash-chained, unkeyed, never proven.
    pub legacy: bool,
    /// The last checkpoint's line and time.
    pub last_checkpoint: Option<(usize, String)>,
    /// Records after the last checkpoint: no signature covers them.
    pub unproven: usize,
    /// The anchor lines of runs with no closing checkpoint: a host still
    /// running or killed, or a trail whose end was removed.
    pub unclosed: Vec<usize>,
}

impl Verified {
    /// Whether a checkpoint covers every record and closes every run.
    pub fn complete(&self) -> bool {
        self.unproven == 0 && self.unclosed.is_empty() && !self.legacy && self.lines > 0
    }

    /// Why the trail is not [`complete`](Self::complete), in words; `None`
    /// when it is.
    pub fn gaps(&self) -> Option<String> {
        if self.complete() {
            return None;
        }
        if self.legacy {
            return Some(
                "the trail was written by an older airlock, unkeyed: nothing in it is signed"
                    .into(),
            );
        }
        if self.lines == 0 {
            return Some("the trail is empty".into());
        }
        let mut parts = Vec::new();
        match &self.last_checkpoint {
            None => parts.push(format!(
                "no signed checkpoint: none of its {} verb-call records is proven",
                self.records
            )),
            Some((line, _)) if self.unproven > 0 => parts.push(format!(
                "{} verb-call record{} after the last signed checkpoint (line {line}) {} unproven",
                self.unproven,
                if self.unproven == 1 { "" } else { "s" },
                if self.unproven == 1 { "is" } else { "are" },
            )),
            Some(_) => {}
        }
        match self.unclosed.as_slice() {
            [] => {}
            [one] => parts.push(format!(
                "the run that began at line {one} has no closing checkpoint"
            )),
            many => parts.push(format!(
                "the runs that began at lines {} have no closing checkpoint",
                many.iter()
                    .map(usize::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
        Some(format!(
            "{} (a host still running or killed, or a trail whose end was removed)",
            parts.join("; ")
        ))
    }
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

/// Splits `bytes` ending in `,"NAME":"<hex of N bytes>"` plus `tail`
/// into the bytes before it and the decoded value. The hex must be lowercase,
/// as this module writes it.
fn split_field<'a, const N: usize>(
    bytes: &'a [u8],
    name: &str,
    tail: &[u8],
) -> Option<(&'a [u8], [u8; N])> {
    let head = format!(",\"{name}\":\"");
    let suffix = head.len() + 2 * N + 1 + tail.len();
    let at = bytes.len().checked_sub(suffix)?;
    let (covered, rest) = bytes.split_at(at);
    let rest = rest.strip_prefix(head.as_bytes())?;
    let (digits, rest) = rest.split_at(2 * N);
    if rest != [b"\"".as_slice(), tail].concat() {
        return None;
    }
    if !digits
        .iter()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
    {
        return None;
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(digits, &mut out).ok()?;
    Some((covered, out))
}

/// Whether `line` (without its newline) ends in a `mac` that `keys` verifies.
pub(crate) fn line_mac_ok(line: &[u8], keys: &AuditKeys) -> bool {
    split_field::<32>(line, "mac", b"}").is_some_and(|(covered, mac)| keys.mac_ok(covered, &mac))
}

struct Run {
    anchor: usize,
    closed: bool,
}

/// Checks a trail from its first line to its last; see the module docs of
/// `audit` for the format. The first broken line is the error.
pub fn verify(bytes: &[u8], check: Checked<'_>) -> Result<Verified, ChainBreak> {
    let mut found = Verified {
        keyed: true,
        ..Verified::default()
    };
    if bytes.is_empty() {
        found.keyed = false;
        return Ok(found);
    }
    let mut lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    if lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    } else {
        return Err(ChainBreak {
            line: lines.len(),
            reason: "the last line is incomplete (no newline): a write was cut short or the \
                     file was cut mid-line"
                .into(),
        });
    }
    if is_legacy(lines[0]) {
        // An older trail proves nothing against a writer of the file, so it
        // cannot pass a check that promises proof (and a forger could dress a
        // keyed trail up as one).
        if !matches!(check, Checked::Chain) {
            return Err(ChainBreak {
                line: 1,
                reason: "the trail is in the older, unkeyed format, which no key can prove; \
                         check it without --key or --config"
                    .into(),
            });
        }
        return legacy(&lines);
    }
    let public = match check {
        Checked::Chain => None,
        Checked::Signatures(key) => Some(key),
        Checked::Keys(keys) => Some(keys.public()),
    };
    let mut prev = [0u8; 32];
    let mut runs: HashMap<String, Run> = HashMap::new();
    let mut proven_to = 0;
    let mut saw_mac = false;
    for (i, &line) in lines.iter().enumerate() {
        let n = i + 1;
        let at = |reason: &str| ChainBreak {
            line: n,
            reason: reason.to_string(),
        };
        let map = parse_exact(line).map_err(at)?;
        if map.get("seq").and_then(Value::as_u64) != Some(n as u64) {
            return Err(at(
                "`seq` is not this line's number: a line was removed, inserted or reordered",
            ));
        }
        if map.get("prev").and_then(Value::as_str) != Some(hex::encode(prev).as_str()) {
            return Err(at(
                "`prev` does not match the line before: a line was removed, inserted or reordered",
            ));
        }
        // What the MAC covers: the exact bytes before `,"mac":"..."}`.
        let (covered, has_mac) = match map.contains_key("mac") {
            true => match split_field::<32>(line, "mac", b"}") {
                Some((covered, mac)) => {
                    if let Checked::Keys(keys) = check
                        && !keys.mac_ok(covered, &mac)
                    {
                        return Err(at(
                            "the mac does not verify: the line was changed, or another key wrote it",
                        ));
                    }
                    (covered, true)
                }
                None => return Err(at("`mac` is not the last field in the form airlock writes")),
            },
            false => (&line[..line.len() - 1], false),
        };
        if !has_mac && matches!(check, Checked::Keys(_)) {
            return Err(at(
                "the line carries no mac: it was written without the audit key, or rewritten",
            ));
        }
        // A line without a mac after lines with one: written by someone
        // without the key (a host refuses to chain onto such a line).
        if !has_mac && saw_mac && matches!(check, Checked::Signatures(_)) {
            return Err(at(
                "the line carries no mac though lines before it do: it was written without \
                 the audit key",
            ));
        }
        saw_mac |= has_mac;
        found.keyed &= has_mac;
        let stream = map
            .get("stream")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if let Some(Value::String(id)) = map.get("anchor") {
            if runs.contains_key(id) {
                return Err(at("a run id seen before: the anchor line was copied"));
            }
            runs.insert(
                id.clone(),
                Run {
                    anchor: n,
                    closed: false,
                },
            );
            found.runs += 1;
        } else if let Some(kind) = map.get("checkpoint") {
            let close = match kind.as_str() {
                Some("close") => true,
                Some("every") => false,
                _ => return Err(at("a checkpoint of an unknown kind")),
            };
            let Some(run) = runs.get_mut(stream).filter(|r| !r.closed) else {
                return Err(at(
                    "a checkpoint of a run with no anchor before it, or already closed",
                ));
            };
            let Some((signed, sig)) = split_field::<64>(covered, "sig", b"").filter(|_| has_mac)
            else {
                return Err(at(
                    "a checkpoint without `sig` and `mac` in the form airlock writes",
                ));
            };
            if let Some(key) = public {
                let msg = [SIG_DOMAIN, signed].concat();
                if key
                    .verify_strict(&msg, &Signature::from_bytes(&sig))
                    .is_err()
                {
                    return Err(at(&format!(
                        "the checkpoint's signature does not verify with {}: a line from line {} \
                         on was changed, removed or inserted, or another key signed it",
                        match check {
                            Checked::Keys(_) => "the config's signing key",
                            _ => "the given public key",
                        },
                        proven_to + 1
                    )));
                }
            }
            run.closed |= close;
            proven_to = n;
            found.checkpoints += 1;
            found.unproven = 0;
            let time = map.get("time").and_then(Value::as_str).unwrap_or_default();
            found.last_checkpoint = Some((n, time.to_string()));
        } else if map.contains_key("verb") {
            if runs.get(stream).is_none_or(|r| r.closed) {
                return Err(at(
                    "a record of a run with no anchor before it, or after its closing checkpoint",
                ));
            }
            found.records += 1;
            found.unproven += 1;
        } else {
            return Err(at("not an anchor, a record or a checkpoint"));
        }
        prev = Sha256::digest(line).into();
        found.lines = n;
    }
    found.unclosed = runs
        .values()
        .filter(|r| !r.closed)
        .map(|r| r.anchor)
        .collect();
    found.unclosed.sort_unstable();
    Ok(found)
}

/// Parses a line that must be exactly what airlock writes: one JSON object
/// whose compact serialization is the line itself. An added escape, space or
/// duplicate key makes a line of the same meaning but other bytes: refused.
fn parse_exact(line: &[u8]) -> Result<Map<String, Value>, &'static str> {
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(line) else {
        return Err("not a JSON object");
    };
    let again = serde_json::to_vec(&map).map_err(|_| "not a JSON object")?;
    if again != line {
        return Err(
            "not in the exact form airlock writes (an escape, a space or a duplicate key): \
             the line was rewritten",
        );
    }
    Ok(map)
}

/// Whether a trail's first line is in the format of airlock before 0.2's
/// keyed trail: `prev` and `hash`, no `seq`.
fn is_legacy(first: &[u8]) -> bool {
    matches!(serde_json::from_slice::<Value>(first),
        Ok(Value::Object(m)) if m.contains_key("hash") && !m.contains_key("seq"))
}

/// The older, unkeyed format: `hash` is sha256 of the parsed line without
/// it. Checked so old trails stay readable; it proves nothing.
fn legacy(lines: &[&[u8]]) -> Result<Verified, ChainBreak> {
    let mut prev = hex::encode([0u8; 32]);
    let mut found = Verified {
        legacy: true,
        ..Verified::default()
    };
    for (i, line) in lines.iter().enumerate() {
        let at = |reason: &str| ChainBreak {
            line: i + 1,
            reason: reason.into(),
        };
        let Ok(Value::Object(mut map)) = serde_json::from_slice::<Value>(line) else {
            return Err(at("not a JSON object"));
        };
        let Some(Value::String(hash)) = map.shift_remove("hash") else {
            return Err(at("no `hash` field"));
        };
        if map.get("prev").and_then(Value::as_str) != Some(prev.as_str()) {
            return Err(at(
                "`prev` does not match the line before: a line was removed, inserted or reordered",
            ));
        }
        let text = Value::Object(map.clone()).to_string();
        if hex::encode(Sha256::digest(text.as_bytes())) != hash {
            return Err(at("the line was modified after it was written"));
        }
        if map.contains_key("anchor") {
            found.runs += 1;
        } else {
            found.records += 1;
        }
        found.lines = i + 1;
        prev = hash;
    }
    found.unproven = found.records;
    Ok(found)
}
