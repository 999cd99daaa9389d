//! The reader's side of pipeline stages: running them on each read's entries, holding the commit
//! offset below lines a stage still holds (a multiline entry in progress), waking when such an entry
//! is due, and pausing files that a `limit` stage slows down.

use super::Reader;
use crate::process::pipeline::StageStats;
use crate::ring::FileId;
use std::time::{Duration, Instant};

impl Reader {
    /// Runs the file's stages (if any) on `entries`; returns the commit offset, held below the
    /// oldest line the stages keep for later.
    pub(super) fn run_stages(
        &mut self,
        id: FileId,
        entries: &mut Vec<crate::parse::Entry>,
        commit: u64,
        now_ns: i64,
    ) -> u64 {
        let Some(f) = self.files.get_mut(&id) else {
            return commit;
        };
        let Some(st) = f.stages.as_mut() else {
            return commit;
        };
        let now = Instant::now();
        let mut stats = StageStats::default();
        st.run(&f.labels, entries, now, now_ns, &mut stats);
        self.metrics.add_stage_stats(&stats);
        let held = st
            .oldest_offset()
            .map_or(commit, |o| commit.min(o))
            .max(f.commit_offset);
        match st.deadline() {
            Some(due) => {
                self.stages_due.insert(id, due);
            }
            None => {
                self.stages_due.remove(&id);
            }
        }
        if st.paused() {
            self.paused.insert(id, now);
        }
        held
    }

    /// Lines a stage held and whose time has come (multiline `max_wait_time`), sent on; files whose
    /// `limit` pause ended, made ready.
    pub(super) fn run_due_stages(&mut self) {
        let now = Instant::now();
        let due: Vec<FileId> = self
            .stages_due
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            self.stages_due.remove(&id);
            self.flush_stages(id, false);
        }
        // A file a `limit` stage paused is read again once the stage let every held line go.
        let resumed: Vec<FileId> = self
            .paused
            .keys()
            .filter(|id| {
                !self
                    .files
                    .get(id)
                    .and_then(|f| f.stages.as_ref())
                    .is_some_and(|s| s.paused())
            })
            .copied()
            .collect();
        for id in resumed {
            self.paused.remove(&id);
            self.ready.insert(id);
        }
    }

    /// How long until a stage needs the reader (None: nothing waits).
    pub(super) fn stages_wait(&self) -> Option<Duration> {
        let next = self.stages_due.values().min()?;
        Some(next.saturating_duration_since(Instant::now()))
    }

    /// Sends on what the file's stages hold: what is due, or everything (`all`: the file is done).
    pub(super) fn flush_stages(&mut self, id: FileId, all: bool) {
        let Some(f) = self.files.get_mut(&id) else { return };
        let Some(st) = f.stages.as_mut() else { return };
        let (now, now_ns) = (Instant::now(), crate::unix_now_ns());
        let mut stats = StageStats::default();
        let mut entries = Vec::new();
        st.flush(&f.labels, now, now_ns, &mut entries, &mut stats, all);
        self.metrics.add_stage_stats(&stats);
        // What the parser has consumed is now fully shipped, up to what the stages still hold.
        let parsed = f.parser_commit;
        let commit = st
            .oldest_offset()
            .map_or(parsed, |o| parsed.min(o))
            .max(f.commit_offset);
        match st.deadline() {
            Some(due) if !all => {
                self.stages_due.insert(id, due);
            }
            _ => {
                self.stages_due.remove(&id);
            }
        }
        f.counters.read_lines.inc_by(entries.len() as u64);
        self.ship(id, entries, commit);
    }
}
