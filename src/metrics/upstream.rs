//! The metrics of upstream groups (#17): target health, ejections, active checks, the
//! circuit breaker, attempts, body stalls and provider key pools. Handles are
//! registered when a group or route is built, so the request path only touches them.

use metrics::{Counter, Gauge, counter, gauge};
use std::sync::OnceLock;

// Upstream health, balancing and circuit breaking (#17). Handles are registered when a
// group is built, so the request path only touches them.

const UPSTREAM_TARGET_HEALTHY: &str = "microgateway_upstream_target_healthy";
const UPSTREAM_EJECTIONS: &str = "microgateway_upstream_ejections_total";
const UPSTREAM_OVERLOADED: &str = "microgateway_upstream_overloaded_total";
const UPSTREAM_HEALTH_CHECKS: &str = "microgateway_upstream_health_checks_total";

/// The pre-registered metrics of one upstream target.
#[derive(Clone)]
pub struct UpstreamTargetMetrics {
    /// 1 while the target is usable, 0 while ejected or failing its active check.
    pub healthy: Gauge,
    /// Passive ejections.
    pub ejections: Counter,
    /// Active checks that passed.
    pub checks_passed: Counter,
    /// Active checks that failed.
    pub checks_failed: Counter,
}

/// Registers the metrics of target `target` of `upstream` (healthy at first).
pub fn upstream_target(upstream: &str, target: &str) -> UpstreamTargetMetrics {
    let labels = [
        ("upstream", upstream.to_string()),
        ("target", target.to_string()),
    ];
    let check = |result: &'static str| {
        let mut l = labels.to_vec();
        l.push(("result", result.to_string()));
        counter!(UPSTREAM_HEALTH_CHECKS, &l)
    };
    let m = UpstreamTargetMetrics {
        healthy: gauge!(UPSTREAM_TARGET_HEALTHY, &labels),
        ejections: counter!(UPSTREAM_EJECTIONS, &labels),
        checks_passed: check("passed"),
        checks_failed: check("failed"),
    };
    m.healthy.set(1.0);
    m
}

/// Registers the counter of requests refused by circuit-breaker `limit` of `upstream`.
pub fn upstream_overloaded(upstream: &str, limit: &'static str) -> Counter {
    counter!(UPSTREAM_OVERLOADED, "upstream" => upstream.to_string(), "limit" => limit)
}

// Issue #17, points 5 and 7: provider key pools and upstream body stalls.

const UPSTREAM_BODY_STALLS: &str = "microgateway_upstream_body_stalls_total";
const LLM_KEY_COOLDOWNS: &str = "microgateway_llm_key_cooldowns_total";
const LLM_KEYS_AVAILABLE: &str = "microgateway_llm_keys_available";
const LLM_KEY_RELOADS: &str = "microgateway_llm_key_reloads_total";

/// Records an upstream response body cut because it sent nothing for `body_timeout`.
pub fn upstream_body_stall(route: &str, upstream: &str) {
    counter!(UPSTREAM_BODY_STALLS, "route" => route.to_string(), "upstream" => upstream.to_string())
        .increment(1);
}

/// Records a provider key put into cooldown; `key` is its index in the pool.
pub fn llm_key_cooldown(upstream: &str, key: usize) {
    counter!(LLM_KEY_COOLDOWNS, "upstream" => upstream.to_string(), "key" => key.to_string())
        .increment(1);
}

/// Sets how many keys of an upstream's pool are not cooling down.
pub fn llm_keys_available(upstream: &str, available: usize) {
    gauge!(LLM_KEYS_AVAILABLE, "upstream" => upstream.to_string()).set(available as f64);
}

/// Records a reload of an `api_keys_file` (`result`: `ok` or `error`).
pub fn llm_key_reload(upstream: &str, result: &'static str) {
    counter!(LLM_KEY_RELOADS, "upstream" => upstream.to_string(), "result" => result).increment(1);
}

const UPSTREAM_ATTEMPTS: &str = "microgateway_upstream_attempts_total";

/// Registers the attempt counters of `route` towards upstream group `upstream`, one per
/// entry of `outcomes` and in its order, so that counting an attempt is an atomic add.
pub fn upstream_attempts(route: &str, upstream: &str, outcomes: &[&'static str]) -> Vec<Counter> {
    static DESCRIBED: OnceLock<()> = OnceLock::new();
    DESCRIBED.get_or_init(|| {
        metrics::describe_counter!(
            UPSTREAM_ATTEMPTS,
            "Upstream attempts (first tries, retries and failovers), by route, upstream and outcome."
        );
    });
    outcomes
        .iter()
        .map(|outcome| {
            counter!(UPSTREAM_ATTEMPTS, "route" => route.to_string(), "upstream" => upstream.to_string(), "outcome" => *outcome)
        })
        .collect()
}
