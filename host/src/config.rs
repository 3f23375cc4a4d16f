//! The two files an operator writes: a toolkit (which tools, with which grants
//! and budgets) and a host config (where secrets come from, which keys exist).
//! Unknown fields are errors; every error names the file and the key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use std::collections::HashMap;
use std::sync::Arc;

use airlock_fetch::{FetchCapability, SystemResolver};
use airlock_sign::{SignCapability, SignKey};
use secrecy::{ExposeSecret, SecretSlice};
use serde::Deserialize;
use zeroize::Zeroize;

use crate::annotations::HintOverrides;
use crate::audit::AuditKeys;
use crate::job::Budget;
use crate::names::FunctionSpec;
use crate::units::{Size, Span};
use crate::verbs::{Capabilities, Grants};

/// A configuration file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A pinned or included tool is not what was approved (a widened grant,
    /// a lockfile that does not match): a refusal, not a typo.
    #[error("{path}: tool `{tool}`: {refusal}")]
    Untrusted {
        /// The toolkit.
        path: PathBuf,
        /// The tool.
        tool: String,
        /// Why it is refused.
        refusal: Box<crate::supply::Refusal>,
    },
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: crate::files::FileError,
    },
    /// The file's content is wrong; the message names the key and the fix.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong and where.
        message: String,
    },
}

pub(crate) fn invalid(path: &Path, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Largest toolkit or host-config file read.
pub const MAX_CONFIG_BYTES: u64 = 4 << 20;

/// Reads a toolkit or host config: a regular UTF-8 file under [`MAX_CONFIG_BYTES`].
pub(crate) fn read(path: &Path) -> Result<String, ConfigError> {
    let err = |source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    };
    let bytes =
        crate::files::read_regular_file(path, MAX_CONFIG_BYTES, "a config file").map_err(err)?;
    String::from_utf8(bytes).map_err(|e| {
        err(crate::files::FileError::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            e.utf8_error(),
        )))
    })
}

/// `[tools.NAME.budget]` as written; absent fields take the defaults.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetSpec {
    /// Wall-clock limit, e.g. `"5s"`.
    pub timeout: Option<Span>,
    /// Fuel units.
    pub fuel: Option<u64>,
    /// Memory limit, e.g. `"64MiB"`.
    pub memory: Option<Size>,
    /// Output limit, e.g. `"1MiB"`.
    pub output: Option<Size>,
    /// Resource handles held at once (streams, pollables).
    pub resources: Option<usize>,
}

impl BudgetSpec {
    /// Applies the written fields over `base`.
    pub fn apply(&self, base: Budget) -> Budget {
        Budget {
            timeout: self.timeout.map_or(base.timeout, |s| s.0),
            fuel: self.fuel.unwrap_or(base.fuel),
            memory: self.memory.map_or(base.memory, |s| s.0),
            output: self.output.map_or(base.output, |s| s.0),
            resources: self.resources.unwrap_or(base.resources),
            ..base
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ToolkitFile {
    #[serde(default)]
    include: Vec<crate::supply::Include>,
    #[serde(default)]
    tools: BTreeMap<String, ToolEntry>,
}

/// `[tools.NAME]` as written: a component path, a pinned reference
/// (`tool = "REF"`), or neither (narrowing a tool of an included toolkit).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ToolEntry {
    #[serde(default)]
    pub(crate) component: Option<PathBuf>,
    #[serde(default)]
    pub(crate) tool: Option<String>,
    #[serde(default)]
    pub(crate) description: Option<String>,
    #[serde(default)]
    pub(crate) wit: Option<PathBuf>,
    #[serde(default)]
    pub(crate) budget: BudgetSpec,
    #[serde(default)]
    pub(crate) grants: Option<Grants>,
    #[serde(default)]
    pub(crate) functions: BTreeMap<String, FunctionSpec>,
    #[serde(default)]
    pub(crate) annotations: HintOverrides,
}

/// One tool of a toolkit, resolved.
#[derive(Debug, Clone)]
pub struct ToolSpec {
    /// The tool's name (the `NAME` in `[tools.NAME]`).
    pub name: String,
    /// The component file, resolved against the toolkit's directory.
    pub component: PathBuf,
    /// The operator's one-line description, if given.
    pub description: Option<String>,
    /// The tool's WIT sources (a directory or a file), resolved against the
    /// toolkit's directory: where tool descriptions come from (see `describe`).
    pub wit: Option<PathBuf>,
    /// The budget of each job.
    pub budget: Budget,
    /// The verbs granted and their scopes.
    pub grants: Grants,
    /// What the toolkit says about each function (`[tools.NAME.functions.FUNC]`).
    pub functions: BTreeMap<String, FunctionSpec>,
    /// MCP hints the toolkit makes more cautious (`[tools.NAME.annotations]`).
    pub annotations: HintOverrides,
    /// For a pinned tool (`tool = "REF"`): what its lockfile pins, checked
    /// against the trust policy at every load.
    pub pin: Option<Arc<crate::supply::Pin>>,
}

impl ToolSpec {
    /// A tool with no toolkit entry behind it (`airlock run COMPONENT`).
    pub fn bare(name: &str, grants: Grants, budget: Budget) -> Self {
        Self {
            name: name.to_string(),
            component: PathBuf::new(),
            description: None,
            wit: None,
            budget,
            grants,
            functions: BTreeMap::new(),
            annotations: HintOverrides::default(),
            pin: None,
        }
    }
}

/// A toolkit file: the tools an agent is given for a task.
#[derive(Debug, Clone)]
pub struct Toolkit {
    /// Where it was read from.
    pub path: PathBuf,
    /// Its tools, by name.
    pub tools: BTreeMap<String, ToolSpec>,
}

impl Toolkit {
    /// Reads and validates a toolkit file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::parse(&read(path)?, path)
    }

    /// Parses toolkit text; `path` is used for errors, relative components,
    /// includes and the lockfile beside it.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        Self::parse_nested(text, path, &mut Vec::new())
    }

    /// [`Self::parse`] inside `including` (the toolkits that include this
    /// one, to refuse cycles).
    pub(crate) fn parse_nested(
        text: &str,
        path: &Path,
        including: &mut Vec<PathBuf>,
    ) -> Result<Self, ConfigError> {
        let file: ToolkitFile =
            toml::from_str(text).map_err(|e| invalid(path, toml_message(&e, text)))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut tools = crate::supply::included_tools(&file.include, path, including)?;
        let lock = crate::supply::LockView::new(path);
        for (name, entry) in file.tools {
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(invalid(
                    path,
                    format!("tool name `{name}` may use only letters, digits, `-` and `_`"),
                ));
            }
            let spec = match (entry.component.clone(), entry.tool.clone()) {
                (Some(component), None) => {
                    check_names_and_hints(&name, &entry).map_err(|m| invalid(path, m))?;
                    ToolSpec {
                        component: base.join(component),
                        description: entry.description,
                        wit: entry.wit.map(|w| base.join(w)),
                        budget: entry.budget.apply(Budget::default()),
                        grants: entry.grants.unwrap_or_default(),
                        functions: entry.functions,
                        annotations: entry.annotations,
                        pin: None,
                        name: name.clone(),
                    }
                }
                (None, Some(reference)) => lock.pinned(&name, &reference, entry)?,
                (None, None) => match tools.remove(&name) {
                    Some(included) => crate::supply::narrow(path, included, entry)?,
                    None => {
                        return Err(invalid(
                            path,
                            format!(
                                "[tools.{name}] names no component: add component = \"PATH\", \
                                 tool = \"REGISTRY/NAMESPACE/NAME:VERSION\", or include the \
                                 toolkit that has it"
                            ),
                        ));
                    }
                },
                (Some(_), Some(_)) => {
                    return Err(invalid(
                        path,
                        format!("[tools.{name}] sets both component and tool; keep one"),
                    ));
                }
            };
            if tools.insert(name.clone(), spec).is_some() {
                return Err(invalid(
                    path,
                    format!(
                        "[tools.{name}] is also a tool of an included toolkit; rename it, or \
                         leave out component/tool to narrow the included one"
                    ),
                ));
            }
        }
        if tools.is_empty() {
            return Err(invalid(
                path,
                "the toolkit names no tools; add a [tools.NAME] table",
            ));
        }
        Ok(Self {
            path: path.to_path_buf(),
            tools,
        })
    }

    /// The tool called `name`, with an error listing the others.
    pub fn tool(&self, name: &str) -> Result<&ToolSpec, ConfigError> {
        self.tools.get(name).ok_or_else(|| {
            invalid(
                &self.path,
                format!(
                    "no tool `{name}`; this toolkit has: {}",
                    self.tools.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            )
        })
    }
}

/// A function name the toolkit chose must be portable; its hints may only
/// be more cautious than its grants.
pub(crate) fn check_names_and_hints(tool: &str, entry: &ToolEntry) -> Result<(), String> {
    for (function, spec) in &entry.functions {
        if let Some(name) = &spec.name {
            crate::names::check(name).map_err(|why| {
                format!("[tools.{tool}.functions.{function}] name = {name:?} {why}")
            })?;
        }
    }
    let none = Grants::default();
    crate::annotations::check(entry.grants.as_ref().unwrap_or(&none), &entry.annotations)
        .map_err(|why| format!("[tools.{tool}.annotations] {why}"))
}

/// toml's message with the line (and table) it is about.
fn toml_message(e: &toml::de::Error, text: &str) -> String {
    let msg = e.message().trim_end().to_string();
    let Some(span) = e.span() else { return msg };
    let before = &text[..span.start.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let table = before
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|t| format!(" in {t}"))
        .unwrap_or_default();
    format!("line {line}{table}: {msg}")
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HostFile {
    #[serde(default)]
    secrets: BTreeMap<String, SecretSource>,
    #[serde(default)]
    sign: SignSection,
    #[serde(default)]
    audit: AuditSection,
    #[serde(default)]
    providers: BTreeMap<String, airlock_complete::ProviderSpec>,
    #[serde(default)]
    complete: CompleteSection,
    #[serde(default)]
    fetch: FetchSection,
    #[serde(default)]
    mcp: McpSection,
    #[serde(default)]
    trust: TrustSection,
    /// `[kv.NAME]`: the key-value stores kv grants may name.
    #[serde(default)]
    kv: BTreeMap<String, airlock_kv::StoreSpec>,
    #[serde(default)]
    databases: BTreeMap<String, DatabaseSpec>,
    #[serde(default)]
    sql: SqlSection,
    #[serde(default)]
    serve: crate::serve::ServeSpec,
}

/// `[databases.NAME]`: a database the `sql` verb may reach; where it is
/// stays here, never in a toolkit.
#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
enum DatabaseSpec {
    /// A SQLite file, opened read-only (relative to the config's directory).
    Sqlite { path: PathBuf },
    /// A PostgreSQL server whose connection URL is the secret `url` names.
    Postgres { url: String },
}

/// `[sql]`: the key pseudonyms are computed with (a secret of its own; a
/// random key per process when absent, so pseudonyms change at restart).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SqlSection {
    pseudonym_secret: Option<String>,
}

/// `[trust]`: the trust policy signed tools are checked against.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrustSection {
    policy: Option<PathBuf>,
}

/// `[mcp]`: what one client may hold of `airlock mcp --http`; an absent
/// field keeps its default ([`crate::mcp_http::HttpLimits`]).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct McpSection {
    header_timeout: Option<Span>,
    max_connections: Option<usize>,
    max_sessions: Option<usize>,
    session_idle: Option<Span>,
}

impl McpSection {
    fn limits(&self, path: &Path) -> Result<crate::mcp_http::HttpLimits, ConfigError> {
        let base = crate::mcp_http::HttpLimits::default();
        let limits = crate::mcp_http::HttpLimits {
            header_timeout: self.header_timeout.map_or(base.header_timeout, |s| s.0),
            max_connections: self.max_connections.unwrap_or(base.max_connections),
            max_sessions: self.max_sessions.unwrap_or(base.max_sessions),
            session_idle: self.session_idle.map_or(base.session_idle, |s| s.0),
        };
        for (key, zero) in [
            ("header_timeout", limits.header_timeout.is_zero()),
            ("max_connections", limits.max_connections == 0),
            ("max_sessions", limits.max_sessions == 0),
            ("session_idle", limits.session_idle.is_zero()),
        ] {
            if zero {
                return Err(invalid(
                    path,
                    format!("[mcp] {key} must be above zero; leave it out for the default"),
                ));
            }
        }
        Ok(limits)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FetchSection {
    /// Credentials, each bound to its secret, header and destinations
    /// (`[fetch.credentials.NAME]`). Signing and provider secrets never are.
    #[serde(default)]
    credentials: BTreeMap<String, airlock_fetch::CredentialSpec>,
    /// The release list from before destinations were bound here: refused
    /// with directions.
    #[serde(default)]
    secrets: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CompleteSection {
    /// Put prompts and completions into the audit trail (off by default).
    #[serde(default)]
    log_content: bool,
}

/// Where one secret's bytes come from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
enum SecretSource {
    Env(String),
    File(PathBuf),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignSection {
    #[serde(default)]
    keys: BTreeMap<String, KeySpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeySpec {
    kind: KeyKind,
    secret: String,
}

#[derive(Debug, Clone, Copy, Deserialize)]
enum KeyKind {
    #[serde(rename = "hmac-sha256")]
    HmacSha256,
    #[serde(rename = "ed25519")]
    Ed25519,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditSection {
    file: Option<PathBuf>,
    /// The secret holding the HMAC key of every line.
    key: Option<String>,
    /// The secret holding the Ed25519 seed that signs checkpoints.
    signing_key: Option<String>,
    checkpoint_every: Option<u64>,
}

/// `[audit]`, resolved: where the trail goes and the keys that seal it.
#[derive(Debug, Clone)]
pub struct AuditSettings {
    /// Where the audit trail goes, if the config says.
    pub file: Option<PathBuf>,
    /// The keys that seal every line and sign checkpoints; `None` writes an
    /// unkeyed trail that proves nothing against a writer of the file.
    pub keys: Option<Arc<AuditKeys>>,
    /// Records of one run between two signed checkpoints.
    pub checkpoint_every: u64,
}

impl Default for AuditSettings {
    fn default() -> Self {
        Self {
            file: None,
            keys: None,
            checkpoint_every: crate::audit::DEFAULT_CHECKPOINT_EVERY,
        }
    }
}

impl AuditSettings {
    /// Resolves `[audit]`; `secret` reads a named secret.
    fn resolve(
        file: &HostFile,
        path: &Path,
        secret: impl Fn(&str) -> Result<SecretSlice<u8>, String>,
        same: impl Fn(&str, &str) -> bool,
    ) -> Result<Self, ConfigError> {
        let base = path.parent().unwrap_or(Path::new("."));
        let audit = &file.audit;
        let every = audit
            .checkpoint_every
            .unwrap_or(crate::audit::DEFAULT_CHECKPOINT_EVERY);
        if every == 0 {
            return Err(invalid(path, "[audit] checkpoint_every must be at least 1"));
        }
        let keys = match (&audit.key, &audit.signing_key) {
            (None, None) => None,
            (Some(mac), Some(sig)) => {
                if same(mac, sig) {
                    return Err(invalid(
                        path,
                        "[audit] key and signing_key name the same secret; give each its own",
                    ));
                }
                for name in [mac, sig] {
                    // A secret a tool can use (a signing key computes HMACs for
                    // guests) or that leaves the host could forge or leak the trail.
                    let shared = used_by_a_verb(file, name, &same);
                    if shared {
                        return Err(invalid(
                            path,
                            format!(
                                "[audit] uses secret `{name}`, which a signing key, a provider or \
                                 fetch also uses: a tool could forge or leak the trail; give the \
                                 audit trail secrets of its own"
                            ),
                        ));
                    }
                }
                let read = |name: &str, field: &str| {
                    secret(name).map_err(|m| invalid(path, format!("[audit] {field}: {m}")))
                };
                let keys = AuditKeys::new(read(mac, "key")?, &read(sig, "signing_key")?)
                    .map_err(|m| invalid(path, format!("[audit]: {m}")))?;
                Some(Arc::new(keys))
            }
            _ => {
                return Err(invalid(
                    path,
                    "[audit] needs both `key` (the HMAC of every line) and `signing_key` \
                     (Ed25519 checkpoints), or neither",
                ));
            }
        };
        Ok(Self {
            file: audit.file.as_ref().map(|f| base.join(f)),
            keys,
            checkpoint_every: every,
        })
    }
}

/// The operator's host config, with secrets resolved into the capabilities.
#[derive(Debug, Default)]
pub struct HostConfig {
    /// The verbs' host-wide halves, holding the resolved keys.
    pub capabilities: Capabilities,
    /// The audit trail: where it goes and its keys.
    pub audit: AuditSettings,
    /// What one client may hold of `airlock mcp --http` and `airlock
    /// serve` (`[mcp]`).
    pub mcp_http: crate::mcp_http::HttpLimits,
    /// What `airlock serve` serves (`[serve]`), toolkit paths resolved.
    pub serve: crate::serve::ServeSpec,
    /// The trust policy (`[trust] policy = "trust.toml"`), if any.
    pub trust: Option<Arc<airlock_trust::Policy>>,
}

impl HostConfig {
    /// Reads a host config and resolves every secret it references.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::parse(&read(path)?, path)
    }

    /// Reads only `[trust]` of a host config (resolving no secret): the
    /// trust policy, for commands that check tools without running them.
    pub fn load_trust(path: &Path) -> Result<Option<Arc<airlock_trust::Policy>>, ConfigError> {
        let text = read(path)?;
        let file: HostFile =
            toml::from_str(&text).map_err(|e| invalid(path, toml_message(&e, &text)))?;
        trust_policy(&file, path)
    }

    /// Reads only `[audit]` of a host config, resolving only its secrets
    /// (`airlock audit verify --config`, `airlock audit public-key`).
    pub fn load_audit(path: &Path) -> Result<AuditSettings, ConfigError> {
        let text = read(path)?;
        let file: HostFile =
            toml::from_str(&text).map_err(|e| invalid(path, toml_message(&e, &text)))?;
        let base = path.parent().unwrap_or(Path::new("."));
        // Only the audit secrets are read here (for `verify`), so secrets are
        // told apart by name alone; `parse` compares their bytes as well.
        let by_name = |a: &str, b: &str| a == b;
        let secret = |name: &str| match file.secrets.get(name) {
            Some(source) => resolve(name, source, base),
            None => Err(format!(
                "there is no [secrets.{name}]; add one with env = \"VAR\" or file = \"path\""
            )),
        };
        AuditSettings::resolve(&file, path, secret, by_name)
    }

    /// Parses host-config text; relative paths are resolved against `path`'s directory.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let file: HostFile =
            toml::from_str(text).map_err(|e| invalid(path, toml_message(&e, text)))?;
        let base = path.parent().unwrap_or(Path::new("."));
        // Every declared secret is resolved now: a missing one fails the load.
        let mut secrets = HashMap::new();
        for (name, source) in &file.secrets {
            secrets.insert(
                name.clone(),
                resolve(name, source, base).map_err(|m| invalid(path, m))?,
            );
        }
        // Two names hold one secret when they are one name, or when their
        // bytes are equal (one variable or file read twice, or a copy): the
        // rules that keep a secret to one verb compare secrets, not names.
        let same = |a: &str, b: &str| {
            a == b
                || matches!((secrets.get(a), secrets.get(b)),
                    (Some(x), Some(y)) if x.expose_secret() == y.expose_secret())
        };
        let copy = |name: &str| -> Result<SecretSlice<u8>, String> {
            secrets
                .get(name)
                .map(|s| SecretSlice::from(s.expose_secret().to_vec()))
                .ok_or_else(|| {
                    format!("there is no [secrets.{name}]; add one with env = \"VAR\" or file = \"path\"")
                })
        };
        let mut keys = Vec::new();
        for (name, spec) in &file.sign.keys {
            let secret = copy(&spec.secret).map_err(|m| {
                invalid(
                    path,
                    format!("[sign.keys.{name}] uses secret `{}`: {m}", spec.secret),
                )
            })?;
            let key = match spec.kind {
                KeyKind::HmacSha256 => SignKey::hmac(secret),
                KeyKind::Ed25519 => SignKey::ed25519_from_seed(&secret),
            }
            .map_err(|e| invalid(path, format!("[sign.keys.{name}]: {e}")))?;
            keys.push((name.clone(), key));
        }
        let complete_spec = airlock_complete::CompleteSpec {
            providers: file.providers.clone(),
            log_content: file.complete.log_content,
        };
        let complete = airlock_complete::CompleteCapability::from_spec(&complete_spec, |s| copy(s))
            .map_err(|e| invalid(path, format!("[providers]: {e}")))?;
        let released = fetch_credentials(&file, |s| copy(s), same).map_err(|m| invalid(path, m))?;
        let fetch = FetchCapability::new(released, Arc::new(SystemResolver))
            .map_err(|e| invalid(path, e.to_string()))?;
        // A store's connection string comes from a secret, as UTF-8 text.
        let kv_secret = |name: &str| {
            let bytes = copy(name)?;
            String::from_utf8(bytes.expose_secret().to_vec())
                .map(secrecy::SecretString::from)
                .map_err(|_| format!("secret `{name}` is not UTF-8 text"))
        };
        let kv = airlock_kv::KvCapability::open(&file.kv, base, kv_secret)
            .map_err(|m| invalid(path, m))?;
        let sql = sql_capability(&file, base, |s| copy(s), same).map_err(|m| invalid(path, m))?;
        Ok(Self {
            capabilities: Capabilities {
                sign: SignCapability::new(keys),
                log: Default::default(),
                fetch,
                complete,
                kv,
                sql,
            },
            mcp_http: file.mcp.limits(path)?,
            serve: file
                .serve
                .clone()
                .resolve(base)
                .map_err(|m| invalid(path, m))?,
            audit: AuditSettings::resolve(&file, path, copy, same)?,
            trust: trust_policy(&file, path)?,
        })
    }
}

/// Whether secret `name` is one a signing key, a provider or a fetch
/// credential uses (`same` compares two secrets by name and bytes).
fn used_by_a_verb(file: &HostFile, name: &str, same: &impl Fn(&str, &str) -> bool) -> bool {
    file.sign.keys.values().any(|k| same(&k.secret, name))
        || file
            .providers
            .values()
            .any(|p| p.api_key.as_deref().is_some_and(|k| same(k, name)))
        || file
            .fetch
            .credentials
            .values()
            .any(|c| same(&c.secret, name))
}

/// The policy `[trust] policy` names, read relative to the host config.
fn trust_policy(
    file: &HostFile,
    path: &Path,
) -> Result<Option<Arc<airlock_trust::Policy>>, ConfigError> {
    let base = path.parent().unwrap_or(Path::new("."));
    file.trust
        .policy
        .as_ref()
        .map(|p| {
            airlock_trust::Policy::load(&base.join(p))
                .map(Arc::new)
                .map_err(|e| invalid(path, format!("[trust] policy: {e}")))
        })
        .transpose()
}

/// `[databases.NAME]` and `[sql]`: the named databases and the pseudonym
/// key, which no other verb or the audit trail may share (a tool that could
/// compute HMACs under it could test guesses against pseudonyms).
fn sql_capability(
    file: &HostFile,
    base: &Path,
    copy: impl Fn(&str) -> Result<SecretSlice<u8>, String>,
    same: impl Fn(&str, &str) -> bool,
) -> Result<airlock_sql::SqlCapability, String> {
    let mut databases = Vec::new();
    for (name, spec) in &file.databases {
        match spec {
            DatabaseSpec::Sqlite { path } => databases.push((
                name.clone(),
                airlock_sql::Database::Sqlite {
                    path: base.join(path),
                },
            )),
            DatabaseSpec::Postgres { url } => {
                let secret = copy(url)
                    .map_err(|m| format!("[databases.{name}] url names secret `{url}`: {m}"))?;
                let text = String::from_utf8(secret.expose_secret().to_vec())
                    .map_err(|_| format!("[databases.{name}]: secret `{url}` is not UTF-8 text"))?;
                databases.push((
                    name.clone(),
                    airlock_sql::Database::postgres(secrecy::SecretString::from(text)),
                ));
            }
        }
    }
    let key = match &file.sql.pseudonym_secret {
        None => airlock_sql::PseudonymKey::random(),
        Some(name) => {
            let shared = used_by_a_verb(file, name, &same)
                || [&file.audit.key, &file.audit.signing_key]
                    .into_iter()
                    .flatten()
                    .any(|a| same(a, name));
            if shared {
                return Err(format!(
                    "[sql] pseudonym_secret uses secret `{name}`, which another verb or the \
                     audit trail also uses; give pseudonyms a secret of their own"
                ));
            }
            airlock_sql::PseudonymKey::new(
                copy(name).map_err(|m| format!("[sql] pseudonym_secret: {m}"))?,
            )
        }
    };
    Ok(airlock_sql::SqlCapability::new(databases, key))
}

/// `[fetch.credentials.NAME]`, each checked and holding its secret; none may
/// use a secret a signing key or a provider uses. The old `[fetch] secrets`
/// list is refused with directions.
fn fetch_credentials(
    file: &HostFile,
    copy: impl Fn(&str) -> Result<SecretSlice<u8>, String>,
    same: impl Fn(&str, &str) -> bool,
) -> Result<Vec<airlock_fetch::HostCredential>, String> {
    if let Some(old) = &file.fetch.secrets {
        let name = old.first().map_or("gh-token", String::as_str);
        return Err(format!(
            "[fetch] secrets is no longer accepted: each fetch credential is now bound to its \
             header and destinations here. Replace it by one table per credential, as in \
             [fetch.credentials.{name}] with secret = \"{name}\", header = \"Authorization\", \
             format = \"Bearer {{}}\", urls = [\"https://api.example.com/*\"]; toolkits then \
             write credentials = [{{ name = \"{name}\" }}] in their fetch grant"
        ));
    }
    let mut out = Vec::new();
    for (name, spec) in &file.fetch.credentials {
        let used_elsewhere = file
            .sign
            .keys
            .values()
            .any(|k| same(&k.secret, &spec.secret))
            || file
                .providers
                .values()
                .any(|p| p.api_key.as_deref().is_some_and(|k| same(k, &spec.secret)));
        if used_elsewhere {
            return Err(format!(
                "[fetch.credentials.{name}] uses secret `{}`, which a signing key or a provider \
                 uses; give fetch a secret of its own",
                spec.secret
            ));
        }
        let secret = copy(&spec.secret).map_err(|m| {
            format!(
                "[fetch.credentials.{name}] uses secret `{}`: {m}",
                spec.secret
            )
        })?;
        let cred = airlock_fetch::HostCredential::new(name, spec, secret).map_err(|e| match e {
            airlock_fetch::GrantError::Credential { reason, .. } => {
                format!("[fetch.credentials.{name}]: {reason}")
            }
            other => format!("[fetch.credentials.{name}]: {other}"),
        })?;
        out.push(cred);
    }
    Ok(out)
}

/// Reads one secret's bytes; the error says where it was looked for.
fn resolve(name: &str, source: &SecretSource, base: &Path) -> Result<SecretSlice<u8>, String> {
    match source {
        SecretSource::Env(var) => match std::env::var_os(var) {
            Some(v) => {
                let mut s = v.into_encoded_bytes();
                let secret = SecretSlice::from(trim_newline(&s).to_vec());
                s.zeroize();
                Ok(secret)
            }
            None => Err(format!(
                "secret `{name}`: the environment variable {var} is not set; export it or change [secrets.{name}]"
            )),
        },
        SecretSource::File(file) => {
            let full = base.join(file);
            match read_secret_file(&full) {
                Ok(mut bytes) => {
                    let secret = SecretSlice::from(trim_newline(&bytes).to_vec());
                    bytes.zeroize();
                    Ok(secret)
                }
                Err(e) => Err(format!(
                    "secret `{name}`: cannot read {}: {e}; create it or change [secrets.{name}]",
                    full.display()
                )),
            }
        }
    }
}

/// Largest secret file read: a key or a token, never a stream.
pub const MAX_SECRET_FILE_BYTES: u64 = 64 << 10;

/// Reads a secret file: only a regular file (not a device, FIFO or
/// directory, which could block the load or never end), and at most
/// [`MAX_SECRET_FILE_BYTES`].
fn read_secret_file(path: &Path) -> Result<Vec<u8>, crate::files::FileError> {
    crate::files::read_regular_file(
        path,
        MAX_SECRET_FILE_BYTES,
        "a secret file, which holds one key or token",
    )
}

fn trim_newline(b: &[u8]) -> &[u8] {
    b.strip_suffix(b"\r\n")
        .or_else(|| b.strip_suffix(b"\n"))
        .unwrap_or(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_toolkit_parses_with_relative_components_and_budgets() {
        let kit = Toolkit::parse(
            r#"
            [tools.signer]
            component = "guests/sign.wasm"
            wit = "guests/sign/wit"
            [tools.signer.budget]
            timeout = "2s"
            memory = "32MiB"
            [tools.signer.grants.sign]
            keys = ["webhook"]
            [tools.signer.grants.log]
            "#,
            Path::new("/kits/k.toml"),
        )
        .unwrap();
        let t = kit.tool("signer").unwrap();
        assert_eq!(t.component, Path::new("/kits/guests/sign.wasm"));
        assert_eq!(t.wit.as_deref(), Some(Path::new("/kits/guests/sign/wit")));
        assert_eq!(t.budget.timeout, std::time::Duration::from_secs(2));
        assert_eq!(t.budget.memory, 32 << 20);
        assert_eq!(t.budget.fuel, Budget::default().fuel);
        assert_eq!(t.grants.sign.as_ref().unwrap().keys, vec!["webhook"]);
        assert!(t.grants.log.is_some());
        assert!(
            kit.tool("nope")
                .unwrap_err()
                .to_string()
                .contains("this toolkit has: signer")
        );
    }

    #[test]
    fn the_mcp_section_sets_http_limits_over_the_defaults() {
        use crate::mcp_http::HttpLimits;
        use std::time::Duration;
        let path = Path::new("/etc/airlock.toml");
        assert_eq!(
            HostConfig::parse("", path).unwrap().mcp_http,
            HttpLimits::default()
        );
        let cfg = HostConfig::parse(
            "[mcp]\nheader_timeout = \"250ms\"\nmax_sessions = 3\nsession_idle = \"1m\"\n",
            path,
        )
        .unwrap();
        assert_eq!(
            cfg.mcp_http,
            HttpLimits {
                header_timeout: Duration::from_millis(250),
                max_sessions: 3,
                session_idle: Duration::from_secs(60),
                ..HttpLimits::default()
            }
        );
        for (text, needle) in [
            (
                "[mcp]\nmax_connections = 0\n",
                "[mcp] max_connections must be above zero",
            ),
            (
                "[mcp]\nheader_timeout = \"0s\"\n",
                "[mcp] header_timeout must be above zero",
            ),
            ("[mcp]\nmax_session = 5\n", "unknown field `max_session`"),
        ] {
            let e = HostConfig::parse(text, path).unwrap_err().to_string();
            assert!(e.contains(needle) && e.contains("/etc/airlock.toml"), "{e}");
        }
    }

    #[test]
    fn unknown_fields_and_verbs_are_errors_naming_the_file() {
        let e = Toolkit::parse(
            "[tools.a]\ncomponent = \"a.wasm\"\n[tools.a.grants.network]\nall = true\n",
            Path::new("kit.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("kit.toml: "), "{e}");
        assert!(e.contains("unknown field `network`"), "{e}");
        let e = Toolkit::parse(
            "[tools.a]\ncomponent = \"a.wasm\"\nfuel = 3\n",
            Path::new("k.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("unknown field `fuel`"), "{e}");
        let e = Toolkit::parse(
            "[tools.a]\ncomponent = \"a.wasm\"\n[tools.a.budget]\nmemory = \"lots\"\n",
            Path::new("k.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("not a size"), "{e}");
        assert!(Toolkit::parse("tools = {}", Path::new("k.toml")).is_err());
        assert!(Toolkit::parse("[tools.\"a b\"]\ncomponent=\"x\"", Path::new("k.toml")).is_err());
    }

    #[test]
    fn host_config_resolves_secrets_from_env_and_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("seed"),
            "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60\n",
        )
        .unwrap();
        // SAFETY-free: a variable name unique to this test.
        let var = "AIRLOCK_TEST_CONFIG_HMAC_7F3A";
        unsafe_set_env(var, "topsecret-hmac");
        let cfg = HostConfig::parse(
            &format!(
                r#"
                [secrets.h]
                env = "{var}"
                [secrets.s]
                file = "seed"
                [sign.keys.hook]
                kind = "hmac-sha256"
                secret = "h"
                [sign.keys.rel]
                kind = "ed25519"
                secret = "s"
                [audit]
                file = "audit.jsonl"
                "#
            ),
            &dir.path().join("airlock.toml"),
        )
        .unwrap();
        assert_eq!(cfg.capabilities.sign.key_names(), vec!["hook", "rel"]);
        assert_eq!(cfg.audit.file, Some(dir.path().join("audit.jsonl")));
        assert!(cfg.audit.keys.is_none());
        let debug = format!("{cfg:?}");
        assert!(!debug.contains("topsecret"), "{debug}");
    }

    #[test]
    fn kv_stores_open_relative_to_the_config_and_unknown_kinds_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = HostConfig::parse(
            "[kv.notes]\nkind = \"sqlite\"\npath = \"notes.db\"\n",
            &dir.path().join("airlock.toml"),
        )
        .unwrap();
        assert_eq!(cfg.capabilities.kv.store_names(), vec!["notes"]);
        assert!(dir.path().join("notes.db").is_file());
        let e = HostConfig::parse(
            "[kv.notes]\nkind = \"redis\"\npath = \"x\"\n",
            &dir.path().join("airlock.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("[kv"), "{e}");
        let e = HostConfig::parse(
            "[kv.notes]\nkind = \"sqlite\"\npath = \"no/such/dir/notes.db\"\n",
            &dir.path().join("airlock.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("[kv.notes]: cannot open"), "{e}");
    }

    #[test]
    fn a_postgres_kv_store_reads_its_connection_string_from_a_secret_and_never_shows_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("pg-url"),
            "host=127.0.0.1 user=kv password=pg-topsecret-71 dbname=kv",
        )
        .unwrap();
        let cfg = HostConfig::parse(
            "[secrets.pg]\nfile = \"pg-url\"\n[kv.shared]\nkind = \"postgres\"\nurl = \"pg\"\n",
            &dir.path().join("airlock.toml"),
        )
        .unwrap();
        assert_eq!(cfg.capabilities.kv.store_names(), vec!["shared"]);
        let debug = format!("{cfg:?}");
        assert!(!debug.contains("topsecret"), "{debug}");
        let e = HostConfig::parse(
            "[kv.shared]\nkind = \"postgres\"\nurl = \"nope\"\n",
            &dir.path().join("airlock.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("[kv.shared]: url names secret `nope`"), "{e}");
        std::fs::write(dir.path().join("bad-url"), "not a connection string ===").unwrap();
        let e = HostConfig::parse(
            "[secrets.b]\nfile = \"bad-url\"\n[kv.shared]\nkind = \"postgres\"\nurl = \"b\"\n",
            &dir.path().join("airlock.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("does not parse") && !e.contains("==="), "{e}");
    }

    #[test]
    fn a_missing_secret_names_the_secret_and_where_it_was_looked_for() {
        let e = HostConfig::parse(
            "[secrets.h]\nenv = \"AIRLOCK_TEST_SURELY_UNSET_91\"\n[sign.keys.k]\nkind = \"hmac-sha256\"\nsecret = \"h\"\n",
            Path::new("airlock.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("secret `h`") && e.contains("AIRLOCK_TEST_SURELY_UNSET_91"),
            "{e}"
        );
        let e = HostConfig::parse(
            "[secrets.h]\nfile = \"/nonexistent/airlock-key\"\n[sign.keys.k]\nkind = \"ed25519\"\nsecret = \"h\"\n",
            Path::new("airlock.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("/nonexistent/airlock-key"), "{e}");
        let e = HostConfig::parse(
            "[sign.keys.k]\nkind = \"ed25519\"\nsecret = \"nope\"\n",
            Path::new("a.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("no [secrets.nope]"), "{e}");
        let e = HostConfig::parse(
            "[sign.keys.k]\nkind = \"rsa\"\nsecret = \"x\"\n",
            Path::new("a.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("unknown variant `rsa`"), "{e}");
    }

    #[test]
    fn databases_are_named_in_the_host_config_with_a_pseudonym_key_of_their_own() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("p.key"), "pseudonym-key-bytes\n").unwrap();
        let cfg_path = dir.path().join("airlock.toml");
        let cfg = HostConfig::parse(
            "[secrets.p]\nfile = \"p.key\"\n[sql]\npseudonym_secret = \"p\"\n\
             [databases.crm]\nkind = \"sqlite\"\npath = \"crm.db\"\n",
            &cfg_path,
        )
        .unwrap();
        assert_eq!(cfg.capabilities.sql.database_names(), ["crm"]);
        let text = format!("{:?}", cfg.capabilities.sql);
        assert!(
            !text.contains("crm.db") && !text.contains("pseudonym-key"),
            "{text}"
        );
        let err = |t: &str| HostConfig::parse(t, &cfg_path).unwrap_err().to_string();
        let e = err("[databases.crm]\nkind = \"sqlite\"\npath = \"a\"\nurl = \"x\"\n");
        assert!(e.contains("unknown field"), "{e}");
        let e = err("[databases.crm]\nkind = \"mysql\"\n");
        assert!(e.contains("mysql"), "{e}");
        let e = err("[databases.pg]\nkind = \"postgres\"\nurl = \"PG\"\n");
        assert!(e.contains("[databases.pg] url names secret `PG`"), "{e}");
        std::fs::write(
            dir.path().join("pg.url"),
            "host=db.invalid password=CANARY-PG\n",
        )
        .unwrap();
        let cfg = HostConfig::parse(
            "[secrets.pg]\nfile = \"pg.url\"\n[databases.pg]\nkind = \"postgres\"\nurl = \"pg\"\n",
            &cfg_path,
        )
        .unwrap();
        assert_eq!(cfg.capabilities.sql.database_names(), ["pg"]);
        assert!(!format!("{:?}", cfg.capabilities).contains("CANARY-PG"));
        // A key another verb uses could test guesses against pseudonyms.
        let e = err(
            "[secrets.p]\nfile = \"p.key\"\n[sign.keys.k]\nkind = \"hmac-sha256\"\n\
             secret = \"p\"\n[sql]\npseudonym_secret = \"p\"\n",
        );
        assert!(e.contains("pseudonym_secret uses secret `p`"), "{e}");
        let e = err("[sql]\npseudonym_secret = \"nope\"\n");
        assert!(e.contains("no [secrets.nope]"), "{e}");
    }

    #[test]
    fn a_secret_file_must_be_a_small_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'k'; MAX_SECRET_FILE_BYTES as usize + 1]).unwrap();
        for (file, expected) in [
            ("big", "larger than 64KiB"),
            (".", "not a regular file"),
            ("/dev/zero", "not a regular file"),
        ] {
            let text = format!(
                "[secrets.s]\nfile = \"{file}\"\n[sign.keys.k]\nkind = \"hmac-sha256\"\nsecret = \"s\"\n"
            );
            let e = HostConfig::parse(&text, &dir.path().join("airlock.toml"))
                .unwrap_err()
                .to_string();
            assert!(e.contains("secret `s`") && e.contains(expected), "{e}");
        }
    }

    #[allow(unsafe_code)]
    fn unsafe_set_env(k: &str, v: &str) {
        // SAFETY: called once with a variable no other test reads or writes.
        unsafe { std::env::set_var(k, v) }
    }
}
