//! Token usage extracted from provider responses, JSON or SSE, for OpenAI-compatible APIs
//! (chat/completions, responses, embeddings) and Anthropic messages.

pub use crate::plugin::TokenUsage;
use serde_json::Value;

fn n(v: &Value, key: &str) -> Option<u64> {
    v.get(key).and_then(Value::as_u64)
}

/// Folds one JSON object (a whole response or one SSE event) into `usage`.
fn absorb(usage: &mut TokenUsage, v: &Value) {
    if let Some(m) = v
        .get("model")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
    {
        usage.model = m.to_string();
    }
    // OpenAI chat/completions and embeddings: usage.{prompt,completion}_tokens.
    // OpenAI responses: usage.{input,output}_tokens, also inside response.completed events.
    // Anthropic: usage.{input,output}_tokens; message_start carries message.usage.
    for holder in [Some(v), v.get("response"), v.get("message")]
        .into_iter()
        .flatten()
    {
        if let Some(m) = holder
            .get("model")
            .and_then(Value::as_str)
            .filter(|m| !m.is_empty())
        {
            usage.model = m.to_string();
        }
        if let Some(u) = holder.get("usage").filter(|u| u.is_object()) {
            if let Some(p) = n(u, "prompt_tokens").or_else(|| n(u, "input_tokens")) {
                usage.prompt_tokens = usage.prompt_tokens.max(p);
            }
            if let Some(c) = n(u, "completion_tokens").or_else(|| n(u, "output_tokens")) {
                usage.completion_tokens = usage.completion_tokens.max(c);
            }
        }
    }
}

/// Parses a response body (JSON, or an SSE stream of JSON events) for usage.
pub fn parse(body: &[u8]) -> Option<TokenUsage> {
    let text = std::str::from_utf8(body).ok()?;
    let mut usage = TokenUsage::default();
    let mut found = false;
    if let Ok(v) = serde_json::from_str::<Value>(text) {
        absorb(&mut usage, &v);
        found = v.get("usage").is_some();
    } else {
        for line in text.lines() {
            let Some(data) = line.strip_prefix("data:").map(str::trim) else {
                continue;
            };
            if data == "[DONE]" || data.is_empty() {
                continue;
            }
            if let Ok(v) = serde_json::from_str::<Value>(data) {
                found |= v.get("usage").is_some()
                    || v.get("message").and_then(|m| m.get("usage")).is_some()
                    || v.get("response").and_then(|m| m.get("usage")).is_some();
                absorb(&mut usage, &v);
            }
        }
    }
    found.then_some(usage)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_json_and_stream() {
        let json = br#"{"model":"gpt-4o-mini","usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17}}"#;
        assert_eq!(
            parse(json),
            Some(TokenUsage {
                model: "gpt-4o-mini".into(),
                prompt_tokens: 12,
                completion_tokens: 5,
                ..TokenUsage::default()
            })
        );
        let sse = b"data: {\"model\":\"m\",\"choices\":[]}\n\ndata: {\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":9}}\n\ndata: [DONE]\n\n";
        assert_eq!(parse(sse).map(|u| u.total()), Some(12));
    }

    #[test]
    fn anthropic_stream() {
        let sse = b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"claude-x\",\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":15}}\n\n";
        assert_eq!(
            parse(sse),
            Some(TokenUsage {
                model: "claude-x".into(),
                prompt_tokens: 25,
                completion_tokens: 15,
                ..TokenUsage::default()
            })
        );
        assert_eq!(parse(b"not json"), None);
    }
}
