//! Property tests of `Framer` + `FileParser` together: no panics on any input, results that do
//! not depend on how the file was cut into reads, and a commit offset that is safe to resume at.

use proptest::collection::vec;
use proptest::prelude::*;

use super::check::{drive, LineSpan};
use super::*;

/// A generated line: stream, message, and where the runtime split it into fragments.
#[derive(Clone, Debug)]
struct GenLine {
    stderr: bool,
    msg: String,
    splits: Vec<usize>,
}

fn gen_lines() -> impl Strategy<Value = (Vec<GenLine>, Vec<bool>)> {
    let line = (any::<bool>(), "[^\r\n]{0,40}", vec(0usize..48, 0..4)).prop_map(|(stderr, msg, splits)| GenLine {
        stderr,
        msg,
        splits,
    });
    (vec(line, 0..24), vec(any::<bool>(), 0..200))
}

/// Cuts `msg` at the given byte positions (snapped to char boundaries when `on_chars`).
fn fragments(line: &GenLine, on_chars: bool) -> Vec<&[u8]> {
    let bytes = line.msg.as_bytes();
    let mut cuts: Vec<usize> = line
        .splits
        .iter()
        .map(|&s| s.min(bytes.len()))
        .filter(|&s| !on_chars || line.msg.is_char_boundary(s))
        .collect();
    cuts.sort_unstable();
    let mut out = Vec::new();
    let mut from = 0;
    for cut in cuts.into_iter().chain([bytes.len()]) {
        out.push(&bytes[from..cut]);
        from = cut;
    }
    out
}

/// Builds a file from generated lines: each stream's records stay in order, the two streams are
/// interleaved by `picks`. Returns the file, the expected entries and each line's span.
fn build(
    lines: &[GenLine],
    picks: &[bool],
    record: impl Fn(bool, i64, &[u8], bool) -> Vec<u8>,
    on_chars: bool,
) -> (Vec<u8>, Vec<Entry>, Vec<LineSpan>) {
    // Per stream: (line index, fragment, is last) in order.
    let mut queues: [Vec<(usize, &[u8], bool)>; 2] = [Vec::new(), Vec::new()];
    for (i, line) in lines.iter().enumerate() {
        let frags = fragments(line, on_chars);
        let last = frags.len() - 1;
        for (k, f) in frags.into_iter().enumerate() {
            queues[usize::from(line.stderr)].push((i, f, k == last));
        }
    }
    let (mut file, mut expected) = (Vec::new(), Vec::new());
    let mut spans = vec![LineSpan { first: 0, end: 0 }; lines.len()];
    let mut first_ts = vec![None; lines.len()];
    let mut heads = [0usize, 0usize];
    let mut picks = picks.iter().copied().cycle();
    let mut ts: i64 = 1_700_000_000_000_000_000;
    while heads[0] < queues[0].len() || heads[1] < queues[1].len() {
        let mut q = usize::from(picks.next().unwrap_or(false));
        if heads[q] >= queues[q].len() {
            q = 1 - q;
        }
        let (i, frag, last) = queues[q][heads[q]];
        heads[q] += 1;
        ts += 1_000_001;
        if first_ts[i].is_none() {
            first_ts[i] = Some(ts);
            spans[i].first = file.len() as u64;
        }
        file.extend_from_slice(&record(q == 1, ts, frag, last));
        spans[i].end = file.len() as u64;
        if last {
            let stream = if q == 1 { StreamKind::Stderr } else { StreamKind::Stdout };
            let line = Bytes::copy_from_slice(lines[i].msg.as_bytes());
            expected.push(Entry {
                ts_ns: first_ts[i].unwrap_or_default(),
                line,
                stream,
                offset: spans[i].first,
                extra: None,
            });
        }
    }
    (file, expected, spans)
}

/// RFC 3339 of unix nanoseconds (only for the generated years: no leap-year subtleties needed
/// beyond what `timestamp`'s own tests cover).
fn rfc3339(ts: i64) -> String {
    let (secs, nanos) = (ts.div_euclid(1_000_000_000), ts.rem_euclid(1_000_000_000));
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil from days (Howard Hinnant), inverse of `days_from_civil`.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    )
}

fn cri_record(stderr: bool, ts: i64, frag: &[u8], last: bool) -> Vec<u8> {
    let stream = if stderr { "stderr" } else { "stdout" };
    let tag = if last { "F" } else { "P" };
    let mut rec = format!("{} {stream} {tag} ", rfc3339(ts)).into_bytes();
    rec.extend_from_slice(frag);
    rec.push(b'\n');
    rec
}

fn docker_record(stderr: bool, ts: i64, frag: &[u8], last: bool) -> Vec<u8> {
    let stream = if stderr { "stderr" } else { "stdout" };
    let mut log = String::from_utf8_lossy(frag).into_owned();
    if last {
        log.push('\n');
    }
    let log = serde_json::to_string(&log).unwrap_or_default();
    format!(
        "{{\"log\":{log},\"stream\":\"{stream}\",\"time\":\"{}\"}}\n",
        rfc3339(ts)
    )
    .into_bytes()
}

/// Input pieces that reach deep into the parsers more often than uniform bytes would.
fn noisy_input() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        vec(any::<u8>(), 0..12),
        Just(b"\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"2026-11-24T10:00:00.123456789Z stdout P ".to_vec()),
        Just(b"2026-11-24T10:00:00+01:00 stderr F ".to_vec()),
        Just(b"2026-11-24T10:00:00Z stdout F:x".to_vec()),
        Just(br#"{"log":""#.to_vec()),
        Just(br#"\n","stream":"stdout","time":"2026-11-24T10:00:00Z"}"#.to_vec()),
        Just(br#"","stream":"stderr","time":"2026-11-24T10:00:00Z","attrs":{"a":[1,"}"]}}"#.to_vec()),
        Just(br#"\ud83d\u00e9\"\\"#.to_vec()),
        Just(b"\xc3\xa9\xe2\x82\xff".to_vec()),
    ];
    vec(token, 0..40).prop_map(|t| t.concat())
}

fn any_format() -> impl Strategy<Value = Format> {
    prop_oneof![
        Just(Format::Auto),
        Just(Format::Cri),
        Just(Format::Docker),
        Just(Format::Raw)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// (1) Any bytes, any format, any read sizes and limits: no panic, valid bounded lines, a
    /// monotonic commit within the consumed bytes (checked inside `drive`).
    #[test]
    fn arbitrary_input_never_panics(
        format in any_format(),
        input in noisy_input(),
        chunks in vec(1usize..64, 1..8),
        max_record in 0usize..80,
        max_line in 0usize..48,
    ) {
        let out = drive(format, max_record, max_line, &input, &chunks, None);
        prop_assert!(out.commit <= input.len() as u64);
    }

    /// (2) A valid CRI file with interleaved partials yields the same entries however it is cut
    /// into reads, and the commit ends at the file's end.
    #[test]
    fn cri_split_anywhere((lines, picks) in gen_lines(), chunks in vec(1usize..200, 1..8)) {
        let (file, expected, spans) = build(&lines, &picks, cri_record, false);
        let whole = drive(Format::Auto, 1 << 16, 1 << 16, &file, &[file.len().max(1)], Some(&spans));
        let split = drive(Format::Cri, 1 << 16, 1 << 16, &file, &chunks, Some(&spans));
        prop_assert_eq!(&whole.entries, &expected);
        prop_assert_eq!(&split.entries, &expected);
        prop_assert_eq!(split.commit, file.len() as u64);
        prop_assert_eq!(split.consumed, file.len() as u64);
    }

    /// (2) The same for docker json-file with partial `log` values and every kind of escape.
    #[test]
    fn docker_split_anywhere((lines, picks) in gen_lines(), chunks in vec(1usize..200, 1..8)) {
        let (file, expected, spans) = build(&lines, &picks, docker_record, true);
        let whole = drive(Format::Auto, 1 << 16, 1 << 16, &file, &[file.len().max(1)], Some(&spans));
        let split = drive(Format::Docker, 1 << 16, 1 << 16, &file, &chunks, Some(&spans));
        prop_assert_eq!(&whole.entries, &expected);
        prop_assert_eq!(&split.entries, &expected);
        prop_assert_eq!(split.commit, file.len() as u64);
    }

    /// (3) With a dangling partial line at the end, the commit stays at its first fragment.
    #[test]
    fn pending_partial_holds_commit((lines, picks) in gen_lines(), chunks in vec(1usize..200, 1..8), stderr: bool) {
        let (mut file, expected, spans) = build(&lines, &picks, cri_record, false);
        let dangling_at = file.len() as u64;
        file.extend_from_slice(&cri_record(stderr, 1_800_000_000_000_000_000, b"no end yet", false));
        let out = drive(Format::Cri, 1 << 16, 1 << 16, &file, &chunks, Some(&spans));
        prop_assert_eq!(&out.entries, &expected);
        prop_assert_eq!(out.commit, dangling_at);
    }

    /// The framer alone: records, offsets and cuts match a straightforward model for any read
    /// sizes and limit.
    #[test]
    fn framer_matches_model(
        input in vec(prop_oneof![Just(b'\n'), Just(b'a'), any::<u8>()], 0..300),
        chunks in vec(1usize..40, 1..6),
        max_record in 0usize..24,
    ) {
        // Model: every newline-terminated line, cut to max_record; a final unterminated piece
        // already longer than max_record is handed out cut as well.
        let mut want = Vec::new();
        let mut want_end = 0u64;
        let mut pos = 0usize;
        while pos < input.len() {
            let rest = &input[pos..];
            match rest.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    want.push((rest[..i.min(max_record)].to_vec(), pos as u64, i > max_record));
                    pos += i + 1;
                    want_end = pos as u64;
                }
                None => {
                    if rest.len() > max_record {
                        want.push((rest[..max_record].to_vec(), pos as u64, true));
                    }
                    break;
                }
            }
        }

        let mut framer = Framer::new(0, max_record);
        let mut stats = ParseStats::default();
        let mut got = Vec::new();
        let mut rest = &input[..];
        let mut sizes = chunks.iter().copied().cycle();
        while !rest.is_empty() {
            let n = sizes.next().unwrap_or(1).clamp(1, rest.len());
            framer.buf_mut().extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            if let Some(records) = framer.take_records(&mut stats) {
                prop_assert!(records.end >= records.start);
                got.extend(records.iter().map(|r| (records.data[r.range].to_vec(), r.offset, r.cut)));
            }
        }
        prop_assert_eq!(&got, &want);
        prop_assert_eq!(framer.consumed_offset(), want_end);
        prop_assert_eq!(framer.read_offset(), input.len() as u64);
        prop_assert_eq!(stats.oversized_records, want.iter().filter(|w| w.2).count() as u64);
    }
}
