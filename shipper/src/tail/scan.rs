//! Keeping the set of tailed files in step with the disk: new files, rotation by rename, deletion,
//! renames within the targets, and files that were rotated away while the agent was down.

use super::file::{saved_matches, State, TailedFile};
use super::Reader;
use crate::labels::StreamLabels;
use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

impl Reader {
    /// Expands the targets and reconciles: `initial` on the first scan after start.
    pub(super) fn rescan(&mut self, initial: bool) {
        let started = SystemTime::now();
        self.metrics.scans.inc();
        self.over_limit = 0;
        self.scan_dirs.clear();
        let clock = Instant::now();
        let scan = self.targets.scan();
        // What a periodic scan costs is listing the tree (opening new files is a cost of their data).
        let listing = clock.elapsed();
        let found = self.reconcile(scan, None, initial);
        self.last_look = started;
        if !self.rescan_due {
            // Everything renamed or created before the scan started is known now.
            self.tracker.looked(started);
        }
        self.pace_scans(listing);
        if std::mem::take(&mut self.net_due) {
            // The periodic round: what it found that no event reported (with polling, scans are how
            // files are found: no miss). Files born within EVENT_LATENCY may still have their event
            // on the way.
            if !self.watcher.polls() {
                self.missed += found.iter().filter(|&&id| self.born_a_while_ago(id)).count();
            }
            self.end_round();
        }
    }

    /// A round of the safety net ended: misses are counted and bring the rounds back to
    /// `rescan_interval`; a clean round spaces them further.
    pub(super) fn end_round(&mut self) {
        let missed = std::mem::take(&mut self.missed);
        if missed > 0 {
            self.metrics.missed_events.inc_by(missed as u64);
        }
        // A watcher that could not watch everything said so when it failed: its misses are expected.
        if missed > 0 && self.watcher.complete() && self.net.warn_due() {
            tracing::warn!(
                missed,
                watcher = self.watcher.mode(),
                "the safety net found changes no file event reported; they are read now, and the net runs every tail.rescan_interval again (logged at most every 10 minutes; shipper_missed_events_total counts them all)"
            );
        }
        self.net.round(missed, self.watcher.complete());
        self.metrics.rescan_interval.set(self.net.every().as_secs_f64());
    }

    /// Whether file `id` was created (or, where the file system keeps no birth time, last changed)
    /// longer than `EVENT_LATENCY` ago.
    fn born_a_while_ago(&self, id: u64) -> bool {
        let Some(meta) = self.files.get(&id).and_then(|f| f.file.metadata().ok()) else {
            return false;
        };
        let born = meta.created().or_else(|_| meta.modified());
        born.ok()
            .and_then(|b| SystemTime::now().duration_since(b).ok())
            .is_some_and(|age| age > super::EVENT_LATENCY)
    }

    /// Rescans only below the directories events named (a new pod's directory, a removed one): on a
    /// node with thousands of pods a new pod costs a listing of its own directory, not of all of them.
    pub(super) fn rescan_dirs(&mut self) {
        // Outermost first; a directory below one already scanned needs nothing more.
        let dirs = std::mem::take(&mut self.scan_dirs);
        if dirs.iter().any(|d| self.targets.holds_a_base(d)) {
            // A glob's base directory appeared or went: what to watch above it changes.
            return self.rescan(false);
        }
        let mut done: Vec<PathBuf> = Vec::new();
        for dir in dirs {
            if done.iter().any(|d| dir.starts_with(d)) {
                continue;
            }
            self.metrics.dir_scans.inc();
            let scan = self.targets.scan_under(&dir);
            let _ = self.reconcile(scan, Some(&dir), false);
            done.push(dir);
        }
    }

    /// Brings the watched directories and tailed files in step with `scan`, which covered everything
    /// (`scope` None) or only what is below `scope`. Returns the files it started tailing (new at
    /// their path).
    fn reconcile(&mut self, mut scan: crate::discover::Scan, scope: Option<&Path>, initial: bool) -> Vec<u64> {
        let in_scope = |p: &Path| scope.is_none_or(|s| p.starts_with(s));
        // A directory created just before its watch was added has entries no event will report:
        // after adding watches, scan again until no new directory turns up.
        for round in 0..8 {
            let new: Vec<PathBuf> = scan.dirs.difference(&self.watched_dirs).cloned().collect();
            // Both sets are sorted: a full scan compares them in one merge.
            let old: Vec<PathBuf> = match scope {
                None => self.watched_dirs.difference(&scan.dirs).cloned().collect(),
                Some(s) => self
                    .watched_dirs
                    .range(s.to_path_buf()..)
                    .take_while(|d| d.starts_with(s))
                    .filter(|d| !scan.dirs.contains(*d))
                    .cloned()
                    .collect(),
            };
            for dir in &old {
                self.watcher.unwatch_dir(dir);
                self.watched_dirs.remove(dir);
            }
            for dir in &new {
                self.watcher.watch_dir(dir);
            }
            self.watched_dirs.append(&mut scan.dirs);
            if new.is_empty() || self.watcher.polls() {
                break;
            }
            if round == 7 {
                // Directories keep appearing: the ones just watched may hold entries created before
                // their watch; look again on the next turn of the loop rather than lose them.
                self.rescan_due = true;
                break;
            }
            scan = match scope {
                None => self.targets.scan(),
                Some(dir) => self.targets.scan_under(dir),
            };
        }

        for (path, why) in std::mem::take(&mut scan.skipped) {
            self.skip(
                &path,
                why.reason(),
                "matched by the targets but cannot be tailed; skipped (exclude it, or fix the file)",
            );
        }
        let mut seen = HashSet::new();
        let mut started = Vec::new();
        for found in scan.files {
            let key = found.key;
            if let Some(&id) = self.by_path.get(&found.path) {
                if self.files.get(&id).is_some_and(|f| (f.dev, f.ino) == key) {
                    seen.insert(id);
                    continue;
                }
                // The path names another file now: the one we read was rotated away.
                self.retire(id, "rotated");
            }
            if let Some(&id) = self.by_inode.get(&key) {
                if let Some(f) = self.files.get_mut(&id) {
                    if f.state == State::Active {
                        // Renamed from one target path to another: same file, keep reading it.
                        self.by_path.remove(&f.path);
                        f.path = found.path.clone();
                        self.tracker.set_path(id, found.path.clone());
                        self.by_path.insert(found.path, id);
                        seen.insert(id);
                        continue;
                    }
                    // Already open as a rotated file being drained: not a new file.
                    continue;
                }
            }
            if let Some(id) = self.open(&found.path, found.target, initial) {
                seen.insert(id);
                started.push(id);
            }
        }
        let vanished: Vec<_> = self
            .by_path
            .iter()
            .filter(|(path, id)| in_scope(path) && !seen.contains(*id))
            .map(|(_, id)| *id)
            .collect();
        if self.net_due && !self.watcher.polls() {
            // The safety net's round: no event reported these renamed away or deleted.
            self.missed += vanished.len();
        }
        for id in vanished {
            self.retire(id, "gone from the targets (renamed away or deleted)");
        }
        started
    }

    /// Records what listing the targets cost and what the scan found waiting, and spaces the periodic checks so that scanning
    /// a huge tree stays a small share of a core (events still report new files at once).
    fn pace_scans(&mut self, took: std::time::Duration) {
        self.metrics.scan_seconds.set(took.as_secs_f64());
        self.metrics.waiting_files.set(self.over_limit as i64);
        self.net.scanned(took);
        if self.net.stretched_by_scans() && self.warned.insert(PathBuf::from("/rescan_interval")) {
            tracing::info!(
                files = self.files.len(),
                scan_seconds = took.as_secs_f64(),
                every_seconds = self.net.every().as_secs_f64(),
                "scanning the targets takes long: periodic scans are spaced out (new files are still noticed by events)"
            );
        }
        self.metrics.rescan_interval.set(self.net.every().as_secs_f64());
    }

    /// Opens the file at a tailed path and starts tailing it. None when it cannot be opened (logged
    /// once per path).
    pub(super) fn open(&mut self, path: &Path, target: usize, initial: bool) -> Option<u64> {
        if self.files.len() >= self.cfg.max_open_files {
            self.over_limit += 1;
            if self.warned.insert(PathBuf::from("/max_open_files")) {
                tracing::warn!(
                    limit = self.cfg.max_open_files,
                    "tail.max_open_files reached; further files wait until others are closed"
                );
            }
            return None;
        }
        // Any file renamed away from `path` after this moment is newer than the one we open now.
        let opening_at = SystemTime::now();
        let file = match super::file::open_for_tailing(path) {
            Ok(f) => f,
            Err(e) => {
                if e.kind() != std::io::ErrorKind::NotFound {
                    let why = format!("cannot open a file matched by the targets ({e}); it is skipped until it can be opened (check permissions)");
                    self.skip(path, "unreadable", &why);
                }
                return None;
            }
        };
        // The file may have been replaced since the scan listed it: what counts is the open one.
        let Ok(meta) = file.metadata() else { return None };
        if !meta.is_file() {
            return None;
        }
        self.warned.remove(path);
        if initial {
            return Some(self.start(path, file, &meta, target, true, State::Active));
        }
        // Files rotated away from `path` that we never saw are read first, oldest first; if the file
        // just opened was itself rotated away meanwhile, it is read in its turn and newer ones after it.
        let siblings = self.rotated_siblings(path, Some((meta.dev(), meta.ino())));
        let rotated = siblings.reference_rotated;
        self.read_rotated(path, target, siblings.older);
        self.opened_at.insert(path.to_path_buf(), opening_at);
        let state = if rotated {
            self.metrics.rotations.inc();
            State::Gone { since: Instant::now() }
        } else {
            State::Active
        };
        let id = self.start(path, file, &meta, target, false, state);
        if rotated {
            self.drain(id);
            // Whatever is at `path` now is newer still: the next scan opens it.
            self.rescan_due = true;
        }
        self.read_rotated(path, target, siblings.newer);
        Some(id)
    }

    /// Starts tailing an open file, labelled with `path`, at its saved position or where a new file
    /// starts.
    pub(super) fn start(
        &mut self,
        path: &Path,
        file: std::fs::File,
        meta: &std::fs::Metadata,
        target: usize,
        initial: bool,
        state: State,
    ) -> u64 {
        if let Some(&id) = self.by_inode.get(&(meta.dev(), meta.ino())) {
            // Already tailed (reached again under another name): one reader per file.
            return id;
        }
        // A file a reload detached resumes where it was; others at their saved position, or where a
        // new file starts.
        let reattached = self.reattach(&file, meta);
        let saved = match reattached {
            Some(_) => None,
            None => {
                let written = self.saved_written;
                self.saved.iter().position(|s| saved_matches(&file, meta, s, written))
            }
        };
        let offset = match (reattached, saved) {
            (Some((_, offset, _)), _) => offset,
            (None, Some(i)) => {
                let s = self.saved.swap_remove(i);
                if s.offset > meta.len() {
                    tracing::info!(file = %path.display(), saved = s.offset, size = meta.len(),
                        "file is shorter than its saved position (truncated while we were down); reading from the start");
                    0
                } else {
                    s.offset
                }
            }
            (None, None) => self.start_offset(initial, path, meta),
        };
        let id = match reattached {
            Some((id, ..)) => id,
            None => {
                self.next_id += 1;
                self.next_id - 1
            }
        };
        let (labels, pod) = self.file_labels(target, path).unwrap_or_else(|| {
            // Dropped by a relabel rule between the scan and this open (its pod changed): labelled
            // from its path alone until the next scan lets it go.
            let labels = StreamLabels::new(&std::collections::BTreeMap::from([(
                "filename".to_string(),
                path.display().to_string(),
            )]));
            (Arc::new(labels), None)
        });
        let mut f = TailedFile::new(
            id,
            path.to_path_buf(),
            file,
            meta,
            offset,
            self.targets.format(target),
            self.cfg.max_line_size.0 as usize,
            labels,
        );
        f.state = state;
        f.seq = self.next_seq;
        self.next_seq += 1;
        if state != State::Active {
            self.gone.insert(id);
            // A rotated file is older than whatever is at its path now: that one is read after it.
            if let Some(active) = self.by_path.get(path).and_then(|a| self.files.get_mut(a)) {
                active.seq = self.next_seq;
                self.next_seq += 1;
            }
        }
        f.target = target;
        f.pod = pod;
        f.stages = self
            .targets
            .pipeline(target)
            .map(|p| crate::process::pipeline::FileStages::new(p.clone()));
        f.counters = self.metrics.file_counters(path);
        // The first read asks for what is there (up to read_buffer_size); later ones adapt.
        let pending = meta.len().saturating_sub(offset) as usize;
        f.read_size = pending
            .next_power_of_two()
            .max(super::file::MIN_READ)
            .min(self.cfg.read_buffer_size.0 as usize);
        tracing::info!(file = %path.display(), offset, size = meta.len(), ino = meta.ino(), "tailing file");
        match reattached {
            // Its checkpoint entry stayed while it was detached (lines of it may be in flight).
            Some((_, _, truncated)) => self.tracker.update(id, f.identity(), truncated.then_some(0)),
            None => self.tracker.open(id, f.identity(), offset),
        }
        self.watcher.watch_file(path, meta);
        self.by_inode.insert((f.dev, f.ino), id);
        if state == State::Active {
            self.by_path.insert(path.to_path_buf(), id);
        }
        self.files.insert(id, f);
        self.ready.insert(id);
        self.metrics.open_files.set(self.files.len() as i64);
        id
    }

    /// A matched path that cannot be tailed: counted each time it is found, logged once.
    fn skip(&mut self, path: &Path, reason: &'static str, why: &str) {
        if self.warned.insert(path.to_path_buf()) {
            self.metrics
                .skipped_files
                .get_or_create(&crate::metrics::ReasonLabel { reason: reason.into() })
                .inc();
            tracing::warn!(file = %path.display(), reason, "{why}");
        }
    }

    /// The labels of a file of `target` at `path` — the client's external labels, the target's (path,
    /// pod metadata, its own) and `filename`, with its structured metadata — and its pod's uid.
    /// None when a relabel rule drops the file (a file found dropped is not opened; an open one
    /// keeps its labels until the next scan lets it go).
    pub(super) fn file_labels(&self, target: usize, path: &Path) -> Option<(Arc<StreamLabels>, Option<String>)> {
        let info = self.targets.describe(target, path)?;
        let mut labels = self.external_labels.clone();
        labels.extend(info.labels);
        labels.insert("filename".into(), path.display().to_string());
        // The `stream` label comes on top: leave room for it.
        let mut limits = self.targets.label_limits().clone();
        limits.max_label_names_per_series = limits.max_label_names_per_series.saturating_sub(1).max(1);
        let fitted = crate::process::labels::fit(&mut labels, &limits, None);
        if fitted != Default::default() {
            self.metrics.add_label_fits(fitted);
            tracing::warn!(file = %path.display(), dropped = fitted.dropped, cut = fitted.cut,
                "the file's labels break label_limits (Loki would refuse them): labels dropped or cut to fit");
        }
        let labels = Arc::new(StreamLabels::new(&labels).with_metadata(&info.metadata));
        Some((labels, info.pod))
    }

    /// Pod metadata arrived or changed: the open files of those pods get their new labels for the
    /// lines read from now on; a rescan picks up files that became eligible (a docker container's
    /// pod arrived) and lets go of excluded ones.
    pub(super) fn apply_pod_changes(&mut self) {
        let Some(changes) = self.targets.pod_changes() else {
            return;
        };
        let ids: Vec<_> = self
            .files
            .values()
            .filter(|f| f.state == State::Active)
            .filter(|f| f.pod.as_ref().is_some_and(|p| changes.pods.contains(p)))
            .map(|f| (f.id, f.target, f.path.clone()))
            .collect();
        for (id, target, path) in ids {
            let Some((labels, _)) = self.file_labels(target, &path) else {
                continue;
            };
            if let Some(f) = self.files.get_mut(&id) {
                tracing::debug!(file = %path.display(), labels = %labels.for_kind(crate::parse::StreamKind::Unknown), "labels updated from pod metadata");
                f.labels = labels;
            }
        }
        self.rescan_due |= changes.rescan;
    }

    /// The file is no longer reached through its path: read what it has now (before any successor at
    /// the same path, so lines keep their order), then keep it until it is drained and acknowledged.
    pub(super) fn retire(&mut self, id: u64, why: &str) {
        let Some(f) = self.files.get_mut(&id) else {
            return;
        };
        if f.state != State::Active {
            return;
        }
        f.state = State::Gone { since: Instant::now() };
        self.gone.insert(id);
        // It may have grown since its last read came back empty: only a new empty read proves it is
        // read out (its successor waits for that).
        f.eof = false;
        if self.by_path.get(&f.path) == Some(&id) {
            self.by_path.remove(&f.path);
        }
        tracing::info!(file = %f.path.display(), reason = why, "file went away; reading it to its end");
        self.metrics.rotations.inc();
        self.drain(id);
    }
}
