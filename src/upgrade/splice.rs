//! The two legs of an upgraded connection joined both ways: each direction reads into
//! one buffer of its own and writes it out before reading more, so a slow reader slows
//! its writer (back-pressure) and nothing is kept per message. A quiet direction reads
//! with 1 KiB inside the task; a busy one (a read filled that) with 16 KiB on the heap
//! until a read is small again, so idle sessions stay small. The directions run
//! concurrently, so one blocked on a full socket never stalls the other.
//!
//! The splice ends when both sides have closed, or when it is stopped: by the idle
//! timeout (no byte either way, pings included), by the longest duration, or by the
//! gateway's shutdown. A stopped splice puts a close frame (1001, going away) into
//! each direction at the next frame boundary, passes nothing after it, and gives the
//! peers [`CLOSE_GRACE`] to close.

use super::frames::{Tracker, close_frame};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How long the peers get to answer the close frames of a stopped splice.
pub const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Bytes read per direction before they are written on, while the direction is busy.
const BUFFER: usize = 16 * 1024;

/// The buffer a quiet direction reads with: an idle session holds two of these and no
/// heap buffer. A read that fills it brings the large one back.
const SMALL: usize = 1024;

/// The limits of one upgraded connection.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// No byte either way for this long ends the connection.
    pub idle_timeout: Duration,
    /// The connection ends this long after it started, whatever it does.
    pub max_duration: Duration,
}

/// Why an upgraded connection ended (the `reason` label of the close metric).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The client closed first.
    Client,
    /// The upstream closed first.
    Upstream,
    /// Nothing moved for `idle_timeout`.
    Idle,
    /// `max_duration` passed.
    MaxDuration,
    /// The gateway shut down.
    Shutdown,
    /// A read or write failed.
    Error,
}

impl Reason {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Client => "client_close",
            Reason::Upstream => "upstream_close",
            Reason::Idle => "idle_timeout",
            Reason::MaxDuration => "max_duration",
            Reason::Shutdown => "shutdown",
            Reason::Error => "error",
        }
    }
}

/// Which way a pump moves bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client to upstream: a close frame put in is masked, as a client's must be.
    ToUpstream,
    /// Upstream to client.
    ToClient,
}

/// What both directions share: when the last byte moved, and who ended first.
struct Shared {
    start: Instant,
    last_ms: AtomicU64,
    /// 0 while both run; then 1 + the `Reason` of the first to end.
    first: AtomicU8,
    /// 0 until a close frame passed; then who sent it (1 the client, 2 the upstream).
    close_from: AtomicU8,
}

impl Shared {
    fn touch(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn ended(&self, reason: Reason) {
        let code = match reason {
            Reason::Client => 1,
            Reason::Upstream => 2,
            _ => 3,
        };
        let _ = self
            .first
            .compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire);
    }
}

/// Joins `client` and `upstream` until both close or the splice is stopped (`shutdown`,
/// or a limit); `count` is called with each direction's bytes as they move.
pub async fn splice<C, U>(
    client: C,
    upstream: U,
    limits: Limits,
    shutdown: &CancellationToken,
    count: &(dyn Fn(Direction, u64) + Sync),
) -> Reason
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let (cr, cw) = tokio::io::split(client);
    let (ur, uw) = tokio::io::split(upstream);
    let stop = shutdown.child_token();
    let shared = Shared {
        start: Instant::now(),
        last_ms: AtomicU64::new(0),
        first: AtomicU8::new(0),
        close_from: AtomicU8::new(0),
    };
    let pumps = async {
        tokio::join!(
            pump(cr, uw, Direction::ToUpstream, &stop, &shared, count),
            pump(ur, cw, Direction::ToClient, &stop, &shared, count),
        )
    };
    tokio::pin!(pumps);
    let stopped = tokio::select! {
        _ = &mut pumps => None,
        reason = watch(&shared, limits, shutdown, &stop) => Some(reason),
    };
    if let Some(reason) = stopped {
        // The close frames are on their way; the peers get a moment to answer them.
        let _ = tokio::time::timeout(CLOSE_GRACE, &mut pumps).await;
        return reason;
    }
    // Who closed is who sent the first close frame (the server then ends the TCP
    // connection, RFC 6455 §7.1.1); else who ended the stream first.
    let close_from = shared.close_from.load(Ordering::Acquire);
    let first = match close_from {
        0 => shared.first.load(Ordering::Acquire),
        from => from,
    };
    match first {
        1 => Reason::Client,
        2 => Reason::Upstream,
        _ => Reason::Error,
    }
}

/// Returns (after cancelling `stop`) when a limit is reached or the gateway shuts down.
async fn watch(
    shared: &Shared,
    limits: Limits,
    shutdown: &CancellationToken,
    stop: &CancellationToken,
) -> Reason {
    let deadline = crate::deadline::after(shared.start, limits.max_duration);
    let reason = loop {
        let last = Duration::from_millis(shared.last_ms.load(Ordering::Relaxed));
        let idle_at = crate::deadline::after(shared.start + last, limits.idle_timeout);
        tokio::select! {
            _ = shutdown.cancelled() => break Reason::Shutdown,
            _ = tokio::time::sleep_until(deadline) => break Reason::MaxDuration,
            _ = tokio::time::sleep_until(idle_at) => {
                let now = Duration::from_millis(shared.last_ms.load(Ordering::Relaxed));
                if now == last {
                    break Reason::Idle;
                }
            }
        }
    };
    stop.cancel();
    reason
}

/// Moves bytes from `src` to `dst` until `src` ends, or, once `stop` fires, puts a close
/// frame into `dst` at the next frame boundary and drops what follows.
async fn pump<R, W>(
    mut src: R,
    mut dst: W,
    direction: Direction,
    stop: &CancellationToken,
    shared: &Shared,
    count: &(dyn Fn(Direction, u64) + Sync),
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut small = [0u8; SMALL];
    // Allocated while the direction moves full reads, dropped when it quiets down.
    let mut large: Vec<u8> = Vec::new();
    let mut frames = Tracker::default();
    let mut closed = false;
    let own = match direction {
        Direction::ToUpstream => Reason::Client,
        Direction::ToClient => Reason::Upstream,
    };
    loop {
        let boundary = frames.at_boundary();
        tokio::select! {
            biased;
            _ = stop.cancelled(), if !closed && boundary => {
                closed = true;
                let mask = (direction == Direction::ToUpstream).then(|| {
                    let b = uuid::Uuid::new_v4().into_bytes();
                    [b[0], b[1], b[2], b[3]]
                });
                if !frames.closed {
                    let _ = dst.write_all(&close_frame(1001, "going away", mask)).await;
                    let _ = dst.flush().await;
                }
            }
            read = src.read(if large.is_empty() { &mut small[..] } else { &mut large[..] }) => match read {
                Ok(0) | Err(_) => {
                    shared.ended(if read.is_ok() { own } else { Reason::Error });
                    let _ = dst.shutdown().await;
                    return;
                }
                Ok(n) => {
                    shared.touch();
                    count(direction, n as u64);
                    // After the close frame nothing more goes this way.
                    if closed {
                        continue;
                    }
                    let using_large = !large.is_empty();
                    let data = if using_large { &large[..n] } else { &small[..n] };
                    let was_closed = frames.closed;
                    frames.feed(data);
                    if frames.closed && !was_closed {
                        let from = if direction == Direction::ToUpstream { 1 } else { 2 };
                        let _ = shared.close_from.compare_exchange(0, from, Ordering::AcqRel, Ordering::Acquire);
                    }
                    if dst.write_all(data).await.is_err() {
                        shared.ended(Reason::Error);
                        return;
                    }
                    match (using_large, n) {
                        (false, SMALL) => large = vec![0u8; BUFFER],
                        (true, n) if n <= SMALL => large = Vec::new(),
                        _ => {}
                    }
                }
            },
        }
    }
}

#[cfg(test)]
mod tests;
