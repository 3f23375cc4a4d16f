//! Sign webhook: a guest tool that signs outgoing webhook bodies.
//! It asks the host to HMAC with the key `webhook`; the key bytes never enter it.

wit_bindgen::generate!({
    world: "airlock-guest:sign-webhook/sign-webhook",
    path: ["../../wit", "wit"],
    generate_all,
});
airlock_guest::verb_error!(airlock::verbs::types::Error);

use airlock::verbs::log::{self, Level};
use airlock::verbs::sign;
use std::io::Read;

/// The key this tool signs with, by name.
const KEY: &str = "webhook";

/// The tool: sign, verify and describe its own view of the world.
struct SignWebhook;

impl Guest for SignWebhook {
    fn sign(body: String) -> Result<Webhook, String> {
        let mac = sign::hmac_sha256(KEY, body.as_bytes())
            .map_err(|e| airlock_guest::describe("sign", &e))?;
        let _ = log::emit(
            Level::Info,
            &format!("signed {} bytes with key {KEY}", body.len()),
        );
        Ok(Webhook {
            header: format!("sha256={}", hex(&mac)),
            key: KEY.to_string(),
        })
    }

    fn verify(body: String, header: String) -> Result<bool, String> {
        let digits = header.strip_prefix("sha256=").unwrap_or(&header);
        let mac = unhex(digits).ok_or_else(|| format!("not a hex signature: {header:?}"))?;
        sign::hmac_sha256_verify(KEY, body.as_bytes(), &mac)
            .map_err(|e| airlock_guest::describe("sign", &e))
    }

    fn world_view() -> Vec<String> {
        let mut stdin = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut stdin);
        let files = match std::fs::read_dir("/") {
            Ok(entries) => {
                let names: Vec<String> = entries
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect();
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            }
            Err(e) => format!("none (read_dir failed: {e})"),
        };
        let cwd = match std::env::current_dir() {
            Ok(dir) => dir.display().to_string(),
            Err(e) => format!("unknown ({e})"),
        };
        vec![
            format!("environment variables: {}", std::env::vars().count()),
            format!("arguments: {}", std::env::args().count()),
            format!("stdin: {} bytes", stdin.len()),
            format!("files under /: {files}"),
            format!("current directory: {cwd}"),
            format!("the webhook key: only its name, `{KEY}`; its bytes never enter this tool"),
        ]
    }
}

/// Lowercase hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Bytes from hex digits (either case); `None` if `s` is not valid hex.
fn unhex(s: &str) -> Option<Vec<u8>> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let s = s.as_bytes();
    if !s.len().is_multiple_of(2) {
        return None;
    }
    s.chunks(2)
        .map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?))
        .collect()
}

export!(SignWebhook);
