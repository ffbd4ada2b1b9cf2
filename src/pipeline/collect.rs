//! The bounded queue and worker behind `OnStreamComplete` and `Collect`.
//!
//! Completed exchanges are queued with `try_send`: a full queue drops the record and
//! counts it (`microgateway_collect_dropped_total`) rather than delaying a response.
//! One worker task calls the hooks of the plugin-set snapshot the request used.

use super::invoke;
use crate::loader::PluginSet;
use crate::plugin::{CompletedExchange, Hook};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;

/// One completed exchange and the snapshot whose hooks should see it.
pub struct Job {
    /// Snapshot used by the request.
    pub set: Arc<PluginSet>,
    /// Route index.
    pub route: usize,
    /// What happened.
    pub exchange: CompletedExchange,
    /// LLM provider, when usage should be extracted from the response.
    pub provider: Option<crate::llm::Provider>,
}

/// Handle for queueing jobs; cheap to clone.
#[derive(Clone)]
pub struct Collector {
    tx: mpsc::Sender<Job>,
    busy: Arc<AtomicUsize>,
}

impl std::fmt::Debug for Collector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collector")
            .field("queued", &(self.tx.max_capacity() - self.tx.capacity()))
            .finish()
    }
}

impl Collector {
    /// Starts the worker on the current Tokio runtime.
    pub fn spawn(capacity: usize) -> Collector {
        // Tokio panics on a capacity of zero or beyond its semaphore's permit count.
        let capacity = capacity.clamp(1, tokio::sync::Semaphore::MAX_PERMITS);
        let (tx, rx) = mpsc::channel(capacity);
        let busy = Arc::new(AtomicUsize::new(0));
        crate::task::detach("collect-worker", worker(rx, busy.clone()));
        Collector { tx, busy }
    }

    /// Queues a job without waiting; drops and counts it when the queue is full.
    pub fn submit(&self, job: Job) {
        if self.tx.try_send(job).is_err() {
            crate::metrics::collect_dropped();
        }
    }

    /// Waits until the queue is empty and the worker idle, or `timeout` passes.
    pub async fn flush(&self, timeout: Duration) -> bool {
        let deadline = crate::deadline::after(tokio::time::Instant::now(), timeout);
        loop {
            let idle = self.tx.capacity() == self.tx.max_capacity()
                && self.busy.load(Ordering::Acquire) == 0;
            if idle {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

async fn worker(mut rx: mpsc::Receiver<Job>, busy: Arc<AtomicUsize>) {
    loop {
        let Some(mut job) = rx.recv().await else {
            break;
        };
        busy.store(1, Ordering::Release);
        if let Some(provider) = job.provider {
            crate::llm::settle(provider, &mut job.exchange);
        }
        let plan = job.set.plan(job.route);
        for instance in &plan.stream_complete {
            let call = || instance.plugin.on_stream_complete(&job.exchange);
            // Failures are logged and counted by `invoke`; nothing can be rejected any more.
            let _ = invoke(instance, Hook::OnStreamComplete, call).await;
        }
        for instance in &plan.collect {
            let call = || instance.plugin.collect(&job.exchange);
            let _ = invoke(instance, Hook::Collect, call).await;
        }
        drop(job);
        busy.store(0, Ordering::Release);
    }
}
