//! Pipeline stages end to end: lines written to files arrive changed exactly as the stages say
//! (parsed, relabelled, joined, filtered, re-timed, with structured metadata and per-line tenants),
//! at several Loki endpoints, and file positions still move only after every endpoint stored the
//! lines before them.

use crate::support::{stream_lines, wait_entries, Agent, Env};
use shipper_testkit::time::{format_rfc3339, now_nanos, TimeStyle};
use shipper_testkit::{Format, KubeApi, LogWriter, Pod, Receiver};
use std::time::{Duration, Instant};

/// The offset the positions file holds for `path` (0 when it is not there yet).
/// JSON app lines: parsed, filtered by level, labelled, re-timed from their own field, given
/// structured metadata and a tenant per line, and replaced by their message, by Promtail's stages
/// as written (`cri: {}` first).
#[test]
fn json_lines_are_parsed_filtered_labelled_and_rewritten() {
    let env = Env::new();
    let stages = r#"
    pipeline_stages:
      # As Promtail's Kubernetes configs begin: accepted, the CRI format being parsed already.
      - cri: {}
      - json:
          expressions: {level: "", msg: message, trace: ctx.trace_id, time: "", team: ""}
      - drop: {source: level, value: debug}
      - labels: {level: ""}
      - structured_metadata: {trace_id: trace}
      - timestamp: {source: time, format: RFC3339Nano}
      - tenant: {source: team}
      - output: {source: msg}
"#;
    let cfg = env.config("app/*.log", "");
    let yaml = std::fs::read_to_string(&cfg).unwrap() + stages;
    std::fs::write(&cfg, yaml).unwrap();
    let agent = Agent::start(&cfg);
    let mut w = LogWriter::create(env.path("app/0.log"), Format::Cri).unwrap();
    let base = now_nanos() - 3_600_000_000_000;
    let n = 300u64;
    let levels = ["debug", "info", "warn"];
    for i in 0..n {
        let ts = format_rfc3339(base + i as i64 * 1_000_123, TimeStyle::GoNano);
        let team = if i % 2 == 0 { "team-a" } else { "team-b" };
        let line = format!(
            r#"{{"level":"{}","message":"did \"thing\" {i} ✓","ctx":{{"trace_id":"t{i:04}"}},"time":"{ts}","team":"{team}"}}"#,
            levels[i as usize % 3]
        );
        w.write_line("stdout", &line).unwrap();
    }
    w.flush().unwrap();
    let kept = n - n.div_ceil(3);
    wait_entries(&env, &agent, kept as usize, 30);
    std::thread::sleep(Duration::from_millis(300));
    let streams = env.loki.streams();
    let path = env.path("app/0.log");
    let mut seen = 0;
    for level in ["info", "warn"] {
        let labels = format!(
            "{{filename=\"{}\", job=\"test\", level=\"{level}\", stream=\"stdout\"}}",
            path.display()
        );
        let entries = streams
            .get(&labels)
            .unwrap_or_else(|| panic!("no {labels} in {:?}", streams.keys()));
        // Each tenant's lines in order (Loki keeps tenants apart; their batches go separately).
        for team in ["team-a", "team-b"] {
            let want: Vec<u64> = (0..n)
                .filter(|i| levels[*i as usize % 3] == level && (i % 2 == 0) == (team == "team-a"))
                .collect();
            let got: Vec<_> = entries.iter().filter(|e| e.tenant.as_deref() == Some(team)).collect();
            assert_eq!(got.len(), want.len(), "{level} {team}");
            for (e, i) in got.into_iter().zip(want) {
                assert_eq!(e.line, format!("did \"thing\" {i} ✓"));
                assert_eq!(
                    e.ts_ns,
                    base + i as i64 * 1_000_123,
                    "line {i}: timestamp from its time field"
                );
                assert_eq!(
                    e.structured_metadata,
                    vec![("trace_id".to_string(), format!("t{i:04}"))]
                );
            }
        }
        seen += entries.len();
    }
    assert_eq!(seen as u64, kept, "{:?}", streams.keys());
    let dropped = agent.metric("shipper_pipeline_dropped_lines_total{reason=\"drop_stage\"}");
    assert_eq!(dropped as u64, n.div_ceil(3));
    // The tenants went to Loki as X-Scope-OrgID of separate requests.
    let tenants: std::collections::BTreeSet<_> = env.loki.requests().into_iter().filter_map(|r| r.org_id).collect();
    assert_eq!(tenants, ["team-a".to_string(), "team-b".to_string()].into());
    agent.stop();
}

/// Java stack traces (the `java` preset) and `firstline` entries join into one line each, byte for
/// byte, with a level label from a regex; an entry still waiting for its end is not checkpointed,
/// so a kill -9 in the middle of it loses nothing and splits nothing.
#[test]
fn multiline_entries_join_and_survive_a_kill() {
    let env = Env::new();
    let stages = r#"
    pipeline_stages:
      - multiline: {preset: java, max_wait_time: 1h}
      - regex: {expression: '^\S+ \S+ (?P<level>[A-Z]+) '}
      - labels: {level: ""}
"#;
    let cfg = env.config("java/*.log", "");
    let yaml = std::fs::read_to_string(&cfg).unwrap() + stages;
    std::fs::write(&cfg, yaml).unwrap();
    let agent = Agent::start(&cfg);
    let path = env.path("java/0.log");
    let mut w = LogWriter::create(&path, Format::Cri).unwrap();
    let trace = |i: u64| {
        vec![
            format!("2026-11-30 10:00:{:02}.000 ERROR request {i} failed", i % 60),
            format!("java.lang.IllegalStateException: boom {i}"),
            "\tat com.example.Handler.handle(Handler.java:42)".to_string(),
            "\tat com.example.Server.run(Server.java:7)".to_string(),
            format!("Caused by: java.io.IOException: disk {i}"),
            "\t... 5 more".to_string(),
        ]
    };
    let info = |i: u64| format!("2026-11-30 10:00:{:02}.500 INFO request {i} ok", i % 60);
    let mut expected_error = Vec::new();
    let mut expected_info = Vec::new();
    for i in 0..20 {
        for l in trace(i) {
            w.write_line("stdout", &l).unwrap();
        }
        expected_error.push(trace(i).join("\n"));
        w.write_line("stdout", &info(i)).unwrap();
        expected_info.push(info(i));
    }
    // The last entry has no successor yet: it waits (max_wait_time 1h).
    let open = trace(99);
    for l in &open[..3] {
        w.write_line("stdout", l).unwrap();
    }
    w.flush().unwrap();
    wait_entries(&env, &agent, 40, 30);
    // Acknowledged progress is written within a second (the default `sync_period`): give it time
    // to (wrongly) pass the open entry.
    std::thread::sleep(Duration::from_millis(2_000));
    let at_kill = crate::support::saved_offset(&env, &path);
    let file_len = std::fs::metadata(&path).unwrap().len();
    assert!(
        at_kill < file_len,
        "the entry in progress must not be checkpointed ({at_kill} of {file_len})"
    );
    agent.kill();
    for l in &open[3..] {
        w.write_line("stdout", l).unwrap();
    }
    w.write_line("stdout", &info(99)).unwrap();
    w.flush().unwrap();
    let agent = Agent::start(&cfg);
    expected_error.push(open.join("\n"));
    wait_entries(&env, &agent, 41, 30);
    let labels = |level: &str| {
        format!(
            "{{filename=\"{}\", job=\"test\", level=\"{level}\", stream=\"stdout\"}}",
            path.display()
        )
    };
    let lines = |level: &str| -> Vec<String> { env.loki.stream(&labels(level)).into_iter().map(|e| e.line).collect() };
    assert_eq!(lines("ERROR"), expected_error, "every trace whole, once, in order");
    assert_eq!(
        lines("INFO"),
        expected_info,
        "the last INFO line waits for its successor"
    );
    agent.stop();
}

/// Two endpoints: every line reaches both; while one is down the file's position does not move,
/// and it moves once that one stored the lines too.
#[test]
fn every_endpoint_gets_every_line_and_positions_wait_for_all() {
    let env = Env::new();
    let second = Receiver::start();
    second.set_down(true);
    let extra = format!(
        "clients:\n  - url: {}\n    batch_wait: 100ms\n    backoff: {{min_period: 100ms, max_period: 500ms, max_retries: 0}}\n",
        second.url()
    );
    let agent = Agent::start(&env.config("fan/*.log", &extra));
    let path = env.path("fan/0.log");
    let mut w = LogWriter::create(&path, Format::Cri).unwrap();
    crate::support::write_tagged(&mut w, 0, 0..500);
    let all = crate::support::wait_all(&env, &agent, &[(0, 500)], 30);
    crate::support::assert_exact_or_log(&all, &agent);
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(
        crate::support::saved_offset(&env, &path),
        0,
        "the second endpoint has stored nothing yet"
    );
    second.set_down(false);
    assert!(
        second.wait_for_entries(500, Duration::from_secs(30)),
        "second endpoint: {}",
        second.entry_count()
    );
    let account = second.account([(0, 500)]);
    crate::support::assert_exact_or_log(&account, &agent);
    let len = std::fs::metadata(&path).unwrap().len();
    let deadline = Instant::now() + Duration::from_secs(10);
    while crate::support::saved_offset(&env, &path) < len && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(crate::support::saved_offset(&env, &path), len);
    agent.stop();
}

/// `limit` without `drop` slows reading down and loses nothing; with `drop` the excess is counted.
#[test]
fn rate_limits_slow_down_or_count_their_drops() {
    let env = Env::new();
    let extra = r#"
  - paths: [DIR/dropping/*.log]
    labels: {job: dropping}
    pipeline_stages:
      - limit: {rate: 50, burst: 50, drop: true}
"#
    .replace("DIR", &env.dir.path().display().to_string());
    let cfg = env.config("slow/*.log", "");
    let yaml = std::fs::read_to_string(&cfg).unwrap()
        + "    pipeline_stages:\n      - limit: {rate: 200, burst: 100}\n"
        + &extra;
    std::fs::write(&cfg, yaml).unwrap();
    let agent = Agent::start(&cfg);
    let mut slow = LogWriter::create(env.path("slow/0.log"), Format::Cri).unwrap();
    let mut dropping = LogWriter::create(env.path("dropping/0.log"), Format::Cri).unwrap();
    let start = Instant::now();
    crate::support::write_tagged(&mut slow, 0, 0..800);
    crate::support::write_tagged(&mut dropping, 1, 0..1000);
    let account = crate::support::wait_all(&env, &agent, &[(0, 800)], 60);
    let took = start.elapsed();
    assert!(
        took >= Duration::from_secs(3),
        "800 lines at 200/s (burst 100) took only {took:?}"
    );
    let slow_lines = account.files().get(&0).map_or(0, |f| f.received);
    assert_eq!(slow_lines, 800, "{account}");
    let dropped = agent.metric("shipper_pipeline_dropped_lines_total{reason=\"rate_limited\"}") as u64;
    let delivered = env
        .loki
        .lines()
        .iter()
        .filter(|l| shipper_testkit::parse_tag(l).is_some_and(|t| t.0 == 1))
        .count() as u64;
    assert_eq!(
        delivered + dropped,
        1000,
        "every line of the dropping file is delivered or counted"
    );
    assert!(dropped >= 500, "written at once, most are over 50/s: {dropped}");
    agent.stop();
}

/// `limit` with `by_label_name`: one file, lines of two label values interleaved; the value over
/// its rate loses its excess (counted as `rate_limited`), the other's lines all arrive, byte for
/// byte and in order, though a per-stream limit would have dropped them with the rest.
#[test]
fn a_limit_by_label_drops_only_the_values_over_their_rate() {
    let env = Env::new();
    let stages = r#"    pipeline_stages:
      - regex: {expression: '^f=(?P<team>\d+) '}
      - labels: {team: ""}
      - limit: {rate: 50, burst: 100, drop: true, by_label_name: team}
"#;
    let cfg = env.config("byteam/*.log", "");
    let yaml = std::fs::read_to_string(&cfg).unwrap() + stages;
    std::fs::write(&cfg, yaml).unwrap();
    let agent = Agent::start(&cfg);
    let mut w = LogWriter::create(env.path("byteam/0.log"), Format::Cri).unwrap();
    let (noisy, quiet) = (1000u64, 50u64);
    let mut quiet_lines = Vec::new();
    for i in 0..noisy {
        let len = shipper_testkit::varied_len(i, 50, 300);
        w.write_line("stdout", &shipper_testkit::tag_line(0, i, len)).unwrap();
        if i % 20 == 0 {
            let line = shipper_testkit::tag_line(1, i / 20, len) + " \"quoted\" ✓\ttab";
            w.write_line("stdout", &line).unwrap();
            quiet_lines.push(line);
        }
    }
    w.flush().unwrap();
    assert_eq!(quiet_lines.len() as u64, quiet);
    crate::support::wait_all(&env, &agent, &[(1, quiet)], 30);
    let series = "shipper_pipeline_dropped_lines_total{reason=\"rate_limited\"}";
    let noisy_seen = || {
        env.loki
            .lines()
            .iter()
            .filter(|l| shipper_testkit::parse_tag(l).is_some_and(|t| t.0 == 0))
            .count() as u64
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while noisy_seen() + agent.metric(series) as u64 != noisy && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let dropped = agent.metric(series) as u64;
    assert_eq!(noisy_seen() + dropped, noisy, "each noisy line is delivered or counted");
    assert!(dropped >= 500, "written at once, most are over 50/s: {dropped}");
    let streams = env.loki.streams();
    let quiet_stream: Vec<&str> = streams
        .iter()
        .filter(|(labels, _)| labels.contains("team=\"0001\""))
        .flat_map(|(_, entries)| entries.iter().map(|e| e.line.as_str()))
        .collect();
    assert_eq!(quiet_stream, quiet_lines, "the quiet value's lines, whole and in order");
    agent.stop();
}

/// The Alloy relabeling of tests/convert's Application, as `relabel_configs`: namespace dropped, `app` and `job` from pod
/// metadata, pod labels mapped; `filename` dropped by a stage (as in Promtail, it is not a target
/// label).
#[test]
fn relabel_rules_of_an_alloy_setup() {
    let env = Env::new();
    let api = KubeApi::start();
    let kubeconfig = env.path("kubeconfig");
    api.write_kubeconfig(&kubeconfig);
    api.apply_pod(
        &Pod::new("monitoring", "logger-7f9", "uid-1", "node-a")
            .label("app.kubernetes.io/name", "logger")
            .label("team.example.com/owner", "sre"),
    );
    api.apply_pod(&Pod::new("kube-system", "coredns-1", "uid-2", "node-a").label("app.kubernetes.io/name", "coredns"));
    let pods = env.path("pods");
    std::fs::create_dir_all(&pods).unwrap();
    let extra = format!(
        r#"discovery: kubernetes
kubernetes:
  pods_root: {}
  node_name: node-a
  kubeconfig: {}
relabel_configs:
  - source_labels: [__meta_kubernetes_namespace]
    regex: kube-system
    action: drop
  - source_labels: [__meta_kubernetes_pod_label_app_kubernetes_io_name]
    target_label: app
  - source_labels: [__meta_kubernetes_namespace, app]
    separator: /
    target_label: job
  - action: labelmap
    regex: __meta_kubernetes_pod_label_team_example_com_(.+)
  - source_labels: [__meta_kubernetes_pod_uid, __meta_kubernetes_pod_container_name]
    separator: /
    target_label: __path__
    replacement: /var/log/pods/*$1/*.log
pipeline_stages:
  - labeldrop: [filename]
"#,
        pods.display(),
        kubeconfig.display()
    );
    let cfg = env.config("none/*.log", &extra);
    let agent = Agent::start(&cfg);
    assert!(api.wait_for_watches("pods", 1, Duration::from_secs(10)));
    std::thread::sleep(Duration::from_millis(500));
    let mut kept = LogWriter::create(pods.join("monitoring_logger-7f9_uid-1/logger/0.log"), Format::Cri).unwrap();
    let mut gone = LogWriter::create(pods.join("kube-system_coredns-1_uid-2/coredns/0.log"), Format::Cri).unwrap();
    crate::support::write_tagged(&mut kept, 0, 0..100);
    crate::support::write_tagged(&mut gone, 1, 0..100);
    wait_entries(&env, &agent, 100, 30);
    std::thread::sleep(Duration::from_millis(500));
    let streams = env.loki.streams();
    let want = "{app=\"logger\", container=\"logger\", job=\"monitoring/logger\", namespace=\"monitoring\", node_name=\"node-a\", owner=\"sre\", pod=\"logger-7f9\", stream=\"stdout\"}";
    assert_eq!(
        streams.keys().collect::<Vec<_>>(),
        [want],
        "only the kept pod's stream, relabelled"
    );
    let account = shipper_testkit::Account::from_streams(&streams, [(0, 100)]);
    crate::support::assert_exact_or_log(&account, &agent);
    agent.stop();
}

/// Labels over Loki's `max_label_names_per_series` would make it refuse every push of the stream:
/// they are dropped (counted) and the lines arrive.
#[test]
fn labels_over_the_limit_are_dropped_not_the_lines() {
    let env = Env::new();
    let labels: Vec<String> = (0..20).map(|i| format!("l{i:02}: v")).collect();
    let cfg = env.config("many/*.log", "");
    let yaml = std::fs::read_to_string(&cfg).unwrap().replace(
        "labels: {job: test}",
        &format!("labels: {{job: test, {}}}", labels.join(", ")),
    );
    std::fs::write(&cfg, yaml).unwrap();
    let agent = Agent::start(&cfg);
    let mut w = LogWriter::create(env.path("many/0.log"), Format::Cri).unwrap();
    crate::support::write_tagged(&mut w, 0, 0..200);
    let account = crate::support::wait_all(&env, &agent, &[(0, 200)], 30);
    crate::support::assert_exact_or_log(&account, &agent);
    for key in env.loki.streams().keys() {
        assert_eq!(key.matches("=\"").count(), 15, "{key}");
        assert!(key.contains("job=\"test\""), "{key}");
    }
    assert!(agent.metric("shipper_labels_fitted_total{reason=\"dropped\"}") >= 7.0);
    agent.stop();
}

/// Promtail's `match` through the binary: the stages of a match run on the lines its selector
/// takes (labels as the stages before made them, a line filter), a nested match narrows further,
/// and `action: drop` drops and counts what it matches; every other line arrives as it was.
#[test]
fn match_stages_act_on_the_lines_they_select() {
    let env = Env::new();
    let stages = r#"
    pipeline_stages:
      - regex: {expression: '^(?P<level>\w+) '}
      - labels: {level: ""}
      - match:
          selector: '{level="error"} != "ignore"'
          stages:
            - static_labels: {page: "yes"}
            - match:
                selector: '{job="test"} |= "db"'
                stages:
                  - static_labels: {team: db}
      - match:
          selector: '{level="debug"}'
          action: drop
          drop_counter_reason: debug_lines
"#;
    let cfg = env.config("app/*.log", "");
    std::fs::write(&cfg, std::fs::read_to_string(&cfg).unwrap() + stages).unwrap();
    let agent = Agent::start(&cfg);
    let mut w = LogWriter::create(env.path("app/0.log"), Format::Cri).unwrap();
    let lines = [
        "error db down",
        "error ignore this",
        "info db ok",
        "debug noise",
        "error disk full",
    ];
    for i in 0..100 {
        w.write_line("stdout", &format!("{} {i}", lines[i % lines.len()]))
            .unwrap();
    }
    w.flush().unwrap();
    wait_entries(&env, &agent, 80, 30);
    std::thread::sleep(Duration::from_millis(300));
    let streams = env.loki.streams();
    let path = env.path("app/0.log");
    // Each stream: the labels the stages gave, and the one kind of line in it, 20 times.
    for (extra, line) in [
        (
            "level=\"error\", page=\"yes\", stream=\"stdout\", team=\"db\"",
            "error db down",
        ),
        ("level=\"error\", page=\"yes\", stream=\"stdout\"", "error disk full"),
        ("level=\"error\", stream=\"stdout\"", "error ignore this"),
        ("level=\"info\", stream=\"stdout\"", "info db ok"),
    ] {
        let labels = format!("{{filename=\"{}\", job=\"test\", {extra}}}", path.display());
        let entries = streams
            .get(&labels)
            .unwrap_or_else(|| panic!("no {labels} in {:?}", streams.keys()));
        assert_eq!(entries.len(), 20, "{labels}");
        assert!(
            entries.iter().all(|e| e.line.starts_with(line)),
            "{labels}: {entries:?}"
        );
    }
    assert_eq!(streams.len(), 4, "{:?}", streams.keys());
    assert_eq!(
        agent.metric("shipper_pipeline_dropped_lines_total{reason=\"debug_lines\"}"),
        20.0
    );
    agent.stop();
}

/// Access-log lines through `regex` → `geoip` → `labels`: each line arrives byte for byte, in
/// the stream of its address's country and network (databases the testkit wrote); an address the
/// databases do not hold leaves the line in the file's stream, and a value that is no address
/// counts a failure of the stage.
#[test]
fn geoip_labels_lines_by_the_country_of_their_address() {
    use shipper_testkit::mmdb::{asn, city, Mmdb};
    let env = Env::new();
    let db = env.path("geoip/GeoLite2-City.mmdb");
    let mut m = Mmdb::new("GeoLite2-City", 6, 24);
    m.insert("81.2.69.0/24", city("London", "GB", "United Kingdom", "EU", "Europe"));
    m.insert("2001:db8::/32", city("Berlin", "DE", "Germany", "EU", "Europe"));
    std::fs::write(&db, m.build()).unwrap();
    let asn_db = env.path("geoip/GeoLite2-ASN.mmdb");
    let mut a = Mmdb::new("GeoLite2-ASN", 4, 32);
    a.insert("81.2.0.0/16", asn(20712, "Andrews & Arnold Ltd"));
    std::fs::write(&asn_db, a.build()).unwrap();
    let stages = format!(
        r#"
    pipeline_stages:
      - regex: {{expression: '^(?P<ip>\S+) '}}
      - geoip: {{source: ip, db: {}, db_type: city}}
      - geoip: {{source: ip, db: {}, db_type: asn}}
      - labels: {{geoip_country_code: "", asn: geoip_autonomous_system_number}}
"#,
        db.display(),
        asn_db.display()
    );
    let cfg = env.config("app/*.log", "");
    std::fs::write(&cfg, std::fs::read_to_string(&cfg).unwrap() + &stages).unwrap();
    let agent = Agent::start(&cfg);
    let path = env.path("app/0.log");
    let mut w = LogWriter::create(&path, Format::Cri).unwrap();
    let ips = ["81.2.69.142", "2001:db8::1", "192.0.2.7", "-"];
    let n = 40;
    let mut want: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
    for i in 0..n {
        let ip = ips[i % ips.len()];
        let line = format!("{ip} - - \"GET /item/{i} HTTP/1.1\" 200 {i} \"ünï\"");
        w.write_line("stdout", &line).unwrap();
        want.entry(ip).or_default().push(line);
    }
    w.flush().unwrap();
    wait_entries(&env, &agent, n, 30);
    // A moment more: a line sent twice would show.
    std::thread::sleep(Duration::from_millis(300));
    let file = format!("filename=\"{}\"", path.display());
    let streams = env.loki.streams();
    let rest = "job=\"test\", stream=\"stdout\"";
    for (ip, labels) in [
        (
            "81.2.69.142",
            format!("{{asn=\"20712\", {file}, geoip_country_code=\"GB\", {rest}}}"),
        ),
        ("2001:db8::1", format!("{{{file}, geoip_country_code=\"DE\", {rest}}}")),
        ("192.0.2.7", format!("{{{file}, {rest}}}")),
    ] {
        let got = stream_lines(&env, &labels);
        let mut expected = want[ip].clone();
        if ip == "192.0.2.7" {
            // `-` is no address: those lines stay in the file's stream too, in file order.
            expected = (0..n)
                .filter(|i| matches!(ips[i % ips.len()], "192.0.2.7" | "-"))
                .map(|i| want[ips[i % ips.len()]][i / ips.len()].clone())
                .collect();
        }
        assert_eq!(got, expected, "{labels}");
    }
    assert_eq!(streams.len(), 3, "{:?}", streams.keys());
    // Both geoip stages fail on `-`, and the ASN one on IPv6 (its database holds IPv4 only);
    // an address not in a database is no failure.
    let failed = agent.metric("shipper_pipeline_stage_failures_total{stage=\"geoip\"}");
    assert_eq!(failed as usize, 3 * n / ips.len());
    agent.stop();
}
