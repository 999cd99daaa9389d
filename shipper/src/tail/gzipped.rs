//! Saved files kubelet compressed while the agent was down. kubelet gzips every rotated file but the
//! newest (`0.log.20261125-101500` becomes `0.log.20261125-101500.gz`, the original removed), so an
//! agent that was down for two rotations, or that had fallen behind when it stopped, finds the file
//! it had not finished only compressed. Its lines are still there: the `.gz` whose content begins
//! with the saved file's first bytes (its fingerprint) is that file, and the rest is read from it.

use crate::checkpoint::SavedFile;
use std::fs::File;
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};

/// What became of a saved file that is gone under every plain name.
pub(super) enum Compressed {
    /// Its `.gz`, inflated: the rest is to be read.
    Inflated(Inflated),
    /// Its `.gz` holds no more than was read already (the saved offset is its size).
    ReadToEnd(PathBuf),
    /// No `.gz` holds it.
    NotFound,
}

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
pub(super) fn find(saved: &SavedFile, scratch: &Path) -> Compressed {
    if saved.ident.fp_len == 0 {
        return Compressed::NotFound;
    }
    let (Some(dir), Some(name)) = (saved.ident.path.parent(), saved.ident.path.file_name()) else {
        return Compressed::NotFound;
    };
    let prefix = format!("{}.", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Compressed::NotFound;
    };
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
        if inflated_size(&gz) == Some(saved.offset) {
            return Compressed::ReadToEnd(gz);
        }
        return match inflate(&gz, scratch) {
            Ok((file, meta)) => Compressed::Inflated(Inflated { file, meta, gz }),
            Err(e) => {
                tracing::warn!(file = %gz.display(), scratch = %scratch.display(), error = %e,
                    "cannot inflate a compressed rotated file that holds lines not read yet (is the positions \
                     directory writable, with room for it?)");
                Compressed::NotFound
            }
        };
    }
    Compressed::NotFound
}

/// The size of what `gz` holds, from its trailer (gzip's ISIZE: the size modulo 2^32, so only
/// below 4 GiB, and of a single-member file as kubelet writes them).
fn inflated_size(gz: &Path) -> Option<u64> {
    use std::io::SeekFrom;
    let mut file = File::open(gz).ok()?;
    let len = file.seek(SeekFrom::End(0)).ok()?;
    let mut trailer = [0u8; 4];
    file.seek(SeekFrom::Start(len.checked_sub(4)?)).ok()?;
    file.read_exact(&mut trailer).ok()?;
    let size = u64::from(u32::from_le_bytes(trailer));
    (len < 1 << 32).then_some(size)
}

/// The `.gz` files next to the tailed `path` (but those in `skip`) whose first line a runtime wrote
/// after `horizon` (the last look the positions stand for): kubelet created, rotated and compressed
/// them while no positions named them, so as far as the agent knows nothing of them was read. Each
/// is inflated whole into `scratch`, oldest first by name. Only CRI files (kubelet compresses those):
/// their lines begin with the runtime's RFC 3339 timestamp.
pub(super) fn written_since(
    path: &Path,
    horizon: std::time::SystemTime,
    skip: &std::collections::HashSet<PathBuf>,
    scratch: &Path,
) -> Vec<Inflated> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Vec::new();
    };
    let prefix = format!("{}.", name.to_string_lossy());
    let horizon_ns = horizon
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64);
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let fname = entry.file_name();
        let fname = fname.to_string_lossy();
        let gz = entry.path();
        if !fname.starts_with(&prefix) || !fname.ends_with(".gz") || skip.contains(&gz) {
            continue;
        }
        if !first_line_after(&gz, horizon_ns) {
            continue;
        }
        match inflate(&gz, scratch) {
            Ok((file, meta)) => found.push(Inflated { file, meta, gz }),
            Err(e) => tracing::warn!(file = %gz.display(), scratch = %scratch.display(), error = %e,
                "cannot inflate a compressed rotated file that holds lines not read yet (is the positions \
                 directory writable, with room for it?)"),
        }
    }
    found
}

/// Whether the first line of `gz` (CRI: `<RFC 3339 time> <stream> <P|F> ...`) was written after
/// `ns` (Unix nanoseconds).
fn first_line_after(gz: &Path, ns: i64) -> bool {
    let Ok(file) = File::open(gz) else { return false };
    let mut head = Vec::with_capacity(64);
    let decoder = flate2::read::MultiGzDecoder::new(std::io::BufReader::new(file));
    if decoder.take(64).read_to_end(&mut head).is_err() {
        return false;
    }
    let time = head.split(|&b| b == b' ').next().unwrap_or_default();
    crate::parse::timestamp::parse_rfc3339(time).is_some_and(|t| t > ns)
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
        let super::Compressed::Inflated(found) = find(&s, scratch.path()) else { panic!("not inflated") };
        assert_eq!(found.gz, logs.path().join("0.log.20261125-101510.gz"));
        assert_eq!(found.meta.len(), ours.len() as u64);
        let mut content = Vec::new();
        let mut file = found.file;
        file.read_to_end(&mut content).unwrap();
        assert_eq!(content, ours);
        // Unnamed: nothing is left in the scratch directory.
        assert_eq!(std::fs::read_dir(scratch.path()).unwrap().count(), 0);
        // Read to its end already: not inflated again.
        let s = saved(logs.path().join("0.log"), &ours, 1024, ours.len() as u64);
        assert!(matches!(find(&s, scratch.path()), super::Compressed::ReadToEnd(_)));
    }

    #[test]
    fn compressed_files_first_written_after_the_horizon_are_inflated_and_older_ones_are_not() {
        let logs = tempfile::tempdir().unwrap();
        let scratch = tempfile::tempdir().unwrap();
        let old = b"2026-11-25T10:14:59.999999999Z stdout F old\n".repeat(10);
        let new = b"2026-11-25T10:15:01.5Z stdout F new\n".repeat(10);
        gzip(&logs.path().join("0.log.20261125-101500.gz"), &old);
        gzip(&logs.path().join("0.log.20261125-101502.gz"), &new);
        gzip(
            &logs.path().join("0.log.20261125-101503.gz"),
            b"{\"log\":\"docker json\\n\"}\n",
        );
        gzip(&logs.path().join("0.log.20261125-101504.gz"), &new);
        let horizon = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_795_601_700); // 10:15:00Z
        let skip = std::collections::HashSet::from([logs.path().join("0.log.20261125-101504.gz")]);
        let found = super::written_since(&logs.path().join("0.log"), horizon, &skip, scratch.path());
        let names: Vec<_> = found.iter().map(|f| f.gz.file_name().unwrap().to_owned()).collect();
        assert_eq!(names, ["0.log.20261125-101502.gz"]);
        assert_eq!(found[0].meta.len(), new.len() as u64);
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
        let not_found = |s: SavedFile| matches!(find(&s, scratch.path()), super::Compressed::NotFound);
        assert!(not_found(saved(logs.path().join("0.log"), &ours, 1024, 0)));
        assert!(not_found(saved(logs.path().join("0.log"), &ours, 0, 0)));
        std::fs::write(logs.path().join("0.log.20261125-101510.gz"), b"not gzip at all").unwrap();
        assert!(not_found(saved(logs.path().join("0.log"), &ours, 1024, 0)));
    }
}
