//! Tests with real cryptography: keys generated per test (Ed25519, P-256),
//! JWTs signed with `jsonwebtoken`, JWKS files in a temporary directory and
//! JWKS URLs served by a real HTTP server on 127.0.0.1.

mod challenge;
mod config;
mod jwks_url;
mod jwt;
mod server;
mod tokens;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::{AuthError, Authenticator, OAuthConfig, TokenConfig};

/// The issuer every test token carries.
pub(crate) const ISSUER: &str = "https://login.example.test/";
/// The audience every test server expects.
pub(crate) const AUDIENCE: &str = "https://tools.example.test";

/// base64url without padding.
pub(crate) fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Seconds since the epoch.
pub(crate) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A signing key of the tests, with the JWK of its public half.
pub(crate) struct TestKey {
    pub kid: String,
    pub alg: Algorithm,
    pkcs8: Vec<u8>,
    /// The public key: 32 bytes (Ed25519) or an uncompressed point (P-256).
    pub public: Vec<u8>,
}

impl TestKey {
    /// A fresh Ed25519 key.
    pub(crate) fn ed25519(kid: &str) -> Self {
        let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
        TestKey {
            kid: kid.into(),
            alg: Algorithm::EdDSA,
            pkcs8: key.to_pkcs8_der().unwrap().as_bytes().to_vec(),
            public: key.verifying_key().to_bytes().to_vec(),
        }
    }

    /// A fresh P-256 key (ES256).
    pub(crate) fn p256(kid: &str) -> Self {
        use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        TestKey {
            kid: kid.into(),
            alg: Algorithm::ES256,
            pkcs8: pkcs8.as_ref().to_vec(),
            public: pair.public_key().as_ref().to_vec(),
        }
    }

    /// The public JWK, with `kid`, `alg` and `use`.
    pub(crate) fn jwk(&self) -> Value {
        match self.alg {
            Algorithm::EdDSA => json!({
                "kty": "OKP", "crv": "Ed25519", "x": b64(&self.public),
                "kid": self.kid, "alg": "EdDSA", "use": "sig",
            }),
            _ => json!({
                "kty": "EC", "crv": "P-256",
                "x": b64(&self.public[1..33]), "y": b64(&self.public[33..]),
                "kid": self.kid, "alg": "ES256", "use": "sig",
            }),
        }
    }

    /// The private key, for `jsonwebtoken::encode`.
    pub(crate) fn encoding_key(&self) -> EncodingKey {
        match self.alg {
            Algorithm::EdDSA => EncodingKey::from_ed_der(&self.pkcs8),
            _ => EncodingKey::from_ec_der(&self.pkcs8),
        }
    }

    /// `claims` signed with this key, the header naming its `kid`.
    pub(crate) fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding_key()).unwrap()
    }

    /// `claims` signed with this key, with no `kid` in the header.
    pub(crate) fn sign_without_kid(&self, claims: &Value) -> String {
        jsonwebtoken::encode(&Header::new(self.alg), claims, &self.encoding_key()).unwrap()
    }
}

/// A JWKS document holding `keys`.
pub(crate) fn jwks(keys: &[&TestKey]) -> Value {
    json!({ "keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>() })
}

/// Valid claims for `sub`, granting `toolkits` through the default claim,
/// expiring in five minutes.
pub(crate) fn claims(sub: &str, toolkits: &[&str]) -> Value {
    json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": sub,
        "iat": now(),
        "exp": now() + 300,
        "airlock_toolkits": toolkits,
    })
}

/// An OAuth config for [`ISSUER`] and [`AUDIENCE`] reading `jwks.json`.
pub(crate) fn oauth_config() -> OAuthConfig {
    let mut config = OAuthConfig::new(ISSUER, AUDIENCE);
    config.jwks = Some("jwks.json".into());
    config
}

/// An authenticator with OAuth only, its JWKS file holding `keys` (written
/// in `dir`, named relative to it).
pub(crate) async fn oauth_with(dir: &Path, keys: &[&TestKey]) -> Authenticator {
    std::fs::write(dir.join("jwks.json"), jwks(keys).to_string()).unwrap();
    Authenticator::load(&BTreeMap::new(), Some(&oauth_config()), dir)
        .await
        .unwrap()
}

/// A `[serve.tokens]` map.
pub(crate) fn tokens(entries: &[(&str, &str, &[&str])]) -> BTreeMap<String, TokenConfig> {
    entries
        .iter()
        .map(|(name, sha256, toolkits)| {
            (
                name.to_string(),
                TokenConfig {
                    sha256: sha256.to_string(),
                    toolkits: toolkits.iter().map(|t| t.to_string()).collect(),
                },
            )
        })
        .collect()
}

/// `Bearer <token>`.
pub(crate) fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Asserts that nothing the error prints (Display, Debug, reason, the
/// challenge) holds `token`, nor, for a JWT, its signature.
pub(crate) fn assert_no_leak(error: &AuthError, token: &str) {
    let printed = [
        error.to_string(),
        format!("{error:?}"),
        error.reason().to_string(),
        error.www_authenticate(Some("https://tools.example.test/.well-known/x")),
    ];
    let mut secrets = vec![token];
    if let Some(signature) = token.rsplit('.').next().filter(|s| s.len() >= 16) {
        secrets.push(signature);
    }
    for text in &printed {
        for secret in &secrets {
            assert!(!text.contains(secret), "{text:?} leaks {secret:?}");
        }
    }
}

/// The host shares one authenticator between connections and awaits
/// `check` inside its request handlers, which must be `Send`.
#[test]
fn authenticator_is_shareable_and_check_is_send() {
    fn shareable<T: Send + Sync + 'static>() {}
    fn send<F: std::future::Future + Send>(_: F) {}
    shareable::<Authenticator>();
    shareable::<AuthError>();
    shareable::<crate::ConfigError>();
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let auth = runtime.block_on(oauth_with(dir.path(), &[&TestKey::ed25519("k")]));
    send(auth.check(Some("Bearer x"), "research"));
    send(Authenticator::load(&BTreeMap::new(), None, Path::new(".")));
}
