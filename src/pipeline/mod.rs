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
//! (latency of in-process hooks sampled) and turns failures into either a skip
//! (`fail_open`) or a [`GatewayError`].

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
///
/// Calls are counted exactly. Latency is recorded for every call of a hook that has
/// answered asynchronously before (a remote plugin) and for a random one in
/// [`crate::metrics::HOOK_SAMPLE`] of the others, so that an in-process hook does not
/// pay for two clock reads and a histogram record on every call.
pub async fn invoke<'a, T>(
    instance: &'a Instance,
    hook: Hook,
    call: impl FnOnce() -> HookFuture<'a, T>,
) -> Result<Option<T>, GatewayError> {
    match begin(instance, hook, call) {
        Invoked::Done(result) => result,
        Invoked::Pending(pending) => pending.finish().await,
    }
}

/// What [`begin`] found: the hook's final result, or a call still to await.
pub enum Invoked<'a, T> {
    /// The hook answered at once (in-process plugins): metrics are recorded already.
    Done(Result<Option<T>, GatewayError>),
    /// The hook answers asynchronously: await [`Pending::finish`].
    Pending(Pending<'a, T>),
}

/// An asynchronous hook call, with its clock already started.
pub struct Pending<'a, T> {
    instance: &'a Instance,
    hook: Hook,
    start: Instant,
    future: std::pin::Pin<Box<dyn Future<Output = crate::plugin::HookResult<T>> + Send + 'a>>,
}

/// Starts one hook call, as [`invoke`] does, without building a future: an in-process
/// hook that answers at once is finished here, synchronously. Request stages call this
/// directly, so that such a hook costs no `async` frame being built and moved.
pub fn begin<'a, T>(
    instance: &'a Instance,
    hook: Hook,
    call: impl FnOnce() -> HookFuture<'a, T>,
) -> Invoked<'a, T> {
    let metrics = instance.metrics(hook);
    // The clock starts before `call` so synchronous work (in-process hooks, a remote
    // plugin's encoding) is measured too.
    let start = metrics.filter(|m| m.timed()).map(|_| Instant::now());
    match call() {
        HookFuture::Ready(result) => Invoked::Done(conclude(instance, hook, result, start)),
        HookFuture::Pending(future) => {
            // A hook's first asynchronous answer marks it as timed on every call; that
            // first call is timed from here.
            let start = match start {
                Some(start) => start,
                None => {
                    if let Some(m) = metrics {
                        m.mark_asynchronous();
                    }
                    Instant::now()
                }
            };
            Invoked::Pending(Pending {
                instance,
                hook,
                start,
                future,
            })
        }
    }
}

impl<T> Pending<'_, T> {
    /// Awaits the call under the instance's timeout and records its metrics.
    pub async fn finish(self) -> Result<Option<T>, GatewayError> {
        let deadline = crate::deadline::after(self.start, self.instance.timeout);
        let result = match tokio::time::timeout_at(deadline, self.future).await {
            Ok(result) => result,
            Err(_) => Err(PluginError::Timeout(self.instance.timeout)),
        };
        conclude(self.instance, self.hook, result, Some(self.start))
    }
}

/// Counts the call, records its latency when it was timed, and applies the failure
/// policy.
fn conclude<T>(
    instance: &Instance,
    hook: Hook,
    result: crate::plugin::HookResult<T>,
    start: Option<Instant>,
) -> Result<Option<T>, GatewayError> {
    if let Some(m) = instance.metrics(hook) {
        m.calls.increment(1);
        if let Some(start) = start {
            m.latency.record(start.elapsed().as_secs_f64());
        }
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
