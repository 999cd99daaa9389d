//! `journal.pipeline_stages` on journal entries. The stages are one [`FileStages`] for the whole
//! journal (a `limit` or `sampling` stage counts every entry, as Promtail's journal job does); each
//! entry starts from its own label set (the one its `journal.fields` give), so runs of entries with
//! the same set go through together, and an entry whose labels no stage changed keeps that set.
//!
//! `multiline` joins the entries of one label set: a service that prints a stack trace to stdout
//! writes one journal entry per line, and the trace must not swallow the lines other units write in
//! between. So there is one multiline state per label set (Promtail keys its multiline stage by
//! stream the same way), swapped into the shared stages for that set's runs; the multiline code is
//! the files' own. A block in progress holds the journal's commit position below its first entry
//! ([`JournalStages::oldest_offset`]), so a cursor saved meanwhile is one before that entry and a
//! restart reads the block again. `limit` without `drop` would hold entries without end and is
//! refused when the config is loaded.

use crate::labels::StreamLabels;
use crate::metrics::Metrics;
use crate::parse::{Entry, StreamKind};
use crate::process::multiline::Multiline;
use crate::process::pipeline::{FileStages, Pipeline, StageStats};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

pub struct JournalStages {
    stages: FileStages,
    /// With a `multiline` stage: the state of each label set (keyed by its rendered labels) with a
    /// block in progress or a trace open; an idle set's state is forgotten (a new one is the same).
    streams: HashMap<Arc<str>, Stream>,
    /// Whether there is a `multiline` stage.
    holds: bool,
}

struct Stream {
    set: Arc<StreamLabels>,
    /// Parked here between runs (Some), or in `stages` while the set's entries go through.
    multiline: Option<Multiline>,
}

impl JournalStages {
    pub fn new(pipeline: Pipeline) -> Self {
        let stages = FileStages::new(Arc::new(pipeline));
        JournalStages {
            holds: stages.new_multiline().is_some(),
            stages,
            streams: HashMap::new(),
        }
    }

    /// Whether a stage may hold entries for later (a `multiline` block in progress).
    pub fn holds(&self) -> bool {
        self.holds
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
            let key = self.swap_in(&set);
            self.stages.run(&set, &mut run, now, now_ns, &mut stats);
            self.swap_out(key);
            labelled(&set, run.drain(..), &mut out);
        }
        metrics.add_stage_stats(&stats);
        out
    }

    /// The blocks whose `max_wait_time` passed — or, with `all`, every block in progress — sent on.
    pub fn flush(&mut self, all: bool, metrics: &Metrics) -> Vec<Entry> {
        let (now, now_ns) = (Instant::now(), crate::unix_now_ns());
        let due: Vec<Arc<StreamLabels>> = (self.streams.values())
            .filter(|s| {
                all || s
                    .multiline
                    .as_ref()
                    .and_then(Multiline::deadline)
                    .is_some_and(|d| d <= now)
            })
            .map(|s| s.set.clone())
            .collect();
        let mut stats = StageStats::default();
        let mut out = Vec::new();
        for set in due {
            let key = self.swap_in(&set);
            let mut flushed = Vec::new();
            self.stages.flush(&set, now, now_ns, &mut flushed, &mut stats, all);
            self.swap_out(key);
            labelled(&set, flushed.into_iter(), &mut out);
        }
        metrics.add_stage_stats(&stats);
        out
    }

    /// When a block in progress is due (`flush` then sends it on).
    pub fn deadline(&self) -> Option<Instant> {
        self.parked().filter_map(Multiline::deadline).min()
    }

    /// The entry count of the first entry still held in a block: the commit position stays below it.
    pub fn oldest_offset(&self) -> Option<u64> {
        self.parked().filter_map(Multiline::oldest_offset).min()
    }

    fn parked(&self) -> impl Iterator<Item = &Multiline> {
        self.streams.values().filter_map(|s| s.multiline.as_ref())
    }

    /// Puts the multiline state of `set` into the stages (a new one for a set not seen or idle).
    fn swap_in(&mut self, set: &Arc<StreamLabels>) -> Option<Arc<str>> {
        if !self.holds {
            return None;
        }
        let key = set.for_kind(StreamKind::Unknown).clone();
        let stages = &self.stages;
        let stream = self.streams.entry(key.clone()).or_insert_with(|| Stream {
            set: set.clone(),
            multiline: stages.new_multiline(),
        });
        self.stages.swap_multiline(&mut stream.multiline);
        Some(key)
    }

    /// Parks the state `swap_in` put into the stages; forgets it when idle.
    fn swap_out(&mut self, key: Option<Arc<str>>) {
        let Some(stream) = key.and_then(|k| self.streams.get_mut(&k)) else { return };
        self.stages.swap_multiline(&mut stream.multiline);
        if stream.multiline.as_ref().is_none_or(Multiline::idle) {
            let key = stream.set.for_kind(StreamKind::Unknown).clone();
            self.streams.remove(&key);
        }
    }
}

/// Entries out of the stages, with the label set they started from unless a stage changed it.
fn labelled(set: &Arc<StreamLabels>, entries: impl Iterator<Item = Entry>, out: &mut Vec<Entry>) {
    for mut e in entries {
        let extra = e.extra.get_or_insert_with(Box::default);
        extra
            .labels
            .get_or_insert_with(|| set.for_kind(StreamKind::Unknown).clone());
        out.push(e);
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

    fn stages(yaml: &str) -> JournalStages {
        let stages: Vec<StageConfig> = serde_yaml_ng::from_str(yaml).unwrap();
        let keyed: Vec<(String, &StageConfig)> = stages.iter().map(|s| (String::new(), s)).collect();
        let pipeline = Pipeline::new(&keyed, &LabelLimits::default(), 1000, &Default::default())
            .unwrap()
            .unwrap();
        JournalStages::new(pipeline)
    }

    /// (offset, line, labels) of each entry.
    fn shown(out: &[Entry]) -> Vec<(u64, String, String)> {
        out.iter()
            .map(|e| {
                let labels = e.extra.as_ref().and_then(|x| x.labels.as_deref()).unwrap_or("");
                (
                    e.offset,
                    String::from_utf8_lossy(&e.line).into_owned(),
                    labels.to_string(),
                )
            })
            .collect()
    }

    #[test]
    fn multiline_joins_the_entries_of_each_label_set_apart() {
        let mut st = stages("- multiline: {firstline: '^\\S', max_wait_time: 1h}\n- static_labels: {joined: yes}\n");
        assert!(st.holds());
        let (a, b) = (set("a.service"), set("b.service"));
        let input = vec![
            (entry(1, "ERROR a failed"), a.clone()),
            (entry(2, "ERROR b failed"), b.clone()),
            (entry(3, "\tat a.One(A.java:1)"), a.clone()),
            (entry(4, "\tat b.One(B.java:1)"), b.clone()),
            (entry(5, "\tat a.Two(A.java:2)"), a.clone()),
            (entry(6, "next a"), a.clone()),
        ];
        let metrics = Metrics::new();
        let out = st.run(input, &metrics);
        let (la, lb) = (
            r#"{job="j", joined="yes", unit="a.service"}"#,
            r#"{job="j", joined="yes", unit="b.service"}"#,
        );
        assert_eq!(
            shown(&out),
            [(
                1,
                "ERROR a failed\n\tat a.One(A.java:1)\n\tat a.Two(A.java:2)".to_string(),
                la.to_string()
            )],
            "b's block is still open: its lines are not a's"
        );
        assert_eq!(st.oldest_offset(), Some(2), "b's block holds the commit below entry 2");
        assert!(st.deadline().is_some());
        let out = st.run(vec![(entry(7, "\tat b.Two(B.java:2)"), b.clone())], &metrics);
        assert!(out.is_empty());
        assert_eq!(st.oldest_offset(), Some(2));
        assert!(st.flush(false, &metrics).is_empty(), "nothing due before max_wait_time");
        let out = st.flush(true, &metrics);
        let mut got = shown(&out);
        got.sort();
        assert_eq!(
            got,
            [
                (
                    2,
                    "ERROR b failed\n\tat b.One(B.java:1)\n\tat b.Two(B.java:2)".to_string(),
                    lb.to_string()
                ),
                (6, "next a".to_string(), la.to_string()),
            ]
        );
        assert_eq!(st.oldest_offset(), None);
        assert!(st.streams.is_empty(), "idle label sets are forgotten");
    }

    #[test]
    fn a_block_is_sent_when_its_max_wait_time_passed() {
        let mut st = stages("- multiline: {firstline: '^\\S', max_wait_time: 50ms}\n");
        let a = set("a.service");
        let metrics = Metrics::new();
        let out = st.run(
            vec![(entry(1, "panic"), a.clone()), (entry(2, " frame"), a.clone())],
            &metrics,
        );
        assert!(out.is_empty());
        let due = st.deadline().expect("a block in progress is due some time");
        assert_eq!(st.oldest_offset(), Some(1));
        // Waits for the deadline (not a guess of how long a run takes).
        while Instant::now() < due {
            std::thread::sleep(due - Instant::now());
        }
        let out = st.flush(false, &metrics);
        assert_eq!(
            shown(&out),
            [(
                1,
                "panic\n frame".to_string(),
                r#"{job="j", unit="a.service"}"#.to_string()
            )]
        );
        assert_eq!((st.oldest_offset(), st.deadline()), (None, None));
    }

    #[test]
    fn each_entry_starts_from_its_own_labels() {
        let yaml = r#"
- regex: {expression: 'level=(?P<level>\w+)'}
- labels: {level: }
- drop: {source: level, value: debug}
- match: {selector: '{unit="b.service"}', stages: [{static_labels: {team: b}}]}
"#;
        let mut st = stages(yaml);
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
