//! Wasm-free tests of the sign verb: call the `Host` methods on a `SignState`.

use super::*;
use airlock_core::{MemoryAudit, WitError};
use secrecy::SecretSlice;
use std::time::Duration;

fn capability() -> SignCapability {
    SignCapability::new([
        (
            "jefe".to_string(),
            SignKey::hmac(SecretSlice::from(b"Jefe".to_vec())).unwrap(),
        ),
        (
            "release".to_string(),
            // RFC 8032 test 1 secret key.
            SignKey::ed25519_from_seed(&SecretSlice::from(
                b"9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60".to_vec(),
            ))
            .unwrap(),
        ),
        ("other".to_string(), SignKey::generate_hmac()),
    ])
}

fn state_with(grant: SignGrant) -> (SignState, Arc<MemoryAudit>) {
    let audit = Arc::new(MemoryAudit::default());
    let job = Job::new(
        7,
        "t".into(),
        Instant::now() + Duration::from_secs(5),
        audit.clone(),
    );
    (capability().state(Arc::new(grant), job), audit)
}

fn grant(keys: &[&str]) -> SignGrant {
    SignGrant {
        keys: keys.iter().map(|k| k.to_string()).collect(),
        ..SignGrant::default()
    }
}

fn guest_err<T: std::fmt::Debug>(r: Result<T, VerbError>) -> WitError {
    match r {
        Err(VerbError::Guest(e)) => e,
        other => panic!("expected a guest error, got {other:?}"),
    }
}

#[tokio::test]
async fn hmac_matches_rfc4231_case_2() {
    let (mut s, audit) = state_with(grant(&["jefe"]));
    let mac = sign::Host::hmac_sha256(
        &mut s,
        "jefe".into(),
        b"what do ya want for nothing?".to_vec(),
    )
    .await
    .unwrap();
    assert_eq!(
        hex::encode(&mac),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
    let ok = sign::Host::hmac_sha256_verify(
        &mut s,
        "jefe".into(),
        b"what do ya want for nothing?".to_vec(),
        mac.clone(),
    )
    .await
    .unwrap();
    assert!(ok);
    let mut bad = mac;
    bad[0] ^= 1;
    let ok = sign::Host::hmac_sha256_verify(
        &mut s,
        "jefe".into(),
        b"what do ya want for nothing?".to_vec(),
        bad,
    )
    .await
    .unwrap();
    assert!(!ok);
    let records = audit.records();
    assert_eq!(records.len(), 3);
    assert!(
        records
            .iter()
            .all(|r| r.decision == Decision::Allow && r.verb == "sign")
    );
    assert_eq!(records[0].detail.as_deref(), Some("key=jefe"));
}

#[tokio::test]
async fn ed25519_matches_rfc8032_test_1() {
    let (mut s, _) = state_with(grant(&["release"]));
    let public = sign::Host::ed25519_public_key(&mut s, "release".into())
        .await
        .unwrap();
    assert_eq!(
        hex::encode(&public),
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
    );
    let sig = sign::Host::ed25519_sign(&mut s, "release".into(), vec![])
        .await
        .unwrap();
    assert_eq!(
        hex::encode(&sig),
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
    );
    assert!(
        sign::Host::ed25519_verify(&mut s, "release".into(), vec![], sig.clone())
            .await
            .unwrap()
    );
    assert!(
        !sign::Host::ed25519_verify(&mut s, "release".into(), b"x".to_vec(), sig)
            .await
            .unwrap()
    );
    assert!(
        !sign::Host::ed25519_verify(&mut s, "release".into(), vec![], vec![1, 2, 3])
            .await
            .unwrap()
    );
}

mod sign_scope {
    use super::*;

    #[tokio::test]
    async fn domain_separation_changes_the_signature() {
        let mut g = grant(&["release"]);
        g.domains.insert("release".into(), "airlock-test-v1".into());
        let (mut bound, _) = state_with(g);
        let (mut plain, _) = state_with(grant(&["release"]));
        let a = sign::Host::ed25519_sign(&mut bound, "release".into(), b"m".to_vec())
            .await
            .unwrap();
        let b = sign::Host::ed25519_sign(&mut plain, "release".into(), b"m".to_vec())
            .await
            .unwrap();
        assert_ne!(a, b);
        assert!(
            sign::Host::ed25519_verify(&mut bound, "release".into(), b"m".to_vec(), a.clone())
                .await
                .unwrap()
        );
        assert!(
            !sign::Host::ed25519_verify(&mut plain, "release".into(), b"m".to_vec(), a)
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn a_key_not_granted_is_denied_and_audited() {
        let (mut s, audit) = state_with(grant(&["jefe"]));
        let e = guest_err(sign::Host::hmac_sha256(&mut s, "other".into(), vec![]).await);
        assert!(
            matches!(&e, WitError::Denied(r) if r.contains("`other`")),
            "{e:?}"
        );
        let records = audit.records();
        assert_eq!(records.len(), 1);
        assert!(matches!(&records[0].decision, Decision::Deny(r) if r.starts_with("denied")));
    }

    #[tokio::test]
    async fn an_unconfigured_or_wrong_kind_key_is_invalid() {
        let (mut s, _) = state_with(grant(&["ghost", "jefe", "release"]));
        let e = guest_err(sign::Host::hmac_sha256(&mut s, "ghost".into(), vec![]).await);
        assert!(
            matches!(&e, WitError::Invalid(r) if r.contains("not configured")),
            "{e:?}"
        );
        let e = guest_err(sign::Host::ed25519_sign(&mut s, "jefe".into(), vec![]).await);
        assert!(
            matches!(&e, WitError::Invalid(r) if r.contains("HMAC key")),
            "{e:?}"
        );
        let e = guest_err(sign::Host::hmac_sha256(&mut s, "release".into(), vec![]).await);
        assert!(
            matches!(&e, WitError::Invalid(r) if r.contains("Ed25519 key")),
            "{e:?}"
        );
    }

    #[tokio::test]
    async fn call_quota_and_size_cap_hold() {
        let mut g = grant(&["jefe"]);
        g.max_calls = Some(2);
        g.max_data_bytes = Some(8);
        let (mut s, _) = state_with(g);
        let e = guest_err(sign::Host::hmac_sha256(&mut s, "jefe".into(), vec![0; 9]).await);
        assert!(
            matches!(&e, WitError::Invalid(r) if r.contains("at most 8")),
            "{e:?}"
        );
        sign::Host::hmac_sha256(&mut s, "jefe".into(), vec![0; 8])
            .await
            .unwrap();
        sign::Host::hmac_sha256(&mut s, "jefe".into(), vec![0; 8])
            .await
            .unwrap();
        let e = guest_err(sign::Host::hmac_sha256(&mut s, "jefe".into(), vec![]).await);
        assert!(
            matches!(&e, WitError::Exhausted(w) if w == "sign-calls"),
            "{e:?}"
        );
    }

    #[test]
    fn check_grant_names_the_missing_key() {
        let cap = capability();
        assert!(cap.check_grant(&grant(&["jefe", "release"])).is_ok());
        let e = cap.check_grant(&grant(&["nope"])).unwrap_err();
        assert!(e.contains("[sign.keys.nope]"), "{e}");
        let mut g = grant(&["jefe"]);
        g.domains.insert("release".into(), "d".into());
        assert!(cap.check_grant(&g).unwrap_err().contains("does not grant"));
    }
}

mod secrets {
    use super::*;

    #[test]
    fn debug_output_never_shows_key_bytes() {
        let cap = capability();
        let text = format!(
            "{cap:?} {:?}",
            SignKey::hmac(SecretSlice::from(b"Jefe-secret-bytes".to_vec())).unwrap()
        );
        assert!(!text.contains("Jefe-secret"), "{text}");
        assert!(text.contains("REDACTED"));
        assert!(text.contains("jefe") && text.contains("release"));
    }
}

#[test]
fn seeds_parse_from_hex_base64_and_raw() {
    let hex_seed = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
    let raw = hex::decode(hex_seed).unwrap();
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(&raw);
    for form in [
        hex_seed.as_bytes().to_vec(),
        raw.clone(),
        format!("{b64}\n").into_bytes(),
    ] {
        let key = SignKey::ed25519_from_seed(&SecretSlice::from(form)).unwrap();
        assert_eq!(key.kind(), "ed25519");
    }
    assert_eq!(
        SignKey::ed25519_from_seed(&SecretSlice::from(b"short".to_vec())).unwrap_err(),
        KeyError::BadSeed(5)
    );
    assert_eq!(
        SignKey::hmac(SecretSlice::from(vec![])).unwrap_err(),
        KeyError::EmptyHmac
    );
}

#[test]
fn describe_speaks_plainly() {
    let mut g = grant(&["jefe"]);
    g.max_calls = Some(3);
    let lines = SignCapability::describe(&g);
    assert!(lines[0].contains("jefe") && lines[0].contains("never key bytes"));
    assert!(lines.iter().any(|l| l == "at most 3 sign calls per job"));
}

/// Comparing two sign grants: keys, domains and limits, and properties over
/// generated pairs.
mod compare {
    use super::*;
    use proptest::prelude::*;

    fn lines(before: &SignGrant, after: &SignGrant) -> Vec<String> {
        SignCapability::compare(before, after)
            .into_iter()
            .map(|c| format!("{}{}", if c.widens { "W " } else { "N " }, c.line))
            .collect()
    }

    fn widens(before: &SignGrant, after: &SignGrant) -> bool {
        SignCapability::compare(before, after)
            .iter()
            .any(|c| c.widens)
    }

    fn with_domains(keys: &[&str], domains: &[(&str, &str)]) -> SignGrant {
        SignGrant {
            domains: domains
                .iter()
                .map(|(k, d)| (k.to_string(), d.to_string()))
                .collect(),
            ..grant(keys)
        }
    }

    #[test]
    fn a_new_key_widens_and_a_removed_one_narrows() {
        let before = grant(&["jefe"]);
        let after = grant(&["jefe", "release-key"]);
        assert!(SignCapability::compare(&before, &before).is_empty());
        assert_eq!(lines(&before, &after), ["W + sign key release-key"]);
        assert_eq!(lines(&after, &before), ["N - sign key release-key"]);
        assert!(SignCapability::compare(&grant(&["a", "b"]), &grant(&["b", "a"])).is_empty());
    }

    #[test]
    fn removing_or_changing_a_domain_widens_and_adding_one_narrows() {
        let bare = with_domains(&["release"], &[]);
        let bound = with_domains(&["release"], &[("release", "airlock/v1")]);
        let other = with_domains(&["release"], &[("release", "airlock/v2")]);
        assert_eq!(
            lines(&bare, &bound),
            ["N + sign domain release \"airlock/v1\""]
        );
        assert_eq!(
            lines(&bound, &bare),
            ["W - sign domain release \"airlock/v1\""]
        );
        assert_eq!(
            lines(&bound, &other),
            ["W ~ sign domain release \"airlock/v1\" → \"airlock/v2\""]
        );
        let new_bound = with_domains(&["jefe", "release"], &[("release", "d")]);
        assert_eq!(
            lines(&grant(&["jefe"]), &new_bound),
            ["W + sign key release", "N + sign domain release \"d\""]
        );
    }

    #[test]
    fn more_calls_or_larger_data_widen_and_absent_means_unlimited_or_the_default() {
        let limited = SignGrant {
            max_calls: Some(10),
            max_data_bytes: Some(DEFAULT_MAX_DATA_BYTES),
            ..grant(&["jefe"])
        };
        let open = grant(&["jefe"]);
        assert_eq!(
            lines(&limited, &open),
            ["W ~ sign max_calls 10 → unlimited"],
            "an explicit default data cap equals the absent one"
        );
        assert_eq!(
            lines(&open, &limited),
            ["N ~ sign max_calls unlimited → 10"]
        );
        let more = SignGrant {
            max_calls: Some(100),
            max_data_bytes: Some(DEFAULT_MAX_DATA_BYTES * 2),
            ..grant(&["jefe"])
        };
        assert_eq!(
            lines(&limited, &more),
            [
                "W ~ sign max_calls 10 → 100",
                "W ~ sign max_data_bytes 1048576 → 2097152"
            ]
        );
        assert!(!widens(&more, &limited));
    }

    #[test]
    fn the_grant_round_trips_through_json() {
        let g = SignGrant {
            max_calls: Some(3),
            ..with_domains(&["release"], &[("release", "d")])
        };
        let json = serde_json::to_string(&g).unwrap();
        assert_eq!(serde_json::from_str::<SignGrant>(&json).unwrap(), g);
        let bare = serde_json::to_string(&grant(&["k"])).unwrap();
        assert_eq!(bare, r#"{"keys":["k"]}"#, "absent fields stay absent");
        assert!(serde_json::from_str::<SignGrant>(r#"{"keys":[],"secret":"x"}"#).is_err());
    }

    fn arb() -> impl Strategy<Value = SignGrant> {
        (
            prop::sample::subsequence(vec!["a", "b", "c"], 0..4),
            prop::collection::vec(prop::option::of(prop::sample::select(vec!["d1", "d2"])), 3),
            prop::option::of(1u32..100),
            prop::option::of(1usize..1 << 22),
        )
            .prop_map(|(keys, domains, max_calls, max_data_bytes)| SignGrant {
                domains: keys
                    .iter()
                    .zip(&domains)
                    .filter_map(|(k, d)| d.map(|d| (k.to_string(), d.to_string())))
                    .collect(),
                keys: keys.iter().map(|k| k.to_string()).collect(),
                max_calls,
                max_data_bytes,
            })
    }

    proptest! {
        #[test]
        fn narrowing_never_widens_and_the_way_back_always_does(
            wide in arb(),
            keep in prop::collection::vec(any::<bool>(), 3),
            bind in prop::collection::vec(any::<bool>(), 3),
            cut in 1u32..1000,
        ) {
            prop_assert!(SignCapability::compare(&wide, &wide).is_empty());
            let mut narrow = wide.clone();
            let mut i = 0;
            narrow.keys.retain(|_| { i += 1; keep[i - 1] });
            narrow.domains.retain(|k, _| narrow.keys.contains(k));
            for (k, b) in narrow.keys.iter().zip(&bind) {
                if *b {
                    narrow.domains.entry(k.clone()).or_insert_with(|| "added".into());
                }
            }
            // One limit strictly lower, for sure.
            narrow.max_calls = Some(wide.max_calls.map_or(cut, |n| n - 1 - cut % n));
            prop_assert!(
                !SignCapability::compare(&wide, &narrow).iter().any(|c| c.widens),
                "{:?}", lines(&wide, &narrow)
            );
            prop_assert!(widens(&narrow, &wide));
        }

        #[test]
        fn grants_that_differ_widen_at_least_one_way(a in arb(), b in arb()) {
            let data = |g: &SignGrant| g.max_data_bytes.unwrap_or(DEFAULT_MAX_DATA_BYTES);
            let same = a.keys == b.keys && a.domains == b.domains
                && a.max_calls == b.max_calls && data(&a) == data(&b);
            prop_assert_eq!(SignCapability::compare(&a, &b).is_empty(), same);
            prop_assert_eq!(!widens(&a, &b) && !widens(&b, &a), same);
        }
    }
}
