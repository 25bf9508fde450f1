//! Rate-limit counters. A [`Rate`] allows `per_minute` requests on average with bursts of up to
//! `burst`; in-process it is a token bucket per key, shared backends keep their own counters
//! (the same limits across processes).

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use parking_lot::Mutex;

/// A limit: `per_minute` on average, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub per_minute: u32,
    pub burst: u32,
}

/// The answer to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Allowed,
    /// Over the limit: try again after this long.
    Refused {
        retry_after: Duration,
    },
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Keys idle this long are forgotten (their bucket would be full again anyway).
const FORGET_AFTER: Duration = Duration::from_secs(600);
/// The map is swept of forgotten keys when it grows past this.
const SWEEP_AT: usize = 10_000;

#[derive(Default)]
pub struct LocalLimiter {
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl LocalLimiter {
    /// Takes one token from `key`'s bucket, or says how long until one is back.
    pub fn admit(&self, key: &str, rate: Rate, now: Instant) -> Admission {
        let per_sec = f64::from(rate.per_minute.max(1)) / 60.0;
        let capacity = f64::from(rate.burst.max(1));
        let mut buckets = self.buckets.lock();
        if buckets.len() >= SWEEP_AT && !buckets.contains_key(key) {
            buckets.retain(|_, b| now.duration_since(b.at) < FORGET_AFTER);
        }
        let bucket = buckets.entry(key.to_string()).or_insert(Bucket {
            tokens: capacity,
            at: now,
        });
        let refill = now.saturating_duration_since(bucket.at).as_secs_f64() * per_sec;
        bucket.tokens = (bucket.tokens + refill).min(capacity);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Admission::Allowed
        } else {
            refused(bucket.tokens, per_sec)
        }
    }

    /// What [`LocalLimiter::admit`] would answer, without taking a token (an unknown key has a
    /// full bucket, and is not remembered).
    pub fn peek(&self, key: &str, rate: Rate, now: Instant) -> Admission {
        let per_sec = f64::from(rate.per_minute.max(1)) / 60.0;
        let capacity = f64::from(rate.burst.max(1));
        let buckets = self.buckets.lock();
        let Some(bucket) = buckets.get(key) else {
            return Admission::Allowed;
        };
        let refill = now.saturating_duration_since(bucket.at).as_secs_f64() * per_sec;
        let tokens = (bucket.tokens + refill).min(capacity);
        if tokens >= 1.0 {
            Admission::Allowed
        } else {
            refused(tokens, per_sec)
        }
    }
}

/// Refused with `tokens` in the bucket: the time until it holds one again.
fn refused(tokens: f64, per_sec: f64) -> Admission {
    let wait = (1.0 - tokens) / per_sec;
    Admission::Refused {
        retry_after: Duration::from_secs_f64(wait.max(0.001)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_allowed_then_refused_with_the_time_to_wait_and_refills() {
        let limiter = LocalLimiter::default();
        let rate = Rate {
            per_minute: 60,
            burst: 3,
        };
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.admit("k", rate, t0), Admission::Allowed);
        }
        let Admission::Refused { retry_after } = limiter.admit("k", rate, t0) else {
            panic!("the fourth at once is refused");
        };
        assert!(retry_after <= Duration::from_secs(1) && retry_after > Duration::ZERO);
        assert_eq!(limiter.admit("other", rate, t0), Admission::Allowed);
        assert_eq!(
            limiter.admit("k", rate, t0 + Duration::from_secs(1)),
            Admission::Allowed,
            "a second later one token is back"
        );
    }

    #[test]
    fn a_peek_answers_like_admit_without_taking_a_token() {
        let limiter = LocalLimiter::default();
        let rate = Rate {
            per_minute: 60,
            burst: 2,
        };
        let t0 = Instant::now();
        assert_eq!(limiter.peek("k", rate, t0), Admission::Allowed);
        assert_eq!(limiter.buckets.lock().len(), 0, "a peek remembers nothing");
        assert_eq!(limiter.admit("k", rate, t0), Admission::Allowed);
        for _ in 0..5 {
            assert_eq!(limiter.peek("k", rate, t0), Admission::Allowed);
        }
        assert_eq!(limiter.admit("k", rate, t0), Admission::Allowed);
        let Admission::Refused { retry_after } = limiter.peek("k", rate, t0) else {
            panic!("an empty bucket is refused by a peek too");
        };
        assert_eq!(
            limiter.admit("k", rate, t0),
            Admission::Refused { retry_after }
        );
        assert_eq!(
            limiter.peek("k", rate, t0 + Duration::from_secs(1)),
            Admission::Allowed,
            "a second later one token is back"
        );
    }
}
