//! The OpenAI-compatible chat-completions wire format
//! (`POST {base_url}/chat/completions`), spoken by OpenAI, Ollama, vLLM,
//! llama.cpp and most gateways. Only the fields the verb uses are modelled;
//! unknown response fields are ignored.

use airlock_core::bindings::airlock::verbs::complete::{FinishReason, Role};
use serde::{Deserialize, Serialize};

use crate::provider::{ChatReply, ChatRequest};

/// The request body.
#[derive(Debug, Serialize)]
struct Request<'a> {
    model: &'a str,
    messages: Vec<WireMessage<'a>>,
    max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop: &'a [String],
}

#[derive(Debug, Serialize)]
struct WireMessage<'a> {
    role: &'static str,
    content: &'a str,
}

/// The response body (non-streaming).
#[derive(Debug, Deserialize)]
struct Response {
    #[serde(default)]
    model: Option<String>,
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Debug, Deserialize)]
struct Choice {
    #[serde(default)]
    message: Option<ChoiceMessage>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ChoiceMessage {
    #[serde(default)]
    content: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Usage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
}

/// The JSON body for `req`.
pub(crate) fn request_body(req: &ChatRequest<'_>) -> Result<Vec<u8>, String> {
    let body = Request {
        model: req.model,
        messages: req
            .messages
            .iter()
            .map(|m| WireMessage {
                role: match m.role {
                    Role::System => "system",
                    Role::User => "user",
                    Role::Assistant => "assistant",
                },
                content: &m.content,
            })
            .collect(),
        max_tokens: req.max_tokens,
        temperature: req.temperature,
        stop: req.stop,
    };
    serde_json::to_vec(&body).map_err(|e| e.to_string())
}

/// The answer in a success body; the error says what did not parse.
pub(crate) fn parse_response(body: &[u8]) -> Result<ChatReply, String> {
    let r: Response = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let choice = r.choices.into_iter().next().ok_or("no choices")?;
    let usage = r.usage.map(|u| (u.prompt_tokens, u.completion_tokens));
    Ok(ChatReply {
        text: choice.message.and_then(|m| m.content).unwrap_or_default(),
        model: r.model,
        finish_reason: finish_reason(choice.finish_reason.as_deref()),
        usage: match usage {
            Some((Some(p), Some(c))) => Some((p, c)),
            _ => None,
        },
    })
}

fn finish_reason(reason: Option<&str>) -> FinishReason {
    match reason {
        Some("stop") => FinishReason::Stop,
        Some("length") => FinishReason::Length,
        Some("content_filter") => FinishReason::ContentFilter,
        _ => FinishReason::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_core::bindings::airlock::verbs::complete::Message;

    #[test]
    fn the_request_has_the_protocol_shape() {
        let messages = vec![
            Message {
                role: Role::System,
                content: "be brief".into(),
            },
            Message {
                role: Role::User,
                content: "hi".into(),
            },
        ];
        let req = ChatRequest {
            model: "gpt-test",
            messages: &messages,
            max_tokens: 9,
            temperature: None,
            stop: &[],
        };
        let v: serde_json::Value = serde_json::from_slice(&request_body(&req).unwrap()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "model": "gpt-test",
                "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
                "max_tokens": 9
            })
        );
    }

    #[test]
    fn finish_reasons_and_missing_fields_map() {
        let r = parse_response(
            br#"{"choices":[{"message":{"content":null},"finish_reason":"content_filter"}]}"#,
        )
        .unwrap();
        assert_eq!(
            (r.text.as_str(), r.finish_reason, r.model, r.usage),
            ("", FinishReason::ContentFilter, None, None)
        );
        let r = parse_response(br#"{"choices":[{"message":{"content":"x"},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":1,"completion_tokens":2}}"#).unwrap();
        assert_eq!(
            (r.finish_reason, r.usage),
            (FinishReason::Other, Some((1, 2)))
        );
        assert_eq!(finish_reason(Some("length")), FinishReason::Length);
        assert_eq!(
            parse_response(br#"{"choices":[]}"#).unwrap_err(),
            "no choices"
        );
        assert!(parse_response(b"<html>").is_err());
    }
}
