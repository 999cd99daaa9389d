//! The positions of the agent this one replaces (Promtail's, Alloy's), taken over at the first
//! start: each file whose size still reaches the saved offset resumes there, identified as the agent
//! identifies its own files (dev, inode, fingerprint of the first bytes), so a cutover ships each
//! file's unread rest and nothing twice.

use super::file::{fingerprint, FP_MAX};
use crate::checkpoint::{FileIdentity, SavedFile};
use crate::config::ImportFrom;
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The files to resume. Never fails: without a usable file nothing is imported and every file
/// starts as `tail.start_at` says; the log says which.
pub fn import_positions(from: &ImportFrom) -> Vec<SavedFile> {
    let (agent, path) = match from {
        ImportFrom::Promtail(p) => ("promtail", p),
        ImportFrom::Alloy(p) => ("alloy", p),
    };
    let entries = match read_entries(path) {
        Ok(entries) => entries,
        Err(e) => {
            tracing::warn!(file = %path.display(), agent, error = %e,
                "positions.import_from: nothing imported; every file starts as tail.start_at says");
            return Vec::new();
        }
    };
    // Alloy keeps a path once per label set: the lowest offset (duplicates, never a loss).
    let mut lowest: BTreeMap<PathBuf, u64> = BTreeMap::new();
    for (file, offset) in entries {
        let o = lowest.entry(file).or_insert(offset);
        *o = (*o).min(offset);
    }
    let (mut files, mut gone, mut shorter) = (Vec::new(), 0, 0);
    for (file, offset) in lowest {
        match resume(&file, offset) {
            Resume::At(saved) => files.push(saved),
            Resume::Gone => gone += 1,
            Resume::Shorter(size) => {
                shorter += 1;
                tracing::info!(file = %file.display(), offset, size,
                    "positions.import_from: the file is shorter than the saved offset (rotated or truncated since); it starts as tail.start_at says");
            }
        }
    }
    tracing::info!(file = %path.display(), agent, imported = files.len(), gone, shorter,
        "positions imported from the agent this one replaces: its files resume where it stopped");
    files
}

enum Resume {
    At(SavedFile),
    Gone,
    Shorter(u64),
}

fn resume(path: &Path, offset: u64) -> Resume {
    let Ok(file) = std::fs::File::open(path) else {
        return Resume::Gone;
    };
    let Ok(meta) = file.metadata() else {
        return Resume::Gone;
    };
    if !meta.is_file() {
        return Resume::Gone;
    }
    if meta.size() < offset {
        return Resume::Shorter(meta.size());
    }
    let fp_len = meta.size().min(FP_MAX as u64) as u32;
    let Some(fp) = fingerprint(&file, fp_len) else {
        return Resume::Gone;
    };
    Resume::At(SavedFile {
        ident: FileIdentity {
            path: path.to_path_buf(),
            dev: meta.dev(),
            ino: meta.ino(),
            fp_len,
            fp,
        },
        offset,
    })
}

/// (path, offset) of each file the positions file holds: Promtail's keys are paths, Alloy's
/// `{path, labels}`; the offsets are strings of digits. Journal cursors are left out.
fn read_entries(path: &Path) -> Result<Vec<(PathBuf, u64)>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).map_err(|e| e.to_string())?;
    let Some(positions) = doc.get("positions") else {
        return Err("no `positions:` map in it: is it Promtail's or Alloy's positions file?".into());
    };
    let Some(map) = positions.as_mapping() else {
        // An agent that never saved a file writes `positions: {}` or nothing under it.
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for (key, value) in map {
        let file = key.as_str().or_else(|| key.get("path").and_then(|p| p.as_str()));
        let offset = value
            .as_str()
            .and_then(|v| v.parse::<u64>().ok())
            .or_else(|| value.as_u64());
        match (file, offset) {
            (Some(f), Some(o)) if f.starts_with('/') => out.push((PathBuf::from(f), o)),
            // `journal-…` and `cursor-…` keys hold journal cursors, not files.
            (Some(f), _) if f.starts_with("journal-") || f.starts_with("cursor-") => {}
            _ => tracing::warn!(file = %path.display(), entry = ?key, offset = ?value,
                "positions.import_from: an entry that names no file and offset is left out"),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_promtail_and_alloy_positions_and_leaves_journal_cursors_out() {
        let dir = tempfile::tempdir().unwrap();
        let promtail = dir.path().join("positions.yaml");
        std::fs::write(
            &promtail,
            "positions:\n  /var/log/pods/a/c/0.log: \"1234\"\n  journal-systemd: s=abc;i=1\n",
        )
        .unwrap();
        assert_eq!(
            read_entries(&promtail).unwrap(),
            [(PathBuf::from("/var/log/pods/a/c/0.log"), 1234)]
        );
        let alloy = dir.path().join("positions.yml");
        std::fs::write(
            &alloy,
            "positions:\n  ? path: /var/log/pods/a/c/0.log\n    labels: '{job=\"a\"}'\n  : \"77\"\n",
        )
        .unwrap();
        assert_eq!(
            read_entries(&alloy).unwrap(),
            [(PathBuf::from("/var/log/pods/a/c/0.log"), 77)]
        );
        std::fs::write(&alloy, "positions:\n").unwrap();
        assert!(read_entries(&alloy).unwrap().is_empty());
        std::fs::write(&alloy, "files: []\n").unwrap();
        assert!(read_entries(&alloy).is_err());
    }

    #[test]
    fn a_file_shorter_than_its_offset_is_not_resumed() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("0.log");
        std::fs::write(&log, "0123456789").unwrap();
        assert!(matches!(resume(&log, 4), Resume::At(s) if s.offset == 4 && s.ident.fp_len == 10));
        assert!(matches!(resume(&log, 11), Resume::Shorter(10)));
        assert!(matches!(resume(&dir.path().join("none"), 1), Resume::Gone));
    }
}
