//! Retries and failover: the attempts of one request, the route's retry budget, the
//! backoff, and the record of every attempt for the access log and
//! `microgateway_upstream_attempts_total`.
//!
//! The decision to try again is made on a response head or a failure, before anything
//! is returned, so no retry ever follows a response byte that reached the client.

use crate::config::RetryOn;
use crate::routing::RetryPolicy;
use metrics::Counter;
use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Sent upstream on retries: which attempt of the request this is (2 for the first retry).
pub(super) const ATTEMPT_HEADER: http::HeaderName =
    http::HeaderName::from_static("x-microgateway-attempt");

/// How one attempt ended, as the access log and the metric label it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(super) enum Kind {
    /// A response head below 500 other than 429.
    Success,
    /// A 5xx response head.
    ServerError,
    /// A 429 response head.
    TooManyRequests,
    /// The connect failed.
    Connect,
    /// The connect timed out.
    ConnectTimeout,
    /// The response head did not arrive in time.
    Timeout,
    /// The connection broke after the request was sent.
    Reset,
    /// Abandoned for a reason that says nothing about the upstream (client, limits).
    Neutral,
    /// The group's circuit breaker refused the attempt.
    Overloaded,
}

/// The labels of [`Kind`], in its order.
pub(super) const KINDS: [&str; 9] = [
    "success",
    "5xx",
    "429",
    "connect",
    "connect_timeout",
    "timeout",
    "reset",
    "neutral",
    "overloaded",
];

impl Kind {
    fn label(self) -> &'static str {
        KINDS.get(self as usize).copied().unwrap_or("neutral")
    }

    /// The `retry.on` class this outcome belongs to; `None` for those never retried.
    pub(super) fn class(self) -> Option<RetryOn> {
        match self {
            Kind::ServerError => Some(RetryOn::ServerError),
            Kind::TooManyRequests => Some(RetryOn::TooManyRequests),
            Kind::Connect | Kind::ConnectTimeout | Kind::Overloaded => Some(RetryOn::Connect),
            Kind::Timeout => Some(RetryOn::Timeout),
            Kind::Reset => Some(RetryOn::Reset),
            Kind::Success | Kind::Neutral => None,
        }
    }
}

/// Attempts recorded per request (more are counted, not listed).
const TRACE_LEN: usize = 16;

/// The attempts of one request, for the access log: how many and how each ended, and
/// the group of the last attempt (a fallback, when one answered).
#[derive(Debug, Default)]
pub struct Trace {
    kinds: [Option<Kind>; TRACE_LEN],
    count: usize,
    pub(super) answered: Option<Arc<str>>,
}

impl Trace {
    /// The name of the group whose attempt the client got, once the request was sent.
    pub fn answered(&self) -> Option<&str> {
        self.answered.as_deref()
    }

    pub(super) fn push(&mut self, kind: Kind) {
        if let Some(slot) = self.kinds.get_mut(self.count) {
            *slot = Some(kind);
        }
        self.count += 1;
    }

    /// Attempts made.
    pub fn count(&self) -> usize {
        self.count
    }
}

/// `connect,success`: the outcomes in order (`-` when no attempt was made).
impl std::fmt::Display for Trace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.count == 0 {
            return f.write_str("-");
        }
        for (i, kind) in self.kinds.iter().flatten().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(kind.label())?;
        }
        if self.count > TRACE_LEN {
            write!(f, ",+{}", self.count - TRACE_LEN)?;
        }
        Ok(())
    }
}

/// Per route: the retry budget's counts and the attempt counters of each group the
/// route may use (its upstream first, then its fallbacks).
pub(super) struct RouteState {
    active: AtomicU64,
    retrying: AtomicU64,
    counters: Vec<Vec<Counter>>,
}

impl RouteState {
    /// The state of every route of `config`, in configuration order.
    pub(super) fn for_routes(
        config: &crate::config::Config,
        resolved: &crate::config::Resolved,
    ) -> Vec<RouteState> {
        config
            .routes
            .iter()
            .zip(&resolved.route_upstreams)
            .zip(&resolved.route_fallbacks)
            .map(|((r, &primary), fallback)| {
                let names: Vec<&str> = std::iter::once(primary)
                    .chain(fallback.iter().copied())
                    .filter_map(|u| config.upstreams.get(u).map(|u| u.name.as_str()))
                    .collect();
                RouteState::new(&r.name, &names)
            })
            .collect()
    }

    /// Registers the counters of `route` for `groups` (names, in the route's order).
    pub(super) fn new(route: &str, groups: &[&str]) -> RouteState {
        RouteState {
            active: AtomicU64::new(0),
            retrying: AtomicU64::new(0),
            counters: groups
                .iter()
                .map(|g| crate::metrics::upstream_attempts(route, g, &KINDS))
                .collect(),
        }
    }

    /// Counts an attempt on the route's `group`-th group.
    pub(super) fn count(&self, group: usize, kind: Kind) {
        if let Some(c) = self.counters.get(group).and_then(|c| c.get(kind as usize)) {
            c.increment(1);
        }
    }

    /// Counts a request in flight until the guard drops.
    pub(super) fn enter(&self) -> Active<'_> {
        self.active.fetch_add(1, Ordering::Relaxed);
        Active(self)
    }

    /// A retry slot, when the budget has one: retries in flight stay below
    /// `budget_percent` of the requests in flight, or `budget_min`, whichever is more.
    pub(super) fn try_retry(&self, policy: &RetryPolicy) -> Option<Retrying<'_>> {
        let active = self.active.load(Ordering::Relaxed);
        let allowed = (active.saturating_mul(policy.budget_percent) / 100).max(policy.budget_min);
        if self.retrying.fetch_add(1, Ordering::Relaxed) < allowed {
            Some(Retrying(self))
        } else {
            self.retrying.fetch_sub(1, Ordering::Relaxed);
            None
        }
    }
}

/// A request in flight on a route.
pub(super) struct Active<'a>(&'a RouteState);

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A retry in flight, counted against the budget until it drops.
pub(super) struct Retrying<'a>(&'a RouteState);

impl Drop for Retrying<'_> {
    fn drop(&mut self) {
        self.0.retrying.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The wait before retry number `retry` (1 for the first): exponential from
/// `backoff`, capped at `backoff_max`, with full jitter.
pub(super) fn backoff(policy: &RetryPolicy, retry: u32) -> Duration {
    let shift = retry.saturating_sub(1).min(20);
    let ceiling = policy
        .backoff
        .saturating_mul(1 << shift)
        .min(policy.backoff_max);
    let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
    if nanos == 0 {
        return Duration::ZERO;
    }
    Duration::from_nanos(random() % nanos.saturating_add(1))
}

thread_local! {
    /// This thread's jitter generator state (xorshift64; never 0), seeded once.
    static JITTER: Cell<u64> = Cell::new({
        use rand_core::RngCore;
        rand_core::OsRng.next_u64() | 1
    });
}

fn random() -> u64 {
    JITTER.with(|state| {
        let mut x = state.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        state.set(x);
        x
    })
}

#[cfg(test)]
mod tests {
    use super::{Kind, Trace, backoff};

    #[test]
    fn the_trace_lists_outcomes_in_order() {
        let mut t = Trace::default();
        assert_eq!(t.to_string(), "-");
        t.push(Kind::Connect);
        t.push(Kind::ServerError);
        t.push(Kind::Success);
        assert_eq!(t.to_string(), "connect,5xx,success");
        assert_eq!(t.count(), 3);
    }

    #[test]
    fn backoff_is_capped_and_jittered() {
        let config = crate::Config::from_toml(
            "[[upstreams]]\nname = \"u\"\ntargets = [\"http://127.0.0.1:9\"]\n\
             [[routes]]\nname = \"r\"\nupstream = \"u\"\nretry = { backoff = \"10ms\", backoff_max = \"40ms\" }\n",
        )
        .unwrap();
        let route = crate::routing::Route::new(&config.routes[0], 0, 0);
        for retry in 1..30 {
            let d = backoff(&route.retry, retry);
            assert!(d <= std::time::Duration::from_millis(40), "{d:?}");
        }
        let spread: std::collections::HashSet<_> =
            (0..50).map(|_| backoff(&route.retry, 3)).collect();
        assert!(spread.len() > 10, "no jitter: {spread:?}");
    }
}
