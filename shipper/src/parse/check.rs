//! Driving `Framer` + `FileParser` over a whole input the way the reader does, checking the
//! invariants every read must keep. Shared by the property tests and the fuzz targets (`fuzz/`).

use super::{Entry, FileParser, Format, Framer, ParseStats};

const NOW: i64 = 7;

/// What one run produced.
pub struct Outcome {
    pub entries: Vec<Entry>,
    pub commit: u64,
    pub consumed: u64,
}

/// Feeds `input` through a framer and parser in pieces of the given sizes (cycled), checking
/// after every push that the commit is monotonic, within the consumed bytes, and (when `lines`
/// is given) never past the start of a line that is not complete yet.
pub fn drive(
    format: Format,
    max_record: usize,
    max_line: usize,
    input: &[u8],
    chunks: &[usize],
    lines: Option<&[LineSpan]>,
) -> Outcome {
    let mut framer = Framer::new(0, max_record);
    let mut parser = FileParser::new(format, max_line);
    let mut stats = ParseStats::default();
    let mut entries = Vec::new();
    let mut commit = 0;
    let mut rest = input;
    let mut sizes = chunks.iter().copied().cycle();
    while !rest.is_empty() {
        let n = sizes.next().unwrap_or(rest.len()).clamp(1, rest.len());
        let (piece, more) = rest.split_at(n);
        rest = more;
        framer.buf_mut().extend_from_slice(piece);
        if let Some(records) = framer.take_records(&mut stats) {
            let c = parser.push(records, NOW, &mut entries, &mut stats);
            assert!(c >= commit, "commit went back from {commit} to {c}");
            assert!(c <= framer.consumed_offset(), "commit {c} past consumed");
            commit = c;
            for line in lines.unwrap_or_default() {
                assert!(
                    line.first >= commit || line.end <= framer.consumed_offset(),
                    "commit {commit} passes the start of an unfinished line {line:?}"
                );
            }
        }
    }
    for e in &entries {
        assert!(std::str::from_utf8(&e.line).is_ok(), "invalid UTF-8 shipped");
        assert!(e.line.len() <= max_line, "line over max_line_size");
    }
    Outcome {
        entries,
        commit,
        consumed: framer.consumed_offset(),
    }
}

/// File offsets of a generated line: its first record's start and its last record's end.
#[derive(Clone, Copy, Debug)]
pub struct LineSpan {
    pub first: u64,
    pub end: u64,
}

/// A fuzz input as a file in `format`: its first two bytes pick the read sizes and limits, the rest is
/// the file. Panics only when an invariant breaks.
pub fn fuzz_one(format: Format, data: &[u8]) {
    let Some((&[a, b], file)) = data.split_first_chunk::<2>() else {
        return;
    };
    let chunks = [usize::from(a % 64) + 1, usize::from(b) * 16 + 1, 4096];
    let max_line = 16 + usize::from(b % 32) * 8;
    let max_record = max_line + 64 + usize::from(a / 64) * 128;
    drive(format, max_record, max_line, file, &chunks, None);
}
