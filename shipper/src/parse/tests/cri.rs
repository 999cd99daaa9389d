//! CRI records: full lines, partials, bad records, limits.

use super::*;

#[test]
fn cri_full_lines_are_zero_copy() {
    let input = cri("stdout", "F", "hello") + &cri("stderr", "F", "oops");
    let mut framer = Framer::new(100, 1 << 20);
    framer.buf_mut().extend_from_slice(input.as_bytes());
    let mut stats = ParseStats::default();
    let records = framer.take_records(&mut stats).unwrap();
    let span = records.data.as_ptr_range();
    let mut parser = FileParser::new(Format::Cri, 1000);
    let mut out = Vec::new();
    let commit = parser.push(records, NOW, &mut out, &mut stats);
    let first_len = cri("stdout", "F", "hello").len() as u64;
    assert_eq!(out.iter().map(|e| e.offset).collect::<Vec<_>>(), [100, 100 + first_len]);
    out.iter_mut().for_each(|e| e.offset = 0);
    assert_eq!(
        out,
        [
            entry(TS, "hello", StreamKind::Stdout),
            entry(TS, "oops", StreamKind::Stderr)
        ]
    );
    assert!(
        out.iter().all(|e| span.contains(&e.line.as_ptr())),
        "lines are slices of the read buffer"
    );
    assert_eq!(commit, 100 + input.len() as u64);
    assert_eq!(stats, ParseStats::default());
}

#[test]
fn cri_empty_messages_and_crlf() {
    let input = format!("{T} stdout F \n{T} stdout F\n{T} stderr F:x with flag\n{T} stdout F dos\r\n");
    let r = run(Format::Cri, 1000, input.as_bytes());
    assert_eq!(lines(&r), ["", "", "with flag", "dos"]);
    assert_eq!(r.stats, ParseStats::default());
}

#[test]
fn joined_lines_start_at_their_first_fragment() {
    let a = cri("stdout", "P", "ab");
    let b = cri("stderr", "F", "x");
    let input = a.clone() + &b + &cri("stdout", "F", "c") + &cri("stdout", "F", "d");
    let r = run(Format::Cri, 1000, input.as_bytes());
    assert_eq!(lines(&r), ["x", "abc", "d"]);
    let (a, b) = (a.len() as u64, b.len() as u64);
    let c = cri("stdout", "F", "c").len() as u64;
    assert_eq!(r.offsets, [a, 0, a + b + c]);
}

#[test]
fn cri_partials_join_per_stream() {
    let input = [
        cri("stdout", "P", "out-1 "),
        cri("stderr", "P", "err-1 "),
        "2026-11-24T10:00:01Z stdout P out-2 \n".to_owned(),
        cri("stderr", "F", "err-2"),
        cri("stdout", "F", "out-3"),
    ]
    .concat();
    let r = run(Format::Cri, 1000, input.as_bytes());
    assert_eq!(
        r.entries,
        [
            entry(TS, "err-1 err-2", StreamKind::Stderr),
            entry(TS, "out-1 out-2 out-3", StreamKind::Stdout)
        ]
    );
    assert_eq!(r.commit, input.len() as u64);
}

#[test]
fn commit_waits_for_the_first_fragment() {
    let full = cri("stdout", "F", "done");
    let p1 = cri("stderr", "P", "a");
    let p2 = cri("stdout", "P", "b");
    let mut parser = FileParser::new(Format::Cri, 1000);
    let mut framer = Framer::new(0, 1 << 20);
    let (mut out, mut stats) = (Vec::new(), ParseStats::default());
    let mut push = |framer: &mut Framer, parser: &mut FileParser, bytes: &str| {
        framer.buf_mut().extend_from_slice(bytes.as_bytes());
        let records = framer.take_records(&mut stats).unwrap();
        parser.push(records, NOW, &mut out, &mut stats)
    };
    let at_p1 = full.len() as u64;
    assert_eq!(push(&mut framer, &mut parser, &(full.clone() + &p1 + &p2)), at_p1);
    // stdout finishes first: stderr's fragment still holds the commit back.
    assert_eq!(push(&mut framer, &mut parser, &cri("stdout", "F", "c")), at_p1);
    let last = cri("stderr", "F", "d");
    let total = framer.consumed_offset() + last.len() as u64;
    assert_eq!(push(&mut framer, &mut parser, &last), total);
    assert_eq!(
        out.iter().map(|e| &e.line[..]).collect::<Vec<_>>(),
        [&b"done"[..], b"bc", b"ad"]
    );
}

#[test]
fn cri_bad_records_ship_raw() {
    let input = [
        "2026-13-24T10:00:00Z stdout F bad month\n",
        "2026-11-24T10:00:00Z stdin F bad stream\n",
        "2026-11-24T10:00:00Z stdout X bad tag\n",
        "not cri at all\r\n",
        "\n",
    ]
    .concat();
    let r = run(Format::Cri, 1000, input.as_bytes());
    assert_eq!(
        lines(&r),
        [
            "2026-13-24T10:00:00Z stdout F bad month",
            "2026-11-24T10:00:00Z stdin F bad stream",
            "2026-11-24T10:00:00Z stdout X bad tag",
            "not cri at all",
            "",
        ]
    );
    assert!(r
        .entries
        .iter()
        .all(|e| e.ts_ns == NOW && e.stream == StreamKind::Unknown));
    assert_eq!(r.stats.parse_errors, 5);
    assert_eq!(r.commit, input.len() as u64);
}

#[test]
fn cri_invalid_utf8_and_truncation() {
    let mut input = format!("{T} stdout F ok\n{T} stdout F bad ").into_bytes();
    input.extend_from_slice(b"\xff\xfe!\n");
    input.extend_from_slice(cri("stdout", "F", "0123456789abcdef").as_bytes());
    input.extend_from_slice(cri("stdout", "F", "0123456789é").as_bytes());
    let r = run(Format::Cri, 11, &input);
    assert_eq!(lines(&r), ["ok", "bad \u{fffd}\u{fffd}!", "0123456789a", "0123456789"]);
    assert_eq!(r.stats.invalid_utf8, 1);
    assert_eq!(r.stats.truncated, 2);
}

#[test]
fn cri_joined_partials_respect_the_cap_and_utf8() {
    // "é" = c3 a9, split across two fragments: the joined line is valid.
    let mut input = format!("{T} stdout P caf").into_bytes();
    input.extend_from_slice(b"\xc3\n");
    input.extend_from_slice(format!("{T} stdout F ").as_bytes());
    input.extend_from_slice(b"\xa9!\n");
    let long = [
        cri("stderr", "P", "aaaa"),
        cri("stderr", "P", "bbbb"),
        cri("stderr", "P", "cccc"),
    ]
    .concat();
    input.extend_from_slice(long.as_bytes());
    input.extend_from_slice(cri("stderr", "F", "dddd").as_bytes());
    let r = run(Format::Cri, 10, &input);
    assert_eq!(lines(&r), ["café!", "aaaabbbbcc"]);
    assert_eq!((r.stats.truncated, r.stats.invalid_utf8), (1, 0));
    assert_eq!(r.commit, input.len() as u64);
}
