//! The positions file: acknowledged offsets per file, written atomically (temp file, fsync, rename,
//! fsync of the directory) so a crash at any moment leaves either the old or the new version.
//!
//! Files are identified by (dev, inode) plus a fingerprint of their first bytes, not by path alone: after
//! a rotation the path names another file, and an inode number can be reused by a new file.

use serde::{Deserialize, Serialize};
use std::io::Write;
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
}

/// Positions as loaded at start.
#[derive(Debug, Default)]
pub struct Positions {
    pub files: Vec<SavedFile>,
    /// When they were last saved; None on a first start (no positions file).
    pub saved_at: Option<SystemTime>,
}

impl Positions {
    /// Loads the positions file. Never fails: a missing file is a first start; an unreadable or corrupt
    /// one is moved aside (`<name>.corrupt`), logged, and treated as saved at its modification time, so
    /// files changed since then are read from their beginning (duplicates, never loss).
    pub fn load(path: &Path) -> Positions {
        let text = match std::fs::read(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Positions::default(),
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e,
                    "cannot read the positions file; files changed since its last write are read from the beginning");
                return Positions {
                    files: Vec::new(),
                    saved_at: Some(mtime(path).unwrap_or(UNIX_EPOCH)),
                };
            }
        };
        match serde_json::from_slice::<OnDisk>(&text) {
            Ok(d) => Positions {
                files: d.files,
                saved_at: Some(UNIX_EPOCH + Duration::from_millis(d.saved_at_unix_ms)),
            },
            Err(e) => {
                let saved_at = mtime(path).unwrap_or(UNIX_EPOCH);
                let aside = path.with_extension("corrupt");
                let moved = std::fs::rename(path, &aside);
                tracing::error!(file = %path.display(), error = %e, moved_to = %aside.display(),
                    moved_ok = moved.is_ok(),
                    "positions file is corrupt; starting without it: files changed since its last write are read from the beginning");
                Positions {
                    files: Vec::new(),
                    saved_at: Some(saved_at),
                }
            }
        }
    }

    /// Writes the positions atomically.
    pub fn save(path: &Path, files: &[SavedFile]) -> std::io::Result<()> {
        let saved_at_unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let body = serde_json::to_vec_pretty(&OnDisk {
            version: 1,
            saved_at_unix_ms,
            files: files.to_vec(),
        })
        .map_err(std::io::Error::other)?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        std::fs::create_dir_all(dir)?;
        let tmp = path.with_extension("tmp");
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&body)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    }
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
        Positions::save(&p, &files).unwrap();
        let loaded = Positions::load(&p);
        assert_eq!(loaded.files, files);
        assert!(loaded.saved_at.is_some());

        std::fs::write(&p, b"{\"version\":1,\"files\":[{\"pa").unwrap();
        let loaded = Positions::load(&p);
        assert!(loaded.files.is_empty());
        assert!(
            loaded.saved_at.is_some(),
            "corrupt file still tells when it was written"
        );
        assert!(p.with_extension("corrupt").exists(), "corrupt file kept for inspection");
        assert!(!p.exists());
    }
}
