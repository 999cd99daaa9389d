//! When the positions file is written: as soon as what a restart needs changes, not on a clock.
//!
//! A restart needs to know which files were tailed (their path, dev, inode and fingerprint) to find
//! them again after kubelet renamed them away, and how far each was acknowledged. The first is
//! written at once when it changes (a file opened, rotated, renamed, closed; at most every
//! [`FILES_GAP`]), the second at most every `positions.sync_period` (a run's first progress at once,
//! so an agent killed again and again before that period still moves forward), and nothing when
//! nothing changed. The first write waits until the reader has found the files and recovered those rotated
//! away while the agent was down: written before that, it would forget files the previous
//! positions still knew, and a crash then would lose their unread lines.

use super::log::{PositionsLog, Written};
use super::positions::{Positions, SavedFile};
use super::Tracker;
use crate::metrics::Metrics;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

/// The least time between two writes for changed files (a burst of rotations makes one write).
pub const FILES_GAP: Duration = Duration::from_millis(100);

/// How far before the reader's last complete look the saved time is put: events of a rename reach
/// the reader a little after the rename (through the watcher's thread), so the files renamed in that
/// last moment are looked for again at a restart (read again at worst, never skipped).
pub const LOOK_MARGIN: Duration = Duration::from_secs(1);

/// What changed since the positions were last written, shared by the tracker (which counts changes)
/// and the positions writer (which waits for them).
#[derive(Default)]
pub struct Changes {
    /// Which files are tracked, or who they are (path, dev, inode, fingerprint), changed.
    files: AtomicU64,
    /// A committed offset moved.
    offsets: AtomicU64,
    /// The reader has looked at every rename and create before this moment (ns since the epoch).
    looked_ns: AtomicU64,
    /// The reader has found the files and recovered the rotated ones: positions may be written.
    recovered: AtomicBool,
    wake: tokio::sync::Notify,
}

impl Changes {
    pub(super) fn files_changed(&self) {
        self.files.fetch_add(1, Ordering::Relaxed);
        self.wake.notify_one();
    }

    pub(super) fn offsets_moved(&self) {
        self.offsets.fetch_add(1, Ordering::Relaxed);
        self.wake.notify_one();
    }

    pub(super) fn counts(&self) -> (u64, u64) {
        (self.files.load(Ordering::Relaxed), self.offsets.load(Ordering::Relaxed))
    }
}

impl Tracker {
    /// The reader has followed every rename and create that happened before `at` (events handled,
    /// or a full scan that started then).
    pub fn looked(&self, at: SystemTime) {
        let ns = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        self.changes.looked_ns.fetch_max(ns, Ordering::Relaxed);
    }

    /// The reader has found the files and read those rotated away while the agent was down: from now
    /// on the positions describe every file a restart must look for.
    pub fn recovered(&self) {
        self.changes.recovered.store(true, Ordering::Relaxed);
        self.changes.wake.notify_one();
    }

    /// Whether start-up recovery is done: before that, a positions file written would forget files
    /// the previous one knew (the shutdown of an agent stopped while starting keeps the old one).
    pub fn is_recovered(&self) -> bool {
        self.changes.recovered.load(Ordering::Relaxed)
    }

    /// The time a positions file written now stands for: a restart looks for files renamed or
    /// written since then (see `LOOK_MARGIN`).
    fn saved_at(&self) -> SystemTime {
        let looked = UNIX_EPOCH + Duration::from_nanos(self.changes.looked_ns.load(Ordering::Relaxed));
        looked
            .min(SystemTime::now())
            .checked_sub(LOOK_MARGIN)
            .unwrap_or(UNIX_EPOCH)
    }
}

/// A source whose place is not a file offset but a cursor (the journal), saved in the positions
/// file beside the files.
pub trait CursorSource: Send + Sync {
    /// The cursor up to which everything was acknowledged (tracked under its id in `tracker`).
    fn committed_cursor(&self, tracker: &Tracker) -> Option<String>;
}

/// Where and how the positions are written.
pub struct PositionsWriter {
    /// Shared with the last write at shutdown.
    pub log: Arc<Mutex<PositionsLog>>,
    pub period: Duration,
    pub tracker: Arc<Tracker>,
    pub metrics: Arc<Metrics>,
    pub journal: Option<Arc<dyn CursorSource>>,
}

impl PositionsWriter {
    /// Writes the positions whenever they change (see the module's text), until aborted.
    pub async fn run(self) {
        let changes = &self.tracker.changes;
        while !changes.recovered.load(Ordering::Relaxed) {
            changes.wake.notified().await;
        }
        // The first write tells a restart about the files just found, even when nothing moves later.
        let mut last = Instant::now();
        let mut written = self.write().await.unwrap_or((u64::MAX, u64::MAX));
        // When this run last wrote acknowledged progress. None until it first did: its first progress
        // is written at once, so an agent killed over and over before `period` still moves forward.
        let mut progress_at: Option<Instant> = None;
        loop {
            let (files, offsets) = changes.counts();
            let due = if files != written.0 {
                Some(last + FILES_GAP)
            } else if offsets != written.1 {
                Some(progress_at.map_or(last + FILES_GAP, |p| (p + self.period).max(last + FILES_GAP)))
            } else {
                None
            };
            match due {
                Some(at) if at <= Instant::now() => {
                    last = Instant::now();
                    match self.write().await {
                        Some(counts) => {
                            if counts.1 != written.1 {
                                progress_at = Some(last);
                            }
                            written = counts;
                        }
                        // Tried again a period later (the error is logged and counted).
                        None => last += self.period,
                    }
                }
                Some(at) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(at) => {}
                        _ = changes.wake.notified() => {}
                    }
                }
                None => changes.wake.notified().await,
            }
        }
    }

    /// Writes the positions now; returns the change counts they include (None: not written).
    async fn write(&self) -> Option<(u64, u64)> {
        // Counted before the snapshot: the snapshot holds at least these changes.
        let counts = self.tracker.changes.counts();
        save(&self.log, &self.tracker, &self.metrics, self.journal.clone())
            .await
            .then_some(counts)
    }
}

/// A first start (no positions file): says so on disk before anything else, with the `files`
/// imported from the agent this one replaces, if any. An agent killed before its first real write
/// then restarts knowing since when files were renamed or written unseen (and looks for them), and
/// where the imported ones resume; this run itself still starts as a first start.
pub fn mark_first_start(path: &Path, metrics: &Metrics, files: &[SavedFile]) {
    let saved = Positions::save(path, files, None, SystemTime::now());
    counted(path, metrics, saved.map(|()| Written::Snapshot(0)));
}

/// Writes what changed in the tracker (and the journal's acknowledged cursor, if it is read);
/// false when it could not be written (logged and counted).
pub async fn save(
    log: &Arc<Mutex<PositionsLog>>,
    tracker: &Arc<Tracker>,
    metrics: &Metrics,
    journal: Option<Arc<dyn CursorSource>>,
) -> bool {
    let (log, tracker) = (log.clone(), tracker.clone());
    let write = move || {
        let saved_at = tracker.saved_at();
        let cursor = journal.and_then(|j| j.committed_cursor(&tracker));
        let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
        let written = log.write(&tracker, cursor, saved_at);
        (log.path().to_path_buf(), written)
    };
    match tokio::task::spawn_blocking(write).await {
        Ok((path, result)) => counted(&path, metrics, result),
        Err(e) => {
            tracing::warn!(error = %e, "positions write task failed");
            false
        }
    }
}

/// Counts a positions write by outcome and logs a failure; true when it was written.
fn counted(path: &Path, metrics: &Metrics, result: std::io::Result<Written>) -> bool {
    let status = match &result {
        Ok(_) => "ok",
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e,
                "cannot write the positions file; shipping goes on and it is tried again at the next change, after positions.sync_period at the latest (check positions.filename's directory)");
            "error"
        }
    };
    metrics.positions_writes.get_or_create(&Metrics::status(status)).inc();
    if let Ok(w) = result {
        let (kind, bytes) = match w {
            Written::Snapshot(n) => ("snapshot", n),
            Written::Changes(n) => ("changes", n),
        };
        metrics
            .positions_written_bytes
            .get_or_create(&Metrics::kind(kind))
            .inc_by(bytes as u64);
    }
    result.is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::{FileIdentity, Positions};

    fn ident(ino: u64, fp_len: u32) -> FileIdentity {
        FileIdentity {
            path: format!("/f{ino}").into(),
            dev: 1,
            ino,
            fp_len,
            fp: 7,
        }
    }

    #[test]
    fn files_and_offsets_are_counted_apart_and_only_when_they_change() {
        let t = Tracker::default();
        let c0 = t.changes.counts();
        t.open(1, ident(1, 0), 0);
        let c1 = t.changes.counts();
        assert!(c1.0 > c0.0, "a new file");
        t.add(1, 100, &[5]);
        assert_eq!(t.changes.counts(), c1, "sent, not acknowledged: nothing for a restart");
        t.ack(5, &[1]);
        let c2 = t.changes.counts();
        assert_eq!(c2.0, c1.0);
        assert!(c2.1 > c1.1, "acknowledged progress");
        t.update(1, ident(1, 0), None);
        t.set_path(1, "/f1".into());
        assert_eq!(t.changes.counts(), c2, "the same identity again");
        t.update(1, ident(1, 100), None);
        let c3 = t.changes.counts();
        assert_eq!(
            c3, c2,
            "the same file with a longer fingerprint is written with the next change"
        );
        t.update(1, ident(1, 100), Some(0));
        t.update(1, ident(1, 0), Some(0));
        let c3 = t.changes.counts();
        assert!(c3.0 > c2.0, "truncated: at once");
        t.set_path(1, "/renamed".into());
        let c4 = t.changes.counts();
        assert!(c4.0 > c3.0, "renamed");
        t.close(1);
        assert!(t.changes.counts().0 > c4.0, "closed and forgotten");
    }

    #[test]
    fn saved_at_is_before_the_readers_last_complete_look() {
        let t = Tracker::default();
        let look = SystemTime::now() - Duration::from_secs(30);
        t.looked(look);
        assert_eq!(t.saved_at(), look - LOOK_MARGIN);
        // An older look never moves it back.
        t.looked(look - Duration::from_secs(10));
        assert_eq!(t.saved_at(), look - LOOK_MARGIN);
    }

    /// The writer waits for recovery, writes at once then, writes a new file within FILES_GAP even
    /// with an hour's sync period, holds progress back for the period, and writes nothing idle.
    #[test]
    fn the_writer_follows_the_files_and_holds_progress_for_the_period() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("positions.json");
            let tracker = Arc::new(Tracker::default());
            let metrics = Arc::new(Metrics::new());
            let writes = || metrics.positions_writes.get_or_create(&Metrics::status("ok")).get();
            let writer = PositionsWriter {
                log: Arc::new(Mutex::new(PositionsLog::new(path.clone()))),
                period: Duration::from_secs(3600),
                tracker: tracker.clone(),
                metrics: metrics.clone(),
                journal: None,
            };
            let task = tokio::spawn(writer.run());
            tracker.open(1, ident(1, 0), 0);
            tracker.looked(SystemTime::now());
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert!(!path.exists(), "nothing before the reader recovered the rotated files");
            tracker.recovered();
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert_eq!(writes(), 1);
            assert_eq!(Positions::load(&path).files.len(), 1);

            tracker.add(1, 100, &[]);
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert_eq!(writes(), 2, "the run's first progress is written at once");
            assert_eq!(Positions::load(&path).files[0].offset, 100);
            tracker.add(1, 200, &[]);
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert_eq!(writes(), 2, "later progress waits for sync_period");
            tracker.open(2, ident(2, 0), 0);
            tokio::time::sleep(FILES_GAP * 3).await;
            assert_eq!(writes(), 3, "a new file is written within FILES_GAP");
            let saved = Positions::load(&path).files;
            assert_eq!(saved.iter().map(|f| f.offset).collect::<Vec<_>>(), [200, 0]);
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert_eq!(writes(), 3, "idle: nothing written");
            task.abort();
        });
    }
}
