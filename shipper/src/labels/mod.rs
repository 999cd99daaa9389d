//! Loki stream label sets in the Prometheus text form Loki expects: `{a="x", b="y"}`, names sorted so the
//! same set always yields the same string (one stream), values escaped.

mod metadata;

pub use metadata::{metadata_after, metadata_fields};

use crate::parse::StreamKind;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The label strings of one file's streams: one per `StreamKind` (raw lines, stdout, stderr), computed
/// once when the file is opened so the hot path only clones an `Arc`.
#[derive(Debug)]
pub struct StreamLabels {
    by_kind: [Arc<str>; 3],
    /// The labels (without `stream`), for stages that change them per line.
    labels: BTreeMap<String, String>,
    /// Structured metadata of every entry, encoded once (empty: none); stages append to it.
    metadata: Bytes,
}

impl StreamLabels {
    /// `labels` are the file's labels; `stdout`/`stderr` entries also get a `stream` label.
    pub fn new(labels: &BTreeMap<String, String>) -> Self {
        let with_stream = |s: &str| {
            let mut l = labels.clone();
            l.insert("stream".into(), s.into());
            Arc::from(render(&l))
        };
        StreamLabels {
            by_kind: [Arc::from(render(labels)), with_stream("stdout"), with_stream("stderr")],
            labels: labels.clone(),
            metadata: Bytes::new(),
        }
    }

    /// Every entry of these streams also carries these structured metadata pairs (Loki 3).
    pub fn with_metadata(mut self, pairs: &[(String, String)]) -> Self {
        self.metadata = metadata_fields(pairs);
        self
    }

    pub fn labels(&self) -> &BTreeMap<String, String> {
        &self.labels
    }

    pub fn metadata(&self) -> &Bytes {
        &self.metadata
    }

    pub fn for_kind(&self, kind: StreamKind) -> &Arc<str> {
        &self.by_kind[kind as usize]
    }
}

/// Renders a label set. Loki rejects an empty one (`{}`); callers always include `filename`.
pub fn render(labels: &BTreeMap<String, String>) -> String {
    let mut s = String::with_capacity(64);
    s.push('{');
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str(k);
        s.push_str("=\"");
        for c in v.chars() {
            match c {
                '\\' => s.push_str("\\\\"),
                '"' => s.push_str("\\\""),
                '\n' => s.push_str("\\n"),
                c => s.push(c),
            }
        }
        s.push('"');
    }
    s.push('}');
    s
}

/// A Loki label name from any string: `[a-zA-Z_][a-zA-Z0-9_]*`, every other character replaced by
/// `_` (as Prometheus' and Promtail's labelmap do), a leading digit prefixed with `_`.
pub fn sanitize_label_name(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' })
        .collect();
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_sorted_and_escaped() {
        let mut l = BTreeMap::new();
        l.insert("namespace".to_string(), "mon".to_string());
        l.insert("app".to_string(), "a\"b\\c\nd".to_string());
        assert_eq!(render(&l), r#"{app="a\"b\\c\nd", namespace="mon"}"#);
        let s = StreamLabels::new(&l);
        assert_eq!(
            &**s.for_kind(StreamKind::Stderr),
            r#"{app="a\"b\\c\nd", namespace="mon", stream="stderr"}"#
        );
        assert_eq!(&**s.for_kind(StreamKind::Unknown), render(&l));
    }
}
