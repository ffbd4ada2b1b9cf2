//! Active health checks (`[upstreams.health_check]`): one detached task per target
//! sends `GET path` through the target's own client (the shared runtime's pool) every
//! `interval`, and after `unhealthy_threshold` consecutive failures (a status outside
//! `expected_statuses`, an error or `timeout`) marks the target unhealthy until
//! `healthy_threshold` consecutive passes. The tasks end when the group is dropped: it
//! holds the [`DropGuard`] of their [`CancellationToken`].

use super::Target;
use super::health::GroupHealth;
use crate::config::HealthCheckConfig;
use std::sync::Arc;
use tokio_util::sync::{CancellationToken, DropGuard};

/// Starts the checkers of `targets`; `None` outside a Tokio runtime (`microgateway
/// check` builds groups without serving).
pub(super) fn start(
    config: &HealthCheckConfig,
    targets: &[Target],
    health: &Arc<GroupHealth>,
) -> Option<DropGuard> {
    tokio::runtime::Handle::try_current().ok()?;
    let token = CancellationToken::new();
    for (index, target) in targets.iter().enumerate() {
        let checker = Checker {
            config: config.clone(),
            target: target.clone(),
            health: health.clone(),
            index,
        };
        let token = token.clone();
        crate::task::detach("upstream-health-check", async move {
            // Cancellation first: a group dropped at once (`check`) sends no check.
            tokio::select! {
                biased;
                () = token.cancelled() => {}
                () = checker.run() => {}
            }
        });
    }
    Some(token.drop_guard())
}

struct Checker {
    config: HealthCheckConfig,
    target: Target,
    health: Arc<GroupHealth>,
    index: usize,
}

impl Checker {
    async fn run(self) {
        let mut ticks = tokio::time::interval(crate::deadline::cap(self.config.interval));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let (mut passes, mut failures) = (0u64, 0u64);
        loop {
            ticks.tick().await;
            let passed = self.check().await;
            if let Some(m) = self.health.metrics.get(self.index) {
                if passed {
                    m.checks_passed.increment(1);
                } else {
                    m.checks_failed.increment(1);
                }
            }
            if passed {
                (passes, failures) = (passes.saturating_add(1), 0);
                if passes >= self.config.healthy_threshold {
                    self.health.set_active(self.index, true);
                }
            } else {
                (passes, failures) = (0, failures.saturating_add(1));
                if failures >= self.config.unhealthy_threshold {
                    self.health.set_active(self.index, false);
                }
            }
        }
    }

    /// One check: true when the status is expected.
    async fn check(&self) -> bool {
        let Some(client) = self.target.client() else {
            return false;
        };
        let Ok(uri) = self.target.uri(&self.config.path, None, None) else {
            return false;
        };
        let mut request = http::Request::new(crate::body::empty());
        *request.uri_mut() = uri;
        if let Ok(host) = http::HeaderValue::from_str(self.target.authority().as_str()) {
            request.headers_mut().insert(http::header::HOST, host);
        }
        let sent = tokio::time::timeout(self.config.timeout, client.request(request)).await;
        let Ok(Ok(response)) = sent else {
            return false;
        };
        let status = response.status().as_u16();
        if self.config.expected_statuses.is_empty() {
            (200..300).contains(&u64::from(status))
        } else {
            self.config.expected_statuses.contains(&u64::from(status))
        }
    }
}
