//! Writing the positions file as it changes: each write appends one record with the files whose
//! acknowledged offset or identity changed since the last write (see [`super::format`]) and syncs
//! it; the whole file is rewritten as a fresh snapshot (atomically, as before) at a run's first
//! write, after a failed write, and when the appended records outgrow a bound.

use super::format::{encode, snapshot, Record, SlotEntry};
use super::positions::{order, replace, unix_ms, SavedFile};
use super::Tracker;
use crate::ring::FileId;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Appended records may grow to this, or to twice the last snapshot, before the file is rewritten.
const MIN_BOUND: u64 = 256 << 10;

/// What a write did, for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// The whole file, of this many bytes.
    Snapshot(usize),
    /// A record of the changes, of this many bytes.
    Changes(usize),
}

pub struct PositionsLog {
    path: PathBuf,
    /// The file the last snapshot made, open at its end (None: the next write is a snapshot).
    file: Option<std::fs::File>,
    /// Each tracked file's slot and what the file says of it.
    slots: crate::IdMap<FileId, (u32, SavedFile)>,
    /// Slots freed by removed files, used again first.
    free: Vec<u32>,
    next_slot: u32,
    /// The journal cursor the file holds.
    cursor: Option<String>,
    appended: u64,
    bound: u64,
    buf: Vec<u8>,
}

impl PositionsLog {
    pub fn new(path: PathBuf) -> Self {
        PositionsLog {
            path,
            file: None,
            slots: Default::default(),
            free: Vec::new(),
            next_slot: 0,
            cursor: None,
            appended: 0,
            bound: MIN_BOUND,
            buf: Vec::new(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes what changed in `tracker` since the last write, and the journal's `cursor`, for
    /// `saved_at`. On an error the next write is a snapshot (it holds every change).
    pub fn write(
        &mut self,
        tracker: &Tracker,
        cursor: Option<String>,
        saved_at: SystemTime,
    ) -> std::io::Result<Written> {
        let r = match self.file.is_some() && self.appended <= self.bound {
            true => self.append(tracker, cursor, saved_at),
            false => self.snapshot(tracker, cursor, saved_at),
        };
        if r.is_err() {
            self.file = None;
        }
        r
    }

    fn snapshot(
        &mut self,
        tracker: &Tracker,
        cursor: Option<String>,
        saved_at: SystemTime,
    ) -> std::io::Result<Written> {
        let mut files = tracker.take_all();
        files.sort_unstable_by(|a, b| order(&a.1).cmp(&order(&b.1)));
        self.slots.clear();
        self.free.clear();
        self.next_slot = files.len() as u32;
        for (slot, (id, f)) in files.into_iter().enumerate() {
            self.slots.insert(id, (slot as u32, f));
        }
        let mut ordered: Vec<(u32, &SavedFile)> = self.slots.values().map(|(s, f)| (*s, f)).collect();
        ordered.sort_unstable_by_key(|(s, _)| *s);
        let body = snapshot(ordered.into_iter(), unix_ms(saved_at), cursor.as_deref());
        self.file = Some(replace(&self.path, &body)?);
        self.cursor = cursor;
        self.appended = 0;
        self.bound = MIN_BOUND.max(2 * body.len() as u64);
        Ok(Written::Snapshot(body.len()))
    }

    fn append(&mut self, tracker: &Tracker, cursor: Option<String>, saved_at: SystemTime) -> std::io::Result<Written> {
        let mut record = Record {
            saved_at_unix_ms: unix_ms(saved_at),
            ..Record::default()
        };
        for (id, now) in tracker.take_changed() {
            match (now, self.slots.get_mut(&id)) {
                (Some(now), Some((slot, was))) => {
                    if *was == now {
                        continue;
                    }
                    record.set.push(SlotEntry {
                        slot: *slot,
                        file: (was.ident != now.ident).then(|| now.ident.clone()),
                        offset: now.offset,
                    });
                    *was = now;
                }
                (Some(now), None) => {
                    let slot = self.free.pop().unwrap_or_else(|| {
                        self.next_slot += 1;
                        self.next_slot - 1
                    });
                    record.set.push(SlotEntry {
                        slot,
                        file: Some(now.ident.clone()),
                        offset: now.offset,
                    });
                    self.slots.insert(id, (slot, now));
                }
                (None, _) => {
                    if let Some((slot, _)) = self.slots.remove(&id) {
                        record.del.push(slot);
                        self.free.push(slot);
                    }
                }
            }
        }
        if cursor.is_some() && cursor != self.cursor {
            record.journal_cursor.clone_from(&cursor);
            self.cursor = cursor;
        }
        self.buf.clear();
        encode(&record, &mut self.buf);
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| std::io::Error::other("no positions file open"))?;
        file.write_all(&self.buf)?;
        file.sync_data()?;
        self.appended += self.buf.len() as u64;
        Ok(Written::Changes(self.buf.len()))
    }
}

#[cfg(test)]
#[path = "log_tests.rs"]
mod tests;
