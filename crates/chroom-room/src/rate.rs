//! Token buckets: how often something may happen, on average and in a burst. Time is an input.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Instant;

/// A rate: `per_second` on average, up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Sustained events per second.
    pub per_second: f64,
    /// Events allowed at once after a quiet spell.
    pub burst: f64,
}

/// One bucket of [`Rate`] tokens.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TokenBucket {
    tokens: f64,
    at: Option<Instant>,
}

impl TokenBucket {
    /// A full bucket.
    pub(crate) fn new() -> Self {
        Self {
            tokens: f64::INFINITY,
            at: None,
        }
    }

    /// Takes a token if one is there at `now`.
    pub(crate) fn take(&mut self, now: Instant, rate: Rate) -> bool {
        if !self.has(now, rate) {
            return false;
        }
        self.tokens -= 1.0;
        true
    }

    /// Refills to `now` and says whether a token is there (without taking it).
    pub(crate) fn has(&mut self, now: Instant, rate: Rate) -> bool {
        let elapsed = self.at.map_or(f64::INFINITY, |at| {
            now.saturating_duration_since(at).as_secs_f64()
        });
        self.tokens = (self.tokens + elapsed * rate.per_second).min(rate.burst);
        self.at = Some(self.at.map_or(now, |at| at.max(now)));
        self.tokens >= 1.0
    }

    /// Whether the bucket would be full at `now` (forgetting it loses nothing).
    fn is_full(&self, now: Instant, rate: Rate) -> bool {
        let elapsed = self.at.map_or(f64::INFINITY, |at| {
            now.saturating_duration_since(at).as_secs_f64()
        });
        self.tokens + elapsed * rate.per_second >= rate.burst
    }
}

/// A bucket per key, at most `max_keys` of them: when full, buckets that refilled are
/// forgotten; if none has, a new key is refused (a flood of keys cannot grow memory).
#[derive(Debug)]
pub(crate) struct KeyedBuckets<K> {
    buckets: HashMap<K, TokenBucket>,
    max_keys: usize,
}

impl<K: Copy + Eq + Hash> KeyedBuckets<K> {
    pub(crate) fn new(max_keys: usize) -> Self {
        Self {
            buckets: HashMap::new(),
            max_keys,
        }
    }

    /// Whether `key` has a token at `now` (without taking it).
    pub(crate) fn has(&mut self, now: Instant, key: K, rate: Rate) -> bool {
        if !self.buckets.contains_key(&key) && self.buckets.len() >= self.max_keys {
            self.buckets.retain(|_, bucket| !bucket.is_full(now, rate));
            if self.buckets.len() >= self.max_keys {
                return false;
            }
        }
        self.buckets
            .entry(key)
            .or_insert_with(TokenBucket::new)
            .has(now, rate)
    }

    /// Takes a token of `key`'s, if it has one.
    pub(crate) fn take(&mut self, now: Instant, key: K, rate: Rate) -> bool {
        self.has(now, key, rate)
            && self
                .buckets
                .get_mut(&key)
                .is_some_and(|bucket| bucket.take(now, rate))
    }

    /// Keys tracked now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[allow(clippy::disallowed_methods)]
    fn epoch() -> Instant {
        Instant::now()
    }

    const RATE: Rate = Rate {
        per_second: 2.0,
        burst: 4.0,
    };

    #[test]
    fn a_bucket_allows_a_burst_then_the_rate() {
        let now = epoch();
        let mut bucket = TokenBucket::new();
        let taken = (0..10).filter(|_| bucket.take(now, RATE)).count();
        assert_eq!(taken, 4);
        // Half a second later: one more (2 per second).
        let later = now + Duration::from_millis(500);
        assert!(bucket.take(later, RATE));
        assert!(!bucket.take(later, RATE));
        // A long pause refills to the burst, not beyond.
        let much_later = later + Duration::from_secs(60);
        let taken = (0..10).filter(|_| bucket.take(much_later, RATE)).count();
        assert_eq!(taken, 4);
    }

    #[test]
    fn keyed_buckets_are_independent_and_bounded() {
        let now = epoch();
        let mut buckets = KeyedBuckets::new(2);
        assert_eq!((0..10).filter(|_| buckets.take(now, 1, RATE)).count(), 4);
        assert!(buckets.take(now, 2, RATE));
        // A third key while both others are in use is refused: memory stays bounded.
        assert!(!buckets.take(now, 3, RATE));
        assert_eq!(buckets.len(), 2);
        // Once the others refilled they are forgotten and the new key gets its own bucket.
        let later = now + Duration::from_secs(10);
        assert!(buckets.take(later, 3, RATE));
        assert!(buckets.len() <= 2);
    }
}
