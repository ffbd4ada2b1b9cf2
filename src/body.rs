//! The one body type used on the request path, and small constructors for it.
//!
//! Upstream bodies, client bodies and gateway-generated bodies all become a
//! [`Body`]: a boxed, streaming `http_body::Body` of `Bytes` frames. Nothing here
//! buffers; a streamed upstream response is passed on frame by frame.

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};

/// Error type carried by boxed bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Streaming body type of every request and response the gateway handles.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// A body holding `data` in one frame.
pub fn full(data: impl Into<Bytes>) -> Body {
    Full::new(data.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// An empty body.
pub fn empty() -> Body {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// Boxes any compatible body, converting its error into [`BoxError`].
pub fn boxed<B>(body: B) -> Body
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed_unsync()
}

/// Why [`collect_limited`] failed.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    /// The body exceeded the limit.
    #[error("body exceeds {0} bytes")]
    TooLarge(usize),
    /// The underlying body failed.
    #[error("{0}")]
    Body(BoxError),
}

/// Reads a whole body into memory, failing as soon as it exceeds `max` bytes.
///
/// (A manual loop rather than `http_body_util::Limited`: `Limited`'s `Into<BoxError>`
/// bound defeats the compiler's `Send` proof for the async request path.)
pub async fn collect_limited(mut body: Body, max: usize) -> Result<Bytes, CollectError> {
    use http_body_util::BodyExt as _;
    let mut buf = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(CollectError::Body)?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > max {
                return Err(CollectError::TooLarge(max));
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

/// The error a [`LimitBody`] yields once its limit is exceeded.
#[derive(Debug, thiserror::Error)]
#[error("request body exceeds {0} bytes")]
pub struct BodyLimitExceeded(pub u64);

pin_project_lite::pin_project! {
    /// A streaming body that fails once more than `limit` bytes passed, and records that
    /// in a shared flag: the upstream client may report the failure without its cause
    /// (HTTP/2 resets), so the flag is what tells a 413 from a 502.
    pub struct LimitBody<B> {
        #[pin]
        inner: B,
        remaining: u64,
        limit: u64,
        tripped: std::sync::Arc<std::sync::atomic::AtomicBool>,
    }
}

impl<B> LimitBody<B> {
    /// Wraps `inner`; `tripped` becomes true when the limit is exceeded.
    pub fn new(
        inner: B,
        limit: u64,
        tripped: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ) -> Self {
        LimitBody {
            inner,
            remaining: limit,
            limit,
            tripped,
        }
    }
}

impl<B> http_body::Body for LimitBody<B>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        let this = self.project();
        match this.inner.poll_frame(cx) {
            std::task::Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let len = data.len() as u64;
                    if len > *this.remaining {
                        this.tripped
                            .store(true, std::sync::atomic::Ordering::Release);
                        return std::task::Poll::Ready(Some(Err(Box::new(BodyLimitExceeded(
                            *this.limit,
                        )))));
                    }
                    *this.remaining -= len;
                }
                std::task::Poll::Ready(Some(Ok(frame)))
            }
            std::task::Poll::Ready(Some(Err(e))) => std::task::Poll::Ready(Some(Err(e.into()))),
            other => other.map(|_| None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        let mut hint = self.inner.size_hint();
        if hint.lower() > self.remaining {
            // Let the frame that crosses the limit produce the error.
            return http_body::SizeHint::default();
        }
        if hint.upper().is_some_and(|u| u > self.remaining) {
            hint = http_body::SizeHint::new();
            hint.set_lower(self.inner.size_hint().lower());
        }
        hint
    }
}

/// The error a [`ReadTimeoutBody`] yields when the client stops sending.
#[derive(Debug, thiserror::Error)]
#[error("client sent no request body data for {0:?}")]
pub struct BodyReadTimeout(pub std::time::Duration);

pin_project_lite::pin_project! {
    /// A client request body that fails when no frame arrives for `timeout` while the
    /// body is being read (a slow-body "R-U-D-Y" client holding a request open). The
    /// timer is armed only while the reader waits, so a slow *upstream* never trips
    /// it, and it records the failure in a shared flag, like [`LimitBody`], because the
    /// upstream client may report the aborted body without its cause.
    pub struct ReadTimeoutBody<B> {
        #[pin]
        inner: B,
        timeout: std::time::Duration,
        sleep: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
        waiting: bool,
        tripped: std::sync::Arc<std::sync::atomic::AtomicBool>,
    }
}

impl<B> ReadTimeoutBody<B> {
    /// Wraps `inner`; `tripped` becomes true when the timeout expires.
    pub fn new(
        inner: B,
        timeout: std::time::Duration,
        tripped: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ) -> Self {
        ReadTimeoutBody {
            inner,
            timeout,
            sleep: None,
            waiting: false,
            tripped,
        }
    }
}

impl<B> http_body::Body for ReadTimeoutBody<B>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        use std::task::Poll;
        let this = self.project();
        match this.inner.poll_frame(cx) {
            Poll::Ready(frame) => {
                *this.waiting = false;
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                // One timer per body, re-armed at the start of every wait (not on
                // every poll of the same wait).
                let timeout = *this.timeout;
                let sleep = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                if !*this.waiting {
                    sleep
                        .as_mut()
                        .reset(crate::deadline::after(tokio::time::Instant::now(), timeout));
                    *this.waiting = true;
                }
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        this.tripped
                            .store(true, std::sync::atomic::Ordering::Release);
                        Poll::Ready(Some(Err(Box::new(BodyReadTimeout(*this.timeout)))))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The error a [`StallBody`] yields when the upstream stops sending.
#[derive(Debug, thiserror::Error)]
#[error("upstream sent no response body data for {0:?}")]
pub struct BodyStalled(pub std::time::Duration);

pin_project_lite::pin_project! {
    /// An upstream response body that fails when no frame arrives for `timeout` while
    /// the gateway waits for one (a route's `body_timeout`). The error makes hyper
    /// abort the client's response (HTTP/1: the connection closes before the last
    /// chunk or short of Content-Length; HTTP/2: RST_STREAM), so a stalled stream is
    /// never passed off as complete. Like [`ReadTimeoutBody`], the one timer is re-armed
    /// at the start of each wait only: a slow *client* that exerts backpressure does not
    /// count against the upstream. `on_stall` runs once, when the timer fires (metrics).
    pub struct StallBody<B, F> {
        #[pin]
        inner: B,
        timeout: std::time::Duration,
        sleep: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
        waiting: bool,
        on_stall: Option<F>,
    }
}

impl<B, F: FnOnce()> StallBody<B, F> {
    /// Wraps `inner`; `on_stall` runs when it stalls for `timeout`.
    pub fn new(inner: B, timeout: std::time::Duration, on_stall: F) -> Self {
        StallBody {
            inner,
            timeout,
            sleep: None,
            waiting: false,
            on_stall: Some(on_stall),
        }
    }
}

impl<B, F> http_body::Body for StallBody<B, F>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
    F: FnOnce(),
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        use std::task::Poll;
        let this = self.project();
        if this.on_stall.is_none() {
            // Already failed: stay failed rather than resume a cut stream.
            return Poll::Ready(Some(Err(Box::new(BodyStalled(*this.timeout)))));
        }
        match this.inner.poll_frame(cx) {
            Poll::Ready(frame) => {
                *this.waiting = false;
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                let timeout = *this.timeout;
                let sleep = this.sleep.get_or_insert_with(|| {
                    Box::pin(tokio::time::sleep(crate::deadline::cap(timeout)))
                });
                if !*this.waiting {
                    sleep
                        .as_mut()
                        .reset(crate::deadline::after(tokio::time::Instant::now(), timeout));
                    *this.waiting = true;
                }
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        if let Some(on_stall) = this.on_stall.take() {
                            on_stall();
                        }
                        Poll::Ready(Some(Err(Box::new(BodyStalled(timeout)))))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.on_stall.is_some() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
