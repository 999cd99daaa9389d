//! Saved files kubelet compressed while the agent was down. kubelet gzips every rotated file but the
//! newest (`0.log.20261125-101500` becomes `0.log.20261125-101500.gz`, the original removed), so an
//! agent that was down for two rotations, or that had fallen behind when it stopped, finds the file
//! it had not finished only compressed. Its lines are still there: the `.gz` whose content begins
//! with the saved file's first bytes (its fingerprint) is that file, and the rest is read from it.

use crate::checkpoint::SavedFile;
use std::fs::File;
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};

/// A saved file found compressed: its content, inflated into an unnamed file, and where it was.
pub(super) struct Inflated {
    pub file: File,
    pub meta: std::fs::Metadata,
    pub gz: PathBuf,
}

/// Looks next to the saved file's tailed path for a `<name>.<suffix>.gz` holding it, and inflates it
/// whole into an unnamed file in `scratch` (the positions' directory: the log directories are
/// mounted read-only) — a byte-for-byte copy of the file as it was, so the saved offset and
/// fingerprint hold for it. The copy is freed when the agent closes it (read to its end and every
/// line acknowledged), or dies. None when no `.gz` holds it (or the saved file was empty when saved:
/// nothing tells which one would).
pub(super) fn find(saved: &SavedFile, scratch: &Path) -> Option<Inflated> {
    if saved.ident.fp_len == 0 {
        return None;
    }
    let (dir, name) = (saved.ident.path.parent()?, saved.ident.path.file_name()?);
    let prefix = format!("{}.", name.to_string_lossy());
    let entries = std::fs::read_dir(dir).ok()?;
    for entry in entries.flatten() {
        let fname = entry.file_name();
        let fname = fname.to_string_lossy();
        if !fname.starts_with(&prefix) || !fname.ends_with(".gz") {
            continue;
        }
        let gz = entry.path();
        if !begins_with(&gz, saved) {
            continue;
        }
        return match inflate(&gz, scratch) {
            Ok((file, meta)) => Some(Inflated { file, meta, gz }),
            Err(e) => {
                tracing::warn!(file = %gz.display(), scratch = %scratch.display(), error = %e,
                    "cannot inflate a compressed rotated file that holds lines not read yet (is the positions \
                     directory writable, with room for it?)");
                None
            }
        };
    }
    None
}

/// Whether the content of `gz` begins with the saved file's first bytes.
fn begins_with(gz: &Path, saved: &SavedFile) -> bool {
    let Ok(file) = File::open(gz) else { return false };
    let mut head = vec![0u8; saved.ident.fp_len as usize];
    let mut decoder = flate2::read::MultiGzDecoder::new(std::io::BufReader::new(file));
    decoder.read_exact(&mut head).is_ok() && super::file::fingerprint_of(&head) == saved.ident.fp
}

/// Inflates `gz` into an unnamed file in `dir` (removed when closed) and returns it, rewound.
fn inflate(gz: &Path, dir: &Path) -> std::io::Result<(File, std::fs::Metadata)> {
    let mut out = unnamed_file(dir)?;
    let mut decoder = flate2::read::MultiGzDecoder::new(std::io::BufReader::new(File::open(gz)?));
    std::io::copy(&mut decoder, &mut out)?;
    out.rewind()?;
    let meta = out.metadata()?;
    Ok((out, meta))
}

/// A file with no name in `dir` (`O_TMPFILE`), or, where the filesystem has no such thing, one
/// created and unlinked at once.
fn unnamed_file(dir: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmpfile = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_TMPFILE)
        .open(dir);
    match tmpfile {
        Ok(f) => Ok(f),
        Err(_) => {
            let path = dir.join(format!(".shipper-inflate-{}", std::process::id()));
            let f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)?;
            std::fs::remove_file(&path)?;
            Ok(f)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::find;
    use crate::checkpoint::{FileIdentity, SavedFile};
    use std::io::{Read, Write};

    fn gzip(path: &std::path::Path, content: &[u8]) {
        let out = std::fs::File::create(path).unwrap();
        let mut enc = flate2::write::GzEncoder::new(out, flate2::Compression::default());
        enc.write_all(content).unwrap();
        enc.finish().unwrap();
    }

    fn saved(path: std::path::PathBuf, content: &[u8], fp_len: u32, offset: u64) -> SavedFile {
        SavedFile {
            ident: FileIdentity {
                path,
                dev: 1,
                ino: 2,
                fp_len,
                fp: crate::tail::file::fingerprint_of(&content[..fp_len as usize]),
            },
            offset,
        }
    }

    #[test]
    fn the_gz_that_begins_with_the_saved_bytes_is_inflated_whole() {
        let logs = tempfile::tempdir().unwrap();
        let scratch = tempfile::tempdir().unwrap();
        let ours: Vec<u8> = (0..5_000).flat_map(|i| format!("line {i}\n").into_bytes()).collect();
        let other: Vec<u8> = (0..5_000).flat_map(|i| format!("other {i}\n").into_bytes()).collect();
        gzip(&logs.path().join("0.log.20261125-101500.gz"), &other);
        gzip(&logs.path().join("0.log.20261125-101510.gz"), &ours);
        gzip(&logs.path().join("1.log.20261125-101510.gz"), &ours);
        let s = saved(logs.path().join("0.log"), &ours, 1024, 300);
        let found = find(&s, scratch.path()).expect("found");
        assert_eq!(found.gz, logs.path().join("0.log.20261125-101510.gz"));
        assert_eq!(found.meta.len(), ours.len() as u64);
        let mut content = Vec::new();
        let mut file = found.file;
        file.read_to_end(&mut content).unwrap();
        assert_eq!(content, ours);
        // Unnamed: nothing is left in the scratch directory.
        assert_eq!(std::fs::read_dir(scratch.path()).unwrap().count(), 0);
    }

    #[test]
    fn nothing_is_found_for_another_content_an_empty_saved_file_or_a_broken_gz() {
        let logs = tempfile::tempdir().unwrap();
        let scratch = tempfile::tempdir().unwrap();
        let ours = b"2026-11-25T10:15:00Z stdout F ours\n".repeat(100);
        gzip(
            &logs.path().join("0.log.20261125-101500.gz"),
            b"something else entirely\n",
        );
        assert!(find(&saved(logs.path().join("0.log"), &ours, 1024, 0), scratch.path()).is_none());
        assert!(find(&saved(logs.path().join("0.log"), &ours, 0, 0), scratch.path()).is_none());
        std::fs::write(logs.path().join("0.log.20261125-101510.gz"), b"not gzip at all").unwrap();
        assert!(find(&saved(logs.path().join("0.log"), &ours, 1024, 0), scratch.path()).is_none());
    }
}
