//! Per-app usage windows shared by every `llm_policy` instance.
//!
//! Requests are counted when a policy admits them; tokens are added when a completed
//! exchange's usage is known (after the response, off the request path). Windows are
//! fixed (`window` long, aligned to the Unix epoch) and live in moka caches that expire
//! them after two window lengths.
//!
//! With `[cluster]` the windows are the fleet's ([`shared`]): requests are leased from a
//! counter in Redis, tokens and cost are settled to Redis in batches, and the windows
//! are keyed by the Unix-epoch window index, so they survive a restart.

mod shared;

pub use shared::{Reserve, Totals};

use moka::sync::Cache;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The longest time a window is kept; moka refuses lifetimes beyond 1000 years.
const MAX_TTL: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Counters of one app in one window.
#[derive(Debug, Default)]
pub struct Window {
    /// Requests admitted.
    pub requests: AtomicU64,
    /// Tokens used (prompt + completion).
    pub tokens: AtomicU64,
    /// Cost by the price table, in millionths of a US dollar.
    pub micro_usd: AtomicU64,
}

/// The usage windows of one policy (its window length).
pub struct Budgets {
    window: Duration,
    windows: Cache<(String, u64), Arc<Window>>,
    shared: Option<shared::Shared>,
}

fn registry() -> &'static Mutex<Vec<Weak<Budgets>>> {
    static ALL: OnceLock<Mutex<Vec<Weak<Budgets>>>> = OnceLock::new();
    ALL.get_or_init(Mutex::default)
}

impl Budgets {
    /// Creates and registers windows of length `window`; with `cluster`, the fleet's
    /// windows of the policy instance `name`.
    pub fn new(
        window: Duration,
        cluster: Option<(Arc<crate::cluster::Cluster>, &str)>,
    ) -> Arc<Budgets> {
        let budgets = Arc::new(Budgets {
            shared: cluster.map(|(c, name)| shared::Shared::new(c, name, window)),
            window,
            windows: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(crate::deadline::doubled(window).min(MAX_TTL))
                .build(),
        });
        let mut all = registry().lock().unwrap_or_else(|p| p.into_inner());
        all.retain(|w| w.strong_count() > 0);
        all.push(Arc::downgrade(&budgets));
        budgets
    }

    fn index(&self) -> u64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        now.as_secs() / self.window.as_secs().max(1)
    }

    /// The current window of `app`.
    pub fn current(&self, app: &str) -> Arc<Window> {
        self.windows
            .get_with((app.to_string(), self.index()), Arc::default)
    }

    /// Seconds until the current window ends (for `Retry-After`).
    pub fn seconds_left(&self) -> u64 {
        let len = self.window.as_secs().max(1);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        len - now % len
    }
}

/// Adds `tokens` used by `app`, costing `usd`, to every registered policy's current window.
pub fn record_usage(app: &str, tokens: u64, usd: f64) {
    // Saturating and never negative: `as` maps NaN to 0 and clamps to the u64 range.
    let micro = (usd * 1e6).round() as u64;
    let all: Vec<Arc<Budgets>> = registry()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter_map(Weak::upgrade)
        .collect();
    for budgets in all {
        let window = budgets.current(app);
        window.tokens.fetch_add(tokens, Ordering::Relaxed);
        window.micro_usd.fetch_add(micro, Ordering::Relaxed);
        if let Some(shared) = &budgets.shared {
            shared.settle_usage(app, budgets.index(), tokens, micro);
        }
    }
}
