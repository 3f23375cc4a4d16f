//! The policy's verdicts on signed statements and approvals, each attack
//! made with keys and envelopes as a real attacker would build them.

use std::path::Path;

use super::*;
use crate::key::PrivateKey;
use crate::publish::{approve, pack};
use crate::statement::ToolRequest;

struct Keys {
    publisher: PrivateKey,
    other_team: PrivateKey,
    approver: PrivateKey,
}

fn keys() -> Keys {
    Keys {
        publisher: PrivateKey::generate(),
        other_team: PrivateKey::generate(),
        approver: PrivateKey::generate(),
    }
}

fn policy(k: &Keys, extra: &str) -> Policy {
    let text = format!(
        "{extra}\n[publishers.data]\nkey = \"{}\"\nnamespaces = [\"data\"]\n\
         [publishers.web]\nkey = \"{}\"\nnamespaces = [\"web\"]\n\
         [approvers.security]\nkey = \"{}\"\n",
        k.publisher.public(),
        k.other_team.public(),
        k.approver.public()
    );
    Policy::parse(&text, Path::new("trust.toml")).unwrap()
}

fn request() -> ToolRequest {
    serde_json::from_value(serde_json::json!({
        "description": "sums numbers",
        "grants": {"log": {}}
    }))
    .unwrap()
}

fn signed(k: &PrivateKey, ns: &str, component: &[u8]) -> Vec<u8> {
    pack(component, ns, "sum", "1.0.0", request(), k)
        .unwrap()
        .to_bytes()
}

#[test]
fn a_statement_by_a_trusted_publisher_in_its_namespace_verifies() {
    let k = keys();
    let p = policy(&k, "");
    let env = signed(&k.publisher, "data/ml", b"wasm");
    let v = p.verify_statement(&env, &Digest::of(b"wasm")).unwrap();
    assert_eq!(v.publisher, "data");
    assert_eq!(v.predicate.full_name(), "data/ml/sum");
    assert_eq!(v.statement, Digest::of(&env));
    assert_eq!(v.predicate.request, request());
}

#[test]
fn a_statement_by_an_unknown_key_is_refused() {
    let k = keys();
    let env = signed(&PrivateKey::generate(), "data", b"wasm");
    let err = policy(&k, "")
        .verify_statement(&env, &Digest::of(b"wasm"))
        .unwrap_err();
    assert!(matches!(err, TrustError::UnknownSigner { .. }), "{err}");
}

#[test]
fn a_statement_outside_the_signers_namespace_is_refused() {
    let k = keys();
    // The web team signs a tool under the data namespace.
    let env = signed(&k.other_team, "data", b"wasm");
    let err = policy(&k, "")
        .verify_statement(&env, &Digest::of(b"wasm"))
        .unwrap_err();
    match err {
        TrustError::OutsideNamespace {
            namespace, allowed, ..
        } => {
            assert_eq!(namespace, "data");
            assert_eq!(allowed, vec!["web".to_string()]);
        }
        other => panic!("{other}"),
    }
    // A namespace that merely starts with the same letters is not below it.
    let env = signed(&k.publisher, "database", b"wasm");
    assert!(matches!(
        policy(&k, "").verify_statement(&env, &Digest::of(b"wasm")),
        Err(TrustError::OutsideNamespace { .. })
    ));
}

#[test]
fn a_statement_by_a_revoked_key_is_refused() {
    let k = keys();
    let p = policy(
        &k,
        &format!("[revoked]\nkeys = [\"{}\"]", k.publisher.public().id()),
    );
    let env = signed(&k.publisher, "data", b"wasm");
    assert!(matches!(
        p.verify_statement(&env, &Digest::of(b"wasm")),
        Err(TrustError::RevokedKey { .. })
    ));
}

#[test]
fn revoked_component_and_statement_digests_are_refused() {
    let k = keys();
    let env = signed(&k.publisher, "data", b"wasm");
    for revoked in [Digest::of(b"wasm"), Digest::of(&env)] {
        let p = policy(&k, &format!("[revoked]\ndigests = [\"{revoked}\"]"));
        match p.verify_statement(&env, &Digest::of(b"wasm")) {
            Err(TrustError::RevokedDigest { digest }) => assert_eq!(digest, revoked),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn a_swapped_component_or_a_replayed_statement_is_refused() {
    let k = keys();
    let p = policy(&k, "");
    let env = signed(&k.publisher, "data", b"wasm");
    // The statement of one component presented with other bytes.
    match p.verify_statement(&env, &Digest::of(b"evil")) {
        Err(TrustError::SubjectMismatch { signed, actual }) => {
            assert_eq!(signed, Digest::of(b"wasm"));
            assert_eq!(actual, Digest::of(b"evil"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_edited_payload_with_its_old_signature_is_refused() {
    let k = keys();
    let p = policy(&k, "");
    let env = crate::dsse::Envelope::parse(&signed(&k.publisher, "data", b"wasm")).unwrap();
    // Widen the request inside the payload and keep the publisher's signature.
    let mut payload: serde_json::Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &env.payload).unwrap(),
    )
    .unwrap();
    payload["predicate"]["request"]["grants"]["fetch"] =
        serde_json::json!({"allow": ["https://*/*"]});
    let mut forged = env.clone();
    forged.payload = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        serde_json::to_vec(&payload).unwrap(),
    );
    assert!(matches!(
        p.verify_statement(&forged.to_bytes(), &Digest::of(b"wasm")),
        Err(TrustError::UnknownSigner { .. })
    ));
}

#[test]
fn approvals_must_be_by_an_approver_and_about_this_statement() {
    let k = keys();
    let p = policy(&k, "");
    let env = signed(&k.publisher, "data", b"wasm");
    let v = p.verify_statement(&env, &Digest::of(b"wasm")).unwrap();
    let good = approve(&v, &k.approver).to_bytes();
    let (name, key) = p.verify_approval(&good, &v).unwrap();
    assert_eq!((name.as_str(), key), ("security", k.approver.public().id()));

    // Signed by a publisher, not an approver.
    let by_publisher = approve(&v, &k.publisher).to_bytes();
    assert!(matches!(
        p.verify_approval(&by_publisher, &v),
        Err(TrustError::NotAnApprover { .. })
    ));

    // A real approval of version 1.0.0 presented for another statement.
    let other_env = pack(b"wasm", "data", "sum", "1.0.1", request(), &k.publisher)
        .unwrap()
        .to_bytes();
    let other = p
        .verify_statement(&other_env, &Digest::of(b"wasm"))
        .unwrap();
    assert!(matches!(
        p.verify_approval(&good, &other),
        Err(TrustError::ApprovalMismatch { .. })
    ));
}

#[test]
fn blocked_verbs_and_hosts_are_refused_including_wildcards_that_overlap() {
    let k = keys();
    let p = policy(
        &k,
        "blocked_verbs = [\"complete\"]\nblocked_hosts = [\"*.pastebin.com\", \"evil.example\"]",
    );
    assert!(p.check_blocked("t", ["log"], ["api.example.com"]).is_ok());
    assert!(matches!(
        p.check_blocked("t", ["complete"], [""; 0]),
        Err(TrustError::BlockedVerb { .. })
    ));
    for host in ["x.pastebin.com", "*.com", "*.pastebin.com", "evil.example"] {
        assert!(
            matches!(
                p.check_blocked("t", [""; 0], [host]),
                Err(TrustError::BlockedHost { .. })
            ),
            "{host}"
        );
    }
    assert!(p.check_blocked("t", [""; 0], ["pastebin.com.evil"]).is_ok());
}

#[test]
fn registries_must_be_listed() {
    let k = keys();
    let p = policy(&k, "registries = [\"127.0.0.1:5000\"]");
    assert!(p.check_registry("127.0.0.1:5000").is_ok());
    assert!(matches!(
        p.check_registry("registry.evil.example"),
        Err(TrustError::RegistryNotAllowed { .. })
    ));
}

#[test]
fn unknown_fields_and_bad_keys_in_a_policy_are_errors() {
    for text in [
        "require_signd = true",
        "[publishers.x]\nkey = \"ed25519:AAAA\"\nnamespaces = [\"x\"]",
        "[publishers.x]\nkey = \"ed25519:AAAA\"\nnamespaces = []",
        "[revoked]\nkeys = [\"nope\"]",
    ] {
        assert!(
            matches!(
                Policy::parse(text, Path::new("trust.toml")),
                Err(TrustError::Policy { .. })
            ),
            "{text}"
        );
    }
}
