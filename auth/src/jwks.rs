//! The authorization server's signing keys: a JWKS read from a file or
//! fetched over HTTPS, kept as verification keys, and fetched again (at most
//! once a minute) when a token names a key the set does not hold.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};

use crate::config::ConfigError;

/// The shortest time between two fetches of a `jwks_url`.
pub const REFETCH_INTERVAL: Duration = Duration::from_secs(60);
/// The largest JWKS document read, from a file or a URL.
pub const MAX_JWKS_BYTES: usize = 1024 * 1024;
/// How long one fetch of a `jwks_url` may take, connection included.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// The smallest RSA modulus accepted, in bytes (2048 bits).
const MIN_RSA_BYTES: usize = 256;

/// The curve or family of a key, which decides the algorithms it fits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    Rsa,
    P256,
    P384,
    Ed25519,
}

/// One verification key from the JWKS.
pub(crate) struct Key {
    kid: Option<String>,
    /// The key's own `alg`, when the JWKS names one.
    alg: Option<Algorithm>,
    kind: KeyKind,
    pub(crate) decoding: DecodingKey,
}

impl Key {
    /// Whether a token signed with `alg` may be verified with this key: the
    /// key's type and curve fit `alg`, and its own `alg`, if any, is `alg`.
    pub(crate) fn fits(&self, alg: Algorithm) -> bool {
        let kind = match self.kind {
            KeyKind::Rsa => alg.family() == AlgorithmFamily::Rsa,
            KeyKind::P256 => alg == Algorithm::ES256,
            KeyKind::P384 => alg == Algorithm::ES384,
            KeyKind::Ed25519 => alg == Algorithm::EdDSA,
        };
        kind && self.alg.is_none_or(|a| a == alg)
    }
}

/// The usable keys of one JWKS document.
pub(crate) struct KeySet {
    keys: Vec<Key>,
}

impl KeySet {
    /// Parses a JWKS document, keeping the signature keys this crate can
    /// verify with (RSA of 2048 bits or more, P-256, P-384, Ed25519) and
    /// skipping the rest: symmetric and encryption keys, other curves. Fails
    /// when no kept key fits any of `allowed`.
    pub(crate) fn parse(doc: &[u8], allowed: &[Algorithm]) -> Result<KeySet, String> {
        #[derive(serde::Deserialize)]
        struct Doc {
            keys: Vec<serde_json::Value>,
        }
        let doc: Doc = serde_json::from_slice(doc)
            .map_err(|e| format!("not a JWKS document ({e}); it must be {{\"keys\": [...]}}"))?;
        let mut keys = Vec::new();
        let mut skipped = Vec::new();
        for (i, value) in doc.keys.into_iter().enumerate() {
            match parse_key(value) {
                Ok(key) => keys.push(key),
                Err(reason) => skipped.push(format!("key {i}: {reason}")),
            }
        }
        let skipped = if skipped.is_empty() {
            String::new()
        } else {
            format!(" (skipped {})", skipped.join("; "))
        };
        if keys.is_empty() {
            return Err(format!("no usable signature key{skipped}"));
        }
        if !keys.iter().any(|k| allowed.iter().any(|a| k.fits(*a))) {
            return Err(format!(
                "no key fits the allowed algorithms {allowed:?}{skipped}; \
                 allow the algorithm the authorization server signs with"
            ));
        }
        Ok(KeySet { keys })
    }

    /// Whether a key has this `kid`.
    pub(crate) fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }

    /// The keys named `kid`.
    pub(crate) fn named<'a>(&'a self, kid: &'a str) -> impl Iterator<Item = &'a Key> {
        self.keys
            .iter()
            .filter(move |k| k.kid.as_deref() == Some(kid))
    }

    /// Every key that fits `alg`, for a token that names no key.
    pub(crate) fn fitting(&self, alg: Algorithm) -> impl Iterator<Item = &Key> {
        self.keys.iter().filter(move |k| k.fits(alg))
    }
}

/// One JWK as a verification key, or why it is skipped.
fn parse_key(value: serde_json::Value) -> Result<Key, String> {
    if let Some(usage) = value.get("use")
        && usage != "sig"
    {
        return Err("not a signature key (`use` is not \"sig\")".into());
    }
    let jwk: Jwk = serde_json::from_value(value).map_err(|e| format!("not a JWK ({e})"))?;
    let alg = match jwk.common.key_algorithm {
        None => None,
        Some(a) => match Algorithm::try_from(a) {
            Ok(a) if a.family() != AlgorithmFamily::Hmac => Some(a),
            _ => {
                return Err(format!(
                    "`alg` {a} is not an asymmetric signature algorithm"
                ));
            }
        },
    };
    let b64 = |field: &str, text: &str| {
        URL_SAFE_NO_PAD
            .decode(text.trim_end_matches('='))
            .map_err(|_| format!("`{field}` is not base64url"))
    };
    let (kind, decoding) = match &jwk.algorithm {
        AlgorithmParameters::RSA(p) => {
            let n = b64("n", &p.n)?;
            let e = b64("e", &p.e)?;
            let bits = n.iter().skip_while(|b| **b == 0).count();
            if bits < MIN_RSA_BYTES {
                return Err("RSA key shorter than 2048 bits".into());
            }
            (KeyKind::Rsa, DecodingKey::from_rsa_raw_components(&n, &e))
        }
        AlgorithmParameters::EllipticCurve(p) => {
            let (kind, len) = match p.curve {
                EllipticCurve::P256 => (KeyKind::P256, 32),
                EllipticCurve::P384 => (KeyKind::P384, 48),
                _ => return Err("EC key on a curve other than P-256 or P-384".into()),
            };
            let (x, y) = (b64("x", &p.x)?, b64("y", &p.y)?);
            if x.len() != len || y.len() != len {
                return Err("EC coordinates of the wrong length for the curve".into());
            }
            let mut point = Vec::with_capacity(1 + 2 * len);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            (kind, DecodingKey::from_ec_der(&point))
        }
        AlgorithmParameters::OctetKeyPair(p) => {
            if p.curve != EllipticCurve::Ed25519 {
                return Err("OKP key on a curve other than Ed25519".into());
            }
            let x = b64("x", &p.x)?;
            if x.len() != 32 {
                return Err("Ed25519 key that is not 32 bytes".into());
            }
            (KeyKind::Ed25519, DecodingKey::from_ed_der(&x))
        }
        AlgorithmParameters::OctetKey(_) => {
            return Err("symmetric key (`oct`); only public keys are used".into());
        }
        _ => return Err("unsupported key type".into()),
    };
    Ok(Key {
        kid: jwk.common.key_id,
        alg,
        kind,
        decoding,
    })
}

/// Where the keys come from.
enum Source {
    File,
    Url {
        url: reqwest::Url,
        client: reqwest::Client,
    },
}

/// The current keys, and how to fetch them again.
pub(crate) struct Jwks {
    source: Source,
    allowed: Vec<Algorithm>,
    keys: RwLock<Arc<KeySet>>,
    /// When the URL was last fetched; held while a refetch runs, so that
    /// concurrent requests wait for it instead of fetching too.
    last_fetch: tokio::sync::Mutex<Instant>,
    refetch_interval: Duration,
}

impl Jwks {
    /// Reads the JWKS file at `path`.
    pub(crate) fn from_file(path: &Path, allowed: &[Algorithm]) -> Result<Self, ConfigError> {
        let file_error = |reason: String| ConfigError::JwksFile {
            path: path.to_path_buf(),
            reason,
        };
        let doc = read_capped(path).map_err(file_error)?;
        let keys = KeySet::parse(&doc, allowed).map_err(|reason| ConfigError::Jwks {
            source_name: path.display().to_string(),
            reason,
        })?;
        Ok(Self::new(Source::File, allowed, keys))
    }

    /// Checks `url` and fetches it.
    pub(crate) async fn from_url(url: &str, allowed: &[Algorithm]) -> Result<Self, ConfigError> {
        let url = check_url(url)?;
        let client = client()?;
        let doc = fetch(&client, &url)
            .await
            .map_err(|reason| ConfigError::JwksFetch {
                url: url.to_string(),
                reason,
            })?;
        let keys = KeySet::parse(&doc, allowed).map_err(|reason| ConfigError::Jwks {
            source_name: url.to_string(),
            reason,
        })?;
        Ok(Self::new(Source::Url { url, client }, allowed, keys))
    }

    fn new(source: Source, allowed: &[Algorithm], keys: KeySet) -> Self {
        Jwks {
            source,
            allowed: allowed.to_vec(),
            keys: RwLock::new(Arc::new(keys)),
            last_fetch: tokio::sync::Mutex::new(Instant::now()),
            refetch_interval: REFETCH_INTERVAL,
        }
    }

    /// The keys as they are now.
    pub(crate) fn current(&self) -> Arc<KeySet> {
        self.keys
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// The keys after fetching the URL again for a token naming `kid`, when
    /// the set lacks `kid`, the keys come from a URL and the last fetch is
    /// at least the refetch interval ago. A failed fetch keeps the old keys.
    pub(crate) async fn refetch_for(&self, kid: &str) -> Arc<KeySet> {
        let Source::Url { url, client } = &self.source else {
            return self.current();
        };
        let mut last = self.last_fetch.lock().await;
        let current = self.current();
        if current.has_kid(kid) || last.elapsed() < self.refetch_interval {
            return current;
        }
        *last = Instant::now();
        let fresh = fetch(client, url)
            .await
            .and_then(|doc| KeySet::parse(&doc, &self.allowed));
        match fresh {
            Ok(keys) => {
                let keys = Arc::new(keys);
                *self
                    .keys
                    .write()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()) = keys.clone();
                keys
            }
            Err(_) => current,
        }
    }

    /// Shortens the refetch interval (tests of key rotation).
    #[cfg(test)]
    pub(crate) fn set_refetch_interval(&mut self, interval: Duration) {
        self.refetch_interval = interval;
    }
}

/// The file's bytes, refusing more than [`MAX_JWKS_BYTES`].
fn read_capped(path: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut doc = Vec::new();
    file.take(MAX_JWKS_BYTES as u64 + 1)
        .read_to_end(&mut doc)
        .map_err(|e| e.to_string())?;
    if doc.len() > MAX_JWKS_BYTES {
        return Err(format!("larger than {MAX_JWKS_BYTES} bytes"));
    }
    Ok(doc)
}

/// `url` as a URL the host fetches keys from: `https`, or `http` to a
/// loopback address, with no user name or password.
fn check_url(text: &str) -> Result<reqwest::Url, ConfigError> {
    let bad = |url: &str, reason| ConfigError::JwksUrl {
        url: url.to_string(),
        reason,
    };
    let url = reqwest::Url::parse(text).map_err(|_| bad(text, "is not a URL"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "(not shown)",
            "carries a user name or password; a JWKS is public, remove them",
        ));
    }
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => return Err(bad(text, "has no host")),
    };
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        "http" => Err(bad(
            text,
            "uses plain http to another machine; use https (these keys decide who may call the server)",
        )),
        _ => Err(bad(text, "must be an https URL")),
    }
}

/// The client for JWKS URLs: rustls with the ring provider chosen here (not
/// the process-wide default) and the webpki roots, no proxies, no redirects.
fn client() -> Result<reqwest::Client, ConfigError> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| ConfigError::Client(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(FETCH_TIMEOUT)
        .timeout(FETCH_TIMEOUT)
        .user_agent(concat!("airlock-auth/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ConfigError::Client(error_chain(&e)))
}

/// GETs `url`: a 200 with at most [`MAX_JWKS_BYTES`] of body.
async fn fetch(client: &reqwest::Client, url: &reqwest::Url) -> Result<Vec<u8>, String> {
    let mut response = client
        .get(url.clone())
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| error_chain(&e))?;
    let status = response.status();
    if status.is_redirection() {
        return Err(format!(
            "HTTP status {status}; redirects are not followed, configure the final URL"
        ));
    }
    if !status.is_success() {
        return Err(format!("HTTP status {status}"));
    }
    let mut doc = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| error_chain(&e))? {
        if doc.len() + chunk.len() > MAX_JWKS_BYTES {
            return Err(format!(
                "the document is larger than {MAX_JWKS_BYTES} bytes"
            ));
        }
        doc.extend_from_slice(&chunk);
    }
    Ok(doc)
}

/// An error and its sources, joined by `: `.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The path of a `jwks` file: as written when absolute, else under `base`.
pub(crate) fn resolve(base: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}
