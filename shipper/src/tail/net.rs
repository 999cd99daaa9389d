//! The safety net under the file events: at `tail.rescan_interval` every tailed file is checked for
//! data no event reported (one `fstat` each) and the targets are rescanned for files no event
//! reported. While the events prove complete — a round of the net finds nothing they missed — the
//! rounds are spaced out, doubling up to `tail.max_rescan_interval`, so 10,000 idle files cost next
//! to nothing; the first round that catches a miss brings them back to `rescan_interval`, and every
//! miss is counted (`shipper_missed_events_total`). With a polling watcher there are no events to
//! trust: the rounds stay at `rescan_interval`.

use std::time::{Duration, Instant};

/// The warning about misses is repeated at most this often (the counter counts every one).
const WARN_EVERY: Duration = Duration::from_secs(600);

/// Periodic scans take at most 1/SCAN_SHARE of the reader's time, however far the net has backed off.
const SCAN_SHARE: u32 = 50;

pub(super) struct Net {
    /// `tail.rescan_interval`: the spacing after a miss, and always with a polling watcher.
    base: Duration,
    /// The widest spacing while nothing is missed (at least `base`).
    max: Duration,
    /// The spacing earned by clean rounds.
    backed_off: Duration,
    /// What the last scan of the whole tree took: a round is spaced to at least SCAN_SHARE times it.
    scan_took: Duration,
    /// When misses were last logged.
    warned_at: Option<Instant>,
}

impl Net {
    pub fn new(base: Duration, max: Duration) -> Net {
        Net {
            base,
            max: max.max(base),
            backed_off: base,
            scan_took: Duration::ZERO,
            warned_at: None,
        }
    }

    /// Whether misses found now are to be logged: the first time, then at most every WARN_EVERY.
    pub fn warn_due(&mut self) -> bool {
        let due = self.warned_at.is_none_or(|at| at.elapsed() >= WARN_EVERY);
        if due {
            self.warned_at = Some(Instant::now());
        }
        due
    }

    /// The time between rounds now.
    pub fn every(&self) -> Duration {
        self.backed_off.max(self.scan_took * SCAN_SHARE)
    }

    /// What scanning the whole tree took (huge trees space the rounds out).
    pub fn scanned(&mut self, took: Duration) {
        self.scan_took = took;
    }

    /// A round ended having found `missed` changes no event reported; `trusted` when the events are
    /// worth trusting (`Watcher::complete`).
    pub fn round(&mut self, missed: usize, trusted: bool) {
        self.backed_off = if missed > 0 || !trusted {
            self.base
        } else {
            // From the spacing in force, which a slow scan may have stretched past the backoff.
            (self.every() * 2).min(self.max)
        };
    }

    /// New settings (a config reload): the spacing starts again from `rescan_interval`.
    pub fn reset(&mut self, base: Duration, max: Duration) {
        *self = Net {
            scan_took: self.scan_took,
            warned_at: self.warned_at,
            ..Net::new(base, max)
        };
    }

    /// A scan took more than 1/SCAN_SHARE of `rescan_interval`: the rounds are spaced for it.
    pub fn stretched_by_scans(&self) -> bool {
        self.scan_took * SCAN_SHARE > self.base + self.base / 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn clean_rounds_back_off_to_the_max_and_a_miss_brings_the_base_back() {
        let mut net = Net::new(10 * S, 60 * S);
        assert_eq!(net.every(), 10 * S);
        let mut seen = Vec::new();
        for _ in 0..4 {
            net.round(0, true);
            seen.push(net.every().as_secs());
        }
        assert_eq!(seen, [20, 40, 60, 60]);
        net.round(1, true);
        assert_eq!(net.every(), 10 * S, "a miss: back to rescan_interval");
        net.round(0, true);
        assert_eq!(net.every(), 20 * S);
        assert!(net.warn_due(), "the first miss is logged");
        assert!(!net.warn_due(), "then not again for a while");
    }

    #[test]
    fn a_polling_watcher_or_a_max_below_the_base_keeps_the_base() {
        let mut net = Net::new(10 * S, 60 * S);
        net.round(0, false);
        net.round(0, false);
        assert_eq!(net.every(), 10 * S, "polling: nothing to trust");
        let mut net = Net::new(3600 * S, 60 * S);
        net.round(0, true);
        assert_eq!(net.every(), 3600 * S, "the max is never below rescan_interval");
    }

    #[test]
    fn a_slow_scan_spaces_the_rounds_whatever_the_backoff() {
        let mut net = Net::new(10 * S, 60 * S);
        net.scanned(Duration::from_millis(400));
        assert_eq!(net.every(), 20 * S);
        assert!(net.stretched_by_scans());
        net.round(0, true);
        assert_eq!(net.every(), 40 * S, "doubled from the stretched spacing");
        net.round(0, true);
        assert_eq!(net.every(), 60 * S);
        net.round(1, true);
        assert_eq!(net.every(), 20 * S, "a miss: rescan_interval, or what the scans need");
    }
}
