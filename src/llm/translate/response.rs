//! Anthropic message JSON -> OpenAI `chat.completion` JSON.

use super::{TranslateError, Usage, finish_reason, now};
use bytes::Bytes;
use serde_json::{Value, json};

/// Anthropic message JSON -> OpenAI `chat.completion` JSON bytes; `model` is the name
/// reported to the client.
pub fn response(message: &[u8], model: &str) -> Result<Bytes, TranslateError> {
    let m: Value =
        serde_json::from_slice(message).map_err(|e| TranslateError::Upstream(e.to_string()))?;
    if m.get("type").and_then(Value::as_str) != Some("message") {
        return Err(TranslateError::Upstream("not a message object".into()));
    }
    let id = m.get("id").and_then(Value::as_str).unwrap_or_default();
    let blocks = m
        .get("content")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut text = String::new();
    let mut calls = Vec::new();
    for b in blocks {
        match b.get("type").and_then(Value::as_str) {
            Some("text") => {
                text.push_str(b.get("text").and_then(Value::as_str).unwrap_or_default())
            }
            Some("tool_use") => {
                let input = b.get("input").cloned().unwrap_or_else(|| json!({}));
                calls.push(json!({
                    "id": b.get("id").cloned().unwrap_or(Value::Null),
                    "type": "function",
                    "function": {
                        "name": b.get("name").cloned().unwrap_or(Value::Null),
                        "arguments": input.to_string(),
                    },
                }));
            }
            // Thinking and server-tool blocks have no chat/completions equivalent.
            _ => {}
        }
    }
    let mut message = json!({
        "role": "assistant",
        "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { json!(text) },
        "refusal": null,
    });
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    let mut usage = Usage::default();
    if let Some(u) = m.get("usage") {
        usage.update(u);
    }
    let out = json!({
        "id": format!("chatcmpl-{id}"),
        "object": "chat.completion",
        "created": now(),
        "model": model,
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": finish_reason(m.get("stop_reason").and_then(Value::as_str)),
        }],
        "usage": usage.to_openai(),
    });
    Ok(Bytes::from(out.to_string()))
}
