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
    let cfg = Config {
        journal: Some(JournalConfig {
            path: Some(dir.join("journal")),
            max_age,
            journalctl_path: journalctl.into(),
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
