//! `[cluster]`: the Redis a fleet of gateways shares its limits and budgets through.
//!
//! Without this section nothing is shared and no Redis is needed. With it,
//! `builtin://rate_limit` buckets and `builtin://llm_policy` windows are kept in Redis
//! under `key_prefix`, and `on_unavailable` says what a gateway does while Redis cannot
//! be reached.

use super::duration_serde as duration;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// What a gateway does with a shared limit while Redis cannot be reached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnUnavailable {
    /// Keep enforcing with this instance's own counters (each instance grants the whole
    /// limit), and add what it admitted to the shared counters when Redis returns.
    #[default]
    Local,
    /// Refuse what a shared limit governs, with `503`.
    Deny,
    /// Admit without a limit (still counted, and added when Redis returns).
    Allow,
}

impl OnUnavailable {
    /// The name used in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            OnUnavailable::Local => "local",
            OnUnavailable::Deny => "deny",
            OnUnavailable::Allow => "allow",
        }
    }
}

/// `[cluster]`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// `redis://[user:password@]host:port[/db]`, `rediss://…` (TLS) or
    /// `unix:///path/to/redis.sock`. It may carry a password, so it is never logged.
    pub redis_url: String,
    /// With Redis Sentinel: the monitored master's name. `redis_url` and `sentinels` are
    /// then the Sentinels' addresses, and the gateway asks them for the master again
    /// whenever the master stops answering (after a failover).
    #[serde(default)]
    pub sentinel_master: Option<String>,
    /// More Sentinel addresses besides `redis_url` (with `sentinel_master`).
    #[serde(default)]
    pub sentinels: Vec<String>,
    /// PEM file of the CA that signed the Redis server's certificate (`rediss://`);
    /// without it the system roots are used.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Prefix of every key this gateway writes; gateways sharing limits share it.
    #[serde(default = "default_key_prefix")]
    pub key_prefix: String,
    /// The longest one Redis command may take before the limit falls back to
    /// `on_unavailable`.
    #[serde(
        default = "default_timeout",
        deserialize_with = "duration::deserialize"
    )]
    pub timeout: Duration,
    /// What a shared limit does while Redis cannot be reached.
    #[serde(default)]
    pub on_unavailable: OnUnavailable,
    /// How often counted usage (LLM tokens and cost) is added to Redis and the shared
    /// totals are read back; also the longest a gateway keeps a lease of rate-limit
    /// tokens. Sets how far a fleet can overshoot a token budget (see the README).
    #[serde(
        default = "default_sync_interval",
        deserialize_with = "duration::deserialize"
    )]
    pub sync_interval: Duration,
    /// Keep the admin API's plugin records in Redis, versioned: a change made through
    /// any gateway is announced and applied by every gateway of the fleet.
    #[serde(default)]
    pub plugins: bool,
    /// How often an unreachable Redis is tried again.
    #[serde(
        default = "default_retry_interval",
        deserialize_with = "duration::deserialize"
    )]
    pub retry_interval: Duration,
}

impl std::fmt::Debug for ClusterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterConfig")
            .field("redis_url", &redacted(&self.redis_url))
            .field("sentinel_master", &self.sentinel_master)
            .field(
                "sentinels",
                &self
                    .sentinels
                    .iter()
                    .map(|u| redacted(u))
                    .collect::<Vec<_>>(),
            )
            .field("ca_file", &self.ca_file)
            .field("key_prefix", &self.key_prefix)
            .field("timeout", &self.timeout)
            .field("on_unavailable", &self.on_unavailable)
            .field("sync_interval", &self.sync_interval)
            .field("retry_interval", &self.retry_interval)
            .field("plugins", &self.plugins)
            .finish()
    }
}

/// `url` without its user information, for logs and errors.
pub fn redacted(url: &str) -> String {
    match (url.split_once("://"), url.rfind('@')) {
        (Some((scheme, _)), Some(at)) if at > scheme.len() => {
            format!("{scheme}://…@{}", &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

fn default_key_prefix() -> String {
    "microgateway:".to_string()
}

fn default_timeout() -> Duration {
    Duration::from_millis(250)
}

fn default_sync_interval() -> Duration {
    Duration::from_millis(50)
}

fn default_retry_interval() -> Duration {
    Duration::from_secs(1)
}

#[cfg(test)]
mod tests {
    use super::redacted;

    #[test]
    fn the_password_never_shows() {
        assert_eq!(
            redacted("redis://user:pw@127.0.0.1:6379/0"),
            "redis://…@127.0.0.1:6379/0"
        );
        assert_eq!(redacted("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(redacted("unix:///run/redis.sock"), "unix:///run/redis.sock");
    }
}
