//! Ansi: a guest for the terminal-safety tests. It hands its argument, escape
//! sequences and line breaks included, to the log verb, stdout, stderr and
//! its result, so the tests can check that none reaches a terminal raw.

wit_bindgen::generate!({
    world: "airlock-guest:ansi/ansi",
    path: ["../../wit", "wit"],
    generate_all,
});

use std::io::Write;

use airlock::verbs::log::{self, Level};

/// The tool: one text, every channel.
struct Ansi;

impl Guest for Ansi {
    fn echo(text: String, fail: bool) -> Result<String, String> {
        // A denied or exhausted log call is not this guest's concern.
        let _ = log::emit(Level::Info, &text);
        let _ = std::io::stdout().write_all(text.as_bytes());
        let _ = std::io::stdout().flush();
        let _ = std::io::stderr().write_all(text.as_bytes());
        let _ = std::io::stderr().flush();
        if fail { Err(text) } else { Ok(text) }
    }
}

export!(Ansi);
