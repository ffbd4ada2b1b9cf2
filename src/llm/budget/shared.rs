//! What a policy reads and takes from its windows: the tokens and cost used
//! ([`Totals`]) and one request of the request budget ([`Reserve`]), from this
//! process's windows or, with `[cluster]`, from the fleet's.
//!
//! The fleet's request counter is leased ([`crate::cluster::lease`]): never more than
//! the limit is admitted. Tokens and cost are known after a response and settled in
//! batches ([`crate::cluster::settle`]), so a check sees the fleet's usage as of at most
//! two `sync_interval`s ago plus this gateway's own. Each check has a synchronous form
//! (`…_now`, `None` when Redis must be asked) so an admission that needs no Redis call
//! builds no future.

use super::{Budgets, Window};
use crate::cluster::Cluster;
use crate::cluster::lease::{Leases, Take};
use crate::config::OnUnavailable;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// The tokens and cost an app has used in the current window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Tokens (prompt + completion).
    pub tokens: u64,
    /// Cost in millionths of a US dollar.
    pub micro_usd: u64,
}

/// The answer to one request of the request budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reserve {
    /// Counted; `left` requests remain in the window (`u64::MAX` without a limit).
    Admitted {
        /// Requests left after this one.
        left: u64,
    },
    /// The budget is used up.
    Over,
    /// Redis is down and `on_unavailable = "deny"`.
    Denied,
}

/// The fleet's side of one policy's windows.
pub(super) struct Shared {
    leases: Leases,
    /// `budget:<policy>:<window seconds>:`, under the cluster's prefix.
    name: String,
    /// How long Redis keeps a window's counters: two window lengths, for late
    /// settlements of the window before.
    ttl: Duration,
}

impl Shared {
    pub(super) fn new(cluster: Arc<Cluster>, policy: &str, window: Duration) -> Shared {
        let name = cluster.key(&format!("budget:{policy}:{}:", window.as_secs()));
        let ttl = crate::deadline::doubled(window);
        Shared {
            leases: Leases::new(cluster, 100_000, ttl),
            name,
            ttl,
        }
    }

    fn key(&self, app: &str, index: u64, field: &str) -> String {
        format!("{}{app}:{index}:{field}", self.name)
    }

    fn cluster(&self) -> &Arc<Cluster> {
        self.leases.cluster()
    }

    /// Queues an exchange's usage for the fleet's counters.
    pub(super) fn settle_usage(&self, app: &str, index: u64, tokens: u64, micro: u64) {
        let settle = self.cluster().settle();
        let ttl = self.ttl;
        settle.add(self.key(app, index, "tokens"), tokens, ttl);
        settle.add(self.key(app, index, "micro_usd"), micro, ttl);
    }
}

fn local_totals(window: &Window) -> Totals {
    Totals {
        tokens: window.tokens.load(Ordering::Relaxed),
        micro_usd: window.micro_usd.load(Ordering::Relaxed),
    }
}

/// Counts one request in this process's window, refused at `limit`.
fn reserve_local(window: &Window, limit: Option<u64>) -> Reserve {
    let used = window.requests.load(Ordering::Relaxed);
    match limit {
        Some(l) if used >= l => Reserve::Over,
        _ => {
            window.requests.fetch_add(1, Ordering::Relaxed);
            Reserve::Admitted {
                left: limit.map_or(u64::MAX, |l| l.saturating_sub(used + 1)),
            }
        }
    }
}

impl Budgets {
    /// The tokens and cost `app` has used, or `None` when the fleet's totals must first
    /// be read from Redis ([`Budgets::totals`]).
    pub fn totals_now(&self, app: &str) -> Option<Totals> {
        let window = self.current(app);
        let Some(shared) = &self.shared else {
            return Some(local_totals(&window));
        };
        let index = self.index();
        let settle = shared.cluster().settle();
        let tokens = settle.total(&shared.key(app, index, "tokens"));
        let micro = settle.total(&shared.key(app, index, "micro_usd"));
        match (tokens, micro) {
            (Some(tokens), Some(micro_usd)) => Some(Totals { tokens, micro_usd }),
            // Never read and Redis down: what this process counted.
            _ if !shared.cluster().is_up() => Some(local_totals(&window)),
            _ => None,
        }
    }

    /// The tokens and cost `app` has used, reading the fleet's totals when needed.
    pub async fn totals(&self, app: &str) -> Totals {
        if let Some(totals) = self.totals_now(app) {
            return totals;
        }
        let window = self.current(app);
        let Some(shared) = &self.shared else {
            return local_totals(&window);
        };
        let index = self.index();
        let keys = [
            shared.key(app, index, "tokens"),
            shared.key(app, index, "micro_usd"),
        ];
        match shared
            .cluster()
            .settle()
            .fetch(shared.cluster(), &keys)
            .await
        {
            Ok(v) => Totals {
                tokens: v.first().copied().unwrap_or_default(),
                micro_usd: v.get(1).copied().unwrap_or_default(),
            },
            Err(_) => local_totals(&window),
        }
    }

    /// Counts one request of `app` against `limit`, or `None` when a lease must first
    /// be taken from Redis ([`Budgets::reserve`]).
    pub fn reserve_now(&self, app: &str, limit: Option<u64>) -> Option<Reserve> {
        let window = self.current(app);
        let (Some(shared), Some(limit)) = (&self.shared, limit) else {
            return Some(reserve_local(&window, limit));
        };
        let key = shared.key(app, self.index(), "requests");
        match shared.leases.local(&key) {
            Some(Take::Granted { left }) => {
                window.requests.fetch_add(1, Ordering::Relaxed);
                Some(Reserve::Admitted { left })
            }
            Some(Take::Refused { .. }) => Some(Reserve::Over),
            None if !shared.cluster().is_up() => Some(self.degraded(app, &window, limit)),
            None => None,
        }
    }

    /// Counts one request of `app` against `limit`, leasing from Redis when needed.
    pub async fn reserve(&self, app: &str, limit: Option<u64>) -> Reserve {
        if let Some(r) = self.reserve_now(app, limit) {
            return r;
        }
        let window = self.current(app);
        let (Some(shared), Some(limit)) = (&self.shared, limit) else {
            return reserve_local(&window, limit);
        };
        let key = shared.key(app, self.index(), "requests");
        let want = (limit / 64).clamp(1, 1000);
        let remaining = Duration::from_secs(self.seconds_left());
        match shared.leases.window(&key, limit, want, remaining).await {
            Ok(Take::Granted { left }) => {
                window.requests.fetch_add(1, Ordering::Relaxed);
                Reserve::Admitted { left }
            }
            Ok(Take::Refused { .. }) => Reserve::Over,
            Err(_) => self.degraded(app, &window, limit),
        }
    }

    /// One request while the fleet's Redis is down, by `cluster.on_unavailable`. An
    /// admitted request is queued for the fleet's counter, which gets it when Redis
    /// answers again.
    fn degraded(&self, app: &str, window: &Window, limit: u64) -> Reserve {
        let Some(shared) = &self.shared else {
            return reserve_local(window, Some(limit));
        };
        let mode = shared.cluster().on_unavailable();
        crate::metrics::cluster_degraded("llm_policy", mode.as_str());
        let reserve = match mode {
            OnUnavailable::Local => reserve_local(window, Some(limit)),
            OnUnavailable::Allow => reserve_local(window, None),
            OnUnavailable::Deny => Reserve::Denied,
        };
        if matches!(reserve, Reserve::Admitted { .. }) {
            let key = shared.key(app, self.index(), "requests");
            shared.cluster().settle().add(key, 1, shared.ttl);
        }
        reserve
    }
}
