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
//!
//! With `by_label_name`, a [`LabelLimiter`] (kept by the compiled pipeline, so shared by the
//! target's files) has a bucket per value of that label instead, at most `max_distinct_labels` of
//! them: the least recently used is forgotten first. It only drops: files sharing a bucket could
//! not all pause for it fairly (the first to wake would take every token).

use super::config::LimitConfig;
use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The buckets a [`LabelLimiter`] keeps when `max_distinct_labels` is not given.
pub const DEFAULT_MAX_DISTINCT_LABELS: usize = 10_000;

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
        match cfg.by_label_name.as_deref() {
            Some("") => {
                return Err(format!(
                    "{key}.by_label_name: name the label whose values get a bucket each"
                ))
            }
            Some(_) if !cfg.drop => {
                return Err(format!(
                    "{key}.by_label_name: needs `drop: true` (as in Promtail and Alloy): the files sharing a \
                     label value's bucket cannot all pause for it; without `by_label_name`, each stream waits \
                     for its own bucket"
                ))
            }
            _ => {}
        }
        if cfg.max_distinct_labels == Some(0) {
            return Err(format!("{key}.max_distinct_labels: must be at least 1"));
        }
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

/// `limit` with `by_label_name`: a bucket per value of the label, shared by the files of one
/// target (so behind a lock; the reader thread alone takes it).
#[derive(Debug)]
pub struct LabelLimiter {
    label: String,
    buckets: Mutex<Buckets>,
}

/// The buckets by label value, least recently used first out.
#[derive(Debug)]
struct Buckets {
    /// What a value seen for the first time (or again after being forgotten) starts with.
    fresh: Limiter,
    max: usize,
    /// Value → its bucket and when it was last used.
    by_value: crate::IdMap<Box<str>, (Limiter, u64)>,
    /// Last use → value, oldest first.
    by_use: BTreeMap<u64, Box<str>>,
    uses: u64,
}

impl LabelLimiter {
    /// `None` when `cfg` has no `by_label_name` (the stage is a per-stream [`Limiter`]). Errors name
    /// `key`, the stage's config path.
    pub fn new(cfg: &LimitConfig, key: &str) -> Result<Option<Self>, String> {
        let fresh = Limiter::new(cfg, key)?;
        let Some(label) = cfg.by_label_name.clone() else {
            return Ok(None);
        };
        let max = cfg.max_distinct_labels.unwrap_or(DEFAULT_MAX_DISTINCT_LABELS);
        Ok(Some(LabelLimiter {
            label,
            buckets: Mutex::new(Buckets {
                fresh,
                max,
                by_value: Default::default(),
                by_use: BTreeMap::new(),
                uses: 0,
            }),
        }))
    }

    /// The label whose values have a bucket each.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// One line whose label has `value`: true if it is within that value's rate.
    pub fn take(&self, value: &str, now: Instant) -> bool {
        self.buckets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take(value, now)
    }

    /// The values that have a bucket now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.buckets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .by_value
            .len()
    }
}

impl Buckets {
    fn take(&mut self, value: &str, now: Instant) -> bool {
        self.uses += 1;
        let used_now = self.uses;
        if let Some((bucket, used)) = self.by_value.get_mut(value) {
            if let Some(v) = self.by_use.remove(used) {
                self.by_use.insert(used_now, v);
            }
            *used = used_now;
            return bucket.take(now);
        }
        if self.by_value.len() >= self.max {
            if let Some((_, oldest)) = self.by_use.pop_first() {
                self.by_value.remove(&oldest);
            }
        }
        let mut bucket = self.fresh.clone();
        let ok = bucket.take(now);
        self.by_value.insert(value.into(), (bucket, used_now));
        self.by_use.insert(used_now, value.into());
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(rate: f64, burst: Option<u32>, drop: bool) -> Limiter {
        Limiter::new(
            &LimitConfig {
                rate,
                burst,
                drop,
                ..Default::default()
            },
            "limit",
        )
        .expect("valid limiter")
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
                    ..Default::default()
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

    fn by_label(rate: f64, burst: u32, max: Option<usize>) -> LabelLimiter {
        let cfg = LimitConfig {
            rate,
            burst: Some(burst),
            drop: true,
            by_label_name: Some("app".into()),
            max_distinct_labels: max,
        };
        LabelLimiter::new(&cfg, "limit").expect("valid").expect("by label")
    }

    #[test]
    fn by_label_config_errors_name_their_key() {
        let cfg = |drop, label: &str, max| LimitConfig {
            rate: 1.0,
            burst: None,
            drop,
            by_label_name: Some(label.into()),
            max_distinct_labels: max,
        };
        for (cfg, want) in [
            (
                cfg(false, "app", None),
                "stages[1].limit.by_label_name: needs `drop: true`",
            ),
            (cfg(true, "", None), "stages[1].limit.by_label_name: name the label"),
            (
                cfg(true, "app", Some(0)),
                "stages[1].limit.max_distinct_labels: must be at least 1",
            ),
        ] {
            let err = LabelLimiter::new(&cfg, "stages[1].limit").unwrap_err();
            assert!(err.starts_with(want), "{err}");
        }
        let plain = LimitConfig {
            rate: 1.0,
            ..Default::default()
        };
        assert!(
            LabelLimiter::new(&plain, "limit").unwrap().is_none(),
            "no label: a per-stream limiter"
        );
        let l = by_label(1.0, 1, None);
        assert_eq!(l.label(), "app");
        assert_eq!(l.buckets.lock().unwrap().max, DEFAULT_MAX_DISTINCT_LABELS);
    }

    #[test]
    fn each_label_value_has_its_own_bucket() {
        let t0 = Instant::now();
        let l = by_label(10.0, 5, None);
        let a: u32 = (0..20).map(|_| u32::from(l.take("a", t0))).sum();
        let b: u32 = (0..5).map(|_| u32::from(l.take("b", t0))).sum();
        assert_eq!((a, b), (5, 5), "a's excess does not touch b's bucket");
        assert!(!l.take("b", t0), "b is at its own burst now");
        assert!(l.take("a", ms(t0, 100)), "a refills at its rate");
        assert!(!l.take("a", ms(t0, 100)));
    }

    #[test]
    fn the_least_recently_used_value_is_forgotten_beyond_max_distinct_labels() {
        let t0 = Instant::now();
        let l = by_label(1.0, 1, Some(2));
        assert!(l.take("a", t0) && l.take("b", t0));
        assert!(!l.take("a", t0), "a is empty and now the most recently used");
        assert!(l.take("c", t0), "c is new: b (least recently used) goes");
        assert_eq!(l.len(), 2);
        assert!(!l.take("a", t0), "a was kept, still empty");
        assert!(l.take("b", t0), "b was forgotten: it starts full again");
        assert!(!l.take("b", t0));
        assert!(l.take("c", t0), "c was forgotten for b: it starts full again");
        let kept: Vec<bool> = ["a", "b", "c"]
            .iter()
            .map(|v| l.buckets.lock().unwrap().by_value.contains_key(*v))
            .collect();
        assert_eq!(kept, [false, true, true], "and a went for c");
        // Memory stays bounded whatever the number of values.
        let l = by_label(1.0, 1, Some(10));
        for i in 0..1000 {
            l.take(&format!("v{i}"), t0);
        }
        assert_eq!(l.len(), 10);
        let b = l.buckets.lock().unwrap();
        assert_eq!(b.by_use.len(), 10, "the use order holds the same values");
        assert!(b.by_value.contains_key("v999") && !b.by_value.contains_key("v989"));
    }
}
