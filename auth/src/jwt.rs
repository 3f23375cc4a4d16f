//! OAuth access tokens: the JWT header picks the algorithm and the key,
//! `jsonwebtoken` checks the signature and the registered claims, then the
//! token's claims must name the toolkit.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, AlgorithmFamily, Validation};
use serde_json::{Map, Value};

use crate::config::{ALL_TOOLKITS, ConfigError, OAuthConfig};
use crate::error::clean;
use crate::jwks::{Jwks, Key, resolve};
use crate::{Access, AuthError, Via};

/// What a `scope` entry granting a toolkit starts with (`toolkit:NAME`).
pub const SCOPE_PREFIX: &str = "toolkit:";

/// The checked `[serve.oauth]`: who issues tokens, for whom, with which keys.
pub(crate) struct OAuth {
    algorithms: Vec<Algorithm>,
    toolkits_claim: String,
    /// exp (required), nbf, aud, iss and the leeway; `algorithms` is set
    /// per token to the one algorithm its header names.
    validation: Validation,
    pub(crate) resource: Option<String>,
    pub(crate) authorization_servers: Vec<String>,
    pub(crate) jwks: Jwks,
}

impl OAuth {
    /// Checks `config` and reads or fetches its JWKS (`jwks` relative to
    /// `base_dir`).
    pub(crate) async fn load(config: &OAuthConfig, base_dir: &Path) -> Result<Self, ConfigError> {
        let field = |field: &'static str, reason: &str| ConfigError::Field {
            field,
            reason: reason.to_string(),
        };
        if config.issuer.trim().is_empty() {
            return Err(field(
                "issuer",
                "is empty; write the authorization server's issuer URL",
            ));
        }
        if config.audience.trim().is_empty() {
            return Err(field(
                "audience",
                "is empty; write the audience tokens are issued for",
            ));
        }
        if config.toolkits_claim.trim().is_empty() {
            return Err(field(
                "toolkits_claim",
                "is empty; leave it out for \"airlock_toolkits\"",
            ));
        }
        let algorithms = algorithms(&config.algorithms)?;
        let leeway =
            humantime::parse_duration(config.leeway.trim()).map_err(|e| ConfigError::Leeway {
                value: config.leeway.clone(),
                reason: e.to_string(),
            })?;
        if let Some(resource) = &config.resource {
            match url::Url::parse(resource) {
                Ok(u) if matches!(u.scheme(), "https" | "http") => {}
                _ => {
                    return Err(field(
                        "resource",
                        "is not an http(s) URL; write this server's public base URL",
                    ));
                }
            }
        }
        if config
            .authorization_servers
            .iter()
            .any(|s| s.trim().is_empty())
        {
            return Err(field("authorization_servers", "has an empty entry"));
        }
        let authorization_servers = if config.authorization_servers.is_empty() {
            vec![config.issuer.clone()]
        } else {
            config.authorization_servers.clone()
        };
        install_provider();
        let jwks = match (&config.jwks, &config.jwks_url) {
            (Some(path), None) => Jwks::from_file(&resolve(base_dir, path), &algorithms)?,
            (None, Some(url)) => Jwks::from_url(url, &algorithms).await?,
            (Some(_), Some(_)) => {
                return Err(ConfigError::JwksSource(
                    "both `jwks` and `jwks_url` are set; keep one of them",
                ));
            }
            (None, None) => {
                return Err(ConfigError::JwksSource(
                    "set `jwks` (a JWKS file) or `jwks_url` (the authorization server's jwks_uri)",
                ));
            }
        };
        let mut validation = Validation::new(algorithms[0]);
        validation.leeway = leeway.as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = true;
        validation.set_audience(&[&config.audience]);
        validation.set_issuer(&[&config.issuer]);
        validation.set_required_spec_claims(&["exp", "aud", "iss"]);
        Ok(OAuth {
            algorithms,
            toolkits_claim: config.toolkits_claim.clone(),
            validation,
            resource: config.resource.clone(),
            authorization_servers,
            jwks,
        })
    }

    /// Verifies the JWT `token` and checks that it grants `toolkit`.
    pub(crate) async fn check(&self, token: &str, toolkit: &str) -> Result<Access, AuthError> {
        let (alg_name, kid) = read_header(token)?;
        let alg = alg_name
            .parse::<Algorithm>()
            .ok()
            .filter(|a| self.algorithms.contains(a))
            .ok_or_else(|| AuthError::AlgorithmNotAllowed(clean(&alg_name)))?;
        let mut keys = self.jwks.current();
        if let Some(kid) = &kid
            && !keys.has_kid(kid)
        {
            keys = self.jwks.refetch_for(kid).await;
        }
        let candidates: Vec<&Key> = match &kid {
            Some(kid) => {
                let named: Vec<&Key> = keys.named(kid).collect();
                if named.is_empty() {
                    return Err(AuthError::UnknownKey);
                }
                let fit: Vec<&Key> = named.into_iter().filter(|k| k.fits(alg)).collect();
                if fit.is_empty() {
                    return Err(AuthError::AlgorithmNotAllowed(clean(&alg_name)));
                }
                fit
            }
            None => keys.fitting(alg).collect(),
        };
        if candidates.is_empty() {
            return Err(AuthError::UnknownKey);
        }
        let mut validation = self.validation.clone();
        validation.algorithms = vec![alg];
        for key in candidates {
            match jsonwebtoken::decode::<Map<String, Value>>(token, &key.decoding, &validation) {
                Ok(data) => return self.authorize(&data.claims, toolkit),
                Err(e) if matches!(e.kind(), ErrorKind::InvalidSignature) => continue,
                Err(e) => return Err(refusal(e.kind(), &alg_name)),
            }
        }
        Err(AuthError::BadSignature)
    }

    /// The principal of verified `claims`, if they grant `toolkit`: listed
    /// in the toolkits claim, or `toolkit:NAME` (or `toolkit:*`) in `scope`
    /// (or `scp`).
    fn authorize(&self, claims: &Map<String, Value>, toolkit: &str) -> Result<Access, AuthError> {
        let sub = claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| AuthError::Malformed("the token has no `sub` claim".into()))?;
        let listed = match claims.get(&self.toolkits_claim) {
            None => false,
            Some(value) => words(value)
                .ok_or_else(|| {
                    AuthError::Malformed(format!(
                        "the `{}` claim is not a list of toolkit names",
                        clean(&self.toolkits_claim)
                    ))
                })?
                .any(|t| t == toolkit || t == ALL_TOOLKITS),
        };
        let scoped = ["scope", "scp"].iter().any(|name| {
            claims.get(*name).and_then(words).is_some_and(|mut scopes| {
                scopes.any(|s| {
                    s.strip_prefix(SCOPE_PREFIX)
                        .is_some_and(|t| t == toolkit || t == ALL_TOOLKITS)
                })
            })
        });
        if !(listed || scoped) {
            return Err(AuthError::Forbidden {
                toolkit: toolkit.to_string(),
            });
        }
        Ok(Access {
            principal: format!("oauth:{sub}"),
            via: Via::OAuth,
        })
    }
}

/// The words of a claim: a list of strings, or one string split at spaces.
fn words(value: &Value) -> Option<Box<dyn Iterator<Item = &str> + '_>> {
    match value {
        Value::String(s) => Some(Box::new(s.split_ascii_whitespace())),
        Value::Array(items) if items.iter().all(Value::is_string) => {
            Some(Box::new(items.iter().filter_map(Value::as_str)))
        }
        _ => None,
    }
}

/// Whether `token` has the shape of a JWS compact serialization: three
/// base64url parts, the first two non-empty.
pub(crate) fn looks_like_jwt(token: &str) -> bool {
    let parts: Vec<&str> = token.split('.').collect();
    parts.len() == 3
        && !parts[0].is_empty()
        && !parts[1].is_empty()
        && parts.iter().all(|p| {
            p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// The `alg` and `kid` of the (unverified) header. A `crit` header is
/// refused: no extension is understood here (RFC 7515 section 4.1.11).
fn read_header(token: &str) -> Result<(String, Option<String>), AuthError> {
    let malformed = |what: &str| AuthError::Malformed(what.to_string());
    let head = token.split('.').next().unwrap_or_default();
    let bytes = URL_SAFE_NO_PAD
        .decode(head)
        .map_err(|_| malformed("the JWT header is not base64url"))?;
    let header: Map<String, Value> = serde_json::from_slice(&bytes)
        .map_err(|_| malformed("the JWT header is not a JSON object"))?;
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed("the JWT header has no `alg`"))?;
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err(malformed("the JWT header's `kid` is not a string")),
    };
    if header.contains_key("crit") {
        return Err(malformed(
            "the JWT header has `crit` extensions this server does not understand",
        ));
    }
    Ok((alg.to_string(), kid))
}

/// The refusal for a `jsonwebtoken` error other than a bad signature.
fn refusal(kind: &ErrorKind, alg: &str) -> AuthError {
    match kind {
        ErrorKind::InvalidSignature
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidEddsaKey
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidKeyFormat => AuthError::BadSignature,
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidAudience => AuthError::WrongAudience,
        ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
        ErrorKind::MissingRequiredClaim(c) if c == "aud" => AuthError::WrongAudience,
        ErrorKind::MissingRequiredClaim(c) if c == "iss" => AuthError::WrongIssuer,
        ErrorKind::MissingRequiredClaim(c) => {
            AuthError::Malformed(format!("the token has no `{}` claim", clean(c)))
        }
        ErrorKind::InvalidClaimFormat(c) => {
            AuthError::Malformed(format!("the `{}` claim has the wrong type", clean(c)))
        }
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => {
            AuthError::AlgorithmNotAllowed(clean(alg))
        }
        _ => AuthError::Malformed("the JWT is not well formed".into()),
    }
}

/// The configured algorithms, refusing `none`, `HS*` and unknown names.
fn algorithms(names: &[String]) -> Result<Vec<Algorithm>, ConfigError> {
    let refuse = |name: &str, reason| ConfigError::Algorithm {
        name: name.to_string(),
        reason,
    };
    let mut out = Vec::new();
    for name in names {
        if name.eq_ignore_ascii_case("none") {
            return Err(refuse(
                name,
                "is refused: it accepts unsigned tokens, which anyone can write",
            ));
        }
        let alg: Algorithm = name.parse().map_err(|_| {
            refuse(
                name,
                "is not a signature algorithm this server knows; use RS256, RS384, RS512, \
                 PS256, PS384, PS512, ES256, ES384 or EdDSA",
            )
        })?;
        if alg.family() == AlgorithmFamily::Hmac {
            return Err(refuse(
                name,
                "is refused: HMAC keys are shared secrets, the server would hold the issuer's \
                 signing key; use an asymmetric algorithm (RS256, ES256, EdDSA)",
            ));
        }
        if !out.contains(&alg) {
            out.push(alg);
        }
    }
    if out.is_empty() {
        return Err(ConfigError::Field {
            field: "algorithms",
            reason: "is empty; leave it out for RS256, ES256 and EdDSA".into(),
        });
    }
    Ok(out)
}

/// Makes RustCrypto `jsonwebtoken`'s process-wide backend, unless one is
/// already installed (the crate is built without aws-lc).
fn install_provider() {
    if jsonwebtoken::crypto::CryptoProvider::try_get_default().is_none() {
        let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
    }
}
