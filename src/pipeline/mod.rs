//! The hook pipeline: runs a route's plugin plan around the upstream exchange.
//!
//! - [`ctx`]: [`ctx::RequestCtx`], the one per-request context every stage takes.
//! - [`request`]: `pre_auth` → `auth` → `post_auth`, with mutations and short-circuits.
//! - [`response`]: `OnResponseHeaders`, buffered `OnResponseBody`, chunk/SSE hooks.
//! - [`stream`]: the body wrapper calling `OnResponseChunk` per frame or SSE event.
//! - [`tail`]: the body wrapper that queues the completed exchange.
//! - [`collect`]: the bounded queue and worker for `OnStreamComplete` and `Collect`.
//! - [`mutate`]: validation of everything a plugin returns.
//!
//! Every hook call goes through [`invoke`], which applies the timeout, records metrics
//! and turns failures into either a skip (`fail_open`) or a [`GatewayError`].

pub mod collect;
pub mod ctx;
pub mod mutate;
pub mod request;
pub mod response;
pub mod stream;
pub mod tail;

use crate::config::OnError;
use crate::error::GatewayError;
use crate::loader::Instance;
use crate::plugin::{Hook, HookFuture, PluginError};
use tokio::time::Instant;

/// Awaits one hook call under the instance's timeout and records its metrics.
///
/// Returns `Ok(Some(value))` on success, `Ok(None)` when the call failed and the
/// instance is `fail_open`, and `Err` when it failed and the instance is `fail_closed`.
pub async fn invoke<'a, T>(
    instance: &'a Instance,
    hook: Hook,
    call: impl FnOnce() -> HookFuture<'a, T>,
) -> Result<Option<T>, GatewayError> {
    // The clock starts before `call` so synchronous (in-process) work is measured too.
    let start = Instant::now();
    let result = match call() {
        HookFuture::Ready(result) => result,
        HookFuture::Pending(f) => match tokio::time::timeout(instance.timeout, f).await {
            Ok(result) => result,
            Err(_) => Err(PluginError::Timeout(instance.timeout)),
        },
    };
    if let Some(hook_metrics) = instance.metrics(hook) {
        hook_metrics.calls.increment(1);
        hook_metrics.latency.record(start.elapsed().as_secs_f64());
    }
    match result {
        Ok(value) => Ok(Some(value)),
        Err(error) => failure(instance, hook, error).map(|()| None),
    }
}

/// Applies the failure policy to an error raised by or about a plugin's result.
pub fn failure(instance: &Instance, hook: Hook, error: PluginError) -> Result<(), GatewayError> {
    if let Some(hook_metrics) = instance.metrics(hook) {
        match error {
            PluginError::Timeout(_) => hook_metrics.timeouts.increment(1),
            _ => hook_metrics.errors.increment(1),
        }
    }
    match instance.on_error {
        OnError::FailOpen => {
            if let Some(hook_metrics) = instance.metrics(hook) {
                hook_metrics.fail_open.increment(1);
            }
            tracing::warn!(plugin = %instance.name, hook = hook.as_str(), error = %error, "plugin failed; continuing (fail_open)");
            Ok(())
        }
        OnError::FailClosed => {
            tracing::warn!(plugin = %instance.name, hook = hook.as_str(), error = %error, "plugin failed; rejecting request (fail_closed)");
            Err(GatewayError::PluginFailed {
                plugin: instance.name.to_string(),
                hook: hook.as_str(),
                reason: error.to_string(),
            })
        }
    }
}
