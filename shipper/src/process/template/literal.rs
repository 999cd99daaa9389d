//! The template's literals: quoted strings, characters and numbers, read as Go reads them.

use super::Operand;

/// The end (exclusive) of the quoted text starting `s`, its quote `q` included.
pub(super) fn quoted_end(s: &str, q: char) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in s.char_indices().skip(1) {
        match c {
            '\n' => return None,
            '\\' if !escaped => escaped = true,
            c if c == q && !escaped => return Some(i + 1),
            _ => escaped = false,
        }
    }
    None
}

/// Go's escapes (`\n`, `\x41`, `\101`, `\u00e9`, `\U0001F600`, ...) into bytes.
pub(super) fn unquote(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut buf = [0; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        let e = chars.next()?;
        let simple = match e {
            'a' => Some(7),
            'b' => Some(8),
            'f' => Some(12),
            'n' => Some(b'\n'),
            'r' => Some(b'\r'),
            't' => Some(b'\t'),
            'v' => Some(11),
            '\\' | '\'' | '"' => Some(e as u8),
            _ => None,
        };
        if let Some(b) = simple {
            out.push(b);
            continue;
        }
        let (digits, radix) = match e {
            'x' => (2, 16),
            'u' => (4, 16),
            'U' => (8, 16),
            '0'..='7' => (2, 8),
            _ => return None,
        };
        let mut text: String = if radix == 8 { e.to_string() } else { String::new() };
        for _ in 0..digits {
            text.push(chars.next()?);
        }
        let v = u32::from_str_radix(&text, radix).ok()?;
        if matches!(e, 'x' | '0'..='7') {
            out.push(u8::try_from(v).ok()?);
        } else {
            let mut buf = [0; 4];
            out.extend_from_slice(char::from_u32(v)?.encode_utf8(&mut buf).as_bytes());
        }
    }
    Some(out)
}

/// A character constant's value: one character, or one byte written `\x..` or in octal.
pub(super) fn char_value(raw: &str, bytes: &[u8]) -> Option<i64> {
    if raw.starts_with("\\x")
        || raw.starts_with("\\0")
        || raw.starts_with("\\1")
        || raw.starts_with("\\2")
        || raw.starts_with("\\3")
    {
        return (bytes.len() == 1).then(|| i64::from(bytes[0]));
    }
    let s = std::str::from_utf8(bytes).ok()?;
    let mut cs = s.chars();
    let c = cs.next()?;
    cs.next().is_none().then_some(i64::from(u32::from(c)))
}

/// A number literal: an integer (decimal, `0x`, `0o`, `0b`, leading-zero octal, `_` separators)
/// or a float (`1.5`, `1e3`).
pub(super) fn number(text: &str) -> Option<Operand> {
    let (neg, body) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    if !body.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
        return None;
    }
    let clean = body.replace('_', "");
    let lower = clean.to_ascii_lowercase();
    let int = if let Some(h) = lower.strip_prefix("0x") {
        Some(i128::from_str_radix(h, 16).ok()?)
    } else if let Some(o) = lower.strip_prefix("0o") {
        Some(i128::from_str_radix(o, 8).ok()?)
    } else if let Some(b) = lower.strip_prefix("0b") {
        Some(i128::from_str_radix(b, 2).ok()?)
    } else if clean.bytes().all(|c| c.is_ascii_digit()) {
        let radix = if clean.len() > 1 && clean.starts_with('0') {
            8
        } else {
            10
        };
        Some(i128::from_str_radix(&clean, radix).ok()?)
    } else {
        None
    };
    if let Some(i) = int {
        let i = if neg { -i } else { i };
        return i64::try_from(i).ok().map(Operand::Int);
    }
    let f: f64 = clean.parse().ok()?;
    f.is_finite().then_some(Operand::Float(if neg { -f } else { f }))
}
