//! The journal thread against real journal files (written by Debian's `systemd-journal-remote`) and
//! the real `journalctl`: no mock of either.

use super::*;
use crate::config::Dur;
use crate::labels::StreamLabels;
use shipper_testkit::journal::{now_us, tools, JournalEntry};
use std::path::Path;

/// Writes a new journal file `dir/journal/name` with systemd-journal-remote: entries of
/// (realtime µs, MESSAGE, unit), priority 6, on host node1.
fn write_journal(dir: &Path, name: &str, entries: &[(u64, &[u8], &str)]) {
    let entries: Vec<JournalEntry> = entries
        .iter()
        .map(|&(ts, msg, unit)| JournalEntry {
            hostname: "node1".into(),
            ..JournalEntry::new(ts, unit, msg)
        })
        .collect();
    shipper_testkit::journal::write_journal(&dir.join("journal").join(name), &entries);
}

struct Run {
    rx: crate::ring::RingReceiver,
    tracker: Arc<Tracker>,
    metrics: Arc<Metrics>,
    stop: Arc<AtomicBool>,
    handle: JournalHandle,
}

fn run(dir: &Path, journalctl: &str, max_age: Dur, saved: Option<String>) -> Result<Run, String> {
    run_staged(dir, journalctl, max_age, saved, "[]")
}

/// `run` with `journal.pipeline_stages` (YAML).
fn run_staged(dir: &Path, journalctl: &str, max_age: Dur, saved: Option<String>, stages: &str) -> Result<Run, String> {
    let cfg = Config {
        journal: Some(JournalConfig {
            path: Some(dir.join("journal")),
            max_age,
            journalctl_path: journalctl.into(),
            pipeline_stages: serde_yaml_ng::from_str(stages).unwrap(),
            ..JournalConfig::default()
        }),
        ..Config::default()
    };
    let (tx, rx) = crate::ring::ring(4);
    let (tracker, metrics) = (Arc::new(Tracker::default()), Arc::new(Metrics::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let parts = JournalParts {
        ring: tx,
        tracker: tracker.clone(),
        metrics: metrics.clone(),
        stop: stop.clone(),
        saved_cursor: saved,
    };
    let handle = start(&cfg, parts)?.expect("journal configured");
    Ok(Run {
        rx,
        tracker,
        metrics,
        stop,
        handle,
    })
}

impl Run {
    /// Receives entries until `n` arrived (or 20 s passed), acknowledging every chunk like the
    /// batcher and pushers do.
    fn take(&self, n: usize) -> Vec<(Entry, Arc<StreamLabels>)> {
        let mut got = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let mut seq = 0;
        while got.len() < n && std::time::Instant::now() < deadline {
            let Ok(bundle) = self.rx.recv_timeout(Duration::from_millis(100)) else {
                continue;
            };
            for c in bundle {
                assert_eq!(c.file, JOURNAL_ID);
                seq += 1;
                self.tracker.add(JOURNAL_ID, c.commit_offset, &[seq]);
                self.tracker.ack(seq, &[JOURNAL_ID]);
                got.extend(c.entries.into_iter().map(|e| (e, c.labels.clone())));
            }
        }
        got
    }

    /// Nothing more arrives within `ms`.
    fn quiet(&self, ms: u64) -> usize {
        std::thread::sleep(Duration::from_millis(ms));
        std::iter::from_fn(|| self.rx.try_recv().ok())
            .flatten()
            .map(|c| c.entries.len())
            .sum()
    }

    fn stop(self) -> Option<String> {
        self.stop.store(true, Ordering::Relaxed);
        drop(self.rx);
        self.handle.thread.join().unwrap();
        self.handle.cursors.committed_cursor(&self.tracker)
    }
}

fn lines(got: &[(Entry, Arc<StreamLabels>)]) -> Vec<Vec<u8>> {
    got.iter().map(|(e, _)| e.line.to_vec()).collect()
}

#[test]
fn real_journal_entries_with_labels_then_resume_after_the_cursor() {
    if !tools("real_journal_entries_with_labels_then_resume_after_the_cursor") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let t0 = now_us() - 1_000_000;
    write_journal(
        dir.path(),
        "a.journal",
        &[
            (t0, b"hello", "a.service"),
            (t0 + 1, b"two\nlines", "b.service"),
            (t0 + 2, b"bad \xff byte", "a.service"),
        ],
    );
    let r = run(dir.path(), "journalctl", Dur::secs(3600), None).unwrap();
    let got = r.take(3);
    assert_eq!(
        lines(&got),
        [&b"hello"[..], b"two\nlines", "bad \u{fffd} byte".as_bytes()],
        "metrics:\n{}",
        r.metrics.encode()
    );
    assert_eq!(got[0].0.ts_ns, t0 as i64 * 1000);
    assert_eq!(got[2].0.ts_ns, (t0 as i64 + 2) * 1000);
    let labels = got[1].0.extra.as_ref().unwrap().labels.clone().unwrap();
    assert_eq!(
        &*labels,
        r#"{hostname="node1", job="systemd-journal", priority="6", unit="b.service"}"#
    );
    assert_eq!(got[0].1.labels()["job"], "systemd-journal");
    assert_eq!(r.quiet(300), 0);
    assert!(r.metrics.encode().contains("shipper_journal_entries_total 3"));
    let cursor = r.stop().expect("acknowledged: a cursor to save");
    assert!(cursor.contains(";i=3;"), "the third entry's cursor: {cursor}");

    // Written while the agent was down, into another file of the directory.
    write_journal(
        dir.path(),
        "b.journal",
        &[(t0 + 10, b"later 1", "a.service"), (t0 + 11, b"later 2", "c.service")],
    );
    let r = run(dir.path(), "journalctl", Dur::secs(3600), Some(cursor)).unwrap();
    let got = r.take(2);
    assert_eq!(lines(&got), [&b"later 1"[..], b"later 2"]);
    assert_eq!(r.quiet(500), 0, "nothing read twice");
    r.stop();
}

#[test]
fn max_age_limits_a_first_start() {
    if !tools("max_age_limits_a_first_start") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let now = now_us();
    let hour = 3_600_000_000;
    write_journal(
        dir.path(),
        "a.journal",
        &[
            (now - 3 * hour, b"too old", "a.service"),
            (now - hour / 2, b"recent", "a.service"),
        ],
    );
    let r = run(dir.path(), "journalctl", Dur::secs(3600), None).unwrap();
    assert_eq!(lines(&r.take(1)), [b"recent"]);
    assert_eq!(r.quiet(500), 0);
    r.stop();
}

#[test]
fn journalctl_that_dies_is_restarted_after_the_last_cursor() {
    if !tools("journalctl_that_dies_is_restarted_after_the_last_cursor") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let t0 = now_us() - 1_000_000;
    write_journal(
        dir.path(),
        "a.journal",
        &[(t0, b"one", "a.service"), (t0 + 1, b"two", "a.service")],
    );
    // A journalctl that lives half a second each time.
    let wrapper = dir.path().join("journalctl-dies");
    std::fs::write(&wrapper, "#!/bin/sh\nexec timeout 0.5 journalctl \"$@\"\n").unwrap();
    let mut perms = std::fs::metadata(&wrapper).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&wrapper, perms).unwrap();
    let r = run(dir.path(), wrapper.to_str().unwrap(), Dur::secs(3600), None).unwrap();
    assert_eq!(lines(&r.take(2)), [&b"one"[..], b"two"]);
    std::thread::sleep(Duration::from_millis(1200));
    write_journal(dir.path(), "b.journal", &[(t0 + 5, b"three", "a.service")]);
    assert_eq!(lines(&r.take(1)), [b"three"], "read by a restarted journalctl");
    assert_eq!(r.quiet(1500), 0, "no entry read twice across restarts");
    let restarts = crate::metrics::Metrics::encode(&r.metrics);
    assert!(
        restarts
            .lines()
            .any(|l| l.starts_with("shipper_journal_restarts_total ") && !l.ends_with(" 0")),
        "{restarts}"
    );
    r.stop();
}

#[test]
fn a_missing_journalctl_is_a_setup_error_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let Err(e) = run(dir.path(), "/nonexistent/journalctl", Dur::secs(60), None) else {
        panic!("started without journalctl");
    };
    assert!(
        e.starts_with("journal.journalctl_path: cannot run `/nonexistent/journalctl`"),
        "{e}"
    );
    assert!(e.contains("install systemd's journalctl"), "{e}");
}

/// A stack trace its service printed line by line: a.service's and b.service's lines interleaved.
fn traces(t0: u64) -> [(u64, &'static [u8], &'static str); 5] {
    [
        (t0, b"ERROR a failed", "a.service"),
        (t0 + 1, b"ERROR b failed", "b.service"),
        (t0 + 2, b"\tat a.One(A.java:1)", "a.service"),
        (t0 + 3, b"\tat b.One(B.java:1)", "b.service"),
        (t0 + 4, b"\tat a.Two(A.java:2)", "a.service"),
    ]
}

/// The traces of `traces`, each joined.
const A_TRACE: &str = "ERROR a failed\n\tat a.One(A.java:1)\n\tat a.Two(A.java:2)";
const B_TRACE: &str = "ERROR b failed\n\tat b.One(B.java:1)";

/// The journal of `dir` read with a `multiline` stage (a line not indented starts an entry).
fn run_multiline(dir: &Path, max_wait: &str, saved: Option<String>) -> Run {
    let stages = format!("[{{multiline: {{firstline: '^\\S', max_wait_time: {max_wait}}}}}]");
    run_staged(dir, "journalctl", Dur::secs(3600), saved, &stages).unwrap()
}

/// (line, labels) of each entry, sorted.
fn with_labels(got: &[(Entry, Arc<StreamLabels>)]) -> Vec<(String, String)> {
    let mut v: Vec<_> = got
        .iter()
        .map(|(e, _)| {
            let labels = e.extra.as_ref().and_then(|x| x.labels.as_deref()).unwrap_or("");
            (String::from_utf8_lossy(&e.line).into_owned(), labels.to_string())
        })
        .collect();
    v.sort();
    v
}

/// (line, labels of a node1 entry of `unit`).
fn of(line: &str, unit: &str) -> (String, String) {
    let labels = format!(r#"{{hostname="node1", job="systemd-journal", priority="6", unit="{unit}"}}"#);
    (line.to_string(), labels)
}

#[test]
fn multiline_blocks_are_sent_after_max_wait_time_while_journalctl_is_quiet() {
    if !tools("multiline_blocks_are_sent_after_max_wait_time_while_journalctl_is_quiet") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    write_journal(dir.path(), "a.journal", &traces(now_us() - 1_000_000));
    let r = run_multiline(dir.path(), "300ms", None);
    // No line follows either block: only max_wait_time can send them.
    let got = r.take(2);
    assert_eq!(with_labels(&got), [of(A_TRACE, "a.service"), of(B_TRACE, "b.service")]);
    let cursor = r.stop().expect("both blocks acknowledged: a cursor to save");
    assert!(cursor.contains(";i=5;"), "the last entry's cursor: {cursor}");
}

#[test]
fn a_held_block_keeps_the_saved_cursor_before_it() {
    if !tools("a_held_block_keeps_the_saved_cursor_before_it") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let t0 = now_us() - 1_000_000;
    let mut entries = vec![(t0 - 10, &b"started"[..], "a.service")];
    entries.extend(traces(t0));
    entries.push((t0 + 5, b"b goes on", "b.service"));
    write_journal(dir.path(), "a.journal", &entries);
    let r = run_multiline(dir.path(), "1h", None);
    // "started" (entry 1) and b's trace (3 and 5) are complete; a's trace (from entry 2) and
    // "b goes on" (7) are held.
    let got = r.take(2);
    assert_eq!(
        with_labels(&got),
        [of(B_TRACE, "b.service"), of("started", "a.service")]
    );
    assert_eq!(r.quiet(300), 0);
    let tracker = r.tracker.clone();
    assert_eq!(tracker.committed(JOURNAL_ID).map(|(c, _)| c), Some(1), "below entry 2");
    // Stopped with the ring gone: the held entries are not shipped, and the cursor saved is entry 1's.
    let cursor = r.stop().expect("entry 1 acknowledged");
    assert!(
        cursor.contains(";i=1;"),
        "the cursor of the entry before the held block: {cursor}"
    );

    // Restarted after that cursor: the held entries are read again (b's trace twice: at least once).
    let r = run_multiline(dir.path(), "200ms", Some(cursor));
    let got = r.take(3);
    assert_eq!(
        with_labels(&got),
        [
            of(A_TRACE, "a.service"),
            of(B_TRACE, "b.service"),
            of("b goes on", "b.service")
        ]
    );
    let cursor = r.stop().expect("everything acknowledged");
    assert!(cursor.contains(";i=7;"), "the last entry's cursor: {cursor}");
}
