//! The parser stages `json`, `logfmt` and `regex`: values from the line (or from a value an earlier
//! stage extracted) into the line's extracted map, as Promtail's stages of the same names do.
//!
//! They run once per line, so none of them builds a tree of the document:
//!
//! - `json` walks the object once with a small validating scanner, guided by a trie of the
//!   configured paths (compiled in `new`): values no path wants are skipped without being decoded,
//!   wanted strings are borrowed from the line unless they contain escapes.
//! - `logfmt` splits `key=value` pairs in one pass and decodes only the values it maps.
//! - `regex` is one `captures` call.
//!
//! Differences from Promtail, all deliberate: JSON paths are a subset of JMESPath (keys, indexes,
//! quoted keys) plus bare keys such as `x-request-id`; numbers keep the text they were written
//! with (`1.5e3`, not `1500`); objects and arrays keep their key order (compacted); logfmt is
//! lenient (a malformed pair is skipped, not the end of the line); a regex group that did not take
//! part in the match is left unset rather than set to "".

mod json;

use json::unescape;
pub use json::JsonStage;
pub(super) use json::{parse_path, Seg};

use super::config::{LogfmtConfig, RegexConfig};
use super::{Extracted, Line};
use regex::Regex;
use std::borrow::Cow;
use std::sync::Arc;

/// Runs `f` on what a stage with `source` reads and on the line's extracted values, which it may
/// change while it reads. The line's text is read in place (the map is moved out meanwhile); an
/// extracted source is copied first, as `f` may overwrite it. `None` when the source is missing.
fn with_source<R>(line: &mut Line, source: Option<&str>, f: impl FnOnce(&str, &mut Extracted) -> R) -> Option<R> {
    match source {
        None => {
            let mut ex = std::mem::take(&mut line.extracted);
            let r = f(line.text(), &mut ex);
            line.extracted = ex;
            Some(r)
        }
        Some(name) => {
            let value = line.extracted.get(name)?.to_owned();
            Some(f(&value, &mut line.extracted))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// logfmt

/// Values of the `logfmt` stage: extracted name → logfmt key.
#[derive(Debug)]
pub struct LogfmtStage {
    /// logfmt key → the extracted names it feeds (usually one).
    keys: Vec<(Box<str>, Vec<Arc<str>>)>,
    source: Option<String>,
}

impl LogfmtStage {
    pub fn new(cfg: &LogfmtConfig) -> Result<LogfmtStage, String> {
        if cfg.mapping.is_empty() {
            return Err("logfmt stage needs at least one entry in mapping".into());
        }
        let mut keys: Vec<(Box<str>, Vec<Arc<str>>)> = Vec::new();
        for (name, key) in &cfg.mapping {
            if name.is_empty() {
                return Err(format!("logfmt stage: an extracted name is empty (key {key:?})"));
            }
            let key = if key.is_empty() { name } else { key };
            if key.contains(|c: char| c <= ' ' || c == '=' || c == '"') {
                return Err(format!(
                    "logfmt stage: key {key:?} (for {name:?}) cannot occur in logfmt: it has a space, `=` or `\"`"
                ));
            }
            let name: Arc<str> = Arc::from(name.as_str());
            match keys.iter_mut().find(|(k, _)| **k == **key) {
                Some((_, names)) => names.push(name),
                None => keys.push((key.as_str().into(), vec![name])),
            }
        }
        Ok(LogfmtStage {
            keys,
            source: cfg.source.clone(),
        })
    }

    /// Extracts the mapped keys that the text has (a later duplicate wins). logfmt has no invalid
    /// input here: text that is not `key=value` is skipped, so this is `false` only when the
    /// source is missing.
    pub fn apply(&self, line: &mut Line) -> bool {
        with_source(line, self.source.as_deref(), |text, ex| {
            logfmt_pairs(text, |key, value, quoted| {
                if let Some((_, names)) = self.keys.iter().find(|(k, _)| **k == *key) {
                    let value = if quoted {
                        Cow::Owned(unescape(value))
                    } else {
                        Cow::Borrowed(value)
                    };
                    for name in names {
                        ex.set(name, &value);
                    }
                }
            })
        })
        .is_some()
    }
}

/// Calls `f(key, value, has_escapes)` for each pair, as go-logfmt splits them: bytes up to space
/// are separators, a bare key has the value "", a quoted value runs to its unescaped closing
/// quote (or the end of the text). Unlike go-logfmt it never stops early: `=` or `"` inside an
/// unquoted value is kept (`url=/a?b=c`), a token starting with `"` or `=` is skipped.
fn logfmt_pairs(text: &str, mut f: impl FnMut(&str, &str, bool)) {
    let b = text.as_bytes();
    let at = |i: usize| b.get(i).copied();
    let token_end = |mut i: usize| {
        while at(i).is_some_and(|c| c > b' ') {
            i += 1;
        }
        i
    };
    let mut i = 0;
    loop {
        while at(i).is_some_and(|c| c <= b' ') {
            i += 1;
        }
        let start = i;
        match at(i) {
            None => return,
            Some(b'"') => i = token_end(quoted_end(b, i).2),
            Some(b'=') => i = token_end(i),
            Some(_) => {
                while at(i).is_some_and(|c| c > b' ' && c != b'=') {
                    i += 1;
                }
                let key = text.get(start..i).unwrap_or("");
                if at(i) != Some(b'=') {
                    f(key, "", false);
                } else if at(i + 1) == Some(b'"') {
                    let (escaped, close, next) = quoted_end(b, i + 1);
                    f(key, text.get(i + 2..close).unwrap_or(""), escaped);
                    i = token_end(next);
                } else {
                    let end = token_end(i + 1);
                    f(key, text.get(i + 1..end).unwrap_or(""), false);
                    i = end;
                }
            }
        }
    }
}

/// From the opening quote at `open`: whether the string has escapes, where its content ends (its
/// closing quote, or the end of the text if it has none) and where the text goes on after it.
fn quoted_end(b: &[u8], open: usize) -> (bool, usize, usize) {
    let mut i = open + 1;
    let mut escaped = false;
    while let Some(&c) = b.get(i) {
        match c {
            b'\\' => {
                escaped = true;
                i += 2;
            }
            b'"' => return (escaped, i, i + 1),
            _ => i += 1,
        }
    }
    (escaped, b.len(), b.len())
}

// ---------------------------------------------------------------------------------------------
// regex

/// Values of the `regex` stage: the named groups of a regular expression.
#[derive(Debug)]
pub struct RegexStage {
    re: Regex,
    /// Group index → extracted name, for the named groups.
    groups: Vec<(usize, Arc<str>)>,
    source: Option<String>,
}

impl RegexStage {
    pub fn new(cfg: &RegexConfig) -> Result<RegexStage, String> {
        if cfg.expression.is_empty() {
            return Err("regex stage needs an expression".into());
        }
        let re = Regex::new(&cfg.expression)
            .map_err(|e| format!("regex stage: expression {:?} does not compile: {e}", cfg.expression))?;
        let groups: Vec<_> = re
            .capture_names()
            .enumerate()
            .filter_map(|(i, n)| n.map(|n| (i, Arc::from(n))))
            .collect();
        if groups.is_empty() {
            return Err(format!(
                "regex stage: expression {:?} has no named group (?P<name>…): nothing would be extracted",
                cfg.expression
            ));
        }
        Ok(RegexStage {
            re,
            groups,
            source: cfg.source.clone(),
        })
    }

    /// Extracts every named group that took part in the first match. `false` when the source is
    /// missing or the expression does not match.
    pub fn apply(&self, line: &mut Line) -> bool {
        with_source(line, self.source.as_deref(), |text, ex| {
            let Some(caps) = self.re.captures(text) else { return false };
            for (i, name) in &self.groups {
                if let Some(m) = caps.get(*i) {
                    ex.set(name, m.as_str());
                }
            }
            true
        })
        .unwrap_or(false)
    }
}

#[cfg(test)]
#[path = "extract_tests.rs"]
mod tests;
