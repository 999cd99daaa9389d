//! Stages that rewrite and count lines, end to end: colour codes stripped, labels packed into the
//! line, and Prometheus metrics made from the lines on the agent's `/metrics`.

use crate::support::{stream_lines, wait_entries, Agent, Env};
use shipper_testkit::{Format, LogWriter};
use std::time::Duration;

#[test]
fn lines_are_decolorized_counted_and_packed() {
    let env = Env::new();
    let stages = r#"
    pipeline_stages:
      - decolorize: {}
      - regex: {expression: '^(?P<level>\w+) status=(?P<status>\d+) took=(?P<took>\S+)'}
      - labels: {level: ""}
      - metrics:
          requests_total:
            type: Counter
            description: "Requests by level"
            source: status
            config: {action: inc}
          server_errors_total:
            type: Counter
            source: status
            prefix: app_
            config: {value: "500", action: inc}
          took_seconds:
            type: Histogram
            source: took
            config: {buckets: [0.1, 1]}
      - pack: {labels: [level], ingest_timestamp: false}
"#;
    let cfg = env.config("app/*.log", "");
    std::fs::write(&cfg, std::fs::read_to_string(&cfg).unwrap() + stages).unwrap();
    let agent = Agent::start(&cfg);
    let mut w = LogWriter::create(env.path("app/0.log"), Format::Cri).unwrap();
    let n = 90;
    let mut want = Vec::new();
    for i in 0..n {
        let (level, status, took) = match i % 3 {
            0 => ("info", 200, "0.05"),
            1 => ("error", 500, "250ms"),
            _ => ("warn", 404, "2s"),
        };
        let plain = format!("{level} status={status} took={took} \"req\" {i}");
        let coloured = format!("\u{1b}[1;31m{level}\u{1b}[0m status={status} took={took} \"req\" {i}");
        w.write_line("stdout", &coloured).unwrap();
        want.push(format!(
            r#"{{"level":"{level}","_entry":{}}}"#,
            serde_json::to_string(&plain).unwrap()
        ));
    }
    w.flush().unwrap();
    wait_entries(&env, &agent, n, 30);
    std::thread::sleep(Duration::from_millis(300));
    let streams = env.loki.streams();
    let path = env.path("app/0.log");
    // `level` went into the line: one stream, the file's own, in file order.
    let labels = format!("{{filename=\"{}\", job=\"test\", stream=\"stdout\"}}", path.display());
    let entries = streams
        .get(&labels)
        .unwrap_or_else(|| panic!("no {labels} in {:?}", streams.keys()));
    assert_eq!(streams.len(), 1, "{:?}", streams.keys());
    let got: Vec<&str> = entries.iter().map(|e| e.line.as_str()).collect();
    assert_eq!(got, want);

    let text = agent.metrics();
    let series = |level: &str| {
        format!(
            "filename=\"{}\",job=\"test\",level=\"{level}\",stream=\"stdout\"",
            path.display()
        )
    };
    for level in ["info", "error", "warn"] {
        assert_eq!(
            crate::support::metric_value(&text, &format!("shipper_custom_requests_total{{{}}}", series(level))),
            30.0,
            "{level}: {text}"
        );
    }
    assert_eq!(
        crate::support::metric_value(&text, &format!("app_server_errors_total{{{}}}", series("error"))),
        30.0
    );
    assert!(!text.contains(&format!("app_server_errors_total{{{}}}", series("info"))));
    // 250ms falls in le=1, and so in every bucket above it; 2s only in +Inf.
    let bucket = |le: &str, level: &str| {
        crate::support::metric_value(
            &text,
            &format!("shipper_custom_took_seconds_bucket{{le=\"{le}\",{}}}", series(level)),
        )
    };
    assert_eq!(
        (bucket("0.1", "error"), bucket("1.0", "error"), bucket("+Inf", "error")),
        (0.0, 30.0, 30.0)
    );
    assert_eq!((bucket("1.0", "warn"), bucket("+Inf", "warn")), (0.0, 30.0));
    assert_eq!(bucket("0.1", "info"), 30.0);
    assert!(
        text.contains("# HELP shipper_custom_requests Requests by level"),
        "{text}"
    );
    assert!(text.trim_end().ends_with("# EOF"));
    agent.stop();
}

/// `template` and `replace` as Promtail's docs use them: a value normalised and made a label, an
/// address masked inside the line, and the line rebuilt from extracted values.
#[test]
fn templates_rewrite_values_and_replace_masks_parts_of_lines() {
    let env = Env::new();
    let stages = r#"
    pipeline_stages:
      - regex: {expression: 'level=(?P<level>\w+) user=(?P<user>\S+)'}
      - template: {source: level, template: '{{ .Value | ToLower }}'}
      - labels: {level: ""}
      - replace: {expression: 'ip=(?P<ip>[\d.]+)', replace: '{{ Replace .Value "." "-" -1 }}'}
      - template:
          source: out
          template: '{{ if eq .level "error" }}ALERT {{ end }}{{ .user | upper }} from {{ .ip }}: {{ .Entry }}'
      - output: {source: out}
"#;
    let cfg = env.config("app/*.log", "");
    std::fs::write(&cfg, std::fs::read_to_string(&cfg).unwrap() + stages).unwrap();
    let agent = Agent::start(&cfg);
    let mut w = LogWriter::create(env.path("app/0.log"), Format::Cri).unwrap();
    let n = 60;
    let mut want: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
    for i in 0..n {
        let level = ["INFO", "Error"][i % 2];
        let user = format!("u{i}");
        let ip = format!("10.0.{}.{}", i / 10, i % 10);
        w.write_line("stdout", &format!("level={level} user={user} ip={ip} ✓"))
            .unwrap();
        let dashed = ip.replace('.', "-");
        let alert = if i % 2 == 1 { "ALERT " } else { "" };
        let line = format!(
            "{alert}{} from {dashed}: level={level} user={user} ip={dashed} ✓",
            user.to_uppercase()
        );
        want.entry(["info", "error"][i % 2]).or_default().push(line);
    }
    w.flush().unwrap();
    wait_entries(&env, &agent, n, 30);
    std::thread::sleep(Duration::from_millis(300));
    let streams = env.loki.streams();
    let path = env.path("app/0.log");
    for (level, lines) in want {
        let labels = format!(
            "{{filename=\"{}\", job=\"test\", level=\"{level}\", stream=\"stdout\"}}",
            path.display()
        );
        assert_eq!(stream_lines(&env, &labels), lines, "{level}");
    }
    assert_eq!(streams.len(), 2);
    agent.stop();
}

/// `secretfilter`: lines carrying an AWS access key id or a GitHub token arrive with the secret
/// replaced, byte for byte, the others as written; the redactions are counted by rule.
#[test]
fn secrets_arrive_redacted() {
    let env = Env::new();
    let stages = "    pipeline_stages:\n      - secretfilter: {types: [aws, github]}\n";
    let cfg = env.config("app/*.log", "");
    std::fs::write(&cfg, std::fs::read_to_string(&cfg).unwrap() + stages).unwrap();
    let agent = Agent::start(&cfg);
    let mut w = LogWriter::create(env.path("app/0.log"), Format::Cri).unwrap();
    // Made up here from the documented shapes: `AKIA` and 16 upper-case letters or digits;
    // `ghp_` and 36 letters or digits.
    let aws = format!("AKIA{}", "QWERTYUIOPASDF23");
    let github = format!("ghp_{}", "aB3dE5gH7jK9".repeat(3));
    let mut want = Vec::new();
    for i in 0..30 {
        let (written, arrives) = match i % 3 {
            0 => (
                format!(r#"{{"msg":"assume role ✓","key":"{aws}","n":{i}}}"#),
                format!(r#"{{"msg":"assume role ✓","key":"<REDACTED-SECRET:aws-access-token>","n":{i}}}"#),
            ),
            1 => (
                format!("clone with token {github}\tand {aws} {i}"),
                format!("clone with token <REDACTED-SECRET:github-pat>\tand <REDACTED-SECRET:aws-access-token> {i}"),
            ),
            _ => {
                let plain = format!("AKIA is a prefix, ghp_ too: nothing to redact {i}");
                (plain.clone(), plain)
            }
        };
        w.write_line("stdout", &written).unwrap();
        want.push(arrives);
    }
    w.flush().unwrap();
    wait_entries(&env, &agent, want.len(), 30);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(env.loki.lines(), want, "one stream, in file order");
    let counted = |rule: &str| agent.metric(&format!("shipper_pipeline_secrets_redacted_total{{rule=\"{rule}\"}}"));
    assert_eq!((counted("aws-access-token"), counted("github-pat")), (20.0, 10.0));
    agent.stop();
}
