//! Lines routed to some endpoints: one file fanned out through two `branches` with different
//! stages to two named clients, and a target whose `clients` names one. Each endpoint gets exactly
//! its lines; a file's position waits for every endpoint its lines go to. And an Alloy fan-out
//! converted into such a config.

use crate::convert::{check_with, convert, Overlay};
use crate::support::{saved_offset, Agent, Env};
use serde_yaml_ng::Value;
use shipper_testkit::{Format, LogWriter, Receiver};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// Each stream's lines, in order.
fn lines(r: &Receiver) -> BTreeMap<String, Vec<String>> {
    r.streams()
        .into_iter()
        .map(|(labels, entries)| (labels, entries.into_iter().map(|e| e.line).collect()))
        .collect()
}

#[test]
fn branches_and_target_clients_send_each_endpoint_exactly_its_lines() {
    let env = Env::new();
    let archive = Receiver::start();
    archive.set_down(true);
    let dir = env.dir.path().display().to_string();
    let yaml = format!(
        r#"server:
  http_listen: 127.0.0.1:{port}
  log_level: debug
positions:
  filename: {dir}/positions.json
client:
  name: main
  url: {main}
  batch_wait: 100ms
  backoff: {{min_period: 100ms, max_period: 500ms}}
clients:
  - name: archive
    url: {archive}
    batch_wait: 100ms
    backoff: {{min_period: 100ms, max_period: 500ms}}
targets:
  - paths: [{dir}/app/*.log]
    labels: {{job: app}}
    pipeline_stages:
      - json: {{expressions: {{level: ""}}}}
      - branches:
          - clients: [archive]
            stages:
              - drop: {{source: level, value: debug}}
          - clients: [main]
            stages:
              - labels: {{level: ""}}
  - paths: [{dir}/audit/*.log]
    labels: {{job: audit}}
    clients: [archive]
"#,
        port = shipper_testkit::prom::free_port(),
        main = env.loki.url(),
        archive = archive.url(),
    );
    let cfg = env.path("shipper.yaml");
    std::fs::write(&cfg, yaml).unwrap();
    let agent = Agent::start(&cfg);
    let app = env.path("app/0.log");
    let audit = env.path("audit/0.log");
    let mut w = LogWriter::create(&app, Format::Cri).unwrap();
    let mut a = LogWriter::create(&audit, Format::Cri).unwrap();
    let levels = ["debug", "info", "warn"];
    let mut written: Vec<(&str, String)> = Vec::new();
    for i in 0..300 {
        let level = levels[i % 3];
        let line = format!(r#"{{"level":"{level}","msg":"request {i} ✓ \"done\""}}"#);
        w.write_line("stdout", &line).unwrap();
        written.push((level, line));
    }
    w.flush().unwrap();
    let audited: Vec<String> = (0..50).map(|i| format!("audit {i}: user=u{i} action=login")).collect();
    for l in &audited {
        a.write_line("stdout", l).unwrap();
    }
    a.flush().unwrap();

    // main: every app line, labelled with its level; nothing of the audit file.
    assert!(
        env.loki.wait_for_entries(300, Duration::from_secs(30)),
        "main has {} of 300; agent log: {}",
        env.loki.entry_count(),
        agent.log_tail()
    );
    std::thread::sleep(Duration::from_millis(1000));
    let stream = |job: &str, path: &std::path::Path, level: Option<&str>| match level {
        Some(l) => format!(
            r#"{{filename="{}", job="{job}", level="{l}", stream="stdout"}}"#,
            path.display()
        ),
        None => format!(r#"{{filename="{}", job="{job}", stream="stdout"}}"#, path.display()),
    };
    let mut want_main = BTreeMap::new();
    for (level, line) in &written {
        want_main
            .entry(stream("app", &app, Some(level)))
            .or_insert_with(Vec::new)
            .push(line.clone());
    }
    assert_eq!(lines(&env.loki), want_main);
    assert_eq!(
        saved_offset(&env, &app),
        0,
        "the archive endpoint has stored none of the app file's lines yet"
    );
    assert_eq!(saved_offset(&env, &audit), 0, "the audit file goes to the archive only");

    // archive: the app lines but debug, with the file's labels; and the audit file.
    archive.set_down(false);
    let want_archive = BTreeMap::from([
        (
            stream("app", &app, None),
            written
                .iter()
                .filter(|(l, _)| *l != "debug")
                .map(|(_, l)| l.clone())
                .collect::<Vec<_>>(),
        ),
        (stream("audit", &audit, None), audited.clone()),
    ]);
    assert!(
        archive.wait_for_entries(250, Duration::from_secs(30)),
        "archive has {} of 250; agent log: {}",
        archive.entry_count(),
        agent.log_tail()
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(lines(&archive), want_archive);
    assert_eq!(lines(&env.loki), want_main, "main got nothing more");
    for path in [&app, &audit] {
        let len = std::fs::metadata(path).unwrap().len();
        let deadline = Instant::now() + Duration::from_secs(10);
        while saved_offset(&env, path) < len && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(saved_offset(&env, path), len, "{}", path.display());
    }
    agent.stop();
}

/// An Alloy source fanned out to two `loki.process` chains, each ending at its own `loki.write`,
/// and a source sent to one of them: the writes become named clients, the fan-out a `branches`
/// stage (the stage both chains share before it), the other source's target `clients`. The
/// config passes `shipper check`, and each receiver gets exactly its lines.
#[test]
fn an_alloy_fan_out_converts_to_branches_and_ships_each_endpoint_its_lines() {
    let env = Env::new();
    let archive = Receiver::start();
    let cfg = env.path("shipper.yaml");
    let (code, report) = convert("alloy", "alloy-fan-out.alloy", &cfg);
    assert_eq!(code, 0, "everything maps: {report}");
    for want in [
        ":9: loki.source.file \"app\" forward_to (2 chains): mapped to a last `branches` stage",
        "(1 shared stage(s) before it)",
        ":24: loki.source.file \"app\" → loki.write \"archive\": mapped to branches[0] of its stages: 1 stage(s) of its own, to clients archive",
        ":36: loki.source.file \"app\" → loki.write \"default\": mapped to branches[1]",
        ":43: loki.source.file \"audit\" forward_to loki.write \"archive\": mapped to `clients: [archive]`",
    ] {
        assert!(report.contains(want), "{want}\n{report}");
    }
    let (ok, err) = check_with(&cfg, &[]);
    assert!(ok, "{err}");
    let doc: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(&cfg).unwrap()).unwrap();
    let mut overlay = Overlay::new(&env);
    for place in ["client", "clients.0"] {
        let mut at = &doc;
        for k in place.split('.') {
            at = match k.parse::<usize>() {
                Ok(i) => &at[i],
                Err(_) => &at[k],
            };
        }
        let url = match at["name"].as_str() {
            Some("default") => env.loki.url(),
            Some("archive") => archive.url(),
            other => panic!("{place} is named {other:?}"),
        };
        overlay.set(&format!("{place}.url"), url.into());
    }
    for (i, dir) in ["app", "audit"].into_iter().enumerate() {
        let glob = env.path(dir).join("*.log").display().to_string();
        overlay.set(&format!("targets.{i}.paths"), Value::Sequence(vec![glob.into()]));
    }
    overlay.apply(&cfg);
    let agent = Agent::start(&cfg);
    let (app, audit) = (env.path("app/0.log"), env.path("audit/0.log"));
    let mut w = LogWriter::create(&app, Format::Raw).unwrap();
    let levels = ["debug", "info", "error"];
    let written: Vec<(&str, String)> = (0..90)
        .map(|i| {
            (
                levels[i % 3],
                format!(r#"{{"level":"{}","msg":"step {i}"}}"#, levels[i % 3]),
            )
        })
        .collect();
    for (_, l) in &written {
        w.write_line("stdout", l).unwrap();
    }
    w.flush().unwrap();
    let mut a = LogWriter::create(&audit, Format::Raw).unwrap();
    a.write_line("stdout", "user=u1 action=login").unwrap();
    a.flush().unwrap();
    assert!(
        env.loki.wait_for_entries(90, Duration::from_secs(30)),
        "{}",
        agent.log_tail()
    );
    assert!(
        archive.wait_for_entries(61, Duration::from_secs(30)),
        "{}",
        agent.log_tail()
    );
    std::thread::sleep(Duration::from_millis(500));
    let stream = |job: &str, path: &Path, level: Option<&str>| {
        let level = level.map(|l| format!(", level=\"{l}\"")).unwrap_or_default();
        format!("{{filename=\"{}\", job=\"{job}\"{level}}}", path.display())
    };
    let mut main = BTreeMap::new();
    for (level, l) in &written {
        main.entry(stream("app", &app, Some(level)))
            .or_insert_with(Vec::new)
            .push(l.clone());
    }
    assert_eq!(lines(&env.loki), main);
    let kept: Vec<String> = written
        .iter()
        .filter(|(l, _)| *l != "debug")
        .map(|(_, l)| l.clone())
        .collect();
    let archived = BTreeMap::from([
        (stream("app", &app, None), kept),
        (stream("audit", &audit, None), vec!["user=u1 action=login".to_string()]),
    ]);
    assert_eq!(lines(&archive), archived);
    agent.stop();
}
