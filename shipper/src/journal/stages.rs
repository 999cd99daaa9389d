//! `journal.pipeline_stages` on journal entries. The stages are one [`FileStages`] for the whole
//! journal (a `limit` or `sampling` stage counts every entry, as Promtail's journal job does); each
//! entry starts from its own label set (the one its `journal.fields` give), so runs of entries with
//! the same set go through together, and an entry whose labels no stage changed keeps that set.
//!
//! The journal's cursor is saved in the order entries were read, so no stage may hold an entry for
//! later: `multiline`, and `limit` without `drop`, are refused when the config is loaded. Every entry
//! a chunk's cursor covers has then left the stages (shipped, or dropped and counted).

use crate::labels::StreamLabels;
use crate::metrics::Metrics;
use crate::parse::{Entry, StreamKind};
use crate::process::pipeline::{FileStages, Pipeline, StageStats};
use std::sync::Arc;
use std::time::Instant;

pub struct JournalStages {
    stages: FileStages,
}

impl JournalStages {
    pub fn new(pipeline: Pipeline) -> Self {
        JournalStages {
            stages: FileStages::new(Arc::new(pipeline)),
        }
    }

    /// The entries (each with its label set, in journal order) through the stages: what comes out,
    /// in order. Drops and failures are counted in the stage metrics.
    pub fn run(&mut self, entries: Vec<(Entry, Arc<StreamLabels>)>, metrics: &Metrics) -> Vec<Entry> {
        let (now, now_ns) = (Instant::now(), crate::unix_now_ns());
        let mut stats = StageStats::default();
        let mut out = Vec::with_capacity(entries.len());
        let mut run = Vec::new();
        let mut entries = entries.into_iter().peekable();
        while let Some((entry, set)) = entries.next() {
            run.push(entry);
            if entries.peek().is_some_and(|(_, next)| Arc::ptr_eq(next, &set)) {
                continue;
            }
            self.stages.run(&set, &mut run, now, now_ns, &mut stats);
            for mut e in run.drain(..) {
                let extra = e.extra.get_or_insert_with(Box::default);
                extra
                    .labels
                    .get_or_insert_with(|| set.for_kind(StreamKind::Unknown).clone());
                out.push(e);
            }
        }
        metrics.add_stage_stats(&stats);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::config::{LabelLimits, StageConfig};
    use std::collections::BTreeMap;

    fn set(unit: &str) -> Arc<StreamLabels> {
        let labels = BTreeMap::from([
            ("job".to_string(), "j".to_string()),
            ("unit".to_string(), unit.to_string()),
        ]);
        Arc::new(StreamLabels::new(&labels))
    }

    fn entry(offset: u64, line: &str) -> Entry {
        Entry {
            ts_ns: offset as i64,
            line: bytes::Bytes::copy_from_slice(line.as_bytes()),
            stream: StreamKind::Unknown,
            offset,
            extra: None,
        }
    }

    #[test]
    fn each_entry_starts_from_its_own_labels() {
        let yaml = r#"
- regex: {expression: 'level=(?P<level>\w+)'}
- labels: {level: }
- drop: {source: level, value: debug}
- match: {selector: '{unit="b.service"}', stages: [{static_labels: {team: b}}]}
"#;
        let stages: Vec<StageConfig> = serde_yaml_ng::from_str(yaml).unwrap();
        let keyed: Vec<(String, &StageConfig)> = stages.iter().map(|s| (String::new(), s)).collect();
        let pipeline = Pipeline::new(&keyed, &LabelLimits::default(), 1000, &Default::default())
            .unwrap()
            .unwrap();
        let mut st = JournalStages::new(pipeline);
        let (a, b) = (set("a.service"), set("b.service"));
        let input = vec![
            (entry(1, "level=info one"), a.clone()),
            (entry(2, "plain two"), a.clone()),
            (entry(3, "level=debug three"), b.clone()),
            (entry(4, "level=warn four"), b.clone()),
            (entry(5, "five"), a.clone()),
        ];
        let metrics = Metrics::new();
        let out = st.run(input, &metrics);
        let got: Vec<(u64, String)> = out
            .iter()
            .map(|e| {
                (
                    e.offset,
                    e.extra
                        .as_ref()
                        .and_then(|x| x.labels.as_deref())
                        .unwrap_or("")
                        .to_string(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (1, r#"{job="j", level="info", unit="a.service"}"#.to_string()),
                (2, r#"{job="j", unit="a.service"}"#.to_string()),
                (4, r#"{job="j", level="warn", team="b", unit="b.service"}"#.to_string()),
                (5, r#"{job="j", unit="a.service"}"#.to_string()),
            ]
        );
        assert!(Arc::ptr_eq(
            out[1].extra.as_ref().unwrap().labels.as_ref().unwrap(),
            a.for_kind(StreamKind::Unknown)
        ));
    }
}
