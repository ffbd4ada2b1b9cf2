//! Choosing a target for one attempt (`Upstream::select`) and hearing how it went
//! (`Pick::report`): the balancing policy proposes candidates, health filters them,
//! and the circuit breaker's `max_requests` slot is held by the [`Pick`].
//!
//! The walk is three passes: a usable target not yet tried; a usable target even if
//! tried; and when nothing is usable, the least recently failed target (never fail
//! closed).

use super::Upstream;
use super::balance::Start;
use std::sync::atomic::Ordering;

/// The facts of a request that balancing may hash on (`consistent_hash`).
pub struct Affinity<'a> {
    /// The request headers as they go upstream (cookies included).
    pub headers: &'a http::HeaderMap,
    /// The client's address.
    pub client_ip: std::net::IpAddr,
}

/// A circuit-breaker limit of the group is reached: the request is answered 503
/// `upstream_overloaded` without an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overloaded {
    /// Which limit (`max_requests`).
    pub limit: &'static str,
}

/// How one attempt on a target ended, as passive health, `least_request` and the
/// circuit breaker count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A response head below 500 other than 429.
    Success,
    /// A 5xx response head.
    ServerError,
    /// A 429 response head: the target is up but busy.
    TooManyRequests,
    /// The connection could not be made (refused, unreachable, TLS) before any request
    /// byte was sent.
    ConnectFailed,
    /// The connect or the response head timed out.
    TimedOut,
    /// The connection broke after the request was sent, before a response head.
    Reset,
    /// Abandoned for a reason that says nothing about the target (the client went
    /// away, a body limit, a plugin).
    Neutral,
}

/// One attempt's target. It holds the attempt's in-flight slot (for `least_request` and
/// the breaker) until it is reported; dropping it unreported counts as
/// [`Outcome::Neutral`].
pub struct Pick<'a> {
    upstream: &'a Upstream,
    index: usize,
    /// This attempt is the half-open probe of an ejected target.
    probe: bool,
    reported: bool,
}

impl<'a> Pick<'a> {
    /// The target's index in the group.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The chosen target.
    pub fn target(&self) -> &'a super::Target {
        &self.upstream.targets[self.index]
    }

    /// Whether this attempt probes a half-open target.
    pub fn is_probe(&self) -> bool {
        self.probe
    }

    /// Records how the attempt ended.
    pub fn report(mut self, outcome: Outcome) {
        self.finish(outcome);
    }

    fn finish(&mut self, outcome: Outcome) {
        if std::mem::replace(&mut self.reported, true) {
            return;
        }
        let up = self.upstream;
        if let Some(h) = up.health.targets.get(self.index) {
            h.in_flight.fetch_sub(1, Ordering::AcqRel);
        }
        if up.breaker.max_requests.is_some() {
            up.breaker.in_flight.fetch_sub(1, Ordering::AcqRel);
        }
        up.health.report(self.index, outcome, self.probe);
    }
}

impl Drop for Pick<'_> {
    fn drop(&mut self) {
        self.finish(Outcome::Neutral);
    }
}

impl Upstream {
    /// Chooses a target for one attempt of a request by the group's balancing policy,
    /// skipping the targets in `tried` (indexes this request already attempted) while
    /// another is usable. Ejected targets are skipped while a healthy one exists; when
    /// every target is ejected the least recently failed one is tried. Fails only when
    /// a circuit-breaker limit is reached.
    pub fn select(&self, affinity: &Affinity<'_>, tried: &[usize]) -> Result<Pick<'_>, Overloaded> {
        if let Some(max) = self.breaker.max_requests
            && self.breaker.in_flight.fetch_add(1, Ordering::AcqRel) >= max
        {
            self.breaker.in_flight.fetch_sub(1, Ordering::AcqRel);
            self.breaker.overloaded.increment(1);
            return Err(Overloaded {
                limit: "max_requests",
            });
        }
        let (index, probe) = self.choose(affinity, tried);
        if let Some(h) = self.health.targets.get(index) {
            h.in_flight.fetch_add(1, Ordering::AcqRel);
        }
        Ok(Pick {
            upstream: self,
            index,
            probe,
            reported: false,
        })
    }

    fn choose(&self, affinity: &Affinity<'_>, tried: &[usize]) -> (usize, bool) {
        let n = self.targets.len();
        let health = &self.health;
        // While nothing is down, no target's state depends on the time.
        let now = if health.down.load(Ordering::Acquire) == 0 {
            0
        } else {
            health.now()
        };
        let start = self.policy.start(affinity.headers, affinity.client_ip, n);
        if self.policy.is_least_request()
            && let Start::Two(a, b) = start
        {
            let fit = |i: usize| {
                !tried.contains(&i) && health.targets.get(i).is_some_and(|h| h.usable(now))
            };
            let load = |i: usize| {
                health
                    .targets
                    .get(i)
                    .map_or(usize::MAX, |h| h.in_flight.load(Ordering::Relaxed))
            };
            let best = match (fit(a), fit(b)) {
                (true, true) if load(b) < load(a) => Some(b),
                (true, _) => Some(a),
                (false, true) => Some(b),
                _ => None,
            };
            if let Some(i) = best
                && let Some(probe) = health.targets.get(i).and_then(|h| h.claim(now))
            {
                return (i, probe);
            }
        }
        let span = self.policy.span(start, n);
        for allow_tried in [false, true] {
            for k in 0..span {
                let i = self.policy.candidate(start, k, n);
                if !allow_tried && tried.contains(&i) {
                    continue;
                }
                if let Some(probe) = health.targets.get(i).and_then(|h| h.claim(now)) {
                    return (i, probe);
                }
            }
        }
        // Nothing is usable: the least recently failed target, untried ones first.
        let index = (0..n)
            .min_by_key(|&i| {
                let last = health.targets.get(i).map_or(0, |h| h.last_failure());
                (tried.contains(&i), last)
            })
            .unwrap_or(0);
        (index, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn group(extra: &str) -> Upstream {
        let toml = format!(
            "[[upstreams]]\nname = \"local-app\"\ntargets = [\"http://127.0.0.1:1\", \"http://127.0.0.1:2\", \"http://127.0.0.1:3\"]\n{extra}\n"
        );
        let config = Config::from_toml(&toml).unwrap();
        Upstream::new(&config.upstreams[0], 0).unwrap()
    }

    fn affinity(headers: &http::HeaderMap) -> Affinity<'_> {
        Affinity {
            headers,
            client_ip: std::net::Ipv4Addr::LOCALHOST.into(),
        }
    }

    #[test]
    fn tried_targets_are_skipped_while_another_is_usable() {
        let (up, h) = (group(""), http::HeaderMap::new());
        for _ in 0..10 {
            let pick = up.select(&affinity(&h), &[0, 2]).unwrap();
            assert_eq!(pick.index(), 1);
        }
        // Every target tried: a usable one is tried again.
        assert!(up.select(&affinity(&h), &[0, 1, 2]).is_ok());
    }

    #[test]
    fn ejected_targets_are_skipped_and_an_all_down_group_tries_the_least_recently_failed() {
        let (up, h) = (group("fail_timeout = \"1day\""), http::HeaderMap::new());
        let eject = |i: usize| loop {
            let pick = up.select(&affinity(&h), &[]).unwrap();
            if pick.index() == i {
                pick.report(Outcome::ConnectFailed);
                break;
            }
        };
        eject(0);
        for _ in 0..10 {
            assert_ne!(up.select(&affinity(&h), &[]).unwrap().index(), 0);
        }
        // Failure times have millisecond resolution.
        let tick = || std::thread::sleep(std::time::Duration::from_millis(5));
        tick();
        eject(2);
        tick();
        eject(1);
        // Target 0 failed longest ago; a tried target comes last.
        let pick = up.select(&affinity(&h), &[]).unwrap();
        assert_eq!(pick.index(), 0);
        assert!(!pick.is_probe());
        drop(pick);
        assert_eq!(up.select(&affinity(&h), &[0]).unwrap().index(), 2);
    }

    #[test]
    fn a_pick_holds_the_breaker_slot_until_reported_or_dropped() {
        let (up, h) = (group("max_requests = 2"), http::HeaderMap::new());
        let a = up.select(&affinity(&h), &[]).unwrap();
        let b = up.select(&affinity(&h), &[]).unwrap();
        assert_eq!(
            up.select(&affinity(&h), &[]).err(),
            Some(Overloaded {
                limit: "max_requests"
            })
        );
        a.report(Outcome::Success);
        let c = up.select(&affinity(&h), &[]).unwrap();
        drop(b);
        drop(c);
        assert!(up.select(&affinity(&h), &[]).is_ok());
        assert!(
            up.health
                .targets
                .iter()
                .all(|t| t.in_flight.load(Ordering::Relaxed) == 0)
        );
    }

    #[test]
    fn consistent_hash_moves_only_the_ejected_targets_keys() {
        let up = group(
            "balance = \"consistent_hash\"\nhash_on = { cookie = \"s\" }\nfail_timeout = \"1day\"",
        );
        let owner = |key: &str, tried: &[usize]| {
            let mut h = http::HeaderMap::new();
            h.insert(http::header::COOKIE, format!("s={key}").parse().unwrap());
            up.select(&affinity(&h), tried).unwrap().index()
        };
        let before: Vec<usize> = (0..60).map(|k| owner(&k.to_string(), &[])).collect();
        let victim = before[0];
        // Eject the first key's owner through a failed report.
        let mut h = http::HeaderMap::new();
        h.insert(http::header::COOKIE, "s=0".parse().unwrap());
        up.select(&affinity(&h), &[])
            .unwrap()
            .report(Outcome::ConnectFailed);
        for (k, was) in before.iter().enumerate() {
            let now = owner(&k.to_string(), &[]);
            if *was == victim {
                assert_ne!(now, victim);
            } else {
                assert_eq!(now, *was, "key {k} moved");
            }
        }
    }
}
