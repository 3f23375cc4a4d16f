//! Key material held by the host: HMAC secrets and Ed25519 signing keys,
//! zeroized on drop and never printed.

use ed25519_dalek::SigningKey;
use secrecy::{ExposeSecret, SecretSlice};
use zeroize::Zeroize;

/// One named key. `Debug` shows only its kind.
pub enum SignKey {
    /// A secret for HMAC-SHA256.
    Hmac(SecretSlice<u8>),
    /// An Ed25519 signing key (zeroized on drop by `ed25519-dalek`).
    Ed25519(Box<SigningKey>),
}

/// Why key material could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    /// An HMAC key must not be empty.
    #[error("the HMAC secret is empty; put at least 32 random bytes in it")]
    EmptyHmac,
    /// An Ed25519 seed must be 32 bytes (raw, 64 hex digits or base64).
    #[error(
        "an Ed25519 seed must be 32 bytes given raw, as 64 hex digits or as base64 \
         (got {0} bytes that are none of these)"
    )]
    BadSeed(usize),
}

impl SignKey {
    /// An HMAC-SHA256 key from secret bytes.
    pub fn hmac(secret: SecretSlice<u8>) -> Result<Self, KeyError> {
        if secret.expose_secret().is_empty() {
            return Err(KeyError::EmptyHmac);
        }
        Ok(Self::Hmac(secret))
    }

    /// An Ed25519 key from a 32-byte seed given raw, as hex or as base64
    /// (surrounding white space ignored).
    pub fn ed25519_from_seed(secret: &SecretSlice<u8>) -> Result<Self, KeyError> {
        let bytes = secret.expose_secret();
        let mut seed = decode_seed(bytes).ok_or(KeyError::BadSeed(bytes.len()))?;
        let key = SigningKey::from_bytes(&seed);
        seed.zeroize();
        Ok(Self::Ed25519(Box::new(key)))
    }

    /// A fresh random Ed25519 key that lives only in this process (the demo's).
    pub fn generate_ed25519() -> Self {
        let mut seed: [u8; 32] = rand_seed();
        let key = SigningKey::from_bytes(&seed);
        seed.zeroize();
        Self::Ed25519(Box::new(key))
    }

    /// A fresh random 32-byte HMAC key that lives only in this process.
    pub fn generate_hmac() -> Self {
        let seed: [u8; 32] = rand_seed();
        Self::Hmac(SecretSlice::from(seed.to_vec()))
    }

    /// The kind of key, for listings: `hmac-sha256` or `ed25519`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Hmac(_) => "hmac-sha256",
            Self::Ed25519(_) => "ed25519",
        }
    }

    pub(crate) fn hmac_secret(&self) -> Option<&[u8]> {
        match self {
            Self::Hmac(s) => Some(s.expose_secret()),
            Self::Ed25519(_) => None,
        }
    }

    pub(crate) fn ed25519(&self) -> Option<&SigningKey> {
        match self {
            Self::Ed25519(k) => Some(k),
            Self::Hmac(_) => None,
        }
    }
}

impl std::fmt::Debug for SignKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SignKey({}, [REDACTED])", self.kind())
    }
}

fn rand_seed() -> [u8; 32] {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).expect("the operating system's random source failed");
    seed
}

fn decode_seed(bytes: &[u8]) -> Option<[u8; 32]> {
    if bytes.len() == 32 {
        return bytes.try_into().ok();
    }
    let text = std::str::from_utf8(bytes).ok()?.trim();
    let mut out = [0u8; 32];
    if text.len() == 64 && hex::decode_to_slice(text, &mut out).is_ok() {
        return Some(out);
    }
    use base64::Engine;
    for engine in [
        &base64::engine::general_purpose::STANDARD,
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        &base64::engine::general_purpose::URL_SAFE,
        &base64::engine::general_purpose::STANDARD_NO_PAD,
    ] {
        if let Ok(mut v) = engine.decode(text) {
            let ok = v.len() == 32;
            if ok {
                out.copy_from_slice(&v);
            }
            v.zeroize();
            if ok {
                return Some(out);
            }
        }
    }
    None
}
