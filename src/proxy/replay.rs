//! Request bodies kept for replay: a retry sends the same bytes again.
//!
//! A body without data needs nothing kept. A body whose declared length exceeds
//! `retry.max_body_bytes` is sent once. Any other body streams to the first attempt as
//! it arrives while its frames are kept (up to the cap) in state shared by every
//! attempt's [`ReplayBody`], which also owns the client's body: an attempt that failed
//! before its body was read (a refused connect) leaves it whole for the next one. A
//! body that grows past the cap while streaming drops what was kept and can no longer
//! be replayed. Each new attempt supersedes the previous one, whose body then fails, so
//! two attempts never read the client's body at once.

use crate::body::{self, Body, BoxError};
use bytes::Bytes;
use http::HeaderMap;
use http_body::{Frame, SizeHint};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

/// The request body of one request across its attempts.
pub(super) enum Replay {
    /// No data: every attempt gets an empty body.
    Empty,
    /// Sent once and never replayed (too large, or the request may not retry).
    Once(Option<Body>),
    /// Kept for replay while it fits.
    Kept(Arc<Shared>),
}

impl Replay {
    /// Chooses how `body` is kept, given the replay cap.
    pub(super) fn new(body: Body, cap: u64) -> Replay {
        if http_body::Body::is_end_stream(&body) {
            return Replay::Empty;
        }
        if http_body::Body::size_hint(&body).lower() > cap {
            return Replay::Once(Some(body));
        }
        Replay::Kept(Arc::new(Shared {
            cap,
            state: Mutex::new(State {
                inner: Some(body),
                chunks: Vec::new(),
                len: 0,
                capped: false,
                trailers: None,
                generation: 0,
            }),
        }))
    }

    /// Whether another attempt can be sent the whole body.
    pub(super) fn replayable(&self) -> bool {
        match self {
            Replay::Empty => true,
            Replay::Once(body) => body.is_some(),
            Replay::Kept(shared) => shared.state.lock().is_ok_and(|s| !s.capped),
        }
    }

    /// The body of the next attempt; `None` when it can no longer be sent whole.
    pub(super) fn attempt(&mut self) -> Option<Body> {
        match self {
            Replay::Empty => Some(body::empty()),
            Replay::Once(body) => body.take(),
            Replay::Kept(shared) => {
                let mut state = shared.state.lock().ok()?;
                if state.capped {
                    return None;
                }
                state.generation += 1;
                let generation = state.generation;
                drop(state);
                Some(body::boxed(ReplayBody {
                    shared: shared.clone(),
                    generation,
                    next: 0,
                    offset: 0,
                    trailers_sent: false,
                }))
            }
        }
    }
}

/// What the attempts of one request share.
pub(super) struct Shared {
    cap: u64,
    state: Mutex<State>,
}

struct State {
    /// The client's body; `None` once it ended.
    inner: Option<Body>,
    /// Data frames read so far (empty once capped).
    chunks: Vec<Bytes>,
    /// Bytes in `chunks`.
    len: u64,
    /// The body outgrew the cap or failed: it cannot be replayed.
    capped: bool,
    trailers: Option<HeaderMap>,
    /// The attempt allowed to read; older attempts' bodies fail.
    generation: u64,
}

/// One attempt's view of the shared body.
struct ReplayBody {
    shared: Arc<Shared>,
    generation: u64,
    /// The next kept chunk this attempt sends.
    next: usize,
    /// Bytes this attempt has sent.
    offset: u64,
    trailers_sent: bool,
}

/// The error an attempt's body yields once a newer attempt took over.
#[derive(Debug, thiserror::Error)]
#[error("request body superseded by a retry")]
struct Superseded;

impl http_body::Body for ReplayBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let Ok(mut state) = this.shared.state.lock() else {
            return Poll::Ready(Some(Err(Box::new(Superseded))));
        };
        if state.generation != this.generation {
            return Poll::Ready(Some(Err(Box::new(Superseded))));
        }
        if !state.capped
            && let Some(chunk) = state.chunks.get(this.next)
        {
            let chunk = chunk.clone();
            this.next += 1;
            this.offset += chunk.len() as u64;
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        let Some(inner) = state.inner.as_mut() else {
            if !this.trailers_sent
                && let Some(trailers) = state.trailers.clone()
            {
                this.trailers_sent = true;
                return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
            }
            return Poll::Ready(None);
        };
        match Pin::new(inner).poll_frame(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => {
                state.inner = None;
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => {
                state.capped = true;
                state.chunks = Vec::new();
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.offset += data.len() as u64;
                    if !state.capped {
                        if state.len + data.len() as u64 > this.shared.cap {
                            state.capped = true;
                            state.chunks = Vec::new();
                        } else {
                            state.len += data.len() as u64;
                            state.chunks.push(data.clone());
                            this.next = state.chunks.len();
                        }
                    }
                } else if let Some(trailers) = frame.trailers_ref() {
                    state.trailers = Some(trailers.clone());
                    this.trailers_sent = true;
                }
                Poll::Ready(Some(Ok(frame)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        let Ok(state) = self.shared.state.lock() else {
            return true;
        };
        if state.generation != self.generation {
            return false;
        }
        let kept_left = !state.capped && self.next < state.chunks.len();
        match &state.inner {
            Some(inner) => !kept_left && inner.is_end_stream(),
            None => !kept_left && (self.trailers_sent || state.trailers.is_none()),
        }
    }

    fn size_hint(&self) -> SizeHint {
        let Ok(state) = self.shared.state.lock() else {
            return SizeHint::default();
        };
        let kept_left = if state.capped {
            0
        } else {
            state.len.saturating_sub(self.offset)
        };
        match &state.inner {
            None => SizeHint::with_exact(kept_left),
            Some(inner) => {
                let hint = inner.size_hint();
                let mut out = SizeHint::new();
                out.set_lower(hint.lower().saturating_add(kept_left));
                if let Some(upper) = hint.upper() {
                    out.set_upper(upper.saturating_add(kept_left));
                }
                out
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Replay;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn a_kept_body_replays_whole_and_the_superseded_attempt_fails() {
        let chunks = ["ab", "cd"]
            .map(|c| Ok::<_, crate::body::BoxError>(http_body::Frame::data(bytes::Bytes::from(c))));
        let body = crate::body::boxed(http_body_util::StreamBody::new(futures_util::stream::iter(
            chunks,
        )));
        let mut replay = Replay::new(body, 16);
        let mut first = replay.attempt().unwrap();
        let frame = first.frame().await.unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap(), "ab");
        let second = replay.attempt().unwrap();
        assert!(first.frame().await.unwrap().is_err());
        assert_eq!(second.collect().await.unwrap().to_bytes(), "abcd");
        assert!(replay.replayable());
        let third = replay.attempt().unwrap();
        assert_eq!(http_body::Body::size_hint(&third).exact(), Some(4));
        assert_eq!(third.collect().await.unwrap().to_bytes(), "abcd");
    }

    #[tokio::test]
    async fn a_body_past_the_cap_is_sent_once() {
        let mut replay = Replay::new(crate::body::full("0123456789"), 4);
        assert!(replay.replayable());
        let once = replay.attempt().unwrap();
        assert_eq!(once.collect().await.unwrap().to_bytes(), "0123456789");
        assert!(!replay.replayable());
        assert!(replay.attempt().is_none());
        let chunks = ["abc", "def"]
            .map(|c| Ok::<_, crate::body::BoxError>(http_body::Frame::data(bytes::Bytes::from(c))));
        let body = crate::body::boxed(http_body_util::StreamBody::new(futures_util::stream::iter(
            chunks,
        )));
        let mut replay = Replay::new(body, 4);
        let streamed = replay.attempt().unwrap();
        assert_eq!(streamed.collect().await.unwrap().to_bytes(), "abcdef");
        assert!(!replay.replayable());
    }
}
