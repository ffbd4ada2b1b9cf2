//! The tail record of an exchange, and the response body wrapper that measures what
//! was sent and, when the body ends (or is dropped because the client went away),
//! queues the record for the stream-complete and collect hooks.

use super::collect::{Collector, Job};
use super::ctx::RequestCtx;
use crate::body::{Body, BoxError};
use crate::llm::sse::Splitter;
use crate::llm::usage::Meter;
use crate::plugin::CompletedExchange;
use bytes::{Bytes, BytesMut};
use http::Response;
use http_body::{Frame, SizeHint};
use pin_project_lite::pin_project;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

/// Builds the tail record from `ctx` as the request left it, and wraps the final
/// response body so that the record is queued when the body ends.
///
/// This happens once per request, whichever way the request ended, and only when the
/// route's plan has stream-complete or collect hooks or its upstream is an LLM provider
/// (the collect worker reads token usage from the response); otherwise `response` is
/// returned as it is. A request that ended before the request stages has no summary
/// and so no record. Up to `accumulate_bytes` of the body are kept for stream-complete
/// hooks and usage.
pub fn attach(
    response: Response<Body>,
    ctx: RequestCtx<'_>,
    collector: &Collector,
    accumulate_bytes: usize,
) -> Response<Body> {
    // The bare path never builds a summary, so it leaves after this one check.
    if ctx.summary.is_none() {
        return response;
    }
    let provider = ctx.provider();
    let Some(plan) = ctx.plan() else {
        return response;
    };
    if !plan.has_tail() && provider.is_none() {
        return response;
    }
    let streamed = crate::headers::is_event_stream(response.headers());
    // Usage of an LLM stream is read event by event as it passes; a whole JSON answer's
    // was read on the request path (`ctx.usage`). Bytes are kept only for
    // stream-complete hooks, or for an LLM answer neither of those reads.
    let meter = (provider.is_some() && streamed && ctx.usage.is_none())
        .then(|| Box::new((Splitter::default(), Meter::default())));
    let unread = provider.is_some() && meter.is_none() && ctx.usage.is_none();
    let limit = if plan.stream_complete.is_empty() && !unread {
        0
    } else {
        accumulate_bytes
    };
    // Without tail hooks the exchange is accounted where its body ends: no queue hop.
    let inline = !plan.has_tail();
    let (Some(set), Some(route), Some(summary)) = (ctx.plugins, ctx.route, ctx.summary) else {
        return response;
    };
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let exchange = CompletedExchange {
        request: summary,
        context: ctx.hook_state,
        status: response.status(),
        // The end of the body fills in the duration, the counts and the bytes kept.
        duration: Duration::ZERO,
        request_bytes: ctx.request_bytes,
        response_bytes: 0,
        chunks: 0,
        accumulated: Bytes::new(),
        truncated: false,
        started_at_ms: now_ms - ctx.start.elapsed().as_millis() as i64,
        usage: ctx.usage,
        cost_usd: None,
        cache_hit: ctx.cache_hit,
        first_byte: None,
        streamed,
    };
    let state = TailState {
        job: Some(Job {
            set,
            route: route.index,
            exchange,
            provider,
        }),
        collector: collector.clone(),
        started: ctx.start,
        limit,
        acc: BytesMut::new(),
        meter,
        inline,
    };
    response.map(|inner| http_body_util::BodyExt::boxed_unsync(TailBody { inner, state }))
}

/// The record while the body is sent, and what finishing and queueing it needs.
struct TailState {
    /// The record; taken when it is queued, so it is queued at most once.
    job: Option<Job>,
    collector: Collector,
    /// Arrival time, for the exchange's duration.
    started: Instant,
    /// Bytes of the body to keep for stream-complete hooks and usage (0 keeps none).
    limit: usize,
    acc: BytesMut,
    /// Reads the usage of an LLM stream as it passes.
    meter: Option<Box<(Splitter, Meter)>>,
    /// No tail hook needs the record: account it here instead of queueing it.
    inline: bool,
}

impl TailState {
    fn record(&mut self, data: &Bytes) {
        let Some(job) = self.job.as_mut() else { return };
        let exchange = &mut job.exchange;
        if exchange.first_byte.is_none() && !data.is_empty() {
            exchange.first_byte = Some(self.started.elapsed());
        }
        exchange.response_bytes += data.len() as u64;
        exchange.chunks += 1;
        let room = self.limit.saturating_sub(self.acc.len());
        if data.len() > room {
            exchange.truncated |= self.limit > 0;
        }
        self.acc.extend_from_slice(&data[..data.len().min(room)]);
        if let Some(meter) = self.meter.as_mut() {
            let (splitter, meter) = &mut **meter;
            splitter.each(data, |event| meter.event(event));
        }
    }

    fn finish(&mut self) {
        let Some(mut job) = self.job.take() else {
            return;
        };
        job.exchange.duration = self.started.elapsed();
        job.exchange.accumulated = self.acc.split().freeze();
        if let Some(meter) = self.meter.take() {
            let (mut splitter, mut meter) = *meter;
            if let Some(rest) = splitter.finish() {
                meter.event(&rest);
            }
            job.exchange.usage = meter.usage();
        }
        match (self.inline, job.provider) {
            (true, Some(provider)) => crate::llm::settle(provider, &mut job.exchange),
            (true, None) => {}
            (false, _) => self.collector.submit(job),
        }
    }
}

impl Drop for TailState {
    fn drop(&mut self) {
        self.finish();
    }
}

pin_project! {
    /// Body wrapper feeding [`TailState`].
    struct TailBody {
        #[pin]
        inner: Body,
        state: TailState,
    }
}

impl http_body::Body for TailBody {
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
                if let Some(data) = frame.data_ref() {
                    this.state.record(data);
                }
                // hyper stops polling a body that says it ended (a whole body does), so
                // the record is finished here, before the last bytes are written.
                if this.inner.is_end_stream() {
                    this.state.finish();
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
