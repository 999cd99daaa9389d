//! Self-protection: the memory budget holds while Loki does not answer (reading pauses, nothing is
//! dropped, every line arrives once it answers), the read rate caps how fast files are read, and
//! `max_threads` caps the CPUs the agent runs on.

use crate::support::{assert_exact_or_log, wait_all, wait_metric, write_tagged, Agent, Env};
use shipper_testkit::{Format, LogWriter};
use std::time::{Duration, Instant};

const BUDGET: u64 = 512 << 10;
const READ: u64 = 64 << 10;

#[test]
fn memory_budget_holds_under_a_stalled_receiver() {
    let env = Env::new();
    let extra = format!("tail:\n  max_buffered_bytes: {BUDGET}\n  read_buffer_size: {READ}\n");
    let cfg = env.config("app/*.log", &extra);
    // Retries go on (max_retries 0) while the receiver holds every request.
    env.loki.set_stalled(true);
    let agent = Agent::start(&cfg);
    let mut w = LogWriter::create(env.path("app/0.log"), Format::Cri).unwrap();
    let n = 40_000;
    write_tagged(&mut w, 1, 0..n); // ~8 MiB
    wait_metric(&agent, "shipper_reading_paused{reason=\"memory_budget\"}", 1.0, 20);
    let mut peak = 0f64;
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        peak = peak.max(agent.metric("shipper_buffered_bytes"));
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(peak >= BUDGET as f64, "the budget was reached: peak {peak}");
    // One read round may start just under the budget.
    assert!(
        peak <= (BUDGET + READ) as f64,
        "buffered bytes {peak} over the budget {BUDGET} + one read {READ}; log: {}",
        agent.log_tail()
    );
    env.loki.set_stalled(false);
    let account = wait_all(&env, &agent, &[(1, n)], 60);
    assert_exact_or_log(&account, &agent);
    assert_eq!(agent.metric("shipper_reading_paused{reason=\"memory_budget\"}"), 0.0);
    assert!(agent.metric("shipper_reading_paused_seconds_total{reason=\"memory_budget\"}") >= 2.0);
    agent.stop();
}

#[test]
fn read_rate_caps_how_fast_files_are_read() {
    let env = Env::new();
    let rate = 256u64 << 10;
    let extra = format!("tail:\n  max_read_rate: {rate}\n");
    let cfg = env.config("app/*.log", &extra);
    let mut w = LogWriter::create(env.path("app/0.log"), Format::Cri).unwrap();
    let n = 7_000;
    write_tagged(&mut w, 1, 0..n); // ~1.4 MiB
    let size = std::fs::metadata(env.path("app/0.log")).unwrap().len();
    let started = Instant::now();
    let agent = Agent::start(&cfg);
    let account = wait_all(&env, &agent, &[(1, n)], 60);
    let took = started.elapsed().as_secs_f64();
    assert_exact_or_log(&account, &agent);
    // At most a second's worth at once, then `rate` bytes per second.
    let least = (size - rate) as f64 / rate as f64;
    assert!(
        took >= least * 0.9,
        "{size} bytes at {rate} B/s took {took:.2} s, less than {least:.2} s"
    );
    assert!(agent.metric("shipper_reading_paused_seconds_total{reason=\"read_rate\"}") > 0.0);
    agent.stop();
}

/// The CPUs each of the agent's threads may run on (`Cpus_allowed_list` of /proc).
fn cpus_of_threads(pid: i32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("status")).ok())
        .filter_map(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
                .map(|v| v.trim().to_string())
        })
        .collect()
}

#[test]
fn max_threads_caps_the_cpus_the_agent_runs_on() {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cpus < 2 {
        assert!(std::env::var_os("CI").is_none(), "CI machines have 2 CPUs");
        eprintln!("skipped: one CPU here, nothing to cap");
        return;
    }
    let env = Env::new();
    let cfg = env.config("app/*.log", "max_threads: 1\n");
    let agent = Agent::start(&cfg);
    let threads = cpus_of_threads(agent.pid());
    assert!(threads.len() >= 3, "reader, batcher and network threads: {threads:?}");
    let first = &threads[0];
    assert!(!first.contains(',') && !first.contains('-'), "one CPU: {first}");
    assert!(threads.iter().all(|t| t == first), "every thread on it: {threads:?}");
    // Still ships.
    let mut w = LogWriter::create(env.path("app/0.log"), Format::Cri).unwrap();
    write_tagged(&mut w, 1, 0..1000);
    let account = wait_all(&env, &agent, &[(1, 1000)], 30);
    assert_exact_or_log(&account, &agent);
    agent.stop();
}
