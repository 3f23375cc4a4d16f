//! The Anthropic Messages wire format (`POST {base_url}/v1/messages`):
//! system messages move to the top-level `system` field, `max_tokens` is
//! required, and the answer is the text blocks of `content` joined.

use airlock_core::bindings::airlock::verbs::complete::{FinishReason, Role};
use serde::{Deserialize, Serialize};

use crate::provider::{ChatReply, ChatRequest};

/// The `anthropic-version` header sent unless the operator configures another.
pub(crate) const VERSION: &str = "2023-06-01";

/// The request body.
#[derive(Debug, Serialize)]
struct Request<'a> {
    model: &'a str,
    max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<String>,
    messages: Vec<WireMessage<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop_sequences: &'a [String],
}

#[derive(Debug, Serialize)]
struct WireMessage<'a> {
    role: &'static str,
    content: &'a str,
}

/// The response body.
#[derive(Debug, Deserialize)]
struct Response {
    #[serde(default)]
    model: Option<String>,
    content: Vec<Block>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Debug, Deserialize)]
struct Block {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Usage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
}

/// The JSON body for `req`; an error means the conversation cannot be sent.
pub(crate) fn request_body(req: &ChatRequest<'_>) -> Result<Vec<u8>, String> {
    let system: Vec<&str> = req
        .messages
        .iter()
        .filter(|m| matches!(m.role, Role::System))
        .map(|m| m.content.as_str())
        .collect();
    let messages: Vec<WireMessage<'_>> = req
        .messages
        .iter()
        .filter_map(|m| {
            let role = match m.role {
                Role::System => return None,
                Role::User => "user",
                Role::Assistant => "assistant",
            };
            Some(WireMessage {
                role,
                content: &m.content,
            })
        })
        .collect();
    if messages.is_empty() {
        return Err("this provider needs at least one user or assistant message".into());
    }
    let body = Request {
        model: req.model,
        max_tokens: req.max_tokens,
        system: (!system.is_empty()).then(|| system.join("\n\n")),
        messages,
        temperature: req.temperature,
        stop_sequences: req.stop,
    };
    serde_json::to_vec(&body).map_err(|e| e.to_string())
}

/// The answer in a success body; the error says what did not parse.
pub(crate) fn parse_response(body: &[u8]) -> Result<ChatReply, String> {
    let r: Response = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let text: String = r
        .content
        .into_iter()
        .filter(|b| b.kind == "text")
        .filter_map(|b| b.text)
        .collect();
    let usage = r.usage.and_then(|u| {
        let prompt = u
            .input_tokens?
            .saturating_add(u.cache_creation_input_tokens.unwrap_or(0))
            .saturating_add(u.cache_read_input_tokens.unwrap_or(0));
        Some((prompt, u.output_tokens?))
    });
    Ok(ChatReply {
        text,
        model: r.model,
        finish_reason: match r.stop_reason.as_deref() {
            Some("end_turn" | "stop_sequence") => FinishReason::Stop,
            Some("max_tokens") => FinishReason::Length,
            Some("refusal") => FinishReason::ContentFilter,
            _ => FinishReason::Other,
        },
        usage,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_core::bindings::airlock::verbs::complete::Message;

    fn msg(role: Role, content: &str) -> Message {
        Message {
            role,
            content: content.into(),
        }
    }

    #[test]
    fn system_messages_move_to_the_system_field() {
        let messages = vec![
            msg(Role::System, "one"),
            msg(Role::User, "hi"),
            msg(Role::System, "two"),
            msg(Role::Assistant, "hello"),
        ];
        let stop = vec!["END".to_string()];
        let req = ChatRequest {
            model: "claude-test",
            messages: &messages,
            max_tokens: 5,
            temperature: Some(0.5),
            stop: &stop,
        };
        let v: serde_json::Value = serde_json::from_slice(&request_body(&req).unwrap()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "model": "claude-test",
                "max_tokens": 5,
                "system": "one\n\ntwo",
                "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
                "temperature": 0.5,
                "stop_sequences": ["END"]
            })
        );
        let only_system = vec![msg(Role::System, "x")];
        let req = ChatRequest {
            messages: &only_system,
            ..req
        };
        assert!(request_body(&req).is_err());
    }

    #[test]
    fn responses_map_text_reasons_and_usage() {
        let r = parse_response(
            br#"{"model":"m","content":[{"type":"text","text":"a"},{"type":"tool_use","id":"x"},{"type":"text","text":"b"}],
                 "stop_reason":"stop_sequence","usage":{"input_tokens":3,"output_tokens":4,"cache_read_input_tokens":10}}"#,
        )
        .unwrap();
        assert_eq!(r.text, "ab");
        assert_eq!(r.finish_reason, FinishReason::Stop);
        assert_eq!(r.usage, Some((13, 4)));
        let r = parse_response(br#"{"content":[],"stop_reason":"refusal"}"#).unwrap();
        assert_eq!(
            (r.finish_reason, r.usage),
            (FinishReason::ContentFilter, None)
        );
        assert!(parse_response(br#"{"type":"error"}"#).is_err());
    }
}
