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
