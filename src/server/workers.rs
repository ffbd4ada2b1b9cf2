//! Starting the proxy worker threads: each runs a single-threaded Tokio runtime that
//! accepts from the one proxy listener, serves its connections to the end, then drains
//! them on shutdown. See [`crate::worker`] for why.
//!
//! All workers accept from one shared accept queue (clones of one socket) rather than
//! `SO_REUSEPORT` sockets: with a connection cap, a per-worker queue could hold a waiting
//! connection on a worker that is not the one getting the next free slot. A worker that
//! is busy returns to `accept` later than an idle one, so the shared queue balances by load.

use super::conn::ConnShared;
use super::{ServerError, accept_loop, drain};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// What every worker shares.
pub(super) struct WorkerShared {
    pub conn: Arc<ConnShared>,
    pub limit: Arc<Semaphore>,
    pub stop: CancellationToken,
    pub hard: CancellationToken,
    pub grace: Duration,
}

/// Spawns `count` worker threads accepting from `listener`; each receiver fires when
/// its worker has stopped accepting and drained its connections.
pub(super) fn spawn(
    listener: &std::net::TcpListener,
    count: usize,
    shared: &Arc<WorkerShared>,
) -> Result<Vec<oneshot::Receiver<()>>, ServerError> {
    let mut done = Vec::with_capacity(count);
    for index in 1..=count {
        let listener = listener.try_clone().map_err(ServerError::Worker)?;
        let shared = shared.clone();
        let (tx, rx) = oneshot::channel();
        std::thread::Builder::new()
            .name(format!("mg-proxy-{index}"))
            .spawn(move || {
                run(index, listener, &shared);
                let _ = tx.send(());
            })
            .map_err(ServerError::Worker)?;
        done.push(rx);
    }
    Ok(done)
}

/// Serves `listener` on the calling (shared, multi-threaded) runtime instead of worker
/// threads (`server.thread_per_core = false`); the receiver fires once it has drained.
pub(super) fn spawn_shared(
    listener: std::net::TcpListener,
    shared: &Arc<WorkerShared>,
) -> Result<oneshot::Receiver<()>, ServerError> {
    let listener = tokio::net::TcpListener::from_std(listener).map_err(ServerError::Worker)?;
    let shared = shared.clone();
    let (tx, rx) = oneshot::channel();
    tokio::spawn(async move {
        let tracker = TaskTracker::new();
        accept_loop(
            listener,
            &shared.conn,
            &shared.limit,
            &tracker,
            &shared.stop,
        )
        .await;
        drain(&tracker, &shared.hard, shared.grace).await;
        let _ = tx.send(());
    });
    Ok(rx)
}

/// Body of one worker thread.
fn run(index: usize, listener: std::net::TcpListener, shared: &WorkerShared) {
    crate::worker::enter(index);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!(worker = index, error = %e, "cannot start proxy worker runtime");
            return;
        }
    };
    runtime.block_on(async {
        let listener = match tokio::net::TcpListener::from_std(listener) {
            Ok(listener) => listener,
            Err(e) => {
                tracing::error!(worker = index, error = %e, "cannot register the proxy listener");
                return;
            }
        };
        let tracker = TaskTracker::new();
        accept_loop(
            listener,
            &shared.conn,
            &shared.limit,
            &tracker,
            &shared.stop,
        )
        .await;
        drain(&tracker, &shared.hard, shared.grace).await;
    });
}
