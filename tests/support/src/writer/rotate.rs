//! File rotation the way kubelet, dockerd and logrotate do it, on plain paths.
//!
//! These functions work on paths only; a [`LogWriter`](super::LogWriter) has methods of the
//! same names that flush, rotate and reopen its own file.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use crate::time::{kubelet_suffix, now_nanos};

/// kubelet's rotation: renames `0.log` to `0.log.<YYYYMMDD-hhmmss>` (UTC; `.1`, `.2`, … appended
/// when that name exists, e.g. two rotations within a second) and creates a fresh empty
/// file at `path`, as the runtime does when kubelet asks it to reopen the log. Returns the
/// rotated path.
pub fn rotate_kubelet(path: impl AsRef<Path>) -> io::Result<PathBuf> {
    let path = path.as_ref();
    let base = with_suffix(path, &kubelet_suffix(now_nanos()));
    // Within one second: `.1`, `.2`, … after the highest used so far (compressed or removed ones
    // included as far as they are still there), so names keep their order.
    let base_name = base.file_name().unwrap_or_default().to_string_lossy().into_owned();
    let mut used: Option<u64> = None;
    if let Some(dir) = path.parent() {
        for e in fs::read_dir(dir)?.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            let Some(rest) = n.strip_prefix(&base_name) else { continue };
            let rest = rest.trim_end_matches(".gz");
            let k = if rest.is_empty() {
                Some(0)
            } else {
                rest.strip_prefix('.').and_then(|r| r.parse().ok())
            };
            used = used.max(k);
        }
    }
    let target = match used {
        None => base,
        Some(k) => with_suffix(&base, &(k + 1).to_string()),
    };
    fs::rename(path, &target)?;
    create_empty(path)?;
    Ok(target)
}

/// kubelet's whole rotation of a container log, as its log manager does it when `0.log` outgrows
/// `containerLogMaxSize` (`rotateLog` in kubelet's `container_log_manager.go`): removes the oldest
/// rotated files so that at most `max_files` remain with the new one, gzips every rotated file left
/// ([`gzip_file`]: the original is removed), then rotates like [`rotate_kubelet`]. The newest rotated
/// file is thus the only one readable under its name, until the next rotation. Returns the rotated
/// path.
pub fn rotate_kubelet_retiring(path: impl AsRef<Path>, max_files: usize) -> io::Result<PathBuf> {
    let path = path.as_ref();
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "no file name"));
    };
    let prefix = format!("{}.", name.to_string_lossy());
    // Oldest first: by timestamp, then by the `.N` added within one second.
    let mut rotated: Vec<((String, u64), PathBuf)> = fs::read_dir(dir)?
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            let suffix = n.strip_prefix(&prefix)?.trim_end_matches(".gz").to_string();
            let (ts, n) = suffix.split_once('.').unwrap_or((&suffix, "0"));
            Some(((ts.to_string(), n.parse().unwrap_or(0)), e.path()))
        })
        .collect();
    rotated.sort();
    let keep = max_files.saturating_sub(2);
    let excess = rotated.len().saturating_sub(keep);
    for (_, old) in rotated.drain(..excess) {
        fs::remove_file(old)?;
    }
    for (_, p) in &rotated {
        if p.extension().is_none_or(|e| e != "gz") {
            gzip_file(p)?;
        }
    }
    rotate_kubelet(path)
}

/// dockerd's json-file rotation: shifts `x-json.log.N` to `.N+1` (highest first), renames
/// `x-json.log` to `x-json.log.1` and creates a fresh empty file at `path`. Returns the path
/// of `.1`.
pub fn rotate_docker(path: impl AsRef<Path>) -> io::Result<PathBuf> {
    let path = path.as_ref();
    shift_numbered(path)?;
    let first = with_suffix(path, "1");
    fs::rename(path, &first)?;
    create_empty(path)?;
    Ok(first)
}

/// logrotate's `copytruncate`: shifts numbered copies like [`rotate_docker`], copies the file
/// to `path.1`, then truncates `path` in place. The inode stays; a writer holding the file open
/// with `O_APPEND` continues at the new end (offset 0). Lines written between the copy and
/// the truncation are lost, exactly as with logrotate. Returns the path of `.1`.
pub fn copytruncate(path: impl AsRef<Path>) -> io::Result<PathBuf> {
    let path = path.as_ref();
    shift_numbered(path)?;
    let first = with_suffix(path, "1");
    fs::copy(path, &first)?;
    OpenOptions::new().write(true).open(path)?.set_len(0)?;
    Ok(first)
}

/// Removes the file (a writer holding it open keeps writing to the unlinked inode, which a
/// tailer holding it open can still read).
pub fn delete(path: impl AsRef<Path>) -> io::Result<()> {
    let path = path.as_ref();
    fs::remove_file(path)
}

/// gzip-compresses a rotated file to `<path>.gz` and removes the original, as kubelet does
/// with all but the newest rotated file. Returns the `.gz` path.
pub fn gzip_file(path: impl AsRef<Path>) -> io::Result<PathBuf> {
    let path = path.as_ref();
    let target = with_suffix(path, "gz");
    // As kubelet's `compressLog`: into `<name>.tmp`, renamed to `<name>.gz` once complete, then the
    // original is removed.
    let tmp = with_suffix(path, "tmp");
    let mut input = File::open(path)?;
    let output = File::create(&tmp)?;
    let mut enc = flate2::write::GzEncoder::new(output, flate2::Compression::default());
    io::copy(&mut input, &mut enc)?;
    enc.finish()?.sync_all()?;
    fs::rename(&tmp, &target)?;
    fs::remove_file(path)?;
    Ok(target)
}

/// `path` with `.suffix` appended to its file name.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".");
    name.push(suffix);
    PathBuf::from(name)
}

/// Renames `path.N` to `path.N+1` for every existing N, highest first.
fn shift_numbered(path: &Path) -> io::Result<()> {
    let mut highest = 0;
    while with_suffix(path, &(highest + 1).to_string()).symlink_metadata().is_ok() {
        highest += 1;
    }
    for n in (1..=highest).rev() {
        fs::rename(
            with_suffix(path, &n.to_string()),
            with_suffix(path, &(n + 1).to_string()),
        )?;
    }
    Ok(())
}

fn create_empty(path: &Path) -> io::Result<()> {
    OpenOptions::new().create(true).append(true).open(path).map(drop)
}
