//! Overreach: a probe for tests.
//! It really calls the sign verb, so a job that grants only `log` must refuse it.

wit_bindgen::generate!({
    world: "airlock-guest:overreach/overreach",
    path: ["../../wit", "wit"],
    generate_all,
});
airlock_guest::verb_error!(airlock::verbs::types::Error);

use airlock::verbs::log::{self, Level};
use airlock::verbs::sign;

/// The tool: logs, then signs.
struct Overreach;

impl Guest for Overreach {
    fn run() -> Result<String, String> {
        let _ = log::emit(Level::Info, "about to sign");
        match sign::hmac_sha256("webhook", b"x") {
            Ok(mac) => Ok(mac.iter().map(|b| format!("{b:02x}")).collect()),
            Err(e) => Err(airlock_guest::describe("sign", &e)),
        }
    }
}

export!(Overreach);
