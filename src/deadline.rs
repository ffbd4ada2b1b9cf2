//! Deadline arithmetic that cannot panic.
//!
//! `Instant + Duration` panics when the sum does not fit, and so do timers in tokio and
//! hyper that add a configured duration to the current time. Configuration ranges keep
//! durations far below that limit, but embedders can build a `Config` by hand, and
//! plugins hand back durations of their own. Every deadline is therefore computed here:
//! a duration beyond [`FAR_FUTURE`] means "not within the lifetime of this process".

use std::time::Duration;

/// The longest wait ever scheduled: one year, treated as "never".
pub const FAR_FUTURE: Duration = Duration::from_secs(365 * 24 * 3600);

/// `duration`, at most [`FAR_FUTURE`]: for libraries that add it to the current time.
pub fn cap(duration: Duration) -> Duration {
    duration.min(FAR_FUTURE)
}

/// `start + duration` on the Tokio clock; [`FAR_FUTURE`] after `start` when that overflows.
pub fn after(start: tokio::time::Instant, duration: Duration) -> tokio::time::Instant {
    start
        .checked_add(duration)
        .or_else(|| start.checked_add(FAR_FUTURE))
        .unwrap_or(start)
}

/// `duration` doubled, for backoff: saturates instead of overflowing.
pub fn doubled(duration: Duration) -> Duration {
    duration.saturating_mul(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overflowing_deadlines_fall_back_to_the_far_future() {
        let now = tokio::time::Instant::now();
        assert_eq!(after(now, Duration::MAX), now + FAR_FUTURE);
        assert_eq!(
            after(now, Duration::from_secs(1)),
            now + Duration::from_secs(1)
        );
        assert_eq!(after(now, Duration::ZERO), now);
    }

    #[test]
    fn caps_and_doubling_saturate() {
        assert_eq!(cap(Duration::MAX), FAR_FUTURE);
        assert_eq!(cap(Duration::from_millis(5)), Duration::from_millis(5));
        assert_eq!(doubled(Duration::MAX), Duration::MAX);
        assert_eq!(
            doubled(Duration::from_millis(200)),
            Duration::from_millis(400)
        );
    }
}
