//! The positions file's format: a log of checksummed records, so that a write costs what changed
//! since the last one, not what exists.
//!
//! ```text
//! shipper-positions 2\n                      the file's first line
//! [len: u32 LE][crc32: u32 LE][len bytes]    a record (its bytes: JSON), then the next …
//! ```
//!
//! The first record is a snapshot: every file, each in a numbered slot. Each later record is a
//! delta: the slots whose offset or identity changed (the identity only when it changed), the
//! slots removed, the time the record stands for and the journal's cursor when it moved. A record
//! is appended and synced before the next one, so after a crash at any instant the file is a run of
//! whole records, perhaps followed by a torn one: loading applies the whole records and stops at the
//! first that is torn or does not check out. Every record it applies was durable, so the state read
//! is one that was written, never ahead of what Loki acknowledged.
//!
//! The positions of earlier versions (one JSON document) are read too.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

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

/// The first line of a positions file in this format.
pub const MAGIC: &[u8] = b"shipper-positions 2\n";

/// A record's length and checksum, before its bytes.
const FRAME: usize = 8;

/// The largest record loading accepts (a snapshot of 100,000 files is a few tens of MiB): a length
/// beyond it is a torn or damaged frame, not a reason to allocate.
const MAX_RECORD: usize = 256 << 20;

/// One slot's entry in a record: the file's identity when it is new or changed, and its offset.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct SlotEntry {
    pub slot: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<FileIdentity>,
    pub offset: u64,
}

/// A record: a snapshot (the whole state) or a delta (what changed since the record before).
#[derive(Serialize, Deserialize, Debug, Default, PartialEq, Eq)]
pub struct Record {
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub snapshot: bool,
    /// The time a restart looks for renamed or written files from (see `Tracker::saved_at`).
    pub saved_at_unix_ms: u64,
    /// The journal's acknowledged cursor: in a delta only when it moved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journal_cursor: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub set: Vec<SlotEntry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub del: Vec<u32>,
}

/// Appends `record`, framed, to `out`.
pub fn encode(record: &Record, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; FRAME]);
    // Serializing plain structs of strings and numbers into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, record);
    let len = (out.len() - start - FRAME) as u32;
    let crc = crc32fast::hash(&out[start + FRAME..]);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + FRAME].copy_from_slice(&crc.to_le_bytes());
}

/// A whole positions file: the first line and a snapshot of `files` (slot, file).
pub fn snapshot<'a>(
    files: impl ExactSizeIterator<Item = (u32, &'a SavedFile)>,
    saved_at_unix_ms: u64,
    journal_cursor: Option<&str>,
) -> Vec<u8> {
    let mut body = Vec::with_capacity(MAGIC.len() + 64 + files.len() * 160);
    body.extend_from_slice(MAGIC);
    let record = Record {
        snapshot: true,
        saved_at_unix_ms,
        journal_cursor: journal_cursor.map(str::to_string),
        set: files
            .map(|(slot, f)| SlotEntry {
                slot,
                file: Some(f.ident.clone()),
                offset: f.offset,
            })
            .collect(),
        del: Vec::new(),
    };
    encode(&record, &mut body);
    body
}

/// The state a positions file in this format holds.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct State {
    /// By slot.
    pub files: std::collections::BTreeMap<u32, SavedFile>,
    pub saved_at_unix_ms: u64,
    pub journal_cursor: Option<String>,
    /// Records applied (the snapshot included).
    pub records: usize,
    /// Bytes after the last record applied that were not used: a torn write, or damage.
    pub unused_tail: usize,
}

/// Reads a positions file in this format (`bytes` start with [`MAGIC`]). Err: not even its
/// snapshot is whole; a torn or damaged later record ends the log there ([`State::unused_tail`]).
pub fn decode(bytes: &[u8]) -> Result<State, String> {
    let mut rest = bytes.strip_prefix(MAGIC).ok_or("not a shipper positions file")?;
    let mut state = State::default();
    while !rest.is_empty() {
        let Some((record, after)) = next_record(rest) else {
            break;
        };
        let applied = match state.records {
            0 if !record.snapshot => Err("its first record is not a snapshot".to_string()),
            _ => apply(&mut state, record),
        };
        if let Err(e) = applied {
            if state.records == 0 {
                return Err(e);
            }
            break;
        }
        state.records += 1;
        rest = after;
    }
    if state.records == 0 {
        return Err("no whole snapshot record (a torn or damaged file)".into());
    }
    state.unused_tail = rest.len();
    Ok(state)
}

/// The record at the start of `bytes` and what follows it; None when it is torn or does not check
/// out (length, checksum, JSON).
fn next_record(bytes: &[u8]) -> Option<(Record, &[u8])> {
    let len = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(bytes.get(4..FRAME)?.try_into().ok()?);
    if len > MAX_RECORD {
        return None;
    }
    let body = bytes.get(FRAME..FRAME + len)?;
    if crc32fast::hash(body) != crc {
        return None;
    }
    let record = serde_json::from_slice(body).ok()?;
    Some((record, &bytes[FRAME + len..]))
}

/// Applies a record whole, or (Err) leaves the state as it was.
fn apply(state: &mut State, r: Record) -> Result<(), String> {
    let known = |slot: &u32| !r.snapshot && state.files.contains_key(slot) && !r.del.contains(slot);
    if let Some(e) = r.set.iter().find(|e| e.file.is_none() && !known(&e.slot)) {
        return Err(format!("slot {} has an offset but no file", e.slot));
    }
    if r.snapshot {
        state.files.clear();
        state.journal_cursor = None;
    }
    state.saved_at_unix_ms = r.saved_at_unix_ms;
    if r.journal_cursor.is_some() {
        state.journal_cursor = r.journal_cursor;
    }
    for slot in r.del {
        state.files.remove(&slot);
    }
    for e in r.set {
        match (e.file, state.files.get_mut(&e.slot)) {
            (Some(ident), _) => {
                state.files.insert(
                    e.slot,
                    SavedFile {
                        ident,
                        offset: e.offset,
                    },
                );
            }
            (None, Some(f)) => f.offset = e.offset,
            (None, None) => {}
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "format_tests.rs"]
mod tests;
