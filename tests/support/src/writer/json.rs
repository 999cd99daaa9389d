//! JSON string escaping as dockerd's json-file driver does it.

/// Appends `s` to `out` as the contents of a JSON string (without the quotes), escaped like
/// dockerd's json-file logger: `"` and `\` backslash-escaped, `\n` `\r` `\t` short-escaped,
/// other control characters and the HTML-sensitive `<` `>` `&` as `\u00XX`, U+2028 and
/// U+2029 as `\u2028`/`\u2029`; all other characters (UTF-8) written as they are.
pub fn escape_json_into(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' => out.push_str(&format!("\\u{:04x}", c as u32)),
            '\u{2028}' | '\u{2029}' => out.push_str(&format!("\\u{:04x}", c as u32)),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
}

/// `s` escaped as by [`escape_json_into`].
pub fn escape_json(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    escape_json_into(s, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_dockerd() {
        assert_eq!(escape_json("a\"b\\c\nd\te"), r#"a\"b\\c\nd\te"#);
        assert_eq!(escape_json("<&>"), r"\u003c\u0026\u003e");
        assert_eq!(escape_json("\u{1}\u{1f}"), r"\u0001\u001f");
        assert_eq!(escape_json("é日本\u{2028}"), "é日本\\u2028");
    }

    #[test]
    fn round_trips_through_serde_json() {
        let all: String = (0u32..0x300).filter_map(char::from_u32).collect();
        for s in [all.as_str(), "\u{7f}\u{2029}🦀", ""] {
            let json = format!("\"{}\"", escape_json(s));
            assert_eq!(serde_json::from_str::<String>(&json).unwrap(), s);
        }
    }
}
