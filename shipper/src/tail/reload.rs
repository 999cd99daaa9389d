//! Config reload on the reader's side: new targets (globs, labels, relabel rules, stages) take over
//! without losing or repeating a line of the files they keep.
//!
//! A file whose target is unchanged (same key, see `Targets::key`) is left exactly as it is: same
//! descriptor, offset, parser and stage state. A file whose target changed or went away is
//! detached: what its stages hold is shipped, its descriptor is closed, and its place is remembered
//! (the offset after the last line sent, and its checkpoint entry, which stays). When a target
//! finds it again — at once for a changed target, or at a later reload that adds it back — it is
//! picked up at that place with its new labels and stages. Files of new targets start where a
//! first start would (`tail.start_at`, or a saved position).

use super::file::State;
use super::Reader;
use crate::checkpoint::{FileIdentity, SavedFile};
use crate::config::TailConfig;
use crate::discover::Targets;
use crate::ring::FileId;
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;

/// A new configuration for the reader.
pub struct Reconfig {
    pub targets: Targets,
    pub external_labels: BTreeMap<String, String>,
    /// The new `tail` settings; `io`, `watch` and `ring_capacity` keep their values until a restart.
    pub tail: TailConfig,
}

/// A file no target reads any more (or not yet again): where to resume it.
pub(super) struct Detached {
    pub id: FileId,
    pub ident: FileIdentity,
    /// The offset after the last line sent to the ring.
    pub offset: u64,
}

impl Reader {
    /// Applies a reload: keeps the files of unchanged targets, detaches the others, and scans the
    /// new targets.
    pub(super) fn reconfigure(&mut self, r: Reconfig) {
        let mut targets = r.targets;
        targets.adopt(&self.targets);
        let old = std::mem::replace(&mut self.targets, targets);
        self.external_labels = r.external_labels;
        let (io, watch, ring) = (self.cfg.io, self.cfg.watch, self.cfg.ring_capacity);
        self.cfg = r.tail;
        (self.cfg.io, self.cfg.watch, self.cfg.ring_capacity) = (io, watch, ring);
        self.cfg.max_open_files = super::fit_open_files(self.cfg.max_open_files);
        super::show_limits(&self.metrics, &self.cfg);
        self.net
            .reset(self.cfg.rescan_interval.0, self.cfg.max_rescan_interval.0);

        let active: Vec<_> = self
            .files
            .values()
            .filter(|f| f.state == State::Active)
            .map(|f| (f.id, f.target, f.path.clone()))
            .collect();
        let (mut kept, mut detached) = (0usize, 0usize);
        for (id, target, path) in active {
            let now = self
                .targets
                .target_of(&path)
                .filter(|&t| !self.targets.dropped(t, &path));
            match now {
                Some(t) if self.targets.key(t) == old.key(target) => {
                    if let Some(f) = self.files.get_mut(&id) {
                        f.target = t;
                    }
                    kept += 1;
                }
                _ => {
                    self.detach(id);
                    detached += 1;
                }
            }
        }
        tracing::info!(
            kept,
            detached,
            "config reloaded: files of unchanged targets read on as they were; the others are picked up again by the new targets where they were left"
        );
        // Files of new or changed targets are opened as on a first start.
        self.reloading = true;
        self.rescan(true);
        self.reloading = false;
        self.prune_detached();
    }

    /// Stops reading a file without losing its place: its stages' lines are shipped, its descriptor
    /// closed, its checkpoint entry kept.
    fn detach(&mut self, id: FileId) {
        self.flush_stages(id, true);
        let Some(f) = self.files.remove(&id) else { return };
        self.ready.remove(&id);
        self.gone.remove(&id);
        self.stages_due.remove(&id);
        self.paused.remove(&id);
        if self.by_path.get(&f.path) == Some(&id) {
            self.by_path.remove(&f.path);
        }
        if self.by_inode.get(&(f.dev, f.ino)) == Some(&id) {
            self.by_inode.remove(&(f.dev, f.ino));
        }
        self.watcher.unwatch_file(f.dev, f.ino);
        self.metrics.forget_file(&f.path);
        tracing::info!(file = %f.path.display(), offset = f.commit_offset, "file detached by the reload (its target changed or was removed)");
        self.detached.push(Detached {
            id,
            ident: f.identity(),
            offset: f.commit_offset,
        });
        self.metrics.open_files.set(self.files.len() as i64);
    }

    /// A detached file opened again: its id (the checkpoint goes on) and where to resume.
    pub(super) fn reattach(&mut self, file: &std::fs::File, meta: &std::fs::Metadata) -> Option<(FileId, u64, bool)> {
        let i = self.detached.iter().position(|d| {
            let saved = SavedFile {
                ident: d.ident.clone(),
                offset: d.offset,
            };
            // Detached by a reload, never written: the inode and first bytes decide.
            super::file::saved_matches(file, meta, &saved, None)
        })?;
        let d = self.detached.swap_remove(i);
        // Truncated while detached: from the start, as a truncation seen while reading would.
        let truncated = d.offset > meta.len();
        Some((d.id, if truncated { 0 } else { d.offset }, truncated))
    }

    /// Forgets detached files that are no longer on disk under their name (deleted or rotated away
    /// while no target read them): their checkpoint entries leave the positions file.
    pub(super) fn prune_detached(&mut self) {
        let tracker = &self.tracker;
        self.detached.retain(|d| {
            let here = std::fs::metadata(&d.ident.path).is_ok_and(|m| (m.dev(), m.ino()) == (d.ident.dev, d.ident.ino));
            if !here {
                tracker.close(d.id);
            }
            here
        });
    }
}
