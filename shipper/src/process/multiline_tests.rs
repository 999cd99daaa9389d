//! Table tests of multiline grouping, presets with realistic traces, timing and the size cap.

use super::*;
use crate::units::Dur;
use bytes::Bytes;
use StreamKind::{Stderr, Stdout};

fn spec(firstline: Option<&str>, preset: Option<&str>, max_lines: Option<usize>) -> Arc<MultilineSpec> {
    let cfg = MultilineConfig {
        firstline: firstline.map(Into::into),
        preset: preset.map(Into::into),
        max_lines,
        max_wait_time: None,
    };
    Arc::new(MultilineSpec::new(&cfg, "ml").expect("valid spec"))
}

/// Pushes the lines of `input` (one stream, offsets as in a file), then flushes: the entries'
/// texts and the count of truncated entries.
fn run(spec: Arc<MultilineSpec>, max_bytes: usize, input: &str) -> (Vec<String>, u64) {
    let (now, mut ml, mut out, mut offset) = (Instant::now(), Multiline::new(spec, max_bytes), Vec::new(), 0);
    for l in input.lines() {
        ml.push(
            Line::new(0, Bytes::copy_from_slice(l.as_bytes()), Stdout, offset),
            now,
            &mut out,
        );
        offset += l.len() as u64 + 1;
    }
    ml.flush(&mut out);
    (out.iter().map(|l| l.text().to_string()).collect(), ml.take_truncated())
}

const JAVA: &str = "\
2024-05-01 12:00:00.123 ERROR 1 --- [nio-8080-exec-1] o.a.c.c.C.[dispatcherServlet] : Servlet.service() threw exception
java.lang.IllegalStateException: Failed to process order 42
\tat com.example.orders.OrderService.process(OrderService.java:87)
\tat com.example.orders.OrderController.create(OrderController.java:31)
\tat java.base/jdk.internal.reflect.NativeMethodAccessorImpl.invoke0(Native Method)
\tSuppressed: java.io.UncheckedIOException: close failed
\t\tat com.example.orders.Db.close(Db.java:12)
\t\t... 3 more
Caused by: java.sql.SQLException: Connection refused
\tat org.postgresql.Driver.connect(Driver.java:285)
\tat com.example.orders.Db.open(Db.java:20)
\t... 5 more
2024-05-01 12:00:00.456  INFO 1 --- [nio-8080-exec-2] c.e.o.OrderController : order 43 created
Exception in thread \"main\" java.lang.OutOfMemoryError: Java heap space
\tat java.base/java.util.Arrays.copyOf(Arrays.java:3512)
";

const PYTHON: &str = "\
INFO:app:starting
ERROR:root:job failed
Traceback (most recent call last):
  File \"/app/job.py\", line 12, in run
    value = int(raw)
            ^^^^^^^^
ValueError: invalid literal for int() with base 10: 'x'

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File \"/app/job.py\", line 20, in <module>
    run()
  File \"/app/job.py\", line 14, in run
    raise RuntimeError(\"job failed\")
RuntimeError: job failed
INFO:app:retrying
Traceback (most recent call last):
  File \"/app/job.py\", line 3, in <module>
    import missing
ModuleNotFoundError: No module named 'missing'

The above exception was the direct cause of the following exception:

Traceback (most recent call last):
  File \"/app/job.py\", line 5, in <module>
    raise SystemExit(1) from e
SystemExit: 1
INFO:app:stopped
";

const GO: &str = "\
2024/05/01 12:00:00 listening on :8080
panic: runtime error: invalid memory address or nil pointer dereference
[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x6b1f2a]

goroutine 42 [running]:
main.(*Server).handle(0x0, {0x7f1e20, 0xc0001a2000})
\t/app/server.go:57 +0x2a
net/http.HandlerFunc.ServeHTTP(0xc000012345?, {0x7f1e20?, 0xc0001a2000?}, 0x0?)
\t/usr/local/go/src/net/http/server.go:2166 +0x29
created by net/http.(*Server).Serve in goroutine 1
\t/usr/local/go/src/net/http/server.go:3285 +0x4b4

goroutine 1 [IO wait, 2 minutes]:
internal/poll.runtime_pollWait(0x7f5c2c1e8e28, 0x72)
\t/usr/local/go/src/runtime/netpoll.go:345 +0x85
main.main()
\t/app/main.go:20 +0x1a5
2024/05/01 12:00:01 restarting (attempt 2)
2024/05/01 12:00:02 worker stuck, stack:
goroutine 9 [running]:
runtime/debug.Stack()
\t/usr/local/go/src/runtime/debug/stack.go:26 +0x5e
main.worker()
\t/app/worker.go:11 +0x1d
2024/05/01 12:00:03 done
";

/// (name, firstline, preset, max_lines, input, lines per entry sent, in order)
type Case = (
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
    Option<usize>,
    &'static str,
    &'static [usize],
);

#[test]
fn grouping() {
    let (date, java, python, go) = (Some(r"^\d{4}-"), Some("java"), Some("python"), Some("go"));
    #[rustfmt::skip]
        let cases: &[Case] = &[
            ("firstline", date, None, None, "2024-01-01 a\n  x\ny\n2024-01-01 b\n2024-01-01 c\nz", &[3, 1, 2]),
            ("continuation first", date, None, None, "x\ny\n2024-1 a", &[2, 1]),
            ("unanchored", Some("START"), None, None, "a START\nb\nSTART c", &[2, 1]),
            ("blank continuation", date, None, None, "2024 a\n\nb", &[3]),
            ("max_lines", date, None, Some(3), "2024 a\n1\n2\n3\n4\n5\n6", &[3, 3, 1]),
            ("max_lines 1", date, None, Some(1), "2024 a\nb", &[1, 1]),
            ("java", None, java, None, JAVA, &[12, 1, 2]),
            ("python", None, python, None, PYTHON, &[1, 15, 12, 1]),
            ("py blank after", None, python, None, "E\nTraceback (most recent call last):\n  f\nE: 1\n\nx", &[5, 1]),
            ("python no frames", None, python, None, "E\nTraceback (most recent call last):\nx", &[2, 1]),
            ("go", None, go, None, GO, &[1, 16, 1, 6, 1]),
            ("go fatal", None, go, None, "fatal error: deadlock!\n\ngoroutine 1 [select]:\nmain.main()\nx", &[4, 1]),
            ("go signal dump", None, go, None, "SIGQUIT: quit\nPC=0x46ad41 m=0\n\nrax    0xca\nx", &[4, 1]),
            ("go outside a trace", None, go, None, "a\nmain.main()\n\nb", &[1, 1, 1, 1]),
        ];
    for &(name, firstline, preset, max_lines, input, sizes) in cases {
        let lines: Vec<&str> = input.lines().collect();
        let mut want = Vec::new();
        let mut at = 0;
        for &n in sizes {
            want.push(lines[at..at + n].join("\n"));
            at += n;
        }
        assert_eq!(at, lines.len(), "{name}: sizes do not cover the input");
        assert_eq!(
            run(spec(firstline, preset, max_lines), 1 << 20, input),
            (want, 0),
            "{name}"
        );
    }
}

#[test]
fn spec_errors() {
    let bad = |firstline: Option<&str>, preset: Option<&str>, max_lines, want: &str| {
        let cfg = MultilineConfig {
            firstline: firstline.map(Into::into),
            preset: preset.map(Into::into),
            max_lines,
            max_wait_time: None,
        };
        let err = MultilineSpec::new(&cfg, "stages[0].multiline").expect_err(want);
        assert!(err.starts_with("stages[0].multiline") && err.contains(want), "{err}");
    };
    bad(Some("a"), Some("java"), None, "not both");
    bad(None, None, None, "needs");
    bad(None, Some("ruby"), None, "unknown preset");
    bad(Some("(a"), None, None, "not a valid regular expression");
    bad(Some(""), None, None, "empty");
    bad(Some("a"), None, Some(0), "max_lines");
    let s = spec(Some("a"), None, None);
    assert_eq!((s.max_lines(), s.max_wait()), (DEFAULT_MAX_LINES, DEFAULT_MAX_WAIT));
}

fn line(text: &'static str, stream: StreamKind, offset: u64) -> Line {
    Line::new(offset as i64, Bytes::from_static(text.as_bytes()), stream, offset)
}

#[test]
fn max_wait_and_deadline() {
    let cfg = MultilineConfig {
        firstline: Some("^S".into()),
        max_wait_time: Some(Dur::secs(3)),
        ..Default::default()
    };
    let mut ml = Multiline::new(Arc::new(MultilineSpec::new(&cfg, "ml").unwrap()), 1024);
    let t0 = Instant::now();
    let at = |ms| t0 + Duration::from_millis(ms);
    let mut out = Vec::new();
    assert_eq!(ml.deadline(), None);
    ml.push(line("S a", Stdout, 0), t0, &mut out);
    assert_eq!(ml.deadline(), Some(at(3000)));
    ml.push(line("b", Stdout, 4), at(2000), &mut out); // a continuation moves the deadline
    assert_eq!(ml.deadline(), Some(at(5000)));
    ml.flush_due(at(4999), &mut out);
    assert!(out.is_empty());
    ml.flush_due(at(5000), &mut out);
    assert_eq!(out.iter().map(Line::text).collect::<Vec<_>>(), ["S a\nb"]);
    assert_eq!((ml.deadline(), ml.oldest_offset()), (None, None));
    // A max_wait_time too large for Instant: never due, no panic; flush() still sends it.
    let cfg = MultilineConfig {
        max_wait_time: Some(Dur(Duration::MAX)),
        ..cfg
    };
    let mut ml = Multiline::new(Arc::new(MultilineSpec::new(&cfg, "ml").unwrap()), 1024);
    ml.push(line("S a", Stdout, 0), t0, &mut out);
    ml.flush_due(at(1 << 40), &mut out);
    assert_eq!((ml.deadline(), ml.oldest_offset()), (None, Some(0)));
}

#[test]
fn streams_interleave() {
    let mut ml = Multiline::new(spec(Some(r"^\d{4}-"), None, None), 1024);
    let (now, mut out) = (Instant::now(), Vec::new());
    ml.push(line("2024-01-01 a", Stdout, 0), now, &mut out);
    ml.push(line("2024-01-01 b", Stderr, 10), now, &mut out);
    ml.push(line("  cont a", Stdout, 20), now, &mut out);
    ml.push(line("  cont b", Stderr, 30), now, &mut out);
    ml.push(line("2024-01-01 c", Stdout, 40), now, &mut out);
    let got = |out: &[Line]| {
        out.iter()
            .map(|l| (l.text().to_string(), l.stream, l.offset))
            .collect::<Vec<_>>()
    };
    assert_eq!(got(&out), [("2024-01-01 a\n  cont a".into(), Stdout, 0)]);
    assert_eq!(ml.oldest_offset(), Some(10), "stderr's entry holds the commit back");
    out.clear();
    ml.flush(&mut out);
    let want = [
        ("2024-01-01 b\n  cont b".into(), Stderr, 10),
        ("2024-01-01 c".into(), Stdout, 40),
    ];
    assert_eq!(got(&out), want, "flushed together: in file order");
    assert_eq!(ml.oldest_offset(), None);
}

#[test]
fn single_line_is_zero_copy_and_first_line_metadata_kept() {
    let mut ml = Multiline::new(spec(Some("^S"), None, None), 1024);
    let (now, mut out) = (Instant::now(), Vec::new());
    let single = Bytes::copy_from_slice(b"S single");
    ml.push(Line::new(1, single.clone(), Stderr, 0), now, &mut out);
    let mut first = line("S first", Stderr, 100);
    first.changes().tenant = Some("team-a".into());
    first.changes().metadata.push(("trace".into(), "abc".into()));
    ml.push(first, now, &mut out);
    let mut cont = line("more", Stderr, 200);
    cont.changes().tenant = Some("other".into());
    ml.push(cont, now, &mut out);
    ml.flush(&mut out);
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].line.as_ptr(), single.as_ptr(), "a single line is not copied");
    let j = &out[1];
    assert_eq!(
        (
            j.text(),
            j.ts_ns,
            j.offset,
            j.changes.as_ref().and_then(|c| c.tenant.as_deref()),
            j.changes.as_ref().map_or(0, |c| c.metadata.len())
        ),
        ("S first\nmore", 100, 100, Some("team-a"), 1)
    );
}

#[test]
fn max_bytes_cap() {
    #[rustfmt::skip]
        let cases: &[(usize, &str, &str, u64)] = &[
            (20, "S first 12\nsecond\nthird\nfourth", "S first 12\nsecond\nth", 1),
            (17, "S first 12\nsecond\nthird", "S first 12\nsecond", 1), // no room: no stray \n
            (18, "S first 12\nsecond\nthird", "S first 12\nsecond", 1),
            (17, "S first 12\nsecond", "S first 12\nsecond", 0), // exactly full
            (14, "S abcdefghijk\nxy", "S abcdefghijk", 1), // a first line over the cap is kept whole
            (10, "S 1234\néé\nS next\nx", "S 1234\né", 1), // cut on a character boundary
            (8, "S 1234\néé", "S 1234", 1),
        ];
    for &(max, input, want, truncated) in cases {
        let (got, n) = run(spec(Some("^S"), None, None), max, input);
        assert_eq!((got[0].as_str(), n), (want, truncated), "{input:?} cap {max}");
    }
}

#[test]
fn max_lines_keeps_trace_context_and_invalid_utf8_does_not_panic() {
    // A traceback cut by max_lines: the exception line is still known as its end.
    let (got, _) = run(spec(None, Some("python"), Some(2)), 1024, PYTHON);
    assert_eq!(got[1], "ERROR:root:job failed\nTraceback (most recent call last):");
    assert_eq!(
        got[3],
        "            ^^^^^^^^\nValueError: invalid literal for int() with base 10: 'x'"
    );
    let mut ml = Multiline::new(spec(Some("^S"), None, None), 8);
    let mut out = Vec::new();
    for b in [&b"S \xff\xfe"[..], b"\xc3", b"\xe2\x82\xac\xe2\x82\xac", b""] {
        ml.push(
            Line::new(0, Bytes::copy_from_slice(b), Stdout, 0),
            Instant::now(),
            &mut out,
        );
    }
    ml.flush(&mut out);
    assert_eq!((out.len(), out[0].line.len() <= 8), (1, true));
}
