//! The little JSON the docker parser needs: find string ends, skip values, unescape strings.
//!
//! A general JSON parser would build values we throw away and copy every string; docker's
//! records are flat objects whose `log` string we want to slice out of the buffer as is. So we
//! scan instead, and unescape only when a string actually has escapes. Values we do not read
//! (e.g. `attrs`) are skipped structurally (strings, nesting) without full validation.

use bytes::{BufMut, BytesMut};

use super::scan::{memchr, memchr2};

/// Index of the first non-whitespace byte at or after `pos`.
#[inline]
pub(crate) fn skip_ws(s: &[u8], mut pos: usize) -> usize {
    while matches!(s.get(pos), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        pos += 1;
    }
    pos
}

/// A JSON string's raw (still escaped) content.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RawStr {
    /// Index of the first content byte (just past the opening quote).
    pub start: usize,
    /// Index of the closing quote.
    pub end: usize,
    /// Index of the first backslash, if any.
    pub first_escape: Option<usize>,
}

/// Scans the string whose opening quote is at `pos`.
#[inline]
pub(crate) fn scan_string(s: &[u8], pos: usize) -> Option<RawStr> {
    if s.get(pos) != Some(&b'"') {
        return None;
    }
    let start = pos + 1;
    let mut at = start;
    let mut first_escape = None;
    loop {
        let i = at + memchr2(b'"', b'\\', s.get(at..)?)?;
        if s.get(i) == Some(&b'"') {
            return Some(RawStr {
                start,
                end: i,
                first_escape,
            });
        }
        first_escape.get_or_insert(i);
        at = i + 2; // the escaped byte cannot end the string
    }
}

/// Index just past the JSON value starting at `pos`; `None` if it is cut off.
pub(crate) fn skip_value(s: &[u8], pos: usize) -> Option<usize> {
    match s.get(pos)? {
        b'"' => scan_string(s, pos).map(|r| r.end + 1),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut at = pos;
            loop {
                match s.get(at)? {
                    b'"' => {
                        at = scan_string(s, at)?.end + 1;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(at + 1);
                        }
                    }
                    _ => {}
                }
                at += 1;
            }
        }
        _ => {
            // Number, true, false, null: up to the next delimiter.
            let len = s
                .get(pos..)?
                .iter()
                .position(|b| matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))?;
            (len > 0).then_some(pos + len)
        }
    }
}

/// Appends the unescaped form of a raw JSON string content to `out`.
///
/// `None` on an invalid escape. Lone surrogates (`\ud800` without its pair) become U+FFFD, as
/// Go's decoder does, so the output is valid UTF-8 whenever the raw bytes are.
pub(crate) fn unescape_into(raw: &[u8], out: &mut BytesMut) -> Option<()> {
    out.reserve(raw.len());
    let mut rest = raw;
    while let Some(i) = memchr(b'\\', rest) {
        out.extend_from_slice(rest.get(..i)?);
        let esc = rest.get(i + 1)?;
        rest = rest.get(i + 2..)?;
        let byte = match esc {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => {
                let (c, used) = unicode_escape(rest)?;
                rest = rest.get(used..)?;
                let mut utf8 = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
                continue;
            }
            _ => return None,
        };
        out.put_u8(byte);
    }
    out.extend_from_slice(rest);
    Some(())
}

/// Decodes `XXXX` (after `\u`), joining a following `\uXXXX` low surrogate; returns the char and
/// how many bytes of `s` it used.
fn unicode_escape(s: &[u8]) -> Option<(char, usize)> {
    let hi = hex4(s)?;
    if !(0xd800..0xdc00).contains(&hi) {
        // BMP char, or a lone low surrogate (from_u32 rejects it).
        return Some((char::from_u32(hi).unwrap_or(char::REPLACEMENT_CHARACTER), 4));
    }
    let lo = match s.get(4..6) {
        Some(b"\\u") => s.get(6..).and_then(hex4),
        _ => None,
    };
    match lo {
        Some(lo @ 0xdc00..=0xdfff) => {
            let c = 0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00);
            Some((char::from_u32(c).unwrap_or(char::REPLACEMENT_CHARACTER), 10))
        }
        // Lone high surrogate: replace it and leave what follows to the caller.
        _ => Some((char::REPLACEMENT_CHARACTER, 4)),
    }
}

fn hex4(s: &[u8]) -> Option<u32> {
    s.get(..4)?
        .iter()
        .try_fold(0u32, |acc, &b| Some(acc << 4 | (b as char).to_digit(16)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn unescape(raw: &str) -> Option<String> {
        let mut out = BytesMut::new();
        unescape_into(raw.as_bytes(), &mut out)?;
        String::from_utf8(out.to_vec()).ok()
    }

    #[test]
    fn escapes() {
        assert_eq!(unescape(r#"plain"#).as_deref(), Some("plain"));
        assert_eq!(
            unescape(r#"a\"b\\c\/d\n\r\t\b\f"#).as_deref(),
            Some("a\"b\\c/d\n\r\t\u{8}\u{c}")
        );
        assert_eq!(unescape(r#"\u00e9\u20AC"#).as_deref(), Some("é€"));
        assert_eq!(unescape(r#"\ud83d\ude00!"#).as_deref(), Some("😀!"));
        assert_eq!(unescape(r#"\u0000"#).as_deref(), Some("\0"));
        assert_eq!(unescape(r#"x\ud83dy"#).as_deref(), Some("x\u{fffd}y"));
        assert_eq!(unescape(r#"\ude00"#).as_deref(), Some("\u{fffd}"));
        assert_eq!(unescape(r#"\ud83d\u0041"#).as_deref(), Some("\u{fffd}A"));
        for bad in [r"\", r"\x", r"\u12", r"\u12g4", r"a\q"] {
            assert_eq!(unescape(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn strings_and_values() {
        let s = br#""a\"b" , {"k":["}",1,{"x":null}]} 12 true"#;
        let r = scan_string(s, 0).unwrap();
        assert_eq!((r.start, r.end, r.first_escape), (1, 5, Some(2)));
        let after = skip_ws(s, r.end + 1);
        assert_eq!(s[after], b',');
        let obj = skip_ws(s, after + 1);
        let end = skip_value(s, obj).unwrap();
        assert_eq!(&s[obj..end], br#"{"k":["}",1,{"x":null}]}"#);
        assert_eq!(skip_value(s, skip_ws(s, end)), Some(end + 3));
        assert_eq!(skip_value(br#"{"a":1"#, 0), None);
        assert_eq!(skip_value(br#""abc"#, 0), None);
        assert_eq!(skip_value(br#""ab\"#, 0), None);
        assert_eq!(skip_value(b"12", 0), None); // no delimiter: the object is cut off
    }

    proptest! {
        /// Agrees with serde_json on every string it can encode (no lone surrogates there).
        #[test]
        fn matches_serde_json(s in any::<String>()) {
            let json = serde_json::to_string(&s).unwrap();
            let raw = scan_string(json.as_bytes(), 0).unwrap();
            prop_assert_eq!(raw.end, json.len() - 1);
            let mut out = BytesMut::new();
            unescape_into(&json.as_bytes()[raw.start..raw.end], &mut out).unwrap();
            prop_assert_eq!(&out[..], s.as_bytes());
        }

        /// `\uXXXX` escapes of any char, with surrogate pairs, decode to that char.
        #[test]
        fn unicode_escapes(c in any::<char>()) {
            let mut units = [0u16; 2];
            let raw: String = c.encode_utf16(&mut units).iter().map(|u| format!("\\u{u:04x}")).collect();
            prop_assert_eq!(unescape(&raw), Some(c.to_string()));
        }

        #[test]
        fn never_panics(s in proptest::collection::vec(any::<u8>(), 0..40), pos in 0usize..42) {
            let _ = scan_string(&s, pos);
            let _ = skip_value(&s, pos);
            let mut out = BytesMut::new();
            let _ = unescape_into(&s, &mut out);
        }
    }
}
