//! CRI log lines (containerd, CRI-O): `<RFC 3339 time> <stdout|stderr> <tag> <message>`.
//!
//! The tag is `F` (full: the line ends here) or `P` (partial: the line continues in the next
//! record of the same stream). Like kubelet, we accept further `:`-separated flags after the
//! first tag (`F:x`) for forward compatibility. The message is everything after the single space
//! that follows the tag; a record that ends right after the tag has an empty message.
//!
//! Only the header is parsed here; the message stays a range so the caller can slice it out of
//! the shared buffer without copying.

use super::timestamp::parse_rfc3339;
use super::StreamKind;

/// The header of one CRI record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CriHeader {
    pub ts_ns: i64,
    pub stream: StreamKind,
    pub partial: bool,
    /// Index in the record where the message starts (may equal the record's length).
    pub msg_start: usize,
}

/// The longest timestamp we look for: RFC 3339 with nanoseconds and an offset is 35 bytes.
const MAX_TS_LEN: usize = 40;

/// Parses the header of `rec` (one record without its `\n`); `None` if it is not CRI.
#[inline]
pub(crate) fn parse_header(rec: &[u8]) -> Option<CriHeader> {
    let head = rec.get(..MAX_TS_LEN + 1).unwrap_or(rec);
    let ts_len = head.iter().position(|&b| b == b' ')?;
    let ts_ns = parse_rfc3339(rec.get(..ts_len)?)?;

    let after_ts = ts_len + 1;
    let stream = match rec.get(after_ts..after_ts + 7)? {
        b"stdout " => StreamKind::Stdout,
        b"stderr " => StreamKind::Stderr,
        _ => return None,
    };

    let tag_start = after_ts + 7;
    let rest = rec.get(tag_start..)?;
    let tag_len = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
    let partial = match rest.get(..tag_len)? {
        [b'P'] => true,
        [b'F'] => false,
        [b'P', b':', ..] => true,
        [b'F', b':', ..] => false,
        _ => return None,
    };
    let msg_start = (tag_start + tag_len + 1).min(rec.len());
    Some(CriHeader {
        ts_ns,
        stream,
        partial,
        msg_start,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TS: i64 = 1_795_514_400_123_456_789;

    fn msg(rec: &str) -> Option<(CriHeader, &str)> {
        parse_header(rec.as_bytes()).map(|h| (h, &rec[h.msg_start..]))
    }

    #[test]
    fn headers() {
        let (h, m) = msg("2026-11-24T10:00:00.123456789Z stdout F hello world").unwrap();
        assert_eq!(
            (h.ts_ns, h.stream, h.partial, m),
            (TS, StreamKind::Stdout, false, "hello world")
        );

        let (h, m) = msg("2026-11-24T10:00:00.123456789Z stderr P part ").unwrap();
        assert_eq!((h.stream, h.partial, m), (StreamKind::Stderr, true, "part "));

        let (h, m) = msg("2026-11-24T11:00:00.123456789+01:00 stdout F:x  two spaces").unwrap();
        assert_eq!((h.ts_ns, h.partial, m), (TS, false, " two spaces"));
    }

    #[test]
    fn empty_messages() {
        assert_eq!(msg("2026-11-24T10:00:00.123456789Z stdout F ").unwrap().1, "");
        assert_eq!(msg("2026-11-24T10:00:00.123456789Z stdout F").unwrap().1, "");
        assert_eq!(msg("2026-11-24T10:00:00.123456789Z stdout P").unwrap().1, "");
    }

    #[test]
    fn rejects_non_cri() {
        for rec in [
            "",
            "hello world",
            "2026-11-24T10:00:00.123456789Z",
            "2026-11-24T10:00:00.123456789Z ",
            "2026-11-24T10:00:00.123456789Z stdout",
            "2026-11-24T10:00:00.123456789Z stdout ",
            "2026-11-24T10:00:00.123456789Z stdin F x",
            "2026-11-24T10:00:00.123456789Z stdoutF x",
            "2026-11-24T10:00:00.123456789Z stdout X x",
            "2026-11-24T10:00:00.123456789Z stdout FP x",
            "2026-11-24T10:00:00.123456789Z  stdout F x",
            "2026-13-24T10:00:00.123456789Z stdout F x",
            "{\"log\":\"x\\n\"}",
        ] {
            assert_eq!(parse_header(rec.as_bytes()), None, "{rec:?}");
        }
    }
}
