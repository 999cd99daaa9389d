//! checkpoint: which file offsets are safe to remember, and the positions file that remembers them.
//!
//! At-least-once: a file's offset moves only to the highest offset below which every batch was
//! acknowledged by Loki (or dropped and counted). Batches may complete out of order, and a file's
//! lines may be in several batches being filled at once (one per Loki endpoint and tenant): each file
//! keeps, in file order, which batch got each read's lines and the offset after that read, and
//! advances over the acknowledged prefix.

mod format;
mod log;
mod positions;
mod sync;

pub use format::MAGIC as POSITIONS_MAGIC;
pub use log::{PositionsLog, Written};
pub use positions::{FileIdentity, Positions, SavedFile};
pub use sync::{mark_first_start, save, CursorSource, PositionsWriter, LOOK_MARGIN};

use crate::ring::FileId;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// One read (or a run of reads that went to the same batches) of a file, in file order.
struct Pending {
    /// The file offset after it.
    offset: u64,
    /// The batches holding its lines that are not acknowledged yet (empty: all are, or it had none).
    seqs: Vec<u64>,
}

struct FileTrack {
    ident: FileIdentity,
    committed: u64,
    /// The offset up to which the reader sent lines on (`Tracker::sent`).
    sent: u64,
    pending: VecDeque<Pending>,
    /// The reader closed the file; forget it once nothing is pending.
    closed: bool,
    /// Not a file: a source whose place is a cursor it saves itself (see [`CursorSource`]).
    cursor: bool,
    /// Its entry in the positions (identity, acknowledged offset) changed since the positions
    /// writer last took the changes (it is in `Tracker::changed`).
    changed: bool,
}

impl FileTrack {
    /// Bytes of it read and sent on, not yet acknowledged.
    fn outstanding(&self) -> u64 {
        self.sent.saturating_sub(self.committed)
    }
}

/// Shared between the reader (files opened/closed, lines sent on), the batcher (batches
/// registered) and the push side (batches acknowledged). Calls are a few per chunk, batch or file
/// event, so a mutex is fine.
#[derive(Default)]
pub struct Tracker {
    files: Mutex<crate::IdMap<FileId, FileTrack>>,
    /// Bytes read and sent on but not yet acknowledged, over all files (the sum of `outstanding`):
    /// what the ring, the batches and the pushes hold — the memory budget's measure.
    buffered: AtomicU64,
    /// What changed since the positions were written (for the positions writer).
    changes: sync::Changes,
    /// The files whose positions entry changed, or that left, since the positions writer last took
    /// them (locked after `files`).
    changed: Mutex<Vec<FileId>>,
}

impl Tracker {
    fn lock(&self) -> std::sync::MutexGuard<'_, crate::IdMap<FileId, FileTrack>> {
        // A panic elsewhere while holding the lock leaves consistent data (each update is one step).
        self.files.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A file was opened for reading at `offset` (everything before it counts as acknowledged).
    pub fn open(&self, id: FileId, ident: FileIdentity, offset: u64) {
        self.insert(id, ident, offset, false);
    }

    /// Like [`Tracker::open`] for a source that is not a file (the journal): its acknowledged
    /// progress is tracked the same way, but the positions list only files; the source saves its
    /// own place through a [`CursorSource`].
    pub fn open_cursor_source(&self, id: FileId, ident: FileIdentity) {
        self.insert(id, ident, 0, true);
    }

    fn insert(&self, id: FileId, ident: FileIdentity, offset: u64, cursor: bool) {
        let mut files = self.lock();
        let old = files.insert(
            id,
            FileTrack {
                ident,
                committed: offset,
                sent: offset,
                pending: VecDeque::new(),
                closed: false,
                cursor,
                changed: false,
            },
        );
        if let Some(f) = files.get_mut(&id) {
            self.mark(id, f);
        }
        drop(files);
        if let Some(old) = old {
            self.buffered.fetch_sub(old.outstanding(), Ordering::Relaxed);
        }
        self.changes.files_changed();
    }

    /// Runs `change` on a file's track, keeping `buffered` in step.
    fn change<R>(&self, id: FileId, change: impl FnOnce(&mut FileTrack) -> R) -> Option<R> {
        let mut files = self.lock();
        let f = files.get_mut(&id)?;
        let (before, committed) = (f.outstanding(), f.committed);
        let r = change(f);
        let after = f.outstanding();
        if after >= before {
            self.buffered.fetch_add(after - before, Ordering::Relaxed);
        } else {
            self.buffered.fetch_sub(before - after, Ordering::Relaxed);
        }
        if f.committed != committed {
            self.changes.offsets_moved();
        }
        if f.committed != committed {
            self.mark(id, f);
        }
        Some(r)
    }

    /// Notes that `f`'s positions entry changed, for the positions writer (the files lock is held).
    fn mark(&self, id: FileId, f: &mut FileTrack) {
        if !f.changed && !f.cursor {
            f.changed = true;
            self.changed.lock().unwrap_or_else(|p| p.into_inner()).push(id);
        }
    }

    /// The reader sent the file's lines up to `offset` on (into the ring).
    pub fn sent(&self, id: FileId, offset: u64) {
        self.change(id, |f| f.sent = f.sent.max(offset));
    }

    /// Bytes read and sent on but not yet acknowledged, over all files.
    pub fn buffered_bytes(&self) -> u64 {
        self.buffered.load(Ordering::Relaxed)
    }

    /// The file's identity changed (renamed, fingerprint grew) or it was truncated to `reset_to`.
    /// A file that is still itself (same path, device and inode) with a longer fingerprint is
    /// written with the next write for another reason (its lines acknowledged, most likely), not
    /// for this: the shorter fingerprint on disk is a prefix of the new one and still matches the
    /// file at a restart. A quiet file's first kilobyte arriving line by line would otherwise cost
    /// a positions write per line.
    pub fn update(&self, id: FileId, ident: FileIdentity, reset_to: Option<u64>) {
        self.change(id, |f| {
            if f.ident != ident {
                let same_file = f.ident.path == ident.path && f.ident.dev == ident.dev && f.ident.ino == ident.ino;
                if !same_file || reset_to.is_some() {
                    self.changes.files_changed();
                }
                self.mark(id, f);
            }
            f.ident = ident;
            if let Some(off) = reset_to {
                f.committed = off;
                f.sent = off;
                for p in &mut f.pending {
                    p.offset = p.offset.min(off);
                }
            }
        });
    }

    pub fn set_path(&self, id: FileId, path: PathBuf) {
        if let Some(f) = self.lock().get_mut(&id) {
            if f.ident.path != path {
                f.ident.path = path;
                self.changes.files_changed();
                self.mark(id, f);
            }
        }
    }

    /// The lines of `file` up to `offset` not covered by earlier calls went into the batches `seqs`
    /// (none: the stages dropped them all).
    pub fn add(&self, file: FileId, offset: u64, seqs: &[u64]) {
        self.change(file, |f| match f.pending.back_mut() {
            None if seqs.is_empty() => f.committed = f.committed.max(offset),
            // The same batches again, right after themselves: one entry covers both reads.
            Some(last) if last.seqs == seqs => last.offset = last.offset.max(offset),
            _ => f.pending.push_back(Pending {
                offset,
                seqs: seqs.to_vec(),
            }),
        });
    }

    /// The batch was stored by Loki (or dropped and counted): offsets up to it may become committed.
    pub fn ack(&self, seq: u64, files: &[FileId]) {
        for &id in files {
            let done = self.change(id, |f| {
                for p in f.pending.iter_mut() {
                    p.seqs.retain(|&s| s != seq);
                }
                while f.pending.front().is_some_and(|p| p.seqs.is_empty()) {
                    if let Some(p) = f.pending.pop_front() {
                        f.committed = f.committed.max(p.offset);
                    }
                }
                f.closed && f.pending.is_empty()
            });
            if done == Some(true) {
                self.forget(id);
            }
        }
    }

    /// Removes a file's track, and what it still counted in `buffered`.
    fn forget(&self, id: FileId) {
        let mut files = self.lock();
        if let Some(f) = files.remove(&id) {
            self.buffered.fetch_sub(f.outstanding(), Ordering::Relaxed);
            if !f.cursor {
                self.changed.lock().unwrap_or_else(|p| p.into_inner()).push(id);
            }
            drop(files);
            self.changes.files_changed();
        }
    }

    /// Bytes read and not yet acknowledged over `files` (id, read offset): the checkpoint lag, in one
    /// pass under one lock (10,000 files: a lock each cost the idle reader more than its scans).
    pub fn lag(&self, files: impl Iterator<Item = (FileId, u64)>) -> u64 {
        let tracked = self.lock();
        files
            .map(|(id, read)| read.saturating_sub(tracked.get(&id).map_or(0, |f| f.committed)))
            .sum()
    }

    /// Counts of changes to the tracked files and to their acknowledged offsets: equal counts, the
    /// same acknowledged state.
    pub fn generation(&self) -> (u64, u64) {
        self.changes.counts()
    }

    /// The acknowledged offset of a file, and whether batches of it are still in flight.
    pub fn committed(&self, id: FileId) -> Option<(u64, bool)> {
        self.lock().get(&id).map(|f| (f.committed, !f.pending.is_empty()))
    }

    /// The reader is done with the file; it leaves the positions once nothing of it is in flight.
    pub fn close(&self, id: FileId) {
        let idle = self.change(id, |f| {
            f.closed = true;
            f.pending.is_empty()
        });
        if idle == Some(true) {
            self.forget(id);
        }
    }

    /// What the positions file should say now: the files. A cursor source (the journal) is saved
    /// beside them through its [`CursorSource`].
    pub fn snapshot(&self) -> Vec<SavedFile> {
        let mut v: Vec<SavedFile> = self.lock().values().filter(|f| !f.cursor).map(saved).collect();
        positions::sort(&mut v);
        v
    }

    /// The files whose positions entry changed since the last call (or [`Tracker::take_all`]):
    /// each with its entry now, or None when it left.
    pub(crate) fn take_changed(&self) -> Vec<(FileId, Option<SavedFile>)> {
        let mut files = self.lock();
        let ids = std::mem::take(&mut *self.changed.lock().unwrap_or_else(|p| p.into_inner()));
        ids.into_iter()
            .filter_map(|id| match files.get_mut(&id) {
                // Listed again after it left and came back: its entry was taken already.
                Some(f) if !f.changed => None,
                Some(f) => {
                    f.changed = false;
                    Some((id, Some(saved(f))))
                }
                None => Some((id, None)),
            })
            .collect()
    }

    /// Every file's positions entry, the changes taken with them.
    pub(crate) fn take_all(&self) -> Vec<(FileId, SavedFile)> {
        let mut files = self.lock();
        self.changed.lock().unwrap_or_else(|p| p.into_inner()).clear();
        files
            .iter_mut()
            .filter(|(_, f)| !f.cursor)
            .map(|(id, f)| {
                f.changed = false;
                (*id, saved(f))
            })
            .collect()
    }
}

fn saved(f: &FileTrack) -> SavedFile {
    SavedFile {
        ident: f.ident.clone(),
        offset: f.committed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ident(ino: u64) -> FileIdentity {
        FileIdentity {
            path: format!("/f{ino}").into(),
            dev: 1,
            ino,
            fp_len: 0,
            fp: 0,
        }
    }

    #[test]
    fn commits_only_the_acknowledged_prefix() {
        let t = Tracker::default();
        t.open(1, ident(1), 100);
        t.add(1, 150, &[1]);
        t.add(1, 200, &[1]);
        t.add(1, 300, &[2]);
        t.add(1, 400, &[3]);
        assert_eq!(t.committed(1), Some((100, true)));
        t.ack(2, &[1]);
        assert_eq!(t.committed(1), Some((100, true)), "batch 1 still in flight");
        t.ack(1, &[1]);
        assert_eq!(t.committed(1), Some((300, true)));
        t.ack(3, &[1]);
        assert_eq!(t.committed(1), Some((400, false)));
        assert_eq!(t.snapshot()[0].offset, 400);
    }

    #[test]
    fn batches_filled_side_by_side_commit_only_their_common_prefix() {
        // Reads 1..3 of one file: read 1 went to batches A (tenant a) and B (tenant b), read 2 to B
        // only, read 3 to A again; a read whose lines the stages all dropped goes to none.
        let t = Tracker::default();
        t.open(1, ident(1), 0);
        let (a, b) = (10, 11);
        t.add(1, 100, &[a, b]);
        t.add(1, 200, &[b]);
        t.add(1, 300, &[a]);
        t.add(1, 350, &[]);
        t.ack(a, &[1]);
        assert_eq!(t.committed(1), Some((0, true)), "read 1 is in B too, not yet stored");
        t.ack(b, &[1]);
        assert_eq!(t.committed(1), Some((350, false)));
        // Now with B stored before A.
        let (a, b) = (20, 21);
        t.add(1, 400, &[a, b]);
        t.add(1, 500, &[b]);
        t.add(1, 600, &[a]);
        t.ack(b, &[1]);
        assert_eq!(t.committed(1), Some((350, true)), "read at 400 is in A too");
        t.ack(a, &[1]);
        assert_eq!(t.committed(1), Some((600, false)));
        // Nothing in flight: a fully dropped read commits at once.
        t.add(1, 650, &[]);
        assert_eq!(t.committed(1), Some((650, false)));
        // Dropped reads behind an unacknowledged batch wait for it.
        t.add(1, 700, &[12]);
        t.add(1, 750, &[]);
        assert_eq!(t.committed(1), Some((650, true)));
        t.ack(12, &[1]);
        assert_eq!(t.committed(1), Some((750, false)));
    }

    #[test]
    fn the_lag_is_what_each_file_read_past_its_acknowledged_offset() {
        let t = Tracker::default();
        t.open(1, ident(1), 100);
        t.open(2, ident(2), 0);
        t.add(1, 200, &[1]);
        t.ack(1, &[1]);
        // File 1 read to 350 (committed 200), file 2 to 40 (committed 0), file 3 untracked (all of it).
        assert_eq!(t.lag([(1, 350), (2, 40), (3, 5)].into_iter()), 150 + 40 + 5);
        assert_eq!(t.lag([(1, 150)].into_iter()), 0, "never below the acknowledged offset");
    }

    #[test]
    fn buffered_bytes_are_what_was_sent_and_not_yet_acknowledged() {
        let t = Tracker::default();
        t.open(1, ident(1), 100);
        t.open(2, ident(2), 0);
        t.sent(1, 300);
        t.sent(2, 50);
        assert_eq!(t.buffered_bytes(), 250);
        t.add(1, 200, &[1]);
        t.add(1, 300, &[2]);
        t.add(2, 50, &[2]);
        t.ack(1, &[1]);
        assert_eq!(t.buffered_bytes(), 150, "file 1 committed to 200");
        // Truncated: what was outstanding of it is no longer held.
        t.update(2, ident(2), Some(0));
        assert_eq!(t.buffered_bytes(), 100);
        t.ack(2, &[1, 2]);
        assert_eq!(t.buffered_bytes(), 0);
        // A file closed while lines of it are still in the ring stops counting.
        t.sent(1, 400);
        assert_eq!(t.buffered_bytes(), 100);
        t.close(1);
        assert_eq!(t.buffered_bytes(), 0);
        assert_eq!(t.snapshot().len(), 1);
    }

    #[test]
    fn closed_file_leaves_after_last_ack() {
        let t = Tracker::default();
        t.open(7, ident(7), 0);
        t.add(7, 50, &[1]);
        t.close(7);
        assert_eq!(t.snapshot().len(), 1);
        t.ack(1, &[7]);
        assert!(t.snapshot().is_empty());
    }
}
