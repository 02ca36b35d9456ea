//! A token bucket per author, with time as an input.

use std::time::{Duration, Instant};

/// Tokens (bytes) an author may spend, refilled at a steady rate up to a burst.
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub(crate) fn full(capacity: u64, now: Instant) -> Self {
        Self {
            tokens: capacity as f64,
            at: now,
        }
    }

    /// Takes `cost` tokens if the bucket holds them; otherwise takes nothing and says how long
    /// until it will. A clock that went backwards refills nothing.
    pub(crate) fn take(
        &mut self,
        now: Instant,
        cost: u64,
        capacity: u64,
        refill_per_sec: u64,
    ) -> Result<(), Duration> {
        self.refill(now, capacity, refill_per_sec);
        let cost = cost as f64;
        if self.tokens >= cost {
            self.tokens -= cost;
            return Ok(());
        }
        if refill_per_sec == 0 {
            return Err(Duration::MAX);
        }
        Err(Duration::from_secs_f64(
            (cost - self.tokens) / refill_per_sec as f64,
        ))
    }

    /// Whether the bucket is full at `now`: it then says nothing a fresh one would not.
    pub(crate) fn is_full(&self, now: Instant, capacity: u64, refill_per_sec: u64) -> bool {
        self.level(now, capacity, refill_per_sec) >= capacity as f64
    }

    /// Tokens held at `now`.
    pub(crate) fn level(&self, now: Instant, capacity: u64, refill_per_sec: u64) -> f64 {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        (self.tokens + elapsed * refill_per_sec as f64).min(capacity as f64)
    }

    fn refill(&mut self, now: Instant, capacity: u64, refill_per_sec: u64) {
        self.tokens = self.level(now, capacity, refill_per_sec);
        self.at = self.at.max(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::full(100, start);
        assert_eq!(bucket.take(start, 60, 100, 10), Ok(()));
        assert_eq!(bucket.take(start, 40, 100, 10), Ok(()));
        let wait = bucket.take(start, 5, 100, 10).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        assert_eq!(bucket.take(start + wait, 5, 100, 10), Ok(()));
        // Refills stop at the capacity.
        let later = start + Duration::from_secs(3600);
        assert!(bucket.is_full(later, 100, 10));
        assert_eq!(bucket.take(later, 100, 100, 10), Ok(()));
        assert!(bucket.take(later, 1, 100, 10).is_err());
    }

    #[test]
    fn a_clock_going_backwards_refills_nothing() {
        let start = Instant::now() + Duration::from_secs(10);
        let mut bucket = TokenBucket::full(10, start);
        assert_eq!(bucket.take(start, 10, 10, 1), Ok(()));
        let earlier = start - Duration::from_secs(5);
        assert!(bucket.take(earlier, 1, 10, 1).is_err());
        assert_eq!(
            bucket.take(start + Duration::from_secs(1), 1, 10, 1),
            Ok(())
        );
    }
}
