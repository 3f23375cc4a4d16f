//! The supply-chain wall end to end, through the `airlock` binary: signed
//! tools published to an image-layout directory (no server), pinned with
//! `airlock tool add`, and every attack of the marketplace issue made the way
//! a local writer of our files or a hostile publisher would make it, each
//! refused with exit 3 and its exact reason. The README walkthrough runs
//! against a real registry in `walkthrough.rs`.

mod common;
#[path = "../../trust/tests/common/registry.rs"]
mod registry;
#[path = "supply_chain/walkthrough.rs"]
mod walkthrough;
#[path = "supply_chain/world.rs"]
mod world;

mod supply_chain {
    use crate::world::{NARROW, WIDE, World};

    fn refused(out: &std::process::Output, needle: &str) {
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "expected exit 3; stderr: {err}");
        assert!(err.contains(needle), "expected `{needle}` in: {err}");
    }

    #[test]
    fn a_bare_component_is_refused_when_the_policy_requires_signed_tools() {
        let w = World::new();
        w.write(
            "bare.toml",
            &format!(
                "[tools.bare]\ncomponent = {:?}\n",
                w.component.display().to_string()
            ),
        );
        refused(&w.run_tool("bare.toml", "bare"), "requires signed tools");
    }

    #[test]
    fn a_statement_by_an_unknown_key_is_refused() {
        let w = World::new();
        w.publish("1.0.0", NARROW, "rogue", "data");
        refused(&w.add("1.0.0"), "signed by no publisher key");
    }

    #[test]
    fn a_key_outside_its_namespace_is_refused() {
        let w = World::new();
        // The web team's key signs a tool under the data namespace.
        w.publish("1.0.0", NARROW, "web-team", "data");
        refused(
            &w.add("1.0.0"),
            "may publish under [\"web\"] only, not under `data`",
        );
    }

    #[test]
    fn a_key_revoked_after_pinning_is_refused_at_the_next_load() {
        let w = World::approved("1.0.0", NARROW);
        w.ok(&w.add("1.0.0"));
        w.ok(&w.run());
        let id = w.key_id("data-team");
        w.policy(&format!("[revoked]\nkeys = [\"{id}\"]\n"));
        refused(&w.run(), "signed by revoked key");
    }

    #[test]
    fn a_component_swapped_in_the_store_is_refused_before_it_is_parsed() {
        let w = World::approved("1.0.0", NARROW);
        w.ok(&w.add("1.0.0"));
        let lock = w.lock();
        let pinned = w.store_path(&lock.tools["signer"].component);
        // Other bytes at the pinned name: the load hashes before parsing.
        std::fs::remove_file(&pinned).unwrap();
        std::fs::copy(crate::common::guest_path("word_count"), &pinned).unwrap();
        refused(&w.run(), "expected sha256:");
    }

    #[test]
    fn a_lockfile_pointing_at_another_digest_is_refused() {
        let w = World::approved("1.0.0", NARROW);
        w.ok(&w.add("1.0.0"));
        // The strong form: other bytes stored under their own, correct
        // digest, and the lockfile rewritten to pin them.
        let evil = std::fs::read(crate::common::guest_path("word_count")).unwrap();
        let digest = w.store().put(&evil).unwrap();
        let mut lock = w.lock();
        lock.tools.get_mut("signer").unwrap().component = digest.clone();
        w.save_lock(&lock);
        refused(
            &w.run(),
            &format!("the signed statement is about component {}", w.digest()),
        );
    }

    #[test]
    fn a_statement_replayed_onto_another_component_is_refused() {
        let w = World::approved("1.0.0", NARROW);
        // The real statement pushed beside other bytes.
        w.airlock_ok(&[
            "tool",
            "push",
            &crate::common::guest_string("word_count"),
            "oci:catalog:2.0.0",
            "--statement",
            "signer.wasm.dsse.json",
        ]);
        refused(&w.add("2.0.0"), "the signed statement is about component");
    }

    #[test]
    fn a_downgrade_to_an_older_wider_version_is_refused() {
        let w = World::approved("1.0.0", WIDE);
        w.publish("1.1.0", NARROW, "data-team", "data");
        w.approve("1.1.0");
        w.ok(&w.add("1.1.0"));
        refused(&w.update("1.0.0", &[]), "older than the pinned 1.1.0");
        // Revoking the old version closes the door even when asked for.
        let old = w.statement_digest("1.0.0");
        w.policy(&format!("[revoked]\ndigests = [\"{old}\"]\n"));
        refused(
            &w.update("1.0.0", &["--allow-downgrade"]),
            &format!("{old} is revoked"),
        );
        assert_eq!(
            w.lock().tools["signer"].version,
            "1.1.0",
            "the pin did not move"
        );
    }

    #[test]
    fn a_toolkit_widened_by_hand_is_refused_naming_the_scope() {
        let w = World::approved("1.0.0", NARROW);
        w.ok(&w.add("1.0.0"));
        let pinned = std::fs::read_to_string(w.dir.join("toolkit.toml")).unwrap();
        for (grants, scope) in [
            (
                "[tools.signer.grants.sign]\nkeys = [\"webhook\"]\nmax_calls = 100\n[tools.signer.grants.log]\n",
                "~ sign max_calls 10 → 100",
            ),
            (
                "[tools.signer.grants.sign]\nkeys = [\"webhook\", \"release\"]\nmax_calls = 10\n[tools.signer.grants.log]\n",
                "+ sign key release",
            ),
            (
                "[tools.signer.grants.sign]\nkeys = [\"webhook\"]\nmax_calls = 10\n[tools.signer.grants.log]\n[tools.signer.grants.fetch]\nallow = [\"https://api.example.com/*\"]\n",
                "+ verb fetch",
            ),
        ] {
            w.write("toolkit.toml", &format!("{pinned}{grants}"));
            refused(&w.run(), scope);
        }
        // Narrower by hand is fine.
        w.write(
            "toolkit.toml",
            &format!("{pinned}[tools.signer.grants.sign]\nkeys = [\"webhook\"]\nmax_calls = 2\n[tools.signer.grants.log]\n"),
        );
        w.ok(&w.run());
    }

    #[test]
    fn an_include_that_widens_is_refused_and_one_that_narrows_runs() {
        let w = World::approved("1.0.0", NARROW);
        w.ok(&w.add("1.0.0"));
        let task =
            "include = [\"toolkit.toml\"]\n[tools.signer.grants.sign]\nkeys = [\"webhook\"]\n";
        w.write(
            "task.toml",
            &format!("{task}max_calls = 11\n[tools.signer.grants.log]\n"),
        );
        refused(
            &w.run_tool("task.toml", "signer"),
            "~ sign max_calls 10 → 11",
        );
        w.write(
            "task.toml",
            "include = [\"toolkit.toml\"]\n[tools.signer.budget]\nmemory = \"1GiB\"\n",
        );
        refused(&w.run_tool("task.toml", "signer"), "~ budget memory");
        w.write(
            "task.toml",
            &format!("{task}max_calls = 1\n[tools.signer.grants.log]\n"),
        );
        w.ok(&w.run_tool("task.toml", "signer"));
    }

    #[test]
    fn floating_tags_are_refused() {
        let w = World::approved("1.0.0", NARROW);
        for reference in [
            "oci:catalog:latest",
            "oci:catalog:1.0",
            "oci:catalog",
            "127.0.0.1:5000/data/signer:latest",
            "127.0.0.1:5000/data/signer",
        ] {
            let out = w.airlock(&["tool", "add", "toolkit.toml", "signer", reference]);
            refused(&out, "floating tag");
        }
    }

    #[test]
    fn an_approval_signed_by_a_non_approver_is_refused() {
        let w = World::new();
        w.publish("1.0.0", NARROW, "data-team", "data");
        // The CLI will not sign an approval with a publisher's key...
        refused(
            &w.airlock(&[
                "tool",
                "approve",
                "oci:catalog:1.0.0",
                "--key",
                "data-team.key",
            ]),
            "signed by no approver key",
        );
        // ...so the attacker forges one with the library and attaches it.
        let forged = w.forge_approval("1.0.0", "data-team");
        refused(&w.add("1.0.0"), "has no approval by an approver");
        // And a lockfile claiming it as a signed approval fails at load.
        w.approve("1.0.0");
        w.ok(&w.add("1.0.0"));
        let digest = w.store().put(&forged).unwrap();
        let mut lock = w.lock();
        lock.tools.get_mut("signer").unwrap().approval = airlock_trust::Approval::Signed {
            envelope: digest,
            approver: airlock_trust::KeyId(w.key_id("data-team")),
        };
        w.save_lock(&lock);
        refused(&w.run(), "signed by no approver key");
    }

    #[test]
    fn a_request_naming_other_verbs_than_the_imports_is_refused() {
        let w = World::new();
        let out = w.pack(
            "1.0.0",
            "[grants.sign]\nkeys = [\"webhook\"]\n",
            "data-team",
            "data",
        );
        refused(
            &out,
            "imports verbs [sign, log] but its signed request asks for [sign]",
        );
    }

    #[test]
    fn single_user_mode_approves_in_the_lockfile_and_narrower_updates_need_nothing() {
        let w = World::single_user();
        w.publish("1.0.0", WIDE, "data-team", "data");
        refused(&w.add("1.0.0"), "run again with --approve");
        w.ok(&w.airlock(&[
            "tool",
            "add",
            "toolkit.toml",
            "signer",
            "oci:catalog:1.0.0",
            "--approve",
        ]));
        assert!(matches!(
            w.lock().tools["signer"].approval,
            airlock_trust::Approval::Local { .. }
        ));
        w.ok(&w.run());
        w.publish("1.1.0", NARROW, "data-team", "data");
        w.ok(&w.update("1.1.0", &[]));
        w.publish("1.2.0", WIDE, "data-team", "data");
        refused(&w.update("1.2.0", &[]), "~ sign max_calls 10 → 100");
        w.ok(&w.update("1.2.0", &["--approve"]));
    }

    #[test]
    fn a_narrower_update_keeps_the_team_approval_and_is_checked_at_every_load() {
        let w = World::approved("1.0.0", WIDE);
        w.ok(&w.add("1.0.0"));
        w.publish("1.1.0", NARROW, "data-team", "data");
        let out = w.update("1.1.0", &[]);
        w.ok(&out);
        assert!(String::from_utf8_lossy(&out.stdout).contains("only narrower"));
        assert!(matches!(
            w.lock().tools["signer"].approval,
            airlock_trust::Approval::Within { .. }
        ));
        w.ok(&w.run());
        // A wider version without an approval stops, and 1.1.0 keeps serving.
        w.publish("1.2.0", WIDE, "data-team", "data");
        refused(&w.update("1.2.0", &[]), "~ sign max_calls 10 → 100");
        assert_eq!(w.lock().tools["signer"].version, "1.1.0");
        w.ok(&w.run());
    }
}
