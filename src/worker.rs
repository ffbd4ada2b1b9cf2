//! Proxy worker threads: which one is running the current code.
//!
//! The proxy listener is served by one single-threaded Tokio runtime per worker thread
//! (thread per core, like nginx's worker processes): a connection, its requests and the
//! upstream connections they use stay on one thread, so no request pays for cross-thread
//! wake-ups. Per-worker state such as the upstream connection pools is indexed by
//! [`current`]; code outside the workers (admin API, plugin supervisors, tests) gets
//! index 0.

use std::cell::Cell;

thread_local! {
    static INDEX: Cell<usize> = const { Cell::new(0) };
}

/// Index of the proxy worker on this thread: `1..=count` on worker threads, 0 elsewhere.
pub fn current() -> usize {
    INDEX.with(Cell::get)
}

/// Marks this thread as proxy worker `index` (called once when the thread starts).
pub fn enter(index: usize) {
    INDEX.with(|i| i.set(index));
}

/// The most proxy worker threads (`server.workers`).
pub const MAX_WORKERS: usize = 1024;

/// The number of proxy worker threads for `server.thread_per_core` and `server.workers`:
/// none when the proxy runs on the shared runtime (`thread_per_core = false`), else
/// `workers` (at most [`MAX_WORKERS`], even for a hand-built `Config`), or one per
/// available CPU when that is 0.
pub fn count(thread_per_core: bool, workers: usize) -> usize {
    if !thread_per_core {
        return 0;
    }
    if workers > 0 {
        return workers.min(MAX_WORKERS);
    }
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}
