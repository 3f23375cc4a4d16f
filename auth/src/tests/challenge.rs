//! The `WWW-Authenticate` challenges (missing, invalid, forbidden) and the
//! protected-resource metadata document.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::json;

use super::{ISSUER, TestKey, oauth_with};
use crate::{AuthError, Authenticator};

const METADATA: &str = "https://tools.example.test/.well-known/oauth-protected-resource";

#[test]
fn missing_credentials_get_a_challenge_without_error() {
    assert_eq!(
        AuthError::Missing.www_authenticate(Some(METADATA)),
        format!("Bearer realm=\"airlock\", resource_metadata=\"{METADATA}\"")
    );
    assert_eq!(
        AuthError::NotBearer.www_authenticate(None),
        "Bearer realm=\"airlock\""
    );
}

#[test]
fn invalid_credentials_get_invalid_token() {
    let text = AuthError::Expired.www_authenticate(Some(METADATA));
    assert!(
        text.starts_with("Bearer realm=\"airlock\", error=\"invalid_token\", error_description=\"")
    );
    assert!(text.contains("expired"), "{text}");
    assert!(
        text.ends_with(&format!(", resource_metadata=\"{METADATA}\"")),
        "{text}"
    );
    assert_eq!(AuthError::Expired.status(), 401);
    for e in [
        AuthError::UnknownToken,
        AuthError::BadSignature,
        AuthError::UnknownKey,
        AuthError::Malformed("x".into()),
    ] {
        assert!(e.www_authenticate(None).contains("error=\"invalid_token\""));
        assert_eq!(e.status(), 401);
    }
}

#[test]
fn forbidden_gets_insufficient_scope_and_the_scope() {
    let err = AuthError::Forbidden {
        toolkit: "research".into(),
    };
    let text = err.www_authenticate(None);
    assert!(text.contains("error=\"insufficient_scope\""), "{text}");
    assert!(text.contains("scope=\"toolkit:research\""), "{text}");
    assert!(!text.contains("resource_metadata"), "{text}");
    assert_eq!(err.status(), 403);
    assert_eq!(err.reason(), "forbidden");
}

#[test]
fn challenge_values_cannot_break_out_of_their_quotes() {
    let err = AuthError::Forbidden {
        toolkit: "a\"b\\c\r\nSet-Cookie: x".into(),
    };
    let text = err.www_authenticate(Some("https://x/\"y"));
    assert!(!text.contains('\r') && !text.contains('\n'), "{text}");
    assert_eq!(text.matches('"').count() % 2, 0, "{text}");
    assert!(
        text.contains("scope=\"toolkit:a?b?c??Set-Cookie: x\""),
        "{text}"
    );
    let alg = AuthError::AlgorithmNotAllowed(crate::error::clean("HS256\"\n<script>"));
    assert!(!alg.to_string().contains('"') && !alg.to_string().contains('<'));
}

#[tokio::test]
async fn resource_metadata_names_the_issuer_and_toolkit_scopes() {
    let dir = tempfile::tempdir().unwrap();
    let auth = oauth_with(dir.path(), &[&TestKey::ed25519("k")]).await;
    let doc = auth
        .resource_metadata("https://tools.example.test/toolkits/research/mcp")
        .unwrap();
    assert_eq!(
        doc,
        json!({
            "resource": "https://tools.example.test/toolkits/research/mcp",
            "authorization_servers": [ISSUER],
            "bearer_methods_supported": ["header"],
            "scopes_supported": ["toolkit:*"],
        })
    );
    let tokens_only = Authenticator::load(&BTreeMap::new(), None, Path::new("."))
        .await
        .unwrap();
    assert_eq!(tokens_only.resource_metadata("https://x"), None);
}
