//! Pseudonyms of masked columns: HMAC-SHA256 under a host-held key over the
//! value's type and bytes, the first 16 bytes in hex. The same value gives
//! the same pseudonym in every masked column of the host (joins and counts
//! work); without the key no one can compute or invert it.

use std::sync::Arc;

use hmac::{Hmac, Mac};
use rusqlite::types::ValueRef;
use secrecy::{ExposeSecret, SecretSlice};
use sha2::Sha256;

/// The key pseudonyms are computed with. Cheap to clone; never printed.
#[derive(Clone)]
pub struct PseudonymKey(Arc<SecretSlice<u8>>);

impl PseudonymKey {
    /// A key from the operator's secret (`[sql] pseudonym_secret`): stable
    /// pseudonyms across restarts and hosts sharing it.
    pub fn new(secret: SecretSlice<u8>) -> Self {
        Self(Arc::new(secret))
    }

    /// A random key for this process: pseudonyms are stable only until the
    /// host restarts.
    pub fn random() -> Self {
        let mut key = vec![0u8; 32];
        getrandom::fill(&mut key).expect("the operating system's random source works");
        Self(Arc::new(SecretSlice::from(key)))
    }

    /// The pseudonym of `value` (NULL stays NULL).
    pub fn of(&self, value: ValueRef<'_>) -> Option<String> {
        let (tag, bytes): (u8, std::borrow::Cow<'_, [u8]>) = match value {
            ValueRef::Null => return None,
            ValueRef::Integer(n) => (b'i', n.to_be_bytes().to_vec().into()),
            ValueRef::Real(x) => (b'r', x.to_be_bytes().to_vec().into()),
            ValueRef::Text(t) => (b't', t.into()),
            ValueRef::Blob(b) => (b'b', b.into()),
        };
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.0.expose_secret())
            .expect("HMAC takes a key of any length");
        mac.update(&[tag]);
        mac.update(&bytes);
        Some(hex::encode(&mac.finalize().into_bytes()[..16]))
    }
}

impl PseudonymKey {
    /// HMAC-SHA256's padded inner and outer keys (`K ^ 0x36..`, `K ^ 0x5c..`),
    /// with which a database computes the same HMAC with plain `sha256`.
    pub(crate) fn pads(&self) -> (Vec<u8>, Vec<u8>) {
        use sha2::Digest;
        let key = self.0.expose_secret();
        let mut block = if key.len() > 64 {
            Sha256::digest(key).to_vec()
        } else {
            key.to_vec()
        };
        block.resize(64, 0);
        let inner = block.iter().map(|b| b ^ 0x36).collect();
        let outer = block.iter().map(|b| b ^ 0x5c).collect();
        (inner, outer)
    }
}

impl std::fmt::Debug for PseudonymKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PseudonymKey(..)")
    }
}
