//! The group's connection limit (`max_connections`) and its wait queue (`max_pending`).
//!
//! An attempt takes one of `max_connections` permits right before it is sent and keeps it
//! until the upstream response body ends (or the attempt fails): an HTTP/1 connection
//! carries one request at a time, so the permits bound the connections in use, and the
//! idle pool is capped at the same number. When none is free, up to `max_pending`
//! attempts wait for one, each at most the route's timeout; beyond them, or when the wait
//! runs out, the attempt is refused as [`Overloaded`] (503 `upstream_overloaded`).

use super::Overloaded;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// One attempt's hold on an upstream connection; dropping it frees the connection.
#[derive(Debug)]
pub struct ConnectionPermit {
    _permit: OwnedSemaphorePermit,
}

/// The limit of one group.
pub(super) struct Connections {
    permits: Arc<Semaphore>,
    max: usize,
    max_pending: usize,
    pending: AtomicUsize,
    refused_connections: metrics::Counter,
    refused_pending: metrics::Counter,
}

impl Connections {
    /// The limit of `upstream`, or `None` without `max_connections`.
    pub fn new(upstream: &str, max: Option<usize>, max_pending: Option<usize>) -> Option<Self> {
        let max = max?;
        Some(Connections {
            permits: Arc::new(Semaphore::new(max.min(Semaphore::MAX_PERMITS))),
            max,
            max_pending: max_pending.unwrap_or(0),
            pending: AtomicUsize::new(0),
            refused_connections: crate::metrics::upstream_overloaded(upstream, "max_connections"),
            refused_pending: crate::metrics::upstream_overloaded(upstream, "max_pending"),
        })
    }

    /// A free connection, waiting at most `wait` in the queue when none is.
    pub async fn acquire(&self, wait: Duration) -> Result<ConnectionPermit, Overloaded> {
        if let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() {
            return Ok(ConnectionPermit { _permit: permit });
        }
        if self.pending.fetch_add(1, Ordering::AcqRel) >= self.max_pending {
            self.pending.fetch_sub(1, Ordering::AcqRel);
            return Err(self.refuse("max_connections", "max_pending"));
        }
        let waited = tokio::time::timeout(wait, Arc::clone(&self.permits).acquire_owned()).await;
        self.pending.fetch_sub(1, Ordering::AcqRel);
        match waited {
            Ok(Ok(permit)) => Ok(ConnectionPermit { _permit: permit }),
            // The semaphore is never closed; a timeout means the queue did not move.
            _ => Err(self.refuse("max_pending", "max_pending")),
        }
    }

    /// Counts and names a refusal: `max_connections` when nothing may wait at all.
    fn refuse(&self, without_queue: &'static str, with_queue: &'static str) -> Overloaded {
        let limit = if self.max_pending == 0 {
            without_queue
        } else {
            with_queue
        };
        match limit {
            "max_connections" => self.refused_connections.increment(1),
            _ => self.refused_pending.increment(1),
        }
        Overloaded { limit }
    }

    /// `(in use, waiting)`, for the admin API.
    pub fn load(&self) -> (usize, usize) {
        (
            self.max - self.permits.available_permits().min(self.max),
            self.pending.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn permits_bound_use_and_the_queue_bounds_waiting() {
        let c = Connections::new("u", Some(1), Some(1)).unwrap();
        let first = c.acquire(Duration::from_secs(1)).await.unwrap();
        assert_eq!(c.load(), (1, 0));
        // One may wait; it gets the connection when the first is freed.
        let waiting = c.acquire(Duration::from_secs(5));
        tokio::pin!(waiting);
        let still = tokio::time::timeout(Duration::from_millis(20), waiting.as_mut()).await;
        assert!(
            still.is_err(),
            "the second got a connection that was in use"
        );
        assert_eq!(c.load(), (1, 1));
        // The queue is full: the next is refused at once.
        let refused = c.acquire(Duration::from_secs(5)).await.unwrap_err();
        assert_eq!(refused.limit, "max_pending");
        drop(first);
        let second = waiting.await.unwrap();
        assert_eq!(c.load(), (1, 0));
        drop(second);
        assert_eq!(c.load(), (0, 0));
    }

    #[tokio::test]
    async fn without_a_queue_the_limit_refuses_and_a_wait_times_out() {
        let c = Connections::new("u", Some(1), None).unwrap();
        let _held = c.acquire(Duration::from_secs(1)).await.unwrap();
        let refused = c.acquire(Duration::from_secs(1)).await.unwrap_err();
        assert_eq!(refused.limit, "max_connections");
        let q = Connections::new("u", Some(1), Some(4)).unwrap();
        let _held = q.acquire(Duration::from_secs(1)).await.unwrap();
        let timed_out = q.acquire(Duration::from_millis(20)).await.unwrap_err();
        assert_eq!((timed_out.limit, q.load()), ("max_pending", (1, 0)));
    }
}
