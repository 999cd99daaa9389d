//! Reading: batched reads of every ready file, framing and parsing what arrived, sending chunks into
//! the ring, and noticing truncation, deletion and drained rotated files at end of file.

use super::file::{State, MIN_READ};
use super::io::ReadReq;
use super::order::Turn;
use super::Reader;
use crate::metrics::ResultLabel;
use crate::parse::ParseStats;
use crate::ring::{Chunk, FileId};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

/// Reads in flight per submission.
const READS_PER_ROUND: usize = 64;

/// The shortest time between two sweeps over the files that events said were written (and between
/// two drains of the eBPF events). A write after a quiet spell is read at once; under a stream of
/// writes each file is read at most once per gap, which bounds the wake-ups of the reader, the event
/// thread and the batcher and makes each read larger. A line waits up to `batch_wait` for its batch
/// anyway, so the gap is a share of the shortest `batch_wait`: a fifth from 1 s on (at most 200 ms),
/// a smaller share below in proportion (batch_wait² / 5 s: 50 ms for 500 ms, 2 ms for 100 ms, never
/// under 2 ms), so a low-latency setting keeps fast sweeps. On the bench's busy node (1,000 files,
/// 50 of them busy) the default 1 s's 200 ms sweeps cost about a third less CPU per GiB than 50 ms
/// ones, for about 90 ms more write → stored latency at the median. Set at start.
pub fn sweep_gap(batch_wait: Duration) -> Duration {
    let share = batch_wait.as_secs_f64().min(1.0) / 5.0;
    batch_wait
        .mul_f64(share)
        .clamp(Duration::from_millis(2), Duration::from_millis(200))
}

enum Read {
    Data { n: usize, full: bool },
    Eof,
    Failed(std::io::Error),
}

impl Reader {
    /// Reads every ready file until each is at its end (or the ring is full, or the agent stops), in
    /// sweeps: the files ready when a sweep starts are read (those with more data again and again)
    /// while events that arrive meanwhile gather for the next sweep, which starts no sooner than
    /// the sweep gap (see [`sweep_gap`]) after this one. A busy file then costs one read per sweep, not one per write it gets.
    pub(super) fn read_ready(&mut self) {
        while !self.ready.is_empty() && !self.stopped() && self.parked.is_empty() && self.hold_reading().is_none() {
            // A sweep that backpressure cut short goes on at once when it may: its files still have
            // data (no gap, or a full ring would cap reading at its size per gap: ~200 MiB/s).
            let resumed = std::mem::take(&mut self.sweep_cut);
            if let Some(wait) = self
                .sweep_gap
                .checked_sub(self.last_sweep.elapsed())
                .filter(|_| !resumed)
            {
                std::thread::sleep(wait);
                self.process_events();
            }
            self.last_sweep = Instant::now();
            let mut sweep: Vec<FileId> = self.ready.drain().collect();
            if !self.paused.is_empty() {
                // Files a `limit` stage paused are made ready again when their pause ends.
                sweep.retain(|id| !self.paused.contains_key(id));
            }
            while !sweep.is_empty() && !self.stopped() {
                if !self.parked.is_empty() || self.hold_reading().is_some() {
                    // The ring is full, or the memory budget or read rate is reached: reading
                    // pauses; these files are read when it may go on.
                    self.ready.extend(sweep);
                    self.sweep_cut = true;
                    return;
                }
                let ids = self.next_round(&mut sweep, READS_PER_ROUND);
                for (id, result) in self.read_round(&ids) {
                    if self.handle(id, result) {
                        sweep.push(id);
                    }
                }
                self.ring_bell();
                self.process_events();
            }
        }
    }

    /// Reads one file until a read finds nothing more, right now (a rotated file before its successor),
    /// older files of its stream first. When the ring is full, or an older file only settles, it is
    /// read later in its turn.
    pub(super) fn drain(&mut self, id: FileId) {
        while !self.stopped() && self.parked.is_empty() {
            let next = match self.turn(id) {
                Turn::Go => id,
                Turn::After(older) => older,
                Turn::Wait => return,
            };
            let Some((_, result)) = self.read_round(&[next]).pop() else {
                return;
            };
            // A short read is not the end here: only an empty read proves the file is read out.
            let more = matches!(result, Read::Data { .. });
            self.handle(next, result);
            self.ring_bell();
            if next == id && !more {
                return;
            }
        }
    }

    /// One read of each file, all submitted at once.
    fn read_round(&mut self, ids: &[FileId]) -> Vec<(FileId, Read)> {
        // Each file's buffer is taken out for its read and put back after (ids are distinct: a
        // second read of one file in a round would read into a buffer that is then dropped).
        debug_assert!(ids.iter().collect::<crate::IdSet<_>>().len() == ids.len());
        let mut bufs: Vec<(FileId, std::os::fd::RawFd, u64, bytes::BytesMut, usize)> = ids
            .iter()
            .filter_map(|id| {
                let f = self.files.get_mut(id)?;
                // The read offset counts the bytes the buffer holds: taken before the buffer is.
                let offset = f.framer.read_offset();
                let buf = std::mem::take(f.framer.buf_mut());
                Some((*id, f.file.as_raw_fd(), offset, buf, f.read_size))
            })
            .collect();
        let mut reqs: Vec<ReadReq> = bufs
            .iter_mut()
            .map(|(_, fd, offset, buf, len)| ReadReq::new(*fd, *offset, buf, *len))
            .collect();
        self.io.read_all(&mut reqs);
        let results: Vec<Read> = reqs
            .into_iter()
            .map(|r| match r.result {
                Ok(0) => Read::Eof,
                Ok(n) => Read::Data { n, full: n == r.len },
                Err(e) => Read::Failed(e),
            })
            .collect();
        self.count_reads(&results);
        let mut order = Vec::with_capacity(bufs.len());
        for (id, _, _, buf, _) in bufs {
            if let Some(f) = self.files.get_mut(&id) {
                *f.framer.buf_mut() = buf;
            }
            order.push(id);
        }
        order.into_iter().zip(results).collect()
    }

    /// `shipper_file_reads_total` by result, one counter update per result kind per round.
    fn count_reads(&self, results: &[Read]) {
        let (mut data, mut empty, mut failed) = (0, 0, 0);
        for r in results {
            match r {
                Read::Data { .. } => data += 1,
                Read::Eof => empty += 1,
                Read::Failed(_) => failed += 1,
            }
        }
        for (result, n) in [("data", data), ("empty", empty), ("error", failed)] {
            if n > 0 {
                self.metrics.file_reads.get_or_create(&ResultLabel { result }).inc_by(n);
            }
        }
    }

    /// Acts on one read; true when the file has more to read now.
    fn handle(&mut self, id: FileId, result: Read) -> bool {
        match result {
            Read::Data { n, full } => {
                self.offset_moves += 1;
                self.spend(n);
                self.adapt_read_size(id, n, full);
                self.grow_fingerprint(id);
                let sent = self.process(id);
                sent && full
            }
            Read::Eof => {
                self.adapt_read_size(id, 0, false);
                self.at_eof(id);
                false
            }
            Read::Failed(e) => {
                if let Some(f) = self.files.get(&id) {
                    tracing::warn!(file = %f.path.display(), error = %e,
                        "read failed; the file is closed once what was read is acknowledged");
                }
                if let Some(f) = self.files.get_mut(&id) {
                    f.eof = true;
                }
                self.retire(id, "read error");
                false
            }
        }
    }

    /// A file met short (or empty) is fingerprinted again as its first bytes arrive, up to
    /// `FP_MAX`: a restart must tell it from a new file that reuses its inode number, which the
    /// fingerprint of an empty file cannot.
    fn grow_fingerprint(&mut self, id: FileId) {
        let Some(f) = self.files.get_mut(&id) else { return };
        if f.fp_len < super::file::FP_MAX && f.refresh_fingerprint(f.framer.read_offset()) {
            self.tracker.update(id, f.identity(), None);
        }
    }

    /// Sizes the next read of a file to what it delivers: a file that fills its reads gets bigger ones
    /// (up to `tail.read_buffer_size`), a trickling or idle one small ones. Lines are slices of the read
    /// buffer and keep it alive until their batch is sent, so reserving the full size for a few bytes
    /// would pin that much memory per read.
    fn adapt_read_size(&mut self, id: FileId, n: usize, full: bool) {
        let max = self.cfg.read_buffer_size.0 as usize;
        if let Some(f) = self.files.get_mut(&id) {
            f.read_size = if full {
                (f.read_size * 2).min(max)
            } else {
                n.next_power_of_two().max(MIN_READ).min(max)
            };
        }
    }

    /// Frames and parses the bytes just read and sends them on. False when the agent is stopping.
    fn process(&mut self, id: FileId) -> bool {
        let Some(f) = self.files.get_mut(&id) else {
            return false;
        };
        f.eof = false;
        let before = f.framer.consumed_offset();
        let mut stats = ParseStats::default();
        let mut entries = Vec::new();
        let mut commit = f.commit_offset;
        let now = crate::unix_now_ns();
        while let Some(records) = f.framer.take_records(&mut stats) {
            commit = commit.max(f.parser.push(records, now, &mut entries, &mut stats));
        }
        f.parser_commit = commit;
        f.counters
            .read_bytes
            .inc_by(f.framer.consumed_offset().saturating_sub(before));
        f.counters.offset.set(f.framer.read_offset());
        self.metrics.add_parse_stats(&stats);
        let commit = self.run_stages(id, &mut entries, commit, now);
        let Some(f) = self.files.get_mut(&id) else {
            return false;
        };
        f.counters.read_lines.inc_by(entries.len() as u64);
        // Lines that carry their own time (not stamped with `now` on reading): how late this read is.
        if let Some(first) = entries.first().filter(|e| e.ts_ns != now) {
            self.metrics
                .read_lag_seconds
                .observe(now.saturating_sub(first.ts_ns).max(0) as f64 / 1e9);
        }
        // A file a `limit` stage paused is read again when its pause ends, not in this sweep.
        self.ship(id, entries, commit) && !self.paused.contains_key(&id)
    }

    /// Sends a file's entries, and the commit offset they complete, on to the ring (nothing when
    /// there is neither a line nor progress). False when the agent is stopping.
    pub(super) fn ship(&mut self, id: FileId, entries: Vec<crate::parse::Entry>, commit: u64) -> bool {
        let Some(f) = self.files.get_mut(&id) else {
            return false;
        };
        if entries.is_empty() && commit <= f.commit_offset {
            return true;
        }
        f.commit_offset = f.commit_offset.max(commit);
        self.tracker.sent(id, f.commit_offset);
        let chunk = Chunk {
            file: id,
            labels: f.labels.clone(),
            entries,
            commit_offset: f.commit_offset,
            clients: self.targets.clients(f.target),
        };
        self.send(chunk)
    }

    /// Ships the partial line a finished file ends with, as it is, and what its stages hold.
    pub(super) fn flush_partial(&mut self, id: FileId) {
        let Some(f) = self.files.get_mut(&id) else { return };
        let mut stats = ParseStats::default();
        let mut entries = Vec::new();
        let commit = f.parser.flush(&mut entries, &mut stats);
        f.parser_commit = commit;
        self.metrics.add_parse_stats(&stats);
        let commit = self.run_stages(id, &mut entries, commit, crate::unix_now_ns());
        let Some(f) = self.files.get_mut(&id) else { return };
        if let Some(st) = f.stages.as_mut() {
            let mut stage_stats = crate::process::pipeline::StageStats::default();
            st.flush(
                &f.labels,
                Instant::now(),
                crate::unix_now_ns(),
                &mut entries,
                &mut stage_stats,
                true,
            );
            self.metrics.add_stage_stats(&stage_stats);
            self.stages_due.remove(&id);
        }
        let commit = commit.max(f.parser_commit);
        self.ship(id, entries, commit);
    }

    /// At the end of what a file holds: notice truncation (copytruncate) and deletion.
    fn at_eof(&mut self, id: FileId) {
        let Some(f) = self.files.get_mut(&id) else {
            return;
        };
        f.eof = true;
        // An idle file keeps no read buffer: 1,000 idle files would otherwise hold 1,000 of them.
        if f.framer.buf_mut().is_empty() {
            *f.framer.buf_mut() = bytes::BytesMut::new();
        }
        let Ok(meta) = f.file.metadata() else { return };
        if meta.len() < f.framer.read_offset() && f.stages.is_some() {
            // Lines a stage holds were read before the truncation: ship them first.
            self.flush_stages(id, true);
        }
        let Some(f) = self.files.get_mut(&id) else { return };
        if meta.len() < f.framer.read_offset() {
            tracing::info!(file = %f.path.display(), was = f.framer.read_offset(), now = meta.len(),
                "file was truncated in place (copytruncate); reading it again from the start");
            self.metrics.truncations.inc();
            f.framer.reset(0);
            f.parser.reset(0);
            f.parser_commit = 0;
            f.commit_offset = 0;
            f.fp_len = 0;
            f.refresh_fingerprint(meta.len());
            self.tracker.update(id, f.identity(), Some(0));
            self.ready.insert(id);
            self.offset_moves += 1;
            return;
        }
        if meta.nlink() == 0 && f.state == State::Active {
            self.retire(id, "deleted");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::sweep_gap;
    use std::time::Duration;

    #[test]
    fn the_sweep_gap_follows_the_batch_wait_within_its_bounds() {
        let ms = Duration::from_millis;
        assert_eq!(sweep_gap(Duration::from_secs(1)), ms(200), "the default batch_wait");
        assert_eq!(sweep_gap(ms(500)), ms(50));
        assert_eq!(sweep_gap(ms(100)), ms(2));
        assert_eq!(sweep_gap(ms(10)), ms(2), "a low-latency batch_wait keeps fast sweeps");
        assert_eq!(sweep_gap(Duration::ZERO), ms(2));
        assert_eq!(sweep_gap(Duration::from_secs(60)), ms(200));
    }
}
