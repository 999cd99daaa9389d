//! Docker json-file records: escapes, partials, bad records, limits.

use super::*;

#[test]
fn docker_lines_and_escapes() {
    let input = [
        docker("plain\n", "stdout"),
        docker("say \"hi\" \\ / \t done\n", "stderr"),
        docker("é € 😀 \u{1}\n", "stdout"),
        r#"{"log":"\ud83d\ude00 \u00e9\/\n","stream":"stdout","time":"2026-11-24T10:00:00.123456789Z"}"#.to_owned()
            + "\n",
        docker("\n", "stdout"),
        docker("dos\r\n", "stdout"),
        docker("two\nlines\n", "stdout"),
        r#"{"attrs":{"tag":"x"},"time":"2026-11-24T10:00:00.123456789Z","stream":"stderr","log":"keys\n"}"#.to_owned()
            + "\n",
    ]
    .concat();
    let r = run(Format::Docker, 1000, input.as_bytes());
    assert_eq!(
        lines(&r),
        [
            "plain",
            "say \"hi\" \\ / \t done",
            "é € 😀 \u{1}",
            "😀 é/",
            "",
            "dos",
            "two\nlines",
            "keys"
        ]
    );
    assert_eq!(r.entries[1].stream, StreamKind::Stderr);
    assert!(r.entries.iter().all(|e| e.ts_ns == TS));
    assert_eq!(r.stats, ParseStats::default());
    assert_eq!(r.commit, input.len() as u64);
}

#[test]
fn docker_partials_join_per_stream() {
    let input = [
        docker("out-1 ", "stdout"),
        docker("err-1 ", "stderr"),
        docker("out-\"2\" ", "stdout"),
        docker("err-2\n", "stderr"),
        docker("out-3\n", "stdout"),
    ]
    .concat();
    let r = run(Format::Docker, 1000, input.as_bytes());
    assert_eq!(
        r.entries,
        [
            entry(TS, "err-1 err-2", StreamKind::Stderr),
            entry(TS, "out-1 out-\"2\" out-3", StreamKind::Stdout)
        ]
    );
    assert_eq!(r.commit, input.len() as u64);

    // A CRLF split across fragments still loses its '\r'.
    let input = docker("dos\r", "stdout") + &docker("\n", "stdout");
    assert_eq!(lines(&run(Format::Docker, 1000, input.as_bytes())), ["dos"]);

    let pending = docker("never ends", "stdout");
    let r = run(Format::Docker, 1000, (docker("a\n", "stdout") + &pending).as_bytes());
    assert_eq!(lines(&r), ["a"]);
    assert_eq!(r.commit, docker("a\n", "stdout").len() as u64);
}

#[test]
fn docker_bad_records_ship_raw() {
    let input = [
        r#"{"log":"cut off\n","stream":"stdout","#,
        "\n",
        r#"{"log":"x\n","stream":"stdout","time":"noon"}"#,
        "\n",
        r#"{"log":"bad \q escape\n","stream":"stdout","time":"2026-11-24T10:00:00Z"}"#,
        "\n",
        "plain text\n",
    ]
    .concat();
    let r = run(Format::Docker, 1000, input.as_bytes());
    assert_eq!(r.stats.parse_errors, 4);
    assert_eq!(r.entries.len(), 4);
    assert_eq!(&r.entries[0].line[..], br#"{"log":"cut off\n","stream":"stdout","#);
    assert!(r
        .entries
        .iter()
        .all(|e| e.ts_ns == NOW && e.stream == StreamKind::Unknown));
    // A failed unescape leaves no trace in the next line.
    let r = run(
        Format::Docker,
        1000,
        (input + &docker("after \"q\"\n", "stdout")).as_bytes(),
    );
    assert_eq!(lines(&r).last(), Some(&"after \"q\""));
}

#[test]
fn docker_invalid_utf8_and_truncation() {
    let mut input = br#"{"log":"bad "#.to_vec();
    input.extend_from_slice(b"\xc3\x28");
    input.extend_from_slice(br#"\n","stream":"stdout","time":"2026-11-24T10:00:00Z"}"#);
    input.push(b'\n');
    input.extend_from_slice(docker("0123456789\"abcdef\n", "stdout").as_bytes());
    let r = run(Format::Docker, 12, &input);
    assert_eq!(lines(&r), ["bad \u{fffd}(", "0123456789\"a"]);
    assert_eq!(
        (r.stats.invalid_utf8, r.stats.truncated, r.stats.parse_errors),
        (1, 1, 0)
    );
}
