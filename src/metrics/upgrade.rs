//! Metrics of upgraded connections (WebSocket and other `Upgrade` protocols, HTTP/2
//! extended CONNECT): open connections, bytes each way, closes by reason, refusals.

use metrics::{Counter, Gauge, counter, gauge};

const OPEN: &str = "microgateway_upgraded_connections";
const BYTES: &str = "microgateway_upgraded_bytes_total";
const CLOSED: &str = "microgateway_upgraded_closed_total";
const REFUSED: &str = "microgateway_upgrade_refused_total";

/// Describes the metrics of this file.
pub(super) fn describe_upgrade() {
    metrics::describe_gauge!(OPEN, "Upgraded connections open now, by route.");
    metrics::describe_counter!(
        BYTES,
        "Bytes moved over upgraded connections, by route and direction (to_upstream, to_client)."
    );
    metrics::describe_counter!(
        CLOSED,
        "Upgraded connections that ended, by route and reason (client_close, upstream_close, idle_timeout, max_duration, shutdown, error)."
    );
    metrics::describe_counter!(
        REFUSED,
        "Upgrade requests refused by the gateway, by route and reason (max_connections)."
    );
}

/// One open upgraded connection of a route, counted until dropped.
pub struct UpgradedOpen(Gauge);

impl UpgradedOpen {
    /// Counts a connection of `route` as open.
    pub fn new(route: &str) -> UpgradedOpen {
        let g = gauge!(OPEN, "route" => route.to_string());
        g.increment(1.0);
        UpgradedOpen(g)
    }
}

impl Drop for UpgradedOpen {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// The byte counters of one upgraded connection, looked up once.
pub struct UpgradedBytes {
    to_upstream: Counter,
    to_client: Counter,
}

impl UpgradedBytes {
    /// The counters of `route`.
    pub fn new(route: &str) -> UpgradedBytes {
        UpgradedBytes {
            to_upstream: counter!(BYTES, "route" => route.to_string(), "direction" => "to_upstream"),
            to_client: counter!(BYTES, "route" => route.to_string(), "direction" => "to_client"),
        }
    }

    /// Adds `n` bytes moved to the upstream (`to_upstream`) or to the client.
    pub fn add(&self, to_upstream: bool, n: u64) {
        match to_upstream {
            true => self.to_upstream.increment(n),
            false => self.to_client.increment(n),
        }
    }
}

/// An upgraded connection of `route` ended for `reason`.
pub fn upgraded_closed(route: &str, reason: &'static str) {
    counter!(CLOSED, "route" => route.to_string(), "reason" => reason).increment(1);
}

/// An upgrade request of `route` was refused for `reason`.
pub fn upgrade_refused(route: &str, reason: &'static str) {
    counter!(REFUSED, "route" => route.to_string(), "reason" => reason).increment(1);
}
