//! Log writers produce runtime-shaped files: CRI and docker records, 16 KiB splits, JSON
//! escaping, timestamps; tagged lines survive the trip through a file.

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use shipper_testkit::time::TimeStyle;
use shipper_testkit::writer::RUNTIME_SPLIT;
use shipper_testkit::{parse_tag, tag_line, varied_len, Account, Format, LogWriter};

/// A CRI record: (timestamp, stream, tag, message bytes).
type CriRecord = (String, String, String, Vec<u8>);

fn cri_records(path: &Path) -> Vec<CriRecord> {
    let data = fs::read(path).unwrap();
    assert!(data.is_empty() || data.ends_with(b"\n"));
    data.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|rec| {
            let mut parts = rec.splitn(4, |&b| b == b' ');
            let mut field = || String::from_utf8(parts.next().unwrap().to_vec()).unwrap();
            let (ts, stream, tag) = (field(), field(), field());
            (ts, stream, tag, parts.next().unwrap().to_vec())
        })
        .collect()
}

/// Joins P records with the following F record of the same stream.
fn cri_lines(path: &Path) -> Vec<(String, String)> {
    let mut partial: HashMap<String, Vec<u8>> = HashMap::new();
    let mut out = Vec::new();
    for (_, stream, tag, msg) in cri_records(path) {
        let buf = partial.entry(stream.clone()).or_default();
        buf.extend_from_slice(&msg);
        if tag == "F" {
            out.push((stream, String::from_utf8(std::mem::take(buf)).unwrap()));
        } else {
            assert_eq!(tag, "P");
        }
    }
    out
}

/// Parses every docker record with serde_json and joins partial `log` values.
fn docker_lines(path: &Path) -> Vec<(String, String)> {
    let mut partial: HashMap<String, String> = HashMap::new();
    let mut out = Vec::new();
    for rec in fs::read_to_string(path).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(rec).unwrap();
        let stream = v["stream"].as_str().unwrap().to_owned();
        assert!(is_rfc3339(v["time"].as_str().unwrap()));
        let buf = partial.entry(stream.clone()).or_default();
        buf.push_str(v["log"].as_str().unwrap());
        if buf.ends_with('\n') {
            buf.pop();
            out.push((stream, std::mem::take(buf)));
        }
    }
    out
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction]Z`, fraction 1–9 digits without trailing zero.
fn is_rfc3339(ts: &str) -> bool {
    let b = ts.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    let head = b.len() >= 20
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19);
    let rest = &ts[19..];
    head && rest.ends_with('Z')
        && match rest.strip_suffix('Z').unwrap() {
            "" => true,
            frac => {
                let f = &frac[1..];
                frac.starts_with('.')
                    && (1..=9).contains(&f.len())
                    && f.bytes().all(|c| c.is_ascii_digit())
                    && !f.ends_with('0')
            }
        }
}

#[test]
fn cri_records_have_the_runtime_shape() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pods/ns_pod_uid/app/0.log");
    let mut w = LogWriter::create(&path, Format::Cri).unwrap();
    w.write_line("stdout", "hello world").unwrap();
    w.write_line("stderr", "oops: \"quoted\" é").unwrap();
    w.write_line("stdout", "").unwrap();
    w.flush().unwrap();
    let recs = cri_records(&path);
    assert_eq!(recs.len(), 3);
    for (ts, _, tag, _) in &recs {
        assert!(is_rfc3339(ts), "{ts}");
        assert_eq!(tag, "F");
    }
    assert_eq!(
        cri_lines(&path),
        [
            ("stdout".into(), "hello world".into()),
            ("stderr".into(), "oops: \"quoted\" é".into()),
            ("stdout".into(), String::new()),
        ]
    );
    let text = fs::read_to_string(&path).unwrap();
    assert!(text.lines().nth(2).unwrap().ends_with(" stdout F "));
}

#[test]
fn cri_splits_at_16_kib_like_containerd() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("0.log");
    let mut w = LogWriter::create(&path, Format::Cri).unwrap();
    let long = tag_line(1, 1, 2 * RUNTIME_SPLIT + 100);
    let exact = "e".repeat(RUNTIME_SPLIT);
    let short = "s".repeat(RUNTIME_SPLIT - 1);
    // A 3-byte character straddling the split: containerd cuts bytes, not characters.
    let straddle = format!("{}日本", "a".repeat(RUNTIME_SPLIT - 1));
    for line in [&long, &exact, &short, &straddle] {
        w.write_line("stdout", line).unwrap();
    }
    drop(w);
    let recs = cri_records(&path);
    let shape: Vec<(&str, usize)> = recs.iter().map(|r| (r.2.as_str(), r.3.len())).collect();
    let long_len = tag_line(1, 1, 2 * RUNTIME_SPLIT + 100).len();
    assert_eq!(
        shape,
        [
            ("P", RUNTIME_SPLIT),
            ("P", RUNTIME_SPLIT),
            ("F", long_len - 2 * RUNTIME_SPLIT),
            ("P", RUNTIME_SPLIT),
            ("F", 0),
            ("F", RUNTIME_SPLIT - 1),
            ("P", RUNTIME_SPLIT),
            ("F", 5),
        ]
    );
    assert!(std::str::from_utf8(&recs[6].3).is_err(), "the cut splits a character");
    let lines: Vec<String> = cri_lines(&path).into_iter().map(|l| l.1).collect();
    assert_eq!(lines, [long.clone(), exact, short, straddle]);
    assert_eq!(parse_tag(&lines[0]), Some((1, 1)));
}

#[test]
fn docker_records_round_trip_through_serde_json() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("abc/abc-json.log");
    let mut w = LogWriter::create(&path, Format::Docker).unwrap();
    let nasty = "q\"uote b\\ack tab\t cr\r ctl\u{1}\u{1f} del\u{7f} <html>&amp; é 日本 🦀 \u{2028}";
    w.write_line("stdout", nasty).unwrap();
    w.write_line("stderr", "plain").unwrap();
    w.flush().unwrap();
    let raw = fs::read_to_string(&path).unwrap();
    let first = raw.lines().next().unwrap();
    assert!(
        first.starts_with(r#"{"log":"q\"uote b\\ack tab\t cr\r ctl\u0001\u001f"#),
        "{first}"
    );
    assert!(first.contains(r"\u003chtml\u003e\u0026amp;"), "{first}");
    assert!(first.contains(r#"\n","stream":"stdout","time":""#), "{first}");
    assert_eq!(
        docker_lines(&path),
        [("stdout".into(), nasty.into()), ("stderr".into(), "plain".into())]
    );
}

#[test]
fn docker_splits_at_16_kib_on_character_boundaries() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x-json.log");
    let mut w = LogWriter::create(&path, Format::Docker).unwrap();
    let long = format!("{}é{}", "a".repeat(RUNTIME_SPLIT - 1), "b".repeat(RUNTIME_SPLIT + 10));
    let exact = "e".repeat(RUNTIME_SPLIT);
    w.write_line("stdout", &long).unwrap();
    w.write_line("stdout", &exact).unwrap();
    drop(w);
    let logs: Vec<String> = fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["log"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let shape: Vec<(usize, bool)> = logs.iter().map(|l| (l.len(), l.ends_with('\n'))).collect();
    assert_eq!(
        shape,
        [
            (RUNTIME_SPLIT - 1, false),
            (RUNTIME_SPLIT, false),
            (long.len() - 2 * RUNTIME_SPLIT + 1 + 1, true),
            (RUNTIME_SPLIT, false),
            (1, true),
        ]
    );
    let lines: Vec<String> = docker_lines(&path).into_iter().map(|l| l.1).collect();
    assert_eq!(lines, [long, exact]);
}

#[test]
fn raw_format_newlines_and_time_styles() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    let mut w = LogWriter::create(&path, Format::Raw).unwrap();
    w.write_line("stdout", "one\ntwo").unwrap();
    w.write_raw(b"torn").unwrap();
    w.flush().unwrap();
    assert_eq!(fs::read_to_string(&path).unwrap(), "one\ntwo\ntorn");

    let cri = dir.path().join("0.log");
    let mut w = LogWriter::create(&cri, Format::Cri).unwrap();
    w.write_line_at(1_795_600_800_120_000_000, "stdout", "go").unwrap();
    w.set_time_style(TimeStyle::Fixed9);
    w.write_line_at(1_795_600_800_120_000_000, "stdout", "fixed").unwrap();
    w.set_time_style(TimeStyle::Offset);
    w.write_line_at(1_795_600_800_000_000_000, "stdout", "offset").unwrap();
    w.set_split_size(4);
    w.write_line_at(1_795_600_800_000_000_000, "stderr", "abcdefghij")
        .unwrap();
    drop(w);
    let text = fs::read_to_string(&cri).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "2026-11-25T10:00:00.12Z stdout F go");
    assert_eq!(lines[1], "2026-11-25T10:00:00.120000000Z stdout F fixed");
    assert_eq!(lines[2], "2026-11-25T10:00:00.000000000+00:00 stdout F offset");
    assert_eq!(
        &lines[3..],
        [
            "2026-11-25T10:00:00.000000000+00:00 stderr P abcd",
            "2026-11-25T10:00:00.000000000+00:00 stderr P efgh",
            "2026-11-25T10:00:00.000000000+00:00 stderr F ij",
        ]
    );
}

#[test]
fn tagged_lines_round_trip_through_files_into_an_exact_account() {
    let dir = tempfile::tempdir().unwrap();
    let mut all = Vec::new();
    for (file_id, format) in [(0u32, Format::Cri), (1, Format::Docker)] {
        let path = dir.path().join(format!("{file_id}.log"));
        let mut w = LogWriter::create(&path, format).unwrap();
        for seq in 0..500 {
            let line = tag_line(file_id, seq, varied_len(seq, 0, 40_000));
            w.write_line(if seq % 3 == 0 { "stderr" } else { "stdout" }, &line)
                .unwrap();
        }
        drop(w);
        let lines = match format {
            Format::Cri => cri_lines(&path),
            _ => docker_lines(&path),
        };
        all.extend(lines.into_iter().map(|l| l.1));
    }
    let account = Account::from_lines(all.iter().map(String::as_str), [(0, 500), (1, 500)]);
    shipper_testkit::assert_exact(&account);

    all.remove(42);
    all.push(all[7].clone());
    let account = Account::from_lines(all.iter().map(String::as_str), [(0, 500), (1, 500)]);
    assert_eq!((account.lost(), account.duplicated()), (1, 1));
    assert!(account.to_string().contains("missing 42"), "{account}");
}
