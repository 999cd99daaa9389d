//! Self-protection: reading pauses — never drops — when the agent holds its memory budget of
//! unacknowledged bytes (`tail.max_buffered_bytes`: Loki slow or down, many tenants or endpoints), or
//! when it has read its share of bytes this second (`tail.max_read_rate`). The files are the buffer
//! meanwhile; `shipper_reading_paused{reason}` says that reading waits and
//! `shipper_reading_paused_seconds_total{reason}` for how long it has.

use super::Reader;
use crate::metrics::ReasonLabel;
use std::time::{Duration, Instant};

/// How often a reader paused by the memory budget looks whether acknowledgements made room.
const BUDGET_CHECK: Duration = Duration::from_millis(20);

/// The rate limit's burst: a second's worth of bytes.
const BURST: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Why {
    MemoryBudget,
    ReadRate,
}

/// The `reason` of `shipper_reading_paused`, one per `Why`.
pub const PAUSE_REASONS: [&str; 2] = ["memory_budget", "read_rate"];

impl Why {
    fn reason(self) -> &'static str {
        match self {
            Why::MemoryBudget => PAUSE_REASONS[0],
            Why::ReadRate => PAUSE_REASONS[1],
        }
    }
}

/// The state of the pauses.
pub(super) struct Throttle {
    /// Bytes that may still be read now (`max_read_rate`; negative: in debt after a big read).
    tokens: f64,
    refilled: Instant,
    /// Why reading waits now, and since when.
    paused: Option<(Why, Instant)>,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle {
            tokens: 0.0,
            refilled: Instant::now(),
            paused: None,
        }
    }
}

impl Reader {
    /// How long reading must wait (None: it may go on); notes the pause in the metrics.
    pub(super) fn hold_reading(&mut self) -> Option<Duration> {
        let budget = self.cfg.max_buffered_bytes.0;
        let buffered = self.tracker.buffered_bytes();
        self.metrics.buffered_bytes.set(buffered as i64);
        let why = if budget > 0 && buffered >= budget {
            Some((Why::MemoryBudget, BUDGET_CHECK))
        } else {
            self.rate_wait().map(|w| (Why::ReadRate, w))
        };
        self.note_pause(why.map(|w| w.0));
        why.map(|w| w.1)
    }

    /// With `max_read_rate`: refills the bucket and says how long until it has a token.
    fn rate_wait(&mut self) -> Option<Duration> {
        let rate = self.cfg.max_read_rate.0 as f64;
        if rate <= 0.0 {
            return None;
        }
        let t = &mut self.throttle;
        let now = Instant::now();
        t.tokens = (t.tokens + now.duration_since(t.refilled).as_secs_f64() * rate).min(rate * BURST.as_secs_f64());
        t.refilled = now;
        (t.tokens < 0.0).then(|| Duration::from_secs_f64(-t.tokens / rate).max(Duration::from_millis(1)))
    }

    /// `n` bytes were read (they count against `max_read_rate`).
    pub(super) fn spend(&mut self, n: usize) {
        if self.cfg.max_read_rate.0 > 0 {
            self.throttle.tokens -= n as f64;
        }
    }

    fn note_pause(&mut self, why: Option<Why>) {
        let now = Instant::now();
        let was = self.throttle.paused;
        if was.map(|p| p.0) == why {
            return;
        }
        if let Some((w, since)) = was {
            self.metrics.reading_paused.get_or_create(&label(w)).set(0);
            self.metrics
                .reading_paused_seconds
                .get_or_create(&label(w))
                .inc_by(now.duration_since(since).as_secs_f64());
        }
        if let Some(w) = why {
            self.metrics.reading_paused.get_or_create(&label(w)).set(1);
            if w == Why::MemoryBudget {
                tracing::info!(
                    buffered_bytes = self.tracker.buffered_bytes(),
                    max_buffered_bytes = self.cfg.max_buffered_bytes.0,
                    "memory budget reached (tail.max_buffered_bytes): reading pauses until Loki acknowledges more; nothing is dropped"
                );
            }
        }
        self.throttle.paused = why.map(|w| (w, now));
    }
}

fn label(w: Why) -> ReasonLabel {
    ReasonLabel {
        reason: w.reason().into(),
    }
}
