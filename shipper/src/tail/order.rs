//! Order within a stream: the files of one tailed path (the file there now and the ones rotated away
//! from it) are read oldest first. A file waits while an older one of its stream is not read to its
//! end, and for `GONE_GRACE` after an older one was rotated away (a writer may still append to it), so
//! a stream's lines reach Loki in the order they were written even when reading paused across several
//! rotations (Loki down) or the agent found them late.

use super::file::{State, TailedFile};
use super::{Reader, GONE_GRACE};
use crate::ring::FileId;
use std::collections::HashMap;
use std::path::Path;

/// Whether a file may be read now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Turn {
    /// Nothing older of its stream is pending.
    Go,
    /// This older file of its stream is not read to its end: read it first.
    After(FileId),
    /// An older file of its stream was rotated away a moment ago: wait (no read) until it settles.
    Wait,
}

/// A rotated or deleted file that still holds up the newer files of its stream.
struct Older {
    seq: u64,
    id: FileId,
    /// Read to its end (its last read was empty).
    read_out: bool,
}

/// The rotated files of each stream that hold up newer ones.
pub(super) struct Pending<'a>(HashMap<&'a Path, Vec<Older>>);

impl<'a> Pending<'a> {
    pub(super) fn of(files: impl Iterator<Item = &'a TailedFile>) -> Self {
        let mut by_path: HashMap<&Path, Vec<Older>> = HashMap::new();
        for f in files {
            let State::Gone { since } = f.state else { continue };
            if f.eof && since.elapsed() >= GONE_GRACE {
                continue;
            }
            by_path.entry(f.path.as_path()).or_default().push(Older {
                seq: f.seq,
                id: f.id,
                read_out: f.eof,
            });
        }
        Pending(by_path)
    }

    /// The turn of `f`.
    pub(super) fn turn(&self, f: &TailedFile) -> Turn {
        let Some(older) = self.0.get(f.path.as_path()) else {
            return Turn::Go;
        };
        let before = older.iter().filter(|o| o.seq < f.seq);
        match before.clone().filter(|o| !o.read_out).min_by_key(|o| o.seq) {
            Some(first) => Turn::After(first.id),
            None if before.count() > 0 => Turn::Wait,
            None => Turn::Go,
        }
    }
}

impl Reader {
    /// The turn of one file among the files of its stream.
    pub(super) fn turn(&self, id: FileId) -> Turn {
        match self.files.get(&id) {
            Some(f) => Pending::of(self.gone.iter().filter_map(|id| self.files.get(id))).turn(f),
            None => Turn::Go,
        }
    }

    /// Takes the files to read in the next round (at most `max`) out of `sweep`. A file whose turn has
    /// not come stays in `sweep` with the older file it waits for read in this round, or, when that
    /// one only settles, goes to `self.deferred` for a later sweep.
    pub(super) fn next_round(&mut self, sweep: &mut Vec<FileId>, max: usize) -> Vec<FileId> {
        // Only rotated (gone) files can hold others up.
        let pending = Pending::of(self.gone.iter().filter_map(|id| self.files.get(id)));
        let mut ids: Vec<FileId> = Vec::with_capacity(max.min(sweep.len()));
        let mut waiting = Vec::new();
        for id in sweep.drain(..) {
            let Some(f) = self.files.get(&id) else { continue };
            match pending.turn(f) {
                Turn::After(first) => {
                    waiting.push(id);
                    if !ids.contains(&first) {
                        ids.push(first);
                    }
                }
                Turn::Wait => self.deferred.push(id),
                Turn::Go if ids.len() < max => {
                    if !ids.contains(&id) {
                        ids.push(id);
                    }
                }
                Turn::Go => waiting.push(id),
            }
        }
        waiting.retain(|id| !ids.contains(id));
        *sweep = waiting;
        ids
    }
}
