//! The core promise: lines written to files arrive in the receiver byte for byte, in order, with their
//! labels and timestamps — CRI (partials joined), docker json-file (partials joined, escapes) and raw.

use crate::support::{wait_entries, Agent, Env};
use shipper_testkit::{tag_line, varied_len, Format, LogWriter};
use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

const LINES: u64 = 100_000;

/// The message of line `i` of file `f`: tagged, of realistic varying length, with every 997th line
/// longer than the runtimes' 16 KiB split and some lines full of characters JSON must escape.
fn message(f: u32, i: u64) -> String {
    let mut m = tag_line(f, i, varied_len(i, 40, 400));
    if i.is_multiple_of(997) {
        m.push_str(&"long-line ".repeat(4000));
    }
    if i.is_multiple_of(101) {
        m.push_str(" \"quoted\" back\\slash tab\t ünïcødé ✓ \u{1}");
    }
    m
}

fn stream_of(i: u64) -> &'static str {
    if i.is_multiple_of(3) {
        "stderr"
    } else {
        "stdout"
    }
}

type Expected = BTreeMap<String, Vec<(i64, String)>>;

fn write(w: &mut LogWriter, f: u32, range: std::ops::Range<u64>, base_ns: i64, expected: &mut Expected) {
    let file = w.path().display().to_string();
    for i in range {
        let msg = message(f, i);
        let ts = base_ns + i as i64 * 1_000;
        let labels = match w.format() {
            Format::Raw => format!("{{filename=\"{file}\", job=\"test\"}}"),
            _ => format!("{{filename=\"{file}\", job=\"test\", stream=\"{}\"}}", stream_of(i)),
        };
        w.write_line_at(ts, stream_of(i), &msg).unwrap();
        expected.entry(labels).or_default().push((ts, msg));
    }
    w.flush().unwrap();
}

#[test]
fn three_formats_arrive_byte_exact_in_order_with_labels_and_timestamps() {
    let env = Env::new();
    let base_ns = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as i64 - 60_000_000_000;
    let mut writers = [
        LogWriter::create(env.path("logs/pods/ns_pod_uid/app/0.log"), Format::Cri).unwrap(),
        LogWriter::create(env.path("logs/containers/abc/abc-json.log"), Format::Docker).unwrap(),
        LogWriter::create(env.path("logs/raw/app.log"), Format::Raw).unwrap(),
    ];
    let mut expected = Expected::new();
    // Half before the agent starts (read from the beginning), half while it runs (tailed live).
    for (f, w) in writers.iter_mut().enumerate() {
        write(w, f as u32, 0..LINES / 2, base_ns, &mut expected);
    }
    let config = env.config("logs/**/*.log", "");
    let agent = Agent::start(&config);
    let started = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as i64;
    for (f, w) in writers.iter_mut().enumerate() {
        write(w, f as u32, LINES / 2..LINES, base_ns, &mut expected);
    }
    wait_entries(&env, &agent, 3 * LINES as usize, 180);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let got = env.loki.streams();
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "streams (label sets) differ"
    );
    for (labels, want) in &expected {
        let have = &got[labels];
        assert_eq!(have.len(), want.len(), "{labels}: entry count");
        let raw = !labels.contains("stream=");
        for (i, (h, (ts, line))) in have.iter().zip(want).enumerate() {
            assert!(
                h.line == *line,
                "{labels}: entry {i} differs:\n got {:?}\nwant {:?}",
                h.line,
                line
            );
            if raw {
                assert!(
                    h.ts_ns >= started - 60_000_000_000,
                    "{labels}: raw entry {i} stamped at read time"
                );
            } else {
                assert_eq!(h.ts_ns, *ts, "{labels}: entry {i} timestamp");
            }
        }
    }
    let metrics = agent.metrics();
    assert!(
        metrics.contains("shipper_sent_entries_total 300000"),
        "sent counter:\n{metrics}"
    );
    agent.stop();
}

/// Pod and container directories created while the agent runs are watched as they appear: their lines
/// arrive without waiting for a periodic rescan (set to 5 minutes here).
#[test]
fn new_pod_directories_are_noticed_at_once() {
    use crate::support::{assert_exact_or_log, write_tagged};
    let env = Env::new();
    let config = env.config(
        "pods/*/*/*.log",
        "tail:\n  start_at: beginning\n  rescan_interval: 5m\n",
    );
    let agent = Agent::start(&config);
    let mut writers = Vec::new();
    for f in 0..100u32 {
        let mut w = LogWriter::create(env.path(&format!("pods/ns_p{f}_u{f}/c/0.log")), Format::Cri).unwrap();
        write_tagged(&mut w, f, 0..10);
        writers.push(w);
    }
    for (f, w) in writers.iter_mut().enumerate() {
        write_tagged(w, f as u32, 10..20);
    }
    wait_entries(&env, &agent, 2_000, 30);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_exact_or_log(
        &shipper_testkit::Account::from_streams(&env.loki.streams(), (0..100).map(|f| (f, 20))),
        &agent,
    );
    agent.stop();
}

/// Records that are not what their format says are shipped as they are and counted, never dropped:
/// a non-CRI line in a CRI file, invalid UTF-8 (replaced), a line over `max_line_size` (truncated).
#[test]
fn bad_records_are_shipped_and_counted() {
    let env = Env::new();
    let config = env.config("app/*.log", "tail:\n  start_at: beginning\n  max_line_size: 1KiB\n");
    let path = env.path("app/app.log");
    // Timestamps of now: the receiver refuses entries older than 7 days, like Loki.
    let ts = shipper_testkit::time::format_rfc3339(
        shipper_testkit::time::now_nanos(),
        shipper_testkit::time::TimeStyle::GoNano,
    );
    let mut content = Vec::new();
    content.extend_from_slice(format!("{ts} stdout F first\n").as_bytes());
    content.extend_from_slice(b"this is not a CRI record\n");
    content.extend_from_slice(format!("{ts} stdout F bad ").as_bytes());
    content.extend_from_slice(b"\xff\xfe bytes\n");
    content.extend_from_slice(format!("{ts} stdout F {}\n", "x".repeat(5000)).as_bytes());
    content.extend_from_slice(format!("{ts} stdout F last\n").as_bytes());
    std::fs::write(&path, &content).unwrap();
    let agent = Agent::start(&config);
    wait_entries(&env, &agent, 5, 30);
    let lines = env.loki.lines();
    assert_eq!(lines.len(), 5, "{lines:?}");
    assert!(lines.contains(&"this is not a CRI record".to_string()), "{lines:?}");
    assert!(lines.contains(&"bad \u{fffd}\u{fffd} bytes".to_string()), "{lines:?}");
    assert!(
        lines.iter().any(|l| l.len() == 1024 && l.bytes().all(|b| b == b'x')),
        "truncated to 1 KiB"
    );
    let m = agent.metrics();
    for issue in ["parse_error", "invalid_utf8", "truncated"] {
        let v = crate::support::metric_value(&m, &format!("shipper_parse_issues_total{{issue=\"{issue}\"}}"));
        assert!(v >= 1.0, "{issue} not counted:\n{m}");
    }
    agent.stop();
}
