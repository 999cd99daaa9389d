//! What a line carries through the stages: the line itself, its timestamp and stream, the values
//! parser stages extracted from it, and the changes stages made to its labels, structured metadata
//! and tenant (applied to the file's labels once, when the line leaves the pipeline).

use crate::labels::StreamLabels;
use crate::parse::StreamKind;
use bytes::Bytes;
use std::sync::Arc;

/// Values extracted from a line by parser stages (`json`, `logfmt`, `regex`), read by later stages
/// through their `source`. Few per line, so a vector beats a map.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Extracted {
    fields: Vec<(Arc<str>, String)>,
}

impl Extracted {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|(n, _)| &**n == name).map(|(_, v)| v.as_str())
    }

    /// Sets `name` to `value`, replacing an earlier value of the same name.
    pub fn set(&mut self, name: &Arc<str>, value: &str) {
        match self.fields.iter_mut().find(|(n, _)| **n == **name) {
            Some((_, v)) => {
                v.clear();
                v.push_str(value);
            }
            None => self.fields.push((name.clone(), value.to_string())),
        }
    }

    /// Sets `name` to `value` formatted (a number, say) in place: no string in between.
    pub fn set_fmt(&mut self, name: &Arc<str>, value: std::fmt::Arguments<'_>) {
        use std::fmt::Write;
        let i = match self.fields.iter().position(|(n, _)| **n == **name) {
            Some(i) => i,
            None => {
                self.fields.push((name.clone(), String::new()));
                self.fields.len() - 1
            }
        };
        let v = &mut self.fields[i].1;
        v.clear();
        // Writing to a String cannot fail.
        let _ = v.write_fmt(value);
    }

    /// Removes `name` (nothing when it is not set).
    pub fn remove(&mut self, name: &str) {
        self.fields.retain(|(n, _)| &**n != name);
    }

    pub fn clear(&mut self) {
        self.fields.clear();
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields.iter().map(|(n, v)| (&**n, v.as_str()))
    }
}

/// A change to the labels of a line, in stage order.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LabelOp {
    Set(Arc<str>, String),
    Drop(Arc<[String]>),
    Allow(Arc<[String]>),
}

/// One line on its way through the stages. Kept small (it moves from stage to stage): what few
/// lines need is boxed.
#[derive(Debug, Clone)]
pub struct Line {
    pub ts_ns: i64,
    /// Valid UTF-8 (the parser made it so; stages keep it so).
    pub line: Bytes,
    pub stream: StreamKind,
    /// File offset where the line (for a multiline entry: its first line) starts.
    pub offset: u64,
    pub extracted: Extracted,
    /// What stages changed besides the line and its time (None: nothing yet).
    pub changes: Option<Box<Changes>>,
}

/// A line's own labels, structured metadata, tenant and endpoints, as stages set them.
#[derive(Debug, Clone, Default)]
pub struct Changes {
    pub labels: Vec<LabelOp>,
    /// Structured metadata added by stages (after the file's own).
    pub metadata: Vec<(Arc<str>, String)>,
    pub tenant: Option<Arc<str>>,
    /// The endpoints the line goes to (bit i: endpoint i), set by a `branches` stage.
    pub clients: Option<u64>,
}

impl Line {
    pub fn new(ts_ns: i64, line: Bytes, stream: StreamKind, offset: u64) -> Self {
        Line {
            ts_ns,
            line,
            stream,
            offset,
            extracted: Extracted::default(),
            changes: None,
        }
    }

    /// The line's changes, made on first use.
    pub fn changes(&mut self) -> &mut Changes {
        self.changes.get_or_insert_with(Box::default)
    }

    /// The label changes so far (in stage order).
    pub fn label_ops(&self) -> &[LabelOp] {
        self.changes.as_ref().map_or(&[], |c| &c.labels)
    }

    /// The line as text (always valid UTF-8; an invalid one reads as empty rather than panicking).
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.line).unwrap_or("")
    }

    /// A label's value for the line: the last value a stage set, else the file's own (`stream`
    /// is the line's stream).
    pub fn label<'a>(&'a self, base: Option<&'a StreamLabels>, name: &str) -> Option<&'a str> {
        let set = self.label_ops().iter().rev().find_map(|op| match op {
            LabelOp::Set(n, v) if &**n == name => Some(v.as_str()),
            _ => None,
        });
        match set {
            Some(v) => Some(v).filter(|v| !v.is_empty()),
            None if name == "stream" => Some(self.stream.as_str()).filter(|v| !v.is_empty()),
            None => base?.labels().get(name).map(String::as_str),
        }
    }

    /// The line's labels at this stage: the file's, with the stages' changes so far, and `stream`.
    pub fn labels(&self, base: Option<&StreamLabels>) -> Vec<(String, String)> {
        let mut labels = base.map(|b| b.labels().clone()).unwrap_or_default();
        if !self.stream.as_str().is_empty() {
            labels.insert("stream".into(), self.stream.as_str().into());
        }
        super::labels::apply(&mut labels, self.label_ops());
        labels.into_iter().collect()
    }

    /// What a stage with this `source` reads: the extracted value, or the line when `None`.
    /// `None` when the source names a value that was not extracted.
    pub fn source(&self, source: Option<&str>) -> Option<&str> {
        match source {
            Some(name) => self.extracted.get(name),
            None => Some(self.text()),
        }
    }
}
