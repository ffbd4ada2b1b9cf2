//! The streaming body wrapper that calls `OnResponseChunk` per body frame or per SSE
//! event, without buffering more than one incomplete event.

use super::invoke;
use crate::body::{Body, BoxError};
use crate::loader::PluginSet;
use crate::plugin::{ChunkAction, ChunkView, Hook, RequestContext};
use bytes::{Bytes, BytesMut};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use std::collections::VecDeque;
use std::sync::Arc;

/// An SSE event larger than this without a terminator is passed on as a plain chunk.
const MAX_EVENT_BYTES: usize = 1024 * 1024;

struct State {
    inner: Body,
    set: Arc<PluginSet>,
    route: usize,
    hook_state: Arc<RequestContext>,
    request_id: Arc<str>,
    sse: bool,
    pending: BytesMut,
    out: VecDeque<Frame<Bytes>>,
    index: u64,
    done: bool,
}

/// Wraps `inner` so each frame (or each SSE event when `sse`) passes the route's chunk hooks.
pub fn chunk_hooks(
    inner: Body,
    set: Arc<PluginSet>,
    route: usize,
    hook_state: Arc<RequestContext>,
    request_id: Arc<str>,
    sse: bool,
) -> Body {
    let state = State {
        inner,
        set,
        route,
        hook_state,
        request_id,
        sse,
        pending: BytesMut::new(),
        out: VecDeque::new(),
        index: 0,
        done: false,
    };
    let frames = futures_util::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(frame) = st.out.pop_front() {
                return Some((Ok(frame), st));
            }
            if st.done {
                return None;
            }
            let next = st.inner.frame().await;
            let result = match next {
                None => {
                    st.done = true;
                    let rest = st.pending.split().freeze();
                    if rest.is_empty() {
                        Ok(())
                    } else {
                        st.process(rest).await
                    }
                }
                Some(Err(e)) => Err(e),
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) if st.sse => st.feed_sse(data).await,
                    Ok(data) => st.process(data).await,
                    Err(other) => {
                        st.out.push_back(other);
                        Ok(())
                    }
                },
            };
            if let Err(e) = result {
                st.done = true;
                st.out.clear();
                return Some((Err(e), st));
            }
        }
    });
    StreamBody::new(frames).boxed_unsync()
}

impl State {
    /// Appends SSE bytes and processes every complete event.
    async fn feed_sse(&mut self, data: Bytes) -> Result<(), BoxError> {
        self.pending.extend_from_slice(&data);
        while let Some(end) = event_end(&self.pending) {
            let event = self.pending.split_to(end).freeze();
            self.process(event).await?;
        }
        if self.pending.len() > MAX_EVENT_BYTES {
            let chunk = self.pending.split().freeze();
            self.process(chunk).await?;
        }
        Ok(())
    }

    /// Runs one unit through every chunk hook and queues the result.
    async fn process(&mut self, data: Bytes) -> Result<(), BoxError> {
        let mut current = data;
        let plan = self.set.plan(self.route);
        for instance in &plan.response_chunk {
            let view = ChunkView {
                request_id: &self.request_id,
                index: self.index,
                data: &current,
                sse_event: self.sse,
                context: &self.hook_state,
            };
            let action = invoke(instance, Hook::OnResponseChunk, || {
                instance.plugin.on_response_chunk(&view)
            })
            .await
            .map_err(|e| Box::new(e) as BoxError)?;
            match action {
                None | Some(ChunkAction::Pass) => {}
                Some(ChunkAction::Replace(bytes)) => current = bytes,
                Some(ChunkAction::Drop) => {
                    current = Bytes::new();
                    break;
                }
            }
        }
        self.index += 1;
        if !current.is_empty() {
            self.out.push_back(Frame::data(current));
        }
        Ok(())
    }
}

/// Returns the end offset (including the blank line) of the first complete SSE event.
fn event_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i + 1 < buf.len() {
        match (buf[i], buf[i + 1]) {
            (b'\n', b'\n') | (b'\r', b'\r') => return Some(i + 2),
            (b'\r', b'\n') if buf.get(i + 2..i + 4) == Some(b"\r\n") => return Some(i + 4),
            _ => i += 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::event_end;

    #[test]
    fn finds_event_boundaries() {
        assert_eq!(event_end(b"data: a\n\ndata: b"), Some(9));
        assert_eq!(event_end(b"data: a\r\n\r\nx"), Some(11));
        assert_eq!(event_end(b"data: a\n"), None);
    }
}
