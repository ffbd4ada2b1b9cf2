//! OpenAI chat/completions ↔ Anthropic messages translation (#18): requests, JSON
//! responses, SSE streams event by event, and errors.
//!
//! The functions are pure: they take parsed or raw bodies and return new bodies, so
//! the proxy decides where and when to call them.

mod body;
mod request;
mod response;
mod stream;

pub use body::{collect, stream_body};
pub use request::request;
pub use response::response;
pub use stream::Stream;

use bytes::Bytes;
use serde_json::{Value, json};

/// Why a body could not be translated.
#[derive(Debug, thiserror::Error)]
pub enum TranslateError {
    /// The client's request uses something that has no Anthropic equivalent, or is malformed;
    /// `param` names the offending field, as OpenAI's error body does.
    #[error("{message}")]
    Invalid {
        param: Option<String>,
        message: String,
    },
    /// The upstream answer is not a valid Anthropic message.
    #[error("invalid upstream message: {0}")]
    Upstream(String),
}

/// Builds an [`TranslateError::Invalid`] for field `param`.
pub(crate) fn invalid(param: impl Into<String>, message: impl Into<String>) -> TranslateError {
    TranslateError::Invalid {
        param: Some(param.into()),
        message: message.into(),
    }
}

/// Maps an Anthropic `stop_reason` to an OpenAI `finish_reason` (null while unknown).
pub(crate) fn finish_reason(stop: Option<&str>) -> Value {
    match stop {
        None => Value::Null,
        Some("max_tokens") => json!("length"),
        Some("tool_use") => json!("tool_calls"),
        Some("refusal") => json!("content_filter"),
        // end_turn, stop_sequence, pause_turn and anything newer end the turn normally.
        Some(_) => json!("stop"),
    }
}

/// The current time in Unix seconds, for `created`.
pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Token counts of an Anthropic `usage` object, accumulated across events.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Usage {
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_creation: u64,
}

impl Usage {
    /// Overwrites the counts present in `usage` (Anthropic counts are cumulative).
    pub fn update(&mut self, usage: &Value) {
        let n = |k: &str| usage.get(k).and_then(Value::as_u64);
        if let Some(v) = n("input_tokens") {
            self.input = v;
        }
        if let Some(v) = n("output_tokens") {
            self.output = v;
        }
        if let Some(v) = n("cache_read_input_tokens") {
            self.cache_read = v;
        }
        if let Some(v) = n("cache_creation_input_tokens") {
            self.cache_creation = v;
        }
    }

    /// Prompt tokens as OpenAI counts them: every input token, cached or not.
    pub fn prompt(&self) -> u64 {
        self.input + self.cache_read + self.cache_creation
    }

    /// The OpenAI `usage` object.
    pub fn to_openai(self) -> Value {
        let prompt = self.prompt();
        let mut u = json!({
            "prompt_tokens": prompt,
            "completion_tokens": self.output,
            "total_tokens": prompt + self.output,
        });
        if self.cache_read > 0 {
            u["prompt_tokens_details"] = json!({ "cached_tokens": self.cache_read });
        }
        u
    }
}

/// The OpenAI error object for an Anthropic `error` object (`{"type","message"}`).
pub(crate) fn openai_error(status: Option<http::StatusCode>, error: &Value) -> Value {
    let kind = error.get("type").and_then(Value::as_str);
    let message = error
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("upstream error");
    let openai_type = match (kind, status.map(|s| s.as_u16())) {
        (Some("rate_limit_error"), _) | (_, Some(429)) => "rate_limit_error",
        (Some("authentication_error"), _) | (_, Some(401)) => "authentication_error",
        (Some("permission_error"), _) | (_, Some(403)) => "permission_error",
        (Some("api_error" | "overloaded_error"), _) => "server_error",
        (_, Some(s)) if s >= 500 => "server_error",
        (None, None) => "server_error",
        _ => "invalid_request_error",
    };
    json!({ "error": {
        "message": message,
        "type": openai_type,
        "param": null,
        "code": kind,
    }})
}

/// Anthropic error body (`{"type":"error","error":{"type","message"}}`) -> OpenAI error
/// body `{"error":{"message","type","param":null,"code"}}`; a body that is not an
/// Anthropic error gets a generic message naming the status.
pub fn error(status: http::StatusCode, body: &[u8]) -> Bytes {
    let parsed = serde_json::from_slice::<Value>(body).ok();
    let inner = parsed
        .as_ref()
        .and_then(|v| v.get("error"))
        .filter(|e| e.is_object());
    let value = match inner {
        Some(e) => openai_error(Some(status), e),
        None => openai_error(
            Some(status),
            &json!({ "message": format!("upstream returned {status}") }),
        ),
    };
    Bytes::from(value.to_string())
}

#[cfg(test)]
mod tests;
