//! Rotated and deleted files held open: closed once read to their end and acknowledged, and let go
//! (the loss counted and logged, never silent) when together they hold more unshipped bytes than
//! `tail.max_held_bytes` — a Loki outage must not fill the node's disk with deleted logs.

use super::file::State;
use super::{Reader, GONE_GRACE};
use crate::metrics::ReasonLabel;
use crate::ring::FileId;
use std::time::{Duration, Instant};

/// How long closed files are remembered (to tell a later rename of them from a fresh rotation).
const CLOSED_MEMORY: Duration = Duration::from_secs(600);

/// How often the checkpoint lag of all files is summed.
const LAG_EVERY: Duration = Duration::from_secs(1);

impl Reader {
    /// Closes rotated/deleted files that are read to their end and fully acknowledged; lets the oldest
    /// go while the held bytes are over the limit.
    pub(super) fn close_drained(&mut self) {
        self.sum_lag();
        let mut held = 0u64;
        let (mut done, mut unfinished, mut gone) = (Vec::new(), Vec::new(), Vec::new());
        for f in self.gone.iter().filter_map(|id| self.files.get(id)) {
            let (committed, in_flight) = self.tracker.committed(f.id).unwrap_or((0, true));
            let read = f.framer.read_offset();
            let State::Gone { since } = f.state else {
                continue;
            };
            // Unread bytes count too: the descriptor keeps them on disk until we are done.
            let size = if f.eof {
                read
            } else {
                f.file.metadata().map_or(read, |m| m.len())
            };
            let unshipped = size.max(read).saturating_sub(committed);
            held += unshipped;
            gone.push((f.seq, f.id, unshipped));
            if f.eof && since.elapsed() >= GONE_GRACE {
                if f.commit_offset < f.framer.consumed_offset() {
                    // Its last line was left partial (a CRI `P` with no `F`): nothing more will come.
                    unfinished.push(f.id);
                } else if !in_flight && committed >= f.commit_offset {
                    done.push(f.id);
                }
            }
        }
        for id in unfinished {
            self.flush_partial(id);
        }
        let limit = self.cfg.max_held_bytes.0;
        if held > limit {
            gone.sort_unstable();
            for (_, id, unshipped) in gone {
                if held <= limit {
                    break;
                }
                held -= unshipped;
                self.let_go(id, limit);
                done.push(id);
            }
        }
        self.metrics.held_bytes.set(held as i64);
        for id in done {
            self.close(id);
        }
        self.metrics.open_files.set(self.files.len() as i64);
        while self.closed.front().is_some_and(|c| c.at.elapsed() > CLOSED_MEMORY) {
            self.closed.pop_front();
        }
    }

    /// Bytes read but not yet acknowledged, over all files: summed at most every LAG_EVERY (a pass
    /// over every tailed file), and only when something was read or acknowledged since.
    fn sum_lag(&mut self) {
        if self.lag_summed.elapsed() < LAG_EVERY {
            return;
        }
        self.lag_summed = Instant::now();
        let key = (self.offset_moves, self.tracker.generation());
        if std::mem::replace(&mut self.lag_key, key) == key {
            return;
        }
        let lag = self
            .tracker
            .lag(self.files.values().map(|f| (f.id, f.framer.read_offset())));
        self.metrics.checkpoint_lag_bytes.set(lag as i64);
    }

    /// Over `tail.max_held_bytes`: what is still unread in this file will never be shipped. Counted
    /// in `shipper_dropped_bytes_total{reason="max_held_bytes"}` and logged with the file.
    fn let_go(&mut self, id: FileId, limit: u64) {
        let Some(f) = self.files.get(&id) else { return };
        // Bytes read but not yet framed into lines (a partial last line) are lost with the rest.
        let read = f.framer.consumed_offset();
        let size = f.file.metadata().map_or(read, |m| m.len());
        let lost = size.saturating_sub(read);
        self.metrics
            .dropped_bytes
            .get_or_create(&ReasonLabel {
                reason: "max_held_bytes".into(),
            })
            .inc_by(lost);
        tracing::error!(file = %f.path.display(), ino = f.ino, lost_bytes = lost, offset = read, size,
            max_held_bytes = limit,
            "rotated or deleted files hold more unshipped bytes than tail.max_held_bytes (Loki down or too slow?); letting the oldest go: its unread bytes are lost (raise tail.max_held_bytes to hold more)");
    }

    /// Forgets a rotated or deleted file: its descriptor is closed, what was sent of it is still
    /// acknowledged and checkpointed.
    fn close(&mut self, id: FileId) {
        let Some(mut f) = self.files.remove(&id) else { return };
        self.gone.remove(&id);
        self.stages_due.remove(&id);
        self.paused.remove(&id);
        // Remembered by its first bytes too (a file let go unread may not have been fingerprinted).
        if let Ok(meta) = f.file.metadata() {
            f.refresh_fingerprint(meta.len());
        }
        tracing::info!(file = %f.path.display(), offset = f.commit_offset, ino = f.ino, "done with a rotated or deleted file; closed");
        if self.by_inode.get(&(f.dev, f.ino)) == Some(&id) {
            self.by_inode.remove(&(f.dev, f.ino));
        }
        self.closed.push_back(super::rotated::Closed {
            at: Instant::now(),
            key: (f.dev, f.ino),
            fp_len: f.fp_len,
            fp: f.fp,
        });
        self.watcher.unwatch_file(f.dev, f.ino);
        self.tracker.close(id);
        // A successor at the same path keeps the series.
        if !self.by_path.contains_key(&f.path) {
            self.metrics.forget_file(&f.path);
        }
        self.ready.remove(&id);
    }
}
