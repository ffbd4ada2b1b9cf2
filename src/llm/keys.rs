//! Provider key pools: the keys of one LLM upstream, rotated round robin, with a
//! cooldown for a key the provider answered 429 or 401, and an `api_keys_file` that is
//! re-read without a restart.
//!
//! The request path takes no lock: the key set is one `ArcSwap` snapshot, the rotation
//! an atomic counter, and each key's cooldown an atomic deadline in milliseconds since
//! the pool's epoch (0 = usable). The clock is read only when the key the counter lands
//! on is cooling. Logs and metrics name a key by its index and a short fingerprint
//! (the first 8 hex digits of its SHA-256), never by the key.

use super::Provider;
use arc_swap::ArcSwap;
use http::HeaderValue;
use sha2::Digest as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::time::Instant;

/// How often a key file's modification time and length are checked, and the
/// `keys_available` gauge refreshed.
pub const KEY_FILE_POLL: Duration = Duration::from_secs(2);

/// How many bits of a [`super::KeyUse`] hold the key index; the rest hold the pool
/// generation, so a report that arrives after a reload does not cool a different key.
const INDEX_BITS: u32 = 16;

/// Why a key pool could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// An environment variable is not set.
    #[error("{setting}: variable {var} is not set")]
    MissingVar {
        /// The setting that names the variable.
        setting: &'static str,
        /// The variable.
        var: String,
    },
    /// The key file cannot be read.
    #[error("{setting} {path}: {reason}")]
    File {
        /// The setting that names the file.
        setting: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error, as text.
        reason: String,
    },
    /// No key at all.
    #[error("{0}: no provider key")]
    Empty(&'static str),
    /// A key cannot be sent in a header.
    #[error("{setting}: key {index} contains invalid characters")]
    Invalid {
        /// The setting the key came from.
        setting: &'static str,
        /// Its position in the pool.
        index: usize,
    },
    /// More keys than a [`super::KeyUse`] can index.
    #[error("{0}: more than 65535 keys")]
    TooMany(&'static str),
}

/// The cooldowns a pool applies.
#[derive(Debug, Clone, Copy)]
pub struct Cooldowns {
    /// After a 429 without `Retry-After`.
    pub rate_limited: Duration,
    /// After a 401.
    pub unauthorized: Duration,
    /// The cap on a `Retry-After`.
    pub max: Duration,
}

/// One key: the header value sent, and when its cooldown ends.
struct Key {
    raw: String,
    value: HeaderValue,
    fingerprint: String,
    /// Milliseconds since the pool's epoch at which the cooldown ends; 0 when usable.
    cooling_until: AtomicU64,
}

/// One generation of the key set.
struct KeySet {
    keys: Vec<Key>,
    generation: usize,
}

/// The keys of one upstream.
pub struct KeyPool {
    upstream: Arc<str>,
    provider: Provider,
    cooldowns: Cooldowns,
    set: ArcSwap<KeySet>,
    next: AtomicUsize,
    epoch: Instant,
}

impl std::fmt::Debug for KeyPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = self.set.load();
        f.debug_struct("KeyPool")
            .field("upstream", &self.upstream)
            .field("keys", &set.keys.len())
            .field("generation", &set.generation)
            .finish()
    }
}

/// The first 8 hex digits of the key's SHA-256: enough to tell keys apart in logs.
pub fn fingerprint(key: &str) -> String {
    let digest = sha2::Sha256::digest(key.as_bytes());
    digest.iter().take(4).map(|b| format!("{b:02x}")).collect()
}

/// The keys of a key file: one per line, blank lines and `#` comments skipped.
pub fn parse_key_file(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// Reads the key file at `path`.
pub fn read_key_file(setting: &'static str, path: &Path) -> Result<Vec<String>, KeyError> {
    let text = std::fs::read_to_string(path).map_err(|e| KeyError::File {
        setting,
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    Ok(parse_key_file(&text))
}

impl KeyPool {
    /// A pool of `raw` keys for `provider`; `setting` names their source in errors.
    pub fn new(
        upstream: &str,
        provider: Provider,
        cooldowns: Cooldowns,
        setting: &'static str,
        raw: Vec<String>,
    ) -> Result<KeyPool, KeyError> {
        let keys = build_keys(provider, setting, raw)?;
        let pool = KeyPool {
            upstream: Arc::from(upstream),
            provider,
            cooldowns,
            set: ArcSwap::from_pointee(KeySet {
                keys,
                generation: 0,
            }),
            next: AtomicUsize::new(0),
            epoch: Instant::now(),
        };
        pool.publish_available();
        Ok(pool)
    }

    /// How many keys the pool holds.
    pub fn len(&self) -> usize {
        self.set.load().keys.len()
    }

    /// Always false: a pool holds at least one key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The next usable key round robin; when every key is cooling, the one whose
    /// cooldown ends first (never none). Returns the header value and its use tag.
    pub fn select(&self) -> (HeaderValue, usize) {
        let set = self.set.load();
        let n = set.keys.len().max(1);
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut now = None;
        let mut soonest: Option<(u64, usize)> = None;
        for step in 0..n {
            let index = start.wrapping_add(step) % n;
            let Some(key) = set.keys.get(index) else {
                continue;
            };
            let until = key.cooling_until.load(Ordering::Relaxed);
            if until == 0 {
                return (key.value.clone(), tag(set.generation, index));
            }
            let now = *now.get_or_insert_with(|| self.now_ms());
            if until <= now {
                // Expired: clear it unless a newer cooldown was set meanwhile.
                let _ = key.cooling_until.compare_exchange(
                    until,
                    0,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
                return (key.value.clone(), tag(set.generation, index));
            }
            if soonest.is_none_or(|(s, _)| until < s) {
                soonest = Some((until, index));
            }
        }
        let index = soonest.map_or(0, |(_, i)| i);
        match set.keys.get(index) {
            Some(key) => (key.value.clone(), tag(set.generation, index)),
            None => (HeaderValue::from_static(""), 0),
        }
    }

    /// Records the provider's answer to a request sent with the key tagged `used`.
    /// Returns the cooldown applied, if any.
    pub fn report(
        &self,
        used: usize,
        status: http::StatusCode,
        retry_after: Option<Duration>,
    ) -> Option<Duration> {
        let cooldown = match status.as_u16() {
            429 => retry_after
                .unwrap_or(self.cooldowns.rate_limited)
                .min(self.cooldowns.max),
            401 => self.cooldowns.unauthorized,
            _ => return None,
        };
        let set = self.set.load();
        let (generation, index) = untag(used);
        if generation != set.generation & generation_mask() {
            // The pool was reloaded since; the index may name another key now.
            return None;
        }
        let key = set.keys.get(index)?;
        let until = self
            .now_ms()
            .saturating_add(u64::try_from(cooldown.as_millis()).unwrap_or(u64::MAX))
            .max(1);
        key.cooling_until.fetch_max(until, Ordering::Relaxed);
        tracing::warn!(
            upstream = %self.upstream,
            key = index,
            fingerprint = %key.fingerprint,
            status = status.as_u16(),
            cooldown_ms = cooldown.as_millis() as u64,
            "provider key cooling down"
        );
        crate::metrics::llm_key_cooldown(&self.upstream, index);
        self.publish_available();
        Some(cooldown)
    }

    /// Replaces the key set with `raw`, keeping the cooldowns of keys that stay.
    pub fn replace(&self, setting: &'static str, raw: Vec<String>) -> Result<(), KeyError> {
        let keys = build_keys(self.provider, setting, raw)?;
        let old = self.set.load();
        for key in &keys {
            if let Some(previous) = old.keys.iter().find(|k| k.raw == key.raw) {
                key.cooling_until.store(
                    previous.cooling_until.load(Ordering::Relaxed),
                    Ordering::Relaxed,
                );
            }
        }
        let fingerprints: Vec<&str> = keys.iter().map(|k| k.fingerprint.as_str()).collect();
        tracing::info!(
            upstream = %self.upstream,
            keys = keys.len(),
            fingerprints = ?fingerprints,
            "provider keys reloaded"
        );
        self.set.store(Arc::new(KeySet {
            keys,
            generation: old.generation.wrapping_add(1),
        }));
        self.publish_available();
        Ok(())
    }

    /// Sets `microgateway_llm_keys_available{upstream}`.
    pub fn publish_available(&self) {
        crate::metrics::llm_keys_available(&self.upstream, self.available());
    }

    /// How many keys are not cooling down now.
    pub fn available(&self) -> usize {
        let now = self.now_ms();
        let set = self.set.load();
        set.keys
            .iter()
            .filter(|k| {
                let until = k.cooling_until.load(Ordering::Relaxed);
                until == 0 || until <= now
            })
            .count()
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// Starts the background task of `pool`: it refreshes the availability gauge and,
/// when `file` is given, re-reads the file whenever its modification time or length
/// changes. The task ends once the pool is dropped (a configuration reload). Without a
/// Tokio runtime (the `check` command) there is nothing to start.
pub fn watch(pool: &Arc<KeyPool>, file: Option<PathBuf>) {
    if tokio::runtime::Handle::try_current().is_err() {
        return;
    }
    let weak = Arc::downgrade(pool);
    crate::task::detach("llm-key-pool", poll(weak, file));
}

/// The stamp compared between polls: modification time and length.
fn stamp(path: &Path) -> Option<(std::time::SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

async fn poll(pool: Weak<KeyPool>, file: Option<PathBuf>) {
    let mut last = file.as_deref().and_then(stamp);
    loop {
        tokio::time::sleep(KEY_FILE_POLL).await;
        let Some(pool) = pool.upgrade() else {
            return;
        };
        if let Some(path) = &file {
            let now = stamp(path);
            if now != last {
                last = now;
                let result = read_key_file("api_keys_file", path)
                    .and_then(|raw| pool.replace("api_keys_file", raw));
                match result {
                    Ok(()) => crate::metrics::llm_key_reload(&pool.upstream, "ok"),
                    Err(e) => {
                        tracing::warn!(
                            upstream = %pool.upstream,
                            error = %e,
                            "cannot reload provider keys; keeping the current ones"
                        );
                        crate::metrics::llm_key_reload(&pool.upstream, "error");
                    }
                }
            }
        }
        pool.publish_available();
    }
}

fn generation_mask() -> usize {
    usize::MAX >> INDEX_BITS
}

fn tag(generation: usize, index: usize) -> usize {
    ((generation & generation_mask()) << INDEX_BITS) | index
}

fn untag(used: usize) -> (usize, usize) {
    (used >> INDEX_BITS, used & ((1 << INDEX_BITS) - 1))
}

fn build_keys(
    provider: Provider,
    setting: &'static str,
    raw: Vec<String>,
) -> Result<Vec<Key>, KeyError> {
    if raw.is_empty() {
        return Err(KeyError::Empty(setting));
    }
    if raw.len() >= 1 << INDEX_BITS {
        return Err(KeyError::TooMany(setting));
    }
    raw.into_iter()
        .enumerate()
        .map(|(index, raw)| {
            let raw = raw.trim().to_string();
            if raw.is_empty() {
                return Err(KeyError::Empty(setting));
            }
            let text = match provider {
                Provider::Openai => format!("Bearer {raw}"),
                Provider::Anthropic => raw.clone(),
            };
            let mut value =
                HeaderValue::from_str(&text).map_err(|_| KeyError::Invalid { setting, index })?;
            value.set_sensitive(true);
            Ok(Key {
                fingerprint: fingerprint(&raw),
                raw,
                value,
                cooling_until: AtomicU64::new(0),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests;
