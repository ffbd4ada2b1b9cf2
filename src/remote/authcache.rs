//! Caching of remote auth results.
//!
//! When a remote auth plugin returns an identity with `cache_ttl_seconds > 0`, the
//! result is cached under a SHA-256 digest of the request's credentials
//! (`authorization`, `x-api-key` and `cookie` values) for that long, so repeated calls
//! with the same credentials skip the RPC. Requests without any of these headers are
//! never cached.

use crate::plugin::{AuthResult, RequestView};
use moka::sync::Cache;
use sha2::{Digest, Sha256};
use std::time::Duration;
use tokio::time::Instant;

const CREDENTIAL_HEADERS: [&str; 3] = ["authorization", "x-api-key", "cookie"];

/// Credentials digest → (result, expiry).
pub struct AuthCache {
    entries: Cache<[u8; 32], (AuthResult, Instant)>,
}

impl AuthCache {
    /// A cache for at most `capacity` credentials, none kept longer than an hour.
    pub fn new(capacity: u64) -> AuthCache {
        AuthCache {
            entries: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(Duration::from_secs(3600))
                .build(),
        }
    }

    /// The digest of the request's credentials, or `None` when it carries none.
    pub fn key(request: &RequestView<'_>) -> Option<[u8; 32]> {
        let mut hasher = Sha256::new();
        let mut any = false;
        for name in CREDENTIAL_HEADERS {
            for value in request.headers.get_all(name) {
                any = true;
                hasher.update(name.as_bytes());
                hasher.update([0]);
                hasher.update(value.as_bytes());
                hasher.update([0]);
            }
        }
        any.then(|| hasher.finalize().into())
    }

    /// A cached, unexpired result.
    pub fn get(&self, key: &[u8; 32]) -> Option<AuthResult> {
        let (result, expires) = self.entries.get(key)?;
        if Instant::now() < expires {
            Some(result)
        } else {
            self.entries.invalidate(key);
            None
        }
    }

    /// Caches `result` when it carries a TTL.
    pub fn put(&self, key: [u8; 32], result: &AuthResult) {
        if let Some(ttl) = result.cache_ttl.filter(|t| !t.is_zero()) {
            self.entries.insert(
                key,
                (result.clone(), crate::deadline::after(Instant::now(), ttl)),
            );
        }
    }
}
