//! The positions file: acknowledged offsets per file. A whole version (a snapshot) is written
//! atomically (temp file, fsync, rename, fsync of the directory) so a crash at any moment leaves
//! either the old or the new version; between snapshots the changes are appended to it (see
//! [`super::format`] and [`super::log`]).
//!
//! Files are identified by (dev, inode) plus a fingerprint of their first bytes, not by path alone: after
//! a rotation the path names another file, and an inode number can be reused by a new file.

use super::format::MAGIC;
pub use super::format::{FileIdentity, SavedFile};
use serde::Deserialize;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The positions of earlier versions: one JSON document.
#[derive(Deserialize)]
struct JsonV1 {
    saved_at_unix_ms: u64,
    files: Vec<SavedFile>,
    #[serde(default)]
    journal_cursor: Option<String>,
}

/// Positions as loaded at start.
#[derive(Debug, Default)]
pub struct Positions {
    pub files: Vec<SavedFile>,
    /// When they were last saved; None on a first start (no positions file).
    pub saved_at: Option<SystemTime>,
    /// The journal cursor of the last acknowledged journal entry (`journal:` in the config).
    pub journal_cursor: Option<String>,
    /// When the file they were loaded from was written (its mtime): every file it names was open
    /// then, so a file born later that has a saved file's inode number is not that file.
    pub written: Option<SystemTime>,
}

impl Positions {
    /// Loads the positions file. Never fails: a missing file is a first start. An unreadable or
    /// corrupt one is moved aside (`<name>.corrupt`) and logged; the previous version (`<name>.bak`,
    /// kept by every save) is used instead — its offsets are older, so lines after them are shipped
    /// again (duplicates, never loss). Without a usable backup the agent starts with no positions but
    /// remembers when the file was written, so files changed since then are read from their
    /// beginning.
    pub fn load(path: &Path) -> Positions {
        match read(path) {
            Ok(p) => p,
            Err(Unusable::Missing) => Positions::default(),
            Err(Unusable::Unreadable(e)) => {
                tracing::warn!(file = %path.display(), error = %e,
                    "cannot read the positions file (check its permissions); trying its backup");
                Positions::fallback(path, mtime(path))
            }
            Err(Unusable::Corrupt(e)) => {
                let written = mtime(path);
                let aside = path.with_extension("corrupt");
                let moved = std::fs::rename(path, &aside);
                tracing::error!(file = %path.display(), error = %e, moved_to = %aside.display(),
                    moved_ok = moved.is_ok(), "positions file is corrupt; trying its backup");
                Positions::fallback(path, written)
            }
        }
    }

    /// The backup, or no positions, remembering when the unusable file was `written`.
    fn fallback(path: &Path, written: Option<SystemTime>) -> Positions {
        let bak = backup_of(path);
        match read(&bak) {
            Ok(p) => {
                tracing::warn!(file = %bak.display(), files = p.files.len(),
                    "positions recovered from the backup; lines after its offsets are shipped again");
                p
            }
            Err(e) => {
                tracing::warn!(file = %bak.display(), error = ?e,
                    "no usable positions backup either: files changed since the positions file was last written are read from their beginning");
                Positions {
                    files: Vec::new(),
                    saved_at: Some(written.unwrap_or(UNIX_EPOCH)),
                    journal_cursor: None,
                    written: None,
                }
            }
        }
    }

    /// Writes the positions (and the journal's acknowledged cursor, if any) atomically. `saved_at`:
    /// the agent had seen every file renamed or written before it (a restart looks for files renamed
    /// or written since).
    pub fn save(
        path: &Path,
        files: &[SavedFile],
        journal_cursor: Option<&str>,
        saved_at: SystemTime,
    ) -> std::io::Result<()> {
        let slots = files.iter().enumerate().map(|(slot, f)| (slot as u32, f));
        let body = super::format::snapshot(slots, unix_ms(saved_at), journal_cursor);
        replace(path, &body).map(drop)
    }
}

/// Puts `body` at `path` atomically; the version it replaces becomes the backup. Returns the file,
/// open for writing at its end.
pub(super) fn replace(path: &Path, body: &[u8]) -> std::io::Result<std::fs::File> {
    use std::io::Write;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(body)?;
    f.sync_all()?;
    // The version being replaced becomes the backup (a second name for the same inode, so a crash
    // at any point leaves a complete positions file under `path`).
    let bak = backup_of(path);
    let bak_tmp = bak.with_extension("bak.tmp");
    let _ = std::fs::remove_file(&bak_tmp);
    if std::fs::hard_link(path, &bak_tmp).is_ok() {
        std::fs::rename(&bak_tmp, &bak)?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(f)
}

/// Milliseconds since the epoch (0 before it).
pub(super) fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Why a positions file could not be used.
#[derive(Debug)]
enum Unusable {
    Missing,
    Unreadable(std::io::Error),
    Corrupt(String),
}

fn read(path: &Path) -> Result<Positions, Unusable> {
    let text = std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Unusable::Missing,
        _ => Unusable::Unreadable(e),
    })?;
    let mut positions = Positions::parse(&text).map_err(Unusable::Corrupt)?;
    positions.written = mtime(path);
    Ok(positions)
}

impl Positions {
    /// The positions in a positions file's bytes (this version's log of records, or the JSON
    /// document of earlier versions).
    pub fn parse(text: &[u8]) -> Result<Positions, String> {
        let (mut files, saved_at_unix_ms, journal_cursor) = if text.starts_with(MAGIC) {
            let state = super::format::decode(text)?;
            if state.unused_tail > 0 {
                tracing::warn!(records = state.records, unused_bytes = state.unused_tail,
                    "the positions file ends in a torn or damaged record (a crash while writing): the state before it is used");
            }
            (
                state.files.into_values().collect(),
                state.saved_at_unix_ms,
                state.journal_cursor,
            )
        } else {
            let d: JsonV1 = serde_json::from_slice(text).map_err(|e| e.to_string())?;
            (d.files, d.saved_at_unix_ms, d.journal_cursor)
        };
        sort(&mut files);
        Ok(Positions {
            files,
            saved_at: UNIX_EPOCH.checked_add(Duration::from_millis(saved_at_unix_ms)),
            journal_cursor,
            written: None,
        })
    }
}

impl Positions {
    /// A positions file as JSON for a human (`shipper positions`); Err: why it cannot be read.
    pub fn show(path: &Path) -> Result<String, String> {
        let p = Positions::parse(&std::fs::read(path).map_err(|e| e.to_string())?)?;
        let json = serde_json::json!({
            "saved_at_unix_ms": p.saved_at.map_or(0, unix_ms),
            "files": p.files,
            "journal_cursor": p.journal_cursor,
        });
        serde_json::to_string_pretty(&json).map_err(|e| e.to_string())
    }
}

/// In the order of their paths' bytes (then inode): the same order for sibling files, and a tenth
/// of the cost of comparing components (profiled: with 1,000 files, sorting by components took
/// 14 % of a busy node's CPU).
pub(super) fn sort(files: &mut [SavedFile]) {
    files.sort_unstable_by(|a, b| order(a).cmp(&order(b)));
}

/// The key of [`sort`].
pub(super) fn order(f: &SavedFile) -> (&[u8], u64) {
    (f.ident.path.as_os_str().as_bytes(), f.ident.ino)
}

/// `positions.json` → `positions.json.bak`.
fn backup_of(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".bak");
    path.with_file_name(name)
}

fn mtime(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/positions.json");
        assert!(Positions::load(&p).saved_at.is_none());
        let files = vec![SavedFile {
            ident: FileIdentity {
                path: "/var/log/a.log".into(),
                dev: 2049,
                ino: 42,
                fp_len: 1024,
                fp: 0xdead_beef,
            },
            offset: 12345,
        }];
        Positions::save(&p, &files, None, SystemTime::now()).unwrap();
        let loaded = Positions::load(&p);
        assert_eq!(loaded.files, files);
        assert!(loaded.saved_at.is_some());

        // Truncated by a full disk or a bad block: the previous version is used.
        let newer = vec![SavedFile {
            offset: 99_999,
            ..files[0].clone()
        }];
        Positions::save(&p, &newer, Some("s=1;i=2"), SystemTime::now()).unwrap();
        assert_eq!(Positions::load(&p).files, newer);
        assert_eq!(Positions::load(&p).journal_cursor.as_deref(), Some("s=1;i=2"));
        std::fs::write(&p, b"{\"version\":1,\"files\":[{\"pa").unwrap();
        let loaded = Positions::load(&p);
        assert_eq!(loaded.files, files, "the backup's (older) offsets");
        assert_eq!(loaded.journal_cursor, None, "the backup was written without a journal");
        assert!(p.with_extension("corrupt").exists(), "corrupt file kept for inspection");
        assert!(!p.exists());

        // The JSON an earlier version wrote loads as it was (an upgrade keeps its positions).
        std::fs::write(
            &p,
            br#"{
  "version": 1,
  "saved_at_unix_ms": 1765000000000,
  "files": [
    {"path": "/var/log/a.log", "dev": 2049, "ino": 42, "fp_len": 1024, "fp": 3735928559, "offset": 777}
  ],
  "journal_cursor": "s=1;i=9"
}"#,
        )
        .unwrap();
        let loaded = Positions::load(&p);
        assert_eq!(
            loaded.files,
            [SavedFile {
                offset: 777,
                ..files[0].clone()
            }]
        );
        assert_eq!(loaded.journal_cursor.as_deref(), Some("s=1;i=9"));
        assert_eq!(loaded.saved_at, Some(UNIX_EPOCH + Duration::from_millis(1765000000000)));

        // Backup corrupt too: no positions, but the time the file was written is known.
        std::fs::write(&p, b"\0\0\0").unwrap();
        std::fs::write(backup_of(&p), b"not json").unwrap();
        let written = mtime(&p);
        let loaded = Positions::load(&p);
        assert!(loaded.files.is_empty());
        assert_eq!(loaded.saved_at, written, "corrupt file still tells when it was written");
    }
}
