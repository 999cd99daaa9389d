//! The positions format: records round-trip, and a file cut or damaged anywhere loads as a state
//! that was written (or is refused when not even its snapshot is whole).

use super::*;

fn file(ino: u64, offset: u64) -> SavedFile {
    SavedFile {
        ident: FileIdentity {
            path: format!("/var/log/pods/ns_p_{ino}/c/0.log").into(),
            dev: 2049,
            ino,
            fp_len: 1024,
            fp: ino * 7,
        },
        offset,
    }
}

/// A snapshot of files 1..=3, then deltas: offsets move, a file leaves, one comes (reusing the
/// slot), one is renamed, the journal cursor moves. Returns the bytes and, after each record, where
/// it ends and the state it leaves.
fn history() -> (Vec<u8>, Vec<(usize, State)>) {
    let files = [file(1, 10), file(2, 20), file(3, 30)];
    let mut bytes = snapshot(files.iter().enumerate().map(|(i, f)| (i as u32, f)), 1000, Some("c=1"));
    let mut state = State {
        files: files.iter().cloned().enumerate().map(|(i, f)| (i as u32, f)).collect(),
        saved_at_unix_ms: 1000,
        journal_cursor: Some("c=1".into()),
        records: 1,
        unused_tail: 0,
    };
    let mut after = vec![(bytes.len(), clone(&state))];
    let mut renamed = file(3, 31);
    renamed.ident.path = "/var/log/pods/ns_p_3/c/0.log.20261207".into();
    let deltas = [
        Record {
            saved_at_unix_ms: 2000,
            set: vec![SlotEntry {
                slot: 0,
                file: None,
                offset: 15,
            }],
            ..Record::default()
        },
        Record {
            saved_at_unix_ms: 3000,
            del: vec![1],
            set: vec![SlotEntry {
                slot: 1,
                file: Some(file(4, 0).ident),
                offset: 0,
            }],
            journal_cursor: Some("c=2".into()),
            ..Record::default()
        },
        Record {
            saved_at_unix_ms: 4000,
            set: vec![SlotEntry {
                slot: 2,
                file: Some(renamed.ident.clone()),
                offset: 31,
            }],
            ..Record::default()
        },
    ];
    for d in deltas {
        encode(&d, &mut bytes);
        apply(&mut state, d).unwrap();
        state.records += 1;
        after.push((bytes.len(), clone(&state)));
    }
    assert_eq!(state.files[&0].offset, 15);
    assert_eq!(state.files[&1], file(4, 0));
    assert_eq!(state.files[&2], renamed);
    assert_eq!(state.journal_cursor.as_deref(), Some("c=2"));
    (bytes, after)
}

fn clone(s: &State) -> State {
    State {
        files: s.files.clone(),
        saved_at_unix_ms: s.saved_at_unix_ms,
        journal_cursor: s.journal_cursor.clone(),
        records: s.records,
        unused_tail: 0,
    }
}

#[test]
fn records_round_trip() {
    let (bytes, after) = history();
    let mut loaded = decode(&bytes).unwrap();
    assert_eq!(loaded.unused_tail, 0);
    loaded.unused_tail = 0;
    assert_eq!(loaded, after.last().unwrap().1);
}

#[test]
fn a_file_cut_at_any_byte_loads_as_the_last_whole_record_left_it() {
    let (bytes, after) = history();
    for cut in 0..=bytes.len() {
        let got = decode(&bytes[..cut]);
        match after.iter().rev().find(|(end, _)| *end <= cut) {
            None => assert!(got.is_err(), "cut at {cut}: no whole snapshot, yet {got:?}"),
            Some((end, want)) => {
                let mut got = got.unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
                assert_eq!(got.unused_tail, cut - end, "cut at {cut}");
                got.unused_tail = 0;
                assert_eq!(&got, want, "cut at {cut}");
            }
        }
    }
}

#[test]
fn a_damaged_record_ends_the_log_before_it() {
    let (bytes, after) = history();
    // Every byte of the second delta flipped in turn: the state is the first delta's.
    let (start, end) = (after[1].0, after[2].0);
    for at in start..end {
        let mut damaged = bytes.clone();
        damaged[at] ^= 0x20;
        let mut got = decode(&damaged).unwrap();
        assert!(got.unused_tail > 0, "byte {at}");
        got.unused_tail = 0;
        assert_eq!(got, after[1].1, "byte {at}");
    }
}

#[test]
fn a_record_naming_an_unknown_slot_is_not_applied_at_all() {
    let (mut bytes, after) = history();
    let bad = Record {
        saved_at_unix_ms: 9000,
        del: vec![0],
        set: vec![SlotEntry {
            slot: 7,
            file: None,
            offset: 1,
        }],
        ..Record::default()
    };
    encode(&bad, &mut bytes);
    let mut got = decode(&bytes).unwrap();
    assert!(got.unused_tail > 0);
    got.unused_tail = 0;
    assert_eq!(
        got,
        after.last().unwrap().1,
        "neither the delete nor the time of the bad record"
    );
}

#[test]
fn what_is_not_this_format_or_has_no_snapshot_is_refused() {
    assert!(decode(b"{\"version\":1}").is_err());
    assert!(decode(MAGIC).is_err());
    let mut only_delta = MAGIC.to_vec();
    encode(&Record::default(), &mut only_delta);
    assert!(decode(&only_delta).is_err());
    // A length far beyond the data is a torn frame, not an allocation.
    let mut huge = MAGIC.to_vec();
    huge.extend_from_slice(&u32::MAX.to_le_bytes());
    huge.extend_from_slice(&[0; 12]);
    assert!(decode(&huge).is_err());
}
