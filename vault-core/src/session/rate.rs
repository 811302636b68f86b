//! A token bucket with the clock injected: it says when the next token is there instead of
//! sleeping.

use std::time::{Duration, Instant};

/// `rate` tokens per second, at most `burst` saved.
#[derive(Clone, Debug)]
pub(crate) struct TokenBucket {
    tokens: f64,
    rate: f64,
    burst: f64,
    at: Instant,
}

impl TokenBucket {
    /// A full bucket at `now`. A rate of 0 counts as 1 per second.
    pub(crate) fn new(rate: u32, burst: u32, now: Instant) -> Self {
        Self { tokens: f64::from(burst), rate: f64::from(rate.max(1)), burst: f64::from(burst), at: now }
    }

    /// Takes a token at `now`, or tells when one will be there (nothing is taken then). A
    /// `now` earlier than a previous one counts as that one.
    pub(crate) fn try_take(&mut self, now: Instant) -> Result<(), Instant> {
        let now = now.max(self.at);
        self.tokens = (self.tokens + now.duration_since(self.at).as_secs_f64() * self.rate).min(self.burst);
        self.at = now;
        // A token that is there but for rounding is there.
        if self.tokens < 1.0 - 1e-6 {
            let wait = Duration::from_secs_f64((1.0 - self.tokens) / self.rate);
            return Err(now.checked_add(wait).unwrap_or(now));
        }
        self.tokens = (self.tokens - 1.0).max(0.0);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(10, 3, start);
        for _ in 0..3 {
            assert!(bucket.try_take(start).is_ok());
        }
        let at = bucket.try_take(start).unwrap_err();
        assert_eq!(at.duration_since(start), Duration::from_millis(100));
        assert!(bucket.try_take(at).is_ok(), "the token is there when it said");
        assert!(bucket.try_take(at).is_err());
        // Time going backwards takes nothing extra.
        assert!(bucket.try_take(start).is_err());
        assert!(bucket.try_take(at + Duration::from_secs(10)).is_ok());
    }
}
