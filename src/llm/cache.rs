//! The exact-match LLM response cache: an answer of a route with `[routes.llm.cache]`
//! is kept in memory and served again to the same request, without a provider call.
//!
//! The key is a SHA-256 over the route, the method, the scope (the app, unless the
//! route's scope is `global`) and the request body as normalized JSON (object keys
//! sorted, whitespace gone), so two apps never share an answer unless the route says
//! so, and a request without a known app is never cached under `scope = "app"`. Only
//! whole `200` answers are stored, frame by frame, so a stream is replayed as the
//! stream it was; one that fails or is cut short is not stored. The store is one moka
//! cache with a byte cap (least recently used out first) and a TTL per entry.

use crate::body::{Body, BoxError};
use crate::config::{CacheConfig, CacheScope, RouteCacheConfig};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode, header};
use http_body::Frame;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The response header saying what the cache did: `hit`, `miss` or `bypass`.
pub const CACHE_HEADER: HeaderName = HeaderName::from_static("x-microgateway-cache");

/// Bytes counted per entry beyond its body: the key, headers and bookkeeping.
const ENTRY_OVERHEAD: u64 = 256;

/// A cache key: SHA-256 of what identifies a request.
pub type Key = [u8; 32];

/// One stored answer: its content type and its body frames, in order.
#[derive(Debug)]
pub struct Entry {
    content_type: Option<HeaderValue>,
    frames: Vec<Bytes>,
    bytes: u64,
    ttl: Duration,
}

impl Entry {
    /// The stored answer as a new response: `200`, the content type, the frames.
    pub fn response(&self) -> Response<Body> {
        let body = match self.frames.as_slice() {
            [one] => crate::body::full(one.clone()),
            frames => {
                let frames: Vec<Result<Frame<Bytes>, BoxError>> =
                    frames.iter().map(|f| Ok(Frame::data(f.clone()))).collect();
                crate::body::boxed(http_body_util::StreamBody::new(futures_util::stream::iter(
                    frames,
                )))
            }
        };
        let mut response = Response::new(body);
        if let Some(ct) = &self.content_type {
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, ct.clone());
        }
        response
    }
}

/// What the cache does for one request.
#[derive(Debug)]
pub enum Lookup {
    /// Stored: served from the cache.
    Hit(Arc<Entry>),
    /// Not stored: forwarded, and a whole `200` answer is stored under the key.
    Miss(Key),
    /// The client sent `Cache-Control: no-cache`: forwarded, and the fresh answer
    /// replaces the stored one.
    Refresh(Key),
    /// Not cacheable: `no-store`, tool results, no app under `scope = "app"`, or a
    /// body that is not a JSON object.
    Bypass,
}

impl Lookup {
    /// The metric label and `x-microgateway-cache` value.
    pub fn label(&self) -> &'static str {
        match self {
            Lookup::Hit(_) => "hit",
            Lookup::Miss(_) => "miss",
            Lookup::Refresh(_) | Lookup::Bypass => "bypass",
        }
    }

    /// The key an answer is stored under, for a miss or a refresh.
    pub fn store_key(&self) -> Option<Key> {
        match self {
            Lookup::Miss(k) | Lookup::Refresh(k) => Some(*k),
            Lookup::Hit(_) | Lookup::Bypass => None,
        }
    }
}

/// The process's cached answers, shared by every cached route.
pub struct Store {
    cache: moka::sync::Cache<Key, Arc<Entry>>,
    max_entry: u64,
    held: Arc<Held>,
    remote: Option<remote::Remote>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("max_entry", &self.max_entry)
            .finish_non_exhaustive()
    }
}

/// What the store holds, kept exact by the insert and the eviction listener (moka's
/// own counts lag behind its maintenance).
#[derive(Debug, Default)]
struct Held {
    bytes: AtomicU64,
    entries: AtomicU64,
}

impl Held {
    fn publish(&self) {
        crate::metrics::llm_cache_size(
            self.bytes.load(Ordering::Relaxed),
            self.entries.load(Ordering::Relaxed),
        );
    }
}

/// Each entry lives for its route's TTL.
struct PerEntryTtl;

impl moka::Expiry<Key, Arc<Entry>> for PerEntryTtl {
    #[expect(clippy::disallowed_types, reason = "moka's Expiry signature")]
    fn expire_after_create(
        &self,
        _key: &Key,
        value: &Arc<Entry>,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

impl Store {
    /// A store of at most `config.max_bytes`; `None` when that is 0 (caching off). With
    /// `backend = "redis"`, `cluster`'s Redis is its second tier.
    pub fn new(
        config: &CacheConfig,
        cluster: Option<&Arc<crate::cluster::Cluster>>,
    ) -> Option<Arc<Store>> {
        if config.max_bytes == 0 {
            return None;
        }
        let held = Arc::new(Held::default());
        let listener = held.clone();
        let cache = moka::sync::Cache::builder()
            .max_capacity(config.max_bytes)
            .weigher(|_: &Key, e: &Arc<Entry>| {
                u32::try_from(e.bytes + ENTRY_OVERHEAD).unwrap_or(u32::MAX)
            })
            .expire_after(PerEntryTtl)
            .eviction_listener(move |_, e: Arc<Entry>, cause| {
                listener.bytes.fetch_sub(e.bytes, Ordering::Relaxed);
                listener.entries.fetch_sub(1, Ordering::Relaxed);
                listener.publish();
                crate::metrics::llm_cache_eviction(match cause {
                    moka::notification::RemovalCause::Size => "size",
                    moka::notification::RemovalCause::Expired => "expired",
                    moka::notification::RemovalCause::Replaced => "replaced",
                    moka::notification::RemovalCause::Explicit => "explicit",
                });
            })
            .build();
        Some(Arc::new(Store {
            cache,
            max_entry: config.max_entry_bytes.min(config.max_bytes),
            held,
            remote: cluster
                .filter(|_| config.backend == crate::config::CacheBackend::Redis)
                .map(|c| remote::Remote::new(c.clone())),
        }))
    }

    /// What to do for a request of route `route` (its index) with these `headers` and
    /// `body`, made by `app` (`None` when the request is not authenticated).
    pub fn lookup(
        &self,
        route: usize,
        config: &RouteCacheConfig,
        headers: &HeaderMap,
        body: &[u8],
        app: Option<&str>,
    ) -> Lookup {
        let directives = cache_control(headers);
        if directives.no_store {
            return Lookup::Bypass;
        }
        let Some(key) = key(route, config, body, app) else {
            return Lookup::Bypass;
        };
        if directives.no_cache {
            return Lookup::Refresh(key);
        }
        match self.cache.get(&key) {
            Some(entry) => Lookup::Hit(entry),
            None => Lookup::Miss(key),
        }
    }

    /// Passes `response` on, storing it under `key` for `ttl` once its body ended
    /// whole, when it is a `200` no larger than `llm.cache.max_entry_bytes`.
    pub fn capture(
        self: &Arc<Self>,
        key: Key,
        ttl: Duration,
        response: Response<Body>,
    ) -> Response<Body> {
        if response.status() != StatusCode::OK {
            return response;
        }
        let declared = http_body::Body::size_hint(response.body()).lower();
        if declared > self.max_entry {
            crate::metrics::llm_cache_skipped("too_large");
            return response;
        }
        let content_type = response.headers().get(header::CONTENT_TYPE).cloned();
        let pending = Pending {
            store: self.clone(),
            key,
            ttl,
            content_type,
            frames: Vec::new(),
            bytes: 0,
            live: true,
        };
        response.map(|inner| http_body_util::BodyExt::boxed_unsync(Capture { inner, pending }))
    }

    /// After a miss in memory: the answer another gateway stored in the Redis tier, kept
    /// in memory from now on; `None` without a Redis tier or when it has none.
    pub async fn fill(&self, key: &Key) -> Option<Arc<Entry>> {
        let entry = Arc::new(self.remote.as_ref()?.get(key).await?);
        self.keep(*key, entry.clone());
        Some(entry)
    }

    fn insert(&self, key: Key, entry: Entry) {
        if let Some(remote) = &self.remote {
            remote.put(&key, &entry);
        }
        self.keep(key, Arc::new(entry));
    }

    fn keep(&self, key: Key, entry: Arc<Entry>) {
        self.held.bytes.fetch_add(entry.bytes, Ordering::Relaxed);
        self.held.entries.fetch_add(1, Ordering::Relaxed);
        self.cache.insert(key, entry);
        self.held.publish();
    }
}

/// The client's `Cache-Control` request directives the cache honours.
#[derive(Debug, Default)]
struct Directives {
    no_store: bool,
    no_cache: bool,
}

fn cache_control(headers: &HeaderMap) -> Directives {
    let mut d = Directives::default();
    let tokens = headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase());
    for token in tokens {
        match token.as_str() {
            "no-store" => d.no_store = true,
            "no-cache" | "max-age=0" => d.no_cache = true,
            _ => {}
        }
    }
    d
}

/// The key of a request, or `None` when it must not be cached: the body is not a JSON
/// object, it carries tool results the route does not cache, or no app is known under
/// `scope = "app"`.
pub fn key(route: usize, config: &RouteCacheConfig, body: &[u8], app: Option<&str>) -> Option<Key> {
    let value: Value = serde_json::from_slice(body).ok()?;
    if !value.is_object() || (!config.tool_results && has_tool_results(&value)) {
        return None;
    }
    let scope = match config.scope {
        CacheScope::Global => "global".to_string(),
        CacheScope::App => format!("app:{}", app?),
    };
    // serde_json's maps are sorted by key, so writing the value normalizes it.
    let normalized = serde_json::to_vec(&value).ok()?;
    let mut h = Sha256::new();
    h.update(b"microgateway-llm-cache-v1\0");
    h.update((route as u64).to_le_bytes());
    h.update((scope.len() as u64).to_le_bytes());
    h.update(scope.as_bytes());
    h.update(&normalized);
    Some(h.finalize().into())
}

/// Whether an OpenAI (`role: tool`/`function`) or Anthropic (`tool_result` content)
/// request carries the result of a tool call.
fn has_tool_results(body: &Value) -> bool {
    let Some(messages) = body.get("messages").and_then(Value::as_array) else {
        return false;
    };
    messages.iter().any(|m| {
        matches!(
            m.get("role").and_then(Value::as_str),
            Some("tool" | "function")
        ) || m
            .get("content")
            .and_then(Value::as_array)
            .is_some_and(|parts| {
                parts
                    .iter()
                    .any(|p| p.get("type").and_then(Value::as_str) == Some("tool_result"))
            })
    })
}

mod capture;
mod remote;
use capture::{Capture, Pending};

#[cfg(test)]
mod tests;
