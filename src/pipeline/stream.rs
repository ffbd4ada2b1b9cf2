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

use crate::llm::sse::{MAX_EVENT_BYTES, event_end};

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
