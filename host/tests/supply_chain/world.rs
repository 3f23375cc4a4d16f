//! A marketplace in a temporary directory for the supply-chain tests: keys
//! for a publisher, another team, an approver and a rogue; a trust policy; a
//! host config; a catalog layout directory; and the `airlock` commands.

use std::path::PathBuf;
use std::process::{Command, Output};

use airlock_trust::oci;
use airlock_trust::{Digest, Lockfile, Policy, PrivateKey, Store};

/// The request the tests start from.
pub const NARROW: &str = "description = \"Signs webhook bodies.\"\n\
    [grants.sign]\nkeys = [\"webhook\"]\nmax_calls = 10\n[grants.log]\n";
/// The same request with a ten times larger quota.
pub const WIDE: &str = "description = \"Signs webhook bodies.\"\n\
    [grants.sign]\nkeys = [\"webhook\"]\nmax_calls = 100\n[grants.log]\n";

/// One test's marketplace.
pub struct World {
    _tmp: tempfile::TempDir,
    /// Where everything lives (the commands run here).
    pub dir: PathBuf,
    /// The component published (a copy of the `sign_webhook` guest).
    pub component: PathBuf,
    team: bool,
    extra_policy: std::cell::RefCell<String>,
}

impl World {
    /// Keys, a team-mode policy and a host config; nothing published.
    pub fn new() -> Self {
        Self::with_mode(true)
    }

    /// The same with a policy that has no approvers (single-user mode).
    pub fn single_user() -> Self {
        Self::with_mode(false)
    }

    /// A world where `version` with `request` is published and approved.
    pub fn approved(version: &str, request: &str) -> Self {
        let w = Self::new();
        w.publish(version, request, "data-team", "data");
        w.approve(version);
        w
    }

    fn with_mode(team: bool) -> Self {
        let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let dir = tmp.path().to_path_buf();
        let component = dir.join("signer.wasm");
        std::fs::copy(crate::common::guest_path("sign_webhook"), &component).unwrap();
        let w = Self {
            _tmp: tmp,
            dir,
            component,
            team,
            extra_policy: Default::default(),
        };
        for name in ["data-team", "web-team", "security", "rogue"] {
            w.airlock_ok(&["key", "new", &format!("{name}.key")]);
        }
        w.policy("");
        w.write(
            "airlock.toml",
            "[trust]\npolicy = \"trust.toml\"\n[secrets.webhook-secret]\nenv = \"AIRLOCK_WEBHOOK_SECRET\"\n\
             [sign.keys.webhook]\nkind = \"hmac-sha256\"\nsecret = \"webhook-secret\"\n",
        );
        w.write("toolkit.toml", "# the task's tools\n");
        w
    }

    /// Writes the trust policy with `extra` appended (kept for later rewrites).
    pub fn policy(&self, extra: &str) {
        *self.extra_policy.borrow_mut() = extra.to_string();
        let mut text = format!(
            "require_signed = true\n[publishers.data-team]\nkey = \"{}\"\nnamespaces = [\"data\"]\n\
             [publishers.web-team]\nkey = \"{}\"\nnamespaces = [\"web\"]\n",
            self.public("data-team"),
            self.public("web-team")
        );
        if self.team {
            text += &format!(
                "[approvers.security]\nkey = \"{}\"\n",
                self.public("security")
            );
        }
        text += extra;
        self.write("trust.toml", &text);
    }

    /// The `ed25519:…` line of a key.
    pub fn public(&self, key: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("{key}.key.pub")))
            .unwrap()
            .trim()
            .to_string()
    }

    /// A key's id.
    pub fn key_id(&self, key: &str) -> String {
        airlock_trust::PublicKey::parse(&self.public(key))
            .unwrap()
            .id()
            .0
    }

    /// Writes a file in the world.
    pub fn write(&self, name: &str, text: &str) {
        std::fs::write(self.dir.join(name), text).unwrap();
    }

    /// Runs `airlock ARGS` here.
    pub fn airlock(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_airlock"))
            .args(args)
            .current_dir(&self.dir)
            .env("AIRLOCK_WEBHOOK_SECRET", "s3cret")
            .env("AIRLOCK_CACHE", crate::common::scratch().join("cache"))
            .env(
                "AIRLOCK_CACHE_KEY",
                crate::common::scratch().join("cache.key"),
            )
            .output()
            .expect("the airlock binary runs")
    }

    /// Asserts `out` succeeded.
    pub fn ok(&self, out: &Output) {
        assert!(
            out.status.success(),
            "exit {:?}\nstdout: {}\nstderr: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Runs `airlock ARGS` and asserts it succeeded.
    pub fn airlock_ok(&self, args: &[&str]) -> Output {
        let out = self.airlock(args);
        self.ok(&out);
        out
    }

    /// Signs `request` for `version` under `namespace` with `key`.
    pub fn pack(&self, version: &str, request: &str, key: &str, namespace: &str) -> Output {
        self.write("request.toml", request);
        self.airlock(&[
            "tool",
            "pack",
            "signer.wasm",
            "--name",
            &format!("{namespace}/signer"),
            "--version",
            version,
            "--request",
            "request.toml",
            "--key",
            &format!("{key}.key"),
        ])
    }

    /// Packs and pushes `version` to the catalog layout `oci:catalog`.
    pub fn publish(&self, version: &str, request: &str, key: &str, namespace: &str) {
        self.ok(&self.pack(version, request, key, namespace));
        self.airlock_ok(&[
            "tool",
            "push",
            "signer.wasm",
            &format!("oci:catalog:{version}"),
        ]);
    }

    /// The security team approves `version` in the catalog.
    pub fn approve(&self, version: &str) {
        self.airlock_ok(&[
            "tool",
            "approve",
            &format!("oci:catalog:{version}"),
            "--key",
            "security.key",
            "--trust",
            "trust.toml",
        ]);
    }

    /// An approval of `version` signed with `key` (not an approver's), made
    /// with the library and attached to the catalog as a real one would be.
    pub fn forge_approval(&self, version: &str, key: &str) -> Vec<u8> {
        let catalog = self.dir.join("catalog");
        let pulled = oci::read_layout(&catalog, version).unwrap();
        let policy = Policy::load(&self.dir.join("trust.toml")).unwrap();
        let verified = policy
            .verify_statement(
                &pulled.artifact.statement,
                &Digest::of(&pulled.artifact.component),
            )
            .unwrap();
        let key = PrivateKey::load(&self.dir.join(format!("{key}.key"))).unwrap();
        let envelope = airlock_trust::publish::approve(&verified, &key).to_bytes();
        oci::add_approval_to_layout(&catalog, &pulled.manifest_digest, &envelope).unwrap();
        envelope
    }

    /// The digest of `version`'s statement in the catalog.
    pub fn statement_digest(&self, version: &str) -> Digest {
        let pulled = oci::read_layout(&self.dir.join("catalog"), version).unwrap();
        Digest::of(&pulled.artifact.statement)
    }

    /// `airlock tool add toolkit.toml signer oci:catalog:VERSION`.
    pub fn add(&self, version: &str) -> Output {
        self.airlock(&[
            "tool",
            "add",
            "toolkit.toml",
            "signer",
            &format!("oci:catalog:{version}"),
        ])
    }

    /// `airlock tool update toolkit.toml signer oci:catalog:VERSION EXTRA`.
    pub fn update(&self, version: &str, extra: &[&str]) -> Output {
        let reference = format!("oci:catalog:{version}");
        let mut args = vec!["tool", "update", "toolkit.toml", "signer", &reference];
        args.extend_from_slice(extra);
        self.airlock(&args)
    }

    /// Runs the pinned tool's `sign` once.
    pub fn run(&self) -> Output {
        self.run_tool("toolkit.toml", "signer")
    }

    /// Runs `tool`'s `sign` from `toolkit`.
    pub fn run_tool(&self, toolkit: &str, tool: &str) -> Output {
        self.airlock(&[
            "run",
            "--toolkit",
            toolkit,
            "--tool",
            tool,
            "--call",
            "sign",
            "--args",
            "{\"body\": \"hi\"}",
        ])
    }

    /// The sha256 of the published component.
    pub fn digest(&self) -> Digest {
        Digest::of(&std::fs::read(&self.component).unwrap())
    }

    /// The toolkit's lockfile.
    pub fn lock(&self) -> Lockfile {
        Lockfile::load(&self.dir.join("toolkit.lock")).unwrap()
    }

    /// Writes the toolkit's lockfile (as an attacker would).
    pub fn save_lock(&self, lock: &Lockfile) {
        lock.save(&self.dir.join("toolkit.lock")).unwrap();
    }

    /// The toolkit's local store.
    pub fn store(&self) -> Store {
        Store::new(self.dir.join("airlock-store"))
    }

    /// Where the store keeps blob `digest`.
    pub fn store_path(&self, digest: &Digest) -> PathBuf {
        self.store().path(digest)
    }
}
