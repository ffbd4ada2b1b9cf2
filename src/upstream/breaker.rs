//! The group's circuit breaker: `max_requests`, the attempts in flight across all
//! targets and workers. A [`Pick`](super::Pick) holds one slot until it is reported or
//! dropped. The connection limit (`max_connections`, `max_pending`) is in
//! `connections.rs`: it is held until the response body ends, not until the head.

use std::sync::atomic::AtomicUsize;

/// Breaker state of one group.
pub(super) struct Breaker {
    /// `max_requests`; no counting at all when absent.
    pub max_requests: Option<usize>,
    /// Attempts in flight, counted only with a limit.
    pub in_flight: AtomicUsize,
    /// `microgateway_upstream_overloaded_total{limit="max_requests"}`.
    pub overloaded: metrics::Counter,
}

impl Breaker {
    /// The breaker of `upstream` with `max_requests`.
    pub fn new(upstream: &str, max_requests: Option<usize>) -> Breaker {
        Breaker {
            max_requests,
            in_flight: AtomicUsize::new(0),
            overloaded: crate::metrics::upstream_overloaded(upstream, "max_requests"),
        }
    }
}
