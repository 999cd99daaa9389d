//! LogQL stream selectors with line filters, as Promtail's `match` stage takes them:
//! `{app="api", level!="debug", namespace=~"prod-.*", pod!~"canary-.*"} |= "error" != "timeout"`.
//! Label matchers compare whole values (regexes are anchored, as in LogQL); line filters look
//! anywhere in the line (`|=` contains, `!=` does not, `|~` matches, `!~` does not).

use regex::Regex;

enum Op {
    Eq(String),
    Ne(String),
    Re(Regex),
    NotRe(Regex),
}

enum LineFilter {
    Contains(String),
    NotContains(String),
    Matches(Regex),
    NotMatches(Regex),
}

pub struct Selector {
    labels: Vec<(String, Op)>,
    lines: Vec<LineFilter>,
}

impl Selector {
    pub fn parse(text: &str) -> Result<Selector, String> {
        let mut p = Parser { rest: text.trim() };
        p.expect('{')?;
        let mut labels = Vec::new();
        loop {
            p.skip_ws();
            if p.eat('}') {
                break;
            }
            let name = p.ident()?;
            p.skip_ws();
            let op = p.op(&["=~", "!~", "!=", "="])?;
            p.skip_ws();
            let value = p.string()?;
            let anchored = |v: &str| Regex::new(&format!("^(?:{v})$")).map_err(|e| format!("`{v}`: {e}"));
            labels.push((
                name,
                match op {
                    "=" => Op::Eq(value),
                    "!=" => Op::Ne(value),
                    "=~" => Op::Re(anchored(&value)?),
                    _ => Op::NotRe(anchored(&value)?),
                },
            ));
            p.skip_ws();
            if !p.eat(',') {
                p.expect('}')?;
                break;
            }
        }
        if labels.is_empty() {
            return Err(format!("`{text}`: a selector needs at least one label matcher"));
        }
        let mut lines = Vec::new();
        loop {
            p.skip_ws();
            if p.rest.is_empty() {
                break;
            }
            let op = p.op(&["|=", "!=", "|~", "!~"])?;
            p.skip_ws();
            let value = p.string()?;
            let re = |v: &str| Regex::new(v).map_err(|e| format!("`{v}`: {e}"));
            lines.push(match op {
                "|=" => LineFilter::Contains(value),
                "!=" => LineFilter::NotContains(value),
                "|~" => LineFilter::Matches(re(&value)?),
                _ => LineFilter::NotMatches(re(&value)?),
            });
        }
        Ok(Selector { labels, lines })
    }

    /// Whether a line with these labels (`label(name)`, None when unset) and this text matches.
    pub fn matches<'a>(&self, label: impl Fn(&str) -> Option<&'a str>, line: &[u8]) -> bool {
        let labels_match = self.labels.iter().all(|(name, op)| {
            let v = label(name).unwrap_or("");
            match op {
                Op::Eq(want) => v == want,
                Op::Ne(want) => v != want,
                Op::Re(re) => re.is_match(v),
                Op::NotRe(re) => !re.is_match(v),
            }
        });
        if !labels_match {
            return false;
        }
        let text = String::from_utf8_lossy(line);
        self.lines.iter().all(|f| match f {
            LineFilter::Contains(s) => text.contains(s.as_str()),
            LineFilter::NotContains(s) => !text.contains(s.as_str()),
            LineFilter::Matches(re) => re.is_match(&text),
            LineFilter::NotMatches(re) => !re.is_match(&text),
        })
    }
}

struct Parser<'a> {
    rest: &'a str,
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        self.rest = self.rest.trim_start();
    }

    fn eat(&mut self, c: char) -> bool {
        match self.rest.strip_prefix(c) {
            Some(r) => {
                self.rest = r;
                true
            }
            None => false,
        }
    }

    fn expect(&mut self, c: char) -> Result<(), String> {
        self.skip_ws();
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!("expected `{c}` at `{}`", self.rest))
        }
    }

    fn ident(&mut self) -> Result<String, String> {
        let end = self
            .rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(self.rest.len());
        if end == 0 || self.rest.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(format!("expected a label name at `{}`", self.rest));
        }
        let (name, rest) = self.rest.split_at(end);
        self.rest = rest;
        Ok(name.to_string())
    }

    fn op(&mut self, ops: &[&'static str]) -> Result<&'static str, String> {
        for op in ops {
            if let Some(r) = self.rest.strip_prefix(op) {
                self.rest = r;
                return Ok(op);
            }
        }
        Err(format!("expected one of {} at `{}`", ops.join(" "), self.rest))
    }

    /// A double-quoted string with Go's escapes (`\"`, `\\`, `\n`, `\t`), or a backquoted raw one.
    fn string(&mut self) -> Result<String, String> {
        if let Some(r) = self.rest.strip_prefix('`') {
            let end = r.find('`').ok_or("a backquoted string without its closing `")?;
            self.rest = &r[end + 1..];
            return Ok(r[..end].to_string());
        }
        let Some(r) = self.rest.strip_prefix('"') else {
            return Err(format!("expected a quoted string at `{}`", self.rest));
        };
        let mut out = String::new();
        let mut chars = r.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    self.rest = &r[i + 1..];
                    return Ok(out);
                }
                '\\' => match chars.next().map(|(_, e)| e) {
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some(e) => out.push(e),
                    None => break,
                },
                c => out.push(c),
            }
        }
        Err("a quoted string without its closing \"".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<&'a str> {
        move |n| pairs.iter().find(|(k, _)| *k == n).map(|(_, v)| *v)
    }

    #[test]
    fn label_matchers_and_line_filters_as_logql() {
        let s =
            Selector::parse(r#"{app="api", level!="debug", ns=~"prod-.*", pod!~"canary-.*"} |= "error" != "timeout""#)
                .unwrap();
        let l = [("app", "api"), ("level", "info"), ("ns", "prod-eu"), ("pod", "api-1")];
        assert!(s.matches(labels(&l), b"an error here"));
        assert!(!s.matches(labels(&l), b"an error: timeout"));
        assert!(!s.matches(labels(&l), b"all good"));
        let canary = [("app", "api"), ("ns", "prod-eu"), ("pod", "canary-1")];
        assert!(!s.matches(labels(&canary), b"error"));
        // Regexes match whole values, as in LogQL.
        assert!(!s.matches(labels(&[("app", "api"), ("ns", "xprod-eu")]), b"error"));
        let r = Selector::parse(r#"{container="app"} |~ "^\\d{4}-" !~ `health`"#).unwrap();
        assert!(r.matches(labels(&[("container", "app")]), b"2024-01-01 start"));
        assert!(!r.matches(labels(&[("container", "app")]), b"2024-01-01 healthcheck"));
        // A label the line lacks is "".
        assert!(Selector::parse(r#"{team=""}"#).unwrap().matches(labels(&[]), b"x"));
    }

    #[test]
    fn bad_selectors_say_where() {
        for (bad, says) in [
            ("app=\"a\"", "expected `{`"),
            ("{}", "at least one"),
            ("{app=\"a\"", "expected `}`"),
            ("{app=~\"(\"}", "`(`"),
            ("{app=\"a} ", "closing"),
            ("{app=\"a\"} |> \"x\"", "expected one of"),
        ] {
            let err = Selector::parse(bad).err().unwrap_or_else(|| panic!("{bad} parsed"));
            assert!(err.contains(says), "{bad}: {err}");
        }
    }
}
