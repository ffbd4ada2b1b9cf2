//! The resilience keys of an upstream group: how targets are balanced (`balance`,
//! `weights`, `hash_on`), when a failing target is ejected (`max_fails`,
//! `fail_timeout`, `max_fail_timeout`), the optional active check
//! (`[upstreams.health_check]`) and the circuit breaker (`max_requests`).
//! `upstream` turns them into its health, balancing and breaker state. Numbers are
//! `u64`, so an out-of-range value is refused by its range, naming the key.

use super::duration_serde as duration;
use serde::Deserialize;
use std::time::Duration;

/// `balance`: how a group chooses a target for each attempt.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    /// Each worker thread walks the targets in turn.
    #[default]
    RoundRobin,
    /// Round robin over a schedule in which each target appears `weights[i]` times.
    Weighted,
    /// Power of two choices: the one of two sampled targets with fewer attempts in flight.
    LeastRequest,
    /// A hash ring with virtual nodes over the `hash_on` key; an ejected target passes
    /// its keys to the next one on the ring.
    ConsistentHash,
}

impl Balance {
    /// The name as configured, for the admin API.
    pub fn as_str(self) -> &'static str {
        match self {
            Balance::RoundRobin => "round_robin",
            Balance::Weighted => "weighted",
            Balance::LeastRequest => "least_request",
            Balance::ConsistentHash => "consistent_hash",
        }
    }
}

/// `hash_on`: the request fact `consistent_hash` hashes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum HashOn {
    /// `hash_on = { header = "x-user" }`: the first value of a request header.
    Header(String),
    /// `hash_on = { cookie = "session" }`: the value of a request cookie.
    Cookie(String),
    /// `hash_on = "client_ip"`: the client's address.
    ClientIp,
}

/// `[upstreams.health_check]`: an active HTTP check of every target of the group.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckConfig {
    /// Path requested with `GET` on each target (its base path is prepended).
    #[serde(default = "default_path")]
    pub path: String,
    /// Time between two checks of one target.
    #[serde(
        default = "default_interval",
        deserialize_with = "duration::deserialize"
    )]
    pub interval: Duration,
    /// Time allowed for the check's response head.
    #[serde(
        default = "default_check_timeout",
        deserialize_with = "duration::deserialize"
    )]
    pub timeout: Duration,
    /// Consecutive passed checks that bring an unhealthy target back.
    #[serde(default = "default_threshold")]
    pub healthy_threshold: u64,
    /// Consecutive failed checks that mark a target unhealthy.
    #[serde(default = "default_threshold")]
    pub unhealthy_threshold: u64,
    /// Statuses that pass the check; empty means any 2xx.
    #[serde(default)]
    pub expected_statuses: Vec<u64>,
}

fn default_path() -> String {
    "/".into()
}

fn default_interval() -> Duration {
    Duration::from_secs(10)
}

fn default_check_timeout() -> Duration {
    Duration::from_secs(2)
}

fn default_threshold() -> u64 {
    2
}

pub(super) fn default_max_fails() -> u64 {
    3
}

pub(super) fn default_fail_timeout() -> Duration {
    Duration::from_secs(10)
}

pub(super) fn default_max_fail_timeout() -> Duration {
    Duration::from_secs(300)
}

#[cfg(test)]
mod tests {
    use crate::config::{Balance, Config, HashOn};

    fn upstream(extra: &str) -> Result<Config, String> {
        Config::from_toml(&format!(
            "[[upstreams]]\nname = \"local-app\"\ntargets = [\"http://127.0.0.1:1\", \"http://127.0.0.1:2\"]\n{extra}\n"
        ))
        .map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_are_round_robin_with_passive_ejection() {
        let u = &upstream("").unwrap().upstreams[0];
        assert_eq!(u.balance, Balance::RoundRobin);
        assert_eq!(u.max_fails, 3);
        assert_eq!(u.fail_timeout, std::time::Duration::from_secs(10));
        assert!(u.health_check.is_none() && u.max_requests.is_none());
    }

    #[test]
    fn hash_on_takes_three_shapes() {
        for (text, want) in [
            ("{ header = \"x-user\" }", HashOn::Header("x-user".into())),
            ("{ cookie = \"s\" }", HashOn::Cookie("s".into())),
            ("\"client_ip\"", HashOn::ClientIp),
        ] {
            let c = upstream(&format!("balance = \"consistent_hash\"\nhash_on = {text}")).unwrap();
            assert_eq!(c.upstreams[0].hash_on, Some(want));
        }
    }

    #[test]
    fn inconsistent_keys_are_refused_by_dotted_key() {
        for (extra, key) in [
            ("weights = [1, 2]", "upstreams[0].weights: is only used"),
            (
                "balance = \"weighted\"\nweights = [1]",
                "upstreams[0].weights: needs one weight per target",
            ),
            (
                "balance = \"consistent_hash\"",
                "upstreams[0].hash_on: is required",
            ),
            (
                "hash_on = \"client_ip\"",
                "upstreams[0].hash_on: is only used",
            ),
            (
                "balance = \"consistent_hash\"\nhash_on = { header = \"bad header\" }",
                "upstreams[0].hash_on.header",
            ),
            (
                "balance = \"consistent_hash\"\nhash_on = { cookie = \"a;b\" }",
                "upstreams[0].hash_on.cookie",
            ),
            (
                "health_check = { path = \"health\" }",
                "upstreams[0].health_check.path",
            ),
            (
                "weights = [0]\nbalance = \"weighted\"",
                "upstreams[0].weights[0]",
            ),
            (
                "health_check = { interval = \"1ms\" }",
                "upstreams[0].health_check.interval",
            ),
        ] {
            let e = upstream(extra).unwrap_err();
            assert!(e.contains(key), "{extra}: {e}");
        }
        assert!(upstream("health_check = { unknown = 1 }").is_err());
    }
}
