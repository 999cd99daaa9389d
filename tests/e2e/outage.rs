//! Loki down for minutes while containers keep logging and kubelet keeps rotating (and gzipping, and
//! removing) their logs: the agent keeps opening the new files while it cannot ship, holds the rotated
//! ones open, and ships everything in order once Loki is back — up to `tail.max_held_bytes`, past
//! which the oldest held files are let go with the loss counted and logged.

use crate::support::{assert_exact_or_log, wait_all, Agent, Env};
use shipper_testkit::{tag_line, varied_len, Format, LogWriter};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Writers for `files` containers (`pods/ns_p<f>_u/c/0.log`), each appending `per_sec` tagged lines a
/// second and rotating like kubelet (5 files kept, older ones gzipped) every `rotate_at` bytes, until
/// `stop` is set. The join gives each file's line count.
fn writers(env: &Env, files: u32, per_sec: u64, rotate_at: u64, stop: &Arc<AtomicBool>) -> Vec<JoinHandle<u64>> {
    (0..files)
        .map(|f| {
            let path = env.path(&format!("pods/ns_p{f}_u/c/0.log"));
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut w = LogWriter::create(&path, Format::Cri).unwrap();
                let (mut n, mut since_rotation) = (0u64, 0u64);
                let started = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    let due = started.elapsed().as_millis() as u64 * per_sec / 1000;
                    while n < due {
                        let line = tag_line(f, n, varied_len(n, 80, 200));
                        since_rotation += line.len() as u64 + 40;
                        w.write_line("stdout", &line).unwrap();
                        n += 1;
                    }
                    w.flush().unwrap();
                    if since_rotation >= rotate_at {
                        w.rotate_kubelet_retiring(5).unwrap();
                        since_rotation = 0;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                w.flush().unwrap();
                n
            })
        })
        .collect()
}

fn gz_count(env: &Env) -> usize {
    let mut n = 0;
    for pod in std::fs::read_dir(env.path("pods")).unwrap().flatten() {
        for e in std::fs::read_dir(pod.path().join("c")).unwrap().flatten() {
            n += usize::from(e.file_name().to_string_lossy().ends_with(".gz"));
        }
    }
    n
}

/// Loki down from the start, the agent running, writers going (see `writers`).
struct Outage {
    env: Env,
    agent: Agent,
    stop: Arc<AtomicBool>,
    writers: Vec<JoinHandle<u64>>,
}

impl Outage {
    fn start(tail_extra: &str, files: u32, per_sec: u64) -> Outage {
        Outage::start_via(tail_extra, files, per_sec, &[])
    }

    /// [`Outage::start`] with the agent started through `wrapper` (e.g. into a CPU cgroup).
    fn start_via(tail_extra: &str, files: u32, per_sec: u64, wrapper: &[&str]) -> Outage {
        // The defaults, but for what a test is about (`max_held_bytes`).
        let tail = if tail_extra.is_empty() {
            String::new()
        } else {
            format!("tail:\n{tail_extra}")
        };
        Outage::start_with(Env::new(), &tail, files, per_sec, wrapper)
    }

    /// [`Outage::start`] with the Helm chart's defaults for everything that decides memory (the
    /// client's `batch_size` too), to measure it.
    fn start_as_the_chart(files: u32, per_sec: u64) -> Outage {
        let env = Env::new();
        let client = crate::memory::chart_client(&env);
        Outage::start_with(env, &client, files, per_sec, &[])
    }

    fn start_with(env: Env, extra: &str, files: u32, per_sec: u64, wrapper: &[&str]) -> Outage {
        let config = env.config("pods/*/*/*.log", extra);
        env.loki.set_down(true);
        let agent = Agent::start_via(&config, wrapper);
        let stop = Arc::new(AtomicBool::new(false));
        let writers = writers(&env, files, per_sec, 64 << 10, &stop);
        Outage {
            env,
            agent,
            stop,
            writers,
        }
    }

    /// Loki back; the writers go on for `then`, stop, and tell how many lines each file got.
    fn end(&mut self, then: Duration) -> Vec<(u32, u64)> {
        self.env.loki.set_down(false);
        std::thread::sleep(then);
        self.stop.store(true, Ordering::Relaxed);
        std::mem::take(&mut self.writers)
            .into_iter()
            .enumerate()
            .map(|(f, h)| (f as u32, h.join().unwrap()))
            .collect()
    }
}

/// Loki refuses connections for two minutes while 5 containers log 300 lines/s each and kubelet
/// rotates them every ~64 KiB (older files gzipped and removed long before Loki is back): every line
/// arrives once, in order per stream, after the outage, and the agent, run as the Helm chart runs
/// it, stays within the chart's memory limit.
#[test]
fn loki_down_two_minutes_while_kubelet_rotates_and_compresses_loses_nothing() {
    let mut outage = Outage::start_as_the_chart(5, 300);
    let (env, agent) = (&outage.env, &outage.agent);
    std::thread::sleep(Duration::from_secs(60));
    // Halfway: nothing shipped, rotated files held open (their names long gzipped away).
    assert_eq!(env.loki.entry_count(), 0);
    assert!(gz_count(env) >= 10, "kubelet gzipped {} files", gz_count(env));
    let held = agent.metric("shipper_held_bytes");
    let open = agent.metric("shipper_open_files");
    assert!(
        held > (256 << 10) as f64 && open > 10.0,
        "held {held} bytes in {open} files\n{}",
        agent.log_tail()
    );
    std::thread::sleep(Duration::from_secs(60));
    let expected = outage.end(Duration::from_secs(5));
    let (env, agent) = (&outage.env, &outage.agent);
    let account = wait_all(env, agent, &expected, 120);
    assert_exact_or_log(&account, agent);
    assert_eq!(
        agent.metric("shipper_dropped_bytes_total{reason=\"max_held_bytes\"}"),
        0.0
    );
    // Everything acknowledged: the held files are closed again.
    let deadline = Instant::now() + Duration::from_secs(20);
    while agent.metric("shipper_open_files") > 5.0 {
        assert!(Instant::now() < deadline, "held files not closed: {}", agent.log_tail());
        std::thread::sleep(Duration::from_millis(200));
    }
    let rss = agent.peak_rss();
    eprintln!("{account}; peak RSS {} MiB", rss >> 20);
    assert!(rss < 128 << 20, "peak RSS {} MiB", rss >> 20);
    crate::memory::assert_within_chart_limit(agent, "Loki down 2 min, kubelet rotating");
    outage.agent.stop();
}

/// The outage with the agent held to a quarter of a core (a pod's CPU limit, a busy node): Loki
/// refuses connections for a minute while 5 containers log 300 lines/s each and kubelet rotates,
/// gzips and removes their files; the starved agent still opens each new file before kubelet is
/// done with it, holds the rotated ones, and ships every line once, in order, after the outage.
#[test]
fn loki_down_a_minute_with_a_cpu_starved_agent_loses_nothing() {
    let Some(quota) = crate::pressure::CpuQuota::new("outage-starved", 250) else {
        return;
    };
    let wrapper = quota.wrapper();
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    let mut outage = Outage::start_via("", 5, 300, &wrapper);
    std::thread::sleep(Duration::from_secs(60));
    assert!(
        gz_count(&outage.env) >= 5,
        "kubelet gzipped {} files",
        gz_count(&outage.env)
    );
    let expected = outage.end(Duration::from_secs(5));
    let (env, agent) = (&outage.env, &outage.agent);
    let account = wait_all(env, agent, &expected, 180);
    assert_exact_or_log(&account, agent);
    let throttled = quota.throttled_seconds();
    eprintln!("starved outage: the quota held the agent back {throttled:.1} s; {account}");
    assert!(
        throttled > 1.0,
        "the quota never held the agent back ({throttled} s): no pressure was tested"
    );
    outage.agent.stop();
}

/// Over `tail.max_held_bytes` during an outage the oldest rotated files are let go: the lines lost
/// are exactly what `shipper_dropped_bytes_total{reason="max_held_bytes"}` counts (within the CRI
/// framing of each line), each letting-go is logged with its file, and the rest arrives in order.
#[test]
fn over_max_held_bytes_the_oldest_rotated_files_go_counted_and_logged() {
    let mut outage = Outage::start("  max_held_bytes: 256KiB\n", 2, 1_000);
    std::thread::sleep(Duration::from_secs(15));
    let expected = outage.end(Duration::from_secs(2));
    let (env, agent) = (&outage.env, &outage.agent);
    let total: u64 = expected.iter().map(|e| e.1).sum();
    // Wait until every line that can arrive has: the newest of each file is there and nothing moves.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = usize::MAX;
    loop {
        std::thread::sleep(Duration::from_secs(2));
        let now = env.loki.entry_count();
        let account = shipper_testkit::Account::from_streams(&env.loki.streams(), expected.iter().copied());
        let newest_in = expected
            .iter()
            .all(|&(f, n)| account.file(f).is_some_and(|a| a.missing().all(|m| m < n - 1)));
        if newest_in && now == last {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not settled: {account}\n{}",
            agent.log_tail()
        );
        last = now;
    }
    let account = shipper_testkit::Account::from_streams(&env.loki.streams(), expected.iter().copied());
    let dropped = agent.metric("shipper_dropped_bytes_total{reason=\"max_held_bytes\"}");
    assert!(account.lost() > 0, "{account}: the bound was never reached");
    assert_eq!((account.duplicated(), account.out_of_order()), (0, 0), "{account}");
    assert!(account.lost() < total, "{account}");
    // Each lost line is its payload (80-200 bytes) plus its tag (20 bytes) and CRI framing (timestamp
    // of 20-30 bytes, stream, tag, newline: 31-41).
    let lost_bytes: u64 = expected
        .iter()
        .map(|&(f, _)| {
            let a = account.file(f).unwrap();
            a.missing().map(|i| varied_len(i, 80, 200) as u64).sum::<u64>()
        })
        .sum();
    let (low, high) = (lost_bytes + 51 * account.lost(), lost_bytes + 61 * account.lost());
    assert!(
        (low as f64..=high as f64).contains(&dropped),
        "dropped {dropped} bytes counted for {} lost lines of {lost_bytes} message bytes",
        account.lost()
    );
    let log = agent.log();
    let let_go = log
        .lines()
        .filter(|l| l.contains("tail.max_held_bytes") && l.contains("lost_bytes"))
        .count();
    assert!(let_go >= 1, "no letting-go logged:\n{}", agent.log_tail());
    assert!(log
        .lines()
        .any(|l| l.contains("tail.max_held_bytes") && l.contains("0.log")));
    outage.agent.stop();
}
