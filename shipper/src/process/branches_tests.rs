//! `branches`: every line through each branch, each copy to its branch's endpoints; held lines in
//! a branch hold the file's commit offset; misplaced or misnamed branches refused with their key.

use super::super::pipeline::tests::{base, entry, out, Out};
use super::super::pipeline::{FileStages, StageStats};
use crate::config::Config;
use crate::parse::Entry;
use std::time::{Duration, Instant};

/// Two named endpoints: `default` (bit 0) and `archive` (bit 1).
const CLIENTS: &str = "
client: {name: default}
clients: [{name: archive, url: 'http://archive:3100/loki/api/v1/push'}]
";

fn compiled(yaml: &str) -> Result<crate::config::CompiledTarget, String> {
    let cfg: Config = serde_yaml_ng::from_str(&format!("{CLIENTS}{yaml}")).expect("config yaml");
    cfg.compile_targets().map(|mut t| t.remove(0))
}

fn stages(yaml: &str) -> FileStages {
    let target = compiled(yaml).expect("compiles");
    FileStages::new(target.pipeline.expect("has stages"))
}

/// Line, labels (None: the file's) and endpoint mask of each entry out.
fn routed(entries: Vec<Entry>) -> Vec<(String, Option<String>, Option<u64>)> {
    entries
        .into_iter()
        .map(|e| {
            let clients = e.extra.as_ref().and_then(|x| x.clients);
            let (line, labels, ..): Out = out(e);
            (line, labels, clients)
        })
        .collect()
}

#[test]
fn every_line_goes_through_each_branch_to_its_endpoints() {
    let mut st = stages(
        "
pipeline_stages:
  - json: {expressions: {level: ''}}
  - branches:
      - clients: [archive]
        stages: [{drop: {source: level, value: debug}}]
      - clients: [default]
        stages: [{labels: {level: ''}}]
targets: [{paths: [/x]}]
",
    );
    let mut entries = vec![entry(r#"{"level":"debug"}"#, 0), entry(r#"{"level":"info"}"#, 10)];
    let mut stats = StageStats::default();
    st.run(&base(), &mut entries, Instant::now(), 0, &mut stats);
    let labels = |l: &str| Some(format!(r#"{{job="t", level="{l}", namespace="ns", stream="stdout"}}"#));
    assert_eq!(
        routed(entries),
        [
            (r#"{"level":"debug"}"#.to_string(), labels("debug"), Some(0b01)),
            (r#"{"level":"info"}"#.to_string(), None, Some(0b10)),
            (r#"{"level":"info"}"#.to_string(), labels("info"), Some(0b01)),
        ]
    );
    assert_eq!(stats.dropped.get("drop_stage"), Some(&1));
}

#[test]
fn a_branch_without_clients_goes_to_the_targets() {
    let target = compiled(
        "
targets:
  - paths: [/x]
    clients: [archive]
    pipeline_stages:
      - branches:
          - stages: [{static_labels: {copy: a}}]
          - clients: [default, archive]
",
    )
    .expect("compiles");
    assert_eq!(target.clients, Some(0b10));
    let mut st = FileStages::new(target.pipeline.expect("has stages"));
    let mut entries = vec![entry("x", 0)];
    st.run(&base(), &mut entries, Instant::now(), 0, &mut StageStats::default());
    let masks: Vec<Option<u64>> = routed(entries).into_iter().map(|r| r.2).collect();
    assert_eq!(masks, [Some(0b10), Some(0b11)]);
}

#[test]
fn a_line_held_in_one_branch_holds_the_commit_offset() {
    let mut st = stages(
        "
targets:
  - paths: [/x]
    pipeline_stages:
      - branches:
          - clients: [archive]
            stages: [{multiline: {firstline: '^\\d', max_wait_time: 1s}}]
          - clients: [default]
",
    );
    let b = base();
    let t0 = Instant::now();
    let mut stats = StageStats::default();
    let mut entries = vec![entry("1 a", 0), entry("  b", 10), entry("2 c", 20)];
    st.run(&b, &mut entries, t0, 0, &mut stats);
    let got: Vec<(String, Option<u64>)> = routed(entries).into_iter().map(|(l, _, m)| (l, m)).collect();
    let s = |l: &str, m: u64| (l.to_string(), Some(m));
    assert_eq!(
        got,
        [s("1 a", 0b01), s("  b", 0b01), s("1 a\n  b", 0b10), s("2 c", 0b01)]
    );
    assert_eq!(
        st.oldest_offset(),
        Some(20),
        "`2 c` is still open in the archive branch"
    );
    let mut later = Vec::new();
    st.flush(&b, t0 + Duration::from_secs(2), 0, &mut later, &mut stats, false);
    let got: Vec<(String, Option<u64>)> = routed(later).into_iter().map(|(l, _, m)| (l, m)).collect();
    assert_eq!(got, [s("2 c", 0b10)]);
    assert_eq!(st.oldest_offset(), None);
}

#[test]
fn misplaced_or_misnamed_branches_are_refused_with_their_key() {
    let cases = [
        (
            "pipeline_stages: [{branches: [{stages: []}]}]\ntargets: [{paths: [/x], pipeline_stages: [{decolorize: }]}]",
            "pipeline_stages[0].branches: `branches` must be the last stage",
        ),
        (
            "targets: [{paths: [/x], pipeline_stages: [{match: {selector: '{a=\"b\"}', stages: [{branches: [{}]}]}}]}]",
            "targets[0].pipeline_stages[0].match.stages[0].branches: `branches` cannot be nested",
        ),
        (
            "targets: [{paths: [/x], pipeline_stages: [{branches: [{stages: [{branches: [{}]}]}]}]}]",
            "targets[0].pipeline_stages[0].branches[0].stages[0].branches: `branches` cannot be nested",
        ),
        (
            "targets: [{paths: [/x], pipeline_stages: [{branches: []}]}]",
            "targets[0].pipeline_stages[0].branches: name at least one branch",
        ),
        (
            "targets: [{paths: [/x], pipeline_stages: [{branches: [{clients: [default]}, {clients: [arch]}]}]}]",
            "targets[0].pipeline_stages[0].branches[1].clients[0]: no client is named `arch`; the named clients are `default`, `archive`",
        ),
        (
            "targets: [{paths: [/x]}, {paths: [/y], clients: [archive, nope]}]",
            "targets[1].clients[1]: no client is named `nope`",
        ),
        (
            "targets: [{paths: [/x], pipeline_stages: [{branches: [{stages: [{multiline: {firstline: a}}]}, {stages: [{multiline: {firstline: b}}]}]}]}]",
            "targets[0].pipeline_stages[0].branches[1].stages[0].multiline: only one multiline stage",
        ),
    ];
    for (yaml, want) in cases {
        let err = compiled(yaml).err().unwrap_or_else(|| panic!("{yaml} compiles"));
        assert!(err.starts_with(want), "{yaml}\n{err}");
    }
    // Through the loader: the key is the error's key.
    let cfg =
        crate::config::load_str("clients: [{name: a}, {name: a}]\ntargets: [{paths: [/x]}]", "t.yaml").expect("parses");
    let err = cfg.validate("t.yaml").unwrap_err();
    assert_eq!(err.key, "clients[1].name");
    assert!(err.message.contains("`a` names another client too"), "{}", err.message);
}
