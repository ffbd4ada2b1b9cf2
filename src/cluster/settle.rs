//! Batched settlement of shared usage counters (LLM tokens and cost).
//!
//! Usage is known only after a response, so it is never on a request's path: it is
//! queued here ([`Settle::add`]) and every `sync_interval` one pipeline adds every
//! queued delta (`INCRBY` + `PEXPIRE`) and reads back the counters this gateway has
//! looked at recently (`GET`). A check reads [`Settle::total`]: the shared total as last
//! read, plus what this gateway has queued or sent since. While Redis is down the
//! deltas stay queued (up to [`MAX_KEYS`] counters) and are added when it answers
//! again, so no usage is lost to an outage.

use super::Cluster;
use std::collections::HashMap;
use std::sync::{Mutex, Weak};
use std::time::Duration;
use tokio::time::Instant;

/// The most counters kept waiting for Redis; usage of a new counter beyond this is
/// dropped (and counted).
pub const MAX_KEYS: usize = 100_000;

/// A counter not read for this long is no longer read back.
const WATCH_FOR: Duration = Duration::from_secs(10);

/// A delta waiting to be added, with the counter's lifetime in milliseconds.
#[derive(Debug, Clone, Copy)]
struct Delta {
    value: u64,
    ttl_ms: u64,
}

#[derive(Debug, Default)]
struct State {
    /// Queued since the last round.
    pending: HashMap<String, Delta>,
    /// Sent in the round under way.
    sending: HashMap<String, Delta>,
    /// Shared totals as last read, and when a check last asked for each.
    known: HashMap<String, (u64, Instant)>,
}

/// The usage counters of this gateway waiting for, or read back from, Redis.
#[derive(Debug, Default)]
pub struct Settle {
    state: Mutex<State>,
}

impl Settle {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `value` to be added to the counter `key`, which Redis keeps for `ttl`.
    pub fn add(&self, key: String, value: u64, ttl: Duration) {
        if value == 0 {
            return;
        }
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1000);
        let mut s = self.state();
        let len = s.pending.len();
        match s.pending.get_mut(&key) {
            Some(d) => {
                d.value = d.value.saturating_add(value);
                d.ttl_ms = d.ttl_ms.max(ttl_ms);
            }
            None if len >= MAX_KEYS => crate::metrics::cluster_dropped(),
            None => {
                s.pending.insert(key, Delta { value, ttl_ms });
            }
        }
    }

    /// The shared total of `key` as last read plus this gateway's usage since, or
    /// `None` when it was never read (the caller reads it with [`Settle::fetch`]).
    /// Asking keeps the counter read back every round.
    pub fn total(&self, key: &str) -> Option<u64> {
        let mut s = self.state();
        let local =
            s.pending.get(key).map_or(0, |d| d.value) + s.sending.get(key).map_or(0, |d| d.value);
        let (known, asked) = s.known.get_mut(key)?;
        *asked = Instant::now();
        Some(known.saturating_add(local))
    }

    /// What this gateway has queued or is sending for `key` (for a check while Redis is
    /// down and the shared total was never read).
    pub fn unsettled(&self, key: &str) -> u64 {
        let s = self.state();
        s.pending.get(key).map_or(0, |d| d.value) + s.sending.get(key).map_or(0, |d| d.value)
    }

    /// Reads the shared totals of `keys` now (one `MGET`), keeps them and returns each
    /// one's [`Settle::total`].
    pub async fn fetch(
        &self,
        cluster: &Cluster,
        keys: &[String],
    ) -> Result<Vec<u64>, super::ClusterError> {
        let values: Vec<Option<u64>> = cluster
            .run("read", |mut c| async move {
                redis::cmd("MGET").arg(keys).query_async(&mut c).await
            })
            .await?;
        let now = Instant::now();
        {
            let mut s = self.state();
            for (key, value) in keys.iter().zip(&values) {
                s.known.insert(key.clone(), (value.unwrap_or(0), now));
            }
        }
        Ok(keys
            .iter()
            .map(|k| self.total(k).unwrap_or_default())
            .collect())
    }

    /// One round: adds every queued delta and reads back the watched counters. On
    /// failure the deltas are queued again.
    pub(super) async fn round(&self, cluster: &Cluster) {
        let (sending, watched) = {
            let mut s = self.state();
            let now = Instant::now();
            s.known
                .retain(|_, (_, asked)| now.duration_since(*asked) < WATCH_FOR);
            let pending = std::mem::take(&mut s.pending);
            s.sending = pending.clone();
            let watched: Vec<String> = s
                .known
                .keys()
                .filter(|k| !pending.contains_key(*k))
                .cloned()
                .collect();
            (pending, watched)
        };
        crate::metrics::cluster_pending(sending.len());
        if sending.is_empty() && watched.is_empty() {
            return;
        }
        let added: Vec<(&String, &Delta)> = sending.iter().collect();
        let mut pipe = redis::pipe();
        for (key, d) in &added {
            pipe.cmd("INCRBY").arg(key.as_str()).arg(d.value);
            pipe.cmd("PEXPIRE").arg(key.as_str()).arg(d.ttl_ms).ignore();
        }
        for key in &watched {
            pipe.cmd("GET").arg(key.as_str());
        }
        let result: Result<Vec<Option<u64>>, _> = cluster
            .run(
                "settle",
                |mut c| async move { pipe.query_async(&mut c).await },
            )
            .await;
        let now = Instant::now();
        let mut s = self.state();
        s.sending.clear();
        match result {
            Ok(values) => {
                let keys = added.iter().map(|(k, _)| *k).chain(watched.iter());
                for (key, value) in keys.zip(values) {
                    let asked = s.known.get(key).map_or(now, |(_, asked)| *asked);
                    s.known.insert(key.clone(), (value.unwrap_or(0), asked));
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, keys = sending.len(), "cluster: settlement deferred");
                for (key, d) in sending {
                    let entry = s.pending.entry(key).or_insert(Delta {
                        value: 0,
                        ttl_ms: d.ttl_ms,
                    });
                    entry.value = entry.value.saturating_add(d.value);
                }
            }
        }
        crate::metrics::cluster_pending(s.pending.len());
    }
}

/// The cluster's background task: every `sync_interval` a settlement round while Redis
/// answers, a `PING` every `retry_interval` while it does not. It ends with the
/// cluster, after a last round.
pub async fn run(cluster: Weak<Cluster>) {
    let Some((stop, every)) = cluster.upgrade().map(|c| (c.stop.clone(), c.sync_interval)) else {
        return;
    };
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut next_probe = Instant::now();
    loop {
        let stopping = tokio::select! {
            _ = tick.tick() => false,
            () = stop.cancelled() => true,
        };
        let Some(c) = cluster.upgrade() else { return };
        if !c.is_up() && Instant::now() >= next_probe {
            next_probe = Instant::now() + c.retry_interval;
            let _ = c.probe().await;
        }
        if c.is_up() {
            c.settle.round(&c).await;
        }
        if stopping {
            return;
        }
    }
}
