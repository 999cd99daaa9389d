//! Parsing and formatting of the Prometheus text form of a label set:
//! `{app="logger", namespace="monitoring"}`.
//!
//! The parser accepts what Loki's LogQL stream-selector parser accepts for a push: `name="value"`
//! pairs separated by commas, optional whitespace, values in double quotes with Go string escapes
//! (`\"`, `\\`, `\n`, `\t`, `\r`, `\'`, `\a`, `\b`, `\f`, `\v`, `\xHH` for ASCII, `\uXXXX`,
//! `\UXXXXXXXX`) or in backticks (raw). Duplicate names are *parsed* (the validator reports them
//! as `duplicate_label_names`); `{}` and an empty string parse to an empty set
//! (`missing_labels`).

/// A parsed label set, in the order written.
pub type LabelPairs = Vec<(String, String)>;

/// Parses a label string. The error is a human-readable parse error.
pub fn parse_labels(input: &str) -> Result<LabelPairs, String> {
    let s = input.trim();
    if s.is_empty() {
        return Ok(Vec::new());
    }
    let mut p = Parser {
        chars: s.char_indices().peekable(),
        src: s,
    };
    p.expect('{')?;
    let mut pairs = Vec::new();
    p.skip_ws();
    if p.eat('}') {
        return p.end(pairs);
    }
    loop {
        p.skip_ws();
        let name = p.name()?;
        p.skip_ws();
        p.expect('=')?;
        p.skip_ws();
        let value = p.value()?;
        pairs.push((name, value));
        p.skip_ws();
        if p.eat('}') {
            return p.end(pairs);
        }
        p.expect(',')?;
    }
}

/// Formats a label set the way Prometheus' `labels.String()` does: `{a="1", b="2"}`, values
/// escaped with `\\`, `\"` and `\n` (and other control characters as `\t`, `\r`, `\u00XX`).
pub fn format_labels(pairs: &[(String, String)]) -> String {
    let mut out = String::from("{");
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(name);
        out.push_str("=\"");
        escape_into(value, &mut out);
        out.push('"');
    }
    out.push('}');
    out
}

/// Parses `input`, sorts the pairs by name and formats them: the key under which the receiver
/// stores a stream. Two label strings name the same stream iff their normalized forms are equal.
pub fn normalize_labels(input: &str) -> Result<String, String> {
    let mut pairs = parse_labels(input)?;
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(format_labels(&pairs))
}

/// Whether `name` matches `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_valid_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'A'..=b'Z' | b'_'))
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn escape_into(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
}

struct Parser<'a> {
    chars: std::iter::Peekable<std::str::CharIndices<'a>>,
    src: &'a str,
}

impl Parser<'_> {
    fn pos(&mut self) -> usize {
        self.chars.peek().map_or(self.src.len(), |&(i, _)| i)
    }

    fn err(&mut self, what: &str) -> String {
        let pos = self.pos();
        match self.chars.peek() {
            Some(&(_, c)) => format!("parse error at byte {pos}: {what}, found {c:?}"),
            None => format!("parse error at byte {pos}: {what}, found end of input"),
        }
    }

    fn skip_ws(&mut self) {
        while self.chars.next_if(|&(_, c)| c.is_whitespace()).is_some() {}
    }

    fn eat(&mut self, want: char) -> bool {
        self.chars.next_if(|&(_, c)| c == want).is_some()
    }

    fn expect(&mut self, want: char) -> Result<(), String> {
        if self.eat(want) {
            Ok(())
        } else {
            Err(self.err(&format!("expected {want:?}")))
        }
    }

    fn end(mut self, pairs: LabelPairs) -> Result<LabelPairs, String> {
        self.skip_ws();
        match self.chars.peek() {
            None => Ok(pairs),
            Some(_) => Err(self.err("unexpected text after '}'")),
        }
    }

    fn name(&mut self) -> Result<String, String> {
        let mut name = String::new();
        while let Some((_, c)) = self.chars.next_if(|&(_, c)| c.is_ascii_alphanumeric() || c == '_') {
            name.push(c);
        }
        if !is_valid_label_name(&name) {
            return Err(self.err(&format!("invalid label name {name:?}")));
        }
        Ok(name)
    }

    fn value(&mut self) -> Result<String, String> {
        match self.chars.next() {
            Some((_, '"')) => self.quoted(),
            Some((_, '`')) => {
                let mut v = String::new();
                loop {
                    match self.chars.next() {
                        Some((_, '`')) => return Ok(v),
                        Some((_, c)) => v.push(c),
                        None => return Err(self.err("unterminated raw string")),
                    }
                }
            }
            _ => Err(self.err("expected a quoted label value")),
        }
    }

    fn quoted(&mut self) -> Result<String, String> {
        let mut v = String::new();
        loop {
            match self.chars.next() {
                None => return Err(self.err("unterminated string")),
                Some((_, '"')) => return Ok(v),
                Some((_, '\n')) => return Err(self.err("newline in string")),
                Some((_, '\\')) => v.push(self.escape()?),
                Some((_, c)) => v.push(c),
            }
        }
    }

    fn escape(&mut self) -> Result<char, String> {
        let c = match self.chars.next() {
            Some((_, c)) => c,
            None => return Err(self.err("unterminated escape")),
        };
        Ok(match c {
            '"' => '"',
            '\\' => '\\',
            '\'' => '\'',
            'n' => '\n',
            't' => '\t',
            'r' => '\r',
            'a' => '\u{7}',
            'b' => '\u{8}',
            'f' => '\u{c}',
            'v' => '\u{b}',
            'x' => self
                .hex(2)
                .filter(|&c| c.is_ascii())
                .ok_or_else(|| self.err("bad \\x escape"))?,
            'u' => self.hex(4).ok_or_else(|| self.err("bad \\u escape"))?,
            'U' => self.hex(8).ok_or_else(|| self.err("bad \\U escape"))?,
            other => return Err(self.err(&format!("unknown escape \\{other}"))),
        })
    }

    fn hex(&mut self, digits: usize) -> Option<char> {
        let mut n = 0u32;
        for _ in 0..digits {
            let (_, c) = self.chars.next_if(|&(_, c)| c.is_ascii_hexdigit())?;
            n = n * 16 + c.to_digit(16)?;
        }
        char::from_u32(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Vec<(&'static str, String)> {
        parse_labels(s)
            .unwrap()
            .into_iter()
            .map(|(n, v)| (String::leak(n) as &str, v))
            .collect()
    }

    #[test]
    fn parses_the_usual_forms() {
        assert_eq!(p(r#"{app="x"}"#), vec![("app", "x".into())]);
        assert_eq!(p(r#" { b = "2" ,a="1"} "#), vec![("b", "2".into()), ("a", "1".into())]);
        assert_eq!(p(r#"{a="q\"b\\s\nn"}"#), vec![("a", "q\"b\\s\nn".into())]);
        assert_eq!(p("{a=`raw\\n`}"), vec![("a", "raw\\n".into())]);
        assert_eq!(p(r#"{a="\u00e9\x41"}"#), vec![("a", "éA".into())]);
        assert!(p("{}").is_empty());
        assert!(p("").is_empty());
    }

    #[test]
    fn rejects_bad_syntax() {
        for bad in [
            "app=\"x\"",
            "{app=x}",
            "{app=\"x\"",
            "{1app=\"x\"}",
            "{app-x=\"x\"}",
            "{app=\"x\",}",
            "{app=\"x\"} junk",
            "{app=\"\\q\"}",
            "{app=\"x\" b=\"y\"}",
        ] {
            assert!(parse_labels(bad).is_err(), "{bad} should not parse");
        }
    }

    #[test]
    fn normalizes_by_sorting_and_escaping() {
        assert_eq!(
            normalize_labels(r#"{namespace="monitoring",app="lo\"g"}"#).unwrap(),
            r#"{app="lo\"g", namespace="monitoring"}"#
        );
        let key = normalize_labels(r#"{a="x\ny\\"}"#).unwrap();
        assert_eq!(key, r#"{a="x\ny\\"}"#);
        assert_eq!(normalize_labels(&key).unwrap(), key);
    }

    #[test]
    fn label_name_rule() {
        assert!(is_valid_label_name("_a1"));
        assert!(is_valid_label_name("Z"));
        assert!(!is_valid_label_name(""));
        assert!(!is_valid_label_name("1a"));
        assert!(!is_valid_label_name("a.b"));
    }
}
