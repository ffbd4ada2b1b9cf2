//! Checks of `[cluster]`: the Redis URL's scheme and the CA file.

use super::readable_file;
use crate::config::{ClusterConfig, ConfigError};

/// The URL schemes the Redis client accepts.
const SCHEMES: &[&str] = &["redis://", "rediss://", "unix://", "redis+unix://"];

/// Refuses `llm.cache.backend = "redis"` without a `[cluster]` to keep it in.
pub(super) fn validate_cache_backend(config: &crate::config::Config) -> Result<(), ConfigError> {
    if config.llm.cache.backend == crate::config::CacheBackend::Redis && config.cluster.is_none() {
        return Err(ConfigError::invalid(
            "llm.cache.backend",
            "\"redis\" needs a [cluster] section with the Redis to use",
        ));
    }
    Ok(())
}

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
    for (i, url) in c.sentinels.iter().enumerate() {
        if !url.starts_with("redis://") {
            return Err(ConfigError::invalid(
                format!("cluster.sentinels[{i}]"),
                format!(
                    "{:?}: a Sentinel address is redis://host:port",
                    crate::config::redacted(url)
                ),
            ));
        }
    }
    match &c.sentinel_master {
        Some(name) if name.is_empty() => {
            return Err(ConfigError::invalid(
                "cluster.sentinel_master",
                "must not be empty",
            ));
        }
        Some(_) if !c.redis_url.starts_with("redis://") || c.ca_file.is_some() => {
            return Err(ConfigError::invalid(
                "cluster.redis_url",
                "with sentinel_master it is a Sentinel address, redis://host:port (Sentinel over TLS is not supported)",
            ));
        }
        None if !c.sentinels.is_empty() => {
            return Err(ConfigError::invalid(
                "cluster.sentinels",
                "only used with sentinel_master",
            ));
        }
        _ => {}
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

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn refusal(toml: &str) -> String {
        match Config::from_toml(toml) {
            Ok(_) => panic!("accepted: {toml}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn bad_cluster_settings_name_their_key() {
        let e = refusal("[llm.cache]\nbackend = \"redis\"\n");
        assert!(e.contains("llm.cache.backend"), "{e}");
        let e = refusal("[cluster]\nredis_url = \"http://user:secret@h:1\"\n");
        assert!(
            e.contains("cluster.redis_url") && !e.contains("secret"),
            "{e}"
        );
        let e = refusal("[cluster]\nredis_url = \"redis://h:1\"\nca_file = \"/etc/hosts\"\n");
        assert!(e.contains("cluster.ca_file"), "{e}");
        let e = refusal("[cluster]\nredis_url = \"redis://h:1\"\nkey_prefix = \"\"\n");
        assert!(e.contains("cluster.key_prefix"), "{e}");
        let e = refusal("[cluster]\nredis_url = \"redis://h:1\"\non_unavailable = \"maybe\"\n");
        assert!(e.contains("on_unavailable"), "{e}");
        assert!(Config::from_toml("[cluster]\nredis_url = \"unix:///run/redis.sock\"\n").is_ok());
        let e = refusal("[cluster]\nredis_url = \"redis://h:1\"\nsentinels = [\"redis://h:2\"]\n");
        assert!(e.contains("cluster.sentinels"), "{e}");
        let e = refusal("[cluster]\nredis_url = \"rediss://h:1\"\nsentinel_master = \"m\"\n");
        assert!(e.contains("cluster.redis_url"), "{e}");
        let sentinel = "[cluster]\nredis_url = \"redis://h:1\"\nsentinel_master = \"m\"\nsentinels = [\"redis://h:2\"]\n";
        assert!(Config::from_toml(sentinel).is_ok());
    }
}
