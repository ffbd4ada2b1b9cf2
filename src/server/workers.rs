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

/// How the server follows one accept loop through shutdown. Each receiver also fires
/// (with an error) if the loop ended early, e.g. a worker runtime that could not start.
pub(super) struct Progress {
    /// Fires when the loop has stopped accepting and closed its listener.
    pub closed: oneshot::Receiver<()>,
    /// Fires when its connections have drained.
    pub done: oneshot::Receiver<()>,
}

/// The sending halves of [`Progress`].
struct Report {
    closed: oneshot::Sender<()>,
    done: oneshot::Sender<()>,
}

fn progress() -> (Report, Progress) {
    let (closed_tx, closed) = oneshot::channel();
    let (done_tx, done) = oneshot::channel();
    let report = Report {
        closed: closed_tx,
        done: done_tx,
    };
    (report, Progress { closed, done })
}

/// Spawns `count` worker threads accepting from `listener`.
pub(super) fn spawn(
    listener: &std::net::TcpListener,
    count: usize,
    shared: &Arc<WorkerShared>,
) -> Result<Vec<Progress>, ServerError> {
    let mut all = Vec::with_capacity(count);
    for index in 1..=count {
        let listener = listener.try_clone().map_err(ServerError::Worker)?;
        let shared = shared.clone();
        let (report, progress) = progress();
        std::thread::Builder::new()
            .name(format!("mg-proxy-{index}"))
            .spawn(move || run(index, listener, &shared, report))
            .map_err(ServerError::Worker)?;
        all.push(progress);
    }
    Ok(all)
}

/// Serves `listener` on the calling (shared, multi-threaded) runtime instead of worker
/// threads (`server.thread_per_core = false`).
pub(super) fn spawn_shared(
    listener: std::net::TcpListener,
    shared: &Arc<WorkerShared>,
) -> Result<Progress, ServerError> {
    let listener = tokio::net::TcpListener::from_std(listener).map_err(ServerError::Worker)?;
    let shared = shared.clone();
    let (report, progress) = progress();
    crate::task::detach("timer-anchor", anchor_timers());
    // The accept loop reports its end through `progress`; nobody joins the task.
    crate::task::detach("accept-loop", async move {
        serve(listener, &shared, report).await
    });
    Ok(progress)
}

/// Body of one worker thread.
fn run(index: usize, listener: std::net::TcpListener, shared: &WorkerShared, report: Report) {
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
        // Ends with the runtime, when `block_on` returns.
        crate::task::detach("timer-anchor", anchor_timers());
        let listener = match tokio::net::TcpListener::from_std(listener) {
            Ok(listener) => listener,
            Err(e) => {
                tracing::error!(worker = index, error = %e, "cannot register the proxy listener");
                return;
            }
        };
        serve(listener, shared, report).await;
    });
}

/// Keeps one timer always pending on this runtime, [`ANCHOR_PERIOD`] ahead at most.
///
/// Tokio's timer driver wakes itself (a write to its eventfd, then a return from
/// `epoll_wait`) whenever a timer is registered that expires before the driver's next
/// planned wake-up, and with no timer pending every registration does. hyper arms its
/// header-read timeout for each request on a keep-alive connection, so without this
/// anchor every request paid one `write` syscall and one spurious wake-up of the worker.
/// With it, any timer further out than the anchor — the header-read timeout, idle and
/// request timeouts at their defaults — registers without waking anything.
async fn anchor_timers() {
    let mut tick = tokio::time::interval(ANCHOR_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
    }
}

/// The anchor's period: one cheap wake-up per second per worker, shorter than every
/// default timeout on the request path.
const ANCHOR_PERIOD: std::time::Duration = std::time::Duration::from_secs(1);

/// Accepts until shutdown (the listener is closed when `accept_loop` returns), reports
/// that, then drains this listener's connections and reports that.
async fn serve(listener: tokio::net::TcpListener, shared: &WorkerShared, report: Report) {
    let tracker = TaskTracker::new();
    accept_loop(
        listener,
        &shared.conn,
        &shared.limit,
        &tracker,
        &shared.stop,
    )
    .await;
    let _ = report.closed.send(());
    drain(
        &tracker,
        &shared.hard,
        shared.grace,
        shared.conn.proxy().upgrades(),
    )
    .await;
    let _ = report.done.send(());
}
