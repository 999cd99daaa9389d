//! Docker json-file records: `{"log":"message\n","stream":"stdout","time":"<RFC 3339>"}`.
//!
//! Keys may come in any order and other keys (`attrs`, …) may appear; `log`, `stream` and
//! `time` are required, as dockerd always writes them (requiring them also keeps auto-detection
//! from taking an application's own JSON lines for docker records). For a repeated key the last
//! one wins, like Go's decoder.
//!
//! Fast path: when the only escape in `log` is its final `\n` (or it has none, for a partial),
//! the message is a range of the record, sliced later without a copy. Otherwise the caller
//! unescapes the raw value with [`super::json::unescape_into`].

use std::borrow::Cow;
use std::ops::Range;

use bytes::BytesMut;

use super::json::{scan_string, skip_value, skip_ws, unescape_into, RawStr};
use super::timestamp::parse_rfc3339;
use super::StreamKind;

/// What a docker record says about its `log` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Log {
    /// The message is `record[range]` as is. `partial`: the value did not end in `\n`.
    Plain { range: Range<usize>, partial: bool },
    /// The value has other escapes: `record[range]` must be unescaped; the result ends in
    /// `\n` unless the record is partial.
    Escaped { range: Range<usize> },
}

/// One parsed docker record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DockerRecord {
    pub ts_ns: i64,
    pub stream: StreamKind,
    pub log: Log,
}

/// Parses one record (without its `\n`); `None` if it is not a complete docker record.
pub(crate) fn parse(rec: &[u8]) -> Option<DockerRecord> {
    let mut log = None;
    let mut stream = None;
    let mut time = None;

    let mut pos = skip_ws(rec, 0);
    if rec.get(pos) != Some(&b'{') {
        return None;
    }
    pos = skip_ws(rec, pos + 1);
    if rec.get(pos) != Some(&b'}') {
        loop {
            let key = scan_string(rec, pos)?;
            pos = skip_ws(rec, key.end + 1);
            if rec.get(pos) != Some(&b':') {
                return None;
            }
            pos = skip_ws(rec, pos + 1);
            let value_end = match key_name(rec, key) {
                Some(key) => {
                    let value = scan_string(rec, pos)?;
                    match key {
                        Key::Log => log = Some(value),
                        Key::Stream => stream = Some(value),
                        Key::Time => time = Some(value),
                    }
                    value.end + 1
                }
                None => skip_value(rec, pos)?,
            };
            pos = skip_ws(rec, value_end);
            match rec.get(pos) {
                Some(b',') => pos = skip_ws(rec, pos + 1),
                Some(b'}') => break,
                _ => return None,
            }
        }
    }
    if skip_ws(rec, pos + 1) != rec.len() {
        return None; // trailing bytes after the object
    }

    let stream = match small_string(rec, stream?)?.as_ref() {
        b"stdout" => StreamKind::Stdout,
        b"stderr" => StreamKind::Stderr,
        _ => return None,
    };
    let ts_ns = parse_rfc3339(&small_string(rec, time?)?)?;
    Some(DockerRecord {
        ts_ns,
        stream,
        log: classify_log(rec, log?),
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Key {
    Log,
    Stream,
    Time,
}

fn key_name(rec: &[u8], key: RawStr) -> Option<Key> {
    let name = match key.first_escape {
        None => rec.get(key.start..key.end)?,
        // An escaped key (`"l\u006fg"`) is legal JSON, just never written by dockerd.
        Some(_) => return key_from(&small_string(rec, key)?),
    };
    key_from(name)
}

fn key_from(name: &[u8]) -> Option<Key> {
    match name {
        b"log" => Some(Key::Log),
        b"stream" => Some(Key::Stream),
        b"time" => Some(Key::Time),
        _ => None,
    }
}

/// A short string value (stream, time, an escaped key), unescaped only if it has escapes.
fn small_string(rec: &[u8], raw: RawStr) -> Option<Cow<'_, [u8]>> {
    let content = rec.get(raw.start..raw.end)?;
    if raw.first_escape.is_none() {
        return Some(Cow::Borrowed(content));
    }
    let mut out = BytesMut::new();
    unescape_into(content, &mut out)?;
    Some(Cow::Owned(out.to_vec()))
}

fn classify_log(rec: &[u8], raw: RawStr) -> Log {
    match raw.first_escape {
        None => Log::Plain {
            range: raw.start..raw.end,
            partial: true,
        },
        // The first (so only) escape is the final `\n`.
        Some(i) if i + 2 == raw.end && rec.get(i + 1) == Some(&b'n') => Log::Plain {
            range: raw.start..i,
            partial: false,
        },
        Some(_) => Log::Escaped {
            range: raw.start..raw.end,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TS: i64 = 1_795_514_400_123_456_789;

    fn log_of(rec: &str) -> Option<(StreamKind, i64, Log)> {
        parse(rec.as_bytes()).map(|r| (r.stream, r.ts_ns, r.log))
    }

    fn plain(rec: &str) -> (&str, bool) {
        match parse(rec.as_bytes()).expect("parses").log {
            Log::Plain { range, partial } => (&rec[range], partial),
            other => panic!("not plain: {other:?}"),
        }
    }

    #[test]
    fn fast_path_slices() {
        let rec = r#"{"log":"hello world\n","stream":"stdout","time":"2026-11-24T10:00:00.123456789Z"}"#;
        let (s, ts, _) = log_of(rec).unwrap();
        assert_eq!((s, ts), (StreamKind::Stdout, TS));
        assert_eq!(plain(rec), ("hello world", false));
        assert_eq!(
            plain(r#"{"log":"part","stream":"stderr","time":"2026-11-24T10:00:00Z"}"#),
            ("part", true)
        );
        assert_eq!(
            plain(r#"{"log":"\n","stream":"stderr","time":"2026-11-24T10:00:00Z"}"#),
            ("", false)
        );
        assert_eq!(
            plain(r#"{"log":"","stream":"stderr","time":"2026-11-24T10:00:00Z"}"#),
            ("", true)
        );
    }

    #[test]
    fn any_key_order_extra_keys_and_spaces() {
        let rec = r#" { "time" : "2026-11-24T10:00:00.123456789Z" , "attrs":{"tag":"a}\"b","n":[1,{"x":null}]},
            "stream":"stderr", "n": -1.5e3, "ok": true, "log":"x\n" } "#;
        let (s, ts, _) = log_of(rec).unwrap();
        assert_eq!((s, ts), (StreamKind::Stderr, TS));
        assert_eq!(plain(rec), ("x", false));
        // The last of a repeated key wins.
        let rec = r#"{"log":"a\n","log":"b\n","stream":"stdout","time":"2026-11-24T10:00:00Z"}"#;
        assert_eq!(plain(rec), ("b", false));
        // An escaped key name still counts.
        let rec = r#"{"l\u006fg":"k\n","stream":"stdout","time":"2026-11-24T10:00:00Z"}"#;
        assert_eq!(plain(rec), ("k", false));
    }

    #[test]
    fn escaped_values() {
        let rec = r#"{"log":"say \"hi\"\n","stream":"stdout","time":"2026-11-24T10:00:00Z"}"#;
        match parse(rec.as_bytes()).unwrap().log {
            Log::Escaped { range } => assert_eq!(&rec[range], r#"say \"hi\"\n"#),
            other => panic!("{other:?}"),
        }
        // `\\n` is an escaped backslash and a plain `n`, not a final newline.
        let rec = r#"{"log":"a\\n","stream":"stdout","time":"2026-11-24T10:00:00Z"}"#;
        assert!(matches!(parse(rec.as_bytes()).unwrap().log, Log::Escaped { .. }));
        // A newline that is not the last escape takes the slow path.
        let rec = r#"{"log":"a\nb\n","stream":"stdout","time":"2026-11-24T10:00:00Z"}"#;
        assert!(matches!(parse(rec.as_bytes()).unwrap().log, Log::Escaped { .. }));
        // Escapes in stream and time are decoded too.
        let rec = r#"{"log":"a\n","stream":"std\u006fut","time":"2026-11-24T10:00:00\u002e123456789Z"}"#;
        let (s, ts, _) = log_of(rec).unwrap();
        assert_eq!((s, ts), (StreamKind::Stdout, TS));
    }

    #[test]
    fn rejects() {
        for rec in [
            "",
            "{",
            "{}",
            "[]",
            "hello",
            r#"{"log":"a\n","stream":"stdout","time":"2026-11-24T10:00:00Z""#,
            r#"{"log":"a\n","stream":"stdout","time":"2026-11-24T10:00:00Z"} x"#,
            r#"{"log":"a\n","stream":"stdout","time":"2026-11-24T10:00:00Z",}"#,
            r#"{"log":"a\n","stream":"stdout"}"#,
            r#"{"log":"a\n","time":"2026-11-24T10:00:00Z"}"#,
            r#"{"stream":"stdout","time":"2026-11-24T10:00:00Z"}"#,
            r#"{"log":"a\n","stream":"stdin","time":"2026-11-24T10:00:00Z"}"#,
            r#"{"log":"a\n","stream":"stdout","time":"yesterday"}"#,
            r#"{"log":1,"stream":"stdout","time":"2026-11-24T10:00:00Z"}"#,
            r#"{"log":"a\n" "stream":"stdout","time":"2026-11-24T10:00:00Z"}"#,
            r#"{"log":"a\n","stream":"stdout","time":"2026-11-24T10:00:00Z","attrs":{"x":1}"#,
            r#"{"level":"info","msg":"app json"}"#,
        ] {
            assert_eq!(parse(rec.as_bytes()), None, "{rec}");
        }
    }
}
