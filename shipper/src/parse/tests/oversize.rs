//! Records longer than the framer's `max_record`, through the parser.

use super::*;

/// A 1 MiB CRI line arrives over many reads with no newline for a while: one truncated entry
/// shipped early, a commit that never enters the record, and the next line parsed normally.
#[test]
fn oversized_record_through_the_parser() {
    let header = format!("{T} stdout F ");
    let max_line = 16 * 1024;
    let max_record = max_line + header.len();
    let mut framer = Framer::new(0, max_record);
    let mut parser = FileParser::new(Format::Cri, max_line);
    let (mut out, mut stats) = (Vec::new(), ParseStats::default());
    let before = cri("stdout", "F", "before");
    let mut big = header.clone().into_bytes();
    big.extend(std::iter::repeat_n(b'x', 1 << 20));
    let mut commits = Vec::new();
    for piece in [before.as_bytes()].into_iter().chain(big.chunks(64 * 1024)) {
        framer.buf_mut().extend_from_slice(piece);
        if let Some(records) = framer.take_records(&mut stats) {
            commits.push(parser.push(records, NOW, &mut out, &mut stats));
        }
    }
    assert_eq!(out.len(), 2, "the cut line is shipped before its newline arrives");
    assert_eq!(out[1].line.len(), max_line);
    assert!(out[1].line.iter().all(|&b| b == b'x'));
    assert_eq!((out[1].ts_ns, out[1].stream), (TS, StreamKind::Stdout));
    let at_big = before.len() as u64;
    assert_eq!(commits, [at_big, at_big], "commit stays at the cut record's start");

    let after = cri("stderr", "F", "after");
    framer.buf_mut().extend_from_slice(format!("xyz\n{after}").as_bytes());
    let records = framer.take_records(&mut stats).unwrap();
    let end = at_big + big.len() as u64 + 4 + after.len() as u64;
    assert_eq!(parser.push(records, NOW, &mut out, &mut stats), end);
    assert_eq!(out.len(), 3);
    assert_eq!(out[2].offset, end - after.len() as u64);
    out[2].offset = 0;
    assert_eq!(out[2], entry(TS, "after", StreamKind::Stderr));
    assert_eq!(
        (stats.oversized_records, stats.truncated, stats.parse_errors),
        (1, 1, 0)
    );
}

/// A cut `P` fragment ends what is kept of its line; the line still ends at its `F`.
#[test]
fn oversized_partial_fragment() {
    let max_record = 50;
    let mut framer = Framer::new(0, max_record);
    let mut parser = FileParser::new(Format::Cri, 1000);
    let (mut out, mut stats) = (Vec::new(), ParseStats::default());
    let input = [
        cri("stdout", "P", &"p".repeat(100)),
        cri("stdout", "P", "lost"),
        cri("stdout", "F", "end"),
        cri("stdout", "F", "next"),
    ]
    .concat();
    framer.buf_mut().extend_from_slice(input.as_bytes());
    let records = framer.take_records(&mut stats).unwrap();
    assert_eq!(parser.push(records, NOW, &mut out, &mut stats), input.len() as u64);
    let kept = max_record - format!("{T} stdout P ").len();
    assert_eq!(lines_of(&out), ["p".repeat(kept), "next".to_owned()]);
    assert_eq!((stats.oversized_records, stats.truncated), (1, 1));
}

/// A docker record cut by the framer is no longer JSON: shipped raw, cut, counted.
#[test]
fn oversized_docker_record_ships_raw() {
    let mut framer = Framer::new(0, 80);
    let mut parser = FileParser::new(Format::Docker, 1000);
    let (mut out, mut stats) = (Vec::new(), ParseStats::default());
    let input = docker(&"d".repeat(100), "stdout") + &docker("ok\n", "stdout");
    framer.buf_mut().extend_from_slice(input.as_bytes());
    let records = framer.take_records(&mut stats).unwrap();
    assert_eq!(parser.push(records, NOW, &mut out, &mut stats), input.len() as u64);
    assert_eq!(lines_of(&out), [input[..80].to_owned(), "ok".to_owned()]);
    assert_eq!(out[0].stream, StreamKind::Unknown);
    assert_eq!(
        (stats.oversized_records, stats.truncated, stats.parse_errors),
        (1, 1, 1)
    );
}
