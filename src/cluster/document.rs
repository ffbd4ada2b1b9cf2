//! A versioned document the fleet shares (the admin API's plugin records): stored in
//! Redis with a version counter, replaced atomically, and announced on a pub/sub
//! channel so every gateway fetches it at once.
//!
//! `<prefix><name>:version` counts the changes, `<prefix><name>:doc` holds the latest
//! document, and `<prefix><name>:changed` carries the new version. A gateway that misses
//! an announcement (it was disconnected, or joins later) still converges: its watcher
//! also compares versions every `interval`.

use super::{Cluster, ClusterError};
use futures_util::StreamExt;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::Notify;

/// Replaces the document and announces its version, in one script.
const PUBLISH: &str = r#"
local v = redis.call('INCR', KEYS[1])
redis.call('SET', KEYS[2], ARGV[1])
redis.call('PUBLISH', ARGV[2], v)
return v
"#;

/// One shared document, by name.
#[derive(Debug, Clone)]
pub struct Document {
    version_key: String,
    doc_key: String,
    channel: String,
}

impl Document {
    /// The document `name` of `cluster`'s fleet.
    pub fn new(cluster: &Cluster, name: &str) -> Document {
        Document {
            version_key: cluster.key(&format!("{name}:version")),
            doc_key: cluster.key(&format!("{name}:doc")),
            channel: cluster.key(&format!("{name}:changed")),
        }
    }

    /// Stores `text` as the new document; returns its version.
    pub async fn publish(&self, cluster: &Cluster, text: &str) -> Result<u64, ClusterError> {
        let script = redis::Script::new(PUBLISH);
        let (keys, channel) = ([&self.version_key, &self.doc_key], &self.channel);
        cluster
            .run("publish", |mut c| async move {
                script
                    .key(keys[0])
                    .key(keys[1])
                    .arg(text)
                    .arg(channel)
                    .invoke_async(&mut c)
                    .await
            })
            .await
    }

    /// The current version and document (`0` and `None` before the first publish).
    pub async fn fetch(&self, cluster: &Cluster) -> Result<(u64, Option<String>), ClusterError> {
        let keys = [&self.version_key, &self.doc_key];
        let (version, text): (Option<u64>, Option<String>) = cluster
            .run("read", |mut c| async move {
                redis::cmd("MGET").arg(&keys[..]).query_async(&mut c).await
            })
            .await?;
        Ok((version.unwrap_or(0), text))
    }

    /// A notifier woken on every announcement, and at least every `interval`; the
    /// subscription (its own Redis connection) reconnects by itself and ends with the
    /// cluster.
    pub fn watch(&self, cluster: &Arc<Cluster>, interval: Duration) -> Arc<Notify> {
        let notify = Arc::new(Notify::new());
        let weak = Arc::downgrade(cluster);
        crate::task::detach(
            "cluster-subscribe",
            subscribe(weak.clone(), self.channel.clone(), notify.clone()),
        );
        crate::task::detach("cluster-poll", poll(weak, interval, notify.clone()));
        notify
    }
}

/// Wakes `notify` every `interval` while the cluster lives.
async fn poll(cluster: Weak<Cluster>, interval: Duration, notify: Arc<Notify>) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(c) = cluster.upgrade() else { return };
        if c.stop.is_cancelled() {
            return;
        }
        notify.notify_one();
    }
}

/// Subscribes to `channel` and wakes `notify` on every message; after a lost
/// connection it subscribes again (and wakes `notify`, since it may have missed some).
async fn subscribe(cluster: Weak<Cluster>, channel: String, notify: Arc<Notify>) {
    loop {
        let Some((client, stop, retry)) = cluster.upgrade().map(|c| {
            (
                redis::Client::clone(&c.client.load()),
                c.stop.clone(),
                c.retry_interval,
            )
        }) else {
            return;
        };
        let subscribed = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            notify.notify_one();
            let mut messages = pubsub.on_message();
            while messages.next().await.is_some() {
                notify.notify_one();
            }
            Ok::<(), redis::RedisError>(())
        };
        tokio::select! {
            result = subscribed => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "cluster: subscription lost; subscribing again");
                }
            }
            () = stop.cancelled() => return,
        }
        tokio::select! {
            () = tokio::time::sleep(retry) => {}
            () = stop.cancelled() => return,
        }
    }
}
