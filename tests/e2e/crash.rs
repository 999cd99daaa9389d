//! The crash loop: the agent is killed with SIGKILL over and over while containers log and kubelet
//! rotates (and gzips) their files; each restart resumes from the positions. Nothing is lost, each
//! stream stays in order, and duplicates stay within what at-least-once allows.

use crate::support::{wait_all, Agent, Env};
use shipper_testkit::{tag_line, varied_len, Account, Format, LogWriter};
use std::time::{Duration, Instant};

const FILES: u32 = 50;
const PER_FILE: u64 = 20_000;
const KILLS: u64 = 20;

/// How the containers log and rotate.
struct Load {
    files: u32,
    per_file: u64,
    /// Lines written to each file in turn before the next one's.
    step: u64,
    /// Each file is rotated like kubelet once it has grown by this much...
    rotate_at: u64,
    /// ...keeping this many files (older ones gzipped, see `rotate_kubelet_retiring`); None keeps
    /// every rotated file as it is.
    keep: Option<usize>,
    /// All lines are spread over this time.
    over: Duration,
}

/// One writer for all the containers of `load`, round-robin, paced to spread the lines over its time.
fn write_all(env: &Env, load: Load) -> std::thread::JoinHandle<()> {
    let paths: Vec<_> = (0..load.files)
        .map(|f| env.path(&format!("pods/ns_p{f}_u/c/0.log")))
        .collect();
    std::thread::spawn(move || {
        let mut ws: Vec<(LogWriter, u64)> = paths
            .iter()
            .map(|p| (LogWriter::create(p, Format::Cri).unwrap(), 0))
            .collect();
        let started = Instant::now();
        let passes = load.per_file / load.step;
        for pass in 0..passes {
            for (f, (w, since_rotation)) in ws.iter_mut().enumerate() {
                for s in pass * load.step..(pass + 1) * load.step {
                    let line = tag_line(f as u32, s, varied_len(s, 80, 300));
                    *since_rotation += line.len() as u64 + 40;
                    w.write_line("stdout", &line).unwrap();
                }
                w.flush().unwrap();
                if *since_rotation >= load.rotate_at {
                    match load.keep {
                        Some(keep) => w.rotate_kubelet_retiring(keep).unwrap(),
                        None => w.rotate_kubelet().unwrap(),
                    };
                    *since_rotation = 0;
                }
            }
            let due = started + load.over * (pass + 1) as u32 / passes as u32;
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        }
    })
}

/// 1M lines across 50 files with kubelet rotation and compression; SIGKILL at a random moment every
/// 1–3 s, 20 times, with an immediate restart each time.
#[test]
fn twenty_sigkills_while_fifty_files_rotate_lose_nothing() {
    let env = Env::new();
    let config = env.config("pods/*/*/*.log", "");
    // Steps of 100 lines, 1M lines over ~45 s; 5 files kept, rotated every 256 KiB.
    let load = Load {
        files: FILES,
        per_file: PER_FILE,
        step: 100,
        rotate_at: 256 << 10,
        keep: Some(5),
        over: Duration::from_secs(45),
    };
    let writer = write_all(&env, load);
    // A fixed pseudo-random sequence, so a failure can be replayed.
    let mut x = 0x2545_f491_4f6c_dd1d_u64;
    for _ in 0..KILLS {
        let agent = Agent::start(&config);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        std::thread::sleep(Duration::from_millis(1_000 + x % 2_000));
        agent.kill();
    }
    writer.join().unwrap();
    let agent = Agent::start(&config);
    let expected: Vec<(u32, u64)> = (0..FILES).map(|f| (f, PER_FILE)).collect();
    wait_all(&env, &agent, &expected, 300);
    std::thread::sleep(Duration::from_millis(1_500));
    let account = Account::from_streams(&env.loki.streams(), expected);
    let rss = agent.peak_rss();
    eprintln!("{account}; last run's peak RSS {} MiB", rss >> 20);
    assert_eq!((account.lost(), account.out_of_order()), (0, 0), "{account}");
    // Per kill: what was acknowledged since the last positions write (progress is written at most
    // every second, the default `sync_period`) plus the batches in flight (1 sending + 2 queued,
    // 256 KiB ≈ 1,300 lines each).
    let bound = KILLS * 8_000;
    assert!(
        account.duplicated() <= bound,
        "duplicates {} > {bound}: {account}",
        account.duplicated()
    );
    assert!(rss < 128 << 20, "peak RSS {} MiB", rss >> 20);
    agent.stop();
}

/// The crash loop of README's reliability table, with the defaults (the harness sets no timing that
/// decides what survives): 10 files, 200,000 lines written at 10,000 lines/s, each file renamed to
/// `<name>.<timestamp>` and recreated every 1 MiB (kubelet's rotation, fast); the agent is SIGKILLed
/// at random after 0.3–3 s — faster than any of its intervals (`positions.sync_period`,
/// `tail.rescan_interval`, `client.batch_wait` of the defaults) — or, every third time, within its
/// first 300 ms, and restarted at once. Every line arrives, each stream in order.
#[test]
fn crash_loop_with_the_defaults_loses_nothing() {
    const FILES: u32 = 10;
    const PER_FILE: u64 = 20_000;
    let env = Env::new();
    let config = env.config("pods/*/*/*.log", "");
    // 10 lines per file per step, 2,000 steps: 10,000 lines/s over 20 s; every rotated file kept.
    let load = Load {
        files: FILES,
        per_file: PER_FILE,
        step: 10,
        rotate_at: 1 << 20,
        keep: None,
        over: Duration::from_secs(20),
    };
    let writer = write_all(&env, load);
    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
    let (mut kills, mut unready) = (0u64, 0u64);
    while !writer.is_finished() || kills < 10 {
        let agent = Agent::spawn(&config);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // Every third one within its first 300 ms: while it loads positions, finds the files or
        // recovers the ones rotated away (it is ready in about 100 ms here).
        let after = if kills % 3 == 1 { x % 300 } else { 300 + x % 2_700 };
        std::thread::sleep(Duration::from_millis(after));
        unready += u64::from(!agent.is_ready());
        agent.kill();
        kills += 1;
    }
    writer.join().unwrap();
    let agent = Agent::start(&config);
    let expected: Vec<(u32, u64)> = (0..FILES).map(|f| (f, PER_FILE)).collect();
    wait_all(&env, &agent, &expected, 300);
    std::thread::sleep(Duration::from_millis(2_500));
    let account = Account::from_streams(&env.loki.streams(), expected);
    eprintln!(
        "crash loop with the defaults: {kills} kills ({unready} before the agent was ready): {account}; {} duplicates per kill",
        account.duplicated() / kills
    );
    assert_eq!((account.lost(), account.out_of_order()), (0, 0), "{account}");
    agent.stop();
}
