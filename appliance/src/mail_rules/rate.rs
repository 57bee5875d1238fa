//! The per-sender send limit: upstream's GCRA with a rate per minute and a burst
//! (research/chatmail.md §1.3: 60 per minute, burst 10, keyed by the envelope sender).
//!
//! A sender may send `burst` messages at once; after that one more every `60 s / rate`.
//! The state per sender is one instant (the "theoretical arrival time"); senders whose
//! allowance is full again are forgotten, so memory stays proportional to the senders of
//! the last minute or so. Time is passed in, so the rule is tested without waiting.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A keyed GCRA limiter. Cheap to share behind an `Arc`.
pub struct RateLimiter {
    interval: Duration,
    tolerance: Duration,
    state: Mutex<State>,
}

struct State {
    next_free: HashMap<String, Instant>,
    checks: u64,
}

/// Refused: the sender may send again at this instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimited {
    pub retry_at: Instant,
}

impl RateLimiter {
    /// `per_minute` messages per minute with bursts of `burst` (both at least 1).
    pub fn new(per_minute: u32, burst: u32) -> RateLimiter {
        let interval = Duration::from_secs(60) / per_minute.max(1);
        RateLimiter {
            interval,
            tolerance: interval * (burst.max(1) - 1),
            state: Mutex::new(State {
                next_free: HashMap::new(),
                checks: 0,
            }),
        }
    }

    /// Counts one message of `sender` at `now`, or refuses it without counting.
    pub fn check(&self, sender: &str, now: Instant) -> Result<(), RateLimited> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.checks += 1;
        if state.checks.is_multiple_of(1024) {
            state.next_free.retain(|_, tat| *tat > now);
        }
        let tat = state
            .next_free
            .get(sender)
            .copied()
            .filter(|t| *t > now)
            .unwrap_or(now);
        if tat.duration_since(now) > self.tolerance {
            return Err(RateLimited {
                retry_at: tat - self.tolerance,
            });
        }
        state
            .next_free
            .insert(sender.to_string(), tat + self.interval);
        Ok(())
    }

    /// How many senders are tracked (for tests).
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.state.lock().unwrap().next_free.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_one_per_interval() {
        let limiter = RateLimiter::new(60, 10);
        let t0 = Instant::now();
        for i in 0..10 {
            assert!(limiter.check("a@x", t0).is_ok(), "message {i}");
        }
        let refused = limiter.check("a@x", t0).unwrap_err();
        assert_eq!(refused.retry_at, t0 + Duration::from_secs(1));
        // Other senders are independent.
        assert!(limiter.check("b@x", t0).is_ok());
        // One second later exactly one more.
        let t1 = t0 + Duration::from_secs(1);
        assert!(limiter.check("a@x", t1).is_ok());
        assert!(limiter.check("a@x", t1).is_err());
        // After a quiet minute, the full burst again.
        let t2 = t1 + Duration::from_secs(60);
        for _ in 0..10 {
            assert!(limiter.check("a@x", t2).is_ok());
        }
        assert!(limiter.check("a@x", t2).is_err());
    }

    #[test]
    fn steady_rate_is_sustained() {
        let limiter = RateLimiter::new(60, 10);
        let t0 = Instant::now();
        for i in 0..600u64 {
            let t = t0 + Duration::from_secs(i);
            assert!(limiter.check("a@x", t).is_ok(), "at {i} s");
        }
    }

    #[test]
    fn idle_senders_are_forgotten() {
        let limiter = RateLimiter::new(60, 10);
        let t0 = Instant::now();
        for i in 0..1000 {
            limiter.check(&format!("s{i}@x"), t0).unwrap();
        }
        let later = t0 + Duration::from_secs(10);
        for _ in 0..1100 {
            limiter.check("z@x", later).ok();
        }
        assert!(limiter.tracked() < 10, "{}", limiter.tracked());
    }
}
