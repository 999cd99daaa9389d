//! Which journal cursor is safe to save: the at-least-once rule of files, applied to the journal.
//!
//! The journal has no byte offsets, so the journal thread numbers the entries it reads (1, 2, 3 …) and
//! uses that count as the "offset" of its chunks: the batcher and the pushers track it in the
//! [`Tracker`] exactly like a file's offset, so `tracker.committed(JOURNAL_ID)` only moves over entries
//! Loki acknowledged (batches may finish out of order). Here we remember, for every chunk still in
//! flight, the count after it and the cursor of its last entry; the cursor saved in the positions
//! file is the one of the newest chunk at or below the committed count. Memory is bounded by the
//! chunks in flight (the ring and the open batches).

use super::JOURNAL_ID;
use crate::checkpoint::Tracker;
use std::collections::VecDeque;
use std::sync::Mutex;

#[derive(Debug, Default)]
struct Inner {
    /// (entry count after the chunk, cursor of its last entry), oldest first.
    in_flight: VecDeque<(u64, String)>,
    /// The newest cursor known to be acknowledged (at start: the saved one).
    committed: Option<String>,
}

/// Shared by the journal thread (which adds chunks) and the positions writer (which asks what to save).
#[derive(Debug, Default)]
pub struct JournalCursors {
    inner: Mutex<Inner>,
}

impl JournalCursors {
    /// `saved`: the cursor of the positions file, kept until something newer is acknowledged.
    pub fn new(saved: Option<String>) -> Self {
        JournalCursors {
            inner: Mutex::new(Inner {
                in_flight: VecDeque::new(),
                committed: saved,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Every update is a single step: the data stays consistent even after a panic elsewhere.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A chunk ending at entry `count` (whose last entry has `cursor`) went into the ring.
    pub fn push(&self, count: u64, cursor: String) {
        self.lock().in_flight.push_back((count, cursor));
    }

    /// The cursor to save now: the last entry of the newest chunk whose entries (and all before
    /// them) Loki acknowledged. Forgets the chunks it passed.
    pub fn committed_cursor(&self, tracker: &Tracker) -> Option<String> {
        let committed = tracker.committed(JOURNAL_ID).map_or(0, |(c, _)| c);
        let mut inner = self.lock();
        while inner.in_flight.front().is_some_and(|(count, _)| *count <= committed) {
            if let Some((_, cursor)) = inner.in_flight.pop_front() {
                inner.committed = Some(cursor);
            }
        }
        inner.committed.clone()
    }

    /// Chunks whose cursor is not saveable yet (for tests and the log).
    pub fn in_flight(&self) -> usize {
        self.lock().in_flight.len()
    }
}

impl crate::checkpoint::CursorSource for JournalCursors {
    fn committed_cursor(&self, tracker: &Tracker) -> Option<String> {
        JournalCursors::committed_cursor(self, tracker)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracker() -> Tracker {
        let t = Tracker::default();
        t.open_cursor_source(JOURNAL_ID, super::super::identity());
        t
    }

    #[test]
    fn the_saved_cursor_moves_only_over_acknowledged_chunks() {
        let t = tracker();
        let c = JournalCursors::new(Some("saved".into()));
        assert_eq!(c.committed_cursor(&t).as_deref(), Some("saved"));
        // Three chunks: entries 1..=2 in batch 10, 3..=5 in batch 11, 6 in batch 12.
        for (count, cursor, batch) in [(2, "c2", 10), (5, "c5", 11), (6, "c6", 12)] {
            c.push(count, cursor.into());
            t.add(JOURNAL_ID, count, &[batch]);
        }
        assert_eq!(c.committed_cursor(&t).as_deref(), Some("saved"), "nothing acknowledged");
        t.ack(11, &[JOURNAL_ID]);
        assert_eq!(
            c.committed_cursor(&t).as_deref(),
            Some("saved"),
            "batch 10 still in flight"
        );
        t.ack(10, &[JOURNAL_ID]);
        assert_eq!(c.committed_cursor(&t).as_deref(), Some("c5"));
        assert_eq!(c.in_flight(), 1);
        t.ack(12, &[JOURNAL_ID]);
        assert_eq!(c.committed_cursor(&t).as_deref(), Some("c6"));
        assert_eq!(c.in_flight(), 0, "memory follows what is in flight");
        assert!(t.snapshot().is_empty(), "the journal is not a file of the positions");
    }

    #[test]
    fn no_saved_cursor_and_nothing_acknowledged_saves_none() {
        let t = tracker();
        let c = JournalCursors::new(None);
        c.push(3, "c3".into());
        t.add(JOURNAL_ID, 3, &[1]);
        assert_eq!(c.committed_cursor(&t), None);
        t.ack(1, &[JOURNAL_ID]);
        assert_eq!(c.committed_cursor(&t).as_deref(), Some("c3"));
    }
}
