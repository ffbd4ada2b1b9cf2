//! Passive and active health of one target, in atomics only: consecutive failures eject
//! it for a backoff that doubles per ejection, after which it is half-open and exactly
//! one attempt (the probe, won by a compare-and-swap) may try it; success restores it,
//! failure ejects it again for longer. Active checks set a separate flag; a target is
//! usable only when both agree.
//!
//! Times are milliseconds since the group's epoch plus one, so 0 means "never".

use super::Outcome;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};

/// The ejection policy of a group (`max_fails`, `fail_timeout`, `max_fail_timeout`).
#[derive(Debug, Clone, Copy)]
pub(super) struct Passive {
    /// Consecutive failures that eject; 0 turns passive ejection off.
    pub max_fails: u32,
    /// The first ejection in milliseconds.
    pub base_ms: u64,
    /// The longest ejection in milliseconds.
    pub max_ms: u64,
}

/// What a report changed, so the caller can update metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Transition {
    /// Nothing the metrics show.
    None,
    /// The target was ejected (again).
    Ejected,
    /// An ejected target answered and is healthy again.
    Restored,
}

/// The health of one target.
#[derive(Debug, Default)]
pub(super) struct TargetHealth {
    /// Consecutive failed attempts.
    fails: AtomicU32,
    /// End of the current ejection; 0 when the target is not ejected.
    ejected_until: AtomicU64,
    /// Ejections since the target was last healthy, for the doubling backoff.
    streak: AtomicU32,
    /// Every ejection so far.
    ejections: AtomicU64,
    /// A half-open probe is in flight.
    probing: AtomicBool,
    /// When the last failure was reported.
    last_failure: AtomicU64,
    /// The [`Outcome`] code of the last failure (0: none).
    last_error: AtomicU8,
    /// The active check marked the target unhealthy.
    active_down: AtomicBool,
    /// Attempts in flight on this target.
    pub in_flight: AtomicUsize,
}

/// A target's state as the admin API names it.
pub(super) fn state_name(h: &TargetHealth, now: u64) -> &'static str {
    let until = h.ejected_until.load(Ordering::Acquire);
    if h.active_down.load(Ordering::Acquire) {
        "unhealthy_active"
    } else if until == 0 {
        "healthy"
    } else if now < until {
        "ejected"
    } else {
        "half_open"
    }
}

impl TargetHealth {
    /// Whether an attempt could use the target now (read only; see [`Self::claim`]).
    pub fn usable(&self, now: u64) -> bool {
        if self.active_down.load(Ordering::Relaxed) {
            return false;
        }
        let until = self.ejected_until.load(Ordering::Acquire);
        until == 0 || (now >= until && !self.probing.load(Ordering::Relaxed))
    }

    /// Takes the target for one attempt: `Some(false)` when it is healthy, `Some(true)`
    /// when this attempt won the half-open probe, `None` when it is not usable.
    pub fn claim(&self, now: u64) -> Option<bool> {
        if self.active_down.load(Ordering::Relaxed) {
            return None;
        }
        let until = self.ejected_until.load(Ordering::Acquire);
        if until == 0 {
            return Some(false);
        }
        if now < until {
            return None;
        }
        self.probing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
            .ok()
            .map(|_| true)
    }

    /// When the target last failed (0: never).
    pub fn last_failure(&self) -> u64 {
        self.last_failure.load(Ordering::Relaxed)
    }

    /// Records one attempt's outcome; `probe` says whether it was the half-open probe.
    /// `down` counts the group's targets that are not plainly healthy.
    pub fn record(
        &self,
        outcome: Outcome,
        probe: bool,
        now: u64,
        policy: Passive,
        down: &AtomicUsize,
    ) -> Transition {
        let transition = match outcome {
            Outcome::Success | Outcome::TooManyRequests => {
                if self.fails.load(Ordering::Relaxed) != 0 {
                    self.fails.store(0, Ordering::Relaxed);
                }
                if self.ejected_until.load(Ordering::Relaxed) != 0
                    && self.ejected_until.swap(0, Ordering::AcqRel) != 0
                {
                    self.streak.store(0, Ordering::Relaxed);
                    down.fetch_sub(1, Ordering::AcqRel);
                    Transition::Restored
                } else {
                    Transition::None
                }
            }
            Outcome::ServerError | Outcome::TimedOut | Outcome::Reset | Outcome::ConnectFailed => {
                self.last_failure.store(now, Ordering::Relaxed);
                self.last_error.store(code(outcome), Ordering::Relaxed);
                let fails = self.fails.fetch_add(1, Ordering::AcqRel).saturating_add(1);
                let threshold = if outcome == Outcome::ConnectFailed {
                    1
                } else {
                    policy.max_fails
                };
                let ejected = self.ejected_until.load(Ordering::Acquire) != 0;
                if policy.max_fails != 0 && (probe || (!ejected && fails >= threshold)) {
                    self.eject(now, policy, down);
                    Transition::Ejected
                } else {
                    Transition::None
                }
            }
            Outcome::Neutral => Transition::None,
        };
        if probe {
            self.probing.store(false, Ordering::Release);
        }
        transition
    }

    fn eject(&self, now: u64, policy: Passive, down: &AtomicUsize) {
        let streak = self.streak.fetch_add(1, Ordering::AcqRel).min(30);
        let backoff = policy
            .base_ms
            .saturating_mul(1 << streak)
            .min(policy.max_ms);
        if self
            .ejected_until
            .swap(now.saturating_add(backoff).max(1), Ordering::AcqRel)
            == 0
        {
            down.fetch_add(1, Ordering::AcqRel);
        }
        self.ejections.fetch_add(1, Ordering::Relaxed);
    }

    /// Sets the active check's verdict; true when it changed.
    pub fn set_active_down(&self, is_down: bool, down: &AtomicUsize) -> bool {
        let was = self.active_down.swap(is_down, Ordering::AcqRel);
        match (was, is_down) {
            (false, true) => {
                down.fetch_add(1, Ordering::AcqRel);
                true
            }
            (true, false) => {
                down.fetch_sub(1, Ordering::AcqRel);
                true
            }
            _ => false,
        }
    }

    /// Whether the passive state counts the target healthy (for the gauge).
    pub fn passively_healthy(&self) -> bool {
        self.ejected_until.load(Ordering::Acquire) == 0
    }

    /// Consecutive failures, ejections so far, and the last error's name.
    pub fn counts(&self) -> (u32, u64, Option<&'static str>) {
        (
            self.fails.load(Ordering::Relaxed),
            self.ejections.load(Ordering::Relaxed),
            error_name(self.last_error.load(Ordering::Relaxed)),
        )
    }
}

fn code(outcome: Outcome) -> u8 {
    match outcome {
        Outcome::ServerError => 1,
        Outcome::ConnectFailed => 2,
        Outcome::TimedOut => 3,
        Outcome::Reset => 4,
        _ => 0,
    }
}

fn error_name(code: u8) -> Option<&'static str> {
    match code {
        1 => Some("5xx"),
        2 => Some("connect"),
        3 => Some("timeout"),
        4 => Some("reset"),
        _ => None,
    }
}

/// The health of every target of one group, shared with its active checkers.
pub(super) struct GroupHealth {
    /// Per target, in configuration order.
    pub targets: Box<[TargetHealth]>,
    /// Targets that are ejected or failing their active check; while 0, selection
    /// needs no clock.
    pub down: AtomicUsize,
    /// The ejection policy.
    pub passive: Passive,
    /// Per target, pre-registered.
    pub metrics: Box<[crate::metrics::UpstreamTargetMetrics]>,
    epoch: tokio::time::Instant,
}

impl GroupHealth {
    /// Healthy state for `names` of `upstream`.
    pub fn new(upstream: &str, names: &[String], passive: Passive) -> GroupHealth {
        GroupHealth {
            targets: names.iter().map(|_| TargetHealth::default()).collect(),
            down: AtomicUsize::new(0),
            passive,
            metrics: names
                .iter()
                .map(|t| crate::metrics::upstream_target(upstream, t))
                .collect(),
            epoch: tokio::time::Instant::now(),
        }
    }

    /// Milliseconds since the epoch, plus one (0 means never).
    pub fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .saturating_add(1)
    }

    /// Records an attempt on target `i` and updates its metrics.
    pub fn report(&self, i: usize, outcome: Outcome, probe: bool) {
        let Some(h) = self.targets.get(i) else { return };
        // Only failures record a time.
        let now = match outcome {
            Outcome::Success | Outcome::TooManyRequests | Outcome::Neutral => 0,
            _ => self.now(),
        };
        let t = h.record(outcome, probe, now, self.passive, &self.down);
        if let Some(m) = self.metrics.get(i) {
            match t {
                Transition::Ejected => {
                    m.ejections.increment(1);
                    m.healthy.set(0.0);
                }
                Transition::Restored if !h.active_down.load(Ordering::Acquire) => {
                    m.healthy.set(1.0);
                }
                _ => {}
            }
        }
    }

    /// Sets the active verdict of target `i` and updates its gauge.
    pub fn set_active(&self, i: usize, healthy: bool) {
        let Some(h) = self.targets.get(i) else { return };
        if h.set_active_down(!healthy, &self.down)
            && let Some(m) = self.metrics.get(i)
        {
            let up = healthy && h.passively_healthy();
            m.healthy.set(if up { 1.0 } else { 0.0 });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: Passive = Passive {
        max_fails: 3,
        base_ms: 100,
        max_ms: 350,
    };

    #[test]
    fn three_server_errors_eject_and_a_probe_restores() {
        let (h, down) = (TargetHealth::default(), AtomicUsize::new(0));
        for now in 1..3 {
            assert_eq!(
                h.record(Outcome::ServerError, false, now, POLICY, &down),
                Transition::None
            );
            assert!(h.usable(now));
        }
        assert_eq!(
            h.record(Outcome::ServerError, false, 3, POLICY, &down),
            Transition::Ejected
        );
        assert_eq!(down.load(Ordering::Relaxed), 1);
        assert!(!h.usable(50));
        assert_eq!(h.claim(50), None);
        assert_eq!(state_name(&h, 50), "ejected");
        // Half-open after the backoff: exactly one probe.
        assert_eq!(state_name(&h, 103), "half_open");
        assert_eq!(h.claim(103), Some(true));
        assert_eq!(h.claim(103), None);
        assert!(!h.usable(103));
        assert_eq!(
            h.record(Outcome::Success, true, 104, POLICY, &down),
            Transition::Restored
        );
        assert_eq!(down.load(Ordering::Relaxed), 0);
        assert_eq!(h.claim(104), Some(false));
        assert_eq!(h.counts(), (0, 1, Some("5xx")));
    }

    #[test]
    fn a_failed_probe_doubles_the_backoff_up_to_the_cap() {
        let (h, down) = (TargetHealth::default(), AtomicUsize::new(0));
        h.record(Outcome::ConnectFailed, false, 1, POLICY, &down);
        assert_eq!(h.claim(100), None);
        assert_eq!(h.claim(101), Some(true));
        h.record(Outcome::TimedOut, true, 101, POLICY, &down);
        // 200 ms now.
        assert_eq!(h.claim(300), None);
        assert_eq!(h.claim(301), Some(true));
        h.record(Outcome::Reset, true, 301, POLICY, &down);
        // 400 ms capped at 350.
        assert_eq!(h.claim(650), None);
        assert_eq!(h.claim(651), Some(true));
        // An abandoned probe frees the slot without a verdict.
        h.record(Outcome::Neutral, true, 651, POLICY, &down);
        assert_eq!(h.claim(652), Some(true));
        assert_eq!(down.load(Ordering::Relaxed), 1);
        assert_eq!(h.counts().1, 3);
    }

    #[test]
    fn success_resets_the_failure_count_and_zero_turns_ejection_off() {
        let (h, down) = (TargetHealth::default(), AtomicUsize::new(0));
        h.record(Outcome::ServerError, false, 1, POLICY, &down);
        h.record(Outcome::ServerError, false, 2, POLICY, &down);
        h.record(Outcome::Success, false, 3, POLICY, &down);
        h.record(Outcome::ServerError, false, 4, POLICY, &down);
        assert!(h.usable(5));
        let off = Passive {
            max_fails: 0,
            ..POLICY
        };
        for now in 1..10 {
            h.record(Outcome::ConnectFailed, false, now, off, &down);
        }
        assert!(h.usable(10));
    }

    #[test]
    fn active_checks_combine_with_passive_state() {
        let (h, down) = (TargetHealth::default(), AtomicUsize::new(0));
        assert!(h.set_active_down(true, &down));
        assert!(!h.set_active_down(true, &down));
        assert!(!h.usable(1));
        assert_eq!(state_name(&h, 1), "unhealthy_active");
        assert!(h.set_active_down(false, &down));
        assert_eq!(down.load(Ordering::Relaxed), 0);
        assert!(h.usable(1));
    }
}
