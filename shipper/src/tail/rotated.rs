//! Files rotated away from a tailed name: followed after a rename, found when they were created and
//! rotated away between two looks, and recovered after a restart — always read oldest first, so a
//! stream's lines keep their order across rotations.

use super::file::{saved_matches, State};
use super::Reader;
use std::cmp::Reverse;
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How far a file's ctime may lag the wall clock (the kernel stamps it from a clock that advances
/// once per tick, 1–10 ms), with room to spare.
const CTIME_SLACK: Duration = Duration::from_millis(50);

/// Rotated siblings of a tailed path we never read, split around a reference file (the one being
/// opened at the path, or the one tailed there) when that file was itself rotated away.
pub(super) struct Siblings {
    /// Rotated before the reference file (all of them when it was not rotated).
    pub older: Vec<Rotated>,
    /// The reference file was found under a rotated name.
    pub reference_rotated: bool,
    /// Rotated after the reference file.
    pub newer: Vec<Rotated>,
}

/// A file we read to its end and closed: when, which (dev, inode), and its fingerprint (an inode
/// number is reused by new files once we let go of it).
pub(super) struct Closed {
    pub at: Instant,
    pub key: (u64, u64),
    pub fp_len: u32,
    pub fp: u64,
}

/// A file found at a restart, to be opened as rotated away from its tailed path.
struct Found {
    /// Its place among the rotated files of its stream.
    order: Age,
    /// Where it was found (a rotated name, or a `.gz`).
    name: PathBuf,
    target: usize,
    file: std::fs::File,
    meta: std::fs::Metadata,
    /// Its saved entry, for the offset (an inflated copy's own dev and inode, so it matches).
    saved: crate::checkpoint::SavedFile,
    how: How,
}

/// How a file found at a restart was found.
enum How {
    /// Under a rotated name, by inode.
    Rotated,
    /// Compressed: an inflated copy of the saved file with this (dev, inode).
    Inflated { stands_for: (u64, u64) },
    /// Compressed, and no positions named it: an inflated copy, read whole.
    InflatedUnnamed,
}

/// A rotated file found by name: where it was seen and which file it was (dev, inode).
pub(super) struct Rotated {
    path: PathBuf,
    key: (u64, u64),
}

impl Reader {
    /// After a restart: saved files no longer reachable by the targets (rotated away while we were
    /// down, e.g. `0.log` renamed to `0.log.20261125-101500`) are looked up by inode in their directory,
    /// or by their first bytes among the `.gz` files there (kubelet compressed them, see `gzipped`),
    /// and read to their end, oldest first; then the files rotated away since the positions were saved
    /// that we do not know (several rotations while we were down), next to every saved or tailed
    /// path, are read, oldest first — all before the file now at the path, so kubelet's rotation
    /// during downtime loses nothing and keeps the stream in order.
    ///
    /// Returns the files it opened, to be read (oldest first) once the positions know them: an agent
    /// killed while it reads them (a slow one, with many) leaves positions that name every one, so
    /// the next finds them again, compressed or not.
    #[must_use]
    pub(super) fn recover_rotated(&mut self) -> Vec<crate::ring::FileId> {
        let saved = std::mem::take(&mut self.saved);
        let mut opened = Vec::new();
        // Each path once, in a stable order (a node may have thousands).
        let mut paths: std::collections::BTreeMap<PathBuf, usize> = Default::default();
        let mut found = Vec::new();
        let mut gone = Vec::new();
        // `.gz` files of saved files that hold nothing more to read.
        let mut inflated_read = std::collections::HashSet::new();
        for s in saved {
            let Some(target) = self.targets.target_of(&s.ident.path) else {
                continue;
            };
            paths.entry(s.ident.path.clone()).or_insert(target);
            // Still at its path: the first scan opened it at its saved offset (and took it from
            // `saved`, so this is a second entry of the same file). A tailed file that only reuses its
            // inode number (kubelet gzipped or removed the saved file, a new `0.log` got the number) is
            // not it: the saved one is looked for below, and reported when it is gone.
            let tailed = self
                .by_inode
                .get(&(s.ident.dev, s.ident.ino))
                .and_then(|id| self.files.get(id));
            if tailed.is_some_and(|f| {
                f.file
                    .metadata()
                    .is_ok_and(|m| saved_matches(&f.file, &m, &s, self.saved_written))
            }) {
                continue;
            }
            let (Some(dir), Some(name)) = (s.ident.path.parent(), s.ident.path.file_name()) else {
                continue;
            };
            let prefix = format!("{}.", name.to_string_lossy());
            let Ok(entries) = std::fs::read_dir(dir) else {
                // Its directory is gone too (a pod deleted while we were down).
                gone.push(s);
                continue;
            };
            let before = found.len();
            for entry in entries.flatten() {
                let candidate = entry.path();
                // Not rotated away: a file at a tailed path is the scan's (a new `0.log` created since
                // the scan may have the saved file's inode number, and a saved file met empty has no
                // first bytes to tell them apart).
                if candidate == s.ident.path || self.by_path.contains_key(&candidate) {
                    continue;
                }
                let Ok(meta) = std::fs::metadata(&candidate) else {
                    continue;
                };
                if meta.ino() != s.ident.ino || meta.dev() != s.ident.dev {
                    continue;
                }
                let Ok(file) = super::file::open_for_tailing(&candidate) else { break };
                let Ok(meta) = file.metadata() else { break };
                if !saved_matches(&file, &meta, &s, self.saved_written) {
                    break;
                }
                found.push(Found {
                    order: age_of(&prefix, &candidate, &meta),
                    name: candidate,
                    target,
                    file,
                    meta,
                    saved: s.clone(),
                    how: How::Rotated,
                });
                break;
            }
            if found.len() != before {
                continue;
            }
            match super::gzipped::find(&s, &self.scratch) {
                super::gzipped::Compressed::ReadToEnd(gz) => {
                    tracing::debug!(file = %gz.display(), was = %s.ident.path.display(),
                        "a file read to its end was compressed while we were down");
                    inflated_read.insert(gz);
                }
                super::gzipped::Compressed::Inflated(inflated) => {
                    // The copy stands for the saved file: same bytes, so the same offset and
                    // fingerprint; the positions keep the saved file's (dev, inode), so a restart
                    // while it is read finds the `.gz` again.
                    let stands_for = (s.ident.dev, s.ident.ino);
                    let mut saved = s;
                    (saved.ident.dev, saved.ident.ino) = (inflated.meta.dev(), inflated.meta.ino());
                    found.push(Found {
                        order: age_of(&prefix, &inflated.gz, &inflated.meta),
                        name: inflated.gz,
                        target,
                        file: inflated.file,
                        meta: inflated.meta,
                        saved,
                        how: How::Inflated { stands_for },
                    });
                }
                super::gzipped::Compressed::NotFound => gone.push(s),
            }
        }
        self.report_gone(&gone);
        if let Some(saved_at) = self.saved_at {
            // Compressed files no positions named: written only after the last positions (their first
            // line is younger), so nothing of them is acknowledged as far as we know.
            let mut inflated = inflated_read;
            inflated.extend(
                found
                    .iter()
                    .filter(|f| !matches!(f.how, How::Rotated))
                    .map(|f| f.name.clone()),
            );
            let horizon = saved_at + crate::checkpoint::LOOK_MARGIN;
            for (path, &target) in &paths {
                let prefix = format!("{}.", path.file_name().unwrap_or_default().to_string_lossy());
                for copy in super::gzipped::written_since(path, horizon, &inflated, &self.scratch) {
                    let fp_len = copy.meta.len().min(super::file::FP_MAX as u64) as u32;
                    let s = crate::checkpoint::SavedFile {
                        ident: crate::checkpoint::FileIdentity {
                            path: path.clone(),
                            dev: copy.meta.dev(),
                            ino: copy.meta.ino(),
                            fp_len,
                            fp: super::file::fingerprint(&copy.file, fp_len).unwrap_or(0),
                        },
                        offset: 0,
                    };
                    found.push(Found {
                        order: age_of(&prefix, &copy.gz, &copy.meta),
                        name: copy.gz,
                        target,
                        file: copy.file,
                        meta: copy.meta,
                        saved: s,
                        how: How::InflatedUnnamed,
                    });
                }
            }
        }
        found.sort_by(|a, b| a.order.cmp(&b.order));
        for Found {
            name,
            target,
            file,
            meta,
            saved: s,
            how,
            ..
        } in found
        {
            let what = match how {
                How::Rotated => "found a file rotated away while we were down; reading it to its end",
                How::Inflated { .. } => {
                    "kubelet compressed a file while we were down before it was read to its end; reading the rest \
                     from its .gz"
                }
                How::InflatedUnnamed => {
                    "kubelet rotated and compressed a file while we were down that no positions named; reading it \
                     from its .gz"
                }
            };
            if !matches!(how, How::Rotated) {
                self.metrics.files_inflated.inc();
            }
            tracing::info!(file = %name.display(), was = %s.ident.path.display(), offset = s.offset,
                size = meta.len(), "{what}");
            self.saved.push(s.clone());
            let gone = State::Gone { since: Instant::now() };
            // Labelled as the path it was tailed under, so its lines stay in the same stream.
            let id = self.start(&s.ident.path, file, &meta, target, false, gone);
            if let (How::Inflated { stands_for }, Some(f)) = (how, self.files.get_mut(&id)) {
                f.stands_for = Some(stands_for);
                self.tracker.update(id, f.identity(), None);
            }
            opened.push(id);
        }
        self.saved.clear();
        if let Some(saved_at) = self.saved_at {
            // The paths tailed now too: a file the last positions did not know yet (found since they
            // were written, or by an agent killed before its first write) may have been rotated away.
            for (path, &id) in &self.by_path {
                if let Some(f) = self.files.get(&id) {
                    paths.entry(path.clone()).or_insert(f.target);
                }
            }
            for (path, target) in paths {
                let since = saved_at.checked_sub(CTIME_SLACK).unwrap_or(UNIX_EPOCH);
                let unseen = self.siblings_since(&path, None, since).older;
                opened.extend(self.open_rotated(&path, target, unseen));
            }
        }
        opened
    }

    /// Saved files that are nowhere (deleted while we were down, e.g. kubelet removing old rotated
    /// files, or a deleted pod's directory): whatever was written to them after their saved offset
    /// cannot be read. Never silent: each is counted and named with its inode and saved offset, the
    /// first few in a warning, the rest at info level (a node back after a long downtime may have
    /// thousands).
    fn report_gone(&self, gone: &[crate::checkpoint::SavedFile]) {
        const WARNED: usize = 20;
        for (i, s) in gone.iter().enumerate() {
            let (file, ino, offset) = (s.ident.path.display(), s.ident.ino, s.offset);
            let what = "a file in the positions was deleted while the agent was down: any lines written to it \
                        after the saved offset were lost (keep more rotated files in kubelet, containerLogMaxFiles, \
                        or keep the agent's downtime shorter)";
            if i < WARNED {
                tracing::warn!(file = %file, ino, saved_offset = offset, "{what}");
            } else {
                tracing::info!(file = %file, ino, saved_offset = offset, "{what}");
            }
        }
        if gone.len() > WARNED {
            tracing::warn!(
                more = gone.len() - WARNED,
                "more files of the positions were deleted while the agent was down (each is named at info level)"
            );
        }
        self.metrics.files_deleted_while_down.inc_by(gone.len() as u64);
        if !gone.is_empty() {
            self.metrics
                .files_deleted_while_down_time
                .set(crate::unix_now_ns() as f64 / 1e9);
        }
    }

    /// Looks at files renamed away from a tailed name (rotation). Ours are retired (read to their end,
    /// then closed); files we never saw — created and rotated away between two looks — are read after
    /// them, oldest first.
    pub(super) fn follow_renamed(&mut self) {
        let renamed = std::mem::take(&mut self.renamed);
        for name in renamed.keys() {
            let Ok(meta) = std::fs::metadata(name) else { continue };
            if let Some(&id) = self.by_inode.get(&(meta.dev(), meta.ino())) {
                self.retire(id, "rotated");
            }
        }
        let origins: std::collections::BTreeSet<PathBuf> = renamed.into_values().collect();
        for origin in origins {
            let Some(target) = self.targets.target_of(&origin) else {
                continue;
            };
            // The file tailed at `origin` may have been renamed too, its event not seen yet.
            let tailed = self.by_path.get(&origin).copied();
            let reference = tailed.and_then(|id| self.files.get(&id)).map(|f| (f.dev, f.ino));
            let siblings = self.rotated_siblings(&origin, reference);
            self.read_rotated(&origin, target, siblings.older);
            if let (true, Some(id)) = (siblings.reference_rotated, tailed) {
                self.retire(id, "rotated");
            }
            self.read_rotated(&origin, target, siblings.newer);
        }
    }

    /// Files next to `path` named `<name>.<suffix>` (kubelet's `0.log.20261125-101500`, docker's
    /// `-json.log.1`) that were renamed since we last opened `path` and that we never read: they were
    /// rotated away before we saw them. Sorted oldest first and split around `reference` (dev, inode).
    pub(super) fn rotated_siblings(&self, path: &Path, reference: Option<(u64, u64)>) -> Siblings {
        let since = self.opened_at.get(path).copied().unwrap_or(self.last_look) - CTIME_SLACK;
        self.siblings_since(path, reference, since)
    }

    /// Rotated siblings of `path` renamed at or after `since` that we never read (see
    /// `rotated_siblings`).
    fn siblings_since(&self, path: &Path, reference: Option<(u64, u64)>, since: SystemTime) -> Siblings {
        let mut siblings = Siblings {
            older: Vec::new(),
            reference_rotated: false,
            newer: Vec::new(),
        };
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
            return siblings;
        };
        let prefix = format!("{}.", name.to_string_lossy());
        // Whether the reference had left `path` before the listing (so its new name is in it, unless
        // that is gone too).
        let moved_before_listing =
            reference.is_some_and(|r| std::fs::metadata(path).map_or(true, |m| (m.dev(), m.ino()) != r));
        // A listing taken while names move (docker shifting `.1` → `.2`) can miss a file: list twice
        // and keep every file seen, as the later listing saw it.
        let mut seen: HashMap<(u64, u64), (Age, PathBuf)> = HashMap::new();
        for _ in 0..2 {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return siblings;
            };
            for entry in entries.flatten() {
                let fname = entry.file_name();
                let fname = fname.to_string_lossy();
                let Some(suffix) = fname.strip_prefix(&prefix) else {
                    continue;
                };
                let Ok(meta) = entry.metadata() else { continue };
                // Not compressed ones (`.gz`: read only for a saved file, see `gzipped`), nor kubelet's
                // compressed file in the making (`<name>.tmp`, renamed to `<name>.gz` when complete).
                if suffix.ends_with(".gz") || suffix.ends_with(".tmp") || !meta.is_file() {
                    continue;
                }
                let ctime = ctime_of(&meta);
                let key = (meta.dev(), meta.ino());
                let known = self.by_inode.contains_key(&key) || self.was_closed(key, &entry.path());
                if reference == Some(key) || (ctime >= since && !known) {
                    seen.insert(key, (age(suffix, ctime), entry.path()));
                }
            }
        }
        let mut reference_at = None;
        let mut found = Vec::new();
        for (key, (order, path)) in seen {
            if reference == Some(key) {
                reference_at = Some(order);
            } else {
                found.push((order, Rotated { path, key }));
            }
        }
        found.sort_by(|a, b| a.0.cmp(&b.0));
        // The reference left `path` but is under no name listed: kubelet gzipped it (it does so two
        // rotations later) or docker removed it (the oldest goes first). Either way every rotated file
        // still listed is newer than it.
        let gone_unlisted = moved_before_listing && reference_at.is_none();
        for (order, rotated) in found {
            match &reference_at {
                Some(r) if order > *r => siblings.newer.push(rotated),
                _ if gone_unlisted => siblings.newer.push(rotated),
                _ => siblings.older.push(rotated),
            }
        }
        siblings.reference_rotated = reference_at.is_some() || gone_unlisted;
        siblings
    }

    /// Reads rotated files we never saw, in the order given, each to its end right away; their lines
    /// are labelled with the tailed `path`.
    pub(super) fn read_rotated(&mut self, path: &Path, target: usize, files: Vec<Rotated>) {
        for id in self.open_rotated(path, target, files) {
            self.drain(id);
        }
    }

    /// Opens rotated files we never saw, in the order given (see `read_rotated`); returns them.
    fn open_rotated(&mut self, path: &Path, target: usize, files: Vec<Rotated>) -> Vec<crate::ring::FileId> {
        let mut opened = Vec::new();
        for rotated in files {
            if self.by_inode.contains_key(&rotated.key) || self.was_closed(rotated.key, &rotated.path) {
                continue;
            }
            // Names move under us (docker shifts `.1` → `.2`): open by name, keep it only if it is the
            // file we listed, else look for that file again.
            let Some((file, meta, name)) = open_listed(&rotated) else {
                continue;
            };
            tracing::info!(file = %name.display(), was = %path.display(),
                ino = meta.ino(), "a file was rotated away before it was read; reading it from its start");
            self.metrics.rotations.inc();
            let gone = State::Gone { since: Instant::now() };
            opened.push(self.start(path, file, &meta, target, false, gone));
        }
        opened
    }

    /// Whether the file at `path` (dev, inode `key`) is one we read to its end and closed recently
    /// (docker renames it again, `.1` → `.2`, which looks like a fresh rotation). Its first bytes must
    /// match too: once closed, its inode number may belong to a new file already.
    fn was_closed(&self, key: (u64, u64), path: &Path) -> bool {
        // An empty file we closed tells nothing apart; reading a file again that is still empty costs
        // nothing.
        self.closed.iter().filter(|c| c.key == key && c.fp_len > 0).any(|c| {
            super::file::open_for_tailing(path)
                .ok()
                .and_then(|f| super::file::fingerprint(&f, c.fp_len))
                == Some(c.fp)
        })
    }
}

/// Where a file found next to a tailed path (named `prefix` + suffix) stands in age.
fn age_of(prefix: &str, path: &Path, meta: &std::fs::Metadata) -> Age {
    let fname = path.file_name().unwrap_or_default().to_string_lossy();
    age(fname.strip_prefix(prefix).unwrap_or(&fname), ctime_of(meta))
}

/// When a file's inode last changed (for a rotated file: when it was renamed).
fn ctime_of(meta: &std::fs::Metadata) -> SystemTime {
    UNIX_EPOCH + Duration::new(meta.ctime().max(0) as u64, meta.ctime_nsec().max(0) as u32)
}

/// Opens a listed rotated file: at the name it was seen under, or, when docker renamed it meanwhile,
/// wherever it is in the same directory now. None when it is gone.
fn open_listed(rotated: &Rotated) -> Option<(std::fs::File, std::fs::Metadata, PathBuf)> {
    let matches = |m: &std::fs::Metadata| (m.dev(), m.ino()) == rotated.key;
    for _ in 0..3 {
        if let Ok(file) = super::file::open_for_tailing(&rotated.path) {
            let meta = file.metadata().ok()?;
            if matches(&meta) {
                return Some((file, meta, rotated.path.clone()));
            }
        }
        let dir = rotated.path.parent()?;
        let moved = std::fs::read_dir(dir)
            .ok()?
            .flatten()
            .find(|e| e.metadata().is_ok_and(|m| matches(&m)))?;
        if let Ok(file) = super::file::open_for_tailing(&moved.path()) {
            let meta = file.metadata().ok()?;
            if matches(&meta) {
                return Some((file, meta, moved.path()));
            }
        }
    }
    None
}

/// Where a rotated file stands in age, oldest first. Names carry the order when they have one —
/// docker's and logrotate's `.1`, `.2` (higher is older), kubelet's `.20261125-101500` (numbers
/// compared as numbers) — and ctime settles ties (a name seen in the middle of docker's shift). Other
/// suffixes go by ctime (when the file was renamed), then name.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Age {
    Numbered(Reverse<u64>, SystemTime),
    Dated(Vec<(String, u64)>, SystemTime),
    Other(SystemTime, String),
}

fn age(suffix: &str, ctime: SystemTime) -> Age {
    if let Ok(n) = suffix.parse::<u64>() {
        return Age::Numbered(Reverse(n), ctime);
    }
    if !suffix.starts_with(|c: char| c.is_ascii_digit()) {
        return Age::Other(ctime, suffix.to_string());
    }
    let mut parts = Vec::new();
    let mut rest = suffix;
    while !rest.is_empty() {
        let text_end = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let (text, tail) = rest.split_at(text_end);
        let num_end = tail.find(|c: char| !c.is_ascii_digit()).unwrap_or(tail.len());
        let (num, tail) = tail.split_at(num_end);
        parts.push((text.to_string(), num.parse().unwrap_or(u64::MAX)));
        rest = tail;
    }
    Age::Dated(parts, ctime)
}

#[cfg(test)]
mod tests {
    use super::age;
    use std::time::{Duration, UNIX_EPOCH};

    fn sorted(names: &[(&'static str, u64)]) -> Vec<&'static str> {
        sorted_with_times(names).into_iter().map(|(s, _)| s).collect()
    }

    fn sorted_with_times(names: &[(&'static str, u64)]) -> Vec<(&'static str, u64)> {
        let mut v = names.to_vec();
        v.sort_by_key(|(s, t)| age(s, UNIX_EPOCH + Duration::from_millis(*t)));
        v
    }

    #[test]
    fn rotated_names_sort_oldest_first() {
        // Renamed in the same tick: the names decide.
        assert_eq!(
            sorted(&[("1", 5), ("10", 5), ("2", 5), ("3", 5)]),
            ["10", "3", "2", "1"]
        );
        assert_eq!(
            sorted(&[
                ("20261125-101500.10", 5),
                ("20261125-101500.2", 5),
                ("20261125-101500", 5),
                ("20261124-235959", 5)
            ]),
            [
                "20261124-235959",
                "20261125-101500",
                "20261125-101500.2",
                "20261125-101500.10"
            ]
        );
        // The same name seen before and after docker's shift: the earlier rename is older.
        assert_eq!(sorted_with_times(&[("3", 9), ("3", 4)]), [("3", 4), ("3", 9)]);
        // Names without an order: when they were renamed.
        assert_eq!(sorted(&[("old", 9), ("bak", 4)]), ["bak", "old"]);
    }
}
