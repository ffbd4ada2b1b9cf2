//! The body wrapper of a cache miss: the answer passes on frame by frame and is stored
//! once its body ended whole.

use super::{Entry, Key, Store};
use crate::body::{Body, BoxError};
use bytes::Bytes;
use http::HeaderValue;
use http_body::Frame;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

/// An answer being passed on and kept; stored when its body ended whole.
pub(super) struct Pending {
    pub(super) store: Arc<Store>,
    pub(super) key: Key,
    pub(super) ttl: Duration,
    pub(super) content_type: Option<HeaderValue>,
    pub(super) frames: Vec<Bytes>,
    pub(super) bytes: u64,
    /// Still collecting; false once stored or given up.
    pub(super) live: bool,
}

impl Pending {
    fn frame(&mut self, frame: &Frame<Bytes>) {
        if !self.live {
            return;
        }
        let Some(data) = frame.data_ref() else {
            // An answer with trailers is not replayed without them: not stored.
            self.give_up("incomplete");
            return;
        };
        self.bytes += data.len() as u64;
        if self.bytes > self.store.max_entry {
            self.give_up("too_large");
            return;
        }
        if !data.is_empty() {
            self.frames.push(data.clone());
        }
    }

    fn give_up(&mut self, reason: &'static str) {
        self.live = false;
        self.frames = Vec::new();
        crate::metrics::llm_cache_skipped(reason);
    }

    fn end(&mut self) {
        if !self.live {
            return;
        }
        self.live = false;
        let entry = Entry {
            content_type: self.content_type.take(),
            frames: std::mem::take(&mut self.frames),
            bytes: self.bytes,
            ttl: self.ttl,
        };
        self.store.insert(self.key, entry);
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        // The client went away before the end: what was kept is not a whole answer.
        if self.live {
            self.give_up("incomplete");
        }
    }
}

pin_project_lite::pin_project! {
    /// The body wrapper that feeds [`Pending`].
    pub(super) struct Capture {
        #[pin]
        pub(super) inner: Body,
        pub(super) pending: Pending,
    }
}

impl http_body::Body for Capture {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        let polled = this.inner.as_mut().poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                this.pending.frame(frame);
                // hyper stops polling a body that says it ended (a whole body does).
                if this.inner.is_end_stream() {
                    this.pending.end();
                }
            }
            Poll::Ready(Some(Err(_))) => this.pending.give_up("incomplete"),
            Poll::Ready(None) => this.pending.end(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
