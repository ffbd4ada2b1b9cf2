//! Leases: a few units of a shared limit taken from Redis with one atomic script and
//! spent locally, so admission costs no Redis round trip per request.
//!
//! A lease of a token bucket ([`Leases::bucket`]) is kept at most `sync_interval`; a
//! lease of a window ([`Leases::window`]) until the window ends. Redis grants at most an
//! eighth of what is left (at least one), so as a limit runs out the leases shrink to
//! one unit and the last ones are taken one request at a time: the fleet never admits
//! more than the limit, and what it leaves unused is at most the leases its gateways
//! hold when the limit is reached. A refusal is remembered locally too (for
//! `sync_interval`, or until the window ends), so a flood of refused requests does not
//! become a flood of Redis calls.

use super::{Cluster, ClusterError, scripts};
use moka::sync::Cache;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// The answer of a lease.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Take {
    /// One unit taken; `left` is what the shared limit had left at the last script.
    Granted {
        /// Units left in the shared limit (whole tokens of a bucket, requests of a window).
        left: u64,
    },
    /// None left; one is expected after `wait` (a bucket) or at the window's end.
    Refused {
        /// Until the next unit.
        wait: Duration,
    },
}

/// What this gateway holds of one shared limit.
#[derive(Debug)]
struct Held {
    /// Units leased and not yet spent.
    units: u64,
    /// When the leased units lapse.
    until: Instant,
    /// Refused until then without asking Redis.
    refused_until: Option<Instant>,
    /// What the limit had left at the last script.
    left: u64,
}

/// One limit's state with the lock that lets one request at a time ask Redis for it.
#[derive(Debug, Default)]
struct Slot {
    held: Mutex<Held>,
    fetching: tokio::sync::Mutex<()>,
}

impl Default for Held {
    fn default() -> Held {
        Held {
            units: 0,
            until: Instant::now(),
            refused_until: None,
            left: 0,
        }
    }
}

/// The leases of one plugin instance, by key.
pub struct Leases {
    cluster: Arc<Cluster>,
    held: Cache<String, Arc<Slot>>,
    bucket: redis::Script,
    window: redis::Script,
}

impl std::fmt::Debug for Leases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leases")
            .field("keys", &self.held.entry_count())
            .finish_non_exhaustive()
    }
}

impl Leases {
    /// Leases of at most `max_keys` limits on `cluster`; a lease idle for `idle` is
    /// forgotten.
    pub fn new(cluster: Arc<Cluster>, max_keys: u64, idle: Duration) -> Leases {
        Leases {
            cluster,
            held: Cache::builder()
                .max_capacity(max_keys)
                .time_to_idle(idle.max(Duration::from_secs(1)))
                .build(),
            bucket: redis::Script::new(scripts::BUCKET),
            window: redis::Script::new(scripts::WINDOW),
        }
    }

    /// The cluster these leases come from.
    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    /// Spends one unit of `key` from what this gateway holds, or repeats a remembered
    /// refusal; `None` when Redis must be asked.
    pub fn local(&self, key: &str) -> Option<Take> {
        let slot = self.held.get(key)?;
        Self::spend(&slot)
    }

    fn spend(slot: &Slot) -> Option<Take> {
        let mut h = slot.held.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if h.units > 0 && now < h.until {
            h.units -= 1;
            return Some(Take::Granted { left: h.left });
        }
        match h.refused_until {
            Some(until) if now < until => Some(Take::Refused { wait: until - now }),
            _ => None,
        }
    }

    /// Takes a lease of up to `want` tokens from the shared bucket `key` (refilled at
    /// `rate` per second up to `burst`) and spends one.
    pub async fn bucket(
        &self,
        key: &str,
        rate: f64,
        burst: f64,
        want: u64,
    ) -> Result<Take, ClusterError> {
        let slot = self.slot(key);
        // One request per gateway asks Redis at a time; the others spend its lease.
        let _turn = slot.fetching.lock().await;
        if let Some(take) = Self::spend(&slot) {
            return Ok(take);
        }
        let ttl = bucket_ttl(rate, burst);
        let script = &self.bucket;
        let (granted, left, wait_ms): (u64, u64, u64) = self
            .cluster
            .run("bucket", |mut c| async move {
                script
                    .key(key)
                    .arg(rate)
                    .arg(burst)
                    .arg(want.max(1))
                    .arg(ttl)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        let lapse = self.cluster.sync_interval();
        let wait = Duration::from_millis(wait_ms);
        Ok(Self::store(
            &slot,
            granted,
            left,
            lapse,
            wait.min(lapse),
            wait,
        ))
    }

    /// Takes a lease of up to `want` requests from the window counter `key` (at most
    /// `limit` per window), valid for `remaining` (until the window ends), and spends one.
    pub async fn window(
        &self,
        key: &str,
        limit: u64,
        want: u64,
        remaining: Duration,
    ) -> Result<Take, ClusterError> {
        let slot = self.slot(key);
        let _turn = slot.fetching.lock().await;
        if let Some(take) = Self::spend(&slot) {
            return Ok(take);
        }
        // The counter outlives its window by one window length, for late settlements.
        let ttl = u64::try_from(remaining.as_millis())
            .unwrap_or(u64::MAX)
            .saturating_mul(2)
            .max(1000);
        let script = &self.window;
        let (granted, used): (u64, u64) = self
            .cluster
            .run("window", |mut c| async move {
                script
                    .key(key)
                    .arg(limit)
                    .arg(want.max(1))
                    .arg(ttl)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        let left = limit.saturating_sub(used);
        Ok(Self::store(
            &slot, granted, left, remaining, remaining, remaining,
        ))
    }

    /// Keeps what a script granted (less the unit spent now), or remembers a refusal for
    /// `refuse_for`; `wait` is the refusal's `Retry-After`.
    fn slot(&self, key: &str) -> Arc<Slot> {
        self.held.get_with_by_ref(key, Arc::default)
    }

    fn store(
        slot: &Slot,
        granted: u64,
        left: u64,
        lapse: Duration,
        refuse_for: Duration,
        wait: Duration,
    ) -> Take {
        let mut h = slot.held.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        h.left = left;
        if granted == 0 {
            h.refused_until = Some(now + refuse_for);
            return Take::Refused { wait };
        }
        // Units of a lapsed lease are not carried over: Redis already counted them.
        if now >= h.until {
            h.units = 0;
        }
        h.units += granted - 1;
        h.until = now + lapse;
        h.refused_until = None;
        Take::Granted { left }
    }
}

/// How long Redis keeps an idle bucket: until it would be full again, at least 1 s.
fn bucket_ttl(rate: f64, burst: f64) -> u64 {
    ((burst / rate) * 1000.0).ceil().clamp(1000.0, 86_400_000.0) as u64
}

/// How many units a gateway asks for at once: what `rate` grants in one
/// `sync_interval`, at least one and at most `cap`.
pub fn lease_size(rate: f64, lapse: Duration, cap: f64) -> u64 {
    (rate * lapse.as_secs_f64()).ceil().clamp(1.0, cap.max(1.0)) as u64
}
