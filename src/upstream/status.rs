//! What `GET /api/v1/upstreams` reports of a group: its policy and limits, and each
//! target's state, failures, ejections, last error and attempts in flight.

use super::Upstream;
use super::health::state_name;
use serde::Serialize;
use std::sync::atomic::Ordering;

/// One group as the admin API shows it.
#[derive(Debug, Serialize)]
pub struct UpstreamStatus {
    /// Group name.
    pub name: String,
    /// `balance` as configured.
    pub balance: &'static str,
    /// `max_fails`.
    pub max_fails: u64,
    /// `fail_timeout` in milliseconds.
    pub fail_timeout_ms: u128,
    /// `max_requests`, when set.
    pub max_requests: Option<usize>,
    /// `max_connections`, when set.
    pub max_connections: Option<usize>,
    /// `max_pending` (with `max_connections`).
    pub max_pending: Option<usize>,
    /// Connections in use under `max_connections`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connections_in_use: Option<usize>,
    /// Attempts waiting for one of `max_connections`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending: Option<usize>,
    /// Whether `[upstreams.health_check]` is configured.
    pub active_checks: bool,
    /// Per target, in configuration order.
    pub targets: Vec<TargetStatus>,
}

/// One target as the admin API shows it.
#[derive(Debug, Serialize)]
pub struct TargetStatus {
    /// `host:port`.
    pub target: String,
    /// `healthy`, `ejected`, `half_open` or `unhealthy_active`.
    pub state: &'static str,
    /// Its `weights` entry (1 unless weighted).
    pub weight: u64,
    /// Consecutive failed attempts.
    pub consecutive_failures: u32,
    /// Ejections so far.
    pub ejections: u64,
    /// The kind of the last failure (`5xx`, `connect`, `timeout`, `reset`).
    pub last_error: Option<&'static str>,
    /// Attempts in flight.
    pub in_flight: usize,
}

impl Upstream {
    /// The group's state now.
    pub fn status(&self) -> UpstreamStatus {
        let now = self.health.now();
        let targets = self
            .names
            .iter()
            .zip(self.health.targets.iter())
            .enumerate()
            .map(|(i, (name, h))| {
                let (consecutive_failures, ejections, last_error) = h.counts();
                TargetStatus {
                    target: name.clone(),
                    state: state_name(h, now),
                    weight: self.config.weights.get(i).copied().unwrap_or(1),
                    consecutive_failures,
                    ejections,
                    last_error,
                    in_flight: h.in_flight.load(Ordering::Relaxed),
                }
            })
            .collect();
        let load = self.connection_load();
        UpstreamStatus {
            name: self.name.to_string(),
            balance: self.config.balance.as_str(),
            max_fails: self.config.max_fails,
            fail_timeout_ms: self.config.fail_timeout.as_millis(),
            max_requests: self.config.max_requests,
            max_connections: self.config.max_connections,
            max_pending: self.config.max_pending,
            connections_in_use: load.map(|(used, _)| used),
            pending: load.map(|(_, waiting)| waiting),
            active_checks: self.config.health_check.is_some(),
            targets,
        }
    }
}
