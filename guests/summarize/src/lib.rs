//! Summarize: a guest tool that asks a language model for a summary of a
//! text it is given, or of a page it fetches (GET) through the host. It
//! holds no API key and no socket: `fetch` and `complete` are the host's.

wit_bindgen::generate!({
    world: "airlock-guest:summarize/summarize",
    path: ["../../wit", "wit"],
    generate_all,
});
airlock_guest::verb_error!(airlock::verbs::types::Error);

use airlock::verbs::complete::{self, Message, Options, Role};
use airlock::verbs::fetch::{self, Request};
use airlock::verbs::log::{self, Level};

/// The tool: read, then ask.
struct Summarize;

impl Guest for Summarize {
    fn summarize(
        text: Option<String>,
        url: Option<String>,
        sentences: u32,
    ) -> Result<String, String> {
        if sentences == 0 {
            return Err("sentences must be at least 1".to_string());
        }
        let text = match (text, url) {
            (Some(text), None) => text,
            (None, Some(url)) => page_text(&url)?,
            (Some(_), Some(_)) => return Err("give either text or url, not both".to_string()),
            (None, None) => return Err("give the text to summarize or a url to read".to_string()),
        };
        let messages = [
            Message {
                role: Role::System,
                content: match sentences {
                    1 => "Summarize in 1 sentence.".to_string(),
                    n => format!("Summarize in {n} sentences."),
                },
            },
            Message {
                role: Role::User,
                content: text,
            },
        ];
        // No model: the grant's first one answers.
        let options = Options {
            model: None,
            max_tokens: None,
            temperature: None,
            stop: Vec::new(),
        };
        let completion = complete::chat(&messages, &options)
            .map_err(|e| airlock_guest::describe("complete", &e))?;
        let _ = log::emit(
            Level::Info,
            &format!(
                "{} summarized {} bytes in {} tokens",
                completion.model,
                messages[1].content.len(),
                completion.completion_tokens
            ),
        );
        Ok(completion.text)
    }
}

/// The body of `url` (GET) as text: the text outside tags when the server
/// says it is HTML, else the body itself (invalid UTF-8 replaced).
fn page_text(url: &str) -> Result<String, String> {
    let request = Request {
        method: "GET".to_string(),
        url: url.to_string(),
        headers: Vec::new(),
        body: None,
    };
    let response = fetch::send(&request).map_err(|e| airlock_guest::describe("fetch", &e))?;
    let _ = log::emit(
        Level::Info,
        &format!("fetched {} bytes from {url}", response.body.len()),
    );
    let body = String::from_utf8_lossy(&response.body).into_owned();
    let html = response
        .headers
        .iter()
        .any(|h| h.name.eq_ignore_ascii_case("content-type") && h.value.contains("html"));
    Ok(if html { strip_tags(&body) } else { body })
}

/// The text outside `<...>` tags, whitespace runs collapsed to one space.
fn strip_tags(html: &str) -> String {
    let mut text = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => {
                in_tag = true;
                text.push(' ');
            }
            '>' if in_tag => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

export!(Summarize);
