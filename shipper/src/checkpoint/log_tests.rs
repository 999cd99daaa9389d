//! The positions writer: a write costs what changed, and the file always loads as the tracker's
//! state at the last write.

use super::*;
use crate::checkpoint::{FileIdentity, Positions};
use std::time::{Duration, UNIX_EPOCH};

fn ident(i: u64) -> FileIdentity {
    FileIdentity {
        path: format!("/var/log/pods/ns_pod-{i}_uid/c/0.log").into(),
        dev: 2049,
        ino: 1000 + i,
        fp_len: 1024,
        fp: i,
    }
}

fn at(s: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(s)
}

/// Acknowledges `to` bytes of file `id` (one batch).
fn ack(t: &Tracker, id: FileId, to: u64) {
    let seq = id * 1_000_000 + to;
    t.add(id, to, &[seq]);
    t.ack(seq, &[id]);
}

fn loaded(path: &Path) -> Positions {
    Positions::parse(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn a_write_costs_what_changed_and_loads_as_the_trackers_state() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("positions.json");
    let t = Tracker::default();
    for i in 0..1000 {
        t.open(i, ident(i), 0);
    }
    let mut log = PositionsLog::new(path.clone());
    let Written::Snapshot(whole) = log.write(&t, None, at(1)).unwrap() else {
        panic!("a run's first write is a snapshot");
    };
    assert_eq!(loaded(&path).files, t.snapshot());

    // 50 busy files move: the record holds them, a small share of the whole.
    for i in 0..50 {
        ack(&t, i * 20, 4096);
    }
    let Written::Changes(part) = log.write(&t, None, at(2)).unwrap() else {
        panic!("changes are appended");
    };
    assert!(
        part * 20 < whole,
        "{part} bytes for 50 of 1000 files (the whole: {whole})"
    );
    let p = loaded(&path);
    assert_eq!(p.files, t.snapshot());
    assert_eq!(p.saved_at, Some(at(2)));

    // Nothing changed: a record of the time only.
    let Written::Changes(idle) = log.write(&t, None, at(3)).unwrap() else { panic!() };
    assert!(idle < 64, "{idle} bytes when nothing changed");

    // A file renamed (its identity travels), one closed (removed), one opened (a slot reused).
    t.set_path(3, "/var/log/pods/ns_pod-3_uid/c/0.log.20261207-101010".into());
    t.close(7);
    t.open(5000, ident(5000), 0);
    ack(&t, 5000, 77);
    log.write(&t, Some("s=abc;i=1".into()), at(4)).unwrap();
    let p = loaded(&path);
    assert_eq!(p.files, t.snapshot());
    assert_eq!(p.files.len(), 1000);
    assert_eq!(p.journal_cursor.as_deref(), Some("s=abc;i=1"));
    // The cursor stays when a later record does not repeat it.
    log.write(&t, Some("s=abc;i=1".into()), at(5)).unwrap();
    assert_eq!(loaded(&path).journal_cursor.as_deref(), Some("s=abc;i=1"));
}

#[test]
fn the_appended_records_stay_bounded_and_every_write_loads_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("positions.json");
    let t = Tracker::default();
    for i in 0..200 {
        t.open(i, ident(i), 0);
    }
    let mut log = PositionsLog::new(path.clone());
    let (mut snapshots, mut largest) = (0, 0);
    for round in 1..=3000u64 {
        for i in 0..20 {
            ack(&t, (round * 7 + i) % 200, round * 100);
        }
        // Files come and go.
        if round % 10 == 0 {
            t.close(round % 200);
            t.open(round % 200, ident(round), 0);
        }
        if let Written::Snapshot(_) = log.write(&t, None, at(round)).unwrap() {
            snapshots += 1;
        }
        largest = largest.max(std::fs::metadata(&path).unwrap().len());
        if round % 97 == 0 {
            assert_eq!(loaded(&path).files, t.snapshot(), "round {round}");
        }
    }
    assert!(
        snapshots > 1,
        "the file was rewritten when the records outgrew the bound"
    );
    assert!(largest < 2 << 20, "the file stayed bounded: {largest} bytes at most");
    assert_eq!(loaded(&path).files, t.snapshot());
}

#[test]
fn the_previous_snapshot_is_kept_as_the_backup() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("positions.json");
    let t = Tracker::default();
    t.open(1, ident(1), 0);
    let mut log = PositionsLog::new(path.clone());
    log.write(&t, None, at(1)).unwrap();
    ack(&t, 1, 10);
    log.write(&t, None, at(2)).unwrap();
    // A new run (or the bound) writes a snapshot: the file it replaces, with its records, is the backup.
    let mut next = PositionsLog::new(path.clone());
    ack(&t, 1, 20);
    assert!(matches!(next.write(&t, None, at(3)).unwrap(), Written::Snapshot(_)));
    let bak = dir.path().join("positions.json.bak");
    assert_eq!(loaded(&bak).files[0].offset, 10);
    assert_eq!(loaded(&path).files[0].offset, 20);
}
