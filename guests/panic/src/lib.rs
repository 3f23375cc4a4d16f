//! Panic: a misbehaving guest for tests.
//! Its only function panics with the message it is given.

wit_bindgen::generate!({
    world: "airlock-guest:panic/panic",
    path: ["../../wit", "wit"],
    generate_all,
});

/// The tool: a deliberate panic.
struct Panic;

impl Guest for Panic {
    fn run(message: String) -> String {
        panic!("deliberate panic: {message}")
    }
}

export!(Panic);
