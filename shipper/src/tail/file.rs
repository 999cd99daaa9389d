//! One tailed file: its open descriptor, identity (dev, inode, fingerprint), read state and parser.

use crate::checkpoint::{FileIdentity, SavedFile};
use crate::labels::StreamLabels;
use crate::parse::{FileParser, Format, Framer};
use crate::ring::FileId;
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

/// The smallest read (bytes); files that fill their reads double it up to `tail.read_buffer_size`.
pub(super) const MIN_READ: usize = 4 << 10;

/// How many leading bytes identify a file's content (to tell a reused inode from the file we knew).
pub const FP_MAX: u32 = 1024;

/// Hash of the first `len` bytes of a file (FNV-1a 64; collisions only matter for same-inode files).
pub fn fingerprint(file: &File, len: u32) -> Option<u64> {
    let mut buf = vec![0u8; len as usize];
    file.read_exact_at(&mut buf, 0).ok()?;
    Some(fingerprint_of(&buf))
}

/// The fingerprint of a file that begins with `head` (its first `head.len()` bytes).
pub fn fingerprint_of(head: &[u8]) -> u64 {
    head.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Reached through its path.
    Active,
    /// Rotated away, renamed out of the targets or deleted: read to the end, then closed once every
    /// line of it is acknowledged (the open descriptor keeps the data readable meanwhile).
    Gone { since: Instant },
}

pub struct TailedFile {
    pub id: FileId,
    pub path: PathBuf,
    pub file: File,
    pub dev: u64,
    pub ino: u64,
    pub fp_len: u32,
    pub fp: u64,
    pub framer: Framer,
    pub parser: FileParser,
    pub labels: Arc<StreamLabels>,
    /// The commit offset of the last chunk sent to the ring.
    pub commit_offset: u64,
    pub state: State,
    /// The last read returned no data.
    pub eof: bool,
    /// When an event last reported a write to it (None: never). The safety net counts unread data
    /// as missed only in a file no event has named for a while: a busy file's latest event may
    /// still be on its way (the eBPF thread drains at most once per sweep gap).
    pub last_event: Option<std::time::Instant>,
    /// Bytes to ask for in the next read (adapts to how fast the file grows).
    pub read_size: usize,
    /// Its metric series.
    pub counters: crate::metrics::FileCounters,
    /// The target that found it (its labels are computed again when its pod's metadata changes).
    pub target: usize,
    /// The uid of its pod, for container logs.
    pub pod: Option<String>,
    /// The commit offset the parser gave last (the stages may hold the file's below it).
    pub parser_commit: u64,
    /// Its pipeline stages' state, when its target has stages.
    pub stages: Option<crate::process::pipeline::FileStages>,
    /// Its place among the files of its stream (same `path`), oldest lowest: a file is read only
    /// once the rotated files before it are read to their end, so lines keep their order even when
    /// reading was paused (Loki down) across several rotations.
    pub seq: u64,
    /// An inflated copy of a file kubelet compressed (see `gzipped`): the (dev, inode) of that file,
    /// which the positions keep naming, so a restart looks for it (and finds its `.gz`) as it would
    /// for the file itself, and a loss is reported under its name.
    pub stands_for: Option<(u64, u64)>,
}

impl TailedFile {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: FileId,
        path: PathBuf,
        file: File,
        meta: &std::fs::Metadata,
        offset: u64,
        format: Format,
        max_line_size: usize,
        labels: Arc<StreamLabels>,
    ) -> Self {
        let mut f = TailedFile {
            id,
            path,
            file,
            dev: meta.dev(),
            ino: meta.ino(),
            fp_len: 0,
            fp: 0,
            // A record is a line plus its CRI/docker framing; leave room for that framing.
            framer: Framer::new(offset, max_line_size.saturating_add(64 << 10)),
            parser: FileParser::new(format, max_line_size),
            labels,
            commit_offset: offset,
            state: State::Active,
            eof: false,
            last_event: None,
            read_size: MIN_READ,
            counters: Default::default(),
            target: 0,
            pod: None,
            seq: 0,
            stages: None,
            parser_commit: offset,
            stands_for: None,
        };
        f.refresh_fingerprint(meta.size());
        f
    }

    pub fn identity(&self) -> FileIdentity {
        let (dev, ino) = self.stands_for.unwrap_or((self.dev, self.ino));
        FileIdentity {
            path: self.path.clone(),
            dev,
            ino,
            fp_len: self.fp_len,
            fp: self.fp,
        }
    }

    /// Grows the fingerprint while the file is shorter than `FP_MAX`. True when it changed.
    pub fn refresh_fingerprint(&mut self, size: u64) -> bool {
        let want = size.min(FP_MAX as u64) as u32;
        if want <= self.fp_len {
            return false;
        }
        match fingerprint(&self.file, want) {
            Some(fp) => {
                self.fp_len = want;
                self.fp = fp;
                true
            }
            None => false,
        }
    }
}

/// Whether a saved position belongs to this very file: same (dev, inode) and same first bytes, so a
/// reused inode number is not mistaken for the file we knew. A file saved while empty has no first
/// bytes to compare: it is not a file born after the positions were `written` (every file they name
/// was open then, so its inode number could not be taken before), such as the `0.log` that got the
/// number once kubelet compressed or removed the saved file. Where the filesystem keeps no birth
/// time, the inode decides alone.
pub fn saved_matches(file: &File, meta: &std::fs::Metadata, saved: &SavedFile, written: Option<SystemTime>) -> bool {
    let born_after = match (meta.created(), written) {
        (Ok(born), Some(written)) => born > written,
        _ => false,
    };
    saved.ident.dev == meta.dev()
        && saved.ident.ino == meta.ino()
        && if saved.ident.fp_len == 0 {
            !born_after
        } else {
            fingerprint(file, saved.ident.fp_len) == Some(saved.ident.fp)
        }
}

/// Opens a log file for reading without updating its access time (`O_NOATIME`): every read of a file
/// that is being written would otherwise dirty its inode again. The kernel allows that flag only to
/// the file's owner (or CAP_FOWNER); for other files it opens normally.
pub fn open_for_tailing(path: &std::path::Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOATIME)
        .open(path)
    {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => File::open(path),
        other => other,
    }
}
