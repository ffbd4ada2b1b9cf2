//! Balancing policies over a group's targets, lock free: one atomic round-robin
//! counter per group (shared by the workers, so requests alternate across the whole
//! gateway, as they always did; a `fetch_add`, never a lock), a precomputed weighted
//! schedule, power of two choices on in-flight counts, and a consistent-hash ring with
//! virtual nodes. A policy only proposes candidates in order; health decides.

use crate::config::{Balance, HashOn};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Virtual nodes per target on the hash ring.
const VNODES: usize = 100;

/// The counter on its own cache line, apart from the group's other fields.
#[repr(align(64))]
#[derive(Debug, Default)]
struct Padded(AtomicUsize);

/// A group's policy and its lock-free state.
#[derive(Debug)]
pub(super) struct Policy {
    kind: Kind,
    /// Round-robin position.
    next: Padded,
}

#[derive(Debug)]
enum Kind {
    RoundRobin,
    /// Target indexes, each `weights[i]` times, interleaved smoothly.
    Weighted(Box<[usize]>),
    LeastRequest,
    /// Sorted `(point, target)`.
    Hash(Box<[(u64, usize)]>, HashOn),
}

/// Where a request's candidate walk starts.
#[derive(Debug, Clone, Copy)]
pub(super) enum Start {
    /// Walk targets from this position (round robin, weighted, and the fallback of the
    /// others).
    Turn(usize),
    /// Power of two choices: these two targets first, then round robin from the first.
    Two(usize, usize),
    /// Walk the ring from this entry.
    Ring(usize),
}

impl Policy {
    /// Builds the policy for `names` (the target URLs, hashed onto the ring).
    pub fn new(
        balance: Balance,
        weights: &[u64],
        hash_on: Option<&HashOn>,
        names: &[String],
    ) -> Policy {
        let n = names.len();
        let kind = match (balance, hash_on) {
            (Balance::Weighted, _) => Kind::Weighted(schedule(weights, n)),
            (Balance::LeastRequest, _) => Kind::LeastRequest,
            (Balance::ConsistentHash, Some(on)) => Kind::Hash(ring(names), on.clone()),
            _ => Kind::RoundRobin,
        };
        Policy {
            kind,
            next: Padded::default(),
        }
    }

    fn turn(&self) -> usize {
        self.next.0.fetch_add(1, Ordering::Relaxed)
    }

    /// The first candidate position for a request with `headers` from `client_ip`.
    pub fn start(&self, headers: &http::HeaderMap, client_ip: std::net::IpAddr, n: usize) -> Start {
        match &self.kind {
            Kind::RoundRobin | Kind::Weighted(_) => Start::Turn(self.turn()),
            Kind::LeastRequest => {
                let r = mix(self.turn() as u64);
                let a = (r % n as u64) as usize;
                let b = if n > 1 {
                    (a + 1 + ((r >> 32) % (n as u64 - 1)) as usize) % n
                } else {
                    a
                };
                Start::Two(a, b)
            }
            Kind::Hash(ring, on) => match key_hash(on, headers, client_ip) {
                Some(h) => Start::Ring(ring.partition_point(|(p, _)| *p < h) % ring.len().max(1)),
                None => Start::Turn(self.turn()),
            },
        }
    }

    /// How many candidates a walk from `start` proposes over `n` targets.
    pub fn span(&self, start: Start, n: usize) -> usize {
        match (start, &self.kind) {
            (Start::Turn(_), Kind::Weighted(s)) => s.len() + n,
            (Start::Ring(_), Kind::Hash(ring, _)) => ring.len() + n,
            (Start::Two(..), _) => n + 2,
            _ => n,
        }
    }

    /// The `k`-th candidate of a walk from `start` over `n` targets.
    pub fn candidate(&self, start: Start, k: usize, n: usize) -> usize {
        match (start, &self.kind) {
            (Start::Turn(t), Kind::Weighted(s)) if k < s.len() => s[(t + k) % s.len()],
            (Start::Turn(t), Kind::Weighted(s)) => (t + k - s.len()) % n,
            (Start::Ring(p), Kind::Hash(ring, _)) if k < ring.len() => ring[(p + k) % ring.len()].1,
            (Start::Ring(p), Kind::Hash(ring, _)) => (p + k - ring.len()) % n,
            (Start::Two(a, _), _) if k == 0 => a,
            (Start::Two(_, b), _) if k == 1 => b,
            (Start::Two(a, _), _) => (a + k - 2) % n,
            (Start::Turn(t) | Start::Ring(t), _) => (t + k) % n,
        }
    }

    /// Whether the policy compares the first two candidates by in-flight count.
    pub fn is_least_request(&self) -> bool {
        matches!(self.kind, Kind::LeastRequest)
    }
}

/// Smooth weighted round robin (nginx's), unrolled once into a schedule.
fn schedule(weights: &[u64], n: usize) -> Box<[usize]> {
    let w: Vec<i64> = (0..n)
        .map(|i| i64::try_from(weights.get(i).copied().unwrap_or(1).max(1)).unwrap_or(1))
        .collect();
    let total: i64 = w.iter().sum();
    let mut current = vec![0i64; n];
    let mut out = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    for _ in 0..total {
        for (c, wi) in current.iter_mut().zip(&w) {
            *c += wi;
        }
        let best = (0..n)
            .max_by_key(|&i| (current[i], usize::MAX - i))
            .unwrap_or(0);
        current[best] -= total;
        out.push(best);
    }
    out.into_boxed_slice()
}

fn ring(names: &[String]) -> Box<[(u64, usize)]> {
    let mut points = Vec::with_capacity(names.len() * VNODES);
    for (i, name) in names.iter().enumerate() {
        for v in 0..VNODES {
            let h = fnv(name.as_bytes()) ^ mix(v as u64);
            points.push((mix(h), i));
        }
    }
    points.sort_unstable();
    points.into_boxed_slice()
}

fn key_hash(on: &HashOn, headers: &http::HeaderMap, client_ip: std::net::IpAddr) -> Option<u64> {
    match on {
        HashOn::Header(name) => headers.get(name.as_str()).map(|v| mix(fnv(v.as_bytes()))),
        HashOn::Cookie(name) => cookie(headers, name).map(|v| mix(fnv(v.as_bytes()))),
        HashOn::ClientIp => Some(match client_ip {
            std::net::IpAddr::V4(a) => mix(fnv(&a.octets())),
            std::net::IpAddr::V6(a) => mix(fnv(&a.octets())),
        }),
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
fn cookie<'h>(headers: &'h http::HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// FNV-1a, 64 bits.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// SplitMix64's finaliser: spreads FNV's weak low bits over the ring.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_weighted_schedule_interleaves_by_weight() {
        assert_eq!(&*schedule(&[3, 1], 2), &[0, 0, 1, 0]);
        assert_eq!(&*schedule(&[], 3), &[0, 1, 2]);
        let s = schedule(&[5, 1, 1], 3);
        assert_eq!(s.iter().filter(|&&i| i == 0).count(), 5);
    }

    #[test]
    fn the_ring_spreads_keys_over_every_target() {
        let names: Vec<String> = (0..4).map(|i| format!("http://10.0.0.{i}:80")).collect();
        let ring = ring(&names);
        let owner = |h: u64| ring[ring.partition_point(|(p, _)| *p < h) % ring.len()].1;
        let mut per = [0usize; 4];
        for k in 0..4000u64 {
            per[owner(mix(fnv(&k.to_le_bytes())))] += 1;
        }
        assert!(per.iter().all(|&c| c > 600), "{per:?}");
    }

    #[test]
    fn cookies_are_found_by_exact_name() {
        let mut h = http::HeaderMap::new();
        h.append(http::header::COOKIE, "a=1; session=abc".parse().unwrap());
        h.append(http::header::COOKIE, "xsession=no".parse().unwrap());
        assert_eq!(cookie(&h, "session"), Some("abc"));
        assert_eq!(cookie(&h, "b"), None);
    }
}
