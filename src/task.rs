//! The crate's only ways to start a Tokio task (`tokio::spawn` is banned by
//! `clippy.toml`): either the caller keeps the handle ([`spawn`], whose result must be
//! used), or the task is named and detached ([`detach`]), so that a panic in it is
//! logged with its name and counted instead of vanishing with a dropped handle.

use futures_util::FutureExt;
use std::future::Future;
use tokio::task::JoinHandle;

/// Spawns `future` and hands back its handle, which the caller must keep (to await or
/// abort it); use [`detach`] for a task nobody waits for.
#[must_use = "keep the handle to await or abort the task, or use task::detach with a name"]
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    #[expect(clippy::disallowed_methods, reason = "the one place tasks are spawned")]
    tokio::spawn(future)
}

/// Spawns `future` as a detached task called `name`. If it panics, the panic is logged
/// with the name and counted in `microgateway_task_panics_total{task}`.
pub fn detach<F>(name: &'static str, future: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    #[expect(clippy::disallowed_methods, reason = "the one place tasks are spawned")]
    tokio::spawn(async move {
        if let Err(panic) = std::panic::AssertUnwindSafe(future).catch_unwind().await {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(task = name, panic = %message, "background task panicked");
            crate::metrics::task_panic(name);
        }
    });
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn a_detached_panic_is_caught_and_the_runtime_goes_on() {
        super::detach("test-panic", async { panic!("boom") });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let handle = super::spawn(async { 7 });
        assert_eq!(handle.await.unwrap(), 7);
    }
}
