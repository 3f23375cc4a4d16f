//! A JWKS served over real HTTP on 127.0.0.1: fetched at load, refetched on
//! an unknown `kid` no more than once per interval, rotated keys picked up.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde_json::json;

use super::server::JwksServer;
use super::{AUDIENCE, ISSUER, TestKey, bearer, claims, jwks};
use crate::{AuthError, Authenticator, ConfigError, OAuthConfig};

fn url_config(url: String) -> OAuthConfig {
    let mut config = OAuthConfig::new(ISSUER, AUDIENCE);
    config.jwks_url = Some(url);
    config
}

async fn load(url: String) -> Result<Authenticator, ConfigError> {
    Authenticator::load(&BTreeMap::new(), Some(&url_config(url)), Path::new(".")).await
}

#[tokio::test]
async fn jwks_url_is_fetched_at_load_and_rotated_keys_are_picked_up() {
    let old = TestKey::ed25519("2024");
    let new = TestKey::p256("2025");
    let server = JwksServer::start(jwks(&[&old])).await;
    let mut auth = load(server.url()).await.unwrap();
    assert_eq!(server.hits(), 1, "fetched once at load");

    let token = old.sign(&claims("alice", &["research"]));
    auth.check(Some(&bearer(&token)), "research").await.unwrap();
    assert_eq!(server.hits(), 1, "a known kid needs no fetch");

    // The authorization server rotates: the new key is served from now on.
    server.serve(200, jwks(&[&old, &new]));
    let rotated = new.sign(&claims("alice", &["research"]));
    let err = auth
        .check(Some(&bearer(&rotated)), "research")
        .await
        .unwrap_err();
    assert_eq!(err, AuthError::UnknownKey, "refetch waits out the interval");
    assert_eq!(server.hits(), 1, "no fetch within a minute of the last");

    auth.oauth
        .as_mut()
        .unwrap()
        .jwks
        .set_refetch_interval(Duration::ZERO);
    let access = auth
        .check(Some(&bearer(&rotated)), "research")
        .await
        .unwrap();
    assert_eq!(access.principal, "oauth:alice");
    assert_eq!(server.hits(), 2, "the unknown kid fetched the set again");
    auth.check(Some(&bearer(&rotated)), "research")
        .await
        .unwrap();
    auth.check(Some(&bearer(&token)), "research").await.unwrap();
    assert_eq!(server.hits(), 2, "both keys known now");

    // The old key is retired; a token naming a kid nobody has still fetches
    // (interval zero here), fails, and the set is replaced.
    server.serve(200, jwks(&[&new]));
    let stranger = TestKey::ed25519("nobody").sign(&claims("alice", &["research"]));
    let err = auth
        .check(Some(&bearer(&stranger)), "research")
        .await
        .unwrap_err();
    assert_eq!(err, AuthError::UnknownKey);
    assert_eq!(server.hits(), 3);
    let err = auth
        .check(Some(&bearer(&token)), "research")
        .await
        .unwrap_err();
    assert_eq!(err, AuthError::UnknownKey, "the retired key is gone");
}

#[tokio::test]
async fn refetch_failure_keeps_the_old_keys() {
    let key = TestKey::ed25519("k");
    let server = JwksServer::start(jwks(&[&key])).await;
    let mut auth = load(server.url()).await.unwrap();
    auth.oauth
        .as_mut()
        .unwrap()
        .jwks
        .set_refetch_interval(Duration::ZERO);
    server.serve(500, json!({"error": "down"}));
    let stranger = TestKey::ed25519("other").sign(&claims("alice", &["research"]));
    let err = auth
        .check(Some(&bearer(&stranger)), "research")
        .await
        .unwrap_err();
    assert_eq!(err, AuthError::UnknownKey);
    assert_eq!(server.hits(), 2);
    let token = key.sign(&claims("alice", &["research"]));
    auth.check(Some(&bearer(&token)), "research").await.unwrap();
}

#[tokio::test]
async fn jwks_url_failing_at_load_is_a_config_error() {
    let server = JwksServer::start(json!({})).await;
    server.serve(503, json!({"error": "down"}));
    let err = load(server.url()).await.unwrap_err();
    assert!(
        matches!(&err, ConfigError::JwksFetch { reason, .. } if reason.contains("503")),
        "{err}"
    );
    server.serve(200, json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}));
    let err = load(server.url()).await.unwrap_err();
    assert!(
        matches!(&err, ConfigError::Jwks { reason, .. } if reason.contains("symmetric")),
        "{err}"
    );
}

#[tokio::test]
async fn jwks_url_must_be_https_unless_loopback() {
    for (url, expect) in [
        ("http://login.example.test/jwks", "plain http"),
        ("ftp://127.0.0.1/jwks", "https"),
        ("not a url", "not a URL"),
    ] {
        let err = load(url.into()).await.unwrap_err();
        assert!(
            matches!(&err, ConfigError::JwksUrl { reason, .. } if reason.contains(expect)),
            "{url}: {err}"
        );
    }
    let err = load("https://user:hunter2@login.example.test/jwks".into())
        .await
        .unwrap_err();
    assert!(matches!(err, ConfigError::JwksUrl { .. }), "{err}");
    assert!(!err.to_string().contains("hunter2"), "{err}");
}
