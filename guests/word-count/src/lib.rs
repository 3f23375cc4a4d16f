//! Word count: a guest tool that needs no verb.
//! Counts words, lines, characters and bytes of a text, like `wc`.

wit_bindgen::generate!({
    world: "airlock-guest:word-count/word-count",
    path: ["../../wit", "wit"],
    generate_all,
});

/// The tool: one pure function.
struct WordCount;

impl Guest for WordCount {
    fn count(text: String) -> Counts {
        let n = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        Counts {
            words: n(text.split_whitespace().count()),
            lines: n(text.lines().count()),
            chars: n(text.chars().count()),
            bytes: n(text.len()),
        }
    }
}

export!(WordCount);
