//! `cargo xtask walls`: WALLS.md, generated from test names.
//!
//! A test attacks wall `K` when a module on its path is named `K`, for `K` one
//! of the keys in [`WALLS`] (`mod cpu { #[test] fn spin_runs_out_of_fuel() {} }`
//! in `tests/integration/walls.rs` is `walls::cpu::spin_runs_out_of_fuel`). The
//! command finds those tests by parsing the workspace's sources with `syn`, runs
//! the whole test suite as `cargo xtask test` does, reads each wall test's status
//! from the output, and writes WALLS.md: every wall, what it promises, the tests
//! that attack it and how they did. Walls no test attacks are listed as
//! "by design only", with what they rest on. `--no-run` reuses the statuses of
//! the last run (saved in `target/walls-last-run.json`).
//!
//! The test at the end of this file fails when WALLS.md no longer lists exactly
//! the wall tests in the sources.

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

/// One wall: its module key, a title, the promise it keeps, and what the
/// promise rests on when no test attacks it.
pub struct Wall {
    /// The module name that marks a test as attacking this wall.
    pub key: &'static str,
    /// A short title.
    pub title: &'static str,
    /// What the wall promises, in one or two sentences.
    pub promise: &'static str,
    /// What the promise rests on when no test attacks it.
    pub design: &'static str,
}

/// Every wall, in the order WALLS.md lists them.
pub const WALLS: &[Wall] = &[
    Wall {
        key: "network",
        title: "Network",
        promise: "A guest has no network of its own: its `wasi:sockets` and `wasi:http` 0.2 \
                  imports are answered by stubs that refuse every call, so Rust, Python and \
                  JavaScript tools alike fail inside the guest, real loopback servers receive \
                  nothing and the host process makes no network system call; any other \
                  network interface is refused at load whatever the grants say.",
        design: "Socket and HTTP imports are linked only to the refusing stubs of \
                 `host/src/no_network.rs`, which hold no OS capability; wasmtime-wasi's \
                 implementations are never linked, and the WASI context is built with TCP, \
                 UDP and name lookups disabled.",
    },
    Wall {
        key: "filesystem",
        title: "File system",
        promise: "A guest sees no files: it gets no preopened directories, so every path it \
                  opens fails, and the host never hands it ambient authority.",
        design: "The WASI context is built without preopens, and WASI is linked one \
                 interface at a time.",
    },
    Wall {
        key: "environment",
        title: "Environment",
        promise: "A guest sees no environment variables, no command-line arguments and an \
                  empty stdin: nothing of the host's process leaks into the job.",
        design: "The WASI context is built with an empty environment, no arguments and a \
                 closed stdin.",
    },
    Wall {
        key: "imports",
        title: "Imports",
        promise: "The linker is the grant: a tool importing a verb it was not granted, or \
                  anything never linkable, is refused before it runs, with every offending \
                  import listed. Bytes that are not a valid component are refused too.",
        design: "The world check classifies every import at load and refuses the tool \
                 unless each one is granted and linkable.",
    },
    Wall {
        key: "secrets",
        title: "Secrets",
        promise: "Guests never receive secret bytes: keys stay in the host, tools name them \
                  and get signatures or answers back, and a secret echoed by an upstream is \
                  redacted before the guest, the audit trail or the logs see it.",
        design: "No WIT function returns key material; keys live in `secrecy` types with \
                 redacted `Debug`.",
    },
    Wall {
        key: "cpu",
        title: "CPU",
        promise: "A job cannot run forever: fuel bounds instructions and the epoch deadline \
                  bounds wall time; both end the job with a typed budget error.",
        design: "Every store is armed with fuel and an epoch deadline before instantiation.",
    },
    Wall {
        key: "memory",
        title: "Memory",
        promise: "A job cannot take more memory than its budget: growing past the limit \
                  fails and ends the job with the memory budget error, and the host goes on.",
        design: "Every store has a resource limiter that traps on growth failure.",
    },
    Wall {
        key: "stack",
        title: "Stack",
        promise: "Unbounded recursion ends the job with a typed trap (a stack overflow or \
                  an out-of-bounds shadow stack), never a crash of the host.",
        design: "wasmtime's native stack limit and the guest's bounded shadow stack.",
    },
    Wall {
        key: "output",
        title: "Output",
        promise: "What a job prints and returns is capped: past the output budget the job \
                  ends with the output budget error, exactly at it the job succeeds.",
        design: "stdout and stderr are captured into capped buffers and results are \
                 measured before they are returned.",
    },
    Wall {
        key: "hostcall_data",
        title: "Host-call data",
        promise: "A guest cannot make the host copy or allocate without bound: hostcall \
                  fuel caps the bytes lifted from guest to host per call, including an \
                  export's result, so a giant message is a clean error, not a host allocation. \
                  The byte lists of a call's arguments count against the same budget, \
                  measured before they are decoded.",
        design: "Every store is armed with hostcall fuel before instantiation; arguments \
                 are converted with the budget as their byte limit.",
    },
    Wall {
        key: "hostcall_time",
        title: "Host-call time",
        promise: "Time spent inside host calls counts: a verb waiting on a silent upstream \
                  is cut off at the job's deadline, and a stuck job does not hold up others.",
        design: "The whole job runs under a `tokio::time::timeout`, and verbs take their \
                 deadline from the job.",
    },
    Wall {
        key: "tables",
        title: "Tables",
        promise: "A guest cannot grow its tables past the budget's element limit or fill the \
                  host's resource table without bound: growth fails and ends the job with a \
                  typed error instead of taking host memory.",
        design: "Every store has table limits that trap on growth failure and a capped \
                 resource table.",
    },
    Wall {
        key: "pool",
        title: "Pool",
        promise: "Jobs share a bounded pool of instance slots and nothing else: past the \
                  pool's size a job waits for a slot, every job, good or bad, gives its slot \
                  back, and many jobs at once each end with exactly their own outcome.",
        design: "Jobs take a pool slot before instantiating and the store (with its slot) is \
                 dropped when the job ends, whatever the outcome.",
    },
    Wall {
        key: "residue",
        title: "Residue",
        promise: "A job starts from nothing: a reused pool slot holds no memory, globals or \
                  state from the job before.",
        design: "One job, one store, one instance; pooled memory is reset between jobs.",
    },
    Wall {
        key: "audit",
        title: "Audit integrity",
        promise: "Every verb call is audited, allowed or denied, and a writer of the trail \
                  without the audit keys cannot change it unseen: an edited, removed, \
                  inserted, reordered or re-encoded line is found even with the chain \
                  recomputed, a cut end is reported unproven, and concurrent writers keep \
                  one intact chain.",
        design: "Each line is chained over the exact bytes of the one before and sealed with \
                 an HMAC; Ed25519 checkpoints sign the chain's head.",
    },
    Wall {
        key: "input",
        title: "Input",
        promise: "Arguments are converted against the export's WIT types before anything \
                  runs: a wrong, missing, out-of-range or too deeply nested argument, or an \
                  unknown function, is a typed error naming the spot.",
        design: "Arguments are lifted from JSON against the WIT types of the export.",
    },
    Wall {
        key: "descriptions",
        title: "Descriptions",
        promise: "What an agent reads about a tool comes from the operator: the toolkit's \
                  description leads, a component's own docs never reach an MCP, OpenAI or \
                  Anthropic schema, every description is stripped of control and invisible \
                  characters and capped, and a component whose export types are too big to \
                  describe is refused at load, in bounded time.",
        design: "Docs are read only from the toolkit and the WIT it points at; export types \
                 are counted with a budget when a component is loaded.",
    },
    Wall {
        key: "cache",
        title: "Compiled-component cache",
        promise: "A compiled component is loaded from the cache only after its tag, keyed \
                  with a private per-user key, is verified; a corrupt, foreign or forged \
                  entry (even with a recomputed checksum) is recompiled and replaced, and a \
                  cache directory that is a link, another user's or writable by others is \
                  not used at all. Eviction to the size cap deletes only entries of ours \
                  (never a link, its target or a foreign file) and nothing in a refused \
                  directory.",
        design: "Entries are deserialized only if their keyed BLAKE3 tag under the user's 0600 \
                 cache key matches, read once from a private regular file of the same user.",
    },
    Wall {
        key: "host_files",
        title: "Host input files",
        promise: "The host reads component, `wit`, secret and cache files only when they are \
                  regular files under a size cap: a FIFO, a device or a huge file is refused \
                  quickly with a clear error, never read until the host hangs or runs out of \
                  memory.",
        design: "Every such file goes through one reader that opens without blocking and \
                 checks the open file's type and size before reading at most the cap.",
    },
    Wall {
        key: "sign_scope",
        title: "`sign` scope",
        promise: "`sign` signs only with the keys the grant names, within its call quota and \
                  size cap; any other key is denied and audited.",
        design: "The sign grant lists key names; the verb checks each call against it.",
    },
    Wall {
        key: "log_scope",
        title: "`log` scope",
        promise: "`log` lines are capped in length and number per job; past the budget the \
                  verb answers `exhausted`.",
        design: "The log grant carries the caps; the verb counts per job.",
    },
    Wall {
        key: "fetch_scope",
        title: "`fetch` scope",
        promise: "`fetch` reaches only what the grant names: hosts, schemes, ports, methods \
                  and paths are checked after canonicalization, every redirect is checked \
                  again, private and metadata addresses are denied unless named, and \
                  request and response sizes are capped.",
        design: "Every request and every redirect is canonicalized and matched against the \
                 grant before it is sent.",
    },
    Wall {
        key: "complete_scope",
        title: "`complete` scope",
        promise: "`complete` asks only the granted models, within the call and token budgets \
                  of the job; provider failures reach the guest as short classified texts.",
        design: "The complete grant lists models and budgets; the verb checks each call.",
    },
    Wall {
        key: "kv_scope",
        title: "`kv` scope",
        promise: "A tool reaches only the namespace its kv grant names in the store it names: \
                  no key, prefix or cursor (`../`, another namespace's name, NUL, LIKE \
                  wildcards, quotes) reads, lists, overwrites or deletes another namespace's \
                  keys; a read-only grant is denied every write and a write past a quota is \
                  refused as `exhausted` with nothing written.",
        design: "The namespace comes from the grant (or the tool's name), never from the \
                 guest, and is a separate column bound as a parameter in every statement; \
                 list prefixes are compared as text with `substr`/`starts_with`, never as \
                 patterns; quotas are checked and the write made in one transaction.",
    },
    Wall {
        key: "sql_scope",
        title: "SQL scope",
        promise: "A tool sees a database only through the view its grant defines: no \
                  ungranted table or column, no row outside the operator's row scope, masked \
                  columns only as keyed pseudonyms, aggregate-only tables only as groups of \
                  at least min_group rows; everything else is refused as denied with its reason, \
                  and no protected value reaches the guest, its logs or the audit.",
        design: "Every statement is parsed (sqlparser), checked against a read-only subset and \
                 rewritten so each granted table is a sub-select of its granted columns under \
                 the row scope; SQLite runs it read-only behind an authorizer and a progress \
                 handler that cancels at the deadline.",
    },
    Wall {
        key: "mcp",
        title: "MCP server",
        promise: "Over MCP every failure is a tool error result, not a broken server: a tool \
                  that loops forever does not block the others, a refused tool stops \
                  startup, and the HTTP transport checks the host header and the path, \
                  answers a malformed body with 400, and bounds what slow clients and \
                  `initialize` floods can hold (read timeout, connection and session caps).",
        design: "Each MCP call is one job with every wall above; the HTTP transport checks \
                 the host header and enforces the `[mcp]` limits.",
    },
    Wall {
        key: "terminal",
        title: "Terminal",
        promise: "Text from guests, components and toolkits reaches the operator's terminal \
                  with every control character shown as text (`\\x1b`, `\\r`, `\\n`, \
                  `\\u202e`): it cannot set the title, add hyperlinks or forge log lines, and \
                  `--json` output still parses to the exact text.",
        design: "Every human-readable line goes through `airlock::term` (`outln!`, `errln!`), \
                 which escapes C0, DEL, C1 and bidi controls.",
    },
    Wall {
        key: "cancel",
        title: "Cancellation",
        promise: "A cancelled job stops within one epoch tick, whoever cancels it (an MCP \
                  cancel, a deleted session, a client gone over stdio or HTTP): the guest is \
                  interrupted, a fetch or completion in flight is abandoned and its upstream \
                  connection closed, the job slot is freed and the audit trail says `cancelled`.",
        design: "`Airlock::run_with` races the job against its `Cancel` handle, the epoch \
                 callback interrupts a cancelled guest, and the verbs race their upstream \
                 requests against the same handle.",
    },
    Wall {
        key: "supply_chain",
        title: "Supply chain",
        promise: "A shared tool runs only as the exact bytes its toolkit pinned, signed by a \
                  publisher key the operator trusts for its namespace, approved as requested, \
                  with grants no wider than the approval: unknown, out-of-namespace and revoked \
                  signers, swapped components, replayed statements, forged approvals, edited \
                  lockfiles, hand-widened toolkits and includes, downgrades, floating tags \
                  and registries serving other bytes are each refused with exit 3 and the \
                  reason.",
        design: "`airlock-trust` re-hashes every manifest and blob it reads (registry or \
                 OCI layout) and turns DSSE/in-toto statements into verdicts under \
                 `trust.toml`; the host re-checks the lock, signatures, approval and grants \
                 at every load and the pinned digest with the one hash the cache needs, \
                 before compiling.",
    },
    Wall {
        key: "serve_auth",
        title: "Who may call a served toolkit",
        promise: "`airlock serve` runs nothing of a toolkit for a request without a credential                   for that toolkit: a missing, `Basic`, unknown, expired, other-audience,                   `alg: none`, HMAC-confused or tampered token, or one for another toolkit,                   is refused with 401 or 403 and a `WWW-Authenticate` challenge, audited and                   counted, and no credential reaches the audit trail or the logs.",
        design: "The router asks `airlock-auth` before rmcp sees the request: token hashes                  compared in constant time, JWTs verified against the JWKS with only                  asymmetric algorithms; a non-loopback address without credentials is                  refused at start.",
    },
];

/// Where the statuses of the last run are saved, under the repo root.
const LAST_RUN: &str = "target/walls-last-run.json";

/// The generated file, at the repo root.
const WALLS_MD: &str = "WALLS.md";

/// One test function inside a wall module.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct WallTest {
    /// The wall key.
    pub wall: String,
    /// The file the test is in, relative to the repo root.
    pub file: String,
    /// The test's path inside its test binary, as `cargo test` prints it.
    pub path: String,
    /// The test binary: its root source relative to its package, and its name.
    pub binary: Binary,
}

/// A test binary, the way cargo names it in its `Running` lines.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Binary {
    /// The root source file, relative to the package (`src/lib.rs`, `tests/cli.rs`).
    pub src: String,
    /// The target name, as in the executable's name (`airlock_sign`, `integration`).
    pub name: String,
}

impl Binary {
    /// The key the saved statuses use.
    fn key(&self) -> String {
        format!("{} ({})", self.src, self.name)
    }
}

/// `cargo xtask walls [--no-run]`.
pub fn walls(root: &Path, rest: &[String]) -> Result<()> {
    let no_run = match rest {
        [] => false,
        [flag] if flag == "--no-run" => true,
        _ => bail!("usage: cargo xtask walls [--no-run], got {rest:?}"),
    };
    let tests = scan(root)?;
    let run = if no_run {
        load_run(root)
    } else {
        let run = run_suite(root)?;
        let missing: Vec<String> = tests
            .iter()
            .filter(|t| !run.statuses.contains_key(&status_key(&t.binary, &t.path)))
            .map(|t| format!("{} ({})", t.path, t.file))
            .collect();
        if !missing.is_empty() {
            if !run.passed {
                bail!(
                    "the test run failed before running these wall tests (see above); \
                     WALLS.md is unchanged:\n  {}",
                    missing.join("\n  ")
                );
            }
            bail!(
                "these wall tests were found in the sources but cargo did not run them; \
                 the scan and cargo disagree:\n  {}",
                missing.join("\n  ")
            );
        }
        save_run(root, &run)?;
        Some(run)
    };
    let md = render(&tests, run.as_ref());
    let out = root.join(WALLS_MD);
    let before = parse(&std::fs::read_to_string(&out).unwrap_or_default());
    let after = parse(&md);
    std::fs::write(&out, md).with_context(|| format!("could not write {}", out.display()))?;
    println!("wrote {} ({} wall tests)", out.display(), tests.len());
    for (wall, path, file) in after.tests.difference(&before.tests) {
        println!("  added: {path} ({file}), wall `{wall}`");
    }
    for (wall, path, file) in before.tests.difference(&after.tests) {
        println!("  removed: {path} ({file}), wall `{wall}`");
    }
    if let Some(run) = run
        && !run.passed
        && !no_run
    {
        bail!("the test run failed; WALLS.md records which wall tests failed");
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Scanning the sources

/// Every test in a wall module of every test target of the workspace.
pub fn scan(root: &Path) -> Result<Vec<WallTest>> {
    let mut tests = Vec::new();
    for (package_dir, src_path, name) in test_targets(root)? {
        let src = src_path
            .strip_prefix(&package_dir)
            .unwrap_or(&src_path)
            .to_string_lossy()
            .replace('\\', "/");
        let binary = Binary { src, name };
        let mut found = Vec::new();
        let dir = src_path.parent().unwrap_or(root).to_path_buf();
        scan_file(&src_path, &dir, &mut Vec::new(), &mut found)?;
        for (file, path, wall) in found {
            let file = file
                .strip_prefix(root)
                .unwrap_or(&file)
                .to_string_lossy()
                .replace('\\', "/");
            tests.push(WallTest {
                wall,
                file,
                path,
                binary: binary.clone(),
            });
        }
    }
    tests.sort();
    tests.dedup();
    Ok(tests)
}

/// The workspace's test targets: (package directory, root source, target name).
fn test_targets(root: &Path) -> Result<Vec<(PathBuf, PathBuf, String)>> {
    let out = crate::cargo(root)
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .output()
        .context("could not run `cargo metadata`")?;
    if !out.status.success() {
        bail!(
            "`cargo metadata` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let meta: Value =
        serde_json::from_slice(&out.stdout).context("`cargo metadata` printed bad JSON")?;
    let mut targets = Vec::new();
    for package in meta["packages"].as_array().into_iter().flatten() {
        let manifest = PathBuf::from(package["manifest_path"].as_str().unwrap_or_default());
        let dir = manifest.parent().unwrap_or(root).to_path_buf();
        for target in package["targets"].as_array().into_iter().flatten() {
            let tested = target["test"].as_bool().unwrap_or(false);
            let kinds: Vec<&str> = target["kind"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let kind_ok = kinds
                .iter()
                .any(|k| matches!(*k, "lib" | "rlib" | "bin" | "test"));
            if !tested || !kind_ok {
                continue;
            }
            let src = PathBuf::from(target["src_path"].as_str().unwrap_or_default());
            let name = target["name"]
                .as_str()
                .unwrap_or_default()
                .replace('-', "_");
            targets.push((dir.clone(), src, name));
        }
    }
    Ok(targets)
}

/// Parse `file` (a module at `module` whose child files live in `dir`) and
/// collect (file, test path, wall) for each test in a wall module.
fn scan_file(
    file: &Path,
    dir: &Path,
    module: &mut Vec<String>,
    found: &mut Vec<(PathBuf, String, String)>,
) -> Result<()> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("could not read {}", file.display()))?;
    let parsed =
        syn::parse_file(&text).with_context(|| format!("could not parse {}", file.display()))?;
    scan_items(&parsed.items, file, dir, module, found)
}

/// The wall a module path attacks: the innermost wall key on it.
fn wall_of(module: &[String]) -> Option<&String> {
    module
        .iter()
        .rev()
        .find(|m| WALLS.iter().any(|w| w.key == m.as_str()))
}

fn scan_items(
    items: &[syn::Item],
    file: &Path,
    dir: &Path,
    module: &mut Vec<String>,
    found: &mut Vec<(PathBuf, String, String)>,
) -> Result<()> {
    for item in items {
        match item {
            syn::Item::Fn(f) if f.attrs.iter().any(is_test_attr) => {
                if let Some(wall) = wall_of(module) {
                    let name = f.sig.ident.to_string();
                    found.push((file.to_path_buf(), test_path(module, &name), wall.clone()));
                }
            }
            syn::Item::Macro(m) => {
                // `proptest! { #[test] fn name(x in ..) { .. } }` and the like.
                if let Some(wall) = wall_of(module) {
                    for name in tests_in_tokens(m.mac.tokens.clone()) {
                        found.push((file.to_path_buf(), test_path(module, &name), wall.clone()));
                    }
                }
            }
            syn::Item::Mod(m) => {
                let name = m.ident.to_string();
                let path_attr = m.attrs.iter().find(|a| a.path().is_ident("path"));
                module.push(name.clone());
                let child_dir = dir.join(&name);
                match (&m.content, path_attr) {
                    (Some((_, inner)), None) => {
                        scan_items(inner, file, &child_dir, module, found)?;
                    }
                    // `#[path = "x/y.rs"] mod y;` beside a file that is not in
                    // an inline module: relative to that file's directory.
                    (None, Some(attr)) if dir == file.parent().unwrap_or(dir) => {
                        let syn::Meta::NameValue(syn::MetaNameValue {
                            value:
                                syn::Expr::Lit(syn::ExprLit {
                                    lit: syn::Lit::Str(target),
                                    ..
                                }),
                            ..
                        }) = &attr.meta
                        else {
                            bail!(
                                "{}: `#[path]` on `mod {name}` is not a string",
                                file.display()
                            );
                        };
                        let target = dir.join(target.value());
                        let target_dir = target.parent().unwrap_or(dir).join(&name);
                        scan_file(&target, &target_dir, module, found)?;
                    }
                    (_, Some(_)) => bail!(
                        "{}: `#[path]` on `mod {name}` is supported by `cargo xtask walls` only \
                         at a file's top level, on a module without a body",
                        file.display()
                    ),
                    (None, None) => {
                        let flat = dir.join(format!("{name}.rs"));
                        let nested = child_dir.join("mod.rs");
                        if flat.is_file() {
                            scan_file(&flat, &child_dir, module, found)?;
                        } else if nested.is_file() {
                            scan_file(&nested, &child_dir, module, found)?;
                        } else {
                            bail!(
                                "{}: no file for `mod {name};` (looked for {} and {})",
                                file.display(),
                                flat.display(),
                                nested.display()
                            );
                        }
                    }
                }
                module.pop();
            }
            _ => {}
        }
    }
    Ok(())
}

fn test_path(module: &[String], name: &str) -> String {
    module
        .iter()
        .map(String::as_str)
        .chain([name])
        .collect::<Vec<_>>()
        .join("::")
}

/// `#[test]`, `#[tokio::test]`, `#[tokio::test(...)]`: any attribute path ending in `test`.
fn is_test_attr(attr: &syn::Attribute) -> bool {
    attr.path()
        .segments
        .last()
        .is_some_and(|s| s.ident == "test")
}

/// The names of `#[test] fn NAME` inside a macro's tokens.
fn tests_in_tokens(tokens: proc_macro2::TokenStream) -> Vec<String> {
    use proc_macro2::TokenTree;
    let trees: Vec<TokenTree> = tokens.into_iter().collect();
    let mut names = Vec::new();
    let mut i = 0;
    while i < trees.len() {
        if let TokenTree::Group(g) = &trees[i]
            && g.delimiter() != proc_macro2::Delimiter::Bracket
        {
            names.extend(tests_in_tokens(g.stream()));
        }
        let is_test = matches!(
            (&trees[i], trees.get(i + 1)),
            (TokenTree::Punct(p), Some(TokenTree::Group(g)))
                if p.as_char() == '#'
                    && g.delimiter() == proc_macro2::Delimiter::Bracket
                    && g.stream().to_string().trim() == "test"
        );
        if is_test {
            // Skip further attributes, then expect `fn NAME`.
            let mut j = i + 2;
            while matches!(&trees.get(j), Some(TokenTree::Punct(p)) if p.as_char() == '#') {
                j += 2;
            }
            while matches!(&trees.get(j), Some(TokenTree::Ident(id)) if *id != "fn") {
                j += 1; // `async`, `pub`, ...
            }
            if let (Some(TokenTree::Ident(f)), Some(TokenTree::Ident(name))) =
                (trees.get(j), trees.get(j + 1))
                && *f == "fn"
            {
                names.push(name.to_string());
                i = j + 2;
                continue;
            }
        }
        i += 1;
    }
    names
}

// ---------------------------------------------------------------------------
// Running the suite

/// The statuses of one run of the suite.
pub struct Run {
    /// When it ran, `YYYY-MM-DD HH:MM UTC`.
    pub date: String,
    /// Whether `cargo test` succeeded.
    pub passed: bool,
    /// Status (`ok`, `FAILED`, `ignored`) by [`status_key`].
    pub statuses: BTreeMap<String, String>,
}

fn status_key(binary: &Binary, path: &str) -> String {
    format!("{} {path}", binary.key())
}

/// The test that fails when WALLS.md no longer matches the sources.
const STALENESS_TEST: &str = "walls_md_lists_exactly_the_wall_tests_in_the_sources";

/// Run the suite as `cargo xtask test` does, teeing its output, and read the statuses.
fn run_suite(root: &Path) -> Result<Run> {
    // The staleness test compares the sources with the WALLS.md this command
    // is about to rewrite: skip it here, it runs in every other test run.
    let skip = ["--", "--skip", STALENESS_TEST].map(String::from);
    let mut cmd = crate::test_command(root, &skip)?;
    let (reader, writer) = std::io::pipe().context("could not make a pipe")?;
    cmd.stdout(writer.try_clone()?).stderr(writer);
    eprintln!("xtask: running `cargo test --workspace --no-fail-fast` (output teed)");
    let mut child = cmd.spawn().context("could not start `cargo test`")?;
    // The command holds the pipe's write ends; drop them so the read ends at exit.
    drop(cmd);
    let mut parser = OutputParser::default();
    let mut stdout = std::io::stdout().lock();
    for line in BufReader::new(reader).lines() {
        let line = line.context("could not read the output of `cargo test`")?;
        writeln!(stdout, "{line}")?;
        parser.line(&line);
    }
    drop(stdout);
    let status = child.wait().context("`cargo test` did not finish")?;
    Ok(Run {
        date: now_utc(),
        passed: status.success(),
        statuses: parser.statuses,
    })
}

/// Reads `Running` and `test ... ok` lines of `cargo test` output.
#[derive(Default)]
struct OutputParser {
    binary: Option<Binary>,
    statuses: BTreeMap<String, String>,
}

impl OutputParser {
    fn line(&mut self, line: &str) {
        let trimmed = line.trim();
        if let Some(rest) = trimmed.strip_prefix("Running ") {
            // `Running unittests src/lib.rs (target/debug/deps/airlock_sign-0123abcd)`
            let rest = rest.strip_prefix("unittests ").unwrap_or(rest);
            self.binary = rest.split_once(" (").map(|(src, exe)| {
                let exe = exe.trim_end_matches(')');
                let file = exe.rsplit(['/', '\\']).next().unwrap_or(exe);
                let file = file.strip_suffix(".exe").unwrap_or(file);
                let name = file.rsplit_once('-').map_or(file, |(n, _)| n);
                Binary {
                    src: src.replace('\\', "/"),
                    name: name.to_string(),
                }
            });
        } else if trimmed.starts_with("Doc-tests ") {
            self.binary = None;
        } else if let (Some(binary), Some(rest)) = (&self.binary, line.strip_prefix("test "))
            && let Some((path, status)) = rest.split_once(" ... ")
        {
            let status = status.split([',', ' ']).next().unwrap_or_default();
            if matches!(status, "ok" | "FAILED" | "ignored") {
                self.statuses
                    .insert(status_key(binary, path.trim()), status.to_string());
            }
        }
    }
}

fn save_run(root: &Path, run: &Run) -> Result<()> {
    let path = root.join(LAST_RUN);
    let value = json!({
        "date": run.date,
        "passed": run.passed,
        "statuses": run.statuses,
    });
    std::fs::write(&path, serde_json::to_string_pretty(&value)?)
        .with_context(|| format!("could not write {}", path.display()))
}

/// The last saved run, if there is one that can be read.
fn load_run(root: &Path) -> Option<Run> {
    let text = std::fs::read_to_string(root.join(LAST_RUN)).ok()?;
    let value: Value = serde_json::from_str(&text).ok()?;
    let statuses = value["statuses"]
        .as_object()?
        .iter()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
        .collect();
    Some(Run {
        date: value["date"].as_str()?.to_string(),
        passed: value["passed"].as_bool()?,
        statuses,
    })
}

/// The current time as `YYYY-MM-DD HH:MM UTC`.
fn now_utc() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

// ---------------------------------------------------------------------------
// WALLS.md

/// WALLS.md for `tests`, with the statuses of `run`.
fn render(tests: &[WallTest], run: Option<&Run>) -> String {
    let status = |t: &WallTest| -> String {
        run.and_then(|r| r.statuses.get(&status_key(&t.binary, &t.path)))
            .cloned()
            .unwrap_or_else(|| "not run".to_string())
    };
    let by_wall = |key: &'static str| tests.iter().filter(move |t| t.wall == key);
    let mut md = String::new();
    md.push_str("# Walls\n\n");
    md.push_str(
        "<!-- Generated by `cargo xtask walls` from the test names: do not edit by hand. -->\n\n",
    );
    md.push_str(
        "Each wall of the airlock sandbox, what it promises, and the tests that attack it. \
         This file is generated by `cargo xtask walls` (see `xtask/src/walls.rs`): a test \
         attacks wall `K` when a module on its path is named `K`. The command runs the whole \
         suite for the statuses; `cargo xtask walls --no-run` reuses those of the last run. \
         A test fails when this file no longer matches the tests in the sources.\n\n",
    );
    match run {
        Some(r) => {
            let failed = tests.iter().filter(|t| status(t) == "FAILED").count();
            let result = if r.passed {
                "the suite passed".to_string()
            } else {
                format!("the suite FAILED ({failed} wall tests failed)")
            };
            md.push_str(&format!(
                "Last run: {}, `cargo test --workspace --no-fail-fast`: {result}.\n\n",
                r.date
            ));
        }
        None => md.push_str("Last run: not run.\n\n"),
    }
    md.push_str("| Wall | Promise | Attacking tests | All passed? |\n|---|---|---|---|\n");
    for wall in WALLS {
        let count = by_wall(wall.key).count();
        let passed = if count == 0 {
            "by design only".to_string()
        } else {
            let statuses: Vec<String> = by_wall(wall.key).map(status).collect();
            if statuses.iter().all(|s| s == "ok") {
                "yes".to_string()
            } else if statuses.iter().any(|s| s == "FAILED") {
                "**no**".to_string()
            } else if statuses.iter().all(|s| s == "not run") {
                "not run".to_string()
            } else {
                let not_ok = statuses.iter().filter(|s| *s != "ok").count();
                format!("{not_ok} not run or ignored")
            }
        };
        md.push_str(&format!(
            "| [{}](#{}) | {} | {count} | {passed} |\n",
            wall.title,
            anchor(wall),
            wall.promise
        ));
    }
    for wall in WALLS.iter().filter(|w| by_wall(w.key).next().is_some()) {
        md.push_str(&format!(
            "\n## {} (`{}`)\n\n{}\n\n",
            wall.title, wall.key, wall.promise
        ));
        for t in by_wall(wall.key) {
            md.push_str(&format!("- `{}` in `{}`: {}\n", t.path, t.file, status(t)));
        }
    }
    let by_design: Vec<&Wall> = WALLS
        .iter()
        .filter(|w| by_wall(w.key).next().is_none())
        .collect();
    if !by_design.is_empty() {
        md.push_str(
            "\n## By design only\n\nNo test attacks these walls yet; they rest on design.\n",
        );
        for wall in by_design {
            md.push_str(&format!(
                "\n### {} (`{}`)\n\n{}\n\nBy design: {}\n",
                wall.title, wall.key, wall.promise, wall.design
            ));
        }
    }
    md
}

/// The GitHub anchor of a wall's heading.
fn anchor(wall: &Wall) -> String {
    format!("{} {}", wall.title, wall.key)
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            'a'..='z' | '0'..='9' | '_' | '-' => Some(c),
            ' ' => Some('-'),
            _ => None,
        })
        .collect()
}

/// What WALLS.md lists: the walls with tests and their (wall, path, file)
/// entries, and the walls listed as by design only.
#[derive(Debug, Default, PartialEq)]
pub struct Listed {
    /// (wall, test path, file) for each listed test.
    pub tests: BTreeSet<(String, String, String)>,
    /// The wall keys with a section, in order.
    pub walls: Vec<String>,
    /// The wall keys under "By design only".
    pub by_design: BTreeSet<String>,
}

/// Read what a WALLS.md lists, ignoring statuses and dates.
pub fn parse(md: &str) -> Listed {
    let mut listed = Listed::default();
    let mut wall: Option<String> = None;
    let mut in_by_design = false;
    for line in md.lines() {
        if let Some(heading) = line.strip_prefix("## ").or(line.strip_prefix("### ")) {
            if heading == "By design only" {
                in_by_design = true;
                wall = None;
                continue;
            }
            wall = heading
                .rsplit_once("(`")
                .and_then(|(_, k)| k.strip_suffix("`)"))
                .map(str::to_string);
            if let Some(key) = &wall {
                listed.walls.push(key.clone());
                if in_by_design {
                    listed.by_design.insert(key.clone());
                }
            }
        } else if let (Some(key), Some(rest)) = (&wall, line.strip_prefix("- `"))
            && let Some((path, rest)) = rest.split_once("` in `")
            && let Some((file, _status)) = rest.split_once("`: ")
        {
            listed
                .tests
                .insert((key.clone(), path.to_string(), file.to_string()));
        }
    }
    listed
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What WALLS.md should list for `tests`.
    fn expected(tests: &[WallTest]) -> Listed {
        parse(&render(tests, None))
    }

    fn md(root: &Path) -> String {
        std::fs::read_to_string(root.join(WALLS_MD)).unwrap_or_default()
    }

    #[test]
    fn walls_md_lists_exactly_the_wall_tests_in_the_sources() {
        let root = crate::repo_root();
        let tests = scan(&root).expect("the sources scan");
        let want = expected(&tests);
        let have = parse(&md(&root));
        if want == have {
            return;
        }
        let mut problems = Vec::new();
        for (wall, path, file) in want.tests.difference(&have.tests) {
            problems.push(format!("  added: {path} ({file}), wall `{wall}`"));
        }
        for (wall, path, file) in have.tests.difference(&want.tests) {
            problems.push(format!("  removed: {path} ({file}), wall `{wall}`"));
        }
        if want.walls != have.walls || want.by_design != have.by_design {
            problems.push(format!(
                "  walls: WALLS.md has {:?} (by design only: {:?}), the sources give {:?} \
                 (by design only: {:?})",
                have.walls, have.by_design, want.walls, want.by_design
            ));
        }
        panic!(
            "WALLS.md is stale:\n{}\nrun `cargo xtask walls` to regenerate it",
            problems.join("\n")
        );
    }

    #[test]
    fn every_wall_key_is_unique_and_a_module_name() {
        let mut seen = BTreeSet::new();
        for wall in WALLS {
            assert!(seen.insert(wall.key), "wall `{}` listed twice", wall.key);
            assert!(
                wall.key.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{}",
                wall.key
            );
            assert!(!wall.promise.is_empty() && !wall.design.is_empty());
        }
    }

    #[test]
    fn a_rendered_file_parses_back_to_what_it_lists() {
        let binary = Binary {
            src: "integration/main.rs".into(),
            name: "integration".into(),
        };
        let tests = vec![WallTest {
            wall: "cpu".into(),
            file: "tests/integration/walls.rs".into(),
            path: "walls::cpu::spin_runs_out_of_fuel".into(),
            binary: binary.clone(),
        }];
        let mut parser = OutputParser::default();
        for line in [
            "     Running integration/main.rs (target/debug/deps/integration-0123abcd)",
            "test walls::cpu::spin_runs_out_of_fuel ... ok",
            "   Doc-tests airlock",
            "test walls::cpu::spin_runs_out_of_fuel ... FAILED",
        ] {
            parser.line(line);
        }
        let run = Run {
            date: now_utc(),
            passed: true,
            statuses: parser.statuses,
        };
        let md = render(&tests, Some(&run));
        assert!(
            md.contains(
                "- `walls::cpu::spin_runs_out_of_fuel` in `tests/integration/walls.rs`: ok"
            ),
            "{md}"
        );
        let listed = parse(&md);
        assert_eq!(listed, expected(&tests));
        assert_eq!(listed.walls.len(), WALLS.len());
        assert_eq!(listed.by_design.len(), WALLS.len() - 1);
        assert!(!listed.by_design.contains("cpu"));
    }

    #[test]
    fn proptest_style_tests_are_found_in_macro_tokens() {
        let tokens: proc_macro2::TokenStream =
            "#![proptest_config(x)] #[test] fn a(x in 0..1u8) {} #[test] #[should_panic] fn b() {}"
                .parse()
                .expect("tokens");
        assert_eq!(tests_in_tokens(tokens), ["a", "b"]);
    }
}
