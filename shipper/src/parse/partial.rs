//! Partial-line reassembly, shared by CRI (`P` … `F`) and docker (`log` without final `\n`).
//!
//! Runtimes split long lines (at 16 KiB) into several records. Each stream (stdout, stderr) has
//! its own line in progress, since the two interleave independently in one file. A joined line
//! keeps the timestamp of its first fragment, and the file offset of that fragment is what the
//! commit offset must not pass while the line is incomplete: after a crash, reading resumes at
//! the first fragment and the line is rebuilt whole.
//!
//! Joining is a copy (the fragments are not contiguous in the file), but fragments only exist
//! for long lines, so it is not on the per-line path. The buffer is capped at `max_line_size`:
//! beyond that, fragments are still consumed (so the line ends where it should) but not kept.

use bytes::{Bytes, BytesMut};

use super::StreamKind;

/// A line being reassembled.
#[derive(Debug)]
struct Pending {
    ts_ns: i64,
    /// File offset of the first fragment.
    start: u64,
    /// The line lost bytes (the cap, or a fragment the framer cut): nothing more is kept.
    cut: bool,
}

/// A finished joined line.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Joined {
    pub line: Bytes,
    pub ts_ns: i64,
    pub stream: StreamKind,
    pub cut: bool,
    /// File offset of the first fragment.
    pub start: u64,
}

/// The lines in progress of one file, one slot per [`StreamKind`].
#[derive(Debug)]
pub(crate) struct Partials {
    max: usize,
    pending: [Option<Pending>; 3],
    /// Per-stream bytes; kept between lines so their capacity is reused.
    bufs: [BytesMut; 3],
}

impl Partials {
    pub fn new(max_line_size: usize) -> Self {
        Partials {
            max: max_line_size,
            pending: [None, None, None],
            bufs: Default::default(),
        }
    }

    /// Adds a non-final fragment; starts the line (with `ts_ns` and file offset `start`) if none
    /// is in progress on `stream`. `cut`: the framer cut this fragment.
    pub fn append(&mut self, stream: StreamKind, fragment: &[u8], ts_ns: i64, start: u64, cut: bool) {
        let slot = stream as usize;
        let pending = self.pending[slot].get_or_insert(Pending {
            ts_ns,
            start,
            cut: false,
        });
        Self::keep(&mut self.bufs[slot], pending, self.max, fragment, cut);
    }

    /// Adds the final fragment of the line in progress on `stream` and returns the joined line,
    /// or `None` (and keeps nothing) if no line is in progress: the caller then ships `last`
    /// as it is, without a copy.
    pub fn finish(&mut self, stream: StreamKind, last: &[u8], cut: bool) -> Option<Joined> {
        let slot = stream as usize;
        let mut pending = self.pending[slot].take()?;
        let buf = &mut self.bufs[slot];
        Self::keep(buf, &mut pending, self.max, last, cut);
        Some(Joined {
            line: buf.split().freeze(),
            ts_ns: pending.ts_ns,
            stream,
            cut: pending.cut,
            start: pending.start,
        })
    }

    /// File offset of the earliest first fragment still waiting for its line's end.
    pub fn oldest_start(&self) -> Option<u64> {
        self.pending.iter().flatten().map(|p| p.start).min()
    }

    /// Ends every line in progress as it is (the file will not be read further).
    pub fn flush(&mut self) -> impl Iterator<Item = Joined> + '_ {
        let streams = [StreamKind::Unknown, StreamKind::Stdout, StreamKind::Stderr];
        self.pending
            .iter_mut()
            .zip(self.bufs.iter_mut())
            .zip(streams)
            .filter_map(|((pending, buf), stream)| {
                let pending = pending.take()?;
                Some(Joined {
                    line: buf.split().freeze(),
                    ts_ns: pending.ts_ns,
                    stream,
                    cut: pending.cut,
                    start: pending.start,
                })
            })
    }

    /// Drops every line in progress.
    pub fn clear(&mut self) {
        self.pending = [None, None, None];
        self.bufs.iter_mut().for_each(BytesMut::clear);
    }

    fn keep(buf: &mut BytesMut, pending: &mut Pending, max: usize, fragment: &[u8], cut: bool) {
        if pending.cut {
            return;
        }
        let room = max.saturating_sub(buf.len());
        match fragment.get(..room) {
            Some(kept) if kept.len() < fragment.len() => {
                buf.extend_from_slice(kept);
                pending.cut = true;
            }
            _ => buf.extend_from_slice(fragment),
        }
        pending.cut |= cut;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_per_stream_with_first_timestamp() {
        let mut p = Partials::new(100);
        assert_eq!(p.finish(StreamKind::Stdout, b"whole", false), None);
        p.append(StreamKind::Stdout, b"out1 ", 1, 10, false);
        p.append(StreamKind::Stderr, b"err1 ", 2, 20, false);
        p.append(StreamKind::Stdout, b"out2 ", 3, 30, false);
        assert_eq!(p.oldest_start(), Some(10));
        let out = p.finish(StreamKind::Stdout, b"out3", false).expect("pending");
        assert_eq!(&out.line[..], b"out1 out2 out3");
        assert_eq!((out.ts_ns, out.stream, out.cut), (1, StreamKind::Stdout, false));
        assert_eq!(p.oldest_start(), Some(20));
        let err = p.finish(StreamKind::Stderr, b"err2", false).expect("pending");
        assert_eq!(&err.line[..], b"err1 err2");
        assert_eq!(p.oldest_start(), None);
    }

    #[test]
    fn caps_and_keeps_consuming() {
        let mut p = Partials::new(6);
        p.append(StreamKind::Stdout, b"abcd", 1, 0, false);
        p.append(StreamKind::Stdout, b"efgh", 1, 5, false);
        p.append(StreamKind::Stdout, b"ijkl", 1, 10, false);
        let out = p.finish(StreamKind::Stdout, b"mn", false).expect("pending");
        assert_eq!(&out.line[..], b"abcdef");
        assert!(out.cut);
        assert_eq!(p.oldest_start(), None);
    }

    #[test]
    fn framer_cut_fragment_stops_the_line() {
        let mut p = Partials::new(100);
        p.append(StreamKind::Stdout, b"abc", 1, 0, true);
        p.append(StreamKind::Stdout, b"def", 1, 5, false);
        let out = p.finish(StreamKind::Stdout, b"ghi", false).expect("pending");
        assert_eq!(&out.line[..], b"abc");
        assert!(out.cut);
    }

    #[test]
    fn flush_and_clear() {
        let mut p = Partials::new(100);
        p.append(StreamKind::Stdout, b"a", 1, 0, false);
        p.append(StreamKind::Stderr, b"b", 2, 3, false);
        let flushed: Vec<_> = p.flush().collect();
        assert_eq!(flushed.len(), 2);
        assert_eq!(&flushed[0].line[..], b"a");
        assert_eq!(flushed[1].stream, StreamKind::Stderr);
        assert_eq!(p.oldest_start(), None);
        p.append(StreamKind::Stdout, b"x", 1, 9, false);
        p.clear();
        assert_eq!(p.oldest_start(), None);
        p.append(StreamKind::Stdout, b"y", 1, 12, false);
        let out = p.finish(StreamKind::Stdout, b"z", false).expect("pending");
        assert_eq!(&out.line[..], b"yz");
    }
}
