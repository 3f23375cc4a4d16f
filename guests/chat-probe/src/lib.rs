//! Chat probe: a guest tool that passes a conversation to the host's
//! `complete` verb and returns the verb's result unchanged, once (`chat`) or
//! several times in one job (`chat-n`, to watch per-job budgets run out).

// The generated export glue takes the `options` record flattened into
// eleven and twelve core parameters.
#![allow(clippy::too_many_arguments)]

wit_bindgen::generate!({
    world: "airlock-guest:chat-probe/chat-probe",
    path: ["../../wit", "wit"],
    generate_all,
});

use airlock::verbs::complete;

/// The tool: a passthrough to `complete.chat`.
struct ChatProbe;

impl Guest for ChatProbe {
    fn chat(messages: Vec<Message>, options: Options) -> Result<Completion, Error> {
        complete::chat(&messages, &options)
    }

    fn chat_n(
        messages: Vec<Message>,
        options: Options,
        times: u32,
    ) -> Vec<Result<Completion, Error>> {
        (0..times)
            .map(|_| complete::chat(&messages, &options))
            .collect()
    }
}

export!(ChatProbe);
