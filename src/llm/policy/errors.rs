//! The policy's refusals in the OpenAI error shape
//! (`{"error":{"message","type","param","code"}}`), which the OpenAI and Anthropic SDKs
//! surface as typed exceptions.

use crate::plugin::{Decision, ImmediateResponse};
use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};

/// An OpenAI-style error response.
pub(super) fn openai_error(
    status: StatusCode,
    kind: &str,
    code: &str,
    param: Option<&str>,
    message: &str,
) -> Decision {
    let body = serde_json::json!({ "error": { "message": message, "type": kind, "param": param, "code": code } });
    Decision::Respond(ImmediateResponse {
        status,
        headers: vec![(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body: Bytes::from(body.to_string()),
    })
}
