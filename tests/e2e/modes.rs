//! The fallbacks work end to end: `pread` instead of io_uring, inotify and polling instead of eBPF —
//! with rotation, and visible in the metrics.

use crate::support::{assert_exact_or_log, wait_entries, write_tagged, Agent, Env};
use shipper_testkit::{Account, Format, LogWriter};

#[test]
fn pread_and_polling_ship_everything_through_rotation() {
    let env = Env::new();
    let config = env.config(
        "pods/*/*/*.log",
        "tail:\n  start_at: beginning\n  io: pread\n  watch: poll\n  poll_interval: 100ms\n  rescan_interval: 500ms\n",
    );
    let agent = Agent::start(&config);
    let m = agent.metrics();
    assert!(m.contains("shipper_reader_mode{mode=\"pread\"} 1"), "{m}");
    assert!(m.contains("shipper_watcher_mode{mode=\"poll\"} 1"), "{m}");
    let mut w = LogWriter::create(env.path("pods/ns_p_u/c/0.log"), Format::Cri).unwrap();
    for k in 0..10u64 {
        write_tagged(&mut w, 0, k * 2_000..(k + 1) * 2_000);
        if k % 3 == 2 {
            w.rotate_kubelet().unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(150));
    }
    wait_entries(&env, &agent, 20_000, 60);
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_exact_or_log(&Account::from_streams(&env.loki.streams(), [(0, 20_000)]), &agent);
    agent.stop();
}

#[test]
fn inotify_ships_appends_and_rotation() {
    let env = Env::new();
    let config = env.config(
        "pods/*/*/*.log",
        "tail:\n  start_at: beginning\n  watch: inotify\n  rescan_interval: 1h\n",
    );
    let agent = Agent::start(&config);
    let m = agent.metrics();
    assert!(m.contains("shipper_watcher_mode{mode=\"inotify\"} 1"), "{m}");
    let mut w = LogWriter::create(env.path("pods/ns_p_u/c/0.log"), Format::Cri).unwrap();
    for k in 0..6u64 {
        write_tagged(&mut w, 0, k * 1_000..(k + 1) * 1_000);
        if k % 3 == 2 {
            w.rotate_kubelet().unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    wait_entries(&env, &agent, 6_000, 60);
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_exact_or_log(&Account::from_streams(&env.loki.streams(), [(0, 6_000)]), &agent);
    agent.stop();
}
