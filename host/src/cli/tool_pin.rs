//! `airlock tool add` and `airlock tool update`: pinning a signed tool into a
//! toolkit. Each resolves the reference, verifies signature, policy, verbs and
//! approval, stores the bytes beside the toolkit and writes its lockfile, then
//! loads the toolkit exactly as a run would; on any refusal nothing changes.

use std::path::{Path, PathBuf};

use airlock_trust::oci::Source;
use airlock_trust::{Approval, Digest, LockedTool, Lockfile, Policy, VerifiedStatement};
use clap::Args;
use serde_json::json;

use super::tool::{
    PolicyArgs, check_verbs, describe_request, fetch, print_changes, source, trust_failure,
};
use super::{Failure, exit};
use crate::supply;

#[derive(Debug, Args)]
pub(super) struct AddArgs {
    /// The toolkit file.
    toolkit: PathBuf,
    /// The tool's name in the toolkit.
    name: String,
    /// REGISTRY/NAMESPACE/NAME:VERSION, or oci:DIR:VERSION (DIR relative to the toolkit).
    reference: String,
    /// Single-user mode: approve the request shown (recorded in the lockfile).
    #[arg(long)]
    approve: bool,
    #[command(flatten)]
    policy: PolicyArgs,
}

#[derive(Debug, Args)]
pub(super) struct UpdateArgs {
    /// The toolkit file.
    toolkit: PathBuf,
    /// The pinned tool's name in the toolkit.
    name: String,
    /// The new reference (default: the pinned one, fetched again).
    reference: Option<String>,
    /// Single-user mode: approve a wider request (recorded in the lockfile).
    #[arg(long)]
    approve: bool,
    /// Allow moving to an older version.
    #[arg(long)]
    allow_downgrade: bool,
    #[command(flatten)]
    policy: PolicyArgs,
}

/// A tool fetched and verified, not yet pinned.
struct Resolved {
    component: Vec<u8>,
    statement: Vec<u8>,
    approvals: Vec<Vec<u8>>,
    verified: VerifiedStatement,
}

fn refused(message: String, changes: &[airlock_core::ScopeChange]) -> Failure {
    let widened: Vec<String> = changes
        .iter()
        .filter(|c| c.widens)
        .map(|c| c.line.clone())
        .collect();
    let mut message = message;
    for line in &widened {
        message += &format!("\n  {line}");
    }
    Failure {
        code: exit::REFUSED,
        kind: "untrusted",
        message,
        detail: json!({ "widened": widened }),
    }
}

/// Fetches `reference` and checks everything that does not depend on the
/// toolkit: registry allowed, signature and namespace, the tag's version,
/// blocked verbs and hosts, imported verbs equal to the request.
fn resolve(policy: &Policy, toolkit: &Path, reference: &str) -> Result<Resolved, Failure> {
    let base = toolkit.parent().unwrap_or(Path::new("."));
    let src = source(reference, base)?;
    let tag = match &src {
        Source::Registry(r) => {
            policy.check_registry(r.registry()).map_err(trust_failure)?;
            r.tag().map(str::to_string)
        }
        Source::Layout { reference, .. } => reference
            .split('@')
            .next()
            .filter(|t| !t.starts_with("sha256:") && !t.is_empty())
            .map(str::to_string),
    };
    let pulled = fetch(&src)?;
    let a = pulled.artifact;
    let verified = policy
        .verify_statement(&a.statement, &Digest::of(&a.component))
        .map_err(trust_failure)?;
    let p = &verified.predicate;
    if let Some(tag) = tag
        && tag != p.version
    {
        return Err(refused(
            format!(
                "{reference}: the tag says {tag} but the signed statement is version {}; the tag \
                 was moved or mislabelled, so it is not used",
                p.version
            ),
            &[],
        ));
    }
    let requested = supply::requested_grants(&p.request).map_err(trust_failure)?;
    policy
        .check_blocked(&p.full_name(), p.request.verbs(), supply::hosts(&requested))
        .map_err(trust_failure)?;
    let host = super::bare_host()?;
    check_verbs(&host, &a.component, &p.request, reference)?;
    Ok(Resolved {
        component: a.component,
        statement: a.statement,
        approvals: a.approvals,
        verified,
    })
}

/// The first approval of `r` signed by an approver of the policy.
fn signed_approval(policy: &Policy, r: &Resolved) -> Option<(Vec<u8>, Approval)> {
    r.approvals.iter().find_map(|env| {
        let (_, approver) = policy.verify_approval(env, &r.verified).ok()?;
        Some((
            env.clone(),
            Approval::Signed {
                envelope: Digest::of(env),
                approver,
            },
        ))
    })
}

fn read_toolkit(path: &Path) -> Result<String, Failure> {
    std::fs::read_to_string(path)
        .map_err(|e| Failure::usage(format!("cannot read toolkit {}: {e}", path.display())))
}

/// Writes the lockfile and toolkit, then loads the toolkit and checks the
/// tool as every run will; on failure both files are put back.
fn commit(
    toolkit: &Path,
    name: &str,
    policy: &Policy,
    lock: &Lockfile,
    toolkit_text: Option<String>,
) -> Result<(), Failure> {
    let lock_path = Lockfile::path_for(toolkit);
    let old_lock = std::fs::read(&lock_path).ok();
    let old_toolkit = read_toolkit(toolkit)?;
    let write = |p: &Path, bytes: &[u8]| {
        std::fs::write(p, bytes)
            .map_err(|e| Failure::usage(format!("cannot write {}: {e}", p.display())))
    };
    lock.save(&lock_path).map_err(trust_failure)?;
    if let Some(text) = &toolkit_text {
        write(toolkit, text.as_bytes())?;
    }
    let check = crate::Toolkit::load(toolkit)
        .map_err(Failure::from)
        .and_then(|kit| {
            let spec = kit.tool(name)?;
            supply::check_load(Some(policy), spec)
                .map_err(|refusal| Failure::from(crate::LoadError::untrusted(name, refusal)))?;
            Ok(())
        });
    if let Err(e) = check {
        match old_lock {
            Some(bytes) => write(&lock_path, &bytes)?,
            None => {
                let _ = std::fs::remove_file(&lock_path);
            }
        }
        write(toolkit, old_toolkit.as_bytes())?;
        return Err(e);
    }
    Ok(())
}

/// Stores the blobs of `r` (and an approval) in the toolkit's store.
fn store(toolkit: &Path, r: &Resolved, approval: Option<&[u8]>) -> Result<(), Failure> {
    let store = supply::store_for(toolkit);
    for bytes in [
        Some(r.component.as_slice()),
        Some(r.statement.as_slice()),
        approval,
    ]
    .into_iter()
    .flatten()
    {
        store.put(bytes).map_err(trust_failure)?;
    }
    Ok(())
}

fn locked(reference: &str, r: &Resolved, approval: Approval) -> LockedTool {
    let v = &r.verified;
    LockedTool {
        source: reference.to_string(),
        tool: v.predicate.full_name(),
        version: v.predicate.version.clone(),
        component: v.component.clone(),
        statement: v.statement.clone(),
        publisher_key: v.key.clone(),
        approval,
    }
}

fn report(verb: &str, name: &str, r: &Resolved, approval: &Approval) {
    let v = &r.verified;
    outln!(
        "{verb} {name}: {} {} by {} (key {})",
        v.predicate.full_name(),
        v.predicate.version,
        v.publisher,
        v.key.short()
    );
    outln!("  component: {}", v.component);
    outln!("  approval:  {}", supply::approval_words(approval));
}

pub(super) fn add(args: AddArgs) -> Result<(), Failure> {
    let policy = args.policy.policy()?;
    let text = read_toolkit(&args.toolkit)?;
    let table: toml::Table = toml::from_str(&text)
        .map_err(|e| Failure::usage(format!("{}: {}", args.toolkit.display(), e.message())))?;
    let entry = table
        .get("tools")
        .and_then(|t| t.get(&args.name))
        .and_then(toml::Value::as_table);
    let new_text = match entry {
        None => Some(format!(
            "{}\n[tools.{}]\ntool = {}\n",
            text.trim_end(),
            args.name,
            toml::Value::String(args.reference.clone())
        )),
        Some(e) if e.get("tool").and_then(toml::Value::as_str) == Some(&args.reference) => None,
        Some(e) if e.contains_key("tool") => {
            return Err(Failure::usage(format!(
                "tool `{}` is already pinned to another reference; use `airlock tool update`",
                args.name
            )));
        }
        Some(_) => {
            return Err(Failure::usage(format!(
                "[tools.{}] exists and is not a pinned tool; choose another name",
                args.name
            )));
        }
    };
    let r = resolve(&policy, &args.toolkit, &args.reference)?;
    let p = &r.verified.predicate;
    outln!("{} {} requests:", p.full_name(), p.version);
    describe_request(p)?;
    let (approval, envelope) = match (policy.team_mode(), args.approve) {
        (true, true) => {
            return Err(Failure::usage(
                "--approve is for single-user mode; this trust policy has approvers, so an \
                 approver signs with `airlock tool approve`",
            ));
        }
        (true, false) => match signed_approval(&policy, &r) {
            Some((env, approval)) => (approval, Some(env)),
            None => {
                return Err(refused(
                    format!(
                        "{} {} has no approval by an approver of {}; ask one to run `airlock \
                         tool approve {} --key KEY`",
                        p.full_name(),
                        p.version,
                        policy.path.display(),
                        args.reference
                    ),
                    &[],
                ));
            }
        },
        (false, true) => (
            Approval::Local {
                request: p.request.digest(),
            },
            None,
        ),
        (false, false) => {
            return Err(refused(
                "review the request above; run again with --approve to accept it".into(),
                &[],
            ));
        }
    };
    store(&args.toolkit, &r, envelope.as_deref())?;
    let mut lock = Lockfile::load(&Lockfile::path_for(&args.toolkit)).map_err(trust_failure)?;
    lock.tools.insert(
        args.name.clone(),
        locked(&args.reference, &r, approval.clone()),
    );
    commit(&args.toolkit, &args.name, &policy, &lock, new_text)?;
    report("added", &args.name, &r, &approval);
    Ok(())
}

pub(super) fn update(args: UpdateArgs) -> Result<(), Failure> {
    let policy = args.policy.policy()?;
    let lock_path = Lockfile::path_for(&args.toolkit);
    let mut lock = Lockfile::load(&lock_path).map_err(trust_failure)?;
    let Some(old) = lock.tools.get(&args.name).cloned() else {
        return Err(Failure::usage(format!(
            "{} pins no tool `{}`; use `airlock tool add`",
            lock_path.display(),
            args.name
        )));
    };
    let reference = args.reference.clone().unwrap_or_else(|| old.source.clone());
    let r = resolve(&policy, &args.toolkit, &reference)?;
    let p = &r.verified.predicate;
    let store_dir = supply::store_for(&args.toolkit);
    let old_statement = store_dir
        .get(
            &old.statement,
            airlock_trust::dsse::MAX_ENVELOPE_BYTES as u64,
        )
        .map_err(trust_failure)?;
    let old_p = supply::read_predicate(&old_statement).map_err(trust_failure)?;
    if old_p.full_name() != p.full_name() {
        return Err(refused(
            format!(
                "{reference} is {}, not {}: an update keeps the tool; add another tool instead",
                p.full_name(),
                old_p.full_name()
            ),
            &[],
        ));
    }
    let older = airlock_trust::statement::compare_versions(&p.version, &old_p.version)
        == Some(std::cmp::Ordering::Less);
    if older && !args.allow_downgrade {
        return Err(refused(
            format!(
                "{reference} is version {}, older than the pinned {}; a downgrade can bring back \
                 what a later version fixed or narrowed. Pass --allow-downgrade if you mean it",
                p.version, old_p.version
            ),
            &[],
        ));
    }
    outln!("{} {} → {}:", p.full_name(), old_p.version, p.version);
    let changes = supply::request_diff(&old_p.request, &p.request).map_err(trust_failure)?;
    print_changes(&changes);
    let widens = changes.iter().any(|c| c.widens);
    let (approval, envelope) = if policy.team_mode() {
        if args.approve {
            return Err(Failure::usage(
                "--approve is for single-user mode; this trust policy has approvers, so an \
                 approver signs with `airlock tool approve`",
            ));
        }
        match (signed_approval(&policy, &r), &old.approval) {
            (Some((env, approval)), _) => (approval, Some(env)),
            (None, Approval::Signed { envelope, approver }) if !widens => (
                Approval::Within {
                    envelope: envelope.clone(),
                    approver: approver.clone(),
                    statement: old.statement.clone(),
                },
                None,
            ),
            (None, within @ Approval::Within { .. }) if !widens => (within.clone(), None),
            _ => {
                return Err(refused(
                    format!(
                        "{} {} widens the approved request and has no approval by an approver; \
                         the pinned {} keeps serving. An approver reviews it with `airlock tool \
                         diff` and runs `airlock tool approve {reference} --key KEY`",
                        p.full_name(),
                        p.version,
                        old_p.version
                    ),
                    &changes,
                ));
            }
        }
    } else {
        if widens && !args.approve {
            return Err(refused(
                format!(
                    "{} {} widens the request you approved; the pinned {} keeps serving. Review \
                     the changes above and run again with --approve to accept them",
                    p.full_name(),
                    p.version,
                    old_p.version
                ),
                &changes,
            ));
        }
        (
            Approval::Local {
                request: p.request.digest(),
            },
            None,
        )
    };
    let text = read_toolkit(&args.toolkit)?;
    let new_text = if reference == old.source {
        None
    } else {
        let quoted = toml::Value::String(old.source.clone()).to_string();
        if text.matches(&quoted).count() != 1 {
            return Err(Failure::usage(format!(
                "cannot find tool = {quoted} once in {}; set it to the new reference by hand, \
                 then run update again",
                args.toolkit.display()
            )));
        }
        Some(text.replace(&quoted, &toml::Value::String(reference.clone()).to_string()))
    };
    store(&args.toolkit, &r, envelope.as_deref())?;
    lock.tools
        .insert(args.name.clone(), locked(&reference, &r, approval.clone()));
    commit(&args.toolkit, &args.name, &policy, &lock, new_text)?;
    report("updated", &args.name, &r, &approval);
    Ok(())
}
