//! Lines routed to some endpoints: one file fanned out through two `branches` with different
//! stages to two named clients, and a target whose `clients` names one. Each endpoint gets exactly
//! its lines; a file's position waits for every endpoint its lines go to.

use crate::support::{saved_offset, Agent, Env};
use shipper_testkit::{Format, LogWriter, Receiver};
use std::collections::BTreeMap;
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
