//! Directory listings kept from one scan to the next. A directory whose inode, mtime and ctime are
//! what they were when it was listed has the same entries (creating, deleting or renaming an entry
//! changes its mtime), and the same file behind each name that is not a symlink: a `stat` of the
//! directory replaces opening and reading it, and the `stat` of each of its files. On a node with
//! 10,000 idle pods that is what a periodic scan costs.
//!
//! A listing is trusted only when the directory had not changed for [`SETTLED`] when it was made:
//! a change within the file system's timestamp granularity could otherwise leave the mtime as it
//! was. An untrusted one is listed again at the next scan.

use crate::IdMap;
use std::ffi::{OsStr, OsString};
use std::fs::FileType;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long a directory must have been unchanged for its listing to be reused.
const SETTLED: Duration = Duration::from_secs(2);

/// A directory's entries, sorted by name, with their types (from the listing's `d_type`).
pub(super) type Entries = Arc<Names>;

/// Names in one buffer (one allocation per directory, not one per name: 100,000 kept names cost
/// their bytes and 8 more each), with their types.
pub(super) struct Names {
    bytes: Vec<u8>,
    /// Where each name ends in `bytes`.
    ends: Vec<u32>,
    kinds: Vec<Option<FileType>>,
}

impl Names {
    fn new(mut entries: Vec<(OsString, Option<FileType>)>) -> Names {
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let mut names = Names {
            bytes: Vec::with_capacity(entries.iter().map(|e| e.0.len()).sum()),
            ends: Vec::with_capacity(entries.len()),
            kinds: Vec::with_capacity(entries.len()),
        };
        for (name, kind) in entries {
            names.bytes.extend_from_slice(name.as_bytes());
            names.ends.push(names.bytes.len() as u32);
            names.kinds.push(kind);
        }
        names
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    fn name(&self, i: usize) -> &OsStr {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        OsStr::from_bytes(&self.bytes[start..self.ends[i] as usize])
    }

    /// The entries, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&OsStr, Option<FileType>)> {
        (0..self.len()).map(|i| (self.name(i), self.kinds[i]))
    }

    /// Where `name` is.
    fn index(&self, name: &OsStr) -> Option<usize> {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            match self.name(mid).cmp(name) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(mid),
            }
        }
        None
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Stamp {
    ino: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> Stamp {
        let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
        Stamp {
            ino: meta.ino(),
            mtime_ns: ns(meta.mtime(), meta.mtime_nsec()),
            ctime_ns: ns(meta.ctime(), meta.ctime_nsec()),
        }
    }

    /// Unchanged for SETTLED at `now`.
    fn settled(&self, now: SystemTime) -> bool {
        let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos() as i128;
        now - self.mtime_ns.max(self.ctime_ns) > SETTLED.as_nanos() as i128
    }
}

struct Listing {
    stamp: Stamp,
    trusted: bool,
    entries: Entries,
    /// (dev, inode) of the regular files found here, by their index in `entries`, while the listing
    /// holds (empty until the first is remembered; no names kept twice for 100,000 files).
    keys: Vec<Option<(u64, u64)>>,
    /// Reused in the current scan (so the keys hold too).
    reused: bool,
    /// Looked at since the last full scan began.
    seen: bool,
}

#[derive(Default)]
pub(super) struct Listings {
    /// By the directory's path as bytes: hashed and compared as bytes, not component by component
    /// as `Path` is (a tenth of a periodic scan of 20,000 directories). The walk builds every path
    /// the same way, so equal directories have equal bytes.
    dirs: IdMap<OsString, Listing>,
}

impl Listings {
    /// `dir`'s entries: the kept listing when the directory has not changed, else a new one. None
    /// when it cannot be read (gone, or not a directory).
    pub fn entries(&mut self, dir: &Path) -> Option<Entries> {
        let stamp = Stamp::of(&std::fs::metadata(dir).ok()?);
        if let Some(l) = self.dirs.get_mut(dir.as_os_str()) {
            l.seen = true;
            if l.trusted && l.stamp == stamp {
                l.reused = true;
                return Some(l.entries.clone());
            }
        }
        let now = SystemTime::now();
        let entries: Vec<(OsString, Option<FileType>)> = std::fs::read_dir(dir)
            .ok()?
            .flatten()
            .map(|e| (e.file_name(), e.file_type().ok()))
            .collect();
        let entries: Entries = Arc::new(Names::new(entries));
        let listing = Listing {
            stamp,
            trusted: stamp.settled(now),
            entries: entries.clone(),
            keys: Vec::new(),
            reused: false,
            seen: true,
        };
        self.dirs.insert(dir.as_os_str().to_owned(), listing);
        Some(entries)
    }

    /// The (dev, inode) of regular file `path` kept from an earlier scan, when its directory's listing
    /// was reused in this one.
    pub fn key(&self, path: &Path) -> Option<(u64, u64)> {
        let l = self.dirs.get(path.parent()?.as_os_str())?;
        if !l.reused {
            return None;
        }
        let i = l.entries.index(path.file_name()?)?;
        l.keys.get(i).copied()?
    }

    /// Keeps the (dev, inode) of `path`, a regular file that is no symlink in its directory's listing.
    pub fn remember(&mut self, path: &Path, key: (u64, u64)) {
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
            return;
        };
        let Some(l) = self.dirs.get_mut(dir.as_os_str()) else { return };
        let Some(i) = l.entries.index(name) else { return };
        if l.entries.kinds[i].is_some_and(|t| t.is_file()) {
            if l.keys.is_empty() {
                l.keys = vec![None; l.entries.len()];
            }
            l.keys[i] = Some(key);
        }
    }

    /// A full scan begins: what it does not look at is dropped when it ends.
    pub fn begin_full(&mut self) {
        for l in self.dirs.values_mut() {
            l.seen = false;
        }
        self.begin();
    }

    /// Any scan begins: no listing counts as reused yet.
    pub fn begin(&mut self) {
        for l in self.dirs.values_mut() {
            l.reused = false;
        }
    }

    /// A full scan ended: directories it did not reach (gone, or no longer matched) are forgotten.
    pub fn end_full(&mut self) {
        self.dirs.retain(|_, l| l.seen);
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.dirs.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ages a directory's timestamps so its listing is trusted (as if it had settled long ago).
    fn settle(dir: &Path) {
        let old = SystemTime::now() - Duration::from_secs(60);
        let f = std::fs::File::open(dir).unwrap();
        f.set_times(std::fs::FileTimes::new().set_modified(old).set_accessed(old))
            .unwrap();
    }

    #[test]
    fn a_settled_unchanged_directory_is_not_listed_again_and_a_change_is_seen() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("c");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("0.log"), b"x").unwrap();
        let mut l = Listings::default();
        l.begin_full();
        assert_eq!(l.entries(&dir).unwrap().len(), 1);
        // Just written: its mtime is too fresh to trust, so the keys are not reused.
        l.remember(&dir.join("0.log"), (1, 2));
        l.begin();
        l.entries(&dir).unwrap();
        assert_eq!(l.key(&dir.join("0.log")), None, "fresh listing trusted");
        // Settled (ctime cannot be set back, so only the mtime is aged: still too fresh by ctime).
        settle(&dir);
        l.begin();
        l.entries(&dir).unwrap();
        assert_eq!(l.key(&dir.join("0.log")), None, "a ctime within SETTLED is not trusted");
    }

    #[test]
    fn keys_are_reused_only_while_the_listing_holds() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("c");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("0.log"), b"x").unwrap();
        let mut l = Listings::default();
        // A listing made now, marked trusted as one made 60 s after the last change would be.
        l.entries(&dir).unwrap();
        l.dirs.get_mut(dir.as_os_str()).unwrap().trusted = true;
        l.remember(&dir.join("0.log"), (1, 2));
        l.begin();
        assert_eq!(l.entries(&dir).unwrap().len(), 1);
        assert_eq!(l.key(&dir.join("0.log")), Some((1, 2)), "unchanged: the key is kept");
        // A new entry changes the directory's mtime and ctime: listed again, keys forgotten.
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(dir.join("1.log"), b"y").unwrap();
        l.begin();
        assert_eq!(l.entries(&dir).unwrap().len(), 2);
        assert_eq!(l.key(&dir.join("0.log")), None);
        // A full scan that does not reach a directory forgets it.
        l.begin_full();
        l.end_full();
        assert_eq!(l.len(), 0);
    }
}
