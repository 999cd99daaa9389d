//! `limit`: a token bucket per stream (one [`Limiter`] per file and stream kind, kept by the
//! caller), so that one chatty container cannot starve the others or blow Loki's per-stream rate
//! limit.
//!
//! Two modes, as `drop` says:
//! - `drop: true`: [`Limiter::take`] per line; lines over the rate are dropped (and counted).
//! - `drop: false` (default): nothing is lost; the file is the buffer. A line without a token is
//!   held (in order, with those after it) until [`Limiter::next_token_at`], and the file is not read
//!   meanwhile, so it is shipped at the rate.
//!
//! Refill is continuous (`tokens = min(burst, tokens + elapsed × rate)`), so there is no burst at
//! each second boundary. Time comes from the caller (`now`), which keeps this testable and lets a
//! batch of lines share one clock read.

use super::config::LimitConfig;
use std::time::{Duration, Instant};

/// The longest wait [`Limiter::next_token_at`] asks for: the caller asks again when it wakes, so a
/// tiny rate (a line a day) cannot overflow `Instant` arithmetic.
const MAX_PAUSE: Duration = Duration::from_secs(3600);

/// Debt smaller than this is repaid: floating-point rounding must not make a waking reader wait
/// again for a nanosecond.
const EPSILON: f64 = 1e-6;

#[derive(Debug, Clone)]
pub struct Limiter {
    /// Tokens per second.
    rate: f64,
    burst: f64,
    /// Tokens at `last`; negative while in debt (backpressure mode).
    tokens: f64,
    /// `None` until the first call: the bucket starts full.
    last: Option<Instant>,
    drop: bool,
}

impl Limiter {
    /// `key` is the stage's config path, for errors. `burst` defaults to `ceil(rate)` (at least 1):
    /// a second's worth of lines at once.
    pub fn new(cfg: &LimitConfig, key: &str) -> Result<Self, String> {
        if !(cfg.rate.is_finite() && cfg.rate > 0.0) {
            return Err(format!(
                "{key}.rate: must be a number of lines per second above 0, not {}",
                cfg.rate
            ));
        }
        let burst = match cfg.burst {
            Some(0) => return Err(format!("{key}.burst: must be at least 1")),
            Some(b) => f64::from(b),
            None => cfg.rate.ceil().max(1.0),
        };
        Ok(Limiter {
            rate: cfg.rate,
            burst,
            tokens: burst,
            last: None,
            drop: cfg.drop,
        })
    }

    /// `drop: true`: lines over the rate are dropped; otherwise they wait for their token.
    pub fn drops(&self) -> bool {
        self.drop
    }

    /// One line: true if it is within the rate (a token was taken), false if it must be dropped.
    pub fn take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 - EPSILON {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// When the next line may pass (`now` if one may already): a held line waits until then.
    pub fn next_token_at(&self, now: Instant) -> Instant {
        let missing = 1.0 - EPSILON - self.level(now);
        if missing <= 0.0 {
            return now;
        }
        let secs = (missing / self.rate).min(MAX_PAUSE.as_secs_f64());
        let wait = Duration::try_from_secs_f64(secs).unwrap_or(MAX_PAUSE);
        now.checked_add(wait.saturating_add(Duration::from_micros(1)))
            .unwrap_or(now)
    }

    /// Tokens at `now` (a `now` before the last call counts as no time passed).
    fn level(&self, now: Instant) -> f64 {
        match self.last {
            None => self.burst,
            Some(last) => {
                let elapsed = now.saturating_duration_since(last).as_secs_f64();
                (self.tokens + elapsed * self.rate).min(self.burst)
            }
        }
    }

    fn refill(&mut self, now: Instant) {
        self.tokens = self.level(now);
        self.last = Some(self.last.map_or(now, |last| last.max(now)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(rate: f64, burst: Option<u32>, drop: bool) -> Limiter {
        Limiter::new(&LimitConfig { rate, burst, drop }, "limit").expect("valid limiter")
    }

    fn ms(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn config_errors_and_defaults() {
        for (rate, burst, want) in [
            (0.0, None, "rate"),
            (-1.0, None, "rate"),
            (f64::NAN, None, "rate"),
            (f64::INFINITY, None, "rate"),
            (1.0, Some(0), "burst"),
        ] {
            let err = Limiter::new(
                &LimitConfig {
                    rate,
                    burst,
                    drop: true,
                },
                "stages[2].limit",
            )
            .unwrap_err();
            assert!(err.starts_with(&format!("stages[2].limit.{want}")), "{err}");
        }
        assert_eq!(limiter(2.5, None, false).burst, 3.0);
        assert_eq!(limiter(0.1, None, false).burst, 1.0);
        assert_eq!(limiter(5.0, Some(2), false).burst, 2.0);
        assert!(limiter(1.0, None, true).drops());
        assert!(!limiter(1.0, None, false).drops());
    }

    /// (rate, burst, [(ms since start, lines tried)], lines allowed per step)
    type Case = (f64, Option<u32>, &'static [(u64, u32)], &'static [u32]);

    #[test]
    fn burst_then_rate() {
        let cases: &[Case] = &[
            (10.0, None, &[(0, 15)], &[10]),                   // a full bucket: the burst
            (10.0, None, &[(0, 10), (100, 3)], &[10, 1]),      // 100ms at 10/s: one more
            (10.0, None, &[(0, 10), (250, 3)], &[10, 2]),      // 2.5 tokens: two lines
            (10.0, None, &[(0, 10), (60_000, 30)], &[10, 10]), // refill stops at the burst
            (1.0, Some(3), &[(0, 5), (1000, 5), (1500, 5)], &[3, 1, 0]),
            (0.5, None, &[(0, 2), (1999, 1), (2000, 1)], &[1, 0, 1]),
            (10.0, None, &[(500, 10), (0, 5), (600, 5)], &[10, 0, 1]), // time going backwards: no refill, no panic
        ];
        for (rate, burst, steps, want) in cases {
            let mut l = limiter(*rate, *burst, true);
            let t0 = Instant::now();
            let got: Vec<u32> = steps
                .iter()
                .map(|&(at, n)| (0..n).map(|_| u32::from(l.take(ms(t0, at)))).sum())
                .collect();
            assert_eq!(&got, want, "rate {rate} burst {burst:?} steps {steps:?}");
        }
    }

    #[test]
    fn next_token_at_says_when_a_held_line_may_go() {
        let t0 = Instant::now();
        let mut l = limiter(10.0, Some(2), false);
        assert_eq!(l.next_token_at(t0), t0, "a fresh bucket is full");
        assert!(l.take(t0) && l.take(t0) && !l.take(t0));
        let near = |got: Instant, want: Instant| {
            assert!(
                got >= want && got - want < Duration::from_millis(1),
                "{:?} {:?}",
                got,
                want
            );
        };
        near(l.next_token_at(t0), ms(t0, 100));
        near(l.next_token_at(ms(t0, 40)), ms(t0, 100));
        assert!(l.take(l.next_token_at(t0)), "a token is there when it says");
        // A tiny rate: the wait is capped, and asked again on waking.
        let mut l = limiter(1e-300, Some(1), false);
        assert!(l.take(t0));
        near(l.next_token_at(t0), t0 + MAX_PAUSE);
    }
}
