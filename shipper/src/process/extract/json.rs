//! The `json` stage: a small validating scanner walks the object once, guided by a trie of the
//! configured paths; see `extract.rs` for how it fits with `logfmt` and `regex`.

use super::with_source;
use crate::process::config::JsonConfig;
use crate::process::{Extracted, Line};
use std::borrow::Cow;
use std::sync::Arc;

/// One step of a JSON path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(in crate::process) enum Seg {
    Key(Box<str>),
    Index(usize),
}

/// A trie node: the paths that go on through this value, and the extracted names it is for.
#[derive(Debug, Default)]
struct Node {
    keys: Vec<(Box<[u8]>, usize)>,
    indexes: Vec<(usize, usize)>,
    targets: Vec<usize>,
    /// The targets of the nodes below this one.
    below: Vec<usize>,
}

/// Values of the `json` stage: extracted name → path in a JSON object.
#[derive(Debug)]
pub struct JsonStage {
    /// The trie of all paths; `nodes[0]` is the object itself.
    nodes: Vec<Node>,
    /// Extracted names, interned once; trie targets index this.
    names: Vec<Arc<str>>,
    source: Option<String>,
}

/// Deeper nesting is refused as malformed: the scanner recurses, and serde_json stops at the same
/// depth, so a line rejected here would be rejected there too.
const MAX_DEPTH: u32 = 127;

/// Slots for this many values live on the stack; more (rare) take one allocation per line.
const STACK_SLOTS: usize = 8;

impl JsonStage {
    pub fn new(cfg: &JsonConfig) -> Result<JsonStage, String> {
        if cfg.expressions.is_empty() {
            return Err("json stage needs at least one entry in expressions".into());
        }
        let mut nodes = vec![Node::default()];
        let mut names = Vec::with_capacity(cfg.expressions.len());
        for (name, expr) in &cfg.expressions {
            if name.is_empty() {
                return Err(format!("json stage: an extracted name is empty (expression {expr:?})"));
            }
            // "" means the name itself, as one key: names are plain words, never paths.
            let segs = if expr.is_empty() {
                vec![Seg::Key(name.as_str().into())]
            } else {
                parse_path(expr).map_err(|e| format!("json stage: expression {expr:?} (for {name:?}) {e}"))?
            };
            let mut at = 0;
            for seg in segs {
                if let Some(node) = nodes.get_mut(at) {
                    node.below.push(names.len());
                }
                at = child(&mut nodes, at, seg);
            }
            if let Some(node) = nodes.get_mut(at) {
                node.targets.push(names.len());
            }
            names.push(Arc::from(name.as_str()));
        }
        Ok(JsonStage {
            nodes,
            names,
            source: cfg.source.clone(),
        })
    }

    /// Extracts the configured values. `false` when the source is missing or is not one valid
    /// JSON object (then nothing is extracted); a path that is not there is not a failure.
    pub fn apply(&self, line: &mut Line) -> bool {
        with_source(line, self.source.as_deref(), |text, ex| self.extract(text, ex)).unwrap_or(false)
    }

    fn extract(&self, text: &str, ex: &mut Extracted) -> bool {
        let n = self.names.len();
        let mut stack: [Option<Cow<'_, str>>; STACK_SLOTS] = Default::default();
        let mut heap: Vec<Option<Cow<'_, str>>>;
        let slots = match stack.get_mut(..n) {
            Some(s) => s,
            None => {
                heap = vec![None; n];
                &mut heap[..]
            }
        };
        // Values are held back until the whole object has been validated: a malformed line
        // extracts nothing, as in Promtail.
        let mut walk = Walk {
            text,
            b: text.as_bytes(),
            pos: 0,
            nodes: &self.nodes,
            slots,
        };
        if walk.document().is_err() {
            return false;
        }
        for (name, value) in self.names.iter().zip(walk.slots.iter()) {
            if let Some(v) = value {
                ex.set(name, v);
            }
        }
        true
    }
}

/// The child of `nodes[at]` for `seg`, added if new.
fn child(nodes: &mut Vec<Node>, at: usize, seg: Seg) -> usize {
    let next = nodes.len();
    let Some(node) = nodes.get_mut(at) else { return at };
    let found = match &seg {
        Seg::Key(k) => node.keys.iter().find(|(key, _)| **key == *k.as_bytes()).map(|e| e.1),
        Seg::Index(i) => node.indexes.iter().find(|(idx, _)| idx == i).map(|e| e.1),
    };
    if let Some(c) = found {
        return c;
    }
    match seg {
        Seg::Key(k) => node.keys.push((k.into_boxed_bytes(), next)),
        Seg::Index(i) => node.indexes.push((i, next)),
    }
    nodes.push(Node::default());
    next
}

/// Characters a bare key may hold: JMESPath's identifiers, plus `-` and anything else that is
/// not part of JMESPath's syntax (keys such as `x-request-id` or `1st` are common in logs).
fn is_key_char(c: char) -> bool {
    !c.is_whitespace() && !c.is_control() && !".[]\"'*|?()@&!<>=,{}:`$".contains(c)
}

/// Parses `a.b[0]."c.d"["e"]` into segments; the error says what is wrong and where.
pub(in crate::process) fn parse_path(path: &str) -> Result<Vec<Seg>, String> {
    let mut segs = Vec::new();
    let mut rest = path;
    let mut after_dot = false;
    loop {
        match rest.chars().next() {
            Some('"') => {
                let (key, tail) = quoted_key(rest)?;
                segs.push(Seg::Key(key.into()));
                rest = tail;
            }
            Some('[') if segs.is_empty() && !rest.starts_with("[\"") => {
                return Err("starts with an index, but the document is an object".into());
            }
            Some('[') if after_dot => return Err("has `.` right before `[`".into()),
            Some('[') => {}
            Some(c) if is_key_char(c) => {
                let end = rest.find(|c| !is_key_char(c)).unwrap_or(rest.len());
                let (key, tail) = rest.split_at(end);
                segs.push(Seg::Key(key.into()));
                rest = tail;
            }
            Some(c) => {
                return Err(format!(
                    "has {c:?} where a key should be (JMESPath beyond keys and indexes is not supported)"
                ))
            }
            None if after_dot => return Err("ends with `.`".into()),
            None => return Err("is empty".into()),
        }
        while let Some(inner) = rest.strip_prefix('[') {
            if inner.starts_with('"') {
                let (key, tail) = quoted_key(inner)?;
                segs.push(Seg::Key(key.into()));
                rest = tail
                    .strip_prefix(']')
                    .ok_or("has a quoted key in [\"…\"] without its closing `]`")?;
            } else {
                let end = inner.find(']').ok_or("has a `[` without its closing `]`")?;
                let (digits, tail) = inner.split_at(end);
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(format!(
                        "has [{digits}], which is not an index: use a number such as [0] or a quoted key such as [\"k\"] (wildcards, slices and negative indexes are not supported)"
                    ));
                }
                segs.push(Seg::Index(
                    digits
                        .parse()
                        .map_err(|_| format!("has index {digits}, which is too large"))?,
                ));
                rest = tail.get(1..).unwrap_or("");
            }
        }
        match rest.chars().next() {
            None => return Ok(segs),
            Some('.') => {
                rest = rest.get(1..).unwrap_or("");
                after_dot = true;
            }
            Some(c) => return Err(format!("has {c:?} after a key, where `.`, `[` or the end should be")),
        }
    }
}

/// A JSON string at the start of `s` (JMESPath's quoted identifier): its value and what follows.
fn quoted_key(s: &str) -> Result<(String, &str), String> {
    let b = s.as_bytes();
    let mut i = 1;
    while let Some(&c) = b.get(i) {
        match c {
            b'\\' => i += 2,
            b'"' => {
                let (lit, tail) = s.split_at(i + 1);
                let key = serde_json::from_str(lit).map_err(|e| format!("has a bad quoted key {lit}: {e}"))?;
                return Ok((key, tail));
            }
            _ => i += 1,
        }
    }
    Err("has a quoted key without its closing quote".into())
}

/// The document is not one valid JSON object.
struct Malformed;

type Res<T> = Result<T, Malformed>;

/// One pass over a JSON document: validates all of it, decodes only the values the trie wants,
/// into `slots` (one per extracted name; a later duplicate key overwrites, like Go's maps).
struct Walk<'a, 's> {
    text: &'a str,
    b: &'a [u8],
    pos: usize,
    nodes: &'s [Node],
    slots: &'s mut [Option<Cow<'a, str>>],
}

/// The first byte of `s` that ends a run of plain string content: `"`, `\` or a control
/// character. Strings are most of a log line, so clean runs are passed 8 bytes at a time (a word
/// has such a byte iff one of the three masks below has a high bit set).
fn find_special(s: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = ONES * 0x80;
    let zero_byte = |v: u64| v.wrapping_sub(ONES) & !v;
    let mut i = 0;
    while let Some(Ok(word)) = s.get(i..i + 8).map(<[u8; 8]>::try_from) {
        let x = u64::from_le_bytes(word);
        let found = zero_byte(x ^ (ONES * 0x22)) | zero_byte(x ^ (ONES * 0x5C)) | (x.wrapping_sub(ONES * 0x20) & !x);
        if found & HIGHS != 0 {
            break;
        }
        i += 8;
    }
    let tail = s.get(i..)?;
    tail.iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
        .map(|p| p + i)
}

impl<'a> Walk<'a, '_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn document(&mut self) -> Res<()> {
        self.ws();
        if self.peek() != Some(b'{') {
            return Err(Malformed);
        }
        self.object(Some(0), 0)?;
        self.ws();
        if self.pos == self.b.len() {
            Ok(())
        } else {
            Err(Malformed) // trailing garbage: Go and serde_json refuse it too
        }
    }

    /// A value at `pos`; `node` is the trie node it is for (`None`: skipped, only validated).
    fn value(&mut self, node: Option<usize>, depth: u32) -> Res<()> {
        let nodes = self.nodes;
        let Some(nd) = node.and_then(|n| nodes.get(n)) else { return self.skip(depth) };
        let (start, wanted) = (self.pos, !nd.targets.is_empty());
        // A duplicate key replaces all of an earlier value, including what was found inside it.
        for &t in &nd.below {
            if let Some(slot) = self.slots.get_mut(t) {
                *slot = None;
            }
        }
        let value = match self.peek() {
            Some(b'"') => {
                let (s, e, escaped) = self.string()?;
                let raw = self.text.get(s..e).unwrap_or("");
                Some(if wanted && escaped {
                    Cow::Owned(unescape(raw))
                } else {
                    Cow::Borrowed(raw)
                })
            }
            Some(c @ (b'{' | b'[')) => {
                if c == b'{' {
                    self.object(node.filter(|_| !nd.keys.is_empty()), depth)?;
                } else {
                    self.array(node.filter(|_| !nd.indexes.is_empty()), depth)?;
                }
                wanted.then(|| compact(self.text.get(start..self.pos).unwrap_or("")))
            }
            Some(b'n') => self.literal(b"null").map(|_| None)?,
            _ => {
                self.scalar()?;
                Some(Cow::Borrowed(self.text.get(start..self.pos).unwrap_or("")))
            }
        };
        for &t in &nd.targets {
            if let Some(slot) = self.slots.get_mut(t) {
                slot.clone_from(&value);
            }
        }
        Ok(())
    }

    fn skip(&mut self, depth: u32) -> Res<()> {
        match self.peek() {
            Some(b'"') => self.string().map(|_| ()),
            Some(b'{') => self.object(None, depth),
            Some(b'[') => self.array(None, depth),
            _ => self.scalar(),
        }
    }

    /// Enters an object or array at `pos`: `false` if it is empty (and already left).
    fn open(&mut self, close: u8, depth: u32) -> Res<bool> {
        if depth >= MAX_DEPTH {
            return Err(Malformed);
        }
        self.pos += 1;
        self.ws();
        Ok(!self.next_is(close))
    }

    /// After an item: `true` if another follows (`,`), `false` at the closing `close`.
    fn more(&mut self, close: u8) -> Res<bool> {
        self.ws();
        if self.next_is(b',') {
            self.ws();
            Ok(true)
        } else if self.next_is(close) {
            Ok(false)
        } else {
            Err(Malformed)
        }
    }

    /// Steps over `c` if it is next.
    fn next_is(&mut self, c: u8) -> bool {
        let is = self.peek() == Some(c);
        self.pos += usize::from(is);
        is
    }

    fn object(&mut self, node: Option<usize>, depth: u32) -> Res<()> {
        let mut more = self.open(b'}', depth)?;
        while more {
            if self.peek() != Some(b'"') {
                return Err(Malformed);
            }
            let (s, e, escaped) = self.string()?;
            let child = node.and_then(|n| self.child_by_key(n, s, e, escaped));
            self.ws();
            if !self.next_is(b':') {
                return Err(Malformed);
            }
            self.ws();
            self.value(child, depth + 1)?;
            more = self.more(b'}')?;
        }
        Ok(())
    }

    fn child_by_key(&self, node: usize, s: usize, e: usize, escaped: bool) -> Option<usize> {
        let keys = &self.nodes.get(node)?.keys;
        if keys.is_empty() {
            return None;
        }
        let key = match escaped {
            false => Cow::Borrowed(self.text.get(s..e)?),
            true => Cow::Owned(unescape(self.text.get(s..e)?)),
        };
        keys.iter().find(|(k, _)| **k == *key.as_bytes()).map(|e| e.1)
    }

    fn array(&mut self, node: Option<usize>, depth: u32) -> Res<()> {
        let nodes = self.nodes;
        let indexes = node.and_then(|n| nodes.get(n)).map_or(&[][..], |n| &n.indexes[..]);
        let mut more = self.open(b']', depth)?;
        let mut i = 0usize;
        while more {
            let child = indexes.iter().find(|(idx, _)| *idx == i).map(|e| e.1);
            self.value(child, depth + 1)?;
            more = self.more(b']')?;
            i += 1;
        }
        Ok(())
    }

    /// A string at `pos` (its opening quote): the range of its content and whether it has escapes.
    fn string(&mut self) -> Res<(usize, usize, bool)> {
        self.pos += 1;
        let start = self.pos;
        let mut escaped = false;
        loop {
            self.pos += find_special(self.b.get(self.pos..).ok_or(Malformed)?).ok_or(Malformed)?;
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok((start, self.pos - 1, escaped));
                }
                Some(b'\\') => {
                    escaped = true;
                    match self.b.get(self.pos + 1) {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.pos += 2,
                        Some(b'u') => {
                            let hex = self.b.get(self.pos + 2..self.pos + 6).ok_or(Malformed)?;
                            if !hex.iter().all(u8::is_ascii_hexdigit) {
                                return Err(Malformed);
                            }
                            self.pos += 6;
                        }
                        _ => return Err(Malformed),
                    }
                }
                _ => return Err(Malformed), // a raw control character
            }
        }
    }

    fn literal(&mut self, word: &[u8]) -> Res<()> {
        if self.b.get(self.pos..self.pos + word.len()) == Some(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(Malformed)
        }
    }

    /// `true`, `false`, `null` or a number (JSON's grammar: no leading zeros, `+`, `.5` or `NaN`).
    fn scalar(&mut self) -> Res<()> {
        match self.peek() {
            Some(b't') => return self.literal(b"true"),
            Some(b'f') => return self.literal(b"false"),
            Some(b'n') => return self.literal(b"null"),
            _ => {}
        }
        let start = self.pos;
        self.next_is(b'-');
        if !self.next_is(b'0') && self.digits() == 0 {
            return Err(Malformed);
        }
        if self.next_is(b'.') && self.digits() == 0 {
            return Err(Malformed);
        }
        let exponent = self.next_is(b'e') || self.next_is(b'E');
        if exponent {
            let _sign = self.next_is(b'+') || self.next_is(b'-');
            if self.digits() == 0 {
                return Err(Malformed);
            }
        }
        // Go (and serde_json) refuse a number beyond f64 (`1e400`), so Promtail does too.
        let text = self.text.get(start..self.pos).unwrap_or("");
        if (exponent || text.len() > 309) && !text.parse::<f64>().is_ok_and(f64::is_finite) {
            return Err(Malformed);
        }
        Ok(())
    }

    /// Steps over digits: how many.
    fn digits(&mut self) -> usize {
        let n = self
            .b
            .get(self.pos..)
            .unwrap_or_default()
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        self.pos += n;
        n
    }
}

/// An object or array as compact JSON: whitespace between tokens removed (usually there is none,
/// and the text is borrowed as is).
fn compact(raw: &str) -> Cow<'_, str> {
    let mut out: Option<String> = None;
    let mut run = 0;
    let (mut in_string, mut escape) = (false, false);
    for (i, c) in raw.bytes().enumerate() {
        if in_string {
            if escape {
                escape = false;
            } else if c == b'\\' {
                escape = true;
            } else if c == b'"' {
                in_string = false;
            }
            continue;
        }
        match c {
            b'"' => in_string = true,
            b' ' | b'\t' | b'\n' | b'\r' => {
                let o = out.get_or_insert_with(|| String::with_capacity(raw.len()));
                o.push_str(raw.get(run..i).unwrap_or(""));
                run = i + 1;
            }
            _ => {}
        }
    }
    match out {
        None => Cow::Borrowed(raw),
        Some(mut o) => {
            o.push_str(raw.get(run..).unwrap_or(""));
            Cow::Owned(o)
        }
    }
}

/// Four hex digits (and nothing else) as a number.
fn hex4(s: Option<&str>) -> Option<u32> {
    let s = s.filter(|s| s.len() == 4 && s.bytes().all(|b| b.is_ascii_hexdigit()))?;
    u32::from_str_radix(s, 16).ok()
}

/// Decodes JSON escapes (also those of logfmt's quoted values, which are the same plus `\'`).
/// A surrogate pair becomes its character; a lone surrogate becomes U+FFFD, as in Go. Unknown or
/// cut escapes are kept as written (only logfmt lets them through: JSON was validated first).
pub(super) fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some((before, after)) = rest.split_once('\\') {
        out.push_str(before);
        let (c, len) = escape(after).unwrap_or(('\\', 0));
        out.push(c);
        rest = after.get(len..).unwrap_or("");
    }
    out.push_str(rest);
    out
}

/// The escape `e` starts with (after its backslash): its character and length, `None` if it is
/// not one.
fn escape(e: &str) -> Option<(char, usize)> {
    let c = match e.as_bytes().first()? {
        c @ (b'"' | b'\\' | b'/' | b'\'') => char::from(*c),
        b'b' => '\u{8}',
        b'f' => '\u{c}',
        b'n' => '\n',
        b'r' => '\r',
        b't' => '\t',
        b'u' => {
            let hi = hex4(e.get(1..5))?;
            if !(0xD800..0xDC00).contains(&hi) {
                return Some((char::from_u32(hi).unwrap_or('\u{FFFD}'), 5));
            }
            let lo = e.get(5..7).filter(|p| *p == "\\u").and_then(|_| hex4(e.get(7..11)));
            return Some(match lo.filter(|lo| (0xDC00..0xE000).contains(lo)) {
                Some(lo) => (
                    char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)).unwrap_or('\u{FFFD}'),
                    11,
                ),
                None => ('\u{FFFD}', 5),
            });
        }
        _ => return None,
    };
    Some((c, 1))
}
