//! Rate limits: one token bucket per key (an API key, or a client address
//! for media URLs), and the values the `X-RateLimit-*` headers carry. The
//! whole rule lives here; the HTTP layer only copies a [`Decision`] into
//! headers.
//!
//! The bucket holds `burst` tokens and refills at `per_minute` tokens a
//! minute; each request takes one. It is kept as the instant it will be
//! full again (the "theoretical arrival time" of GCRA, which is the same
//! arithmetic as a token bucket in integers): a full bucket needs no state,
//! so buckets that are full are simply forgotten.
//!
//! Not the `governor` crate: its quota is fixed per limiter, while an
//! organization's override can change at any request (a PATCH of its
//! settings), and its state snapshot does not tell when the bucket is full
//! again, which `X-RateLimit-Reset` needs; the map bound below is also ours
//! to choose.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Largest per-minute rate and burst: beyond it, a bucket's arithmetic
/// would leave 64-bit nanoseconds, and no client needs more.
pub const MAX_RATE: u32 = 1_000_000;

const NANOS_PER_MINUTE: u64 = 60_000_000_000;
const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// A bucket's size and refill rate, both at least 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    pub per_minute: u32,
    pub burst: u32,
}

impl Quota {
    /// `None` when either is 0: no limit. Values beyond [`MAX_RATE`] count
    /// as `MAX_RATE`.
    pub fn new(per_minute: u32, burst: u32) -> Option<Self> {
        (per_minute > 0 && burst > 0).then(|| Self {
            per_minute: per_minute.min(MAX_RATE),
            burst: burst.min(MAX_RATE),
        })
    }

    /// Time one token takes to come back.
    fn interval(&self) -> u64 {
        NANOS_PER_MINUTE / u64::from(self.per_minute)
    }

    /// Time an empty bucket takes to fill.
    fn capacity(&self) -> u64 {
        self.interval() * u64::from(self.burst)
    }
}

/// What one request gets, with the header values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// `X-RateLimit-Limit`: the bucket's size (the burst).
    pub limit: u32,
    /// `X-RateLimit-Remaining`: tokens left after this request.
    pub remaining: u32,
    /// `X-RateLimit-Reset`: whole seconds until the bucket is full again
    /// (a delay, like `Retry-After`, so clients' clock skew does not matter).
    pub reset_secs: u64,
    /// `Retry-After` of a refused request: whole seconds until one token is
    /// back (at least 1).
    pub retry_after_secs: u64,
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    quota: Quota,
    /// When the bucket is full again, in nanoseconds since the limiter's
    /// epoch.
    full_at: u64,
}

/// Takes one token at time `now` from a bucket that is full at `full_at`;
/// returns the decision and the bucket's new `full_at`.
fn take(quota: Quota, full_at: u64, now: u64) -> (Decision, u64) {
    let t = quota.interval();
    let tau = quota.capacity();
    // Time still needed to refill, i.e. tokens missing times `t`.
    let debt = full_at.saturating_sub(now);
    let allowed = debt + t <= tau;
    let new_debt = if allowed { debt + t } else { debt };
    let remaining = (tau.saturating_sub(new_debt) / t) as u32;
    let decision = Decision {
        allowed,
        limit: quota.burst,
        remaining,
        reset_secs: new_debt.div_ceil(NANOS_PER_SECOND),
        // A token is back once the debt has shrunk to `tau - t`.
        retry_after_secs: (debt + t)
            .saturating_sub(tau)
            .div_ceil(NANOS_PER_SECOND)
            .max(1),
    };
    (decision, now + new_debt)
}

/// A bucket whose quota changed keeps the tokens it was missing (at most a
/// full new bucket's worth), so changing the quota neither refills nor
/// empties it.
fn rescale(old: Quota, new: Quota, full_at: u64, now: u64) -> u64 {
    let missing = full_at.saturating_sub(now).div_ceil(old.interval());
    now + missing.min(u64::from(new.burst)) * new.interval()
}

/// Buckets by key, at most `max_keys` of them. A full bucket carries no
/// information, so it is dropped first; if the map is still full, the new
/// key evicts arbitrary ones (which only makes that key's limit more
/// lenient for a while: a client able to present that many keys or
/// addresses could spread its requests over them anyway).
pub struct KeyedLimiter<K> {
    epoch: Instant,
    max_keys: usize,
    buckets: Mutex<HashMap<K, Bucket>>,
}

impl<K: Hash + Eq + Clone> KeyedLimiter<K> {
    pub fn new(max_keys: usize) -> Self {
        Self {
            epoch: Instant::now(),
            max_keys: max_keys.max(1),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn nanos(&self, at: Instant) -> u64 {
        // Instants before the epoch (none in practice) count as the epoch.
        at.saturating_duration_since(self.epoch).as_nanos() as u64
    }

    /// Takes a token for `key` at `now`, under `quota`.
    pub fn check(&self, key: &K, quota: Quota, now: Instant) -> Decision {
        let now = self.nanos(now);
        let mut buckets = self.buckets.lock().expect("rate limit lock poisoned");
        let full_at = match buckets.get(key) {
            Some(b) if b.quota == quota => b.full_at,
            Some(b) => rescale(b.quota, quota, b.full_at, now),
            None => now,
        };
        let (decision, full_at) = take(quota, full_at, now);
        if !buckets.contains_key(key) && buckets.len() >= self.max_keys {
            buckets.retain(|_, b| b.full_at > now);
            if buckets.len() >= self.max_keys {
                // An eighth at once, so a flood of new keys costs one scan
                // per `max_keys / 8` of them, not one per request.
                let victims: Vec<K> = buckets
                    .keys()
                    .take(self.max_keys / 8 + 1)
                    .cloned()
                    .collect();
                for v in &victims {
                    buckets.remove(v);
                }
            }
        }
        buckets.insert(key.clone(), Bucket { quota, full_at });
        decision
    }

    /// Forgets the buckets that are full at `now` (called periodically, so
    /// keys seen once do not stay in memory).
    pub fn prune(&self, now: Instant) {
        let now = self.nanos(now);
        self.buckets
            .lock()
            .expect("rate limit lock poisoned")
            .retain(|_, b| b.full_at > now);
    }

    pub fn len(&self) -> usize {
        self.buckets.lock().expect("rate limit lock poisoned").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How often full buckets are forgotten.
pub const PRUNE_EVERY: Duration = Duration::from_secs(60);

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    fn q(per_minute: u32, burst: u32) -> Quota {
        Quota::new(per_minute, burst).unwrap()
    }

    #[test]
    fn zero_means_no_limit_and_huge_values_are_capped() {
        assert_eq!(Quota::new(0, 10), None);
        assert_eq!(Quota::new(10, 0), None);
        let widest = Quota::new(1, u32::MAX).unwrap();
        assert_eq!(widest.burst, MAX_RATE);
        // No overflow at the extremes.
        let d = KeyedLimiter::new(1).check(&0, widest, Instant::now());
        assert_eq!((d.allowed, d.remaining), (true, MAX_RATE - 1));
        assert_eq!(d.reset_secs, 60);
    }

    #[test]
    fn burst_then_refused_with_retry_after() {
        // 60 a minute: one token a second, bucket of 3.
        let l = KeyedLimiter::new(10);
        let t0 = Instant::now();
        let quota = q(60, 3);
        let seen: Vec<_> = (0..3).map(|_| l.check(&"k", quota, t0)).collect();
        assert!(seen.iter().all(|d| d.allowed && d.limit == 3));
        assert_eq!(
            seen.iter().map(|d| d.remaining).collect::<Vec<_>>(),
            [2, 1, 0]
        );
        assert_eq!(
            seen.iter().map(|d| d.reset_secs).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        let refused = l.check(&"k", quota, t0);
        assert!(!refused.allowed);
        assert_eq!(refused.remaining, 0);
        assert_eq!(refused.retry_after_secs, 1);
        assert_eq!(refused.reset_secs, 3);
        // A refusal takes nothing: after one second exactly one more passes.
        let later = t0 + SEC;
        assert!(l.check(&"k", quota, later).allowed);
        assert!(!l.check(&"k", quota, later).allowed);
    }

    #[test]
    fn retry_after_rounds_up_partial_seconds() {
        // One token per 1.5 s.
        let l = KeyedLimiter::new(10);
        let t0 = Instant::now();
        let quota = q(40, 1);
        assert!(l.check(&1, quota, t0).allowed);
        let d = l.check(&1, quota, t0 + Duration::from_millis(100));
        assert!(!d.allowed);
        assert_eq!(d.retry_after_secs, 2, "1.4 s rounds up");
        assert!(l.check(&1, quota, t0 + Duration::from_millis(1500)).allowed);
    }

    #[test]
    fn refills_to_full_and_no_further() {
        let l = KeyedLimiter::new(10);
        let t0 = Instant::now();
        let quota = q(60, 5);
        for _ in 0..5 {
            l.check(&"k", quota, t0);
        }
        let d = l.check(&"k", quota, t0 + 100 * SEC);
        assert!(d.allowed);
        assert_eq!(d.remaining, 4, "a bucket never holds more than its burst");
    }

    #[test]
    fn keys_have_their_own_buckets() {
        let l = KeyedLimiter::new(10);
        let t0 = Instant::now();
        let quota = q(60, 1);
        assert!(l.check(&"a", quota, t0).allowed);
        assert!(!l.check(&"a", quota, t0).allowed);
        assert!(l.check(&"b", quota, t0).allowed);
    }

    #[test]
    fn quota_change_keeps_the_missing_tokens() {
        let l = KeyedLimiter::new(10);
        let t0 = Instant::now();
        for _ in 0..3 {
            l.check(&"k", q(60, 10), t0);
        }
        // Three tokens missing; the new bucket holds 5, so 2 are left
        // before this request and 1 after.
        let d = l.check(&"k", q(600, 5), t0);
        assert!(d.allowed);
        assert_eq!((d.limit, d.remaining), (5, 1));
    }

    #[test]
    fn map_is_bounded_and_full_buckets_go_first() {
        let l = KeyedLimiter::new(2);
        let t0 = Instant::now();
        let quota = q(60, 10);
        l.check(&1, quota, t0);
        l.check(&2, quota, t0);
        // Key 1 and 2 are full again after a second: both can go.
        l.check(&3, quota, t0 + 2 * SEC);
        assert_eq!(l.len(), 1);
        l.check(&4, quota, t0 + 2 * SEC);
        l.check(&5, quota, t0 + 2 * SEC);
        assert_eq!(l.len(), 2, "never more than max_keys");
        // A flood of new keys evicts in batches and stays bounded.
        let big = KeyedLimiter::new(80);
        for k in 0..1000 {
            big.check(&k, quota, t0);
            assert!(big.len() <= 80);
        }
        assert!(big.len() > 60, "only about an eighth goes at a time");
    }

    #[test]
    fn prune_forgets_full_buckets_only() {
        let l = KeyedLimiter::new(10);
        let t0 = Instant::now();
        l.check(&"slow", q(1, 1), t0);
        l.check(&"fast", q(600, 1), t0);
        l.prune(t0 + SEC);
        assert_eq!(l.len(), 1);
        assert!(!l.check(&"slow", q(1, 1), t0 + SEC).allowed);
    }
}
