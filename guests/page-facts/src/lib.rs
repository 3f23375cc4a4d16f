//! Page facts: a guest tool that GETs one page through the host's `fetch`
//! verb and reports its `<title>`, every `href` value, the number of words
//! outside tags and the status. The HTML is read with plain string
//! scanning: no parser crate, no entity decoding, no script awareness.

wit_bindgen::generate!({
    world: "airlock-guest:page-facts/page-facts",
    path: ["../../wit", "wit"],
    generate_all,
});
airlock_guest::verb_error!(airlock::verbs::types::Error);

use airlock::verbs::fetch::{self, Request};
use airlock::verbs::log::{self, Level};

/// The tool: fetch, then scan.
struct PageFacts;

impl Guest for PageFacts {
    fn facts(url: String) -> Result<Facts, String> {
        let request = Request {
            method: "GET".to_string(),
            url: url.clone(),
            headers: Vec::new(),
            body: None,
        };
        let response = fetch::send(&request).map_err(|e| airlock_guest::describe("fetch", &e))?;
        let _ = log::emit(
            Level::Info,
            &format!("fetched {} bytes from {url}", response.body.len()),
        );
        let html = String::from_utf8_lossy(&response.body);
        Ok(Facts {
            title: title(&html),
            links: links(&html),
            words: words(&html),
            status: response.status,
        })
    }
}

/// The trimmed text between the first `<title ...>` and the next `</title`
/// (tag names in any case); `None` without a title element.
fn title(html: &str) -> Option<String> {
    // ASCII lowering keeps every byte offset, so positions found in `lower`
    // index `html` too.
    let lower = html.to_ascii_lowercase();
    let open = find_tag(&lower, "<title", 0)?;
    let start = open + lower[open..].find('>')? + 1;
    let end = start + lower[start..].find("</title")?;
    let text = html[start..end]
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    Some(text)
}

/// Where a tag named by `prefix` (`<title`) starts at or after `from`: the
/// prefix followed by `>`, whitespace or `/`, so `<titles>` does not count.
fn find_tag(lower: &str, prefix: &str, from: usize) -> Option<usize> {
    let mut at = from;
    loop {
        let i = at + lower[at..].find(prefix)?;
        let next = lower[i + prefix.len()..].chars().next();
        if matches!(next, Some(c) if c == '>' || c == '/' || c.is_ascii_whitespace()) {
            return Some(i);
        }
        at = i + prefix.len();
    }
}

/// Every `href="..."` (or `href='...'`) value, in order, as written.
fn links(html: &str) -> Vec<String> {
    let lower = html.to_ascii_lowercase();
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(i) = lower[at..].find("href") {
        let mut j = at + i + "href".len();
        at = j;
        // `href` must start an attribute name: preceded by whitespace.
        let before = lower[..j - "href".len()].chars().next_back();
        if !matches!(before, Some(c) if c.is_ascii_whitespace()) {
            continue;
        }
        j += lower[j..].len() - lower[j..].trim_start().len();
        let Some(rest) = lower[j..].strip_prefix('=') else {
            continue;
        };
        j += 1 + rest.len() - rest.trim_start().len();
        let Some(quote) = html[j..].chars().next().filter(|c| *c == '"' || *c == '\'') else {
            continue;
        };
        let start = j + 1;
        let Some(len) = html[start..].find(quote) else {
            break;
        };
        out.push(html[start..start + len].to_string());
        at = start + len + 1;
    }
    out
}

/// Whitespace-separated words in the text outside `<...>` tags (a tag
/// boundary also separates words).
fn words(html: &str) -> u32 {
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
    u32::try_from(text.split_whitespace().count()).unwrap_or(u32::MAX)
}

export!(PageFacts);
