//! Promtail and Alloy start each line's extracted values from its labels, so a stage's `source`
//! may name a label (`drop: {source: container, value: sidecar}`). Here the labels a stage reads as
//! a `source` are put into the extracted values of each line before the first stage: the file's
//! label of that name, or `stream`. A parser stage that extracts the same name replaces it, as in
//! Promtail.

use super::config::StageConfig;
use super::ctx::Line;
use crate::labels::StreamLabels;
use std::sync::Arc;

/// The names the stages (nested ones too) read through a `source` setting.
pub fn label_sources(stages: &[(String, &StageConfig)]) -> Vec<Arc<str>> {
    fn walk(v: &serde_json::Value, out: &mut Vec<Arc<str>>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    match (k.as_str(), v) {
                        ("source", serde_json::Value::String(s)) if !out.iter().any(|o| **o == **s) => {
                            out.push(s.as_str().into())
                        }
                        _ => walk(v, out),
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    for (_, s) in stages {
        if let Ok(v) = serde_json::to_value(s) {
            walk(&v, &mut out);
        }
    }
    out
}

/// The values a file's lines start with.
#[derive(Default)]
pub struct StartValues {
    values: Vec<(Arc<str>, String)>,
    stream: Option<Arc<str>>,
}

impl StartValues {
    /// For the lines of a file with labels `base`, given the stages' `names`.
    pub fn new(names: &[Arc<str>], base: &StreamLabels) -> StartValues {
        let labels = base.labels();
        StartValues {
            values: names
                .iter()
                .filter_map(|n| labels.get(&**n).map(|v| (n.clone(), v.clone())))
                .collect(),
            stream: names.iter().find(|n| &***n == "stream").cloned(),
        }
    }

    pub fn apply(&self, line: &mut Line) {
        for (n, v) in &self.values {
            line.extracted.set(n, v);
        }
        if let Some(n) = &self.stream {
            if !line.stream.as_str().is_empty() {
                line.extracted.set(n, line.stream.as_str());
            }
        }
    }
}
