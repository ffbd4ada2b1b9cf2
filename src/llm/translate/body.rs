//! Translated response bodies: an Anthropic SSE stream turned into OpenAI chunks event
//! by event (never more than one incomplete event held), and a whole JSON answer.

use super::Stream;
use crate::body::{Body, BoxError};
use bytes::Bytes;

/// Wraps an Anthropic SSE `body` so it reads as an OpenAI `chat.completion.chunk` stream.
pub fn stream_body(body: Body, stream: Stream) -> Body {
    crate::llm::sse::rewrite(body, stream)
}

impl crate::llm::sse::Rewrite for Stream {
    fn event(&mut self, event: Bytes, out: &mut Vec<Bytes>) {
        Stream::event(self, &event, out);
    }

    /// The translated ending: the usage chunk and `[DONE]`.
    fn finish(&mut self, out: &mut Vec<Bytes>) {
        Stream::finish(self, out);
    }
}

/// Reads a whole upstream body of at most `max` bytes.
pub async fn collect(body: Body, max: usize) -> Result<Bytes, BoxError> {
    crate::body::collect_limited(body, max)
        .await
        .map_err(|e| Box::new(std::io::Error::other(e.to_string())) as BoxError)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::BoxError;
    use http_body::Frame;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn translates_a_stream_split_across_frames() {
        let frames = [
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"c\",\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,",
            "\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n",
            "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":2}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
        ];
        let stream = futures_util::stream::iter(
            frames.map(|f| Ok::<_, BoxError>(Frame::data(Bytes::from(f)))),
        );
        let body = crate::body::boxed(http_body_util::StreamBody::new(stream));
        let text = stream_body(body, Stream::new("gpt-x", true))
            .collect()
            .await
            .unwrap()
            .to_bytes();
        let text = String::from_utf8(text.to_vec()).unwrap();
        assert!(text.contains("\"content\":\"Hi\""), "{text}");
        assert!(text.contains("\"finish_reason\":\"stop\""), "{text}");
        assert!(text.contains("\"completion_tokens\":2"), "{text}");
        assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    }
}
