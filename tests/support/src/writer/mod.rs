//! Log writers that produce files the way container runtimes do, and rotate them the way
//! kubelet, dockerd and logrotate do.
//!
//! - [`Format::Cri`] (containerd, CRI-O): `<RFC3339Nano> <stream> <P|F> <message>\n`; a line of
//!   16 KiB or more is written as `P` records of exactly 16 KiB *bytes* (a multi-byte UTF-8
//!   character may be cut, as containerd does) followed by an `F` record with the rest, which
//!   is empty when the length is an exact multiple (containerd's `bufio` behaviour).
//! - [`Format::Docker`] (json-file): `{"log":"…","stream":"…","time":"…"}\n`; lines of 16 KiB or
//!   more are split into `log` values without the final `\n`, then a last one with it. Splits
//!   fall on character boundaries (≤ 16 KiB): dockerd cuts at a byte and replaces the cut
//!   character with U+FFFD, which would make exact accounting of non-ASCII lines impossible.
//! - [`Format::Raw`]: the message and `\n`, never split.
//!
//! Timestamps are the wall clock in UTC in Go's `RFC3339Nano` (trailing zeros trimmed, as the
//! runtimes write them) unless [`LogWriter::set_time_style`] says otherwise.

mod json;
mod rotate;

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

pub use json::{escape_json, escape_json_into};
pub use rotate::{copytruncate, delete, gzip_file, rotate_docker, rotate_kubelet, rotate_kubelet_retiring};

use crate::time::{format_rfc3339, now_nanos, TimeStyle};

/// The runtimes split lines at 16 KiB.
pub const RUNTIME_SPLIT: usize = 16 * 1024;

/// On-disk log format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// CRI (containerd, CRI-O).
    Cri,
    /// Docker json-file.
    Docker,
    /// One message per line, nothing else.
    Raw,
}

/// Appends log lines to a file in a runtime's format. Buffered: call
/// [`flush`](LogWriter::flush) to make lines visible to a tailer. Dropping it flushes.
#[derive(Debug)]
pub struct LogWriter {
    path: PathBuf,
    format: Format,
    out: BufWriter<File>,
    split: usize,
    style: TimeStyle,
    record: Vec<u8>,
    /// The file's length once the buffer is written: where the next record starts.
    end: u64,
}

impl LogWriter {
    /// Opens `path` for appending (`O_APPEND`), creating it and its parent directories.
    pub fn create(path: impl AsRef<Path>, format: Format) -> io::Result<LogWriter> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = open_append(&path)?;
        Ok(LogWriter {
            end: file.metadata()?.len(),
            out: BufWriter::with_capacity(64 * 1024, file),
            path,
            format,
            split: RUNTIME_SPLIT,
            style: TimeStyle::GoNano,
            record: Vec::new(),
        })
    }

    /// The path written to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The format written.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Changes where long lines are split (default [`RUNTIME_SPLIT`]); at least 1.
    pub fn set_split_size(&mut self, bytes: usize) {
        self.split = bytes.max(1);
    }

    /// Changes how timestamps are written (default [`TimeStyle::GoNano`]).
    pub fn set_time_style(&mut self, style: TimeStyle) {
        self.style = style;
    }

    /// Writes `msg` as the container's `stream` (`stdout`/`stderr`) would have, stamped now.
    /// Each `\n` in `msg` ends a line, as it would for a container: `"a\nb"` is two lines.
    pub fn write_line(&mut self, stream: &str, msg: &str) -> io::Result<()> {
        self.write_line_at(now_nanos(), stream, msg)
    }

    /// [`write_line`](Self::write_line) with an explicit timestamp (Unix nanoseconds).
    pub fn write_line_at(&mut self, ts_ns: i64, stream: &str, msg: &str) -> io::Result<()> {
        let ts = format_rfc3339(ts_ns, self.style);
        for line in msg.split('\n') {
            match self.format {
                Format::Cri => self.cri(&ts, stream, line.as_bytes())?,
                Format::Docker => self.docker(&ts, stream, line)?,
                Format::Raw => {
                    self.put(line.as_bytes())?;
                    self.put(b"\n")?;
                }
            }
        }
        Ok(())
    }

    /// Writes bytes as they are: torn lines, garbage, a missing final newline.
    pub fn write_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.put(bytes)
    }

    /// Where the next record will start in the file (its length once the buffer is written), as
    /// long as only this writer appends to it.
    pub fn position(&self) -> u64 {
        self.end
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.end += bytes.len() as u64;
        Ok(())
    }

    /// Writes buffered lines to the file.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Flushes and `fsync`s.
    pub fn sync(&mut self) -> io::Result<()> {
        self.out.flush()?;
        self.out.get_ref().sync_data()
    }

    /// Flushes and opens `path` again (creating it): what a runtime does after its log was
    /// renamed.
    pub fn reopen(&mut self) -> io::Result<()> {
        self.out.flush()?;
        let file = open_append(&self.path)?;
        self.end = file.metadata()?.len();
        self.out = BufWriter::with_capacity(64 * 1024, file);
        Ok(())
    }

    /// Flushes, rotates like kubelet ([`rotate_kubelet`]) and reopens. Returns the rotated path.
    pub fn rotate_kubelet(&mut self) -> io::Result<PathBuf> {
        self.out.flush()?;
        let rotated = rotate_kubelet(&self.path)?;
        self.reopen()?;
        Ok(rotated)
    }

    /// Flushes, rotates like kubelet's log manager ([`rotate_kubelet_retiring`]: older files gzipped,
    /// at most `max_files` kept) and reopens. Returns the rotated path.
    pub fn rotate_kubelet_retiring(&mut self, max_files: usize) -> io::Result<PathBuf> {
        self.out.flush()?;
        let rotated = rotate_kubelet_retiring(&self.path, max_files)?;
        self.reopen()?;
        Ok(rotated)
    }

    /// Flushes, rotates like dockerd ([`rotate_docker`]) and reopens. Returns the `.1` path.
    pub fn rotate_docker(&mut self) -> io::Result<PathBuf> {
        self.out.flush()?;
        let rotated = rotate_docker(&self.path)?;
        self.reopen()?;
        Ok(rotated)
    }

    /// Flushes and does a logrotate `copytruncate` ([`copytruncate`]); keeps writing through
    /// the same descriptor, at the new end of the file. Returns the `.1` path.
    pub fn copytruncate(&mut self) -> io::Result<PathBuf> {
        self.out.flush()?;
        let copy = copytruncate(&self.path)?;
        self.end = 0;
        Ok(copy)
    }

    /// Flushes and unlinks the file; later writes go to the unlinked inode.
    pub fn delete(&mut self) -> io::Result<()> {
        self.out.flush()?;
        delete(&self.path)
    }

    fn cri(&mut self, ts: &str, stream: &str, mut line: &[u8]) -> io::Result<()> {
        loop {
            let (tag, chunk, rest) = if line.len() >= self.split {
                ("P", &line[..self.split], &line[self.split..])
            } else {
                ("F", line, &line[line.len()..])
            };
            self.record.clear();
            self.record.extend_from_slice(ts.as_bytes());
            for part in [b" ", stream.as_bytes(), b" ", tag.as_bytes(), b" ", chunk, b"\n"] {
                self.record.extend_from_slice(part);
            }
            self.out.write_all(&self.record)?;
            self.end += self.record.len() as u64;
            if tag == "F" {
                return Ok(());
            }
            line = rest;
        }
    }

    fn docker(&mut self, ts: &str, stream: &str, mut line: &str) -> io::Result<()> {
        let mut rec = String::new();
        loop {
            let full = line.len() < self.split;
            let cut = if full {
                line.len()
            } else {
                floor_char_boundary(line, self.split)
            };
            let (chunk, rest) = line.split_at(cut);
            rec.clear();
            rec.push_str("{\"log\":\"");
            escape_json_into(chunk, &mut rec);
            if full {
                rec.push_str("\\n");
            }
            rec.push_str("\",\"stream\":\"");
            escape_json_into(stream, &mut rec);
            rec.push_str("\",\"time\":\"");
            rec.push_str(ts);
            rec.push_str("\"}\n");
            self.put(rec.as_bytes())?;
            if full {
                return Ok(());
            }
            line = rest;
        }
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        let _ = self.out.flush();
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// The largest char boundary of `s` at or below `i`, but above 0 so a split always advances
/// (a split size below 4 bytes could otherwise land inside the first character).
fn floor_char_boundary(s: &str, i: usize) -> usize {
    let mut i = i.min(s.len());
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    if i == 0 {
        s.char_indices().nth(1).map_or(s.len(), |(j, _)| j)
    } else {
        i
    }
}
