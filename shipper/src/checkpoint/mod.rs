//! checkpoint: which file offsets are safe to remember, and the positions file that remembers them.
//!
//! At-least-once: a file's offset moves only to the highest offset below which every batch was
//! acknowledged by Loki (or dropped and counted). Batches may complete out of order; each file keeps its
//! batches in send order and advances over the acknowledged prefix.

mod positions;

pub use positions::{FileIdentity, Positions, SavedFile};

use crate::ring::FileId;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Mutex;

struct Pending {
    seq: u64,
    offset: u64,
    acked: bool,
}

struct FileTrack {
    ident: FileIdentity,
    committed: u64,
    pending: VecDeque<Pending>,
    /// The reader closed the file; forget it once nothing is pending.
    closed: bool,
}

/// Shared between the reader (files opened/closed), the batcher (batches registered) and the push side
/// (batches acknowledged). Calls are a few per batch or per file event, so a mutex is fine.
#[derive(Default)]
pub struct Tracker {
    files: Mutex<crate::IdMap<FileId, FileTrack>>,
}

impl Tracker {
    fn lock(&self) -> std::sync::MutexGuard<'_, crate::IdMap<FileId, FileTrack>> {
        // A panic elsewhere while holding the lock leaves consistent data (each update is one step).
        self.files.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A file was opened for reading at `offset` (everything before it counts as acknowledged).
    pub fn open(&self, id: FileId, ident: FileIdentity, offset: u64) {
        self.lock().insert(
            id,
            FileTrack {
                ident,
                committed: offset,
                pending: VecDeque::new(),
                closed: false,
            },
        );
    }

    /// The file's identity changed (renamed, fingerprint grew) or it was truncated to `reset_to`.
    pub fn update(&self, id: FileId, ident: FileIdentity, reset_to: Option<u64>) {
        if let Some(f) = self.lock().get_mut(&id) {
            f.ident = ident;
            if let Some(off) = reset_to {
                f.committed = off;
                for p in &mut f.pending {
                    p.offset = p.offset.min(off);
                }
            }
        }
    }

    pub fn set_path(&self, id: FileId, path: PathBuf) {
        if let Some(f) = self.lock().get_mut(&id) {
            f.ident.path = path;
        }
    }

    /// A batch with these per-file commit offsets is on its way.
    pub fn register(&self, seq: u64, offsets: &[(FileId, u64)]) {
        let mut files = self.lock();
        for &(id, offset) in offsets {
            if let Some(f) = files.get_mut(&id) {
                f.pending.push_back(Pending {
                    seq,
                    offset,
                    acked: false,
                });
            }
        }
    }

    /// The batch was stored by Loki (or dropped and counted): its offsets may become committed.
    pub fn ack(&self, seq: u64, offsets: &[(FileId, u64)]) {
        let mut files = self.lock();
        for &(id, _) in offsets {
            let Some(f) = files.get_mut(&id) else {
                continue;
            };
            if let Some(p) = f.pending.iter_mut().find(|p| p.seq == seq) {
                p.acked = true;
            }
            while f.pending.front().is_some_and(|p| p.acked) {
                if let Some(p) = f.pending.pop_front() {
                    f.committed = f.committed.max(p.offset);
                }
            }
            if f.closed && f.pending.is_empty() {
                files.remove(&id);
            }
        }
    }

    /// The acknowledged offset of a file, and whether batches of it are still in flight.
    pub fn committed(&self, id: FileId) -> Option<(u64, bool)> {
        self.lock().get(&id).map(|f| (f.committed, !f.pending.is_empty()))
    }

    /// The reader is done with the file; it leaves the positions once nothing of it is in flight.
    pub fn close(&self, id: FileId) {
        let mut files = self.lock();
        if let Some(f) = files.get_mut(&id) {
            if f.pending.is_empty() {
                files.remove(&id);
            } else {
                f.closed = true;
            }
        }
    }

    /// What the positions file should say now.
    pub fn snapshot(&self) -> Vec<SavedFile> {
        let mut v: Vec<SavedFile> = self
            .lock()
            .values()
            .map(|f| SavedFile {
                ident: f.ident.clone(),
                offset: f.committed,
            })
            .collect();
        v.sort_by(|a, b| a.ident.path.cmp(&b.ident.path).then(a.ident.ino.cmp(&b.ident.ino)));
        v
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
        t.register(1, &[(1, 200)]);
        t.register(2, &[(1, 300)]);
        t.register(3, &[(1, 400)]);
        assert_eq!(t.committed(1), Some((100, true)));
        t.ack(2, &[(1, 300)]);
        assert_eq!(t.committed(1), Some((100, true)), "batch 1 still in flight");
        t.ack(1, &[(1, 200)]);
        assert_eq!(t.committed(1), Some((300, true)));
        t.ack(3, &[(1, 400)]);
        assert_eq!(t.committed(1), Some((400, false)));
        assert_eq!(t.snapshot()[0].offset, 400);
    }

    #[test]
    fn closed_file_leaves_after_last_ack() {
        let t = Tracker::default();
        t.open(7, ident(7), 0);
        t.register(1, &[(7, 50)]);
        t.close(7);
        assert_eq!(t.snapshot().len(), 1);
        t.ack(1, &[(7, 50)]);
        assert!(t.snapshot().is_empty());
    }
}
