//! Loki trouble: retryable answers and broken connections are retried until stored; validation errors
//! drop the batch with a counted reason; a receiver that is down or hangs is waited out with bounded
//! memory.

use crate::support::{wait_all, wait_entries, write_tagged, Agent, Env, CLIENT};
use shipper_testkit::{assert_no_loss, tag_line, varied_len, Account, Fault, Format, LogWriter};
use std::io::Write;
use std::time::Duration;

fn write_lines(path: &std::path::Path, f: u32, range: std::ops::Range<u64>) {
    write_tagged(&mut LogWriter::create(path, Format::Cri).unwrap(), f, range);
}

fn status(code: u16, retry_after: Option<&str>) -> Fault {
    Fault::Status {
        code,
        retry_after: retry_after.map(str::to_string),
        body: format!("injected {code}"),
    }
}

#[test]
fn retryable_failures_are_retried_until_stored() {
    let env = Env::new();
    env.loki.push_faults([
        status(429, Some("1")),
        status(429, None),
        status(500, None),
        status(502, None),
        status(503, None),
        Fault::ResetMidBody,
        Fault::Stall(Duration::from_secs(4)),
    ]);
    // The stall outlasts `client.timeout` (2 s here, the setting this fault is about).
    let client = CLIENT.replace("URL", &env.loki.url()) + "  timeout: 2s\n";
    let config = env.config("app/*.log", &client);
    let agent = Agent::start(&config);
    write_lines(&env.path("app/app.log"), 0, 0..20_000);
    wait_all(&env, &agent, &[(0, 20_000)], 90);
    std::thread::sleep(Duration::from_millis(500));
    let account = Account::from_streams(&env.loki.streams(), [(0, 20_000)]);
    // Only the stalled request can have been stored and then retried.
    assert_no_loss(&account, 5_000);
    assert_eq!(env.loki.pending_faults(), 0);
    let m = agent.metrics();
    let retries = crate::support::metric_value(&m, "shipper_push_retries_total{reason=\"429\"}");
    assert_eq!(retries, 2.0, "429 retries:\n{m}");
    assert_eq!(
        crate::support::metric_value(&m, "shipper_push_retries_total{reason=\"5xx\"}"),
        3.0
    );
    assert!(crate::support::metric_value(&m, "shipper_push_retries_total{reason=\"network\"}") >= 2.0);
    agent.assert_peak_rss_below(64, "429/5xx/reset/stall");
    agent.stop();
}

#[test]
fn rejected_batches_are_dropped_and_counted() {
    let env = Env::new();
    let config = env.config("app/*.log", "");
    let agent = Agent::start(&config);
    // 30 days old: Loki answers 400 greater_than_max_sample_age.
    let path = env.path("app/app.log");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap();
    let old = shipper_testkit::time::format_rfc3339(
        shipper_testkit::time::now_nanos() - 30 * 86_400 * 1_000_000_000,
        shipper_testkit::time::TimeStyle::GoNano,
    );
    for i in 0..10 {
        writeln!(f, "{old} stdout F ancient line {i}").unwrap();
    }
    drop(f);
    let m = || agent.metric("shipper_dropped_entries_total{reason=\"greater_than_max_sample_age\"}");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while m() < 10.0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(m(), 10.0, "{}", agent.metrics());
    // Later lines are not held up by the rejected batch.
    write_lines(&path, 1, 0..1_000);
    wait_entries(&env, &agent, 1_000, 30);
    assert_eq!(env.loki.with_state(|s| s.count_status(400)), 1);
    agent.assert_peak_rss_below(64, "400 rejected batch");
    agent.stop();
}

#[test]
fn receiver_down_30s_then_catches_up() {
    let env = Env::new();
    let config = env.config("app/*.log", "");
    let agent = Agent::start(&config);
    env.loki.set_down(true);
    let writer = {
        let path = env.path("app/app.log");
        std::thread::spawn(move || {
            for k in 0..30u64 {
                write_lines(&path, 0, k * 1_000..(k + 1) * 1_000);
                std::thread::sleep(Duration::from_millis(900));
            }
        })
    };
    std::thread::sleep(Duration::from_secs(30));
    assert_eq!(env.loki.entry_count(), 0);
    env.loki.set_down(false);
    writer.join().unwrap();
    wait_all(&env, &agent, &[(0, 30_000)], 60);
    std::thread::sleep(Duration::from_millis(500));
    assert_no_loss(&Account::from_streams(&env.loki.streams(), [(0, 30_000)]), 0);
    assert!(agent.metric("shipper_push_retries_total{reason=\"network\"}") >= 3.0);
    agent.assert_peak_rss_below(64, "Loki refusing connections 30 s");
    agent.stop();
}

/// Loki hangs while 500 MiB are written: the agent stops reading when its ring is full and its memory
/// stays bounded; once Loki answers again everything arrives.
#[test]
fn stalled_receiver_keeps_memory_bounded() {
    let env = Env::new();
    let config = env.config("app/*.log", "");
    let agent = Agent::start(&config);
    env.loki.set_stalled(true);
    let path = env.path("app/app.log");
    let per_file: u64 = 2_500_000;
    let mut w = LogWriter::create(&path, Format::Cri).unwrap();
    for i in 0..per_file {
        w.write_line("stdout", &tag_line(0, i, varied_len(i, 120, 280)))
            .unwrap();
    }
    w.flush().unwrap();
    let size = std::fs::metadata(&path).unwrap().len();
    assert!(size >= 500 << 20, "wrote {size} bytes");
    std::thread::sleep(Duration::from_secs(2));
    let rss = agent.peak_rss();
    assert!(rss < 128 << 20, "peak RSS {} MiB while Loki hangs", rss >> 20);
    env.loki.set_stalled(false);
    wait_all(&env, &agent, &[(0, per_file)], 600);
    let rss = agent.peak_rss();
    eprintln!("peak RSS {} MiB for {} MiB shipped", rss >> 20, size >> 20);
    assert!(rss < 128 << 20, "peak RSS {} MiB", rss >> 20);
    assert_no_loss(&Account::from_streams(&env.loki.streams(), [(0, per_file)]), 20_000);
    agent.stop();
}

/// A Loki that reads request bodies slowly: a push that cannot finish within `client.timeout` is
/// abandoned and retried (counted), one that finishes late is fine; nothing is lost.
#[test]
fn slow_reading_receiver_costs_time_not_lines() {
    let env = Env::new();
    env.loki.push_faults([
        // 256 KiB batches at 16 KiB/s: far past the 2 s timeout.
        Fault::SlowRead {
            bytes_per_sec: 16 << 10,
        },
        // Slow but within the timeout.
        Fault::SlowRead { bytes_per_sec: 1 << 20 },
    ]);
    // `client.timeout`, the setting this test is about.
    let client = CLIENT.replace("URL", &env.loki.url()) + "  timeout: 2s\n";
    let agent = Agent::start(&env.config("app/*.log", &client));
    write_lines(&env.path("app/app.log"), 0, 0..5_000);
    wait_all(&env, &agent, &[(0, 5_000)], 60);
    std::thread::sleep(Duration::from_millis(300));
    let account = Account::from_streams(&env.loki.streams(), [(0, 5_000)]);
    assert_no_loss(&account, 0);
    assert_eq!(env.loki.pending_faults(), 0);
    let m = agent.metrics();
    let retries: f64 = ["network", "timeout"]
        .iter()
        .map(|r| crate::support::metric_value(&m, &format!("shipper_push_retries_total{{reason=\"{r}\"}}")))
        .sum();
    assert!(retries >= 1.0, "the abandoned push is retried and counted:\n{m}");
    agent.assert_peak_rss_below(64, "slow-reading receiver");
    agent.stop();
}
