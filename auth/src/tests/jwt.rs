//! OAuth access tokens against a JWKS file: the valid ones, and every way a
//! token is refused (time, audience, issuer, algorithm, signature, key,
//! toolkit).

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use super::{TestKey, assert_no_leak, b64, bearer, claims, now, oauth_with};
use crate::{AuthError, Via};

/// The JWT `token` with its payload replaced by `claims`, signature kept.
fn with_payload(token: &str, claims: &Value) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    format!("{}.{}.{}", parts[0], b64(claims.to_string()), parts[2])
}

#[tokio::test]
async fn valid_jwt_is_accepted_for_its_toolkit() {
    let dir = tempfile::tempdir().unwrap();
    let ed = TestKey::ed25519("ed-1");
    let ec = TestKey::p256("ec-1");
    let auth = oauth_with(dir.path(), &[&ed, &ec]).await;
    assert!(auth.has_oauth() && !auth.is_empty());
    for key in [&ed, &ec] {
        let token = key.sign(&claims("alice", &["research"]));
        let access = auth.check(Some(&bearer(&token)), "research").await;
        let access = access.unwrap_or_else(|e| panic!("{:?}: {e}", key.alg));
        assert_eq!(access.principal, "oauth:alice");
        assert_eq!(access.via, Via::OAuth);
    }
}

#[tokio::test]
async fn jwt_without_kid_is_tried_against_the_keys_of_its_algorithm() {
    let dir = tempfile::tempdir().unwrap();
    let (one, two) = (TestKey::ed25519("one"), TestKey::ed25519("two"));
    let auth = oauth_with(dir.path(), &[&one, &two]).await;
    let token = two.sign_without_kid(&claims("bob", &["research"]));
    let access = auth.check(Some(&bearer(&token)), "research").await.unwrap();
    assert_eq!(access.principal, "oauth:bob");
    let stranger = TestKey::ed25519("three").sign_without_kid(&claims("bob", &["research"]));
    let err = auth
        .check(Some(&bearer(&stranger)), "research")
        .await
        .unwrap_err();
    assert_eq!(err, AuthError::BadSignature);
}

#[tokio::test]
async fn expired_jwt_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let key = TestKey::ed25519("k");
    let auth = oauth_with(dir.path(), &[&key]).await;
    let mut c = claims("alice", &["research"]);
    c["exp"] = json!(now() - 120);
    let token = key.sign(&c);
    let err = auth
        .check(Some(&bearer(&token)), "research")
        .await
        .unwrap_err();
    assert_eq!(err, AuthError::Expired);
    assert_no_leak(&err, &token);
    c["exp"] = json!(now() - 10);
    let within_leeway = key.sign(&c);
    assert!(
        auth.check(Some(&bearer(&within_leeway)), "research")
            .await
            .is_ok(),
        "10 s late is inside the 30 s leeway"
    );
}

#[tokio::test]
async fn jwt_without_exp_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let key = TestKey::ed25519("k");
    let auth = oauth_with(dir.path(), &[&key]).await;
    let mut c = claims("alice", &["research"]);
    c.as_object_mut().unwrap().remove("exp");
    let err = auth
        .check(Some(&bearer(&key.sign(&c))), "research")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AuthError::Malformed(m) if m.contains("exp")),
        "{err:?}"
    );
}

#[tokio::test]
async fn not_yet_valid_jwt_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let key = TestKey::ed25519("k");
    let auth = oauth_with(dir.path(), &[&key]).await;
    let mut c = claims("alice", &["research"]);
    c["nbf"] = json!(now() + 600);
    let token = key.sign(&c);
    let err = auth
        .check(Some(&bearer(&token)), "research")
        .await
        .unwrap_err();
    assert_eq!(err, AuthError::NotYetValid);
    assert_no_leak(&err, &token);
}

#[tokio::test]
async fn jwt_for_another_audience_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let key = TestKey::ed25519("k");
    let auth = oauth_with(dir.path(), &[&key]).await;
    let mut c = claims("alice", &["research"]);
    c["aud"] = json!("https://other.example.test");
    let err = auth
        .check(Some(&bearer(&key.sign(&c))), "research")
        .await
        .unwrap_err();
    assert_eq!(err, AuthError::WrongAudience);
    c["aud"] = json!(["https://other.example.test", super::AUDIENCE]);
    assert!(
        auth.check(Some(&bearer(&key.sign(&c))), "research")
            .await
            .is_ok(),
        "an audience list containing ours is accepted"
    );
    c.as_object_mut().unwrap().remove("aud");
    let err = auth
        .check(Some(&bearer(&key.sign(&c))), "research")
        .await
        .unwrap_err();
    assert_eq!(err, AuthError::WrongAudience, "no aud at all");
}

#[tokio::test]
async fn jwt_from_another_issuer_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let key = TestKey::ed25519("k");
    let auth = oauth_with(dir.path(), &[&key]).await;
    let mut c = claims("alice", &["research"]);
    c["iss"] = json!("https://evil.example.test/");
    let err = auth
        .check(Some(&bearer(&key.sign(&c))), "research")
        .await
        .unwrap_err();
    assert_eq!(err, AuthError::WrongIssuer);
}

#[tokio::test]
async fn alg_none_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let key = TestKey::ed25519("k");
    let auth = oauth_with(dir.path(), &[&key]).await;
    let header = json!({"alg": "none", "typ": "JWT", "kid": "k"});
    let token = format!(
        "{}.{}.",
        b64(header.to_string()),
        b64(claims("mallory", &["*"]).to_string())
    );
    let err = auth
        .check(Some(&bearer(&token)), "research")
        .await
        .unwrap_err();
    assert_eq!(err, AuthError::AlgorithmNotAllowed("none".into()));
    assert_eq!(err.status(), 401);
}

#[tokio::test]
async fn hs256_signed_with_the_public_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let key = TestKey::ed25519("k");
    let auth = oauth_with(dir.path(), &[&key]).await;
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("k".into());
    for secret in [key.public.clone(), key.jwk()["x"].as_str().unwrap().into()] {
        let token = jsonwebtoken::encode(
            &header,
            &claims("mallory", &["*"]),
            &EncodingKey::from_secret(&secret).unwrap(),
        )
        .unwrap();
        let err = auth
            .check(Some(&bearer(&token)), "research")
            .await
            .unwrap_err();
        assert_eq!(err, AuthError::AlgorithmNotAllowed("HS256".into()));
        assert_no_leak(&err, &token);
    }
}

#[tokio::test]
async fn algorithm_that_does_not_fit_the_named_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ed = TestKey::ed25519("ed");
    let ec = TestKey::p256("ec");
    let auth = oauth_with(dir.path(), &[&ed, &ec]).await;
    // Signed by the EC key, but the header names the Ed25519 key.
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("ed".into());
    let token = jsonwebtoken::encode(&header, &claims("mallory", &["*"]), &ec.encoding_key());
    let token = token.unwrap();
    let err = auth
        .check(Some(&bearer(&token)), "research")
        .await
        .unwrap_err();
    assert_eq!(err, AuthError::AlgorithmNotAllowed("ES256".into()));
}

#[tokio::test]
async fn tampered_payload_is_a_bad_signature() {
    let dir = tempfile::tempdir().unwrap();
    let key = TestKey::ed25519("k");
    let auth = oauth_with(dir.path(), &[&key]).await;
    let token = key.sign(&claims("alice", &["research"]));
    let tampered = with_payload(&token, &claims("alice", &["research", "billing"]));
    let err = auth
        .check(Some(&bearer(&tampered)), "billing")
        .await
        .unwrap_err();
    assert_eq!(err, AuthError::BadSignature);
    assert_no_leak(&err, &tampered);
    let ec = TestKey::p256("ec");
    let auth = oauth_with(dir.path(), &[&ec]).await;
    let token = ec.sign(&claims("alice", &["research"]));
    let tampered = with_payload(&token, &claims("root", &["research"]));
    let err = auth
        .check(Some(&bearer(&tampered)), "research")
        .await
        .unwrap_err();
    assert_eq!(err, AuthError::BadSignature);
}

#[tokio::test]
async fn unknown_kid_is_an_unknown_key() {
    let dir = tempfile::tempdir().unwrap();
    let key = TestKey::ed25519("k");
    let auth = oauth_with(dir.path(), &[&key]).await;
    let stranger = TestKey::ed25519("stranger");
    let token = stranger.sign(&claims("alice", &["research"]));
    let err = auth
        .check(Some(&bearer(&token)), "research")
        .await
        .unwrap_err();
    assert_eq!(err, AuthError::UnknownKey);
    assert_no_leak(&err, &token);
}

#[tokio::test]
async fn toolkit_missing_from_the_claim_is_forbidden() {
    let dir = tempfile::tempdir().unwrap();
    let key = TestKey::ed25519("k");
    let auth = oauth_with(dir.path(), &[&key]).await;
    let token = key.sign(&claims("alice", &["research"]));
    let err = auth
        .check(Some(&bearer(&token)), "billing")
        .await
        .unwrap_err();
    assert_eq!(
        err,
        AuthError::Forbidden {
            toolkit: "billing".into()
        }
    );
    assert_eq!(err.status(), 403);
    assert_no_leak(&err, &token);
    let all = key.sign(&claims("alice", &["*"]));
    assert!(auth.check(Some(&bearer(&all)), "billing").await.is_ok());
    let mut c = claims("alice", &[]);
    c.as_object_mut().unwrap().remove("airlock_toolkits");
    let none = key.sign(&c);
    let err = auth
        .check(Some(&bearer(&none)), "research")
        .await
        .unwrap_err();
    assert!(matches!(err, AuthError::Forbidden { .. }), "{err:?}");
}

#[tokio::test]
async fn scope_toolkit_grants_that_toolkit() {
    let dir = tempfile::tempdir().unwrap();
    let key = TestKey::ed25519("k");
    let auth = oauth_with(dir.path(), &[&key]).await;
    let mut c = claims("svc", &[]);
    c.as_object_mut().unwrap().remove("airlock_toolkits");
    c["scope"] = json!("openid toolkit:research profile");
    let token = key.sign(&c);
    let access = auth.check(Some(&bearer(&token)), "research").await.unwrap();
    assert_eq!(access.principal, "oauth:svc");
    let err = auth
        .check(Some(&bearer(&token)), "billing")
        .await
        .unwrap_err();
    assert!(matches!(err, AuthError::Forbidden { .. }), "{err:?}");
    c["scope"] = json!("toolkit:*");
    let all = key.sign(&c);
    assert!(auth.check(Some(&bearer(&all)), "billing").await.is_ok());
    c["scope"] = json!("toolkit:researchers");
    let near = key.sign(&c);
    assert!(
        auth.check(Some(&bearer(&near)), "research").await.is_err(),
        "a scope is matched whole, not by prefix"
    );
}

#[tokio::test]
async fn jwt_without_sub_is_malformed() {
    let dir = tempfile::tempdir().unwrap();
    let key = TestKey::ed25519("k");
    let auth = oauth_with(dir.path(), &[&key]).await;
    let mut c = claims("x", &["research"]);
    c.as_object_mut().unwrap().remove("sub");
    let err = auth
        .check(Some(&bearer(&key.sign(&c))), "research")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AuthError::Malformed(m) if m.contains("sub")),
        "{err:?}"
    );
}

#[tokio::test]
async fn opaque_tokens_still_work_next_to_oauth() {
    let dir = tempfile::tempdir().unwrap();
    let key = TestKey::ed25519("k");
    std::fs::write(
        dir.path().join("jwks.json"),
        super::jwks(&[&key]).to_string(),
    )
    .unwrap();
    let (token, hash) = crate::new_token();
    let auth = crate::Authenticator::load(
        &super::tokens(&[("ci", &hash, &["research"])]),
        Some(&super::oauth_config()),
        dir.path(),
    )
    .await
    .unwrap();
    use secrecy::ExposeSecret;
    let access = auth
        .check(Some(&bearer(token.expose_secret())), "research")
        .await
        .unwrap();
    assert_eq!(access.via, Via::Token);
    let jwt = key.sign(&claims("alice", &["research"]));
    let access = auth.check(Some(&bearer(&jwt)), "research").await.unwrap();
    assert_eq!(access.via, Via::OAuth);
}
