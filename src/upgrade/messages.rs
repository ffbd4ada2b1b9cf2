//! The splice of a WebSocket whose route has message hooks: both legs are read as
//! WebSocket messages (tokio-tungstenite; fragments reassembled, at most
//! `max_message_bytes` each), every text and binary message is handed to the
//! [`Filter`], and what it passes is sent on. Pings, pongs and close frames pass as
//! they are. A route without message hooks never comes here: its bytes are spliced
//! unparsed (`splice.rs`).

use super::splice::{CLOSE_GRACE, Direction, Limits, Reason};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use std::future::Future;
use std::pin::Pin;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};

/// What becomes of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Sent on as it is.
    Pass,
    /// Sent on as this payload.
    Replace(Bytes),
    /// Not sent on.
    Drop,
}

/// Decides on each message: the route's message hooks, in order.
pub trait Filter: Sync {
    /// `direction` is where the message goes; `text` tells text from binary.
    fn filter<'a>(
        &'a self,
        direction: Direction,
        text: bool,
        payload: Bytes,
    ) -> Pin<Box<dyn Future<Output = Verdict> + Send + 'a>>;
}

/// Joins `client` and `upstream` message by message through `filter`.
pub async fn splice<C, U>(
    client: C,
    upstream: U,
    limits: Limits,
    max_message_bytes: usize,
    shutdown: &tokio_util::sync::CancellationToken,
    filter: &dyn Filter,
    count: &(dyn Fn(Direction, u64) + Sync),
) -> Reason
where
    C: AsyncRead + AsyncWrite + Unpin + Send,
    U: AsyncRead + AsyncWrite + Unpin + Send,
{
    let config = WebSocketConfig::default()
        .max_message_size(Some(max_message_bytes))
        .max_frame_size(Some(max_message_bytes));
    let client = WebSocketStream::from_raw_socket(client, Role::Server, Some(config)).await;
    let upstream = WebSocketStream::from_raw_socket(upstream, Role::Client, Some(config)).await;
    let (mut to_client, mut from_client) = client.split();
    let (mut to_upstream, mut from_upstream) = upstream.split();
    let start = Instant::now();
    let deadline = crate::deadline::after(start, limits.max_duration);
    let mut last = start;
    // Who sent the first close frame: the session then ends when a leg does.
    let mut closed_by = None;
    let reason = loop {
        let idle_at = crate::deadline::after(last, limits.idle_timeout);
        tokio::select! {
            _ = shutdown.cancelled() => break Reason::Shutdown,
            _ = tokio::time::sleep_until(deadline) => break Reason::MaxDuration,
            _ = tokio::time::sleep_until(idle_at) => break Reason::Idle,
            m = from_client.next() => {
                last = Instant::now();
                match forward(m, Direction::ToUpstream, filter, count, &mut to_upstream).await {
                    Step::Continue => {}
                    Step::Closed(by) => {
                        closed_by.get_or_insert(by);
                    }
                    Step::End(end) => break closed_by.unwrap_or(end),
                }
            }
            m = from_upstream.next() => {
                last = Instant::now();
                match forward(m, Direction::ToClient, filter, count, &mut to_client).await {
                    Step::Continue => {}
                    Step::Closed(by) => {
                        closed_by.get_or_insert(by);
                    }
                    Step::End(end) => break closed_by.unwrap_or(end),
                }
            }
        }
    };
    if matches!(
        reason,
        Reason::Shutdown | Reason::MaxDuration | Reason::Idle
    ) {
        let away = || {
            Message::Close(Some(CloseFrame {
                code: CloseCode::Away,
                reason: "going away".into(),
            }))
        };
        let closing = async {
            let _ = to_client.send(away()).await;
            let _ = to_upstream.send(away()).await;
            // The peers answer the close frames; then both streams end.
            let _ = tokio::join!(
                async { while let Some(Ok(_)) = from_client.next().await {} },
                async { while let Some(Ok(_)) = from_upstream.next().await {} },
            );
        };
        let _ = tokio::time::timeout(CLOSE_GRACE, closing).await;
    }
    reason
}

/// What one message read from a leg did.
enum Step {
    /// Sent on (or dropped by a hook); the session goes on.
    Continue,
    /// A close frame, sent on: the close handshake runs to its end.
    Closed(Reason),
    /// The leg ended or failed: so does the session.
    End(Reason),
}

/// Sends one message read from a leg on to the other.
async fn forward<S>(
    read: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
    direction: Direction,
    filter: &dyn Filter,
    count: &(dyn Fn(Direction, u64) + Sync),
    sink: &mut S,
) -> Step
where
    S: futures_util::Sink<Message, Error = tokio_tungstenite::tungstenite::Error> + Unpin,
{
    let closed_by = match direction {
        Direction::ToUpstream => Reason::Client,
        Direction::ToClient => Reason::Upstream,
    };
    let message = match read {
        None => {
            let _ = sink.close().await;
            return Step::End(closed_by);
        }
        Some(Err(e)) => {
            tracing::debug!(error = %e, ?direction, "websocket message refused or leg failed");
            // A message over `max_message_bytes`: the other side is told why.
            let _ = sink
                .send(Message::Close(Some(CloseFrame {
                    code: CloseCode::Size,
                    reason: "message too big".into(),
                })))
                .await;
            return Step::End(Reason::Error);
        }
        Some(Ok(m)) => m,
    };
    count(direction, message.len() as u64);
    let out = match message {
        Message::Text(text) => {
            // The text's bytes are shared with the hook, not copied.
            let payload = Bytes::from(text.clone());
            match filter.filter(direction, true, payload).await {
                Verdict::Pass => Some(Message::Text(text)),
                Verdict::Replace(b) => match String::from_utf8(b.to_vec()) {
                    Ok(t) => Some(Message::text(t)),
                    // A hook's text that is not UTF-8 would break the peer: dropped.
                    Err(_) => None,
                },
                Verdict::Drop => None,
            }
        }
        Message::Binary(data) => match filter.filter(direction, false, data.clone()).await {
            Verdict::Pass => Some(Message::Binary(data)),
            Verdict::Replace(b) => Some(Message::Binary(b)),
            Verdict::Drop => None,
        },
        Message::Close(frame) => {
            let _ = sink.send(Message::Close(frame)).await;
            return Step::Closed(closed_by);
        }
        other @ (Message::Ping(_) | Message::Pong(_)) => Some(other),
        Message::Frame(_) => None,
    };
    if let Some(m) = out
        && sink.send(m).await.is_err()
    {
        return Step::End(Reason::Error);
    }
    Step::Continue
}
