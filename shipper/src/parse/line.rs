//! The last step for every line: enforce `max_line_size` and valid UTF-8 (Loki rejects both
//! too-long and non-UTF-8 lines, which would drop the whole push request's stream).
//!
//! Valid lines within the limit are returned as they are, so the zero-copy slice survives; only
//! invalid ones are copied (lossily, with U+FFFD).

use bytes::Bytes;

use super::ParseStats;

/// Makes `line` shippable: at most `max` bytes and valid UTF-8.
///
/// `cut` says the line already lost its end upstream (the framer cut the record, or a joined
/// partial line hit the cap): it then counts as truncated, and a character broken by that cut is
/// dropped rather than replaced, exactly as when this function cuts it.
pub(crate) fn finish_line(mut line: Bytes, mut cut: bool, max: usize, stats: &mut ParseStats) -> Bytes {
    if line.len() > max {
        line.truncate(max);
        cut = true;
    }
    if cut {
        stats.truncated += 1;
        line.truncate(complete_prefix_len(&line));
    }
    if std::str::from_utf8(&line).is_ok() {
        return line;
    }
    stats.invalid_utf8 += 1;
    let fixed = String::from_utf8_lossy(&line).into_owned();
    // Each replaced byte may grow from 1 to 3 bytes: cut again if that broke the limit.
    let keep = floor_char_boundary(&fixed, max);
    if keep < fixed.len() && !cut {
        stats.truncated += 1;
    }
    let mut fixed = Bytes::from(fixed);
    fixed.truncate(keep);
    fixed
}

/// Length of `s` without a final multi-byte sequence that a cut left incomplete.
fn complete_prefix_len(s: &[u8]) -> usize {
    let len = s.len();
    // A sequence is at most 4 bytes, so its lead byte is among the last 4.
    for i in (len.saturating_sub(4)..len).rev() {
        let Some(&b) = s.get(i) else { break };
        if b & 0xc0 == 0x80 {
            continue; // continuation byte: keep looking for the lead
        }
        let need = match b {
            0xf0.. => 4,
            0xe0.. => 3,
            0xc0.. => 2,
            _ => 1,
        };
        return if i + need > len { i } else { len };
    }
    len
}

/// The largest char boundary of `s` that is `<= at`.
fn floor_char_boundary(s: &str, at: usize) -> usize {
    if at >= s.len() {
        return s.len();
    }
    (0..=at).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0)
}

/// `line` without one trailing `\r` (CRLF line endings would otherwise show as garbage).
#[inline]
pub(crate) fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn run(line: &[u8], cut: bool, max: usize) -> (Bytes, ParseStats) {
        let mut stats = ParseStats::default();
        let out = finish_line(Bytes::copy_from_slice(line), cut, max, &mut stats);
        (out, stats)
    }

    #[test]
    fn valid_line_is_untouched_and_shared() {
        let line = Bytes::from_static(b"hello \xc3\xa9t\xc3\xa9");
        let mut stats = ParseStats::default();
        let out = finish_line(line.clone(), false, 100, &mut stats);
        assert_eq!(out.as_ptr(), line.as_ptr());
        assert_eq!(stats, ParseStats::default());
    }

    #[test]
    fn cuts_at_char_boundary() {
        // "é" is 2 bytes: a cap of 4 on "abcé" must not split it.
        let (out, stats) = run("abcé".as_bytes(), false, 4);
        assert_eq!(&out[..], b"abc");
        assert_eq!(stats.truncated, 1);
        assert_eq!(stats.invalid_utf8, 0);
        let (out, _) = run("ab€x".as_bytes(), false, 5);
        assert_eq!(&out[..], "ab€".as_bytes());
    }

    #[test]
    fn invalid_bytes_are_replaced() {
        let (out, stats) = run(b"a\xffb", false, 100);
        assert_eq!(&out[..], "a\u{fffd}b".as_bytes());
        assert_eq!(stats.invalid_utf8, 1);
        assert_eq!(stats.truncated, 0);
        // A line ending in an incomplete sequence that was NOT cut is invalid, not trimmed.
        let (out, stats) = run(b"ab\xe2\x82", false, 100);
        assert_eq!(&out[..], "ab\u{fffd}".as_bytes());
        assert_eq!(stats.invalid_utf8, 1);
    }

    #[test]
    fn upstream_cut_trims_broken_char() {
        let (out, stats) = run(b"ab\xe2\x82", true, 100);
        assert_eq!(&out[..], b"ab");
        assert_eq!((stats.truncated, stats.invalid_utf8), (1, 0));
    }

    #[test]
    fn replacement_growth_respects_cap() {
        let (out, stats) = run(b"\xff\xff\xff\xff", false, 4);
        assert_eq!(&out[..], "\u{fffd}".as_bytes());
        assert_eq!((stats.truncated, stats.invalid_utf8), (1, 1));
    }

    #[test]
    fn zero_cap() {
        let (out, stats) = run(b"abc", false, 0);
        assert!(out.is_empty());
        assert_eq!(stats.truncated, 1);
    }

    #[test]
    fn trims_one_cr() {
        assert_eq!(trim_cr(b"a\r"), b"a");
        assert_eq!(trim_cr(b"a\r\r"), b"a\r");
        assert_eq!(trim_cr(b""), b"");
    }

    proptest! {
        #[test]
        fn always_valid_and_capped(line in proptest::collection::vec(any::<u8>(), 0..64), cut: bool, max in 0usize..70) {
            let (out, stats) = run(&line, cut, max);
            prop_assert!(std::str::from_utf8(&out).is_ok());
            prop_assert!(out.len() <= max);
            if std::str::from_utf8(&line).is_ok() && line.len() <= max && !cut {
                prop_assert_eq!(&out[..], &line[..]);
                prop_assert_eq!(stats, ParseStats::default());
            }
        }
    }
}
