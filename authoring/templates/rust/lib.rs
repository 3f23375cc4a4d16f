//! `{{name}}`: an airlock tool. `greet` is the example export: rename it and
//! change its signature in wit/world.wit (whose doc comments agents read),
//! then here. Return records, not JSON strings: airlock turns a record into a
//! JSON object with a schema; a string of JSON reaches the agent escaped.

wit_bindgen::generate!({
    world: "{{name}}",
    path: "wit",
    generate_all,
});

{{#complete}}
use airlock::verbs::complete::{self, Message, Options, Role};
{{/complete}}
{{#fetch}}
use airlock::verbs::fetch::{self, Request};
{{/fetch}}
{{#kv}}
use airlock::verbs::kv;
{{/kv}}
{{#log}}
use airlock::verbs::log::{self, Level};
{{/log}}
{{#sign}}
use airlock::verbs::sign;
{{/sign}}
{{#sql}}
use airlock::verbs::sql::{self, Value};
{{/sql}}
use airlock::verbs::types::Error;

{{#sign}}
/// The host-held key this tool signs with, by name (granted in toolkit.toml).
const KEY: &str = "{{name}}";

{{/sign}}
{{#fetch}}
/// The page this tool fetches. EDIT it together with the `allow` list of the
/// fetch grant in toolkit.toml: any other URL is refused.
const URL: &str = "{{url}}";

{{/fetch}}
/// The tool.
struct Tool;

impl Guest for Tool {
    fn greet(name: String) -> Result<Greeting, String> {
        let message = format!("hello, {name}");
{{#log}}
        log::emit(Level::Info, &format!("greeting {name}")).map_err(|e| describe("log", e))?;
{{/log}}
{{#sign}}
        let mac = sign::hmac_sha256(KEY, message.as_bytes()).map_err(|e| describe("sign", e))?;
{{/sign}}
{{#fetch}}
        let request = Request {
            method: "GET".to_string(),
            url: URL.to_string(),
            headers: Vec::new(),
            body: None,
        };
        let page = fetch::send(&request).map_err(|e| describe("fetch", e))?;
{{/fetch}}
{{#complete}}
        let messages = [Message {
            role: Role::User,
            content: format!("Say hello to {name} in one short sentence."),
        }];
        let options = Options {
            model: None, // the grant's first model
            max_tokens: Some(64),
            temperature: None,
            stop: Vec::new(),
        };
        let completion = complete::chat(&messages, &options).map_err(|e| describe("complete", e))?;
{{/complete}}
{{#kv}}
        // A counter per name in the host's kv store (4 bytes, little-endian).
        let counter = format!("greeted/{name}");
        let times = kv::get(&counter)
            .map_err(|e| describe("kv", e))?
            .and_then(|v| <[u8; 4]>::try_from(v.as_slice()).ok())
            .map_or(0, u32::from_le_bytes);
        kv::set(&counter, &(times + 1).to_le_bytes()).map_err(|e| describe("kv", e))?;
{{/kv}}
{{#sql}}
        let rows = sql::query(
            "SELECT count(*) FROM greetings WHERE name = ?",
            &[Value::Text(name.clone())],
        )
        .map_err(|e| describe("sql", e))?;
        let greeted = match rows.rows.first().and_then(|r| r.first()) {
            Some(Value::Integer(n)) => *n,
            _ => 0,
        };
{{/sql}}
        Ok(Greeting {
            message,
{{#sign}}
            signature: mac.iter().map(|b| format!("{b:02x}")).collect(),
{{/sign}}
{{#fetch}}
            status: page.status,
{{/fetch}}
{{#complete}}
            reply: completion.text,
{{/complete}}
{{#kv}}
            times,
{{/kv}}
{{#sql}}
            greeted,
{{/sql}}
        })
    }
}

/// A verb's error as a sentence for the agent (the generated `Display` would
/// print Rust's `Debug` form).
fn describe(verb: &str, error: Error) -> String {
    match error {
        Error::Denied(why) => format!("{verb} denied: {why}"),
        Error::Exhausted(quota) => format!("{verb} exhausted its {quota} quota for this job"),
        Error::Invalid(why) => format!("{verb} refused an invalid request: {why}"),
        Error::Upstream(why) => format!("{verb} failed upstream: {why}"),
        Error::Timeout => format!("{verb} timed out: the job's deadline passed"),
    }
}

export!(Tool);
