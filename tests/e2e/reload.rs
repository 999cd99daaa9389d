//! Config reload (SIGHUP, `POST /reload`) while lines are being written: files of unchanged targets
//! lose and repeat nothing, added targets start, removed ones stop and resume where they stopped
//! when added back, changed ones switch labels between two lines; a bad config is rejected with its
//! error and the running one goes on.

use crate::support::{wait_metric, Agent, Env};
use shipper_testkit::receiver::ReceivedEntry;
use shipper_testkit::{Format, LogWriter};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The config at `cfg` with its `targets:` section replaced by `targets` (paths relative to `dir`).
fn set_targets(cfg: &Path, dir: &Path, targets: &[(&str, &str)]) {
    let text = std::fs::read_to_string(cfg).unwrap();
    let head = &text[..text.find("targets:\n").expect("targets section")];
    let mut yaml = format!("{head}targets:\n");
    for (glob, job) in targets {
        yaml += &format!(
            "  - paths: [{}]\n    labels: {{job: {job}}}\n",
            dir.join(glob).display()
        );
    }
    std::fs::write(cfg, yaml).unwrap();
}

/// Entries of `file` by their `job` label, in arrival order.
fn by_job(streams: &BTreeMap<String, Vec<ReceivedEntry>>, file: &Path) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let filename = format!("filename=\"{}\"", file.display());
    for (labels, entries) in streams {
        if !labels.contains(&filename) {
            continue;
        }
        let job = labels
            .split("job=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or("");
        out.entry(job.to_string())
            .or_default()
            .extend(entries.iter().map(|e| e.line.clone()));
    }
    out
}

/// The line numbers of `lines` (`<name> <i> …`).
fn numbers(lines: &[String]) -> Vec<u64> {
    lines
        .iter()
        .map(|l| l.split(' ').nth(1).and_then(|n| n.parse().ok()).expect("numbered line"))
        .collect()
}

/// Asserts `got` is `0..total`, each once and in order; the failure names the first difference.
fn assert_each_once(what: &str, got: &[u64], total: u64) {
    let first_bad = got.iter().zip(0..).position(|(&g, want)| g != want);
    assert!(
        first_bad.is_none() && got.len() as u64 == total,
        "{what}: {} lines for {total} written; first out of place at index {first_bad:?}: {:?}",
        got.len(),
        first_bad.map(|i| &got[i.saturating_sub(2)..(i + 3).min(got.len())])
    );
}

fn line(name: &str, i: u64) -> String {
    format!("{name} {i} {}", "x".repeat((i % 97) as usize))
}

/// Three files written at a steady pace; three reloads while they are: `a` unchanged then removed
/// then added back, `b` added, `c` relabelled.
#[test]
fn reload_under_load_keeps_unchanged_files_and_applies_the_rest() {
    let env = Env::new();
    for d in ["a", "b", "c"] {
        std::fs::create_dir_all(env.path(d)).unwrap();
    }
    let cfg = env.config("a/*.log", "");
    set_targets(&cfg, env.dir.path(), &[("a/*.log", "a"), ("c/*.log", "c")]);
    let agent = Agent::start(&cfg);

    let written = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let paths: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|d| env.path(&format!("{d}/0.log")))
        .collect();
    let writer = {
        let (written, done, paths) = (written.clone(), done.clone(), paths.clone());
        std::thread::spawn(move || {
            let mut ws: Vec<_> = paths
                .iter()
                .map(|p| LogWriter::create(p, Format::Cri).unwrap())
                .collect();
            let mut i = 0u64;
            while !done.load(Ordering::Relaxed) {
                for (w, name) in ws.iter_mut().zip(["a", "b", "c"]) {
                    w.write_line("stdout", &line(name, i)).unwrap();
                }
                i += 1;
                if i.is_multiple_of(20) {
                    ws.iter_mut().for_each(|w| w.flush().unwrap());
                    written.store(i, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
            ws.iter_mut().for_each(|w| w.flush().unwrap());
            written.store(i, Ordering::Relaxed);
        })
    };
    let a_arrived = |env: &Env| by_job(&env.loki.streams(), &paths[0]).get("a").map_or(0, Vec::len) as u64;
    let wait_a = |env: &Env, n: u64| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while a_arrived(env) < n {
            assert!(
                Instant::now() < deadline,
                "a has {} of {n} lines; {}",
                a_arrived(env),
                agent.log_tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait_a(&env, 500);

    // 1: b added, c relabelled, a unchanged — over HTTP.
    set_targets(
        &cfg,
        env.dir.path(),
        &[("a/*.log", "a"), ("b/*.log", "b"), ("c/*.log", "c2")],
    );
    let (status, body) = agent.post_reload();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("config reloaded: 3 targets"), "{body}");
    let n1 = written.load(Ordering::Relaxed);
    wait_a(&env, n1 + 300);

    // 2: a removed — by SIGHUP.
    set_targets(&cfg, env.dir.path(), &[("b/*.log", "b"), ("c/*.log", "c2")]);
    agent.sighup();
    wait_metric(&agent, "shipper_config_reloads_total{result=\"applied\"}", 2.0, 10);
    std::thread::sleep(Duration::from_millis(500));
    let a_stopped = a_arrived(&env);
    let n2 = written.load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(
        a_arrived(&env),
        a_stopped,
        "a's lines stopped coming when its target was removed"
    );
    assert!(written.load(Ordering::Relaxed) > n2 + 100, "the writer kept writing");

    // 3: a back, from where it stopped.
    set_targets(
        &cfg,
        env.dir.path(),
        &[("a/*.log", "a"), ("b/*.log", "b"), ("c/*.log", "c2")],
    );
    let (status, body) = agent.post_reload();
    assert_eq!(status, 200, "{body}");
    std::thread::sleep(Duration::from_millis(500));
    done.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let total = written.load(Ordering::Relaxed);
    crate::support::wait_entries(&env, &agent, (3 * total) as usize, 60);
    std::thread::sleep(Duration::from_millis(500));

    let streams = env.loki.streams();
    // a: every line once, in order, although it was removed and added back in between.
    let a = by_job(&streams, &paths[0]);
    assert_eq!(a.keys().collect::<Vec<_>>(), ["a"], "{:?}", a.keys());
    assert_each_once("a", &numbers(&a["a"]), total);
    for (i, l) in a["a"].iter().enumerate() {
        assert_eq!(*l, line("a", i as u64), "byte for byte");
    }
    // b: added while being written; every line from the start (start_at: beginning).
    let b = by_job(&streams, &paths[1]);
    assert_each_once("b", &numbers(&b["b"]), total);
    // c: the old label up to some line, the new one from the next.
    let c = by_job(&streams, &paths[2]);
    let (old, new) = (numbers(&c["c"]), numbers(&c["c2"]));
    assert!(
        !old.is_empty() && !new.is_empty(),
        "c: {} old, {} new",
        old.len(),
        new.len()
    );
    // Each once, the label switched between two lines.
    assert_each_once("c (old label, then new)", &[old, new].concat(), total);

    assert_eq!(agent.metric("shipper_config_reloads_total{result=\"applied\"}"), 3.0);
    assert_eq!(agent.metric("shipper_config_last_reload_successful"), 1.0);
    agent.stop();
}

/// A config that does not load is rejected with its error (over HTTP: 500 and the error; by
/// SIGHUP: in the log and the metrics); the running config goes on shipping; a fixed one applies.
#[test]
fn a_bad_config_is_rejected_and_the_running_one_goes_on() {
    let env = Env::new();
    let cfg = env.config("app/*.log", "");
    let good = std::fs::read_to_string(&cfg).unwrap();
    let agent = Agent::start(&cfg);
    let mut w = LogWriter::create(env.path("app/0.log"), Format::Cri).unwrap();
    let mut write = |from: u64, to: u64| {
        for i in from..to {
            w.write_line("stdout", &line("app", i)).unwrap();
        }
        w.flush().unwrap();
    };
    write(0, 100);
    crate::support::wait_entries(&env, &agent, 100, 20);

    // A regex that does not compile, at a precise key.
    let bad_stage = format!("{good}    pipeline_stages:\n      - regex: {{expression: '(unclosed'}}\n");
    std::fs::write(&cfg, bad_stage).unwrap();
    let (status, body) = agent.post_reload();
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("targets[0].pipeline_stages[0].regex"), "{body}");
    assert!(body.contains("previous config keeps running"), "{body}");
    assert_eq!(agent.metric("shipper_config_last_reload_successful"), 0.0);

    // Not YAML at all, by SIGHUP.
    std::fs::write(&cfg, "targets: [\n").unwrap();
    agent.sighup();
    wait_metric(&agent, "shipper_config_reloads_total{result=\"rejected\"}", 2.0, 10);
    assert!(agent.log().contains("config reload rejected"), "{}", agent.log_tail());

    // Still shipping with the old config.
    write(100, 200);
    crate::support::wait_entries(&env, &agent, 200, 20);
    let labels = format!(
        "{{filename=\"{}\", job=\"test\", stream=\"stdout\"}}",
        env.path("app/0.log").display()
    );
    let got: Vec<String> = env.loki.stream(&labels).into_iter().map(|e| e.line).collect();
    assert_eq!(got, (0..200).map(|i| line("app", i)).collect::<Vec<_>>());

    // Fixed: applies.
    std::fs::write(&cfg, good.replace("job: test", "job: fixed")).unwrap();
    let (status, body) = agent.post_reload();
    assert_eq!(status, 200, "{body}");
    assert_eq!(agent.metric("shipper_config_last_reload_successful"), 1.0);
    write(200, 250);
    crate::support::wait_entries(&env, &agent, 250, 20);
    let fixed = labels.replace("job=\"test\"", "job=\"fixed\"");
    let got: Vec<String> = env.loki.stream(&fixed).into_iter().map(|e| e.line).collect();
    assert_eq!(got, (200..250).map(|i| line("app", i)).collect::<Vec<_>>());
    // A GET does not reload.
    let get = shipper_testkit::client::get(&format!("{}/reload", agent_http(&cfg))).unwrap();
    assert_eq!(get.status, 405);
    agent.stop();
}

/// `server.log_level` is applied by a reload, as Alloy's `logging` level is; a level that is not one
/// (a typo that would otherwise silence the log) is rejected with its key.
#[test]
fn a_reload_changes_the_log_level_and_rejects_a_typo() {
    let env = Env::new();
    let cfg = env.config("app/*.log", "");
    let debug = std::fs::read_to_string(&cfg).unwrap();
    assert!(debug.contains("log_level: debug"));
    let agent = Agent::start(&cfg);
    let mut n = 0;
    // A new file's lines arrive; returns what the agent logged meanwhile.
    let mut new_file = |name: &str| {
        let from = agent.log().len();
        let mut w = LogWriter::create(env.path(&format!("app/{name}.log")), Format::Cri).unwrap();
        w.write_line("stdout", &line(name, 0)).unwrap();
        w.flush().unwrap();
        n += 1;
        crate::support::wait_entries(&env, &agent, n, 20);
        agent.log()[from..].to_string()
    };
    let logged = new_file("a");
    assert!(logged.contains("DEBUG") && logged.contains("tailing file"), "{logged}");

    let set = |level: &str| {
        std::fs::write(&cfg, debug.replace("log_level: debug", &format!("log_level: {level}"))).unwrap();
        agent.post_reload()
    };
    let (status, body) = set("warn");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("log level changed"), "{body}");
    let logged = new_file("b");
    assert!(
        !logged.contains("tailing file") && !logged.contains("DEBUG"),
        "{logged}"
    );

    let (status, body) = set("verbose");
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("server.log_level") && body.contains("verbose"), "{body}");

    // Per-module directives, as RUST_LOG takes them.
    let (status, body) = set("'info,shipper::parse=warn'");
    assert_eq!(status, 200, "{body}");
    let logged = new_file("c");
    assert!(logged.contains("tailing file") && !logged.contains("DEBUG"), "{logged}");
    assert!(!body.contains("restart"), "the level needs no restart: {body}");
    agent.stop();
}

fn agent_http(cfg: &Path) -> String {
    let text = std::fs::read_to_string(cfg).unwrap();
    let addr = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("http_listen: "))
        .unwrap();
    format!("http://{addr}")
}

/// A reload that moves the client to another Loki while lines are written: the lines of open
/// batches go to the old one, the rest to the new one; together each line exactly once.
#[test]
fn reload_moves_the_client_without_losing_or_repeating_a_line() {
    let env = Env::new();
    let other = shipper_testkit::Receiver::start();
    let cfg = env.config("app/*.log", "");
    let agent = Agent::start(&cfg);
    let path = env.path("app/0.log");
    let mut w = LogWriter::create(&path, Format::Cri).unwrap();
    let n = 6000u64;
    for i in 0..n {
        w.write_line("stdout", &line("app", i)).unwrap();
        if i.is_multiple_of(50) {
            w.flush().unwrap();
            std::thread::sleep(Duration::from_millis(5));
        }
        if i == n / 2 {
            let text = std::fs::read_to_string(&cfg).unwrap();
            std::fs::write(&cfg, text.replace(&env.loki.url(), &other.url())).unwrap();
            let (status, body) = agent.post_reload();
            assert_eq!(status, 200, "{body}");
            assert!(body.contains("clients changed"), "{body}");
        }
    }
    w.flush().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while env.loki.entry_count() + other.entry_count() < n as usize {
        assert!(
            Instant::now() < deadline,
            "{} + {} of {n}; {}",
            env.loki.entry_count(),
            other.entry_count(),
            agent.log_tail()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    let lines = |r: &shipper_testkit::Receiver| -> Vec<String> {
        r.streams().into_values().flatten().map(|e| e.line).collect()
    };
    let (first, second) = (lines(&env.loki), lines(&other));
    assert!(
        !first.is_empty() && !second.is_empty(),
        "{} then {}",
        first.len(),
        second.len()
    );
    assert_each_once("old Loki, then new", &numbers(&[first, second].concat()), n);
    agent.stop();
}
