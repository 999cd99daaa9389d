//! Framing: turn appended file bytes into complete records (lines ending in `\n`).
//! See [`Framer`] for the contract, including how oversized records are cut.

use std::ops::Range;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::scan::{memchr, memrchr};
use super::ParseStats;

/// Complete records split off the framer's buffer, handed to [`super::FileParser::push`].
///
/// On the common path `data` is exactly the file bytes `start..end`. When the framer cut an
/// oversized record, `data` holds only the kept prefix plus an artificial `\n`, so `data.len()`
/// and `end - start` differ: when the cut record's tail has already ended, `end` is past it;
/// when it has not, `end` is the cut record's *start* (see [`Framer`]). Each record's real
/// file offset is still known: the batch remembers where it cut.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Records {
    /// The records, each ending in `\n`.
    pub data: Bytes,
    /// File offset of the first byte of `data`.
    pub start: u64,
    /// File offset just past the last record fully consumed: safe to resume reading there.
    pub end: u64,
    /// Records cut to `max_record`, in order (empty, and not allocated, on the common path).
    cuts: Vec<Cut>,
}

/// A record the framer cut short.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Cut {
    /// Index in `data` just past the cut record's artificial `\n`.
    end: usize,
    /// File offset of `data[end]`: where the next record really starts. Unused (nothing follows)
    /// for a cut record whose tail is still being skipped.
    resume: u64,
}

/// One record of a [`Records`], as the parser sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RawRecord {
    /// Range in `Records::data`, without the final `\n`.
    pub range: Range<usize>,
    /// File offset of the record's first byte.
    pub offset: u64,
    /// The framer cut this record to `max_record` bytes.
    pub cut: bool,
}

impl Records {
    /// An empty batch that only moves the consumed offset (the tail of a cut record ended).
    fn empty_at(offset: u64) -> Self {
        Records {
            data: Bytes::new(),
            start: offset,
            end: offset,
            cuts: Vec::new(),
        }
    }

    /// The records with their file offsets. A final piece without `\n` (never produced by the
    /// framer) is yielded as a record too rather than dropped.
    pub(crate) fn iter(&self) -> RecordIter<'_> {
        RecordIter {
            data: &self.data,
            pos: 0,
            base_pos: 0,
            base_offset: self.start,
            cuts: &self.cuts,
        }
    }
}

pub(crate) struct RecordIter<'a> {
    data: &'a [u8],
    pos: usize,
    /// `data[base_pos]` is at file offset `base_offset`; moves past each cut record.
    base_pos: usize,
    base_offset: u64,
    cuts: &'a [Cut],
}

impl Iterator for RecordIter<'_> {
    type Item = RawRecord;

    fn next(&mut self) -> Option<RawRecord> {
        let rest = self.data.get(self.pos..).filter(|r| !r.is_empty())?;
        let (line_len, rec_len) = match memchr(b'\n', rest) {
            Some(i) => (i, i + 1),
            None => (rest.len(), rest.len()),
        };
        let start = self.pos;
        let end = start + rec_len;
        let offset = self.base_offset + (start - self.base_pos) as u64;
        let cut = match self.cuts.split_first() {
            Some((c, more)) if c.end == end => {
                self.base_pos = end;
                self.base_offset = c.resume;
                self.cuts = more;
                true
            }
            _ => false,
        };
        self.pos = end;
        Some(RawRecord {
            range: start..start + line_len,
            offset,
            cut,
        })
    }
}

/// Accumulates file bytes and splits them into complete records (lines ending in `\n`).
///
/// The reader appends whatever a read returned; records straddle reads. The framer keeps the
/// unfinished tail and splits off everything complete as one zero-copy [`Bytes`], together with
/// the exact file offsets it covers, so the checkpoint can later resume on a record boundary.
///
/// Memory is bounded by `max_record`: a record whose content grows past it without a newline is
/// cut (its first `max_record` bytes plus an artificial `\n` are handed out at once, a rare copy)
/// and the rest of it is dropped as it arrives. Because that record's real end is not known when
/// it is handed out, [`Records::end`] then stops at the record's *start*: a checkpoint taken from
/// it re-reads the record after a crash (a duplicate) instead of resuming in its middle (garbage).
/// Once the dropped tail's newline arrives, the next batch's `end` moves past it (that batch may
/// hold no records at all).
#[derive(Debug)]
pub struct Framer {
    buf: BytesMut,
    /// File offset of `buf[0]`; `buf[0]` always starts a record unless `skipping`.
    buf_start: u64,
    /// Length of the prefix of `buf` known to hold no `\n`, so a tail is scanned only once.
    scanned: usize,
    max_record: usize,
    /// Dropping the rest of a cut record up to and including its newline.
    skipping: bool,
    consumed: u64,
}

impl Framer {
    /// `offset`: file offset of the next byte that will be appended. `max_record`: the largest
    /// record content (bytes before its `\n`, header included) kept whole.
    pub fn new(offset: u64, max_record: usize) -> Self {
        Framer {
            buf: BytesMut::new(),
            buf_start: offset,
            scanned: 0,
            max_record,
            skipping: false,
            consumed: offset,
        }
    }

    /// The buffer the reader appends freshly read bytes to (it reserves capacity and extends it).
    /// Only append: bytes already in it belong to records not yet handed out.
    pub fn buf_mut(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// Splits off all complete records now in the buffer as one batch, or `None` if there is
    /// nothing to hand out. One call returns everything available; calling again without
    /// appending returns `None`.
    ///
    /// A record whose content exceeds `max_record` is cut (see [`Framer`]) and counted in
    /// `stats.oversized_records`.
    pub fn take_records(&mut self, stats: &mut ParseStats) -> Option<Records> {
        let mut tail_ended_at = None;
        if self.skipping {
            match memchr(b'\n', &self.buf) {
                None => {
                    let all = self.buf.len();
                    self.drop_front(all);
                    return None;
                }
                Some(i) => {
                    self.drop_front(i + 1);
                    self.skipping = false;
                    self.consumed = self.buf_start;
                    tail_ended_at = Some(self.buf_start);
                }
            }
        }
        self.split_complete(stats)
            .or_else(|| tail_ended_at.map(Records::empty_at))
    }

    /// File offset just past the last byte appended (where the next read goes).
    pub fn read_offset(&self) -> u64 {
        self.buf_start + self.buf.len() as u64
    }

    /// File offset just past the last complete record handed out (or skipped as a cut tail).
    pub fn consumed_offset(&self) -> u64 {
        self.consumed
    }

    /// Forgets buffered bytes and continues at `offset` (after truncation).
    pub fn reset(&mut self, offset: u64) {
        self.buf.clear();
        self.buf_start = offset;
        self.scanned = 0;
        self.skipping = false;
        self.consumed = offset;
    }

    fn drop_front(&mut self, n: usize) {
        self.buf.advance(n);
        self.buf_start += n as u64;
        self.scanned = self.scanned.saturating_sub(n);
    }

    /// The common path: one reverse scan of the new bytes, one zero-copy split.
    fn split_complete(&mut self, stats: &mut ParseStats) -> Option<Records> {
        let from = self.scanned.min(self.buf.len());
        let complete = self
            .buf
            .get(from..)
            .and_then(|new| memrchr(b'\n', new))
            .map_or(0, |i| from + i + 1);
        let tail = self.buf.len() - complete;
        if tail > self.max_record || !self.all_fit(complete) {
            return Some(self.split_cutting(stats));
        }
        self.scanned = tail;
        if complete == 0 {
            return None;
        }
        let start = self.buf_start;
        let data = self.buf.split_to(complete).freeze();
        self.buf_start += complete as u64;
        self.consumed = self.buf_start;
        Some(Records {
            data,
            start,
            end: self.consumed,
            cuts: Vec::new(),
        })
    }

    /// Whether every record in `buf[..complete]` fits `max_record`. Jumps from record start to
    /// the last newline within one maximal record, so it costs a short backward scan per
    /// `max_record` bytes rather than one per line.
    fn all_fit(&self, complete: usize) -> bool {
        let window = self.max_record.saturating_add(1);
        let mut pos = 0;
        while complete - pos > window {
            match self.buf.get(pos..pos + window).and_then(|w| memrchr(b'\n', w)) {
                Some(i) => pos += i + 1,
                None => return false,
            }
        }
        true
    }

    /// The rare path: copies the complete records, cutting the oversized ones.
    fn split_cutting(&mut self, stats: &mut ParseStats) -> Records {
        let start = self.buf_start;
        let window = self.max_record.saturating_add(1);
        let mut data = BytesMut::with_capacity(self.buf.len().min(window.saturating_mul(2)));
        let mut cuts = Vec::new();
        let mut pos = 0;
        let mut end = start;
        while let Some(rest) = self.buf.get(pos..).filter(|r| !r.is_empty()) {
            let head = rest.get(..window).unwrap_or(rest);
            if let Some(i) = memchr(b'\n', head) {
                data.extend_from_slice(head.get(..=i).unwrap_or(head));
                pos += i + 1;
                end = start + pos as u64;
                continue;
            }
            if rest.len() <= self.max_record {
                break; // unfinished but may still fit: wait for more bytes
            }
            let kept = rest.get(..self.max_record).unwrap_or(rest);
            stats.oversized_records += 1;
            data.extend_from_slice(kept);
            data.put_u8(b'\n');
            match memchr(b'\n', rest.get(self.max_record..).unwrap_or_default()) {
                Some(i) => {
                    pos += self.max_record + i + 1;
                    end = start + pos as u64;
                    cuts.push(Cut {
                        end: data.len(),
                        resume: end,
                    });
                }
                None => {
                    cuts.push(Cut {
                        end: data.len(),
                        resume: end,
                    });
                    pos = self.buf.len();
                    self.skipping = true;
                    break;
                }
            }
        }
        self.drop_front(pos);
        self.scanned = self.buf.len();
        self.consumed = end;
        Records {
            data: data.freeze(),
            start,
            end,
            cuts,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (content, file offset, cut) of every record of a batch.
    fn records(r: &Records) -> Vec<(Vec<u8>, u64, bool)> {
        r.iter()
            .map(|rec| (r.data[rec.range].to_vec(), rec.offset, rec.cut))
            .collect()
    }

    fn feed(f: &mut Framer, bytes: &[u8], stats: &mut ParseStats) -> Option<Records> {
        f.buf_mut().extend_from_slice(bytes);
        f.take_records(stats)
    }

    #[test]
    fn splits_complete_records_zero_copy() {
        let mut stats = ParseStats::default();
        let mut f = Framer::new(1000, 64);
        assert_eq!(
            feed(&mut f, b"one\ntw", &mut stats).map(|r| (r.start, r.end)),
            Some((1000, 1004))
        );
        assert_eq!(f.read_offset(), 1006);
        assert_eq!(f.consumed_offset(), 1004);
        assert_eq!(feed(&mut f, b"o", &mut stats), None);
        let r = feed(&mut f, b"\nthree\n\nfo", &mut stats).unwrap();
        assert_eq!((r.start, r.end, &r.data[..]), (1004, 1015, &b"two\nthree\n\n"[..]));
        assert_eq!(
            records(&r),
            [
                (b"two".to_vec(), 1004, false),
                (b"three".to_vec(), 1008, false),
                (vec![], 1014, false)
            ]
        );
        assert_eq!(f.take_records(&mut stats), None, "one call hands out everything");
        assert_eq!(stats, ParseStats::default());
        f.reset(7);
        assert_eq!((f.read_offset(), f.consumed_offset()), (7, 7));
        assert_eq!(feed(&mut f, b"x\n", &mut stats).map(|r| (r.start, r.end)), Some((7, 9)));
    }

    #[test]
    fn record_of_exactly_max_is_whole() {
        let mut stats = ParseStats::default();
        let mut f = Framer::new(0, 4);
        assert_eq!(feed(&mut f, b"abcd", &mut stats), None);
        let r = feed(&mut f, b"\n", &mut stats).unwrap();
        assert_eq!(records(&r), [(b"abcd".to_vec(), 0, false)]);
        assert_eq!(stats.oversized_records, 0);
    }

    /// A 1 MiB record arrives in pieces: it is cut as soon as it passes the limit, its tail is
    /// dropped as it arrives, and the commit position only passes it once its newline is read.
    #[test]
    fn oversized_record_across_reads() {
        let max = 16 * 1024;
        let mut stats = ParseStats::default();
        let mut f = Framer::new(0, max);
        let r = feed(&mut f, b"before\n", &mut stats).unwrap();
        assert_eq!(r.end, 7);

        let big = vec![b'x'; 1 << 20];
        let mut cut = None;
        for piece in big.chunks(10_000) {
            if let Some(r) = feed(&mut f, piece, &mut stats) {
                assert!(cut.is_none(), "cut record handed out once");
                cut = Some(r);
            }
        }
        let cut = cut.expect("handed out before its newline");
        assert_eq!((cut.start, cut.end), (7, 7), "end stops at the cut record's start");
        assert_eq!(cut.data.len(), max + 1);
        assert_eq!(records(&cut), [(vec![b'x'; max], 7, true)]);
        assert_eq!(f.consumed_offset(), 7);
        assert_eq!(f.read_offset(), 7 + (1 << 20));
        assert_eq!(stats.oversized_records, 1);

        let r = feed(&mut f, b"xxx\nafter\n", &mut stats).unwrap();
        let tail_end = 7 + (1 << 20) + 4;
        assert_eq!((r.start, r.end), (tail_end, tail_end + 6));
        assert_eq!(records(&r), [(b"after".to_vec(), tail_end, false)]);
        assert_eq!(stats.oversized_records, 1);
    }

    #[test]
    fn tail_ending_alone_moves_the_end() {
        let mut stats = ParseStats::default();
        let mut f = Framer::new(0, 4);
        let r = feed(&mut f, b"abcdefgh", &mut stats).unwrap();
        assert_eq!((records(&r), r.end), (vec![(b"abcd".to_vec(), 0, true)], 0));
        assert_eq!(feed(&mut f, b"ij", &mut stats), None);
        let r = feed(&mut f, b"k\n", &mut stats).unwrap();
        assert_eq!((r.data.len(), r.start, r.end), (0, 12, 12));
        assert_eq!(f.consumed_offset(), 12);
    }

    #[test]
    fn several_oversized_records_in_one_buffer() {
        let mut stats = ParseStats::default();
        let mut f = Framer::new(100, 4);
        let r = feed(&mut f, b"ok\nabcdefg\nfine\n123456\nlast\nxyzzy", &mut stats).unwrap();
        assert_eq!(
            records(&r),
            [
                (b"ok".to_vec(), 100, false),
                (b"abcd".to_vec(), 103, true),
                (b"fine".to_vec(), 111, false),
                (b"1234".to_vec(), 116, true),
                (b"last".to_vec(), 123, false),
                (b"xyzz".to_vec(), 128, true),
            ]
        );
        assert_eq!((r.start, r.end), (100, 128));
        assert_eq!(stats.oversized_records, 3);
        let r = feed(&mut f, b"\nnext\n", &mut stats).unwrap();
        assert_eq!(records(&r), [(b"next".to_vec(), 134, false)]);
    }

    #[test]
    fn long_buffers_of_short_records_take_the_fast_path() {
        let mut stats = ParseStats::default();
        let mut f = Framer::new(0, 10);
        let input: Vec<u8> = b"0123456789\n".repeat(50);
        let r = feed(&mut f, &input, &mut stats).unwrap();
        assert!(r.cuts.is_empty());
        assert_eq!(r.data, input);
        assert_eq!(r.iter().count(), 50);
    }
}
