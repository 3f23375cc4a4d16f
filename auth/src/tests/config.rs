//! Configurations refused at load, and the TOML shape with its defaults.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::json;

use super::{AUDIENCE, ISSUER, TestKey, jwks, oauth_config, tokens};
use crate::{Authenticator, ConfigError, OAuthConfig, TokenConfig};

const HASH: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

async fn load_tokens(t: BTreeMap<String, TokenConfig>) -> Result<Authenticator, ConfigError> {
    Authenticator::load(&t, None, Path::new(".")).await
}

/// Loads `config` with a valid JWKS file beside it.
async fn load_oauth(config: OAuthConfig) -> Result<Authenticator, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let key = TestKey::ed25519("k");
    std::fs::write(dir.path().join("jwks.json"), jwks(&[&key]).to_string()).unwrap();
    Authenticator::load(&BTreeMap::new(), Some(&config), dir.path()).await
}

#[tokio::test]
async fn token_hash_must_be_64_lowercase_hex() {
    for bad in [
        "abc",
        &HASH.to_uppercase(),
        &format!("{}zz", &HASH[..62]),
        &format!("{HASH}00"),
    ] {
        let err = load_tokens(tokens(&[("ci", bad, &["research"])]))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, ConfigError::TokenHash { name } if name == "ci"),
            "{bad}: {err}"
        );
        assert!(err.to_string().contains("airlock token new"), "{err}");
    }
    assert!(
        load_tokens(tokens(&[("ci", HASH, &["research"])]))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn token_needs_toolkits_and_its_own_hash() {
    let err = load_tokens(tokens(&[("ci", HASH, &[])])).await.unwrap_err();
    assert!(
        matches!(&err, ConfigError::TokenToolkits { name } if name == "ci"),
        "{err}"
    );
    let err = load_tokens(tokens(&[("a", HASH, &["x"]), ("b", HASH, &["y"])]))
        .await
        .unwrap_err();
    assert!(matches!(err, ConfigError::DuplicateToken { .. }), "{err}");
}

#[tokio::test]
async fn exactly_one_jwks_source() {
    let mut both = oauth_config();
    both.jwks_url = Some("https://login.example.test/jwks".into());
    let err = load_oauth(both).await.unwrap_err();
    assert!(
        matches!(&err, ConfigError::JwksSource(m) if m.contains("both")),
        "{err}"
    );
    let err = load_oauth(OAuthConfig::new(ISSUER, AUDIENCE))
        .await
        .unwrap_err();
    assert!(matches!(err, ConfigError::JwksSource(_)), "{err}");
}

#[tokio::test]
async fn symmetric_and_none_algorithms_are_refused() {
    for alg in ["HS256", "HS512", "none", "NONE"] {
        let mut config = oauth_config();
        config.algorithms = vec!["EdDSA".into(), alg.into()];
        let err = load_oauth(config).await.unwrap_err();
        assert!(
            matches!(&err, ConfigError::Algorithm { name, .. } if name == alg),
            "{alg}: {err}"
        );
        assert!(err.to_string().contains("refused"), "{err}");
    }
    let mut config = oauth_config();
    config.algorithms = vec!["RS1024".into()];
    assert!(matches!(
        load_oauth(config).await.unwrap_err(),
        ConfigError::Algorithm { .. }
    ));
    let mut config = oauth_config();
    config.algorithms = vec![];
    assert!(matches!(
        load_oauth(config).await.unwrap_err(),
        ConfigError::Field {
            field: "algorithms",
            ..
        }
    ));
}

#[tokio::test]
async fn jwks_must_hold_a_key_for_an_allowed_algorithm() {
    let mut config = oauth_config();
    config.algorithms = vec!["RS256".into()];
    let err = load_oauth(config).await.unwrap_err();
    assert!(
        matches!(&err, ConfigError::Jwks { reason, .. } if reason.contains("allowed algorithms")),
        "{err}"
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("jwks.json"), "not json").unwrap();
    let err = Authenticator::load(&BTreeMap::new(), Some(&oauth_config()), dir.path())
        .await
        .unwrap_err();
    assert!(matches!(err, ConfigError::Jwks { .. }), "{err}");
    let empty = tempfile::tempdir().unwrap();
    let err = Authenticator::load(&BTreeMap::new(), Some(&oauth_config()), empty.path())
        .await
        .unwrap_err();
    assert!(matches!(err, ConfigError::JwksFile { .. }), "{err}");
    std::fs::write(
        empty.path().join("jwks.json"),
        json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "AAAA"}]}).to_string(),
    )
    .unwrap();
    let err = Authenticator::load(&BTreeMap::new(), Some(&oauth_config()), empty.path())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("32 bytes"), "{err}");
}

#[tokio::test]
async fn leeway_and_fields_are_checked() {
    let mut config = oauth_config();
    config.leeway = "soon".into();
    assert!(matches!(
        load_oauth(config).await.unwrap_err(),
        ConfigError::Leeway { .. }
    ));
    let mut config = oauth_config();
    config.audience = " ".into();
    assert!(matches!(
        load_oauth(config).await.unwrap_err(),
        ConfigError::Field {
            field: "audience",
            ..
        }
    ));
    let mut config = oauth_config();
    config.resource = Some("tools.example.test".into());
    assert!(matches!(
        load_oauth(config).await.unwrap_err(),
        ConfigError::Field {
            field: "resource",
            ..
        }
    ));
}

#[test]
fn toml_shape_has_defaults_and_refuses_unknown_fields() {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Serve {
        #[serde(default)]
        tokens: BTreeMap<String, TokenConfig>,
        oauth: Option<OAuthConfig>,
    }
    let serve: Serve = toml::from_str(&format!(
        r#"
        [tokens.ci]
        sha256 = "{HASH}"
        toolkits = ["research"]

        [oauth]
        issuer = "{ISSUER}"
        audience = "{AUDIENCE}"
        jwks = "keys/jwks.json"
        "#
    ))
    .unwrap();
    assert_eq!(serve.tokens["ci"].toolkits, ["research"]);
    let oauth = serve.oauth.unwrap();
    assert_eq!(oauth.algorithms, ["RS256", "ES256", "EdDSA"]);
    assert_eq!(oauth.toolkits_claim, "airlock_toolkits");
    assert_eq!(oauth.leeway, "30s");
    assert!(oauth.authorization_servers.is_empty());
    let err = toml::from_str::<TokenConfig>(&format!(
        "sha256 = \"{HASH}\"\ntoolkits = [\"x\"]\ntoken = \"alk_oops\"\n"
    ))
    .err()
    .unwrap();
    assert!(err.to_string().contains("unknown field"), "{err}");
}
