//! `routes[].upgrade` and `[routes.upgraded]`: which upgrade protocols a route passes
//! (HTTP/1.1 `Upgrade`, HTTP/2 extended CONNECT) and the limits of the connections it
//! upgrades.

use super::duration_serde as duration;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The upgrade protocols a route passes when no `upgrade` is set.
pub fn default_upgrade() -> Vec<String> {
    vec!["websocket".to_string()]
}

/// `[routes.upgraded]`: the limits of a route's upgraded connections.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UpgradedConfig {
    /// No byte either way for this long (pings and pongs count) closes the connection.
    #[serde(
        default = "default_idle_timeout",
        deserialize_with = "duration::deserialize",
        serialize_with = "duration::serialize"
    )]
    pub idle_timeout: Duration,
    /// The longest an upgraded connection lives.
    #[serde(
        default = "default_max_duration",
        deserialize_with = "duration::deserialize",
        serialize_with = "duration::serialize"
    )]
    pub max_duration: Duration,
    /// Upgraded connections of the route open at once; one more is refused with 503.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// The largest WebSocket message (frames reassembled) when the route has message
    /// hooks; a larger one closes the session with 1009. Unused without hooks.
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
}

impl Default for UpgradedConfig {
    fn default() -> UpgradedConfig {
        UpgradedConfig {
            idle_timeout: default_idle_timeout(),
            max_duration: default_max_duration(),
            max_connections: default_max_connections(),
            max_message_bytes: default_max_message_bytes(),
        }
    }
}

fn default_idle_timeout() -> Duration {
    Duration::from_secs(300)
}

fn default_max_duration() -> Duration {
    Duration::from_secs(24 * 3600)
}

fn default_max_message_bytes() -> usize {
    16 * 1024 * 1024
}

fn default_max_connections() -> usize {
    10_000
}
