//! Pods come and go on a node with many of them: a new pod's directory, a deleted one and one moved
//! away are each handled by scanning that directory alone — no full rescan of every pod — with every
//! watcher that has events.

use crate::support::{assert_exact_or_log, has_any_cap, wait_all, write_tagged, Agent, Env, CAP_BPF, CAP_SYS_ADMIN};
use shipper_testkit::{Format, LogWriter};
use std::time::{Duration, Instant};

const PODS: u32 = 300;

fn pods_come_and_go(watch: &str) {
    let env = Env::new();
    let log = |pod: &str, c: &str| env.path(&format!("pods/{pod}/{c}/0.log"));
    for p in 0..PODS {
        std::fs::write(
            log(&format!("ns_p{p}_u"), "c"),
            shipper_testkit::tag_line(p, 0, 60) + "\n",
        )
        .unwrap();
    }
    let extra = format!("tail:\n  start_at: beginning\n  watch: {watch}\n  rescan_interval: 1h\n");
    let agent = Agent::start(&env.config("pods/*/*/*.log", &extra));
    assert_eq!(agent.metric(&format!("shipper_watcher_mode{{mode=\"{watch}\"}}")), 1.0);
    let mut expected: Vec<(u32, u64)> = (0..PODS).map(|p| (p, 1)).collect();
    wait_all(&env, &agent, &expected, 60);
    let full_scans = agent.metric("shipper_scans_total");

    // A new pod: its directory and two container directories made at once (the inner ones before
    // any watch on the outer one can exist), then its logs.
    let new_pod = env.path("pods/ns_new_u");
    std::fs::create_dir_all(new_pod.join("c1")).unwrap();
    std::fs::create_dir_all(new_pod.join("c2")).unwrap();
    for (k, c) in ["c1", "c2"].into_iter().enumerate() {
        let f = PODS + k as u32;
        let mut w = LogWriter::create(log("ns_new_u", c), Format::Cri).unwrap();
        write_tagged(&mut w, f, 0..200);
        expected.push((f, 200));
    }
    let account = wait_all(&env, &agent, &expected, 30);
    assert_exact_or_log(&account, &agent);

    // Two pods deleted, one moved out of the tailed tree: their files are let go.
    std::fs::remove_dir_all(env.path("pods/ns_p5_u")).unwrap();
    std::fs::remove_dir_all(env.path("pods/ns_p6_u")).unwrap();
    std::fs::create_dir_all(env.path("elsewhere")).unwrap();
    std::fs::rename(env.path("pods/ns_p7_u"), env.path("elsewhere/ns_p7_u")).unwrap();
    let open = f64::from(PODS - 3 + 2);
    let deadline = Instant::now() + Duration::from_secs(20);
    while agent.metric("shipper_open_files") != open && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(agent.metric("shipper_open_files"), open, "{}", agent.log_tail());

    // The existing pods are still followed.
    let mut w = std::fs::OpenOptions::new()
        .append(true)
        .open(log("ns_p9_u", "c"))
        .unwrap();
    std::io::Write::write_all(&mut w, (shipper_testkit::tag_line(9, 1, 60) + "\n").as_bytes()).unwrap();
    expected[9].1 = 2;
    let account = wait_all(&env, &agent, &expected, 30);
    assert_exact_or_log(&account, &agent);
    assert_eq!(
        agent.metric("shipper_scans_total"),
        full_scans,
        "pod directories must not cause full rescans"
    );
    assert!(agent.metric("shipper_directory_scans_total") >= 2.0);
    agent.stop();
}

#[test]
fn inotify_scans_only_the_directories_of_pods_that_come_and_go() {
    pods_come_and_go("inotify");
}

#[test]
fn ebpf_scans_only_the_directories_of_pods_that_come_and_go() {
    let test = "ebpf_scans_only_the_directories_of_pods_that_come_and_go";
    if has_any_cap(
        CAP_BPF | CAP_SYS_ADMIN,
        test,
        "loading BPF programs needs root (CAP_BPF)",
    ) {
        pods_come_and_go("ebpf");
    }
}

/// Pods born in a burst from several threads at once: each new directory is watched while creates in
/// it may already be under way; whether the create finishes before or after the watch, its file is
/// found without waiting for a periodic rescan (an hour here).
fn pods_born_in_a_burst(watch: &str) {
    const THREADS: u32 = 4;
    const EACH: u32 = 150;
    let env = Env::new();
    std::fs::create_dir_all(env.path("pods")).unwrap();
    let extra = format!("tail:\n  start_at: beginning\n  watch: {watch}\n  rescan_interval: 1h\n");
    let agent = Agent::start(&env.config("pods/*/*/*.log", &extra));
    assert_eq!(agent.metric(&format!("shipper_watcher_mode{{mode=\"{watch}\"}}")), 1.0);
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let env = &env;
            s.spawn(move || {
                for i in 0..EACH {
                    let f = t * EACH + i;
                    let mut w = LogWriter::create(env.path(&format!("pods/ns_b{f}_u/c/0.log")), Format::Cri).unwrap();
                    write_tagged(&mut w, f, 0..3);
                }
            });
        }
    });
    let expected: Vec<(u32, u64)> = (0..THREADS * EACH).map(|f| (f, 3)).collect();
    let account = wait_all(&env, &agent, &expected, 30);
    assert_exact_or_log(&account, &agent);
    agent.stop();
}

#[test]
fn inotify_finds_every_pod_of_a_burst() {
    pods_born_in_a_burst("inotify");
}

#[test]
fn ebpf_finds_every_pod_of_a_burst() {
    let test = "ebpf_finds_every_pod_of_a_burst";
    if has_any_cap(
        CAP_BPF | CAP_SYS_ADMIN,
        test,
        "loading BPF programs needs root (CAP_BPF)",
    ) {
        pods_born_in_a_burst("ebpf");
    }
}
