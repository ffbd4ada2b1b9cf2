//! The Redis tier of the LLM response cache (`llm.cache.backend = "redis"`): every
//! stored answer is also written to the fleet's Redis under the same SHA-256 key, and a
//! request that misses this process's memory is looked up there before the provider is
//! called. A hit from Redis is kept in memory for what is left of its TTL.
//!
//! The value is the answer's content type and frames, length-prefixed; Redis expires it
//! with the route's TTL. Redis being slow or down only turns its lookups into misses
//! (within `cluster.timeout`), and writes are made off the request path.

use super::{Entry, Key};
use crate::cluster::Cluster;
use bytes::Bytes;
use http::HeaderValue;
use std::sync::Arc;
use std::time::Duration;

/// The fleet's side of the response cache.
pub struct Remote {
    cluster: Arc<Cluster>,
}

impl Remote {
    /// The tier kept in `cluster`'s Redis.
    pub fn new(cluster: Arc<Cluster>) -> Remote {
        Remote { cluster }
    }

    fn key(&self, key: &Key) -> String {
        let mut name = String::with_capacity(6 + 64);
        name.push_str("cache:");
        for b in key {
            name.push_str(&format!("{b:02x}"));
        }
        self.cluster.key(&name)
    }

    /// The answer stored under `key` by any gateway, with what is left of its TTL.
    pub async fn get(&self, key: &Key) -> Option<Entry> {
        let name = self.key(key);
        let name = name.as_str();
        let found: Result<(Option<Vec<u8>>, i64), _> = self
            .cluster
            .run("cache_get", |mut c| async move {
                redis::pipe()
                    .cmd("GET")
                    .arg(name)
                    .cmd("PTTL")
                    .arg(name)
                    .query_async(&mut c)
                    .await
            })
            .await;
        let outcome = match &found {
            Ok((Some(_), _)) => "hit",
            Ok((None, _)) => "miss",
            Err(_) => "error",
        };
        crate::metrics::cluster_cache(outcome);
        let (bytes, ttl_ms) = found.ok()?;
        let ttl = Duration::from_millis(u64::try_from(ttl_ms).ok().filter(|&t| t > 0)?);
        let entry = decode(&bytes?, ttl);
        if entry.is_none() {
            crate::metrics::cluster_cache("corrupt");
        }
        entry
    }

    /// Writes `entry` under `key` for its TTL, off the request path.
    pub fn put(&self, key: &Key, entry: &Entry) {
        let (name, value) = (self.key(key), encode(entry));
        let ttl = u64::try_from(entry.ttl.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let cluster = self.cluster.clone();
        crate::task::detach("cache-redis-put", async move {
            let stored = cluster
                .run("cache_put", |mut c| async move {
                    redis::cmd("SET")
                        .arg(&name)
                        .arg(value)
                        .arg("PX")
                        .arg(ttl)
                        .query_async::<()>(&mut c)
                        .await
                })
                .await;
            crate::metrics::cluster_cache(if stored.is_ok() { "stored" } else { "error" });
        });
    }
}

/// `[len][content type][count]([len][frame])*`, lengths as little-endian `u32`.
fn encode(entry: &Entry) -> Vec<u8> {
    let ct = entry
        .content_type
        .as_ref()
        .map_or(&[][..], |v| v.as_bytes());
    let mut out = Vec::with_capacity(8 + ct.len() + entry.bytes as usize + 4 * entry.frames.len());
    let mut put = |b: &[u8]| {
        out.extend_from_slice(&(b.len() as u32).to_le_bytes());
        out.extend_from_slice(b);
    };
    put(ct);
    let count = (entry.frames.len() as u32).to_le_bytes();
    out.extend_from_slice(&count);
    for frame in &entry.frames {
        out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        out.extend_from_slice(frame);
    }
    out
}

/// The entry of [`encode`]'s bytes, or `None` when they are not such bytes.
fn decode(bytes: &[u8], ttl: Duration) -> Option<Entry> {
    let mut rest = bytes;
    let mut take = |n: usize| -> Option<&[u8]> {
        let (head, tail) = rest.split_at_checked(n)?;
        rest = tail;
        Some(head)
    };
    let len = |b: &[u8]| -> Option<usize> { Some(u32::from_le_bytes(b.try_into().ok()?) as usize) };
    let ct_len = len(take(4)?)?;
    let ct = take(ct_len)?;
    let content_type = match ct {
        [] => None,
        ct => Some(HeaderValue::from_bytes(ct).ok()?),
    };
    let count = len(take(4)?)?;
    let mut frames = Vec::with_capacity(count.min(4096));
    let mut total = 0u64;
    for _ in 0..count {
        let n = len(take(4)?)?;
        let frame = Bytes::copy_from_slice(take(n)?);
        total += frame.len() as u64;
        frames.push(frame);
    }
    if !rest.is_empty() {
        return None;
    }
    Some(Entry {
        content_type,
        frames,
        bytes: total,
        ttl,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_round_trips_and_damage_is_refused() {
        let entry = Entry {
            content_type: Some(HeaderValue::from_static("text/event-stream")),
            frames: vec![
                Bytes::from_static(b"data: a\n\n"),
                Bytes::from_static(b"data: b\n\n"),
            ],
            bytes: 18,
            ttl: Duration::from_secs(5),
        };
        let bytes = encode(&entry);
        let back = decode(&bytes, Duration::from_secs(3)).unwrap();
        assert_eq!(back.frames, entry.frames);
        assert_eq!(back.content_type, entry.content_type);
        assert_eq!((back.bytes, back.ttl), (18, Duration::from_secs(3)));
        for cut in 0..bytes.len() {
            assert!(
                decode(&bytes[..cut], Duration::from_secs(1)).is_none(),
                "cut at {cut}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode(&longer, Duration::from_secs(1)).is_none());
    }
}
