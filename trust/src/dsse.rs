//! DSSE envelopes (the Dead Simple Signing Envelope of in-toto and sigstore):
//! a payload, its type and Ed25519 signatures over the pre-authentication
//! encoding, so a signature can never be read as one over another type.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::TrustError;
use crate::key::{KeyId, PrivateKey, PublicKey};

/// The payload type of an in-toto statement.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// Largest envelope read (a statement with docs and grants is a few KiB).
pub const MAX_ENVELOPE_BYTES: usize = 1 << 20;

/// A DSSE envelope as written to disk and to registries.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// What the payload is.
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    /// The payload, base64.
    pub payload: String,
    /// The signatures.
    pub signatures: Vec<Signature>,
}

/// One signature of an envelope.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Signature {
    /// The signer's key id.
    #[serde(default)]
    pub keyid: String,
    /// The signature, base64.
    pub sig: String,
}

/// The pre-authentication encoding DSSE signs.
fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

impl Envelope {
    /// Signs `payload` of `payload_type` with `key`.
    pub fn sign(payload_type: &str, payload: &[u8], key: &PrivateKey) -> Self {
        let sig = key.sign(&pae(payload_type, payload));
        Self {
            payload_type: payload_type.to_string(),
            payload: STANDARD.encode(payload),
            signatures: vec![Signature {
                keyid: key.public().id().0,
                sig: STANDARD.encode(sig),
            }],
        }
    }

    /// Parses envelope bytes (at most [`MAX_ENVELOPE_BYTES`]).
    pub fn parse(bytes: &[u8]) -> Result<Self, TrustError> {
        if bytes.len() > MAX_ENVELOPE_BYTES {
            return Err(TrustError::Envelope(format!(
                "{} bytes is over the {MAX_ENVELOPE_BYTES}-byte limit of a signed statement",
                bytes.len()
            )));
        }
        serde_json::from_slice(bytes)
            .map_err(|e| TrustError::Envelope(format!("not a DSSE envelope: {e}")))
    }

    /// The bytes written to disk (pretty JSON; the digest is of these bytes).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).expect("an envelope serializes");
        out.push(b'\n');
        out
    }

    /// The payload, decoded, and the ids of the keys among `keys` whose
    /// signatures verify over it. Nothing is returned for a wrong payload type.
    pub fn verified_by(
        &self,
        payload_type: &str,
        keys: &[PublicKey],
    ) -> Result<(Vec<u8>, Vec<KeyId>), TrustError> {
        if self.payload_type != payload_type {
            return Err(TrustError::Envelope(format!(
                "payload type `{}` where `{payload_type}` was expected",
                self.payload_type
            )));
        }
        let payload = STANDARD
            .decode(&self.payload)
            .map_err(|_| TrustError::Envelope("the payload is not base64".into()))?;
        let message = pae(payload_type, &payload);
        let mut signers = Vec::new();
        for sig in &self.signatures {
            let Ok(bytes) = STANDARD.decode(&sig.sig) else {
                continue;
            };
            for key in keys {
                if key.verify(&message, &bytes) && !signers.contains(&key.id()) {
                    signers.push(key.id());
                }
            }
        }
        Ok((payload, signers))
    }

    /// The key ids the envelope claims, for messages about unknown signers.
    pub fn claimed_keys(&self) -> Vec<String> {
        self.signatures.iter().map(|s| s.keyid.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_for_its_key_type_and_payload() {
        let key = PrivateKey::generate();
        let other = PrivateKey::generate();
        let env = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, b"{}", &key);
        let back = Envelope::parse(&env.to_bytes()).unwrap();
        let (payload, signers) = back
            .verified_by(IN_TOTO_PAYLOAD_TYPE, &[other.public(), key.public()])
            .unwrap();
        assert_eq!(payload, b"{}");
        assert_eq!(signers, vec![key.public().id()]);
        let (_, none) = back
            .verified_by(IN_TOTO_PAYLOAD_TYPE, &[other.public()])
            .unwrap();
        assert!(none.is_empty());
        assert!(back.verified_by("text/plain", &[key.public()]).is_err());
        let mut forged = back.clone();
        forged.payload = STANDARD.encode(b"{\"x\":1}");
        let (_, none) = forged
            .verified_by(IN_TOTO_PAYLOAD_TYPE, &[key.public()])
            .unwrap();
        assert!(none.is_empty(), "a changed payload keeps no signer");
    }

    #[test]
    fn pae_matches_the_dsse_specification_example() {
        // The example of the DSSE v1 protocol document.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }
}
