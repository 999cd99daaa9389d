//! parse: turn the bytes of a log file into entries (CRI, docker json-file, raw lines).
//!
//! Data flow for one file, driven by the reader:
//!
//! ```text
//! read ─► Framer::buf_mut ─► Framer::take_records ─► FileParser::push ─► Vec<Entry> + commit offset
//! ```
//!
//! - [`Framer`] (framer.rs) splits appended bytes into complete records, zero-copy, with exact
//!   file offsets, and bounds memory by cutting oversized records.
//! - [`FileParser`] (this file) picks the format (once per file when `Auto`), dispatches each
//!   record to cri.rs / docker.rs, reassembles partial lines (partial.rs), and makes every line
//!   shippable (line.rs: `max_line_size`, valid UTF-8).
//! - A record that does not parse in the file's format is shipped as a raw line stamped with
//!   "now" and counted in [`ParseStats::parse_errors`]: never dropped, never a panic.
//!
//! The commit offset returned by [`FileParser::push`] is the checkpoint position for the entries
//! returned so far: resuming there after a crash re-reads at most a line in progress (or a
//! record being cut), never starts in the middle of a record, and never skips a byte.
//!
//! The reader's loop, per file:
//!
//! ```text
//! let mut framer = Framer::new(start_offset, max_line_size + 64); // + room for the CRI/JSON header
//! let mut parser = FileParser::new(format, max_line_size);
//! parser.reset(start_offset); // the commit starts at the resume position
//! loop {
//!     read_into(framer.buf_mut(), framer.read_offset())?; // append; 0 bytes = EOF for now
//!     if let Some(records) = framer.take_records(&mut stats) { // everything complete, in one go
//!         let commit = parser.push(records, now_ns(), &mut entries, &mut stats);
//!         ship(entries.drain(..), commit);
//!     }
//! }
//! // Rotated and read to the end, or deleted: ship lines still waiting for their end.
//! let commit = parser.flush(&mut entries, &mut stats);
//! ```

mod cri;
mod docker;
mod framer;
mod json;
mod line;
mod partial;
mod scan;
pub(crate) mod timestamp;

#[cfg(any(test, feature = "fuzzing"))]
pub mod check;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use bytes::{Bytes, BytesMut};

pub use framer::{Framer, Records};

use docker::Log;
use framer::RawRecord;
pub(crate) use line::finish_line;
use line::trim_cr;
use partial::Partials;
pub(crate) use timestamp::{days_from_civil, days_in_month, parse_rfc3339};

/// The on-disk format of a log file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize, schemars::JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Decide from the file's first non-empty record.
    #[default]
    Auto,
    /// containerd / CRI-O: `<time> <stream> <P|F> <message>`.
    Cri,
    /// Docker json-file: `{"log":…,"stream":…,"time":…}`.
    Docker,
    /// Plain lines, stamped with the time they are read.
    Raw,
}

impl Format {
    /// The name used in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Auto => "auto",
            Format::Cri => "cri",
            Format::Docker => "docker",
            Format::Raw => "raw",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A format name that is not one of `auto`, `cri`, `docker`, `raw`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownFormat(pub String);

impl fmt::Display for UnknownFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown log format {:?}: expected one of auto, cri, docker, raw",
            self.0
        )
    }
}

impl std::error::Error for UnknownFormat {}

impl FromStr for Format {
    type Err = UnknownFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Format::Auto),
            "cri" => Ok(Format::Cri),
            "docker" => Ok(Format::Docker),
            "raw" => Ok(Format::Raw),
            other => Err(UnknownFormat(other.to_owned())),
        }
    }
}

/// Which output stream of the container wrote a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum StreamKind {
    /// Raw lines (and lines that failed to parse) carry no stream.
    Unknown = 0,
    Stdout = 1,
    Stderr = 2,
}

impl StreamKind {
    /// The label value: `""`, `"stdout"` or `"stderr"`.
    pub fn as_str(self) -> &'static str {
        match self {
            StreamKind::Unknown => "",
            StreamKind::Stdout => "stdout",
            StreamKind::Stderr => "stderr",
        }
    }
}

/// One log line ready to ship. `line` is valid UTF-8 (checked/replaced by the parser), at most
/// `max_line_size` bytes, without trailing `\n`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub ts_ns: i64,
    pub line: Bytes,
    pub stream: StreamKind,
    /// File offset of the record the line starts in (for a joined line, its first fragment):
    /// stages that hold lines back (multiline) keep the file's commit offset below it.
    pub offset: u64,
    /// What pipeline stages changed for this line alone (None on the plain path).
    pub extra: Option<Box<Extra>>,
}

/// A line's own labels, structured metadata or tenant, set by pipeline stages.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Extra {
    /// The rendered label set, replacing the file's.
    pub labels: Option<std::sync::Arc<str>>,
    /// Encoded structured metadata, replacing the file's (it includes the file's pairs).
    pub metadata: Option<Bytes>,
    /// `X-Scope-OrgID` of this line, instead of the client's `tenant_id`.
    pub tenant: Option<std::sync::Arc<str>>,
    /// The endpoints this line goes to (bit i: endpoint i), instead of its file's.
    pub clients: Option<u64>,
}

/// Counters the parser bumps; the caller exports them as metrics.
#[derive(Default, Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseStats {
    /// Records that did not parse in the file's format (shipped as raw lines).
    pub parse_errors: u64,
    /// Lines shipped shorter than written (`max_line_size`, or cut by the framer).
    pub truncated: u64,
    /// Lines that had invalid UTF-8 replaced by U+FFFD.
    pub invalid_utf8: u64,
    /// Records the framer cut to `max_record` bytes.
    pub oversized_records: u64,
}

/// Per-file parsing state: the format, partial lines in progress, the commit offset.
#[derive(Debug)]
pub struct FileParser {
    format: Format,
    max_line_size: usize,
    partials: Partials,
    /// Arena for unescaped docker lines: one allocation serves many lines.
    scratch: BytesMut,
    /// The last commit offset returned.
    commit: u64,
    /// `Records::end` of the last batch pushed.
    end: u64,
}

/// Large enough that refilling the unescape arena is rare next to the lines it serves.
const SCRATCH_BLOCK: usize = 64 * 1024;

impl FileParser {
    /// `max_line_size`: longest line shipped, in bytes (longer ones are cut, and counted).
    pub fn new(format: Format, max_line_size: usize) -> Self {
        FileParser {
            format,
            max_line_size,
            partials: Partials::new(max_line_size),
            scratch: BytesMut::new(),
            commit: 0,
            end: 0,
        }
    }

    /// The format in use (after auto-detection; `Auto` until the first non-empty record).
    pub fn format(&self) -> Format {
        self.format
    }

    /// Parses complete records, appending entries to `out`. `now_ns` (unix ns) stamps raw lines
    /// and lines that fail to parse.
    ///
    /// Returns the commit offset: every byte below it is fully represented by entries returned
    /// now or earlier. It stops at the first fragment of a partial line still waiting for its
    /// end, and at the start of a cut record whose tail has not ended. Monotonic until `reset`.
    pub fn push(&mut self, records: Records, now_ns: i64, out: &mut Vec<Entry>, stats: &mut ParseStats) -> u64 {
        for rec in records.iter() {
            self.record(&records.data, rec, now_ns, out, stats);
        }
        self.end = self.end.max(records.end);
        let commit = self.partials.oldest_start().unwrap_or(records.end);
        debug_assert!(commit >= self.commit, "commit went back: {commit} < {}", self.commit);
        self.commit = self.commit.max(commit);
        self.commit
    }

    /// Ends the partial lines still in progress and ships them as they are, for when the file
    /// will not be read further (deleted, or rotated and read to its end). Returns the commit
    /// offset, now past every record pushed.
    pub fn flush(&mut self, out: &mut Vec<Entry>, stats: &mut ParseStats) -> u64 {
        let max = self.max_line_size;
        out.extend(self.partials.flush().map(|j| Entry {
            ts_ns: j.ts_ns,
            line: finish_line(j.line, j.cut, max, stats),
            stream: j.stream,
            offset: j.start,
            extra: None,
        }));
        self.commit = self.commit.max(self.end);
        self.commit
    }

    /// Drops partial state (the file was truncated / restarted at `offset`). The detected format
    /// is kept: the same writer goes on writing the file.
    pub fn reset(&mut self, offset: u64) {
        self.partials.clear();
        self.commit = offset;
        self.end = offset;
    }

    fn record(&mut self, data: &Bytes, rec: RawRecord, now_ns: i64, out: &mut Vec<Entry>, stats: &mut ParseStats) {
        let Some(bytes) = data.get(rec.range.clone()) else {
            return; // unreachable: the range comes from `data`
        };
        if self.format == Format::Auto {
            let detected = detect(bytes);
            // An empty record tells nothing, nor does a cut one that fits no format (a docker
            // record without its end is no longer JSON): ship it raw and decide on a later one.
            if trim_cr(bytes).is_empty() || (rec.cut && detected == Format::Raw) {
                return self.raw(data, &rec, now_ns, out, stats);
            }
            self.format = detected;
            tracing::debug!(format = %detected, "detected log format");
        }
        let parsed = match self.format {
            Format::Cri => self.cri(data, &rec, bytes, out, stats),
            Format::Docker => self.docker(data, &rec, bytes, out, stats),
            Format::Raw | Format::Auto => return self.raw(data, &rec, now_ns, out, stats),
        };
        if parsed.is_none() {
            stats.parse_errors += 1;
            self.raw(data, &rec, now_ns, out, stats);
        }
    }

    /// Ships the whole record as a line stamped `now_ns`.
    fn raw(&self, data: &Bytes, rec: &RawRecord, now_ns: i64, out: &mut Vec<Entry>, stats: &mut ParseStats) {
        out.push(Entry {
            ts_ns: now_ns,
            line: finish_line(without_cr(sub(data, &rec.range)), rec.cut, self.max_line_size, stats),
            stream: StreamKind::Unknown,
            offset: rec.offset,
            extra: None,
        });
    }

    /// `None` if `bytes` is not a CRI record (the caller ships it raw).
    fn cri(
        &mut self,
        data: &Bytes,
        rec: &RawRecord,
        bytes: &[u8],
        out: &mut Vec<Entry>,
        stats: &mut ParseStats,
    ) -> Option<()> {
        let h = cri::parse_header(bytes)?;
        let msg_start = rec.range.start + h.msg_start;
        let msg = sub(data, &(msg_start..rec.range.end));
        if h.partial {
            let ts_ns = h.ts_ns;
            self.partials.append(h.stream, &msg, ts_ns, rec.offset, rec.cut);
        } else {
            self.last_fragment(h.stream, h.ts_ns, msg, rec, out, stats);
        }
        Some(())
    }

    /// `None` if `bytes` is not a docker record (the caller ships it raw).
    fn docker(
        &mut self,
        data: &Bytes,
        rec: &RawRecord,
        bytes: &[u8],
        out: &mut Vec<Entry>,
        stats: &mut ParseStats,
    ) -> Option<()> {
        let d = docker::parse(bytes)?;
        // The message either stays a slice of `data` (fast path) or is unescaped into the arena.
        let (line, partial) = match d.log {
            Log::Plain { range, partial } => {
                let at = rec.range.start;
                (sub(data, &(at + range.start..at + range.end)), partial)
            }
            Log::Escaped { range } => {
                let mut line = self.unescape(bytes.get(range)?)?;
                let partial = !line.ends_with(b"\n");
                if !partial {
                    line.truncate(line.len().saturating_sub(1));
                }
                (line, partial)
            }
        };
        if partial {
            self.partials.append(d.stream, &line, d.ts_ns, rec.offset, rec.cut);
        } else {
            self.last_fragment(d.stream, d.ts_ns, line, rec, out, stats);
        }
        Some(())
    }

    /// Unescapes a JSON string into the arena; `None` (arena untouched) on a bad escape.
    fn unescape(&mut self, raw: &[u8]) -> Option<Bytes> {
        // Unescaping never grows a string, so `raw.len()` bytes of room are enough.
        if self.scratch.capacity() - self.scratch.len() < raw.len() {
            self.scratch.reserve(raw.len().max(SCRATCH_BLOCK));
        }
        if json::unescape_into(raw, &mut self.scratch).is_none() {
            self.scratch.clear(); // drop the half-written value
            return None;
        }
        Some(self.scratch.split().freeze())
    }

    /// Ships the last piece of a line on `stream`: joined with the fragments before it if there
    /// are any, else as it is (the zero-copy path for ordinary lines).
    fn last_fragment(
        &mut self,
        stream: StreamKind,
        ts_ns: i64,
        last: Bytes,
        rec: &RawRecord,
        out: &mut Vec<Entry>,
        stats: &mut ParseStats,
    ) {
        let (cut, max) = (rec.cut, self.max_line_size);
        out.push(match self.partials.finish(stream, &last, cut) {
            Some(joined) => {
                // The '\r' of a CRLF may sit in the last fragment or end the one before it.
                let line = if joined.cut {
                    joined.line
                } else {
                    without_cr(joined.line)
                };
                Entry {
                    ts_ns: joined.ts_ns,
                    line: finish_line(line, joined.cut, max, stats),
                    stream,
                    offset: joined.start,
                    extra: None,
                }
            }
            None => Entry {
                ts_ns,
                line: finish_line(without_cr(last), cut, max, stats),
                stream,
                offset: rec.offset,
                extra: None,
            },
        });
    }
}

/// `data[range]` without a copy; empty (never a panic) if the range were out of bounds.
fn sub(data: &Bytes, range: &Range<usize>) -> Bytes {
    if range.start <= range.end && range.end <= data.len() {
        data.slice(range.clone())
    } else {
        debug_assert!(false, "range {range:?} outside {} bytes", data.len());
        Bytes::new()
    }
}

/// `line` without one trailing `\r`.
fn without_cr(mut line: Bytes) -> Bytes {
    line.truncate(trim_cr(&line).len());
    line
}

/// The format of a file, from its first non-empty record.
fn detect(first: &[u8]) -> Format {
    if first.first() == Some(&b'{') && docker::parse(first).is_some() {
        Format::Docker
    } else if cri::parse_header(first).is_some() {
        Format::Cri
    } else {
        Format::Raw
    }
}
