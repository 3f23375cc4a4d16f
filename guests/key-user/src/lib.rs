//! Key user: a wall guest for tests.
//! Calls every `sign` function on host-held keys and reports what came back,
//! so the canary scan sees the guest's memory after each one.

wit_bindgen::generate!({
    world: "airlock-guest:key-user/key-user",
    path: ["../../wit", "wit"],
    generate_all,
});
airlock_guest::verb_error!(airlock::verbs::types::Error);

use airlock::verbs::log::{self, Level};
use airlock::verbs::sign;

/// The tool.
struct KeyUser;

impl Guest for KeyUser {
    fn exercise(hmac_key: String, ed_key: String, data: Vec<u8>) -> Result<Vec<String>, String> {
        let fail =
            |what: &str, e: sign::Error| airlock_guest::describe(&format!("sign {what}"), &e);
        let mac = sign::hmac_sha256(&hmac_key, &data).map_err(|e| fail("hmac-sha256", e))?;
        let mac_ok = sign::hmac_sha256_verify(&hmac_key, &data, &mac)
            .map_err(|e| fail("hmac-sha256-verify", e))?;
        let sig = sign::ed25519_sign(&ed_key, &data).map_err(|e| fail("ed25519-sign", e))?;
        let sig_ok =
            sign::ed25519_verify(&ed_key, &data, &sig).map_err(|e| fail("ed25519-verify", e))?;
        let public =
            sign::ed25519_public_key(&ed_key).map_err(|e| fail("ed25519-public-key", e))?;
        let _ = log::emit(Level::Info, &format!("used keys {hmac_key} and {ed_key}"));
        Ok(vec![
            format!("hmac-sha256 {}", hex(&mac)),
            format!("hmac-sha256-verify {mac_ok}"),
            format!("ed25519-sign {}", hex(&sig)),
            format!("ed25519-verify {sig_ok}"),
            format!("ed25519-public-key {}", hex(&public)),
        ])
    }

    fn hmac_zeros(key: String, mib: u32) -> Result<Vec<u8>, String> {
        let zeros = vec![0u8; mib as usize * 1024 * 1024];
        sign::hmac_sha256(&key, &zeros).map_err(|e| airlock_guest::describe("sign hmac-sha256", &e))
    }

    fn note(message: String) -> Result<(), String> {
        log::emit(Level::Info, &message).map_err(|e| airlock_guest::describe("log", &e))
    }
}

/// Lowercase hex.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

export!(KeyUser);
