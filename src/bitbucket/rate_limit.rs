//! The client's own token bucket: every call of one configuration waits on it, and a 429 pauses
//! the whole bucket for the server's `Retry-After`.

use std::time::Duration;

use tokio::{sync::Mutex, time::Instant};

/// Rate and burst of a [`RateLimiter`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Tokens added per second.
    pub requests_per_second: u32,
    /// Bucket capacity.
    pub burst: u32,
}

impl Default for RateLimit {
    /// Bitbucket Data Center's default per-user bucket: 5 per second, 60 at once.
    fn default() -> Self {
        Self { requests_per_second: 5, burst: 60 }
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    refilled_at: Instant,
    paused_until: Option<Instant>,
}

/// A token bucket shared by every request of one client.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    capacity: f64,
    bucket: Mutex<Bucket>,
}

impl RateLimiter {
    /// A full bucket. Rates and bursts of 0 are raised to 1.
    pub fn new(limit: RateLimit) -> Self {
        let capacity = f64::from(limit.burst.max(1));
        Self {
            rate: f64::from(limit.requests_per_second.max(1)),
            capacity,
            bucket: Mutex::new(Bucket { tokens: capacity, refilled_at: Instant::now(), paused_until: None }),
        }
    }

    /// Waits for a token; returns how long it waited.
    pub async fn acquire(&self) -> Duration {
        let started = Instant::now();
        loop {
            let wait = {
                let mut bucket = self.bucket.lock().await;
                let now = Instant::now();
                match bucket.paused_until {
                    Some(until) if until > now => until - now,
                    _ => {
                        bucket.paused_until = None;
                        let elapsed = now.duration_since(bucket.refilled_at).as_secs_f64();
                        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.capacity);
                        bucket.refilled_at = now;
                        if bucket.tokens >= 1.0 {
                            bucket.tokens -= 1.0;
                            return started.elapsed();
                        }
                        Duration::from_secs_f64((1.0 - bucket.tokens) / self.rate)
                    }
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// Stops handing out tokens for `duration` (a 429's Retry-After) and empties the bucket, so
    /// the requests after the pause start slowly instead of in a burst.
    pub async fn pause(&self, duration: Duration) {
        let mut bucket = self.bucket.lock().await;
        let until = Instant::now() + duration;
        bucket.paused_until = Some(bucket.paused_until.map_or(until, |current| current.max(until)));
        bucket.tokens = 0.0;
        bucket.refilled_at = until;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn burst_then_rate() {
        let limiter = RateLimiter::new(RateLimit { requests_per_second: 10, burst: 5 });
        let start = Instant::now();
        for _ in 0..5 {
            limiter.acquire().await;
        }
        assert!(start.elapsed() < Duration::from_millis(1), "the burst is free");
        for _ in 0..10 {
            limiter.acquire().await;
        }
        let elapsed = start.elapsed();
        assert!(elapsed >= Duration::from_millis(990) && elapsed < Duration::from_millis(1100), "{elapsed:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_holds_every_caller() {
        let limiter = RateLimiter::new(RateLimit { requests_per_second: 100, burst: 100 });
        limiter.pause(Duration::from_secs(5)).await;
        let start = Instant::now();
        limiter.acquire().await;
        assert!(start.elapsed() >= Duration::from_secs(5));
        // A shorter pause never shortens a longer one.
        limiter.pause(Duration::from_secs(3)).await;
        limiter.pause(Duration::from_secs(1)).await;
        let start = Instant::now();
        limiter.acquire().await;
        assert!(start.elapsed() >= Duration::from_secs(3));
    }
}
