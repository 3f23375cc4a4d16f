//! `airlock audit verify FILE [--key PUBLIC | --config FILE]`: checks an audit
//! trail and reports the first line where it breaks, or what it could not
//! prove; `airlock audit public-key`: the key that checks its checkpoints.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use serde_json::json;

use super::Failure;
use crate::HostConfig;
use crate::audit::{AuditKeys, Checked, Verified, parse_public_key, verify};

#[derive(Debug, Args)]
pub(super) struct AuditArgs {
    #[command(subcommand)]
    command: AuditCommand,
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Check that no line was edited, removed, inserted or reordered: with
    /// --key every checkpoint's signature, with --config every line's mac too.
    Verify {
        /// The audit trail (JSON lines).
        file: PathBuf,
        /// The trail's Ed25519 public key (64 hex digits or base64, or a file
        /// holding one): proves every line up to the last checkpoint.
        #[arg(long, value_name = "PUBLIC-KEY", conflicts_with = "config")]
        key: Option<String>,
        /// The host config whose [audit] key and signing_key wrote the trail.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Print the verdict as one JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Print the public key that checks the trail's checkpoints.
    PublicKey {
        /// The host config (default ./airlock.toml).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Print it as one JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
}

impl AuditArgs {
    /// Whether the verdict (and any error) is wanted as JSON.
    pub(super) fn json(&self) -> bool {
        match self.command {
            AuditCommand::Verify { json, .. } | AuditCommand::PublicKey { json, .. } => json,
        }
    }
}

pub(super) fn audit(args: AuditArgs) -> Result<(), Failure> {
    match args.command {
        AuditCommand::Verify {
            file,
            key,
            config,
            json,
        } => verify_file(&file, key.as_deref(), config.as_deref(), json),
        AuditCommand::PublicKey { config, json } => {
            let path = config.unwrap_or_else(|| PathBuf::from("airlock.toml"));
            let keys = config_keys(&path)?;
            let public = keys.public();
            if json {
                outln!(
                    "{}",
                    json!({ "ok": true, "public_key": hex::encode(public.as_bytes()) })
                );
            } else {
                outln!("{}", hex::encode(public.as_bytes()));
            }
            Ok(())
        }
    }
}

fn config_keys(path: &Path) -> Result<std::sync::Arc<AuditKeys>, Failure> {
    HostConfig::load_audit(path)?.keys.ok_or_else(|| {
        Failure::usage(format!(
            "{}: [audit] names no key and signing_key; add them (see the README's audit section)",
            path.display()
        ))
    })
}

/// A public key given inline, or the path of a file holding one.
fn public_key(arg: &str) -> Result<ed25519_dalek::VerifyingKey, Failure> {
    parse_public_key(arg).or_else(|inline| {
        let path = Path::new(arg);
        if !path.is_file() {
            return Err(Failure::usage(format!(
                "--key: {inline}, or the path of a file holding one"
            )));
        }
        let bytes = crate::files::read_regular_file(path, 4096, "a public key file")
            .map_err(|e| Failure::usage(format!("--key: cannot read {arg}: {e}")))?;
        parse_public_key(&String::from_utf8_lossy(&bytes))
            .map_err(|e| Failure::usage(format!("--key {arg}: {e}")))
    })
}

/// Largest audit trail `verify` reads (it holds the whole trail in memory);
/// rotate the trail to files smaller than this.
const MAX_TRAIL_BYTES: u64 = 4 << 30;

fn verify_file(
    file: &Path,
    key: Option<&str>,
    config: Option<&Path>,
    json: bool,
) -> Result<(), Failure> {
    let keys = config.map(config_keys).transpose()?;
    let check = match (key, &keys) {
        (Some(k), _) => Checked::Signatures(public_key(k)?),
        (None, Some(keys)) => Checked::Keys(keys),
        (None, None) => Checked::Chain,
    };
    let bytes = crate::files::read_regular_file(file, MAX_TRAIL_BYTES, "an audit trail")
        .map_err(|e| Failure::usage(format!("cannot read {}: {e}", file.display())))?;
    let v = verify(&bytes, check).map_err(|b| Failure {
        code: super::exit::TOOL_ERROR,
        kind: "audit-broken",
        message: format!("{}: the chain is broken at {b}", file.display()),
        detail: json!({ "line": b.line, "reason": b.reason }),
    })?;
    let checked = match check {
        Checked::Chain => "chain",
        Checked::Signatures(_) => "signatures",
        Checked::Keys(_) => "macs and signatures",
    };
    let counts = format!("{} verb-call records from {} host runs", v.records, v.runs);
    if let (Checked::Signatures(_) | Checked::Keys(_), Some(gaps)) = (check, v.gaps()) {
        return Err(Failure {
            code: super::exit::TOOL_ERROR,
            kind: "audit-unproven",
            message: format!(
                "{}: unproven: the chain is intact, but {gaps}",
                file.display()
            ),
            detail: verdict(&v, checked),
        });
    }
    if json {
        let mut out = json!({ "ok": true });
        if let (Some(o), serde_json::Value::Object(fields)) =
            (out.as_object_mut(), verdict(&v, checked))
        {
            o.extend(fields);
        }
        outln!("{out}");
        return Ok(());
    }
    let file = file.display();
    match check {
        Checked::Chain => {
            let note = if v.legacy {
                "written by an older airlock, unkeyed: the chain proves nothing against anyone \
                 who can write the file"
            } else if !v.keyed {
                "unkeyed: written without [audit] keys, the chain proves nothing against anyone \
                 who can write the file"
            } else {
                "not authenticated: pass --key PUBLIC-KEY to check its signed checkpoints, or \
                 --config to check every line's mac too"
            };
            outln!("{file}: intact: {counts}; {note}");
        }
        Checked::Signatures(_) | Checked::Keys(_) => {
            let (line, time) = v.last_checkpoint.clone().unwrap_or_default();
            let macs = match check {
                Checked::Keys(_) => "; every line's mac verified",
                _ => "",
            };
            outln!(
                "{file}: intact and complete: {counts}, every line proven by {} signed \
                 checkpoints (the last at line {line}, {time}){macs}",
                v.checkpoints
            );
        }
    }
    Ok(())
}

fn verdict(v: &Verified, checked: &str) -> serde_json::Value {
    json!({
        "checked": checked,
        "records": v.records,
        "runs": v.runs,
        "lines": v.lines,
        "checkpoints": v.checkpoints,
        "keyed": v.keyed,
        "legacy": v.legacy,
        "unproven": v.unproven,
        "unclosed": v.unclosed,
        "last_checkpoint": v.last_checkpoint.as_ref().map(|(line, time)| json!({ "line": line, "time": time })),
    })
}
