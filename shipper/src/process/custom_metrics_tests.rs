//! The `metrics` stage through whole pipelines, read back from the `/metrics` text.

use super::*;
use crate::process::pipeline::tests::{pipeline, run_on};

fn scrape() -> String {
    crate::metrics::Metrics::new().encode()
}

/// The sample lines of `name` (with labels), in the exposition.
fn samples(text: &str, name: &str) -> Vec<String> {
    let mut v: Vec<String> = text
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

#[test]
fn counters_gauges_and_histograms_follow_the_lines_with_their_labels() {
    let stages = r#"
- regex: {expression: 'status=(?P<status>\d+) took=(?P<took>\S+)'}
- labels: {status: ""}
- metrics:
    cm_requests_total: {type: Counter, description: "requests seen", source: status, config: {action: inc}}
    cm_errors: {type: counter, source: status, config: {value: "500", action: inc}}
    cm_bytes: {type: Counter, prefix: "cm_p_", config: {match_all: true, count_entry_bytes: true, action: add}}
    cm_lines: {type: Counter, config: {match_all: true, action: inc}}
    cm_last_took: {type: Gauge, source: took, config: {action: set}}
    cm_took_seconds: {type: Histogram, source: took, config: {buckets: [0.1, 1]}}
"#;
    let lines = [
        "status=200 took=0.05",
        "status=500 took=250ms",
        "status=200 took=2s",
        "no match",
    ];
    let p = pipeline(stages);
    let (out, stats) = run_on(p.clone(), &lines);
    assert_eq!(out.len(), 4, "the stage keeps every line");
    assert_eq!(
        stats.failed,
        BTreeMap::from([("regex", 1)]),
        "only the line without a status"
    );
    let text = scrape();
    let l = |status: &str| format!(r#"job="t",namespace="ns",status="{status}",stream="stdout""#);
    let le = |bound: &str, status: &str| format!(r#"le="{bound}",{}"#, l(status));
    assert_eq!(
        samples(&text, "shipper_custom_cm_requests_total"),
        [
            format!(r#"shipper_custom_cm_requests_total{{{}}} 2.0"#, l("200")),
            format!(r#"shipper_custom_cm_requests_total{{{}}} 1.0"#, l("500"))
        ]
    );
    assert!(
        text.contains("# HELP shipper_custom_cm_requests requests seen"),
        "{text}"
    );
    assert_eq!(
        samples(&text, "shipper_custom_cm_errors_total"),
        [format!(r#"shipper_custom_cm_errors_total{{{}}} 1.0"#, l("500"))]
    );
    let bytes: usize = lines.iter().map(|l| l.len()).sum();
    let by_status: Vec<String> = samples(&text, "cm_p_cm_bytes_total");
    let counted: f64 = by_status
        .iter()
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    assert_eq!(counted, bytes as f64, "{by_status:?}");
    let lines_total: f64 = samples(&text, "shipper_custom_cm_lines_total")
        .iter()
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    assert_eq!(lines_total, 4.0);
    // The gauge holds the last value set per series: 2s for status 200, 250ms for 500.
    assert_eq!(
        samples(&text, "shipper_custom_cm_last_took"),
        [
            format!(r#"shipper_custom_cm_last_took{{{}}} 2.0"#, l("200")),
            format!(r#"shipper_custom_cm_last_took{{{}}} 0.25"#, l("500"))
        ]
    );
    let h200 = samples(&text, "shipper_custom_cm_took_seconds_bucket");
    assert!(
        h200.contains(&format!(
            r#"shipper_custom_cm_took_seconds_bucket{{{}}} 1"#,
            le("0.1", "200")
        )),
        "{h200:?}"
    );
    assert!(
        h200.contains(&format!(
            r#"shipper_custom_cm_took_seconds_bucket{{{}}} 1"#,
            le("1.0", "200")
        )),
        "{h200:?}"
    );
    assert!(
        h200.contains(&format!(
            r#"shipper_custom_cm_took_seconds_bucket{{{}}} 2"#,
            le("+Inf", "200")
        )),
        "{h200:?}"
    );
    assert!(
        text.contains(&format!(r#"shipper_custom_cm_took_seconds_sum{{{}}} 2.05"#, l("200"))),
        "{text}"
    );
    assert!(text.ends_with("# EOF\n"), "one exposition with one end");
    assert_eq!(text.matches("# EOF").count(), 1);
    drop(p);
    assert!(
        !scrape().contains("cm_requests"),
        "a metric no pipeline uses any more goes"
    );
}

#[test]
fn a_value_that_is_not_a_number_counts_a_failure_and_the_line_goes_on() {
    let p = pipeline(
        "- regex: {expression: 'n=(?P<n>\\S+)'}\n- metrics: {cm_n: {type: Gauge, source: n, config: {action: add}}}",
    );
    let (out, stats) = run_on(p.clone(), &["n=abc", "n=3"]);
    assert_eq!(out.len(), 2);
    assert_eq!(stats.failed.get("metrics"), Some(&1));
    assert!(scrape().contains(r#"shipper_custom_cm_n{job="t",namespace="ns",stream="stdout"} 3.0"#));
}

#[test]
fn numbers_and_go_durations_read_as_promtail_reads_them() {
    assert_eq!(number("1.5"), Some(1.5));
    assert_eq!(number("250ms"), Some(0.25));
    assert_eq!(number("1m30s"), Some(90.0));
    assert_eq!(number("-2h"), Some(-7200.0));
    assert_eq!(number("3us"), Some(3e-6));
    for bad in ["", "abc", "1x", "ms", "-"] {
        assert_eq!(number(bad), None, "{bad:?}");
    }
}

#[test]
fn series_idle_longer_than_max_idle_duration_are_removed_at_scrape() {
    let stage = MetricsStage::new(
        &serde_yaml_ng::from_str(
            "cm_idle: {type: Counter, max_idle_duration: 1s, config: {match_all: true, action: inc}}",
        )
        .unwrap(),
        "m",
    )
    .unwrap();
    let line = Line::new(0, bytes::Bytes::from_static(b"x"), crate::parse::StreamKind::Unknown, 0);
    let long_ago = Instant::now() - Duration::from_secs(5);
    assert!(stage.apply(&line, || vec![("a".into(), "old".into())], long_ago));
    assert!(stage.apply(&line, || vec![("a".into(), "new".into())], Instant::now()));
    let text = scrape();
    assert!(text.contains(r#"shipper_custom_cm_idle_total{a="new"} 1.0"#), "{text}");
    assert!(!text.contains(r#"a="old""#), "{text}");
}

#[test]
fn bad_metrics_are_refused_with_the_key_and_what_to_do() {
    let cases = [
        ("m1: {type: Summary, config: {action: inc}}", "s.metrics.m1.type:"),
        (
            "m2: {type: Counter, config: {action: set}}",
            "s.metrics.m2.config.action: a counter takes",
        ),
        (
            "m3: {type: Gauge, config: {}}",
            "s.metrics.m3.config.action: a gauge takes",
        ),
        (
            "m4: {type: Histogram, config: {action: inc}}",
            "s.metrics.m4.config.action: a histogram",
        ),
        (
            "m5: {type: Histogram, config: {buckets: [2, 1]}}",
            "s.metrics.m5.config.buckets:",
        ),
        (
            "m6: {type: Counter, max_idle_duration: 10ms, config: {action: inc}}",
            "s.metrics.m6.max_idle_duration:",
        ),
        (
            "m7: {type: Counter, config: {count_entry_bytes: true, action: add}}",
            "s.metrics.m7.config.count_entry_bytes:",
        ),
        (
            "bad-name: {type: Counter, config: {action: inc}}",
            "s.metrics.bad-name:",
        ),
        ("{}", "s.metrics: name at least one metric"),
    ];
    for (yaml, want) in cases {
        let c: BTreeMap<String, MetricConfig> = serde_yaml_ng::from_str(yaml).unwrap();
        let e = MetricsStage::new(&c, "s.metrics").err().unwrap();
        assert!(e.starts_with(want), "{yaml}: {e}");
    }
    let a: BTreeMap<String, MetricConfig> =
        serde_yaml_ng::from_str("cm_clash: {type: Counter, config: {action: inc}}").unwrap();
    let _keep = MetricsStage::new(&a, "a").unwrap();
    let b: BTreeMap<String, MetricConfig> =
        serde_yaml_ng::from_str("cm_clash: {type: Gauge, config: {action: set}}").unwrap();
    let e = MetricsStage::new(&b, "b").err().unwrap();
    assert!(e.contains("already a Counter"), "{e}");
}
