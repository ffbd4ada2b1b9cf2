//! Translated response bodies: an Anthropic SSE stream turned into OpenAI chunks event
//! by event (never more than one incomplete event held), and a whole JSON answer.

use super::Stream;
use crate::body::{Body, BoxError};
use crate::llm::sse::Splitter;
use bytes::Bytes;
use http_body::Frame;
use pin_project_lite::pin_project;
use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

pin_project! {
    struct Translated {
        #[pin]
        inner: Body,
        splitter: Splitter,
        stream: Stream,
        out: VecDeque<Bytes>,
        // Trailers wait until every event before them has been passed on.
        trailers: Option<http::HeaderMap>,
        done: bool,
    }
}

/// Wraps an Anthropic SSE `body` so it reads as an OpenAI `chat.completion.chunk` stream.
pub fn stream_body(body: Body, stream: Stream) -> Body {
    http_body_util::BodyExt::boxed_unsync(Translated {
        inner: body,
        splitter: Splitter::default(),
        stream,
        out: VecDeque::new(),
        trailers: None,
        done: false,
    })
}

impl http_body::Body for Translated {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        loop {
            if let Some(event) = this.out.pop_front() {
                return Poll::Ready(Some(Ok(Frame::data(event))));
            }
            if *this.done {
                return Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(t))));
            }
            let mut produced = Vec::new();
            match this.inner.as_mut().poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => {
                    *this.done = true;
                    finish(this.splitter, this.stream, &mut produced);
                }
                Poll::Ready(Some(Err(e))) => {
                    *this.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        for event in this.splitter.push(&data) {
                            this.stream.event(&event, &mut produced);
                        }
                    }
                    // Trailers end the body: the translated end of the stream goes first.
                    Err(other) => {
                        *this.done = true;
                        finish(this.splitter, this.stream, &mut produced);
                        *this.trailers = other.into_trailers().ok();
                    }
                },
            }
            this.out.extend(produced);
        }
    }
}

/// The end of the upstream stream: the event the splitter still holds, then the
/// translated ending (the usage chunk and `[DONE]`).
fn finish(splitter: &mut Splitter, stream: &mut Stream, produced: &mut Vec<Bytes>) {
    if let Some(rest) = splitter.finish() {
        stream.event(&rest, produced);
    }
    stream.finish(produced);
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
