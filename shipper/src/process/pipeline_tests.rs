//! Table tests of whole pipelines: stage configs as a user writes them, lines in, entries out.

use super::*;
use crate::parse::StreamKind;
use std::time::Duration;

pub(crate) fn pipeline(yaml: &str) -> Arc<Pipeline> {
    let stages: Vec<StageConfig> = serde_yaml_ng::from_str(yaml).expect("stage yaml");
    let keyed: Vec<(String, &StageConfig)> = stages.iter().enumerate().map(|(i, s)| (format!("s[{i}]"), s)).collect();
    Arc::new(
        Pipeline::new(&keyed, &LabelLimits::default(), 1000, &Default::default())
            .expect("compiles")
            .expect("has stages"),
    )
}

pub(crate) fn base() -> Arc<StreamLabels> {
    let labels = BTreeMap::from([
        ("job".to_string(), "t".to_string()),
        ("namespace".to_string(), "ns".to_string()),
    ]);
    Arc::new(StreamLabels::new(&labels).with_metadata(&[("pod_uid".into(), "u1".into())]))
}

pub(crate) fn entry(line: &str, offset: u64) -> Entry {
    Entry {
        ts_ns: 1_000,
        line: Bytes::copy_from_slice(line.as_bytes()),
        stream: StreamKind::Stdout,
        offset,
        extra: None,
    }
}

/// What came out of a run: line, labels (None: the file's), metadata pairs, tenant.
pub(crate) type Out = (String, Option<String>, Vec<(String, String)>, Option<String>);

pub(crate) fn run(yaml: &str, lines: &[&str]) -> (Vec<Out>, StageStats) {
    run_on(pipeline(yaml), lines)
}

/// `run` on a pipeline the caller keeps (what the stages registered lives as long as it).
pub(crate) fn run_on(p: Arc<Pipeline>, lines: &[&str]) -> (Vec<Out>, StageStats) {
    let mut st = FileStages::new(p);
    let mut entries: Vec<Entry> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| entry(l, i as u64 * 100))
        .collect();
    let mut stats = StageStats::default();
    let b = base();
    st.run(&b, &mut entries, Instant::now(), 2_000, &mut stats);
    (entries.into_iter().map(out).collect(), stats)
}

pub(crate) fn out(e: Entry) -> Out {
    let line = String::from_utf8(e.line.to_vec()).expect("utf-8");
    let x = e.extra.map(|b| *b).unwrap_or_default();
    let meta = x.metadata.map(|m| decode_metadata(&m)).unwrap_or_default();
    (
        line,
        x.labels.map(|l| l.to_string()),
        meta,
        x.tenant.map(|t| t.to_string()),
    )
}

/// The pairs of encoded structured metadata (repeated field 3 of name = 1, value = 2).
fn decode_metadata(m: &[u8]) -> Vec<(String, String)> {
    use prost::Message;
    #[derive(Message)]
    struct Pair {
        #[prost(string, tag = "1")]
        name: String,
        #[prost(string, tag = "2")]
        value: String,
    }
    #[derive(Message)]
    struct Holder {
        #[prost(message, repeated, tag = "3")]
        pairs: Vec<Pair>,
    }
    Holder::decode(m)
        .expect("metadata decodes")
        .pairs
        .into_iter()
        .map(|p| (p.name, p.value))
        .collect()
}

fn s(v: &str) -> String {
    v.to_string()
}

#[test]
fn stages_change_lines_labels_metadata_and_tenant() {
    let file_meta = (s("pod_uid"), s("u1"));
    let cases: Vec<(&str, &str, Out)> = vec![
        (
            "[{json: {expressions: {level: ''}}}, {labels: {level: ''}}]",
            r#"{"level":"warn"}"#,
            (s(r#"{"level":"warn"}"#), Some(s(r#"{job="t", level="warn", namespace="ns", stream="stdout"}"#)), vec![], None),
        ),
        (
            // Promtail's way of saying "the same name": no value at all.
            "- json: {expressions: {level: }}\n- labels:\n    level:\n- logfmt: {mapping: {x: }}",
            r#"{"level":"warn"}"#,
            (s(r#"{"level":"warn"}"#), Some(s(r#"{job="t", level="warn", namespace="ns", stream="stdout"}"#)), vec![], None),
        ),
        (
            "[{static_labels: {env: prod}}, {labeldrop: [job]}]",
            "x",
            (s("x"), Some(s(r#"{env="prod", namespace="ns", stream="stdout"}"#)), vec![], None),
        ),
        (
            "[{static_labels: {a: '1', b: '2'}}, {labelallow: [a, stream]}]",
            "x",
            (s("x"), Some(s(r#"{a="1", stream="stdout"}"#)), vec![], None),
        ),
        (
            "[{regex: {expression: '^(?P<lvl>\\w+) '}}, {labels: {level-x: lvl}}]",
            "INFO hello",
            (s("INFO hello"), Some(s(r#"{job="t", level_x="INFO", namespace="ns", stream="stdout"}"#)), vec![], None),
        ),
        (
            "[{json: {expressions: {trace: ctx.id, msg: ''}}}, {structured_metadata: {trace_id: trace}}, {output: {source: msg}}]",
            r#"{"msg":"done","ctx":{"id":"abc"}}"#,
            (s("done"), None, vec![file_meta.clone(), (s("trace_id"), s("abc"))], None),
        ),
        ("[{tenant: {value: team-a}}]", "x", (s("x"), None, vec![], Some(s("team-a")))),
        ("[{tenant: {label: namespace}}]", "x", (s("x"), None, vec![], Some(s("ns")))),
        (
            "[{logfmt: {mapping: {t: tenant}}}, {tenant: {source: t}}]",
            "tenant=blue msg=x",
            (s("tenant=blue msg=x"), None, vec![], Some(s("blue"))),
        ),
        // A value Loki would refuse as a tenant is not used.
        (
            "[{logfmt: {mapping: {t: tenant}}}, {tenant: {source: t}}]",
            "tenant=a/b",
            (s("tenant=a/b"), None, vec![], None),
        ),
        // An empty value removes the label.
        (
            "[{logfmt: {mapping: {job: job}}}, {labels: {job: ''}}]",
            "job=",
            (s("job="), Some(s(r#"{namespace="ns", stream="stdout"}"#)), vec![], None),
        ),
    ];
    for (yaml, line, want) in cases {
        let (got, _) = run(yaml, &[line]);
        assert_eq!(got, vec![want], "{yaml}");
    }
}

#[test]
fn filters_drop_and_count_by_reason() {
    let yaml = "[{json: {expressions: {level: ''}, drop_malformed: true}}, {drop: {source: level, value: debug}}, {keep: {contains: keep, drop_counter_reason: noise}}]";
    let (got, stats) = run(
        yaml,
        &[
            r#"{"level":"debug","m":"keep"}"#,
            r#"{"level":"info","m":"keep"}"#,
            r#"{"level":"info"}"#,
            "not json keep",
        ],
    );
    let lines: Vec<&str> = got.iter().map(|o| o.0.as_str()).collect();
    assert_eq!(lines, [r#"{"level":"info","m":"keep"}"#]);
    let dropped: Vec<(&str, u64)> = stats.dropped.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    assert_eq!(dropped, [("drop_stage", 1), ("malformed_json", 1), ("noise", 1)]);
}

#[test]
fn a_source_may_name_a_label_as_in_promtail_and_an_extracted_value_of_that_name_wins() {
    // The file's labels are job="t" and namespace="ns"; the lines are stdout.
    let yaml = "[{drop: {source: namespace, value: ns}}]";
    assert!(run(yaml, &["a", "b"]).0.is_empty(), "dropped by the file's label");
    let yaml = "[{drop: {source: stream, value: stderr}}, {template: {source: tag, template: '{{ .job }}'}}]";
    assert_eq!(run(yaml, &["a"]).0.len(), 1, "stdout lines are kept");
    // A parser that extracts the same name replaces the label's value, as in Promtail.
    let yaml = r#"[{regex: {expression: 'ns=(?P<namespace>\S+)'}}, {drop: {source: namespace, value: ns}}]"#;
    let lines: Vec<String> = run(yaml, &["ns=other x", "no match"])
        .0
        .into_iter()
        .map(|o| o.0)
        .collect();
    assert_eq!(lines, ["ns=other x"]);
    // Only what a stage reads as a source is put in: a template sees the labels it names so.
    let yaml = "[{template: {source: job, template: '{{ .job }}-{{ .namespace }}'}}, {output: {source: job}}]";
    assert_eq!(run(yaml, &["a"]).0[0].0, "t-<no value>");
}

#[test]
fn failures_are_counted_and_lines_pass_unchanged() {
    let yaml = "[{json: {expressions: {a: ''}}}, {regex: {expression: '^(?P<x>\\d+)$'}}, {timestamp: {source: a, format: Unix}}, {output: {source: nope}}]";
    let (got, stats) = run(yaml, &["plain text"]);
    assert_eq!(got[0].0, "plain text");
    let failed: Vec<(&str, u64)> = stats.failed.iter().map(|(k, v)| (*k, *v)).collect();
    assert_eq!(failed, [("json", 1), ("output", 1), ("regex", 1), ("timestamp", 1)]);
}

#[test]
fn multiline_holds_the_commit_offset_and_later_stages_see_joined_lines() {
    let p = pipeline("[{multiline: {firstline: '^\\d', max_wait_time: 1s}}, {regex: {expression: '^\\d+ (?P<lvl>[A-Z]+)'}}, {labels: {level: lvl}}]");
    let mut st = FileStages::new(p);
    let b = base();
    let mut stats = StageStats::default();
    let t0 = Instant::now();
    let mut entries = vec![
        entry("1 ERROR a", 0),
        entry("  at x", 10),
        entry("2 INFO b", 20),
        entry("  at y", 30),
    ];
    st.run(&b, &mut entries, t0, 0, &mut stats);
    let got: Vec<Out> = entries.into_iter().map(out).collect();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, "1 ERROR a\n  at x");
    assert_eq!(
        got[0].1.as_deref(),
        Some(r#"{job="t", level="ERROR", namespace="ns", stream="stdout"}"#)
    );
    assert_eq!(st.oldest_offset(), Some(20), "the second entry is still open");
    assert!(st.deadline().is_some_and(|d| d > t0));
    let mut later = Vec::new();
    st.flush(&b, t0 + Duration::from_millis(500), 0, &mut later, &mut stats, false);
    assert!(later.is_empty(), "not due yet");
    st.flush(&b, t0 + Duration::from_secs(2), 0, &mut later, &mut stats, false);
    assert_eq!(
        later.into_iter().map(out).map(|o| o.0).collect::<Vec<_>>(),
        ["2 INFO b\n  at y"]
    );
    assert_eq!(st.oldest_offset(), None);
}

#[test]
fn a_limit_without_drop_holds_lines_in_order_until_their_tokens_come() {
    let p = pipeline("[{limit: {rate: 10, burst: 2}}]");
    let mut st = FileStages::new(p);
    let b = base();
    let mut stats = StageStats::default();
    let t0 = Instant::now();
    let mut entries: Vec<Entry> = (0..5).map(|i| entry(&format!("l{i}"), i * 10)).collect();
    st.run(&b, &mut entries, t0, 0, &mut stats);
    assert_eq!(entries.len(), 2, "the burst");
    assert!(st.paused());
    assert_eq!(st.oldest_offset(), Some(20));
    let mut out_lines = Vec::new();
    st.flush(
        &b,
        t0 + Duration::from_millis(150),
        0,
        &mut out_lines,
        &mut stats,
        false,
    );
    assert_eq!(out_lines.len(), 1, "one token in 150 ms at 10/s");
    st.flush(&b, t0 + Duration::from_secs(1), 0, &mut out_lines, &mut stats, false);
    let lines: Vec<String> = out_lines.into_iter().map(|e| out(e).0).collect();
    assert_eq!(lines, ["l2", "l3", "l4"]);
    assert!(!st.paused());
    assert!(stats.dropped.is_empty());
}

/// `by_label_name`: a bucket per value of the label as the stages before made it, shared by the
/// files of the target; lines without the label pass.
#[test]
fn a_limit_by_label_shares_each_values_bucket_between_files() {
    let p = pipeline(
        r#"
- regex: {expression: 'app=(?P<app>\S+)'}
- labels: {app: ""}
- limit: {rate: 1, burst: 2, drop: true, by_label_name: app}
"#,
    );
    let b = base();
    let t0 = Instant::now();
    let mut stats = StageStats::default();
    let mut pass = |lines: &[&str]| {
        let mut st = FileStages::new(p.clone());
        let mut entries: Vec<Entry> = lines.iter().map(|l| entry(l, 0)).collect();
        st.run(&b, &mut entries, t0, 0, &mut stats);
        entries.into_iter().map(|e| out(e).0).collect::<Vec<_>>()
    };
    let first = pass(&["app=a 1", "app=a 2", "app=a 3", "none 1", "none 2", "none 3"]);
    assert_eq!(first, ["app=a 1", "app=a 2", "none 1", "none 2", "none 3"]);
    let second = pass(&["app=a 4", "app=b 1", "app=b 2"]);
    assert_eq!(second, ["app=b 1", "app=b 2"], "a's bucket is the first file's, empty");
    assert_eq!(stats.dropped, BTreeMap::from([("rate_limited".to_string(), 2)]));
}

#[test]
fn config_errors_name_the_stage() {
    let cases = [
        ("[{regex: {expression: '('}}]", "s[0].regex"),
        ("[{tenant: {}}]", "s[0].tenant: give exactly one"),
        ("[{tenant: {value: 'a b'}}]", "s[0].tenant.value"),
        ("[{output: {}}]", "s[0].output.source"),
        (
            "[{multiline: {firstline: x}}, {multiline: {firstline: y}}]",
            "s[1].multiline: only one",
        ),
        ("[{limit: {rate: 0}}]", "s[0].limit.rate"),
        (
            "[{limit: {rate: 1, by_label_name: app}}]",
            "s[0].limit.by_label_name: needs `drop: true`",
        ),
        ("[{drop: {}}]", "s[0].drop: give at least one"),
    ];
    for (yaml, want) in cases {
        let stages: Vec<StageConfig> = serde_yaml_ng::from_str(yaml).expect("yaml");
        let keyed: Vec<(String, &StageConfig)> =
            stages.iter().enumerate().map(|(i, s)| (format!("s[{i}]"), s)).collect();
        let err = Pipeline::new(&keyed, &LabelLimits::default(), 100, &Default::default())
            .err()
            .unwrap_or_default();
        assert!(err.starts_with(want), "{yaml}: {err}");
    }
    let bad: Result<Vec<StageConfig>, _> = serde_yaml_ng::from_str("[{jsn: {}}]");
    assert!(bad.unwrap_err().to_string().contains("unknown variant `jsn`"));
    let two: Result<Vec<StageConfig>, _> = serde_yaml_ng::from_str("[{json: {expressions: {a: ''}}, labels: {a: ''}}]");
    assert!(two.unwrap_err().to_string().contains("one stage per list item"));
}

/// Promtail's `cri` and `docker` stages, with or without their options, load and leave the lines
/// as the stages after them make them: the file's format is parsed before the stages.
#[test]
fn cri_and_docker_stages_are_accepted_and_change_nothing() {
    let yaml = "- cri: {}\n- docker: {}\n- cri: {max_partial_lines: 100, max_partial_line_size: 64KiB, max_partial_line_size_truncate: true}\n- static_labels: {a: b}\n";
    let (out, _) = run(yaml, &["one", "two"]);
    let lines: Vec<&str> = out.iter().map(|o| o.0.as_str()).collect();
    assert_eq!(lines, ["one", "two"]);
    assert!(
        out.iter()
            .all(|o| o.1.as_deref().is_some_and(|l| l.contains("a=\"b\""))),
        "{out:?}"
    );
    let bad: Result<Vec<StageConfig>, _> = serde_yaml_ng::from_str("- cri: {max_lines: 1}\n");
    assert!(bad.unwrap_err().to_string().contains("max_lines"));
}

/// Promtail's `match`: the lines a LogQL selector (labels as the stages before made them, line
/// filters) matches go through its stages, the others skip them; matches nest; `action: drop`
/// drops and counts the matching lines.
#[test]
fn match_runs_its_stages_on_the_lines_it_selects() {
    let yaml = r#"
- json: {expressions: {level: ""}}
- labels: {level: ""}
- match:
    selector: '{job="t", level=~"warn|error"} != "ignore"'
    stages:
      - static_labels: {alert: "yes"}
      - match:
          selector: '{namespace="ns"} |= "db"'
          stages:
            - static_labels: {db: "yes"}
- match:
    selector: '{level="debug"}'
    action: drop
    drop_counter_reason: debug_noise
"#;
    let lines = [
        r#"{"level":"error","msg":"db down"}"#,
        r#"{"level":"warn","msg":"slow"}"#,
        r#"{"level":"error","msg":"ignore me"}"#,
        r#"{"level":"info","msg":"db ok"}"#,
        r#"{"level":"debug","msg":"x"}"#,
    ];
    let (out, stats) = run(yaml, &lines);
    let labels: Vec<String> = out.iter().map(|o| o.1.clone().unwrap_or_default()).collect();
    assert_eq!(out.len(), 4, "{out:?}");
    assert!(
        labels[0].contains("alert=\"yes\"") && labels[0].contains("db=\"yes\""),
        "{}",
        labels[0]
    );
    assert!(
        labels[1].contains("alert=\"yes\"") && !labels[1].contains("db="),
        "{}",
        labels[1]
    );
    assert!(!labels[2].contains("alert="), "{}", labels[2]);
    assert!(
        !labels[3].contains("alert=") && !labels[3].contains("db="),
        "{}",
        labels[3]
    );
    assert_eq!(stats.dropped.get("debug_noise"), Some(&1));
}

#[test]
fn a_match_that_cannot_work_is_refused_with_its_key() {
    for (yaml, says) in [
        (
            "- match: {selector: '{a=\"b\"}', action: drop, stages: [{labels: {x: \"\"}}]}",
            "s[0].match.stages",
        ),
        ("- match: {selector: '{a=\"b\"}'}", "s[0].match.stages"),
        (
            "- match: {selector: 'a=\"b\"', stages: [{labels: {x: \"\"}}]}",
            "s[0].match.selector",
        ),
        (
            "- match: {selector: '{a=\"b\"}', stages: [{output: {source: \"\"}}]}",
            "s[0].match.stages[0].output.source",
        ),
    ] {
        let stages: Vec<StageConfig> = serde_yaml_ng::from_str(yaml).unwrap();
        let keyed: Vec<(String, &StageConfig)> =
            stages.iter().enumerate().map(|(i, s)| (format!("s[{i}]"), s)).collect();
        let err = Pipeline::new(&keyed, &LabelLimits::default(), 1000, &Default::default())
            .err()
            .unwrap();
        assert!(err.contains(says), "{yaml}: {err}");
    }
}
