//! Table tests of `FileParser` through `Framer`: shared helpers and format-independent cases
//! here, one file per format beside it.

mod cri;
mod docker;
mod oversize;

use super::*;

const NOW: i64 = 42;
const TS: i64 = 1_795_514_400_123_456_789;
const T: &str = "2026-11-24T10:00:00.123456789Z";

struct Run {
    /// The entries, with `offset` zeroed so tables compare lines (offsets are in `offsets`).
    entries: Vec<Entry>,
    offsets: Vec<u64>,
    stats: ParseStats,
    commit: u64,
    format: Format,
}

/// Feeds `input` in one piece through a framer with room for any record.
fn run(format: Format, max_line: usize, input: &[u8]) -> Run {
    let mut framer = Framer::new(0, 1 << 20);
    let mut parser = FileParser::new(format, max_line);
    let mut stats = ParseStats::default();
    let mut entries = Vec::new();
    framer.buf_mut().extend_from_slice(input);
    let mut commit = 0;
    if let Some(records) = framer.take_records(&mut stats) {
        commit = parser.push(records, NOW, &mut entries, &mut stats);
    }
    let offsets = entries.iter().map(|e| e.offset).collect();
    entries.iter_mut().for_each(|e| e.offset = 0);
    Run {
        entries,
        offsets,
        stats,
        commit,
        format: parser.format(),
    }
}

fn lines(run: &Run) -> Vec<&str> {
    run.entries
        .iter()
        .map(|e| std::str::from_utf8(&e.line).expect("valid UTF-8"))
        .collect()
}

fn entry(ts_ns: i64, line: &str, stream: StreamKind) -> Entry {
    Entry {
        ts_ns,
        line: Bytes::copy_from_slice(line.as_bytes()),
        stream,
        offset: 0,
        extra: None,
    }
}

fn cri(stream: &str, tag: &str, msg: &str) -> String {
    format!("{T} {stream} {tag} {msg}\n")
}

fn docker(log: &str, stream: &str) -> String {
    let log = serde_json::to_string(log).unwrap();
    format!(r#"{{"log":{log},"stream":"{stream}","time":"{T}"}}"#) + "\n"
}

#[test]
fn raw_lines() {
    let mut input = b"first\nsecond\r\n\n\tindented  \n".to_vec();
    input.extend_from_slice(b"bad \xff\n");
    input.extend_from_slice(b"no newline yet");
    let r = run(Format::Raw, 1000, &input);
    assert_eq!(lines(&r), ["first", "second", "", "\tindented  ", "bad \u{fffd}"]);
    assert!(r
        .entries
        .iter()
        .all(|e| e.ts_ns == NOW && e.stream == StreamKind::Unknown));
    assert_eq!(r.stats.invalid_utf8, 1);
    assert_eq!(r.commit, input.len() as u64 - 14);
}

#[test]
fn auto_detection() {
    let r = run(
        Format::Auto,
        1000,
        (String::from("\n\r\n") + &docker("d\n", "stdout")).as_bytes(),
    );
    assert_eq!((r.format, lines(&r)), (Format::Docker, vec!["", "", "d"]));

    let r = run(Format::Auto, 1000, (cri("stdout", "F", "c") + "raw later\n").as_bytes());
    assert_eq!((r.format, lines(&r)), (Format::Cri, vec!["c", "raw later"]));
    assert_eq!(r.stats.parse_errors, 1);

    // The app's own JSON is not docker; a CRI line after a raw start stays raw.
    let input = String::from("{\"level\":\"info\"}\n") + &cri("stdout", "F", "c");
    let r = run(Format::Auto, 1000, input.as_bytes());
    assert_eq!(r.format, Format::Raw);
    assert_eq!(r.entries[1].ts_ns, NOW);
    assert_eq!(r.stats.parse_errors, 0);

    assert_eq!(run(Format::Auto, 1000, b"\n").format, Format::Auto);
    assert_eq!(run(Format::Auto, 1000, b"").format, Format::Auto);
}

#[test]
fn flush_ships_pending_and_reset_drops_it() {
    let mut framer = Framer::new(0, 1 << 20);
    let mut parser = FileParser::new(Format::Cri, 1000);
    let (mut out, mut stats) = (Vec::new(), ParseStats::default());
    let input = cri("stdout", "P", "half");
    framer.buf_mut().extend_from_slice(input.as_bytes());
    let records = framer.take_records(&mut stats).unwrap();
    assert_eq!(parser.push(records, NOW, &mut out, &mut stats), 0);
    assert_eq!(parser.flush(&mut out, &mut stats), input.len() as u64);
    assert_eq!(out, [entry(TS, "half", StreamKind::Stdout)]);

    out.clear();
    framer.buf_mut().extend_from_slice(input.as_bytes());
    let records = framer.take_records(&mut stats).unwrap();
    parser.push(records, NOW, &mut out, &mut stats);
    parser.reset(0);
    framer.reset(0);
    framer.buf_mut().extend_from_slice(cri("stdout", "F", "new").as_bytes());
    let records = framer.take_records(&mut stats).unwrap();
    parser.push(records, NOW, &mut out, &mut stats);
    assert_eq!(out, [entry(TS, "new", StreamKind::Stdout)]);
    assert_eq!(parser.format(), Format::Cri);
}

#[test]
fn format_names() {
    for f in [Format::Auto, Format::Cri, Format::Docker, Format::Raw] {
        assert_eq!(f.as_str().parse::<Format>(), Ok(f));
        assert_eq!(serde_json::to_string(&f).unwrap(), format!("\"{f}\""));
        assert_eq!(serde_json::from_str::<Format>(&format!("\"{f}\"")).unwrap(), f);
    }
    let err = "json".parse::<Format>().unwrap_err().to_string();
    assert!(
        err.contains("\"json\"") && err.contains("auto, cri, docker, raw"),
        "{err}"
    );
    assert_eq!(Format::default(), Format::Auto);
    assert_eq!(
        [StreamKind::Unknown, StreamKind::Stdout, StreamKind::Stderr].map(StreamKind::as_str),
        ["", "stdout", "stderr"]
    );
}

fn lines_of(out: &[Entry]) -> Vec<String> {
    out.iter()
        .map(|e| String::from_utf8(e.line.to_vec()).expect("UTF-8"))
        .collect()
}

/// A first record cut by the framer that fits no format does not decide the format.
#[test]
fn auto_detection_skips_a_cut_record() {
    let mut framer = Framer::new(0, 90);
    let mut parser = FileParser::new(Format::Auto, 1000);
    let (mut out, mut stats) = (Vec::new(), ParseStats::default());
    let input = docker(&"x".repeat(100), "stdout") + &docker("ok\n", "stdout");
    framer.buf_mut().extend_from_slice(input.as_bytes());
    let records = framer.take_records(&mut stats).unwrap();
    parser.push(records, NOW, &mut out, &mut stats);
    assert_eq!(parser.format(), Format::Docker);
    assert_eq!(out.len(), 2);
    assert_eq!((out[0].stream, out[0].ts_ns), (StreamKind::Unknown, NOW));
    let first = docker(&"x".repeat(100), "stdout").len() as u64;
    assert_eq!((out[0].offset, out[1].offset), (0, first));
    out[1].offset = 0;
    assert_eq!(out[1], entry(TS, "ok", StreamKind::Stdout));
}
