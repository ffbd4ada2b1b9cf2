//! The documented range of every numeric and duration key, and the check enforcing it.
//!
//! [`RANGES`] is the one table: `check` (and so `validate`, `microgateway check` and
//! start-up) enforces it, and the README's range table repeats it (`tests/config`
//! compares them). Code that hands configured values to Tokio or hyper clamps them too
//! ([`crate::deadline`], [`MAX_WORKERS`]…), for embedders that build a `Config` by hand.
//! A key inside an array is written with `[]` (`upstreams[].connect_timeout`); an error
//! names the element (`upstreams[2].connect_timeout`).
//!
//! The ranges are what an operator can sensibly mean, well inside what the runtime can
//! represent: Tokio panics on semaphores and channels beyond `usize::MAX >> 3` permits,
//! hyper allocates room for `max_header_count` headers per request, and adding a
//! duration near `u64::MAX` seconds to the current time overflows.

use super::{Config, ConfigError};

mod values;
use std::fmt;
use std::time::Duration;
pub use values::values;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;
const TIB: u64 = 1024 * GIB;

const MS: Duration = Duration::from_millis(1);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);

/// Largest `server.workers` (proxy worker threads), owned by [`crate::worker`], which
/// caps a hand-built `Config` at it too.
pub use crate::worker::MAX_WORKERS;
/// Largest `server.max_header_count`.
pub const MAX_HEADER_COUNT: usize = 10_000;
/// Largest `server.max_header_bytes` (1 MiB).
pub const MAX_HEADER_BYTES: usize = 1024 * 1024;

/// The values one key accepts, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// A number of things (connections, headers, threads, entries).
    Count {
        /// Smallest accepted value.
        min: u64,
        /// Largest accepted value.
        max: u64,
    },
    /// A signed number (`plugins[].order`).
    Signed {
        /// Smallest accepted value.
        min: i64,
        /// Largest accepted value.
        max: i64,
    },
    /// A size in bytes.
    Bytes {
        /// Smallest accepted value.
        min: u64,
        /// Largest accepted value.
        max: u64,
    },
    /// A duration (`"30s"`).
    Duration {
        /// Shortest accepted value.
        min: Duration,
        /// Longest accepted value.
        max: Duration,
    },
}

/// A configured value as [`Limit::admits`] compares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value {
    /// A count or a size in bytes.
    Unsigned(u64),
    /// A signed number.
    Signed(i64),
    /// A duration.
    Duration(Duration),
}

/// One row of [`RANGES`].
#[derive(Debug, Clone, Copy)]
pub struct Range {
    /// Dotted key; `[]` stands for any element of an array.
    pub key: &'static str,
    /// The accepted values.
    pub limit: Limit,
}

const fn count(key: &'static str, min: u64, max: u64) -> Range {
    Range {
        key,
        limit: Limit::Count { min, max },
    }
}

const fn bytes(key: &'static str, min: u64, max: u64) -> Range {
    Range {
        key,
        limit: Limit::Bytes { min, max },
    }
}

const fn duration(key: &'static str, min: Duration, max: Duration) -> Range {
    Range {
        key,
        limit: Limit::Duration { min, max },
    }
}

/// Every numeric and duration key of the configuration with its range, in file order.
pub const RANGES: &[Range] = &[
    count("server.workers", 0, MAX_WORKERS as u64),
    count("server.max_connections", 1, 1_000_000),
    duration("server.header_read_timeout", MS, DAY),
    duration("server.body_read_timeout", MS, DAY),
    duration("server.idle_timeout", MS, DAY),
    duration("server.shutdown_timeout", Duration::ZERO, HOUR),
    count("server.max_header_count", 1, MAX_HEADER_COUNT as u64),
    bytes("server.max_header_bytes", 256, MAX_HEADER_BYTES as u64),
    bytes("server.max_body_bytes", 0, TIB),
    duration(
        "admin.health_check_interval",
        Duration::from_millis(100),
        DAY,
    ),
    duration("upstreams[].connect_timeout", MS, DAY),
    duration("upstreams[].pool_idle_timeout", Duration::ZERO, DAY),
    duration("upstreams[].llm.key_cooldown", Duration::ZERO, DAY),
    duration("upstreams[].llm.key_auth_cooldown", Duration::ZERO, DAY),
    duration("upstreams[].llm.key_cooldown_max", Duration::ZERO, DAY),
    count("upstreams[].pool_max_idle_per_host", 0, 100_000),
    count("upstreams[].weights[]", 1, 1000),
    count("upstreams[].max_fails", 0, 1000),
    duration("upstreams[].fail_timeout", MS, DAY),
    duration("upstreams[].max_fail_timeout", MS, DAY),
    duration(
        "upstreams[].health_check.interval",
        Duration::from_millis(100),
        DAY,
    ),
    duration("upstreams[].health_check.timeout", MS, HOUR),
    count("upstreams[].health_check.healthy_threshold", 1, 1000),
    count("upstreams[].health_check.unhealthy_threshold", 1, 1000),
    count("upstreams[].health_check.expected_statuses[]", 100, 599),
    count("upstreams[].max_requests", 1, 10_000_000),
    count("upstreams[].max_connections", 1, 10_000_000),
    count("upstreams[].max_pending", 0, 10_000_000),
    duration("routes[].timeout", MS, DAY),
    duration("routes[].body_timeout", MS, DAY),
    count("routes[].retry.attempts", 0, 10),
    duration("routes[].retry.backoff", Duration::ZERO, HOUR),
    duration("routes[].retry.backoff_max", Duration::ZERO, HOUR),
    count("routes[].retry.budget_percent", 0, 100),
    count("routes[].retry.budget_min", 0, 100_000),
    duration("routes[].retry.retry_after_max", Duration::ZERO, HOUR),
    bytes("routes[].retry.max_body_bytes", 0, 64 * MIB),
    duration(
        "routes[].upgraded.idle_timeout",
        Duration::from_secs(1),
        DAY,
    ),
    duration(
        "routes[].upgraded.max_duration",
        Duration::from_secs(1),
        Duration::from_secs(30 * 24 * 3600),
    ),
    count("routes[].upgraded.max_connections", 1, 1_000_000),
    bytes("routes[].upgraded.max_message_bytes", KIB, GIB),
    count("routes[].llm.default_max_tokens", 1, 10_000_000),
    duration(
        "routes[].llm.cache.ttl",
        Duration::from_secs(1),
        Duration::from_secs(30 * 24 * 3600),
    ),
    Range {
        key: "plugins[].order",
        limit: Limit::Signed {
            min: i32::MIN as i64,
            max: i32::MAX as i64,
        },
    },
    duration("plugins[].timeout", MS, DAY),
    count("pipeline.collect_queue_capacity", 1, 10_000_000),
    bytes("pipeline.max_response_buffer_bytes", 0, GIB),
    bytes("pipeline.stream_accumulate_bytes", 0, GIB),
    duration("plugin_runtime.start_timeout", MS, DAY),
    duration(
        "plugin_runtime.ping_interval",
        Duration::from_millis(100),
        DAY,
    ),
    duration("plugin_runtime.shutdown_grace", Duration::ZERO, HOUR),
    duration("plugin_runtime.max_restart_backoff", MS, DAY),
    count("oci.keep_versions", 1, 1000),
    bytes("oci.max_cache_bytes", 0, TIB),
    bytes("oci.max_plugin_bytes", 1, 4 * GIB),
    duration("oci.resolve_timeout", MS, DAY),
    bytes("llm.cache.max_bytes", 0, 64 * GIB),
    bytes("llm.cache.max_entry_bytes", KIB, GIB),
    duration("cluster.timeout", MS, Duration::from_secs(10)),
    duration("cluster.sync_interval", MS, Duration::from_secs(10)),
    duration("cluster.retry_interval", Duration::from_millis(10), HOUR),
];

impl Limit {
    /// True when `value` is of this kind and within both ends.
    pub fn admits(&self, value: Value) -> bool {
        match (*self, value) {
            (Limit::Count { min, max } | Limit::Bytes { min, max }, Value::Unsigned(v)) => {
                (min..=max).contains(&v)
            }
            (Limit::Signed { min, max }, Value::Signed(v)) => (min..=max).contains(&v),
            (Limit::Duration { min, max }, Value::Duration(v)) => (min..=max).contains(&v),
            _ => false,
        }
    }

    /// `value` written the way this limit writes its ends (bytes with a unit).
    pub fn show(&self, value: Value) -> String {
        match (self, value) {
            (Limit::Bytes { .. }, Value::Unsigned(v)) => show_bytes(v),
            (_, Value::Unsigned(v)) => v.to_string(),
            (_, Value::Signed(v)) => v.to_string(),
            (_, Value::Duration(v)) => humantime::format_duration(v).to_string(),
        }
    }

    fn ends(&self) -> (String, String) {
        match *self {
            Limit::Count { min, max } => (min.to_string(), max.to_string()),
            Limit::Signed { min, max } => (min.to_string(), max.to_string()),
            Limit::Bytes { min, max } => (show_bytes(min), show_bytes(max)),
            Limit::Duration { min, max } => (
                humantime::format_duration(min).to_string(),
                humantime::format_duration(max).to_string(),
            ),
        }
    }
}

/// `min–max`, as in the README's range table.
impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (min, max) = self.ends();
        write!(f, "{min} – {max}")
    }
}

/// Bytes in the largest binary unit that divides them exactly (`16 KiB`, `100 B`).
fn show_bytes(n: u64) -> String {
    for (unit, name) in [(TIB, "TiB"), (GIB, "GiB"), (MIB, "MiB"), (KIB, "KiB")] {
        if n >= unit && n.is_multiple_of(unit) {
            return format!("{} {name}", n / unit);
        }
    }
    format!("{n} B")
}

/// The row of [`RANGES`] for `key`, with array indices written as `[]`.
pub fn range_of(key: &str) -> Option<&'static Range> {
    let generic = generic_key(key);
    RANGES.iter().find(|r| r.key == generic)
}

/// `upstreams[2].connect_timeout` → `upstreams[].connect_timeout`.
fn generic_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut in_index = false;
    for c in key.chars() {
        match c {
            '[' => {
                in_index = true;
                out.push('[');
            }
            ']' => {
                in_index = false;
                out.push(']');
            }
            _ if in_index => {}
            _ => out.push(c),
        }
    }
    out
}

/// Refuses the first value outside its range, naming its key.
pub(super) fn check(config: &Config) -> Result<(), ConfigError> {
    for (key, value) in values(config) {
        let Some(range) = range_of(&key) else {
            return Err(ConfigError::invalid(key, "has no documented range"));
        };
        if !range.limit.admits(value) {
            let (min, max) = range.limit.ends();
            let got = range.limit.show(value);
            return Err(ConfigError::invalid(
                key,
                format!("must be between {min} and {max}, got {got}"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
