//! `routes[].retry`, `routes[].retry_non_idempotent` and `routes[].fallback`: when the
//! proxy makes another attempt for a request, and which upstream groups it fails over
//! to. With no configuration a route behaves like nginx's `proxy_next_upstream error
//! timeout`, limited to failures before any request byte was sent: an idempotent
//! request whose connect fails or times out moves to the next target of its group.

use super::duration_serde as duration;
use serde::Deserialize;
use std::time::Duration;

/// What ended an attempt, as `retry.on` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum RetryOn {
    /// The connection could not be made or timed out while connecting: no request
    /// byte reached the upstream.
    #[serde(rename = "connect")]
    Connect,
    /// The response head did not arrive within the route's `timeout`.
    #[serde(rename = "timeout")]
    Timeout,
    /// The upstream answered with a 5xx status.
    #[serde(rename = "5xx")]
    ServerError,
    /// The upstream answered 429.
    #[serde(rename = "429")]
    TooManyRequests,
    /// The connection broke after the request was sent, before a response head.
    #[serde(rename = "reset")]
    Reset,
}

/// `routes[].retry`: the retry policy of a route.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// Attempts per upstream group, the first one included; `0` means one per target
    /// of the group (nginx's `proxy_next_upstream_tries 0`), `1` never retries.
    #[serde(default)]
    pub attempts: u64,
    /// Which failures are retried (and failed over).
    #[serde(default = "default_on")]
    pub on: Vec<RetryOn>,
    /// Base of the exponential backoff with full jitter before a retry (none after a
    /// connect failure, which cost the upstream nothing).
    #[serde(
        default = "default_backoff",
        deserialize_with = "duration::deserialize"
    )]
    pub backoff: Duration,
    /// Longest backoff (also when shorter than `backoff`: the cap wins).
    #[serde(
        default = "default_backoff_max",
        deserialize_with = "duration::deserialize"
    )]
    pub backoff_max: Duration,
    /// Retries in flight may be at most this percentage of the route's requests in
    /// flight (connect retries excepted: they never reached an upstream).
    #[serde(default = "default_budget_percent")]
    pub budget_percent: u64,
    /// Retries in flight always allowed, whatever the budget, so low traffic retries.
    #[serde(default = "default_budget_min")]
    pub budget_min: u64,
    /// The longest `Retry-After` (on 429 and 503) a retry waits for; a longer one ends
    /// the retries in that group and the response is returned (or failed over).
    #[serde(
        default = "default_retry_after_max",
        deserialize_with = "duration::deserialize"
    )]
    pub retry_after_max: Duration,
    /// Request bodies up to this size are kept for replay; a larger one is sent once.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            attempts: 0,
            on: default_on(),
            backoff: default_backoff(),
            backoff_max: default_backoff_max(),
            budget_percent: default_budget_percent(),
            budget_min: default_budget_min(),
            retry_after_max: default_retry_after_max(),
            max_body_bytes: default_max_body_bytes(),
        }
    }
}

/// nginx's `proxy_next_upstream error timeout`: a failed connect, a connection that
/// broke before the response head, and no head within the route's timeout.
fn default_on() -> Vec<RetryOn> {
    vec![RetryOn::Connect, RetryOn::Timeout, RetryOn::Reset]
}

fn default_backoff() -> Duration {
    Duration::from_millis(25)
}

fn default_backoff_max() -> Duration {
    Duration::from_secs(1)
}

fn default_budget_percent() -> u64 {
    20
}

fn default_budget_min() -> u64 {
    3
}

fn default_retry_after_max() -> Duration {
    Duration::from_secs(5)
}

fn default_max_body_bytes() -> u64 {
    64 * 1024
}

#[cfg(test)]
mod tests {
    use super::RetryOn;
    use crate::config::Config;

    fn route(extra: &str) -> Result<Config, crate::config::ConfigError> {
        Config::from_toml(&format!(
            "[[upstreams]]\nname = \"u\"\ntargets = [\"http://127.0.0.1:9\"]\n\
             [[routes]]\nname = \"r\"\nupstream = \"u\"\n{extra}\n"
        ))
    }

    #[test]
    fn defaults_are_nginx_error_timeout_one_attempt_per_target() {
        let c = route("").unwrap();
        let r = &c.routes[0];
        assert_eq!(r.retry.attempts, 0);
        assert_eq!(
            r.retry.on,
            [RetryOn::Connect, RetryOn::Timeout, RetryOn::Reset]
        );
        assert!(!r.retry_non_idempotent && r.fallback.is_empty());
        let c = route("retry = { attempts = 3, on = [\"5xx\", \"429\", \"reset\", \"timeout\"] }")
            .unwrap();
        assert_eq!(c.routes[0].retry.attempts, 3);
        assert_eq!(c.routes[0].retry.on.len(), 4);
        assert_eq!(c.routes[0].retry.budget_percent, 20);
        assert!(route("retry = { on = [\"4xx\"] }").is_err());
        assert!(route("retry = { budget = 0.2 }").is_err());
    }
}
