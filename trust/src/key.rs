//! Ed25519 keys of publishers and approvers: generating a pair, the private key
//! as a PKCS#8 PEM file only its owner can read, and the public key as the one
//! line `ed25519:BASE64` that trust policies quote.

use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, spki::der::pem::LineEnding};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use sha2::{Digest as _, Sha256};

use crate::TrustError;

/// The prefix of a public key as written in policies and `.pub` files.
const PUBLIC_PREFIX: &str = "ed25519:";

/// Largest key file read.
const MAX_KEY_FILE: u64 = 16 << 10;

/// A public key: who signed a statement or an approval.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    /// Parses `ed25519:BASE64` (32 raw bytes).
    pub fn parse(text: &str) -> Result<Self, TrustError> {
        let bad = |why: &str| TrustError::KeyText {
            text: text.chars().take(80).collect(),
            reason: why.to_string(),
        };
        let b64 = text
            .trim()
            .strip_prefix(PUBLIC_PREFIX)
            .ok_or_else(|| bad("a public key is written `ed25519:BASE64`"))?;
        let raw = STANDARD
            .decode(b64)
            .map_err(|_| bad("the part after `ed25519:` is not base64"))?;
        let raw: [u8; 32] = raw
            .try_into()
            .map_err(|_| bad("an Ed25519 public key is 32 bytes"))?;
        VerifyingKey::from_bytes(&raw)
            .map(Self)
            .map_err(|_| bad("not a valid Ed25519 point"))
    }

    /// The key's id: the hex sha256 of its 32 raw bytes (the DSSE `keyid`).
    pub fn id(&self) -> KeyId {
        KeyId(hex::encode(Sha256::digest(self.0.as_bytes())))
    }

    /// Checks `signature` over `message` (strict: no malleable signatures).
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let Ok(sig) = ed25519_dalek::Signature::from_slice(signature) else {
            return false;
        };
        self.0.verify_strict(message, &sig).is_ok()
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PUBLIC_PREFIX}{}", STANDARD.encode(self.0.as_bytes()))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.id().short())
    }
}

/// A key id (64 hex digits).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct KeyId(pub String);

impl KeyId {
    /// The first 16 hex digits, enough to tell keys apart in messages.
    pub fn short(&self) -> &str {
        self.0.get(..16).unwrap_or(&self.0)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({})", self.short())
    }
}

/// A private signing key. Zeroized on drop; its `Debug` shows only the id.
pub struct PrivateKey(SigningKey);

impl PrivateKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        Self(SigningKey::generate(&mut rand::rngs::OsRng))
    }

    /// Its public half.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.0.sign(message).to_bytes().to_vec()
    }

    /// Reads a PKCS#8 PEM private key file, refusing one that other users
    /// can read or write (as ssh does): a shared private key signs for anyone.
    pub fn load(path: &Path) -> Result<Self, TrustError> {
        let err = |reason: String| TrustError::KeyFile {
            path: path.to_path_buf(),
            reason,
        };
        let meta = std::fs::symlink_metadata(path).map_err(|e| err(e.to_string()))?;
        if !meta.is_file() {
            return Err(err("not a regular file".into()));
        }
        if meta.len() > MAX_KEY_FILE {
            return Err(err("too large for a key file".into()));
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(err(format!(
                    "mode {mode:o} lets other users read it; run `chmod 600 {}`",
                    path.display()
                )));
            }
        }
        let text =
            zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?);
        SigningKey::from_pkcs8_pem(&text)
            .map(Self)
            .map_err(|_| err("not an Ed25519 private key in PKCS#8 PEM form".into()))
    }

    /// Writes the key pair: `PATH` (PKCS#8 PEM, mode 0600, created new) and
    /// `PATH.pub` (the `ed25519:BASE64` line). Refuses to overwrite either.
    pub fn write_pair(&self, path: &Path) -> Result<PathBuf, TrustError> {
        let err = |p: &Path, reason: String| TrustError::KeyFile {
            path: p.to_path_buf(),
            reason,
        };
        let public_path = public_path(path);
        for p in [path, public_path.as_path()] {
            if std::fs::symlink_metadata(p).is_ok() {
                return Err(err(
                    p,
                    "already exists; choose another name or remove it first".into(),
                ));
            }
        }
        let pem = self
            .0
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| err(path, e.to_string()))?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path).map_err(|e| err(path, e.to_string()))?;
        std::io::Write::write_all(&mut file, pem.as_bytes())
            .map_err(|e| err(path, e.to_string()))?;
        std::fs::write(&public_path, format!("{}\n", self.public()))
            .map_err(|e| err(&public_path, e.to_string()))?;
        Ok(public_path)
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey({})", self.public().id().short())
    }
}

/// Where the public half of the private key at `path` is written.
pub fn public_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_pair_loads_back_and_signs_verifiably() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("team.key");
        let key = PrivateKey::generate();
        let public_path = key.write_pair(&path).unwrap();
        let loaded = PrivateKey::load(&path).unwrap();
        let public = PublicKey::parse(&std::fs::read_to_string(public_path).unwrap()).unwrap();
        assert_eq!(public, key.public());
        let sig = loaded.sign(b"hello");
        assert!(public.verify(b"hello", &sig));
        assert!(!public.verify(b"hellO", &sig));
        assert!(!format!("{loaded:?}").contains("PRIVATE"));
        assert!(key.write_pair(&path).is_err(), "never overwrites a key");
    }

    #[cfg(unix)]
    #[test]
    fn a_private_key_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        PrivateKey::generate().write_pair(&path).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = PrivateKey::load(&path).unwrap_err();
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }

    #[test]
    fn malformed_public_keys_are_refused_with_the_form_to_write() {
        for text in ["", "ed25519:", "ed25519:!!", "rsa:AAAA", "ed25519:AAAA"] {
            assert!(matches!(
                PublicKey::parse(text),
                Err(TrustError::KeyText { .. })
            ));
        }
    }
}
