//! `builtin://rate_limit`: token-bucket rate limiting per caller and route.
//!
//! The caller is the authenticated identity (`key = "identity"`, the default), the
//! app id (`"app"`), or the client IP (`"ip"`); unauthenticated requests fall back to
//! the IP. Buckets live in a bounded moka cache and expire when idle. Refusals are 429
//! with `Retry-After`.
//!
//! With `[cluster]` the bucket is shared by the fleet (unless `shared = false`): it lives
//! in Redis, refilled by one atomic script, and each gateway spends leases of it
//! ([`crate::cluster::lease`]). While Redis is down the instance follows
//! `cluster.on_unavailable`: its own bucket (`local`), no limit (`allow`) or 503 (`deny`).

use super::{manifest, reject, settings};
use crate::cluster::lease::{Leases, Take};
use crate::config::{OnUnavailable, PluginConfig};
use crate::plugin::{
    BuiltinContext, Decision, Hook, HookFuture, HookType, Manifest, Plugin, PluginError,
    RequestView,
};
use http::{HeaderValue, StatusCode, header};
use moka::sync::Cache;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
enum KeyBy {
    #[default]
    Identity,
    App,
    Ip,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Settings {
    requests_per_second: f64,
    burst: f64,
    key: KeyBy,
    max_tracked: u64,
    /// Share the bucket through `[cluster]` (when configured).
    shared: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            requests_per_second: 10.0,
            burst: 20.0,
            key: KeyBy::Identity,
            max_tracked: 100_000,
            shared: true,
        }
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// The rate limit plugin.
pub struct RateLimit {
    manifest: Manifest,
    rate: f64,
    burst: f64,
    key: KeyBy,
    buckets: Cache<String, Arc<Mutex<Bucket>>>,
    /// The fleet's bucket leases, with the plugin instance's name for their keys.
    shared: Option<(Leases, String)>,
}

impl RateLimit {
    /// Validates the settings and creates the bucket cache.
    pub fn new(config: &PluginConfig, context: &BuiltinContext) -> Result<RateLimit, PluginError> {
        let s: Settings = settings(config)?;
        if !(s.requests_per_second.is_finite() && s.requests_per_second > 0.0) {
            return Err(PluginError::Load(format!(
                "plugins.{}.config.requests_per_second: must be a positive number",
                config.name
            )));
        }
        if !(s.burst.is_finite() && s.burst >= 1.0) {
            return Err(PluginError::Load(format!(
                "plugins.{}.config.burst: must be at least 1",
                config.name
            )));
        }
        // A bucket idle long enough to refill completely carries no state worth keeping.
        let refill =
            Duration::from_secs_f64((s.burst / s.requests_per_second).clamp(1.0, 86_400.0));
        let shared = context.cluster.clone().filter(|_| s.shared).map(|cluster| {
            let name = format!("rl:{}:", config.name);
            (Leases::new(cluster, s.max_tracked, refill), name)
        });
        Ok(RateLimit {
            shared,
            manifest: manifest("rate_limit", &[Hook::PreAuth, Hook::PostAuth]),
            rate: s.requests_per_second,
            burst: s.burst,
            key: s.key,
            buckets: Cache::builder()
                .max_capacity(s.max_tracked)
                .time_to_idle(refill)
                .build(),
        })
    }

    /// Takes one token for `key`; on refusal returns the seconds until one is available.
    /// Takes one token from `key`'s bucket: `Ok` with the whole tokens left and the time
    /// until the bucket is full again, or `Err` with the seconds until one is there.
    fn take(&self, key: String) -> Result<(u64, Duration), f64> {
        let bucket = self.buckets.get_with(key, || {
            Arc::new(Mutex::new(Bucket {
                tokens: self.burst,
                last: Instant::now(),
            }))
        });
        let Ok(mut b) = bucket.lock() else {
            return Ok((0, Duration::ZERO));
        };
        let now = Instant::now();
        b.tokens =
            (b.tokens + now.duration_since(b.last).as_secs_f64() * self.rate).min(self.burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            let full =
                Duration::from_secs_f64(((self.burst - b.tokens) / self.rate).clamp(0.0, 86_400.0));
            Ok((b.tokens.floor() as u64, full))
        } else {
            Err((1.0 - b.tokens) / self.rate)
        }
    }
}

impl Plugin for RateLimit {
    fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    fn on_request<'a>(
        &'a self,
        _stage: HookType,
        request: &'a RequestView<'a>,
    ) -> HookFuture<'a, Decision> {
        let caller = match (self.key, request.context.auth.as_ref()) {
            (KeyBy::Identity, Some(a)) => format!("id:{}", a.identity),
            (KeyBy::App, Some(a)) => format!("app:{}", a.app_id),
            _ => format!("ip:{}", request.client_ip),
        };
        let key = format!("{}|{caller}", request.route);
        let Some((leases, name)) = &self.shared else {
            return HookFuture::ok(self.answer(self.take(key), request));
        };
        let shared_key = leases.cluster().key(&format!("{name}{key}"));
        if let Some(take) = leases.local(&shared_key) {
            return HookFuture::ok(self.answer(self.leased(take), request));
        }
        if !leases.cluster().is_up() {
            return HookFuture::ok(self.degraded(key, request));
        }
        let want = crate::cluster::lease::lease_size(
            self.rate,
            leases.cluster().sync_interval(),
            self.burst,
        );
        HookFuture::Pending(Box::pin(async move {
            Ok(
                match leases
                    .bucket(&shared_key, self.rate, self.burst, want)
                    .await
                {
                    Ok(take) => self.answer(self.leased(take), request),
                    Err(_) => self.degraded(key, request),
                },
            )
        }))
    }
}

impl RateLimit {
    /// A lease's answer in the shape of [`RateLimit::take`]'s.
    fn leased(&self, take: Take) -> Result<(u64, Duration), f64> {
        match take {
            Take::Granted { left } => {
                let missing = (self.burst - left as f64).max(0.0);
                Ok((
                    left,
                    Duration::from_secs_f64((missing / self.rate).clamp(0.0, 86_400.0)),
                ))
            }
            Take::Refused { wait } => Err(wait.as_secs_f64().max(1.0 / self.rate)),
        }
    }

    /// The decision while the fleet's Redis is down, by `cluster.on_unavailable`.
    fn degraded(&self, key: String, request: &RequestView<'_>) -> Decision {
        let mode = self
            .shared
            .as_ref()
            .map_or(OnUnavailable::Local, |(l, _)| l.cluster().on_unavailable());
        crate::metrics::cluster_degraded("rate_limit", mode.as_str());
        match mode {
            OnUnavailable::Local => self.answer(self.take(key), request),
            OnUnavailable::Allow => Decision::pass(),
            OnUnavailable::Deny => reject(
                StatusCode::SERVICE_UNAVAILABLE,
                "rate_limit_unavailable",
                "the shared rate limit cannot be checked; retry later",
                request.request_id,
            ),
        }
    }

    /// The decision for one taken (or refused) token.
    fn answer(&self, taken: Result<(u64, Duration), f64>, request: &RequestView<'_>) -> Decision {
        match taken {
            Ok((left, full)) => {
                let limit = self.burst.floor() as u64;
                let values = crate::headers::ratelimit_values("requests", limit, left, full);
                let context = crate::headers::ratelimit_context(values);
                Decision::Continue(crate::plugin::Mutations {
                    context,
                    ..crate::plugin::Mutations::default()
                })
            }
            Err(wait) => {
                let mut decision = reject(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limit_exceeded",
                    "rate limit exceeded; retry later",
                    request.request_id,
                );
                if let Decision::Respond(r) = &mut decision {
                    let secs = wait.ceil().max(1.0) as u64;
                    r.headers
                        .push((header::RETRY_AFTER, HeaderValue::from(secs)));
                    let limit = self.burst.floor() as u64;
                    let reset = Duration::from_secs_f64(wait.clamp(0.0, 86_400.0));
                    let values = crate::headers::ratelimit_values("requests", limit, 0, reset);
                    r.headers.extend(crate::headers::ratelimit_headers(values));
                }
                decision
            }
        }
    }
}
