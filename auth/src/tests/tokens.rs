//! Bearer tokens: made by `new_token`, found by hash, limited to toolkits;
//! the header's shape (missing, another scheme) decided before any lookup.

use std::collections::BTreeMap;
use std::path::Path;

use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};

use super::{assert_no_leak, bearer, tokens};
use crate::{AuthError, Authenticator, TOKEN_PREFIX, Via, new_token};

/// Two tokens: `ci` for `research` only, `admin` for every toolkit.
async fn two_tokens() -> (Authenticator, String, String) {
    let (ci, ci_hash) = new_token();
    let (admin, admin_hash) = new_token();
    let auth = Authenticator::load(
        &tokens(&[
            ("ci", &ci_hash, &["research"]),
            ("admin", &admin_hash, &["*"]),
        ]),
        None,
        Path::new("."),
    )
    .await
    .unwrap();
    (
        auth,
        ci.expose_secret().to_string(),
        admin.expose_secret().to_string(),
    )
}

#[test]
fn new_token_is_prefixed_random_and_hashed() {
    let (token, hash) = new_token();
    let token = token.expose_secret();
    assert!(token.starts_with(TOKEN_PREFIX), "{token}");
    assert_eq!(
        token.len(),
        TOKEN_PREFIX.len() + 43,
        "32 bytes of unpadded base64url"
    );
    assert!(!token.contains('='));
    assert_eq!(hash, hex::encode(Sha256::digest(token.as_bytes())));
    let (other, other_hash) = new_token();
    assert_ne!(token, other.expose_secret());
    assert_ne!(hash, other_hash);
    let (secret, _) = new_token();
    assert!(!format!("{secret:?}").contains(secret.expose_secret()));
}

#[tokio::test]
async fn token_is_accepted_for_its_toolkit() {
    let (auth, ci, _) = two_tokens().await;
    let access = auth.check(Some(&bearer(&ci)), "research").await.unwrap();
    assert_eq!(access.principal, "ci");
    assert_eq!(access.via, Via::Token);
    let lower = auth
        .check(Some(&format!("bearer   {ci} ")), "research")
        .await
        .unwrap();
    assert_eq!(lower.principal, "ci", "the scheme is case-insensitive");
}

#[tokio::test]
async fn token_for_another_toolkit_is_forbidden() {
    let (auth, ci, _) = two_tokens().await;
    let err = auth.check(Some(&bearer(&ci)), "billing").await.unwrap_err();
    assert_eq!(
        err,
        AuthError::Forbidden {
            toolkit: "billing".into()
        }
    );
    assert_eq!(err.status(), 403);
    assert_no_leak(&err, &ci);
}

#[tokio::test]
async fn wildcard_token_reaches_every_toolkit() {
    let (auth, _, admin) = two_tokens().await;
    for toolkit in ["research", "billing"] {
        let access = auth.check(Some(&bearer(&admin)), toolkit).await.unwrap();
        assert_eq!(access.principal, "admin");
    }
}

#[tokio::test]
async fn unknown_token_is_refused() {
    let (auth, ci, _) = two_tokens().await;
    let forged = format!("{ci}x");
    let err = auth
        .check(Some(&bearer(&forged)), "research")
        .await
        .unwrap_err();
    assert_eq!(err, AuthError::UnknownToken);
    assert_eq!(err.status(), 401);
    assert_no_leak(&err, &forged);
    let (fresh, _) = new_token();
    let err = auth
        .check(Some(&bearer(fresh.expose_secret())), "research")
        .await
        .unwrap_err();
    assert_eq!(err, AuthError::UnknownToken);
}

#[tokio::test]
async fn missing_header_is_missing() {
    let (auth, _, _) = two_tokens().await;
    assert_eq!(
        auth.check(None, "research").await.unwrap_err(),
        AuthError::Missing
    );
    assert_eq!(
        auth.check(Some("  "), "research").await.unwrap_err(),
        AuthError::Missing
    );
}

#[tokio::test]
async fn basic_scheme_is_not_bearer() {
    let (auth, ci, _) = two_tokens().await;
    let basic = format!("Basic {ci}");
    let err = auth.check(Some(&basic), "research").await.unwrap_err();
    assert_eq!(err, AuthError::NotBearer);
    assert_no_leak(&err, &ci);
    let err = auth.check(Some(&ci), "research").await.unwrap_err();
    assert_eq!(err, AuthError::NotBearer, "a bare token has no scheme");
    assert_no_leak(&err, &ci);
}

#[tokio::test]
async fn empty_or_split_bearer_token_is_malformed() {
    let (auth, ci, _) = two_tokens().await;
    let err = auth.check(Some("Bearer "), "research").await.unwrap_err();
    assert!(matches!(err, AuthError::Malformed(_)), "{err:?}");
    let two = format!("Bearer {ci} {ci}");
    let err = auth.check(Some(&two), "research").await.unwrap_err();
    assert!(matches!(err, AuthError::Malformed(_)), "{err:?}");
    assert_no_leak(&err, &ci);
}

#[tokio::test]
async fn jwt_shaped_token_without_oauth_is_an_unknown_token() {
    let (auth, _, _) = two_tokens().await;
    let err = auth
        .check(Some("Bearer eyJhbGciOiJFUzI1NiJ9.e30.c2ln"), "research")
        .await
        .unwrap_err();
    assert_eq!(err, AuthError::UnknownToken);
}

#[tokio::test]
async fn nothing_configured_is_empty() {
    let empty = Authenticator::load(&BTreeMap::new(), None, Path::new("."))
        .await
        .unwrap();
    assert!(empty.is_empty());
    assert!(!empty.has_oauth());
    assert_eq!(
        empty.check(Some("Bearer x"), "research").await.unwrap_err(),
        AuthError::UnknownToken
    );
    let (auth, _, _) = two_tokens().await;
    assert!(!auth.is_empty());
    let debug = format!("{auth:?}");
    assert!(debug.contains("ci") && !debug.contains("sha"), "{debug}");
}
