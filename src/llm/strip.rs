//! The usage chunk a client did not ask for.
//!
//! `llm_policy` adds `stream_options.include_usage = true` to streaming chat requests
//! that have no `stream_options`, so that the stream reports its tokens. OpenAI then
//! ends the stream with a chunk whose `choices` is empty, which a client that never
//! asked for usage does not expect (`chunk.choices[0]` raises). [`without_usage_chunk`]
//! removes that chunk from what the client receives; the gateway reads usage before it
//! (the tail record sees the stream as the provider sent it).

use crate::body::Body;
use bytes::Bytes;

/// The context value `llm_policy` sets when it asked the provider for usage itself.
pub const USAGE_ADDED: &str = "llm.usage_added";

/// Whether one whole SSE event is OpenAI's usage chunk: `choices` empty, `usage` set.
pub fn is_usage_chunk(event: &[u8]) -> bool {
    // Most events are content deltas (with `"usage":null` when usage was asked for):
    // only a few bytes are looked at before parsing.
    if !super::sse::may_have_usage(event) {
        return false;
    }
    let Some(data) = super::sse::data(event) else {
        return false;
    };
    let Ok(v) = serde_json::from_str::<serde_json::Value>(&data) else {
        return false;
    };
    v.get("choices")
        .and_then(serde_json::Value::as_array)
        .is_some_and(Vec::is_empty)
        && v.get("usage").is_some_and(serde_json::Value::is_object)
}

/// Drops the usage chunk; everything else passes as it is.
struct WithoutUsage;

impl super::sse::Rewrite for WithoutUsage {
    fn event(&mut self, event: Bytes, out: &mut Vec<Bytes>) {
        if !is_usage_chunk(&event) {
            out.push(event);
        }
    }

    /// An unterminated rest is not a whole event: it passes as it is.
    fn rest(&mut self, rest: Bytes, out: &mut Vec<Bytes>) {
        out.push(rest);
    }
}

/// Wraps an SSE `body` so the usage chunk never reaches the client.
pub fn without_usage_chunk(body: Body) -> Body {
    super::sse::rewrite(body, WithoutUsage)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::BoxError;
    use http_body::Frame;
    use http_body_util::BodyExt;

    #[test]
    fn knows_the_usage_chunk() {
        assert!(is_usage_chunk(
            b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1}}\n\n"
        ));
        assert!(!is_usage_chunk(
            b"data: {\"choices\":[{\"delta\":{}}],\"usage\":null}\n\n"
        ));
        assert!(!is_usage_chunk(b"data: [DONE]\n\n"));
    }

    #[tokio::test]
    async fn removes_only_the_usage_chunk_across_frames() {
        let frames = [
            "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\ndata: {\"choi",
            "ces\":[],\"usage\":{\"prompt_tokens\":3}}\n\n",
            "data: [DONE]\n\n",
        ];
        let stream = futures_util::stream::iter(
            frames.map(|f| Ok::<_, BoxError>(Frame::data(Bytes::from(f)))),
        );
        let body = without_usage_chunk(crate::body::boxed(http_body_util::StreamBody::new(stream)));
        let text = body.collect().await.unwrap().to_bytes();
        assert_eq!(
            &text[..],
            b"data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\ndata: [DONE]\n\n"
        );
    }

    #[tokio::test]
    async fn trailers_come_after_the_last_event() {
        let mut trailers = http::HeaderMap::new();
        trailers.insert("x-end", http::HeaderValue::from_static("1"));
        let frames = vec![
            Ok::<_, BoxError>(Frame::data(Bytes::from(
                "data: {\"choices\":[{}]}\n\ndata: tail",
            ))),
            Ok(Frame::trailers(trailers)),
        ];
        let body = without_usage_chunk(crate::body::boxed(http_body_util::StreamBody::new(
            futures_util::stream::iter(frames),
        )));
        let collected = body.collect().await.unwrap();
        assert_eq!(collected.trailers().unwrap()["x-end"], "1");
        assert_eq!(
            &collected.to_bytes()[..],
            b"data: {\"choices\":[{}]}\n\ndata: tail"
        );
    }
}
