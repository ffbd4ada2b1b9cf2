//! The response body wrapper that measures what was sent and, when the body ends (or is
//! dropped because the client went away), queues the completed exchange.

use super::collect::{Collector, Job};
use crate::body::{Body, BoxError};
use crate::loader::PluginSet;
use crate::plugin::{CompletedExchange, RequestContext, RequestSummary};
use bytes::{Bytes, BytesMut};
use http::StatusCode;
use http_body::{Frame, SizeHint};
use pin_project_lite::pin_project;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::time::Instant;

/// Everything known about an exchange before its response body is sent.
pub struct TailSeed {
    /// Snapshot the request used.
    pub set: Arc<PluginSet>,
    /// Route index.
    pub route: usize,
    /// The request.
    pub summary: RequestSummary,
    /// Context at the end of the response stage.
    pub ctx: RequestContext,
    /// Arrival time.
    pub started: Instant,
    /// Arrival time, Unix milliseconds.
    pub started_at_ms: i64,
    /// Request body bytes, when known.
    pub request_bytes: u64,
    /// Queue.
    pub collector: Collector,
    /// Bytes to accumulate for stream-complete hooks and usage (0 = none).
    pub accumulate: usize,
    /// The LLM provider of the upstream, when token usage should be extracted.
    pub provider: Option<crate::llm::Provider>,
}

struct TailState {
    seed: Option<TailSeed>,
    status: StatusCode,
    bytes: u64,
    chunks: u64,
    acc: BytesMut,
    truncated: bool,
}

impl TailState {
    fn record(&mut self, data: &Bytes) {
        self.bytes += data.len() as u64;
        self.chunks += 1;
        let limit = self.seed.as_ref().map_or(0, |s| s.accumulate);
        let room = limit.saturating_sub(self.acc.len());
        if data.len() > room {
            self.truncated |= limit > 0;
        }
        self.acc.extend_from_slice(&data[..data.len().min(room)]);
    }

    fn finish(&mut self) {
        let Some(seed) = self.seed.take() else { return };
        let exchange = CompletedExchange {
            request: seed.summary,
            ctx: seed.ctx,
            status: self.status,
            duration: seed.started.elapsed(),
            request_bytes: seed.request_bytes,
            response_bytes: self.bytes,
            chunks: self.chunks,
            accumulated: self.acc.split().freeze(),
            truncated: self.truncated,
            started_at_ms: seed.started_at_ms,
            usage: None,
        };
        seed.collector.submit(Job {
            set: seed.set,
            route: seed.route,
            exchange,
            provider: seed.provider,
        });
    }
}

impl Drop for TailState {
    fn drop(&mut self) {
        self.finish();
    }
}

pin_project! {
    /// Body wrapper feeding [`TailState`].
    pub struct TailBody {
        #[pin]
        inner: Body,
        state: TailState,
    }
}

impl TailBody {
    /// Wraps a final response body with status `status`.
    pub fn wrap(inner: Body, status: StatusCode, seed: TailSeed) -> Body {
        let body = TailBody {
            inner,
            state: TailState {
                seed: Some(seed),
                status,
                bytes: 0,
                chunks: 0,
                acc: BytesMut::new(),
                truncated: false,
            },
        };
        http_body_util::BodyExt::boxed_unsync(body)
    }
}

impl http_body::Body for TailBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.state.record(data);
                }
            }
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => this.state.finish(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
