//! The positions file: acknowledged offsets per file, written atomically (temp file, fsync, rename,
//! fsync of the directory) so a crash at any moment leaves either the old or the new version.
//!
//! Files are identified by (dev, inode) plus a fingerprint of their first bytes, not by path alone: after
//! a rotation the path names another file, and an inode number can be reused by a new file.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Who a file is: where it was last seen, its (dev, inode), and a hash of its first `fp_len` bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileIdentity {
    pub path: PathBuf,
    pub dev: u64,
    pub ino: u64,
    pub fp_len: u32,
    pub fp: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedFile {
    #[serde(flatten)]
    pub ident: FileIdentity,
    pub offset: u64,
}

#[derive(Serialize, Deserialize)]
struct OnDisk {
    version: u32,
    saved_at_unix_ms: u64,
    files: Vec<SavedFile>,
    /// Where the journal was read up to (acknowledged); absent in files written without a journal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    journal_cursor: Option<String>,
}

/// What `save` writes: `OnDisk`, borrowed.
#[derive(Serialize)]
struct ToDisk<'a> {
    version: u32,
    saved_at_unix_ms: u64,
    files: &'a [SavedFile],
    #[serde(skip_serializing_if = "Option::is_none")]
    journal_cursor: Option<&'a str>,
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
        let saved_at_unix_ms = saved_at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        // Serialized straight into the file from the caller's slice: no copy of the files and no
        // whole-body buffer (thousands of files make these a few MiB each write).
        let body = ToDisk {
            version: 1,
            saved_at_unix_ms,
            files,
            journal_cursor,
        };
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        std::fs::create_dir_all(dir)?;
        let tmp = path.with_extension("tmp");
        {
            let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
            serde_json::to_writer_pretty(&mut f, &body).map_err(std::io::Error::other)?;
            f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        }
        // The version being replaced becomes the backup (a second name for the same inode, so a
        // crash at any point leaves a complete positions file under `path`).
        let bak = backup_of(path);
        let bak_tmp = bak.with_extension("bak.tmp");
        let _ = std::fs::remove_file(&bak_tmp);
        if std::fs::hard_link(path, &bak_tmp).is_ok() {
            std::fs::rename(&bak_tmp, &bak)?;
        }
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    }
}

/// Why a positions file could not be used.
#[derive(Debug)]
enum Unusable {
    Missing,
    Unreadable(std::io::Error),
    Corrupt(serde_json::Error),
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
    /// The positions in a positions file's bytes.
    pub fn parse(text: &[u8]) -> Result<Positions, serde_json::Error> {
        let d: OnDisk = serde_json::from_slice(text)?;
        Ok(Positions {
            files: d.files,
            saved_at: UNIX_EPOCH.checked_add(Duration::from_millis(d.saved_at_unix_ms)),
            journal_cursor: d.journal_cursor,
            written: None,
        })
    }
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

        // Backup corrupt too: no positions, but the time the file was written is known.
        std::fs::write(&p, b"\0\0\0").unwrap();
        std::fs::write(backup_of(&p), b"not json").unwrap();
        let written = mtime(&p);
        let loaded = Positions::load(&p);
        assert!(loaded.files.is_empty());
        assert_eq!(loaded.saved_at, written, "corrupt file still tells when it was written");
    }
}
