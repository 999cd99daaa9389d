//! The journal export format (`journalctl --output=export`), parsed incrementally.
//!
//! <https://systemd.io/JOURNAL_EXPORT_FORMATS/>: entries are separated by an empty line; each field is
//! either `NAME=value\n` (text without control characters) or `NAME\n` + a little-endian u64 length +
//! that many raw bytes + `\n` (binary or multi-line values, e.g. a MESSAGE with a newline or invalid
//! UTF-8).
//!
//! journalctl's output arrives in pipe-sized reads that cut fields and binary values anywhere, so the
//! parser is a state machine over the bytes it was fed: [`ExportParser::feed`] appends a read,
//! [`ExportParser::next`] returns each complete entry. It never panics and holds bounded memory
//! whatever the input: values are kept only for the fields asked for, cut at `max_value` bytes
//! (flagged, so the line is counted as truncated), and input that is not the export format makes the
//! parser drop the entry it is in and skip to the next empty line ([`Parsed::Bad`], counted by the
//! caller) rather than stop.

/// One field of an entry. `cut`: the value was longer than `max_value` and lost its end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    pub value: Vec<u8>,
    pub cut: bool,
}

/// The fields kept of one journal entry, in the order journalctl wrote them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExportEntry {
    pub fields: Vec<Field>,
}

impl ExportEntry {
    /// The first field called `name` (journal fields may repeat; the first one is the usual one).
    pub fn get(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }
}

/// What [`ExportParser::next`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed {
    Entry(ExportEntry),
    /// Bytes that are not the export format, up to the next empty line: one entry lost, `reason` says
    /// what was wrong (for the log; the metric reason is `bad_format`).
    Bad(&'static str),
}

/// Longest field name accepted (journald allows 64).
const MAX_NAME: usize = 256;
/// Fields kept per entry: a garbage entry repeating a wanted field cannot grow memory without bound.
const MAX_FIELDS: usize = 64;
/// A line that does not start with a field name (at most 256 bytes of A-Z, a-z, 0-9, _).
const BAD_NAME: &str = "a line without a valid field name";
/// Longest binary value accepted; anything longer is not journald's (its limit is 64 MiB).
const MAX_BINARY: u64 = 1 << 30;

#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    /// At the start of a field line, or of the empty line that ends the entry.
    Line,
    /// After the `NAME\n` of a binary field: its 8-byte length is next. `keep`: store its value.
    Len { keep: Option<String> },
    /// Inside a binary value with `left` bytes to go, stored in the last field when `keep`.
    Data { left: u64, keep: bool },
    /// After a binary value: its `\n`.
    DataEnd,
    /// The rest of a text line longer than anything kept: skipped.
    LongLine,
    /// Not the export format: skipping to the empty line that ends this entry.
    Resync { at_line_start: bool, reason: &'static str },
}

/// The incremental parser; see the module documentation.
#[derive(Debug)]
pub struct ExportParser {
    buf: Vec<u8>,
    pos: usize,
    state: State,
    entry: ExportEntry,
    /// A field line of the current entry was seen (kept or not).
    started: bool,
    max_value: usize,
    /// The fields whose values are kept; None: all.
    wanted: Option<Vec<String>>,
}

impl ExportParser {
    /// `max_value`: longest value kept (longer ones are cut and flagged); `wanted`: the fields to keep
    /// (None: every field).
    pub fn new(max_value: usize, wanted: Option<Vec<String>>) -> Self {
        ExportParser {
            buf: Vec::new(),
            pos: 0,
            state: State::Line,
            entry: ExportEntry::default(),
            started: false,
            max_value,
            wanted,
        }
    }

    /// Appends bytes read from journalctl.
    pub fn feed(&mut self, data: &[u8]) {
        if self.pos > 0 && self.pos * 2 >= self.buf.len() {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// Bytes fed but not parsed yet (a field or value in progress).
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// journalctl ended: forgets the entry in progress (it is read again from the last cursor) and
    /// returns whether there was one.
    pub fn finish(&mut self) -> bool {
        let partial = self.started || self.buffered() > 0 || self.state != State::Line;
        self.buf.clear();
        self.pos = 0;
        self.state = State::Line;
        self.entry = ExportEntry::default();
        self.started = false;
        partial
    }

    /// The next complete entry (or bad stretch) in what was fed; None: more input is needed.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<Parsed> {
        loop {
            let rest = &self.buf[self.pos..];
            match std::mem::replace(&mut self.state, State::Line) {
                State::Line => {
                    let first = *rest.first()?;
                    if first == b'\n' {
                        self.pos += 1;
                        if std::mem::take(&mut self.started) {
                            return Some(Parsed::Entry(std::mem::take(&mut self.entry)));
                        }
                        continue; // a stray empty line between entries
                    }
                    let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
                        if rest.len() > MAX_NAME + 1 + self.max_value {
                            self.long_line();
                            continue;
                        }
                        return None;
                    };
                    self.pos += nl + 1;
                    self.field_line(nl);
                }
                State::Len { keep } => {
                    let Some(len) = rest.get(..8) else {
                        self.state = State::Len { keep };
                        return None;
                    };
                    let mut le = [0u8; 8];
                    le.copy_from_slice(len);
                    let left = u64::from_le_bytes(le);
                    self.pos += 8;
                    if left > MAX_BINARY {
                        self.state = State::Resync {
                            at_line_start: false,
                            reason: "binary field length over 1 GiB",
                        };
                        continue;
                    }
                    let keep = match keep {
                        Some(name) => self.keep(name, Vec::new(), false),
                        None => false,
                    };
                    self.state = State::Data { left, keep };
                }
                State::Data { left, keep } => {
                    let take = (rest.len() as u64).min(left) as usize;
                    if keep {
                        if let Some(f) = self.entry.fields.last_mut() {
                            let room = self.max_value.saturating_sub(f.value.len());
                            f.value.extend_from_slice(&rest[..take.min(room)]);
                            f.cut |= take > room;
                        }
                    }
                    self.pos += take;
                    let left = left - take as u64;
                    if left > 0 {
                        self.state = State::Data { left, keep };
                        return None;
                    }
                    self.state = State::DataEnd;
                }
                State::DataEnd => match rest.first() {
                    None => {
                        self.state = State::DataEnd;
                        return None;
                    }
                    Some(b'\n') => self.pos += 1,
                    Some(_) => {
                        self.state = State::Resync {
                            at_line_start: false,
                            reason: "binary field value not followed by a newline",
                        }
                    }
                },
                State::LongLine => match rest.iter().position(|&b| b == b'\n') {
                    Some(nl) => self.pos += nl + 1,
                    None => {
                        self.pos = self.buf.len();
                        self.state = State::LongLine;
                        return None;
                    }
                },
                State::Resync {
                    mut at_line_start,
                    reason,
                } => {
                    for (i, &b) in rest.iter().enumerate() {
                        if b != b'\n' {
                            at_line_start = false;
                        } else if at_line_start {
                            self.pos += i + 1;
                            self.entry = ExportEntry::default();
                            self.started = false;
                            return Some(Parsed::Bad(reason));
                        } else {
                            at_line_start = true;
                        }
                    }
                    self.pos = self.buf.len();
                    self.state = State::Resync { at_line_start, reason };
                    return None;
                }
            }
        }
    }

    /// A complete line of `len` bytes (without its `\n`) just before `self.pos`.
    fn field_line(&mut self, len: usize) {
        let start = self.pos - len - 1;
        let line = &self.buf[start..start + len];
        let (name, value) = match line.iter().position(|&b| b == b'=') {
            Some(eq) => (&line[..eq], Some(&line[eq + 1..])),
            None => (line, None),
        };
        let Some(name) = valid_name(name) else {
            self.state = State::Resync {
                at_line_start: true,
                reason: BAD_NAME,
            };
            return;
        };
        self.started = true;
        let wanted = self.wants(&name);
        match value {
            Some(v) => {
                if wanted {
                    let cut = v.len() > self.max_value;
                    let v = v[..v.len().min(self.max_value)].to_vec();
                    self.keep(name, v, cut);
                }
            }
            None => {
                self.state = State::Len {
                    keep: wanted.then_some(name),
                }
            }
        }
    }

    /// A text line with no newline yet and longer than anything kept: keep its start (if its field
    /// is wanted), skip the rest.
    fn long_line(&mut self) {
        let rest = &self.buf[self.pos..];
        let name = rest[..MAX_NAME + 1]
            .iter()
            .position(|&b| b == b'=')
            .and_then(|eq| Some((valid_name(&rest[..eq])?, eq)));
        let Some((name, eq)) = name else {
            self.state = State::Resync {
                at_line_start: false,
                reason: BAD_NAME,
            };
            return;
        };
        self.started = true;
        if self.wants(&name) {
            let v = rest[eq + 1..eq + 1 + self.max_value].to_vec();
            self.keep(name, v, true);
        }
        self.pos = self.buf.len();
        self.state = State::LongLine;
    }

    fn wants(&self, name: &str) -> bool {
        self.wanted.as_ref().is_none_or(|w| w.iter().any(|n| n == name))
    }

    /// Stores a field unless the entry already holds `MAX_FIELDS`; whether it was stored.
    fn keep(&mut self, name: String, value: Vec<u8>, cut: bool) -> bool {
        if self.entry.fields.len() >= MAX_FIELDS {
            return false;
        }
        self.entry.fields.push(Field { name, value, cut });
        true
    }
}

fn valid_name(name: &[u8]) -> Option<String> {
    let ok = !name.is_empty() && name.len() <= MAX_NAME && name.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'_');
    // All ASCII: the conversion cannot fail.
    ok.then(|| String::from_utf8_lossy(name).into_owned())
}

/// Parses `data` fed in pieces whose sizes come from `cuts` (cycled; 0 counts as 1).
#[cfg(any(test, feature = "fuzzing"))]
pub fn parse_in_pieces(data: &[u8], cuts: &[u8], max_value: usize) -> Vec<Parsed> {
    let mut p = ExportParser::new(max_value, None);
    let mut out = Vec::new();
    let mut at = 0;
    let mut i = 0;
    while at < data.len() {
        let n = cuts
            .get(i % cuts.len().max(1))
            .map_or(data.len(), |&c| c.max(1) as usize);
        let end = (at + n).min(data.len());
        p.feed(&data[at..end]);
        at = end;
        i += 1;
        while let Some(e) = p.next() {
            out.push(e);
        }
    }
    out
}

/// The fuzz target's check: any bytes, cut anywhere, never panic, parse to the same entries as when
/// fed at once, and never keep a value over `max_value`.
#[cfg(any(test, feature = "fuzzing"))]
pub fn fuzz_one(data: &[u8]) {
    let split = data.len().min(16);
    let (cuts, input) = data.split_at(split);
    for max_value in [4, 1 << 16] {
        let whole = parse_in_pieces(input, &[], max_value);
        let pieces = parse_in_pieces(input, cuts, max_value);
        assert_eq!(whole, pieces, "feeding in pieces changed the result");
        for p in &whole {
            if let Parsed::Entry(e) = p {
                assert!(e.fields.len() <= MAX_FIELDS);
                assert!(e.fields.iter().all(|f| f.value.len() <= max_value));
            }
        }
    }
}

#[cfg(test)]
#[path = "export_tests.rs"]
mod tests;
