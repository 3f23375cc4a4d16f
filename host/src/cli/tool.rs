//! `airlock key new` and `airlock tool pack | verify | push | pull | approve |
//! diff`: publishing a signed tool, checking it, moving it between registries
//! and layout directories, and approving its request. `add` and `update`
//! (pinning into a toolkit) live in `tool_pin.rs`.

use std::path::{Path, PathBuf};

use airlock_trust::oci::{self, Artifact, Auth, DistError, Pulled, Source, ToolRef};
use airlock_trust::{Digest, Policy, PrivateKey, ToolPredicate, ToolRequest, TrustError};
use clap::{Args, Subcommand};
use serde_json::json;

use super::{Failure, exit};
use crate::supply;

#[derive(Debug, Args)]
pub(super) struct KeyArgs {
    #[command(subcommand)]
    command: KeyCommand,
}

#[derive(Debug, Subcommand)]
enum KeyCommand {
    /// Write a new Ed25519 key pair: PATH (private, mode 0600) and PATH.pub.
    New {
        /// Where the private key goes; the public key goes to PATH.pub.
        path: PathBuf,
    },
}

pub(super) fn key(args: KeyArgs) -> Result<(), Failure> {
    let KeyCommand::New { path } = args.command;
    let key = PrivateKey::generate();
    let public_path = key.write_pair(&path).map_err(trust_failure)?;
    outln!(
        "wrote {} (private: keep it to yourself) and {}",
        path.display(),
        public_path.display()
    );
    outln!("public key: {}", key.public());
    outln!("key id:     {}", key.public().id());
    Ok(())
}

#[derive(Debug, Args)]
pub(super) struct ToolArgs {
    #[command(subcommand)]
    command: ToolCommand,
}

/// Where the trust policy comes from: `--trust`, else the host config's
/// `[trust] policy`.
#[derive(Debug, Args)]
pub(super) struct PolicyArgs {
    /// The trust policy file (default: the host config's [trust] policy).
    #[arg(long, value_name = "FILE")]
    trust: Option<PathBuf>,
    /// The host config (default: ./airlock.toml when present).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

impl PolicyArgs {
    pub(super) fn policy(&self) -> Result<Policy, Failure> {
        if let Some(path) = &self.trust {
            return Policy::load(path).map_err(trust_failure);
        }
        let default = PathBuf::from("airlock.toml");
        let config = match &self.config {
            Some(path) => Some(path),
            None => default.exists().then_some(&default),
        };
        let policy = match config {
            Some(path) => crate::HostConfig::load_trust(path)?,
            None => None,
        };
        match policy {
            Some(policy) => Ok((*policy).clone()),
            None => Err(Failure::usage(
                "no trust policy: pass --trust FILE, or add [trust] policy = \"trust.toml\" to \
                 the host config",
            )),
        }
    }
}

#[derive(Debug, Subcommand)]
enum ToolCommand {
    /// Sign a statement binding COMPONENT to a name, version and requested grants.
    Pack {
        /// The component (.wasm).
        component: PathBuf,
        /// The tool's full name: NAMESPACE/NAME (e.g. data/summarize).
        #[arg(long)]
        name: String,
        /// Its exact version (MAJOR.MINOR.PATCH).
        #[arg(long)]
        version: String,
        /// The request: description, [grants.VERB] and [functions.FUNC], as in a toolkit.
        #[arg(long, value_name = "FILE")]
        request: PathBuf,
        /// The publisher's private key.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// Where the statement goes (default: COMPONENT.dsse.json).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Check a tool's signature, namespace, revocations and approvals under the trust policy.
    Verify {
        /// A component path (its statement beside it or --statement), or a reference.
        source: String,
        /// The statement of a component path (default: COMPONENT.dsse.json).
        #[arg(long, value_name = "FILE")]
        statement: Option<PathBuf>,
        #[command(flatten)]
        policy: PolicyArgs,
    },
    /// Publish a component and its statement to a registry or a layout directory.
    Push {
        /// The component (.wasm).
        component: PathBuf,
        /// Where: REGISTRY/NAMESPACE/NAME:VERSION or oci:DIR:VERSION.
        destination: String,
        /// Its statement (default: COMPONENT.dsse.json).
        #[arg(long, value_name = "FILE")]
        statement: Option<PathBuf>,
    },
    /// Copy a tool (with its approvals) from a registry into a layout directory.
    Pull {
        /// REGISTRY/NAMESPACE/NAME:VERSION (or @sha256:...).
        source: String,
        /// oci:DIR:VERSION to write to.
        destination: String,
    },
    /// Approve a tool's request with an approver key; the approval travels with the tool.
    Approve {
        /// REGISTRY/NAMESPACE/NAME:VERSION or oci:DIR:VERSION.
        source: String,
        /// The approver's private key (listed under [approvers] in the trust policy).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        #[command(flatten)]
        policy: PolicyArgs,
    },
    /// Print what changes between two versions' requests, widenings marked.
    Diff {
        /// The older: a reference, or a statement file (.json).
        older: String,
        /// The newer: a reference, or a statement file (.json).
        newer: String,
    },
    /// Pin a signed tool into a toolkit: verify it, store it, write the lockfile.
    Add(super::tool_pin::AddArgs),
    /// Move a pinned tool to another version; wider requests need approval.
    Update(super::tool_pin::UpdateArgs),
}

pub(super) fn tool(args: ToolArgs) -> Result<(), Failure> {
    match args.command {
        ToolCommand::Pack {
            component,
            name,
            version,
            request,
            key,
            out,
        } => pack(&component, &name, &version, &request, &key, out),
        ToolCommand::Verify {
            source,
            statement,
            policy,
        } => verify(&source, statement, &policy),
        ToolCommand::Push {
            component,
            destination,
            statement,
        } => push(&component, &destination, statement),
        ToolCommand::Pull {
            source,
            destination,
        } => pull(&source, &destination),
        ToolCommand::Approve {
            source,
            key,
            policy,
        } => approve(&source, &key, &policy),
        ToolCommand::Diff { older, newer } => diff(&older, &newer),
        ToolCommand::Add(args) => super::tool_pin::add(args),
        ToolCommand::Update(args) => super::tool_pin::update(args),
    }
}

/// A trust error as a CLI failure: a refusal (exit 3) unless it is about a
/// file the user gave (exit 2).
pub(super) fn trust_failure(e: TrustError) -> Failure {
    let usage = matches!(
        e,
        TrustError::KeyFile { .. }
            | TrustError::KeyText { .. }
            | TrustError::Policy { .. }
            | TrustError::Lock { .. }
            | TrustError::Digest(_)
    );
    if usage {
        return Failure::usage(e.to_string());
    }
    Failure {
        code: exit::REFUSED,
        kind: "untrusted",
        message: e.to_string(),
        detail: json!(null),
    }
}

/// A distribution error: refusals of what a source served are exit 3.
pub(super) fn dist_failure(e: DistError) -> Failure {
    let refused = matches!(
        e,
        DistError::DigestMismatch { .. }
            | DistError::TooLarge { .. }
            | DistError::UnexpectedManifest { .. }
            | DistError::FloatingTag { .. }
    );
    Failure {
        code: if refused { exit::REFUSED } else { exit::USAGE },
        kind: if refused { "untrusted" } else { "usage" },
        message: e.to_string(),
        detail: json!(null),
    }
}

/// A reference as written: `oci:DIR:VERSION` (or `oci:DIR@sha256:…`) for a
/// layout directory, relative paths against `base`; else a registry reference.
pub(super) fn source(reference: &str, base: &Path) -> Result<Source, Failure> {
    let Some(rest) = reference.strip_prefix("oci:") else {
        return Ok(Source::Registry(
            ToolRef::parse(reference).map_err(dist_failure)?,
        ));
    };
    let (left, digest) = match rest.split_once("@sha256:") {
        Some((l, d)) => (l, Some(format!("sha256:{d}"))),
        None => (rest, None),
    };
    let last_slash = left.rfind('/').map_or(0, |i| i + 1);
    let (dir, tag) = match left[last_slash..].rfind(':') {
        Some(i) => (&left[..last_slash + i], Some(&left[last_slash + i + 1..])),
        None => (left, None),
    };
    if let Some(tag) = tag
        && !airlock_trust::statement::is_exact_version(tag)
    {
        return Err(dist_failure(DistError::FloatingTag {
            reference: reference.to_string(),
        }));
    }
    let reference_in_dir = match (tag, digest) {
        (Some(t), Some(d)) => format!("{t}@{d}"),
        (Some(t), None) => t.to_string(),
        (None, Some(d)) => d,
        (None, None) => {
            return Err(dist_failure(DistError::FloatingTag {
                reference: reference.to_string(),
            }));
        }
    };
    if dir.is_empty() {
        return Err(Failure::usage(format!(
            "`{reference}` names no directory; write oci:DIR:VERSION"
        )));
    }
    Ok(Source::Layout {
        dir: base.join(dir),
        reference: reference_in_dir,
    })
}

/// Fetches a tool from `source` (every blob re-hashed).
pub(super) fn fetch(source: &Source) -> Result<Pulled, Failure> {
    super::runtime()?
        .block_on(source.fetch())
        .map_err(dist_failure)
}

fn statement_path(component: &Path, given: Option<PathBuf>) -> PathBuf {
    given.unwrap_or_else(|| {
        let mut name = component.as_os_str().to_owned();
        name.push(".dsse.json");
        PathBuf::from(name)
    })
}

fn read_file(path: &Path, max: u64, what: &'static str) -> Result<Vec<u8>, Failure> {
    crate::files::read_regular_file(path, max, what)
        .map_err(|e| Failure::usage(format!("cannot read {}: {e}", path.display())))
}

/// Reads a request file (TOML, the fields of a toolkit's tool entry).
fn read_request(path: &Path) -> Result<ToolRequest, Failure> {
    let text = String::from_utf8(read_file(path, 1 << 20, "a request file")?)
        .map_err(|_| Failure::usage(format!("{} is not UTF-8", path.display())))?;
    let value: toml::Value = toml::from_str(&text)
        .map_err(|e| Failure::usage(format!("{}: {}", path.display(), e.message())))?;
    let json = serde_json::to_value(value).map_err(|e| Failure::internal(e.to_string()))?;
    let request: ToolRequest = serde_json::from_value(json).map_err(|e| {
        Failure::usage(format!(
            "{}: {e}; a request has description, [grants.VERB], [functions.FUNC] and [annotations]",
            path.display()
        ))
    })?;
    // Typed: unknown verbs or fields fail here, at pack time, not at a
    // consumer's load; and written back with every default filled in, so the
    // signed request says exactly what the tool gets.
    let grants = supply::requested_grants(&request).map_err(|e| Failure::usage(e.to_string()))?;
    let mut canonical = request;
    canonical.grants = match serde_json::to_value(&grants) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => return Err(Failure::internal("grants did not serialize to an object")),
    };
    Ok(canonical)
}

/// Checks that the component's imported verbs are exactly the requested ones.
pub(super) fn check_verbs(
    host: &crate::Airlock,
    component: &[u8],
    request: &ToolRequest,
    what: &str,
) -> Result<(), Failure> {
    let requested = supply::requested_grants(request)
        .map_err(trust_failure)?
        .set();
    let shape = host.inspect(component, what)?;
    let imported = crate::world::imported_verbs(&shape.imports);
    if imported != requested {
        let refusal = supply::Refusal::VerbsDiffer {
            requested: supply::verb_list(requested),
            imported: supply::verb_list(imported),
        };
        return Err(Failure {
            code: exit::REFUSED,
            kind: "untrusted",
            message: format!("{what}: {refusal}"),
            detail: json!(null),
        });
    }
    Ok(())
}

fn pack(
    component: &Path,
    name: &str,
    version: &str,
    request: &Path,
    key: &Path,
    out: Option<PathBuf>,
) -> Result<(), Failure> {
    let bytes = crate::Airlock::read_component(component)?;
    let request = read_request(request)?;
    let host = super::bare_host()?;
    check_verbs(&host, &bytes, &request, &component.display().to_string())?;
    let (namespace, short) = name.rsplit_once('/').ok_or_else(|| {
        Failure::usage(format!(
            "--name {name}: write NAMESPACE/NAME, e.g. data/summarize"
        ))
    })?;
    let key = PrivateKey::load(key).map_err(trust_failure)?;
    let envelope = airlock_trust::publish::pack(&bytes, namespace, short, version, request, &key)
        .map_err(|e| Failure::usage(e.to_string()))?;
    let out = statement_path(component, out);
    std::fs::write(&out, envelope.to_bytes())
        .map_err(|e| Failure::usage(format!("cannot write {}: {e}", out.display())))?;
    outln!(
        "signed {name} {version} ({}) with key {}",
        Digest::of(&bytes),
        key.public().id().short()
    );
    outln!("wrote {}", out.display());
    Ok(())
}

/// Prints a verified tool's facts and request in plain words.
pub(super) fn describe_request(predicate: &ToolPredicate) -> Result<(), Failure> {
    let grants = supply::requested_grants(&predicate.request).map_err(trust_failure)?;
    if let Some(d) = &predicate.request.description {
        outln!("  description: {d}");
    }
    outln!("  requests:");
    let lines = grants.describe();
    if lines.is_empty() {
        outln!("    - no verb: it computes on its arguments only");
    }
    for (verb, lines) in lines {
        for l in lines {
            outln!("    - {}: {l}", verb.name());
        }
    }
    Ok(())
}

fn verify(
    source_arg: &str,
    statement: Option<PathBuf>,
    policy: &PolicyArgs,
) -> Result<(), Failure> {
    let policy = policy.policy()?;
    let path = Path::new(source_arg);
    let pulled = if path.is_file() {
        let component = crate::Airlock::read_component(path)?;
        let statement = read_file(
            &statement_path(path, statement),
            airlock_trust::dsse::MAX_ENVELOPE_BYTES as u64,
            "a statement",
        )?;
        Artifact {
            component,
            statement,
            approvals: Vec::new(),
        }
    } else {
        fetch(&source(source_arg, Path::new("."))?)?.artifact
    };
    let component = Digest::of(&pulled.component);
    let verified = policy
        .verify_statement(&pulled.statement, &component)
        .map_err(trust_failure)?;
    let host = super::bare_host()?;
    check_verbs(
        &host,
        &pulled.component,
        &verified.predicate.request,
        source_arg,
    )?;
    let p = &verified.predicate;
    outln!("verified {} {}", p.full_name(), p.version);
    outln!(
        "  publisher: {} (key {})",
        verified.publisher,
        verified.key.short()
    );
    outln!("  component: {component}");
    outln!("  statement: {}", verified.statement);
    describe_request(p)?;
    let mut approved = false;
    for approval in &pulled.approvals {
        match policy.verify_approval(approval, &verified) {
            Ok((name, key)) => {
                approved = true;
                outln!("  approved by {name} (key {})", key.short());
            }
            Err(e) => outln!("  an approval that does not count: {e}"),
        }
    }
    if !approved && policy.team_mode() {
        outln!(
            "  not approved yet: an approver runs `airlock tool approve {source_arg} --key KEY`"
        );
    }
    Ok(())
}

fn push(component: &Path, destination: &str, statement: Option<PathBuf>) -> Result<(), Failure> {
    let artifact = Artifact {
        component: crate::Airlock::read_component(component)?,
        statement: read_file(
            &statement_path(component, statement),
            airlock_trust::dsse::MAX_ENVELOPE_BYTES as u64,
            "a statement",
        )?,
        approvals: Vec::new(),
    };
    let digest = store_artifact(destination, &artifact)?;
    outln!("pushed {destination} (manifest {digest})");
    Ok(())
}

/// Writes `artifact` to a registry or layout destination; returns the
/// manifest digest.
fn store_artifact(destination: &str, artifact: &Artifact) -> Result<String, Failure> {
    match source(destination, Path::new("."))? {
        Source::Registry(r) => {
            let auth = Auth::from_env().map_err(dist_failure)?;
            let digest = super::runtime()?
                .block_on(oci::push(&r, artifact, &auth))
                .map_err(dist_failure)?;
            for approval in &artifact.approvals {
                let pinned = r.with_digest(&digest).map_err(dist_failure)?;
                super::runtime()?
                    .block_on(oci::push_approval(&pinned, approval, &auth))
                    .map_err(dist_failure)?;
            }
            Ok(digest)
        }
        Source::Layout { dir, reference } => {
            let tag = reference.split('@').next().unwrap_or_default();
            if !airlock_trust::statement::is_exact_version(tag) {
                return Err(Failure::usage(format!(
                    "{destination}: writing to a layout needs a version tag (oci:DIR:VERSION)"
                )));
            }
            let digest = oci::write_layout(&dir, tag, artifact).map_err(dist_failure)?;
            for approval in &artifact.approvals {
                oci::add_approval_to_layout(&dir, &digest, approval).map_err(dist_failure)?;
            }
            Ok(digest)
        }
    }
}

fn pull(source_arg: &str, destination: &str) -> Result<(), Failure> {
    let pulled = fetch(&source(source_arg, Path::new("."))?)?;
    if !destination.starts_with("oci:") {
        return Err(Failure::usage(
            "pull writes to a layout directory: give oci:DIR:VERSION as the destination",
        ));
    }
    let digest = store_artifact(destination, &pulled.artifact)?;
    outln!(
        "pulled {source_arg} into {destination} (manifest {digest}, {} approval(s)); every blob was re-hashed",
        pulled.artifact.approvals.len()
    );
    Ok(())
}

fn approve(source_arg: &str, key: &Path, policy: &PolicyArgs) -> Result<(), Failure> {
    let policy = policy.policy()?;
    let key = PrivateKey::load(key).map_err(trust_failure)?;
    let src = source(source_arg, Path::new("."))?;
    let pulled = fetch(&src)?;
    let verified = policy
        .verify_statement(
            &pulled.artifact.statement,
            &Digest::of(&pulled.artifact.component),
        )
        .map_err(trust_failure)?;
    let envelope = airlock_trust::publish::approve(&verified, &key).to_bytes();
    // Refuse early what a load would refuse: a key the policy does not list.
    let (name, _) = policy
        .verify_approval(&envelope, &verified)
        .map_err(trust_failure)?;
    let p = &verified.predicate;
    outln!("approving {} {} for {name}:", p.full_name(), p.version);
    describe_request(p)?;
    match src {
        Source::Registry(r) => {
            let pinned = r
                .with_digest(&pulled.manifest_digest)
                .map_err(dist_failure)?;
            super::runtime()?
                .block_on(oci::push_approval(
                    &pinned,
                    &envelope,
                    &Auth::from_env().map_err(dist_failure)?,
                ))
                .map_err(dist_failure)?;
        }
        Source::Layout { dir, .. } => {
            oci::add_approval_to_layout(&dir, &pulled.manifest_digest, &envelope)
                .map_err(dist_failure)?;
        }
    }
    outln!("approved; the approval now travels with {source_arg}");
    Ok(())
}

/// The predicate of a statement file or of a reference's statement (not
/// verified: a diff is for review; `verify` checks signatures).
fn predicate_of(arg: &str) -> Result<ToolPredicate, Failure> {
    let path = Path::new(arg);
    let bytes = if path.is_file() {
        read_file(
            path,
            airlock_trust::dsse::MAX_ENVELOPE_BYTES as u64,
            "a statement",
        )?
    } else {
        fetch(&source(arg, Path::new("."))?)?.artifact.statement
    };
    supply::read_predicate(&bytes).map_err(trust_failure)
}

fn diff(older: &str, newer: &str) -> Result<(), Failure> {
    let (a, b) = (predicate_of(older)?, predicate_of(newer)?);
    outln!(
        "{} {} → {} {}",
        a.full_name(),
        a.version,
        b.full_name(),
        b.version
    );
    let changes = supply::request_diff(&a.request, &b.request).map_err(trust_failure)?;
    print_changes(&changes);
    outln!("(signatures not checked here; `airlock tool verify` checks them)");
    Ok(())
}

/// Prints a permission diff and what it means.
pub(super) fn print_changes(changes: &[airlock_core::ScopeChange]) {
    if changes.is_empty() {
        outln!("  no change in what it may do or what agents read");
        return;
    }
    for c in changes {
        outln!("  {}", c.line);
    }
    let widening = changes.iter().filter(|c| c.widens).count();
    if widening == 0 {
        outln!("  only narrower: takes effect without a new approval");
    } else {
        outln!(
            "  {widening} change(s) widen what it may do or what agents read: a new approval is needed"
        );
    }
}
