//! Checks of `[cluster]`: the Redis URL's scheme and the CA file.

use super::readable_file;
use crate::config::{ClusterConfig, ConfigError};

/// The URL schemes the Redis client accepts.
const SCHEMES: &[&str] = &["redis://", "rediss://", "unix://", "redis+unix://"];

/// Refuses a `[cluster]` the gateway could not connect with.
pub(super) fn validate_cluster(c: &ClusterConfig) -> Result<(), ConfigError> {
    if !SCHEMES.iter().any(|s| c.redis_url.starts_with(s)) {
        return Err(ConfigError::invalid(
            "cluster.redis_url",
            format!(
                "{:?}: must start with one of {}",
                crate::config::redacted(&c.redis_url),
                SCHEMES.join(", ")
            ),
        ));
    }
    if let Some(ca) = &c.ca_file {
        if !c.redis_url.starts_with("rediss://") {
            return Err(ConfigError::invalid(
                "cluster.ca_file",
                "only used with a rediss:// URL",
            ));
        }
        readable_file("cluster.ca_file", ca)?;
    }
    if c.key_prefix.is_empty() {
        return Err(ConfigError::invalid(
            "cluster.key_prefix",
            "must not be empty: gateways sharing a Redis need a name for their keys",
        ));
    }
    Ok(())
}
