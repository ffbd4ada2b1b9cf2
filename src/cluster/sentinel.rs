//! Redis Sentinel (`cluster.sentinel_master`): the Sentinels are asked which node is the
//! master, at start and again whenever Redis stopped answering, so a failover moves the
//! gateway to the new master within one `retry_interval` of Sentinel promoting it.

use super::ClusterError;
use crate::config::ClusterConfig;
use redis::sentinel::{SentinelClient, SentinelServerType};
use std::time::Duration;

/// The Sentinels of one monitored master.
pub(super) struct Sentinel {
    client: tokio::sync::Mutex<SentinelClient>,
    master: String,
}

impl Sentinel {
    /// The Sentinels of `config`, or `None` without `sentinel_master`.
    pub(super) fn new(config: &ClusterConfig) -> Result<Option<Sentinel>, ClusterError> {
        let Some(master) = &config.sentinel_master else {
            return Ok(None);
        };
        let nodes: Vec<&str> = std::iter::once(config.redis_url.as_str())
            .chain(config.sentinels.iter().map(String::as_str))
            .collect();
        let client =
            SentinelClient::build(nodes, master.as_str(), None, SentinelServerType::Master)
                .map_err(|error| ClusterError::Setup {
                    url: crate::config::redacted(&config.redis_url),
                    error,
                })?;
        Ok(Some(Sentinel {
            client: tokio::sync::Mutex::new(client),
            master: master.clone(),
        }))
    }

    /// A client for the master the Sentinels name now.
    pub(super) async fn master(&self, timeout: Duration) -> Result<redis::Client, ClusterError> {
        let mut client = self.client.lock().await;
        match tokio::time::timeout(timeout, client.async_get_client()).await {
            Ok(Ok(master)) => Ok(master),
            Ok(Err(e)) => {
                tracing::debug!(master = %self.master, error = %e, "cluster: no master from the sentinels");
                Err(ClusterError::Redis(e))
            }
            Err(_) => Err(ClusterError::Timeout(timeout)),
        }
    }
}
