//! The journald input end to end: journal files written by Debian's `systemd-journal-remote`, read by
//! the agent through the real `journalctl`, arrive at the receiver byte for byte with their labels
//! and timestamps, and a restart resumes after the saved cursor (nothing twice, nothing lost).

use crate::support::{wait_entries, wait_metric, Agent, Env};
use shipper_testkit::journal::{now_us, tools, JournalEntry as Rec};
use std::time::Duration;

/// Writes `recs` as a new journal file `<env>/journal/<name>` with systemd-journal-remote.
fn write_journal(env: &Env, name: &str, recs: &[Rec]) {
    shipper_testkit::journal::write_journal(&env.path(&format!("journal/{name}")), recs);
}

/// Entries `range`: units a/b/c, priorities 3..=6, every 7th message on two lines, every 11th with
/// a byte that is not UTF-8.
fn recs(t0: u64, range: std::ops::Range<u64>) -> Vec<Rec> {
    range
        .map(|i| {
            let mut message = format!("entry {i} \"quoted\" ✓ tab\there").into_bytes();
            if i.is_multiple_of(7) {
                message.extend_from_slice(b"\nsecond line");
            }
            if i.is_multiple_of(11) {
                message.extend_from_slice(b" bad:\xff");
            }
            Rec {
                hostname: "node-a".into(),
                ts_us: t0 + i,
                unit: format!("{}.service", ["a", "b", "c"][i as usize % 3]),
                priority: 3 + (i % 4) as u8,
                message,
            }
        })
        .collect()
}

/// What the receiver must hold for `r`: (labels, line, timestamp).
fn expected(r: &Rec) -> (String, String, i64) {
    (
        format!(
            "{{hostname=\"node-a\", job=\"systemd-journal\", priority=\"{}\", unit=\"{}\"}}",
            r.priority, r.unit
        ),
        String::from_utf8_lossy(&r.message).into_owned(),
        r.ts_us as i64 * 1000,
    )
}

fn config(env: &Env, max_age: &str) -> std::path::PathBuf {
    let journal = format!(
        "journal:\n  path: {}\n  max_age: {max_age}\n  labels: {{job: systemd-journal}}\n",
        env.path("journal").display()
    );
    env.config("files/*.log", &journal)
}

/// Everything the receiver holds as (labels, line, timestamp), sorted by timestamp.
fn received(env: &Env) -> Vec<(String, String, i64)> {
    let mut v: Vec<_> = env
        .loki
        .streams()
        .into_iter()
        .flat_map(|(labels, entries)| entries.into_iter().map(move |e| (labels.clone(), e.line, e.ts_ns)))
        .collect();
    v.sort_by_key(|e| e.2);
    v
}

fn saved_cursor(env: &Env) -> Option<String> {
    let v = crate::support::saved_positions(env);
    assert!(
        v.is_null()
            || v["files"]
                .as_array()
                .is_some_and(|f| f.iter().all(|f| f["path"] != "journal")),
        "the journal is not among the files: {v}"
    );
    v["journal_cursor"].as_str().map(str::to_owned)
}

#[test]
fn journal_entries_arrive_with_labels_and_timestamps() {
    if !tools("journal_entries_arrive_with_labels_and_timestamps") {
        return;
    }
    let env = Env::new();
    let t0 = now_us() - 10_000_000;
    let all = recs(t0, 0..300);
    write_journal(&env, "remote.journal", &all);
    let agent = Agent::start(&config(&env, "1h"));
    wait_entries(&env, &agent, all.len(), 30);
    std::thread::sleep(Duration::from_millis(300));
    let want: Vec<_> = all.iter().map(expected).collect();
    let got = received(&env);
    assert_eq!(got.len(), want.len(), "agent log: {}", agent.log_tail());
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g, w);
    }
    assert_eq!(agent.metric("shipper_journal_entries_total"), 300.0);
    assert_eq!(
        agent.metric("shipper_parse_issues_total{issue=\"invalid_utf8\"}"),
        all.iter().filter(|r| std::str::from_utf8(&r.message).is_err()).count() as f64
    );
    agent.stop();
    assert!(saved_cursor(&env).is_some(), "journal_cursor saved at shutdown");
}

#[test]
fn journal_resumes_from_the_saved_cursor_after_a_restart() {
    if !tools("journal_resumes_from_the_saved_cursor_after_a_restart") {
        return;
    }
    let env = Env::new();
    let t0 = now_us() - 10_000_000;
    let first = recs(t0, 0..200);
    write_journal(&env, "remote.journal", &first);
    let config = config(&env, "1h");
    let agent = Agent::start(&config);
    wait_entries(&env, &agent, first.len(), 30);
    agent.stop();
    let cursor = saved_cursor(&env).expect("journal_cursor in the positions file");
    // The sequence number in a cursor is hex: the 200th entry's.
    assert!(cursor.contains(";i=c8;"), "the last entry's cursor: {cursor}");

    // Written while the agent was down, into a new file of the same directory.
    let second = recs(t0, 200..350);
    write_journal(&env, "remote2.journal", &second);
    let agent = Agent::start(&config);
    wait_entries(&env, &agent, first.len() + second.len(), 30);
    std::thread::sleep(Duration::from_millis(1000));
    let want: Vec<_> = first.iter().chain(&second).map(expected).collect();
    let got = received(&env);
    assert_eq!(
        got.len(),
        want.len(),
        "no entry twice, none lost; agent log: {}",
        agent.log_tail()
    );
    assert_eq!(got, want);
    assert_eq!(agent.metric("shipper_journal_entries_total"), second.len() as f64);
    agent.stop();
}

#[test]
fn journal_first_start_reads_only_max_age() {
    if !tools("journal_first_start_reads_only_max_age") {
        return;
    }
    let env = Env::new();
    let now = now_us();
    let old = recs(now - 3 * 3_600_000_000, 0..50);
    let recent = recs(now - 60_000_000, 50..80);
    write_journal(&env, "remote.journal", &old);
    write_journal(&env, "remote2.journal", &recent);
    let agent = Agent::start(&config(&env, "2h"));
    wait_entries(&env, &agent, recent.len(), 30);
    std::thread::sleep(Duration::from_millis(1000));
    let want: Vec<_> = recent.iter().map(expected).collect();
    assert_eq!(received(&env), want, "only the entries newer than max_age");
    agent.stop();
}

/// A `journalctl` that writes its arguments (one a line) to `<env>/argv.txt`, then runs the real one.
fn recording_journalctl(env: &Env) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let script = env.path("journalctl.sh");
    let argv = env.path("argv.txt");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > '{}'\nexec journalctl \"$@\"\n",
            argv.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

#[test]
fn journal_matches_select_the_entries_journalctl_reads() {
    if !tools("journal_matches_select_the_entries_journalctl_reads") {
        return;
    }
    let env = Env::new();
    let t0 = now_us() - 10_000_000;
    let all = recs(t0, 0..90);
    write_journal(&env, "remote.journal", &all);
    let journal = format!(
        "journal:\n  path: {}\n  max_age: 1h\n  journalctl_path: {}\n  matches: \"_SYSTEMD_UNIT=a.service _SYSTEMD_UNIT=c.service PRIORITY=3\"\n",
        env.path("journal").display(),
        recording_journalctl(&env).display()
    );
    let agent = Agent::start(&env.config("files/*.log", &journal));
    // Units a or c, and priority 3: i % 3 in {0, 2} and i % 4 == 0.
    let want: Vec<_> = all
        .iter()
        .filter(|r| (r.unit == "a.service" || r.unit == "c.service") && r.priority == 3)
        .map(expected)
        .collect();
    assert_eq!(want.len(), 15);
    wait_entries(&env, &agent, want.len(), 30);
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(
        received(&env),
        want,
        "only the matching entries; agent log: {}",
        agent.log_tail()
    );
    let argv = std::fs::read_to_string(env.path("argv.txt")).unwrap();
    let args: Vec<&str> = argv.lines().collect();
    assert_eq!(
        args[args.len() - 4..],
        ["--", "_SYSTEMD_UNIT=a.service", "_SYSTEMD_UNIT=c.service", "PRIORITY=3"],
        "the matches end journalctl's arguments: {argv}"
    );
    agent.stop();
}

/// Stages on journal entries: numbers ending in 0 or 5 dropped, a `size` label from a template,
/// and `tab` upper-cased in the lines of b.service only. Each entry keeps its own unit's labels.
const STAGES: &str = r#"
  pipeline_stages:
    - regex: {expression: '^entry (?P<n>\d+)'}
    - drop: {source: n, expression: '[05]$', drop_counter_reason: round}
    - template: {source: size, template: '{{ if eq (len .n) 1 }}small{{ else }}big{{ end }}'}
    - labels: {size: }
    - match:
        selector: '{unit="b.service"}'
        stages:
          - replace: {expression: '(tab)', replace: '{{ .Value | ToUpper }}'}
"#;

fn staged(r: &Rec, i: u64) -> Option<(String, String, i64)> {
    if i.is_multiple_of(5) {
        return None;
    }
    let size = if i < 10 { "small" } else { "big" };
    let mut line = String::from_utf8_lossy(&r.message).into_owned();
    if r.unit == "b.service" {
        line = line.replacen("tab", "TAB", 1);
    }
    let labels = format!(
        "{{hostname=\"node-a\", job=\"systemd-journal\", priority=\"{}\", size=\"{size}\", unit=\"{}\"}}",
        r.priority, r.unit
    );
    Some((labels, line, r.ts_us as i64 * 1000))
}

#[test]
fn journal_stages_shape_entries_and_the_cursor_waits_for_loki() {
    if !tools("journal_stages_shape_entries_and_the_cursor_waits_for_loki") {
        return;
    }
    let env = Env::new();
    let t0 = now_us() - 10_000_000;
    // 61 entries: the last one (60) is dropped by the stages.
    let all = recs(t0, 0..61);
    write_journal(&env, "remote.journal", &all);
    let want: Vec<_> = all.iter().zip(0..).filter_map(|(r, i)| staged(r, i)).collect();
    assert_eq!(want.len(), 48);
    let journal = format!(
        "shutdown_timeout: 1s\njournal:\n  path: {}\n  max_age: 1h\n{STAGES}",
        env.path("journal").display()
    );
    let config = env.config("files/*.log", &journal);

    // Loki down: the entries are read and go through the stages, but no cursor is saved.
    env.loki.set_down(true);
    let agent = Agent::start(&config);
    wait_metric(&agent, "shipper_journal_entries_total", want.len() as f64, 30);
    assert_eq!(
        agent.metric("shipper_pipeline_dropped_lines_total{reason=\"round\"}"),
        13.0
    );
    std::thread::sleep(Duration::from_millis(1500));
    agent.stop();
    assert_eq!(saved_cursor(&env), None, "nothing acknowledged: no cursor saved");
    assert_eq!(env.loki.entry_count(), 0);

    // Loki up: everything from the start, once, shaped by the stages; the saved cursor is the last
    // entry's (the dropped one's: every entry before it was acknowledged).
    env.loki.set_down(false);
    let agent = Agent::start(&config);
    wait_entries(&env, &agent, want.len(), 30);
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(received(&env), want, "agent log: {}", agent.log_tail());
    agent.stop();
    let cursor = saved_cursor(&env).expect("journal_cursor in the positions file");
    assert!(cursor.contains(";i=3d;"), "the 61st entry's cursor: {cursor}");
}

#[test]
fn journal_format_json_ships_every_field() {
    if !tools("journal_format_json_ships_every_field") {
        return;
    }
    let env = Env::new();
    let t0 = now_us() - 10_000_000;
    let all = recs(t0, 0..12);
    write_journal(&env, "remote.journal", &all);
    let journal = format!(
        "journal:\n  path: {}\n  max_age: 1h\n  format: json\n  pipeline_stages:\n    - json: {{expressions: {{ident: SYSLOG_IDENTIFIER}}}}\n    - labels: {{ident: }}\n",
        env.path("journal").display()
    );
    let agent = Agent::start(&env.config("files/*.log", &journal));
    wait_entries(&env, &agent, all.len(), 30);
    std::thread::sleep(Duration::from_millis(500));
    let got = received(&env);
    assert_eq!(got.len(), all.len(), "agent log: {}", agent.log_tail());
    for (r, (labels, line, ts)) in all.iter().zip(&got) {
        let v: serde_json::Value = serde_json::from_str(line).expect("each line is a JSON object");
        assert_eq!(v["MESSAGE"], String::from_utf8_lossy(&r.message).as_ref());
        assert_eq!(v["_SYSTEMD_UNIT"], r.unit.as_str());
        assert_eq!(v["PRIORITY"], r.priority.to_string());
        assert_eq!(v["_HOSTNAME"], "node-a");
        assert!(
            v.as_object().unwrap().keys().all(|k| !k.starts_with("__")),
            "not the cursor or timestamps: {line}"
        );
        assert_eq!(*ts, r.ts_us as i64 * 1000);
        assert!(
            labels.contains("ident=\"test\"") && labels.contains(&format!("unit=\"{}\"", r.unit)),
            "{labels}"
        );
    }
    agent.stop();
}

/// An entry of `unit` at `ts_us` (priority 3).
fn rec(ts_us: u64, unit: &str, message: &str) -> Rec {
    Rec {
        hostname: "node-a".into(),
        ts_us,
        unit: unit.into(),
        priority: 3,
        message: message.as_bytes().to_vec(),
    }
}

/// Waits (up to 30 s) until the positions file holds a journal cursor containing `part`.
fn wait_cursor(env: &Env, agent: &Agent, part: &str) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let saved = saved_cursor(env);
        if let Some(c) = saved.as_ref().filter(|c| c.contains(part)) {
            return c.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no cursor with {part} saved (now {saved:?}); agent log: {}",
            agent.log_tail()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A service under systemd printed a stack trace to stdout: one journal entry per line, another
/// unit's lines in between. `multiline` joins each unit's trace into one line; a kill -9 while a
/// trace is held loses nothing (the saved cursor is before it, so the restart reads it again).
#[test]
fn journal_multiline_joins_a_trace_and_a_kill_while_it_is_held_loses_nothing() {
    if !tools("journal_multiline_joins_a_trace_and_a_kill_while_it_is_held_loses_nothing") {
        return;
    }
    let env = Env::new();
    let t0 = now_us() - 10_000_000;
    let before = [
        rec(t0, "a.service", "started"),
        rec(t0 + 1, "a.service", "ERROR request failed"),
        rec(t0 + 2, "a.service", "java.lang.IllegalStateException: boom ✓"),
        rec(t0 + 3, "b.service", "b one"),
        rec(t0 + 4, "a.service", "\tat x.Handler.run(Handler.java:10)"),
        rec(t0 + 5, "b.service", "b two"),
        rec(t0 + 6, "a.service", "\tat java.lang.Thread.run(Thread.java:840)"),
    ];
    write_journal(&env, "remote.journal", &before);
    let journal = format!(
        "journal:\n  path: {}\n  max_age: 1h\n  pipeline_stages:\n    - multiline: {{preset: java, max_wait_time: 1h}}\n",
        env.path("journal").display()
    );
    let config = env.config("files/*.log", &journal);
    let agent = Agent::start(&config);
    // "started" and "b one" are complete; a's trace (from entry 2) and "b two" are held.
    wait_entries(&env, &agent, 2, 30);
    wait_cursor(&env, &agent, ";i=1;");
    assert_eq!(wait_metric(&agent, "shipper_journal_entries_total", 2.0, 30), 2.0);
    agent.kill();
    let cursor = saved_cursor(&env).expect("a cursor saved before the kill");
    assert!(cursor.contains(";i=1;"), "the entry before the held trace: {cursor}");

    // Written while the agent was down: each unit's next line ends its block.
    let after = [rec(t0 + 7, "a.service", "a after"), rec(t0 + 8, "b.service", "b after")];
    write_journal(&env, "remote2.journal", &after);
    let agent = Agent::start(&config);
    wait_entries(&env, &agent, 5, 30);
    let labels =
        |unit: &str| format!("{{hostname=\"node-a\", job=\"systemd-journal\", priority=\"3\", unit=\"{unit}\"}}");
    let trace = "ERROR request failed\njava.lang.IllegalStateException: boom ✓\n\tat x.Handler.run(Handler.java:10)\n\tat java.lang.Thread.run(Thread.java:840)";
    let want = [
        (labels("a.service"), "started".to_string(), t0 as i64 * 1000),
        (labels("a.service"), trace.to_string(), (t0 + 1) as i64 * 1000),
        (labels("b.service"), "b one".to_string(), (t0 + 3) as i64 * 1000),
        (labels("b.service"), "b two".to_string(), (t0 + 5) as i64 * 1000),
    ];
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut got = received(&env);
    while !want.iter().all(|w| got.contains(w)) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        got = received(&env);
    }
    for w in &want {
        assert!(
            got.contains(w),
            "{w:?} not received; got {got:#?}\nagent log: {}",
            agent.log_tail()
        );
    }
    assert_eq!(
        got.iter().filter(|g| g.1 == trace).count(),
        1,
        "the trace was never sent before the kill: once"
    );
    assert!(
        got.iter().all(|g| want.contains(g)),
        "nothing else (the lines after it are held): {got:#?}"
    );
    agent.stop();
}
